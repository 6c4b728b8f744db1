//! `sparkbox doctor`'s findings: what this machine offers against what a
//! cluster needs, each finding with what to do about it. The facts are read
//! in [`check`]; each finding is a pure function of them, so the thresholds
//! and the words are tested without an engine.

// The lead moves these out of commands/ at the merge; until then they are
// reached there.
use crate::engine::{Engine, EngineInfo, SystemInfo};
use crate::error::Result;
use crate::image::base;
use crate::model::labels::{self, Labelled};
use crate::model::recipe::ImageRecipe;
use crate::model::spec::{self, Role};
use crate::ops::lifecycle::cluster_lines;
use crate::ops::urls::connect_requirement;
use crate::settings::Settings;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Fine.
    Ok,
    /// Works, but watch out.
    Warn,
    /// A cluster will not work until this is fixed.
    Fail,
}

/// One finding.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Severity.
    pub level: Level,
    /// What was found, and what to do.
    pub text: String,
}

impl Finding {
    /// The line `doctor` prints: "ok  ", "WARN" or "FAIL", then the text.
    pub fn line(&self) -> String {
        let word = match self.level {
            Level::Ok => "ok  ",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        };
        format!("{word}  {}", self.text)
    }
}

fn finding(level: Level, text: impl Into<String>) -> Finding {
    Finding {
        level,
        text: text.into(),
    }
}

/// The engine itself: where it is and which API it speaks.
pub fn engine_finding(info: &EngineInfo) -> Finding {
    if info.podman {
        return finding(
            Level::Ok,
            format!(
                "podman: engine {} at {}, Docker API {} — what differs from Docker: no swarm; no health status without systemd (sparkbox checks readiness itself); the restart policy is given at create time; each exec (sparkbox's readiness checks, exec, submit) keeps two conmon processes for exit_command_delay seconds, 300 by default (`exit_command_delay = 10` under [engine] in containers.conf shortens it)",
                info.server_version, info.host, info.api_version
            ),
        );
    }
    finding(
        Level::Ok,
        format!(
            "docker: engine {} at {}, API {}",
            info.server_version, info.host, info.api_version
        ),
    )
}

/// Memory and cores wanted by `workers` workers of `memory_mb`, against what
/// the engine has (pure, so the thresholds are tested).
pub fn capacity_findings(workers: u32, memory_mb: u64, ncpu: i64, mem_total: i64) -> Vec<Finding> {
    // Master, Jupyter/driver and the JVM overheads want about 2 GiB beside the workers.
    let wanted_mb = u64::from(workers) * memory_mb + 2048;
    let have_mb = (mem_total.max(0) as u64) / (1024 * 1024);
    let mut out = vec![if wanted_mb > have_mb {
        finding(
            Level::Warn,
            format!("memory: {workers} workers × {} plus about 2 GiB for the master and Jupyter need {wanted_mb} MiB, the engine has {have_mb} MiB — lower --workers or --memory", spec::format_memory_mb(memory_mb)),
        )
    } else {
        finding(
            Level::Ok,
            format!("memory: {have_mb} MiB for about {wanted_mb} MiB wanted"),
        )
    }];
    out.push(if i64::from(workers) > ncpu * 2 {
        finding(
            Level::Warn,
            format!("cores: {workers} workers on {ncpu} cores will start slowly and compete — fewer workers with more --cores each do the same work"),
        )
    } else {
        finding(Level::Ok, format!("cores: {ncpu}"))
    });
    out
}

/// Free space of the file system holding `path`, in MiB (from `df`).
fn free_mb(path: &str) -> Option<u64> {
    let out = std::process::Command::new("df")
        .args(["-Pk", path])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let kb: u64 = text
        .lines()
        .nth(1)?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some(kb / 1024)
}

/// Free space under the engine's data root (`free_mb` None: not measurable here).
pub fn disk_finding(root: &str, free_mb: Option<u64>) -> Finding {
    match free_mb {
        Some(mb) if mb < 5 * 1024 => finding(
            Level::Warn,
            format!("disk: {mb} MiB free under {root}; the image needs about 2 GiB to build — `sparkbox image prune` frees the sparkbox images no cluster uses, `docker system prune` the rest"),
        ),
        Some(mb) => finding(Level::Ok, format!("disk: {mb} MiB free under {root}")),
        None => finding(Level::Warn, format!("disk: cannot tell the free space under {root} (a remote engine?)")),
    }
}

/// What the engine's machine offers: memory and cores for the cluster, and
/// disk under its data root (measured on this machine).
pub fn system_findings(workers: u32, memory_mb: u64, system: &SystemInfo) -> Vec<Finding> {
    let mut out = capacity_findings(
        workers,
        memory_mb,
        system.cpus.unwrap_or(0),
        system.memory_bytes.unwrap_or(0),
    );
    let root = system
        .data_root
        .clone()
        .unwrap_or_else(|| "/var/lib/docker".into());
    out.push(disk_finding(&root, free_mb(&root)));
    out
}

/// A host port the cluster publishes: free, taken but movable, or taken and fixed.
pub fn port_finding(port: u16, free: bool, fixed: bool, flag: &str) -> Finding {
    if free {
        finding(Level::Ok, format!("port {port}: free"))
    } else if fixed {
        finding(Level::Fail, format!("port {port}: taken on 127.0.0.1, and it is fixed ({flag} or sparkbox.toml [ports]) — free it or choose another"))
    } else {
        finding(Level::Warn, format!("port {port}: taken on 127.0.0.1 — `up` will pick the next free one, or pass {flag}"))
    }
}

/// The base image: present, or how it would be had.
pub fn base_image_finding(base_image: &str, present: bool, debootstrap: bool) -> Finding {
    if present {
        finding(Level::Ok, format!("base image {base_image}: present"))
    } else if base::can_make_offline(base_image) && debootstrap {
        finding(
            Level::Warn,
            format!(
                "base image {base_image}: missing — it will be pulled, or made with debootstrap"
            ),
        )
    } else if base::can_make_offline(base_image) {
        finding(
            Level::Warn,
            format!("base image {base_image}: missing — it will be pulled, or made with debootstrap (not installed: apt-get install -y debootstrap)"),
        )
    } else {
        finding(
            Level::Fail,
            format!("base image {base_image}: missing and not makeable offline — `docker load -i FILE` it, or drop --base-image"),
        )
    }
}

/// The cluster image: built, or still to build.
pub fn image_finding(tag: &str, present: bool) -> Finding {
    if present {
        finding(Level::Ok, format!("image {tag}: present"))
    } else {
        finding(Level::Warn, format!("image {tag}: not built yet — `sparkbox build` (or the first `up`) takes a few minutes"))
    }
}

/// The clusters on the engine, as (name, state).
pub fn clusters_finding(clusters: &[(String, String)]) -> Finding {
    finding(
        Level::Ok,
        if clusters.is_empty() {
            "clusters: none".to_string()
        } else {
            format!(
                "clusters: {}",
                clusters
                    .iter()
                    .map(|(name, state)| format!("{name} ({state})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
    )
}

/// The space `command` (`sparkbox image prune`) would free: the sparkbox
/// images and build stages of `plan` — the plan that command makes.
pub fn reclaim_finding(plan: &crate::ops::prune::PrunePlan, command: &str) -> Finding {
    let (images, stages) = plan.counts();
    if images + stages == 0 {
        return finding(
            Level::Ok,
            "images: every sparkbox image is in use or current; nothing to prune",
        );
    }
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let what = match (images, stages) {
        (i, 0) => plural(i, "sparkbox image"),
        (0, s) => plural(s, "sparkbox build stage"),
        (i, s) => format!(
            "{} and {}",
            plural(i, "sparkbox image"),
            plural(s, "build stage")
        ),
    };
    finding(
        Level::Ok,
        format!(
            "images: {what} ({}) no cluster uses — `{command}` frees them",
            crate::image::human_size(plan.total())
        ),
    )
}

/// Every finding for a cluster of `settings` built from `recipe` on
/// `engine`, in the order `doctor` prints them; `python` is the host
/// interpreter a Spark Connect client would run in.
pub async fn check<E: Engine>(
    engine: &E,
    settings: &Settings,
    recipe: &ImageRecipe,
    python: &str,
) -> Result<Vec<Finding>> {
    let mut findings = vec![engine_finding(engine.info())];
    match engine.system_info().await {
        Ok(system) => findings.extend(system_findings(
            settings.workers,
            settings.memory_mb,
            &system,
        )),
        Err(e) => findings.push(finding(
            Level::Warn,
            format!("engine info unavailable: {e}"),
        )),
    }
    let mut wanted_ports = vec![
        (&settings.ports.master_ui, "--master-ui-port"),
        (&settings.ports.jupyter, "--jupyter-port"),
        (&settings.ports.app_ui, "--app-ui-port"),
    ];
    if settings.services.history {
        wanted_ports.push((&settings.ports.history, "--history-port"));
    }
    if settings.services.connect {
        wanted_ports.push((&settings.ports.connect, "--connect-port"));
    }
    for (setting, flag) in wanted_ports {
        let free = engine.port_free(&settings.bind, setting.port);
        findings.push(port_finding(setting.port, free, setting.fixed, flag));
    }
    let base_image = &recipe.base_image;
    let present = engine.image(base_image).await?.is_some();
    findings.push(base_image_finding(
        base_image,
        present,
        base::debootstrap_installed(),
    ));
    let tag = recipe.tag();
    findings.push(image_finding(&tag, engine.image(&tag).await?.is_some()));
    let clusters: Vec<(String, String)> =
        cluster_lines(&engine.containers(&[(labels::CLUSTER, "")]).await?)
            .into_iter()
            .map(|c| (c.name, c.state))
            .collect();
    findings.push(clusters_finding(&clusters));
    let connect_runs = engine
        .containers(&[(labels::CLUSTER, settings.name.as_str())])
        .await?
        .iter()
        .any(|c| Labelled(&c.labels).role() == Some(Role::Connect));
    if settings.services.connect || connect_runs {
        let entry = crate::model::versions::lookup(&settings.image.spark_version)?;
        findings.push(connect_client_finding(
            python,
            entry.spark,
            entry.python,
            host_client(python).as_ref(),
        ));
    }
    Ok(findings)
}

/// A host Python and the Spark Connect client installed in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostClient {
    /// Its version, e.g. "3.11.7".
    pub python: String,
    /// The client distribution and its version, if one is installed.
    pub client: Option<(String, String)>,
    /// Modules the Connect client needs that cannot be imported.
    pub missing: Vec<String>,
}

/// Asks `python` for its version and its Spark Connect client (None when it
/// cannot be run).
pub fn host_client(python: &str) -> Option<HostClient> {
    const SCRIPT: &str = r#"
import sys, importlib.metadata as m
print("%d.%d.%d" % sys.version_info[:3])
for d in ("pyspark-client", "pyspark-connect", "pyspark"):
    try:
        print(d, m.version(d))
        break
    except m.PackageNotFoundError:
        pass
else:
    print("none -")
import importlib.util as u
# What the Connect client imports beside pyspark (the [connect] extra).
print(" ".join(n for n in ("grpc", "grpc_status", "google.rpc", "pandas", "pyarrow")
               if u.find_spec(n.split(".")[0]) is None) or "-")
"#;
    let out = std::process::Command::new(python)
        .args(["-c", SCRIPT])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let version = lines.next()?.trim().to_string();
    let client = lines.next().and_then(|l| {
        let (d, v) = l.trim().split_once(' ')?;
        (d != "none").then(|| (d.to_string(), v.to_string()))
    });
    let missing = lines
        .next()
        .map(|l| {
            l.split_whitespace()
                .filter(|m| *m != "-")
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Some(HostClient {
        python: version,
        client,
        missing,
    })
}

/// Whether a host program can use the cluster's Spark Connect server: the
/// client must be the cluster's Spark version, and its Python the workers'
/// minor version (Python UDFs are pickled on one and run on the other).
pub fn connect_client_finding(
    python: &str,
    spark: &str,
    cluster_python: &str,
    host: Option<&HostClient>,
) -> Finding {
    let install = format!("pip install \"{}\"", connect_requirement(spark));
    let Some(host) = host else {
        return finding(
            Level::Warn,
            format!("spark connect client: cannot run {python} — install Python {cluster_python} and `{install}`, or pass --python PATH"),
        );
    };
    let minor: Vec<&str> = host.python.split('.').take(2).collect();
    let minor = minor.join(".");
    match &host.client {
        None => finding(
            Level::Warn,
            format!("spark connect client: {python} (Python {}) has no Spark client — `{python} -m {install}`", host.python),
        ),
        Some((dist, version)) if version != spark => finding(
            Level::Fail,
            format!("spark connect client: {python} has {dist} {version}, the cluster runs Spark {spark} — `{python} -m {install}`"),
        ),
        Some((dist, version)) if !host.missing.is_empty() => finding(
            Level::Fail,
            format!("spark connect client: {python} has {dist} {version} but not what the Connect client needs ({}) — `{python} -m {install}`", host.missing.join(", ")),
        ),
        Some((dist, version)) if minor != cluster_python => finding(
            Level::Fail,
            format!("spark connect client: {python} is Python {} with {dist} {version}, the workers run Python {cluster_python}; Python UDFs need the same minor version — use a Python {cluster_python} environment", host.python),
        ),
        Some((dist, version)) => finding(
            Level::Ok,
            format!("spark connect client: {python} (Python {}) has {dist} {version}, as the cluster", host.python),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_client_must_match_spark_and_the_python_minor() {
        let host = |py: &str, client: Option<(&str, &str)>| HostClient {
            python: py.into(),
            client: client.map(|(d, v)| (d.into(), v.into())),
            missing: vec![],
        };
        let check =
            |h: Option<HostClient>| connect_client_finding("python3", "4.3.0", "3.11", h.as_ref());
        let ok = check(Some(host("3.11.7", Some(("pyspark-client", "4.3.0")))));
        assert_eq!(ok.level, Level::Ok, "{}", ok.text);
        let old = check(Some(host("3.11.7", Some(("pyspark", "4.0.1")))));
        assert_eq!(old.level, Level::Fail);
        assert!(
            old.text.contains("pip install \"pyspark[connect]==4.3.0\""),
            "{}",
            old.text
        );
        let py = check(Some(host("3.12.1", Some(("pyspark-client", "4.3.0")))));
        assert_eq!(py.level, Level::Fail);
        assert!(py.text.contains("Python 3.11"), "{}", py.text);
        assert_eq!(check(Some(host("3.11.2", None))).level, Level::Warn);
        // pyspark alone, without the [connect] extra, cannot connect.
        let mut bare = host("3.11.7", Some(("pyspark", "4.3.0")));
        bare.missing = vec!["grpc".into(), "pyarrow".into()];
        let f = check(Some(bare));
        assert_eq!(f.level, Level::Fail);
        assert!(f.text.contains("grpc, pyarrow"), "{}", f.text);
        assert_eq!(check(None).level, Level::Warn);
        // A real interpreter answers: the one running this machine's python3.
        let h = host_client("python3").expect("python3 answers");
        assert!(h.python.starts_with('3'), "{h:?}");
        assert_eq!(host_client("/nonexistent/python"), None);
    }

    #[test]
    fn warns_before_a_cluster_that_cannot_fit() {
        let gib = 1024 * 1024 * 1024;
        let fits = capacity_findings(2, 1024, 2, 24 * gib);
        assert!(fits.iter().all(|f| f.level == Level::Ok));
        let too_big = capacity_findings(8, 4096, 2, 24 * gib);
        assert!(
            too_big.iter().all(|f| f.level == Level::Warn),
            "{too_big:?}"
        );
        assert!(too_big[0].text.contains("lower --workers or --memory"));
    }

    #[test]
    fn ports_disk_and_images_read_as_what_to_do() {
        assert_eq!(
            port_finding(8080, true, true, "--master-ui-port").level,
            Level::Ok
        );
        let moved = port_finding(8080, false, false, "--master-ui-port");
        assert_eq!(moved.level, Level::Warn);
        assert!(
            moved.text.contains("pass --master-ui-port"),
            "{}",
            moved.text
        );
        let fixed = port_finding(8080, false, true, "--master-ui-port");
        assert_eq!(fixed.level, Level::Fail);
        assert_eq!(
            fixed.line(),
            format!("FAIL  {}", fixed.text),
            "the printed line starts with the level"
        );
        assert_eq!(disk_finding("/d", Some(4096)).level, Level::Warn);
        assert_eq!(disk_finding("/d", Some(50_000)).level, Level::Ok);
        assert!(disk_finding("/d", None).text.contains("remote engine"));
        assert_eq!(
            image_finding("img:1", true).line(),
            "ok    image img:1: present"
        );
        assert_eq!(image_finding("img:1", false).level, Level::Warn);
        assert_eq!(
            base_image_finding("some/other:1", true, true).level,
            Level::Ok
        );
        assert_eq!(
            base_image_finding("some/other:1", false, true).level,
            Level::Fail
        );
        // The install hint only when debootstrap is missing.
        let default = crate::model::recipe::DEFAULT_BASE_IMAGE;
        assert!(!base_image_finding(default, false, true)
            .text
            .contains("apt-get"));
        assert!(base_image_finding(default, false, false)
            .text
            .contains("apt-get install -y debootstrap"));
        assert_eq!(clusters_finding(&[]).text, "clusters: none");
        assert_eq!(
            clusters_finding(&[
                ("a".into(), "running".into()),
                ("b".into(), "stopped".into())
            ])
            .text,
            "clusters: a (running), b (stopped)"
        );
    }

    #[test]
    fn engine_facts_become_capacity_and_disk_findings() {
        let gib = 1024 * 1024 * 1024;
        let system = SystemInfo {
            cpus: Some(2),
            memory_bytes: Some(24 * gib),
            data_root: Some("/".into()),
            ..Default::default()
        };
        let found = system_findings(2, 1024, &system);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].text.starts_with("memory: "), "{found:?}");
        assert_eq!(found[1].text, "cores: 2");
        assert!(found[2].text.starts_with("disk: "), "{found:?}");
        // An engine that says nothing of its memory cannot hold a cluster.
        let silent = system_findings(2, 1024, &SystemInfo::default());
        assert_eq!(silent[0].level, Level::Warn, "{silent:?}");
    }
}
