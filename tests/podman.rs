//! The cluster on Podman — Debian's Podman 4.3 and its Docker-compatible
//! service, started by the test itself in a network namespace, storage and
//! configuration of its own (tests/common/podman.rs), never the host's
//! engine or packages: the image loaded with `sparkbox image load`, `doctor`
//! naming Podman, `up` ready with every worker registered and the versions
//! measured alike, a job through `exec`, the conmon processes Podman keeps
//! after execs bounded, `scale`, `stop`/`start`, the image saved back out
//! and loaded again, and `down --volumes` leaving nothing. (The image is built by Docker and saved: a build inside
//! the namespace would need the package mirrors, which it must not reach.)

mod common;

use std::path::Path;

use common::podman::{podman_lab, PodmanLab};

const TEST: &str = "a_cluster_on_podman";

const JOB: &str = "from pyspark.sql import SparkSession\n\
spark = SparkSession.builder.appName('sbx-podman').getOrCreate()\n\
print('sum', spark.sparkContext.parallelize(range(100), 4).sum(), flush=True)\n\
spark.stop()\n";

/// sparkbox in the lab's namespace, against its socket.
fn sbx(lab: &PodmanLab, dir: &Path, args: &[&str]) -> (i32, String, String) {
    let bin = assert_cmd::cargo::cargo_bin("sparkbox");
    let out = lab
        .command(&bin.to_string_lossy())
        .current_dir(dir)
        .args(["--progress", "plain"])
        .args(args)
        .output()
        .expect("sparkbox runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_cluster_on_podman() {
    if common::docker(TEST).is_none() {
        return;
    }
    common::ensure_default_image();
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let archive = tmp.path().join("image.tar");
    let (code, out, err) = common::run(common::sparkbox().args(["image", "save"]).arg(&archive));
    assert_eq!(code, 0, "image save from Docker:\n{out}\n{err}");
    let Some(lab) = podman_lab(TEST) else {
        return;
    };
    let work = tmp.path();
    let name = common::cluster_name("podman");
    let archive = archive.to_string_lossy().into_owned();
    let (code, out, err) = sbx(&lab, work, &["image", "load", &archive]);
    assert_eq!(code, 0, "image load on Podman:\n{out}\n{err}");
    let _ = std::fs::remove_file(&archive);

    let (code, out, err) = sbx(&lab, work, &["doctor"]);
    assert!(out.contains("podman: engine 4."), "{code}\n{out}\n{err}");

    let (code, out, err) = sbx(&lab, work, &["up", "--workers", "2", "-n", &name]);
    assert_eq!(code, 0, "up on Podman:\n{out}\n{err}\n{}", lab.log_tail());
    assert!(out.contains("is ready"), "{out}");
    let (code, out, err) = sbx(&lab, work, &["status", "--json", "-n", &name]);
    assert_eq!(code, 0, "{out}\n{err}");
    let status: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
    assert_eq!(status["state"], "ready", "{status}");
    let containers = status["containers"].as_array().cloned().unwrap_or_default();
    assert_eq!(containers.len(), 4, "{status}");
    for c in &containers {
        assert_eq!(c["versions"], "ok", "{c}");
    }

    let before = lab.conmons();
    for _ in 0..5 {
        let (code, out, err) = sbx(
            &lab,
            work,
            &[
                "exec", "-T", "-n", &name, "jupyter", "--", "python", "-c", JOB,
            ],
        );
        assert!(
            code == 0 && out.contains("sum 4950"),
            "a job on Podman:\n{out}\n{err}"
        );
    }
    // Podman keeps an exec's two conmon processes for exit_command_delay
    // seconds (set to 10 here, as `doctor` advises): bounded per exec, and
    // gone after it — only the four containers' own are left.
    let after = lab.conmons();
    eprintln!("conmon processes: {before} before five jobs, {after} after");
    assert!(
        after <= before + 2 * 5,
        "more than two conmon processes per exec: {before} before, {after} after"
    );
    let waited = std::time::Instant::now();
    loop {
        let now = lab.conmons();
        if now <= 4 {
            eprintln!("conmon processes: {now} after {:.0?}", waited.elapsed());
            break;
        }
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(90),
            "exec conmon processes still there after 90 s: {now}"
        );
        std::thread::sleep(std::time::Duration::from_secs(2));
    }

    let (code, out, err) = sbx(&lab, work, &["scale", "--workers", "1", "-n", &name]);
    assert_eq!(code, 0, "scale on Podman:\n{out}\n{err}");
    let (code, out, err) = sbx(&lab, work, &["stop", "-n", &name]);
    assert_eq!(code, 0, "stop on Podman:\n{out}\n{err}");
    let (code, out, err) = sbx(&lab, work, &["start", "-n", &name]);
    assert_eq!(code, 0, "start on Podman:\n{out}\n{err}");
    let (code, out, err) = sbx(&lab, work, &["status", "-n", &name]);
    assert_eq!(code, 0, "not ready after start on Podman:\n{out}\n{err}");

    // The image back out of Podman, as `image load` takes it.
    let saved = tmp.path().join("from-podman.tar");
    let saved_path = saved.to_string_lossy().into_owned();
    let (code, out, err) = sbx(&lab, work, &["image", "save", &saved_path]);
    assert_eq!(code, 0, "image save on Podman:\n{out}\n{err}");
    let (code, out, err) = sbx(&lab, work, &["image", "load", &saved_path]);
    assert_eq!(code, 0, "loading what Podman saved:\n{out}\n{err}");
    let _ = std::fs::remove_file(&saved);

    let (code, out, err) = sbx(&lab, work, &["down", "--volumes", "-n", &name]);
    assert_eq!(code, 0, "down on Podman:\n{out}\n{err}");
    let left = std::process::Command::new("docker")
        .args(["-H", &lab.host(), "ps", "-aq"])
        .output()
        .expect("docker ps");
    assert_eq!(String::from_utf8_lossy(&left.stdout).trim(), "");
}
