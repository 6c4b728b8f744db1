//! A real Docker Swarm of a test's own: N lab engines (see `lab.rs`) on
//! this machine, each in a network namespace of its own with its own host
//! name, joined by veths to a bridge that lives in a hub namespace (in the
//! root namespace br_netfilter and a FORWARD DROP policy would drop their
//! traffic). The hub also runs a real registry (Debian's `docker-registry`)
//! that every node trusts over plain http, and one more veth reaches the
//! bridge from the root namespace, so the test process can talk to the
//! nodes' host-mode published ports (local output there, no forwarding).
//!
//! Each lab takes a slot of its own — a node subnet 10.213.S.0/24 and a
//! swarm address pool 10.(100+S).0.0/16 for its overlays, neither of which
//! overlaps a route of the root namespace — claimed atomically by the name
//! of its root-side veth. Nothing reaches beyond the lab: the nodes have no
//! default route. The lab engines keep the machine daemon's storage driver
//! and need no bridge and no iptables of their own (overlays, service DNS
//! and host-mode ports work without; their iptables would be their own
//! namespace's anyway). Everything — engines, their containerd and
//! containers, registry, namespaces, links, directory — is removed on drop,
//! also when the test panics, and processes are stopped by the PIDs the lab
//! started (or found in its own pidfiles and cgroups), never by name.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sparkbox::engine::DockerEngine;

use super::lab::{is_root, machine_storage_driver, on_path, run, LabEngine};

/// How long the nodes may take to be Ready after their joins.
const READY_PATIENCE: Duration = Duration::from_secs(60);
/// The registry's port in the hub namespace.
const REGISTRY_PORT: u16 = 5000;
/// How many labs may run at once on the machine (slots).
const SLOTS: u32 = 100;

/// One node of a swarm lab.
struct Node {
    engine: LabEngine,
    hostname: String,
    address: String,
    node_id: String,
}

/// A running swarm of lab engines: its nodes, hub namespace, registry and subnet.
pub struct SwarmLab {
    test: String,
    dir: PathBuf,
    hub: String,
    /// The namespaces made so far (the nodes' own remove theirs too).
    namespaces: Vec<String>,
    /// The root-side veth into the hub bridge, once claimed.
    uplink: Option<String>,
    /// The third octet of the node subnet 10.213.S.0/24.
    subnet: u32,
    /// The swarm's default address pool.
    addr_pool: String,
    registry: Option<Child>,
    nodes: Vec<Node>,
}

/// `docker -H host args…` to its end: its stdout, or what it said on failure.
fn docker_cli(host: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker")
        .arg("-H")
        .arg(host)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run docker: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`docker -H {host} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// An IPv4 prefix "a.b.c.d/len" (or a bare address) as (network, length).
fn prefix(text: &str) -> Option<(u32, u32)> {
    let (addr, len) = text.split_once('/').unwrap_or((text, "32"));
    let addr: std::net::Ipv4Addr = addr.parse().ok()?;
    let len: u32 = len.parse().ok().filter(|l| *l <= 32)?;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Some((u32::from(addr) & mask, len))
}

/// Whether two IPv4 prefixes share an address.
fn overlaps(a: (u32, u32), b: (u32, u32)) -> bool {
    let len = a.1.min(b.1);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    a.0 & mask == b.0 & mask
}

/// The prefixes the root namespace routes (the machine's own networks,
/// its Docker bridges, other labs' subnets).
fn root_prefixes() -> Vec<(u32, u32)> {
    let out = Command::new("ip")
        .args(["-4", "route", "show", "table", "all"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let mut first = words.next()?;
            if ["local", "broadcast", "unicast"].contains(&first) {
                first = words.next()?;
            }
            if first == "default" {
                return None;
            }
            prefix(first)
        })
        .collect()
}

impl SwarmLab {
    /// Starts `nodes` lab engines in one swarm (node 0 manager, others workers), all Ready, or says why not.
    pub fn start(test: &str, nodes: usize) -> Result<SwarmLab, String> {
        SwarmLab::start_hiding(test, nodes, None)
    }

    /// As [`SwarmLab::start`], with `hide` = (node, directory): on that node
    /// the directory is an empty tmpfs, so nothing this machine has under it
    /// exists there.
    pub fn start_hiding(
        test: &str,
        nodes: usize,
        hide: Option<(usize, PathBuf)>,
    ) -> Result<SwarmLab, String> {
        if !(1..=100).contains(&nodes) {
            return Err(format!("a swarm lab has 1 to 100 nodes, not {nodes}"));
        }
        if !is_root() {
            return Err("a swarm lab needs root (dockerd and ip netns)".into());
        }
        for program in [
            "dockerd",
            "ip",
            "nsenter",
            "unshare",
            "docker",
            "docker-registry",
        ] {
            if !on_path(program) {
                return Err(format!("{program} is not on PATH"));
            }
        }
        super::lab::sweep_orphans("sbxsw");
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let id = format!("sbxsw-{pid}-{n}");
        // Short: the engines' and containerds' sockets must fit 108 bytes.
        let dir = std::env::temp_dir().join(&id);
        let mut lab = SwarmLab {
            test: test.to_string(),
            dir,
            hub: format!("{id}-hub"),
            namespaces: Vec::new(),
            uplink: None,
            subnet: 0,
            addr_pool: String::new(),
            registry: None,
            nodes: Vec::new(),
        };
        // From here on, Drop removes whatever was made.
        std::fs::create_dir_all(lab.dir.join("registry"))
            .map_err(|e| format!("cannot make {}: {e}", lab.dir.display()))?;
        let hub = lab.hub.clone();
        run("ip", &["netns", "add", &hub])?;
        lab.namespaces.push(hub.clone());
        run("ip", &["-n", &hub, "link", "set", "lo", "up"])?;
        run("ip", &["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        lab.claim_slot(pid.wrapping_mul(7).wrapping_add(n.wrapping_mul(31)))?;
        let s = lab.subnet;
        run(
            "ip",
            &[
                "-n",
                &hub,
                "addr",
                "add",
                &format!("10.213.{s}.1/24"),
                "dev",
                "br0",
            ],
        )?;
        run("ip", &["-n", &hub, "link", "set", "br0", "up"])?;
        run(
            "ip",
            &["-n", &hub, "link", "set", "uplink", "master", "br0", "up"],
        )?;
        let uplink = lab.uplink.clone().unwrap_or_default();
        run(
            "ip",
            &["addr", "add", &format!("10.213.{s}.254/24"), "dev", &uplink],
        )?;
        run("ip", &["link", "set", &uplink, "up"])?;
        lab.start_registry()?;

        // The nodes' namespaces and links, then their engines in parallel.
        let storage_driver = machine_storage_driver();
        let mut specs = Vec::new();
        for i in 0..nodes {
            let netns = format!("{id}-{i}");
            run("ip", &["netns", "add", &netns])?;
            lab.namespaces.push(netns.clone());
            let address = format!("10.213.{s}.{}", 11 + i);
            let port = format!("n{i}");
            run("ip", &["-n", &netns, "link", "set", "lo", "up"])?;
            run(
                "ip",
                &[
                    "-n", &hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                    "netns", &netns,
                ],
            )?;
            run(
                "ip",
                &["-n", &hub, "link", "set", &port, "master", "br0", "up"],
            )?;
            run(
                "ip",
                &[
                    "-n",
                    &netns,
                    "addr",
                    "add",
                    &format!("{address}/24"),
                    "dev",
                    "eth0",
                ],
            )?;
            run("ip", &["-n", &netns, "link", "set", "eth0", "up"])?;
            let config = serde_json::json!({
                "storage-driver": storage_driver,
                "bridge": "none",
                "iptables": false,
                "ip-masq": false,
                "log-driver": "json-file",
                "insecure-registries": [lab.registry()],
                "cgroup-parent": format!("/{id}-{i}"),
                "shutdown-timeout": 3,
            });
            specs.push((netns, address, format!("{id}-node{i}"), config));
        }
        let started: Vec<Result<Node, String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = specs
                .into_iter()
                .enumerate()
                .map(|(i, (netns, address, hostname, config))| {
                    let dir = lab.dir.join(format!("n{i}"));
                    let test = lab.test.clone();
                    let hide = hide
                        .as_ref()
                        .filter(|(node, _)| *node == i)
                        .map(|(_, dir)| dir.clone());
                    scope.spawn(move || {
                        LabEngine::start_in(
                            &test,
                            dir,
                            &netns,
                            &config,
                            Some(&hostname),
                            hide.as_deref(),
                        )
                        .map(|engine| Node {
                            engine,
                            hostname,
                            address,
                            node_id: String::new(),
                        })
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("a node's start panicked".to_string()))
                })
                .collect()
        });
        let mut why = Vec::new();
        for (i, node) in started.into_iter().enumerate() {
            match node {
                Ok(node) => lab.nodes.push(node),
                Err(e) => why.push(format!("node {i}: {e}")),
            }
        }
        if !why.is_empty() {
            return Err(why.join("\n"));
        }
        lab.form_swarm()?;
        Ok(lab)
    }

    /// Claims the first free slot from `seed` on: its root-side veth (whose
    /// name is the claim: a second `ip link add` of it fails), with its
    /// other end in the hub as "uplink".
    fn claim_slot(&mut self, seed: u32) -> Result<(), String> {
        let taken = root_prefixes();
        let mut last = String::from("no slot tried");
        for k in 0..SLOTS {
            let slot = (seed.wrapping_add(k)) % SLOTS;
            let subnet = slot + 1;
            let pool = format!("10.{}.0.0/16", 100 + slot);
            let mine = [format!("10.213.{subnet}.0/24"), pool.clone()];
            if mine
                .iter()
                .filter_map(|p| prefix(p))
                .any(|p| taken.iter().any(|t| overlaps(p, *t)))
            {
                continue;
            }
            let link = format!("sbxsw{subnet}");
            match run(
                "ip",
                &[
                    "link", "add", &link, "type", "veth", "peer", "name", "uplink", "netns",
                    &self.hub,
                ],
            ) {
                Ok(()) => {
                    self.uplink = Some(link);
                    self.subnet = subnet;
                    self.addr_pool = pool;
                    return Ok(());
                }
                Err(e) => last = e,
            }
        }
        Err(format!("no free lab subnet in 10.213.1-100.0/24 ({last})"))
    }

    /// Starts the registry in the hub namespace and waits until the root
    /// namespace reaches it (which proves the uplink).
    fn start_registry(&mut self) -> Result<(), String> {
        let dir = self.dir.join("registry");
        let config = format!(
            "version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: \"{}\", secret: sbx-lab}}\n",
            dir.join("data").display(),
            self.registry()
        );
        let config_path = dir.join("config.yml");
        std::fs::write(&config_path, config)
            .map_err(|e| format!("cannot write {}: {e}", config_path.display()))?;
        let log = std::fs::File::create(dir.join("registry.log"))
            .map_err(|e| format!("cannot make the registry's log: {e}"))?;
        // nsenter execs the registry: the child's PID is the registry's.
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.hub))
            .args(["--", "docker-registry", "serve"])
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start docker-registry: {e}"))?;
        self.registry = Some(child);
        let address: std::net::SocketAddr = self
            .registry()
            .parse()
            .map_err(|e| format!("bad registry address: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if std::net::TcpStream::connect_timeout(&address, Duration::from_millis(500)).is_ok() {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.registry.as_mut().map(|c| c.try_wait()) {
                self.registry = None;
                return Err(format!(
                    "the lab registry exited ({status}): {}",
                    self.registry_log()
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the lab registry did not answer on {address} from the root namespace within 20 s: {}",
                    self.registry_log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Swarm init on node 0, joins of the others as workers, then waits
    /// until the manager lists every node Ready and records their IDs.
    fn form_swarm(&mut self) -> Result<(), String> {
        let manager = self.manager_host();
        let address = self.address(0);
        docker_cli(
            &manager,
            &[
                "swarm",
                "init",
                "--advertise-addr",
                &address,
                "--listen-addr",
                &format!("{address}:2377"),
                "--default-addr-pool",
                &self.addr_pool,
                "--default-addr-pool-mask-length",
                "24",
            ],
        )
        .map_err(|e| format!("{e}\n{}", self.log_tail(0)))?;
        let token = docker_cli(&manager, &["swarm", "join-token", "-q", "worker"])?;
        let token = token.trim();
        for i in 1..self.nodes.len() {
            let own = self.address(i);
            docker_cli(
                &self.host(i),
                &[
                    "swarm",
                    "join",
                    "--token",
                    token,
                    "--advertise-addr",
                    &own,
                    "--listen-addr",
                    &format!("{own}:2377"),
                    &format!("{address}:2377"),
                ],
            )
            .map_err(|e| format!("{e}\n{}", self.log_tail(i)))?;
        }
        let deadline = Instant::now() + READY_PATIENCE;
        loop {
            let listed = self.node_table()?;
            let ids: Vec<Option<String>> = self
                .nodes
                .iter()
                .map(|n| {
                    listed
                        .iter()
                        .find(|(_, host, status)| *host == n.hostname && status == "Ready")
                        .map(|(id, _, _)| id.clone())
                })
                .collect();
            if ids.iter().all(Option::is_some) {
                for (node, id) in self.nodes.iter_mut().zip(ids) {
                    node.node_id = id.unwrap_or_default();
                }
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "not every node was Ready within {} s: {listed:?}",
                    READY_PATIENCE.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The manager's node list: (ID, hostname, status) of each node.
    fn node_table(&self) -> Result<Vec<(String, String, String)>, String> {
        let out = docker_cli(
            &self.manager_host(),
            &[
                "node",
                "ls",
                "--format",
                "{{.ID}} {{.Hostname}} {{.Status}}",
            ],
        )?;
        Ok(out
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                Some((w.next()?.into(), w.next()?.into(), w.next()?.into()))
            })
            .collect())
    }

    /// Its number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether it has no nodes (never, once started).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s engine address ("unix://…/docker.sock"), as DOCKER_HOST takes it.
    pub fn host(&self, i: usize) -> String {
        self.nodes[i].engine.host()
    }

    /// The manager's engine address: `host(0)`.
    pub fn manager_host(&self) -> String {
        self.host(0)
    }

    /// A connection to node `i`'s engine.
    pub async fn engine(&self, i: usize) -> DockerEngine {
        self.nodes[i].engine.engine().await
    }

    /// Node `i`'s address on the lab bridge (10.213.S.11 for node 0, …).
    pub fn address(&self, i: usize) -> String {
        self.nodes[i].address.clone()
    }

    /// Node `i`'s host name (its own UTS namespace), also its swarm node hostname.
    pub fn hostname(&self, i: usize) -> String {
        self.nodes[i].hostname.clone()
    }

    /// Node `i`'s swarm node ID.
    pub fn node_id(&self, i: usize) -> String {
        self.nodes[i].node_id.clone()
    }

    /// The lab registry, "HUBIP:PORT", which every node trusts over http.
    pub fn registry(&self) -> String {
        format!("10.213.{}.1:{REGISTRY_PORT}", self.subnet)
    }

    /// The swarm's default address pool (its overlays' subnets come from it).
    pub fn addr_pool(&self) -> String {
        self.addr_pool.clone()
    }

    /// `docker -H host(i) args…`: its stdout, or what it said on failure.
    pub fn docker(&self, i: usize, args: &[&str]) -> Result<String, String> {
        docker_cli(&self.host(i), args)
    }

    /// Node `i`'s state as the manager sees it ("ready", "down", …).
    pub fn node_state(&self, i: usize) -> Result<String, String> {
        self.docker(
            0,
            &[
                "node",
                "inspect",
                "--format",
                "{{.Status.State}}",
                &self.node_id(i),
            ],
        )
        .map(|s| s.trim().to_string())
    }

    fn set_link(&self, i: usize, state: &str) {
        let port = format!("n{i}");
        if let Err(e) = run("ip", &["-n", &self.hub, "link", "set", &port, state]) {
            panic!("cannot set node {i}'s link {state}: {e}");
        }
    }

    /// Takes node `i`'s link to the bridge down: a network cut.
    pub fn cut(&self, i: usize) {
        self.set_link(i, "down");
    }

    /// Brings node `i`'s link back up.
    pub fn restore(&self, i: usize) {
        self.set_link(i, "up");
    }

    /// Loads a saved image archive (`docker save`) into node `i`.
    pub fn load_image(&self, i: usize, archive: &Path) -> Result<(), String> {
        let file = archive.to_string_lossy();
        self.docker(i, &["load", "-i", &file]).map(|_| ())
    }

    /// The last lines of node `i`'s dockerd log, for failure messages.
    pub fn log_tail(&self, i: usize) -> String {
        self.nodes
            .get(i)
            .map(|n| n.engine.log_tail())
            .unwrap_or_default()
    }

    /// What the lab registry logged.
    pub fn registry_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry/registry.log")).unwrap_or_default()
    }

    fn stop(&mut self) {
        // The engines in parallel: each takes a few seconds to stop its tasks.
        let nodes: Vec<Node> = self.nodes.drain(..).collect();
        std::thread::scope(|scope| {
            for node in nodes {
                scope.spawn(move || drop(node));
            }
        });
        if let Some(mut child) = self.registry.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for netns in self.namespaces.drain(..).rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", &netns])
                .stderr(Stdio::null())
                .status();
        }
        if let Some(link) = self.uplink.take() {
            // Usually gone with the hub namespace already.
            let _ = Command::new("ip")
                .args(["link", "del", &link])
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for SwarmLab {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The default image (built when missing) saved from the machine's daemon
/// into `dir`/image.tar, for a lab engine to load.
pub fn save_default_image(dir: &Path) -> PathBuf {
    super::ensure_default_image();
    let archive = dir.join("image.tar");
    let t = std::time::Instant::now();
    save_image(&super::default_tag(), &archive).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("image saved in {:.1?}", t.elapsed());
    archive
}

/// Saves `image` from the machine's daemon into `file` (`docker save`), for
/// a lab node to load, or says why not.
pub fn save_image(image: &str, file: &Path) -> Result<(), String> {
    let out = Command::new("docker")
        .args(["save", image, "-o"])
        .arg(file)
        .output()
        .map_err(|e| format!("cannot run docker save: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "docker save {image} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A swarm lab for `test`, or None with `SKIPPED test: why` printed; under CI=true a panic instead.
pub fn swarm_lab(test: &str, nodes: usize) -> Option<SwarmLab> {
    swarm_lab_hiding(test, nodes, None)
}

/// [`swarm_lab`] with a directory hidden on one node ([`SwarmLab::start_hiding`]).
pub fn swarm_lab_hiding(
    test: &str,
    nodes: usize,
    hide: Option<(usize, PathBuf)>,
) -> Option<SwarmLab> {
    match SwarmLab::start_hiding(test, nodes, hide) {
        Ok(lab) => Some(lab),
        Err(why) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true requires the swarm lab tests to run, but: {why}");
            }
            eprintln!("SKIPPED {test}: cannot start a swarm lab ({why})");
            None
        }
    }
}
