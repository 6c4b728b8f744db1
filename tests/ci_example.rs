//! The CI example proven: compose-examples/ci/run-tests.sh — the steps of its
//! GitHub Actions workflow without the GitHub-specific parts — brings a
//! 2-worker cluster with Spark Connect up, runs pytest on this machine
//! against it, and tears it down; when a test fails it leaves the
//! diagnostics bundle the workflow uploads.

mod common;

use std::path::Path;
use std::process::Command;

use common::{
    cluster_name, connect_python, container_ids, docker, ensure_default_image, ClusterGuard,
};

/// Copies compose-examples/ci into a fresh directory (what a repository
/// that adopted the example holds).
fn copy_example(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("compose-examples/ci");
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .expect("cp runs");
    assert!(status.success());
}

fn run_steps(
    dir: &Path,
    cluster: &str,
    python: &Path,
    bundle: &Path,
    cache: &Path,
) -> (i32, String) {
    let out = Command::new(dir.join("run-tests.sh"))
        .current_dir(dir)
        .env("IMAGE_CACHE", cache)
        .env("SPARKBOX", assert_cmd::cargo::cargo_bin("sparkbox"))
        .env("PYTHON", python)
        .env("BUNDLE", bundle)
        .env("SPARKBOX_NAME", cluster)
        .env_remove("SPARKBOX_FILE")
        .output()
        .expect("run-tests.sh runs");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Brings the image back from the cache when dropped, if a failed step
/// left the engine without it (the next test binary then builds nothing).
struct ImageBack {
    tag: String,
    cache: std::path::PathBuf,
}

impl Drop for ImageBack {
    fn drop(&mut self) {
        let present = Command::new("docker")
            .args(["image", "inspect", &self.tag])
            .output()
            .is_ok_and(|o| o.status.success());
        if present {
            return;
        }
        if let Ok(entries) = std::fs::read_dir(&self.cache) {
            for file in entries.flatten() {
                let _ = common::sparkbox()
                    .args(["image", "load"])
                    .arg(file.path())
                    .output();
            }
        }
    }
}

#[test]
fn the_ci_example_runs_pytest_against_a_cluster_and_bundles_failures() {
    let Some(_engine) = docker("the_ci_example_runs_pytest_against_a_cluster_and_bundles_failures")
    else {
        return;
    };
    let Some(python) = connect_python() else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true needs pytest and the Spark Connect client: run .ci/prepare first");
        }
        eprintln!("SKIPPED the CI example: run .ci/prepare to install pytest and the Spark Connect client");
        return;
    };
    ensure_default_image();
    let name = cluster_name("ci");
    let _guard = ClusterGuard::new(&name);
    let work = tempfile::tempdir().expect("tempdir");
    copy_example(work.path());
    let bundle = work.path().join("bundle");
    let cache = work.path().join("image-cache");
    let tag = {
        let out = common::sparkbox()
            .args(["image", "tag"])
            .env("SPARKBOX_FILE", work.path().join("sparkbox.toml"))
            .output()
            .expect("image tag");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let _back = ImageBack {
        tag: tag.clone(),
        cache: cache.clone(),
    };

    // The example as it is: every test passes and the cluster is gone after;
    // the image (present) goes into the cache.
    let (code, said) = run_steps(work.path(), &name, &python, &bundle, &cache);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("3 passed"), "{said}");
    assert!(
        container_ids(&name).is_empty(),
        "run-tests.sh left containers: {said}"
    );
    assert!(!bundle.exists(), "a bundle without a failure");
    let cached: Vec<_> = std::fs::read_dir(&cache)
        .expect("the cache directory")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}: {said}");

    // A fresh runner: the engine has no image, the cache has it. The next
    // run loads it and builds nothing.
    let status = Command::new("docker")
        .args(["image", "rm", &tag])
        .status()
        .expect("docker image rm");
    assert!(status.success(), "could not remove {tag}");

    // A failing test: the script fails, leaves the bundle, still tears down.
    std::fs::write(
        work.path().join("tests/test_fails.py"),
        "def test_counts_wrong(spark):\n    assert spark.range(3).count() == 4\n",
    )
    .expect("write a failing test");
    let (code, said) = run_steps(work.path(), &name, &python, &bundle, &cache);
    assert_ne!(code, 0, "{said}");
    assert!(
        said.contains(&format!("loading {tag} from the image cache")),
        "{said}"
    );
    assert!(!said.contains(" step "), "a build step ran: {said}");
    assert!(!said.contains("building "), "it built: {said}");
    assert!(said.contains("1 failed, 3 passed"), "{said}");
    assert!(
        container_ids(&name).is_empty(),
        "run-tests.sh left containers: {said}"
    );
    let master_log = bundle.join(format!("{name}-master.log"));
    let log = std::fs::read_to_string(&master_log)
        .unwrap_or_else(|e| panic!("{} ({e}): {said}", master_log.display()));
    assert!(log.contains("Registering worker"), "{log}");
    assert!(bundle.join("status.json").is_file());
    assert!(bundle.join(format!("{name}-connect.log")).is_file());
}
