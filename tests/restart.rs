//! The engine restarted, as when its machine reboots — on a lab engine of
//! the test's own (never the machine's daemon): a ready cluster comes back
//! by itself, its workers registered again, its notebook there and a job
//! running; a cluster that `sparkbox stop` stopped stays stopped through a
//! restart, and `start` brings it back.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::lab::lab_engine;
use common::{cluster_name, run, sparkbox};
use sparkbox::engine::Engine;

const TEST: &str = "engine_restart";

/// A job whose answer proves the workers ran it.
const JOB: &str = "from pyspark.sql import SparkSession\n\
spark = SparkSession.builder.appName('sbx-after-restart').getOrCreate()\n\
print('sum', spark.sparkContext.parallelize(range(100), 4).sum())\n\
spark.stop()\n";

/// `status --json` of `name` on the engine at `host`.
fn status(host: &str, name: &str) -> serde_json::Value {
    let (_, out, _) = run(sparkbox()
        .env("DOCKER_HOST", host)
        .args(["status", "--json", "-n", name]));
    serde_json::from_str(&out).unwrap_or(serde_json::Value::Null)
}

/// Waits until `status` says `state` (at most `patience`), and returns it.
fn wait_for_state(host: &str, name: &str, state: &str, patience: Duration) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let s = status(host, name);
        if s["state"] == state {
            return s;
        }
        assert!(
            started.elapsed() < patience,
            "cluster {name} not {state} within {patience:?} of the engine's restart: {s}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

#[test]
fn a_cluster_comes_back_when_its_engine_restarts() {
    if common::docker(TEST).is_none() {
        return;
    }
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let archive = common::swarm::save_default_image(tmp.path());
    let Some(mut lab) = lab_engine(TEST) else {
        return;
    };
    let host = lab.host();
    let load = Command::new("docker")
        .args(["-H", &host, "load", "-i"])
        .arg(&archive)
        .output()
        .expect("docker load runs");
    assert!(
        load.status.success(),
        "load into the lab engine: {}",
        String::from_utf8_lossy(&load.stderr)
    );
    let _ = std::fs::remove_file(&archive);
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let name = cluster_name("reboot");
    let sbx = |args: &[&str]| run(sparkbox().env("DOCKER_HOST", &host).args(args));
    // A command in the cluster's Jupyter container.
    let in_jupyter = |command: &[&str]| {
        let mut args = vec!["exec", "-T", "-n", name.as_str(), "jupyter", "--"];
        args.extend_from_slice(command);
        sbx(&args)
    };

    let (code, out, err) = run(sparkbox()
        .env("DOCKER_HOST", &host)
        .args([
            "up",
            "-n",
            &name,
            "--workers",
            "2",
            "--timeout",
            "240",
            "--data",
        ])
        .arg(&data));
    assert_eq!(code, 0, "up on the lab engine:\n{out}\n{err}");
    let before = status(&host, &name);
    let containers: Vec<String> = before["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(containers.len(), 4, "{before}");
    // A ready cluster's containers restart with the engine unless stopped.
    common::block_on(async {
        let engine = lab.engine().await;
        for c in &containers {
            let inspect = engine.inspect_container(c).await.expect("inspect");
            assert_eq!(
                inspect["HostConfig"]["RestartPolicy"]["Name"], "unless-stopped",
                "{c}: {}",
                inspect["HostConfig"]
            );
        }
    });
    let notebook = r#"{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}"#;
    let (code, _, err) = in_jupyter(&[
        "python",
        "-c",
        "import sys; open('/home/spark/notebooks/kept.ipynb', 'w').write(sys.argv[1])",
        notebook,
    ]);
    assert_eq!(code, 0, "{err}");

    // The engine restarts: everything comes back by itself.
    let t = Instant::now();
    lab.restart().unwrap_or_else(|e| panic!("{e}"));
    let after = wait_for_state(&host, &name, "ready", Duration::from_secs(240));
    eprintln!(
        "ready again {:.1?} after the engine's restart began",
        t.elapsed()
    );
    assert_eq!(after["workers"]["alive"], 2, "{after}");
    assert_eq!(after["parity"]["ok"], true, "{after}");
    let (code, out, err) = in_jupyter(&["cat", "/home/spark/notebooks/kept.ipynb"]);
    assert_eq!(code, 0, "the notebook is gone: {err}");
    assert!(out.contains("nbformat"), "{out}");
    let (code, out, err) = in_jupyter(&["python", "-c", JOB]);
    assert_eq!(code, 0, "a job after the restart:\n{out}\n{err}");
    assert!(out.contains("sum 4950"), "{out}");

    // Stopped on purpose: it stays stopped through a restart.
    let (code, _, err) = sbx(&["stop", "-n", &name]);
    assert_eq!(code, 0, "{err}");
    lab.restart().unwrap_or_else(|e| panic!("{e}"));
    // Give a policy that wrongly restarts it the time to do so.
    std::thread::sleep(Duration::from_secs(10));
    let stopped = status(&host, &name);
    assert_eq!(stopped["state"], "stopped", "{stopped}");
    let (code, out, err) = sbx(&["start", "-n", &name, "--timeout", "240"]);
    assert_eq!(code, 0, "start after the restart:\n{out}\n{err}");
    let (code, _, err) = sbx(&["down", "-n", &name, "--volumes"]);
    assert_eq!(code, 0, "{err}");
    // The lab engine, and with it anything left, goes when `lab` drops.
}
