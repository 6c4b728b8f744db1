//! The day-two lifecycle of clusters that exist: list, stop, start, scale, down.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::future::{join_all, try_join_all};
use serde::Serialize;

use crate::cli::{ClusterArgs, NameArg};
use crate::engine::{ContainerState, Engine};
use crate::error::{Error, Result};
use crate::lock;
use crate::model::labels::{self, Labelled};
use crate::model::spec::{self, Role};
use crate::ops::ready::{self, Members};
use crate::ops::urls::{self, LOCAL_HOST};
use crate::plan::desired;
use crate::plan::execute::{self, Context};
use crate::plan::observe::{record_of, Observed};
use crate::plan::reconcile::{reconcile, Scope};
use crate::plan::wait;
use crate::progress::Progress;
use crate::settings::{Config, Settings};

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
        if let Some(name) = Labelled(&c.labels).cluster() {
            by_cluster.entry(name).or_default().push(c);
        }
    }
    by_cluster
        .into_iter()
        .map(|(name, cs)| {
            let role = |r: Role| {
                cs.iter()
                    .copied()
                    .find(|c| Labelled(&c.labels).role() == Some(r))
            };
            let running = cs.iter().filter(|c| c.is_running()).count();
            let state = match running {
                0 => "stopped",
                n if n == cs.len() => "running",
                _ => "partial",
            };
            ClusterLine {
                name: name.to_string(),
                state: state.to_string(),
                workers: cs
                    .iter()
                    .filter(|c| Labelled(&c.labels).role() == Some(Role::Worker))
                    .count(),
                running,
                containers: cs.len(),
                master_ui: role(Role::Master)
                    .and_then(|m| Labelled(&m.labels).port(labels::UI_PORT))
                    .map(|p| urls::http(LOCAL_HOST, p)),
                jupyter: role(Role::Jupyter).and_then(|j| urls::jupyter_of(j, LOCAL_HOST)),
            }
        })
        .collect()
}

/// Every sparkbox cluster on the engine.
pub async fn ls<E: Engine>(engine: &E) -> Result<Vec<ClusterLine>> {
    let containers = engine.containers(&[(labels::CLUSTER, "")]).await?;
    Ok(cluster_lines(&containers))
}

/// The cluster's objects, or an error saying how to make it.
async fn existing<E: Engine>(engine: &E, cluster: &str) -> Result<Observed> {
    spec::validate_cluster_name(cluster)?;
    let observed = Observed::read(engine, cluster, None).await?;
    if observed.containers.is_empty() {
        return Err(Error::InvalidInput(format!(
            "cluster {cluster} has no containers — create it with `sparkbox up -n {cluster}`"
        )));
    }
    Ok(observed)
}

/// Stops the running containers of `cluster` (containers and volumes stay);
/// returns how many were stopped.
pub async fn stop<E: Engine>(engine: &E, cluster: &str, progress: &Progress) -> Result<usize> {
    let _lock = lock::acquire(
        &engine.info().host,
        cluster,
        "stop",
        lock::LOCK_WAIT,
        progress,
    )
    .await?;
    let observed = existing(engine, cluster).await?;
    progress.phase(&format!("stopping cluster {cluster}"));
    let running: Vec<&ContainerState> = observed
        .containers
        .iter()
        .filter(|c| c.is_running())
        .collect();
    try_join_all(running.iter().map(|c| engine.stop_container(&c.name, 10))).await?;
    progress.finish();
    Ok(running.len())
}

/// What `start` and `scale` report.
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    /// Workers alive.
    pub workers: u32,
    /// Containers shown to run the same versions.
    pub containers: usize,
    /// Seconds it took.
    pub elapsed_s: f64,
}

/// Starts a stopped cluster: the master first, the rest once it listens,
/// then the same readiness and parity step as `up`.
pub async fn start<E: Engine>(
    engine: &E,
    cluster: &str,
    timeout: u64,
    progress: &Progress,
) -> Result<Started> {
    let started = Instant::now();
    let _lock = lock::acquire(
        &engine.info().host,
        cluster,
        "start",
        lock::LOCK_WAIT,
        progress,
    )
    .await?;
    let observed = existing(engine, cluster).await?;
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let master = observed.master();
    if let Some(m) = master.filter(|m| !m.is_running()) {
        progress.phase(&format!("starting {}", m.name));
        engine.start_container(&m.name).await?;
    }
    if let Some(m) = master {
        wait::wait_master_listening(engine, cluster, &m.name, deadline, progress).await?;
    }
    let rest: Vec<&ContainerState> = observed
        .containers
        .iter()
        .filter(|c| !c.is_running() && Some(c.name.as_str()) != master.map(|m| m.name.as_str()))
        .collect();
    for c in &rest {
        progress.phase(&format!("starting {}", c.name));
    }
    try_join_all(rest.iter().map(|c| engine.start_container(&c.name))).await?;
    let image = crate::ops::status::image_ref(&observed).ok_or_else(|| {
        Error::InvalidInput(format!(
            "cluster {cluster} has no image label (made by an older sparkbox) — `sparkbox down -n {cluster}`, then `sparkbox up -n {cluster}` with the settings it was made with"
        ))
    })?;
    let reference = ready::image_versions(engine, &image).await?;
    let members = Members::of_observed(&observed);
    ready::ready_and_same(engine, cluster, &members, &reference, deadline, progress).await?;
    ready::keep_running(engine, &members).await?;
    progress.finish();
    Ok(Started {
        workers: members.workers,
        containers: members.containers.len(),
        elapsed_s: started.elapsed().as_secs_f64(),
    })
}

/// Adds or removes workers only: the new ones are made from the settings the
/// cluster records, and the master, Jupyter and the workers that stay are
/// never touched. None when the cluster already has `workers`.
pub async fn scale<E: Engine>(
    engine: &E,
    cluster: &str,
    workers: u32,
    timeout: u64,
    progress: &Progress,
) -> Result<Option<Started>> {
    let started = Instant::now();
    spec::validate_workers(workers)?;
    let _lock = lock::acquire(
        &engine.info().host,
        cluster,
        "scale",
        lock::LOCK_WAIT,
        progress,
    )
    .await?;
    let mut observed = existing(engine, cluster).await?;
    let template = observed.workers().values().next().map(|w| (*w).clone());
    let template = template.ok_or_else(|| {
        Error::InvalidInput(format!(
            "cluster {cluster} has no worker to copy — use `sparkbox up -n {cluster} --workers {workers}`"
        ))
    })?;
    let view = Labelled(&template.labels);
    let recorded = record_of(&observed.containers);
    let (Some(recorded), Some(image_tag)) = (recorded, view.image_ref()) else {
        return Err(missing_worker_settings(&template.name, cluster, workers));
    };
    if recorded.cores.is_none() || recorded.memory_mb.is_none() {
        return Err(missing_worker_settings(&template.name, cluster, workers));
    }
    // The cluster's record alone, never a file: scaling copies the workers
    // that exist, whatever a sparkbox.toml here says.
    let args = ClusterArgs {
        name: NameArg {
            name: Some(cluster.to_string()),
        },
        workers: Some(workers),
        ..Default::default()
    };
    let settings = Settings::resolve_over(&Config::default(), &args, Some(&recorded))?;
    let mut spec = settings.spec()?;
    spec.data_dir.clone_from(&recorded.data);
    spec.host_user = view.host_user();
    spec.timeout = Duration::from_secs(timeout);
    // Scaling never builds: the workers run the image the cluster runs.
    observed.image_present = true;
    let (mut resolved, _) = crate::ops::up::settle_for(engine, &spec, &observed)?;
    resolved.image_tag = image_tag.to_string();
    crate::ops::up::place_on_swarm(engine, &spec, &observed, &mut resolved).await?;
    // New workers authenticate with the master's secret, if it has one.
    resolved.secret = observed
        .master()
        .and_then(|m| Labelled(&m.labels).get(labels::SECRET))
        .map(str::to_string);
    let desired = desired::desired(&spec, &resolved);
    let plan = reconcile(&desired, &observed, Scope::WorkerCount);
    if plan.is_empty() {
        return Ok(None);
    }
    let build = crate::image::BuildSettings::default();
    let ctx = Context {
        cluster,
        recipe: &spec.image,
        settings: &build,
        timeout: spec.timeout,
        swarm: spec.swarm.is_some(),
    };
    // The image's versions before anything changes: a scale that cannot
    // check its workers changes nothing.
    let reference = ready::image_versions(engine, &resolved.image_tag).await?;
    let deadline = execute::execute(engine, &plan, &ctx, progress).await?;
    let existing_members = Members::of_observed(&observed);
    let members = Members {
        workers,
        jupyters: existing_members.jupyters,
        extras: existing_members.extras,
        containers: desired.workers.values().map(|w| w.name.clone()).collect(),
    };
    ready::ready_and_same(engine, cluster, &members, &reference, deadline, progress).await?;
    ready::keep_running(engine, &members).await?;
    progress.finish();
    Ok(Some(Started {
        workers,
        containers: members.containers.len(),
        elapsed_s: started.elapsed().as_secs_f64(),
    }))
}

fn missing_worker_settings(worker: &str, cluster: &str, workers: u32) -> Error {
    Error::InvalidInput(format!(
        "{worker} carries no worker settings (made by an older sparkbox) — use `sparkbox up -n {cluster} --workers {workers}`"
    ))
}

/// What `down` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    /// Containers removed.
    pub containers: usize,
    /// Networks removed.
    pub networks: usize,
    /// Volumes removed (only with `volumes`).
    pub volumes: Vec<String>,
    /// Volumes kept.
    pub kept: Vec<String>,
}

/// Removes the cluster's containers and network, and its volumes only when
/// `volumes` says so; None when nothing of it exists.
pub async fn down<E: Engine>(
    engine: &E,
    cluster: &str,
    volumes: bool,
    progress: &Progress,
) -> Result<Option<Removed>> {
    let _lock = lock::acquire(
        &engine.info().host,
        cluster,
        "down",
        lock::LOCK_WAIT,
        progress,
    )
    .await?;
    let observed = Observed::read(engine, cluster, None).await?;
    if observed.is_empty() {
        return Ok(None);
    }
    progress.phase(&format!("removing cluster {cluster}"));
    let removals = observed
        .containers
        .iter()
        .map(|c| engine.remove_container(&c.name));
    for result in join_all(removals).await {
        result?;
    }
    for network in &observed.networks {
        engine.remove_network(network).await?;
    }
    let mut removed = Removed {
        containers: observed.containers.len(),
        networks: observed.networks.len(),
        ..Default::default()
    };
    if volumes {
        for volume in &observed.volumes {
            engine.remove_volume(volume).await?;
        }
        removed.volumes.clone_from(&observed.volumes);
    } else {
        removed.kept.clone_from(&observed.volumes);
    }
    progress.finish();
    Ok(Some(removed))
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
