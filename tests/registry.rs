//! Real-registry tests (Debian's docker-registry on 127.0.0.1): `image push`
//! prints the digest; with the local image removed, `up --registry` pulls it
//! with no build step, proves it, and every container records its digest; an
//! image under the right tag with another content hash is refused by name;
//! basic auth from the Docker configuration works and a bad password is one
//! clear error.
//!
//! One test function: the steps share one image, and one of them removes it
//! from the engine, which no other test of this binary may see half-way.

mod common;

use common::registry::TestRegistry;
use common::{
    block_on, cluster_name, default_tag, docker, ensure_default_image, run, sparkbox, ClusterGuard,
};
use sparkbox::engine::{DockerEngine, Engine};
use sparkbox::model::labels;

/// Every tag of `tag`'s image goes, so the engine holds no copy of it; when
/// dropped, the image is back (pulled again from `registry`) if a step
/// failed before `up` brought it back — the next test binary builds nothing.
struct ImageBack<'a> {
    engine: &'a DockerEngine,
    tag: String,
    remote: String,
}

/// Untags every name of a test registry (`prefix`) from the engine when
/// dropped: the image stays under its own tag.
struct RemoteTags(Vec<String>);

impl Drop for RemoteTags {
    fn drop(&mut self) {
        let Ok(out) = std::process::Command::new("docker")
            .args(["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"])
            .output()
        else {
            return;
        };
        for name in String::from_utf8_lossy(&out.stdout).lines() {
            if self.0.iter().any(|p| name.starts_with(p.as_str())) {
                let _ = std::process::Command::new("docker")
                    .args(["image", "rm", name])
                    .output();
            }
        }
    }
}

impl Drop for ImageBack<'_> {
    fn drop(&mut self) {
        if block_on(self.engine.image(&self.tag))
            .ok()
            .flatten()
            .is_none()
        {
            let back = block_on(async {
                self.engine.pull(&self.remote).await?;
                self.engine.tag(&self.remote, &self.tag).await
            });
            if let Err(e) = back {
                eprintln!(
                    "could not bring {} back from {}: {e}",
                    self.tag, self.remote
                );
            }
        }
    }
}

#[test]
fn push_then_up_pulls_the_proven_image_refuses_a_tampered_one_and_logs_in() {
    let test = "registry";
    let Some(engine) = docker(test) else { return };
    let Some(open) = TestRegistry::start(test, None) else {
        return;
    };
    ensure_default_image();
    let mut remote_tags = RemoteTags(vec![format!("{}/", open.host)]);
    let tag = default_tag();
    let reg = format!("{}/sbx", open.host);
    let remote = format!(
        "{reg}/jupyter-spark:{}",
        tag.rsplit_once(':').map(|(_, t)| t).unwrap_or("")
    );
    let local = block_on(engine.image(&tag))
        .expect("inspect")
        .expect("built");

    // 1. push: the digest is printed and is the registry's.
    let (code, out, err) = run(sparkbox().args(["image", "push", "--registry", &reg]));
    assert_eq!(code, 0, "{out}\n{err}");
    let digest = out
        .lines()
        .find_map(|l| l.strip_prefix("digest: "))
        .expect("a digest line")
        .to_string();
    assert!(
        digest.starts_with(&format!("{reg}/jupyter-spark@sha256:")),
        "{out}"
    );
    let pushed = block_on(engine.image(&tag))
        .expect("inspect")
        .expect("present");
    assert!(
        pushed.repo_digests.contains(&digest),
        "{:?}",
        pushed.repo_digests
    );

    // 2. remove the image from the engine (every tag), then `up` pulls it.
    let back = ImageBack {
        engine: &engine,
        tag: tag.clone(),
        remote: remote.clone(),
    };
    for name in [&tag, &remote] {
        let status = std::process::Command::new("docker")
            .args(["image", "rm", name])
            .status()
            .expect("docker image rm");
        assert!(status.success(), "could not remove {name}");
    }
    assert!(
        block_on(engine.image(&local.id))
            .expect("inspect")
            .is_none(),
        "the image is still on the engine"
    );
    let name = cluster_name("reg");
    let _guard = ClusterGuard::new(&name);
    let data = tempfile::tempdir().expect("data dir");
    let (code, out, err) = run(sparkbox()
        .args([
            "up",
            "-n",
            &name,
            "--workers",
            "1",
            "--json",
            "--registry",
            &reg,
            "--data",
        ])
        .arg(data.path()));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!err.contains("step "), "a build step ran:\n{err}");
    assert!(err.contains(&format!("pulled {remote}")), "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("up --json");
    assert_eq!(report["image_digest"], digest.as_str(), "{out}");
    let again = block_on(engine.image(&tag))
        .expect("inspect")
        .expect("pulled");
    assert_eq!(again.id, local.id, "the pulled image is the pushed one");
    assert_eq!(
        again.labels.get(labels::VERSIONS),
        local.labels.get(labels::VERSIONS)
    );
    // Every container records it; status --json says it.
    let containers =
        block_on(engine.containers(&[(labels::CLUSTER, name.as_str())])).expect("list");
    assert!(containers.len() >= 3, "{containers:?}");
    for c in &containers {
        assert_eq!(
            c.labels.get(labels::IMAGE_DIGEST),
            Some(&digest),
            "{}",
            c.name
        );
        assert_eq!(
            c.labels.get(labels::IMAGE_ID),
            Some(&local.id),
            "{}",
            c.name
        );
        assert_eq!(c.image_id, local.id, "{} runs another image", c.name);
    }
    let (code, out, err) = run(sparkbox().args(["status", "-n", &name, "--json"]));
    assert_eq!(code, 0, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).expect("status --json");
    assert_eq!(status["image_digest"], digest.as_str());
    assert_eq!(status["image_id"], local.id.as_str());
    let (code, _, err) = run(sparkbox().args(["down", "-n", &name]));
    assert_eq!(code, 0, "{err}");
    drop(back);

    // 3. A different image under the right tag is refused by name: the
    //    default image pushed as the image of other settings.
    let other_args = ["--python-package", "sbx-never-built==1.0"];
    let (code, out, _) = run(sparkbox().args(["image", "tag"]).args(other_args));
    assert_eq!(code, 0);
    let other_tag = out
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    let evil = format!("{}/evil", open.host);
    let evil_remote = format!(
        "{evil}/jupyter-spark:{}",
        other_tag.rsplit_once(':').map(|(_, t)| t).unwrap_or("")
    );
    block_on(engine.tag(&tag, &evil_remote)).expect("tag");
    block_on(engine.push(&evil_remote, None, &mut |_| {})).expect("push the impostor");
    block_on(engine.remove_image(&evil_remote)).expect("untag");
    let (code, out, err) = run(sparkbox()
        .args(["build", "--registry", &evil])
        .args(other_args));
    assert_eq!(code, 5, "{out}\n{err}");
    assert!(
        err.contains(&evil_remote) && err.contains("is not the image this sparkbox builds"),
        "{err}"
    );
    assert!(err.contains("content hash"), "{err}");
    assert!(!err.contains("step "), "it went on to build:\n{err}");
    assert!(
        block_on(engine.image(&other_tag))
            .expect("inspect")
            .is_none(),
        "the impostor got the local tag"
    );
    assert!(
        block_on(engine.image(&evil_remote))
            .expect("inspect")
            .is_none(),
        "the impostor stayed under the registry's name"
    );

    // 4. Basic auth: the Docker configuration's credentials push; a wrong
    //    password and none are one clear error each (exit 10, no retries).
    let Some(locked) = TestRegistry::start(test, Some(("alice", "s3cret"))) else {
        return;
    };
    let reg = format!("{}/sbx", locked.host);
    remote_tags.0.push(format!("{}/", locked.host));
    let good = locked.docker_config("alice", "s3cret");
    let bad = locked.docker_config("alice", "wrong");
    let none = tempfile::tempdir().expect("empty config dir");
    let (code, out, err) = run(sparkbox()
        .args(["image", "push", "--registry", &reg])
        .env("DOCKER_CONFIG", bad.path()));
    assert_eq!(code, 10, "{out}\n{err}");
    assert!(
        err.contains(&format!("the registry {reg} refused")),
        "{err}"
    );
    assert!(
        err.contains(&format!("docker login {}", locked.host)),
        "{err}"
    );
    let (code, _, err) = run(sparkbox()
        .args(["image", "push", "--registry", &reg])
        .env("DOCKER_CONFIG", none.path()));
    assert_eq!(code, 10, "{err}");
    assert!(err.contains("refused"), "{err}");
    let (code, out, err) = run(sparkbox()
        .args(["image", "push", "--registry", &reg])
        .env("DOCKER_CONFIG", good.path()));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&format!("digest: {reg}/jupyter-spark@sha256:")),
        "{out}"
    );
}
