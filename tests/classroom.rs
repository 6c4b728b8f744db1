//! Real-Docker test of a classroom: one cluster with three students' Jupyter
//! servers, opened to the network with `--bind` (one cluster serves every
//! check): distinct tokens that are required, `roster`, three jobs with
//! executors at once, and a master that refuses an application without the
//! generated RPC secret.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    cluster_name, docker, ensure_default_image, exec_as, http_get, run, sparkbox, ClusterGuard,
};

/// A driver that holds one executor for a while.
const HOLD: &str = r#"
import time
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
sc = spark.sparkContext
print("total", sc.parallelize(range(2), 2).map(lambda x: time.sleep(20) or x).sum())
spark.stop()
"#;

/// A driver that turns Spark's RPC authentication off.
const NO_SECRET: &str = r#"
from pyspark.sql import SparkSession
spark = (SparkSession.builder.appName("sbx-no-secret")
         .config("spark.authenticate", "false").getOrCreate())
print("REGISTERED", spark.sparkContext.applicationId)
"#;

fn master_apps(master: &str) -> serde_json::Value {
    let (_, out, _) = exec_as(master, "spark", &["/opt/sparkbox/bin/probe", "master"]);
    serde_json::from_str(out.trim()).unwrap_or_default()
}

#[test]
fn three_students_on_one_cluster_open_to_the_room() {
    let Some(_engine) = docker("three_students_on_one_cluster_open_to_the_room") else {
        return;
    };
    ensure_default_image();
    let name = cluster_name("class");
    let _guard = ClusterGuard::new(&name);
    let work = tempfile::tempdir().expect("tempdir");
    let master = format!("{name}-master");

    // Two workers of two cores: with the default share (one core per
    // application) three students' jobs fit at once.
    let (code, out, err) = run(sparkbox().current_dir(work.path()).args([
        "up",
        "-n",
        &name,
        "--students",
        "3",
        "--workers",
        "2",
        "--cores",
        "2",
        "--bind",
        "0.0.0.0",
        "--timeout",
        "300",
    ]));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("3 Jupyter servers"), "{out}");
    assert!(
        err.contains("publishes its ports on 0.0.0.0") && err.contains("secret"),
        "no exposure warning:\n{err}"
    );

    // The roster: three seats, each with its own token, port and notebooks.
    let (code, out, err) = run(sparkbox().args(["roster", "-n", &name, "--json", "-"]));
    assert_eq!(code, 0, "{err}");
    let seats: Vec<serde_json::Value> = serde_json::from_str(&out).expect("roster JSON");
    assert_eq!(seats.len(), 3, "{out}");
    let field = |k: &str| -> Vec<String> {
        seats
            .iter()
            .map(|s| s[k].as_str().unwrap_or_default().to_string())
            .collect()
    };
    for k in ["token", "url", "notebooks_volume", "container"] {
        let mut values = field(k);
        values.sort();
        values.dedup();
        assert_eq!(values.len(), 3, "{k} not distinct: {out}");
    }
    let (code, csv, _) = run(sparkbox().args(["roster", "-n", &name, "--csv", "-"]));
    assert_eq!(code, 0);
    assert_eq!(csv.lines().count(), 4, "{csv}");

    // Each token is required: its server answers with it, refuses without it
    // and refuses another student's.
    let tokens = field("token");
    for (i, seat) in seats.iter().enumerate() {
        let url = seat["url"].as_str().unwrap_or_default();
        let port: u16 = url
            .trim_start_matches("http://")
            .split(['/', ':'])
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("port in {url}"));
        let mine = http_get(port, "/api/contents", Some(&tokens[i]));
        assert!(mine.starts_with("HTTP/1.1 200"), "{url}: {mine}");
        let none = http_get(port, "/api/contents", None);
        assert!(
            none.starts_with("HTTP/1.1 403"),
            "{url} without a token: {none}"
        );
        let other = http_get(port, "/api/contents", Some(&tokens[(i + 1) % 3]));
        assert!(
            other.starts_with("HTTP/1.1 403"),
            "{url} took another token: {other}"
        );
    }

    // All three students run a job at the same time and each gets executors;
    // meanwhile an application without the secret is refused by the master.
    let spawn = |target: String, code: &str, timeout: &str| {
        Command::new(assert_cmd::cargo::cargo_bin("sparkbox"))
            .args(["exec", "-T", "-n", &name, &target, "--"])
            .args(["timeout", timeout, "python", "-c", code])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("exec starts")
    };
    let jobs: Vec<_> = (1..=3)
        .map(|n| spawn(format!("jupyter-{n}"), HOLD, "240"))
        .collect();
    let intruder = spawn("jupyter-1".to_string(), NO_SECRET, "45");
    let started = Instant::now();
    let mut together = false;
    while !together && started.elapsed() < Duration::from_secs(180) {
        let state = master_apps(&master);
        let running = state["activeapps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["state"] == "RUNNING" && a["cores"].as_i64().unwrap_or(0) >= 1)
            .count();
        together = running >= 3;
        if !together {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    assert!(
        together,
        "three students never had executors at once: {}",
        master_apps(&master)
    );
    for job in jobs {
        let o = job.wait_with_output().expect("job ends");
        let said = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success() && said.contains("total 1"),
            "{said}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let o = intruder.wait_with_output().expect("intruder ends");
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        !o.status.success() && !said.contains("REGISTERED"),
        "an application without the secret registered:\n{said}"
    );
    let state = master_apps(&master).to_string();
    assert!(
        !state.contains("sbx-no-secret"),
        "the master lists the intruder: {state}"
    );
}
