//! The waits execution and readiness share: everything goes through exec
//! inside the containers (never a container IP from the host), with a
//! deadline, failing fast when a container exits or turns unhealthy.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};

use crate::engine::{ContainerState, Engine};
use crate::error::{Error, Result};
use crate::model::labels;
use crate::progress::Progress;

/// The shortest readiness round (the waits themselves poll inside the containers).
const POLL: Duration = Duration::from_millis(250);
/// How many log lines a failure shows.
const LOG_LINES: usize = 30;

/// The probe script inside the image.
pub const PROBE: &str = crate::model::contract::PROBE;

/// A worker as the master's /json/ reports it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MasterWorker {
    /// Worker ID.
    pub id: String,
    /// Host name it registered with.
    pub host: String,
    /// "ALIVE", "DEAD", …
    pub state: String,
    /// Cores offered.
    pub cores: u64,
    /// Cores in use.
    pub coresused: u64,
    /// Memory offered (MiB).
    pub memory: u64,
    /// Memory in use (MiB).
    pub memoryused: u64,
    /// Its web UI address.
    pub webuiaddress: String,
}

/// An application as the master reports it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MasterApp {
    /// Application ID.
    pub id: String,
    /// Application name.
    pub name: String,
    /// Cores granted.
    pub cores: i64,
    /// "RUNNING", "WAITING", …
    pub state: String,
}

/// The master's /json/ document (the parts sparkbox reads).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MasterJson {
    /// Master URL.
    pub url: String,
    /// Registered workers (alive or not).
    pub workers: Vec<MasterWorker>,
    /// Total cores of alive workers.
    pub cores: u64,
    /// Cores in use.
    pub coresused: u64,
    /// Total memory (MiB).
    pub memory: u64,
    /// Memory in use (MiB).
    pub memoryused: u64,
    /// Running applications.
    pub activeapps: Vec<MasterApp>,
    /// Finished applications.
    pub completedapps: Vec<MasterApp>,
    /// "ALIVE" for a working master.
    pub status: String,
}

impl MasterJson {
    /// Alive workers whose host is one of `hosts` (a replaced worker's stale
    /// registration under an old address is not counted twice).
    pub fn alive_workers(&self) -> Vec<&MasterWorker> {
        let mut seen = std::collections::BTreeSet::new();
        self.workers
            .iter()
            .filter(|w| w.state == "ALIVE")
            .filter(|w| seen.insert(w.host.clone()))
            .collect()
    }
}

/// Asks the master (from inside its container) for its state.
pub async fn master_state<E: Engine>(engine: &E, master: &str) -> Result<Option<MasterJson>> {
    let out = engine.exec(master, &[PROBE, "master"]).await?;
    if out.exit_code != 0 {
        return Ok(None);
    }
    Ok(serde_json::from_str(out.stdout.trim()).ok())
}

/// True when a container's service answers within `wait_s` seconds (the
/// image's healthcheck for `role`: Jupyter's API with the token, the history
/// UI, the Connect port). The check repeats inside the container, in one
/// process, rather than in one exec after another: on a small machine those
/// would take CPU from the daemons that are starting.
pub async fn service_ready<E: Engine>(
    engine: &E,
    container: &str,
    role: &str,
    wait_s: &str,
) -> Result<bool> {
    let out = engine
        .exec(
            container,
            &[crate::model::contract::HEALTHCHECK, "--wait", wait_s, role],
        )
        .await?;
    if out.exit_code == USAGE_EXIT {
        // An image made before `--wait` existed (a cluster that `start` or
        // `scale` runs on the image it was made with): one check at a time.
        let out = engine
            .exec(container, &[crate::model::contract::HEALTHCHECK, role])
            .await?;
        return Ok(out.exit_code == 0);
    }
    Ok(out.exit_code == 0)
}

/// True when a container's service answers ([`service_ready`]). A swarm
/// service on another node cannot be exec'd through the manager; there the
/// node's engine runs the same check as the service's healthcheck, and
/// swarm holds the task in "starting" until it passes: a running task that
/// is no longer starting is one that answered.
async fn answers<E: Engine>(engine: &E, cluster: &str, name: &str, role: &str) -> bool {
    match service_ready(engine, name, role, WAIT_SLICE_S).await {
        Ok(ok) => ok,
        Err(Error::OtherNode { .. }) => engine
            .containers(&[(labels::CLUSTER, cluster)])
            .await
            .map(|cs| {
                cs.iter().any(|c| {
                    c.name == name && c.is_running() && c.health.as_deref() != Some("starting")
                })
            })
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// The healthcheck's exit code for arguments it does not know.
const USAGE_EXIT: i64 = 2;

/// Fails when an expected container is missing, stopped or unhealthy, with
/// its last log lines; otherwise the ones still on their way, with their
/// status (a swarm task waiting for a node or pulling its image).
pub async fn check_alive<E: Engine>(
    engine: &E,
    cluster: &str,
    expected: &[String],
) -> Result<Vec<String>> {
    let containers = engine.containers(&[(labels::CLUSTER, cluster)]).await?;
    let mut starting = Vec::new();
    for name in expected {
        let found: Option<&ContainerState> = containers.iter().find(|c| &c.name == name);
        let problem = match found {
            None => Some("disappeared".to_string()),
            // A swarm task on its way (pending, pulling, starting); a local
            // container is started before any wait begins.
            Some(c) if c.state == "created" => {
                starting.push(format!("{name} is still starting ({})", c.status));
                None
            }
            Some(c) if !c.is_running() => Some(format!("stopped ({})", c.status)),
            Some(c) if c.health.as_deref() == Some("unhealthy") => {
                Some("turned unhealthy".to_string())
            }
            Some(_) => None,
        };
        if let Some(problem) = problem {
            let logs = engine.logs_tail(name, LOG_LINES).await.unwrap_or_default();
            return Err(Error::NotReady(format!(
                "{name} {problem} while the cluster was starting — its last log lines:\n{}\nfix the cause (see `docker logs {name}`), then run `sparkbox up` again",
                indent(&logs)
            )));
        }
    }
    Ok(starting)
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// How long one in-container wait runs before the container states are
/// checked again (so a crash is noticed within this time).
const WAIT_SLICE_S: &str = "2";

/// Waits until the master accepts connections on its RPC port.
pub async fn wait_master_listening<E: Engine>(
    engine: &E,
    cluster: &str,
    master: &str,
    deadline: Instant,
    progress: &Progress,
) -> Result<()> {
    progress.phase(&format!("waiting for {master} to listen"));
    let expected = [master.to_string()];
    let port = crate::model::spec::MASTER_PORT.to_string();
    loop {
        // One exec polls every 0.1 s inside the container for up to 2 s.
        match engine
            .exec(master, &[PROBE, "wait-port", master, &port, WAIT_SLICE_S])
            .await
        {
            Ok(out) if out.exit_code == 0 => return Ok(()),
            Ok(_) => {}
            // A swarm task with no container yet (placed, pulling, starting).
            Err(Error::NotReady(_)) => tokio::time::sleep(Duration::from_millis(500)).await,
            Err(e) => return Err(e),
        }
        check_alive(engine, cluster, &expected).await?;
        if Instant::now() >= deadline {
            let logs = engine
                .logs_tail(master, LOG_LINES)
                .await
                .unwrap_or_default();
            return Err(Error::NotReady(format!(
                "{master} did not listen on port {port} before the timeout — its last log lines:\n{}\npass a longer --timeout or check the machine's load",
                indent(&logs)
            )));
        }
    }
}

/// Alive workers among `wanted` host names (the master may still list a
/// removed worker as alive until its heartbeat times out).
pub fn alive_among(state: &MasterJson, wanted: &[String]) -> usize {
    state
        .alive_workers()
        .iter()
        .filter(|w| wanted.contains(&w.host))
        .count()
}

/// What readiness waits for besides the master.
#[derive(Debug, Clone, Copy)]
pub struct ReadyTargets<'a> {
    /// Workers 1..=workers must be ALIVE at the master.
    pub workers: u32,
    /// Jupyter containers that must answer with their tokens.
    pub jupyters: &'a [String],
    /// Optional services, (container, role), that must answer.
    pub extras: &'a [(String, String)],
}

/// Waits until every wanted worker is ALIVE at the master and Jupyter answers.
pub async fn wait_ready<E: Engine>(
    engine: &E,
    cluster: &str,
    names: &crate::model::spec::Names,
    targets: ReadyTargets<'_>,
    deadline: Instant,
    progress: &Progress,
) -> Result<MasterJson> {
    let ReadyTargets {
        workers,
        jupyters,
        extras,
    } = targets;
    let master = names.master();
    let wanted: Vec<String> = (1..=workers).map(|n| names.worker(n)).collect();
    let wanted_arg = wanted.join(",");
    let probe_command = [PROBE, "wait-workers", wanted_arg.as_str(), WAIT_SLICE_S];
    let mut expected = vec![master.clone()];
    expected.extend(jupyters.iter().cloned());
    expected.extend(wanted.iter().cloned());
    expected.extend(extras.iter().map(|(name, _)| name.clone()));
    // Jupyter servers and optional services: each is asked until it has
    // answered once.
    let services: Vec<(&str, &str)> = jupyters
        .iter()
        .map(|j| (j.as_str(), "jupyter"))
        .chain(
            extras
                .iter()
                .map(|(name, role)| (name.as_str(), role.as_str())),
        )
        .collect();
    let mut answered = vec![false; services.len()];
    let mut last_alive = usize::MAX;
    loop {
        let round = Instant::now();
        let (alive_check, probe, answered_now) = tokio::join!(
            check_alive(engine, cluster, &expected),
            // One exec polls the master every 0.1 s for up to 2 s.
            engine.exec(&master, &probe_command),
            join_all(
                services
                    .iter()
                    .zip(&answered)
                    .map(|(&(name, role), ok)| async move {
                        *ok || answers(engine, cluster, name, role).await
                    })
            )
        );
        let starting = alive_check?;
        answered = answered_now;
        let jupyter_ok = answered[..jupyters.len()].iter().all(|ok| *ok);
        let services_ok = answered.iter().all(|ok| *ok);
        let state: Option<MasterJson> = probe
            .ok()
            .and_then(|out| serde_json::from_str(out.stdout.trim()).ok());
        let alive = state.as_ref().map(|s| alive_among(s, &wanted)).unwrap_or(0);
        if alive != last_alive {
            progress.phase(&format!(
                "waiting for workers: {alive}/{workers} alive{}",
                if jupyter_ok { ", Jupyter ready" } else { "" }
            ));
            last_alive = alive;
        }
        if let Some(state) = state {
            if alive == wanted.len() && services_ok {
                return Ok(state);
            }
        }
        if Instant::now() >= deadline {
            let mut why = starting;
            if alive != workers as usize {
                why.push(format!("{alive} of {workers} workers registered"));
            }
            for ((name, _), ok) in services.iter().zip(&answered) {
                if !ok {
                    why.push(format!("{name} did not answer"));
                }
            }
            let mut logs = String::new();
            // The master's own lines too when no worker got through to it.
            let skip = usize::from(alive > 0);
            for name in expected.iter().skip(skip) {
                if let Ok(text) = engine.logs_tail(name, 8).await {
                    logs.push_str(&format!("{name}:\n{}\n", indent(&text)));
                }
            }
            return Err(Error::NotReady(format!(
                "the cluster {cluster} was not ready before the timeout: {} — recent logs:\n{logs}run `sparkbox up` again to keep waiting, or pass a longer --timeout",
                why.join("; ")
            )));
        }
        // The waits above poll inside the containers; a round that came
        // back at once (an exec that failed) is not repeated at once.
        if let Some(rest) = POLL.checked_sub(round.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_master_json_and_counts_alive_once_per_host() {
        let text = r#"{"url":"spark://m:7077","workers":[
            {"id":"w1","host":"172.18.0.3","state":"ALIVE","cores":1,"memory":1024},
            {"id":"w0","host":"172.18.0.3","state":"DEAD","cores":1,"memory":1024},
            {"id":"w2","host":"172.18.0.4","state":"ALIVE","cores":1,"memory":1024}],
            "aliveworkers":2,"cores":2,"coresused":0,"memory":2048,"memoryused":0,
            "activeapps":[],"completedapps":[],"status":"ALIVE","extra":"ignored"}"#;
        let m: MasterJson = serde_json::from_str(text).expect("parses");
        assert_eq!(m.alive_workers().len(), 2);
        assert_eq!(m.cores, 2);
        // Only the wanted hosts count: a removed worker still listed as
        // alive (until its heartbeat times out) is not one of them.
        assert_eq!(alive_among(&m, &["172.18.0.4".to_string()]), 1);
        assert_eq!(alive_among(&m, &[]), 0);
    }
}
