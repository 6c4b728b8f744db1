//! Label keys and object names: labels are sparkbox's only record of what it
//! made, so every container, network, volume and image it creates carries them.

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

/// A short random suffix for throwaway object names.
pub fn random_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}{:x}", std::process::id(), nanos & 0xff_ffff)
}
