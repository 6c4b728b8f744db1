//! Real-Docker tests of `sparkbox build`: the pinned image, its measured
//! versions and labels, the up-to-date path, Spark 3.5, and the offline base.

mod common;

use common::{block_on, docker, ensure_default_image, run, sparkbox};
use sparkbox::engine::Engine;
use sparkbox::model::labels;
use sparkbox::model::versions::{self, Versions, MATRIX};

fn tag_for(args: &[&str]) -> String {
    let (code, out, err) = run(sparkbox().args(["image", "tag"]).args(args));
    assert_eq!(code, 0, "image tag failed: {err}");
    out.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn second_build_is_up_to_date_and_builds_nothing() {
    let Some(engine) = docker("second_build_is_up_to_date_and_builds_nothing") else {
        return;
    };
    ensure_default_image();
    let tag = tag_for(&[]);
    let before = block_on(engine.image(&tag))
        .expect("inspect")
        .expect("image exists");
    let (code, out, err) = run(sparkbox().arg("build"));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("is up to date") && out.contains("nothing to build"),
        "{out}"
    );
    assert!(!err.contains("step "), "a build step ran: {err}");
    let after = block_on(engine.image(&tag))
        .expect("inspect")
        .expect("image exists");
    assert_eq!(before.id, after.id, "the image was rebuilt");
}

#[test]
fn versions_file_and_labels_equal_the_matrix() {
    let Some(engine) = docker("versions_file_and_labels_equal_the_matrix") else {
        return;
    };
    ensure_default_image();
    let tag = tag_for(&[]);
    let out = block_on(engine.run_to_completion(&tag, &["cat", "/opt/sparkbox/versions.json"]))
        .expect("run");
    assert_eq!(out.exit_code, 0, "{}", out.stderr);
    let measured = Versions::from_json(&out.stdout).expect("versions.json parses");
    let diffs = versions::compare_with_matrix(&MATRIX[0].expected(), &measured);
    assert!(diffs.is_empty(), "{}", versions::render_differences(&diffs));
    // Java and Python are recorded in full (measured), not as the pin.
    assert!(measured
        .get("java")
        .unwrap_or("")
        .starts_with(&format!("{}.", MATRIX[0].java)));

    let image = block_on(engine.image(&tag))
        .expect("inspect")
        .expect("present");
    for key in versions::VERSION_KEYS {
        let label = image
            .labels
            .get(&format!("{}{key}", labels::VERSION_PREFIX));
        assert_eq!(
            label.map(String::as_str),
            measured.get(key),
            "label of {key}"
        );
    }
    let all = image.labels.get(labels::VERSIONS).expect("versions label");
    assert_eq!(Versions::from_json(all).expect("label parses"), measured);
}

#[test]
fn ca_bundle_is_not_left_in_the_image() {
    let Some(engine) = docker("ca_bundle_is_not_left_in_the_image") else {
        return;
    };
    ensure_default_image();
    let tag = tag_for(&[]);
    let out = block_on(engine.run_to_completion(
        &tag,
        &[
            "sh",
            "-c",
            "find / -xdev -name 'sparkbox-ca*' 2>/dev/null; ls -A /tmp",
        ],
    ))
    .expect("run");
    assert_eq!(
        out.stdout.trim(),
        "",
        "CA leftovers in the image: {}",
        out.stdout
    );
    let history = block_on(engine.client().image_history(&tag)).expect("history");
    // The final image is one flattened layer plus metadata: no step of the
    // dependency stage (where the CA was used) survives in it.
    for item in history {
        assert!(
            !item.created_by.contains("sparkbox-ca"),
            "{}",
            item.created_by
        );
        assert!(
            !item.created_by.contains("BEGIN CERTIFICATE"),
            "{}",
            item.created_by
        );
    }
}

#[test]
fn spark_35_builds_a_second_image_that_says_so() {
    let Some(engine) = docker("spark_35_builds_a_second_image_that_says_so") else {
        return;
    };
    let entry = versions::lookup("3.5").expect("a 3.5 entry");
    ensure_default_image();
    // The spark35 compose example's image (with its extra package), which
    // the side-by-side clusters test runs too: one build serves both.
    let args = [
        "--spark-version",
        "3.5",
        "--python-package",
        "tabulate==0.9.0",
    ];
    let (code, out, err) = run(sparkbox().arg("build").args(args));
    assert_eq!(code, 0, "{out}\n{err}");
    let tag = tag_for(&args);
    assert_ne!(tag, tag_for(&[]));
    let out = block_on(engine.run_to_completion(&tag, &["cat", "/opt/sparkbox/versions.json"]))
        .expect("run");
    let measured = Versions::from_json(&out.stdout).expect("parses");
    assert_eq!(measured.get("spark"), Some(entry.spark));
    let diffs = versions::compare_with_matrix(&entry.expected(), &measured);
    assert!(diffs.is_empty(), "{}", versions::render_differences(&diffs));
    // The extra package is recorded with the versions parity compares.
    assert_eq!(
        measured.extra.get("tabulate").map(String::as_str),
        Some("0.9.0"),
        "{measured:?}"
    );
}

#[test]
fn base_image_is_made_offline_when_it_cannot_be_pulled() {
    let Some(engine) = docker("base_image_is_made_offline_when_it_cannot_be_pulled") else {
        return;
    };
    if which("debootstrap").is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true but debootstrap is not installed (.ci/run installs it)");
        }
        eprintln!("SKIPPED base_image_is_made_offline…: debootstrap is not installed");
        return;
    }
    // A registry on a closed local port: the pull fails at once, locally.
    let reference = format!("127.0.0.1:9/sbxtest/debian:bookworm-{}", std::process::id());
    struct RemoveImage<'a>(&'a sparkbox::engine::DockerEngine, String);
    impl Drop for RemoveImage<'_> {
        fn drop(&mut self) {
            let _ = block_on(self.0.remove_image(&self.1));
        }
    }
    let _cleanup = RemoveImage(&engine, reference.clone());
    let (code, out, err) = run(sparkbox().args(["image", "base", "--base-image", &reference]));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(err.contains("could not be pulled"), "{err}");
    assert!(err.contains("debootstrap"), "{err}");
    let image = block_on(engine.image(&reference))
        .expect("inspect")
        .expect("imported");
    assert_eq!(
        image.labels.get(labels::IMAGE).map(String::as_str),
        Some("base")
    );
    let out = block_on(engine.run_to_completion(&reference, &["cat", "/etc/debian_version"]))
        .expect("run");
    assert!(
        out.stdout.trim().starts_with("12."),
        "not bookworm: {}",
        out.stdout
    );
}

#[test]
fn unmakeable_base_image_names_both_remedies() {
    if docker("unmakeable_base_image_names_both_remedies").is_none() {
        return;
    }
    let (code, _out, err) = run(sparkbox().args([
        "image",
        "base",
        "--base-image",
        "127.0.0.1:9/sbxtest/not-debian:nowhere",
    ]));
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("docker load") && err.contains("debootstrap"),
        "{err}"
    );
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}

#[test]
fn failing_build_step_shows_its_last_lines() {
    let Some(engine) = docker("failing_build_step_shows_its_last_lines") else {
        return;
    };
    ensure_default_image();
    // The sparkbox image runs as the unprivileged user `spark`, so using it as
    // a base makes the install step fail at once (apt-get needs root).
    let base = tag_for(&[]);
    let (code, out, err) = run(sparkbox().args(["build", "--base-image", &base]));
    assert_eq!(code, 5, "{out}\n{err}");
    assert!(err.contains("failed at step"), "{err}");
    assert!(
        err.contains("install-deps.sh"),
        "the failing step is not named: {err}"
    );
    assert!(err.contains("--- last lines of that step ---"), "{err}");
    assert!(
        err.to_lowercase().contains("permission denied"),
        "the step's own output is missing: {err}"
    );
    // Nothing of the failed build stays on its base: the builder's image of
    // the context copy (the CA bundle in it) is removed too.
    let base_id = block_on(engine.image(&base))
        .expect("inspect")
        .expect("the base")
        .id;
    let left: Vec<String> = block_on(engine.images(&[]))
        .expect("images")
        .into_iter()
        .filter(|i| i.parent_id.as_deref() == Some(base_id.as_str()))
        .map(|i| i.id)
        .collect();
    assert!(left.is_empty(), "the failed build left {left:?}");
}

#[test]
fn doctor_reports_the_engine_the_image_and_an_oversized_plan() {
    if docker("doctor_reports_the_engine_the_image_and_an_oversized_plan").is_none() {
        return;
    }
    ensure_default_image();
    let (code, out, err) = run(sparkbox().arg("doctor"));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("ok    docker: engine"), "{out}");
    assert!(
        out.contains(&format!("ok    image {}: present", tag_for(&[]))),
        "{out}"
    );
    let (code, out, _) = run(sparkbox().args(["doctor", "--workers", "16", "--memory", "64g"]));
    assert_eq!(code, 0, "warnings are not failures: {out}");
    assert!(
        out.contains("WARN  memory:") && out.contains("lower --workers or --memory"),
        "{out}"
    );
}
