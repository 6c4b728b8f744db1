//! Real-Docker test of several named clusters side by side, made from the
//! compose examples: two `up`s racing on one cluster (the lock), the
//! examples' shared data directory and per-application defaults, the example
//! notebooks, the history server and a Spark Connect client on the host, an
//! extra Python package under version parity, an `up` interrupted with Ctrl-C
//! that the next `up` finishes, and `ls` over both.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{
    cluster_name, connect_python, container_ids, docker, ensure_default_image, exec_as,
    execute_notebook, http_get, run, sparkbox,
};

/// Copies compose-examples/NAME/sparkbox.toml into a fresh directory, so its
/// relative data directory is made there and not in the repository.
fn example_dir(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("compose-examples")
        .join(name)
        .join("sparkbox.toml");
    std::fs::copy(&source, dir.path().join("sparkbox.toml")).expect("copy the example");
    dir
}

/// `sparkbox --progress plain ARGS` in `dir`, started in the background.
fn spawn_in(dir: &Path, args: &[&str]) -> std::process::Child {
    Command::new(assert_cmd::cargo::cargo_bin("sparkbox"))
        .current_dir(dir)
        .env_remove("SPARKBOX_NAME")
        .env_remove("SPARKBOX_FILE")
        .args(["--progress", "plain"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sparkbox starts")
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const DATA_JOB: &str = r#"
import json
from pyspark.sql import SparkSession
spark = SparkSession.builder.appName("sbx-data").getOrCreate()
sc = spark.sparkContext
df = spark.read.csv("/data/people.csv", header=True, inferSchema=True)
rows = df.count()
executors = sc._jsc.sc().getExecutorMemoryStatus().size() - 1
print(json.dumps({
    "rows": rows,
    "executors": executors,
    "executor_memory": sc.getConf().get("spark.executor.memory"),
    "cores_max": sc.getConf().get("spark.cores.max"),
}))
spark.stop()
"#;

/// Writes through the executors into the shared data directory.
const WRITE_JOB: &str = r#"
from pyspark.sql import SparkSession
spark = SparkSession.builder.appName("sbx-write").getOrCreate()
spark.range(10).repartition(2).write.mode("overwrite").csv("/data/written")
spark.stop()
"#;

/// A host program on Spark Connect: a Python UDF evaluated on the workers.
const CONNECT_CLIENT: &str = r#"
import socket, sys
from pyspark.sql import SparkSession
from pyspark.sql.functions import col, udf
spark = SparkSession.builder.remote(sys.argv[1]).getOrCreate()
double = udf(lambda x: x * 2, "long")
print("sum", spark.range(10).select(double(col("id")).alias("d")).groupBy().sum("d").collect()[0][0])
where = udf(lambda _: socket.gethostname(), "string")
hosts = spark.range(8).repartition(4).select(where(col("id")).alias("h")).distinct().collect()
print("hosts", sorted(r.h for r in hosts))
spark.stop()
"#;

/// Executes a notebook headless in the cluster's Jupyter container and
/// returns what its cells printed.
fn run_notebook(cluster: &str, path: &str) -> String {
    let executed = execute_notebook(&format!("{cluster}-jupyter"), path);
    let mut text = String::new();
    for cell in executed["cells"].as_array().into_iter().flatten() {
        // stdout only: Spark's progress bars go to stderr.
        for output in cell["outputs"].as_array().into_iter().flatten() {
            if output["name"] != "stdout" {
                continue;
            }
            match &output["text"] {
                serde_json::Value::String(t) => text.push_str(t),
                serde_json::Value::Array(parts) => {
                    for p in parts {
                        text.push_str(p.as_str().unwrap_or_default());
                    }
                }
                _ => {}
            }
        }
    }
    text
}

#[test]
fn two_clusters_side_by_side_from_the_examples() {
    let Some(_engine) = docker("two_clusters_side_by_side_from_the_examples") else {
        return;
    };
    ensure_default_image();
    let a = cluster_name("laptop");
    let b = cluster_name("s35");
    // Both clusters are removed by label when the test ends, even on failure.
    let _guard_a = common::ClusterGuard::new(&a);
    let _guard_b = common::ClusterGuard::new(&b);
    let dir_a = example_dir("laptop");
    let dir_b = example_dir("spark35");
    // The spark35 example's image (Spark 3.5 plus its extra package) is built
    // up front, so the interrupt below lands in the cluster's creation and
    // not in a build.
    let built = spawn_in(dir_b.path(), &["build"])
        .wait_with_output()
        .expect("build");
    assert!(built.status.success(), "{}", text(&built));

    // 1. Two `up`s on the same cluster at once: one makes it, the other waits
    //    for the lock and then finds nothing to do.
    let first = spawn_in(dir_a.path(), &["up", "-n", &a]);
    std::thread::sleep(Duration::from_millis(300));
    let second = spawn_in(dir_a.path(), &["up", "-n", &a]);
    let (o1, o2) = (
        first.wait_with_output().expect("first up"),
        second.wait_with_output().expect("second up"),
    );
    assert!(o1.status.success(), "first up failed:\n{}", text(&o1));
    assert!(o2.status.success(), "second up failed:\n{}", text(&o2));
    let (made, waited) = if text(&o1).contains("is ready") {
        (text(&o1), text(&o2))
    } else {
        (text(&o2), text(&o1))
    };
    assert!(made.contains("is ready"), "{made}");
    assert!(
        waited.contains("is changing cluster") && waited.contains("nothing changed"),
        "the second up neither waited nor found the cluster made:\n{waited}"
    );
    let ids_a = container_ids(&a);
    assert_eq!(
        ids_a.len(),
        6,
        "master, 2 workers (the example), jupyter, history, connect: {ids_a:?}"
    );

    // 2. The example's ./data is /data everywhere, and its [apps] defaults
    //    (1 core, 768m executors per application) reach the driver.
    let data = dir_a.path().join("data");
    assert!(data.is_dir(), "up made the example's data directory");
    std::fs::write(
        data.join("people.csv"),
        "name,age\nada,36\nalan,41\ngrace,85\n",
    )
    .expect("write the csv");
    let (code, out, err) = exec_as(
        &format!("{a}-worker-2"),
        "spark",
        &["cat", "/data/people.csv"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("grace,85"), "{out}");
    let (code, out, err) = exec_as(
        &format!("{a}-jupyter"),
        "spark",
        &["python", "-c", DATA_JOB],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let line = out.lines().last().unwrap_or_default();
    let v: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("job output ({e}): {out}\n{err}"));
    assert_eq!(v["rows"], 3, "executors read /data/people.csv: {v}");
    assert_eq!(v["executor_memory"], "768m", "{v}");
    assert_eq!(v["cores_max"], "1", "{v}");
    assert_eq!(
        v["executors"], 1,
        "one core per application means one executor: {v}"
    );

    // 2b. The example notebooks run headless in the Jupyter container against
    //     this cluster, with the kernel's ready-made `spark`, and compute the
    //     right numbers from the shared data directory.
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("compose-examples");
    std::fs::copy(
        examples.join("laptop/data/sales.csv"),
        data.join("sales.csv"),
    )
    .expect("copy sales.csv");
    for nb in ["group-stats.ipynb", "linear-regression.ipynb"] {
        std::fs::copy(examples.join("notebooks").join(nb), data.join(nb)).expect("copy notebook");
    }
    let group = run_notebook(&a, "/data/group-stats.ipynb");
    for line in [
        "east: n=2 mean=6.000 stddev=1.414",
        "north: n=3 mean=12.000 stddev=2.000",
        "south: n=4 mean=23.000 stddev=2.582",
        "west: n=3 mean=110.000 stddev=10.000",
    ] {
        assert!(group.contains(line), "missing {line:?} in:\n{group}");
    }
    let read_on = group
        .lines()
        .find(|l| l.starts_with("read on:"))
        .unwrap_or_else(|| panic!("no read-on line in:\n{group}"));
    assert!(
        read_on.contains(&format!("{a}-worker-")) && !read_on.contains("jupyter"),
        "the executors on the workers read /data: {read_on}"
    );
    let regression = run_notebook(&a, "/data/linear-regression.ipynb");
    assert!(
        regression.contains("coefficients=[3.0, -2.0] intercept=5.00 r2=1.0000"),
        "{regression}"
    );

    // 2c. The history server lists the finished applications; `status`
    //     gives its URL, the Connect URL and the client to install.
    let status_a = {
        let o = spawn_in(dir_a.path(), &["status", "--json", "-n", &a])
            .wait_with_output()
            .expect("status");
        assert!(o.status.success(), "{}", text(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).expect("status JSON")
    };
    let history = status_a["urls"]["history"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let history_port: u16 = history
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no history URL: {status_a}"));
    let started = Instant::now();
    loop {
        let apps = http_get(history_port, "/api/v1/applications", None);
        let body = apps.split("\r\n\r\n").nth(1).unwrap_or_default();
        let listed: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        let finished = listed.as_array().into_iter().flatten().any(|app| {
            app["name"] == "sbx-data"
                && app["attempts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|t| t["completed"] == true)
        });
        if finished {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the history server never listed the finished sbx-data app:\n{apps}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let connect = status_a["urls"]["connect"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(connect.starts_with("sc://localhost:"), "{status_a}");
    let versions = sparkbox::model::versions::default_entry();
    assert_eq!(
        status_a["urls"]["connect_client"]["requirement"],
        format!("pyspark[connect]=={}", versions.spark),
        "{status_a}"
    );

    // 2d. A program on the host uses the Spark Connect server, Python UDF
    //     included (it runs on the workers), and `doctor` approves its client.
    match connect_python() {
        Some(python) => {
            let out = Command::new(&python)
                .args(["-c", CONNECT_CLIENT, &connect])
                .output()
                .expect("the client runs");
            let said = text(&out);
            assert!(out.status.success(), "{said}");
            assert!(said.contains("sum 90"), "{said}");
            let hosts = said
                .lines()
                .find(|l| l.starts_with("hosts "))
                .unwrap_or_else(|| panic!("{said}"));
            assert!(hosts.contains(&format!("{a}-worker-")), "{hosts}");
            let doctor = spawn_in(
                dir_a.path(),
                &[
                    "doctor",
                    "-n",
                    &a,
                    "--python",
                    &python.display().to_string(),
                ],
            )
            .wait_with_output()
            .expect("doctor");
            assert!(
                text(&doctor).contains("ok    spark connect client:"),
                "{}",
                text(&doctor)
            );
        }
        None => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true needs the host's Spark Connect client: run .ci/prepare first");
            }
            eprintln!("SKIPPED the host Spark Connect client check: run .ci/prepare to install it");
        }
    }
    let doctor = spawn_in(
        dir_a.path(),
        &["doctor", "-n", &a, "--python", "/nonexistent/python3"],
    )
    .wait_with_output()
    .expect("doctor");
    assert!(
        text(&doctor).contains("WARN  spark connect client: cannot run /nonexistent/python3"),
        "{}",
        text(&doctor)
    );

    // 2e. The data directory of the example was made by `up`, as this user;
    //     what the executors write there is this user's too — or, when this
    //     user is root, uid 1000's (no service runs as root: bin/as-spark).
    let (code, out, err) = exec_as(
        &format!("{a}-jupyter"),
        "spark",
        &["python", "-c", WRITE_JOB],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    {
        use std::os::unix::fs::MetadataExt;
        let owner = match std::fs::metadata(&data).expect("data").uid() {
            0 => 1000,
            uid => uid,
        };
        for entry in std::fs::read_dir(data.join("written"))
            .expect("written")
            .flatten()
        {
            let meta = entry.metadata().expect("metadata");
            assert_eq!(meta.uid(), owner, "{}", entry.path().display());
        }
    }

    // 3. Ctrl-C during `up` of a second cluster says what to do, and the next
    //    `up` finishes that cluster.
    let interrupted = spawn_in(dir_b.path(), &["up", "-n", &b]);
    let started = Instant::now();
    while container_ids(&b).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "cluster {b} never got a container"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = interrupted.id().to_string();
    let kill = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    let o = interrupted.wait_with_output().expect("interrupted up");
    assert_eq!(o.status.code(), Some(130), "{}", text(&o));
    assert!(
        // The hint is the interrupted command itself, word for word.
        text(&o).contains(&format!(
            "`sparkbox --progress plain up -n {b}` finishes it"
        )),
        "{}",
        text(&o)
    );
    let finish = spawn_in(dir_b.path(), &["up", "-n", &b])
        .wait_with_output()
        .expect("up after the interrupt");
    assert!(finish.status.success(), "{}", text(&finish));
    assert!(text(&finish).contains("is ready"), "{}", text(&finish));

    // 3b. The example's extra package is in every container at the same
    //     version, and a different one in a worker fails version parity.
    for container in [format!("{b}-jupyter"), format!("{b}-worker-2")] {
        let (code, out, err) = exec_as(
            &container,
            "spark",
            &[
                "python",
                "-c",
                "import tabulate; print(tabulate.__version__)",
            ],
        );
        assert_eq!((code, out.trim()), (0, "0.9.0"), "{container}: {err}");
    }
    let tamper = |from: &str, to: &str| {
        let (code, _, err) = exec_as(
            &format!("{b}-worker-1"),
            "root",
            &[
                "sh",
                "-c",
                &format!("sed -i 's/^Version: {from}$/Version: {to}/' /opt/sparkbox/venv/lib/python3*/site-packages/tabulate-*.dist-info/METADATA"),
            ],
        );
        assert_eq!(code, 0, "{err}");
    };
    tamper("0.9.0", "0.8.10");
    let o = spawn_in(dir_b.path(), &["status", "-n", &b])
        .wait_with_output()
        .expect("status");
    assert_eq!(o.status.code(), Some(8), "{}", text(&o));
    assert!(
        text(&o).contains("tabulate") && text(&o).contains("0.8.10 (!)"),
        "{}",
        text(&o)
    );
    tamper("0.8.10", "0.9.0");

    // 4. Both run at once, each with its own network, volume, ports and Spark.
    let (code, out, err) = run(sparkbox().args(["ls", "--json"]));
    assert_eq!(code, 0, "{err}");
    let ls: serde_json::Value = serde_json::from_str(&out).expect("ls JSON");
    let line_of = |name: &str| {
        ls.as_array()
            .and_then(|l| l.iter().find(|c| c["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("{name} missing from ls: {out}"))
    };
    let (la, lb) = (line_of(&a), line_of(&b));
    assert_eq!(la["state"], "running");
    assert_eq!(lb["state"], "running");
    assert_ne!(la["master_ui"], lb["master_ui"], "ports collide: {out}");
    assert_ne!(la["jupyter"], lb["jupyter"], "ports collide: {out}");
    let status = |name: &str, dir: &Path| -> serde_json::Value {
        let o = spawn_in(dir, &["status", "--json", "-n", name])
            .wait_with_output()
            .expect("status");
        assert!(o.status.success(), "{}", text(&o));
        serde_json::from_slice(&o.stdout).expect("status JSON")
    };
    let (sa, sb) = (status(&a, dir_a.path()), status(&b, dir_b.path()));
    assert_eq!(sa["state"], "ready");
    assert_eq!(sb["state"], "ready");
    assert_ne!(sa["network"], sb["network"]);
    assert_ne!(sa["volumes"], sb["volumes"]);
    assert!(
        sb["image"].as_str().is_some_and(|i| i.contains(":3.5.")),
        "the spark35 example runs Spark 3.5: {sb}"
    );
    assert!(
        sa["image"].as_str().is_some_and(|i| !i.contains(":3.5.")),
        "{sa}"
    );

    // 5. Each `down` touches its own cluster only.
    let (code, _, err) = run(sparkbox().args(["down", "-n", &b]));
    assert_eq!(code, 0, "{err}");
    assert!(container_ids(&b).is_empty());
    assert_eq!(container_ids(&a), ids_a, "down of {b} touched {a}");
}
