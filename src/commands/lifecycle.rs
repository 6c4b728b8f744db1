//! `sparkbox ls`, `stop` and `start`: the day-two lifecycle of clusters that exist.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::future::try_join_all;
use serde::Serialize;

use crate::cli::{LsArgs, ScaleArgs, StartArgs, StopArgs};
use crate::commands::cluster::{image_versions, label_port, parity_error};
use crate::engine::{Connection, ContainerState, DockerEngine, Engine};
use crate::error::{Error, Result};
use crate::model::labels;
use crate::model::spec::{self, Names};
use crate::ops::parity;
use crate::ops::wait;
use crate::plan::desired;
use crate::plan::observe::Observed;
use crate::progress::Progress;
use crate::settings::Config;

/// One cluster in `ls`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ClusterLine {
    /// Cluster name.
    pub name: String,
    /// running, stopped or partial.
    pub state: String,
    /// Worker containers.
    pub workers: usize,
    /// Running containers / all containers.
    pub running: usize,
    /// All containers.
    pub containers: usize,
    /// Master UI on the host.
    pub master_ui: Option<String>,
    /// Jupyter with token.
    pub jupyter: Option<String>,
}

/// Groups containers by their cluster label into `ls` lines (pure).
pub fn cluster_lines(containers: &[ContainerState]) -> Vec<ClusterLine> {
    let mut by_cluster: BTreeMap<&str, Vec<&ContainerState>> = BTreeMap::new();
    for c in containers {
        if let Some(name) = c.labels.get(labels::CLUSTER) {
            by_cluster.entry(name.as_str()).or_default().push(c);
        }
    }
    by_cluster
        .into_iter()
        .map(|(name, cs)| {
            let role = |r: &str| {
                cs.iter()
                    .copied()
                    .find(|c| c.labels.get(labels::ROLE).map(String::as_str) == Some(r))
            };
            let running = cs.iter().filter(|c| c.is_running()).count();
            let state = match running {
                0 => "stopped",
                n if n == cs.len() => "running",
                _ => "partial",
            };
            let jupyter = role("jupyter").and_then(|j| {
                let port = label_port(Some(j), labels::JUPYTER_PORT)?;
                let token = j.labels.get(labels::TOKEN)?;
                Some(format!("http://127.0.0.1:{port}/lab?token={token}"))
            });
            ClusterLine {
                name: name.to_string(),
                state: state.to_string(),
                workers: cs
                    .iter()
                    .filter(|c| c.labels.get(labels::ROLE).map(String::as_str) == Some("worker"))
                    .count(),
                running,
                containers: cs.len(),
                master_ui: label_port(role("master"), labels::UI_PORT)
                    .map(|p| format!("http://127.0.0.1:{p}")),
                jupyter,
            }
        })
        .collect()
}

/// `sparkbox ls`.
pub async fn ls(conn: &Connection, args: LsArgs) -> Result<()> {
    let engine = conn.engine().await?;
    let containers = engine.containers(&[(labels::CLUSTER, "")]).await?;
    let lines = cluster_lines(&containers);
    if args.json {
        let text = serde_json::to_string_pretty(&lines)
            .map_err(|e| Error::Io(format!("cannot render the list: {e}")))?;
        println!("{text}");
        return Ok(());
    }
    if lines.is_empty() {
        println!("no sparkbox clusters on this engine — `sparkbox up` makes one");
        return Ok(());
    }
    println!(
        "{:<20} {:<8} {:>7} {:>9}  urls",
        "cluster", "state", "workers", "running"
    );
    for l in &lines {
        println!(
            "{:<20} {:<8} {:>7} {:>9}  {} {}",
            l.name,
            l.state,
            l.workers,
            format!("{}/{}", l.running, l.containers),
            l.master_ui.as_deref().unwrap_or(""),
            l.jupyter.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

async fn existing(engine: &DockerEngine, cluster: &str) -> Result<Observed> {
    spec::validate_cluster_name(cluster)?;
    let observed = Observed::read(engine, cluster, None).await?;
    if observed.containers.is_empty() {
        return Err(Error::InvalidInput(format!(
            "cluster {cluster} has no containers — create it with `sparkbox up -n {cluster}`"
        )));
    }
    Ok(observed)
}

/// `sparkbox stop`: containers and volumes stay; `start` brings them back.
pub async fn stop(
    conn: &Connection,
    args: StopArgs,
    config: &Config,
    progress: &Progress,
) -> Result<()> {
    let cluster = &config.cluster_name(&args.name)?;
    let engine = conn.engine().await?;
    let _lock = crate::lock::acquire(cluster, "stop", crate::lock::LOCK_WAIT, progress).await?;
    let observed = existing(&engine, cluster).await?;
    progress.phase(&format!("stopping cluster {cluster}"));
    let running: Vec<&ContainerState> = observed
        .containers
        .iter()
        .filter(|c| c.is_running())
        .collect();
    try_join_all(running.iter().map(|c| engine.stop_container(&c.name, 10))).await?;
    progress.finish();
    println!(
        "stopped cluster {cluster}: {} containers (containers and volumes kept; `sparkbox start -n {cluster}` brings them back)",
        running.len()
    );
    Ok(())
}

/// `sparkbox start`: master first, then the rest once it listens, then the
/// same readiness and parity checks as `up`.
pub async fn start(
    conn: &Connection,
    args: StartArgs,
    config: &Config,
    progress: &Progress,
) -> Result<()> {
    let started = Instant::now();
    let cluster = &config.cluster_name(&args.name)?;
    let engine = conn.engine().await?;
    let _lock = crate::lock::acquire(cluster, "start", crate::lock::LOCK_WAIT, progress).await?;
    let observed = existing(&engine, cluster).await?;
    let names = Names::new(cluster);
    let timeout = config.timeout(args.timeout);
    let deadline = Instant::now() + Duration::from_secs(timeout);
    if let Some(master) = observed.master().filter(|m| !m.is_running()) {
        progress.phase(&format!("starting {}", master.name));
        engine.start_container(&master.name).await?;
    }
    if observed.master().is_some() {
        wait::wait_master_listening(&engine, cluster, &names.master(), deadline, progress).await?;
    }
    let rest: Vec<&ContainerState> = observed
        .containers
        .iter()
        .filter(|c| {
            !c.is_running() && Some(c.name.as_str()) != observed.master().map(|m| m.name.as_str())
        })
        .collect();
    for c in &rest {
        progress.phase(&format!("starting {}", c.name));
    }
    try_join_all(rest.iter().map(|c| engine.start_container(&c.name))).await?;
    let workers = observed.workers().len() as u32;
    let running: Vec<String> = observed.containers.iter().map(|c| c.name.clone()).collect();
    let image = observed
        .containers
        .iter()
        .find_map(|c| c.labels.get(labels::IMAGE_REF).cloned())
        .ok_or_else(|| Error::InvalidInput(format!("cluster {cluster} has no image label — recreate it with `sparkbox down -n {cluster}` and `sparkbox up -n {cluster}`")))?;
    let reference = image_versions(&engine, &image).await?;
    let (jupyters, extras) = observed_drivers_and_services(&observed);
    let (ready, measured) = tokio::join!(
        wait::wait_ready(
            &engine,
            cluster,
            &names,
            wait::ReadyTargets {
                workers,
                jupyters: &jupyters,
                extras: &extras,
            },
            deadline,
            progress
        ),
        parity::measure_all(&engine, &running)
    );
    ready?;
    let report = parity::compare(&reference, &measured);
    progress.finish();
    if !report.ok {
        return Err(parity_error(cluster, &report));
    }
    println!(
        "cluster {cluster} is ready ({:.1}s): {workers}/{workers} workers alive; versions identical in {} containers",
        started.elapsed().as_secs_f64(),
        running.len()
    );
    Ok(())
}

/// The Jupyter containers and the optional services' (container, role)
/// pairs that exist: what readiness waits for besides the master and workers.
fn observed_drivers_and_services(observed: &Observed) -> (Vec<String>, Vec<(String, String)>) {
    let jupyters = observed
        .jupyters()
        .values()
        .map(|c| c.name.clone())
        .collect();
    let extras = observed
        .extras()
        .map(|c| {
            (
                c.name.clone(),
                c.labels.get(labels::ROLE).cloned().unwrap_or_default(),
            )
        })
        .collect();
    (jupyters, extras)
}

/// `sparkbox scale`: adds or removes workers only. The new workers copy the
/// settings the existing ones carry in their labels; the master, Jupyter and
/// the workers that stay are never touched, whatever else changed.
pub async fn scale(
    conn: &Connection,
    args: ScaleArgs,
    config: &Config,
    progress: &Progress,
) -> Result<()> {
    let started = Instant::now();
    let cluster = &config.cluster_name(&args.name)?;
    spec::validate_workers(args.workers)?;
    let engine = conn.engine().await?;
    let _lock = crate::lock::acquire(cluster, "scale", crate::lock::LOCK_WAIT, progress).await?;
    let observed = existing(&engine, cluster).await?;
    let workers = observed.workers();
    let template = workers.values().next().copied().ok_or_else(|| {
        Error::InvalidInput(format!(
            "cluster {cluster} has no worker to copy — use `sparkbox up -n {cluster} --workers {}`",
            args.workers
        ))
    })?;
    let label = |key: &str| template.labels.get(key).cloned();
    let missing = || {
        Error::InvalidInput(format!(
            "{} carries no worker settings (made by an older sparkbox) — use `sparkbox up -n {cluster} --workers {}`",
            template.name, args.workers
        ))
    };
    let cores: u32 = label(labels::WORKER_CORES)
        .and_then(|v| v.parse().ok())
        .ok_or_else(missing)?;
    let memory_mb: u64 = label(labels::WORKER_MEMORY)
        .and_then(|v| v.parse().ok())
        .ok_or_else(missing)?;
    let image_tag = label(labels::IMAGE_REF).ok_or_else(missing)?;
    let data_dir = label(labels::DATA_DIR).map(std::path::PathBuf::from);
    let host_user = labels::host_user_of(&template.labels);
    let timeout = config.timeout(args.timeout);
    let names = Names::new(cluster);
    let spec = spec::ClusterSpec {
        name: cluster.clone(),
        workers: args.workers,
        worker_cores: cores,
        worker_memory_mb: memory_mb,
        // Scaling never builds: the recipe is only a placeholder, and the
        // image the cluster really runs (from its labels) replaces its tag below.
        image: crate::image::ImageRecipe::new(
            crate::image::versions::default_entry(),
            None,
            vec![],
        )?,
        bind_address: label(labels::BIND).unwrap_or_else(|| "127.0.0.1".into()),
        master_ui_port: spec::PortChoice::Auto(spec::DEFAULT_MASTER_UI_PORT),
        jupyter_port: spec::PortChoice::Auto(spec::DEFAULT_JUPYTER_PORT),
        app_ui_port: spec::PortChoice::Auto(spec::DEFAULT_APP_UI_PORT),
        timeout: Duration::from_secs(timeout),
        jupyter_token: None,
        apps: Default::default(),
        notebooks_volume: names.notebooks_volume(),
        data_dir,
        host_user,
        history: None,
        connect: None,
        students: 0,
    };
    let (mut resolved, _) = crate::commands::cluster::resolve(&spec, &observed)?;
    // New workers authenticate with the master's secret, if it has one.
    resolved.secret = observed
        .master()
        .and_then(|m| m.labels.get(labels::SECRET))
        .cloned();
    resolved.image_tag = image_tag.clone();
    let desired = desired::desired(&spec, &resolved);
    let mut plan = crate::plan::reconcile::reconcile(&desired, &observed);
    // Only worker steps: scaling never touches anything else.
    plan.steps.retain(|step| match &step.action {
        crate::plan::Action::CreateContainer(c) => {
            c.labels.get(labels::ROLE).map(String::as_str) == Some("worker")
        }
        crate::plan::Action::RemoveContainer(n) | crate::plan::Action::StartContainer(n) => {
            workers.values().any(|w| &w.name == n)
        }
        _ => false,
    });
    // A worker whose settings differ from the template is left alone, not replaced.
    plan.steps.retain(|step| {
        matches!(
            step.cause,
            crate::plan::Cause::NotFound
                | crate::plan::Cause::Stopped
                | crate::plan::Cause::ScaleDown
        )
    });
    if plan.is_empty() {
        println!(
            "cluster {cluster} already has {} workers; nothing to do",
            args.workers
        );
        return Ok(());
    }
    let settings = crate::image::BuildSettings::default();
    let ctx = crate::plan::execute::Context {
        cluster,
        recipe: &spec.image,
        settings: &settings,
        timeout: spec.timeout,
    };
    let deadline = crate::plan::execute::execute(&engine, &plan, &ctx, progress).await?;
    let (jupyters, extras) = observed_drivers_and_services(&observed);
    wait::wait_ready(
        &engine,
        cluster,
        &names,
        wait::ReadyTargets {
            workers: args.workers,
            jupyters: &jupyters,
            extras: &extras,
        },
        deadline,
        progress,
    )
    .await?;
    progress.finish();
    println!(
        "cluster {cluster} scaled to {} workers ({:.1}s); master, Jupyter and the remaining workers untouched",
        args.workers,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn container(cluster: &str, role: &str, running: bool) -> ContainerState {
        ContainerState {
            name: format!("{cluster}-{role}"),
            labels: HashMap::from([
                (labels::CLUSTER.to_string(), cluster.to_string()),
                (labels::ROLE.to_string(), role.to_string()),
                (labels::UI_PORT.to_string(), "8080".to_string()),
            ]),
            state: if running { "running" } else { "exited" }.to_string(),
            ..Default::default()
        }
    }

    #[test]
    fn clusters_are_grouped_with_state_and_counts() {
        let lines = cluster_lines(&[
            container("b", "master", true),
            container("b", "worker", false),
            container("a", "master", false),
        ]);
        assert_eq!(lines.len(), 2);
        assert_eq!(
            (lines[0].name.as_str(), lines[0].state.as_str()),
            ("a", "stopped")
        );
        assert_eq!(
            (lines[1].name.as_str(), lines[1].state.as_str()),
            ("b", "partial")
        );
        assert_eq!(lines[1].workers, 1);
        assert_eq!(lines[1].master_ui.as_deref(), Some("http://127.0.0.1:8080"));
    }
}
