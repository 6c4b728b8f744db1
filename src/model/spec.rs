//! The desired state of a cluster, and the names of everything it is made of.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::model::recipe::ImageRecipe;

/// The cluster name used when none is given.
pub const DEFAULT_CLUSTER: &str = "sparkbox";
/// Default master web UI port on the host.
pub const DEFAULT_MASTER_UI_PORT: u16 = 8080;
/// Default Jupyter port on the host.
pub const DEFAULT_JUPYTER_PORT: u16 = 8888;
/// Default application (driver) UI port on the host.
pub const DEFAULT_APP_UI_PORT: u16 = 4040;
/// First host port tried for worker UIs.
pub const FIRST_WORKER_UI_PORT: u16 = 8081;
/// The master's RPC port inside the network.
pub const MASTER_PORT: u16 = 7077;
/// Jupyter's port inside its container.
pub const JUPYTER_CONTAINER_PORT: u16 = 8888;
/// Most workers one cluster may have.
pub const MAX_WORKERS: u32 = 64;
/// How many consecutive application UI ports the Jupyter container
/// publishes: one per notebook (or submit) running Spark at the same time.
pub const APP_UI_PORTS: u16 = 4;
/// Default host port of the history server's UI.
pub const DEFAULT_HISTORY_PORT: u16 = 18080;
/// Default host port of the Spark Connect server.
pub const DEFAULT_CONNECT_PORT: u16 = 15002;
/// The Spark Connect server's port inside its container.
pub const CONNECT_CONTAINER_PORT: u16 = 15002;
/// Where the drivers write event logs and the history server reads them.
pub const EVENTS_DIR: &str = "/events";

/// A container's part in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The Spark standalone master.
    Master,
    /// A Spark worker.
    Worker,
    /// JupyterLab, the driver.
    Jupyter,
    /// The Spark history server.
    History,
    /// The Spark Connect server.
    Connect,
}

impl Role {
    /// The label value and command word.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Worker => "worker",
            Role::Jupyter => "jupyter",
            Role::History => "history",
            Role::Connect => "connect",
        }
    }

    /// Parses a label value.
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "master" => Some(Role::Master),
            "worker" => Some(Role::Worker),
            "jupyter" => Some(Role::Jupyter),
            "history" => Some(Role::History),
            "connect" => Some(Role::Connect),
            _ => None,
        }
    }
}

/// A host port: chosen by sparkbox (starting from a default) or fixed by the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortChoice {
    /// Try the default, take the next free one if it is taken.
    Auto(u16),
    /// Exactly this port, or a clear error.
    Fixed(u16),
}

impl PortChoice {
    /// The port to try first.
    pub fn preferred(self) -> u16 {
        match self {
            PortChoice::Auto(p) | PortChoice::Fixed(p) => p,
        }
    }
}

/// The desired cluster.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Cluster name; prefixes every object name.
    pub name: String,
    /// Number of workers.
    pub workers: u32,
    /// Cores each worker offers.
    pub worker_cores: u32,
    /// Memory each worker offers to executors, in MiB.
    pub worker_memory_mb: u64,
    /// The image to run.
    pub image: ImageRecipe,
    /// Host address ports are published on.
    pub bind_address: String,
    /// Master web UI host port.
    pub master_ui_port: PortChoice,
    /// Jupyter host port.
    pub jupyter_port: PortChoice,
    /// Application UI host port.
    pub app_ui_port: PortChoice,
    /// How long `up` waits for readiness.
    pub timeout: Duration,
    /// A fixed Jupyter token (None: random, kept for the cluster's life).
    pub jupyter_token: Option<String>,
    /// Per-application defaults.
    pub apps: AppSettings,
    /// Named volume holding the notebooks.
    pub notebooks_volume: String,
    /// Host directory mounted at /data in every container.
    pub data_dir: Option<std::path::PathBuf>,
    /// The uid and gid the containers' `spark` user takes (the data
    /// directory's owner), so files written to bind mounts are the host user's.
    pub host_user: Option<(u32, u32)>,
    /// Run a history server (its UI port) over the drivers' event logs.
    pub history: Option<PortChoice>,
    /// Run a Spark Connect server (its host port).
    pub connect: Option<PortChoice>,
    /// Jupyter servers for a classroom, one per student (0: one Jupyter,
    /// named `<cluster>-jupyter`).
    pub students: u32,
    /// Services on a swarm instead of containers on one engine.
    pub swarm: Option<SwarmSpec>,
}

/// How a cluster is laid out over the nodes of a swarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwarmSpec {
    /// At most this many workers on one node.
    pub workers_per_node: u32,
}

/// Per-application defaults.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Default)]
pub struct AppSettings {
    /// Cores an application gets unless it asks (None: all free cores, Spark's default).
    pub cores: Option<u32>,
    /// Executor memory in MiB (None: Spark's default, 1g).
    pub executor_memory_mb: Option<u64>,
    /// Other spark-defaults for the drivers.
    pub conf: std::collections::BTreeMap<String, String>,
}

/// Most students one cluster may serve.
pub const MAX_STUDENTS: u32 = 64;

/// True for an address only this machine can reach.
pub fn is_loopback(address: &str) -> bool {
    address
        .parse::<std::net::IpAddr>()
        .map(|a| a.is_loopback())
        .unwrap_or(false)
}

/// The path the data directory has inside every container.
pub const DATA_DIR: &str = "/data";

/// Checks a cluster name: it prefixes container, network and volume names.
pub fn validate_cluster_name(name: &str) -> Result<()> {
    check_cluster_name(name, None)
}

/// [`validate_cluster_name`] for a name given by `from` (a file's key), or
/// by the flag when None.
pub fn check_cluster_name(name: &str, from: Option<&str>) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        return Ok(());
    }
    let rule = "use up to 40 lowercase letters, digits and '-', starting with a letter or digit";
    Err(Error::InvalidInput(match from {
        Some(from) => {
            format!("{from} {name:?} is not usable as a cluster name — {rule} (e.g. \"team-a\")")
        }
        None => format!("cluster name {name:?} is not usable — {rule} (e.g. --name team-a)"),
    }))
}

/// Parses a Spark memory size ("512m", "2g", "1536M") into MiB.
pub fn parse_memory_mb(text: &str) -> Result<u64> {
    let t = text.trim().to_ascii_lowercase();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let unit = unit.trim_end_matches('b');
    let bad = || {
        Error::InvalidInput(format!(
            "--memory {text:?} is not a size — write it like Spark does: 512m, 1g, 2g"
        ))
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let mb = match unit {
        "m" => Some(n),
        "g" => n.checked_mul(1024),
        "t" => n.checked_mul(1024 * 1024),
        _ => return Err(bad()),
    };
    let mb = mb.ok_or_else(|| {
        Error::InvalidInput(format!(
            "--memory {text} is more memory than any machine has — give a size like 2g"
        ))
    })?;
    if mb < 512 {
        return Err(Error::InvalidInput(format!(
            "--memory {text} is too small for a Spark worker — give at least 512m"
        )));
    }
    Ok(mb)
}

/// Formats MiB the way Spark expects ("1g" or "1536m").
pub fn format_memory_mb(mb: u64) -> String {
    if mb.is_multiple_of(1024) {
        format!("{}g", mb / 1024)
    } else {
        format!("{mb}m")
    }
}

/// Checks a worker count.
pub fn validate_workers(workers: u32) -> Result<()> {
    if workers == 0 || workers > MAX_WORKERS {
        return Err(Error::InvalidInput(format!(
            "--workers {workers} is out of range — give 1 to {MAX_WORKERS}"
        )));
    }
    Ok(())
}

/// Checks a per-worker core count.
pub fn validate_cores(cores: u32) -> Result<()> {
    if cores == 0 || cores > 256 {
        return Err(Error::InvalidInput(format!(
            "--cores {cores} is out of range — give 1 to 256 cores per worker"
        )));
    }
    Ok(())
}

/// The names of a cluster's objects.
#[derive(Debug, Clone)]
pub struct Names {
    cluster: String,
}

impl Names {
    /// Names for the cluster `cluster`.
    pub fn new(cluster: &str) -> Names {
        Names {
            cluster: cluster.to_string(),
        }
    }

    /// "<cluster>-master".
    pub fn master(&self) -> String {
        format!("{}-master", self.cluster)
    }

    /// "<cluster>-worker-<n>".
    pub fn worker(&self, n: u32) -> String {
        format!("{}-worker-{n}", self.cluster)
    }

    /// "<cluster>-jupyter".
    pub fn jupyter(&self) -> String {
        format!("{}-jupyter", self.cluster)
    }

    /// "<cluster>-jupyter-<n>": student n's Jupyter server.
    pub fn student_jupyter(&self, n: u32) -> String {
        format!("{}-jupyter-{n}", self.cluster)
    }

    /// "<cluster>-history".
    pub fn history(&self) -> String {
        format!("{}-history", self.cluster)
    }

    /// "<cluster>-connect".
    pub fn connect(&self) -> String {
        format!("{}-connect", self.cluster)
    }

    /// "<cluster>-events": the drivers' event logs, read by the history server.
    pub fn events_volume(&self) -> String {
        format!("{}-events", self.cluster)
    }

    /// "<cluster>-net".
    pub fn network(&self) -> String {
        format!("{}-net", self.cluster)
    }

    /// "<cluster>-notebooks".
    pub fn notebooks_volume(&self) -> String {
        format!("{}-notebooks", self.cluster)
    }

    /// "spark://<cluster>-master:7077".
    pub fn master_url(&self) -> String {
        format!("spark://{}:{MASTER_PORT}", self.master())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_documented_pattern() {
        let n = Names::new("team-a");
        assert_eq!(n.master(), "team-a-master");
        assert_eq!(n.worker(3), "team-a-worker-3");
        assert_eq!(n.jupyter(), "team-a-jupyter");
        assert_eq!(n.network(), "team-a-net");
        assert_eq!(n.notebooks_volume(), "team-a-notebooks");
        assert_eq!(n.events_volume(), "team-a-events");
        assert_eq!(n.history(), "team-a-history");
        assert_eq!(n.connect(), "team-a-connect");
        assert_eq!(n.master_url(), "spark://team-a-master:7077");
    }

    #[test]
    fn cluster_names_are_checked() {
        assert!(validate_cluster_name("sparkbox").is_ok());
        assert!(validate_cluster_name("ci-42").is_ok());
        for bad in ["", "-x", "Upper", "a_b", "a b", &"x".repeat(41)] {
            assert!(validate_cluster_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn memory_sizes_parse_like_spark() {
        assert_eq!(parse_memory_mb("1g").ok(), Some(1024));
        assert_eq!(parse_memory_mb("1536M").ok(), Some(1536));
        assert_eq!(parse_memory_mb("2gb").ok(), Some(2048));
        assert!(parse_memory_mb("lots").is_err());
        assert!(parse_memory_mb("100m").is_err());
        assert_eq!(format_memory_mb(2048), "2g");
        assert_eq!(format_memory_mb(1536), "1536m");
    }

    #[test]
    fn counts_are_bounded() {
        assert!(validate_workers(0).is_err());
        assert!(validate_workers(3).is_ok());
        assert!(validate_workers(65).is_err());
        assert!(validate_cores(0).is_err());
    }
}
