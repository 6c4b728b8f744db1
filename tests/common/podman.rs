//! A Podman service of a test's own, never the host's packages: Debian's
//! podman and what it needs, unpacked by `.ci/prepare` into target/podman
//! (`apt-get download` and `dpkg-deb -x`: nothing installed, nothing
//! upgraded), run as `podman system service` (its Docker-compatible API) in
//! a network namespace, storage and configuration of its own
//! (containers.conf with the ulimits this machine needs, storage.conf,
//! registries.conf, policy.json). Its containers are removed through its
//! API, then the service, its conmons and fuse-overlayfs mounts are stopped
//! by what names its directory, and its namespace and directory go, on drop
//! — also when the test panics; `sweep_orphans` takes what a killed test
//! left.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::lab::{is_root, on_path, sweep_orphans};

/// Where `.ci/prepare` unpacks Podman.
pub fn podman_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/podman")
}

/// One running Podman service.
pub struct PodmanLab {
    pub test: String,
    /// Its directory (storage, run root, configuration, socket, log).
    pub dir: PathBuf,
    /// Its network namespace.
    pub netns: String,
    child: Option<Child>,
}

impl PodmanLab {
    /// Starts a Podman service for test `name`, or says why it cannot.
    pub fn start(name: &str) -> Result<PodmanLab, String> {
        if !is_root() {
            return Err("a Podman lab needs root (ip netns)".into());
        }
        let root = podman_root();
        let podman = root.join("usr/bin/podman");
        if !podman.is_file() {
            return Err(format!(
                "{} is missing — run .ci/prepare (it unpacks Debian's podman there)",
                podman.display()
            ));
        }
        for program in ["ip", "nsenter", "unshare", "fuse-overlayfs", "iptables"] {
            if !on_path(program) {
                return Err(format!("{program} is not on PATH"));
            }
        }
        sweep_orphans("sbxpm");
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let id = format!("sbxpm-{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(&id);
        let mut lab = PodmanLab {
            test: name.to_string(),
            dir,
            netns: id,
            child: None,
        };
        for sub in ["storage", "run", "tmp", "networks", "xdg"] {
            std::fs::create_dir_all(lab.dir.join(sub))
                .map_err(|e| format!("cannot make {}: {e}", lab.dir.display()))?;
        }
        super::lab::run("ip", &["netns", "add", &lab.netns])?;
        super::lab::run("ip", &["-n", &lab.netns, "link", "set", "lo", "up"])?;
        // The machine's runc (Docker's): Debian's crun 1.8 refuses this
        // machine's hybrid cgroup hierarchy.
        let runc = ["/usr/sbin/runc", "/usr/bin/runc"]
            .into_iter()
            .find(|p| Path::new(p).is_file())
            .ok_or("runc is not installed (Docker's runtime)")?;
        let d = lab.dir.to_string_lossy().into_owned();
        let r = root.to_string_lossy().into_owned();
        let files = [
            (
                "containers.conf",
                format!(
                    r#"[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[network]
network_backend = "netavark"
network_config_dir = "{d}/networks"
[engine]
cgroup_manager = "cgroupfs"
# What `sparkbox doctor` advises on Podman: an exec's two conmon processes
# wait this long (Podman's default: 300 s) before they go.
exit_command_delay = 10
events_logger = "file"
events_logfile_path = "{d}/events.log"
helper_binaries_dir = ["{r}/usr/bin", "{r}/usr/libexec/podman", "{r}/usr/lib/podman"]
conmon_path = ["{r}/usr/bin/conmon"]
runtime = "runc"
tmp_dir = "{d}/tmp"
[engine.runtimes]
runc = ["{runc}"]
"#
                ),
            ),
            (
                "storage.conf",
                format!(
                    r#"[storage]
driver = "overlay"
graphroot = "{d}/storage"
runroot = "{d}/run"
[storage.options.overlay]
mount_program = "/usr/bin/fuse-overlayfs"
"#
                ),
            ),
            (
                "registries.conf",
                "unqualified-search-registries = []\n".to_string(),
            ),
            (
                "policy.json",
                r#"{"default":[{"type":"insecureAcceptAnything"}]}"#.to_string(),
            ),
        ];
        for (file, text) in files {
            std::fs::write(lab.dir.join(file), text)
                .map_err(|e| format!("cannot write {file}: {e}"))?;
        }
        let log = std::fs::File::create(lab.dir.join("podman.log"))
            .map_err(|e| format!("cannot make the service's log: {e}"))?;
        let log2 = log
            .try_clone()
            .map_err(|e| format!("cannot share the service's log: {e}"))?;
        // Podman 4.3 reads its signature policy only from
        // /etc/containers/policy.json: the service sees a copy of /etc
        // holding it, bound over /etc in a mount namespace of its own —
        // the machine's /etc is untouched.
        let child = lab
            .command("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(
                r#"cp -a /etc "$0/etc" && mkdir -p "$0/etc/containers" && cp "$0/policy.json" "$0/etc/containers/" && mount --bind "$0/etc" /etc && exec "$@""#,
            )
            .arg(&lab.dir)
            .arg(&podman)
            .args(["system", "service", "--time=0"])
            .arg(lab.host())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("cannot start podman: {e}"))?;
        lab.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let version = Command::new("docker")
                .args([
                    "-H",
                    &lab.host(),
                    "version",
                    "--format",
                    "{{.Server.Version}}",
                ])
                .output();
            if version.is_ok_and(|o| o.status.success()) {
                return Ok(lab);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "podman did not answer on {} within 30 s:\n{}",
                    lab.host(),
                    lab.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Its socket, as DOCKER_HOST takes it.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.join("podman.sock").display())
    }

    /// `program` run in its network namespace (where the ports its
    /// containers publish on 127.0.0.1 are), with its configuration.
    pub fn command(&self, program: &str) -> Command {
        let root = podman_root();
        let d = &self.dir;
        // nsenter rather than `ip netns exec`, which mounts a /sys of its
        // own and so hides the cgroup hierarchies from Podman.
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net=/run/netns/{}", self.netns))
            .args(["--", program])
            .env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", d.join("registries.conf"))
            .env("XDG_RUNTIME_DIR", d.join("xdg"))
            .env("LD_LIBRARY_PATH", root.join("usr/lib/x86_64-linux-gnu"))
            .env("DOCKER_HOST", self.host());
        let path = std::env::var("PATH").unwrap_or_default();
        command.env("PATH", format!("{}:{path}", root.join("usr/bin").display()));
        command
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("podman.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Processes whose command line names its directory (the service, its
    /// conmons, fuse-overlayfs).
    fn own_processes(&self) -> Vec<u32> {
        let mine = format!("{}/", self.dir.display());
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let pid: u32 = e.file_name().to_string_lossy().parse().ok()?;
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
                String::from_utf8_lossy(&cmdline)
                    .contains(mine.as_str())
                    .then_some(pid)
            })
            .collect()
    }

    /// Its conmon processes now.
    pub fn conmons(&self) -> usize {
        self.own_processes()
            .into_iter()
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim() == "conmon")
            })
            .count()
    }
}

impl Drop for PodmanLab {
    fn drop(&mut self) {
        // Its containers first, through its own API.
        if let Ok(out) = Command::new("docker")
            .args(["-H", &self.host(), "ps", "-aq"])
            .output()
        {
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_string)
                .collect();
            if !ids.is_empty() {
                let _ = Command::new("docker")
                    .args(["-H", &self.host(), "rm", "-f"])
                    .args(&ids)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        for pid in self.own_processes() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        super::lab::unmount_under(&self.dir.to_string_lossy());
        let _ = super::lab::run("ip", &["netns", "del", &self.netns]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Podman lab for `test`; under CI=true one that cannot start fails the
/// test, elsewhere it is skipped with the reason.
pub fn podman_lab(test: &str) -> Option<PodmanLab> {
    match PodmanLab::start(test) {
        Ok(lab) => Some(lab),
        Err(why) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true requires the Podman tests to run, but: {why}");
            }
            eprintln!("SKIPPED {test}: cannot start a Podman lab ({why})");
            None
        }
    }
}
