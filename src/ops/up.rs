//! `up`: settle the settings over the existing cluster's record, observe,
//! plan, execute, then the shared readiness and parity step.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cli::ClusterArgs;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::lock;
use crate::model::labels::{self, Labelled};
use crate::model::record::Recorded;
use crate::model::spec::{self, ClusterSpec, Names, Role};
use crate::model::versions::Versions;
use crate::ops::ready::{self, Members};
use crate::ops::status::WorkerCounts;
use crate::ops::urls::Urls;
use crate::plan::desired::{self, Desired, Resolved};
use crate::plan::execute::{self, Context};
use crate::plan::observe::{record_of, Observed};
use crate::plan::reconcile::reconcile_recreating;
use crate::plan::settle::settle;
use crate::plan::wait::{self, MasterJson};
use crate::plan::{Action, Cause, Plan};
use crate::progress::Progress;
use crate::settings::{Config, Settings};

/// The owner (uid, gid) of the data directory: the containers' `spark` user
/// takes it, so what Spark writes there stays the host user's.
pub fn data_dir_owner(dir: &std::path::Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).ok().map(|m| (m.uid(), m.gid()))
}

/// This process's real uid and gid (from /proc; None elsewhere).
pub fn current_user() -> Option<(u32, u32)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |key: &str| -> Option<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some((field("Uid:")?, field("Gid:")?))
}

/// What `sparkbox up --json` prints on success (schema 1, in the README).
#[derive(Debug, Clone, Serialize)]
pub struct UpReport {
    /// Document version.
    pub schema: u32,
    /// Cluster name.
    pub cluster: String,
    /// False when the cluster was already as asked and nothing was done.
    pub changed: bool,
    /// Seconds `up` took.
    pub elapsed_s: f64,
    /// Workers alive at the master and workers asked for.
    pub workers: WorkerCounts,
    /// Cores the alive workers offer.
    pub cores: u64,
    /// Memory the alive workers offer (MiB).
    pub memory_mb: u64,
    /// The image's versions, which every container was shown to run.
    pub versions: Versions,
    /// Host URLs, as in `status --json`.
    pub urls: Urls,
    /// Spark master URL inside the network.
    pub master_url: String,
    /// The image every container runs (its tag).
    pub image: String,
    /// The ID of that image, from the containers' labels.
    pub image_id: Option<String>,
    /// Its registry digest ("REPO@sha256:…"), when a registry knows it.
    pub image_digest: Option<String>,
}

/// What `up` did.
#[derive(Debug)]
pub enum UpOutcome {
    /// `--dry-run`: the plan, and nothing changed.
    DryRun {
        /// Cluster name.
        cluster: String,
        /// What `up` would do.
        plan: Plan,
        /// Notes (moved ports, recreated Jupyter servers and why).
        notes: Vec<String>,
    },
    /// The cluster is ready.
    Ready(Box<UpDone>),
}

/// A ready cluster, as `up` reports it.
#[derive(Debug)]
pub struct UpDone {
    /// The `up --json` document.
    pub report: UpReport,
    /// Notes said before the plan ran.
    pub notes: Vec<String>,
    /// Jupyter servers (one, or one per student).
    pub students: u32,
    /// Containers shown to run the same versions.
    pub containers: usize,
    /// The master's view once ready.
    pub master: MasterJson,
    /// What `--bind` opens to the network, when it does.
    pub exposure: Option<String>,
}

/// How `up` runs besides the cluster's settings.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// Print the plan and change nothing.
    pub dry_run: bool,
    /// Containers to make anew even when they are as wanted (`--recreate`):
    /// their names, or role words (`master`, `jupyter`, `worker-2`, …).
    pub recreate: Vec<String>,
}

/// `sparkbox up` on `engine`: `args` and the file over what the existing
/// cluster was made with, over the defaults.
pub async fn up<E: Engine>(
    engine: &E,
    config: &Config,
    args: &ClusterArgs,
    dry_run: bool,
    progress: &Progress,
) -> Result<UpOutcome> {
    let options = UpOptions {
        dry_run,
        ..Default::default()
    };
    up_with(engine, config, args, &options, progress).await
}

/// `up` with its options.
pub async fn up_with<E: Engine>(
    engine: &E,
    config: &Config,
    args: &ClusterArgs,
    options: &UpOptions,
    progress: &Progress,
) -> Result<UpOutcome> {
    let dry_run = options.dry_run;
    let started = Instant::now();
    // Values are checked once the cluster's record is read: a check across
    // settings (an executor's memory against a worker's) needs all of them.
    let cluster = config.cluster_name(&args.name)?;
    // A registry name that is not one is refused before anything is touched.
    config.image_settings(&args.image).registry()?;
    let _lock = if dry_run {
        None
    } else {
        let wait = Duration::from_secs(config.timeout(args.timeout));
        Some(lock::acquire(&engine.info().host, &cluster, "up", wait, progress).await?)
    };
    let mut observed = Observed::read(engine, &cluster, None).await?;
    let recorded = record_of(&observed.containers);
    let settings = Settings::resolve_over(config, args, recorded.as_ref())?;
    let mut spec = settings.spec()?;
    if let Some(dir) = &spec.data_dir {
        // The directory is made (by this user) only once the plan stands.
        spec.host_user = data_dir_owner(dir).or_else(current_user);
    }
    let build = settings.image.build_settings(false, false)?;
    let tag = spec.image.tag();
    observed.image_present = engine.image(&tag).await?.is_some();
    let (mut resolved, mut notes) = settle_for(engine, &spec, &observed)?;
    if spec.swarm.is_some() && build.registry.is_none() {
        return Err(no_registry(&cluster));
    }
    place_on_swarm(engine, &spec, &observed, &mut resolved).await?;
    let desired = desired::desired(&spec, &resolved);
    let recreate = recreate_names(&desired, &options.recreate)?;
    let plan = reconcile_recreating(&desired, &observed, &recreate);
    notes.extend(recreated_jupyters(&plan, &observed, &desired));
    if let (Some(path), Some(other)) = (&config.path, &config.file.cluster.name) {
        if *other != cluster {
            notes.push(format!(
                "{} describes cluster {other}, and its settings apply to {cluster} too because the name was given on the command line",
                path.display()
            ));
        }
    }
    if dry_run {
        return Ok(UpOutcome::DryRun {
            cluster,
            plan,
            notes,
        });
    }
    for note in &notes {
        progress.note(&format!("note: {note}"));
    }
    if let Some(dir) = &spec.data_dir {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::InvalidInput(format!(
                "cannot create the data directory {}: {e} — create it yourself, or pass --data DIR (or set [volumes] data)",
                dir.display()
            ))
        })?;
    }
    let ctx = Context {
        cluster: &spec.name,
        recipe: &spec.image,
        settings: &build,
        timeout: spec.timeout,
        swarm: spec.swarm.is_some(),
    };
    let deadline = execute::execute(engine, &plan, &ctx, progress).await?;
    progress.phase("waiting for workers, Jupyter and version parity");
    let reference = ready::image_versions(engine, &tag).await?;
    let members = Members::of_desired(&desired);
    let master =
        ready::ready_and_same(engine, &cluster, &members, &reference, deadline, progress).await?;
    ready::keep_running(engine, &members).await?;
    progress.finish();
    let names = Names::new(&cluster);
    let wanted: Vec<String> = desired.workers.values().map(|w| w.name.clone()).collect();
    // Which build of the image the containers run, as their labels say.
    let made = Observed::read(engine, &cluster, None).await?;
    let report = UpReport {
        schema: 1,
        cluster: cluster.clone(),
        changed: !plan.is_empty(),
        elapsed_s: (started.elapsed().as_secs_f64() * 100.0).round() / 100.0,
        workers: WorkerCounts {
            alive: wait::alive_among(&master, &wanted),
            wanted: wanted.len(),
        },
        cores: master.cores,
        memory_mb: master.memory,
        urls: Urls::of_resolved(&resolved, &reference),
        versions: reference,
        master_url: names.master_url(),
        image: tag.clone(),
        image_id: crate::ops::status::label_of(&made, |l| l.image_id()),
        image_digest: crate::ops::status::label_of(&made, |l| l.image_digest()),
    };
    Ok(UpOutcome::Ready(Box::new(UpDone {
        report,
        notes,
        students: spec.students,
        containers: members.containers.len(),
        master,
        exposure: resolved
            .secret
            .is_some()
            .then(|| exposure_warning(&spec, &resolved)),
    })))
}

/// Settles ports, tokens and the secret for `spec` on `engine`. A swarm's
/// ports are on its nodes, which this machine cannot probe: a taken one
/// shows as the task's error in `status`.
pub fn settle_for<E: Engine>(
    engine: &E,
    spec: &ClusterSpec,
    observed: &Observed,
) -> Result<(Resolved, Vec<String>)> {
    if spec.swarm.is_some() {
        settle(spec, observed, &|_, _| true)
    } else {
        settle(spec, observed, &|a, p| engine.port_free(a, p))
    }
}

/// Places a swarm cluster's services on the swarm's nodes as they are now
/// (nothing for a cluster on one engine).
pub async fn place_on_swarm<E: Engine>(
    engine: &E,
    spec: &ClusterSpec,
    observed: &Observed,
    resolved: &mut Resolved,
) -> Result<()> {
    if spec.swarm.is_some() {
        let nodes = engine.swarm_nodes().await?;
        resolved.placement = Some(crate::plan::place::place(spec, observed, &nodes)?);
    }
    Ok(())
}

/// Why a swarm cluster needs a registry, and how to give one. sparkbox does
/// not start one itself: every node's engine would have to trust it
/// (`insecure-registries` is the daemons' own configuration, which the
/// Engine API cannot change), or it would need a certificate for a name
/// every node resolves — the user's registry already has both.
pub fn no_registry(cluster: &str) -> Error {
    Error::Swarm(format!(
        "cluster {cluster} on a swarm needs a registry every node can pull the image from, pinned by its digest so every node runs the same image — give one with --registry HOST[:PORT]/PATH (or [image] registry, or SPARKBOX_REGISTRY); a registry of your own on the manager works: `docker run -d -p 5000:5000 registry:2` there, with `\"insecure-registries\": [\"MANAGER:5000\"]` in every node's daemon.json, then --registry MANAGER:5000/sparkbox"
    ))
}

/// The container names `--recreate` means: each a container of the cluster
/// as wanted, or a role word for one (`master`, `jupyter`, `jupyter-2`,
/// `worker-3`, `history`, `connect`).
fn recreate_names(desired: &Desired, asked: &[String]) -> Result<BTreeSet<String>> {
    let mut all: Vec<&str> = vec![desired.master.name.as_str()];
    all.extend(desired.workers.values().map(|w| w.name.as_str()));
    all.extend(desired.jupyters.iter().map(|j| j.name.as_str()));
    all.extend(desired.extras.iter().map(|e| e.name.as_str()));
    asked
        .iter()
        .map(|word| {
            let full = format!("{}-{word}", desired.cluster);
            all.iter()
                .find(|name| **name == word.as_str() || **name == full)
                .map(|name| name.to_string())
                .ok_or_else(|| {
                    Error::InvalidInput(format!(
                        "--recreate {word}: cluster {} has no such container — give one of {}",
                        desired.cluster,
                        all.join(", ")
                    ))
                })
        })
        .collect()
}

/// What a label holds, in words, for saying why a Jupyter server is recreated.
const EXPLAINED: &[(&str, &str)] = &[
    (labels::DATA_DIR, "the data directory"),
    (labels::IMAGE_REF, "the image"),
    (labels::BIND, "the bind address"),
    (labels::TOKEN, "the token"),
    (labels::JUPYTER_PORT, "the Jupyter port"),
    (labels::APP_UI_PORT, "the application UI ports"),
    (labels::NOTEBOOKS, "the notebooks volume"),
    (
        labels::HOST_USER,
        "the user it runs as (the data directory's owner)",
    ),
];

/// One note per running Jupyter server the plan recreates, naming the
/// settings that changed (its notebooks' kernels stop; notebooks are kept).
pub fn recreated_jupyters(plan: &Plan, observed: &Observed, desired: &Desired) -> Vec<String> {
    let mut notes = Vec::new();
    for step in &plan.steps {
        let Action::RemoveContainer(name) = &step.action else {
            continue;
        };
        if step.cause != Cause::ConfigChanged {
            continue;
        }
        let Some(have) = observed.containers.iter().find(|c| &c.name == name) else {
            continue;
        };
        if Labelled(&have.labels).role() != Some(Role::Jupyter) || !have.is_running() {
            continue;
        }
        let Some(want) = desired.jupyters.iter().find(|j| &j.name == name) else {
            continue;
        };
        let changes = label_changes(&have.labels, &want.labels);
        let why = if changes.is_empty() {
            "its container template changed (a newer sparkbox, or a setting recorded in no label)"
                .to_string()
        } else {
            changes.join("; ")
        };
        notes.push(format!(
            "{name} is recreated, so the notebook kernels running in it stop (the notebooks are kept): {why}"
        ));
    }
    notes
}

fn label_changes(have: &HashMap<String, String>, want: &HashMap<String, String>) -> Vec<String> {
    let shown = |v: Option<&String>| match v {
        Some(v) if !v.is_empty() => v.clone(),
        _ => "(none)".to_string(),
    };
    EXPLAINED
        .iter()
        .filter(|(key, _)| have.get(*key) != want.get(*key))
        .map(|(key, what)| match *key {
            // Never print a token.
            labels::TOKEN => format!("{what} changed"),
            _ => format!(
                "{what} {} → {}",
                shown(have.get(*key)),
                shown(want.get(*key))
            ),
        })
        .chain(record_changes(have, want))
        .collect()
}

/// What the cluster's record says changed for a Jupyter server beyond its
/// own labels: the history server (its event log) and `[apps]`.
fn record_changes(have: &HashMap<String, String>, want: &HashMap<String, String>) -> Vec<String> {
    let record = |l: &HashMap<String, String>| -> Option<Recorded> {
        serde_json::from_str(Labelled(l).get(labels::RECORD)?).ok()
    };
    let (Some(have), Some(want)) = (record(have), record(want)) else {
        return Vec::new();
    };
    let mut changes = Vec::new();
    let on = |h: Option<bool>| if h == Some(true) { "on" } else { "off" };
    if have.history != want.history {
        changes.push(format!(
            "the history server {} → {}",
            on(have.history),
            on(want.history)
        ));
    }
    if have.apps != want.apps {
        changes.push("[apps] changed".to_string());
    }
    changes
}

/// What `--bind` opens to the network, said after every `up` that does it.
pub fn exposure_warning(spec: &ClusterSpec, resolved: &Resolved) -> String {
    let jupyter_ports: Vec<String> = resolved
        .jupyters
        .iter()
        .map(|j| j.port.to_string())
        .collect();
    let mut open = vec![
        format!("Jupyter on {} (token required)", jupyter_ports.join(", ")),
        format!(
            "the master and worker web UIs on {} and {}… (read-only, but they show every application)",
            resolved.master_ui_port,
            spec::FIRST_WORKER_UI_PORT
        ),
        "the application UIs (they show the notebooks' jobs and data samples)".to_string(),
    ];
    if let Some(p) = resolved.history_port {
        open.push(format!("the history server on {p}"));
    }
    format!(
        "warning: cluster {} publishes its ports on {}, so other machines can reach: {}. Spark's RPC requires the cluster's generated secret (spark.authenticate), so nobody can submit to the master without it. Run `sparkbox up -n {} --bind 127.0.0.1` to keep everything on this machine.",
        spec.name,
        spec.bind_address,
        open.join("; "),
        spec.name
    )
}
