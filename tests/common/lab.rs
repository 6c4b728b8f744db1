//! A Docker engine of a test's own, beside the machine's: its own data
//! root, exec root, pidfile, socket and config file (naming the machine
//! daemon's storage driver), in a network namespace of its own, with no
//! bridge and no iptables rules — so a test can remove images, or later make
//! a swarm of several such engines, without touching the machine's daemon.
//! Stopped by the PID it started (never by name), its namespace and
//! directory removed on drop, also when the test panics.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sparkbox::engine::{DockerEngine, Engine};

/// How long a lab engine may take to answer on its socket.
const START_PATIENCE: Duration = Duration::from_secs(60);

/// One running lab engine.
pub struct LabEngine {
    /// The test it serves (in its messages).
    pub test: String,
    /// Its directory (data root, exec root, socket, config, log).
    pub dir: PathBuf,
    /// Its network namespace (`ip netns`).
    pub netns: String,
    child: Option<Child>,
    /// The cgroup its containers run under, when its config names one.
    cgroup_parent: Option<String>,
}

/// Whether the tests run as root.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Whether `program` is on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

/// Says which program a lab engine needs is missing, or that root is.
fn check_programs() -> Result<(), String> {
    if !is_root() {
        return Err("a lab engine needs root (dockerd and ip netns)".into());
    }
    for program in ["dockerd", "ip", "nsenter"] {
        if !on_path(program) {
            return Err(format!("{program} is not on PATH"));
        }
    }
    Ok(())
}

/// Runs `program` with `args` to its end: Ok, or what it said on failure.
pub fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The storage driver of the machine's daemon (its data root's file
/// system may need it: overlay2 does not stack here, fuse-overlayfs
/// does), or vfs, which works anywhere, when that daemon does not answer.
pub fn machine_storage_driver() -> String {
    super::block_on(async {
        match DockerEngine::connect().await {
            Ok(engine) => engine
                .system_info()
                .await
                .ok()
                .and_then(|i| i.storage_driver),
            Err(_) => None,
        }
    })
    .unwrap_or_else(|| "vfs".to_string())
}

impl LabEngine {
    /// Starts a lab engine for test `name`, answering on its socket, or
    /// says why it cannot.
    pub fn start(name: &str) -> Result<LabEngine, String> {
        LabEngine::start_on_disk(name, None)
    }

    /// [`LabEngine::start`] with its data root on a disk of `megabytes`
    /// (a size-limited tmpfs, unmounted on drop): an engine whose disk
    /// fills.
    pub fn start_small(name: &str, megabytes: u32) -> Result<LabEngine, String> {
        LabEngine::start_on_disk(name, Some(megabytes))
    }

    fn start_on_disk(name: &str, megabytes: Option<u32>) -> Result<LabEngine, String> {
        check_programs()?;
        sweep_orphans("sbxlab");
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let id = format!("sbxlab-{}-{n}", std::process::id());
        // Short: the engine's and containerd's sockets must fit 108 bytes.
        let dir = std::env::temp_dir().join(&id);
        let mut lab = LabEngine {
            test: name.to_string(),
            dir,
            netns: id,
            child: None,
            cgroup_parent: None,
        };
        // From here on, Drop removes whatever was made.
        run("ip", &["netns", "add", &lab.netns])?;
        run("ip", &["-n", &lab.netns, "link", "set", "lo", "up"])?;
        let config = serde_json::json!({
            "storage-driver": machine_storage_driver(),
            "bridge": "none",
            "iptables": false,
            "ip-masq": false,
            "log-driver": "json-file",
        });
        if let Some(mb) = megabytes {
            let root = lab.dir.join("root");
            std::fs::create_dir_all(&root)
                .map_err(|e| format!("cannot make {}: {e}", root.display()))?;
            run(
                "mount",
                &[
                    "-t",
                    "tmpfs",
                    "-o",
                    &format!("size={mb}m"),
                    "sbx-disk",
                    &root.to_string_lossy(),
                ],
            )?;
        }
        lab.launch(&config, None, None)?;
        Ok(lab)
    }

    /// Its data root (where a small lab's disk is mounted).
    pub fn data_root(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// Starts a lab engine for test `name` in the network namespace
    /// `netns`, which the caller made (with its links) and which the engine
    /// then owns (removed on drop), with its files in `dir`, `config` as its
    /// daemon.json and, given `hostname`, a UTS namespace of its own under
    /// that name. A `cgroup-parent` in `config` names the cgroup whose
    /// leftover processes (containers of a killed engine) drop kills.
    pub fn start_in(
        name: &str,
        dir: PathBuf,
        netns: &str,
        config: &serde_json::Value,
        hostname: Option<&str>,
        hide: Option<&Path>,
    ) -> Result<LabEngine, String> {
        let mut lab = LabEngine {
            test: name.to_string(),
            dir,
            netns: netns.to_string(),
            child: None,
            cgroup_parent: config
                .get("cgroup-parent")
                .and_then(|c| c.as_str())
                .map(|c| c.trim_matches('/').to_string()),
        };
        check_programs()?;
        if hostname.is_some() && !on_path("unshare") {
            return Err("unshare is not on PATH".into());
        }
        lab.launch(config, hostname, hide)?;
        Ok(lab)
    }

    /// Writes its config and starts dockerd in its namespace, waiting until
    /// it answers on its socket.
    /// With `hide`, the engine runs in a mount namespace of its own where an
    /// empty tmpfs covers that directory: what is under it on this machine
    /// does not exist for that engine (a node without a path the others have).
    fn launch(
        &mut self,
        config: &serde_json::Value,
        hostname: Option<&str>,
        hide: Option<&Path>,
    ) -> Result<(), String> {
        let lab = self;
        std::fs::create_dir_all(lab.dir.join("root"))
            .and_then(|_| std::fs::create_dir_all(lab.dir.join("exec")))
            .map_err(|e| format!("cannot make {}: {e}", lab.dir.display()))?;
        let config_file = lab.dir.join("daemon.json");
        std::fs::write(&config_file, config.to_string())
            .map_err(|e| format!("cannot write {}: {e}", config_file.display()))?;
        let log = std::fs::File::create(lab.dir.join("dockerd.log"))
            .map_err(|e| format!("cannot make the engine's log: {e}"))?;
        let log2 = log
            .try_clone()
            .map_err(|e| format!("cannot share the engine's log: {e}"))?;
        let path = |p: &str| lab.dir.join(p).to_string_lossy().into_owned();
        let dockerd = [
            "dockerd".to_string(),
            "--config-file".into(),
            path("daemon.json"),
            "--data-root".into(),
            path("root"),
            "--exec-root".into(),
            path("exec"),
            "--pidfile".into(),
            path("docker.pid"),
            "-H".into(),
            format!("unix://{}", path("docker.sock")),
        ];
        // nsenter (and unshare, and sh) exec dockerd: the child's PID is the
        // engine's.
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net=/run/netns/{}", lab.netns))
            .arg("--");
        match (hostname, hide) {
            (Some(hostname), Some(hide)) => {
                command
                    .args(["unshare", "--uts", "--mount", "--", "sh", "-c"])
                    .arg(r#"hostname "$0" && mount -t tmpfs -o size=1m sbx-hide "$1" && shift && exec "$@""#)
                    .arg(hostname)
                    .arg(hide)
                    .args(&dockerd);
            }
            (None, Some(_)) => {
                return Err("a lab engine hides a path only with a host name of its own".into())
            }
            (None, None) => {
                command.args(&dockerd);
            }
            (Some(hostname), None) => {
                // The host name and dockerd's arguments go as arguments,
                // never into the script's text.
                command
                    .args(["unshare", "--uts", "--", "sh", "-c"])
                    .arg(r#"hostname "$0" && exec "$@""#)
                    .arg(hostname)
                    .args(&dockerd);
            }
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("cannot start dockerd: {e}"))?;
        lab.child = Some(child);
        let deadline = Instant::now() + START_PATIENCE;
        loop {
            if let Some(child) = lab.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    lab.child = None;
                    return Err(format!(
                        "the lab engine of {} exited ({status}) before answering:\n{}",
                        lab.test,
                        lab.log_tail()
                    ));
                }
            }
            if lab.socket().exists() && super::block_on(lab.engine_once()).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "dockerd did not answer on {} within {} s:\n{}",
                    lab.socket().display(),
                    START_PATIENCE.as_secs(),
                    lab.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Restarts its dockerd as a reboot of its machine would: the engine
    /// stopped by its PID (SIGTERM: it stops its containers and its
    /// containerd), then started again on the same data root and config.
    /// A lab of [`LabEngine::start`] only (no host name of its own).
    pub fn restart(&mut self) -> Result<(), String> {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            run("kill", &["-TERM", &pid])?;
            let deadline = Instant::now() + Duration::from_secs(90);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if Instant::now() >= deadline {
                    self.child = Some(child);
                    return Err(format!(
                        "the lab engine of {} did not stop within 90 s:\n{}",
                        self.test,
                        self.log_tail()
                    ));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let text = std::fs::read_to_string(self.dir.join("daemon.json"))
            .map_err(|e| format!("cannot read the lab engine's config: {e}"))?;
        let config: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("the lab engine's config is not JSON: {e}"))?;
        self.launch(&config, None, None)
    }

    /// Its socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    /// Its address, as DOCKER_HOST takes it.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    async fn engine_once(&self) -> sparkbox::Result<DockerEngine> {
        DockerEngine::connect_to_socket(&self.host()).await
    }

    /// A connection to it.
    pub async fn engine(&self) -> DockerEngine {
        self.engine_once().await.expect("the lab engine answers")
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The PID in `file` when that process is one this lab started (its
    /// command line names the lab's directory).
    fn own_pid(&self, file: &Path) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(file).ok()?.trim().parse().ok()?;
        self.owns(pid).then_some(pid)
    }

    /// Whether process `pid` is one of this lab's (its command line names
    /// the lab's directory).
    fn owns(&self, pid: u32) -> bool {
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            return false;
        };
        let dir = self.dir.to_string_lossy();
        String::from_utf8_lossy(&cmdline).contains(dir.as_ref())
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        // Its containerd outlives a killed dockerd; it is ours by its pidfile.
        let containerd = self.dir.join("exec/containerd/containerd.pid");
        if let Some(pid) = self.own_pid(&containerd) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        // The shims of its containers outlive a killed containerd: each is
        // the parent of a container init in the lab's exec root (init.pid),
        // and ours when its command line names the lab's directory. Found
        // before the inits die, killed after.
        let tasks = self
            .dir
            .join("exec/containerd/daemon/io.containerd.runtime.v2.task/moby");
        let shims: Vec<u32> = std::fs::read_dir(&tasks)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let init = std::fs::read_to_string(entry.path().join("init.pid")).ok()?;
                let stat = std::fs::read_to_string(format!("/proc/{}/stat", init.trim())).ok()?;
                // pid (comm) state ppid …: the comm may hold spaces.
                let ppid: u32 = stat
                    .rsplit(')')
                    .next()?
                    .split_whitespace()
                    .nth(1)?
                    .parse()
                    .ok()?;
                self.owns(ppid).then_some(ppid)
            })
            .collect();
        // What still runs in its own cgroup (containers of a killed engine)
        // is ours by that cgroup; then the cgroup goes, in every hierarchy.
        if let Some(parent) = &self.cgroup_parent {
            remove_cgroup(parent);
        }
        for pid in shims {
            if self.owns(pid) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
        // Mounts a killed engine left.
        unmount_under(&self.dir.to_string_lossy());
        let _ = run("ip", &["netns", "del", &self.netns]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Unmounts (lazily, deepest first) every mount at or under `dir`.
pub fn unmount_under(dir: &str) {
    let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(str::to_string))
        .filter(|m| m.starts_with(dir))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        let _ = Command::new("umount").args(["-l", &m]).status();
    }
}

/// Removes what labs of a test process that is gone left behind: a test
/// killed outright (SIGKILL, a CI job cancelled) never runs its labs' Drop.
/// A lab's every object is named `{prefix}-{PID}-{N}…` after the process
/// that made it, so an object whose PID no longer runs is an orphan of this
/// code's own: the processes whose command line names its directory
/// (engines, containerds, shims, fuse-overlayfs, registries) are killed,
/// its mounts unmounted, its cgroups, namespaces and directory removed.
/// Nothing of a running process's labs, or of anyone else, is touched.
pub fn sweep_orphans(prefix: &str) {
    // Once per test process and prefix: labs started in parallel threads
    // would otherwise sweep the same remains side by side.
    static SWEPT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    {
        let mut swept = SWEPT.lock().unwrap_or_else(|p| p.into_inner());
        if swept.iter().any(|p| p == prefix) {
            return;
        }
        swept.push(prefix.to_string());
    }
    let dead_id = |name: &str| -> Option<String> {
        let rest = name.strip_prefix(prefix)?.strip_prefix('-')?;
        let mut parts = rest.splitn(3, '-');
        let pid: u32 = parts.next()?.parse().ok()?;
        let n: u32 = parts.next()?.parse().ok()?;
        (!Path::new(&format!("/proc/{pid}")).exists()).then(|| format!("{prefix}-{pid}-{n}"))
    };
    let netns_list = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let namespaces: Vec<String> = netns_list
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    let tmp = std::env::temp_dir();
    let mut ids: Vec<String> = namespaces.iter().filter_map(|n| dead_id(n)).collect();
    ids.extend(
        std::fs::read_dir(&tmp)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| dead_id(&e.file_name().to_string_lossy())),
    );
    // A lab's cgroups (one per engine, `{id}-{node}`) may outlive the rest.
    ids.extend(
        std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|h| std::fs::read_dir(h.path()).into_iter().flatten().flatten())
            .filter_map(|g| dead_id(&g.file_name().to_string_lossy())),
    );
    ids.sort();
    ids.dedup();
    for id in ids {
        let dir = tmp.join(&id).to_string_lossy().into_owned();
        let mine = format!("{dir}/");
        let pids: Vec<String> = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let pid = e.file_name().to_string_lossy().into_owned();
                pid.parse::<u32>().ok()?;
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
                String::from_utf8_lossy(&cmdline)
                    .contains(mine.as_str())
                    .then_some(pid)
            })
            .collect();
        for pid in &pids {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
        // Their containers: in the lab's own cgroups, named after the id.
        for group in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|h| std::fs::read_dir(h.path()).into_iter().flatten().flatten())
            .filter(|g| g.file_name().to_string_lossy().starts_with(id.as_str()))
        {
            remove_cgroup(&group.file_name().to_string_lossy());
        }
        unmount_under(&mine);
        for netns in namespaces
            .iter()
            .filter(|n| *n == &id || n.starts_with(&format!("{id}-")))
        {
            let _ = run("ip", &["netns", "del", netns]);
        }
        let _ = std::fs::remove_dir_all(&dir);
        eprintln!("removed the remains of lab {id}, whose test process is gone");
    }
}

/// Kills the processes left in cgroup `parent` (a lab's own, named after
/// it) and its children, and removes them, in every hierarchy (v1 or v2).
fn remove_cgroup(parent: &str) {
    let roots: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join(parent))
        .chain([Path::new("/sys/fs/cgroup").join(parent)])
        .filter(|p| p.is_dir())
        .collect();
    let children = |root: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(root)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect()
    };
    for root in &roots {
        for group in children(root).iter().chain([root]) {
            let procs = std::fs::read_to_string(group.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
    }
    for root in &roots {
        for attempt in 0..50 {
            for group in children(root) {
                let _ = std::fs::remove_dir(group);
            }
            if std::fs::remove_dir(root).is_ok() || !root.exists() || attempt == 49 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for LabEngine {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A lab engine for `test`, or None (with the reason printed) when one
/// cannot be started here; under CI=true that fails the test instead.
pub fn lab_engine(test: &str) -> Option<LabEngine> {
    started_or_skipped(test, LabEngine::start(test))
}

/// [`lab_engine`] on a disk of `megabytes` ([`LabEngine::start_small`]).
pub fn small_lab_engine(test: &str, megabytes: u32) -> Option<LabEngine> {
    started_or_skipped(test, LabEngine::start_small(test, megabytes))
}

fn started_or_skipped(test: &str, started: Result<LabEngine, String>) -> Option<LabEngine> {
    match started {
        Ok(lab) => Some(lab),
        Err(why) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true requires the lab engine tests to run, but: {why}");
            }
            eprintln!("SKIPPED {test}: cannot start a lab engine ({why})");
            None
        }
    }
}
