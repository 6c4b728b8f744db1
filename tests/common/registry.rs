//! A real container registry for a test: Debian's `docker-registry` (the
//! distribution registry) on a free 127.0.0.1 port — the engine trusts
//! 127.0.0.0/8 registries over plain http — with its storage in a temporary
//! directory, optionally behind htpasswd basic auth. Stopped by the PID it
//! started when dropped, also when the test panics.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One running registry.
pub struct TestRegistry {
    /// "127.0.0.1:PORT".
    pub host: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// The registry program, or None (the reason printed) when the test should
/// be skipped; under CI=true a missing program fails the test.
fn program(test: &str) -> Option<&'static str> {
    let found = Command::new("docker-registry")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("docker-registry");
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true requires the registry tests to run, but docker-registry is not installed (.ci/prepare installs it)");
    }
    eprintln!("SKIPPED {test}: docker-registry is not installed (apt-get install docker-registry)");
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl TestRegistry {
    /// Starts a registry; with `auth`, one that wants that user and password.
    pub fn start(test: &str, auth: Option<(&str, &str)>) -> Option<TestRegistry> {
        let program = program(test)?;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: {host}, secret: sbx-test}}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = auth {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("htpasswd runs (apt-get install apache2-utils)");
            assert!(out.status.success(), "htpasswd failed");
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, &out.stdout).expect("htpasswd file");
            config.push_str(&format!(
                "auth: {{htpasswd: {{realm: sparkbox-test, path: {}}}}}\n",
                file.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log");
        let child = Command::new(program)
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the registry starts");
        let registry = TestRegistry {
            host,
            dir,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&registry.host).is_err() {
            assert!(
                Instant::now() < deadline,
                "the registry did not listen on {}: {}",
                registry.host,
                registry.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(registry)
    }

    /// What the registry logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// A Docker client configuration directory holding `user`:`password`
    /// for this registry (as `docker login` writes it), for DOCKER_CONFIG.
    pub fn docker_config(&self, user: &str, password: &str) -> tempfile::TempDir {
        use base64::Engine as _;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let config = serde_json::json!({"auths": {self.host.clone(): {"auth": auth}}});
        std::fs::write(dir.path().join("config.json"), config.to_string()).expect("config.json");
        dir
    }

    /// Stops it (by the PID it started); its storage stays for a restart.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}
