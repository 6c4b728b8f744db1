//! One command at a time changes a cluster: `up`, `down`, `scale`, `start`
//! and `stop` hold an advisory lock on a file named after the engine and the
//! cluster. The lock dies with the process (even on kill -9), so a crashed
//! or interrupted command never leaves a cluster locked.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::progress::Progress;

/// How long `down`, `stop`, `start` and `scale` wait for another command's lock.
pub const LOCK_WAIT: Duration = Duration::from_secs(180);

/// A held cluster lock; released when dropped.
#[derive(Debug)]
pub struct ClusterLock {
    _file: File,
    /// The lock file.
    pub path: PathBuf,
}

/// Where lock files live: ~/.cache/sparkbox/locks, else the temp directory.
pub fn lock_dir() -> PathBuf {
    match std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
    {
        Some(cache) => cache.join("sparkbox").join("locks"),
        None => std::env::temp_dir().join("sparkbox-locks"),
    }
}

/// The lock file of `cluster` on the engine at `engine_host`.
pub fn lock_path(engine_host: &str, cluster: &str) -> PathBuf {
    let digest = Sha256::digest(engine_host.as_bytes());
    let short: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    lock_dir().join(format!("{cluster}-{short}.lock"))
}

/// Takes the lock of `cluster` on the engine at `engine_host` for
/// `command`, waiting up to `wait` for another sparkbox command that holds
/// it (and saying so once).
pub async fn acquire(
    engine_host: &str,
    cluster: &str,
    command: &str,
    wait: Duration,
    progress: &Progress,
) -> Result<ClusterLock> {
    let path = lock_path(engine_host, cluster);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::Io(format!(
                "cannot create the lock directory {}: {e} — make it writable or set XDG_CACHE_HOME",
                dir.display()
            ))
        })?;
    }
    let open = || {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| {
                Error::Io(format!(
                    "cannot open the lock file {}: {e} — check its permissions",
                    path.display()
                ))
            })
    };
    let mut file = open()?;
    let deadline = Instant::now() + wait;
    let mut told = false;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {
                let holder = holder(&mut file);
                if !told {
                    progress.note(&format!(
                        "another sparkbox command ({holder}) is changing cluster {cluster}; waiting for it to finish (Ctrl-C to stop waiting)"
                    ));
                    told = true;
                }
                if Instant::now() >= deadline {
                    return Err(Error::NotReady(format!(
                        "cluster {cluster} is still being changed by another sparkbox command ({holder}) after {}s — wait for it, or stop it, then run the command again",
                        wait.as_secs()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(TryLockError::Error(e)) => {
                // A filesystem without locks: go on unlocked rather than refuse.
                tracing::warn!(
                    "cannot lock {}: {e}; going on without a lock",
                    path.display()
                );
                break;
            }
        }
    }
    // Who holds it, for the next one's message.
    let _ = file.set_len(0);
    let _ = file.seek(SeekFrom::Start(0));
    let _ = write!(file, "sparkbox {command}, pid {}", std::process::id());
    let _ = file.flush();
    Ok(ClusterLock { _file: file, path })
}

fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.read_to_string(&mut text);
    let text = text.trim();
    if text.is_empty() {
        "pid unknown".to_string()
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_files_are_per_engine_and_cluster() {
        let a = lock_path("unix:///var/run/docker.sock", "sparkbox");
        let b = lock_path("tcp://10.0.0.2:2375", "sparkbox");
        let c = lock_path("unix:///var/run/docker.sock", "other");
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert!(a.to_string_lossy().contains("sparkbox-"));
    }

    #[test]
    fn a_second_holder_waits_then_gets_the_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::env::set_var("XDG_CACHE_HOME", dir.path());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let progress = Progress::new(crate::progress::ProgressMode::Quiet, false);
        rt.block_on(async {
            let first = acquire(
                "unix:///test.sock",
                "locktest",
                "up",
                Duration::from_secs(1),
                &progress,
            )
            .await
            .expect("first");
            let refused = acquire(
                "unix:///test.sock",
                "locktest",
                "up",
                Duration::from_millis(300),
                &progress,
            )
            .await;
            let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(message.contains("sparkbox up, pid"), "{message}");
            drop(first);
            acquire(
                "unix:///test.sock",
                "locktest",
                "down",
                Duration::from_millis(300),
                &progress,
            )
            .await
            .expect("free again");
        });
    }
}
