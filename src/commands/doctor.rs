//! `sparkbox doctor`: what this machine offers against what a cluster needs,
//! each finding with what to do about it.

use crate::base;
use crate::cli::DoctorArgs;
use crate::commands::build::recipe_from;
use crate::commands::lifecycle::cluster_lines;
use crate::config::{Config, Settings};
use crate::engine::{DockerEngine, Engine};
use crate::error::{Error, Result};
use crate::labels;
use crate::ports;
use crate::spec;

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
pub async fn run(args: DoctorArgs, config: &Config) -> Result<()> {
    let settings = Settings::resolve(config, &args.cluster)?;
    let memory_mb = settings.memory_mb;
    let recipe = recipe_from(&settings.image)?;
    let mut findings = Vec::new();
    let engine = match DockerEngine::connect().await {
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
    for (setting, flag) in [
        (&settings.ports.master_ui, "--master-ui-port"),
        (&settings.ports.jupyter, "--jupyter-port"),
        (&settings.ports.app_ui, "--app-ui-port"),
    ] {
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

#[cfg(test)]
mod tests {
    use super::*;

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
