//! Real-Docker tests of `up`, `status` and `down`. One cluster serves a
//! sequence of checks (each one able to fail on its own), because a cluster
//! takes seconds to start on a 2-core CI machine.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use common::{
    block_on, cluster_name, container_ids, docker, ensure_default_image, exec_as, execute_notebook,
    http_get, run, sparkbox, ClusterGuard,
};
use sparkbox::engine::Engine;
use sparkbox::model::labels;

const JOB: &str = r#"
import json, socket
from pyspark.sql import SparkSession
spark = SparkSession.builder.appName("sbx-test-job").getOrCreate()
sc = spark.sparkContext
hosts = sc.parallelize(range(400), 8).map(lambda _: socket.gethostname()).distinct().collect()
total = spark.range(1000).selectExpr("sum(id) AS s").collect()[0]["s"]
print(json.dumps({"hosts": sorted(hosts), "sum": total, "app": sc.applicationId}))
spark.stop()
"#;

fn status_json(name: &str) -> (i32, serde_json::Value) {
    let (code, out, err) = run(sparkbox().args(["status", "--json", "-n", name]));
    let value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("status JSON ({e}): {out}\n{err}"));
    (code, value)
}

/// The notebook written into the notebooks volume is still there.
fn assert_notebook_kept(jupyter: &str) {
    let (code, out, err) = exec_as(
        jupyter,
        "spark",
        &["cat", "/home/spark/notebooks/keep.ipynb"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("cells"), "{out}");
}

/// `up` in `dir` (whose ./data is the cluster's default data directory).
fn up(dir: &Path, name: &str, workers: &str) -> (i32, String, String) {
    run(sparkbox().current_dir(dir).args([
        "up",
        "-n",
        name,
        "--workers",
        workers,
        "--timeout",
        "240",
    ]))
}

/// The host user the data directory belongs to in the lifecycle test: not
/// this process's user, so a file written as anyone else is caught.
const DATA_OWNER: u32 = 4242;

const WRITE_JOB: &str = r#"
from pyspark.sql import SparkSession
spark = SparkSession.builder.appName("sbx-write").getOrCreate()
spark.range(100).repartition(2).write.mode("overwrite").csv("/data/owned")
spark.stop()
"#;

/// A notebook that holds its executors for a while.
const HOLD_NOTEBOOK: &str = r#"{"cells": [{"cell_type": "code", "execution_count": null, "id": "hold", "metadata": {}, "outputs": [],
 "source": ["import time\n", "print('total', sc.parallelize(range(2), 2).map(lambda x: time.sleep(25) or x).sum())"]}],
 "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
 "nbformat": 4, "nbformat_minor": 5}"#;

/// Two notebooks started together both get executors at once (the default
/// per-application share), and each one's application UI answers on the host.
fn check_two_notebooks_at_once(name: &str, master: &str, jupyter: &str) {
    for n in 1..=2 {
        let path = format!("/home/spark/notebooks/hold-{n}.ipynb");
        let (code, _, err) = exec_as(
            jupyter,
            "spark",
            &[
                "python",
                "-c",
                "import sys; open(sys.argv[1], 'w').write(sys.argv[2])",
                &path,
                HOLD_NOTEBOOK,
            ],
        );
        assert_eq!(code, 0, "{err}");
    }
    let spawn = |n: u32| {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("sparkbox"))
            .args(["exec", "-T", "-n", name, "jupyter", "--"])
            .args([
                "jupyter",
                "nbconvert",
                "--to",
                "notebook",
                "--execute",
                "--stdout",
            ])
            .arg(format!("/home/spark/notebooks/hold-{n}.ipynb"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("nbconvert starts")
    };
    let (one, two) = (spawn(1), spawn(2));
    let started = std::time::Instant::now();
    let mut both = None;
    while both.is_none() && started.elapsed() < Duration::from_secs(150) {
        let granted: Vec<String> = active_apps(master)
            .iter()
            .filter(|a| a["cores"].as_i64().unwrap_or(0) >= 1 && a["state"] == "RUNNING")
            .map(|a| a["name"].as_str().unwrap_or_default().to_string())
            .collect();
        if granted.len() >= 2 {
            both = Some(granted);
        } else {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let granted =
        both.unwrap_or_else(|| panic!("two notebooks never had executors at the same time"));
    assert!(
        granted.iter().all(|n| n.starts_with(&format!("{name}: "))),
        "apps are named after the cluster: {granted:?}"
    );
    // While both run, both drivers' UIs answer on the published app UI ports.
    let (_, status) = status_json(name);
    let app_uis: Vec<u16> = status["urls"]["app_uis"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u.as_str()?.rsplit(':').next()?.parse().ok())
        .collect();
    assert_eq!(app_uis.len(), 4, "{status}");
    for port in &app_uis[..2] {
        // A busy 2-core machine may take a while to render the page.
        let mut reply = String::new();
        for _ in 0..6 {
            reply = http_get(*port, "/jobs/", None);
            if reply.starts_with("HTTP/1.1 200") {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        assert!(
            reply.starts_with("HTTP/1.1 200"),
            "app UI on {port}: {reply}"
        );
    }
    for child in [one, two] {
        let out = child.wait_with_output().expect("nbconvert ends");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("total 1"),
            "{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The body of an HTTP reply as JSON (Null when it is not JSON).
fn body_json(reply: &str) -> serde_json::Value {
    let body = reply.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

/// The master's running applications, as its probe reports them.
fn active_apps(master: &str) -> Vec<serde_json::Value> {
    let (_, out, _) = exec_as(master, "spark", &["/opt/sparkbox/bin/probe", "master"]);
    let state: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_default();
    state["activeapps"].as_array().cloned().unwrap_or_default()
}

/// Cores the master has granted to application `app`, if it is listed.
fn app_cores(master: &str, app: &str) -> Option<i64> {
    active_apps(master)
        .iter()
        .find(|a| a["id"] == app)
        .map(|a| a["cores"].as_i64().unwrap_or(-1))
}

/// What a user of the notebook page meets: the getting-started notebook and
/// `data` in the file browser, a kernel named after the cluster, no news
/// prompt; a new notebook gets the kernel started ahead
/// (hidden from the kernel list, moved to the notebook's folder) whose driver
/// was started without the launcher and maps the image's class archive, as
/// its executors do; once idle it holds no cores at the master.
fn check_notebook_experience(
    name: &str,
    master: &str,
    jupyter: &str,
    port: u16,
    token: &str,
    data: &Path,
) {
    // The file browser: the notebook from the image and `data` -> /data.
    let (code, out, err) = exec_as(
        jupyter,
        "spark",
        &[
            "sh",
            "-c",
            "cd /home/spark/notebooks && ls && readlink data",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("getting-started.ipynb"), "{out}");
    assert!(out.lines().any(|l| l == "/data"), "{out}");
    let kernelspecs = body_json(&http_get(port, "/api/kernelspecs", Some(token)));
    assert_eq!(
        kernelspecs["kernelspecs"]["python3"]["spec"]["display_name"],
        format!("Spark on {name} (Python 3)"),
        "{kernelspecs}"
    );
    let notification = body_json(&http_get(
        port,
        "/lab/api/settings/@jupyterlab/apputils-extension:notification",
        Some(token),
    ));
    // overrides.json becomes the settings' defaults: the page does not ask
    // whether to fetch news (JupyterLab's own default is to ask, "none").
    let props = &notification["schema"]["properties"];
    assert_eq!(props["fetchNews"]["default"], "false", "{notification}");

    // The getting-started notebook runs top to bottom on this cluster.
    let executed = execute_notebook(jupyter, "/home/spark/notebooks/getting-started.ipynb");
    let results: Vec<String> = executed["cells"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["outputs"].as_array().cloned().unwrap_or_default())
        .filter_map(|o| match &o["data"]["text/plain"] {
            // nbformat keeps multi-line text as a list of lines.
            serde_json::Value::String(t) => Some(t.clone()),
            serde_json::Value::Array(lines) => {
                Some(lines.iter().filter_map(|l| l.as_str()).collect())
            }
            _ => None,
        })
        .collect();
    assert!(results.iter().any(|r| r == "499999500000"), "{results:?}");
    assert!(results.iter().any(|r| r == "328350"), "{results:?}");
    assert!(
        data.join("getting-started").is_dir(),
        "nothing written to /data"
    );

    // The spare kernel's driver is registered (and holds no cores) before
    // anyone opens a notebook.
    let started = std::time::Instant::now();
    let spare = loop {
        let apps = active_apps(master);
        let spare = apps.iter().find(|a| {
            a["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(&format!("{name}: kernel ")))
        });
        if let Some(spare) = spare {
            break spare.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no spare kernel's driver at the master: {apps:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(spare["cores"], 0, "the spare holds cores: {spare}");

    // A notebook in a folder, opened as JupyterLab opens one.
    let (code, _, err) = exec_as(
        jupyter,
        "spark",
        &["mkdir", "-p", "/home/spark/notebooks/course"],
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = exec_as(
        jupyter,
        "spark",
        &["python", "-c", KERNEL_CLIENT, "open", "course/first.ipynb"],
    );
    assert_eq!(code, 0, "opening a notebook failed:\n{out}\n{err}");
    let opened: serde_json::Value =
        serde_json::from_str(out.lines().last().unwrap_or("")).expect("kernel client JSON");
    assert_eq!(opened["answer"], "499999500000", "{opened}");
    let facts = &opened["facts"];
    assert_eq!(
        facts["app_id"], spare["id"],
        "not the spare's driver: {opened}"
    );
    assert_eq!(facts["cwd"], "/home/spark/notebooks/course", "{opened}");
    assert_eq!(
        facts["session_name"], "/home/spark/notebooks/course/first.ipynb",
        "{opened}"
    );
    assert_eq!(facts["dynamic_allocation"], "true", "{opened}");
    assert_eq!(facts["driver_maps_archive"], true, "{opened}");
    let kernel = opened["kernel_id"].as_str().unwrap_or_default();
    assert!(
        !opened["listed_before"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|k| k == kernel),
        "the spare was listed before it was handed out: {opened}"
    );
    assert_eq!(
        opened["listed_after"],
        serde_json::json!([kernel]),
        "only the notebook's kernel is listed (the next spare is hidden): {opened}"
    );
    // Its executor (on a worker, still alive: idle for less than 30 s) maps
    // the same archive.
    let workers: Vec<String> = (1..=2).map(|n| format!("{name}-worker-{n}")).collect();
    let mapped = workers.iter().any(|w| {
        // As the executor's user: reading another uid's maps takes
        // CAP_SYS_PTRACE, which containers do not have.
        let (code, _, _) = exec_as(
            w,
            "spark",
            &[
                "sh",
                "-c",
                "for m in /proc/[0-9]*/maps; do grep -q /opt/sparkbox/driver.jsa $m 2>/dev/null && exit 0; done; exit 1",
            ],
        );
        code == 0
    });
    assert!(mapped, "no executor maps /opt/sparkbox/driver.jsa");
    // Idle, the notebook gives its executor back: no cores held (30 s
    // idle, 60 s for an executor that holds shuffle files).
    let app = facts["app_id"].as_str().unwrap_or_default();
    let started = std::time::Instant::now();
    while app_cores(master, app) != Some(0) {
        assert!(
            started.elapsed() < Duration::from_secs(150),
            "the idle notebook still holds {:?} cores",
            app_cores(master, app)
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let session = opened["session_id"].as_str().unwrap_or_default();
    let (code, _, err) = exec_as(
        jupyter,
        "spark",
        &["python", "-c", KERNEL_CLIENT, "close", session],
    );
    assert_eq!(code, 0, "{err}");
}

/// Jupyter's REST API and a kernel's websocket, driven from inside the
/// Jupyter container as JupyterLab drives them.
const KERNEL_CLIENT: &str = include_str!("common/kernel.py");

/// Files Spark writes to the data directory (executors on the workers, the
/// driver in Jupyter) belong to the directory's owner on the host.
fn check_data_ownership(jupyter: &str, data: &Path) {
    use std::os::unix::fs::MetadataExt;
    let (code, out, err) = exec_as(jupyter, "spark", &["python", "-c", WRITE_JOB]);
    assert_eq!(code, 0, "{out}\n{err}");
    let written: Vec<_> = std::fs::read_dir(data.join("owned"))
        .expect("the job wrote /data/owned")
        .filter_map(|e| e.ok())
        .collect();
    assert!(
        written
            .iter()
            .any(|e| e.file_name().to_string_lossy().starts_with("part-")),
        "no part files"
    );
    for entry in written.iter().map(|e| e.path()).chain([data.join("owned")]) {
        let meta = std::fs::metadata(&entry).expect("metadata");
        assert_eq!(
            (meta.uid(), meta.gid()),
            (DATA_OWNER, DATA_OWNER),
            "{} is not the host user's",
            entry.display()
        );
    }
}

#[test]
fn cluster_lifecycle() {
    let Some(engine) = docker("cluster_lifecycle") else {
        return;
    };
    ensure_default_image();
    let name = cluster_name("life");
    let _guard = ClusterGuard::new(&name);
    // The working directory: `up` makes no sparkbox.toml's ./data here, and
    // it belongs to another user than the test's.
    let work = tempfile::tempdir().expect("tempdir");
    let data = work.path().join("data");
    std::fs::create_dir(&data).expect("data dir");
    std::os::unix::fs::chown(&data, Some(DATA_OWNER), Some(DATA_OWNER)).expect("chown data");
    let jupyter = format!("{name}-jupyter");
    let master = format!("{name}-master");

    // --dry-run prints the plan and changes nothing.
    let (code, out, err) = run(sparkbox().args(["up", "-n", &name, "--workers", "2", "--dry-run"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("create container {name}-worker-2 (not found)")),
        "{out}"
    );
    assert!(
        container_ids(&name).is_empty(),
        "dry run created containers"
    );
    let nets = block_on(engine.networks(&[(labels::CLUSTER, name.as_str())])).expect("networks");
    assert!(nets.is_empty(), "dry run created a network");

    // A taken default port (Jupyter's 8888) is replaced by a free one and reported.
    let holder = TcpListener::bind(("127.0.0.1", 8888)).ok();
    let (code, out, err) = up(work.path(), &name, "2");
    assert_eq!(code, 0, "up failed:\n{out}\n{err}");
    assert!(out.contains(&format!("cluster {name} is ready")), "{out}");
    assert!(err.contains("port 8888 is taken"), "{err}");
    drop(holder);

    // status --json: 2 workers alive, parity ok, URLs with the moved port.
    let (code, status) = status_json(&name);
    assert_eq!(code, 0, "{status}");
    assert_eq!(status["state"], "ready", "{status}");
    assert_eq!(status["workers"]["alive"], 2);
    assert_eq!(status["workers"]["wanted"], 2);
    assert_eq!(status["parity"]["ok"], true);
    let containers = status["containers"].as_array().cloned().unwrap_or_default();
    assert_eq!(containers.len(), 4, "{status}");
    assert!(containers
        .iter()
        .all(|c| c["versions_ok"] == true && c["state"] == "running"));
    let jupyter_url = status["urls"]["jupyter"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (port, token) = {
        let rest = jupyter_url.trim_start_matches("http://127.0.0.1:");
        let (port, rest) = rest.split_once('/').expect("port in URL");
        (
            port.parse::<u16>().expect("port number"),
            rest.split("token=").nth(1).unwrap_or("").to_string(),
        )
    };
    assert_ne!(port, 8888, "Jupyter took the held port");
    // Jupyter answers on its published port with the token, and refuses without it.
    assert!(http_get(port, "/api/status", Some(&token)).starts_with("HTTP/1.1 200"));
    assert!(http_get(port, "/api/contents", None).starts_with("HTTP/1.1 403"));

    // Workers start with the master: the worker's daemon waits until the master listens.
    check_worker_waits_for_master(&engine, &name, &jupyter);
    check_confinement(&engine, &name);

    // A PySpark job from the Jupyter container runs its tasks on the workers.
    let (code, out, err) = exec_as(&jupyter, "spark", &["python", "-c", JOB]);
    assert_eq!(code, 0, "job failed:\n{out}\n{err}");
    let result: serde_json::Value =
        serde_json::from_str(out.lines().last().unwrap_or("")).expect("job JSON");
    assert_eq!(result["sum"], 499500);
    let hosts: Vec<String> = serde_json::from_value(result["hosts"].clone()).expect("hosts");
    assert!(!hosts.is_empty());
    assert!(
        hosts
            .iter()
            .all(|h| h.starts_with(&format!("{name}-worker-"))),
        "tasks ran on {hosts:?}"
    );
    // The master lists the finished application.
    let (_, master_json, _) = exec_as(&master, "spark", &["/opt/sparkbox/bin/probe", "master"]);
    assert!(master_json.contains("sbx-test-job"), "{master_json}");

    // The default data directory is ./data, and what Spark writes there is
    // the host user's; two notebooks share the cluster by default.
    check_data_ownership(&jupyter, &data);
    check_two_notebooks_at_once(&name, &master, &jupyter);
    check_notebook_experience(&name, &master, &jupyter, port, &token, &data);

    // `exec`, `shell` and `submit` on the running cluster (2 workers).
    check_exec(&name);
    check_shell(&name);
    check_submit(&name);

    // Scaling up adds one worker and leaves every other container alone.
    let before = container_ids(&name);
    let (code, out, err) = up(work.path(), &name, "3");
    assert_eq!(code, 0, "{out}\n{err}");
    let after = container_ids(&name);
    for (container, id) in &before {
        assert_eq!(after.get(container), Some(id), "{container} was recreated");
    }
    assert!(after.contains_key(&format!("{name}-worker-3")));
    let (_, status) = status_json(&name);
    assert_eq!(status["workers"]["alive"], 3, "{status}");

    // A killed worker is restored by `up`.
    let victim = format!("{name}-worker-2");
    block_on(engine.client().kill_container(
        &victim,
        None::<bollard::query_parameters::KillContainerOptions>,
    ))
    .expect("kill");
    let (code, status) = status_json(&name);
    assert_ne!(code, 0, "status says ready with a dead worker: {status}");
    // In words: the dead worker's versions were not measured, and the
    // report's last line and the error stay on lines of their own.
    let (code, out, err) = run(sparkbox().args(["status", "-n", &name]));
    assert_eq!(code, 7, "{out}\n{err}");
    let victim_line = out
        .lines()
        .find(|l| l.starts_with(&victim))
        .unwrap_or_default();
    assert!(victim_line.contains("not measured"), "{out}");
    assert!(
        out.ends_with(")\n") && err.starts_with("error: cluster "),
        "{out}|{err}"
    );
    let (code, out, err) = up(work.path(), &name, "3");
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        err.contains(&format!("start container {victim} (stopped)")),
        "{err}"
    );
    let (code, status) = status_json(&name);
    assert_eq!(code, 0, "{status}");
    assert_eq!(status["workers"]["alive"], 3, "{status}");

    // On a healthy cluster `up` changes nothing and says so.
    let ids = container_ids(&name);
    let (code, out, err) = up(work.path(), &name, "3");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("is up to date, nothing changed"), "{out}");
    assert_eq!(container_ids(&name), ids);

    // Scaling down removes the highest-numbered worker and nothing else.
    let (code, out, err) = up(work.path(), &name, "2");
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        err.contains(&format!("remove container {name}-worker-3 (scale down)")),
        "{err}"
    );
    let after = container_ids(&name);
    assert!(!after.contains_key(&format!("{name}-worker-3")));
    for (container, id) in ids.iter().filter(|(c, _)| !c.ends_with("-worker-3")) {
        assert_eq!(
            after.get(container),
            Some(id),
            "{container} was touched by scale down"
        );
    }

    // `logs`: prefixed lines, a role filter and --tail.
    let (code, out, err) = run(sparkbox().args(["logs", "-n", &name, "master", "--tail", "5"]));
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(!lines.is_empty() && lines.len() <= 5, "{out}");
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with(&format!("{name}-master "))),
        "{out}"
    );
    let (code, out, _) = run(sparkbox().args(["logs", "-n", &name]));
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("{name}-worker-1 ")) && out.contains("Successfully registered"),
        "{out}"
    );

    // `logs -f` follows, and picks up the worker that `scale` adds below.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            self.0.kill().ok();
            self.0.wait().ok();
        }
    }
    let mut follower = KillOnDrop(
        std::process::Command::new(assert_cmd::cargo::cargo_bin("sparkbox"))
            .args(["logs", "-f", "-n", &name, "worker"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("logs -f starts"),
    );
    // Drained all along (the workers' logs may be more than a pipe holds),
    // line by line, so the check below can wait for the new worker's lines.
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    if let Some(stdout) = follower.0.stdout.take() {
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
    }

    // `scale` adds a worker copied from the others and touches nothing else.
    let before = container_ids(&name);
    let (code, out, err) = run(sparkbox().args(["scale", "-n", &name, "--workers", "3"]));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("scaled to 3 workers"), "{out}");
    let after = container_ids(&name);
    for (container, id) in &before {
        assert_eq!(after.get(container), Some(id), "scale touched {container}");
    }
    assert!(after.contains_key(&format!("{name}-worker-3")));
    let (_, status) = status_json(&name);
    assert_eq!(status["workers"]["alive"], 3, "{status}");
    // `logs -f` rescans every 2 s; on a loaded 2-core machine give it time.
    let wanted = format!("{name}-worker-3 ");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut followed = Vec::new();
    while !followed.iter().any(|l: &String| l.starts_with(&wanted)) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines_rx.recv_timeout(left) {
            Ok(line) => followed.push(line),
            Err(_) => break,
        }
    }
    follower.0.kill().ok();
    follower.0.wait().ok();
    assert!(
        followed.iter().any(|l| l.starts_with(&wanted)),
        "logs -f missed the new worker:\n{}",
        followed.join("\n")
    );

    // Notebooks survive down/up: the volume stays unless --volumes.
    let (code, _, err) = exec_as(
        &jupyter,
        "spark",
        &[
            "sh",
            "-c",
            "echo '{\"cells\": []}' > /home/spark/notebooks/keep.ipynb",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(sparkbox().args(["down", "-n", &name]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("kept volume(s)"), "{out}");
    assert!(container_ids(&name).is_empty(), "down left containers");
    let volumes = block_on(engine.volumes(&[(labels::CLUSTER, name.as_str())])).expect("volumes");
    assert_eq!(volumes, vec![format!("{name}-notebooks")]);
    let (code, out, err) = up(work.path(), &name, "1");
    assert_eq!(code, 0, "{out}\n{err}");
    assert_notebook_kept(&jupyter);

    // `ls` lists the cluster; `stop` keeps containers and volumes; `start`
    // brings them back, checked like `up`, with the notebook still there.
    let (code, out, err) = run(sparkbox().args(["ls", "--json"]));
    assert_eq!(code, 0, "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).expect("ls JSON");
    let mine = list
        .as_array()
        .and_then(|l| l.iter().find(|c| c["name"] == name.as_str()).cloned())
        .unwrap_or_else(|| panic!("{name} not listed: {out}"));
    assert_eq!(mine["state"], "running");
    assert_eq!(mine["workers"], 1);
    let ids = container_ids(&name);
    let (code, out, err) = run(sparkbox().args(["stop", "-n", &name]));
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, status) = status_json(&name);
    assert_eq!(code, 7, "{status}");
    assert_eq!(status["state"], "stopped");
    let (code, out, err) = run(sparkbox().args(["start", "-n", &name, "--timeout", "240"]));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains(&format!("cluster {name} is ready")), "{out}");
    assert_eq!(container_ids(&name), ids, "start recreated containers");
    let (code, status) = status_json(&name);
    assert_eq!(code, 0, "{status}");
    assert_notebook_kept(&jupyter);

    // A different py4j inside Jupyter (as `pip install` would leave it) fails parity.
    let (code, _, err) = exec_as(
        &jupyter,
        "root",
        &[
            "sh",
            "-c",
            "sed -i 's/^Version: .*/Version: 0.10.9.1/' /opt/sparkbox/venv/lib/python3*/site-packages/py4j-*.dist-info/METADATA",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(sparkbox().args(["status", "-n", &name]));
    assert_eq!(code, 8, "{err}");
    assert!(
        err.contains("py4j") && err.contains("0.10.9.1 (!)") && err.contains(&jupyter),
        "{err}"
    );
    let (code, _, err) = up(work.path(), &name, "1");
    assert_eq!(code, 8, "{err}");
    assert!(err.contains("version parity failed"), "{err}");

    // down --volumes removes everything, the notebooks volume included.
    let (code, _, err) = run(sparkbox().args(["down", "-n", &name, "--volumes"]));
    assert_eq!(code, 0, "{err}");
    let volumes = block_on(engine.volumes(&[(labels::CLUSTER, name.as_str())])).expect("volumes");
    assert!(volumes.is_empty());
}

/// A worker container started while nothing listens at its master's address
/// (here a free port of the Jupyter container) starts no Spark daemon, so it
/// never fails to connect and backs off; once something listens there, the
/// daemon starts and connects. `up` relies on this to start the worker
/// containers together with the master.
/// Every container of the cluster: all capabilities dropped but the
/// entrypoint's, no-new-privileges, a pids and a memory limit, the restart
/// policy of a ready cluster; inside, nothing but tini (PID 1, the init)
/// runs as root, and no process holds a capability.
fn check_confinement(engine: &sparkbox::engine::docker::DockerEngine, cluster: &str) {
    let containers =
        block_on(engine.containers(&[(labels::CLUSTER, cluster)])).expect("containers");
    assert_eq!(containers.len(), 4, "{containers:?}");
    let wanted_caps: Vec<String> = sparkbox::plan::desired::ENTRYPOINT_CAPABILITIES
        .iter()
        .map(|c| format!("CAP_{c}"))
        .collect();
    for c in &containers {
        let inspect = block_on(engine.inspect_container(&c.name)).expect("inspect");
        let host = &inspect["HostConfig"];
        assert_eq!(
            host["CapDrop"],
            serde_json::json!(["ALL"]),
            "{}: {host}",
            c.name
        );
        let mut caps: Vec<String> = host["CapAdd"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .map(|v| {
                if v.starts_with("CAP_") {
                    v.to_string()
                } else {
                    format!("CAP_{v}")
                }
            })
            .collect();
        caps.sort();
        let mut wanted = wanted_caps.clone();
        wanted.sort();
        assert_eq!(caps, wanted, "{}: {host}", c.name);
        assert!(
            host["SecurityOpt"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|o| o
                    .as_str()
                    .is_some_and(|o| o.starts_with("no-new-privileges"))),
            "{}: {host}",
            c.name
        );
        assert_eq!(
            host["PidsLimit"],
            sparkbox::plan::desired::PIDS_LIMIT,
            "{}",
            c.name
        );
        assert!(
            host["Memory"].as_i64().unwrap_or(0) > 0,
            "{} has no memory limit: {host}",
            c.name
        );
        assert_eq!(
            host["RestartPolicy"]["Name"], "unless-stopped",
            "{}",
            c.name
        );
        let processes = common::processes(&c.name);
        assert!(processes.len() >= 2, "{}: {processes:?}", c.name);
        for p in &processes {
            if p.pid == 1 {
                assert_eq!(p.name, "tini", "{}: PID 1 is not the init", c.name);
                continue;
            }
            assert_ne!(p.uid, 0, "{}: a process runs as root: {p:?}", c.name);
            assert_eq!(p.caps, 0, "{}: a process holds capabilities: {p:?}", c.name);
        }
    }
}

fn check_worker_waits_for_master(
    engine: &sparkbox::engine::docker::DockerEngine,
    cluster: &str,
    jupyter: &str,
) {
    const PORT: &str = "7999";
    let worker = format!("{cluster}-gate-test");
    let master = block_on(engine.containers(&[(labels::CLUSTER, cluster)]))
        .expect("containers")
        .into_iter()
        .find(|c| c.name == format!("{cluster}-master"))
        .expect("master container");
    let image = master
        .labels
        .get(sparkbox::model::labels::IMAGE_REF)
        .expect("image label")
        .clone();
    let spec = sparkbox::engine::ContainerSpec {
        name: worker.clone(),
        image,
        command: vec!["worker".into()],
        env: vec![
            (
                "SPARKBOX_MASTER_URL".into(),
                format!("spark://{jupyter}:{PORT}"),
            ),
            ("SPARKBOX_WAIT_FOR_MASTER".into(), "1".into()),
        ],
        // The cluster's label: the guard removes it whatever happens.
        labels: [(labels::CLUSTER.to_string(), cluster.to_string())].into(),
        network: format!("{cluster}-net"),
        ..Default::default()
    };
    block_on(async {
        engine.create_container(&spec).await?;
        engine.start_container(&worker).await
    })
    .expect("gated worker starts");
    std::thread::sleep(Duration::from_secs(4));
    let logs = block_on(engine.logs_tail(&worker, 50)).expect("logs");
    assert!(
        !logs.contains("Started daemon") && !logs.contains("Failed to connect"),
        "the worker daemon started before anything listened:\n{logs}"
    );
    let (code, _, _) = exec_as(&worker, "spark", &["pgrep", "-f", "deploy.worker.Worker"]);
    assert_eq!(code, 1, "a worker JVM runs while nothing listens");

    // Something listens at the master's address: the daemon starts and connects there.
    let listener = jupyter.to_string();
    // The entrypoint's probe, then the daemon itself.
    let script = format!(
        "import socket, time\ns = socket.create_server(('0.0.0.0', {PORT}))\ns.settimeout(60)\nfor _ in range(2):\n    c, _ = s.accept()\ntime.sleep(1)"
    );
    let holder =
        std::thread::spawn(move || exec_as(&listener, "spark", &["python", "-c", &script]));
    let mut logs = String::new();
    for _ in 0..120 {
        logs = block_on(engine.logs_tail(&worker, 200)).expect("logs");
        if logs.contains(&format!("Connecting to master {jupyter}:{PORT}")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        logs.contains(&format!("Connecting to master {jupyter}:{PORT}")),
        "the worker daemon did not start once the port listened:\n{logs}"
    );
    let _ = holder.join();
    block_on(engine.remove_container(&worker)).expect("remove the gated worker");
}

/// sparkbox with the cluster's name: `sparkbox <command> -n NAME <rest…>`.
fn sbx(command: &str, name: &str, rest: &[&str]) -> assert_cmd::Command {
    let mut cmd = sparkbox();
    cmd.args([command, "-n", name]).args(rest);
    cmd
}

/// `exec`: targets, exit codes passed through, stdin forwarded and closed at
/// its end, a TTY only on a terminal.
fn check_exec(name: &str) {
    let (code, out, err) = run(&mut sbx(
        "exec",
        name,
        &["master", "--", "sh", "-c", "exit 7"],
    ));
    assert_eq!(code, 7, "{out}\n{err}");
    assert!(
        !err.contains("error:"),
        "the command's own exit is not a sparkbox error: {err}"
    );
    let (code, out, err) = run(&mut sbx("exec", name, &["worker-2", "--", "hostname"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), format!("{name}-worker-2"));
    let (code, out, err) = run(&mut sbx("exec", name, &["worker", "--", "hostname"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), format!("{name}-worker-1"));
    let (code, out, err) = run(&mut sbx(
        "exec",
        name,
        &["-u", "root", "master", "--", "id", "-un"],
    ));
    assert_eq!((code, out.trim()), (0, "root"), "{err}");
    let (code, _, err) = run(&mut sbx("exec", name, &["worker-9", "--", "true"]));
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains(&format!("cluster {name} has no worker-9 (workers: 1, 2)")),
        "{err}"
    );
    let (code, _, err) = run(&mut sbx("exec", name, &["nosuch", "--", "true"]));
    assert_eq!(code, 4, "{err}");
    assert!(err.contains(&format!("{name}-master")), "{err}");
    // stdout and stderr stay apart.
    let (code, out, err) = run(&mut sbx(
        "exec",
        name,
        &["jupyter", "--", "sh", "-c", "echo out; echo err >&2"],
    ));
    assert_eq!((code, out.as_str()), (0, "out\n"), "{err}");
    assert!(err.contains("err"), "{err}");
    // stdin is forwarded, and its end closes the command's input.
    let (code, out, err) = run(sbx("exec", name, &["jupyter", "--", "cat"]).write_stdin("hello"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "hello");
    let big = "x".repeat(3 << 20);
    let (code, out, err) = run(sbx("exec", name, &["jupyter", "--", "wc", "-c"]).write_stdin(big));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), (3 << 20).to_string());
    // No terminal here: no TTY, and `tty`'s exit code 1 passes through.
    let (code, out, err) = run(&mut sbx("exec", name, &["master", "--", "tty"]));
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(out.contains("not a tty"), "{out}");

    // Under `script` (a pseudo-terminal on stdin and stdout) exec allocates a TTY.
    let have_script = std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_script {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "CI=true requires the TTY check of `exec`, but `script` (util-linux) is missing"
            );
        }
        eprintln!("SKIPPED the TTY check of exec: `script` (util-linux) is missing");
        return;
    }
    let line = format!(
        "{} --progress plain exec -n {name} master -- tty",
        assert_cmd::cargo::cargo_bin("sparkbox").display()
    );
    let (code, out, err) = run(assert_cmd::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env_remove("SPARKBOX_NAME")
        .env_remove("SPARKBOX_FILE")
        .env_remove("DOCKER_HOST")
        .timeout(Duration::from_secs(120)));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("/dev/pts/"),
        "no TTY under script: {out}\n{err}"
    );
}

/// `shell`: pyspark in the Jupyter container, reading from a pipe.
fn check_shell(name: &str) {
    let (code, out, err) = run(sbx("shell", name, &[])
        .write_stdin("print(sc.master)\nprint(sc.parallelize(range(10)).sum())\n"));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&format!("spark://{name}-master:7077")),
        "{out}\n{err}"
    );
    assert!(
        out.lines()
            .any(|l| l.trim_start_matches(">>> ").trim() == "45"),
        "{out}\n{err}"
    );
}

/// `submit`: Spark's own examples from the image, an application's exit
/// code, --py-files used on the executors, and files checked before anything.
fn check_submit(name: &str) {
    let examples = "/opt/sparkbox/spark/examples/src/main/python";
    let dir = tempfile::tempdir().expect("temp dir");
    let copy_out = |file: &str| {
        let (code, text, err) = run(&mut sbx(
            "exec",
            name,
            &["jupyter", "--", "cat", &format!("{examples}/{file}")],
        ));
        assert_eq!(code, 0, "{file} is not in the image: {err}");
        let path = dir.path().join(file);
        std::fs::write(&path, &text).expect("write");
        (path.display().to_string(), text)
    };
    let (pi, pi_text) = copy_out("pi.py");
    let (wordcount, _) = copy_out("wordcount.py");

    let (code, out, err) = run(&mut sbx("submit", name, &[&pi, "4"]));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("Pi is roughly 3.1"), "{out}\n{err}");

    // wordcount reads a file every container has (the image's pi.py).
    let imports = pi_text
        .lines()
        .flat_map(|l| l.split(' '))
        .filter(|w| *w == "import")
        .count();
    assert!(imports > 0);
    let (code, out, err) = run(&mut sbx(
        "submit",
        name,
        &[&wordcount, &format!("{examples}/pi.py")],
    ));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.lines().any(|l| l == format!("import: {imports}")),
        "{out}\n{err}"
    );

    // An application's own exit code passes through.
    let failing = dir.path().join("fail.py");
    std::fs::write(
        &failing,
        "from pyspark.sql import SparkSession\n\
         spark = SparkSession.builder.appName('sbx-fail').getOrCreate()\n\
         raise SystemExit(3)\n",
    )
    .expect("write");
    let (code, out, err) = run(&mut sbx("submit", name, &[&failing.display().to_string()]));
    assert_eq!(code, 3, "{out}\n{err}");

    // A --py-files module is importable on the driver and on the executors.
    std::fs::write(
        dir.path().join("helper.py"),
        "def square(x):\n    return x * x\n",
    )
    .expect("write");
    let app = dir.path().join("squares.py");
    std::fs::write(
        &app,
        "import socket\n\
         from pyspark.sql import SparkSession\n\
         import helper\n\
         spark = SparkSession.builder.appName('sbx-pyfiles').getOrCreate()\n\
         def f(x):\n\
         \x20   import helper\n\
         \x20   return (helper.square(x), socket.gethostname())\n\
         rows = spark.sparkContext.parallelize(range(5), 2).map(f).collect()\n\
         print('squares', sum(r[0] for r in rows), helper.square(3))\n\
         print('hosts', sorted(set(r[1] for r in rows)))\n\
         spark.stop()\n",
    )
    .expect("write");
    let helper = dir.path().join("helper.py").display().to_string();
    let (code, out, err) = run(&mut sbx(
        "submit",
        name,
        &["--py-files", &helper, &app.display().to_string()],
    ));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("squares 30 9"), "{out}\n{err}");
    assert!(out.contains(&format!("'{name}-worker-")), "{out}\n{err}");

    // Ctrl-C stops spark-submit and its Python driver in the container.
    let slow = dir.path().join("slow.py");
    std::fs::write(
        &slow,
        "import time\n\
         from pyspark.sql import SparkSession\n\
         spark = SparkSession.builder.appName('sbx-slow').getOrCreate()\n\
         print('started', flush=True)\n\
         time.sleep(600)\n",
    )
    .expect("write");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("sparkbox"))
        .args(["--progress", "plain", "submit", "-n", name])
        .arg(&slow)
        .env_remove("SPARKBOX_NAME")
        .env_remove("SPARKBOX_FILE")
        .env_remove("DOCKER_HOST")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("submit starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let started = std::iter::from_fn(|| rx.recv_timeout(Duration::from_secs(300)).ok())
        .any(|line| line == "started");
    let interrupt = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = (0..120)
        .find_map(|_| match child.try_wait() {
            Ok(Some(status)) => Some(status),
            _ => {
                std::thread::sleep(Duration::from_millis(500));
                None
            }
        })
        .unwrap_or_else(|| {
            child.kill().ok();
            child.wait().expect("wait")
        });
    let mut err = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        stderr.read_to_string(&mut err).ok();
    }
    assert!(started, "the slow application never started:\n{err}");
    assert!(interrupt.is_ok_and(|s| s.success()));
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("spark-submit of slow.py was stopped"), "{err}");
    let (code, out, err) = run(&mut sbx(
        "exec",
        name,
        &[
            "jupyter",
            "--",
            "sh",
            "-c",
            "ps -eo args | grep -c '[s]low.py'",
        ],
    ));
    assert_eq!((code, out.trim()), (1, "0"), "the driver still runs: {err}");

    // The copied files are removed afterwards.
    let (code, out, err) = run(&mut sbx(
        "exec",
        name,
        &["jupyter", "--", "ls", "-A", "/tmp/sparkbox-submit"],
    ));
    assert_eq!((code, out.as_str()), (0, ""), "{err}");

    // Files and --conf values are checked before the engine is asked anything.
    let (code, _, err) = run(sbx("submit", name, &["/nonexistent/app.py"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock"));
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("/nonexistent/app.py"), "{err}");
    let (code, _, err) = run(sbx("submit", name, &["--conf", "novalue", &pi])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock"));
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("key=value"), "{err}");
}

#[test]
fn fixed_taken_port_is_refused_before_anything_is_made() {
    if docker("fixed_taken_port_is_refused_before_anything_is_made").is_none() {
        return;
    }
    let name = cluster_name("port");
    let _guard = ClusterGuard::new(&name);
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind");
    let port = listener.local_addr().expect("addr").port().to_string();
    let (code, _, err) = run(sparkbox().args(["up", "-n", &name, "--master-ui-port", &port]));
    assert_eq!(code, 9, "{err}");
    assert!(
        err.contains(&format!("port {port} is taken on 127.0.0.1")),
        "{err}"
    );
    assert!(err.contains("--master-ui-port"), "{err}");
    assert!(container_ids(&name).is_empty());
}
