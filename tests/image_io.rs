//! Real-Docker test of `sparkbox image save` and `sparkbox image load`: the
//! classroom round trip — save, refuse a damaged copy, remove the image, load
//! it back, and `up` a cluster on it with no build.
//!
//! A test binary of its own: it removes the default image for a while, and
//! cargo runs test binaries one after another, so no other test sees that.

mod common;

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::query_parameters::{ListImagesOptionsBuilder, RemoveImageOptionsBuilder};
use common::{
    block_on, cluster_name, default_tag, docker, ensure_default_image, run, sparkbox, ClusterGuard,
};
use sparkbox::engine::{DockerEngine, Engine};
use sparkbox::model::labels;
use sparkbox::model::versions::MATRIX;

/// Every image ID on the engine, sorted.
fn image_ids(engine: &DockerEngine) -> Vec<String> {
    let options = ListImagesOptionsBuilder::new().all(true).build();
    let mut ids: Vec<String> = block_on(engine.client().list_images(Some(options)))
        .expect("list images")
        .into_iter()
        .map(|i| i.id)
        .collect();
    ids.sort();
    ids
}

fn flip_byte(path: &Path, at: u64) {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open the copy");
    let mut byte = [0u8];
    file.seek(SeekFrom::Start(at)).expect("seek");
    file.read_exact(&mut byte).expect("read");
    byte[0] ^= 0x01;
    file.seek(SeekFrom::Start(at)).expect("seek");
    file.write_all(&byte).expect("write");
}

/// Puts the image back when the test stops after removing it — from the
/// saved file, else by building — so later tests find it.
struct RestoreImage {
    tag: String,
    saved: PathBuf,
}

impl RestoreImage {
    fn present(&self) -> bool {
        block_on(async {
            match DockerEngine::connect().await {
                Ok(engine) => matches!(engine.image(&self.tag).await, Ok(Some(_))),
                // No engine: nothing to restore it into.
                Err(_) => true,
            }
        })
    }
}

impl Drop for RestoreImage {
    fn drop(&mut self) {
        if self.present() {
            return;
        }
        eprintln!("restoring {} from {}", self.tag, self.saved.display());
        let _ = sparkbox().args(["image", "load"]).arg(&self.saved).output();
        if !self.present() {
            eprintln!("the saved file did not restore {}; building it", self.tag);
            let _ = sparkbox().arg("build").output();
        }
    }
}

/// Waits until no sparkbox cluster runs on the engine: removing the image
/// under another test's (or person's) cluster would make its next `up` build.
fn wait_for_no_running_cluster(engine: &DockerEngine) {
    let deadline = Instant::now() + Duration::from_secs(1200);
    let mut reported = Vec::new();
    loop {
        let running: Vec<String> = block_on(engine.containers(&[(labels::CLUSTER, "")]))
            .expect("list containers")
            .into_iter()
            .filter(|c| c.is_running())
            .map(|c| c.name)
            .collect();
        if running.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "sparkbox containers still run after 20 minutes ({running:?}); this test removes the image they use — stop them and run it again"
        );
        if running != reported {
            eprintln!("waiting for running sparkbox containers to end before removing the image: {running:?}");
            reported = running;
        }
        std::thread::sleep(Duration::from_secs(10));
    }
}

#[test]
fn a_saved_image_is_checked_loaded_back_and_run_without_a_build() {
    let Some(engine) = docker("a_saved_image_is_checked_loaded_back_and_run_without_a_build")
    else {
        return;
    };
    ensure_default_image();
    let tag = default_tag();
    let before = block_on(engine.image(&tag))
        .expect("inspect")
        .expect("the default image exists");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let saved = dir.path().join("sparkbox-image.tar");

    // Saving an image that is not built says to build it, and writes nothing.
    let (code, out, err) = run(sparkbox()
        .args([
            "image",
            "save",
            "--python-package",
            "sbxtest-never-built==0.0.1",
        ])
        .arg(&saved));
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("is not built") && err.contains("sparkbox build"),
        "{err}"
    );
    assert!(!saved.exists());

    let started = Instant::now();
    let (code, out, err) = run(sparkbox().args(["image", "save"]).arg(&saved));
    assert_eq!(code, 0, "{out}\n{err}");
    let len = std::fs::metadata(&saved).expect("the saved file").len();
    eprintln!(
        "image save: {:.1}s, {len} bytes",
        started.elapsed().as_secs_f64()
    );
    assert!(out.contains(&format!("saved {tag}")), "{out}");
    assert!(err.contains("saving to"), "no progress lines: {err}");
    assert!(!dir.path().join("sparkbox-image.tar.partial").exists());

    // A copy with one flipped byte is refused, and the engine is untouched.
    let damaged = dir.path().join("damaged.tar");
    std::fs::copy(&saved, &damaged).expect("copy");
    flip_byte(&damaged, len / 2);
    let images = image_ids(&engine);
    let started = Instant::now();
    let (code, out, err) = run(sparkbox().args(["image", "load"]).arg(&damaged));
    eprintln!(
        "image load of the damaged copy: {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(code, 4, "{out}\n{err}");
    assert!(
        err.contains("is corrupt") && err.contains("nothing was loaded"),
        "{err}"
    );
    assert_eq!(
        image_ids(&engine),
        images,
        "a refused file changed the images"
    );
    std::fs::remove_file(&damaged).expect("remove the copy");

    // Remove the image, then load it back from the file.
    let _restore = RestoreImage {
        tag: tag.clone(),
        saved: saved.clone(),
    };
    wait_for_no_running_cluster(&engine);
    // `docker rmi -f TAG`, but keeping the untagged parents (the builder's
    // cache of the last steps): only the saved image itself goes.
    let options = RemoveImageOptionsBuilder::new()
        .force(true)
        .noprune(true)
        .build();
    block_on(engine.client().remove_image(&tag, Some(options), None)).expect("remove the image");
    assert!(
        block_on(engine.image(&tag)).expect("inspect").is_none(),
        "{tag} is still there"
    );
    let started = Instant::now();
    let (code, out, err) = run(sparkbox().args(["image", "load"]).arg(&saved));
    eprintln!("image load: {:.1}s", started.elapsed().as_secs_f64());
    assert_eq!(code, 0, "{out}\n{err}");
    let spark = MATRIX[0].spark;
    assert!(
        out.contains(&format!("loaded {tag}")) && out.contains(&format!("Spark {spark}, Python")),
        "{out}"
    );
    assert!(
        err.contains("checking the SHA-256"),
        "no progress lines: {err}"
    );
    let after = block_on(engine.image(&tag))
        .expect("inspect")
        .expect("the image is back");
    assert_eq!(after.id, before.id, "the loaded image is another one");
    for (key, value) in &before.labels {
        if key.starts_with("io.sparkbox.") {
            assert_eq!(after.labels.get(key), Some(value), "label {key}");
        }
    }

    // Loading it again is fine and says so.
    let (code, out, err) = run(sparkbox().args(["image", "load"]).arg(&saved));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("already present"), "{out}");

    // `up` runs the loaded image without building anything.
    let name = cluster_name("imgio");
    let _cluster = ClusterGuard::new(&name);
    let work = tempfile::tempdir().expect("a working directory");
    let started = Instant::now();
    let (code, out, err) =
        run(sparkbox()
            .current_dir(work.path())
            .args(["up", "-n", &name, "--workers", "1"]));
    eprintln!(
        "up on the loaded image: {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!err.contains("build image"), "up built the image: {err}");
    assert!(out.contains("is ready"), "{out}");
    assert_eq!(
        block_on(engine.image(&tag)).expect("inspect").map(|i| i.id),
        Some(before.id),
        "up replaced the loaded image"
    );
}

#[test]
fn a_file_that_is_not_a_saved_image_is_refused_before_the_engine_is_asked() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // A plain tar (like a `docker save` archive): no checksum entry.
    let plain = dir.path().join("plain.tar");
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(2);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, "manifest.json", &b"[]"[..])
        .expect("append");
    std::fs::write(&plain, builder.into_inner().expect("tar")).expect("write");
    let truncated = dir.path().join("truncated.tar");
    let bytes = std::fs::read(&plain).expect("read");
    std::fs::write(&truncated, &bytes[..700]).expect("write");
    // An engine that cannot be reached: the file is refused before it is asked.
    let unreachable = format!("unix://{}", dir.path().join("no.sock").display());
    for (file, problem) in [
        (&plain, "no sparkbox-checksum.json entry"),
        (&truncated, "is truncated"),
    ] {
        let (code, out, err) = run(sparkbox()
            .env("DOCKER_HOST", &unreachable)
            .args(["image", "load"])
            .arg(file));
        assert_eq!(code, 4, "{out}\n{err}");
        let error = err.lines().find(|l| l.starts_with("error: ")).unwrap_or("");
        assert!(
            error.contains(problem) && error.contains("nothing was loaded"),
            "{err}"
        );
    }
    let (code, _, err) = run(sparkbox()
        .env("DOCKER_HOST", &unreachable)
        .args(["image", "save"])
        .arg(dir.path().join("no-such-dir/img.tar")));
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("does not exist"), "{err}");
}
