//! Readiness against a container whose image predates `healthcheck --wait`:
//! `start` and `scale` run a cluster on the image it was made with, which may
//! be older than the sparkbox binary, and must still see its services answer.

mod common;

use std::collections::HashMap;

use common::{block_on, cluster_name, default_tag, docker, ensure_default_image, ClusterGuard};
use sparkbox::engine::{ContainerSpec, Engine};
use sparkbox::model::labels;
use sparkbox::plan::wait;

/// A healthcheck as images made before `--wait` had it: exactly one argument
/// (a role), exit 2 with a usage line for anything else. Here Jupyter
/// answers and nothing else does.
const OLD_HEALTHCHECK: &str = "#!/bin/sh
if [ \"$#\" != 1 ]; then echo 'usage: healthcheck master|worker|jupyter' >&2; exit 2; fi
[ \"$1\" = jupyter ]
";

#[test]
fn a_healthcheck_without_wait_is_asked_one_check_at_a_time() {
    let Some(engine) = docker("a_healthcheck_without_wait_is_asked_one_check_at_a_time") else {
        return;
    };
    ensure_default_image();
    let name = cluster_name("oldcheck");
    let _guard = ClusterGuard::new(&name);
    let cluster_labels: HashMap<String, String> =
        [(labels::CLUSTER.to_string(), name.clone())].into();
    let container = format!("{name}-jupyter");
    let network = format!("{name}-net");
    block_on(engine.create_network(&network, cluster_labels.clone())).expect("network");
    let spec = ContainerSpec {
        name: container.clone(),
        image: default_tag(),
        command: vec!["sleep".into(), "300".into()],
        labels: cluster_labels,
        network,
        ..Default::default()
    };
    block_on(async {
        engine.create_container(&spec).await?;
        engine.start_container(&container).await
    })
    .expect("container starts");

    // The current healthcheck: nothing listens on Jupyter's port here.
    let ready = block_on(wait::service_ready(&engine, &container, "jupyter", "0.3"));
    assert!(!ready.expect("exec runs"), "Jupyter cannot answer here");

    // The old one: `--wait` is a usage error, and the single check answers.
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(OLD_HEALTHCHECK.len() as u64);
    header.set_mode(0o755);
    header.set_cksum();
    tar.append_data(&mut header, "healthcheck", OLD_HEALTHCHECK.as_bytes())
        .expect("tar entry");
    let tar = tar.into_inner().expect("tar");
    block_on(engine.upload_tar(&container, "/opt/sparkbox/bin", tar)).expect("upload");
    let out = block_on(engine.exec(
        &container,
        &["/opt/sparkbox/bin/healthcheck", "--wait", "2", "jupyter"],
    ))
    .expect("exec runs");
    assert_eq!(out.exit_code, 2, "the stand-in refuses --wait: {out:?}");
    let ready = block_on(wait::service_ready(&engine, &container, "jupyter", "2"));
    assert!(
        ready.expect("exec runs"),
        "the old healthcheck's answer was lost"
    );
    let ready = block_on(wait::service_ready(&engine, &container, "history", "2"));
    assert!(
        !ready.expect("exec runs"),
        "a failing old check counted as ready"
    );
}
