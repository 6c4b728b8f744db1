//! The one readiness and parity step `up`, `start` and `scale` share: every
//! worker registered, every Jupyter server and service answering, and every
//! container measured live to run the image's versions.

use std::time::Instant;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::image;
use crate::model::labels::Labelled;
use crate::model::spec::Names;
use crate::model::versions::Versions;
use crate::ops::parity::{self, ParityReport};
use crate::plan::desired::Desired;
use crate::plan::observe::Observed;
use crate::plan::wait::{self, MasterJson};
use crate::progress::Progress;

/// What readiness waits for and parity measures.
#[derive(Debug, Clone, Default)]
pub struct Members {
    /// Workers that must be ALIVE at the master (numbered 1..=workers).
    pub workers: u32,
    /// Jupyter containers that must answer.
    pub jupyters: Vec<String>,
    /// Optional services as (container, role) that must answer.
    pub extras: Vec<(String, String)>,
    /// Every container whose versions are measured.
    pub containers: Vec<String>,
}

impl Members {
    /// The members of a cluster about to be made as `desired` says.
    pub fn of_desired(desired: &Desired) -> Members {
        let jupyters: Vec<String> = desired.jupyters.iter().map(|j| j.name.clone()).collect();
        let extras: Vec<(String, String)> = desired
            .extras
            .iter()
            .map(|c| {
                let role = Labelled(&c.labels).role().map(|r| r.as_str());
                (c.name.clone(), role.unwrap_or_default().to_string())
            })
            .collect();
        let mut containers = vec![desired.master.name.clone()];
        containers.extend(jupyters.iter().cloned());
        containers.extend(desired.workers.values().map(|w| w.name.clone()));
        containers.extend(extras.iter().map(|(name, _)| name.clone()));
        Members {
            workers: desired.workers.len() as u32,
            jupyters,
            extras,
            containers,
        }
    }

    /// The members of a cluster as it exists.
    pub fn of_observed(observed: &Observed) -> Members {
        Members {
            workers: observed.workers().len() as u32,
            jupyters: observed
                .jupyters()
                .values()
                .map(|c| c.name.clone())
                .collect(),
            extras: observed
                .extras()
                .map(|c| {
                    let role = Labelled(&c.labels).role().map(|r| r.as_str());
                    (c.name.clone(), role.unwrap_or_default().to_string())
                })
                .collect(),
            containers: observed.containers.iter().map(|c| c.name.clone()).collect(),
        }
    }
}

/// Waits until `members` are ready and checks that each runs the versions of
/// `reference`; returns the master's view.
pub async fn ready_and_same<E: Engine>(
    engine: &E,
    cluster: &str,
    members: &Members,
    reference: &Versions,
    deadline: Instant,
    progress: &Progress,
) -> Result<MasterJson> {
    let names = Names::new(cluster);
    let (ready, measured) = tokio::join!(
        wait::wait_ready(
            engine,
            cluster,
            &names,
            wait::ReadyTargets {
                workers: members.workers,
                jupyters: &members.jupyters,
                extras: &members.extras,
            },
            deadline,
            progress
        ),
        parity::measure_all(engine, &members.containers)
    );
    let master = ready?;
    let measured = remeasure_reported(engine, measured, deadline).await;
    let report = parity::compare(reference, &measured);
    if !report.ok {
        progress.finish();
        return Err(parity_error(cluster, &report));
    }
    Ok(master)
}

/// Measures again, until `deadline`, the swarm services on other nodes whose
/// log had no versions yet: such a task may still have been pulling the
/// image when readiness began. Nothing else is measured twice.
async fn remeasure_reported<E: Engine>(
    engine: &E,
    mut measured: Vec<parity::Measured>,
    deadline: Instant,
) -> Vec<parity::Measured> {
    loop {
        let pending: Vec<String> = measured
            .iter()
            .filter(|m| matches!(&m.versions, Err(e) if e.contains(parity::NOT_REPORTED_YET)))
            .map(|m| m.container.clone())
            .collect();
        if pending.is_empty() || Instant::now() >= deadline {
            return measured;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        for again in parity::measure_all(engine, &pending).await {
            if let Some(m) = measured.iter_mut().find(|m| m.container == again.container) {
                *m = again;
            }
        }
    }
}

/// The error of a failed parity check, naming what differs where and the fix.
pub fn parity_error(cluster: &str, report: &ParityReport) -> Error {
    Error::ParityMismatch(format!(
        "version parity failed in cluster {cluster}: the containers do not run the same versions\n{}fix: undo the change in the marked container, or make it anew from the image with the cluster's settings: `sparkbox up -n {cluster} --recreate CONTAINER` (its volumes and the data directory are kept)",
        parity::render(report)
    ))
}

/// Once a cluster is ready: every member comes back by itself when it
/// exits and when the engine starts again (a reboot), until `sparkbox stop`
/// stops it. Set only now, so a container that exits while the cluster
/// starts is reported as exited, not restarted over and over.
pub async fn keep_running<E: Engine>(engine: &E, members: &Members) -> Result<()> {
    futures_util::future::try_join_all(members.containers.iter().map(|c| engine.keep_running(c)))
        .await
        .map(|_| ())
}

/// The versions the image `tag` was measured to contain.
pub async fn image_versions<E: Engine>(engine: &E, tag: &str) -> Result<Versions> {
    let info = engine.image(tag).await?.ok_or_else(|| Error::Engine {
        action: format!("inspect image {tag}"),
        detail: "the image is gone — run `sparkbox build`".into(),
    })?;
    match image::versions_from_labels(&info.labels) {
        Some(v) => Ok(v),
        None => image::read_versions_file(engine, tag).await,
    }
}
