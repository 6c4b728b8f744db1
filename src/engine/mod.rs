//! The container engine seen through one trait, so the orchestration logic
//! does not depend on bollard (Docker today; Podman's compatible API tomorrow).

pub mod docker;
/// An in-memory engine for the orchestration tests.
pub mod fake;
pub mod swarm;

use std::collections::HashMap;

use bytes::Bytes;
use futures_util::stream::BoxStream;

use crate::error::Result;

pub use docker::DockerEngine;

/// The engine of one command, connected on first use and only once: the one
/// place sparkbox reaches an engine. Commands ask for it after their input is
/// checked, so a bad flag is refused without asking any engine.
///
/// This is the backend seam (kind's provider): the orchestration in `plan/`
/// and `ops/` works on any [`Engine`], and only here is it decided which one
/// runs the cluster — the local Docker engine today; Swarm services through a
/// manager, or Podman's Docker-compatible socket, are further implementations
/// of [`Engine`] chosen here.
#[derive(Default)]
pub struct Connection {
    cell: tokio::sync::OnceCell<DockerEngine>,
}

impl Connection {
    /// A connection not yet made.
    pub fn new() -> Connection {
        Connection::default()
    }

    /// The engine (DOCKER_HOST or the default socket), connecting the first time.
    pub async fn engine(&self) -> Result<DockerEngine> {
        self.cell
            .get_or_try_init(DockerEngine::connect)
            .await
            .cloned()
    }
}

/// What the engine says about itself.
#[derive(Debug, Clone)]
pub struct EngineInfo {
    /// Where it was reached (DOCKER_HOST or the default socket).
    pub host: String,
    /// The server's product version, e.g. "20.10.24".
    pub server_version: String,
    /// The API version both sides agreed on, e.g. "1.41".
    pub api_version: String,
    /// Podman's Docker-compatible service rather than Docker's engine.
    pub podman: bool,
}

/// What the engine tells about its machine: what `doctor` weighs a cluster
/// against and what a diagnostics bundle records. A field is None when the
/// engine did not say.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SystemInfo {
    /// The newest API version the server speaks.
    pub server_api_version: Option<String>,
    /// The oldest API version the server speaks.
    pub min_api_version: Option<String>,
    /// The engine's operating system kind ("linux").
    pub os: Option<String>,
    /// The engine's CPU architecture ("amd64").
    pub arch: Option<String>,
    /// Kernel version.
    pub kernel_version: Option<String>,
    /// The host's operating system, e.g. "Debian GNU/Linux 12 (bookworm)".
    pub operating_system: Option<String>,
    /// Storage driver, e.g. "overlay2".
    pub storage_driver: Option<String>,
    /// cgroup version ("1" or "2").
    pub cgroup_version: Option<String>,
    /// CPUs the engine can use ("ncpu", as the engine's own info calls it).
    #[serde(rename = "ncpu")]
    pub cpus: Option<i64>,
    /// Memory of the engine's machine, in bytes.
    pub memory_bytes: Option<i64>,
    /// Containers running on the engine (all, not only sparkbox's).
    pub containers_running: Option<i64>,
    /// Where the engine keeps images and containers ("/var/lib/docker").
    pub data_root: Option<String>,
}

/// The parts of an image sparkbox looks at.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    /// Content-addressed ID ("sha256:…").
    pub id: String,
    /// Image labels.
    pub labels: HashMap<String, String>,
    /// Size in bytes.
    pub size: i64,
    /// Where registries know it: "REPO@sha256:…", one per registry it was
    /// pulled from or pushed to.
    pub repo_digests: Vec<String>,
}

/// Credentials for one registry, as `docker login` stored them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RegistryAuth {
    /// The registry host they are for ("127.0.0.1:5000", "registry.example.com").
    pub server: String,
    /// User name.
    pub username: Option<String>,
    /// Password or token.
    pub password: Option<String>,
    /// An identity token (OAuth refresh token) instead of a password.
    pub identity_token: Option<String>,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret itself.
        f.debug_struct("RegistryAuth")
            .field("server", &self.server)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// An image as the engine lists it (`docker image ls --all`), for telling
/// which images nothing needs any more.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageSummary {
    /// Content-addressed ID ("sha256:…").
    pub id: String,
    /// The image it was built on, for images of the classic builder (None
    /// for an imported image, or one whose parent the engine does not have).
    pub parent_id: Option<String>,
    /// Its tags ("repo:tag"); empty for an untagged one.
    pub repo_tags: Vec<String>,
    /// Image labels.
    pub labels: HashMap<String, String>,
    /// Size in bytes, its parents' layers included (as `docker image ls`).
    pub size: i64,
    /// When it was made (Unix seconds).
    pub created: i64,
}

/// One thing that happened during an image build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildEvent {
    /// The builder began step `n` of `total` ("RUN apt-get …").
    Step { n: u32, total: u32, text: String },
    /// A line the step printed.
    Output(String),
}

/// The options of one image build.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// The tag to give the result.
    pub tag: String,
    /// Build arguments.
    pub build_args: HashMap<String, String>,
    /// Labels of the result.
    pub labels: HashMap<String, String>,
    /// Ignore the builder's layer cache.
    pub no_cache: bool,
}

/// A command's result when run to completion in a throwaway container.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// Exit code.
    pub exit_code: i64,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
}

/// A host directory that services of a cluster mount, and where those
/// services may run: one set of placement constraints per service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPathUse {
    /// The directory on the host (an absolute path).
    pub path: String,
    /// Each mounting service's constraints (empty: any node).
    pub constraints: Vec<Vec<String>>,
}

/// A node of the swarm, as its manager reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SwarmNode {
    /// Node ID.
    pub id: String,
    /// Its hostname (what `status` shows).
    pub hostname: String,
    /// "manager" or "worker".
    pub role: String,
    /// True when the node is ready and its availability is "active".
    pub ready: bool,
    /// Its state and availability in words ("ready, active", "down, active").
    pub state: String,
    /// Its address in the swarm.
    pub address: String,
    /// Its node labels (`docker node update --label-add`).
    pub labels: HashMap<String, String>,
    /// True for the node whose engine sparkbox talks to.
    pub is_self: bool,
}

/// A port published on the host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PortPublish {
    /// Host address, 127.0.0.1 unless the user asked otherwise.
    pub host_ip: String,
    /// Host port.
    pub host_port: u16,
    /// Port inside the container.
    pub container_port: u16,
}

/// Everything needed to create one container.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    /// Container name (also its hostname and network alias).
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Arguments to the image's entrypoint.
    pub command: Vec<String>,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// Labels.
    pub labels: HashMap<String, String>,
    /// The network to join; empty: none (a container that is never started).
    pub network: String,
    /// Published ports.
    pub ports: Vec<PortPublish>,
    /// Volume or bind mounts as "SOURCE:TARGET[:MODE]".
    pub binds: Vec<String>,
    /// Healthcheck command (exec form, without the leading "CMD").
    pub healthcheck: Option<Vec<String>>,
    /// Memory limit in bytes.
    pub memory_bytes: Option<i64>,
    /// Relative CPU weight under contention (the engine's default is 1024).
    pub cpu_shares: Option<i64>,
    /// The user the entrypoint starts as (None: the image's user).
    pub user: Option<String>,
    /// Swarm placement constraints ("node.id==…"); empty for a container.
    pub constraints: Vec<String>,
    /// CPUs reserved and allowed on a swarm node, in billionths (None: no
    /// reservation); a container uses `cpu_shares` instead.
    pub nano_cpus: Option<i64>,
    /// Least privilege: every capability dropped except these, and
    /// no-new-privileges (None: the engine's defaults).
    pub cap_add: Option<Vec<String>>,
    /// At most this many processes and threads in the container.
    pub pids_limit: Option<i64>,
}

/// A container as the engine reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerState {
    /// Name without the leading slash.
    pub name: String,
    /// Container ID.
    pub id: String,
    /// Labels.
    pub labels: HashMap<String, String>,
    /// "running", "exited", "created", …
    pub state: String,
    /// "healthy", "unhealthy", "starting", or None without a healthcheck.
    pub health: Option<String>,
    /// Published ports: (container port, host port).
    pub ports: Vec<(u16, u16)>,
    /// The engine's one-line status ("Up 3 minutes (healthy)").
    pub status: String,
    /// When it was created (Unix seconds): the newest container carries the
    /// cluster's newest record.
    pub created: i64,
    /// The ID of the image it was created from ("sha256:…"): a container,
    /// running or not, keeps its image from `sparkbox image prune`.
    pub image_id: String,
    /// The swarm node (its hostname) a service's task runs on; None for a
    /// container of the local engine.
    pub node: Option<String>,
}

impl ContainerState {
    /// True when the container is running.
    pub fn is_running(&self) -> bool {
        self.state == "running"
    }

    /// The host port published for `container_port`.
    pub fn host_port(&self, container_port: u16) -> Option<u16> {
        self.ports
            .iter()
            .find(|(c, _)| *c == container_port)
            .map(|(_, h)| *h)
    }
}

/// Reads the health word out of a status line like "Up 5 s (health: starting)".
pub fn health_from_status(status: &str) -> Option<String> {
    let inner = status.rsplit_once('(')?.1.strip_suffix(')')?;
    let word = inner.strip_prefix("health: ").unwrap_or(inner);
    matches!(word, "healthy" | "unhealthy" | "starting").then(|| word.to_string())
}

/// A stream of bytes fed to the engine (a root filesystem tarball, a save archive).
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// How to run one command attached to this process's terminal or pipes.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    /// The command and its arguments.
    pub command: Vec<String>,
    /// The user to run as (default: the image's user).
    pub user: Option<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Allocate a pseudo-terminal (output then comes as one stream).
    pub tty: bool,
    /// Attach the command's standard input to [`ExecSession::input`].
    pub stdin: bool,
}

/// One piece of an attached command's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecChunk {
    /// Standard output (all output of a command with a TTY).
    Stdout(Bytes),
    /// Standard error.
    Stderr(Bytes),
}

/// A started command with its output and input streams.
pub struct ExecSession {
    /// The engine's ID of this exec, for resizing and its exit code.
    pub id: String,
    /// The command's output as it comes; ends when the command's output ends.
    pub output: BoxStream<'static, Result<ExecChunk>>,
    /// The command's standard input (when requested); shutting it down
    /// closes the command's input, as end-of-file.
    pub input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

impl std::fmt::Debug for ExecSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecSession").field("id", &self.id).finish()
    }
}

/// The engine operations sparkbox is built on.
#[allow(async_fn_in_trait)]
pub trait Engine {
    /// Where the engine is and which API version was negotiated.
    fn info(&self) -> &EngineInfo;

    /// The image named `reference`, or None when it is not present.
    async fn image(&self, reference: &str) -> Result<Option<ImageInfo>>;

    /// Pulls `reference` from its registry.
    async fn pull(&self, reference: &str) -> Result<()> {
        self.pull_with(reference, None, &mut |_| {}).await
    }

    /// Pulls `reference` with `auth`, telling `on_line` each progress line
    /// ("<layer>: Downloading 12 MB/300 MB"). The engine tags the image only
    /// once every layer is there: a failed pull leaves no such tag.
    async fn pull_with(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
        on_line: &mut (dyn FnMut(String) + Send),
    ) -> Result<()>;

    /// Pushes `reference` (a tag present here) with `auth`, telling `on_line`
    /// each progress line.
    async fn push(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
        on_line: &mut (dyn FnMut(String) + Send),
    ) -> Result<()>;

    /// Gives the image `source` the further name `target` ("REPO:TAG").
    async fn tag(&self, source: &str, target: &str) -> Result<()>;

    /// Imports a root filesystem tarball as the image `reference`.
    async fn import_rootfs(
        &self,
        rootfs: ByteStream,
        reference: &str,
        changes: Vec<String>,
    ) -> Result<String>;

    /// Builds `context` (a tar) and returns the new image's ID.
    async fn build(
        &self,
        context: Vec<u8>,
        request: &BuildRequest,
        on_event: &mut (dyn FnMut(BuildEvent) + Send),
    ) -> Result<String>;

    /// Runs `command` in a throwaway container of `image` and removes it.
    async fn run_to_completion(&self, image: &str, command: &[&str]) -> Result<RunOutput>;

    /// Removes an image (by reference or ID).
    async fn remove_image(&self, reference: &str) -> Result<()>;

    /// The image `reference` as the engine's save archive (what `docker save`
    /// writes: an uncompressed tar), streamed as the engine sends it.
    fn export_image(&self, reference: &str) -> BoxStream<'static, Result<Bytes>>;

    /// The root filesystem of the container `name` as an uncompressed tar
    /// (what `docker export` writes), streamed as the engine sends it.
    fn export_container(&self, name: &str) -> BoxStream<'static, Result<Bytes>>;

    /// Loads a save archive streamed from `archive` (what `docker load`
    /// does) and returns the engine's messages ("Loaded image: …").
    async fn import_image(&self, archive: ByteStream) -> Result<Vec<String>>;

    // ---- image housekeeping (`sparkbox image prune`) ----------------------

    /// Every image carrying every given label (an empty value matches any
    /// value; no labels: every image), untagged and intermediate ones included.
    async fn images(&self, labels: &[(&str, &str)]) -> Result<Vec<ImageSummary>>;

    /// The build steps of an image, newest first, as `docker history
    /// --no-trunc` shows them ("/bin/sh -c #(nop) COPY file:… in /tmp/x ").
    async fn image_history(&self, reference: &str) -> Result<Vec<String>>;

    /// Removes an image (a tag: that tag, and the image once no tag is
    /// left; an ID: the image) and its untagged parents nothing else needs,
    /// without force: the engine refuses ([`Error::InUse`]) when a container,
    /// running or not, uses it. A missing image is not an error.
    ///
    /// [`Error::InUse`]: crate::error::Error::InUse
    async fn remove_image_unforced(&self, reference: &str) -> Result<()>;

    /// Containers (running or not) carrying every given label (an empty
    /// value matches any value).
    async fn containers(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerState>>;

    /// Names of the networks carrying every given label.
    async fn networks(&self, labels: &[(&str, &str)]) -> Result<Vec<String>>;

    /// Names of the volumes carrying every given label.
    async fn volumes(&self, labels: &[(&str, &str)]) -> Result<Vec<String>>;

    /// Creates a bridge network.
    async fn create_network(&self, name: &str, labels: HashMap<String, String>) -> Result<()>;

    /// Removes a network; a missing one is not an error.
    async fn remove_network(&self, name: &str) -> Result<()>;

    /// Creates a named volume.
    async fn create_volume(&self, name: &str, labels: HashMap<String, String>) -> Result<()>;

    /// Removes a volume; a missing one is not an error.
    async fn remove_volume(&self, name: &str) -> Result<()>;

    /// Creates a container and returns its ID.
    async fn create_container(&self, spec: &ContainerSpec) -> Result<String>;

    /// Starts a container.
    async fn start_container(&self, name: &str) -> Result<()>;

    /// Stops a container (after `timeout_s` seconds it is killed).
    async fn stop_container(&self, name: &str, timeout_s: i32) -> Result<()>;

    /// Has the engine start the container again when it exits and when the
    /// engine itself starts again (restart policy `unless-stopped`; a
    /// container stopped on purpose stays stopped). A swarm service's tasks
    /// are restarted by the swarm anyway.
    async fn keep_running(&self, name: &str) -> Result<()>;

    /// Removes a container, running or not; a missing one is not an error.
    async fn remove_container(&self, name: &str) -> Result<()>;

    /// Runs a command inside a running container and collects its output.
    async fn exec(&self, container: &str, command: &[&str]) -> Result<RunOutput>;

    /// Starts a command inside a running container with its output (and,
    /// when asked, its input) attached, and returns at once.
    async fn exec_attached(&self, container: &str, request: &ExecRequest) -> Result<ExecSession>;

    /// Resizes the TTY of a started exec.
    async fn exec_resize(&self, exec_id: &str, columns: u16, rows: u16) -> Result<()>;

    /// The exit code of an exec, or None while it still runs.
    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>>;

    /// Extracts `tar` (an uncompressed tar archive) into the directory `dir`
    /// of a container; entries keep their owners and modes.
    async fn upload_tar(&self, container: &str, dir: &str, tar: Vec<u8>) -> Result<()>;

    /// A container's log as a stream of chunks: the last `tail` lines (all
    /// when None), entries since a Unix time, and new ones too with `follow`.
    fn log_stream(
        &self,
        container: &str,
        follow: bool,
        tail: Option<usize>,
        since: Option<i64>,
    ) -> BoxStream<'static, Result<String>>;

    /// A container's whole log, stdout and stderr, each line prefixed with
    /// the engine's RFC 3339 timestamp, as the raw bytes the engine sends.
    fn timestamped_log(&self, container: &str) -> BoxStream<'static, Result<Bytes>>;

    /// The engine's whole inspect document of a container (what `docker
    /// inspect` prints for it), as the engine wrote it.
    async fn inspect_container(&self, name: &str) -> Result<serde_json::Value>;

    /// What the engine tells about its machine (CPUs, memory, storage, versions).
    async fn system_info(&self) -> Result<SystemInfo>;

    /// The nodes of the swarm this engine manages; an error naming what to
    /// run when it is not a swarm manager.
    async fn swarm_nodes(&self) -> Result<Vec<SwarmNode>> {
        Err(not_a_manager(&self.info().host))
    }

    /// Checks that each host directory of `uses` exists wherever a service
    /// mounting it may run, before anything of `cluster` starts: on a swarm
    /// every node that may run one (a node where it is missing is named);
    /// a local engine has nothing to check (`up` makes the data directory).
    /// `image` is the image to check with (on a swarm pinned by digest).
    async fn check_host_paths(
        &self,
        cluster: &str,
        image: &str,
        uses: &[HostPathUse],
        timeout: std::time::Duration,
    ) -> Result<()> {
        let _ = (cluster, image, uses, timeout);
        Ok(())
    }

    /// True when the engine can publish `port` on `address`: nothing
    /// listens there. Where the ports are is the backend's to say (this
    /// machine for a local engine; a swarm node elsewhere), so the
    /// orchestration asks here instead of probing the host itself.
    fn port_free(&self, address: &str, port: u16) -> bool {
        host_port_free(address, port)
    }

    /// The last `lines` lines of a container's log.
    async fn logs_tail(&self, container: &str, lines: usize) -> Result<String> {
        use futures_util::StreamExt;
        let mut chunks = self.log_stream(container, false, Some(lines), None);
        let mut text = String::new();
        while let Some(chunk) = chunks.next().await {
            text.push_str(&chunk?);
        }
        Ok(text)
    }
}

/// Joins an error with all its causes, for messages that keep the real reason.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let piece = cause.to_string();
        if !text.contains(&piece) {
            text.push_str(": ");
            text.push_str(&piece);
        }
        source = cause.source();
    }
    text
}

/// The error of `--swarm` against an engine that manages no swarm.
pub fn not_a_manager(host: &str) -> crate::error::Error {
    crate::error::Error::Swarm(format!(
        "the engine at {host} is not a Docker Swarm manager, so --swarm cannot place a cluster on it — run `docker swarm init` on the machine that is to manage the swarm (and `docker swarm join` on the others), then point DOCKER_HOST at that manager; without --swarm the cluster runs on this one engine"
    ))
}

/// True when nothing on this machine listens on `address:port`.
pub fn host_port_free(address: &str, port: u16) -> bool {
    std::net::TcpListener::bind((address, port)).is_ok()
}

/// The label selectors of a filter, as engines write them: "key=value", or
/// "key" alone for any value.
pub fn label_selectors(labels: &[(&str, &str)]) -> Vec<String> {
    labels
        .iter()
        .map(|(k, v)| {
            if v.is_empty() {
                k.to_string()
            } else {
                format!("{k}={v}")
            }
        })
        .collect()
}

/// How long an exec whose output has ended may take to report its exit.
const EXEC_EXIT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// The exit code of an exec whose output has ended. The engine closes the
/// output a moment before it records the exit, so this asks again for a
/// while; None when the command still runs after that (it closed its output
/// but did not exit).
pub async fn exec_wait_exit<E: Engine + ?Sized>(engine: &E, exec_id: &str) -> Result<Option<i64>> {
    let start = std::time::Instant::now();
    let mut delay = std::time::Duration::from_millis(5);
    loop {
        if let Some(code) = engine.exec_exit_code(exec_id).await? {
            return Ok(Some(code));
        }
        if start.elapsed() >= EXEC_EXIT_PATIENCE {
            return Ok(None);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(std::time::Duration::from_millis(200));
    }
}

/// Splits "repo/name:tag" into ("repo/name", "tag"); the tag defaults to "latest".
pub fn split_reference(reference: &str) -> (&str, &str) {
    let last_slash = reference.rfind('/').map(|i| i + 1).unwrap_or(0);
    match reference[last_slash..].rfind(':') {
        Some(i) => (
            &reference[..last_slash + i],
            &reference[last_slash + i + 1..],
        ),
        None => (reference, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::{health_from_status, host_port_free, split_reference};

    #[test]
    fn the_host_port_check_sees_a_listener() {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind");
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        assert!(!host_port_free("127.0.0.1", port));
        drop(listener);
        assert!(host_port_free("127.0.0.1", port));
    }

    #[test]
    fn health_is_read_from_status_lines() {
        assert_eq!(
            health_from_status("Up 5 seconds (healthy)").as_deref(),
            Some("healthy")
        );
        assert_eq!(
            health_from_status("Up 1 second (health: starting)").as_deref(),
            Some("starting")
        );
        assert_eq!(health_from_status("Up 2 minutes"), None);
        assert_eq!(health_from_status("Exited (137) 3 seconds ago"), None);
    }

    #[test]
    fn splits_references_with_registry_ports() {
        assert_eq!(
            split_reference("debian:bookworm-slim"),
            ("debian", "bookworm-slim")
        );
        assert_eq!(split_reference("debian"), ("debian", "latest"));
        assert_eq!(
            split_reference("localhost:5000/team/img:1.0"),
            ("localhost:5000/team/img", "1.0")
        );
        assert_eq!(
            split_reference("localhost:5000/team/img"),
            ("localhost:5000/team/img", "latest")
        );
    }
}
