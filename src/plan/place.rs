//! Placement on a swarm (pure): which nodes may run the master, the Jupyter
//! servers and the optional services, and on which node each worker runs.
//!
//! sparkbox places each worker on a node itself (a `node.id` constraint)
//! instead of leaving it to the scheduler, so a cluster spreads the same way
//! every time — the scheduler balances one service's tasks, and every
//! worker is a service of its own — and `--workers-per-node` is a promise.
//! A worker keeps its node while that node is ready; when the node is lost,
//! the next `up` places it on another node that has room.

use std::collections::BTreeMap;

use crate::engine::SwarmNode;
use crate::error::{Error, Result};
use crate::model::labels::{self, Labelled};
use crate::model::spec::{ClusterSpec, Role};
use crate::plan::observe::Observed;

/// The node label that says what a node may run: `master` (the master, the
/// Jupyter servers unless nodes are labelled `jupyter`, history and
/// Connect), `jupyter` (the Jupyter servers, spread over those nodes: a
/// classroom's drivers on several machines) or `worker`.
pub const ROLE_LABEL: &str = "io.sparkbox.role";

/// Where a swarm cluster's services go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Placement {
    /// The constraints of the master, the Jupyter servers and the optional services.
    pub services: Vec<String>,
    /// Each worker's node ID, by worker number.
    pub workers: BTreeMap<u32, String>,
    /// Each worker's node hostname, by worker number (for the plan's text).
    pub worker_hosts: BTreeMap<u32, String>,
    /// Each Jupyter server's node ID, by student number (0: the one server
    /// of a cluster without students), when nodes are labelled
    /// `io.sparkbox.role=jupyter`; otherwise they go by [`Placement::services`].
    pub jupyters: BTreeMap<u32, String>,
}

fn labelled<'n>(nodes: &'n [SwarmNode], role: &str) -> Vec<&'n SwarmNode> {
    nodes
        .iter()
        .filter(|n| n.labels.get(ROLE_LABEL).map(String::as_str) == Some(role))
        .collect()
}

fn names(nodes: &[&SwarmNode]) -> String {
    nodes
        .iter()
        .map(|n| format!("{} ({})", n.hostname, n.state))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Places `spec`'s services on `nodes`, keeping each existing worker on its
/// node while that node is ready and allowed.
pub fn place(spec: &ClusterSpec, observed: &Observed, nodes: &[SwarmNode]) -> Result<Placement> {
    let per_node = spec.swarm.map(|s| s.workers_per_node).unwrap_or(1).max(1);
    // The master and the drivers: the nodes labelled for them, else the
    // manager sparkbox talks to (exec, readiness and parity reach it).
    let masters = labelled(nodes, "master");
    let services = if masters.is_empty() {
        let here = nodes.iter().find(|n| n.is_self).ok_or_else(|| {
            Error::Swarm("the swarm's node list does not include the manager sparkbox talks to — check `docker node ls` on it".into())
        })?;
        vec![format!("node.id=={}", here.id)]
    } else {
        if !masters.iter().any(|n| n.ready) {
            return Err(Error::Swarm(format!(
                "no node is allowed to run the master of {}: the nodes labelled {ROLE_LABEL}=master are {} — bring one back, or label a ready node: `docker node update --label-add {ROLE_LABEL}=master NODE`",
                spec.name,
                names(&masters)
            )));
        }
        // sparkbox reads the master's state by exec through the manager it
        // talks to, so the master runs there: that manager must be allowed.
        let Some(here) = masters.iter().find(|n| n.is_self && n.ready) else {
            return Err(Error::Swarm(format!(
                "the master of {} must run on the manager sparkbox talks to (its state is read there), and that manager is not labelled {ROLE_LABEL}=master (the labelled nodes are {}) — label it: `docker node update --label-add {ROLE_LABEL}=master <manager>`, or point DOCKER_HOST at a labelled manager",
                spec.name,
                names(&masters)
            )));
        };
        vec![format!("node.id=={}", here.id)]
    };
    // The workers: the nodes labelled for them, else every node.
    let worker_labelled = labelled(nodes, "worker");
    let allowed: Vec<&SwarmNode> = if worker_labelled.is_empty() {
        nodes.iter().filter(|n| n.ready).collect()
    } else {
        worker_labelled
            .iter()
            .copied()
            .filter(|n| n.ready)
            .collect()
    };
    let capacity = allowed.len() as u32 * per_node;
    if spec.workers > capacity {
        let which = if worker_labelled.is_empty() {
            "ready nodes".to_string()
        } else {
            format!("ready nodes labelled {ROLE_LABEL}=worker")
        };
        return Err(Error::Swarm(format!(
            "{} workers do not fit on the swarm: {} {which} × {per_node} per node = {capacity} at most — ask for fewer (--workers), allow more per node (--workers-per-node), or add nodes (`docker swarm join`)",
            spec.workers,
            allowed.len()
        )));
    }
    let mut count: BTreeMap<&str, u32> = allowed.iter().map(|n| (n.id.as_str(), 0)).collect();
    let mut workers = BTreeMap::new();
    // Existing workers stay where they are while their node may run them.
    for c in &observed.containers {
        let l = Labelled(&c.labels);
        if l.role() != Some(Role::Worker) {
            continue;
        }
        let (Some(n), Some(node)) = (l.index(), l.get(labels::NODE)) else {
            continue;
        };
        if n > spec.workers {
            continue;
        }
        if let Some(k) = count.get_mut(node) {
            if *k < per_node {
                *k += 1;
                workers.insert(n, node.to_string());
            }
        }
    }
    for n in 1..=spec.workers {
        if workers.contains_key(&n) {
            continue;
        }
        // The emptiest node; on a tie a node without the master first, so
        // a small swarm spreads its executors off the busiest node.
        let Some(node) = allowed
            .iter()
            .filter(|node| count.get(node.id.as_str()).copied().unwrap_or(0) < per_node)
            .min_by_key(|node| {
                (
                    count.get(node.id.as_str()).copied().unwrap_or(0),
                    node.is_self,
                    node.hostname.clone(),
                )
            })
        else {
            break;
        };
        *count.entry(node.id.as_str()).or_default() += 1;
        workers.insert(n, node.id.clone());
    }
    let worker_hosts = workers
        .iter()
        .map(|(n, id)| {
            let host = nodes
                .iter()
                .find(|node| &node.id == id)
                .map(|node| node.hostname.clone())
                .unwrap_or_else(|| id.clone());
            (*n, host)
        })
        .collect();
    let jupyters = place_jupyters(spec, observed, nodes)?;
    Ok(Placement {
        services,
        workers,
        worker_hosts,
        jupyters,
    })
}

/// The Jupyter servers on the ready nodes labelled `jupyter`, the fewest
/// on a node first; a server keeps its node while that node is ready (its
/// notebooks volume is on that node).
fn place_jupyters(
    spec: &ClusterSpec,
    observed: &Observed,
    nodes: &[SwarmNode],
) -> Result<BTreeMap<u32, String>> {
    let labelled_nodes = labelled(nodes, "jupyter");
    if labelled_nodes.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut allowed: Vec<&SwarmNode> = labelled_nodes.iter().copied().filter(|n| n.ready).collect();
    if allowed.is_empty() {
        return Err(Error::Swarm(format!(
            "no node is allowed to run the Jupyter servers of {}: the nodes labelled {ROLE_LABEL}=jupyter are {} — bring one back, or label a ready node: `docker node update --label-add {ROLE_LABEL}=jupyter NODE`",
            spec.name,
            names(&labelled_nodes)
        )));
    }
    allowed.sort_by(|a, b| (!a.is_self, &a.hostname).cmp(&(!b.is_self, &b.hostname)));
    let indices: Vec<u32> = if spec.students == 0 {
        vec![0]
    } else {
        (1..=spec.students).collect()
    };
    let mut count: BTreeMap<&str, u32> = allowed.iter().map(|n| (n.id.as_str(), 0)).collect();
    let mut placed = BTreeMap::new();
    for (index, c) in observed.jupyters() {
        if !indices.contains(&index) {
            continue;
        }
        if let Some(node) = Labelled(&c.labels).get(labels::NODE) {
            if let Some(k) = count.get_mut(node) {
                *k += 1;
                placed.insert(index, node.to_string());
            }
        }
    }
    for index in indices {
        if placed.contains_key(&index) {
            continue;
        }
        // `allowed` is not empty: a node with the fewest, in its order.
        let Some(node) = allowed
            .iter()
            .min_by_key(|n| count.get(n.id.as_str()).copied().unwrap_or(0))
        else {
            break;
        };
        *count.entry(node.id.as_str()).or_default() += 1;
        placed.insert(index, node.id.clone());
    }
    Ok(placed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ContainerState;
    use std::collections::HashMap;

    fn node(id: &str, ready: bool, is_self: bool, role: Option<&str>) -> SwarmNode {
        SwarmNode {
            id: id.into(),
            hostname: format!("host-{id}"),
            role: if is_self { "manager" } else { "worker" }.into(),
            ready,
            state: if ready {
                "ready, active"
            } else {
                "down, active"
            }
            .into(),
            address: String::new(),
            labels: role
                .map(|r| HashMap::from([(ROLE_LABEL.to_string(), r.to_string())]))
                .unwrap_or_default(),
            is_self,
        }
    }

    fn spec(workers: u32, per_node: u32) -> ClusterSpec {
        let mut s = crate::plan::desired::tests::sample_spec(workers);
        s.name = "sw".into();
        s.swarm = Some(crate::model::spec::SwarmSpec {
            workers_per_node: per_node,
        });
        s
    }

    fn worker_on(n: u32, node: &str) -> ContainerState {
        ContainerState {
            name: format!("sw-worker-{n}"),
            labels: HashMap::from([
                (labels::ROLE.to_string(), "worker".to_string()),
                (labels::INDEX.to_string(), n.to_string()),
                (labels::NODE.to_string(), node.to_string()),
            ]),
            ..Default::default()
        }
    }

    #[test]
    fn workers_spread_one_per_node_off_the_manager_first() {
        let nodes = [node("m", true, true, None), node("a", true, false, None)];
        let p = place(&spec(2, 1), &Observed::default(), &nodes).expect("fits");
        assert_eq!(p.services, vec!["node.id==m".to_string()]);
        assert_eq!(p.workers.get(&1).map(String::as_str), Some("a"));
        assert_eq!(p.workers.get(&2).map(String::as_str), Some("m"));
    }

    #[test]
    fn more_workers_than_room_is_refused_with_the_arithmetic() {
        let nodes = [node("m", true, true, None), node("a", true, false, None)];
        let e = place(&spec(3, 1), &Observed::default(), &nodes)
            .expect_err("no room")
            .to_string();
        assert!(e.contains("2 ready nodes × 1 per node = 2"), "{e}");
        assert!(e.contains("--workers-per-node"), "{e}");
        assert!(place(&spec(3, 2), &Observed::default(), &nodes).is_ok());
    }

    #[test]
    fn a_worker_keeps_its_node_and_moves_when_the_node_is_down() {
        let observed = Observed {
            containers: vec![worker_on(1, "m"), worker_on(2, "a")],
            ..Default::default()
        };
        let up = [node("m", true, true, None), node("a", true, false, None)];
        let p = place(&spec(2, 1), &observed, &up).expect("fits");
        assert_eq!(p.workers.get(&1).map(String::as_str), Some("m"));
        assert_eq!(p.workers.get(&2).map(String::as_str), Some("a"));
        let down = [
            node("m", true, true, None),
            node("a", false, false, None),
            node("b", true, false, None),
        ];
        let p = place(&spec(2, 1), &observed, &down).expect("fits");
        assert_eq!(p.workers.get(&1).map(String::as_str), Some("m"));
        assert_eq!(p.workers.get(&2).map(String::as_str), Some("b"));
    }

    #[test]
    fn jupyter_servers_spread_over_the_nodes_labelled_for_them_and_keep_theirs() {
        let nodes = [
            node("m", true, true, Some("jupyter")),
            node("a", true, false, Some("jupyter")),
            node("b", true, false, None),
        ];
        let mut s = spec(1, 1);
        s.students = 3;
        let p = place(&s, &Observed::default(), &nodes).expect("fits");
        assert_eq!(p.services, vec!["node.id==m".to_string()]);
        let on = |i: u32| p.jupyters.get(&i).map(String::as_str);
        assert_eq!((on(1), on(2), on(3)), (Some("m"), Some("a"), Some("m")));
        // Student 1 already on a: it stays there.
        let mut j = worker_on(1, "a");
        j.labels.insert(labels::ROLE.into(), "jupyter".into());
        let observed = Observed {
            containers: vec![j],
            ..Default::default()
        };
        let p = place(&s, &observed, &nodes).expect("fits");
        assert_eq!(p.jupyters.get(&1).map(String::as_str), Some("a"));
        // No label: the services' constraint places them.
        let plain = [node("m", true, true, None), node("a", true, false, None)];
        assert!(place(&s, &Observed::default(), &plain)
            .expect("fits")
            .jupyters
            .is_empty());
        // Labelled nodes all down: named.
        let down = [
            node("m", true, true, None),
            node("a", false, false, Some("jupyter")),
        ];
        let e = place(&s, &Observed::default(), &down)
            .expect_err("no Jupyter node")
            .to_string();
        assert!(e.contains("Jupyter servers") && e.contains("host-a"), "{e}");
    }

    #[test]
    fn labels_choose_the_nodes_and_a_label_that_places_nothing_is_named() {
        let nodes = [
            node("m", true, true, Some("master")),
            node("a", true, false, Some("worker")),
            node("b", true, false, Some("worker")),
        ];
        let p = place(&spec(2, 1), &Observed::default(), &nodes).expect("fits");
        assert_eq!(p.services, vec!["node.id==m".to_string()]);
        assert!(p.workers.values().all(|n| n == "a" || n == "b"));
        // A master label only on another node: the manager must be allowed.
        let elsewhere = [
            node("m", true, true, None),
            node("a", true, false, Some("master")),
        ];
        let e = place(&spec(1, 1), &Observed::default(), &elsewhere)
            .expect_err("the manager is not allowed")
            .to_string();
        assert!(
            e.contains("must run on the manager") && e.contains("--label-add"),
            "{e}"
        );
        let nodes = [
            node("m", true, true, None),
            node("a", false, false, Some("master")),
        ];
        let e = place(&spec(1, 1), &Observed::default(), &nodes)
            .expect_err("no master node")
            .to_string();
        assert!(
            e.contains("no node is allowed to run the master")
                && e.contains("host-a (down, active)"),
            "{e}"
        );
    }
}
