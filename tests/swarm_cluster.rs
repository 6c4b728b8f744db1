//! sparkbox itself on a real swarm of two lab engines (`common::swarm`):
//! `up --swarm` through the manager alone, the image pushed to the lab
//! registry and pulled by digest on the other node, one worker on each node,
//! a job from the notebook whose executors run on both nodes, `status` with
//! each container's node, the swarm's nodes listed, and `down`. One cluster
//! serves the checks, because each `up` on a swarm costs a minute here.

mod common;

use std::time::Instant;

use common::swarm::swarm_lab;
use common::{default_tag, ensure_default_image, run, sparkbox};

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

/// sparkbox against the lab's manager.
fn on_swarm(manager: &str, args: &[&str]) -> (i32, String, String) {
    let mut cmd = sparkbox();
    cmd.env("DOCKER_HOST", manager).args(args);
    run(&mut cmd)
}

/// The last log lines of each worker task on each node, for failure messages.
fn worker_logs(lab: &common::swarm::SwarmLab, name: &str) -> String {
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
    ensure_default_image();
    let tag = default_tag();
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let archive = tmp.path().join("image.tar");
    let t = Instant::now();
    common::swarm::save_image(&tag, &archive).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("image saved in {:.1?}", t.elapsed());

    let Some(lab) = swarm_lab(TEST, 2) else {
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

    let t = Instant::now();
    let (code, out, err) = up("2", &with_registry);
    let up_time = t.elapsed();
    assert_eq!(
        code,
        0,
        "up --swarm failed:\n{out}\n{err}\nmanager log:\n{}\nnode 1 log:\n{}",
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
    let line = out
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON from the job: {out}\n{err}"));
    let result: serde_json::Value = serde_json::from_str(line).expect("job JSON");
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
            format!("{name}-jupyter"),
            format!("{name}-master"),
            format!("{name}-worker-1")
        ],
        "{services}"
    );

    // A second up with two workers places worker-2 again and is ready.
    let (code, out, err) = up("2", &with_registry);
    assert_eq!(code, 0, "second up:\n{out}\n{err}");

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
