//! Real-Docker tests of the diagnostics bundle (`logs --bundle`,
//! `up --bundle-on-failure`) and of `up --json`. Each cluster has one
//! worker (the CI machine has 2 cores), and the two clusters run one after
//! the other.

mod common;

use std::path::Path;
use std::sync::Mutex;

use bollard::models::{ContainerConfig, ContainerCreateBody};
use bollard::query_parameters::{
    CommitContainerOptionsBuilder, CreateContainerOptionsBuilder,
    DownloadFromContainerOptionsBuilder,
};
use futures_util::StreamExt;
use serde_json::Value;

use common::{block_on, cluster_name, docker, ensure_default_image, run, sparkbox, ClusterGuard};
use sparkbox::engine::{split_reference, DockerEngine, Engine};

/// One cluster of this binary at a time.
static ONE_CLUSTER: Mutex<()> = Mutex::new(());

/// The extra package that gives the broken image its own tag (never installed:
/// the image is made under that tag, so `up` finds it present and builds nothing).
const BROKEN_PACKAGE: &str = "sbx-broken-image==0";

/// The words the broken worker role prints before it exits 3.
const BROKEN_WORDS: &str = "sparkbox-test: broken worker";

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{} is missing: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {text}", path.display()))
}

/// The tag `sparkbox image tag` prints for these extra arguments.
fn image_tag(extra: &[&str]) -> String {
    let (code, out, err) = run(sparkbox().args(["image", "tag"]).args(extra));
    assert_eq!(code, 0, "{err}");
    out.split_whitespace()
        .next()
        .unwrap_or_else(|| panic!("no tag in {out:?}"))
        .to_string()
}

/// Removes one image tag when dropped (the broken image; nothing else).
struct ImageGuard(String);

impl Drop for ImageGuard {
    fn drop(&mut self) {
        let tag = self.0.clone();
        block_on(async move {
            if let Ok(engine) = DockerEngine::connect().await {
                let _ = engine.remove_image(&tag).await;
            }
        });
    }
}

/// Removes one container by name when dropped.
struct ContainerGuard(String);

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let name = self.0.clone();
        block_on(async move {
            if let Ok(engine) = DockerEngine::connect().await {
                let _ = engine.remove_container(&name).await;
            }
        });
    }
}

/// The entrypoint with a worker role that says it is broken and exits 3.
fn break_worker_role(entrypoint: &str) -> String {
    let broken = entrypoint.replacen(
        "\nworker)\n",
        &format!("\nworker)\n    echo \"{BROKEN_WORDS}\" >&2\n    exit 3\n"),
        1,
    );
    assert_ne!(broken, entrypoint, "no worker) branch in the entrypoint");
    broken
}

/// Makes `tag`: the image `from` with its worker role broken — a container
/// is created (never started) from it, its entrypoint downloaded, changed,
/// uploaded, and the container committed, all through the Engine API.
fn make_broken_image(engine: &DockerEngine, from: &str, tag: &str) {
    const DIR: &str = "/opt/sparkbox/bin";
    let docker = engine.client();
    let builder = format!("sbxt-{}-broken-image", std::process::id());
    let _builder = ContainerGuard(builder.clone());
    block_on(async {
        let options = CreateContainerOptionsBuilder::new().name(&builder).build();
        let body = ContainerCreateBody {
            image: Some(from.to_string()),
            ..Default::default()
        };
        docker
            .create_container(Some(options), body)
            .await
            .expect("a container from the default image");
        let options = DownloadFromContainerOptionsBuilder::new()
            .path(&format!("{DIR}/entrypoint"))
            .build();
        let mut archive = Vec::new();
        let mut stream = docker.download_from_container(&builder, Some(options));
        while let Some(chunk) = stream.next().await {
            archive.extend_from_slice(&chunk.expect("the entrypoint downloads"));
        }
        let mut tar_in = tar::Archive::new(archive.as_slice());
        let mut entry = tar_in
            .entries()
            .expect("a tar archive")
            .next()
            .expect("one entry")
            .expect("a readable entry");
        let mut text = String::new();
        std::io::Read::read_to_string(&mut entry, &mut text).expect("the entrypoint is text");
        let broken = break_worker_role(&text);
        let mut header = entry.header().clone();
        header.set_size(broken.len() as u64);
        header.set_cksum();
        let mut tar_out = tar::Builder::new(Vec::new());
        tar_out
            .append(&header, broken.as_bytes())
            .expect("the tar entry");
        let tar_bytes = tar_out.into_inner().expect("the tar archive");
        engine
            .upload_tar(&builder, DIR, tar_bytes)
            .await
            .expect("the broken entrypoint uploads");
        let (repo, version) = split_reference(tag);
        let options = CommitContainerOptionsBuilder::new()
            .container(&builder)
            .repo(repo)
            .tag(version)
            .pause(false)
            .comment("sparkbox test: a worker role that exits 3")
            .build();
        // An empty config: the engine keeps the container's (the image's
        // entrypoint, user, environment and version labels).
        docker
            .commit_container(options, ContainerConfig::default())
            .await
            .expect("the commit");
        let image = engine
            .image(tag)
            .await
            .expect("inspect")
            .expect("the image exists");
        assert!(
            image.labels.contains_key(sparkbox::model::labels::VERSIONS),
            "the committed image lost the version labels: {:?}",
            image.labels
        );
    });
}

#[test]
fn a_directory_that_is_not_a_bundle_is_refused_before_anything() {
    let work = tempfile::tempdir().expect("tempdir");
    let file = work.path().join("notes.txt");
    std::fs::write(&file, "mine").expect("write");
    // An unreachable engine proves the directory is checked first.
    for args in [
        vec!["logs", "-n", "sbxt-none", "--bundle"],
        vec!["up", "-n", "sbxt-none", "--bundle-on-failure"],
    ] {
        for target in [&file, &work.path().to_path_buf()] {
            let (code, out, err) = run(sparkbox()
                .current_dir(work.path())
                .env("DOCKER_HOST", "tcp://127.0.0.1:1")
                .args(&args)
                .arg(target));
            assert_eq!(code, 4, "{args:?} {}: {out}\n{err}", target.display());
            assert!(err.contains("nothing was written"), "{err}");
            assert!(out.is_empty(), "{out}");
        }
    }
    assert_eq!(std::fs::read_to_string(&file).ok().as_deref(), Some("mine"));
    let entries = std::fs::read_dir(work.path()).expect("list").count();
    assert_eq!(entries, 1, "something was written next to notes.txt");
    // --json is for a real `up`, not a dry run.
    let (code, _, _) = run(sparkbox().args(["up", "--json", "--dry-run"]));
    assert_eq!(code, 2);
}

#[test]
fn a_failed_up_leaves_a_bundle_with_the_failing_log() {
    let Some(engine) = docker("a_failed_up_leaves_a_bundle_with_the_failing_log") else {
        return;
    };
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
    ensure_default_image();
    let default_tag = image_tag(&[]);
    let broken_tag = image_tag(&["--python-package", BROKEN_PACKAGE]);
    assert_ne!(default_tag, broken_tag);
    // Dropped after the cluster (declared first): its containers use the image.
    let _image = ImageGuard(broken_tag.clone());
    make_broken_image(&engine, &default_tag, &broken_tag);
    let (_, out, _) = run(sparkbox().args(["image", "tag", "--python-package", BROKEN_PACKAGE]));
    assert!(out.contains("present"), "{out}");

    let name = cluster_name("broken");
    let _guard = ClusterGuard::new(&name);
    let work = tempfile::tempdir().expect("tempdir");
    let bundle = work.path().join("bundle");
    let (code, out, err) = run(sparkbox()
        .current_dir(work.path())
        .args(["up", "--python-package", BROKEN_PACKAGE, "-n", &name])
        .args(["--workers", "1", "--timeout", "90", "--bundle-on-failure"])
        .arg(&bundle));
    // 7: a container exited while starting.
    assert_eq!(code, 7, "up of the broken image:\n{out}\n{err}");
    assert!(out.is_empty(), "{out}");
    assert!(!err.contains("building"), "up built an image: {err}");
    assert!(err.contains(&bundle.display().to_string()), "{err}");
    assert!(err.contains(&format!("{name}-worker-1 stopped")), "{err}");

    let worker = format!("{name}-worker-1");
    let log =
        std::fs::read_to_string(bundle.join(format!("{worker}.log"))).expect("the worker's log");
    assert!(log.contains(BROKEN_WORDS), "{log}");
    // Each line carries the engine's timestamp.
    assert!(log.lines().all(|l| l.starts_with("20")), "{log}");
    let inspect = read_json(&bundle.join(format!("{worker}.inspect.json")));
    assert_eq!(inspect["Name"], format!("/{worker}"));
    assert_eq!(inspect["State"]["ExitCode"], 3, "{inspect}");
    assert_eq!(inspect["Config"]["Image"], broken_tag.as_str());
    let status = read_json(&bundle.join("status.json"));
    assert_eq!(status["cluster"], name.as_str());
    assert_eq!(status["state"], "degraded", "{status}");
    let readme = std::fs::read_to_string(bundle.join("README.txt")).expect("README.txt");
    assert!(
        readme.starts_with("sparkbox diagnostics bundle"),
        "{readme}"
    );
    assert!(readme.contains(&format!("{worker}.log ")), "{readme}");
    for file in ["versions.txt", "engine.json", &format!("{name}-master.log")] {
        assert!(bundle.join(file).is_file(), "{file} missing:\n{readme}");
    }
    let versions = std::fs::read_to_string(bundle.join("versions.txt")).expect("versions.txt");
    assert!(
        versions.contains(&format!("{worker}: not running (exited)")),
        "{versions}"
    );
}

#[test]
fn up_json_and_a_bundle_of_a_healthy_cluster() {
    let Some(_engine) = docker("up_json_and_a_bundle_of_a_healthy_cluster") else {
        return;
    };
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
    ensure_default_image();
    let name = cluster_name("json");
    let _guard = ClusterGuard::new(&name);
    let work = tempfile::tempdir().expect("tempdir");
    let up = || {
        run(sparkbox().current_dir(work.path()).args([
            "up",
            "--json",
            "-n",
            &name,
            "--workers",
            "1",
            "--timeout",
            "240",
        ]))
    };

    // stdout is exactly one JSON document; the progress went to stderr.
    let (code, out, err) = up();
    assert_eq!(code, 0, "up --json failed:\n{out}\n{err}");
    let doc: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not one JSON document ({e}): {out}"));
    assert_eq!(doc["schema"], 1);
    assert_eq!(doc["cluster"], name.as_str());
    assert_eq!(doc["changed"], true);
    assert!(doc["elapsed_s"].as_f64().is_some_and(|s| s > 0.0), "{doc}");
    assert_eq!(doc["workers"]["alive"], 1, "{doc}");
    assert_eq!(doc["workers"]["wanted"], 1, "{doc}");
    assert!(doc["cores"].as_u64().is_some_and(|c| c >= 1), "{doc}");
    assert!(doc["memory_mb"].as_u64().is_some_and(|m| m >= 512), "{doc}");
    let default = sparkbox::model::versions::default_entry();
    assert_eq!(doc["versions"]["spark"], default.spark, "{doc}");
    assert_eq!(doc["versions"]["py4j"], default.py4j, "{doc}");
    assert!(doc["versions"]["java"]
        .as_str()
        .is_some_and(|j| j.starts_with(default.java)));
    for key in ["master_ui", "jupyter", "app_ui"] {
        assert!(
            doc["urls"][key]
                .as_str()
                .is_some_and(|u| u.starts_with("http://127.0.0.1:")),
            "{key}: {doc}"
        );
    }
    assert_eq!(
        doc["urls"]["app_uis"].as_array().map(Vec::len),
        Some(4),
        "{doc}"
    );
    assert_eq!(doc["master_url"], format!("spark://{name}-master:7077"));
    assert!(!err.is_empty(), "progress is on stderr");

    // A second `up` changes nothing and says so.
    let (code, out, err) = up();
    assert_eq!(code, 0, "{err}");
    let again: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("({e}): {out}"));
    assert_eq!(again["changed"], false, "{again}");
    assert_eq!(again["urls"], doc["urls"]);

    // The bundle of a healthy cluster holds every file.
    let bundle = work.path().join("bundle");
    let (code, out, err) = run(sparkbox()
        .args(["logs", "-n", &name, "--bundle"])
        .arg(&bundle));
    assert_eq!(code, 0, "logs --bundle failed:\n{out}\n{err}");
    assert!(out.contains(&bundle.display().to_string()), "{out}");
    assert!(!out.contains("skipped"), "{out}");
    let containers = [
        format!("{name}-master"),
        format!("{name}-worker-1"),
        format!("{name}-jupyter"),
    ];
    for c in &containers {
        let log = std::fs::read_to_string(bundle.join(format!("{c}.log"))).expect("a log");
        assert!(!log.is_empty(), "{c}.log is empty");
        let inspect = read_json(&bundle.join(format!("{c}.inspect.json")));
        assert_eq!(inspect["Name"], format!("/{c}"));
        assert_eq!(inspect["State"]["Running"], true);
    }
    let status = read_json(&bundle.join("status.json"));
    assert_eq!(status["state"], "ready", "{status}");
    assert_eq!(status["urls"], doc["urls"]);
    let versions = std::fs::read_to_string(bundle.join("versions.txt")).expect("versions.txt");
    assert!(
        versions.starts_with("version parity ok: the 3 running containers"),
        "{versions}"
    );
    for c in &containers {
        assert!(versions.contains(c.as_str()), "{c} not in:\n{versions}");
    }
    assert!(versions.contains(default.spark), "{versions}");
    let master = read_json(&bundle.join("master.json"));
    assert_eq!(master["status"], "ALIVE", "{master}");
    assert_eq!(
        master["workers"][0]["host"],
        containers[1].as_str(),
        "{master}"
    );
    let engine = read_json(&bundle.join("engine.json"));
    assert!(engine["ncpu"].as_i64().is_some_and(|n| n >= 1), "{engine}");
    assert!(
        engine["memory_bytes"].as_i64().is_some_and(|m| m > 0),
        "{engine}"
    );
    assert!(
        engine["api_version"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "{engine}"
    );
    assert!(
        engine["server_version"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "{engine}"
    );
    // README.txt lists every file, one per line, and nothing else is there.
    let readme = std::fs::read_to_string(bundle.join("README.txt")).expect("README.txt");
    let files: Vec<String> = std::fs::read_dir(&bundle)
        .expect("the bundle")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 11, "{files:?}");
    for f in &files {
        assert!(
            readme.lines().any(|l| l.starts_with(&format!("{f} "))),
            "{f} is not listed:\n{readme}"
        );
    }
    // The same directory takes the next bundle (it is sparkbox's).
    let (code, _, err) = run(sparkbox()
        .args(["logs", "-n", &name, "--bundle"])
        .arg(&bundle));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn the_worker_role_is_broken_by_the_test_edit() {
    let original = include_str!("../images/jupyter-spark/bin/entrypoint");
    let broken = break_worker_role(original);
    assert!(broken.contains(&format!(
        "worker)\n    echo \"{BROKEN_WORDS}\" >&2\n    exit 3\n"
    )));
}
