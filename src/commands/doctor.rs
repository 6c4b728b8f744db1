//! `sparkbox doctor`: what this machine offers against what a cluster needs,
//! each finding with what to do about it.

use crate::cli::DoctorArgs;
use crate::commands::build::recipe_from;
use crate::engine::{Connection, Engine};
use crate::error::{Error, Result};
use crate::image::base;
use crate::model::labels;
use crate::model::spec;
use crate::ops::lifecycle::cluster_lines;
use crate::plan::ports;
use crate::settings::{Config, Settings};

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

fn finding(level: Level, text: impl Into<String>) -> Finding {
    Finding {
        level,
        text: text.into(),
    }
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

/// `sparkbox doctor`: exit 0 unless something fails.
pub async fn run(conn: &Connection, args: DoctorArgs, config: &Config) -> Result<()> {
    let settings = Settings::resolve(config, &args.cluster)?;
    let memory_mb = settings.memory_mb;
    let recipe = recipe_from(&settings.image)?;
    let mut findings = Vec::new();
    let engine = match conn.engine().await {
        Ok(engine) => engine,
        Err(e) => {
            println!("FAIL  docker: {e}");
            return Err(e);
        }
    };
    let info = engine.info().clone();
    findings.push(finding(
        Level::Ok,
        format!(
            "docker: engine {} at {}, API {}",
            info.server_version, info.host, info.api_version
        ),
    ));
    match engine.client().info().await {
        Ok(system) => {
            findings.extend(capacity_findings(
                settings.workers,
                memory_mb,
                system.ncpu.unwrap_or(0),
                system.mem_total.unwrap_or(0),
            ));
            let root = system
                .docker_root_dir
                .unwrap_or_else(|| "/var/lib/docker".into());
            findings.push(match free_mb(&root) {
                Some(mb) if mb < 5 * 1024 => finding(
                    Level::Warn,
                    format!("disk: {mb} MiB free under {root}; the image needs about 2 GiB to build — free space with `docker system prune`"),
                ),
                Some(mb) => finding(Level::Ok, format!("disk: {mb} MiB free under {root}")),
                None => finding(Level::Warn, format!("disk: cannot tell the free space under {root} (a remote engine?)")),
            });
        }
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
        let port = setting.port;
        findings.push(if ports::is_free("127.0.0.1", port) {
            finding(Level::Ok, format!("port {port}: free"))
        } else if setting.fixed {
            finding(Level::Fail, format!("port {port}: taken on 127.0.0.1, and it is fixed ({flag} or sparkbox.toml [ports]) — free it or choose another"))
        } else {
            finding(Level::Warn, format!("port {port}: taken on 127.0.0.1 — `up` will pick the next free one, or pass {flag}"))
        });
    }
    let base_image = recipe.base_image.clone();
    findings.push(match engine.image(&base_image).await? {
        Some(_) => finding(Level::Ok, format!("base image {base_image}: present")),
        None if base::can_make_offline(&base_image) => finding(
            Level::Warn,
            format!("base image {base_image}: missing — it will be pulled, or made with debootstrap (install it: apt-get install -y debootstrap)"),
        ),
        None => finding(
            Level::Fail,
            format!("base image {base_image}: missing and not makeable offline — `docker load -i FILE` it, or drop --base-image"),
        ),
    });
    let tag = recipe.tag();
    findings.push(match engine.image(&tag).await? {
        Some(_) => finding(Level::Ok, format!("image {tag}: present")),
        None => finding(Level::Warn, format!("image {tag}: not built yet — `sparkbox build` (or the first `up`) takes a few minutes")),
    });
    let clusters = cluster_lines(&engine.containers(&[(labels::CLUSTER, "")]).await?);
    findings.push(finding(
        Level::Ok,
        if clusters.is_empty() {
            "clusters: none".to_string()
        } else {
            format!(
                "clusters: {}",
                clusters
                    .iter()
                    .map(|c| format!("{} ({})", c.name, c.state))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
    ));
    let connect_runs = engine
        .containers(&[(labels::CLUSTER, settings.name.as_str())])
        .await?
        .iter()
        .any(|c| c.labels.get(labels::ROLE).map(String::as_str) == Some("connect"));
    if settings.services.connect || connect_runs {
        let entry = crate::image::versions::lookup(&settings.image.spark_version)?;
        findings.push(connect_client_finding(
            &args.python,
            entry.spark,
            entry.python,
            host_client(&args.python).as_ref(),
        ));
    }
    for f in &findings {
        let word = match f.level {
            Level::Ok => "ok  ",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        };
        println!("{word}  {}", f.text);
    }
    let failures = findings.iter().filter(|f| f.level == Level::Fail).count();
    if failures > 0 {
        return Err(Error::InvalidInput(format!(
            "doctor found {failures} problem(s); see FAIL above"
        )));
    }
    Ok(())
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
    let install = format!(
        "pip install \"{}\"",
        crate::ops::urls::connect_requirement(spark)
    );
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
}
