//! A command in one of a cluster's containers with this terminal (or these
//! pipes) attached, its exit code passed through as sparkbox's own: what
//! `sparkbox exec`, `shell` and `submit` do — finding the container by its
//! role word, the TTY session, and submit's copy, run and clean-up.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::engine::{ContainerState, Engine, ExecChunk, ExecRequest, ExecSession, RunOutput};
use crate::error::{Error, Result};
use crate::model::spec::{Names, Role};
use crate::model::{contract, labels};
use crate::plan::observe::Observed;
use crate::progress::Progress;

/// Where `submit` puts the files it copies, inside the Jupyter container.
const SUBMIT_PARENT: &str = "/tmp";
/// The directory under [`SUBMIT_PARENT`] holding one directory per submit.
const SUBMIT_DIR: &str = "sparkbox-submit";
/// The image's user (spark), who owns what `submit` copies unless the
/// cluster gave `spark` the host user's uid (the host-user label).
const SPARK_UID: u64 = 1000;
/// How long a stopped `submit` waits for spark-submit to end before leaving.
const STOP_PATIENCE: Duration = Duration::from_secs(20);

/// What a TARGET of `exec` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The master or the Jupyter container.
    Role(Role),
    /// Worker number n (1-based).
    Worker(u32),
    /// A container name.
    Name(String),
}

impl Target {
    /// Parses master | jupyter | history | connect | worker (the first) | worker-N | a container name.
    pub fn parse(text: &str) -> Target {
        match text {
            "master" => Target::Role(Role::Master),
            "jupyter" => Target::Role(Role::Jupyter),
            "history" => Target::Role(Role::History),
            "connect" => Target::Role(Role::Connect),
            "worker" => Target::Worker(1),
            _ => match text.strip_prefix("worker-").map(str::parse::<u32>) {
                Some(Ok(n)) if n > 0 => Target::Worker(n),
                _ => Target::Name(text.to_string()),
            },
        }
    }
}

/// Finds the running container `target` names among a cluster's containers,
/// or says in one line why there is none and what to do.
pub fn resolve_target<'a>(
    cluster: &str,
    target: &str,
    observed: &'a Observed,
) -> Result<&'a ContainerState> {
    if observed.containers.is_empty() {
        return Err(Error::NotReady(format!(
            "cluster {cluster} does not exist (it has no containers) — create it with `sparkbox up -n {cluster}`"
        )));
    }
    let found = match Target::parse(target) {
        Target::Role(role) => match role {
            Role::Jupyter => observed.jupyter(),
            _ => observed.with_role(role).next(),
        }
        .ok_or_else(|| {
            Error::NotReady(format!(
                "cluster {cluster} has no {} container — `sparkbox up -n {cluster}` restores it",
                role.as_str()
            ))
        })?,
        Target::Worker(n) => {
            let workers = observed.workers();
            match workers.get(&n) {
                Some(c) => *c,
                None => {
                    let list = if workers.is_empty() {
                        "it has none".to_string()
                    } else {
                        let numbers: Vec<String> = workers.keys().map(u32::to_string).collect();
                        format!("workers: {}", numbers.join(", "))
                    };
                    return Err(Error::InvalidInput(format!(
                        "cluster {cluster} has no worker-{n} ({list}) — name one of those, or add workers with `sparkbox scale -n {cluster} --workers {n}`"
                    )));
                }
            }
        }
        // A full container name, or one without the cluster's prefix
        // ("jupyter-2" for a student's Jupyter).
        Target::Name(name) => match observed
            .containers
            .iter()
            .find(|c| c.name == name || c.name == format!("{cluster}-{name}"))
        {
            Some(c) => c,
            None => {
                let mut names: Vec<&str> = observed
                    .containers
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect();
                names.sort_unstable();
                return Err(Error::InvalidInput(format!(
                    "cluster {cluster} has no container {name:?} — give master, jupyter, worker, worker-N or one of: {}",
                    names.join(", ")
                )));
            }
        },
    };
    if !found.is_running() {
        let state = if found.state.is_empty() {
            "not running"
        } else {
            found.state.as_str()
        };
        return Err(Error::NotReady(format!(
            "{} of cluster {cluster} is {state}, not running — `sparkbox start -n {cluster}` (or `sparkbox up -n {cluster}`) brings it back",
            found.name
        )));
    }
    Ok(found)
}

/// Reads the cluster's containers and finds the running one `target` names.
pub async fn find_container<E: Engine>(
    engine: &E,
    cluster: &str,
    target: &str,
) -> Result<ContainerState> {
    let observed = Observed {
        containers: engine.containers(&[(labels::CLUSTER, cluster)]).await?,
        ..Default::default()
    };
    resolve_target(cluster, target, &observed).cloned()
}

/// The uid and gid of `spark` in a container, from its host-user label: a
/// root host user is not copied (bin/as-spark).
fn spark_owner(container: &ContainerState) -> (u64, u64) {
    labels::Labelled(&container.labels)
        .host_user()
        .filter(|(u, _)| *u != 0)
        .map(|(u, g)| (u64::from(u), u64::from(g)))
        .unwrap_or((SPARK_UID, SPARK_UID))
}

/// `request` as it is sent to `container`: a session as `spark` on a
/// cluster whose host user is root starts as root and goes through the
/// image's as-spark, which gives it what the services have — `spark`'s uid
/// and the one capability that reads and writes the root-owned data
/// directory — since the engine cannot give a non-root exec a capability.
pub fn as_spark(container: &ContainerState, mut request: ExecRequest) -> ExecRequest {
    let root_host = labels::Labelled(&container.labels)
        .host_user()
        .is_some_and(|(u, _)| u == 0);
    if root_host && request.user.as_deref() == Some(contract::IMAGE_USER) {
        request.user = Some("root".to_string());
        request.command.insert(0, contract::AS_SPARK.to_string());
    }
    request
}

/// Runs `request` in `container` with this process's terminal or pipes
/// attached, and passes its exit code on as an error when it is not 0.
pub async fn run_attached<E: Engine>(
    engine: &E,
    container: &ContainerState,
    request: ExecRequest,
) -> Result<()> {
    let request = as_spark(container, request);
    let finish = attach(engine, &container.name, &request, None).await?;
    finish.into_result(&container.name)
}

/// A file the user named, read into memory for copying.
#[derive(Debug, Clone)]
pub struct LocalFile {
    /// Its file name, which it keeps in the container.
    pub name: String,
    /// Its content.
    pub data: Vec<u8>,
}

/// Reads the file at `path` (`what` names it in errors: "the application").
pub fn read_local_file(path: &Path, what: &str) -> Result<LocalFile> {
    let unreadable = |detail: String| Error::FileUnreadable {
        path: path.to_path_buf(),
        detail,
    };
    let meta = std::fs::metadata(path)
        .map_err(|e| unreadable(format!("{e} — {what} must be a file on this machine")))?;
    if !meta.is_file() {
        return Err(unreadable(format!(
            "it is not a file — {what} must be a file on this machine"
        )));
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.contains(','))
        .ok_or_else(|| {
            Error::InvalidInput(format!(
                "{} has a file name spark-submit cannot take (it must be UTF-8 without ',') — rename it",
                path.display()
            ))
        })?
        .to_string();
    let data = std::fs::read(path)
        .map_err(|e| unreadable(format!("{e} — {what} must be a readable file")))?;
    Ok(LocalFile { name, data })
}

/// Checks the `--conf` values: each a `key=value` with a non-empty key.
pub fn check_confs(confs: &[String]) -> Result<()> {
    for conf in confs {
        match conf.split_once('=') {
            Some((key, _)) if !key.trim().is_empty() && !key.contains(char::is_whitespace) => {}
            _ => {
                return Err(Error::InvalidInput(format!(
                    "--conf {conf:?} is not a Spark setting — write it as key=value, e.g. --conf spark.executor.memory=1g"
                )))
            }
        }
    }
    Ok(())
}

/// The tar `submit` uploads into [`SUBMIT_PARENT`]: `sparkbox-submit/<unique>/`
/// with the files, all owned by the image's user (spark).
fn submit_tar(unique: &str, files: &[&LocalFile], owner: (u64, u64)) -> Result<Vec<u8>> {
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(owner.0);
        h.set_gid(owner.1);
        h.set_size(size);
        h.set_mtime(mtime);
        h
    };
    let broken = |e: std::io::Error| Error::Io(format!("cannot pack the files to copy: {e}"));
    let mut builder = tar::Builder::new(Vec::new());
    for dir in [format!("{SUBMIT_DIR}/"), format!("{SUBMIT_DIR}/{unique}/")] {
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        builder
            .append_data(&mut h, dir, std::io::empty())
            .map_err(broken)?;
    }
    for file in files {
        let mut h = header(tar::EntryType::Regular, 0o644, file.data.len() as u64);
        builder
            .append_data(
                &mut h,
                format!("{SUBMIT_DIR}/{unique}/{}", file.name),
                file.data.as_slice(),
            )
            .map_err(broken)?;
    }
    builder.into_inner().map_err(broken)
}

/// The spark-submit command line for an application copied into `dir`.
pub fn spark_submit_command(
    master_url: &str,
    dir: &str,
    app: &str,
    py_files: &[String],
    confs: &[String],
    args: &[String],
) -> Vec<String> {
    let mut command = vec![
        "spark-submit".to_string(),
        "--master".to_string(),
        master_url.to_string(),
    ];
    if !py_files.is_empty() {
        let paths: Vec<String> = py_files.iter().map(|f| format!("{dir}/{f}")).collect();
        command.push("--py-files".to_string());
        command.push(paths.join(","));
    }
    for conf in confs {
        command.push("--conf".to_string());
        command.push(conf.clone());
    }
    command.push(format!("{dir}/{app}"));
    command.extend(args.iter().cloned());
    command
}

/// What `submit` runs: the application, its --py-files and the settings,
/// checked before any engine is asked.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The application file.
    pub app: LocalFile,
    /// The files it imports.
    pub py_files: Vec<LocalFile>,
    /// `--conf key=value` settings.
    pub confs: Vec<String>,
    /// Arguments for the application.
    pub args: Vec<String>,
}

impl Submission {
    /// Reads the files and checks the settings and that no two files share a name.
    pub fn prepare(
        app: &Path,
        py_files: &[std::path::PathBuf],
        confs: Vec<String>,
        args: Vec<String>,
    ) -> Result<Submission> {
        check_confs(&confs)?;
        let app = read_local_file(app, "the application")?;
        let py_files = py_files
            .iter()
            .map(|p| read_local_file(p, "each --py-files entry"))
            .collect::<Result<Vec<_>>>()?;
        let mut names = vec![app.name.as_str()];
        for f in &py_files {
            if names.contains(&f.name.as_str()) {
                return Err(Error::InvalidInput(format!(
                    "two files to copy are named {} — they would overwrite each other in the container; rename one",
                    f.name
                )));
            }
            names.push(&f.name);
        }
        Ok(Submission {
            app,
            py_files,
            confs,
            args,
        })
    }
}

/// Runs `command` in `container` as `user` and collects its output.
async fn run_as<E: Engine>(
    engine: &E,
    container: &ContainerState,
    user: &str,
    command: &[&str],
) -> Result<RunOutput> {
    let request = as_spark(
        container,
        ExecRequest {
            command: command.iter().map(|s| s.to_string()).collect(),
            user: Some(user.to_string()),
            env: Vec::new(),
            tty: false,
            stdin: false,
        },
    );
    let ExecSession {
        id,
        mut output,
        input,
    } = engine.exec_attached(&container.name, &request).await?;
    drop(input);
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    while let Some(chunk) = output.next().await {
        match chunk? {
            ExecChunk::Stdout(bytes) => stdout.extend_from_slice(&bytes),
            ExecChunk::Stderr(bytes) => stderr.extend_from_slice(&bytes),
        }
    }
    let exit_code = crate::engine::exec_wait_exit(engine, &id).await?;
    Ok(RunOutput {
        exit_code: exit_code.unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

/// Copies the application (and its --py-files) into the Jupyter container of
/// `cluster` and runs spark-submit there against the cluster's master, with
/// its output streamed as it comes; Ctrl-C stops it there. The copied files
/// are removed afterwards.
pub async fn submit<E: Engine>(
    engine: &E,
    cluster: &str,
    submission: &Submission,
    progress: &Progress,
) -> Result<()> {
    let Submission {
        app,
        py_files,
        confs,
        args,
    } = submission;
    let mut names = vec![app.name.as_str()];
    names.extend(py_files.iter().map(|f| f.name.as_str()));
    let jupyter_state = find_container(engine, cluster, "jupyter").await?;
    let jupyter = jupyter_state.name.clone();
    let unique = labels::random_suffix();
    let dir = format!("{SUBMIT_PARENT}/{SUBMIT_DIR}/{unique}");
    let mut files = vec![app];
    files.extend(py_files.iter());
    let tar = submit_tar(&unique, &files, spark_owner(&jupyter_state))?;
    progress.phase(&format!(
        "copying {} into {jupyter}:{dir}",
        names.join(", ")
    ));
    engine.upload_tar(&jupyter, SUBMIT_PARENT, tar).await?;

    let master_url = Names::new(cluster).master_url();
    let py_names: Vec<String> = py_files.iter().map(|f| f.name.clone()).collect();
    let submit = spark_submit_command(&master_url, &dir, &app.name, &py_names, confs, args);
    // spark-submit runs as the leader of its own process group (recorded in
    // .pid), so that Ctrl-C can stop it with the Python driver it starts.
    let mut command = vec![
        "setsid".to_string(),
        "-w".to_string(),
        "sh".to_string(),
        "-c".to_string(),
        r#"echo $$ > "$0/.pid" && exec "$@""#.to_string(),
        dir.clone(),
    ];
    command.extend(submit);
    let request = as_spark(
        &jupyter_state,
        ExecRequest {
            command,
            user: Some(contract::IMAGE_USER.to_string()),
            env: Vec::new(),
            tty: false,
            stdin: false,
        },
    );
    progress.phase(&format!("spark-submit {} to {master_url}", app.name));
    progress.finish();
    let stop = StopCommand {
        container: jupyter.clone(),
        // The image's sh (dash) cannot signal a process group; its Python can.
        command: vec![
            "python".to_string(),
            "-c".to_string(),
            "import os, signal, sys; os.killpg(int(open(sys.argv[1]).read()), signal.SIGTERM)"
                .to_string(),
            format!("{dir}/.pid"),
        ],
    };
    let finish = attach(engine, &jupyter, &request, Some(&stop)).await;

    // Best effort: the copied files are not needed any more.
    match run_as(
        engine,
        &jupyter_state,
        contract::IMAGE_USER,
        &["rm", "-rf", "--", &dir],
    )
    .await
    {
        Ok(out) if out.exit_code == 0 => {}
        Ok(out) => tracing::warn!("could not remove {jupyter}:{dir}: {}", out.stderr.trim()),
        Err(e) => tracing::warn!("could not remove {jupyter}:{dir}: {e}"),
    }
    match finish? {
        Finish::Interrupted => Err(Error::Interrupted(format!(
            "spark-submit of {} was stopped in {jupyter}",
            app.name
        ))),
        other => other.into_result(&jupyter),
    }
}

/// How an attached command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finish {
    /// Its output ended and it exited with this code (None: it still runs).
    Exited(Option<i64>),
    /// Our own standard output was closed (`| head`): we stopped listening.
    OutputClosed,
    /// The user pressed Ctrl-C and the command was stopped.
    Interrupted,
}

impl Finish {
    fn into_result(self, container: &str) -> Result<()> {
        match self {
            Finish::Exited(Some(code)) => Error::from_exit_code(code),
            Finish::Exited(None) => {
                tracing::warn!(
                    "the command closed its output but still runs in {container}; not waiting for it"
                );
                Ok(())
            }
            Finish::OutputClosed => Ok(()),
            Finish::Interrupted => Err(Error::Interrupted(format!(
                "the command may still run in {container}"
            ))),
        }
    }
}

/// A command that stops an attached command when the user presses Ctrl-C.
struct StopCommand {
    container: String,
    command: Vec<String>,
}

/// Puts this terminal in raw mode until dropped — also when an error returns
/// early or a panic unwinds.
struct RawMode;

impl RawMode {
    fn enable() -> Result<RawMode> {
        crossterm::terminal::enable_raw_mode().map_err(|e| {
            Error::Io(format!(
                "cannot put this terminal in raw mode: {e} — run without a TTY (`sparkbox exec --no-tty …`)"
            ))
        })?;
        Ok(RawMode)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Err(e) = crossterm::terminal::disable_raw_mode() {
            eprintln!("sparkbox: could not restore the terminal ({e}); run `reset`");
        }
    }
}

/// Reads this process's standard input on a plain thread (tokio's stdin
/// would hold the runtime open at exit while a read blocks) and sends it in
/// chunks; the channel closes at end of input.
fn spawn_stdin_reader() -> Result<mpsc::Receiver<Bytes>> {
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    std::thread::Builder::new()
        .name("sparkbox-stdin".into())
        .spawn(move || {
            let mut stdin = std::io::stdin();
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if tx.blocking_send(Bytes::copy_from_slice(&buf[..n])).is_err() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        })
        .map_err(|e| Error::Io(format!("cannot start reading standard input: {e}")))?;
    Ok(rx)
}

/// Writes one chunk and flushes it, so prompts without a newline show.
fn write_chunk(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    out.write_all(bytes)?;
    out.flush()
}

/// Sets the exec's TTY to this terminal's size. The first try may come a
/// moment before the process exists, so it is retried briefly.
async fn resize_to_terminal<E: Engine>(engine: &E, exec_id: &str, tries: u32) {
    let Ok((columns, rows)) = crossterm::terminal::size() else {
        return;
    };
    for attempt in 0..tries {
        match engine.exec_resize(exec_id, columns, rows).await {
            Ok(()) => return,
            Err(e) if attempt + 1 == tries => tracing::debug!("resize failed: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20 << attempt)).await,
        }
    }
}

/// Waits for the next delivery of `signal`, or forever when it could not be
/// registered.
async fn next_signal(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => {
            if s.recv().await.is_none() {
                std::future::pending::<()>().await
            }
        }
        None => std::future::pending::<()>().await,
    }
}

fn register(
    kind: tokio::signal::unix::SignalKind,
    wanted: bool,
) -> Option<tokio::signal::unix::Signal> {
    if wanted {
        tokio::signal::unix::signal(kind).ok()
    } else {
        None
    }
}

/// Runs `request` in `container` attached to this process: output to stdout
/// and stderr as it comes, stdin forwarded (when asked) until its end, the
/// terminal in raw mode and the exec's TTY sized to it (with a TTY). Returns
/// when the command's output ends; `stop` makes Ctrl-C stop the command.
async fn attach<E: Engine>(
    engine: &E,
    container: &str,
    request: &ExecRequest,
    stop: Option<&StopCommand>,
) -> Result<Finish> {
    use tokio::signal::unix::SignalKind;

    let session = engine.exec_attached(container, request).await?;
    let exec_id = session.id;
    let mut output = session.output;
    let mut input = session.input;

    let raw = if request.tty {
        Some(RawMode::enable()?)
    } else {
        None
    };
    let forwarder = if request.stdin {
        let mut chunks = spawn_stdin_reader()?;
        Some(tokio::spawn(async move {
            while let Some(chunk) = chunks.recv().await {
                if input.write_all(&chunk).await.is_err() || input.flush().await.is_err() {
                    return;
                }
            }
            // End of our input: close the command's input (a half-close).
            if let Err(e) = input.shutdown().await {
                tracing::debug!("closing the command's input failed: {e}");
            }
        }))
    } else {
        drop(input);
        None
    };
    if request.tty {
        resize_to_terminal(engine, &exec_id, 5).await;
    }

    let mut window = register(SignalKind::window_change(), request.tty);
    // With raw mode on, a terminating signal must not leave the terminal raw.
    let mut terminate = register(SignalKind::terminate(), request.tty);
    let mut hangup = register(SignalKind::hangup(), request.tty);
    let mut interrupt = register(SignalKind::interrupt(), stop.is_some());
    let mut stopping: Option<tokio::time::Instant> = None;

    let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
    let result = loop {
        let deadline = async {
            match stopping {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            chunk = output.next() => match chunk {
                Some(Ok(ExecChunk::Stdout(bytes))) => {
                    if write_chunk(&mut stdout, &bytes).is_err() {
                        break Ok(Finish::OutputClosed);
                    }
                }
                Some(Ok(ExecChunk::Stderr(bytes))) => {
                    // A closed stderr is no reason to stop the command.
                    let _ = write_chunk(&mut stderr, &bytes);
                }
                Some(Err(e)) => break Err(e),
                None => break Ok(Finish::Exited(None)),
            },
            _ = next_signal(&mut window) => resize_to_terminal(engine, &exec_id, 1).await,
            _ = next_signal(&mut terminate) => break Ok(Finish::Interrupted),
            _ = next_signal(&mut hangup) => break Ok(Finish::Interrupted),
            _ = next_signal(&mut interrupt) => {
                let Some(stop) = stop else { break Ok(Finish::Interrupted) };
                if stopping.is_some() {
                    // A second Ctrl-C: leave now.
                    break Ok(Finish::Interrupted);
                }
                eprintln!("sparkbox: stopping the command in {} (Ctrl-C again to leave at once)", stop.container);
                let command: Vec<&str> = stop.command.iter().map(String::as_str).collect();
                match engine.exec(&stop.container, &command).await {
                    Ok(out) if out.exit_code != 0 => tracing::warn!("stopping failed: {}", out.stderr.trim()),
                    Ok(_) => {}
                    Err(e) => tracing::warn!("stopping failed: {e}"),
                }
                stopping = Some(tokio::time::Instant::now() + STOP_PATIENCE);
            }
            _ = deadline => break Ok(Finish::Interrupted),
        }
    };
    if let Some(task) = forwarder {
        task.abort();
    }
    drop(raw);
    match result? {
        Finish::Exited(None) if stopping.is_some() => Ok(Finish::Interrupted),
        Finish::Exited(None) => Ok(Finish::Exited(
            crate::engine::exec_wait_exit(engine, &exec_id).await?,
        )),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn container(name: &str, role: &str, index: Option<u32>, state: &str) -> ContainerState {
        let mut labels = HashMap::from([
            (labels::CLUSTER.to_string(), "c".to_string()),
            (labels::ROLE.to_string(), role.to_string()),
        ]);
        if let Some(i) = index {
            labels.insert(labels::INDEX.to_string(), i.to_string());
        }
        ContainerState {
            name: name.to_string(),
            labels,
            state: state.to_string(),
            ..Default::default()
        }
    }

    fn cluster() -> Observed {
        Observed {
            containers: vec![
                container("c-master", "master", None, "running"),
                container("c-worker-1", "worker", Some(1), "running"),
                container("c-worker-2", "worker", Some(2), "exited"),
                container("c-jupyter", "jupyter", None, "running"),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn sessions_as_spark_go_through_as_spark_only_for_a_root_host_user() {
        let request = |user: &str| ExecRequest {
            command: vec!["python".into(), "job.py".into()],
            user: Some(user.to_string()),
            env: Vec::new(),
            tty: false,
            stdin: false,
        };
        let mut root = container("c-jupyter", "jupyter", None, "running");
        root.labels
            .insert(labels::HOST_USER.to_string(), "0:0".to_string());
        let sent = as_spark(&root, request("spark"));
        assert_eq!(sent.user.as_deref(), Some("root"));
        assert_eq!(sent.command, [contract::AS_SPARK, "python", "job.py"]);
        assert_eq!(spark_owner(&root), (SPARK_UID, SPARK_UID));
        // Asked for root by name: root, as asked.
        let sent = as_spark(&root, request("root"));
        assert_eq!(sent.command, ["python", "job.py"]);
        let mut user = container("c-jupyter", "jupyter", None, "running");
        user.labels
            .insert(labels::HOST_USER.to_string(), "4242:4243".to_string());
        let sent = as_spark(&user, request("spark"));
        assert_eq!(sent.user.as_deref(), Some("spark"));
        assert_eq!(sent.command, ["python", "job.py"]);
        assert_eq!(spark_owner(&user), (4242, 4243));
    }

    #[test]
    fn targets_are_parsed() {
        assert_eq!(Target::parse("master"), Target::Role(Role::Master));
        assert_eq!(Target::parse("jupyter"), Target::Role(Role::Jupyter));
        assert_eq!(Target::parse("worker"), Target::Worker(1));
        assert_eq!(Target::parse("worker-12"), Target::Worker(12));
        assert_eq!(Target::parse("worker-0"), Target::Name("worker-0".into()));
        assert_eq!(Target::parse("c-master"), Target::Name("c-master".into()));
    }

    #[test]
    fn targets_resolve_to_running_containers() {
        let observed = cluster();
        let name = |t: &str| resolve_target("c", t, &observed).map(|c| c.name.clone());
        assert_eq!(name("master").ok().as_deref(), Some("c-master"));
        assert_eq!(name("worker").ok().as_deref(), Some("c-worker-1"));
        assert_eq!(name("jupyter").ok().as_deref(), Some("c-jupyter"));
        assert_eq!(name("c-worker-1").ok().as_deref(), Some("c-worker-1"));

        let missing = name("worker-5").unwrap_err();
        assert_eq!(missing.exit_code(), 4);
        assert!(
            missing
                .to_string()
                .contains("has no worker-5 (workers: 1, 2)"),
            "{missing}"
        );
        let stopped = name("worker-2").unwrap_err();
        assert_eq!(stopped.exit_code(), 7);
        assert!(
            stopped.to_string().contains("sparkbox start -n c"),
            "{stopped}"
        );
        let unknown = name("other-master").unwrap_err();
        assert_eq!(unknown.exit_code(), 4);
        assert!(
            unknown.to_string().contains("c-jupyter, c-master"),
            "{unknown}"
        );
        let absent = resolve_target("c", "master", &Observed::default()).unwrap_err();
        assert!(absent.to_string().contains("sparkbox up -n c"), "{absent}");
    }

    #[test]
    fn confs_must_be_key_value() {
        assert!(check_confs(&["spark.executor.memory=1g".into(), "a.b=".into()]).is_ok());
        for bad in ["novalue", "=1g", "spark x=1"] {
            let e = check_confs(&[bad.into()]).unwrap_err();
            assert_eq!(e.exit_code(), 4);
            assert!(e.to_string().contains("key=value"), "{e}");
        }
    }

    #[test]
    fn spark_submit_command_line() {
        let command = spark_submit_command(
            "spark://c-master:7077",
            "/tmp/sparkbox-submit/x",
            "app.py",
            &["a.py".into(), "b.zip".into()],
            &["k=v".into()],
            &["4".into(), "--flag".into()],
        );
        assert_eq!(
            command,
            [
                "spark-submit",
                "--master",
                "spark://c-master:7077",
                "--py-files",
                "/tmp/sparkbox-submit/x/a.py,/tmp/sparkbox-submit/x/b.zip",
                "--conf",
                "k=v",
                "/tmp/sparkbox-submit/x/app.py",
                "4",
                "--flag"
            ]
        );
    }

    #[test]
    fn the_upload_tar_is_owned_by_spark() {
        let app = LocalFile {
            name: "app.py".into(),
            data: b"print(1)\n".to_vec(),
        };
        let bytes = submit_tar("u1", &[&app], (SPARK_UID, SPARK_UID)).expect("tar");
        let mut archive = tar::Archive::new(bytes.as_slice());
        let entries: Vec<(String, u32, u64, u64)> = archive
            .entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                let h = e.header();
                (
                    e.path().expect("path").display().to_string(),
                    h.mode().expect("mode"),
                    h.uid().expect("uid"),
                    h.size().expect("size"),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [
                ("sparkbox-submit/".to_string(), 0o755, 1000, 0),
                ("sparkbox-submit/u1/".to_string(), 0o755, 1000, 0),
                ("sparkbox-submit/u1/app.py".to_string(), 0o644, 1000, 9),
            ]
        );
    }
}
