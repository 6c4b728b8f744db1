//! The engine's disk full during a build — on a lab engine of the test's own
//! whose data root is a small tmpfs (never the machine's daemon or disk):
//! `sparkbox build` fails with one clear error (exit code 6, naming the full
//! disk and what frees space) and leaves nothing half-made — no image under
//! the tag, no untagged layer, no build container — and the base image it
//! had is still there and runs. (The data directory full while a job writes
//! to /data is tests/faults.rs, on its cluster.)

mod common;

use std::path::Path;
use std::process::Command;

use common::lab::small_lab_engine;
use common::{run, sparkbox};
use sparkbox::model::recipe::DEFAULT_BASE_IMAGE;

const TEST: &str = "engine_disk_full_during_a_build";

/// `docker -H host ARGS…`: (success, stdout, stderr).
fn docker_at(host: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("docker")
        .arg("-H")
        .arg(host)
        .args(args)
        .output()
        .expect("docker runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes zeros into `file` until the filesystem under it is full.
fn fill(file: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(file).expect("the filler");
    let chunk = vec![0u8; 1 << 20];
    while f.write_all(&chunk).is_ok() {}
    // The last bytes a partial chunk left.
    while f.write_all(&[0u8; 512]).is_ok() {}
    let _ = f.flush();
}

#[test]
fn engine_disk_full_during_a_build() {
    if common::docker(TEST).is_none() {
        return;
    }
    // The base image comes from the machine's engine (made offline there).
    common::ensure_default_image();
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let archive = tmp.path().join("base.tar");
    common::swarm::save_image(DEFAULT_BASE_IMAGE, &archive).unwrap_or_else(|e| panic!("{e}"));
    let Some(lab) = small_lab_engine(TEST, 640) else {
        return;
    };
    let host = lab.host();
    let archive_path = archive.to_string_lossy().into_owned();
    let (ok, _, err) = docker_at(&host, &["load", "-i", &archive_path]);
    assert!(ok, "load the base into the lab engine: {err}");
    let _ = std::fs::remove_file(&archive);
    let (_, before, _) = docker_at(&host, &["images", "-a", "-q", "--no-trunc"]);

    fill(&lab.data_root().join("filler"));
    let (code, out, err) = run(sparkbox().env("DOCKER_HOST", &host).arg("build"));
    assert_eq!(code, 6, "build on a full disk:\n{out}\n{err}");
    assert!(
        err.contains("no space left on the Docker engine's disk")
            && err.contains("sparkbox image prune")
            && err.contains("run the command again"),
        "{err}"
    );
    eprintln!("the build on a full disk said: {}", err.trim_end());
    let error_lines = err.lines().filter(|l| l.starts_with("error:")).count();
    assert_eq!(error_lines, 1, "one error, said once:\n{err}");

    // Nothing half-made: the images are the ones before, no container.
    let (_, after, _) = docker_at(&host, &["images", "-a", "-q", "--no-trunc"]);
    assert_eq!(after, before, "images left by the failed build");
    let (_, containers, _) = docker_at(&host, &["ps", "-a", "-q"]);
    assert_eq!(containers.trim(), "", "containers left by the failed build");
    let (_, tag, _) = run(sparkbox().args(["image", "tag"]));
    let (ok, _, _) = docker_at(&host, &["image", "inspect", tag.trim()]);
    assert!(
        !ok,
        "the image {} exists after the failed build",
        tag.trim()
    );

    // With the space back, the engine and its base are as they were.
    std::fs::remove_file(lab.data_root().join("filler")).expect("the filler goes");
    let (ok, out, err) = docker_at(
        &host,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            DEFAULT_BASE_IMAGE,
            "echo",
            "still-here",
        ],
    );
    assert!(ok && out.contains("still-here"), "{out}\n{err}");
}
