//! Turns the desired cluster (plus the ports and token settled against what
//! exists) into the exact containers, network and volume to have.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

use crate::engine::{ContainerSpec, PortPublish};
use crate::model::contract;
use crate::model::labels;
use crate::model::spec::{self, ClusterSpec, Names, Role};

/// Where notebooks live inside the Jupyter container.
pub const NOTEBOOKS_DIR: &str = "/home/spark/notebooks";

/// One Jupyter server's settled values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JupyterSlot {
    /// 0 for the one Jupyter of a cluster without students, else the student.
    pub index: u32,
    /// Jupyter host port.
    pub port: u16,
    /// First of [`spec::APP_UI_PORTS`] consecutive application UI host ports
    /// (the drivers' spark.ui.port; Spark takes the next one when it is in use).
    pub app_ui_port: u16,
    /// Its token.
    pub token: String,
    /// Its notebooks volume.
    pub notebooks_volume: String,
}

/// Values settled against the engine before planning: ports and tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The image tag all containers run.
    pub image_tag: String,
    /// Master UI host port (also its port inside the container, so UI links work).
    pub master_ui_port: u16,
    /// The Jupyter servers, in index order (never empty).
    pub jupyters: Vec<JupyterSlot>,
    /// The Spark RPC secret (when ports are published beyond this machine).
    pub secret: Option<String>,
    /// The history server's UI host port, when it runs.
    pub history_port: Option<u16>,
    /// The Spark Connect server's host port, when it runs.
    pub connect_port: Option<u16>,
    /// Worker UI host port per worker number.
    pub worker_ui_ports: BTreeMap<u32, u16>,
    /// On a swarm: where each service goes.
    pub placement: Option<crate::plan::place::Placement>,
}

impl Resolved {
    /// The first Jupyter server (the only one without students).
    pub fn first_jupyter(&self) -> Option<&JupyterSlot> {
        self.jupyters.first()
    }
}

/// Everything the cluster should consist of.
#[derive(Debug, Clone)]
pub struct Desired {
    /// Cluster name.
    pub cluster: String,
    /// Image tag.
    pub image_tag: String,
    /// Network name.
    pub network: String,
    /// Volumes to exist.
    pub volumes: Vec<String>,
    /// The master container.
    pub master: ContainerSpec,
    /// Worker containers by number.
    pub workers: BTreeMap<u32, ContainerSpec>,
    /// The Jupyter containers (one, or one per student).
    pub jupyters: Vec<ContainerSpec>,
    /// Optional services (history server, Spark Connect server), started
    /// once the master listens.
    pub extras: Vec<ContainerSpec>,
}

/// Labels every object of `cluster` carries.
pub fn cluster_labels(cluster: &str) -> HashMap<String, String> {
    HashMap::from([(labels::CLUSTER.to_string(), cluster.to_string())])
}

fn hash_of(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn base_spec(spec: &ClusterSpec, resolved: &Resolved, role: Role, name: String) -> ContainerSpec {
    let mut labels = cluster_labels(&spec.name);
    labels.insert(labels::ROLE.to_string(), role.as_str().to_string());
    labels.insert(labels::IMAGE_REF.to_string(), resolved.image_tag.clone());
    // The same host directory at the same path everywhere: a file the driver
    // reads is there for the executors too.
    let mut binds = Vec::new();
    if let Some(dir) = &spec.data_dir {
        binds.push(format!("{}:{}", dir.display(), spec::DATA_DIR));
        labels.insert(labels::DATA_DIR.to_string(), dir.display().to_string());
    }
    labels.insert(labels::BIND.to_string(), spec.bind_address.clone());
    // The whole cluster's settings, so a later `up` with nothing said keeps
    // them (model::record reads them back).
    labels.insert(
        labels::RECORD.to_string(),
        crate::model::record::Recorded::of_spec(spec).to_label(),
    );
    // Started as root only so the entrypoint can give `spark` the host user's
    // uid and gid; the role itself runs as `spark`.
    // HOME as for `spark` (the engine would set root's): exec sessions — a
    // notebook run headless, a shell — find spark's IPython profile.
    let mut env = vec![("HOME".to_string(), "/home/spark".to_string())];
    if let Some((uid, gid)) = spec.host_user {
        env.push((contract::ENV_UID.to_string(), uid.to_string()));
        env.push((contract::ENV_GID.to_string(), gid.to_string()));
        labels.insert(labels::HOST_USER.to_string(), format!("{uid}:{gid}"));
    }
    let mut constraints = Vec::new();
    if let Some(swarm) = spec.swarm {
        labels.insert(labels::ENGINE.into(), labels::ENGINE_SWARM.into());
        labels.insert(
            labels::WORKERS_PER_NODE.into(),
            swarm.workers_per_node.to_string(),
        );
        if role != Role::Worker {
            if let Some(p) = &resolved.placement {
                constraints = p.services.clone();
            }
        }
    }
    ContainerSpec {
        constraints,
        binds,
        env,
        user: Some("root".to_string()),
        name,
        image: resolved.image_tag.clone(),
        command: vec![role.as_str().to_string()],
        labels,
        network: Names::new(&spec.name).network(),
        healthcheck: Some(vec![
            contract::HEALTHCHECK.to_string(),
            role.as_str().to_string(),
        ]),
        memory_bytes: role_memory_limit_mb(role).map(|mb| mb as i64 * 1024 * 1024),
        cap_add: Some(
            ENTRYPOINT_CAPABILITIES
                .iter()
                .map(|c| c.to_string())
                .collect(),
        ),
        pids_limit: Some(PIDS_LIMIT),
        ..Default::default()
    }
}

/// The capabilities a container keeps, all for its entrypoint, which starts
/// as root only to give `spark` the data directory owner's uid (usermod,
/// chown of the container's own folders) and hands the role to it
/// (setpriv); tini, its parent, forwards signals to that other uid (KILL).
/// Once `spark` runs the role, its processes hold none of them.
pub const ENTRYPOINT_CAPABILITIES: [&str; 6] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "SETGID",
    "SETUID",
    "KILL",
];

/// Processes and threads per container: a Spark driver or executor JVM has
/// about 100–200 threads, so this leaves room for a classroom notebook
/// server's dozen drivers and stops a fork bomb.
pub const PIDS_LIMIT: i64 = 8192;

/// The memory limit of the containers other than workers (whose limit
/// follows `--memory`): room for each one's JVMs — the daemons' 1 GiB heap,
/// a Connect server's driver, a notebook server's several drivers (about
/// 500 MiB each when busy) and kernels.
pub fn role_memory_limit_mb(role: Role) -> Option<u64> {
    match role {
        Role::Master | Role::History => Some(1536),
        Role::Connect => Some(3072),
        Role::Jupyter => Some(8192),
        Role::Worker => None,
    }
}

fn publish(spec: &ClusterSpec, host_port: u16, container_port: u16) -> PortPublish {
    PortPublish {
        host_ip: spec.bind_address.clone(),
        host_port,
        container_port,
    }
}

/// What every role's container is made from.
struct Common<'a> {
    spec: &'a ClusterSpec,
    resolved: &'a Resolved,
    names: Names,
    master_url: String,
    /// UIs advertise "localhost" and listen on their host port inside the
    /// container too, so links between master, worker and app UIs work from
    /// the host's browser on every platform.
    public_dns: (String, String),
    /// The drivers' spark-defaults.
    app_conf: String,
    /// The event-log volume's mount, when a history server runs.
    events_bind: Option<String>,
}

impl Common<'_> {
    fn base(&self, role: Role, name: String) -> ContainerSpec {
        base_spec(self.spec, self.resolved, role, name)
    }
}

/// The desired objects for `spec` with `resolved` settings.
pub fn desired(spec: &ClusterSpec, resolved: &Resolved) -> Desired {
    let names = Names::new(&spec.name);
    let c = Common {
        master_url: names.master_url(),
        public_dns: ("SPARK_PUBLIC_DNS".to_string(), "localhost".to_string()),
        app_conf: app_defaults(spec, resolved.secret.as_deref()),
        events_bind: spec
            .history
            .map(|_| format!("{}:{}", names.events_volume(), spec::EVENTS_DIR)),
        names,
        spec,
        resolved,
    };
    let jupyters = jupyters(&c);
    let mut volumes: Vec<String> = resolved
        .jupyters
        .iter()
        .map(|slot| slot.notebooks_volume.clone())
        .collect();
    let mut extras = Vec::new();
    if let (Some(_), Some(port)) = (spec.history, resolved.history_port) {
        volumes.push(c.names.events_volume());
        extras.push(history(&c, port));
    }
    if let (Some(_), Some(port)) = (spec.connect, resolved.connect_port) {
        extras.push(connect(&c, port));
    }
    Desired {
        cluster: spec.name.clone(),
        image_tag: resolved.image_tag.clone(),
        network: c.names.network(),
        volumes,
        master: master(&c),
        workers: workers(&c),
        jupyters,
        extras,
    }
}

fn master(c: &Common) -> ContainerSpec {
    let (spec, resolved) = (c.spec, c.resolved);
    let mut master = c.base(Role::Master, c.names.master());
    // The master is the one thing every other daemon waits for at start, and
    // afterwards it only schedules (little CPU): first call on the CPU keeps
    // it quick to listen, and its heartbeats answered while executors keep a
    // small machine busy.
    master.cpu_shares = Some(4096);
    master.env.extend([
        c.public_dns.clone(),
        (
            contract::ENV_UI_PORT.into(),
            resolved.master_ui_port.to_string(),
        ),
    ]);
    // Applications that do not ask for a core count get `[apps] cores`, so
    // one notebook does not take every core of the cluster. The fair share
    // (a function of the worker size) reaches the drivers as spark.cores.max
    // instead, so resizing workers never replaces the master.
    let default_cores = spec
        .apps
        .cores
        .map(|c| format!("-Dspark.deploy.defaultCores={c}"))
        .unwrap_or_default();
    let master_opts = format!(
        "{default_cores}{}",
        daemon_auth_opts(resolved.secret.as_deref())
    );
    if !master_opts.trim().is_empty() {
        master
            .env
            .push(("SPARK_MASTER_OPTS".into(), master_opts.trim().to_string()));
    }
    if let Some(secret) = &resolved.secret {
        master.labels.insert(labels::SECRET.into(), secret.clone());
    }
    master.ports = vec![publish(
        spec,
        resolved.master_ui_port,
        resolved.master_ui_port,
    )];
    master
        .labels
        .insert(labels::UI_PORT.into(), resolved.master_ui_port.to_string());
    stamp_hash(&mut master);
    master
}

/// Every worker: one template, hashed before its number and UI port are
/// stamped on, so scaling never recreates the workers that stay.
fn workers(c: &Common) -> BTreeMap<u32, ContainerSpec> {
    let spec = c.spec;
    let mut template = c.base(Role::Worker, String::new());
    template.env.extend([
        c.public_dns.clone(),
        (contract::ENV_MASTER_URL.into(), c.master_url.clone()),
        (
            contract::ENV_WORKER_CORES.into(),
            spec.worker_cores.to_string(),
        ),
        (
            contract::ENV_WORKER_MEMORY.into(),
            spec::format_memory_mb(spec.worker_memory_mb),
        ),
        // The worker daemon starts once the master accepts connections
        // (the entrypoint waits), so the container may start with it.
        (contract::ENV_WAIT_FOR_MASTER.into(), "1".into()),
    ]);
    if c.resolved.secret.is_some() {
        template.env.push((
            "SPARK_WORKER_OPTS".into(),
            daemon_auth_opts(c.resolved.secret.as_deref())
                .trim()
                .to_string(),
        ));
    }
    // What the worker offers to executors, plus room for the worker
    // daemon, the executors' off-heap overhead and Python workers: a
    // runaway job is stopped by its own container, not by the host.
    template.memory_bytes =
        Some(worker_memory_limit_mb(spec.worker_memory_mb) as i64 * 1024 * 1024);
    // On a swarm the scheduler places by reservations: a worker's cores.
    if spec.swarm.is_some() {
        template.nano_cpus = Some(i64::from(spec.worker_cores) * 1_000_000_000);
    }
    template
        .labels
        .insert(labels::WORKER_CORES.into(), spec.worker_cores.to_string());
    template.labels.insert(
        labels::WORKER_MEMORY.into(),
        spec.worker_memory_mb.to_string(),
    );
    let hash = template_hash(&template);
    template.labels.insert(labels::CONFIG_HASH.into(), hash);
    (1..=spec.workers)
        .map(|n| {
            let ui_port = c
                .resolved
                .worker_ui_ports
                .get(&n)
                .copied()
                .unwrap_or(spec::FIRST_WORKER_UI_PORT);
            let mut w = template.clone();
            w.name = c.names.worker(n);
            w.env
                .push((contract::ENV_UI_PORT.into(), ui_port.to_string()));
            w.ports = vec![publish(spec, ui_port, ui_port)];
            w.labels.insert(labels::INDEX.into(), n.to_string());
            w.labels.insert(labels::UI_PORT.into(), ui_port.to_string());
            // On a swarm each worker is pinned to its node: the node is part
            // of what the worker is (a worker moved is made anew there).
            if let Some(node) = c
                .resolved
                .placement
                .as_ref()
                .and_then(|p| p.workers.get(&n))
            {
                w.constraints = vec![format!("node.id=={node}")];
                w.labels.insert(labels::NODE.into(), node.clone());
                let hash = hash_of(&[&template_hash(&template), node]);
                w.labels.insert(labels::CONFIG_HASH.into(), hash);
            }
            (n, w)
        })
        .collect()
}

/// The Jupyter servers: one, or one per student.
fn jupyters(c: &Common) -> Vec<ContainerSpec> {
    let spec = c.spec;
    c.resolved
        .jupyters
        .iter()
        .map(|slot| {
            let name = if slot.index == 0 {
                c.names.jupyter()
            } else {
                c.names.student_jupyter(slot.index)
            };
            let mut jupyter = c.base(Role::Jupyter, name);
            jupyter.env.extend([
                c.public_dns.clone(),
                (contract::ENV_MASTER_URL.into(), c.master_url.clone()),
                (contract::ENV_JUPYTER_TOKEN.into(), slot.token.clone()),
                (
                    contract::ENV_APP_UI_PORT.into(),
                    slot.app_ui_port.to_string(),
                ),
                (contract::ENV_CLUSTER.into(), spec.name.clone()),
                (contract::ENV_SPARK_CONF.into(), c.app_conf.clone()),
            ]);
            jupyter.ports = vec![publish(spec, slot.port, spec::JUPYTER_CONTAINER_PORT)];
            // Several drivers (notebooks, submits) at once: the first takes
            // spark.ui.port, the next ones the ports after it.
            for port in app_ui_ports(slot.app_ui_port) {
                jupyter.ports.push(publish(spec, port, port));
            }
            jupyter
                .binds
                .push(format!("{}:{NOTEBOOKS_DIR}", slot.notebooks_volume));
            if let Some(events) = &c.events_bind {
                jupyter.binds.push(events.clone());
            }
            // Jupyter starts beside the master; on a small machine the Spark
            // daemons come first when both want the CPU (the weight matters
            // only under contention, so an idle machine gives Jupyter all it
            // asks for).
            jupyter.cpu_shares = Some(256);
            if slot.index > 0 {
                jupyter
                    .labels
                    .insert(labels::INDEX.into(), slot.index.to_string());
            }
            for (key, value) in [
                (labels::TOKEN, slot.token.clone()),
                (labels::JUPYTER_PORT, slot.port.to_string()),
                (labels::APP_UI_PORT, slot.app_ui_port.to_string()),
                (labels::NOTEBOOKS, slot.notebooks_volume.clone()),
            ] {
                jupyter.labels.insert(key.into(), value);
            }
            // On nodes labelled for them, each server is pinned to its node
            // (its notebooks volume lives there).
            if let Some(node) = c
                .resolved
                .placement
                .as_ref()
                .and_then(|p| p.jupyters.get(&slot.index))
            {
                jupyter.constraints = vec![format!("node.id=={node}")];
                jupyter.labels.insert(labels::NODE.into(), node.clone());
            }
            stamp_hash(&mut jupyter);
            jupyter
        })
        .collect()
}

fn history(c: &Common, port: u16) -> ContainerSpec {
    let mut h = c.base(Role::History, c.names.history());
    h.env.extend([
        c.public_dns.clone(),
        (contract::ENV_UI_PORT.into(), port.to_string()),
        (
            contract::ENV_EVENTS_DIR.into(),
            spec::EVENTS_DIR.to_string(),
        ),
    ]);
    h.ports = vec![publish(c.spec, port, port)];
    h.binds.extend(c.events_bind.clone());
    h.labels
        .insert(labels::SERVICE_PORT.into(), port.to_string());
    stamp_hash(&mut h);
    h
}

fn connect(c: &Common, port: u16) -> ContainerSpec {
    let mut s = c.base(Role::Connect, c.names.connect());
    let mut conf = c.app_conf.clone();
    // Executors only while queries run, so an idle Connect server leaves
    // the cores to the notebooks.
    for line in [
        "spark.dynamicAllocation.enabled=true",
        "spark.dynamicAllocation.shuffleTracking.enabled=true",
        "spark.dynamicAllocation.minExecutors=0",
        "spark.dynamicAllocation.executorIdleTimeout=30s",
    ] {
        conf.push('\n');
        conf.push_str(line);
    }
    s.env.extend([
        c.public_dns.clone(),
        (contract::ENV_MASTER_URL.into(), c.master_url.clone()),
        (contract::ENV_CLUSTER.into(), c.spec.name.clone()),
        (
            contract::ENV_CONNECT_PORT.into(),
            spec::CONNECT_CONTAINER_PORT.to_string(),
        ),
        (contract::ENV_SPARK_CONF.into(), conf),
    ]);
    // Spark Connect has no authentication of its own: it stays on this
    // machine even when --bind opens the other ports.
    s.ports = vec![PortPublish {
        host_ip: "127.0.0.1".to_string(),
        host_port: port,
        container_port: spec::CONNECT_CONTAINER_PORT,
    }];
    s.binds.extend(c.events_bind.clone());
    s.labels
        .insert(labels::SERVICE_PORT.into(), port.to_string());
    stamp_hash(&mut s);
    s
}

/// The daemons' system properties for Spark's RPC authentication.
fn daemon_auth_opts(secret: Option<&str>) -> String {
    match secret {
        Some(s) => format!(" -Dspark.authenticate=true -Dspark.authenticate.secret={s}"),
        None => String::new(),
    }
}

/// The application UI ports published from `first` on.
pub fn app_ui_ports(first: u16) -> impl Iterator<Item = u16> {
    (0..spec::APP_UI_PORTS).filter_map(move |i| first.checked_add(i))
}

/// Puts the hash of a container's whole rendered template on it.
fn stamp_hash(c: &mut ContainerSpec) {
    let hash = template_hash(c);
    c.labels.insert(labels::CONFIG_HASH.into(), hash);
}

/// The hash of everything that makes a container what it is, computed from
/// the rendered template itself (so a field added to a container's
/// environment, labels or mounts changes it without anyone listing the
/// field), leaving out its name and number, which only tell it apart.
fn template_hash(c: &ContainerSpec) -> String {
    let mut t = c.clone();
    t.name.clear();
    t.labels.remove(labels::CONFIG_HASH);
    t.labels.remove(labels::INDEX);
    // The record says what the whole cluster is (its worker count too),
    // not what this container is.
    t.labels.remove(labels::RECORD);
    // Which build of the image it runs is stamped at creation; the image's
    // tag (its content) is in the hash.
    t.labels.remove(labels::IMAGE_ID);
    t.labels.remove(labels::IMAGE_DIGEST);
    spec_hash(&t)
}

/// A hash of every field of a container specification.
fn spec_hash(c: &ContainerSpec) -> String {
    let mut env: Vec<String> = c.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    env.sort();
    let ports: Vec<String> = c
        .ports
        .iter()
        .map(|p| format!("{}:{}:{}", p.host_ip, p.host_port, p.container_port))
        .collect();
    let mut labels: Vec<String> = c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    labels.sort();
    let mut parts = vec![
        c.name.clone(),
        c.image.clone(),
        c.command.join(" "),
        c.network.clone(),
        format!("{:?}", c.healthcheck),
    ];
    parts.extend(env);
    parts.extend(labels);
    parts.extend(c.binds.iter().cloned());
    parts.extend(ports);
    parts.push(format!(
        "{:?} {:?} {:?} {:?} {:?}",
        c.memory_bytes, c.cpu_shares, c.user, c.cap_add, c.pids_limit
    ));
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    hash_of(&refs)
}

/// Per-application defaults in effect: `[apps]`, else a fair share — half a
/// worker's cores (at least one) and the matching part of its memory — so a
/// second and third notebook still get executors while the first runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveApps {
    /// Cores an application gets unless it asks.
    pub cores: u32,
    /// Executor memory in MiB.
    pub executor_memory_mb: u64,
}

/// The per-application defaults of `spec`.
pub fn effective_apps(spec: &ClusterSpec) -> EffectiveApps {
    let cores = spec
        .apps
        .cores
        .unwrap_or_else(|| (spec.worker_cores / 2).max(1));
    let executor_memory_mb = spec.apps.executor_memory_mb.unwrap_or_else(|| {
        // An executor takes at most the app's cores on one worker.
        let share = u64::from(cores.min(spec.worker_cores));
        (spec.worker_memory_mb * share / u64::from(spec.worker_cores.max(1)))
            .clamp(512.min(spec.worker_memory_mb), spec.worker_memory_mb)
    });
    EffectiveApps {
        cores,
        executor_memory_mb,
    }
}

/// MiB a worker container may use beyond what it offers to executors: the
/// worker daemon (~300 MiB), executor overhead (Spark's minimum 384 MiB) and
/// PySpark's Python workers.
pub const WORKER_OVERHEAD_MB: u64 = 1536;

/// The memory limit of a worker container offering `worker_memory_mb`.
pub fn worker_memory_limit_mb(worker_memory_mb: u64) -> u64 {
    worker_memory_mb + WORKER_OVERHEAD_MB
}

/// The drivers' spark-defaults, one "key=value" a line (the image's
/// entrypoint appends them to spark-defaults.conf): the per-application
/// defaults, event logging when a history server runs, then `[apps] conf`.
pub fn app_defaults(spec: &ClusterSpec, secret: Option<&str>) -> String {
    let apps = effective_apps(spec);
    let mut lines = vec![
        format!("spark.cores.max={}", apps.cores),
        format!(
            "spark.executor.memory={}",
            spec::format_memory_mb(apps.executor_memory_mb)
        ),
    ];
    if let Some(secret) = secret {
        lines.push("spark.authenticate=true".to_string());
        lines.push(format!("spark.authenticate.secret={secret}"));
    }
    if spec.history.is_some() {
        lines.push("spark.eventLog.enabled=true".to_string());
        lines.push(format!("spark.eventLog.dir=file:{}", spec::EVENTS_DIR));
    }
    for (k, v) in &spec.apps.conf {
        lines.push(format!("{k}={}", v.replace('\n', " ")));
    }
    lines.join("\n")
}

/// A fresh random token (hex), from the kernel's random source.
pub fn new_token() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 24];
    let filled = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok();
    if !filled {
        // No /dev/urandom (unusual): fall back to the std hasher's random keys.
        use std::hash::{BuildHasher, Hasher};
        for chunk in bytes.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0),
            );
            let v = h.finish().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::recipe::ImageRecipe;
    use crate::model::spec::PortChoice;
    use crate::model::versions::MATRIX;
    use std::time::Duration;

    pub(crate) fn sample_spec(workers: u32) -> ClusterSpec {
        ClusterSpec {
            name: "demo".into(),
            workers,
            worker_cores: 1,
            worker_memory_mb: 1024,
            image: ImageRecipe::new(&MATRIX[0], None, vec![]).expect("recipe"),
            bind_address: "127.0.0.1".into(),
            master_ui_port: PortChoice::Auto(8080),
            jupyter_port: PortChoice::Auto(8888),
            app_ui_port: PortChoice::Auto(4040),
            timeout: Duration::from_secs(180),
            jupyter_token: None,
            apps: Default::default(),
            notebooks_volume: "demo-notebooks".into(),
            data_dir: None,
            host_user: None,
            history: None,
            connect: None,
            students: 0,
            swarm: None,
        }
    }

    pub(crate) fn sample_resolved(workers: u32) -> Resolved {
        Resolved {
            image_tag: "sparkbox/jupyter-spark:test".into(),
            master_ui_port: 8080,
            jupyters: vec![JupyterSlot {
                index: 0,
                port: 8888,
                app_ui_port: 4040,
                token: "t0k".into(),
                notebooks_volume: "demo-notebooks".into(),
            }],
            secret: None,
            history_port: None,
            connect_port: None,
            worker_ui_ports: (1..=workers).map(|n| (n, 8080 + n as u16)).collect(),
            placement: None,
        }
    }

    #[test]
    fn worker_hash_ignores_the_count_and_the_index() {
        let a = desired(&sample_spec(2), &sample_resolved(2));
        let b = desired(&sample_spec(3), &sample_resolved(3));
        let hash = |c: &ContainerSpec| c.labels.get(labels::CONFIG_HASH).cloned();
        assert_eq!(hash(&a.workers[&1]), hash(&b.workers[&3]));
        assert_eq!(hash(&a.master), hash(&b.master));
        let mut more_cores = sample_spec(2);
        more_cores.worker_cores = 2;
        let c = desired(&more_cores, &sample_resolved(2));
        assert_ne!(hash(&a.workers[&1]), hash(&c.workers[&1]));
        assert_eq!(hash(&a.master), hash(&c.master));
    }

    #[test]
    fn containers_carry_labels_ports_and_volumes() {
        let d = desired(&sample_spec(2), &sample_resolved(2));
        assert_eq!(d.workers[&2].name, "demo-worker-2");
        assert_eq!(
            d.workers[&2].labels.get(labels::INDEX).map(String::as_str),
            Some("2")
        );
        assert_eq!(
            d.jupyters[0].labels.get(labels::TOKEN).map(String::as_str),
            Some("t0k")
        );
        assert!(d.jupyters[0].ports.iter().all(|p| p.host_ip == "127.0.0.1"));
        assert_eq!(
            d.jupyters[0].binds,
            vec![format!("demo-notebooks:{NOTEBOOKS_DIR}")]
        );
        assert_eq!(d.network, "demo-net");
        assert_eq!(
            d.workers[&1].memory_bytes,
            Some((1024 + WORKER_OVERHEAD_MB as i64) * 1024 * 1024)
        );
        assert!(d.workers.values().all(|w| w.env.contains(&(
            contract::ENV_MASTER_URL.into(),
            "spark://demo-master:7077".into()
        ))));
        // Workers start with the master; their daemons wait inside for it.
        assert!(d.workers.values().all(|w| w
            .env
            .contains(&(contract::ENV_WAIT_FOR_MASTER.into(), "1".into()))));
        // The master first on the CPU, Jupyter last, the workers (and their
        // executors) in between.
        assert_eq!(d.master.cpu_shares, Some(4096));
        assert_eq!(d.jupyters[0].cpu_shares, Some(256));
        assert!(d.workers.values().all(|w| w.cpu_shares.is_none()));
    }

    #[test]
    fn data_dir_and_app_defaults_reach_every_container_that_needs_them() {
        let mut spec = sample_spec(2);
        spec.data_dir = Some("/home/me/proj/data".into());
        spec.apps.cores = Some(1);
        spec.apps.executor_memory_mb = Some(512);
        spec.apps
            .conf
            .insert("spark.sql.shuffle.partitions".into(), "8".into());
        let d = desired(&spec, &sample_resolved(2));
        let bind = "/home/me/proj/data:/data".to_string();
        for c in [&d.master, &d.jupyters[0], &d.workers[&1], &d.workers[&2]] {
            assert!(c.binds.contains(&bind), "{} lacks the data mount", c.name);
        }
        assert!(d.master.env.contains(&(
            "SPARK_MASTER_OPTS".into(),
            "-Dspark.deploy.defaultCores=1".into()
        )));
        assert!(d.jupyters[0].env.contains(&(
            contract::ENV_SPARK_CONF.into(),
            "spark.cores.max=1\nspark.executor.memory=512m\nspark.sql.shuffle.partitions=8".into()
        )));
        // Every container starts as root only to take the host user's uid.
        let mut owned = spec.clone();
        owned.host_user = Some((4242, 4243));
        let d = desired(&owned, &sample_resolved(2));
        for c in [&d.master, &d.jupyters[0], &d.workers[&1]] {
            assert_eq!(c.user.as_deref(), Some("root"));
            assert!(c.env.contains(&(contract::ENV_UID.into(), "4242".into())));
            assert!(c.env.contains(&(contract::ENV_GID.into(), "4243".into())));
        }
        // Changing app defaults recreates master and Jupyter, never the workers.
        let plain = desired(&sample_spec(2), &sample_resolved(2));
        let hash = |c: &ContainerSpec| c.labels.get(labels::CONFIG_HASH).cloned();
        let mut no_data = spec.clone();
        no_data.data_dir = None;
        no_data.apps.cores = Some(2);
        let apps_only = desired(&no_data, &sample_resolved(2));
        assert_eq!(hash(&plain.workers[&1]), hash(&apps_only.workers[&1]));
        assert_ne!(hash(&plain.master), hash(&apps_only.master));
        assert_ne!(hash(&plain.jupyters[0]), hash(&apps_only.jupyters[0]));
    }

    #[test]
    fn without_apps_each_application_gets_a_fair_share() {
        let mut spec = sample_spec(3);
        assert_eq!(
            effective_apps(&spec),
            EffectiveApps {
                cores: 1,
                executor_memory_mb: 1024
            }
        );
        spec.worker_cores = 4;
        spec.worker_memory_mb = 4096;
        // Half a worker: two applications share each worker.
        assert_eq!(
            effective_apps(&spec),
            EffectiveApps {
                cores: 2,
                executor_memory_mb: 2048
            }
        );
        let d = desired(&spec, &sample_resolved(3));
        // The fair share reaches the drivers, not the master: resizing the
        // workers must not replace the master.
        assert!(d.master.env.iter().all(|(k, _)| k != "SPARK_MASTER_OPTS"));
        let mut bigger = spec.clone();
        bigger.worker_cores = 8;
        let hash = |c: &ContainerSpec| c.labels.get(labels::CONFIG_HASH).cloned();
        assert_eq!(
            hash(&desired(&bigger, &sample_resolved(3)).master),
            hash(&d.master)
        );
        assert!(d.jupyters[0].env.contains(&(
            contract::ENV_SPARK_CONF.into(),
            "spark.cores.max=2\nspark.executor.memory=2g".into()
        )));
        // Four consecutive app UI ports, each published as itself.
        let published: Vec<(u16, u16)> = d.jupyters[0]
            .ports
            .iter()
            .map(|p| (p.host_port, p.container_port))
            .collect();
        assert_eq!(
            published,
            vec![
                (8888, 8888),
                (4040, 4040),
                (4041, 4041),
                (4042, 4042),
                (4043, 4043)
            ]
        );
    }

    #[test]
    fn history_and_connect_are_extra_containers_sharing_the_event_logs() {
        let mut spec = sample_spec(2);
        spec.history = Some(PortChoice::Auto(18080));
        spec.connect = Some(PortChoice::Auto(15002));
        let mut resolved = sample_resolved(2);
        resolved.history_port = Some(18080);
        resolved.connect_port = Some(15003);
        let d = desired(&spec, &resolved);
        let names: Vec<&str> = d.extras.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["demo-history", "demo-connect"]);
        assert_eq!(d.volumes, ["demo-notebooks", "demo-events"]);
        let events = "demo-events:/events".to_string();
        for c in [&d.jupyters[0], &d.extras[0], &d.extras[1]] {
            assert!(c.binds.contains(&events), "{} lacks the event logs", c.name);
        }
        let conf = |c: &ContainerSpec| {
            c.env
                .iter()
                .find(|(k, _)| k == contract::ENV_SPARK_CONF)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert!(conf(&d.jupyters[0]).contains("spark.eventLog.dir=file:/events"));
        assert!(conf(&d.extras[1]).contains("spark.dynamicAllocation.enabled=true"));
        assert_eq!(d.extras[1].ports[0].host_port, 15003);
        assert_eq!(d.extras[1].ports[0].container_port, 15002);
        // Turning Connect on does not touch the master or the workers.
        let plain = desired(&sample_spec(2), &sample_resolved(2));
        let hash = |c: &ContainerSpec| c.labels.get(labels::CONFIG_HASH).cloned();
        assert_eq!(hash(&plain.master), hash(&d.master));
        assert_eq!(hash(&plain.workers[&1]), hash(&d.workers[&1]));
        assert!(hash(&d.extras[0]).is_some());
    }

    #[test]
    fn students_get_their_own_jupyter_volume_token_and_ports() {
        let mut spec = sample_spec(2);
        spec.students = 3;
        let mut resolved = sample_resolved(2);
        resolved.jupyters = (1..=3)
            .map(|i| JupyterSlot {
                index: i,
                port: 8887 + i as u16,
                app_ui_port: 4040 + 4 * (i as u16 - 1),
                token: format!("token-{i}"),
                notebooks_volume: format!("demo-notebooks-{i}"),
            })
            .collect();
        resolved.secret = Some("s3cret".into());
        let d = desired(&spec, &resolved);
        let names: Vec<&str> = d.jupyters.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(
            names,
            ["demo-jupyter-1", "demo-jupyter-2", "demo-jupyter-3"]
        );
        assert_eq!(
            d.volumes,
            ["demo-notebooks-1", "demo-notebooks-2", "demo-notebooks-3"]
        );
        for (i, j) in d.jupyters.iter().enumerate() {
            let n = (i + 1).to_string();
            assert_eq!(j.labels.get(labels::INDEX), Some(&n));
            assert!(j
                .env
                .contains(&(contract::ENV_JUPYTER_TOKEN.into(), format!("token-{n}"))));
            // Every driver authenticates to the master with the secret.
            let conf = j
                .env
                .iter()
                .find(|(k, _)| k == contract::ENV_SPARK_CONF)
                .map(|(_, v)| v.as_str())
                .unwrap_or_default();
            assert!(conf.contains("spark.authenticate=true"), "{conf}");
            assert!(conf.contains("spark.authenticate.secret=s3cret"), "{conf}");
        }
        let opts = |c: &ContainerSpec, key: &str| {
            c.env
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert!(opts(&d.master, "SPARK_MASTER_OPTS").contains("-Dspark.authenticate.secret=s3cret"));
        assert!(opts(&d.workers[&1], "SPARK_WORKER_OPTS").contains("-Dspark.authenticate=true"));
        assert_eq!(
            d.master.labels.get(labels::SECRET).map(String::as_str),
            Some("s3cret")
        );
    }

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 48);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn the_hash_covers_the_whole_template_but_not_what_tells_replicas_apart() {
        let d = desired(&sample_spec(3), &sample_resolved(3));
        let hashes: Vec<&str> = d
            .workers
            .values()
            .map(|w| w.labels[labels::CONFIG_HASH].as_str())
            .collect();
        assert!(hashes.windows(2).all(|p| p[0] == p[1]), "{hashes:?}");
        let ports: std::collections::BTreeSet<u16> =
            d.workers.values().map(|w| w.ports[0].host_port).collect();
        assert_eq!(ports.len(), 3, "each worker keeps its own UI port");
        // Any field of a container, listed nowhere, changes its hash.
        let mut master = d.master.clone();
        let before = template_hash(&master);
        master.env.push(("SOMETHING_NEW".into(), "1".into()));
        assert_ne!(template_hash(&master), before);
        let mut master = d.master.clone();
        master.binds.push("/x:/x".into());
        assert_ne!(template_hash(&master), before);
        let mut master = d.master.clone();
        master.labels.insert("io.sparkbox.new".into(), "1".into());
        assert_ne!(template_hash(&master), before);
        // The stamped hash is not part of what is hashed.
        let mut master = d.master.clone();
        master
            .labels
            .insert(labels::CONFIG_HASH.into(), "other".into());
        assert_eq!(template_hash(&master), before);
    }
}
