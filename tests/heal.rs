//! Healing restores a cluster as it was made (real Docker): after `scale`,
//! a killed worker and the exact command `status` prints, run from another
//! directory, the cluster has its three workers again, the worker and the
//! Jupyter server that were fine keep their containers, and `/data` is still
//! the directory the cluster was made with.

mod common;

use std::process::Command;

use common::{
    cluster_name, container_ids, docker, ensure_default_image, run, sparkbox, ClusterGuard,
};

/// `docker inspect -f FORMAT NAME`, trimmed.
fn inspect(name: &str, format: &str) -> String {
    let out = Command::new("docker")
        .args(["inspect", "-f", format, name])
        .output()
        .expect("docker inspect runs");
    assert!(out.status.success(), "docker inspect {name} failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The host directory mounted at /data in `container`.
fn data_source(container: &str) -> String {
    inspect(
        container,
        "{{range .Mounts}}{{if eq .Destination \"/data\"}}{{.Source}}{{end}}{{end}}",
    )
}

/// The command between the last pair of backticks of `text`.
fn last_quoted_command(text: &str) -> Vec<String> {
    let mut parts = text.rsplit('`');
    parts.next();
    let command = parts.next().expect("a quoted command");
    command.split_whitespace().map(str::to_string).collect()
}

#[test]
fn up_after_scale_and_a_killed_worker_restores_the_cluster_as_it_was_made() {
    if docker("heal").is_none() {
        return;
    }
    ensure_default_image();
    let name = cluster_name("heal");
    let _guard = ClusterGuard::new(&name);
    let made_in = tempfile::tempdir().expect("a directory");
    let data = tempfile::tempdir().expect("a data directory");
    let elsewhere = tempfile::tempdir().expect("another directory");
    let data_dir = data.path().display().to_string();

    let (code, out, err) = run(sparkbox().current_dir(made_in.path()).args([
        "up",
        "-n",
        &name,
        "--workers",
        "2",
        "--data",
        &data_dir,
    ]));
    assert_eq!(code, 0, "up failed:\n{out}\n{err}");
    let (code, out, err) =
        run(sparkbox()
            .current_dir(made_in.path())
            .args(["scale", "-n", &name, "--workers", "3"]));
    assert_eq!(code, 0, "scale failed:\n{out}\n{err}");

    let worker2 = format!("{name}-worker-2");
    let worker3 = format!("{name}-worker-3");
    let jupyter = format!("{name}-jupyter");
    let kill = Command::new("docker")
        .args(["kill", &worker2])
        .output()
        .expect("docker kill runs");
    assert!(kill.status.success());
    let before = container_ids(&name);
    let started = |c: &str| inspect(c, "{{.State.StartedAt}}");
    let (w3_started, jupyter_started) = (started(&worker3), started(&jupyter));

    // `status` says the cluster is degraded and which command restores it.
    let (code, out, err) = run(sparkbox()
        .current_dir(elsewhere.path())
        .args(["status", "-n", &name]));
    assert_eq!(code, 7, "status of a degraded cluster:\n{out}\n{err}");
    let hint = last_quoted_command(&err);
    assert_eq!(
        hint,
        ["sparkbox", "up", "-n", name.as_str()],
        "status hint:\n{err}"
    );

    // `config` there shows what that `up` will use: the cluster's record.
    let (code, out, err) = run(sparkbox()
        .current_dir(elsewhere.path())
        .args(["config", "--json", "-n", &name]));
    assert_eq!(code, 0, "config failed:\n{out}\n{err}");
    let settings: serde_json::Value = serde_json::from_str(&out).expect("config --json");
    assert_eq!(settings["workers"], 3, "{out}");
    assert_eq!(settings["volumes"]["data"], data_dir.as_str(), "{out}");

    // That exact command, from a directory that has nothing of the cluster.
    let (code, out, err) = run(sparkbox().current_dir(elsewhere.path()).args(&hint[1..]));
    assert_eq!(code, 0, "the hinted up failed:\n{out}\n{err}");
    assert!(
        out.contains("3/3 workers alive"),
        "up did not restore three workers:\n{out}\n{err}"
    );
    assert!(
        !err.contains("is recreated"),
        "healing recreated a Jupyter server:\n{err}"
    );
    let after = container_ids(&name);
    assert_eq!(
        after.get(&worker3),
        before.get(&worker3),
        "worker-3 was replaced"
    );
    assert_eq!(
        after.get(&jupyter),
        before.get(&jupyter),
        "Jupyter was replaced"
    );
    assert_eq!(started(&worker3), w3_started, "worker-3 was restarted");
    assert_eq!(started(&jupyter), jupyter_started, "Jupyter was restarted");
    assert_eq!(
        after.keys().filter(|k| k.contains("-worker-")).count(),
        3,
        "workers after healing: {after:?}"
    );
    for container in [&jupyter, &worker2, &worker3, &format!("{name}-master")] {
        assert_eq!(data_source(container), data_dir, "/data of {container}");
    }
    assert!(
        !elsewhere.path().join("data").exists(),
        "up made a data directory where it was run"
    );
    let (code, out, err) = run(sparkbox()
        .current_dir(elsewhere.path())
        .args(["status", "-n", &name]));
    assert_eq!(code, 0, "status after healing:\n{out}\n{err}");
}
