//! The GitHub Action (action.yml) proven here: its steps are the scripts in
//! action/, run in the order action.yml runs them, with what the runner
//! gives them (RUNNER_TEMP, GITHUB_OUTPUT, the inputs as variables) — all
//! but GitHub's own parts (installing sparkbox, actions/cache,
//! upload-artifact). The cluster comes up with Spark Connect, the outputs
//! name its URLs, the job's command reaches the cluster through
//! SPARK_REMOTE, a failed job leaves the bundle, and down removes it all.

mod common;

use std::path::Path;
use std::process::Command;

use common::{
    cluster_name, connect_python, container_ids, docker, ensure_default_image, ClusterGuard,
};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs one step's script as the runner would; (exit code, what it said).
fn step(script: &str, temp: &Path, output: &Path, env: &[(&str, &str)]) -> (i32, String) {
    let bin = assert_cmd::cargo::cargo_bin("sparkbox");
    let out = Command::new(repo().join("action").join(script))
        .current_dir(temp)
        .env("RUNNER_TEMP", temp)
        .env("GITHUB_OUTPUT", output)
        .env("SPARKBOX", &bin)
        .env_remove("SPARKBOX_FILE")
        .envs(env.iter().copied())
        .output()
        .expect("the step runs");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The outputs written so far, as key=value lines.
fn outputs(file: &Path) -> std::collections::BTreeMap<String, String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn action_yml_runs_the_tested_scripts_in_order() {
    let yml = std::fs::read_to_string(repo().join("action.yml")).expect("action.yml");
    let mut at = 0;
    for script in ["settings.sh", "up.sh", "bundle.sh", "down.sh"] {
        let found = yml[at..]
            .find(&format!("$GITHUB_ACTION_PATH/action/{script}"))
            .unwrap_or_else(|| panic!("action.yml does not run {script} after the step before"));
        at += found;
        assert!(repo().join("action").join(script).is_file(), "{script}");
    }
    // The job's command runs between up and the bundle, and down always runs.
    let run = yml.find("run: ${{ inputs.run }}").expect("the run step");
    let up = yml.find("action/up.sh").expect("up");
    let bundle = yml.find("action/bundle.sh").expect("bundle");
    assert!(up < run && run < bundle, "steps out of order");
    let down = yml.find("- name: Cluster down").expect("down step");
    assert!(
        yml[down..].contains("if: always()"),
        "down does not always run"
    );
    for output in ["connect-url", "jupyter-url", "master-url", "master-ui-url"] {
        assert!(
            yml.contains(&format!("steps.up.outputs.{output}")),
            "{output}"
        );
    }
}

#[test]
fn the_action_steps_bring_a_cluster_up_run_the_job_and_tear_it_down() {
    let Some(_engine) = docker("the_action_steps_bring_a_cluster_up_run_the_job_and_tear_it_down")
    else {
        return;
    };
    let Some(python) = connect_python() else {
        panic!("no Spark Connect client: run .ci/prepare (it makes target/connect-client)");
    };
    ensure_default_image();
    let name = cluster_name("action");
    let _guard = ClusterGuard::new(&name);
    let temp = tempfile::tempdir().expect("tempdir");
    let output = temp.path().join("github-output");
    let inputs = [
        ("SPARKBOX_WORKERS", "1"),
        ("SPARKBOX_SPARK_VERSION", ""),
        ("SPARKBOX_CONNECT", "true"),
        ("SPARKBOX_HISTORY", "false"),
        ("SPARKBOX_REGISTRY", ""),
        ("SPARKBOX_ACTION_FILE", ""),
        ("SPARKBOX_NAME", name.as_str()),
        ("SPARKBOX_TIMEOUT", "300"),
    ];
    let (code, said) = step("settings.sh", temp.path(), &output, &inputs);
    assert_eq!(code, 0, "{said}");
    let key = outputs(&output).get("key").cloned().unwrap_or_default();
    assert!(key.starts_with("sparkbox_jupyter-spark_"), "{key}");

    // Later steps get nothing but what the runner gives every step.
    let (code, said) = step("up.sh", temp.path(), &output, &[]);
    assert_eq!(code, 0, "up.sh:\n{said}");
    let out = outputs(&output);
    let connect = out.get("connect-url").cloned().unwrap_or_default();
    assert!(connect.starts_with("sc://"), "{out:?}");
    assert!(out["jupyter-url"].contains("token="), "{out:?}");
    assert_eq!(out["master-url"], format!("spark://{name}-master:7077"));
    assert!(
        out["master-ui-url"].starts_with("http://127.0.0.1:"),
        "{out:?}"
    );
    // The image went to the cache (so the next run loads, not builds, it).
    let cache = temp.path().join("sparkbox-image");
    let cached: Vec<_> = std::fs::read_dir(&cache)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert_eq!(
        cached[0].to_string_lossy(),
        format!("{key}.sbximage"),
        "the cache key names the cached image"
    );

    // The job's command, as the Run step gives it the cluster.
    let job = Command::new(&python)
        .args([
            "-c",
            "import os; from pyspark.sql import SparkSession; \
             s = SparkSession.builder.remote(os.environ['SPARK_REMOTE']).getOrCreate(); \
             print('sum', s.range(100).selectExpr('sum(id)').first()[0])",
        ])
        .env("SPARK_REMOTE", &connect)
        .output()
        .expect("the job runs");
    let job_said = String::from_utf8_lossy(&job.stdout);
    assert!(
        job.status.success() && job_said.contains("sum 4950"),
        "{job_said}\n{}",
        String::from_utf8_lossy(&job.stderr)
    );

    // A failed job: the bundle for the artifact, then down (always).
    let (code, said) = step("bundle.sh", temp.path(), &output, &[]);
    assert_eq!(code, 0, "bundle.sh:\n{said}");
    let bundle = temp.path().join("sparkbox-bundle");
    assert!(bundle.join("status.json").is_file(), "{said}");
    assert!(bundle.join(format!("{name}-connect.log")).is_file());
    let (code, said) = step("down.sh", temp.path(), &output, &[]);
    assert_eq!(code, 0, "down.sh:\n{said}");
    assert!(container_ids(&name).is_empty(), "containers left: {said}");
}
