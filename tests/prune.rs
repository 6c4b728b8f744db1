//! Real-Docker test of `sparkbox image prune` on a lab engine of its own
//! (never the machine's daemon, whose images the other tests need): tiny
//! imported images under sparkbox's tags, build stages made by the engine's
//! classic builder, containers of two clusters and a foreign one — then the
//! real binary with DOCKER_HOST at the lab, and what is left checked.

mod common;

use std::collections::{BTreeSet, HashMap};

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::CreateContainerOptionsBuilder;
use bytes::Bytes;
use futures_util::StreamExt;

use common::lab::lab_engine;
use common::{block_on, run, sparkbox};
use sparkbox::engine::{BuildRequest, DockerEngine, Engine};
use sparkbox::model::labels;
use sparkbox::model::recipe::IMAGE_REPOSITORY;

/// A tar of the given files.
fn tarball(files: &[(&str, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, text) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, path, text.as_bytes())
            .expect("a tar entry");
    }
    builder.into_inner().expect("a tar")
}

/// Imports a one-file image as `reference`, labelled a sparkbox image when `ours`.
async fn import(engine: &DockerEngine, reference: &str, ours: bool) -> String {
    let tar = tarball(&[("hello.txt", reference)]);
    let stream = futures_util::stream::once(async move { Ok(Bytes::from(tar)) }).boxed();
    let changes = if ours {
        vec![format!("LABEL {}=jupyter-spark", labels::IMAGE)]
    } else {
        vec![]
    };
    engine
        .import_rootfs(stream, reference, changes)
        .await
        .expect("import")
}

/// Builds a two-stage Dockerfile whose first stage copies `copies`
/// (destinations) in, as sparkbox's `deps` stage does, and tags the result.
async fn build_two_stages(
    engine: &DockerEngine,
    base: &str,
    copies: &[&str],
    tag: &str,
    ours: bool,
) {
    let mut dockerfile = format!("FROM {base} AS deps\n");
    let mut files = Vec::new();
    for (i, dest) in copies.iter().enumerate() {
        dockerfile.push_str(&format!("COPY f{i} {dest}\n"));
        files.push((format!("f{i}"), format!("{tag} {dest}")));
    }
    dockerfile.push_str(&format!(
        "FROM scratch\nCOPY --from=deps {} /copied\n",
        copies[0]
    ));
    let mut entries: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    entries.push(("Dockerfile", &dockerfile));
    let labels_map = if ours {
        HashMap::from([(labels::IMAGE.to_string(), "jupyter-spark".to_string())])
    } else {
        HashMap::new()
    };
    let request = BuildRequest {
        tag: tag.to_string(),
        labels: labels_map,
        ..Default::default()
    };
    engine
        .build(tarball(&entries), &request, &mut |_| {})
        .await
        .expect("the lab engine builds");
}

/// Creates (never starts: the images hold no program) a container of `image`.
async fn container(engine: &DockerEngine, name: &str, image: &str, cluster: Option<&str>) {
    let labels_map: HashMap<String, String> = cluster
        .map(|c| HashMap::from([(labels::CLUSTER.to_string(), c.to_string())]))
        .unwrap_or_default();
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(vec!["/hello.txt".to_string()]),
        labels: Some(labels_map),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::new().name(name).build();
    engine
        .client()
        .create_container(Some(options), body)
        .await
        .expect("create a container");
}

/// Every tag on the engine, and every untagged image's ID.
async fn inventory(engine: &DockerEngine) -> (BTreeSet<String>, BTreeSet<String>) {
    let images = engine.images(&[]).await.expect("images");
    let tags = images.iter().flat_map(|i| i.repo_tags.clone()).collect();
    let all = images.iter().map(|i| i.id.clone()).collect();
    (tags, all)
}

#[test]
fn prune_keeps_every_image_in_use_and_removes_the_rest() {
    let Some(lab) = lab_engine("prune_keeps_every_image_in_use_and_removes_the_rest") else {
        return;
    };
    let home = tempfile::tempdir().expect("a directory without sparkbox.toml");
    let tag = |t: &str| format!("{IMAGE_REPOSITORY}:{t}");
    let current = sparkbox::settings::Config::default()
        .image_settings(&Default::default())
        .recipe()
        .expect("the default recipe")
        .tag();
    let (run_tag, stop_tag, old_tag, half_tag, built_tag, foreign_used) = (
        tag("4.3.0-aaaaaaaaaaaa"),
        tag("3.5.9-bbbbbbbbbbbb"),
        tag("4.3.0-cccccccccccc"),
        tag("4.3.0-dddddddddddd-unlabelled"),
        tag("4.3.0-ffffffffffff"),
        tag("4.3.0-eeeeeeeeeeee"),
    );
    let (deps_stage, foreign_stage) = block_on(async {
        let engine = lab.engine().await;
        import(&engine, "lab/base:1", false).await;
        import(&engine, "lab/foreign:1", false).await;
        for t in [&run_tag, &stop_tag, &old_tag, &foreign_used, &current] {
            import(&engine, t, true).await;
        }
        import(&engine, &half_tag, false).await;
        let (_, before) = inventory(&engine).await;
        // sparkbox's build: the deps stage copies both install inputs.
        build_two_stages(
            &engine,
            "lab/base:1",
            &["/tmp/sparkbox-ca.crt", "/tmp/install-deps.sh"],
            &built_tag,
            true,
        )
        .await;
        let (_, after_ours) = inventory(&engine).await;
        // Someone else's build with a step of the same name: not ours.
        build_two_stages(
            &engine,
            "lab/base:1",
            &["/tmp/install-deps.sh"],
            "lab/other:1",
            false,
        )
        .await;
        let (_, after_theirs) = inventory(&engine).await;
        // The dangling images each build left, told apart as prune does.
        let leaf = |set: &BTreeSet<String>, since: &BTreeSet<String>, images: &[_]| {
            sparkbox::ops::prune::stage_suspects(images)
                .into_iter()
                .filter(|id| set.contains(id) && !since.contains(id))
                .collect::<Vec<_>>()
        };
        let images = engine.images(&[]).await.expect("images");
        let ours = leaf(&after_ours, &before, &images);
        let theirs = leaf(&after_theirs, &after_ours, &images);
        assert_eq!(
            ours.len(),
            1,
            "the build left one dangling deps stage: {ours:?}"
        );
        assert_eq!(theirs.len(), 1, "{theirs:?}");
        container(&engine, "labrun-master", &run_tag, Some("labrun")).await;
        container(&engine, "labrun-worker-1", &run_tag, Some("labrun")).await;
        container(&engine, "labstop-master", &stop_tag, Some("labstop")).await;
        container(&engine, "not-sparkbox", &foreign_used, None).await;
        (ours[0].clone(), theirs[0].clone())
    });
    let prune = |args: &[&str]| {
        let mut cmd = sparkbox();
        cmd.env("DOCKER_HOST", lab.host())
            .current_dir(home.path())
            .args(["image", "prune"])
            .args(args);
        run(&mut cmd)
    };
    let engine = block_on(lab.engine());
    let (tags_before, ids_before) = block_on(inventory(&engine));

    // doctor's line: what the prune below frees.
    let mut doctor = sparkbox();
    doctor
        .env("DOCKER_HOST", lab.host())
        .current_dir(home.path())
        .arg("doctor");
    let (_, out, err) = run(&mut doctor);
    assert!(
        out.lines().any(
            |l| l.contains("images: 2 sparkbox images and 2 build stages (")
                && l.ends_with("no cluster uses — `sparkbox image prune` frees them")
        ),
        "doctor:\n{out}\n{err}"
    );

    let (code, out, err) = prune(&["--dry-run"]);
    assert_eq!(code, 0, "{out}\n{err}");
    for wanted in [&old_tag, &built_tag, &half_tag] {
        assert!(
            out.contains(&format!("would remove {wanted}"))
                || out.contains(&format!("would remove build stage {wanted}")),
            "{wanted}:\n{out}"
        );
    }
    assert!(out.contains("would reclaim"), "{out}");
    assert_eq!(
        block_on(inventory(&engine)),
        (tags_before.clone(), ids_before.clone()),
        "a dry run removed something"
    );

    let (code, out, err) = prune(&[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("reclaimed "), "{out}");
    assert!(out.contains(&format!("kept    {run_tag} — used by labrun-master (cluster labrun), labrun-worker-1 (cluster labrun)")), "{out}");
    assert!(
        out.contains(&format!(
            "kept    {stop_tag} — used by labstop-master (cluster labstop)"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("kept    {foreign_used} — used by not-sparkbox")),
        "{out}"
    );
    assert!(
        out.contains(&format!("kept    {current} — the current settings' image")),
        "{out}"
    );
    let (tags, ids) = block_on(inventory(&engine));
    let expected: BTreeSet<String> = [
        "lab/base:1".to_string(),
        "lab/foreign:1".to_string(),
        "lab/other:1".to_string(),
        run_tag.clone(),
        stop_tag.clone(),
        foreign_used.clone(),
        current.clone(),
    ]
    .into_iter()
    .collect();
    assert_eq!(tags, expected, "{out}");
    assert!(
        !ids.contains(&deps_stage),
        "sparkbox's deps stage is still there:\n{out}"
    );
    assert!(
        ids.contains(&foreign_stage),
        "someone else's stage was removed:\n{out}"
    );

    let (code, out, err) = prune(&[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("nothing to prune"), "{out}");

    // --all: the current image goes too; everything a container uses stays.
    let (code, out, err) = prune(&["--all"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains(&format!("removed {current}")), "{out}");
    let (tags, _) = block_on(inventory(&engine));
    let mut expected = expected;
    expected.remove(&current);
    assert_eq!(tags, expected, "{out}");
    let containers = block_on(engine.containers(&[])).expect("containers");
    assert_eq!(containers.len(), 4);
    for c in containers {
        assert!(
            block_on(engine.image(&c.image_id))
                .expect("inspect")
                .is_some(),
            "{} lost its image",
            c.name
        );
    }
}
