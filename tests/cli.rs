//! CLI tests on the built binary: help, bad flags, bad values, exit codes.
//! None of these needs a Docker engine: bad input is refused before any call.

use assert_cmd::Command;
use predicates::prelude::*;

fn sparkbox() -> Command {
    let mut cmd = Command::cargo_bin("sparkbox").expect("the sparkbox binary is built");
    cmd.env_remove("SPARKBOX_NAME").env_remove("SPARKBOX_FILE");
    cmd
}

#[test]
fn help_lists_the_commands() {
    sparkbox()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("up").and(predicate::str::contains("build")))
        .stdout(predicate::str::contains("status").and(predicate::str::contains("down")));
}

#[test]
fn unknown_flag_is_a_usage_error() {
    sparkbox().args(["up", "--wrokers", "3"]).assert().code(2);
}

#[test]
fn unknown_spark_version_lists_the_supported_ones() {
    let supported = sparkbox::model::versions::supported_list();
    sparkbox()
        .args(["build", "--spark-version", "9.9.9"])
        // An unreachable engine proves the version is checked first.
        .env("DOCKER_HOST", "tcp://127.0.0.1:1")
        .assert()
        .code(4)
        .stderr(predicate::str::contains("Spark 9.9.9 is not supported"))
        .stderr(predicate::str::contains(supported));
}

#[test]
fn unreachable_docker_host_is_one_clear_line() {
    sparkbox()
        .args(["build"])
        .env("DOCKER_HOST", "tcp://127.0.0.1:1")
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "cannot reach the Docker engine at tcp://127.0.0.1:1",
        ))
        .stderr(predicate::str::contains("DOCKER_HOST"));
}

#[test]
fn missing_docker_socket_is_unreachable_not_a_panic() {
    sparkbox()
        .args(["status"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .assert()
        .code(3)
        .stderr(predicate::str::contains("/nonexistent/docker.sock"));
}

#[test]
fn bad_cluster_values_are_refused_before_any_engine_call() {
    let unreachable = ("DOCKER_HOST", "tcp://127.0.0.1:1");
    for (args, needle) in [
        (vec!["up", "--workers", "0"], "--workers 0 is out of range"),
        (
            vec!["up", "--memory", "lots"],
            "--memory \"lots\" is not a size",
        ),
        (
            vec!["up", "--name", "Bad_Name"],
            "cluster name \"Bad_Name\" is not usable",
        ),
        (vec!["up", "--cores", "0"], "--cores 0 is out of range"),
        (
            vec!["up", "--python-package", "x; rm -rf /"],
            "is not a plain requirement",
        ),
        (
            vec!["up", "--connect", "--spark-version", "3.5"],
            "Spark Connect needs Spark 4.0 or newer",
        ),
        (
            vec!["up", "--bind", "everywhere"],
            "--bind \"everywhere\" is not an IP address",
        ),
        (
            vec!["up", "--students", "65"],
            "--students 65 is out of range",
        ),
        (vec!["up", "--data", "Cargo.toml"], "Cargo.toml is a file"),
    ] {
        sparkbox()
            .args(&args)
            .env(unreachable.0, unreachable.1)
            .assert()
            .code(4)
            .stderr(predicate::str::contains(needle));
    }
}

#[test]
fn unreadable_ca_bundle_is_named() {
    sparkbox()
        .args(["build", "--ca-bundle", "/nonexistent/ca.pem"])
        .env("DOCKER_HOST", "tcp://127.0.0.1:1")
        .assert()
        .code(4)
        .stderr(predicate::str::contains("/nonexistent/ca.pem"));
}

#[test]
fn versions_prints_the_matrix() {
    let default = sparkbox::model::versions::default_entry();
    sparkbox()
        .arg("versions")
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "Spark {} (default)",
            default.spark
        )))
        .stdout(predicate::str::contains(default.py4j));
}

#[test]
fn permission_denied_on_the_socket_says_how_to_fix_it() {
    let socket = std::path::Path::new("/var/run/docker.sock");
    let is_root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    let setpriv = std::path::Path::new("/usr/bin/setpriv");
    if !socket.exists() || !is_root || !setpriv.exists() {
        let why = "needs root, setpriv and /var/run/docker.sock";
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true but the permission test cannot run: it {why}");
        }
        eprintln!("SKIPPED permission test: {why}");
        return;
    }
    let bin = assert_cmd::cargo::cargo_bin("sparkbox");
    // Run as "nobody", who may not use the root-owned socket.
    Command::new(setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(bin)
        .arg("status")
        .env_remove("DOCKER_HOST")
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "permission denied on the Docker socket",
        ))
        .stderr(predicate::str::contains("docker"));
}

#[test]
fn doctor_on_an_unreachable_engine_says_what_to_do() {
    sparkbox()
        .args(["doctor"])
        .env("DOCKER_HOST", "tcp://127.0.0.1:1")
        .assert()
        .code(3)
        .stdout(predicate::str::contains(
            "FAIL  docker: cannot reach the Docker engine",
        ))
        .stdout(predicate::str::contains("DOCKER_HOST"));
}

/// Every example in compose-examples/ loads, resolves and passes the checks
/// `up` makes before it touches the engine.
#[test]
fn every_compose_example_loads() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("compose-examples");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("compose-examples exists") {
        let file = entry.expect("dir entry").path().join("sparkbox.toml");
        if !file.is_file() {
            continue;
        }
        let out = sparkbox()
            .arg("-f")
            .arg(&file)
            .args(["config", "--json"])
            .env("DOCKER_HOST", "tcp://127.0.0.1:1")
            .output()
            .expect("runs");
        assert!(
            out.status.success(),
            "{} does not load: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let text = std::fs::read_to_string(&file).expect("readable");
        let name = v["name"].as_str().expect("a name").to_string();
        assert!(text.contains(&format!("name = \"{name}\"")), "{name}");
        seen.push(name);
    }
    seen.sort();
    assert_eq!(seen, ["ci", "laptop", "spark35", "workshop"]);
}

#[test]
fn the_file_is_found_in_the_current_directory_and_flags_override_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("sparkbox.toml"),
        "[cluster]\nname = \"here\"\nworkers = 3\n[image]\nspark_version = \"3.5\"\n[volumes]\ndata = \"d\"\n",
    )
    .expect("write");
    let out = sparkbox()
        .current_dir(dir.path())
        .args(["config", "--json", "--workers", "1"])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["name"], "here");
    assert_eq!(v["workers"], 1, "the flag wins over the file");
    assert!(v["image"]["spark_version"]
        .as_str()
        .is_some_and(|s| s.starts_with("3.5.")));
    let data = v["volumes"]["data"].as_str().expect("data dir");
    assert!(data.ends_with("/d") && data.starts_with('/'), "{data}");
    // The printed TOML is itself a valid file that resolves the same.
    let toml_out = sparkbox()
        .current_dir(dir.path())
        .args(["config"])
        .output()
        .expect("runs");
    std::fs::write(dir.path().join("again.toml"), &toml_out.stdout).expect("write");
    sparkbox()
        .current_dir(dir.path())
        .args(["-f", "again.toml", "config", "--json"])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"workers\": 3"));
}

#[test]
fn a_bad_file_names_file_line_column_and_the_accepted_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("sparkbox.toml");
    std::fs::write(
        &file,
        "# my cluster\n[cluster]\nname = \"x\"\nworkers = \"two\"\n",
    )
    .expect("write");
    sparkbox()
        .arg("-f")
        .arg(&file)
        .arg("up")
        .env("DOCKER_HOST", "tcp://127.0.0.1:1")
        .assert()
        .code(4)
        .stderr(predicate::str::contains(format!("{}:4:11", file.display())))
        .stderr(predicate::str::contains("invalid type"))
        .stderr(predicate::str::contains("workers (integer)"));
    std::fs::write(
        &file,
        "[cluster]\nname = \"x\"\n\n[jupyter]\n  tokn = \"abcdefgh\"\n",
    )
    .expect("write");
    sparkbox()
        .current_dir(dir.path())
        .arg("status")
        .env("DOCKER_HOST", "tcp://127.0.0.1:1")
        .assert()
        .code(4)
        .stderr(predicate::str::contains("sparkbox.toml:5:3"))
        .stderr(predicate::str::contains("unknown field `tokn`"))
        .stderr(predicate::str::contains("[jupyter] token"));
    sparkbox()
        .args(["-f", "/nonexistent/sparkbox.toml", "status"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("does not exist"));
}

#[test]
fn image_prune_checks_its_settings_before_the_engine_and_says_where_the_engine_is() {
    // The image to keep is named by the settings: a bad one is refused
    // first (the unreachable engine proves no call was made).
    sparkbox()
        .args(["image", "prune", "--spark-version", "9.9.9"])
        .env("DOCKER_HOST", "tcp://127.0.0.1:1")
        .assert()
        .code(4)
        .stderr(predicate::str::contains("Spark 9.9.9 is not supported"));
    sparkbox()
        .args(["image", "prune", "--all", "--dry-run"])
        .env("DOCKER_HOST", "tcp://127.0.0.1:1")
        .assert()
        .code(3)
        .stderr(predicate::str::contains("DOCKER_HOST"));
    sparkbox()
        .args(["image", "prune", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--all").and(predicate::str::contains("--dry-run")));
}

/// What bash offers for the words of `line` (the last one being completed),
/// with sparkbox's completion script sourced in a real bash.
fn bash_completes(line: &str) -> Vec<String> {
    let bin = assert_cmd::cargo::cargo_bin("sparkbox");
    let script = format!(
        r#"set -e
source <("{bin}" completions bash)
spec=$(complete -p sparkbox)
func=$(printf '%s\n' "$spec" | sed -n 's/.*-F \([^ ]*\).*/\1/p')
read -r -a COMP_WORDS <<< "{line}"
case "{line}" in *" ") COMP_WORDS+=("") ;; esac
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="{line}"
COMP_POINT=${{#COMP_LINE}}
prev=""
[ "$COMP_CWORD" -gt 0 ] && prev="${{COMP_WORDS[COMP_CWORD-1]}}"
"$func" sparkbox "${{COMP_WORDS[COMP_CWORD]}}" "$prev"
printf '%s\n' "${{COMPREPLY[@]}}"
"#,
        bin = bin.display()
    );
    let out = std::process::Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &script])
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "bash: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn bash_completes_commands_and_flags() {
    let commands = bash_completes("sparkbox st");
    for c in ["status", "start", "stop"] {
        assert!(
            commands.iter().any(|w| w == c),
            "{c} not offered: {commands:?}"
        );
    }
    assert!(
        !commands.iter().any(|w| w == "down"),
        "offered what does not match: {commands:?}"
    );
    let flags = bash_completes("sparkbox up --wor");
    assert!(
        flags.iter().any(|w| w == "--workers"),
        "--workers not offered: {flags:?}"
    );
    let image = bash_completes("sparkbox image ");
    for c in ["push", "prune", "save", "load"] {
        assert!(image.iter().any(|w| w == c), "{c} not offered: {image:?}");
    }
    // The other shells' scripts are made too.
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        sparkbox()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains("sparkbox"));
    }
    // A broken sparkbox.toml does not break completion.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("sparkbox.toml"), "[cluster\n").expect("write");
    sparkbox()
        .current_dir(dir.path())
        .args(["completions", "bash"])
        .assert()
        .success();
}

#[test]
fn man_pages_cover_every_command() {
    sparkbox()
        .arg("man")
        .assert()
        .success()
        .stdout(predicate::str::contains(".TH sparkbox 1"))
        .stdout(predicate::str::contains("sparkbox\\-up(1)"));
    let dir = tempfile::tempdir().expect("tempdir");
    let pages = dir.path().join("man1");
    sparkbox()
        .args(["man", "--dir"])
        .arg(&pages)
        .assert()
        .success()
        .stdout(predicate::str::contains("man pages"));
    let up = std::fs::read_to_string(pages.join("sparkbox-up.1")).expect("sparkbox-up.1");
    assert!(up.contains("\\-\\-workers"), "{up}");
    let push = std::fs::read_to_string(pages.join("sparkbox-image-push.1"))
        .expect("sparkbox-image-push.1");
    assert!(push.contains(".TH sparkbox-image-push 1"), "{push}");
    // man itself reads them, where it is installed.
    if std::process::Command::new("man")
        .arg("--version")
        .output()
        .is_ok()
    {
        let out = std::process::Command::new("man")
            .args(["-P", "cat", "-l"])
            .arg(pages.join("sparkbox-up.1"))
            .env("MANWIDTH", "100")
            .output()
            .expect("man runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("--workers"), "{text}");
    }
}
