//! Status: what a cluster is, read from the engine (`collect`) and judged by
//! a pure function of what was observed and measured (`status_of`).

use serde::Serialize;

use crate::engine::{ContainerState, Engine};
use crate::error::Result;
use crate::model::labels::Labelled;
use crate::model::spec::Names;
use crate::model::versions::Versions;
use crate::ops::parity::{self, Measured, ParityReport};
use crate::ops::ready::image_versions;
use crate::ops::urls::{self, Urls};
use crate::plan::observe::Observed;
use crate::plan::wait::{self, MasterJson};

/// Worker counts in `status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkerCounts {
    /// Workers the master reports ALIVE.
    pub alive: usize,
    /// Worker containers of the cluster.
    pub wanted: usize,
}

/// Totals and use, as the master reports them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Capacity {
    /// Total.
    pub total: u64,
    /// In use.
    pub used: u64,
}

/// One container in `status`.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerReport {
    /// Container name.
    pub name: String,
    /// master, worker or jupyter.
    pub role: String,
    /// Worker number.
    pub index: Option<u32>,
    /// Engine state: running, exited, …
    pub state: String,
    /// healthy, unhealthy, starting, or null.
    pub health: Option<String>,
    /// Whether its live versions equal the image's.
    pub versions_ok: bool,
    /// The verdict on its versions: "ok", "different", "unreadable", or
    /// "not measured" (it is not running, so nothing was measured).
    pub versions: String,
    /// Its UI on the host.
    pub url: Option<String>,
    /// The swarm node its task runs on (a cluster on a swarm only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The engine's own words on it ("Up 3 minutes", "task pending …").
    pub status: String,
}

/// A node of the swarm a cluster runs on, and the cluster's containers on it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    /// Its hostname.
    pub node: String,
    /// manager or worker.
    pub role: String,
    /// True when ready and active.
    pub ready: bool,
    /// Its state and availability in words.
    pub state: String,
    /// The cluster's containers (services) placed on it.
    pub containers: Vec<String>,
}

/// A node of the swarm in `sparkbox nodes`: what it is and what of every
/// sparkbox cluster runs on it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeLine {
    /// Its hostname.
    pub node: String,
    /// manager or worker.
    pub role: String,
    /// True when ready and active.
    pub ready: bool,
    /// Its state and availability in words.
    pub state: String,
    /// Its address in the swarm.
    pub address: String,
    /// Its `io.sparkbox.role` label (master, jupyter, worker), if any.
    pub placement: Option<String>,
    /// True for the manager sparkbox talks to.
    pub this_engine: bool,
    /// The sparkbox containers (services) placed on it, of every cluster.
    pub containers: Vec<String>,
}

/// `sparkbox nodes`: the swarm's nodes and what of every sparkbox cluster
/// runs on each.
pub async fn swarm_nodes<E: Engine>(engine: &E) -> Result<Vec<NodeLine>> {
    let nodes = engine.swarm_nodes().await?;
    let observed = Observed {
        containers: engine
            .containers(&[(crate::model::labels::CLUSTER, "")])
            .await?,
        ..Default::default()
    };
    let reports = nodes_of(&nodes, &observed);
    Ok(nodes
        .iter()
        .zip(reports)
        .map(|(n, r)| NodeLine {
            node: r.node,
            role: r.role,
            ready: r.ready,
            state: r.state,
            address: n.address.clone(),
            placement: n.labels.get(crate::plan::place::ROLE_LABEL).cloned(),
            this_engine: n.is_self,
            containers: r.containers,
        })
        .collect())
}

/// The parity section of `status`.
#[derive(Debug, Clone, Serialize)]
pub struct ParitySection {
    /// True when every running container runs the image's versions.
    pub ok: bool,
    /// The keys that differ.
    pub differences: Vec<parity::ParityRow>,
    /// Containers whose versions could not be read.
    pub unreadable: Vec<(String, String)>,
}

/// The `status --json` document (schema 1, documented in the README).
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// Document version.
    pub schema: u32,
    /// Cluster name.
    pub cluster: String,
    /// ready, degraded, stopped or absent.
    pub state: String,
    /// Image reference.
    pub image: Option<String>,
    /// The ID of the image the containers were made from.
    pub image_id: Option<String>,
    /// Its registry digest ("REPO@sha256:…"), when a registry knows it.
    pub image_digest: Option<String>,
    /// Network name.
    pub network: String,
    /// Spark master URL inside the network.
    pub master_url: String,
    /// Worker counts.
    pub workers: WorkerCounts,
    /// Cores.
    pub cores: Capacity,
    /// Memory in MiB.
    pub memory_mb: Capacity,
    /// Running applications.
    pub apps: Vec<wait::MasterApp>,
    /// Host URLs.
    pub urls: Urls,
    /// Version parity.
    pub parity: ParitySection,
    /// Every container.
    pub containers: Vec<ContainerReport>,
    /// The cluster's volumes.
    pub volumes: Vec<String>,
    /// Every Jupyter server (one per student in a classroom) with its URL.
    pub jupyters: Vec<urls::Seat>,
    /// The swarm's nodes and what of the cluster runs on each (a cluster on
    /// a swarm only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeReport>,
}

/// Reads everything `status` shows: the cluster's objects, the master's own
/// view, and the versions every running container measures live.
pub async fn collect<E: Engine>(engine: &E, cluster: &str) -> Result<StatusReport> {
    let names = Names::new(cluster);
    let observed = Observed::read(engine, cluster, None).await?;
    let running: Vec<String> = observed
        .containers
        .iter()
        .filter(|c| c.is_running())
        .map(|c| c.name.clone())
        .collect();
    let master_running = observed.master().is_some_and(|m| m.is_running());
    let (master, measured) = tokio::join!(
        async {
            if master_running {
                wait::master_state(engine, &names.master())
                    .await
                    .ok()
                    .flatten()
            } else {
                None
            }
        },
        parity::measure_all(engine, &running)
    );
    let reference = match image_ref(&observed) {
        Some(tag) => image_versions(engine, &tag).await.ok(),
        None => None,
    };
    let mut report = status_of(
        cluster,
        &observed,
        master.as_ref(),
        &measured,
        reference.as_ref(),
    );
    if observed.containers.iter().any(|c| c.node.is_some()) {
        let nodes = engine.swarm_nodes().await?;
        report.nodes = nodes_of(&nodes, &observed);
        report.jupyters = urls::seats_on(
            &observed,
            urls::LOCAL_HOST,
            &urls::other_node_addresses(&nodes),
        );
    }
    Ok(report)
}

/// Each node of the swarm with the cluster's containers on it. A worker
/// whose node is lost is listed there still: what that node ran.
pub fn nodes_of(nodes: &[crate::engine::SwarmNode], observed: &Observed) -> Vec<NodeReport> {
    nodes
        .iter()
        .map(|n| NodeReport {
            node: n.hostname.clone(),
            role: n.role.clone(),
            ready: n.ready,
            state: n.state.clone(),
            containers: observed
                .containers
                .iter()
                .filter(|c| {
                    c.node.as_deref() == Some(n.hostname.as_str())
                        || Labelled(&c.labels).get(crate::model::labels::NODE)
                            == Some(n.id.as_str())
                })
                .map(|c| c.name.clone())
                .collect(),
        })
        .collect()
}

/// The image the cluster's containers run, from their labels.
pub fn image_ref(observed: &Observed) -> Option<String> {
    label_of(observed, |l| l.image_ref())
}

/// The first value `read` finds on the cluster's containers' labels, the
/// master's first: it is the one every other container follows.
pub fn label_of(
    observed: &Observed,
    read: impl for<'a> Fn(Labelled<'a>) -> Option<&'a str>,
) -> Option<String> {
    observed
        .master()
        .into_iter()
        .chain(observed.containers.iter())
        .find_map(|c| read(Labelled(&c.labels)).map(str::to_string))
}

/// The status of a cluster from what was observed (its objects), what its
/// master reports (None when it did not answer) and the versions measured in
/// its running containers, against the image's (None when unknown). No I/O.
pub fn status_of(
    cluster: &str,
    observed: &Observed,
    master: Option<&MasterJson>,
    measured: &[Measured],
    reference: Option<&Versions>,
) -> StatusReport {
    let names = Names::new(cluster);
    let mut containers: Vec<&ContainerState> = observed.containers.iter().collect();
    containers.sort_by_key(|c| {
        let view = Labelled(&c.labels);
        (view.role(), view.index().unwrap_or(0))
    });
    let running: Vec<&str> = containers
        .iter()
        .filter(|c| c.is_running())
        .map(|c| c.name.as_str())
        .collect();
    let report = match reference {
        Some(r) => parity::compare(r, measured),
        None => ParityReport {
            ok: running.is_empty(),
            differences: vec![],
            unreadable: running
                .iter()
                .map(|c| {
                    (
                        c.to_string(),
                        "the image's versions are unknown".to_string(),
                    )
                })
                .collect(),
            matching: vec![],
        },
    };
    let urls = Urls::of_observed(observed, reference);
    let container_reports: Vec<ContainerReport> = containers
        .iter()
        .map(|c| {
            let view = Labelled(&c.labels);
            ContainerReport {
                name: c.name.clone(),
                index: view.index(),
                role: view
                    .role()
                    .map(|r| r.as_str().to_string())
                    .unwrap_or_default(),
                state: c.state.clone(),
                health: c.health.clone(),
                versions_ok: report.container_ok(&c.name),
                versions: if !c.is_running() {
                    "not measured"
                } else if report.container_ok(&c.name) {
                    "ok"
                } else if report.unreadable.iter().any(|(u, _)| *u == c.name) {
                    "unreadable"
                } else {
                    "different"
                }
                .to_string(),
                url: urls.of_container(c),
                node: c.node.clone(),
                status: c.status.clone(),
            }
        })
        .collect();
    let wanted = observed.workers().len();
    let alive = master.map(|m| m.alive_workers().len()).unwrap_or(0);
    let all_running = !containers.is_empty() && containers.iter().all(|c| c.is_running());
    let state = if observed.is_empty() {
        "absent"
    } else if containers.iter().all(|c| !c.is_running()) {
        "stopped"
    } else if all_running && alive == wanted && report.ok && observed.jupyter().is_some() {
        "ready"
    } else {
        "degraded"
    };
    let m = master.cloned().unwrap_or_default();
    StatusReport {
        schema: 1,
        cluster: cluster.to_string(),
        state: state.to_string(),
        image: image_ref(observed),
        image_id: label_of(observed, |l| l.image_id()),
        image_digest: label_of(observed, |l| l.image_digest()),
        network: names.network(),
        master_url: names.master_url(),
        workers: WorkerCounts { alive, wanted },
        cores: Capacity {
            total: m.cores,
            used: m.coresused,
        },
        memory_mb: Capacity {
            total: m.memory,
            used: m.memoryused,
        },
        apps: m.activeapps.clone(),
        urls,
        parity: ParitySection {
            ok: report.ok,
            differences: report.differences.clone(),
            unreadable: report.unreadable.clone(),
        },
        containers: container_reports,
        volumes: observed.volumes.clone(),
        jupyters: urls::seats(observed, urls::LOCAL_HOST),
        nodes: Vec::new(),
    }
}
