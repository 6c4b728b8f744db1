//! An in-memory [`Engine`] for the orchestration tests: images, networks,
//! volumes and containers kept in a map, and the jupyter-spark image's
//! contract (`probe`, `healthcheck`, `measure-versions`, the versions file)
//! answered from that state, so the real orchestration code runs unchanged
//! against it in milliseconds and without Docker.
//!
//! What it simulates, and how faithfully:
//! - label filters as the engine's (`(key, "")` = has the key);
//! - the engine's answers to missing and duplicate objects: a 404 on a named
//!   object is [`Error::Gone`], a 409 on create is [`Error::NameConflict`];
//!   removing what is missing is fine (as [`super::DockerEngine`] does), and
//!   starting a running or stopping a stopped container is a no-op (the
//!   engine's 304); a container needs its image and network to be created;
//!   named volumes in binds are made on create when missing (unlabelled,
//!   as the engine does); a network with running containers or a volume
//!   used by any container cannot be removed; a host port published by a
//!   running container cannot be published again;
//! - images as the engine keeps them: an image no tag names is dropped
//!   unless it is the parent of one that stays, a container uses it, or a
//!   build left it (the earlier stages of a multi-stage Dockerfile stay
//!   untagged, with their steps as history, as the classic builder leaves
//!   them — the same stage again is the same image, as its cache would
//!   make it); [`Engine::remove_image_unforced`] refuses an image a
//!   container uses or another image is built on (the engine's 409) and
//!   removes the untagged parents nothing else needs;
//! - builds: the image gets the labels of its Dockerfile's `LABEL` steps
//!   and of the request over those of its last `FROM`; a Dockerfile that
//!   writes the versions file records what `measure-versions --check` would
//!   have measured from the `EXPECTED_VERSIONS` build argument (Java and
//!   Python with a patch level, as Debian's are); every `FROM` image must be
//!   present (sparkbox makes or pulls the base first);
//! - the master's `/json/`: every *running* worker container on its network
//!   whose `SPARKBOX_MASTER_URL` names it is ALIVE, with the cores and
//!   memory of its environment; `healthcheck` passes in a running container
//!   of that role (unless made unhealthy); `probe wait-*` answer at once
//!   instead of polling; `measure-versions` prints the versions file of the
//!   image the container was created from, with per-container overrides.
//!
//! Test hooks: fault injection per kind of call ([`FakeEngine::fail_nth`]),
//! an unreachable engine, a pause at the n-th mutating call
//! ([`FakeEngine::pause_at_mutation`], awaited with [`FakeEngine::paused`])
//! to drop an `up` future as Ctrl-C does, changes behind sparkbox's back
//! (a container that exits, vanishes or runs other versions), and a call log.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;

use super::{
    BuildEvent, BuildRequest, ByteStream, ContainerSpec, ContainerState, Engine, EngineInfo,
    ExecChunk, ExecRequest, ExecSession, ImageInfo, ImageSummary, RegistryAuth, RunOutput,
    SystemInfo,
};
use crate::error::{Error, Result};
use crate::model::contract;

/// A kind of engine call, for fault injection and the call log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    /// `image`.
    Image,
    /// `pull`, `pull_with`.
    Pull,
    /// `push`.
    Push,
    /// `tag`.
    Tag,
    /// `import_rootfs`.
    ImportRootfs,
    /// `build`.
    Build,
    /// `run_to_completion`.
    RunToCompletion,
    /// `remove_image`.
    RemoveImage,
    /// `images`, `image_history`.
    Images,
    /// `remove_image_unforced`.
    RemoveImageUnforced,
    /// `export_image`.
    ExportImage,
    /// `export_container`.
    ExportContainer,
    /// `import_image`.
    ImportImage,
    /// `containers`.
    Containers,
    /// `networks`.
    Networks,
    /// `volumes`.
    Volumes,
    /// `create_network`.
    CreateNetwork,
    /// `remove_network`.
    RemoveNetwork,
    /// `create_volume`.
    CreateVolume,
    /// `remove_volume`.
    RemoveVolume,
    /// `create_container`.
    CreateContainer,
    /// `start_container`.
    StartContainer,
    /// `stop_container`.
    StopContainer,
    /// `keep_running`.
    KeepRunning,
    /// `remove_container`.
    RemoveContainer,
    /// `exec`.
    Exec,
    /// `exec_attached`.
    ExecAttached,
    /// `exec_resize`.
    ExecResize,
    /// `exec_exit_code`.
    ExecExitCode,
    /// `upload_tar`.
    UploadTar,
    /// `log_stream` (and so `logs_tail`), `timestamped_log`.
    Logs,
    /// `inspect_container`, `system_info`.
    Inspect,
}

impl Call {
    /// The method's name, as the call log writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Call::Image => "image",
            Call::Pull => "pull",
            Call::Push => "push",
            Call::Tag => "tag",
            Call::ImportRootfs => "import_rootfs",
            Call::Build => "build",
            Call::RunToCompletion => "run_to_completion",
            Call::RemoveImage => "remove_image",
            Call::Images => "images",
            Call::RemoveImageUnforced => "remove_image_unforced",
            Call::ExportImage => "export_image",
            Call::ExportContainer => "export_container",
            Call::ImportImage => "import_image",
            Call::Containers => "containers",
            Call::Networks => "networks",
            Call::Volumes => "volumes",
            Call::CreateNetwork => "create_network",
            Call::RemoveNetwork => "remove_network",
            Call::CreateVolume => "create_volume",
            Call::RemoveVolume => "remove_volume",
            Call::CreateContainer => "create_container",
            Call::StartContainer => "start_container",
            Call::StopContainer => "stop_container",
            Call::KeepRunning => "keep_running",
            Call::RemoveContainer => "remove_container",
            Call::Exec => "exec",
            Call::ExecAttached => "exec_attached",
            Call::ExecResize => "exec_resize",
            Call::ExecExitCode => "exec_exit_code",
            Call::UploadTar => "upload_tar",
            Call::Logs => "logs",
            Call::Inspect => "inspect",
        }
    }

    /// True for the calls that change what the engine holds (the ones a
    /// pause counts): builds, pulls, and creating, starting, stopping or
    /// removing anything. Setting a container's restart policy
    /// (`keep_running`) changes nothing it runs, and setting it again
    /// changes nothing at all.
    pub fn is_mutating(self) -> bool {
        matches!(
            self,
            Call::Pull
                | Call::Push
                | Call::Tag
                | Call::ImportRootfs
                | Call::Build
                | Call::RunToCompletion
                | Call::RemoveImage
                | Call::RemoveImageUnforced
                | Call::ImportImage
                | Call::CreateNetwork
                | Call::RemoveNetwork
                | Call::CreateVolume
                | Call::RemoveVolume
                | Call::CreateContainer
                | Call::StartContainer
                | Call::StopContainer
                | Call::RemoveContainer
                | Call::UploadTar
        )
    }
}

/// Where a container's process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Created, never started.
    Created,
    /// Running.
    Running,
    /// Its process ended with this code.
    Exited(i64),
}

/// A container as the fake holds it.
#[derive(Debug, Clone)]
pub struct FakeContainer {
    /// Its ID (a new one for every create).
    pub id: String,
    /// What it was created with.
    pub spec: ContainerSpec,
    /// The ID of the image it was created from.
    pub image_id: String,
    /// Where its process is.
    pub state: RunState,
    /// How many times it was started.
    pub start_count: u32,
    /// The engine's logical clock at its last start (0: never started).
    pub started_at: u64,
    /// The logical clock at its creation.
    pub created_at: u64,
    /// Its healthcheck fails.
    pub unhealthy: bool,
    /// Version keys its `measure-versions` reports differently.
    pub version_overrides: BTreeMap<String, String>,
    /// Its log lines.
    pub log: Vec<String>,
    /// Its restart policy is `unless-stopped` (`keep_running`).
    pub keep_running: bool,
}

impl FakeContainer {
    /// The container's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// True while its process runs.
    pub fn is_running(&self) -> bool {
        self.state == RunState::Running
    }

    /// The value of an environment variable it was created with.
    pub fn env(&self, key: &str) -> Option<&str> {
        self.spec
            .env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The role its entrypoint runs (the first argument).
    pub fn role(&self) -> &str {
        self.spec.command.first().map(String::as_str).unwrap_or("")
    }

    fn view(&self) -> ContainerState {
        let health = match (&self.spec.healthcheck, self.state) {
            (Some(_), RunState::Running) if self.unhealthy => Some("unhealthy".to_string()),
            (Some(_), RunState::Running) => Some("healthy".to_string()),
            _ => None,
        };
        let status = match self.state {
            RunState::Created => "Created".to_string(),
            RunState::Running => match &health {
                Some(h) => format!("Up 1 second ({h})"),
                None => "Up 1 second".to_string(),
            },
            RunState::Exited(code) => format!("Exited ({code}) 1 second ago"),
        };
        // The engine lists published ports of running containers only.
        let ports = if self.is_running() {
            self.spec
                .ports
                .iter()
                .map(|p| (p.container_port, p.host_port))
                .collect()
        } else {
            Vec::new()
        };
        ContainerState {
            name: self.spec.name.clone(),
            id: self.id.clone(),
            labels: self.spec.labels.clone(),
            state: match self.state {
                RunState::Created => "created",
                RunState::Running => "running",
                RunState::Exited(_) => "exited",
            }
            .to_string(),
            health,
            ports,
            status,
            created: self.created_at as i64,
            image_id: self.image_id.clone(),
            // The node its constraint pins it to (the fake swarm places
            // exactly there); its hostname is filled in by `containers`.
            node: self
                .spec
                .constraints
                .iter()
                .find_map(|c| c.strip_prefix("node.id=="))
                .map(str::to_string),
        }
    }
}

/// An image as the fake holds it.
#[derive(Debug, Clone)]
pub struct FakeImage {
    /// Its ID.
    pub id: String,
    /// Its labels.
    pub labels: HashMap<String, String>,
    /// Its size in bytes.
    pub size: i64,
    /// The contents of its versions file, when it has one.
    pub versions_file: Option<String>,
    /// "REPO@sha256:…" for each registry it was pulled from or pushed to.
    pub repo_digests: Vec<String>,
    /// The image it was built on (None: imported, pulled or FROM scratch).
    pub parent: Option<String>,
    /// The logical clock when it was made.
    pub created: u64,
    /// Its build steps, newest first (`docker history`).
    pub history: Vec<String>,
    /// A build left it: it stays when no tag names it.
    pub stage: bool,
}

struct Fault {
    call: Call,
    target: Option<String>,
    /// Matching calls still to let through before this one fails.
    skip: u32,
    effect: Effect,
}

/// What a fault does when its call comes.
enum Effect {
    /// The call fails with this error.
    Fail(Error),
    /// This container vanishes just before the call (`docker rm -f` from
    /// elsewhere, racing sparkbox), and the call goes on.
    Vanish(String),
}

#[derive(Default)]
struct State {
    images: BTreeMap<String, FakeImage>,
    tags: BTreeMap<String, String>,
    /// What the registries hold: remote "REPO:TAG" -> the image pushed.
    registry: BTreeMap<String, FakeImage>,
    /// Registry hosts that do not answer.
    registries_down: Vec<String>,
    /// Registry hosts that want these credentials (user, password).
    registry_logins: HashMap<String, (String, String)>,
    networks: BTreeMap<String, HashMap<String, String>>,
    volumes: BTreeMap<String, HashMap<String, String>>,
    containers: BTreeMap<String, FakeContainer>,
    execs: HashMap<String, i64>,
    /// The nodes of the swarm it manages (empty: not a swarm manager).
    swarm_nodes: Vec<super::SwarmNode>,
    /// Host directories missing on swarm nodes: (node ID, path).
    missing_paths: Vec<(String, String)>,
    clock: u64,
    log: Vec<(Call, String)>,
    faults: Vec<Fault>,
    unreachable: bool,
    mutations: u32,
    pause_at: Option<u32>,
    frozen: bool,
    /// Containers whose next create lands twice: an earlier, interrupted
    /// create of the same spec finishes just before it.
    late_creates: Vec<String>,
}

impl State {
    /// Whether the registry at `host` answers and takes `auth`, in the
    /// engine's own words when it does not.
    fn registry_check(&self, host: &str, auth: Option<&RegistryAuth>, action: &str) -> Result<()> {
        if self.registries_down.iter().any(|h| h == host) {
            return Err(Error::Engine {
                action: action.to_string(),
                detail: format!(
                    "Get \"http://{host}/v2/\": dial tcp {host}: connect: connection refused"
                ),
            });
        }
        if let Some((user, password)) = self.registry_logins.get(host) {
            let given = auth.map(|a| (a.username.clone(), a.password.clone()));
            match given {
                None => {
                    return Err(Error::Engine {
                        action: action.to_string(),
                        detail: format!("Head \"http://{host}/v2/\": no basic auth credentials"),
                    })
                }
                Some((Some(u), Some(p))) if &u == user && &p == password => {}
                Some(_) => {
                    return Err(Error::Engine {
                        action: action.to_string(),
                        detail: "unauthorized: authentication required".to_string(),
                    })
                }
            }
        }
        Ok(())
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn new_id(&mut self, salt: &str) -> String {
        use sha2::{Digest, Sha256};
        let n = self.tick();
        let digest = Sha256::digest(format!("{salt}/{n}").as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn image_id_of(&self, reference: &str) -> Option<String> {
        if self.images.contains_key(reference) {
            return Some(reference.to_string());
        }
        self.tags.get(&normalize(reference)).cloned()
    }

    fn image(&self, reference: &str) -> Option<&FakeImage> {
        self.image_id_of(reference)
            .and_then(|id| self.images.get(&id))
    }

    fn tag(&mut self, reference: &str, image: FakeImage) {
        let id = image.id.clone();
        self.images.insert(id.clone(), image);
        self.tags.insert(normalize(reference), id);
        self.drop_untagged();
    }

    /// Images no tag names any more are gone (as a dangling image would
    /// be after `docker image prune`), unless a container uses one, a
    /// build left it, or an image that stays is built on it.
    fn drop_untagged(&mut self) {
        let mut keep: std::collections::BTreeSet<String> = self
            .tags
            .values()
            .cloned()
            .chain(self.containers.values().map(|c| c.image_id.clone()))
            .chain(
                self.images
                    .values()
                    .filter(|i| i.stage)
                    .map(|i| i.id.clone()),
            )
            .collect();
        let mut todo: Vec<String> = keep.iter().cloned().collect();
        while let Some(id) = todo.pop() {
            if let Some(parent) = self.images.get(&id).and_then(|i| i.parent.clone()) {
                if keep.insert(parent.clone()) {
                    todo.push(parent);
                }
            }
        }
        self.images.retain(|id, _| keep.contains(id));
    }

    /// The tags naming image `id`.
    fn tags_of(&self, id: &str) -> Vec<String> {
        self.tags
            .iter()
            .filter(|(_, i)| *i == id)
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// The engine's refusal to remove `reference` (image `id`, by its only
    /// tag or by its ID), or None when nothing uses the image.
    fn removal_conflict(&self, reference: &str, id: &str) -> Option<Error> {
        let short = short_id(id);
        if let Some(c) = self.containers.values().find(|c| c.image_id == id) {
            let detail = if reference == id {
                let how = if c.is_running() {
                    "cannot be forced) - image is being used by running"
                } else {
                    "must be forced) - image is being used by stopped"
                };
                format!(
                    "conflict: unable to delete {short} ({how} container {}",
                    short_id(&c.id)
                )
            } else {
                format!(
                    "conflict: unable to remove repository reference \"{reference}\" (must force) - container {} is using its referenced image {short}",
                    short_id(&c.id)
                )
            };
            return Some(Error::InUse {
                image: reference.to_string(),
                detail,
            });
        }
        if reference == id
            && self
                .images
                .values()
                .any(|i| i.parent.as_deref() == Some(id))
        {
            return Some(Error::InUse {
                image: reference.to_string(),
                detail: format!(
                    "conflict: unable to delete {short} (cannot be forced) - image has dependent child images"
                ),
            });
        }
        None
    }

    /// Deletes image `id` and then each untagged parent no image is built
    /// on and no container uses, as the engine's removal prunes parents.
    fn delete_with_parents(&mut self, id: &str) {
        let mut next = self.images.remove(id).and_then(|i| i.parent);
        while let Some(parent) = next {
            let needed = !self.tags_of(&parent).is_empty()
                || self.containers.values().any(|c| c.image_id == parent)
                || self
                    .images
                    .values()
                    .any(|i| i.parent.as_deref() == Some(parent.as_str()));
            if needed {
                break;
            }
            next = self.images.remove(&parent).and_then(|i| i.parent);
        }
    }

    /// Keeps a finished build stage (base image `parent`, `steps` oldest
    /// first) as the untagged image the classic builder leaves: the same
    /// base, steps and arguments make the same image, as its cache would.
    fn leave_stage(
        &mut self,
        parent: Option<String>,
        steps: Vec<String>,
        build_args: &HashMap<String, String>,
    ) {
        use sha2::{Digest, Sha256};
        let mut args: Vec<String> = build_args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        args.sort();
        let key = format!("{parent:?}\n{}\n{}", steps.join("\n"), args.join("\n"));
        let digest = Sha256::digest(key.as_bytes());
        let id = format!(
            "sha256:{}",
            digest
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        if self.images.contains_key(&id) {
            return;
        }
        let mut history: Vec<String> = steps.into_iter().rev().collect();
        if let Some(base) = parent.as_ref().and_then(|p| self.images.get(p)) {
            history.extend(base.history.iter().cloned());
        }
        let created = self.tick();
        self.images.insert(
            id.clone(),
            FakeImage {
                id,
                labels: HashMap::new(),
                size: 1_480_000_000,
                versions_file: None,
                parent,
                created,
                history,
                stage: true,
                repo_digests: Vec::new(),
            },
        );
    }

    fn container(&self, name: &str, action: &str) -> Result<&FakeContainer> {
        self.containers.get(name).ok_or_else(|| gone(action, name))
    }
}

/// The registry host of a reference ("127.0.0.1:5000/a/b:t" -> the host),
/// None for a plain name.
fn registry_host(reference: &str) -> Option<&str> {
    let (first, _) = reference.split_once('/')?;
    crate::model::registry::is_host(first).then_some(first)
}

/// The digest a registry gives an image: derived from its ID, as a real
/// manifest digest follows from the layers.
fn fake_digest(id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("manifest/{id}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The 12 hex digits the engine writes an ID as in its messages.
fn short_id(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

fn normalize(reference: &str) -> String {
    let (repo, tag) = super::split_reference(reference);
    format!("{repo}:{tag}")
}

fn gone(action: &str, name: &str) -> Error {
    Error::Gone {
        action: action.to_string(),
        object: format!("container {name}"),
        detail: format!("No such container: {name}"),
    }
}

fn matches(labels: &HashMap<String, String>, filter: &[(&str, &str)]) -> bool {
    filter.iter().all(|(k, v)| match labels.get(*k) {
        Some(have) => v.is_empty() || have == v,
        None => false,
    })
}

/// Where a call may go once it has been logged.
enum Gate {
    Proceed,
    Fail(Error),
    Block,
}

/// The in-memory engine; clones share one state.
#[derive(Clone)]
pub struct FakeEngine {
    state: Arc<Mutex<State>>,
    paused: Arc<tokio::sync::watch::Sender<bool>>,
    info: EngineInfo,
}

impl std::fmt::Debug for FakeEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeEngine").finish_non_exhaustive()
    }
}

impl Default for FakeEngine {
    fn default() -> Self {
        FakeEngine::new()
    }
}

impl FakeEngine {
    /// An empty engine: no images, networks, volumes or containers.
    pub fn new() -> FakeEngine {
        // Each engine its own address, so locks (keyed by it) never meet.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (paused, _) = tokio::sync::watch::channel(false);
        FakeEngine {
            state: Arc::new(Mutex::new(State::default())),
            paused: Arc::new(paused),
            info: EngineInfo {
                host: format!("fake://in-memory/{}-{n}", std::process::id()),
                server_version: "fake".to_string(),
                api_version: "1.41".to_string(),
                podman: false,
            },
        }
    }

    /// Makes the fake a swarm manager with these nodes (replacing any).
    pub fn set_swarm_nodes(&self, nodes: Vec<super::SwarmNode>) {
        self.st().swarm_nodes = nodes;
    }

    /// Makes host directory `path` missing on swarm node `node_id`.
    pub fn set_path_missing(&self, node_id: &str, path: &str) {
        self.st()
            .missing_paths
            .push((node_id.to_string(), path.to_string()));
    }

    fn st(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock leaves the state as it
        // was; the next test thread should still see it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Logs the call and decides whether it fails, blocks or goes on.
    async fn gate(&self, call: Call, target: &str) -> Result<()> {
        let verdict = {
            let mut st = self.st();
            st.log.push((call, format!("{} {target}", call.as_str())));
            let mut verdict = Gate::Proceed;
            if call.is_mutating() {
                st.mutations += 1;
                if st.pause_at.is_some_and(|n| st.mutations >= n) {
                    st.frozen = true;
                }
                if st.frozen {
                    verdict = Gate::Block;
                }
            }
            if matches!(verdict, Gate::Proceed) && st.unreachable {
                verdict = Gate::Fail(Error::DockerUnreachable {
                    host: self.info.host.clone(),
                    detail: "connection refused (the fake engine is switched off)".into(),
                });
            }
            if matches!(verdict, Gate::Proceed) {
                let found = st.faults.iter().position(|f| {
                    f.call == call && f.target.as_deref().is_none_or(|t| t == target)
                });
                if let Some(i) = found {
                    if st.faults[i].skip == 0 {
                        match st.faults.remove(i).effect {
                            Effect::Fail(e) => verdict = Gate::Fail(e),
                            Effect::Vanish(victim) => {
                                st.containers.remove(&victim);
                            }
                        }
                    } else {
                        st.faults[i].skip -= 1;
                    }
                }
            }
            verdict
        };
        match verdict {
            Gate::Proceed => Ok(()),
            Gate::Fail(e) => Err(e),
            Gate::Block => {
                self.paused.send_replace(true);
                // The engine froze here: the future is meant to be dropped.
                std::future::pending::<Result<()>>().await
            }
        }
    }

    /// Makes the container of `spec` (created, not started) and returns its ID.
    fn insert_container(&self, spec: &ContainerSpec, action: &str) -> Result<String> {
        let action = action.to_string();
        let mut st = self.st();
        // The engine's 404 on create names what the container needs.
        let image_id = st.image_id_of(&spec.image).ok_or_else(|| Error::Engine {
            action: action.clone(),
            detail: format!("No such image: {}", spec.image),
        })?;
        if !spec.network.is_empty() && !st.networks.contains_key(&spec.network) {
            return Err(Error::Engine {
                action,
                detail: format!("network {} not found", spec.network),
            });
        }
        for volume in volumes_of(spec) {
            st.volumes.entry(volume.to_string()).or_default();
        }
        let id = st.new_id(&spec.name);
        let created_at = st.tick();
        st.containers.insert(
            spec.name.clone(),
            FakeContainer {
                id: id.clone(),
                spec: spec.clone(),
                image_id,
                state: RunState::Created,
                start_count: 0,
                started_at: 0,
                created_at,
                unhealthy: false,
                version_overrides: BTreeMap::new(),
                keep_running: false,
                log: Vec::new(),
            },
        );
        Ok(id)
    }

    // ---- test hooks -------------------------------------------------------

    /// The `n`-th (1-based) call of kind `call` from now fails with `error`.
    pub fn fail_nth(&self, call: Call, n: u32, error: Error) {
        self.st().faults.push(Fault {
            call,
            target: None,
            skip: n.saturating_sub(1),
            effect: Effect::Fail(error),
        });
    }

    /// The next call of kind `call` fails with `error`.
    pub fn fail_next(&self, call: Call, error: Error) {
        self.fail_nth(call, 1, error);
    }

    /// The next call of kind `call` on `target` (a container, network,
    /// volume or image name) fails with `error`.
    pub fn fail_on(&self, call: Call, target: &str, error: Error) {
        self.st().faults.push(Fault {
            call,
            target: Some(target.to_string()),
            skip: 0,
            effect: Effect::Fail(error),
        });
    }

    /// Just before the next call of kind `call` on `target`, the container
    /// `victim` is removed behind sparkbox's back (a race with `docker rm`).
    pub fn vanish_before(&self, call: Call, target: &str, victim: &str) {
        self.st().faults.push(Fault {
            call,
            target: Some(target.to_string()),
            skip: 0,
            effect: Effect::Vanish(victim.to_string()),
        });
    }

    /// The next create of the container `name` finds that an earlier create
    /// of the very same spec — one whose client was interrupted — landed just
    /// before it: the container is made (not started) and the create itself
    /// gets the engine's 409, as it does from a real engine.
    pub fn late_create(&self, name: &str) {
        self.st().late_creates.push(name.to_string());
    }

    /// Every call fails with [`Error::DockerUnreachable`] while `off`.
    pub fn set_unreachable(&self, off: bool) {
        self.st().unreachable = off;
    }

    /// The `n`-th (1-based) mutating call from now, and every mutating call
    /// after it, blocks forever without taking effect, until [`Self::release`]:
    /// the engine as it was when Ctrl-C dropped the command's future.
    pub fn pause_at_mutation(&self, n: u32) {
        let mut st = self.st();
        st.pause_at = Some(st.mutations + n.max(1));
        st.frozen = false;
        self.paused.send_replace(false);
    }

    /// Resolves once a call has blocked at the pause.
    pub async fn paused(&self) {
        let mut rx = self.paused.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = rx.wait_for(|p| *p).await;
    }

    /// Lifts the pause: later calls proceed (the blocked ones stay blocked;
    /// their futures are meant to have been dropped).
    pub fn release(&self) {
        let mut st = self.st();
        st.pause_at = None;
        st.frozen = false;
        self.paused.send_replace(false);
    }

    /// Every call so far, as "method target".
    pub fn calls(&self) -> Vec<String> {
        self.st().log.iter().map(|(_, s)| s.clone()).collect()
    }

    /// The mutating calls so far, as "method target".
    pub fn mutations(&self) -> Vec<String> {
        self.st()
            .log
            .iter()
            .filter(|(c, _)| c.is_mutating())
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// Forgets the call log (faults and pauses stay).
    pub fn clear_log(&self) {
        self.st().log.clear();
    }

    /// A copy of the container `name`, if it exists.
    pub fn container(&self, name: &str) -> Option<FakeContainer> {
        self.st().containers.get(name).cloned()
    }

    /// The names of all containers, sorted.
    pub fn container_names(&self) -> Vec<String> {
        self.st().containers.keys().cloned().collect()
    }

    /// A copy of the image `reference` (a tag or an ID), if it exists.
    pub fn image_info(&self, reference: &str) -> Option<FakeImage> {
        self.st().image(reference).cloned()
    }

    /// The names of all networks.
    pub fn network_names(&self) -> Vec<String> {
        self.st().networks.keys().cloned().collect()
    }

    /// The names of all volumes.
    pub fn volume_names(&self) -> Vec<String> {
        self.st().volumes.keys().cloned().collect()
    }

    /// Puts an image under `reference` (a base image "already pulled").
    pub fn add_image(&self, reference: &str, labels: HashMap<String, String>) -> String {
        let mut st = self.st();
        let id = format!("sha256:{}", st.new_id(reference));
        let created = st.clock;
        st.tag(
            reference,
            FakeImage {
                id: id.clone(),
                labels,
                size: 80_000_000,
                versions_file: None,
                repo_digests: Vec::new(),
                parent: None,
                created,
                history: vec!["Imported from -".to_string()],
                stage: false,
            },
        );
        id
    }

    /// Puts `image` into the fake registries under the remote `reference`
    /// ("HOST/REPO:TAG"), as a push from another machine would.
    pub fn publish(&self, reference: &str, image: FakeImage) {
        self.st().registry.insert(normalize(reference), image);
    }

    /// What the fake registries hold under `reference`.
    pub fn published(&self, reference: &str) -> Option<FakeImage> {
        self.st().registry.get(&normalize(reference)).cloned()
    }

    /// The registry at `host` stops answering (or answers again).
    pub fn set_registry_down(&self, host: &str, down: bool) {
        let mut st = self.st();
        st.registries_down.retain(|h| h != host);
        if down {
            st.registries_down.push(host.to_string());
        }
    }

    /// The registry at `host` wants `user` and `password`.
    pub fn require_login(&self, host: &str, user: &str, password: &str) {
        self.st()
            .registry_logins
            .insert(host.to_string(), (user.to_string(), password.to_string()));
    }

    /// Puts an untagged image of `size` bytes with these build steps
    /// (newest first) and labels on the engine, as a build leaves one: a
    /// stage of a multi-stage Dockerfile, or anyone's dangling image.
    pub fn add_untagged_image(
        &self,
        history: &[&str],
        labels: HashMap<String, String>,
        size: i64,
    ) -> String {
        let mut st = self.st();
        let id = format!("sha256:{}", st.new_id("untagged"));
        let created = st.clock;
        st.images.insert(
            id.clone(),
            FakeImage {
                id: id.clone(),
                labels,
                size,
                versions_file: None,
                parent: None,
                created,
                history: history.iter().map(|h| h.to_string()).collect(),
                stage: true,
                repo_digests: Vec::new(),
            },
        );
        id
    }

    /// Gives image `reference` (a tag or an ID) the tag `tag` too
    /// (`docker tag`). False when there is no such image.
    pub fn tag_image(&self, reference: &str, tag: &str) -> bool {
        let mut st = self.st();
        match st.image_id_of(reference) {
            Some(id) => {
                st.tags.insert(normalize(tag), id);
                st.drop_untagged();
                true
            }
            None => false,
        }
    }

    /// The IDs of every image the engine holds, tagged or not.
    pub fn image_ids(&self) -> Vec<String> {
        self.st().images.keys().cloned().collect()
    }

    /// The process of container `name` ends with `code`, behind sparkbox's
    /// back (a crash, or `docker stop`). False when there is no such container.
    pub fn exit_container(&self, name: &str, code: i64) -> bool {
        let mut st = self.st();
        match st.containers.get_mut(name) {
            Some(c) => {
                c.state = RunState::Exited(code);
                c.log.push(format!("exited with code {code}"));
                true
            }
            None => false,
        }
    }

    /// Removes container `name` behind sparkbox's back (`docker rm -f`).
    pub fn remove_behind_back(&self, name: &str) -> bool {
        self.st().containers.remove(name).is_some()
    }

    /// Makes the healthcheck of container `name` fail (or pass again).
    pub fn set_unhealthy(&self, name: &str, unhealthy: bool) -> bool {
        match self.st().containers.get_mut(name) {
            Some(c) => {
                c.unhealthy = unhealthy;
                true
            }
            None => false,
        }
    }

    /// `measure-versions` in container `name` reports `value` for `key`
    /// (a package changed inside it). False when there is no such container.
    pub fn set_version(&self, name: &str, key: &str, value: &str) -> bool {
        match self.st().containers.get_mut(name) {
            Some(c) => {
                c.version_overrides
                    .insert(key.to_string(), value.to_string());
                true
            }
            None => false,
        }
    }

    // ---- the image contract ----------------------------------------------

    /// What `command` prints and exits with inside container `name`.
    fn run_in(st: &State, name: &str, command: &[&str]) -> RunOutput {
        let ok = |stdout: String| RunOutput {
            exit_code: 0,
            stdout,
            stderr: String::new(),
        };
        let fail = |code: i64, stderr: &str| RunOutput {
            exit_code: code,
            stdout: String::new(),
            stderr: stderr.to_string(),
        };
        let Some(me) = st.containers.get(name) else {
            return fail(1, "no such container");
        };
        match command {
            [p, "master"] if *p == contract::PROBE => match master_json(st, me) {
                Some(json) => ok(json.to_string()),
                None => fail(1, "master does not answer: connection refused"),
            },
            [p, "wait-workers", hosts, _secs] if *p == contract::PROBE => {
                let Some(json) = master_json(st, me) else {
                    return fail(3, "");
                };
                let alive: Vec<&str> = json["workers"]
                    .as_array()
                    .map(|ws| {
                        ws.iter()
                            .filter(|w| w["state"] == "ALIVE")
                            .filter_map(|w| w["host"].as_str())
                            .collect()
                    })
                    .unwrap_or_default();
                let all = hosts
                    .split(',')
                    .filter(|h| !h.is_empty())
                    .all(|h| alive.contains(&h));
                RunOutput {
                    exit_code: if all { 0 } else { 3 },
                    stdout: json.to_string(),
                    stderr: String::new(),
                }
            }
            [p, "wait-port", host, port, _secs] if *p == contract::PROBE => {
                let listening = st.containers.get(*host).is_some_and(|c| {
                    c.is_running()
                        && c.spec.network == me.spec.network
                        && c.role() == "master"
                        && *port == crate::model::spec::MASTER_PORT.to_string()
                });
                if listening {
                    ok(String::new())
                } else {
                    fail(3, "")
                }
            }
            [h, "--wait", _, role] | [h, role] if *h == contract::HEALTHCHECK => {
                if !["master", "worker", "jupyter", "history", "connect"].contains(role) {
                    return fail(2, "usage: healthcheck [--wait SECONDS] ROLE");
                }
                if me.is_running() && !me.unhealthy && me.role() == *role {
                    ok(String::new())
                } else {
                    fail(1, "unhealthy: connection refused")
                }
            }
            [m] if *m == contract::MEASURE_VERSIONS => {
                let file = st
                    .images
                    .get(&me.image_id)
                    .and_then(|i| i.versions_file.clone());
                match file.and_then(|f| serde_json::from_str::<serde_json::Value>(&f).ok()) {
                    Some(mut json) => {
                        for (k, v) in &me.version_overrides {
                            json[k.as_str()] = serde_json::Value::String(v.clone());
                        }
                        ok(json.to_string())
                    }
                    None => fail(1, "measure-versions: this image measures nothing"),
                }
            }
            [program, ..] => fail(127, &format!("{program}: not simulated by the fake engine")),
            [] => fail(127, "no command"),
        }
    }

    fn exec_now(&self, container: &str, command: &[&str]) -> Result<RunOutput> {
        let st = self.st();
        let action = format!("run {:?} in {container}", command.first().unwrap_or(&""));
        let c = st.container(container, &action)?;
        if !c.is_running() {
            // The engine's 409, which DockerEngine::exec reports as it comes.
            return Err(Error::Engine {
                action,
                detail: format!("Container {} is not running", c.id),
            });
        }
        Ok(FakeEngine::run_in(&st, container, command))
    }
}

/// The master's /json/ as the real one prints it, or None when `master`
/// is not a running master.
fn master_json(st: &State, master: &FakeContainer) -> Option<serde_json::Value> {
    if !master.is_running() || master.role() != "master" {
        return None;
    }
    let url = format!(
        "spark://{}:{}",
        master.name(),
        crate::model::spec::MASTER_PORT
    );
    let workers: Vec<serde_json::Value> = st
        .containers
        .values()
        .filter(|c| c.is_running() && c.role() == "worker")
        .filter(|c| c.spec.network == master.spec.network)
        .filter(|c| c.env(contract::ENV_MASTER_URL) == Some(url.as_str()))
        .map(|c| {
            let cores: u64 = c
                .env(contract::ENV_WORKER_CORES)
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            let memory = c
                .env(contract::ENV_WORKER_MEMORY)
                .and_then(|v| crate::model::spec::parse_memory_mb(v).ok())
                .unwrap_or(1024);
            let ui = c.env(contract::ENV_UI_PORT).unwrap_or("8081");
            serde_json::json!({
                "id": format!("worker-{}-{}-7078", c.started_at, c.name()),
                "host": c.name(),
                "port": 7078,
                "webuiaddress": format!("http://localhost:{ui}"),
                "cores": cores,
                "coresused": 0,
                "coresfree": cores,
                "memory": memory,
                "memoryused": 0,
                "memoryfree": memory,
                "state": "ALIVE",
                "lastheartbeat": c.started_at,
            })
        })
        .collect();
    let cores: u64 = workers.iter().filter_map(|w| w["cores"].as_u64()).sum();
    let memory: u64 = workers.iter().filter_map(|w| w["memory"].as_u64()).sum();
    Some(serde_json::json!({
        "url": url,
        "workers": workers,
        "aliveworkers": workers.len(),
        "cores": cores,
        "coresused": 0,
        "memory": memory,
        "memoryused": 0,
        "resources": [],
        "resourcesused": [],
        "activeapps": [],
        "completedapps": [],
        "activedrivers": [],
        "completeddrivers": [],
        "status": "ALIVE",
    }))
}

/// What `measure-versions --check EXPECTED` writes into the versions file
/// of an image built with these arguments: the expected values, Java and
/// Python with the patch level Debian happens to ship, the extras.
fn measured_versions(build_args: &HashMap<String, String>) -> Option<String> {
    let expected = build_args.get("EXPECTED_VERSIONS")?;
    let mut json: serde_json::Value = serde_json::from_str(expected).ok()?;
    for (key, patch) in [("java", ".0.16"), ("python", ".2")] {
        if let Some(v) = json[key].as_str() {
            json[key] = serde_json::Value::String(format!("{v}{patch}"));
        }
    }
    let mut extra = serde_json::Map::new();
    for spec in build_args
        .get("EXTRA_PYTHON_PACKAGES")
        .map(String::as_str)
        .unwrap_or("")
        .split_whitespace()
    {
        let (name, version) = spec.split_once("==").unwrap_or((spec, "1.0.0"));
        extra.insert(name.to_string(), serde_json::Value::String(version.into()));
    }
    if !extra.is_empty() {
        json["extra"] = serde_json::Value::Object(extra);
    }
    Some(json.to_string())
}

/// The assignments of the generated recipe in a build context (KEY='value'
/// lines, as the install script sources them).
fn recipe_of(context: &[u8]) -> HashMap<String, String> {
    let path = contract::RECIPE_FILE;
    let text = file_in_tar(context, path).unwrap_or_default();
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, quoted)| {
            let value = quoted
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(quoted)
                .replace("'\\''", "'");
            (key.to_string(), value)
        })
        .collect()
}

/// The text of the file `path` in a tar ("/a/b", "./a/b" and "a/b" alike).
fn file_in_tar(tar: &[u8], path: &str) -> Option<String> {
    let wanted = path.trim_start_matches('/');
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().ok()? {
        let mut entry = entry.ok()?;
        let name = entry.path().ok()?.to_string_lossy().to_string();
        if name.trim_start_matches("./").trim_start_matches('/') == wanted {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).ok()?;
            return Some(text);
        }
    }
    None
}

/// A root filesystem tar holding the versions file (when there is one).
fn rootfs_tar(versions_file: Option<&str>) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    if let Some(text) = versions_file {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(
            &mut header,
            contract::VERSIONS_FILE.trim_start_matches('/'),
            text.as_bytes(),
        )?;
    }
    builder.into_inner()
}

/// The Dockerfile's instructions, continuation lines joined.
fn instructions(dockerfile: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}

/// The key="value" pairs of a LABEL instruction's arguments.
fn label_pairs(text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    other => value.push(other),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        pairs.push((key.trim().to_string(), value));
    }
    pairs
}

/// A build step as the classic builder records it in the image's history.
fn history_text(word: &str, rest: &str) -> String {
    use sha2::{Digest, Sha256};
    match word.to_ascii_uppercase().as_str() {
        "RUN" => format!("/bin/sh -c {rest}"),
        "COPY" | "ADD" => {
            let mut parts: Vec<&str> = rest.split_whitespace().collect();
            let dest = parts.pop().unwrap_or("/");
            let source = parts.join(" ");
            let kind = if source.ends_with('/') { "dir" } else { "file" };
            let digest = Sha256::digest(source.as_bytes());
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            format!(
                "/bin/sh -c #(nop) {} {kind}:{hex} in {dest} ",
                word.to_ascii_uppercase()
            )
        }
        other => format!("/bin/sh -c #(nop)  {other} {rest}"),
    }
}

/// `${NAME}` and `$NAME` replaced by build arguments.
fn substitute(text: &str, args: &HashMap<String, String>) -> String {
    let mut out = text.to_string();
    for (k, v) in args {
        out = out.replace(&format!("${{{k}}}"), v);
        out = out.replace(&format!("${k}"), v);
    }
    out
}

impl Engine for FakeEngine {
    fn info(&self) -> &EngineInfo {
        &self.info
    }

    async fn image(&self, reference: &str) -> Result<Option<ImageInfo>> {
        self.gate(Call::Image, reference).await?;
        Ok(self.st().image(reference).map(|i| ImageInfo {
            id: i.id.clone(),
            labels: i.labels.clone(),
            size: i.size,
            repo_digests: i.repo_digests.clone(),
        }))
    }

    async fn pull_with(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
        on_line: &mut (dyn FnMut(String) + Send),
    ) -> Result<()> {
        self.gate(Call::Pull, reference).await?;
        let action = format!("pull {reference}");
        let Some(host) = registry_host(reference) else {
            // A plain name ("debian:bookworm-slim"): the public registry of
            // the tests has every such image.
            if self.st().image(reference).is_none() {
                self.add_image(reference, HashMap::new());
            }
            return Ok(());
        };
        let mut st = self.st();
        st.registry_check(host, auth, &action)?;
        let key = normalize(reference);
        let Some(mut image) = st.registry.get(&key).cloned() else {
            return Err(Error::Engine {
                action,
                detail: format!(
                    "manifest for {reference} not found: manifest unknown: manifest unknown"
                ),
            });
        };
        on_line(format!(
            "{}: Pull complete",
            &image.id[..image.id.len().min(19)]
        ));
        let digest = fake_digest(&image.id);
        let repo = super::split_reference(reference).0;
        if let Some(local) = st.image(&image.id) {
            image.repo_digests = local.repo_digests.clone();
        }
        let entry = format!("{repo}@{digest}");
        if !image.repo_digests.contains(&entry) {
            image.repo_digests.push(entry);
        }
        st.tag(reference, image);
        Ok(())
    }

    async fn push(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
        on_line: &mut (dyn FnMut(String) + Send),
    ) -> Result<()> {
        self.gate(Call::Push, reference).await?;
        let action = format!("push {reference}");
        let mut st = self.st();
        let Some(image) = st.image(reference).cloned() else {
            return Err(Error::Engine {
                action,
                detail: format!("An image does not exist locally with the tag: {reference}"),
            });
        };
        let host = registry_host(reference).unwrap_or_default();
        st.registry_check(host, auth, &action)?;
        let digest = fake_digest(&image.id);
        let (repo, tag) = super::split_reference(reference);
        on_line(format!("{tag}: digest: {digest} size: 1234"));
        let entry = format!("{repo}@{digest}");
        if let Some(local) = st.images.get_mut(&image.id) {
            if !local.repo_digests.contains(&entry) {
                local.repo_digests.push(entry);
            }
        }
        let mut remote = image;
        remote.repo_digests.clear();
        st.registry.insert(normalize(reference), remote);
        Ok(())
    }

    async fn tag(&self, source: &str, target: &str) -> Result<()> {
        self.gate(Call::Tag, target).await?;
        let mut st = self.st();
        let image = st.image(source).cloned().ok_or_else(|| Error::Gone {
            action: format!("tag {source} as {target}"),
            object: format!("the image {source}"),
            detail: format!("No such image: {source}"),
        })?;
        st.tag(target, image);
        Ok(())
    }

    async fn import_rootfs(
        &self,
        mut rootfs: ByteStream,
        reference: &str,
        changes: Vec<String>,
    ) -> Result<String> {
        self.gate(Call::ImportRootfs, reference).await?;
        let mut tar = Vec::new();
        while let Some(chunk) = rootfs.next().await {
            let chunk =
                chunk.map_err(|e| Error::Io(format!("cannot read the root filesystem: {e}")))?;
            tar.extend_from_slice(&chunk);
        }
        let labels = changes
            .iter()
            .filter_map(|c| c.strip_prefix("LABEL "))
            .flat_map(label_pairs)
            .collect();
        let id = self.add_image(reference, labels);
        let versions_file = file_in_tar(&tar, contract::VERSIONS_FILE);
        if let Some(image) = self.st().images.get_mut(&id) {
            image.versions_file = versions_file;
        }
        Ok(id)
    }

    async fn build(
        &self,
        context: Vec<u8>,
        request: &BuildRequest,
        on_event: &mut (dyn FnMut(BuildEvent) + Send),
    ) -> Result<String> {
        self.gate(Call::Build, &request.tag).await?;
        let action = format!("build {}", request.tag);
        let dockerfile = file_in_tar(&context, "Dockerfile").ok_or_else(|| Error::Engine {
            action: action.clone(),
            detail: "Cannot locate specified Dockerfile: Dockerfile".into(),
        })?;
        let steps = instructions(&dockerfile);
        // What the install step reads: the build args and the generated recipe.
        let mut recipe = request.build_args.clone();
        recipe.extend(recipe_of(&context));
        let total = u32::try_from(steps.len()).unwrap_or(u32::MAX);
        let mut labels = HashMap::new();
        let mut versions_file = None;
        // The stage being built: its base image and its steps as `docker
        // history` writes them, oldest first.
        let mut stage: Option<(Option<String>, Vec<String>)> = None;
        for (i, step) in steps.iter().enumerate() {
            on_event(BuildEvent::Step {
                n: u32::try_from(i + 1).unwrap_or(u32::MAX),
                total,
                text: step.clone(),
            });
            let (word, rest) = step.split_once(' ').unwrap_or((step.as_str(), ""));
            match word.to_ascii_uppercase().as_str() {
                "FROM" => {
                    let from = substitute(rest, &request.build_args);
                    let from = from.split_whitespace().next().unwrap_or("");
                    // A new stage starts from the labels of its base; the
                    // stage before it stays behind, untagged.
                    labels.clear();
                    let mut st = self.st();
                    if let Some((parent, history)) = stage.take() {
                        st.leave_stage(parent, history, &request.build_args);
                    }
                    let mut parent = None;
                    if from != "scratch" {
                        let base = st.image(from).ok_or_else(|| Error::Engine {
                            action: action.clone(),
                            detail: format!(
                                "pull access denied for {from}, repository does not exist"
                            ),
                        })?;
                        labels.clone_from(&base.labels);
                        if base.versions_file.is_some() {
                            versions_file.clone_from(&base.versions_file);
                        }
                        parent = Some(base.id.clone());
                    }
                    stage = Some((parent, Vec::new()));
                    on_event(BuildEvent::Output(" ---> done (fake)".into()));
                    continue;
                }
                "LABEL" => labels.extend(label_pairs(rest)),
                "RUN" => {
                    if let Some(measured) = measured_versions(&recipe) {
                        versions_file = Some(measured);
                    }
                }
                _ => {}
            }
            if let Some((_, history)) = stage.as_mut() {
                history.push(history_text(word, &substitute(rest, &request.build_args)));
            }
            on_event(BuildEvent::Output(" ---> done (fake)".into()));
        }
        labels.extend(request.labels.clone());
        let mut st = self.st();
        let id = format!("sha256:{}", st.new_id(&request.tag));
        let (parent, mut history) = stage.unwrap_or_default();
        history.reverse();
        if let Some(base) = parent.as_ref().and_then(|p| st.images.get(p)) {
            history.extend(base.history.iter().cloned());
        }
        let created = st.clock;
        st.tag(
            &request.tag,
            FakeImage {
                id: id.clone(),
                labels,
                size: 1_500_000_000,
                versions_file,
                repo_digests: Vec::new(),
                parent,
                created,
                history,
                stage: false,
            },
        );
        Ok(id)
    }

    async fn run_to_completion(&self, image: &str, command: &[&str]) -> Result<RunOutput> {
        self.gate(Call::RunToCompletion, image).await?;
        let st = self.st();
        let found = st.image(image).ok_or_else(|| Error::Gone {
            action: format!("create a container from {image}"),
            object: format!("image {image}"),
            detail: format!("No such image: {image}"),
        })?;
        let file = found.versions_file.clone();
        Ok(match (command, file) {
            (["cat", path] | [path], Some(text))
                if *path == contract::VERSIONS_FILE || *path == contract::MEASURE_VERSIONS =>
            {
                RunOutput {
                    exit_code: 0,
                    stdout: text,
                    stderr: String::new(),
                }
            }
            ([program, ..], _) => RunOutput {
                exit_code: 1,
                stdout: String::new(),
                stderr: format!("{program}: {} has no such file", image),
            },
            ([], _) => RunOutput {
                exit_code: 127,
                stdout: String::new(),
                stderr: "no command".into(),
            },
        })
    }

    async fn remove_image(&self, reference: &str) -> Result<()> {
        self.gate(Call::RemoveImage, reference).await?;
        let mut st = self.st();
        if st.images.remove(reference).is_some() {
            st.tags.retain(|_, id| id != reference);
        } else {
            st.tags.remove(&normalize(reference));
        }
        st.drop_untagged();
        Ok(())
    }

    fn export_image(&self, reference: &str) -> BoxStream<'static, Result<Bytes>> {
        self.st()
            .log
            .push((Call::ExportImage, format!("export_image {reference}")));
        let error = Error::Engine {
            action: format!("save the image {reference}"),
            detail: "the fake engine keeps no layers to save".into(),
        };
        futures_util::stream::once(async move { Err(error) }).boxed()
    }

    fn export_container(&self, name: &str) -> BoxStream<'static, Result<Bytes>> {
        let mut st = self.st();
        st.log
            .push((Call::ExportContainer, format!("export_container {name}")));
        let action = format!("export the container {name}");
        let Some(container) = st.containers.get(name) else {
            let error = gone(&action, name);
            return futures_util::stream::once(async move { Err(error) }).boxed();
        };
        // The fake's filesystems hold one file: the versions file, if any.
        let versions_file = st
            .images
            .get(&container.image_id)
            .and_then(|i| i.versions_file.clone());
        let tar = rootfs_tar(versions_file.as_deref()).map_err(|e| Error::Engine {
            action,
            detail: e.to_string(),
        });
        futures_util::stream::once(async move { tar.map(Bytes::from) }).boxed()
    }

    async fn import_image(&self, _archive: ByteStream) -> Result<Vec<String>> {
        self.gate(Call::ImportImage, "").await?;
        Err(Error::Engine {
            action: "load the image archive".into(),
            detail: "the fake engine cannot read save archives".into(),
        })
    }

    async fn images(&self, labels: &[(&str, &str)]) -> Result<Vec<ImageSummary>> {
        self.gate(Call::Images, &filter_text(labels)).await?;
        let st = self.st();
        Ok(st
            .images
            .values()
            .filter(|i| matches(&i.labels, labels))
            .map(|i| ImageSummary {
                id: i.id.clone(),
                parent_id: i.parent.clone(),
                repo_tags: st.tags_of(&i.id),
                labels: i.labels.clone(),
                size: i.size,
                created: i.created as i64,
            })
            .collect())
    }

    async fn image_history(&self, reference: &str) -> Result<Vec<String>> {
        self.gate(Call::Images, reference).await?;
        self.st()
            .image(reference)
            .map(|i| i.history.clone())
            .ok_or_else(|| Error::Gone {
                action: format!("read the history of {reference}"),
                object: format!("the image {reference}"),
                detail: format!("No such image: {reference}"),
            })
    }

    async fn remove_image_unforced(&self, reference: &str) -> Result<()> {
        self.gate(Call::RemoveImageUnforced, reference).await?;
        let mut st = self.st();
        let Some(id) = st.image_id_of(reference) else {
            return Ok(());
        };
        let tags = st.tags_of(&id);
        if reference != id {
            if tags.len() <= 1 {
                if let Some(conflict) = st.removal_conflict(reference, &id) {
                    return Err(conflict);
                }
            }
            st.tags.remove(&normalize(reference));
            let still_needed = tags.len() > 1
                || st
                    .images
                    .values()
                    .any(|i| i.parent.as_deref() == Some(id.as_str()));
            if !still_needed {
                st.delete_with_parents(&id);
            }
            return Ok(());
        }
        if tags.len() > 1 {
            return Err(Error::InUse {
                image: reference.to_string(),
                detail: format!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    short_id(&id)
                ),
            });
        }
        if let Some(conflict) = st.removal_conflict(reference, &id) {
            return Err(conflict);
        }
        for tag in tags {
            st.tags.remove(&tag);
        }
        st.delete_with_parents(&id);
        Ok(())
    }

    async fn containers(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerState>> {
        self.gate(Call::Containers, &filter_text(labels)).await?;
        let st = self.st();
        Ok(st
            .containers
            .values()
            .filter(|c| matches(&c.spec.labels, labels))
            .map(FakeContainer::view)
            .map(|mut c| {
                if let Some(id) = &c.node {
                    if let Some(n) = st.swarm_nodes.iter().find(|n| &n.id == id) {
                        c.node = Some(n.hostname.clone());
                    }
                }
                c
            })
            .collect())
    }

    async fn networks(&self, labels: &[(&str, &str)]) -> Result<Vec<String>> {
        self.gate(Call::Networks, &filter_text(labels)).await?;
        Ok(names_matching(&self.st().networks, labels))
    }

    async fn volumes(&self, labels: &[(&str, &str)]) -> Result<Vec<String>> {
        self.gate(Call::Volumes, &filter_text(labels)).await?;
        Ok(names_matching(&self.st().volumes, labels))
    }

    async fn create_network(&self, name: &str, labels: HashMap<String, String>) -> Result<()> {
        self.gate(Call::CreateNetwork, name).await?;
        let mut st = self.st();
        if st.networks.contains_key(name) {
            return Err(Error::name_conflict(
                format!("create network {name}"),
                "network",
                name,
                format!("network with name {name} already exists"),
            ));
        }
        st.networks.insert(name.to_string(), labels);
        Ok(())
    }

    async fn remove_network(&self, name: &str) -> Result<()> {
        self.gate(Call::RemoveNetwork, name).await?;
        let mut st = self.st();
        let in_use = st
            .containers
            .values()
            .any(|c| c.is_running() && c.spec.network == name);
        if in_use {
            return Err(Error::Engine {
                action: format!("remove network {name}"),
                detail: format!(
                    "error while removing network: network {name} has active endpoints"
                ),
            });
        }
        st.networks.remove(name);
        Ok(())
    }

    async fn create_volume(&self, name: &str, labels: HashMap<String, String>) -> Result<()> {
        self.gate(Call::CreateVolume, name).await?;
        // The engine answers an existing name with the existing volume.
        self.st().volumes.entry(name.to_string()).or_insert(labels);
        Ok(())
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        self.gate(Call::RemoveVolume, name).await?;
        let mut st = self.st();
        let user = st
            .containers
            .values()
            .find(|c| volumes_of(&c.spec).any(|v| v == name))
            .map(|c| c.id.clone());
        if let Some(id) = user {
            return Err(Error::Engine {
                action: format!("remove volume {name}"),
                detail: format!("remove {name}: volume is in use - [{id}]"),
            });
        }
        st.volumes.remove(name);
        Ok(())
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        self.gate(Call::CreateContainer, &spec.name).await?;
        let action = format!("create container {}", spec.name);
        let late = {
            let mut st = self.st();
            let found = st.late_creates.iter().position(|n| n == &spec.name);
            found.map(|i| st.late_creates.remove(i)).is_some()
        };
        if late {
            self.insert_container(spec, &action)?;
        }
        let st = self.st();
        if let Some(existing) = st.containers.get(&spec.name) {
            let detail = format!(
                "Conflict. The container name \"/{}\" is already in use by container \"{}\"",
                spec.name, existing.id
            );
            return Err(Error::name_conflict(
                action,
                "container",
                &spec.name,
                detail,
            ));
        }
        drop(st);
        self.insert_container(spec, &action)
    }

    fn port_free(&self, address: &str, port: u16) -> bool {
        // The fake's own published ports, never this machine's: the ring
        // does not depend on what else runs here.
        !self.st().containers.values().any(|c| {
            c.is_running()
                && c.spec.ports.iter().any(|q| {
                    q.host_port == port
                        && (q.host_ip == address || q.host_ip == "0.0.0.0" || address == "0.0.0.0")
                })
        })
    }

    async fn start_container(&self, name: &str) -> Result<()> {
        self.gate(Call::StartContainer, name).await?;
        let action = format!("start {name}");
        let mut st = self.st();
        let me = st.container(name, &action)?;
        if me.is_running() {
            return Ok(());
        }
        let taken = me.spec.ports.iter().find(|p| {
            st.containers.values().any(|other| {
                other.is_running()
                    && other.spec.ports.iter().any(|q| {
                        q.host_port == p.host_port
                            && (q.host_ip == p.host_ip
                                || q.host_ip == "0.0.0.0"
                                || p.host_ip == "0.0.0.0")
                    })
            })
        });
        if let Some(p) = taken {
            return Err(Error::PortTaken(format!(
                "cannot start {name}: a port it publishes is taken (Bind for {}:{} failed: port is already allocated) — choose another port or stop the program using it",
                p.host_ip, p.host_port
            )));
        }
        let now = st.tick();
        if let Some(c) = st.containers.get_mut(name) {
            c.state = RunState::Running;
            c.start_count += 1;
            c.started_at = now;
            c.log
                .push(format!("starting {} (start {})", c.role(), c.start_count));
        }
        Ok(())
    }

    async fn stop_container(&self, name: &str, _timeout_s: i32) -> Result<()> {
        self.gate(Call::StopContainer, name).await?;
        let action = format!("stop {name}");
        let mut st = self.st();
        st.container(name, &action)?;
        if let Some(c) = st.containers.get_mut(name) {
            if c.is_running() {
                c.state = RunState::Exited(143);
                c.log.push("stopped (SIGTERM)".into());
            }
        }
        Ok(())
    }

    async fn keep_running(&self, name: &str) -> Result<()> {
        self.gate(Call::KeepRunning, name).await?;
        let action = format!("set the restart policy of {name}");
        let mut st = self.st();
        st.container(name, &action)?;
        if let Some(c) = st.containers.get_mut(name) {
            c.keep_running = true;
        }
        Ok(())
    }

    async fn remove_container(&self, name: &str) -> Result<()> {
        self.gate(Call::RemoveContainer, name).await?;
        let mut st = self.st();
        st.containers.remove(name);
        st.drop_untagged();
        Ok(())
    }

    async fn exec(&self, container: &str, command: &[&str]) -> Result<RunOutput> {
        self.gate(Call::Exec, &format!("{container} {}", command.join(" ")))
            .await?;
        self.exec_now(container, command)
    }

    async fn exec_attached(&self, container: &str, request: &ExecRequest) -> Result<ExecSession> {
        self.gate(
            Call::ExecAttached,
            &format!("{container} {}", request.command.join(" ")),
        )
        .await?;
        let command: Vec<&str> = request.command.iter().map(String::as_str).collect();
        let out = self.exec_now(container, &command)?;
        let id = {
            let mut st = self.st();
            let id = st.new_id(container);
            st.execs.insert(id.clone(), out.exit_code);
            id
        };
        let mut chunks = vec![Ok(ExecChunk::Stdout(Bytes::from(out.stdout)))];
        if !out.stderr.is_empty() {
            chunks.push(Ok(ExecChunk::Stderr(Bytes::from(out.stderr))));
        }
        Ok(ExecSession {
            id,
            output: futures_util::stream::iter(chunks).boxed(),
            input: Box::pin(tokio::io::sink()),
        })
    }

    async fn exec_resize(&self, exec_id: &str, _columns: u16, _rows: u16) -> Result<()> {
        self.gate(Call::ExecResize, exec_id).await?;
        Ok(())
    }

    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>> {
        self.gate(Call::ExecExitCode, exec_id).await?;
        self.st()
            .execs
            .get(exec_id)
            .copied()
            .map(Some)
            .ok_or_else(|| Error::Gone {
                action: "read the exit code of the command".into(),
                object: format!("exec {exec_id}"),
                detail: format!("No such exec instance: {exec_id}"),
            })
    }

    async fn upload_tar(&self, container: &str, dir: &str, _tar: Vec<u8>) -> Result<()> {
        self.gate(Call::UploadTar, &format!("{container}:{dir}"))
            .await?;
        let action = format!("copy files into {container}:{dir}");
        self.st().container(container, &action).map(|_| ())
    }

    fn log_stream(
        &self,
        container: &str,
        _follow: bool,
        tail: Option<usize>,
        _since: Option<i64>,
    ) -> BoxStream<'static, Result<String>> {
        let mut st = self.st();
        st.log.push((Call::Logs, format!("logs {container}")));
        let item = match st.containers.get(container) {
            Some(c) => {
                let skip = tail.map(|t| c.log.len().saturating_sub(t)).unwrap_or(0);
                let mut text = c.log[skip..].join("\n");
                text.push('\n');
                Ok(text)
            }
            None => Err(gone(&format!("read the log of {container}"), container)),
        };
        futures_util::stream::once(async move { item }).boxed()
    }

    fn timestamped_log(&self, container: &str) -> BoxStream<'static, Result<Bytes>> {
        let mut st = self.st();
        st.log
            .push((Call::Logs, format!("timestamped logs {container}")));
        let item = match st.containers.get(container) {
            Some(c) => {
                let text: String = c
                    .log
                    .iter()
                    .enumerate()
                    .map(|(i, line)| format!("2026-01-01T00:00:{:02}.000000000Z {line}\n", i % 60))
                    .collect();
                Ok(Bytes::from(text))
            }
            None => Err(gone(&format!("read the log of {container}"), container)),
        };
        futures_util::stream::once(async move { item }).boxed()
    }

    async fn inspect_container(&self, name: &str) -> Result<serde_json::Value> {
        let mut st = self.st();
        st.log.push((Call::Inspect, format!("inspect {name}")));
        let c = st
            .containers
            .get(name)
            .ok_or_else(|| gone(&format!("inspect {name}"), name))?;
        let view = c.view();
        Ok(serde_json::json!({
            "Id": c.id,
            "Name": format!("/{name}"),
            "Image": c.image_id,
            "Config": {
                "Image": c.spec.image,
                "Cmd": c.spec.command,
                "Env": c.spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
                "Labels": c.spec.labels,
            },
            "State": {
                "Status": view.state,
                "Running": c.is_running(),
                "StartedAt": c.started_at,
            },
            "HostConfig": { "Binds": c.spec.binds },
        }))
    }

    async fn swarm_nodes(&self) -> Result<Vec<super::SwarmNode>> {
        self.gate(Call::Inspect, "swarm nodes").await?;
        let nodes = self.st().swarm_nodes.clone();
        if nodes.is_empty() {
            return Err(super::not_a_manager(&self.info.host));
        }
        Ok(nodes)
    }

    async fn check_host_paths(
        &self,
        cluster: &str,
        image: &str,
        uses: &[super::HostPathUse],
        _timeout: std::time::Duration,
    ) -> Result<()> {
        self.gate(Call::Inspect, &format!("check host paths with {image}"))
            .await?;
        let st = self.st();
        if st.swarm_nodes.is_empty() {
            return Ok(());
        }
        for u in uses {
            let lacking: Vec<String> = st
                .swarm_nodes
                .iter()
                .filter(|n| {
                    n.ready
                        && u.constraints
                            .iter()
                            .any(|c| super::swarm::node_matches(n, c))
                        && st
                            .missing_paths
                            .iter()
                            .any(|(id, p)| *id == n.id && *p == u.path)
                })
                .map(|n| n.hostname.clone())
                .collect();
            if !lacking.is_empty() {
                return Err(super::swarm::missing_path_error(cluster, &u.path, &lacking));
            }
        }
        Ok(())
    }

    async fn system_info(&self) -> Result<SystemInfo> {
        let mut st = self.st();
        st.log.push((Call::Inspect, "system info".to_string()));
        let running = st.containers.values().filter(|c| c.is_running()).count();
        Ok(SystemInfo {
            os: Some("linux".to_string()),
            storage_driver: Some("fake".to_string()),
            cpus: Some(2),
            memory_bytes: Some(24 * 1024 * 1024 * 1024),
            containers_running: Some(running as i64),
            ..Default::default()
        })
    }
}

/// The names of the objects whose labels match the filter.
fn names_matching<'a>(
    objects: impl IntoIterator<Item = (&'a String, &'a HashMap<String, String>)>,
    labels: &[(&str, &str)],
) -> Vec<String> {
    objects
        .into_iter()
        .filter(|(_, l)| matches(l, labels))
        .map(|(n, _)| n.clone())
        .collect()
}

fn filter_text(labels: &[(&str, &str)]) -> String {
    super::label_selectors(labels).join(",")
}

/// The named volumes a container's binds use (sources that are not paths).
fn volumes_of(spec: &ContainerSpec) -> impl Iterator<Item = &str> {
    spec.binds
        .iter()
        .filter_map(|b| b.split(':').next())
        .filter(|source| !source.starts_with('/') && !source.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::labels;

    fn spec(name: &str, role: &str, network: &str, image: &str) -> ContainerSpec {
        ContainerSpec {
            name: name.into(),
            image: image.into(),
            command: vec![role.into()],
            network: network.into(),
            labels: HashMap::from([
                (labels::CLUSTER.to_string(), "t".to_string()),
                (labels::ROLE.to_string(), role.to_string()),
            ]),
            healthcheck: Some(vec![contract::HEALTHCHECK.into(), role.into()]),
            ..Default::default()
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    }

    #[test]
    fn label_filters_match_as_the_engines() {
        let l = HashMap::from([("a".to_string(), "1".to_string())]);
        assert!(matches(&l, &[("a", "")]));
        assert!(matches(&l, &[("a", "1")]));
        assert!(!matches(&l, &[("a", "2")]));
        assert!(!matches(&l, &[("b", "")]));
        assert!(matches(&l, &[]));
    }

    #[test]
    fn containers_need_image_and_network_and_names_conflict() {
        rt().block_on(async {
            let e = FakeEngine::new();
            let s = spec("t-master", "master", "t-net", "img:1");
            let no_image = e.create_container(&s).await.expect_err("no image yet");
            assert!(
                no_image.to_string().contains("No such image: img:1"),
                "{no_image}"
            );
            e.add_image("img:1", HashMap::new());
            let no_net = e.create_container(&s).await.expect_err("no network yet");
            assert!(no_net.to_string().contains("network t-net"), "{no_net}");
            e.create_network("t-net", HashMap::new())
                .await
                .expect("net");
            let id = e.create_container(&s).await.expect("created");
            let again = e.create_container(&s).await.expect_err("409");
            assert!(
                matches!(&again, Error::NameConflict { name, .. } if name == "t-master"),
                "{again}"
            );
            let listed = e.containers(&[(labels::ROLE, "")]).await.expect("list");
            assert_eq!(listed.len(), 1);
            assert_eq!(listed[0].id, id);
            assert_eq!(listed[0].state, "created");
            assert_eq!(listed[0].health, None);
            e.start_container("t-master").await.expect("start");
            e.start_container("t-master")
                .await
                .expect("a second start is a 304");
            let c = e.container("t-master").expect("there");
            assert_eq!((c.start_count, c.is_running()), (1, true));
            let listed = e.containers(&[(labels::CLUSTER, "t")]).await.expect("list");
            assert_eq!(listed[0].health.as_deref(), Some("healthy"));
            e.remove_container("t-master").await.expect("removed");
            e.remove_container("t-master")
                .await
                .expect("missing is fine");
            let start = e.start_container("t-master").await.expect_err("404");
            assert!(matches!(start, Error::Gone { .. }), "{start}");
        });
    }

    #[test]
    fn the_master_lists_running_workers_of_its_url() {
        rt().block_on(async {
            let e = FakeEngine::new();
            e.add_image("img:1", HashMap::new());
            e.create_network("t-net", HashMap::new())
                .await
                .expect("net");
            for s in [
                spec("t-master", "master", "t-net", "img:1"),
                {
                    let mut w = spec("t-worker-1", "worker", "t-net", "img:1");
                    w.env = vec![
                        (
                            contract::ENV_MASTER_URL.into(),
                            "spark://t-master:7077".into(),
                        ),
                        (contract::ENV_WORKER_CORES.into(), "2".into()),
                        (contract::ENV_WORKER_MEMORY.into(), "2g".into()),
                    ];
                    w
                },
                {
                    let mut w = spec("t-worker-2", "worker", "t-net", "img:1");
                    w.env = vec![(contract::ENV_MASTER_URL.into(), "spark://other:7077".into())];
                    w
                },
            ] {
                e.create_container(&s).await.expect("create");
                e.start_container(&s.name).await.expect("start");
            }
            let out = e
                .exec(
                    "t-master",
                    &[contract::PROBE, "wait-workers", "t-worker-1", "2"],
                )
                .await
                .expect("exec");
            assert_eq!(out.exit_code, 0, "{out:?}");
            let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
            assert_eq!(json["workers"].as_array().map(Vec::len), Some(1));
            assert_eq!(json["cores"], 2);
            assert_eq!(json["memory"], 2048);
            e.exit_container("t-worker-1", 137);
            let out = e
                .exec(
                    "t-master",
                    &[contract::PROBE, "wait-workers", "t-worker-1", "2"],
                )
                .await
                .expect("exec");
            assert_eq!(out.exit_code, 3);
            let hc = e
                .exec("t-worker-1", &[contract::HEALTHCHECK, "worker"])
                .await
                .expect_err("not running: the engine's 409");
            assert!(hc.to_string().contains("not running"), "{hc}");
        });
    }

    #[test]
    fn faults_fire_once_on_the_nth_call() {
        rt().block_on(async {
            let e = FakeEngine::new();
            e.fail_nth(
                Call::Networks,
                2,
                Error::DockerUnreachable {
                    host: "x".into(),
                    detail: "y".into(),
                },
            );
            e.networks(&[]).await.expect("first passes");
            let err = e.networks(&[]).await.expect_err("second fails");
            assert!(matches!(err, Error::DockerUnreachable { .. }));
            e.networks(&[]).await.expect("third passes");
            e.set_unreachable(true);
            assert!(e.image("x").await.is_err());
            e.set_unreachable(false);
            assert_eq!(e.calls().len(), 4);
        });
    }

    #[test]
    fn a_pause_blocks_the_nth_mutation_and_everything_after() {
        rt().block_on(async {
            let e = FakeEngine::new();
            e.pause_at_mutation(2);
            let work = async {
                e.create_network("a", HashMap::new()).await?;
                e.create_network("b", HashMap::new()).await?;
                e.create_network("c", HashMap::new()).await
            };
            tokio::select! {
                _ = work => panic!("the second call should block"),
                _ = e.paused() => {}
            }
            assert_eq!(e.network_names(), vec!["a".to_string()]);
            e.release();
            e.create_network("c", HashMap::new())
                .await
                .expect("released");
            assert_eq!(e.network_names().len(), 2);
        });
    }

    #[test]
    fn builds_measure_their_recipe_and_an_export_imports_with_labels() {
        rt().block_on(async {
            let e = FakeEngine::new();
            let mut b = tar::Builder::new(Vec::new());
            for (path, text) in [
                (
                    "Dockerfile",
                    "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY . /tmp/ctx/\nRUN sh /tmp/ctx/install \\\n && true\n",
                ),
                (
                    contract::RECIPE_FILE,
                    "# recipe\nEXPECTED_VERSIONS='{\"java\":\"17\",\"spark\":\"4\"}'\nEXTRA_PYTHON_PACKAGES='tabulate==0.9.0'\n",
                ),
            ] {
                let mut h = tar::Header::new_gnu();
                h.set_size(text.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                b.append_data(&mut h, path, text.as_bytes()).expect("append");
            }
            let context = b.into_inner().expect("tar");
            let mut request = BuildRequest {
                tag: "x:1-stage".into(),
                ..Default::default()
            };
            request.build_args.insert("BASE_IMAGE".into(), "debian:b".into());
            let mut events = Vec::new();
            let missing = e
                .build(context.clone(), &request, &mut |ev| events.push(ev))
                .await
                .expect_err("no base");
            assert!(missing.to_string().contains("debian:b"), "{missing}");
            e.add_image("debian:b", HashMap::new());
            let stage = e
                .build(context, &request, &mut |ev| events.push(ev))
                .await
                .expect("built");
            assert!(events.contains(&BuildEvent::Step {
                n: 1,
                total: 4,
                text: "ARG BASE_IMAGE".into()
            }));
            // A container that never runs, exported into an import.
            e.create_container(&ContainerSpec {
                name: "export".into(),
                image: stage,
                ..Default::default()
            })
            .await
            .expect("created without a network");
            let rootfs = e
                .export_container("export")
                .map(|c| c.map_err(|err| std::io::Error::other(err.to_string())))
                .boxed();
            e.import_rootfs(rootfs, "x:1", vec![r#"LABEL k="{\"a\":\"b\"}""#.into()])
                .await
                .expect("imported");
            let img = e.image("x:1").await.expect("ok").expect("present");
            assert_eq!(img.labels.get("k").map(String::as_str), Some(r#"{"a":"b"}"#));
            let out = e
                .run_to_completion("x:1", &["cat", contract::VERSIONS_FILE])
                .await
                .expect("ran");
            assert!(out.stdout.contains(r#""java":"17.0.16""#), "{out:?}");
            assert!(out.stdout.contains(r#""tabulate":"0.9.0""#), "{out:?}");
            let gone = e.export_container("nothing").next().await;
            assert!(matches!(gone, Some(Err(Error::Gone { .. }))), "{gone:?}");
        });
    }
}
