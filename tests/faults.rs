//! The fault suite on a running cluster (real Docker), one cluster for all
//! of it, each fault with the outcome it must have:
//!
//! - a worker killed mid-job: the job finishes with the right answer on the
//!   other worker; `up` starts that worker again and touches nothing else;
//! - the master killed mid-job: the running application keeps its executors
//!   and finishes (standalone mode without recovery: it is not told, and is
//!   not listed by the new master); `up` starts the master again, the workers
//!   register again and the next job runs;
//! - a data directory owned by root: no service runs as root anyway (each
//!   as `spark`, uid 1000, with DAC_OVERRIDE alone), executors and the
//!   driver write to it, and root uses what they wrote;
//! - the data directory's disk full while the executors write to it (a
//!   48 MiB tmpfs): the job fails with "No space left on device", the
//!   cluster stays ready, the files there before are intact, and once space
//!   is freed the next job runs;
//! - the Jupyter server killed: the notebooks volume and the data directory
//!   keep everything; `up` starts Jupyter again alone;
//! - an executor's Python worker taking more memory than the worker's
//!   container allows: the kernel stops it, the task is retried and the job
//!   fails with Spark's own message; the cluster stays up and the next job
//!   runs.
//!
//! (The engine restarted is tests/restart.rs; the engine's disk full during
//! a build tests/disk_full.rs; two `up`s at once and Ctrl-C during `up` are
//! tests/clusters.rs, tests/interrupt.rs and tests/orchestration.rs.)

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{block_on, cluster_name, docker, ensure_default_image, run, sparkbox, ClusterGuard};
use sparkbox::engine::Engine;

/// 40 one-second tasks on both workers' cores (the default share is one
/// worker's half): about 20 s.
const SLOW_JOB: &str = "import time\n\
from pyspark.sql import SparkSession\n\
spark = SparkSession.builder.appName('sbx-fault').config('spark.cores.max', '2').getOrCreate()\n\
print('sum', spark.sparkContext.parallelize(range(40), 40).map(lambda x: time.sleep(1) or x).sum(), flush=True)\n\
spark.stop()\n";

/// A quick job: the cluster runs work.
const QUICK_JOB: &str = "from pyspark.sql import SparkSession\n\
spark = SparkSession.builder.appName('sbx-after').getOrCreate()\n\
print('sum', spark.sparkContext.parallelize(range(100), 4).sum(), flush=True)\n\
spark.stop()\n";

/// Each task's Python worker asks for 4 GiB, more than a 1 GiB worker's
/// container allows.
const GREEDY_JOB: &str = "from pyspark.sql import SparkSession\n\
spark = SparkSession.builder.appName('sbx-greedy').config('spark.task.maxFailures', '2').getOrCreate()\n\
def eat(x):\n    b = bytearray(4 << 30)\n    b[::4096] = b'x' * len(b[::4096])\n    return len(b)\n\
print('sum', spark.sparkContext.parallelize(range(2), 2).map(eat).sum(), flush=True)\n";

/// Executors and the driver write to /data: a directory owned by root.
const WRITING_JOB: &str = "from pyspark.sql import SparkSession\n\
spark = SparkSession.builder.appName('sbx-write').getOrCreate()\n\
spark.range(100).repartition(4).write.mode('overwrite').csv('/data/by-executors')\n\
open('/data/by-driver.txt', 'w').write('driver')\n\
print('written', flush=True)\n\
spark.stop()\n";

/// The data directory is root's (the tests run as root, and made it): no
/// service process runs as root anyway. Each runs as the image's `spark`
/// (uid 1000) holding DAC_OVERRIDE alone, so executors and notebooks write
/// to /data, and what they write there is root's to use on the host.
fn root_owned_data(name: &str, data: &std::path::Path) {
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(data).expect("data dir").uid(), 0);
    const DAC_OVERRIDE: u64 = 1 << 1;
    let engine = block_on(sparkbox::engine::docker::DockerEngine::connect()).expect("engine");
    let containers = block_on(engine.containers(&[(sparkbox::model::labels::CLUSTER, name)]))
        .expect("containers");
    assert!(containers.len() >= 4, "{containers:?}");
    for c in &containers {
        let processes = common::processes(&c.name);
        let services: Vec<_> = processes
            .iter()
            .filter(|p| p.pid != 1 && !["sh", "awk"].contains(&p.name.as_str()))
            .collect();
        assert!(!services.is_empty(), "{}: {processes:?}", c.name);
        for p in processes.iter().filter(|p| p.pid != 1) {
            assert_eq!(p.uid, 1000, "{}: {p:?}", c.name);
        }
        for p in &services {
            assert_eq!(p.caps, DAC_OVERRIDE, "{}: {p:?}", c.name);
        }
    }
    let (ok, out, err) = finish(job(name, WRITING_JOB));
    assert!(
        ok && out.contains("written"),
        "writing to /data:\n{out}\n{err}"
    );
    let driver = data.join("by-driver.txt");
    assert_eq!(
        std::fs::metadata(&driver).expect("by-driver.txt").uid(),
        1000
    );
    assert_eq!(
        std::fs::read_to_string(&driver).unwrap_or_default(),
        "driver"
    );
    let parts: Vec<_> = std::fs::read_dir(data.join("by-executors"))
        .expect("the executors' output")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("part-"))
        .collect();
    assert!(!parts.is_empty(), "no part files");
    for part in &parts {
        assert_eq!(part.metadata().expect("a part").uid(), 1000);
    }
    std::fs::remove_dir_all(data.join("by-executors")).expect("root removes them");
    std::fs::remove_file(driver).expect("root removes it");
}

/// The data directory's disk: a size-limited tmpfs of the test's own.
const DATA_DISK_MB: u32 = 48;

/// A tmpfs of `megabytes` mounted on a directory (root's, mode 0755),
/// unmounted on drop.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &std::path::Path, megabytes: u32) -> SmallDisk {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={megabytes}m,mode=0755"))
            .arg("sbx-data-disk")
            .arg(dir)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "cannot mount a tmpfs on {}",
            dir.display()
        );
        SmallDisk(dir.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Far more than the data disk holds, written by the executors.
const FILLING_JOB: &str = "from pyspark.sql import SparkSession\n\
spark = SparkSession.builder.appName('sbx-fill').config('spark.task.maxFailures', '2').getOrCreate()\n\
spark.range(0, 8000000, 1, 4).selectExpr('uuid() as u', 'id').write.mode('overwrite').csv('/data/big')\n\
print('written', flush=True)\n";

/// The data directory's disk full while a job writes to /data: the job
/// fails with the system's own words, the cluster stays ready, what was
/// there before is intact, and once space is freed the next job runs.
fn data_disk_full(name: &str, data: &std::path::Path) {
    std::fs::write(data.join("before.txt"), "before").expect("a file before");
    let (ok, out, err) = finish(job(name, FILLING_JOB));
    assert!(!ok, "filling the data disk succeeded:\n{out}\n{err}");
    assert!(
        err.contains("No space left on device"),
        "the failed job does not say the disk is full:\n{}",
        err.chars()
            .rev()
            .take(3000)
            .collect::<String>()
            .chars()
            .rev()
            .collect::<String>()
    );
    if let Some(line) = err.lines().find(|l| l.contains("No space left on device")) {
        eprintln!(
            "the data disk full: {}",
            line.chars().take(300).collect::<String>()
        );
    }
    let (code, out, err) = run(sparkbox().args(["status", "-n", name]));
    assert_eq!(code, 0, "not ready with its data disk full:\n{out}\n{err}");
    assert_eq!(
        std::fs::read_to_string(data.join("before.txt")).unwrap_or_default(),
        "before"
    );
    std::fs::remove_dir_all(data.join("big")).expect("root frees the space");
    std::fs::remove_file(data.join("before.txt")).expect("and removes its file");
    let (ok, out, err) = finish(job(name, QUICK_JOB));
    assert!(
        ok && out.contains("sum 4950"),
        "a job after the disk was freed:\n{out}\n{err}"
    );
}

fn job(name: &str, code: &str) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("sparkbox"))
        .args([
            "exec", "-T", "-n", name, "jupyter", "--", "python", "-c", code,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the job starts")
}

fn finish(child: Child) -> (bool, String, String) {
    let out = child.wait_with_output().expect("the job ends");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Container name → (ID, start time).
fn started(
    engine: &sparkbox::engine::docker::DockerEngine,
    name: &str,
) -> BTreeMap<String, (String, String)> {
    block_on(async {
        let list = engine
            .containers(&[(sparkbox::model::labels::CLUSTER, name)])
            .await
            .expect("containers");
        let mut out = BTreeMap::new();
        for c in list {
            let inspect = engine.inspect_container(&c.name).await.expect("inspect");
            let at = inspect["State"]["StartedAt"]
                .as_str()
                .unwrap_or("")
                .to_string();
            out.insert(c.name.clone(), (c.id.clone(), at));
        }
        out
    })
}

fn kill(engine: &sparkbox::engine::docker::DockerEngine, container: &str) {
    block_on(engine.client().kill_container(
        container,
        None::<bollard::query_parameters::KillContainerOptions>,
    ))
    .expect("kill");
}

/// Waits until the master lists `app_name` as running with cores.
fn wait_running(master: &str, app_name: &str) {
    let t = Instant::now();
    loop {
        let (_, out, _) = common::exec_as(master, "spark", &["/opt/sparkbox/bin/probe", "master"]);
        let state: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_default();
        let running = state["activeapps"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["name"] == app_name && a["cores"].as_i64().unwrap_or(0) >= 2);
        if running {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "{app_name} never ran: {state}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// `up` heals the cluster: exit 0, and only `victim` was started again.
fn up_heals_only(
    engine: &sparkbox::engine::docker::DockerEngine,
    name: &str,
    victim: &str,
    dir: &std::path::Path,
) {
    let before = started(engine, name);
    let t = Instant::now();
    let (code, out, err) =
        run(sparkbox()
            .current_dir(dir)
            .args(["up", "-n", name, "--timeout", "240"]));
    eprintln!("up healed {victim} in {:.1?}", t.elapsed());
    assert_eq!(code, 0, "up after {victim} was killed:\n{out}\n{err}");
    assert!(
        err.contains(&format!("start container {victim} (stopped)")),
        "{err}"
    );
    let after = started(engine, name);
    for (c, (id, at)) in &before {
        assert_eq!(&after[c].0, id, "{c} was made anew");
        if c != victim {
            assert_eq!(&after[c].1, at, "{c} was restarted too");
        }
    }
    assert_ne!(
        after[victim].1, before[victim].1,
        "{victim} was not started again"
    );
}

#[test]
fn faults_on_a_running_cluster_have_their_outcomes() {
    let Some(engine) = docker("faults_on_a_running_cluster_have_their_outcomes") else {
        return;
    };
    ensure_default_image();
    let name = cluster_name("faults");
    // Dropped in reverse: the cluster goes, then the data disk, then its
    // directory.
    let work = tempfile::tempdir().expect("tempdir");
    let data = work.path().join("data");
    std::fs::create_dir(&data).expect("data dir");
    let _disk = SmallDisk::mount(&data, DATA_DISK_MB);
    let _guard = ClusterGuard::new(&name);
    let up = ["up", "--workers", "2", "--timeout", "240", "-n"];
    let (code, out, err) = run(sparkbox().current_dir(work.path()).args(up).arg(&name));
    assert_eq!(code, 0, "up:\n{out}\n{err}");
    let master = format!("{name}-master");
    let jupyter = format!("{name}-jupyter");
    root_owned_data(&name, &data);
    data_disk_full(&name, &data);

    // A worker killed mid-job.
    let running = job(&name, SLOW_JOB);
    wait_running(&master, "sbx-fault");
    std::thread::sleep(Duration::from_secs(4));
    kill(&engine, &format!("{name}-worker-1"));
    let (ok, out, err) = finish(running);
    assert!(
        ok && out.contains("sum 780"),
        "the job with a worker killed:\n{out}\n{err}"
    );
    up_heals_only(&engine, &name, &format!("{name}-worker-1"), work.path());

    // The master killed mid-job: the application keeps its executors.
    let running = job(&name, SLOW_JOB);
    wait_running(&master, "sbx-fault");
    std::thread::sleep(Duration::from_secs(4));
    kill(&engine, &master);
    let (ok, out, err) = finish(running);
    assert!(
        ok && out.contains("sum 780"),
        "the job with the master killed:\n{out}\n{err}"
    );
    for line in err
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("aster"))
        .take(3)
    {
        eprintln!("the application with its master killed: {line}");
    }
    up_heals_only(&engine, &name, &master, work.path());
    let (ok, out, err) = finish(job(&name, QUICK_JOB));
    assert!(
        ok && out.contains("sum 4950"),
        "a job after the master's return:\n{out}\n{err}"
    );

    // The Jupyter server killed: notebooks and data stay.
    let (code, _, err) = run(sparkbox().args([
        "exec",
        "-T",
        "-n",
        &name,
        "jupyter",
        "--",
        "sh",
        "-c",
        "echo '{\"cells\": []}' > /home/spark/notebooks/kept.ipynb && echo kept > /data/kept.txt",
    ]));
    assert_eq!(code, 0, "{err}");
    kill(&engine, &jupyter);
    up_heals_only(&engine, &name, &jupyter, work.path());
    let (code, out, err) = common::exec_as(
        &jupyter,
        "spark",
        &["cat", "/home/spark/notebooks/kept.ipynb", "/data/kept.txt"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("cells") && out.contains("kept"), "{out}");
    assert_eq!(
        std::fs::read_to_string(work.path().join("data/kept.txt")).unwrap_or_default(),
        "kept\n"
    );

    // More memory than a worker's container allows.
    let (ok, out, err) = finish(job(&name, GREEDY_JOB));
    assert!(!ok, "the greedy job succeeded:\n{out}\n{err}");
    if let Some(line) = err.lines().find(|l| l.contains("Job aborted")) {
        eprintln!(
            "the greedy job: {}",
            line.chars().take(400).collect::<String>()
        );
    }
    assert!(
        err.contains("Job aborted due to stage failure")
            && (err.contains("crashed")
                || err.contains("exited unexpectedly")
                || err.contains("ExecutorLostFailure")
                || err.contains("MemoryError")),
        "not Spark's own message:\n{err}"
    );
    let (code, out, err) = run(sparkbox().args(["status", "-n", &name]));
    assert_eq!(
        code, 0,
        "the cluster is not ready after the greedy job:\n{out}\n{err}"
    );
    let (ok, out, err) = finish(job(&name, QUICK_JOB));
    assert!(
        ok && out.contains("sum 4950"),
        "a job after the greedy one:\n{out}\n{err}"
    );
}
