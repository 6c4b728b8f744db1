//! The image archive of `sparkbox image save` and `load`: the image on a USB
//! stick, for machines that can neither build it nor pull it.
//!
//! The file is the engine's own save archive (a tar, so plain `docker load -i
//! FILE` reads it too) with one entry appended before a fresh end of archive:
//! `sparkbox-checksum.json`, holding the SHA-256 and length of every byte
//! before that entry (the payload), the tag, the image ID and the versions.
//! The engine ignores an entry it does not know (checked with Docker 20.10's
//! `docker load`). A load checks the record over the whole payload first and
//! then streams the payload alone, plus an end of archive, to the engine: the
//! engine reads back exactly the bytes it saved.
//!
//! The checksum finds damage (a bad copy, a truncated download), not tampering:
//! whoever can change the file can change its record too.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::engine::ByteStream;
use crate::error::{Error, Result};
use crate::model::versions::Versions;

/// The name of the entry that carries the checksum record.
pub const CHECKSUM_ENTRY: &str = "sparkbox-checksum.json";

/// The record's format; another layout would get another name.
pub const FORMAT: &str = "sparkbox-image-archive/1";

/// A tar block.
const BLOCK: usize = 512;

/// The largest checksum record or pax header accepted (both are a few hundred bytes).
const MAX_SMALL_ENTRY: u64 = 1 << 20;

/// Bytes read from the file at a time.
pub const CHUNK: usize = 1 << 20;

/// Two zero blocks: the end of a tar archive.
static END_OF_ARCHIVE: [u8; 2 * BLOCK] = [0; 2 * BLOCK];

/// What the appended entry says about the payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecksumRecord {
    /// Always [`FORMAT`].
    pub format: String,
    /// SHA-256 (hex) of every byte before the checksum entry.
    pub sha256: String,
    /// How many bytes that is.
    pub bytes: u64,
    /// The image's tag.
    pub image: String,
    /// The image's ID ("sha256:…"), which a load keeps.
    pub image_id: String,
    /// The measured versions in the image's labels.
    pub versions: Versions,
    /// The sparkbox that wrote the file ("sparkbox 0.1.0").
    pub saved_by: String,
    /// SHA-256 of this record itself (see [`ChecksumRecord::own_digest`]), so
    /// damage to the tag or the versions is found before loading, as damage
    /// to the image bytes is.
    pub record_sha256: String,
}

impl ChecksumRecord {
    /// A record for a payload, sealed with its own digest.
    pub fn new(
        sha256: String,
        bytes: u64,
        image: String,
        image_id: String,
        versions: Versions,
    ) -> ChecksumRecord {
        let mut record = ChecksumRecord {
            format: FORMAT.to_string(),
            sha256,
            bytes,
            image,
            image_id,
            versions,
            saved_by: format!("sparkbox {}", env!("CARGO_PKG_VERSION")),
            record_sha256: String::new(),
        };
        record.record_sha256 = record.own_digest();
        record
    }

    /// SHA-256 of the record as compact JSON with `record_sha256` left empty.
    pub fn own_digest(&self) -> String {
        let mut blank = self.clone();
        blank.record_sha256.clear();
        // Serialising strings and maps of strings cannot fail; an empty
        // digest input would only make the check fail, never pass.
        hex(&Sha256::digest(
            serde_json::to_vec(&blank).unwrap_or_default(),
        ))
    }
}

/// Why a file is not a whole, undamaged image archive of sparkbox.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveProblem {
    /// A header block's own checksum is wrong.
    #[error("the tar header at byte {0} is damaged (or the file is not a tar archive)")]
    BadHeader(u64),
    /// The stream stopped before the end-of-archive blocks.
    #[error("it is truncated: the archive stops after {0} bytes, before its end")]
    Truncated(u64),
    /// Something other than zeros follows the end of the archive.
    #[error("it has data after the end of the archive (at byte {0})")]
    DataAfterEnd(u64),
    /// A complete tar without the checksum entry.
    #[error("it has no sparkbox-checksum.json entry, so it was not made by `sparkbox image save`")]
    NoChecksum,
    /// The checksum entry is not the last one.
    #[error("an entry follows sparkbox-checksum.json (at byte {0})")]
    EntryAfterChecksum(u64),
    /// The checksum entry does not parse.
    #[error("its sparkbox-checksum.json is unreadable ({0})")]
    BadRecord(String),
    /// The payload is not what was saved.
    #[error(
        "it is corrupt: its image bytes have SHA-256 {}…, but {}… was saved{}",
        &actual[..actual.len().min(16)],
        &expected[..expected.len().min(16)],
        if actual_bytes == expected_bytes { String::new() } else { format!(" ({actual_bytes} bytes, {expected_bytes} saved)") }
    )]
    Corrupt {
        expected: String,
        expected_bytes: u64,
        actual: String,
        actual_bytes: u64,
    },
}

/// A piece of a tar archive as it streams by.
#[derive(Debug)]
enum Piece<'a> {
    /// A header block (of an entry, or of a pax or long-name extension).
    Header { offset: u64, block: &'a [u8] },
    /// Entry data, or the padding after it.
    Data(&'a [u8]),
    /// The first all-zero block at a header position: the end of the archive.
    End,
}

/// Finds the blocks of a tar archive in a stream of chunks of any size,
/// without holding more than one header block.
#[derive(Debug, Default)]
struct TarWalker {
    /// Bytes seen.
    pos: u64,
    /// Data bytes of the current entry still to come.
    data_left: u64,
    /// Padding bytes after them.
    pad_left: u64,
    /// A header block being collected.
    block: Vec<u8>,
    /// Where the end-of-archive blocks start, once seen.
    end: Option<u64>,
    /// The data of a pax extended header being read.
    pax: Option<Vec<u8>>,
    /// A size a pax header gave for the next entry (entries over 8 GiB).
    next_size: Option<u64>,
}

impl TarWalker {
    fn feed(
        &mut self,
        mut chunk: &[u8],
        on: &mut dyn FnMut(Piece<'_>) -> Result<(), ArchiveProblem>,
    ) -> Result<(), ArchiveProblem> {
        while !chunk.is_empty() {
            if self.end.is_some() {
                // Writers pad the end to a record size with zeros; anything
                // else there is not part of the archive.
                if let Some(i) = chunk.iter().position(|b| *b != 0) {
                    return Err(ArchiveProblem::DataAfterEnd(self.pos + i as u64));
                }
                self.pos += chunk.len() as u64;
                return Ok(());
            }
            let in_entry = self.data_left + self.pad_left;
            if in_entry > 0 {
                let n = usize::try_from(in_entry).map_or(chunk.len(), |e| e.min(chunk.len()));
                let (now, rest) = chunk.split_at(n);
                let data = usize::try_from(self.data_left).map_or(n, |d| d.min(n));
                if let Some(pax) = self.pax.as_mut() {
                    pax.extend_from_slice(&now[..data]);
                }
                self.data_left -= data as u64;
                self.pad_left -= (n - data) as u64;
                self.pos += n as u64;
                chunk = rest;
                on(Piece::Data(now))?;
                if self.data_left == 0 {
                    self.finish_pax();
                }
                continue;
            }
            let n = (BLOCK - self.block.len()).min(chunk.len());
            self.block.extend_from_slice(&chunk[..n]);
            self.pos += n as u64;
            chunk = &chunk[n..];
            if self.block.len() < BLOCK {
                continue;
            }
            let offset = self.pos - BLOCK as u64;
            if self.block.iter().all(|b| *b == 0) {
                self.end = Some(offset);
                self.block.clear();
                on(Piece::End)?;
                continue;
            }
            let (kind, own_size) = parse_header(&self.block, offset)?;
            let size = match kind {
                // Extension headers: their size is their own data's.
                b'x' | b'g' | b'L' | b'K' => own_size,
                _ => self.next_size.take().unwrap_or(own_size),
            };
            if kind == b'x' {
                if size > MAX_SMALL_ENTRY {
                    return Err(ArchiveProblem::BadHeader(offset));
                }
                self.pax = Some(Vec::new());
            }
            self.data_left = size;
            self.pad_left = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
            on(Piece::Header {
                offset,
                block: &self.block,
            })?;
            self.block.clear();
            if size == 0 {
                self.finish_pax();
            }
        }
        Ok(())
    }

    fn finish_pax(&mut self) {
        if let Some(pax) = self.pax.take() {
            self.next_size = pax_size(&pax);
        }
    }

    /// Where the end-of-archive blocks start; an error unless both came.
    fn end(&self) -> Result<u64, ArchiveProblem> {
        match self.end {
            Some(end) if self.pos >= end + END_OF_ARCHIVE.len() as u64 => Ok(end),
            _ => Err(ArchiveProblem::Truncated(self.pos)),
        }
    }
}

/// The type flag and data size of a header block whose checksum is right.
fn parse_header(block: &[u8], offset: u64) -> Result<(u8, u64), ArchiveProblem> {
    let bad = || ArchiveProblem::BadHeader(offset);
    let header = tar::Header::from_byte_slice(block);
    let stored = u64::from(header.cksum().map_err(|_| bad())?);
    // The checksum field counts as spaces; old writers summed signed bytes.
    let is_field = |i: usize| (148..156).contains(&i);
    let unsigned: u64 = block
        .iter()
        .enumerate()
        .map(|(i, b)| if is_field(i) { 32 } else { u64::from(*b) })
        .sum();
    let signed: i64 = block
        .iter()
        .enumerate()
        .map(|(i, b)| if is_field(i) { 32 } else { i64::from(*b as i8) })
        .sum();
    if stored != unsigned && i64::try_from(stored).ok() != Some(signed) {
        return Err(bad());
    }
    let size = header.entry_size().map_err(|_| bad())?;
    Ok((block[156], size))
}

/// The "size" record of a pax extended header ("LENGTH size=VALUE\n").
fn pax_size(data: &[u8]) -> Option<u64> {
    let mut rest = data;
    let mut size = None;
    while !rest.is_empty() {
        let space = rest.iter().position(|b| *b == b' ')?;
        let length: usize = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        if length <= space + 1 || length > rest.len() {
            return None;
        }
        let record = &rest[space + 1..length - 1];
        if let Some(value) = record.strip_prefix(b"size=") {
            size = std::str::from_utf8(value).ok()?.parse().ok();
        }
        rest = &rest[length..];
    }
    size
}

/// The name field of a header block (up to its first NUL).
fn entry_name(block: &[u8]) -> &[u8] {
    let name = &block[..100];
    let len = name.iter().position(|b| *b == 0).unwrap_or(name.len());
    &name[..len]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Turns the engine's save archive into the payload — every byte before its
/// end-of-archive blocks — and hashes it as it passes.
#[derive(Debug, Default)]
pub struct Sealer {
    walker: TarWalker,
    hasher: Sha256,
    bytes: u64,
}

impl Sealer {
    /// Appends the payload part of `chunk` (the next bytes of the archive) to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), ArchiveProblem> {
        let Sealer {
            walker,
            hasher,
            bytes,
        } = self;
        walker.feed(chunk, &mut |piece| {
            let part = match piece {
                Piece::Header { block, .. } => block,
                Piece::Data(data) => data,
                Piece::End => return Ok(()),
            };
            hasher.update(part);
            *bytes += part.len() as u64;
            out.extend_from_slice(part);
            Ok(())
        })
    }

    /// Payload bytes so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The payload's SHA-256 (hex) and length, once the archive has ended.
    pub fn finish(self) -> Result<(String, u64), ArchiveProblem> {
        self.walker.end()?;
        Ok((hex(&self.hasher.finalize()), self.bytes))
    }
}

/// What follows the payload in the file: the checksum entry and a fresh end
/// of archive.
pub fn checksum_trailer(record: &ChecksumRecord) -> Result<Vec<u8>> {
    let cannot =
        |e: &dyn std::fmt::Display| Error::Io(format!("cannot write the checksum entry: {e}"));
    let mut json = serde_json::to_vec_pretty(record).map_err(|e| cannot(&e))?;
    json.push(b'\n');
    let mut header = tar::Header::new_ustar();
    header.set_path(CHECKSUM_ENTRY).map_err(|e| cannot(&e))?;
    header.set_size(json.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    header.set_mtime(now);
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(&json);
    out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
    out.extend_from_slice(&END_OF_ARCHIVE);
    Ok(out)
}

/// Checks a file made by [`Sealer`] + [`checksum_trailer`] as it streams by.
#[derive(Debug, Default)]
pub struct Verifier {
    walker: TarWalker,
    seen: Seen,
}

#[derive(Debug, Default)]
struct Seen {
    hasher: Sha256,
    payload: u64,
    record_at: Option<u64>,
    record: Vec<u8>,
}

impl Seen {
    fn take(&mut self, piece: Piece<'_>) -> Result<(), ArchiveProblem> {
        match piece {
            Piece::Header { offset, block } => {
                if self.record_at.is_some() {
                    return Err(ArchiveProblem::EntryAfterChecksum(offset));
                }
                if entry_name(block) == CHECKSUM_ENTRY.as_bytes() {
                    self.record_at = Some(offset);
                } else {
                    self.hasher.update(block);
                    self.payload += block.len() as u64;
                }
            }
            Piece::Data(data) if self.record_at.is_some() => {
                if (self.record.len() + data.len()) as u64 > MAX_SMALL_ENTRY {
                    return Err(ArchiveProblem::BadRecord("larger than 1 MiB".into()));
                }
                self.record.extend_from_slice(data);
            }
            Piece::Data(data) => {
                self.hasher.update(data);
                self.payload += data.len() as u64;
            }
            Piece::End => {}
        }
        Ok(())
    }
}

impl Verifier {
    /// Takes the next bytes of the file; fails early on a damaged header.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), ArchiveProblem> {
        let Verifier { walker, seen } = self;
        walker.feed(chunk, &mut |piece| seen.take(piece))
    }

    /// The record, once the whole file has been fed and its payload matches it.
    pub fn finish(self) -> Result<ChecksumRecord, ArchiveProblem> {
        self.walker.end()?;
        let at = self.seen.record_at.ok_or(ArchiveProblem::NoChecksum)?;
        // The entry's padding is zeros.
        let len = self
            .seen
            .record
            .iter()
            .rposition(|b| *b != 0)
            .map_or(0, |i| i + 1);
        let record: ChecksumRecord = serde_json::from_slice(&self.seen.record[..len])
            .map_err(|e| ArchiveProblem::BadRecord(e.to_string()))?;
        if record.format != FORMAT {
            return Err(ArchiveProblem::BadRecord(format!(
                "format {:?}; this sparkbox reads {FORMAT}",
                record.format
            )));
        }
        if record.record_sha256 != record.own_digest() {
            return Err(ArchiveProblem::BadRecord(
                "its own SHA-256 does not match: the entry is damaged".into(),
            ));
        }
        let actual = hex(&self.seen.hasher.finalize());
        if record.sha256 != actual || record.bytes != at {
            return Err(ArchiveProblem::Corrupt {
                expected: record.sha256,
                expected_bytes: record.bytes,
                actual,
                actual_bytes: at,
            });
        }
        Ok(record)
    }
}

/// The first `payload` bytes of `file` followed by a fresh end of archive:
/// exactly what the engine saved (the checksum entry stays behind). `sent`
/// counts the bytes handed out.
pub fn payload_stream(file: tokio::fs::File, payload: u64, sent: Arc<AtomicU64>) -> ByteStream {
    futures_util::stream::unfold((file, payload, false), move |(mut file, left, ended)| {
        let sent = Arc::clone(&sent);
        async move {
            if left == 0 {
                return (!ended)
                    .then(|| (Ok(Bytes::from_static(&END_OF_ARCHIVE)), (file, 0, true)));
            }
            let mut buf = vec![0u8; usize::try_from(left).map_or(CHUNK, |l| l.min(CHUNK))];
            match file.read(&mut buf).await {
                Ok(0) => Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file became shorter while it was being loaded",
                    )),
                    (file, 0, true),
                )),
                Ok(n) => {
                    buf.truncate(n);
                    sent.fetch_add(n as u64, Ordering::Relaxed);
                    Some((Ok(Bytes::from(buf)), (file, left - n as u64, false)))
                }
                Err(e) => Some((Err(e), (file, 0, true))),
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::recipe::IMAGE_REPOSITORY;

    fn header(path: &str, size: usize, kind: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_path(path).expect("path");
        h.set_size(size as u64);
        h.set_mode(0o644);
        h.set_entry_type(kind);
        h.set_cksum();
        h
    }

    /// A small stand-in for an engine's save archive: a manifest, a
    /// directory, a "layer" of noise and an entry with a long (GNU) name.
    fn engine_archive() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let noise: Vec<u8> = (0..3000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let long = format!("{}/layer.tar", "d".repeat(140));
        for (path, data, kind) in [
            (
                "manifest.json",
                &b"[{\"Config\":\"x.json\"}]"[..],
                tar::EntryType::Regular,
            ),
            ("abc/", &b""[..], tar::EntryType::Directory),
            ("abc/layer.tar", &noise[..], tar::EntryType::Regular),
            (long.as_str(), &noise[..600], tar::EntryType::Regular),
        ] {
            let mut h = header("x", data.len(), kind);
            b.append_data(&mut h, path, data).expect("append");
        }
        b.into_inner().expect("archive")
    }

    fn record_for(sha256: String, bytes: u64) -> ChecksumRecord {
        let mut versions = Versions::default();
        versions.values.insert("spark".into(), "4.3.0".into());
        ChecksumRecord::new(
            sha256,
            bytes,
            format!("{IMAGE_REPOSITORY}:4.3.0-test"),
            "sha256:abc".into(),
            versions,
        )
    }

    /// What `image save` writes for `archive`, fed in chunks of `chunk` bytes.
    fn seal(archive: &[u8], chunk: usize) -> Result<Vec<u8>, ArchiveProblem> {
        let mut sealer = Sealer::default();
        let mut out = Vec::new();
        for piece in archive.chunks(chunk) {
            sealer.feed(piece, &mut out)?;
        }
        let (sha256, bytes) = sealer.finish()?;
        assert_eq!(bytes, out.len() as u64);
        out.extend(checksum_trailer(&record_for(sha256, bytes)).expect("trailer"));
        Ok(out)
    }

    fn verify(file: &[u8], chunk: usize) -> Result<ChecksumRecord, ArchiveProblem> {
        let mut verifier = Verifier::default();
        for piece in file.chunks(chunk) {
            verifier.feed(piece)?;
        }
        verifier.finish()
    }

    #[test]
    fn a_sealed_file_verifies_whatever_the_chunk_sizes() {
        let archive = engine_archive();
        let payload = archive.len() - END_OF_ARCHIVE.len();
        for chunk in [1, 7, 511, 512, 513, 4096, archive.len()] {
            let file = seal(&archive, chunk).expect("seal");
            let record = verify(&file, chunk).expect("verify");
            assert_eq!(record.bytes, payload as u64);
            assert_eq!(record.sha256, hex(&Sha256::digest(&archive[..payload])));
            assert_eq!(record.image, format!("{IMAGE_REPOSITORY}:4.3.0-test"));
            // What a load sends back is exactly what the engine saved.
            let mut sent = file[..payload].to_vec();
            sent.extend_from_slice(&END_OF_ARCHIVE);
            assert_eq!(sent, archive);
        }
    }

    #[test]
    fn the_sealed_file_is_a_tar_with_the_checksum_entry_last() {
        let file = seal(&engine_archive(), 4096).expect("seal");
        let mut tar = tar::Archive::new(file.as_slice());
        let names: Vec<String> = tar
            .entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                e.path().expect("path").to_string_lossy().into_owned()
            })
            .collect();
        assert_eq!(names.first().map(String::as_str), Some("manifest.json"));
        assert!(names.iter().any(|n| n.len() > 100), "{names:?}");
        assert_eq!(names.last().map(String::as_str), Some(CHECKSUM_ENTRY));
    }

    #[test]
    fn any_flipped_byte_is_refused() {
        let file = seal(&engine_archive(), 4096).expect("seal");
        for at in 0..file.len() {
            let mut bad = file.clone();
            bad[at] ^= 0x01;
            assert!(verify(&bad, 4096).is_err(), "a flipped byte at {at} passed");
        }
        // In layer data: the checksum says so.
        let mut bad = file.clone();
        let at = file.len() / 3;
        bad[at] ^= 0x80;
        assert!(
            matches!(verify(&bad, 4096), Err(ArchiveProblem::Corrupt { .. })),
            "{:?}",
            verify(&bad, 4096)
        );
        // In a header: its own checksum says so, before the rest is read.
        let mut bad = file.clone();
        bad[3] ^= 0x01;
        assert_eq!(verify(&bad, 4096), Err(ArchiveProblem::BadHeader(0)));
    }

    #[test]
    fn a_truncated_file_is_refused() {
        let file = seal(&engine_archive(), 4096).expect("seal");
        for cut in (0..file.len())
            .step_by(97)
            .chain([file.len() - 1, file.len() - 512])
        {
            let result = verify(&file[..cut], 4096);
            assert_eq!(
                result,
                Err(ArchiveProblem::Truncated(cut as u64)),
                "cut at {cut}"
            );
        }
        // The engine's archive cut short fails the save too.
        let archive = engine_archive();
        assert_eq!(
            seal(&archive[..2000], 512),
            Err(ArchiveProblem::Truncated(2000))
        );
    }

    #[test]
    fn a_plain_archive_has_no_checksum_entry() {
        assert_eq!(
            verify(&engine_archive(), 4096),
            Err(ArchiveProblem::NoChecksum)
        );
    }

    #[test]
    fn zeros_may_follow_the_end_but_nothing_else() {
        let archive = engine_archive();
        // tar(1) pads archives to records of 10 KiB.
        let mut padded = archive.clone();
        padded.resize(padded.len().div_ceil(10240) * 10240, 0);
        assert_eq!(seal(&padded, 999), seal(&archive, 999));
        let mut file = seal(&archive, 4096).expect("seal");
        file.extend_from_slice(&[0; 4096]);
        assert!(verify(&file, 4096).is_ok());
        let at = file.len() as u64;
        file.extend_from_slice(b"junk");
        assert_eq!(verify(&file, 4096), Err(ArchiveProblem::DataAfterEnd(at)));
    }

    #[test]
    fn an_entry_after_the_checksum_entry_is_refused() {
        let archive = engine_archive();
        let payload = archive.len() - END_OF_ARCHIVE.len();
        let file = seal(&archive, 4096).expect("seal");
        let mut bad = file[..file.len() - END_OF_ARCHIVE.len()].to_vec();
        let at = bad.len() as u64;
        bad.extend_from_slice(&archive[..payload]);
        bad.extend_from_slice(&END_OF_ARCHIVE);
        assert_eq!(
            verify(&bad, 4096),
            Err(ArchiveProblem::EntryAfterChecksum(at))
        );
    }

    #[test]
    fn a_damaged_record_is_refused() {
        let archive = engine_archive();
        let mut sealer = Sealer::default();
        let mut file = Vec::new();
        sealer.feed(&archive, &mut file).expect("feed");
        let (sha256, bytes) = sealer.finish().expect("finish");
        let mut record = record_for(sha256.clone(), bytes);
        let with = |record: &ChecksumRecord| {
            let mut f = file.clone();
            f.extend(checksum_trailer(record).expect("trailer"));
            verify(&f, 4096)
        };
        assert!(with(&record).is_ok());
        // A record from another format version.
        record.format = "sparkbox-image-archive/99".into();
        record.record_sha256 = record.own_digest();
        assert!(matches!(with(&record), Err(ArchiveProblem::BadRecord(_))));
        // A changed tag that is still valid JSON: the record's own digest says so.
        let mut record = record_for(sha256, bytes);
        record.image.push('x');
        assert!(matches!(with(&record), Err(ArchiveProblem::BadRecord(_))));
        // A consistent record for other bytes.
        record.image.pop();
        record.bytes -= 1;
        record.record_sha256 = record.own_digest();
        assert!(matches!(with(&record), Err(ArchiveProblem::Corrupt { .. })));
    }

    #[test]
    fn pax_sizes_are_followed() {
        assert_eq!(pax_size(b"12 size=700\n"), Some(700));
        assert_eq!(pax_size(b"16 path=a/b/cde\n12 size=700\n"), Some(700));
        assert_eq!(pax_size(b"16 path=a/b/cde\n"), None);
        assert_eq!(pax_size(b"99 size=7\n"), None);
        // An entry whose size only its pax header gives (as for entries over 8 GiB).
        let pax = b"12 size=700\n";
        let mut archive = header("PaxHeaders/big", pax.len(), tar::EntryType::XHeader)
            .as_bytes()
            .to_vec();
        archive.extend_from_slice(pax);
        archive.resize(1024, 0);
        archive.extend_from_slice(header("big", 0, tar::EntryType::Regular).as_bytes());
        archive.extend_from_slice(&[0xab; 700]);
        archive.resize(archive.len().div_ceil(BLOCK) * BLOCK, 0);
        archive.extend_from_slice(header("after", 0, tar::EntryType::Regular).as_bytes());
        archive.extend_from_slice(&END_OF_ARCHIVE);
        let file = seal(&archive, 100).expect("the data is not taken for a header");
        assert!(verify(&file, 100).is_ok());
    }
}
