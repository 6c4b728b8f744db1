//! Shared helpers of the real-Docker tests: the Docker gate (required under
//! CI=true, skipped with a printed reason elsewhere), the sparkbox binary, and
//! a guard that removes everything a test made, by label, even on failure.
#![allow(dead_code)]

pub mod lab;
pub mod podman;
pub mod registry;
pub mod swarm;

use std::sync::Mutex;
use std::time::Duration;

use sparkbox::engine::{DockerEngine, Engine};
use sparkbox::model::labels;

/// Serialises image builds within one test binary.
static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// Runs a future on a private runtime (tests themselves are synchronous).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(f)
}

/// A connected engine, or None (with the reason printed) when the test should
/// be skipped. Under CI=true an unreachable engine fails the test instead.
pub fn docker(test: &str) -> Option<DockerEngine> {
    match block_on(DockerEngine::connect()) {
        Ok(engine) => Some(engine),
        Err(e) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true requires the Docker tests to run, but: {e}");
            }
            eprintln!("SKIPPED {test}: no Docker engine ({e})");
            None
        }
    }
}

/// The sparkbox binary with plain progress output.
pub fn sparkbox() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("sparkbox").expect("binary");
    cmd.env_remove("SPARKBOX_NAME")
        .env_remove("SPARKBOX_FILE")
        .env_remove("DOCKER_HOST")
        .arg("--progress")
        .arg("plain")
        .timeout(Duration::from_secs(1500));
    cmd
}

/// Builds the default image once per test binary (a no-op when it exists).
pub fn ensure_default_image() {
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let out = sparkbox()
        .arg("build")
        .output()
        .expect("sparkbox build runs");
    assert!(
        out.status.success(),
        "sparkbox build failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Output of a finished command as text: (exit code, stdout, stderr).
pub fn run(cmd: &mut assert_cmd::Command) -> (i32, String, String) {
    let out = cmd.output().expect("command runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A unique cluster name for one test.
pub fn cluster_name(test: &str) -> String {
    format!("sbxt-{}-{test}", std::process::id())
}

/// Removes every container, network and volume labelled with the cluster
/// when dropped — also when the test panics.
pub struct ClusterGuard {
    /// The cluster name.
    pub name: String,
}

impl ClusterGuard {
    /// Guards `name`.
    pub fn new(name: &str) -> ClusterGuard {
        ClusterGuard {
            name: name.to_string(),
        }
    }
}

/// Removes all objects labelled with cluster `name`.
pub fn remove_cluster_by_label(name: &str) {
    block_on(async {
        let Ok(engine) = DockerEngine::connect().await else {
            return;
        };
        let filter = [(labels::CLUSTER, name)];
        if let Ok(containers) = engine.containers(&filter).await {
            for c in containers {
                let _ = engine.remove_container(&c.name).await;
            }
        }
        if let Ok(networks) = engine.networks(&filter).await {
            for n in networks {
                let _ = engine.remove_network(&n).await;
            }
        }
        if let Ok(volumes) = engine.volumes(&filter).await {
            for v in volumes {
                let _ = engine.remove_volume(&v).await;
            }
        }
    });
}

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        remove_cluster_by_label(&self.name);
    }
}

/// Runs a command in a container (as `user`) through the engine API.
pub fn exec_as(container: &str, user: &str, command: &[&str]) -> (i64, String, String) {
    block_on(async {
        let engine = DockerEngine::connect().await.expect("engine");
        let out = sparkbox::engine::docker::exec_as(&engine, container, user, command)
            .await
            .expect("exec runs");
        (out.exit_code, out.stdout, out.stderr)
    })
}

/// One process of a container, read from its /proc.
#[derive(Debug)]
pub struct Process {
    pub pid: u32,
    /// Its effective uid.
    pub uid: u32,
    /// Its effective capabilities (the CapEff mask).
    pub caps: u64,
    pub name: String,
}

/// Every process of `container` (the reading shell and awk among them, as
/// `spark`).
pub fn processes(container: &str) -> Vec<Process> {
    let (code, out, err) = exec_as(
        container,
        "spark",
        &[
            "sh",
            "-c",
            "for s in /proc/[0-9]*/status; do awk '/^Name:/{n=$2} /^Pid:/{p=$2} /^Uid:/{u=$3} /^CapEff:/{e=$2} END{print p, u, e, n}' \"$s\" 2>/dev/null; done",
        ],
    );
    assert_eq!(code, 0, "{container}: {err}");
    out.lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let [pid, uid, caps, name] = f[..] else {
                panic!("{container}: unreadable line {l:?} in\n{out}")
            };
            Process {
                pid: pid.parse().expect("a pid"),
                uid: uid.parse().expect("a uid"),
                caps: u64::from_str_radix(caps, 16).expect("a capability mask"),
                name: name.to_string(),
            }
        })
        .collect()
}

/// Executes the notebook at `path` in Jupyter container `jupyter`, headless
/// (`jupyter nbconvert --execute`), and returns the executed notebook.
pub fn execute_notebook(jupyter: &str, path: &str) -> serde_json::Value {
    let (code, out, err) = exec_as(
        jupyter,
        "spark",
        &[
            "jupyter",
            "nbconvert",
            "--to",
            "notebook",
            "--execute",
            "--stdout",
            "--ExecutePreprocessor.timeout=300",
            path,
        ],
    );
    assert_eq!(code, 0, "{path} failed:\n{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{path} output ({e}): {out}"))
}

/// Container name → ID for a cluster.
pub fn container_ids(cluster: &str) -> std::collections::BTreeMap<String, String> {
    block_on(async {
        let engine = DockerEngine::connect().await.expect("engine");
        engine
            .containers(&[(labels::CLUSTER, cluster)])
            .await
            .expect("list")
            .into_iter()
            .map(|c| (c.name, c.id))
            .collect()
    })
}

/// GET a path from 127.0.0.1:port (with a Jupyter token if given): the
/// status line, headers and body, or "" when nothing answers.
pub fn http_get(port: u16, path: &str, token: Option<&str>) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    stream.set_read_timeout(Some(Duration::from_secs(20))).ok();
    let auth = token
        .map(|t| format!("Authorization: token {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{auth}\r\n"
    )
    .ok();
    let mut text = String::new();
    stream.read_to_string(&mut text).ok();
    text
}

/// The default image's tag, as `sparkbox image tag` prints it.
pub fn default_tag() -> String {
    let (code, out, err) = run(sparkbox().args(["image", "tag"]));
    assert_eq!(code, 0, "image tag failed: {err}");
    out.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The host Python with pytest and the Spark Connect client (`.ci/prepare`
/// installs it in target/connect-client), or SPARKBOX_TEST_CONNECT_PYTHON.
pub fn connect_python() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("SPARKBOX_TEST_CONNECT_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target/connect-client/bin/python")
        });
    path.exists().then_some(path)
}
