//! Diagnostics bundle (`sparkbox logs --bundle DIR`, `sparkbox up
//! --bundle-on-failure DIR`): what a CI job uploads as an artifact to
//! understand a cluster after the fact — every container's whole log and
//! inspect document, the `status --json` document, the version table, the
//! master's state, the engine, and a README.txt listing them.
//!
//! It is written for broken clusters: each piece is read on its own, with a
//! time limit, and a piece that cannot be read is skipped and named in
//! README.txt with the reason; only a directory that cannot be written stops it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use futures_util::StreamExt;
use serde::Serialize;
use tokio::io::AsyncWriteExt;

// The lead moves collect_status to ops::status; until then it is reached here.
use crate::engine::{ContainerState, Engine, SystemInfo};
use crate::error::{Error, Result};
use crate::model::labels::{self, Labelled};
use crate::model::spec::Role;
use crate::model::versions::{Versions, VERSION_KEYS};
use crate::ops::parity::{self, Measured, ParityReport, ParityRow};
use crate::ops::ready::image_versions;
use crate::ops::status::collect as collect_status;
use crate::plan::wait;
use crate::progress::Progress;

/// The file that lists the others; its first line marks a directory as a bundle.
pub const README: &str = "README.txt";
/// How README.txt begins, so a later bundle may replace this one.
const MARKER: &str = "sparkbox diagnostics bundle";
/// The longest one piece (an inspect, an in-container probe) may take.
const PIECE_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest one container's whole log may take to read.
const LOG_TIMEOUT: Duration = Duration::from_secs(300);

/// What DIR holds before a bundle is written into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// DIR does not exist: it is created.
    Missing,
    /// DIR is an empty directory.
    Empty,
    /// DIR holds an earlier sparkbox bundle: these files of it are replaced.
    Previous(Vec<PathBuf>),
}

/// True for the names a bundle's files have.
pub fn is_bundle_file(name: &str) -> bool {
    matches!(
        name,
        README | "status.json" | "versions.txt" | "master.json" | "engine.json"
    ) || name.ends_with(".log")
        || name.ends_with(".inspect.json")
}

/// Decides whether a bundle may be written into `dir`: a missing or empty
/// directory, or one holding only an earlier bundle. A file, or a directory
/// with anything else in it, is refused before anything is written.
pub fn check_dir(dir: &Path) -> Result<Target> {
    let shown = dir.display();
    let meta = match std::fs::metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Target::Missing),
        Err(e) => {
            return Err(Error::InvalidInput(format!(
                "cannot use {shown} for the diagnostics bundle: {e}"
            )))
        }
    };
    if !meta.is_dir() {
        return Err(Error::InvalidInput(format!(
            "{shown} is a file, not a directory — the diagnostics bundle needs a new or empty directory (nothing was written)"
        )));
    }
    let refuse = |why: &str| {
        Error::InvalidInput(format!(
            "{shown} {why} and was not made by sparkbox — pass a new or empty directory for the diagnostics bundle (nothing was written)"
        ))
    };
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::InvalidInput(format!(
            "cannot read {shown} for the diagnostics bundle: {e}"
        ))
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            Error::InvalidInput(format!(
                "cannot read {shown} for the diagnostics bundle: {e}"
            ))
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
        if !is_file || !is_bundle_file(&name) {
            return Err(refuse(&format!("is not empty (it holds {name})")));
        }
        files.push(entry.path());
    }
    if files.is_empty() {
        return Ok(Target::Empty);
    }
    let readme = std::fs::read_to_string(dir.join(README)).unwrap_or_default();
    if !is_bundle_readme(&readme) {
        return Err(refuse("is not empty"));
    }
    files.sort();
    Ok(Target::Previous(files))
}

/// True when `text` (a README.txt) is one a bundle wrote.
pub fn is_bundle_readme(text: &str) -> bool {
    text.lines().next().is_some_and(|l| l.starts_with(MARKER))
}

/// One file of the bundle, written or skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The file name inside the bundle.
    pub file: String,
    /// What it holds, or why it could not be written.
    pub about: String,
}

impl Entry {
    fn new(file: impl Into<String>, about: impl Into<String>) -> Entry {
        Entry {
            file: file.into(),
            about: about.into(),
        }
    }
}

/// What a bundle holds and what it had to leave out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The bundle's directory.
    pub dir: PathBuf,
    /// The first line of README.txt.
    pub title: String,
    /// Files written (README.txt last).
    pub written: Vec<Entry>,
    /// Files that could not be written, with the reason.
    pub skipped: Vec<Entry>,
}

fn entry_lines(entries: &[Entry], out: &mut String) {
    let width = entries.iter().map(|e| e.file.len()).max().unwrap_or(0);
    for e in entries {
        let _ = writeln!(out, "{:<width$}  {}", e.file, e.about);
    }
}

impl Summary {
    /// README.txt: the title, one line per file, then what was skipped and why.
    pub fn readme(&self) -> String {
        let mut out = format!("{}\n", self.title);
        entry_lines(&self.written, &mut out);
        if !self.skipped.is_empty() {
            out.push_str("not written (could not be read):\n");
            entry_lines(&self.skipped, &mut out);
        }
        out
    }

    /// What the command prints: where the bundle is and what it holds.
    pub fn report(&self) -> String {
        let mut out = format!(
            "wrote {} files to {}{}\n",
            self.written.len(),
            self.dir.display(),
            if self.skipped.is_empty() {
                String::new()
            } else {
                format!(" ({} skipped, see {README})", self.skipped.len())
            }
        );
        let indent =
            |text: String| -> String { text.lines().map(|l| format!("  {l}\n")).collect() };
        let mut files = String::new();
        entry_lines(&self.written, &mut files);
        out.push_str(&indent(files));
        if !self.skipped.is_empty() {
            out.push_str("skipped:\n");
            let mut skipped = String::new();
            entry_lines(&self.skipped, &mut skipped);
            out.push_str(&indent(skipped));
        }
        out
    }
}

/// `secs` since the Unix epoch as an RFC 3339 UTC time ("2024-05-01T12:00:00Z").
pub fn utc_timestamp(secs: u64) -> String {
    // Howard Hinnant's days-to-civil algorithm, to need no date crate.
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The version table of versions.txt: a verdict line, then every version key
/// with the image's value and each running container's, in the table `up`
/// and `status` print for differences (a differing value marked `(!)`), then
/// the containers that could not be measured.
pub fn versions_table(
    image: Option<&str>,
    reference: Option<&Versions>,
    measured: &[Measured],
    not_running: &[(String, String)],
) -> String {
    let unknown = Versions::default();
    let report = parity::compare(reference.unwrap_or(&unknown), measured);
    let readable: Vec<(&str, &Versions)> = measured
        .iter()
        .filter_map(|m| m.versions.as_ref().ok().map(|v| (m.container.as_str(), v)))
        .collect();
    let image = image.unwrap_or("the image");
    let mut out = if measured.is_empty() {
        "no running container to measure\n".to_string()
    } else if reference.is_none() {
        format!(
            "the versions {image} recorded could not be read: every measured value is marked (!)\n"
        )
    } else if report.ok {
        format!(
            "version parity ok: the {} running containers run exactly the versions of {image}\n",
            measured.len()
        )
    } else {
        let differing: Vec<&str> = readable
            .iter()
            .map(|(c, _)| *c)
            .filter(|c| !report.container_ok(c))
            .collect();
        let mut why = Vec::new();
        if !differing.is_empty() {
            why.push(format!("differing from {image}: {}", differing.join(", ")));
        }
        if !report.unreadable.is_empty() {
            let names: Vec<&str> = report.unreadable.iter().map(|(c, _)| c.as_str()).collect();
            why.push(format!("unreadable: {}", names.join(", ")));
        }
        format!("version parity FAILED — {}\n", why.join("; "))
    };
    // Every key, the fixed ones in their usual order, then the rest (extra
    // packages, an "error" a container reported) by name.
    let mut keys: Vec<String> = VERSION_KEYS.iter().map(|k| k.to_string()).collect();
    let mut others = std::collections::BTreeSet::new();
    for v in reference
        .into_iter()
        .chain(readable.iter().map(|(_, v)| *v))
    {
        others.extend(v.values.keys().chain(v.extra.keys()).cloned());
    }
    keys.extend(
        others
            .into_iter()
            .filter(|k| !VERSION_KEYS.contains(&k.as_str())),
    );
    let rows: Vec<ParityRow> = if readable.is_empty() {
        Vec::new()
    } else {
        keys.iter()
            .map(|key| ParityRow {
                key: key.clone(),
                expected: match reference {
                    Some(r) => r.get(key).unwrap_or("missing").to_string(),
                    None => "?".to_string(),
                },
                values: readable
                    .iter()
                    .map(|(c, v)| (c.to_string(), v.get(key).unwrap_or("missing").to_string()))
                    .collect(),
            })
            .collect()
    };
    out.push_str(&parity::render(&ParityReport {
        ok: report.ok,
        differences: rows,
        unreadable: report.unreadable.clone(),
        matching: Vec::new(),
    }));
    for (name, state) in not_running {
        let _ = writeln!(out, "  {name}: not running ({state}), not measured");
    }
    out
}

/// The engine, as engine.json holds it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EngineReport {
    /// Where it was reached.
    pub host: String,
    /// The server's version, e.g. "20.10.24".
    pub server_version: String,
    /// The API version both sides agreed on.
    pub api_version: String,
    /// What the engine tells about its machine.
    #[serde(flatten)]
    pub system: SystemInfo,
    /// Its memory in MiB.
    pub memory_mb: Option<i64>,
    /// What could not be read.
    pub errors: Vec<String>,
}

async fn engine_report<E: Engine>(engine: &E) -> EngineReport {
    let info = engine.info();
    let mut report = EngineReport {
        host: info.host.clone(),
        server_version: info.server_version.clone(),
        api_version: info.api_version.clone(),
        ..Default::default()
    };
    match tokio::time::timeout(PIECE_TIMEOUT, engine.system_info()).await {
        Ok(Ok(system)) => {
            report.memory_mb = system.memory_bytes.map(|b| b / (1024 * 1024));
            report.system = system;
        }
        Ok(Err(e)) => report.errors.push(format!("info: {e}")),
        Err(_) => report.errors.push("info: no answer in time".into()),
    }
    report
}

/// The outcome of one file.
type Piece = std::result::Result<Entry, Entry>;

fn pretty(value: &impl Serialize) -> std::result::Result<Vec<u8>, String> {
    serde_json::to_vec_pretty(value)
        .map(|mut v| {
            v.push(b'\n');
            v
        })
        .map_err(|e| format!("cannot render it: {e}"))
}

async fn write_file(dir: &Path, file: &str, bytes: &[u8], about: String) -> Piece {
    match tokio::fs::write(dir.join(file), bytes).await {
        Ok(()) => Ok(Entry::new(file, about)),
        Err(e) => Err(Entry::new(file, format!("cannot write it: {e}"))),
    }
}

/// Runs `work` with the piece time limit; its error, or the time running out, skips `file`.
async fn limited<T>(
    file: &str,
    work: impl std::future::Future<Output = std::result::Result<T, String>>,
) -> std::result::Result<T, Entry> {
    match tokio::time::timeout(PIECE_TIMEOUT, work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(why)) => Err(Entry::new(file, why)),
        Err(_) => Err(Entry::new(
            file,
            format!("no answer within {} s", PIECE_TIMEOUT.as_secs()),
        )),
    }
}

/// A container's whole log (stdout and stderr, each line with the engine's
/// timestamp), streamed into `<name>.log`.
async fn container_log<E: Engine>(engine: &E, dir: &Path, c: &ContainerState) -> Piece {
    let file = format!("{}.log", c.name);
    let mut out = match tokio::fs::File::create(dir.join(&file)).await {
        Ok(f) => tokio::io::BufWriter::new(f),
        Err(e) => return Err(Entry::new(file, format!("cannot write it: {e}"))),
    };
    let mut stream = engine.timestamped_log(&c.name);
    let mut bytes = 0usize;
    let read = tokio::time::timeout(LOG_TIMEOUT, async {
        while let Some(item) = stream.next().await {
            let message = item.map_err(|e| format!("reading the log failed: {e}"))?;
            bytes += message.len();
            out.write_all(&message)
                .await
                .map_err(|e| format!("cannot write it: {e}"))?;
        }
        Ok::<(), String>(())
    })
    .await
    .unwrap_or_else(|_| {
        Err(format!(
            "the log did not end within {} s",
            LOG_TIMEOUT.as_secs()
        ))
    });
    let flushed = out
        .flush()
        .await
        .map_err(|e| format!("cannot write it: {e}"));
    let about = format!(
        "the whole log of {} ({}), stdout and stderr, each line with its timestamp",
        c.name, c.state
    );
    match read.and(flushed) {
        Ok(()) => Ok(Entry::new(file, about)),
        // What was read stays: a part of a log is better than none.
        Err(why) if bytes > 0 => Ok(Entry::new(
            file,
            format!("{about} — incomplete, {bytes} bytes: {why}"),
        )),
        Err(why) => Err(Entry::new(file, why)),
    }
}

/// The engine's inspect document of a container, as `<name>.inspect.json`.
async fn container_inspect<E: Engine>(engine: &E, dir: &Path, c: &ContainerState) -> Piece {
    let file = format!("{}.inspect.json", c.name);
    let doc = limited(&file, async {
        let doc = engine
            .inspect_container(&c.name)
            .await
            .map_err(|e| e.to_string())?;
        pretty(&doc)
    })
    .await?;
    let about = format!("the engine's inspect document of {}", c.name);
    write_file(dir, &file, &doc, about).await
}

/// `status.json`: the `status --json` document, whatever the cluster's state.
async fn status_file<E: Engine>(engine: &E, dir: &Path, cluster: &str) -> Piece {
    let file = "status.json";
    let (doc, state) = limited(file, async {
        let report = collect_status(engine, cluster)
            .await
            .map_err(|e| e.to_string())?;
        Ok((pretty(&report)?, report.state))
    })
    .await?;
    let about = format!("the `sparkbox status --json` document (state: {state})");
    write_file(dir, file, &doc, about).await
}

/// `versions.txt`: every running container's measured versions against the image's.
async fn versions_file<E: Engine>(engine: &E, dir: &Path, containers: &[ContainerState]) -> Piece {
    let file = "versions.txt";
    let running: Vec<String> = containers
        .iter()
        .filter(|c| c.is_running())
        .map(|c| c.name.clone())
        .collect();
    let not_running: Vec<(String, String)> = containers
        .iter()
        .filter(|c| !c.is_running())
        .map(|c| (c.name.clone(), c.state.clone()))
        .collect();
    let image = containers
        .iter()
        .find_map(|c| Labelled(&c.labels).image_ref().map(str::to_string));
    let (reference, measured) = limited(file, async {
        let reference = match &image {
            Some(tag) => image_versions(engine, tag).await.ok(),
            None => None,
        };
        Ok((reference, parity::measure_all(engine, &running).await))
    })
    .await?;
    let text = versions_table(
        image.as_deref(),
        reference.as_ref(),
        &measured,
        &not_running,
    );
    let about = format!(
        "the version parity table: {} running containers' measured versions against the image's",
        running.len()
    );
    write_file(dir, file, text.as_bytes(), about).await
}

/// `master.json`: the master's /json/ document, asked inside its container.
async fn master_file<E: Engine>(engine: &E, dir: &Path, containers: &[ContainerState]) -> Piece {
    let file = "master.json";
    let role = |c: &&ContainerState| Labelled(&c.labels).role() == Some(Role::Master);
    let Some(master) = containers.iter().find(role) else {
        return Err(Entry::new(file, "the cluster has no master container"));
    };
    if !master.is_running() {
        return Err(Entry::new(
            file,
            format!("{} is not running ({})", master.name, master.state),
        ));
    }
    let doc = limited(file, async {
        let out = engine
            .exec(&master.name, &[wait::PROBE, "master"])
            .await
            .map_err(|e| e.to_string())?;
        if out.exit_code != 0 {
            return Err(format!(
                "the master did not answer (probe exited {}): {}",
                out.exit_code,
                out.stderr.trim()
            ));
        }
        let value: serde_json::Value = serde_json::from_str(out.stdout.trim()).map_err(|e| {
            let start: String = out.stdout.chars().take(200).collect();
            format!("the master's answer is not JSON ({e}): {start}")
        })?;
        pretty(&value)
    })
    .await?;
    let about = format!("the master's /json/ state, read inside {}", master.name);
    write_file(dir, file, &doc, about).await
}

/// Writes the diagnostics bundle of `cluster` into `dir` (checked with
/// [`check_dir`] first). Pieces that cannot be read are skipped and named in
/// README.txt; only a directory that cannot be written is an error.
pub async fn write<E: Engine>(engine: &E, cluster: &str, dir: &Path) -> Result<Summary> {
    let unwritable = |e: std::io::Error| {
        Error::Io(format!(
            "cannot write the diagnostics bundle into {}: {e}",
            dir.display()
        ))
    };
    match check_dir(dir)? {
        Target::Missing => std::fs::create_dir_all(dir).map_err(unwritable)?,
        Target::Empty => {}
        Target::Previous(files) => {
            for file in files {
                std::fs::remove_file(file).map_err(unwritable)?;
            }
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut summary = Summary {
        dir: dir.to_path_buf(),
        title: format!(
            "{MARKER} of cluster {cluster}, written {} by sparkbox {} (engine {})",
            utc_timestamp(now),
            env!("CARGO_PKG_VERSION"),
            engine.info().host
        ),
        written: Vec::new(),
        skipped: Vec::new(),
    };
    // README.txt first, so a bundle cut short is still known as sparkbox's.
    std::fs::write(dir.join(README), summary.readme()).map_err(unwritable)?;

    let mut pieces: Vec<Piece> = Vec::new();
    let containers = match engine.containers(&[(labels::CLUSTER, cluster)]).await {
        Ok(list) if list.is_empty() => {
            pieces.push(Err(Entry::new(
                "<container>.log",
                format!("cluster {cluster} has no containers"),
            )));
            list
        }
        Ok(mut list) => {
            list.sort_by(|a, b| a.name.cmp(&b.name));
            list
        }
        Err(e) => {
            pieces.push(Err(Entry::new(
                "<container>.log",
                format!("the containers could not be listed: {e}"),
            )));
            Vec::new()
        }
    };
    let per_container = join_all(containers.iter().map(|c| async move {
        let (log, inspect) = tokio::join!(
            container_log(engine, dir, c),
            container_inspect(engine, dir, c)
        );
        [log, inspect]
    }));
    let (per_container, status, versions, master, engine_doc) = tokio::join!(
        per_container,
        status_file(engine, dir, cluster),
        versions_file(engine, dir, &containers),
        master_file(engine, dir, &containers),
        async {
            let report = engine_report(engine).await;
            let about = if report.errors.is_empty() {
                "the Docker engine: version, API version, CPUs, memory".to_string()
            } else {
                format!("the Docker engine, in part: {}", report.errors.join("; "))
            };
            match pretty(&report) {
                Ok(doc) => write_file(dir, "engine.json", &doc, about).await,
                Err(why) => Err(Entry::new("engine.json", why)),
            }
        }
    );
    pieces.extend(per_container.into_iter().flatten());
    pieces.extend([status, versions, master, engine_doc]);
    for piece in pieces {
        match piece {
            Ok(entry) => summary.written.push(entry),
            Err(entry) => summary.skipped.push(entry),
        }
    }
    summary
        .written
        .push(Entry::new(README, "this list: one line per file"));
    std::fs::write(dir.join(README), summary.readme()).map_err(unwritable)?;
    Ok(summary)
}

/// After `up` failed on the engine: writes the bundle into `dir` and says on
/// stderr where it is. It never replaces `up`'s own error, which follows.
pub async fn after_failure<E: Engine>(engine: &E, cluster: &str, dir: &Path, progress: &Progress) {
    progress.phase(&format!(
        "writing a diagnostics bundle to {}",
        dir.display()
    ));
    let written = write(engine, cluster, dir).await;
    progress.finish();
    match written {
        Ok(summary) => eprint!(
            "`up` failed; the diagnostics bundle of cluster {cluster}: {}",
            summary.report()
        ),
        Err(e) => eprintln!("`up` failed, and its diagnostics bundle could not be written: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir() -> tempfile::TempDir {
        tempfile::tempdir().expect("a temporary directory")
    }

    #[test]
    fn a_missing_or_empty_directory_is_accepted() {
        let dir = tempdir();
        assert_eq!(
            check_dir(&dir.path().join("new")).ok(),
            Some(Target::Missing)
        );
        assert_eq!(check_dir(dir.path()).ok(), Some(Target::Empty));
    }

    #[test]
    fn a_file_or_a_foreign_directory_is_refused_untouched() {
        let dir = tempdir();
        let file = dir.path().join("notes.txt");
        std::fs::write(&file, "mine").expect("write");
        let err = check_dir(&file).expect_err("a file is refused");
        assert_eq!(err.exit_code(), 4);
        assert!(err.to_string().contains("is a file"), "{err}");
        let err = check_dir(dir.path()).expect_err("a foreign directory is refused");
        assert!(err.to_string().contains("not made by sparkbox"), "{err}");
        assert!(err.to_string().contains("notes.txt"), "{err}");
        // A bundle-like name without sparkbox's README is not sparkbox's either.
        let other = tempdir();
        std::fs::write(other.path().join("app.log"), "x").expect("write");
        assert!(check_dir(other.path()).is_err());
        std::fs::write(other.path().join(README), "my own notes\n").expect("write");
        assert!(check_dir(other.path()).is_err());
        assert_eq!(std::fs::read_to_string(&file).ok().as_deref(), Some("mine"));
    }

    #[test]
    fn an_earlier_bundle_is_replaced_but_not_with_extra_files() {
        let dir = tempdir();
        let summary = Summary {
            dir: dir.path().to_path_buf(),
            title: format!("{MARKER} of cluster demo"),
            written: vec![],
            skipped: vec![],
        };
        std::fs::write(dir.path().join(README), summary.readme()).expect("write");
        std::fs::write(dir.path().join("demo-master.log"), "x").expect("write");
        match check_dir(dir.path()) {
            Ok(Target::Previous(files)) => assert_eq!(files.len(), 2),
            other => panic!("{other:?}"),
        }
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        assert!(check_dir(dir.path()).is_err());
    }

    #[test]
    fn readme_has_one_line_per_file_and_the_skipped_ones() {
        let summary = Summary {
            dir: PathBuf::from("/tmp/b"),
            title: format!("{MARKER} of cluster demo, written 2024-01-01T00:00:00Z"),
            written: vec![
                Entry::new("demo-master.log", "the whole log of demo-master"),
                Entry::new("status.json", "the status document"),
                Entry::new(README, "this list: one line per file"),
            ],
            skipped: vec![Entry::new(
                "master.json",
                "demo-master is not running (exited)",
            )],
        };
        let text = summary.readme();
        insta::assert_snapshot!(text, @r"
        sparkbox diagnostics bundle of cluster demo, written 2024-01-01T00:00:00Z
        demo-master.log  the whole log of demo-master
        status.json      the status document
        README.txt       this list: one line per file
        not written (could not be read):
        master.json  demo-master is not running (exited)
        ");
        assert!(is_bundle_readme(&text));
        assert!(summary
            .report()
            .starts_with("wrote 3 files to /tmp/b (1 skipped"));
    }

    #[test]
    fn bundle_file_names() {
        for name in [
            "README.txt",
            "demo-worker-1.log",
            "demo-master.inspect.json",
            "engine.json",
        ] {
            assert!(is_bundle_file(name), "{name}");
        }
        for name in ["notes.txt", "data.csv", "status.json.bak"] {
            assert!(!is_bundle_file(name), "{name}");
        }
    }

    #[test]
    fn swarm_times_read_back_as_the_seconds_they_were() {
        for secs in [0u64, 951_782_400, 1_764_669_662, 4_102_444_799] {
            let text = utc_timestamp(secs);
            assert_eq!(
                crate::engine::swarm::unix_seconds(&text),
                Some(secs as i64),
                "{text}"
            );
        }
        assert_eq!(
            crate::engine::swarm::unix_seconds("2026-12-02T10:01:02.123456789Z"),
            Some(1_796_205_662)
        );
    }

    #[test]
    fn timestamps_are_utc_rfc3339() {
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_timestamp(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_timestamp(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(utc_timestamp(1_709_251_199), "2024-02-29T23:59:59Z");
    }

    fn versions(pairs: &[(&str, &str)]) -> Versions {
        let mut v = Versions::default();
        for (k, val) in pairs {
            v.values.insert(k.to_string(), val.to_string());
        }
        v
    }

    #[test]
    fn the_versions_table_names_every_running_container() {
        let image = versions(&[("spark", "4.3.0"), ("py4j", "0.10.9.9")]);
        let measured = vec![
            Measured {
                container: "demo-master".into(),
                versions: Ok(image.clone()),
            },
            Measured {
                container: "demo-jupyter".into(),
                versions: Ok(versions(&[("spark", "4.3.0"), ("py4j", "0.10.9.7")])),
            },
            Measured {
                container: "demo-worker-2".into(),
                versions: Err("exec failed".into()),
            },
        ];
        let stopped = vec![("demo-worker-1".to_string(), "exited".to_string())];
        let text = versions_table(Some("img:1"), Some(&image), &measured, &stopped);
        insta::assert_snapshot!(text, @r"
        version parity FAILED — differing from img:1: demo-jupyter; unreadable: demo-worker-2
          version     image     demo-master  demo-jupyter
          spark       4.3.0     4.3.0        4.3.0
          hadoop      missing   missing      missing
          scala       missing   missing      missing
          py4j        0.10.9.9  0.10.9.9     0.10.9.7 (!)
          pyspark     missing   missing      missing
          python      missing   missing      missing
          java        missing   missing      missing
          jupyterlab  missing   missing      missing
          numpy       missing   missing      missing
          pandas      missing   missing      missing
          pyarrow     missing   missing      missing
          demo-worker-2: versions unreadable: exec failed
          demo-worker-1: not running (exited), not measured
        ");
        let ok = versions_table(Some("img:1"), Some(&image), &measured[..1], &[]);
        assert!(
            ok.starts_with("version parity ok: the 1 running containers"),
            "{ok}"
        );
        assert!(ok.contains("demo-master"), "{ok}");
        let none = versions_table(None, None, &[], &stopped);
        assert!(
            none.starts_with("no running container to measure\n"),
            "{none}"
        );
        assert!(
            none.contains("demo-worker-1: not running (exited)"),
            "{none}"
        );
    }
}
