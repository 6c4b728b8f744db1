//! The one error type at the library boundary: each variant says what failed,
//! on which object, and what to do about it, and maps to a documented exit code.

use std::path::PathBuf;

/// Everything sparkbox can fail with, worded for the person at the terminal.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Docker engine did not answer at all.
    #[error(
        "cannot reach the Docker engine at {host}: {detail} — start Docker (e.g. `systemctl start docker`) or point DOCKER_HOST at a running engine"
    )]
    DockerUnreachable { host: String, detail: String },

    /// The socket exists but this user may not use it.
    #[error(
        "permission denied on the Docker socket {host} — add your user to the `docker` group (`usermod -aG docker $USER`, then log in again) or run sparkbox as root"
    )]
    DockerPermission { host: String },

    /// `--spark-version` names a release that is not in the version matrix.
    #[error("Spark {given} is not supported — choose one of: {supported} (`sparkbox build --spark-version VERSION`)")]
    UnknownSparkVersion { given: String, supported: String },

    /// A user-given value is wrong; the message names the value and the fix.
    #[error("{0}")]
    InvalidInput(String),

    /// The engine's disk (or the temporary directory) is full.
    #[error("no space left on the Docker engine's disk while {during} — free space (`sparkbox image prune` removes the sparkbox images no cluster uses; `docker system prune` the rest) and run the command again")]
    DiskFull { during: String },

    /// A step of the image build failed; `tail` holds that step's last lines.
    #[error("building {image} failed at {step}: {message}\n--- last lines of that step ---\n{tail}\n--- rerun with -v for the full build log")]
    BuildFailed {
        image: String,
        step: String,
        message: String,
        tail: String,
    },

    /// What the image measured differs from the version matrix.
    #[error("the image {image} does not contain the pinned versions:\n{differences}\nthe build was refused; check the version matrix or the extra packages")]
    VersionMismatch { image: String, differences: String },

    /// An image under the right tag in a registry is not the one this
    /// sparkbox would build.
    #[error("{reference} is not the image this sparkbox builds: {differences} — it was not run; push the right one from a machine that built it (`sparkbox image push`), or build it here without the registry (`sparkbox build`, no --registry)")]
    ImageMismatch {
        reference: String,
        differences: String,
    },

    /// A registry refused the credentials, or wants some.
    #[error("the registry {registry} refused to let sparkbox {action}: {detail} — log in with `docker login {host}` (sparkbox uses the credentials in {config}), then run the command again")]
    RegistryLogin {
        action: String,
        registry: String,
        host: String,
        config: String,
        detail: String,
    },

    /// A registry could not be used for anything but a login reason.
    #[error("cannot {action} ({registry}): {detail} — {fix}")]
    Registry {
        action: String,
        registry: String,
        detail: String,
        fix: String,
    },

    /// The base image is neither local, nor pullable, nor makeable offline.
    #[error("the base image {image} is not present and could not be pulled ({pull_error}); making it offline failed too ({offline_error}) — either load it with `docker load -i FILE` (or `sparkbox image load`), or let sparkbox make it: install debootstrap (`apt-get install -y debootstrap`) and pass a reachable Debian mirror with --debian-mirror URL")]
    BaseImageUnavailable {
        image: String,
        pull_error: String,
        offline_error: String,
    },

    /// A file the user named could not be read.
    #[error("cannot read {path}: {detail}")]
    FileUnreadable { path: PathBuf, detail: String },

    /// The engine answered with an error sparkbox has no better words for.
    #[error("the Docker engine refused to {action}: {detail}")]
    Engine { action: String, detail: String },

    /// The engine no longer has the object (its 404): removed behind
    /// sparkbox's back, e.g. by `docker rm` while a command ran.
    #[error("{object} is gone from the Docker engine (while trying to {action}: {detail}) — run the command again; `sparkbox status` shows what is left")]
    Gone {
        action: String,
        object: String,
        detail: String,
    },

    /// The engine already has an object of that name (its 409) that
    /// sparkbox did not expect: made outside sparkbox, or by another run.
    #[error("the Docker engine already has a {kind} named {name} (while trying to {action}): {detail} — if it is not sparkbox's, rename it or remove it (`{remove}`), or give the cluster another --name; if another sparkbox made it, `sparkbox up` again adopts the cluster as it is")]
    NameConflict {
        action: String,
        kind: String,
        name: String,
        detail: String,
        /// The command that removes it.
        remove: String,
    },

    /// A readiness deadline passed.
    #[error("{0}")]
    NotReady(String),

    /// The engine refused to remove an image something still uses (a
    /// container, running or not, or an image built on it); nothing was forced.
    #[error("the Docker engine refused to remove the image {image}: {detail} — nothing was forced; remove what uses it first (`sparkbox down -n CLUSTER` for a cluster's containers), or leave the image")]
    InUse { image: String, detail: String },

    /// Containers of one cluster run different versions.
    #[error("{0}")]
    ParityMismatch(String),

    /// A port the user fixed is taken.
    #[error("{0}")]
    PortTaken(String),

    /// The user pressed Ctrl-C.
    #[error("interrupted — {0}")]
    Interrupted(String),

    /// A swarm refused what was asked, or cannot run it as asked (not a
    /// manager, no node allowed, no registry for the image).
    #[error("{0}")]
    Swarm(String),

    /// A container of a swarm cluster runs on another node than the engine
    /// sparkbox talks to, so exec, copy and inspect cannot reach it there.
    #[error("{container} runs on swarm node {node}, and the engine at {host} reaches only the containers on its own node — run the command with DOCKER_HOST pointing at {node}'s engine, or read its log with `sparkbox logs`")]
    OtherNode {
        container: String,
        node: String,
        host: String,
    },

    /// Anything else that went wrong on this machine (not in the engine).
    #[error("{0}")]
    Io(String),

    /// A command run in a container (`exec`, `shell`, `submit`) exited with
    /// this non-zero code: sparkbox exits with it too, printing nothing more
    /// (the command has said why).
    #[error("the command exited with code {0}")]
    CommandExit(i32),
}

/// The short result type used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The process exit code for this error; the table is in the README.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::DockerUnreachable { .. } | Error::DockerPermission { .. } => 3,
            Error::UnknownSparkVersion { .. } | Error::InvalidInput(_) => 4,
            Error::FileUnreadable { .. } => 4,
            Error::BuildFailed { .. }
            | Error::VersionMismatch { .. }
            | Error::BaseImageUnavailable { .. }
            | Error::ImageMismatch { .. } => 5,
            Error::RegistryLogin { .. } | Error::Registry { .. } => 10,
            Error::DiskFull { .. } => 6,
            Error::NotReady(_) => 7,
            Error::ParityMismatch(_) => 8,
            Error::PortTaken(_) => 9,
            Error::Swarm(_) => 11,
            Error::Engine { .. } | Error::Io(_) | Error::OtherNode { .. } => 1,
            Error::Gone { .. } | Error::NameConflict { .. } | Error::InUse { .. } => 1,
            Error::Interrupted(_) => 130,
            Error::CommandExit(code) => (*code).clamp(1, 255) as u8,
        }
    }

    /// Whether main prints this error: a command's own failure
    /// ([`Error::CommandExit`]) has already said why on its own stderr.
    pub fn is_reported(&self) -> bool {
        !matches!(self, Error::CommandExit(_))
    }

    /// The engine's 409 on creating the `kind` ("container", "network",
    /// "volume") `name`, with the command that removes the one in the way.
    pub fn name_conflict(action: String, kind: &str, name: &str, detail: String) -> Error {
        let remove = match kind {
            "container" => format!("docker container rm -f {name}"),
            other => format!("docker {other} rm {name}"),
        };
        Error::NameConflict {
            action,
            kind: kind.to_string(),
            name: name.to_string(),
            detail,
            remove,
        }
    }

    /// Ok for a command's exit code 0, [`Error::CommandExit`] otherwise.
    pub fn from_exit_code(code: i64) -> Result<()> {
        match code {
            0 => Ok(()),
            c => Err(Error::CommandExit(i32::try_from(c).unwrap_or(if c < 0 {
                i32::MIN
            } else {
                i32::MAX
            }))),
        }
    }
}

/// True when an engine or build message says the disk is full.
pub fn is_disk_full(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("no space left on device") || lower.contains("disk quota exceeded")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_distinct_per_kind() {
        let unreachable = Error::DockerUnreachable {
            host: "x".into(),
            detail: "y".into(),
        };
        let unknown = Error::UnknownSparkVersion {
            given: "9".into(),
            supported: "4.0.1".into(),
        };
        let disk = Error::DiskFull {
            during: "building".into(),
        };
        assert_eq!(unreachable.exit_code(), 3);
        assert_eq!(unknown.exit_code(), 4);
        assert_eq!(disk.exit_code(), 6);
    }

    #[test]
    fn command_exit_codes_pass_through_clamped() {
        assert!(Error::from_exit_code(0).is_ok());
        let seven = Error::from_exit_code(7).unwrap_err();
        assert_eq!(seven.exit_code(), 7);
        assert!(!seven.is_reported());
        assert_eq!(Error::CommandExit(255).exit_code(), 255);
        assert_eq!(Error::CommandExit(300).exit_code(), 255);
        assert_eq!(Error::CommandExit(-1).exit_code(), 1);
        assert_eq!(Error::from_exit_code(-1).unwrap_err().exit_code(), 1);
        assert!(Error::InvalidInput("x".into()).is_reported());
    }

    #[test]
    fn disk_full_is_recognised_in_engine_messages() {
        assert!(is_disk_full(
            "write /var/lib/docker/tmp/x: no space left on device"
        ));
        assert!(!is_disk_full("permission denied"));
    }
}
