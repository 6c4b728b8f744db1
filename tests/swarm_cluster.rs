//! sparkbox itself on a real swarm of two lab engines (`common::swarm`):
//! `up --swarm` through the manager alone, the image pushed to the lab
//! registry and pulled by digest on the other node, one worker on each node,
//! a job from the notebook whose executors run on both nodes, `status` with
//! each container's node, the swarm's nodes listed, and `down`. One cluster
//! serves the checks, because each `up` on a swarm costs a minute here.

mod common;

use std::time::Instant;

use common::swarm::{swarm_lab_hiding, SwarmLab};
use common::{run, sparkbox};

const TEST: &str = "sparkbox_up_on_a_swarm_spreads_workers_over_nodes";

const JOB: &str = r#"
import json, socket, time
from pyspark.sql import SparkSession
# Both workers' cores (a notebook's fair share is one worker's by default).
spark = SparkSession.builder.appName("sbx-swarm-job").config("spark.cores.max", "2").getOrCreate()
sc = spark.sparkContext
# Waits (up to 90 s) for an executor on each worker: the driver and two.
deadline = time.time() + 90
while sc._jsc.sc().getExecutorMemoryStatus().size() < 3 and time.time() < deadline:
    time.sleep(0.5)
executors = sc._jsc.sc().getExecutorMemoryStatus().size() - 1
def host(_):
    time.sleep(0.2)
    return socket.gethostname()
hosts = sc.parallelize(range(40), 20).map(host).distinct().collect()
total = spark.range(1000).selectExpr("sum(id) AS s").collect()[0]["s"]
print(json.dumps({"hosts": sorted(hosts), "sum": total, "executors": executors}))
spark.stop()
"#;

/// A job that outlasts a node cut: it writes `/data/cut-now` once it has an
/// executor on each worker and starts its tasks, then sums 60 one-second
/// tasks. The driver gives up on a silent executor after 20 s instead of
/// 120 s (a test's patience, not a cluster's setting).
const CUT_JOB: &str = r#"
import json, time
from pyspark.sql import SparkSession
spark = (SparkSession.builder.appName("sbx-swarm-cut")
         .config("spark.cores.max", "2")
         .config("spark.network.timeout", "20s")
         .config("spark.network.timeoutInterval", "5s")
         .config("spark.executor.heartbeatInterval", "2s")
         .getOrCreate())
sc = spark.sparkContext
deadline = time.time() + 90
while sc._jsc.sc().getExecutorMemoryStatus().size() < 3 and time.time() < deadline:
    time.sleep(0.5)
executors = sc._jsc.sc().getExecutorMemoryStatus().size() - 1
def slow(x):
    time.sleep(1)
    return x
open("/data/cut-now", "w").close()
t = time.time()
total = sc.parallelize(range(60), 60).map(slow).sum()
print(json.dumps({"sum": total, "executors": executors, "seconds": round(time.time() - t, 1)}))
spark.stop()
"#;

/// Changes numpy's recorded version inside a container and has the
/// container report its versions again in its log, as at its start.
const CHANGE_NUMPY: &str = r#"f=$(python -c 'import glob, os, numpy; print(glob.glob(os.path.join(os.path.dirname(os.path.dirname(numpy.__file__)), "numpy-*.dist-info", "METADATA"))[0])') && sed -i 's/^Version: .*/Version: 0.0.0+changed/' "$f" && echo "sparkbox-versions: $(/opt/sparkbox/bin/measure-versions 2>/dev/null)" > /proc/1/fd/1"#;

/// Every task of every service on the lab, for failure messages.
fn tasks_table(lab: &SwarmLab) -> String {
    let ids = lab.docker(0, &["service", "ls", "-q"]).unwrap_or_default();
    let mut args = vec![
        "service",
        "ps",
        "--no-trunc",
        "--format",
        "{{.Name}} {{.ID}} {{.Node}} desired={{.DesiredState}} current={{.CurrentState}} {{.Error}}",
    ];
    args.extend(ids.split_whitespace());
    lab.docker(0, &args).unwrap_or_else(|e| e)
}

/// The last JSON line a job printed, as text and parsed.
fn job_result(out: &str, err: &str) -> (String, serde_json::Value) {
    let line = out
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON from the job: {out}\n{err}"));
    let result =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("job JSON ({e}): {line}\n{err}"));
    (line.to_string(), result)
}

/// The ID of the running container of service `service` on lab node `i`.
fn task_container(lab: &SwarmLab, i: usize, service: &str) -> String {
    let label = format!("label=com.docker.swarm.service.name={service}");
    let ids = lab
        .docker(i, &["ps", "-q", "--filter", &label])
        .unwrap_or_else(|e| panic!("{e}"));
    ids.split_whitespace()
        .next()
        .unwrap_or_else(|| panic!("no running container of {service} on node {i}"))
        .to_string()
}

/// `status --json` of the cluster on the lab, parsed.
fn status_json(manager: &str, name: &str) -> serde_json::Value {
    let (code, out, err) = on_swarm(manager, &["status", "--json", "-n", name]);
    assert!(
        code == 0 || code == 7 || code == 8,
        "status: {code}\n{out}\n{err}"
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("status JSON ({e}): {out}\n{err}"))
}

/// The HTTP status of `GET path` on `addr` (HTTP/1.0, a 10 s bound), or why none.
fn http_status(addr: &str, path: &str) -> Result<u16, String> {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(10);
    let sock: std::net::SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let mut stream = std::net::TcpStream::connect_timeout(&sock, timeout)
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = stream.set_read_timeout(Some(timeout));
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut head = String::new();
    let _ = stream.take(4096).read_to_string(&mut head);
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no HTTP answer from {addr}: {head:?}"))
}

/// sparkbox against the lab's manager.
fn on_swarm(manager: &str, args: &[&str]) -> (i32, String, String) {
    let mut cmd = sparkbox();
    cmd.env("DOCKER_HOST", manager).args(args);
    run(&mut cmd)
}

/// The last log lines of each worker task on each node, for failure messages.
fn worker_logs(lab: &SwarmLab, name: &str) -> String {
    let mut text = String::new();
    for i in 0..lab.len() {
        for w in 1..=2 {
            let label = format!("label=com.docker.swarm.service.name={name}-worker-{w}");
            let ids = lab
                .docker(i, &["ps", "-aq", "--filter", &label])
                .unwrap_or_default();
            for id in ids.split_whitespace() {
                let logs = lab
                    .docker(i, &["logs", "--tail", "30", id])
                    .unwrap_or_else(|e| e);
                text.push_str(&format!("--- worker-{w} on node {i} ({id}):\n{logs}\n"));
            }
        }
    }
    text
}

#[test]
fn sparkbox_up_on_a_swarm_spreads_workers_over_nodes() {
    if common::docker(TEST).is_none() {
        return;
    }
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let archive = common::swarm::save_default_image(tmp.path());

    // Node 1 lacks what this machine has under `hidden` (a node without
    // the data path).
    let hidden = tmp.path().join("hidden");
    std::fs::create_dir_all(&hidden).expect("hidden dir");
    let Some(lab) = swarm_lab_hiding(TEST, 2, Some((1, hidden.clone()))) else {
        return;
    };
    let t = Instant::now();
    lab.load_image(0, &archive)
        .unwrap_or_else(|e| panic!("load into the manager: {e}"));
    let _ = std::fs::remove_file(&archive);
    eprintln!("image loaded into the manager in {:.1?}", t.elapsed());
    let manager = lab.manager_host();
    let registry = format!("{}/sparkbox", lab.registry());
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let data_arg = data.display().to_string();
    let name = "sbxsw";

    // `up --swarm` on the lab: the workers, then anything more (a registry).
    let up = |workers: &str, more: &[&str]| {
        let mut args = vec![
            "up",
            "-n",
            name,
            "--swarm",
            "--workers",
            workers,
            "--data",
            &data_arg,
            "--timeout",
            "400",
        ];
        args.extend_from_slice(more);
        on_swarm(&manager, &args)
    };
    let with_registry = ["--registry", registry.as_str()];
    // Bad input first: more workers than the nodes allow, and no registry.
    let (code, out, err) = up("3", &with_registry);
    assert_eq!(code, 11, "3 workers on 2 nodes at 1 per node: {out}\n{err}");
    assert!(err.contains("workers-per-node"), "{err}");
    let (code, _, err) = up("2", &[]);
    assert_eq!(code, 11, "no registry on a swarm: {err}");
    assert!(err.contains("--registry"), "{err}");
    let services = lab.docker(0, &["service", "ls", "-q"]).unwrap_or_default();
    assert!(
        services.trim().is_empty(),
        "a refused up made nothing: {services}"
    );

    // A data directory node 1 does not have: named before anything starts
    // (the image is pushed by then, which the next up reuses).
    let hidden_data = hidden.join("data").display().to_string();
    let (code, out, err) = on_swarm(
        &manager,
        &[
            "up",
            "-n",
            name,
            "--swarm",
            "--workers",
            "2",
            "--data",
            &hidden_data,
            "--timeout",
            "400",
            "--registry",
            &registry,
        ],
    );
    assert_eq!(code, 11, "a node without the data directory:\n{out}\n{err}");
    assert!(
        err.contains(&lab.hostname(1))
            && !err.contains(&lab.hostname(0))
            && err.contains(&hidden_data),
        "the node without it is named: {err}"
    );
    let services = lab.docker(0, &["service", "ls", "-q"]).unwrap_or_default();
    assert!(
        services.trim().is_empty(),
        "nothing started, the checks removed: {services}"
    );

    let t = Instant::now();
    let (code, out, err) = up("2", &with_registry);
    let up_time = t.elapsed();
    assert_eq!(
        code,
        0,
        "up --swarm failed:\n{out}\n{err}\ntasks:\n{}\nmanager log:\n{}\nnode 1 log:\n{}",
        tasks_table(&lab),
        lab.log_tail(0),
        lab.log_tail(1)
    );
    eprintln!("up --swarm (2 workers, 2 nodes, first pull on node 1) took {up_time:.1?}");

    // status: every container with its node, workers on both nodes.
    let (code, out, err) = on_swarm(&manager, &["status", "--json", "-n", name]);
    assert_eq!(code, 0, "{out}\n{err}");
    let status: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("status JSON ({e}): {out}"));
    let containers = status["containers"].as_array().expect("containers");
    let node_of = |suffix: &str| {
        containers
            .iter()
            .find(|c| c["name"] == format!("{name}-{suffix}"))
            .and_then(|c| c["node"].as_str())
            .unwrap_or_else(|| panic!("{suffix} has a node: {out}"))
            .to_string()
    };
    let manager_node = lab.hostname(0);
    assert_eq!(node_of("master"), manager_node, "{out}");
    assert_eq!(node_of("jupyter"), manager_node, "{out}");
    let mut worker_nodes = vec![node_of("worker-1"), node_of("worker-2")];
    worker_nodes.sort();
    let mut both = vec![lab.hostname(0), lab.hostname(1)];
    both.sort();
    assert_eq!(worker_nodes, both, "one worker per node: {out}");
    let nodes = status["nodes"].as_array().expect("status lists the nodes");
    assert_eq!(nodes.len(), 2, "{out}");
    let (code, text, err) = on_swarm(&manager, &["status", "-n", name]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains(&lab.hostname(1)), "{text}");

    // A job from the notebook container (on the manager) has executors on
    // both nodes: the driver is reachable over the overlay from node 1.
    let (code, out, err) = on_swarm(
        &manager,
        &["exec", "-n", name, "jupyter", "--", "python", "-c", JOB],
    );
    assert_eq!(code, 0, "job failed:\n{out}\n{err}");
    let (line, result) = job_result(&out, &err);
    assert_eq!(result["sum"], 499500, "{line}");
    let hosts: Vec<String> = result["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .filter_map(|h| h.as_str().map(str::to_string))
        .collect();
    assert_eq!(
        hosts,
        vec![format!("{name}-worker-1"), format!("{name}-worker-2")],
        "executors on both workers (both nodes): {line}\n{}\nmaster: {:?}\nworker-2 work: {:?}",
        worker_logs(&lab, name),
        on_swarm(&manager, &["exec", "-n", name, "master", "--", "/opt/sparkbox/bin/probe", "master"]),
        on_swarm(&manager, &["exec", "-n", name, "worker-2", "--", "sh", "-c", "ls -R /home/spark/.sparkbox/work | head; tail -n 40 /home/spark/.sparkbox/work/*/*/stderr"]),
    );

    // Parity reaches a node the manager cannot exec on: the worker on node
    // 1, changed inside, reports what it now runs, and status and up name it.
    let remote = ["worker-1", "worker-2"]
        .into_iter()
        .find(|w| node_of(w) == lab.hostname(1))
        .expect("a worker on node 1");
    let remote_name = format!("{name}-{remote}");
    let id = task_container(&lab, 1, &remote_name);
    lab.docker(1, &["exec", "-u", "0", &id, "sh", "-c", CHANGE_NUMPY])
        .unwrap_or_else(|e| panic!("change numpy in {remote_name}: {e}"));
    let status = status_json(&manager, name);
    assert_eq!(status["parity"]["ok"], false, "{status}");
    let rows = status["parity"]["differences"].to_string();
    assert!(
        rows.contains("numpy") && rows.contains(&remote_name) && rows.contains("0.0.0+changed"),
        "{status}"
    );
    let (code, out, err) = up("2", &with_registry);
    assert_eq!(
        code, 8,
        "up refuses a changed container on node 1:\n{out}\n{err}"
    );
    assert!(err.contains(&remote_name) && err.contains("numpy"), "{err}");
    let (code, out, err) = up("2", &[&with_registry[..], &["--recreate", remote]].concat());
    assert_eq!(code, 0, "--recreate {remote} heals it:\n{out}\n{err}");
    assert_eq!(status_json(&manager, name)["parity"]["ok"], true);

    // A node cut mid-job: the job finishes on the other executor, status
    // names the node that is down and what it ran; when the node is back the
    // cluster is whole again with no action.
    let marker = data.join("cut-now");
    let _ = std::fs::remove_file(&marker);
    let job = {
        let manager = manager.clone();
        std::thread::spawn(move || {
            on_swarm(
                &manager,
                &["exec", "-n", name, "jupyter", "--", "python", "-c", CUT_JOB],
            )
        })
    };
    let t = Instant::now();
    while !marker.exists() {
        assert!(
            t.elapsed().as_secs() < 180,
            "the cut job never started its tasks"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    std::thread::sleep(std::time::Duration::from_secs(3));
    lab.cut(1);
    let cut_at = Instant::now();
    let down_report = loop {
        let status = status_json(&manager, name);
        let node1 = status["nodes"]
            .as_array()
            .and_then(|n| n.iter().find(|n| n["node"] == lab.hostname(1)).cloned())
            .unwrap_or_else(|| panic!("node 1 in status: {status}"));
        if node1["ready"] == false {
            break node1;
        }
        assert!(
            cut_at.elapsed().as_secs() < 90,
            "node 1 never shown down: {status}"
        );
        std::thread::sleep(std::time::Duration::from_secs(2));
    };
    let down_after = cut_at.elapsed();
    assert!(
        down_report["containers"].to_string().contains(&remote_name),
        "status names what the lost node ran: {down_report}"
    );
    let (_, text, _) = on_swarm(&manager, &["status", "-n", name]);
    assert!(
        text.contains(&format!("node {}", lab.hostname(1))) && text.contains("down"),
        "{text}"
    );
    let (code, out, err) = job.join().expect("the job thread");
    let job_time = cut_at.elapsed();
    lab.restore(1);
    assert_eq!(code, 0, "the job survives the cut:\n{out}\n{err}");
    let (line, result) = job_result(&out, &err);
    assert_eq!(result["sum"], 1770, "{line}");
    assert_eq!(result["executors"], 2, "{line}");
    let restored = Instant::now();
    loop {
        let status = status_json(&manager, name);
        let whole = status["workers"]["alive"] == 2
            && status["parity"]["ok"] == true
            && status["nodes"]
                .as_array()
                .is_some_and(|n| n.iter().all(|n| n["ready"] == true));
        if whole {
            break;
        }
        assert!(
            restored.elapsed().as_secs() < 180,
            "the cluster is not whole again after the node came back: {status}\n{}",
            worker_logs(&lab, name)
        );
        std::thread::sleep(std::time::Duration::from_secs(3));
    }
    eprintln!(
        "node cut: shown down after {down_after:.1?}, job done {job_time:.1?} after the cut, whole {:.1?} after the restore",
        restored.elapsed()
    );

    // A classroom of 2 on nodes labelled for Jupyter servers: one student's
    // server on each node, each reachable at its node's address with its
    // token, and a job from the server on node 1 has executors on both.
    for i in 0..2 {
        lab.docker(
            0,
            &[
                "node",
                "update",
                "--label-add",
                "io.sparkbox.role=jupyter",
                &lab.node_id(i),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let (code, out, err) = up("2", &[&with_registry[..], &["--students", "2"]].concat());
    assert_eq!(
        code,
        0,
        "up --students 2 on the swarm:\n{out}\n{err}\n{}",
        lab.log_tail(1)
    );
    let status = status_json(&manager, name);
    let seats = status["jupyters"].as_array().expect("seats").clone();
    assert_eq!(seats.len(), 2, "{status}");
    let student_node = |n: u32| {
        status["containers"]
            .as_array()
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c["name"] == format!("{name}-jupyter-{n}"))
                    .cloned()
            })
            .and_then(|c| c["node"].as_str().map(str::to_string))
            .unwrap_or_else(|| panic!("student {n}'s server has a node: {status}"))
    };
    let mut student_nodes = vec![student_node(1), student_node(2)];
    student_nodes.sort();
    assert_eq!(
        student_nodes, both,
        "one student's server per node: {status}"
    );
    let (code, roster, err) = on_swarm(&manager, &["roster", "-n", name, "--json", "-"]);
    assert_eq!(code, 0, "{err}");
    let roster: serde_json::Value = serde_json::from_str(&roster).expect("roster JSON");
    let remote_seat = roster
        .as_array()
        .and_then(|r| {
            r.iter()
                .find(|s| {
                    s["url"]
                        .as_str()
                        .is_some_and(|u| u.contains(&lab.address(1)))
                })
                .cloned()
        })
        .unwrap_or_else(|| panic!("a seat at node 1's address {}: {roster}", lab.address(1)));
    let url = remote_seat["url"].as_str().unwrap_or_default();
    let hostport = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let token = remote_seat["token"].as_str().unwrap_or_default();
    assert_eq!(
        http_status(&hostport, &format!("/api/status?token={token}")),
        Ok(200),
        "student server on node 1 answers at {url}"
    );
    assert_eq!(
        http_status(&hostport, "/api/status?token=wrong"),
        Ok(403),
        "and only with its token"
    );
    let remote_jupyter = remote_seat["container"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let id = task_container(&lab, 1, &remote_jupyter);
    let out = lab
        .docker(1, &["exec", "-u", "spark", &id, "python", "-c", JOB])
        .unwrap_or_else(|e| panic!("job from {remote_jupyter} on node 1: {e}"));
    let (line, result) = job_result(&out, "");
    assert_eq!(result["sum"], 499500, "{line}");
    assert_eq!(result["executors"], 2, "{line}");

    // `sparkbox nodes`: every node with its label and what runs there.
    let (code, out, err) = on_swarm(&manager, &["nodes", "--json"]);
    assert_eq!(code, 0, "nodes:\n{out}\n{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).expect("nodes JSON");
    let node1 = listed
        .as_array()
        .and_then(|n| n.iter().find(|n| n["node"] == lab.hostname(1)).cloned())
        .unwrap_or_else(|| panic!("node 1 listed: {out}"));
    let on_node1 = node1["containers"].to_string();
    assert!(
        node1["placement"] == "jupyter"
            && node1["ready"] == true
            && on_node1.contains(&remote_jupyter)
            && on_node1.contains(&remote_name),
        "{node1}"
    );
    let (code, _, err) = run(sparkbox().args(["nodes"]));
    assert_eq!(code, 11, "nodes on an engine that is no manager: {err}");
    assert!(err.contains("docker swarm init"), "{err}");

    // scale: one service fewer, touching nothing else.
    let (code, out, err) = on_swarm(&manager, &["scale", "-n", name, "--workers", "1"]);
    assert_eq!(code, 0, "scale to 1:\n{out}\n{err}");
    let services = lab
        .docker(0, &["service", "ls", "--format", "{{.Name}}"])
        .unwrap_or_default();
    let mut names: Vec<&str> = services.split_whitespace().collect();
    names.sort();
    assert_eq!(
        names,
        [
            format!("{name}-jupyter-1"),
            format!("{name}-jupyter-2"),
            format!("{name}-master"),
            format!("{name}-worker-1")
        ],
        "{services}"
    );

    // scale back up places worker-2 again and waits until it is ready;
    // an up after it has nothing to do.
    let (code, out, err) = on_swarm(&manager, &["scale", "-n", name, "--workers", "2"]);
    assert_eq!(code, 0, "scale to 2:\n{out}\n{err}");
    let services = lab
        .docker(0, &["service", "ls", "--format", "{{.Name}}"])
        .unwrap_or_default();
    assert!(services.contains(&format!("{name}-worker-2")), "{services}");
    let (code, out, err) = up("2", &with_registry);
    assert_eq!(code, 0, "second up:\n{out}\n{err}");

    // stop scales every service to nothing and keeps them; start brings the
    // cluster back, ready.
    let (code, out, err) = on_swarm(&manager, &["stop", "-n", name]);
    assert_eq!(code, 0, "stop:\n{out}\n{err}");
    let replicas = lab
        .docker(0, &["service", "ls", "--format", "{{.Name}} {{.Replicas}}"])
        .unwrap_or_default();
    assert!(
        replicas.lines().count() == 5 && replicas.lines().all(|l| l.ends_with(" 0/0")),
        "every service stopped and kept: {replicas}"
    );
    let (code, out, err) = on_swarm(&manager, &["start", "-n", name]);
    assert_eq!(code, 0, "start:\n{out}\n{err}");
    let status = status_json(&manager, name);
    assert!(
        status["workers"]["alive"] == 2 && status["parity"]["ok"] == true,
        "started again: {status}"
    );

    // down removes the services and the network, keeps the volumes.
    let (code, out, err) = on_swarm(&manager, &["down", "-n", name]);
    assert_eq!(code, 0, "down:\n{out}\n{err}");
    let services = lab.docker(0, &["service", "ls", "-q"]).unwrap_or_default();
    assert!(
        services.trim().is_empty(),
        "down removed every service: {services}"
    );
    let volumes = lab
        .docker(
            0,
            &[
                "volume",
                "ls",
                "-q",
                "--filter",
                &format!("label=io.sparkbox.cluster={name}"),
            ],
        )
        .unwrap_or_default();
    assert!(
        !volumes.trim().is_empty(),
        "down keeps the notebooks volume"
    );
}
