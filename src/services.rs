//! Turns the desired cluster (plus the ports and token settled against what
//! exists) into the exact containers, network and volume to have.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

use crate::engine::{ContainerSpec, PortPublish};
use crate::labels;
use crate::spec::{self, ClusterSpec, Names, Role};

/// Label carrying the Jupyter token, so a later `up` or `status` can reuse it.
pub const TOKEN_LABEL: &str = "io.sparkbox.jupyter-token";
/// Label with the image reference a container runs.
pub const IMAGE_REF_LABEL: &str = "io.sparkbox.image-ref";
/// Label with a master's or worker's UI port (host and container alike).
pub const UI_PORT_LABEL: &str = "io.sparkbox.ui-port";
/// Label with Jupyter's host port.
pub const JUPYTER_PORT_LABEL: &str = "io.sparkbox.jupyter-port";
/// Label with the application UI port.
pub const APP_UI_PORT_LABEL: &str = "io.sparkbox.app-ui-port";
/// Label with a worker's cores (so `scale` can add identical workers).
pub const WORKER_CORES_LABEL: &str = "io.sparkbox.worker-cores";
/// Label with a worker's memory in MiB.
pub const WORKER_MEMORY_LABEL: &str = "io.sparkbox.worker-memory-mb";
/// Label with the host data directory mounted at /data (so `scale` adds
/// workers that see it too).
pub const DATA_DIR_LABEL: &str = "io.sparkbox.data-dir";
/// Where notebooks live inside the Jupyter container.
pub const NOTEBOOKS_DIR: &str = "/home/spark/notebooks";

/// Values settled against the engine before planning: ports and the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The image tag all containers run.
    pub image_tag: String,
    /// Master UI host port (also its port inside the container, so UI links work).
    pub master_ui_port: u16,
    /// Jupyter host port.
    pub jupyter_port: u16,
    /// Application UI host port (the driver's spark.ui.port).
    pub app_ui_port: u16,
    /// Worker UI host port per worker number.
    pub worker_ui_ports: BTreeMap<u32, u16>,
    /// Jupyter's token.
    pub token: String,
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
    /// The Jupyter container.
    pub jupyter: ContainerSpec,
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
    labels.insert(IMAGE_REF_LABEL.to_string(), resolved.image_tag.clone());
    // The same host directory at the same path everywhere: a file the driver
    // reads is there for the executors too.
    let mut binds = Vec::new();
    if let Some(dir) = &spec.data_dir {
        binds.push(format!("{}:{}", dir.display(), spec::DATA_DIR));
        labels.insert(DATA_DIR_LABEL.to_string(), dir.display().to_string());
    }
    ContainerSpec {
        binds,
        name,
        image: resolved.image_tag.clone(),
        command: vec![role.as_str().to_string()],
        labels,
        network: Names::new(&spec.name).network(),
        healthcheck: Some(vec![
            "/opt/sparkbox/bin/healthcheck".to_string(),
            role.as_str().to_string(),
        ]),
        ..Default::default()
    }
}

fn publish(spec: &ClusterSpec, host_port: u16, container_port: u16) -> PortPublish {
    PortPublish {
        host_ip: spec.bind_address.clone(),
        host_port,
        container_port,
    }
}

/// The desired objects for `spec` with `resolved` settings.
pub fn desired(spec: &ClusterSpec, resolved: &Resolved) -> Desired {
    let names = Names::new(&spec.name);
    let master_url = names.master_url();
    let tag = resolved.image_tag.as_str();
    // UIs advertise "localhost" and listen on their host port inside the
    // container too, so links between master, worker and app UIs work from
    // the host's browser on every platform.
    let public_dns = ("SPARK_PUBLIC_DNS".to_string(), "localhost".to_string());

    let mut master = base_spec(spec, resolved, Role::Master, names.master());
    master.env = vec![
        public_dns.clone(),
        (
            "SPARKBOX_UI_PORT".into(),
            resolved.master_ui_port.to_string(),
        ),
    ];
    // Applications that do not ask for a core count get this many, so one
    // notebook does not take every core of the cluster.
    let default_cores = spec.apps.cores.map(|c| c.to_string()).unwrap_or_default();
    if let Some(cores) = spec.apps.cores {
        master.env.push((
            "SPARK_MASTER_OPTS".into(),
            format!("-Dspark.deploy.defaultCores={cores}"),
        ));
    }
    master.ports = vec![publish(
        spec,
        resolved.master_ui_port,
        resolved.master_ui_port,
    )];
    master
        .labels
        .insert(UI_PORT_LABEL.into(), resolved.master_ui_port.to_string());
    let data = spec
        .data_dir
        .as_ref()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let master_hash = hash_of(&[
        "master",
        tag,
        &resolved.master_ui_port.to_string(),
        &spec.bind_address,
        &default_cores,
        &data,
    ]);
    master
        .labels
        .insert(labels::CONFIG_HASH.into(), master_hash);

    let memory = spec::format_memory_mb(spec.worker_memory_mb);
    let worker_hash = hash_of(&[
        "worker",
        tag,
        &spec.worker_cores.to_string(),
        &memory,
        &master_url,
        &spec.bind_address,
        &data,
    ]);
    let mut workers = BTreeMap::new();
    for n in 1..=spec.workers {
        let ui_port = resolved
            .worker_ui_ports
            .get(&n)
            .copied()
            .unwrap_or(spec::FIRST_WORKER_UI_PORT);
        let mut w = base_spec(spec, resolved, Role::Worker, names.worker(n));
        w.env = vec![
            public_dns.clone(),
            ("SPARKBOX_MASTER_URL".into(), master_url.clone()),
            (
                "SPARKBOX_WORKER_CORES".into(),
                spec.worker_cores.to_string(),
            ),
            ("SPARKBOX_WORKER_MEMORY".into(), memory.clone()),
            ("SPARKBOX_UI_PORT".into(), ui_port.to_string()),
        ];
        w.ports = vec![publish(spec, ui_port, ui_port)];
        // What the worker offers to executors, plus room for the worker
        // daemon, the executors' off-heap overhead and Python workers: a
        // runaway job is stopped by its own container, not by the host.
        w.memory_bytes = Some(worker_memory_limit_mb(spec.worker_memory_mb) as i64 * 1024 * 1024);
        w.labels.insert(labels::INDEX.into(), n.to_string());
        w.labels.insert(UI_PORT_LABEL.into(), ui_port.to_string());
        w.labels
            .insert(WORKER_CORES_LABEL.into(), spec.worker_cores.to_string());
        w.labels.insert(
            WORKER_MEMORY_LABEL.into(),
            spec.worker_memory_mb.to_string(),
        );
        w.labels
            .insert(labels::CONFIG_HASH.into(), worker_hash.clone());
        workers.insert(n, w);
    }

    let mut jupyter = base_spec(spec, resolved, Role::Jupyter, names.jupyter());
    jupyter.env = vec![
        public_dns,
        ("SPARKBOX_MASTER_URL".into(), master_url.clone()),
        ("SPARKBOX_JUPYTER_TOKEN".into(), resolved.token.clone()),
        (
            "SPARKBOX_APP_UI_PORT".into(),
            resolved.app_ui_port.to_string(),
        ),
        ("SPARKBOX_CLUSTER".into(), spec.name.clone()),
    ];
    let app_conf = app_defaults(spec);
    if !app_conf.is_empty() {
        jupyter
            .env
            .push(("SPARKBOX_SPARK_CONF".into(), app_conf.clone()));
    }
    jupyter.ports = vec![
        publish(spec, resolved.jupyter_port, spec::JUPYTER_CONTAINER_PORT),
        publish(spec, resolved.app_ui_port, resolved.app_ui_port),
    ];
    jupyter
        .binds
        .push(format!("{}:{NOTEBOOKS_DIR}", spec.notebooks_volume));
    // Jupyter starts beside the master; on a small machine the Spark daemons
    // come first when both want the CPU (the weight matters only under
    // contention, so an idle machine gives Jupyter all it asks for).
    jupyter.cpu_shares = Some(256);
    jupyter
        .labels
        .insert(TOKEN_LABEL.into(), resolved.token.clone());
    jupyter
        .labels
        .insert(JUPYTER_PORT_LABEL.into(), resolved.jupyter_port.to_string());
    jupyter
        .labels
        .insert(APP_UI_PORT_LABEL.into(), resolved.app_ui_port.to_string());
    let jupyter_hash = hash_of(&[
        "jupyter",
        tag,
        &resolved.jupyter_port.to_string(),
        &resolved.app_ui_port.to_string(),
        &master_url,
        &spec.bind_address,
        &app_conf,
        &spec.notebooks_volume,
        &data,
    ]);
    jupyter
        .labels
        .insert(labels::CONFIG_HASH.into(), jupyter_hash);

    Desired {
        cluster: spec.name.clone(),
        image_tag: resolved.image_tag.clone(),
        network: names.network(),
        volumes: vec![spec.notebooks_volume.clone()],
        master,
        workers,
        jupyter,
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

/// The drivers' spark-defaults from `[apps]`, one "key=value" a line (the
/// image's entrypoint appends them to spark-defaults.conf).
pub fn app_defaults(spec: &ClusterSpec) -> String {
    let mut lines = Vec::new();
    if let Some(cores) = spec.apps.cores {
        lines.push(format!("spark.cores.max={cores}"));
    }
    if let Some(mb) = spec.apps.executor_memory_mb {
        lines.push(format!(
            "spark.executor.memory={}",
            spec::format_memory_mb(mb)
        ));
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
    use crate::image::ImageRecipe;
    use crate::spec::PortChoice;
    use crate::versions::MATRIX;
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
        }
    }

    pub(crate) fn sample_resolved(workers: u32) -> Resolved {
        Resolved {
            image_tag: "sparkbox/jupyter-spark:test".into(),
            master_ui_port: 8080,
            jupyter_port: 8888,
            app_ui_port: 4040,
            worker_ui_ports: (1..=workers).map(|n| (n, 8080 + n as u16)).collect(),
            token: "t0k".into(),
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
            d.jupyter.labels.get(TOKEN_LABEL).map(String::as_str),
            Some("t0k")
        );
        assert!(d.jupyter.ports.iter().all(|p| p.host_ip == "127.0.0.1"));
        assert_eq!(
            d.jupyter.binds,
            vec![format!("demo-notebooks:{NOTEBOOKS_DIR}")]
        );
        assert_eq!(d.network, "demo-net");
        assert_eq!(
            d.workers[&1].memory_bytes,
            Some((1024 + WORKER_OVERHEAD_MB as i64) * 1024 * 1024)
        );
        assert!(d.workers.values().all(|w| w.env.contains(&(
            "SPARKBOX_MASTER_URL".into(),
            "spark://demo-master:7077".into()
        ))));
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
        for c in [&d.master, &d.jupyter, &d.workers[&1], &d.workers[&2]] {
            assert!(c.binds.contains(&bind), "{} lacks the data mount", c.name);
        }
        assert!(d.master.env.contains(&(
            "SPARK_MASTER_OPTS".into(),
            "-Dspark.deploy.defaultCores=1".into()
        )));
        assert!(d.jupyter.env.contains(&(
            "SPARKBOX_SPARK_CONF".into(),
            "spark.cores.max=1\nspark.executor.memory=512m\nspark.sql.shuffle.partitions=8".into()
        )));
        // Changing app defaults recreates master and Jupyter, never the workers.
        let plain = desired(&sample_spec(2), &sample_resolved(2));
        let hash = |c: &ContainerSpec| c.labels.get(labels::CONFIG_HASH).cloned();
        let mut no_data = spec.clone();
        no_data.data_dir = None;
        let apps_only = desired(&no_data, &sample_resolved(2));
        assert_eq!(hash(&plain.workers[&1]), hash(&apps_only.workers[&1]));
        assert_ne!(hash(&plain.master), hash(&apps_only.master));
        assert_ne!(hash(&plain.jupyter), hash(&apps_only.jupyter));
    }

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 48);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
