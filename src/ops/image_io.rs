//! Saving the cluster image into a file and loading it back (`sparkbox image
//! save|load`), in the format of [`crate::image::archive`]: the file is
//! written under a temporary name and checked whole before the engine sees a
//! byte of it on a load.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::engine::{Engine, ImageInfo};
use crate::error::{Error, Result};
use crate::image;
use crate::image::archive::{
    checksum_trailer, payload_stream, ArchiveProblem, ChecksumRecord, Sealer, Verifier, CHUNK,
};
use crate::model::labels;
use crate::model::recipe::IMAGE_REPOSITORY;
use crate::model::versions::Versions;
use crate::progress::Progress;

/// Progress of a long copy: a bar in MiB on a terminal, a line per tenth otherwise.
struct ByteMeter<'a> {
    progress: &'a Progress,
    what: String,
    total: u64,
    /// The total is a guess (the image's size, not its archive's).
    estimate: bool,
    shown_tenths: u64,
    last_draw: Option<Instant>,
}

impl<'a> ByteMeter<'a> {
    fn new(progress: &'a Progress, what: String, total: u64, estimate: bool) -> ByteMeter<'a> {
        ByteMeter {
            progress,
            what,
            total,
            estimate,
            shown_tenths: 0,
            last_draw: None,
        }
    }

    fn update(&mut self, done: u64) {
        if self.progress.is_live() {
            if self
                .last_draw
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
            {
                return;
            }
            self.last_draw = Some(Instant::now());
            let mib = |b: u64| u32::try_from(b >> 20).unwrap_or(u32::MAX);
            let total = mib(self.total.max(done)).max(1);
            self.progress.step(
                mib(done).saturating_add(1).min(total),
                total,
                &format!("MiB {}", self.what),
            );
            return;
        }
        let cap = if self.estimate { 9 } else { 10 };
        let tenths = (done.saturating_mul(10) / self.total.max(1)).min(cap);
        if tenths > self.shown_tenths {
            self.shown_tenths = tenths;
            let size = |b: u64| image::human_size(i64::try_from(b).unwrap_or(i64::MAX));
            let about = if self.estimate { "about " } else { "" };
            self.progress.phase(&format!(
                "{}: {} of {about}{} ({}%)",
                self.what,
                size(done),
                size(self.total),
                tenths * 10
            ));
        }
    }
}

/// "Spark 4.3.0, Python 3.11.2, Java 17.0.19" (and any extra packages).
pub fn summary(versions: &Versions) -> String {
    let get = |key: &str| versions.get(key).unwrap_or("?").to_string();
    let mut text = format!(
        "Spark {}, Python {}, Java {}",
        get("spark"),
        get("python"),
        get("java")
    );
    for (name, version) in &versions.extra {
        text.push_str(&format!(", {name} {version}"));
    }
    text
}

/// Removes a half-written file unless the save finished — also on Ctrl-C,
/// which drops the command's future.
struct PartialFile(Option<PathBuf>);

impl PartialFile {
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// FILE.partial next to FILE.
fn partial_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    file.with_file_name(name)
}

/// Refuses an output path that cannot become a file, before anything slow.
pub fn check_output_path(file: &Path) -> Result<()> {
    if file.is_dir() || file.file_name().is_none() {
        return Err(Error::InvalidInput(format!(
            "{} is a directory — name the file to write, e.g. {}",
            file.display(),
            file.join("sparkbox-image.tar").display()
        )));
    }
    let parent = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(Error::InvalidInput(format!(
            "the directory {} does not exist — create it, or choose another FILE",
            parent.display()
        )));
    }
    Ok(())
}

fn write_error(path: &Path, e: &std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(28) {
        Error::Io(format!(
            "no space left for {} — free space on that disk, or save to another one",
            path.display()
        ))
    } else {
        Error::Io(format!(
            "cannot write {}: {e} — choose a FILE in a directory you can write to",
            path.display()
        ))
    }
}

fn engine_archive_error(tag: &str, problem: &ArchiveProblem) -> Error {
    Error::Engine {
        action: format!("save the image {tag}"),
        detail: format!(
            "the archive it sent is not usable: {problem} — run `sparkbox image save` again"
        ),
    }
}

/// What [`save`] wrote.
#[derive(Debug, Clone)]
pub struct Saved {
    /// The record in the file's checksum entry.
    pub record: ChecksumRecord,
    /// The file's size in bytes.
    pub bytes: u64,
}

/// Saves the image `tag` into `file` (checked with [`check_output_path`]
/// first): written as FILE.partial, synced, then renamed, so a file under
/// its own name is whole; a save cut short (Ctrl-C too) leaves nothing.
pub async fn save<E: Engine>(
    engine: &E,
    tag: &str,
    file: &Path,
    progress: &Progress,
) -> Result<Saved> {
    let info = engine.image(tag).await?.ok_or_else(|| {
        Error::Io(format!(
            "the image {tag} is not built — run `sparkbox build` (with the same flags and sparkbox.toml) first, then `sparkbox image save` again"
        ))
    })?;
    let versions = image::versions_from_labels(&info.labels).ok_or_else(|| {
        Error::InvalidInput(format!(
            "the image {tag} carries no version labels — rebuild it with `sparkbox build --force`, then save it"
        ))
    })?;

    let partial = partial_path(file);
    let out = tokio::fs::File::create(&partial)
        .await
        .map_err(|e| write_error(&partial, &e))?;
    let cleanup = PartialFile(Some(partial.clone()));
    let mut out = tokio::io::BufWriter::with_capacity(CHUNK, out);
    // The engine sends the first byte only once it has gathered every layer.
    progress.phase(&format!("the engine is gathering the layers of {tag}"));
    let mut meter = ByteMeter::new(
        progress,
        format!("saving to {}", file.display()),
        u64::try_from(info.size).unwrap_or(0),
        true,
    );
    let mut archive = engine.export_image(tag);
    let mut sealer = Sealer::default();
    let mut payload = Vec::with_capacity(CHUNK);
    while let Some(chunk) = archive.next().await {
        let chunk = chunk?;
        payload.clear();
        sealer
            .feed(&chunk, &mut payload)
            .map_err(|p| engine_archive_error(tag, &p))?;
        out.write_all(&payload)
            .await
            .map_err(|e| write_error(&partial, &e))?;
        meter.update(sealer.bytes());
    }
    let (sha256, bytes) = sealer.finish().map_err(|p| engine_archive_error(tag, &p))?;
    let record = ChecksumRecord::new(sha256, bytes, tag.to_string(), info.id.clone(), versions);
    progress.phase("writing the checksum entry");
    let trailer = checksum_trailer(&record)?;
    let write = async {
        out.write_all(&trailer).await?;
        out.flush().await?;
        // On the disk before the name says the file is whole.
        out.get_mut().sync_all().await
    };
    write.await.map_err(|e| write_error(&partial, &e))?;
    drop(out);
    tokio::fs::rename(&partial, file)
        .await
        .map_err(|e| write_error(file, &e))?;
    cleanup.keep();
    progress.finish();
    Ok(Saved {
        bytes: bytes + trailer.len() as u64,
        record,
    })
}

/// The error for a file that fails its check: what is wrong, and what to do.
fn refuse(file: &Path, problem: &ArchiveProblem) -> Error {
    let fix = match problem {
        ArchiveProblem::NoChecksum => {
            "make the file with `sparkbox image save FILE` (a plain `docker save` archive you trust loads with `docker load -i FILE`)"
        }
        _ => "copy the file again from the original, or save it again with `sparkbox image save FILE` where the image was built",
    };
    Error::InvalidInput(format!(
        "{} cannot be loaded: {problem} — nothing was loaded; {fix}",
        file.display()
    ))
}

fn unreadable(file: &Path, e: &std::io::Error) -> Error {
    Error::FileUnreadable {
        path: file.to_path_buf(),
        detail: format!("{e} — name a file made by `sparkbox image save`"),
    }
}

/// Reads the whole file once and returns its record if the payload matches it.
async fn verify_file(file: &Path, len: u64, progress: &Progress) -> Result<ChecksumRecord> {
    let mut input = tokio::fs::File::open(file)
        .await
        .map_err(|e| unreadable(file, &e))?;
    let mut verifier = Verifier::default();
    let mut meter = ByteMeter::new(
        progress,
        format!("checking the SHA-256 of {}", file.display()),
        len,
        false,
    );
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    loop {
        let n = input
            .read(&mut buf)
            .await
            .map_err(|e| unreadable(file, &e))?;
        if n == 0 {
            break;
        }
        verifier.feed(&buf[..n]).map_err(|p| refuse(file, &p))?;
        done += n as u64;
        meter.update(done);
    }
    verifier.finish().map_err(|p| refuse(file, &p))
}

/// Streams the payload to the engine, showing the bytes sent, and returns
/// the engine's messages.
async fn send_payload<E: Engine>(
    engine: &E,
    file: &Path,
    payload: u64,
    progress: &Progress,
) -> Result<Vec<String>> {
    let input = tokio::fs::File::open(file)
        .await
        .map_err(|e| unreadable(file, &e))?;
    let sent = Arc::new(AtomicU64::new(0));
    let import = engine.import_image(payload_stream(input, payload, Arc::clone(&sent)));
    tokio::pin!(import);
    let mut meter = ByteMeter::new(
        progress,
        "sending the image to the engine".to_string(),
        payload,
        false,
    );
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut unpacking = false;
    loop {
        tokio::select! {
            result = &mut import => return result,
            _ = tick.tick() => {
                let done = sent.load(Ordering::Relaxed);
                meter.update(done);
                if done >= payload && !unpacking {
                    // The engine answers once it has unpacked and registered the layers.
                    unpacking = true;
                    progress.phase("the engine is unpacking and registering the image's layers");
                }
            }
        }
    }
}

/// Checks that the loaded image is the one the record describes.
fn check_loaded(file: &Path, record: &ChecksumRecord, loaded: &ImageInfo) -> Result<()> {
    let problem = if loaded.id != record.image_id {
        Some(format!(
            "its ID is {}, the file says {}",
            loaded.id, record.image_id
        ))
    } else if loaded.labels.get(labels::IMAGE).map(String::as_str) != Some("jupyter-spark") {
        Some(format!(
            "it lacks the label {}=jupyter-spark",
            labels::IMAGE
        ))
    } else if image::versions_from_labels(&loaded.labels).as_ref() != Some(&record.versions) {
        Some("its version labels differ from the file's record".to_string())
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(Error::InvalidInput(format!(
            "{} loaded as {}, but {problem} — the file does not hold what its checksum entry says; save it again with `sparkbox image save FILE` where the image was built",
            file.display(),
            record.image
        ))),
    }
}

/// Checks `file` as a load would, before any engine is asked: a non-empty
/// file whose checksum record matches its whole payload and names a sparkbox
/// image. Returns the record.
pub async fn check_file(file: &Path, progress: &Progress) -> Result<ChecksumRecord> {
    let meta = std::fs::metadata(file).map_err(|e| unreadable(file, &e))?;
    if !meta.is_file() {
        return Err(Error::FileUnreadable {
            path: file.to_path_buf(),
            detail: "not a file — name a file made by `sparkbox image save`".into(),
        });
    }
    if meta.len() == 0 {
        return Err(Error::InvalidInput(format!(
            "{} is empty — nothing was loaded; copy the file again from the original",
            file.display()
        )));
    }
    // The whole file is checked before the engine sees a byte of it.
    progress.phase(&format!("checking the SHA-256 of {}", file.display()));
    let record = verify_file(file, meta.len(), progress).await?;
    if !record.image.starts_with(&format!("{IMAGE_REPOSITORY}:")) {
        return Err(Error::InvalidInput(format!(
            "{} holds {}, not a sparkbox image — nothing was loaded; use `docker load -i FILE` for other images",
            file.display(),
            record.image
        )));
    }
    Ok(record)
}

/// What [`load`] found and did.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The image was already there (same ID): nothing was sent.
    pub already_present: bool,
    /// The image the tag named before, when it was another one.
    pub replaced: Option<ImageInfo>,
}

/// Loads `file` (checked with [`check_file`], which gave `record`) into the
/// engine unless the same image is there already, and checks that the
/// loaded image is the one the record describes.
pub async fn load<E: Engine>(
    engine: &E,
    file: &Path,
    record: &ChecksumRecord,
    progress: &Progress,
) -> Result<Loaded> {
    let before = engine.image(&record.image).await?;
    let present = before.as_ref().is_some_and(|i| i.id == record.image_id);
    let mut messages = Vec::new();
    if !present {
        progress.phase(&format!("loading {}", record.image));
        messages = send_payload(engine, file, record.bytes, progress).await?;
        tracing::debug!(?messages, "the engine loaded the archive");
    }
    let loaded = engine
        .image(&record.image)
        .await?
        .ok_or_else(|| Error::Engine {
            action: format!("load {}", file.display()),
            detail: format!(
                "it reported {:?} but there is no image {} — run `sparkbox image load` again",
                messages.join("; "),
                record.image
            ),
        })?;
    check_loaded(file, record, &loaded)?;
    progress.finish();
    Ok(Loaded {
        already_present: present,
        replaced: if present { None } else { before },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_file_says_nothing_was_loaded_and_what_to_do() {
        let message = refuse(Path::new("x.tar"), &ArchiveProblem::NoChecksum).to_string();
        assert!(
            message.contains("nothing was loaded") && message.contains("docker load -i"),
            "{message}"
        );
    }

    #[test]
    fn partial_files_sit_next_to_the_file() {
        assert_eq!(
            partial_path(Path::new("/media/usb/img.tar")),
            PathBuf::from("/media/usb/img.tar.partial")
        );
        assert_eq!(partial_path(Path::new("img")), PathBuf::from("img.partial"));
        assert!(check_output_path(Path::new("/")).is_err());
        assert!(check_output_path(Path::new("/no/such/dir/img.tar")).is_err());
    }
}
