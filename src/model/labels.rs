//! Label keys and object names: labels are sparkbox's only record of what it
//! made, so every container, network, volume and image it creates carries them.

use std::collections::HashMap;

/// The cluster an object belongs to.
pub const CLUSTER: &str = "io.sparkbox.cluster";
/// The role of a container: master, worker, jupyter.
pub const ROLE: &str = "io.sparkbox.role";
/// The worker number (1-based) of a worker container.
pub const INDEX: &str = "io.sparkbox.index";
/// Hash of a service's configuration, leaving the replica count out.
pub const CONFIG_HASH: &str = "io.sparkbox.config-hash";
/// Marks images built by sparkbox ("jupyter-spark") or made by it ("base").
pub const IMAGE: &str = "io.sparkbox.image";
/// Content hash of everything that shapes the jupyter-spark image.
pub const IMAGE_HASH: &str = "io.sparkbox.image-hash";
/// All measured versions of an image as one JSON object.
pub const VERSIONS: &str = "io.sparkbox.versions";
/// Prefix of the per-component version labels (io.sparkbox.version.spark …).
pub const VERSION_PREFIX: &str = "io.sparkbox.version.";
/// Marks throwaway containers (version probes) so a crash leaves them findable.
pub const TEMPORARY: &str = "io.sparkbox.temporary";

/// Label carrying the Jupyter token, so a later `up` or `status` can reuse it.
pub const TOKEN: &str = "io.sparkbox.jupyter-token";
/// Label with the image reference a container runs.
pub const IMAGE_REF: &str = "io.sparkbox.image-ref";
/// Label with a master's or worker's UI port (host and container alike).
pub const UI_PORT: &str = "io.sparkbox.ui-port";
/// Label with Jupyter's host port.
pub const JUPYTER_PORT: &str = "io.sparkbox.jupyter-port";
/// Label with the application UI port.
pub const APP_UI_PORT: &str = "io.sparkbox.app-ui-port";
/// Label with a worker's cores (so `scale` can add identical workers).
pub const WORKER_CORES: &str = "io.sparkbox.worker-cores";
/// Label with a worker's memory in MiB.
pub const WORKER_MEMORY: &str = "io.sparkbox.worker-memory-mb";
/// Label with the host data directory mounted at /data (so `scale` adds
/// workers that see it too).
pub const DATA_DIR: &str = "io.sparkbox.data-dir";
/// Label with the "uid:gid" the containers' `spark` user runs as.
pub const HOST_USER: &str = "io.sparkbox.host-user";
/// Label with the bind address the cluster's ports are published on.
pub const BIND: &str = "io.sparkbox.bind";
/// Label (on the master) with the Spark RPC authentication secret, set when
/// ports are published beyond this machine.
pub const SECRET: &str = "io.sparkbox.rpc-secret";
/// Label with a Jupyter server's notebooks volume.
pub const NOTEBOOKS: &str = "io.sparkbox.notebooks-volume";
/// Label with the history server's or Spark Connect server's host port.
pub const SERVICE_PORT: &str = "io.sparkbox.service-port";
/// Label with the cluster's whole record (JSON of `Recorded` in
/// model/record.rs) as it was when the container was made;
/// left out of the config hash, so it never recreates anything.
pub const RECORD: &str = "io.sparkbox.record";

/// "swarm" on the objects of a cluster made of swarm services (absent: containers).
pub const ENGINE: &str = "io.sparkbox.engine";
/// On the one-shot job that checks a cluster's host directories on a
/// swarm's nodes before the cluster starts: the cluster's name (not
/// [`CLUSTER`], so nothing reads the job as part of the cluster).
pub const CHECK: &str = "io.sparkbox.check";
/// The value of [`ENGINE`] for a swarm cluster.
pub const ENGINE_SWARM: &str = "swarm";
/// The swarm node a service is placed on (its node ID), when sparkbox placed it.
pub const NODE: &str = "io.sparkbox.node";
/// Workers per node a swarm cluster was made with.
pub const WORKERS_PER_NODE: &str = "io.sparkbox.workers-per-node";

/// Label with the ID of the image a container was made from, stamped when
/// it is created (left out of the config hash).
pub const IMAGE_ID: &str = "io.sparkbox.image-id";
/// Label with the registry digest of that image ("REPO@sha256:…"), when a
/// registry knows it (left out of the config hash).
pub const IMAGE_DIGEST: &str = "io.sparkbox.image-digest";

/// A typed view of one labelled object: what sparkbox recorded on it.
#[derive(Debug, Clone, Copy)]
pub struct Labelled<'a>(pub &'a HashMap<String, String>);

impl<'a> Labelled<'a> {
    /// The raw value of `key`, when present and not empty.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The cluster the object belongs to.
    pub fn cluster(&self) -> Option<&'a str> {
        self.get(CLUSTER)
    }

    /// Its role, when it is one sparkbox knows.
    pub fn role(&self) -> Option<crate::model::spec::Role> {
        self.get(ROLE).and_then(crate::model::spec::Role::parse)
    }

    /// Its number: a worker's (1-based) or a student's Jupyter server's.
    pub fn index(&self) -> Option<u32> {
        self.get(INDEX).and_then(|i| i.parse().ok())
    }

    /// A port recorded under `key` (UI_PORT, JUPYTER_PORT, …).
    pub fn port(&self, key: &str) -> Option<u16> {
        self.get(key).and_then(|p| p.parse().ok())
    }

    /// A Jupyter server's token.
    pub fn token(&self) -> Option<&'a str> {
        self.get(TOKEN)
    }

    /// The image reference it runs.
    pub fn image_ref(&self) -> Option<&'a str> {
        self.get(IMAGE_REF)
    }

    /// The ID of the image it was made from.
    pub fn image_id(&self) -> Option<&'a str> {
        self.get(IMAGE_ID)
    }

    /// The registry digest of that image, when a registry knows it.
    pub fn image_digest(&self) -> Option<&'a str> {
        self.get(IMAGE_DIGEST)
    }

    /// Its configuration hash.
    pub fn config_hash(&self) -> Option<&'a str> {
        self.get(CONFIG_HASH)
    }

    /// The (uid, gid) its `spark` user runs as ("uid:gid").
    pub fn host_user(&self) -> Option<(u32, u32)> {
        let (u, g) = self.get(HOST_USER)?.split_once(':')?;
        Some((u.parse().ok()?, g.parse().ok()?))
    }

    /// A number recorded under `key`.
    pub fn number<T: std::str::FromStr>(&self, key: &str) -> Option<T> {
        self.get(key).and_then(|v| v.parse().ok())
    }
}

/// A short random suffix for throwaway object names.
pub fn random_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}{:x}", std::process::id(), nanos & 0xff_ffff)
}
