//! Ctrl-C at three points of `up` against the real engine — as the network
//! is made, as the workers are made, and while `up` waits for readiness:
//! each time `up` stops at once with exit code 130 and the command that
//! finishes the cluster, and that command makes it ready. (After every
//! single engine call it is tests/orchestration.rs, on the fake engine.)

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{cluster_name, docker, ensure_default_image, run, sparkbox, ClusterGuard};

/// Runs `up` on `name` and sends it SIGINT when its plain progress prints a
/// line containing `marker`; returns what it printed.
fn interrupt_at(dir: &std::path::Path, name: &str, marker: &str) -> String {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("sparkbox"))
        .current_dir(dir)
        .args(["--progress", "plain", "up", "--workers", "2", "-n", name])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("up starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut said = String::new();
    let mut sent = false;
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap_or_default();
        said.push_str(&line);
        said.push('\n');
        if !sent && line.contains(marker) {
            let kill = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status()
                .expect("kill runs");
            assert!(kill.success());
            sent = true;
        }
    }
    let status = child.wait().expect("up ends");
    assert!(sent, "up never printed {marker:?}:\n{said}");
    assert_eq!(
        status.code(),
        Some(130),
        "interrupted at {marker:?}:\n{said}"
    );
    said
}

/// The engine finishes a create whose client is gone: `up` lets the changes
/// it has sent finish before it exits (src/interrupt.rs), and, should one
/// still land late (a second Ctrl-C, a killed process), the next `up` keeps
/// one network of the name and adopts a container made from its own
/// settings — this test first found both races.
#[test]
fn ctrl_c_at_three_points_of_up_then_up_finishes_the_cluster() {
    let Some(_engine) = docker("ctrl_c_at_three_points_of_up_then_up_finishes_the_cluster") else {
        return;
    };
    ensure_default_image();
    let name = cluster_name("ctrlc");
    let _guard = ClusterGuard::new(&name);
    let work = tempfile::tempdir().expect("tempdir");
    for marker in [
        format!("create network {name}-net"),
        format!("{name}-worker-2"),
        "waiting for workers".to_string(),
    ] {
        let said = interrupt_at(work.path(), &name, &marker);
        let hint = format!("`sparkbox --progress plain up --workers 2 -n {name}` finishes it");
        assert!(said.contains(&hint), "interrupted at {marker:?}:\n{said}");
        let (code, out, err) =
            run(sparkbox()
                .current_dir(work.path())
                .args(["up", "--workers", "2", "-n", &name]));
        assert_eq!(code, 0, "the up after Ctrl-C at {marker:?}:\n{out}\n{err}");
        assert!(
            out.contains("is ready") || out.contains("is up to date"),
            "{out}"
        );
        let (code, out, err) = run(sparkbox().args(["status", "-n", &name]));
        assert_eq!(
            code, 0,
            "not ready after Ctrl-C at {marker:?}:\n{out}\n{err}"
        );
        let (code, _, err) = run(sparkbox().args(["down", "-n", &name, "--volumes"]));
        assert_eq!(code, 0, "{err}");
    }
}

/// What a late create leaves on this engine (API 1.41 lets two networks
/// share a name): a network of the cluster's name made behind `up`'s back.
/// `create_network` then keeps one, `down`'s removal by name takes every
/// one of the cluster's, and one that is not the cluster's is a name
/// conflict that leaves nothing of the cluster's behind.
#[test]
fn a_second_network_of_the_clusters_name_is_not_kept() {
    use sparkbox::engine::Engine;
    use sparkbox::model::labels;
    let Some(engine) = docker("a_second_network_of_the_clusters_name_is_not_kept") else {
        return;
    };
    let name = cluster_name("dupnet");
    let _guard = ClusterGuard::new(&name);
    let net = format!("{name}-net");
    let ours = std::collections::HashMap::from([(labels::CLUSTER.to_string(), name.clone())]);
    let behind_the_back =
        |labels: std::collections::HashMap<String, String>| {
            common::block_on(engine.client().create_network(
                bollard::models::NetworkCreateRequest {
                    name: net.clone(),
                    labels: Some(labels),
                    ..Default::default()
                },
            ))
            .expect("a network made directly")
        };
    let named = || {
        let out = Command::new("docker")
            .args(["network", "ls", "-q", "--filter", &format!("name=^{net}$")])
            .output()
            .expect("docker network ls");
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    behind_the_back(ours.clone());
    common::block_on(engine.create_network(&net, ours.clone())).expect("create");
    assert_eq!(named(), 1, "two networks named {net} after create");
    behind_the_back(ours.clone());
    assert_eq!(
        named(),
        2,
        "this engine refused a second network of one name"
    );
    common::block_on(engine.remove_network(&net)).expect("remove both");
    assert_eq!(named(), 0);
    // Someone else's network of that name: a name conflict, and the
    // cluster's new one is gone again.
    let theirs = behind_the_back(Default::default());
    let err = common::block_on(engine.create_network(&net, ours)).expect_err("a conflict");
    assert!(
        matches!(err, sparkbox::error::Error::NameConflict { .. }),
        "{err:?}"
    );
    assert_eq!(named(), 1);
    common::block_on(engine.client().remove_network(&theirs.id)).expect("theirs goes");
}
