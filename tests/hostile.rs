//! Hostile input, as property tests in the normal test run: mutated cluster
//! files, and containers someone else made with sparkbox's labels and odd
//! values. No command panics or hangs; a refused value from the file is named
//! by its file and key; a container whose labels sparkbox cannot read as one
//! of its own is never changed by `status` or `up`.
//!
//! More cases than the CI default: `PROPTEST_CASES=5000 cargo test --release
//! --test hostile`.

// The library's one error type is large; these checks only match on it.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;
use sparkbox::cli::{ClusterArgs, NameArg};
use sparkbox::engine::fake::FakeEngine;
use sparkbox::engine::{ContainerSpec, Engine};
use sparkbox::model::labels;
use sparkbox::ops::{lifecycle, status};
use sparkbox::progress::{Progress, ProgressMode};
use sparkbox::settings::{Config, Settings};
use sparkbox::Error;

/// PROPTEST_CASES, else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default)
}

/// A cluster file with every key set to a value `up` accepts.
const GOOD: &str = r#"[cluster]
name = "fuzzed"
workers = 2
cores = 1
memory = "1g"
timeout = 60
history = false
connect = false
bind = "127.0.0.1"
engine = "local"
workers_per_node = 1
[image]
spark_version = "4.3.0"
base_image = "debian:bookworm-slim"
python_packages = ["numpy"]
registry = "127.0.0.1:5000/sparkbox"
[ports]
master_ui = 8080
jupyter = 8888
app_ui = 4040
history = 18080
connect = 15002
[jupyter]
token = "abcdefgh123"
[apps]
cores = 1
executor_memory = "512m"
conf = { "spark.sql.shuffle.partitions" = "8" }
[volumes]
notebooks = "fuzzed-notebooks"
data = "data"
[classroom]
students = 0
"#;

/// Values a user (or a typo) may put anywhere.
fn odd_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\"\"".to_string()),
        Just("-5".to_string()),
        Just("0".to_string()),
        Just("99999999999999999999".to_string()),
        Just("4294967296".to_string()),
        Just("65536".to_string()),
        Just("true".to_string()),
        Just("3.5".to_string()),
        Just("[1, \"x\"]".to_string()),
        Just("{ a = 1 }".to_string()),
        Just("\"../../etc\"".to_string()),
        Just("\"-5g\"".to_string()),
        Just("\"99999999999999999t\"".to_string()),
        Just("\"0.0.0.0\"".to_string()),
        Just("\"spark.x y\"".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        "[a-zA-Z0-9./:_ -]{0,16}".prop_map(|s| format!("{s:?}")),
        "\\PC{0,8}".prop_map(|s| format!("{s:?}")),
    ]
}

/// One mutation of the good file.
#[derive(Debug, Clone)]
enum Mutation {
    /// The value of the n-th `key = value` line replaced.
    Value(usize, String),
    /// The n-th line dropped.
    Drop(usize),
    /// A line inserted before the n-th.
    Insert(usize, String),
    /// The character at a position replaced.
    Char(usize, char),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (0..40usize, odd_value()).prop_map(|(n, v)| Mutation::Value(n, v)),
        1 => (0..40usize).prop_map(Mutation::Drop),
        1 => (0..40usize, prop_oneof![
            Just("[cluster]".to_string()),
            Just("unknown = 1".to_string()),
            "[a-z_]{1,10} = [0-9]{1,3}".prop_map(|s| s),
        ]).prop_map(|(n, l)| Mutation::Insert(n, l)),
        1 => (0..GOOD.len(), any::<char>()).prop_map(|(n, c)| Mutation::Char(n, c)),
    ]
}

fn mutate(text: &str, mutations: &[Mutation]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for m in mutations {
        match m {
            Mutation::Value(n, v) => {
                let assignments: Vec<usize> = (0..lines.len())
                    .filter(|&i| lines[i].contains(" = "))
                    .collect();
                if let Some(&i) = assignments.get(n % assignments.len().max(1)) {
                    let key = lines[i].split(" = ").next().unwrap_or("").to_string();
                    lines[i] = format!("{key} = {v}");
                }
            }
            Mutation::Drop(n) if !lines.is_empty() => {
                let i = n % lines.len();
                lines.remove(i);
            }
            Mutation::Insert(n, l) => {
                let i = n % (lines.len() + 1);
                lines.insert(i, l.clone());
            }
            Mutation::Char(n, c) => {
                let joined = lines.join("\n");
                let mut chars: Vec<char> = joined.chars().collect();
                if !chars.is_empty() {
                    let i = n % chars.len();
                    chars[i] = *c;
                }
                lines = chars
                    .into_iter()
                    .collect::<String>()
                    .lines()
                    .map(str::to_string)
                    .collect();
            }
            Mutation::Drop(_) => {}
        }
    }
    lines.join("\n") + "\n"
}

#[test]
fn the_good_file_is_accepted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sparkbox.toml");
    std::fs::write(&path, GOOD).expect("write");
    let config = Config::load(Some(&path)).expect("the good file loads");
    Settings::resolve(&config, &ClusterArgs::default()).expect("the good file resolves");
}

/// A value from the file that is refused is named by the file (and, for a
/// value, by its key); nothing panics.
fn check_file(text: &str) -> std::result::Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sparkbox.toml");
    std::fs::write(&path, text).expect("write");
    let shown = path.display().to_string();
    let config = match Config::load(Some(&path)) {
        Ok(c) => c,
        Err(Error::InvalidInput(m)) => {
            prop_assert!(
                m.starts_with(&shown),
                "a parse error without its place: {m}"
            );
            return Ok(());
        }
        Err(other) => return Err(TestCaseError::fail(format!("not a refusal: {other}"))),
    };
    let outcomes = [
        config.cluster_name(&NameArg::default()).map(|_| ()).err(),
        Settings::resolve(&config, &ClusterArgs::default())
            .and_then(|s| s.image.recipe().map(|_| ()))
            .err(),
    ];
    for e in outcomes.into_iter().flatten() {
        match e {
            Error::InvalidInput(m) => {
                let named = m.contains(&format!("{shown} ["));
                prop_assert!(named, "a file value refused without its file and key: {m}");
                prop_assert!(
                    !m.starts_with("--"),
                    "a file value refused as if a flag gave it: {m}"
                );
            }
            other => return Err(TestCaseError::fail(format!("not a refusal: {other}"))),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(1000)))]

    #[test]
    fn mutated_cluster_files_are_refused_by_file_and_key(
        mutations in proptest::collection::vec(mutation(), 1..4)
    ) {
        check_file(&mutate(GOOD, &mutations))?;
    }
}

/// Each value that once named a flag when it came from the file.
#[test]
fn file_values_are_named_by_file_and_key() {
    for (key, value) in [
        ("name", "\"../../etc\""),
        ("bind", "\"-5g\""),
        ("workers", "0"),
        ("cores", "0"),
        ("memory", "\"-5g\""),
        ("memory", "\"99999999999999999t\""),
    ] {
        let text = GOOD
            .lines()
            .map(|l| {
                if l.starts_with(&format!("{key} = ")) && !l.contains("spark.") {
                    format!("{key} = {value}")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sparkbox.toml");
        std::fs::write(&path, &text).expect("write");
        let config = Config::load(Some(&path)).expect("loads");
        let err = Settings::resolve(&config, &ClusterArgs::default())
            .expect_err(&format!("{key} = {value} accepted"))
            .to_string();
        assert!(
            err.contains(&format!("{} [cluster] {key} = ", path.display())),
            "{key} = {value}: {err}"
        );
    }
}

/// A command on the fake engine ends within a minute, whatever it finds.
fn bounded<F: std::future::Future>(f: F) -> tokio::time::Timeout<F> {
    tokio::time::timeout(Duration::from_secs(60), f)
}

fn quiet() -> Progress {
    Progress::new(ProgressMode::Quiet, false)
}

/// Label values someone else may have put on a container.
fn odd_label() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("-1".to_string()),
        Just("0".to_string()),
        Just("1".to_string()),
        Just("99999999999999999999".to_string()),
        Just("master".to_string()),
        Just("worker".to_string()),
        Just("jupyter".to_string()),
        Just("history".to_string()),
        Just("swarm".to_string()),
        Just("{}".to_string()),
        Just("{\"workers\": -3}".to_string()),
        Just("{\"workers\": 4294967296, \"students\": 99999}".to_string()),
        Just("0:0".to_string()),
        Just("a:b:c".to_string()),
        Just("../../etc".to_string()),
        "\\PC{0,12}",
        "[0-9]{1,6}",
    ]
}

fn label_key() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just(labels::ROLE),
        Just(labels::INDEX),
        Just(labels::CONFIG_HASH),
        Just(labels::TOKEN),
        Just(labels::IMAGE_REF),
        Just(labels::UI_PORT),
        Just(labels::JUPYTER_PORT),
        Just(labels::APP_UI_PORT),
        Just(labels::WORKER_CORES),
        Just(labels::WORKER_MEMORY),
        Just(labels::DATA_DIR),
        Just(labels::HOST_USER),
        Just(labels::BIND),
        Just(labels::SECRET),
        Just(labels::NOTEBOOKS),
        Just(labels::SERVICE_PORT),
        Just(labels::RECORD),
        Just(labels::ENGINE),
        Just(labels::NODE),
        Just(labels::WORKERS_PER_NODE),
        Just(labels::IMAGE_ID),
        Just(labels::IMAGE_DIGEST),
    ]
}

/// True when sparkbox would read these labels as one of its own containers.
fn reads_as_ours(l: &HashMap<String, String>) -> bool {
    let view = labels::Labelled(l);
    match view.role() {
        None => false,
        Some(sparkbox::model::spec::Role::Worker) => view.index().is_some(),
        Some(_) => true,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(64)))]

    #[test]
    fn foreign_containers_with_odd_labels_break_nothing(
        foreign in proptest::collection::vec(
            proptest::collection::hash_map(label_key(), odd_label(), 0..6),
            1..4,
        ),
        with_cluster in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let engine = FakeEngine::new();
            let name = "hostile";
            let data = tempfile::tempdir().expect("tempdir");
            let args = ClusterArgs {
                name: NameArg { name: Some(name.to_string()) },
                workers: Some(2),
                data: Some(data.path().join("data")),
                timeout: Some(2),
                ..Default::default()
            };
            if with_cluster {
                sparkbox::ops::up::up(&engine, &Config::default(), &args, false, &quiet())
                    .await
                    .expect("a cluster on the fake engine");
            }
            engine.add_image("someone/else:1", HashMap::new());
            let mut theirs = Vec::new();
            for (i, labels_of) in foreign.iter().enumerate() {
                let mut l: HashMap<String, String> = labels_of
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect();
                l.insert(labels::CLUSTER.to_string(), name.to_string());
                let spec = ContainerSpec {
                    name: format!("someone-else-{i}"),
                    image: "someone/else:1".into(),
                    labels: l.clone(),
                    ..Default::default()
                };
                engine.create_container(&spec).await.expect("a foreign container");
                if !reads_as_ours(&l) {
                    theirs.push(spec.name.clone());
                }
            }
            engine.clear_log();
            bounded(status::collect(&engine, name)).await.expect("status ends").ok();
            bounded(sparkbox::ops::up::up(&engine, &Config::default(), &args, true, &quiet()))
                .await
                .expect("a dry run ends")
                .ok();
            bounded(sparkbox::ops::up::up(&engine, &Config::default(), &args, false, &quiet()))
                .await
                .expect("up ends")
                .ok();
            bounded(status::collect(&engine, name)).await.expect("status ends").ok();
            let touched: Vec<String> = engine
                .mutations()
                .into_iter()
                .filter(|m| theirs.iter().any(|t| m.ends_with(&format!(" {t}"))))
                .collect();
            prop_assert!(
                touched.is_empty(),
                "status or up changed a container that is not sparkbox's: {touched:?}"
            );
            bounded(lifecycle::ls(&engine)).await.expect("ls ends").ok();
            bounded(lifecycle::stop(&engine, name, &quiet())).await.expect("stop ends").ok();
            bounded(lifecycle::down(&engine, name, false, &quiet()))
                .await
                .expect("down ends")
                .ok();
            Ok(())
        })?;
    }
}
