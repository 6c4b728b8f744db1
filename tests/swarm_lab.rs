//! The swarm lab works: two lab engines in a real swarm run a service
//! pinned by digest from the lab registry, one task on each node, whose
//! tasks find each other by service DNS and talk over the overlay, whose
//! host-mode published port answers the test process at each node's
//! address, and whose manager sees a cut node Down and then Ready again.

mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use common::swarm::{swarm_lab, SwarmLab};

const TEST: &str = "swarm_lab_runs_a_service_across_nodes";
const IMAGE: &str = "debian:bookworm-slim";
const PORT: u16 = 18080;

/// A tiny HTTP server with what debian-slim has (perl-base): answers every
/// request with "hello from HOSTNAME" (the task's container hostname). It
/// reads the whole request first: closing with unread bytes makes the
/// kernel reset the connection, and the client may lose the answer.
const LISTENER: &str = r#"$SIG{TERM} = sub { exit 0 }; use IO::Socket::INET; my $s = IO::Socket::INET->new(LocalPort => 8000, Listen => 5, ReuseAddr => 1) or die "listen: $!"; my $h = `hostname`; chomp $h; while (my $c = $s->accept) { while (my $line = <$c>) { last if $line =~ /^\r?\n$/ } print $c "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello from $h\n"; close $c; }"#;

/// Polls `probe` every half second until it gives Some, for at most `limit`.
fn wait_for<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Saves the base image from the machine's daemon into `file`, or says why
/// not (under CI=true that fails the test, elsewhere it is skipped).
fn save_base_image(file: &std::path::Path) -> Result<(), String> {
    let present = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .output()
        .map_err(|e| format!("cannot run docker: {e}"))?;
    if !present.status.success() {
        return Err(format!(
            "{IMAGE} is not on the machine's daemon (sparkbox makes it with its first build)"
        ));
    }
    common::swarm::save_image(IMAGE, file)
}

/// The container of service `service`'s task on node `i`, once it runs.
fn task_container(lab: &SwarmLab, i: usize, service: &str) -> Option<String> {
    let label = format!("label=com.docker.swarm.service.name={service}");
    lab.docker(i, &["ps", "-q", "--filter", &label])
        .ok()
        .and_then(|out| out.split_whitespace().next().map(str::to_string))
}

/// GET / from ADDRESS:PORT of the test process: the whole answer, or "".
fn http_get(address: &str, port: u16) -> String {
    let Ok(addr) = format!("{address}:{port}").parse::<std::net::SocketAddr>() else {
        return String::new();
    };
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3)) else {
        return String::new();
    };
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let _ = write!(stream, "GET / HTTP/1.0\r\nHost: {address}\r\n\r\n");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text
}

#[test]
fn swarm_lab_runs_a_service_across_nodes() {
    let test_start = Instant::now();
    if common::docker(TEST).is_none() {
        return;
    }
    // The base image comes with sparkbox's first build (made offline when
    // it cannot be pulled), so this test does not depend on which test
    // binary ran before it.
    common::ensure_default_image();
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let archive = tmp.path().join("base.tar");
    if let Err(why) = save_base_image(&archive) {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true requires {TEST} to run, but: {why}");
        }
        eprintln!("SKIPPED {TEST}: {why}");
        return;
    }
    let saved = test_start.elapsed();

    let lab_start = Instant::now();
    let Some(lab) = swarm_lab(TEST, 2) else {
        return;
    };
    let lab_started = lab_start.elapsed();
    assert_eq!(lab.len(), 2);
    assert_ne!(lab.hostname(0), lab.hostname(1), "node host names differ");
    assert!(!lab.node_id(0).is_empty() && !lab.node_id(1).is_empty());
    for i in 0..2 {
        let state = lab.node_state(i).expect("the manager inspects its nodes");
        assert_eq!(state, "ready", "node {i} is Ready after start");
        let name = common::block_on(async {
            let engine = lab.engine(i).await;
            engine.client().info().await.map(|info| info.name)
        })
        .expect("each node's engine answers through sparkbox's DockerEngine");
        assert_eq!(name.as_deref(), Some(lab.hostname(i).as_str()));
    }

    // The image into both nodes, then from node 0 into the lab registry.
    let load_start = Instant::now();
    std::thread::scope(|scope| {
        let loads: Vec<_> = (0..2)
            .map(|i| {
                let (lab, archive) = (&lab, &archive);
                scope.spawn(move || lab.load_image(i, archive))
            })
            .collect();
        for (i, load) in loads.into_iter().enumerate() {
            let result = load.join().expect("the load thread ends");
            assert!(result.is_ok(), "load into node {i}: {result:?}");
        }
    });
    let loaded = load_start.elapsed();
    let tag = format!("{}/sbxlab/base:smoke", lab.registry());
    lab.docker(0, &["tag", IMAGE, &tag])
        .expect("tag on the manager");
    let push_start = Instant::now();
    let pushed = lab.docker(0, &["push", &tag]);
    assert!(
        pushed.is_ok(),
        "push to the lab registry: {pushed:?}\n{}",
        lab.registry_log()
    );
    let pushed_in = push_start.elapsed();
    let pinned = lab
        .docker(
            0,
            &[
                "image",
                "inspect",
                "--format",
                "{{index .RepoDigests 0}}",
                &tag,
            ],
        )
        .expect("the pushed image has a digest");
    let pinned = pinned.trim().to_string();
    assert!(
        pinned.starts_with(&format!("{}/sbxlab/base@sha256:", lab.registry())),
        "pinned by digest in the lab registry: {pinned}"
    );

    // An overlay and a service with one task on each node.
    let network = "sbxlabnet";
    let service = "sbxlabsvc";
    lab.docker(
        0,
        &[
            "network",
            "create",
            "--driver",
            "overlay",
            "--attachable",
            network,
        ],
    )
    .expect("an attachable overlay network");
    let subnet = lab
        .docker(
            0,
            &[
                "network",
                "inspect",
                "--format",
                "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
                network,
            ],
        )
        .expect("network inspect");
    let pool_head = lab
        .addr_pool()
        .split('.')
        .take(2)
        .collect::<Vec<_>>()
        .join(".");
    assert!(
        subnet.trim().starts_with(&format!("{pool_head}.")),
        "the overlay's subnet {subnet} comes from the lab's pool {}",
        lab.addr_pool()
    );
    let publish = format!("mode=host,target=8000,published={PORT}");
    let service_start = Instant::now();
    let created = lab.docker(
        0,
        &[
            "service",
            "create",
            "--detach",
            "--name",
            service,
            "--network",
            network,
            "--endpoint-mode",
            "dnsrr",
            "--replicas",
            "2",
            "--replicas-max-per-node",
            "1",
            "--publish",
            &publish,
            &pinned,
            "perl",
            "-e",
            LISTENER,
        ],
    );
    assert!(created.is_ok(), "service create: {created:?}");
    let running = wait_for(Duration::from_secs(90), || {
        let out = lab
            .docker(
                0,
                &[
                    "service",
                    "ps",
                    service,
                    "--filter",
                    "desired-state=running",
                    "--format",
                    "{{.Node}} {{.CurrentState}}",
                ],
            )
            .ok()?;
        let mut nodes: Vec<String> = out
            .lines()
            .filter(|l| l.split_whitespace().nth(1) == Some("Running"))
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect();
        nodes.sort();
        (nodes.len() == 2).then_some(nodes)
    });
    let mut expected = vec![lab.hostname(0), lab.hostname(1)];
    expected.sort();
    assert_eq!(
        running.as_ref(),
        Some(&expected),
        "one running task on each node within 90 s: {:?}\nnode 0:\n{}\nnode 1:\n{}",
        lab.docker(0, &["service", "ps", "--no-trunc", service]),
        lab.log_tail(0),
        lab.log_tail(1)
    );
    let converged = service_start.elapsed();

    // Each node's engine runs its own task; its overlay address.
    let tasks: Vec<(String, String)> = (0..2)
        .map(|i| {
            let container = task_container(&lab, i, service)
                .unwrap_or_else(|| panic!("node {i}'s engine runs a task of {service}"));
            let format =
                format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
            let ip = lab
                .docker(i, &["inspect", "--format", &format, &container])
                .expect("inspect the task's container");
            (container, ip.trim().to_string())
        })
        .collect();
    assert_ne!(
        tasks[0].1, tasks[1].1,
        "the tasks have their own overlay addresses"
    );

    // Service DNS across nodes: node 1's task resolves node 0's by tasks.NAME.
    let lookup = format!("tasks.{service}");
    let resolved = wait_for(Duration::from_secs(30), || {
        let out = lab
            .docker(1, &["exec", &tasks[1].0, "getent", "ahostsv4", &lookup])
            .ok()?;
        (out.contains(&tasks[0].1) && out.contains(&tasks[1].1)).then_some(out)
    });
    assert!(
        resolved.is_some(),
        "{lookup} resolves to both tasks ({:?}) from node 1: {:?}",
        tasks,
        lab.docker(1, &["exec", &tasks[1].0, "getent", "ahostsv4", &lookup])
    );
    // And the overlay carries traffic: node 1's task asks node 0's listener.
    let ask = format!(
        "exec 3<>/dev/tcp/{}/8000 && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3",
        tasks[0].1
    );
    let answer = lab
        .docker(1, &["exec", &tasks[1].0, "bash", "-c", &ask])
        .expect("node 1's task reaches node 0's task over the overlay");
    assert!(
        answer.contains(&format!("hello from {}", &tasks[0].0[..12])),
        "node 0's task answered over the overlay: {answer}"
    );

    // The host-mode published port answers the test process at each node.
    for (i, (container, _)) in tasks.iter().enumerate() {
        let address = lab.address(i);
        let answer = wait_for(Duration::from_secs(15), || {
            let text = http_get(&address, PORT);
            text.contains("hello from").then_some(text)
        })
        .unwrap_or_default();
        assert!(
            answer.contains(&format!("hello from {}", &container[..12])),
            "node {i}'s task answers at {address}:{PORT} from the test process: {answer:?}"
        );
    }

    // A network cut: the manager sees node 1 Down, then Ready once restored.
    let cut_start = Instant::now();
    lab.cut(1);
    let down = wait_for(Duration::from_secs(60), || {
        (lab.node_state(1).ok()? == "down").then_some(())
    });
    let down_in = cut_start.elapsed();
    let state_after_cut = lab.node_state(1);
    lab.restore(1);
    assert!(
        down.is_some(),
        "the manager sees node 1 Down within 60 s of the cut: {state_after_cut:?}"
    );
    let restore_start = Instant::now();
    let ready = wait_for(Duration::from_secs(60), || {
        (lab.node_state(1).ok()? == "ready").then_some(())
    });
    assert!(
        ready.is_some(),
        "node 1 is Ready again within 60 s of the restore: {:?}\n{}",
        lab.node_state(1),
        lab.log_tail(1)
    );
    let ready_in = restore_start.elapsed();

    let stop_start = Instant::now();
    drop(lab);
    let stopped = stop_start.elapsed();
    println!(
        "swarm lab timings: save {saved:.1?}, lab start (2 nodes Ready) {lab_started:.1?}, \
         load into both {loaded:.1?}, push {pushed_in:.1?}, service converged {converged:.1?}, \
         Down after cut {down_in:.1?}, Ready after restore {ready_in:.1?}, lab stop {stopped:.1?}, \
         whole test {:.1?}",
        test_start.elapsed()
    );
}

#[test]
fn concurrent_swarm_labs_have_their_own_subnets_and_pools() {
    let test = "concurrent_swarm_labs_have_their_own_subnets_and_pools";
    let started = Instant::now();
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| swarm_lab(test, 1));
        let b = scope.spawn(|| swarm_lab(test, 1));
        (
            a.join().expect("the first lab's thread ends"),
            b.join().expect("the second lab's thread ends"),
        )
    });
    let (Some(a), Some(b)) = (a, b) else {
        return;
    };
    println!(
        "two 1-node swarm labs started in parallel in {:.1?}",
        started.elapsed()
    );
    assert_ne!(a.registry(), b.registry(), "each lab has its own subnet");
    assert_ne!(
        a.addr_pool(),
        b.addr_pool(),
        "each lab has its own address pool"
    );
    assert_ne!(a.hostname(0), b.hostname(0), "node host names are unique");
    // Each lab's registry answers the test process at its own address.
    for lab in [&a, &b] {
        let (host, port) = lab
            .registry()
            .rsplit_once(':')
            .map(|(h, p)| (h.to_string(), p.to_string()))
            .expect("HOST:PORT");
        let answer = http_get(&host, port.parse().expect("a port"));
        assert!(
            answer.starts_with("HTTP/1."),
            "the registry at {} answers: {answer:?}",
            lab.registry()
        );
    }
}
