//! Docker Swarm through a manager's Engine API: a cluster's master, workers
//! and Jupyter servers become services of one replica each, named as their
//! containers would be, carrying the same labels (still the only record).
//!
//! The Docker engine decides per object: an object whose labels say
//! `io.sparkbox.engine=swarm` is a service (a network of such a cluster an
//! attachable overlay); everything else stays a container. So observe,
//! reconcile, plan, execute, readiness and parity run unchanged over a
//! swarm, and `status`, `down`, `scale` find a swarm cluster without a flag.
//!
//! Networking works on a swarm without IPVS (many small ones, this lab's
//! kernel among them): DNS round-robin endpoints instead of virtual IPs, and
//! ports published in host mode on the node that runs the task, never on
//! the ingress mesh.

use std::collections::HashMap;

use bollard::models::{Service, ServiceSpec, Task};
use bollard::query_parameters::{
    InspectServiceOptions, ListNodesOptions, ListServicesOptions, ListTasksOptions,
    UpdateServiceOptions,
};
use bollard::Docker;

use super::{ContainerSpec, ContainerState, SwarmNode};
use crate::error::{Error, Result};
use crate::model::labels;

/// What the engine is in a swarm: its node ID when it is a manager.
#[derive(Debug, Clone, Default)]
pub struct SwarmRole {
    /// This engine's node ID, when the engine is a swarm manager.
    pub manager_node: Option<String>,
}

/// Reads whether the engine is a swarm manager (one `info` call).
pub async fn role_of(docker: &Docker) -> SwarmRole {
    let Ok(info) = docker.info().await else {
        return SwarmRole::default();
    };
    let swarm = info.swarm.unwrap_or_default();
    let active = swarm
        .local_node_state
        .map(|s| s.to_string() == "active")
        .unwrap_or(false);
    SwarmRole {
        manager_node: (active && swarm.control_available == Some(true))
            .then_some(swarm.node_id)
            .flatten(),
    }
}

/// True when `labels` mark an object of a swarm cluster.
pub fn is_swarm(labels: &HashMap<String, String>) -> bool {
    labels.get(labels::ENGINE).map(String::as_str) == Some(labels::ENGINE_SWARM)
}

fn swarm_error(action: &str, e: bollard::errors::Error) -> Error {
    Error::Swarm(format!(
        "the swarm manager refused to {action}: {}",
        super::error_chain(&e)
    ))
}

fn is_404(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// The nodes of the swarm.
pub async fn nodes(docker: &Docker, role: &SwarmRole) -> Result<Vec<SwarmNode>> {
    let list = docker
        .list_nodes(None::<ListNodesOptions>)
        .await
        .map_err(|e| swarm_error("list its nodes", e))?;
    let mut nodes: Vec<SwarmNode> = list
        .into_iter()
        .map(|n| {
            let id = n.id.unwrap_or_default();
            let spec = n.spec.unwrap_or_default();
            let status = n.status.unwrap_or_default();
            let word = |w: Option<String>| w.unwrap_or_else(|| "unknown".into());
            let state = word(status.state.map(|s| s.to_string()));
            let availability = word(spec.availability.map(|a| a.to_string()));
            SwarmNode {
                hostname: n
                    .description
                    .and_then(|d| d.hostname)
                    .unwrap_or_else(|| id.clone()),
                role: word(spec.role.map(|r| r.to_string())),
                ready: state == "ready" && availability == "active",
                state: format!("{state}, {availability}"),
                address: status.addr.unwrap_or_default(),
                labels: spec.labels.unwrap_or_default(),
                is_self: role.manager_node.as_deref() == Some(id.as_str()),
                id,
            }
        })
        .collect();
    nodes.sort_by(|a, b| (!a.is_self, &a.hostname).cmp(&(!b.is_self, &b.hostname)));
    Ok(nodes)
}

fn label_filter(labels_wanted: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
    let selectors = super::label_selectors(labels_wanted);
    HashMap::from([("label".to_string(), selectors)])
}

/// The services carrying `labels_wanted`, each with its current task, as
/// containers: named as the service, its labels, its task's state and node.
pub async fn services_as_containers(
    docker: &Docker,
    labels_wanted: &[(&str, &str)],
) -> Result<Vec<ContainerState>> {
    let services = docker
        .list_services(Some(ListServicesOptions {
            filters: Some(label_filter(labels_wanted)),
            ..Default::default()
        }))
        .await
        .map_err(|e| swarm_error("list services", e))?;
    if services.is_empty() {
        return Ok(Vec::new());
    }
    // Only the tasks meant to run: the others are history.
    let tasks = docker
        .list_tasks(Some(ListTasksOptions {
            filters: Some(HashMap::from([(
                "desired-state".to_string(),
                vec!["running".to_string()],
            )])),
        }))
        .await
        .map_err(|e| swarm_error("list tasks", e))?;
    let nodes = docker
        .list_nodes(None::<ListNodesOptions>)
        .await
        .map_err(|e| swarm_error("list its nodes", e))?;
    let hostnames: HashMap<String, String> = nodes
        .iter()
        .filter_map(|n| Some((n.id.clone()?, n.description.as_ref()?.hostname.clone()?)))
        .collect();
    Ok(services
        .iter()
        .map(|s| service_view(s, &tasks, &hostnames))
        .collect())
}

/// True when the service's containers run a healthcheck (swarm then holds
/// each task in "starting" until it passes).
fn has_healthcheck(spec: &ServiceSpec) -> bool {
    spec.task_template
        .as_ref()
        .and_then(|t| t.container_spec.as_ref())
        .and_then(|c| c.health_check.as_ref())
        .and_then(|h| h.test.as_ref())
        .is_some_and(|t| t.first().is_some_and(|w| w != "NONE"))
}

fn replicas_of(service: &Service) -> i64 {
    service
        .spec
        .as_ref()
        .and_then(|s| s.mode.as_ref())
        .and_then(|m| m.replicated.as_ref())
        .and_then(|r| r.replicas)
        .unwrap_or(0)
}

/// The task of `service` that counts: the newest one meant to run.
fn current_task<'t>(service_id: &str, tasks: &'t [Task]) -> Option<&'t Task> {
    tasks
        .iter()
        .filter(|t| t.service_id.as_deref() == Some(service_id))
        .filter(|t| {
            t.desired_state
                .as_ref()
                .map(|d| d.to_string() == "running")
                .unwrap_or(false)
        })
        .max_by_key(|t| t.created_at.clone().unwrap_or_default())
}

fn service_view(
    service: &Service,
    tasks: &[Task],
    hostnames: &HashMap<String, String>,
) -> ContainerState {
    let spec = service.spec.clone().unwrap_or_default();
    let name = spec.name.clone().unwrap_or_default();
    let service_labels = spec.labels.clone().unwrap_or_default();
    let id = service.id.clone().unwrap_or_default();
    let task = current_task(&id, tasks);
    let task_state = task
        .and_then(|t| t.status.as_ref())
        .and_then(|s| s.state.as_ref())
        .map(|s| s.to_string())
        .unwrap_or_default();
    let message = task
        .and_then(|t| t.status.as_ref())
        .and_then(|s| s.err.clone().or_else(|| s.message.clone()))
        .unwrap_or_default();
    let node = task
        .and_then(|t| t.node_id.as_ref())
        .map(|n| hostnames.get(n).cloned().unwrap_or_else(|| n.clone()));
    // A service scaled to nothing is a stopped container; a task on its way
    // (pending, assigned, preparing, starting) one that is not running yet.
    let state = if replicas_of(service) == 0 {
        "exited".to_string()
    } else {
        match task_state.as_str() {
            // A task of a service with a healthcheck stays "starting" until
            // the check passes: its container runs, its health is starting.
            "running" | "starting" => "running",
            "" | "new" | "pending" | "assigned" | "accepted" | "ready" | "preparing" => "created",
            // failed, rejected, shutdown, complete, orphaned, remove
            _ => "exited",
        }
        .to_string()
    };
    let status = match (&node, task_state.as_str()) {
        (_, "") => "no task".to_string(),
        (Some(n), s) => format!("task {s} on {n} ({message})"),
        (None, s) => format!("task {s}, not placed ({message})"),
    };
    let ports = service
        .endpoint
        .as_ref()
        .and_then(|e| e.ports.clone())
        .or_else(|| spec.endpoint_spec.as_ref().and_then(|e| e.ports.clone()))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| {
            Some((
                u16::try_from(p.target_port?).ok()?,
                u16::try_from(p.published_port?).ok()?,
            ))
        })
        .collect();
    let created = service
        .created_at
        .as_deref()
        .and_then(unix_seconds)
        .unwrap_or(0);
    ContainerState {
        id: task
            .and_then(|t| t.status.as_ref())
            .and_then(|s| s.container_status.as_ref())
            .and_then(|c| c.container_id.clone())
            .unwrap_or_default(),
        image_id: service_labels
            .get(labels::IMAGE_ID)
            .cloned()
            .unwrap_or_default(),
        labels: service_labels,
        name,
        health: has_healthcheck(&spec)
            .then(|| {
                match (state.as_str(), task_state.as_str()) {
                    ("running", "running") => "healthy",
                    ("running", _) => "starting",
                    _ => "none",
                }
                .to_string()
            })
            .filter(|h| h != "none"),
        state,
        ports,
        status,
        created,
        node,
    }
}

/// Seconds since the epoch of an RFC 3339 UTC time ("2026-12-02T10:01:02.123Z"),
/// the inverse of [`crate::ops::bundle::utc_timestamp`].
pub fn unix_seconds(text: &str) -> Option<i64> {
    let (date, time) = text.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time
        .split([':', '.', 'Z', '+'])
        .map(|x| x.parse::<i64>().ok());
    let (h, min, s) = (t.next()??, t.next()??, t.next()??);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + min * 60 + s)
}

/// The service spec for `spec`: one replica, DNS round-robin, ports in host
/// mode, the image pinned by its registry digest.
pub fn service_spec(spec: &ContainerSpec) -> Result<ServiceSpec> {
    let image = spec
        .labels
        .get(labels::IMAGE_DIGEST)
        .cloned()
        .ok_or_else(|| {
            Error::Swarm(format!(
                "{} would run {} with no registry digest, so the swarm's nodes could not all pull the same image — give a registry (--registry HOST[:PORT]/PATH or [image] registry) that every node can pull from",
                spec.name, spec.image
            ))
        })?;
    let mounts: Vec<serde_json::Value> = spec
        .binds
        .iter()
        .filter_map(|b| {
            let mut parts = b.splitn(3, ':');
            let source = parts.next()?;
            let target = parts.next()?;
            let read_only = parts
                .next()
                .is_some_and(|m| m.split(',').any(|o| o == "ro"));
            let kind = if source.starts_with('/') {
                "bind"
            } else {
                "volume"
            };
            Some(serde_json::json!({
                "Type": kind, "Source": source, "Target": target, "ReadOnly": read_only,
            }))
        })
        .collect();
    let healthcheck = spec.healthcheck.as_ref().map(|cmd| {
        let mut test = vec!["CMD".to_string()];
        test.extend(cmd.iter().cloned());
        serde_json::json!({
            "Test": test, "Interval": 10_000_000_000i64, "Timeout": 5_000_000_000i64,
            "Retries": 3, "StartPeriod": 60_000_000_000i64,
        })
    });
    let ports: Vec<serde_json::Value> = spec
        .ports
        .iter()
        .map(|p| {
            serde_json::json!({
                "Protocol": "tcp", "TargetPort": p.container_port,
                "PublishedPort": p.host_port, "PublishMode": "host",
            })
        })
        .collect();
    let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    // Each container says what it runs in its log, for the parity check of
    // a node the manager cannot exec on.
    env.push(format!("{}=1", crate::model::contract::REPORT_VERSIONS_ENV));
    let mut limits = serde_json::Map::new();
    let mut reservations = serde_json::Map::new();
    if let Some(m) = spec.memory_bytes {
        limits.insert("MemoryBytes".into(), m.into());
        // What a worker offers is reserved on its node (a worker is what
        // has CPUs reserved); the others' memory is only limited.
        if spec.nano_cpus.is_some() {
            reservations.insert("MemoryBytes".into(), m.into());
        }
    }
    if let Some(c) = spec.nano_cpus {
        reservations.insert("NanoCPUs".into(), c.into());
    }
    if let Some(p) = spec.pids_limit {
        limits.insert("Pids".into(), p.into());
    }
    let mut container = serde_json::json!({
        "Image": image,
        "Args": spec.command,
        "Env": env,
        "Hostname": spec.name,
        "Mounts": mounts,
        // The entrypoint's own grace: stop_container's timeout is the engine's.
        "StopGracePeriod": 10_000_000_000i64,
    });
    if let Some(user) = &spec.user {
        container["User"] = user.clone().into();
    }
    if let Some(caps) = &spec.cap_add {
        container["CapabilityDrop"] = serde_json::json!(["ALL"]);
        container["CapabilityAdd"] = serde_json::json!(caps);
        container["Privileges"] = serde_json::json!({ "NoNewPrivileges": true });
    }
    if let Some(h) = healthcheck {
        container["HealthCheck"] = h;
    }
    let networks = if spec.network.is_empty() {
        serde_json::json!([])
    } else {
        serde_json::json!([{ "Target": spec.network, "Aliases": [spec.name] }])
    };
    let value = serde_json::json!({
        "Name": spec.name,
        "Labels": spec.labels,
        "TaskTemplate": {
            "ContainerSpec": container,
            "Resources": { "Limits": limits, "Reservations": reservations },
            "RestartPolicy": { "Condition": "any", "Delay": 5_000_000_000i64 },
            "Placement": { "Constraints": spec.constraints },
            "Networks": networks,
        },
        "Mode": { "Replicated": { "Replicas": 1 } },
        "EndpointSpec": { "Mode": "dnsrr", "Ports": ports },
    });
    serde_json::from_value(value).map_err(|e| {
        Error::Swarm(format!(
            "the service spec of {} cannot be written: {e}",
            spec.name
        ))
    })
}

/// Creates the service for `spec`.
pub async fn create_service(docker: &Docker, spec: &ContainerSpec) -> Result<String> {
    let body = service_spec(spec)?;
    docker
        .create_service(body, None)
        .await
        .map(|r| r.id.unwrap_or_default())
        .map_err(|e| {
            let detail = super::error_chain(&e);
            if detail.contains("already exists") || detail.contains("name conflicts") {
                Error::name_conflict(
                    format!("create service {}", spec.name),
                    "service",
                    &spec.name,
                    detail,
                )
            } else {
                swarm_error(&format!("create service {}", spec.name), e)
            }
        })
}

/// The service named `name`, if there is one.
pub async fn service(docker: &Docker, name: &str) -> Result<Option<Service>> {
    match docker
        .inspect_service(name, None::<InspectServiceOptions>)
        .await
    {
        Ok(s) => Ok(Some(s)),
        Err(e) if is_404(&e) => Ok(None),
        Err(e) => Err(swarm_error(&format!("inspect service {name}"), e)),
    }
}

/// Sets the replicas of `service` (0: stopped, 1: running), touching
/// nothing else of it.
pub async fn set_replicas(docker: &Docker, service: &Service, replicas: i64) -> Result<()> {
    if replicas_of(service) == replicas {
        return Ok(());
    }
    let mut spec = service.spec.clone().unwrap_or_default();
    let name = spec.name.clone().unwrap_or_default();
    let version = service.version.as_ref().and_then(|v| v.index).unwrap_or(0);
    let mut mode = spec.mode.clone().unwrap_or_default();
    let mut replicated = mode.replicated.clone().unwrap_or_default();
    replicated.replicas = Some(replicas);
    mode.replicated = Some(replicated);
    spec.mode = Some(mode);
    docker
        .update_service(
            &name,
            spec,
            UpdateServiceOptions {
                version: i32::try_from(version).unwrap_or(i32::MAX),
                ..Default::default()
            },
            None,
        )
        .await
        .map(|_| ())
        .map_err(|e| swarm_error(&format!("scale service {name}"), e))
}

/// Waits until `service` has no task running (or on its way), or says
/// which is still there after `patience`.
pub async fn wait_no_running_task(
    docker: &Docker,
    service: &Service,
    patience: std::time::Duration,
) -> Result<()> {
    let id = service.id.clone().unwrap_or_default();
    let name = service
        .spec
        .as_ref()
        .and_then(|s| s.name.clone())
        .unwrap_or_else(|| id.clone());
    let deadline = std::time::Instant::now() + patience;
    loop {
        let tasks = docker
            .list_tasks(Some(ListTasksOptions {
                filters: Some(HashMap::from([("service".to_string(), vec![id.clone()])])),
            }))
            .await
            .map_err(|e| swarm_error(&format!("list the tasks of {name}"), e))?;
        let live: Vec<String> = tasks
            .iter()
            .filter_map(|t| {
                let state = t.status.as_ref()?.state.as_ref()?.to_string();
                matches!(
                    state.as_str(),
                    "new"
                        | "pending"
                        | "assigned"
                        | "accepted"
                        | "preparing"
                        | "ready"
                        | "starting"
                        | "running"
                )
                .then_some(state)
            })
            .collect();
        if live.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(Error::Swarm(format!(
                "service {name} is scaled to nothing, and its task is still {} after {} s — its node may be unreachable (`docker service ps {name}` on the manager)",
                live.join(", "),
                patience.as_secs()
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

/// Removes the service named `name`; true when there was one.
pub async fn remove_service(docker: &Docker, name: &str) -> Result<bool> {
    match docker.delete_service(name).await {
        Ok(()) => Ok(true),
        Err(e) if is_404(&e) => Ok(false),
        Err(e) => Err(swarm_error(&format!("remove service {name}"), e)),
    }
}

/// Where the task of service `name` runs: its container ID when that is on
/// this engine's node, or the other node's hostname.
pub enum TaskPlace {
    /// Not a service: a container of that name, if any.
    NotAService,
    /// On this node: the container's ID.
    Here(String),
    /// On another node (its hostname), or nowhere yet.
    Elsewhere(String),
    /// Its task has no container yet — not placed, or pulling or starting
    /// on this node (the task's state).
    Starting(String),
}

/// Finds where service `name`'s running task is.
pub async fn place_of(docker: &Docker, role: &SwarmRole, name: &str) -> Result<TaskPlace> {
    let Some(service) = service(docker, name).await? else {
        return Ok(TaskPlace::NotAService);
    };
    let id = service.id.clone().unwrap_or_default();
    let tasks = docker
        .list_tasks(Some(ListTasksOptions {
            filters: Some(HashMap::from([("service".to_string(), vec![id.clone()])])),
        }))
        .await
        .map_err(|e| swarm_error(&format!("list the tasks of {name}"), e))?;
    let Some(task) = current_task(&id, &tasks) else {
        return Ok(TaskPlace::Elsewhere(
            "no node (the service has no task)".into(),
        ));
    };
    let node = task.node_id.clone().unwrap_or_default();
    let container = task
        .status
        .as_ref()
        .and_then(|s| s.container_status.as_ref())
        .and_then(|c| c.container_id.clone());
    let here = role.manager_node.as_deref() == Some(node.as_str());
    match container {
        Some(c) if here => Ok(TaskPlace::Here(c)),
        None if here || node.is_empty() => Ok(TaskPlace::Starting(
            task.status
                .as_ref()
                .and_then(|s| s.state.as_ref())
                .map(|s| s.to_string())
                .unwrap_or_else(|| "new".into()),
        )),
        _ => {
            let hostname = docker
                .inspect_node(&node)
                .await
                .ok()
                .and_then(|n| n.description.and_then(|d| d.hostname))
                .unwrap_or(node);
            Ok(TaskPlace::Elsewhere(hostname))
        }
    }
}

/// True when swarm node `node` satisfies every one of `constraints` (the
/// kinds sparkbox writes: `node.id==ID`, `node.role==ROLE`,
/// `node.labels.KEY==VALUE`; any other kind is taken as satisfied, so a
/// check never skips a node that might run the service).
pub fn node_matches(node: &SwarmNode, constraints: &[String]) -> bool {
    constraints.iter().all(|c| {
        let Some((key, value)) = c.split_once("==") else {
            return true;
        };
        let (key, value) = (key.trim(), value.trim());
        if key == "node.id" {
            node.id == value
        } else if key == "node.role" {
            node.role == value
        } else if let Some(label) = key.strip_prefix("node.labels.") {
            node.labels.get(label).map(String::as_str) == Some(value)
        } else {
            true
        }
    })
}

/// The name of the one-shot job that checks host directory number `i` of
/// `cluster` on every node.
pub fn path_check_name(cluster: &str, i: usize) -> String {
    format!("{cluster}-pathcheck-{i}")
}

/// The error of a host directory missing on some nodes.
pub fn missing_path_error(cluster: &str, path: &str, lacking: &[String]) -> Error {
    Error::Swarm(format!(
        "the directory {path} does not exist on node{} {} of the swarm, and every node that runs a service of {cluster} mounts it at the same path — make it there (the same files on every node: an NFS or other shared mount at {path}), or give a directory every node has (--data DIR)",
        if lacking.len() == 1 { "" } else { "s" },
        lacking.join(", ")
    ))
}

/// What a node's check task ended as.
enum CheckEnd {
    Present,
    Missing,
    Failed(String),
}

fn check_end(task: &Task) -> Option<CheckEnd> {
    let status = task.status.as_ref()?;
    let state = status.state.as_ref()?.to_string();
    let err = status
        .err
        .clone()
        .or_else(|| status.message.clone())
        .unwrap_or_default();
    match state.as_str() {
        "complete" => Some(CheckEnd::Present),
        "failed" | "rejected" | "shutdown" | "orphaned" | "remove" => {
            if err.contains("bind source path does not exist")
                || err.contains("no such file or directory")
            {
                Some(CheckEnd::Missing)
            } else {
                Some(CheckEnd::Failed(format!("{state}: {err}")))
            }
        }
        _ => None,
    }
}

/// Checks, before anything of `cluster` starts, that each host directory of
/// `uses` exists on every ready node that may run a service mounting it: a
/// one-shot global job per directory that mounts it read-only in the
/// cluster's own image (pinned by `image`, its digest) and exits. A node
/// where the mount fails is named, with what to do; the jobs are removed
/// whatever happens.
pub async fn check_host_paths(
    docker: &Docker,
    role: &SwarmRole,
    cluster: &str,
    image: &str,
    uses: &[super::HostPathUse],
    timeout: std::time::Duration,
) -> Result<()> {
    let nodes = nodes(docker, role).await?;
    let mut jobs = Vec::new();
    for (i, u) in uses.iter().enumerate() {
        let wanted: Vec<&SwarmNode> = nodes
            .iter()
            .filter(|n| n.ready && u.constraints.iter().any(|c| node_matches(n, c)))
            .collect();
        if !wanted.is_empty() {
            jobs.push((path_check_name(cluster, i), u, wanted));
        }
    }
    // A check an interrupted `up` left behind goes first.
    for (name, _, _) in &jobs {
        remove_service(docker, name).await?;
    }
    let outcome = run_path_checks(docker, cluster, image, &jobs, timeout).await;
    for (name, _, _) in &jobs {
        if let Err(e) = remove_service(docker, name).await {
            tracing::warn!("{e}");
        }
    }
    outcome
}

type PathJob<'a> = (String, &'a super::HostPathUse, Vec<&'a SwarmNode>);

async fn run_path_checks(
    docker: &Docker,
    cluster: &str,
    image: &str,
    jobs: &[PathJob<'_>],
    timeout: std::time::Duration,
) -> Result<()> {
    let mut ids = Vec::new();
    for (name, u, _) in jobs {
        let value = serde_json::json!({
            "Name": name,
            "Labels": { labels::CHECK: cluster },
            "TaskTemplate": {
                "ContainerSpec": {
                    "Image": image,
                    "Command": ["true"],
                    "Mounts": [{
                        "Type": "bind", "Source": u.path,
                        "Target": "/sparkbox-check", "ReadOnly": true,
                    }],
                },
                "RestartPolicy": { "Condition": "none" },
            },
            "Mode": { "GlobalJob": {} },
        });
        let body: ServiceSpec = serde_json::from_value(value)
            .map_err(|e| Error::Swarm(format!("the check of {} cannot be written: {e}", u.path)))?;
        let id = docker
            .create_service(body, None)
            .await
            .map_err(|e| swarm_error(&format!("start the check of {} on its nodes", u.path), e))?
            .id
            .unwrap_or_default();
        ids.push(id);
    }
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let mut missing: Vec<(String, Vec<String>)> = Vec::new();
        let mut failed: Vec<String> = Vec::new();
        let mut waiting: Vec<String> = Vec::new();
        for ((_, u, wanted), id) in jobs.iter().zip(&ids) {
            let tasks = docker
                .list_tasks(Some(ListTasksOptions {
                    filters: Some(HashMap::from([("service".to_string(), vec![id.clone()])])),
                }))
                .await
                .map_err(|e| swarm_error(&format!("list the tasks checking {}", u.path), e))?;
            let mut lacking = Vec::new();
            for node in wanted {
                let end = tasks
                    .iter()
                    .filter(|t| t.node_id.as_deref() == Some(node.id.as_str()))
                    .max_by_key(|t| t.created_at.clone().unwrap_or_default())
                    .and_then(check_end);
                match end {
                    Some(CheckEnd::Present) => {}
                    Some(CheckEnd::Missing) => lacking.push(node.hostname.clone()),
                    Some(CheckEnd::Failed(why)) => failed.push(format!(
                        "the check of {} on node {} ended {why}",
                        u.path, node.hostname
                    )),
                    None => waiting.push(format!("{} on {}", u.path, node.hostname)),
                }
            }
            if !lacking.is_empty() {
                missing.push((u.path.clone(), lacking));
            }
        }
        if waiting.is_empty() || std::time::Instant::now() >= deadline {
            if let Some((path, lacking)) = missing.first() {
                return Err(missing_path_error(cluster, path, lacking));
            }
            if !failed.is_empty() {
                return Err(Error::Swarm(format!(
                    "the nodes could not check the directories of {cluster}: {} — see `docker node ps NODE` on the manager",
                    failed.join("; ")
                )));
            }
            if !waiting.is_empty() {
                return Err(Error::Swarm(format!(
                    "the check of the directories of {cluster} did not finish in {} s on every node (still waiting: {}) — a node may still be pulling the image; run `sparkbox up` again, or raise --timeout",
                    timeout.as_secs(),
                    waiting.join(", ")
                )));
            }
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
