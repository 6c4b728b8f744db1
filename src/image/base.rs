//! The base image: used when present, pulled when a registry answers, and
//! otherwise made offline with debootstrap from the host's own Debian mirror.

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

use crate::engine::{ByteStream, Engine};
use crate::error::{Error, Result};
use crate::model::labels;
use crate::progress::Progress;

/// The default base image: Debian bookworm, slim.
use crate::model::recipe::DEFAULT_BASE_IMAGE;

/// The Debian release the offline path makes.
const SUITE: &str = "bookworm";

/// sparkbox can make a base offline only when the reference asks for Debian
/// bookworm (its repository's last part is "debian", its tag starts with it).
pub fn can_make_offline(reference: &str) -> bool {
    let (repo, tag) = crate::engine::split_reference(reference);
    let name = repo.rsplit('/').next().unwrap_or(repo);
    name == "debian" && tag.starts_with(SUITE)
}

/// Finds the Debian mirror in apt configuration texts: deb822 `.sources`
/// files first, then one-line `sources.list` entries; security and updates
/// archives are passed over.
pub fn mirror_from_apt_config(deb822: &[String], one_line: &[String]) -> Option<String> {
    for text in deb822 {
        for stanza in text.split("\n\n") {
            let field = |name: &str| {
                stanza.lines().find_map(|l| {
                    let l = l.trim();
                    l.strip_prefix(name)
                        .and_then(|rest| rest.strip_prefix(':'))
                        .map(|v| v.trim().to_string())
                })
            };
            let enabled = field("Enabled").is_none_or(|v| v != "no");
            let types = field("Types").unwrap_or_default();
            let suites = field("Suites").unwrap_or_default();
            if !enabled || !types.split_whitespace().any(|t| t == "deb") {
                continue;
            }
            if !suites.split_whitespace().any(|s| s == SUITE) {
                continue;
            }
            if let Some(uris) = field("URIs") {
                if let Some(uri) = uris.split_whitespace().find(|u| usable_uri(u)) {
                    return Some(uri.trim_end_matches('/').to_string());
                }
            }
        }
    }
    for text in one_line {
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            let mut words = line.split_whitespace();
            if words.next() != Some("deb") {
                continue;
            }
            // Skip an options block like "[arch=amd64 signed-by=…]".
            let mut rest: Vec<&str> = words.collect();
            if rest.first().is_some_and(|w| w.starts_with('[')) {
                while let Some(w) = rest.first().copied() {
                    rest.remove(0);
                    if w.ends_with(']') {
                        break;
                    }
                }
            }
            if let [uri, suite, ..] = rest.as_slice() {
                if *suite == SUITE && usable_uri(uri) {
                    return Some(uri.trim_end_matches('/').to_string());
                }
            }
        }
    }
    None
}

fn usable_uri(uri: &str) -> bool {
    (uri.starts_with("http://") || uri.starts_with("https://") || uri.starts_with("file:/"))
        && !uri.trim_end_matches('/').ends_with("-security")
}

/// Reads the host's apt configuration and returns its Debian mirror.
pub fn host_debian_mirror() -> Option<String> {
    let read_dir = |dir: &str, ext: &str| -> Vec<String> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        paths.sort();
        paths
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect()
    };
    let deb822 = read_dir("/etc/apt/sources.list.d", "sources");
    let mut one_line: Vec<String> = std::fs::read_to_string("/etc/apt/sources.list")
        .into_iter()
        .collect();
    one_line.extend(read_dir("/etc/apt/sources.list.d", "list"));
    mirror_from_apt_config(&deb822, &one_line)
}

/// Makes sure `reference` exists on the engine: present, pulled, or made offline.
pub async fn ensure_base_image<E: Engine>(
    engine: &E,
    reference: &str,
    mirror: Option<&str>,
    progress: &Progress,
) -> Result<()> {
    if engine.image(reference).await?.is_some() {
        tracing::debug!("base image {reference} is present");
        return Ok(());
    }
    progress.phase(&format!("pulling the base image {reference}"));
    let pull_error = match engine.pull(reference).await {
        Ok(()) => return Ok(()),
        Err(e) => e.to_string(),
    };
    progress.note(&format!(
        "the base image {reference} could not be pulled; making it offline"
    ));
    if !can_make_offline(reference) {
        return Err(Error::BaseImageUnavailable {
            image: reference.to_string(),
            pull_error,
            offline_error: format!(
                "sparkbox makes only Debian {SUITE} bases offline (e.g. {DEFAULT_BASE_IMAGE})"
            ),
        });
    }
    make_offline(engine, reference, mirror, progress)
        .await
        .map_err(|e| match e {
            Error::DiskFull { .. } => e,
            other => Error::BaseImageUnavailable {
                image: reference.to_string(),
                pull_error,
                offline_error: other.to_string(),
            },
        })
}

/// debootstrap a minimal Debian into a temporary directory and import it.
async fn make_offline<E: Engine>(
    engine: &E,
    reference: &str,
    mirror: Option<&str>,
    progress: &Progress,
) -> Result<()> {
    let mirror = match mirror {
        Some(m) => m.trim_end_matches('/').to_string(),
        None => host_debian_mirror().ok_or_else(|| {
            Error::InvalidInput(
                "no Debian mirror found in /etc/apt (sources.list or sources.list.d) — pass --debian-mirror URL"
                    .into(),
            )
        })?,
    };
    let dir = std::env::temp_dir().join(format!("sparkbox-rootfs-{}", labels::random_suffix()));
    progress.phase(&format!(
        "making {reference} with debootstrap ({SUITE}, minbase) from {mirror}"
    ));
    let result = debootstrap_and_import(engine, reference, &mirror, &dir, progress).await;
    remove_rootfs(&dir).await;
    result
}

/// Whether debootstrap is on PATH (where making a base runs it from).
pub fn debootstrap_installed() -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join("debootstrap").is_file())
    })
}

async fn debootstrap_and_import<E: Engine>(
    engine: &E,
    reference: &str,
    mirror: &str,
    dir: &Path,
    progress: &Progress,
) -> Result<()> {
    let mut child = Command::new("debootstrap")
        .arg("--variant=minbase")
        .arg(SUITE)
        .arg(dir)
        .arg(mirror)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::InvalidInput(
                    "debootstrap is not installed (apt-get install -y debootstrap)".into(),
                )
            } else {
                Error::Io(format!("cannot start debootstrap: {e}"))
            }
        })?;
    let mut tail: Vec<String> = Vec::new();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let mut lines = futures_util::stream::select(
        line_stream(stdout.map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>)),
        line_stream(stderr.map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>)),
    );
    while let Some(line) = lines.next().await {
        progress.detail(&line);
        tail.push(line);
        if tail.len() > 15 {
            tail.remove(0);
        }
    }
    let status = child
        .wait()
        .await
        .map_err(|e| Error::Io(format!("debootstrap did not finish: {e}")))?;
    if !status.success() {
        let text = tail.join("\n");
        if crate::error::is_disk_full(&text) {
            return Err(Error::DiskFull {
                during: "making the base image".into(),
            });
        }
        return Err(Error::Io(format!("debootstrap failed ({status}):\n{text}")));
    }
    progress.phase(&format!("importing {reference} into the engine"));
    let mut tar = Command::new("tar")
        .arg("--numeric-owner")
        .arg("-C")
        .arg(dir)
        .args(["-cf", "-", "."])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::Io(format!("cannot start tar: {e}")))?;
    let stdout = tar
        .stdout
        .take()
        .ok_or_else(|| Error::Io("tar has no output".into()))?;
    let changes = vec![
        format!("LABEL {}=base", labels::IMAGE),
        "CMD [\"bash\"]".to_string(),
    ];
    engine
        .import_rootfs(chunk_stream(stdout), reference, changes)
        .await?;
    let status = tar
        .wait()
        .await
        .map_err(|e| Error::Io(format!("tar did not finish: {e}")))?;
    if !status.success() {
        engine.remove_image(reference).await.ok();
        return Err(Error::Io(format!(
            "tar of the root filesystem failed ({status})"
        )));
    }
    Ok(())
}

fn line_stream(
    reader: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>,
) -> futures_util::stream::BoxStream<'static, String> {
    match reader {
        None => futures_util::stream::empty().boxed(),
        Some(r) => futures_util::stream::unfold(BufReader::new(r).lines(), |mut lines| async {
            match lines.next_line().await {
                Ok(Some(line)) => Some((line, lines)),
                _ => None,
            }
        })
        .boxed(),
    }
}

/// Turns a reader into a stream of 256 KiB chunks for a request body.
pub fn chunk_stream<R: tokio::io::AsyncRead + Unpin + Send + 'static>(reader: R) -> ByteStream {
    futures_util::stream::unfold(reader, |mut r| async move {
        let mut buf = vec![0u8; 256 * 1024];
        match r.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), r))
            }
            Err(e) => Some((Err(e), r)),
        }
    })
    .boxed()
}

/// Removes a debootstrap directory, first unmounting anything left mounted
/// inside it (an interrupted debootstrap can leave /proc mounted there).
async fn remove_rootfs(dir: &Path) {
    if !dir.exists() {
        return;
    }
    let prefix = dir.to_string_lossy().to_string();
    if let Ok(mounts) = std::fs::read_to_string("/proc/mounts") {
        let mut inside: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| m.starts_with(&prefix))
            .collect();
        inside.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for mount in &inside {
            let _ = Command::new("umount").arg("-l").arg(mount).status().await;
        }
        let still_mounted = std::fs::read_to_string("/proc/mounts")
            .map(|m| m.lines().any(|l| l.contains(&prefix)))
            .unwrap_or(true);
        if still_mounted {
            tracing::warn!(
                "leaving {} in place: something is still mounted inside it",
                dir.display()
            );
            return;
        }
    }
    if let Err(e) = tokio::fs::remove_dir_all(dir).await {
        tracing::warn!("could not remove {}: {e}", dir.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_only_for_debian_bookworm() {
        assert!(can_make_offline("debian:bookworm-slim"));
        assert!(can_make_offline("debian:bookworm"));
        assert!(can_make_offline(
            "mirror.local:5000/lib/debian:bookworm-20250101"
        ));
        assert!(!can_make_offline("ubuntu:22.04"));
        assert!(!can_make_offline("debian:trixie"));
        assert!(!can_make_offline("debian"));
    }

    #[test]
    fn mirror_from_deb822_skips_security_and_disabled() {
        let deb822 = vec![
            "Types: deb\nURIs: http://mirror.invalid/debian-security\nSuites: bookworm-security\nComponents: main\n\n\
             Types: deb\nURIs: http://off.invalid/debian\nSuites: bookworm\nEnabled: no\n\n\
             Types: deb deb-src\n# a comment\nURIs: http://mirror.invalid/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n"
                .to_string(),
        ];
        assert_eq!(
            mirror_from_apt_config(&deb822, &[]).as_deref(),
            Some("http://mirror.invalid/debian")
        );
    }

    #[test]
    fn mirror_from_sources_list_with_options() {
        let list = vec![
            "# comment\ndeb http://mirror.invalid/debian-security bookworm-security main\n\
             deb [arch=amd64 signed-by=/k.gpg] http://mirror.invalid/debian bookworm main\n"
                .to_string(),
        ];
        assert_eq!(
            mirror_from_apt_config(&[], &list).as_deref(),
            Some("http://mirror.invalid/debian")
        );
        assert_eq!(
            mirror_from_apt_config(&[], &["deb http://x.invalid/ubuntu jammy main".into()]),
            None
        );
    }
}
