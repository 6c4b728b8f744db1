//! `sparkbox up`, `status` and `down`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde::Serialize;

use crate::cli::{DownArgs, StatusArgs, UpArgs};
use crate::commands::build::{recipe_from, settings_from};
use crate::commands::bundle;
use crate::engine::{Connection, ContainerState, DockerEngine, Engine};
use crate::error::{Error, Result};
use crate::image;
use crate::image::versions::Versions;
use crate::lock::{self, LOCK_WAIT};
use crate::model::labels;
use crate::model::spec::{self, ClusterSpec, Names, PortChoice, Role};
use crate::ops::parity::{self, ParityReport};
use crate::ops::wait::{self, MasterJson};
use crate::plan::desired::{self, Resolved};
use crate::plan::execute::{self, Context};
use crate::plan::observe::Observed;
use crate::plan::ports;
use crate::plan::reconcile::reconcile;
use crate::progress::Progress;
use crate::settings::{Config, Settings};

/// The desired cluster from the resolved settings, validated before any engine call.
pub fn spec_from(settings: &Settings) -> Result<ClusterSpec> {
    // Settings::resolve has checked the values (the data directory included).
    Ok(ClusterSpec {
        name: settings.name.clone(),
        workers: settings.workers,
        worker_cores: settings.cores,
        worker_memory_mb: settings.memory_mb,
        image: recipe_from(&settings.image)?,
        bind_address: settings.bind.clone(),
        master_ui_port: settings.ports.master_ui.choice(),
        jupyter_port: settings.ports.jupyter.choice(),
        app_ui_port: settings.ports.app_ui.choice(),
        timeout: Duration::from_secs(settings.timeout),
        jupyter_token: settings.jupyter_token.clone(),
        apps: settings.apps.clone(),
        notebooks_volume: settings.volumes.notebooks.clone(),
        data_dir: settings.volumes.data.clone(),
        host_user: None,
        history: settings
            .services
            .history
            .then(|| settings.ports.history.choice()),
        connect: settings
            .services
            .connect
            .then(|| settings.ports.connect.choice()),
        students: settings.students,
    })
}

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

pub(crate) fn label_port(c: Option<&ContainerState>, key: &str) -> Option<u16> {
    c.and_then(|c| c.labels.get(key))
        .and_then(|p| p.parse().ok())
}

/// Settles ports, tokens and the RPC secret against what exists; returns
/// notes for the user.
pub fn resolve(spec: &ClusterSpec, observed: &Observed) -> Result<(Resolved, Vec<String>)> {
    let mut claimed = BTreeSet::new();
    let mut notes = Vec::new();
    let addr = spec.bind_address.as_str();
    let free = |a: &str, p: u16| ports::is_free(a, p);
    let have_jupyters = observed.jupyters();
    let indices: Vec<u32> = if spec.students == 0 {
        vec![0]
    } else {
        (1..=spec.students).collect()
    };
    // Application UI blocks first (they need consecutive ports).
    let mut app_ui_ports = Vec::new();
    for (k, index) in indices.iter().enumerate() {
        let choice = if k == 0 {
            spec.app_ui_port
        } else {
            PortChoice::Auto(spec.app_ui_port.preferred())
        };
        let existing = label_port(have_jupyters.get(index).copied(), labels::APP_UI_PORT);
        let s = ports::settle_block(
            choice,
            existing,
            spec::APP_UI_PORTS,
            &mut claimed,
            addr,
            "--app-ui-port",
            &free,
        )?;
        if s.moved && k == 0 {
            notes.push(format!(
                "port {} is taken on {addr}; the application UIs use {}-{} instead (or pass --app-ui-port)",
                spec.app_ui_port.preferred(),
                s.port,
                s.port + spec::APP_UI_PORTS - 1
            ));
        }
        app_ui_ports.push(s.port);
    }
    let mut settle =
        |choice: PortChoice, existing: Option<u16>, flag: &str, what: &str| -> Result<u16> {
            let s = ports::settle(choice, existing, &mut claimed, addr, flag, &free)?;
            if s.moved {
                notes.push(format!(
                    "port {} is taken on {addr}; the {what} uses {} instead (or pass {flag})",
                    choice.preferred(),
                    s.port
                ));
            }
            Ok(s.port)
        };
    let master_ui_port = settle(
        spec.master_ui_port,
        label_port(observed.master(), labels::UI_PORT),
        "--master-ui-port",
        "master UI",
    )?;
    let mut jupyters = Vec::new();
    for (k, index) in indices.iter().enumerate() {
        let have = have_jupyters.get(index).copied();
        let (choice, what) = if k == 0 {
            (spec.jupyter_port, "Jupyter server".to_string())
        } else {
            // Students after the first take the next free ports.
            (
                PortChoice::Auto(spec.jupyter_port.preferred()),
                format!("Jupyter server of student {index}"),
            )
        };
        let port = settle(
            choice,
            label_port(have, labels::JUPYTER_PORT),
            "--jupyter-port",
            &what,
        )?;
        let token = match &spec.jupyter_token {
            Some(fixed) => fixed.clone(),
            None => have
                .and_then(|j| j.labels.get(labels::TOKEN))
                .filter(|t| !t.is_empty())
                .cloned()
                .unwrap_or_else(desired::new_token),
        };
        let notebooks_volume = if *index == 0 {
            spec.notebooks_volume.clone()
        } else {
            format!("{}-{index}", spec.notebooks_volume)
        };
        jupyters.push(desired::JupyterSlot {
            index: *index,
            port,
            app_ui_port: app_ui_ports[k],
            token,
            notebooks_volume,
        });
    }
    let existing_service = |name: &str| {
        label_port(
            observed.extras().find(|c| c.name == name),
            labels::SERVICE_PORT,
        )
    };
    let names = Names::new(&spec.name);
    let history_port = match spec.history {
        Some(choice) => Some(settle(
            choice,
            existing_service(&names.history()),
            "--history-port",
            "history server",
        )?),
        None => None,
    };
    let connect_port = match spec.connect {
        Some(choice) => Some(settle(
            choice,
            existing_service(&names.connect()),
            "--connect-port",
            "Spark Connect server",
        )?),
        None => None,
    };
    let existing_workers = observed.workers();
    let mut worker_ui_ports = std::collections::BTreeMap::new();
    // Existing workers keep their ports; new ones take free ones after them.
    for n in 1..=spec.workers {
        if let Some(p) = label_port(existing_workers.get(&n).copied(), labels::UI_PORT) {
            if claimed.insert(p) {
                worker_ui_ports.insert(n, p);
            }
        }
    }
    for n in 1..=spec.workers {
        if let std::collections::btree_map::Entry::Vacant(slot) = worker_ui_ports.entry(n) {
            let s = ports::settle(
                PortChoice::Auto(spec::FIRST_WORKER_UI_PORT),
                None,
                &mut claimed,
                addr,
                "--workers",
                &free,
            )?;
            slot.insert(s.port);
        }
    }
    // Ports open beyond this machine: Spark's RPC needs a secret, kept for
    // the cluster's life like the tokens.
    let secret = (!spec::is_loopback(addr)).then(|| {
        observed
            .master()
            .and_then(|m| m.labels.get(labels::SECRET))
            .filter(|s| !s.is_empty())
            .cloned()
            .unwrap_or_else(desired::new_token)
    });
    Ok((
        Resolved {
            image_tag: spec.image.tag(),
            master_ui_port,
            jupyters,
            secret,
            history_port,
            connect_port,
            worker_ui_ports,
        },
        notes,
    ))
}

/// `sparkbox up`.
pub async fn up(
    conn: &Connection,
    args: UpArgs,
    config: &Config,
    progress: &Progress,
) -> Result<()> {
    let started = Instant::now();
    let resolved_settings = Settings::resolve(config, &args.cluster)?;
    let mut spec = spec_from(&resolved_settings)?;
    if let Some(dir) = &spec.data_dir {
        // The directory is made (by this user) only once the plan stands.
        spec.host_user = data_dir_owner(dir).or_else(current_user);
    }
    let settings = settings_from(&resolved_settings.image, false, false);
    image::find_ca_bundle(settings.ca_bundle.as_deref())?;
    if let Some(dir) = &args.bundle_on_failure {
        // A directory the bundle could not go into is refused now, not after a failure.
        bundle::check_dir(dir)?;
    }
    let engine = conn.engine().await?;
    // Every failure from here on happened on the engine: the one place a
    // diagnostics bundle is written for it (Ctrl-C drops this future instead).
    let cluster = spec.name.clone();
    let result = up_on_engine(engine.clone(), &args, spec, settings, started, progress).await;
    if let (Err(_), Some(dir)) = (&result, &args.bundle_on_failure) {
        bundle::after_failure(&engine, &cluster, dir, progress).await;
    }
    result
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
}

/// `up` once the engine answers: lock, observe, plan, execute, wait, verify, report.
async fn up_on_engine(
    engine: DockerEngine,
    args: &UpArgs,
    spec: ClusterSpec,
    settings: image::BuildSettings,
    started: Instant,
    progress: &Progress,
) -> Result<()> {
    let _lock = if args.dry_run {
        None
    } else {
        Some(lock::acquire(&spec.name, "up", spec.timeout, progress).await?)
    };
    let names = Names::new(&spec.name);
    let tag = spec.image.tag();
    let observed = Observed::read(&engine, &spec.name, Some(&tag)).await?;
    let (resolved, notes) = resolve(&spec, &observed)?;
    let desired = desired::desired(&spec, &resolved);
    let plan = reconcile(&desired, &observed);
    if args.dry_run {
        println!("plan for cluster {} (dry run, nothing changed):", spec.name);
        print!("{plan}");
        for note in &notes {
            println!("note: {note}");
        }
        return Ok(());
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
    let changed = !plan.is_empty();
    let ctx = Context {
        cluster: &spec.name,
        recipe: &spec.image,
        settings: &settings,
        timeout: spec.timeout,
    };
    let deadline = execute::execute(&engine, &plan, &ctx, progress).await?;
    progress.phase("waiting for workers, Jupyter and version parity");
    let reference = image_versions(&engine, &tag).await?;
    let jupyters: Vec<String> = desired.jupyters.iter().map(|j| j.name.clone()).collect();
    let mut containers = vec![names.master()];
    containers.extend(jupyters.iter().cloned());
    containers.extend((1..=spec.workers).map(|n| names.worker(n)));
    let extras = extra_services(&desired);
    containers.extend(extras.iter().map(|(name, _)| name.clone()));
    let (ready, measured) = tokio::join!(
        wait::wait_ready(
            &engine,
            &spec.name,
            &names,
            wait::ReadyTargets {
                workers: spec.workers,
                jupyters: &jupyters,
                extras: &extras,
            },
            deadline,
            progress
        ),
        parity::measure_all(&engine, &containers)
    );
    let master = ready?;
    let report = parity::compare(&reference, &measured);
    progress.finish();
    if !report.ok {
        return Err(parity_error(&spec.name, &report));
    }
    let first = resolved.first_jupyter();
    let urls = Urls {
        master_ui: Some(format!("http://127.0.0.1:{}", resolved.master_ui_port)),
        jupyter: first.map(|j| format!("http://127.0.0.1:{}/lab?token={}", j.port, j.token)),
        app_ui: first.map(|j| format!("http://127.0.0.1:{}", j.app_ui_port)),
        app_uis: first
            .map(|j| {
                desired::app_ui_ports(j.app_ui_port)
                    .map(|p| format!("http://127.0.0.1:{p}"))
                    .collect()
            })
            .unwrap_or_default(),
        history: resolved
            .history_port
            .map(|p| format!("http://127.0.0.1:{p}")),
        connect: resolved.connect_port.map(|p| format!("sc://localhost:{p}")),
        connect_client: resolved.connect_port.map(|_| connect_client(&reference)),
    };
    if resolved.secret.is_some() {
        eprintln!("{}", exposure_warning(&spec, &resolved));
    }
    if args.json {
        let wanted: Vec<String> = (1..=spec.workers).map(|n| names.worker(n)).collect();
        let report = UpReport {
            schema: 1,
            cluster: spec.name.clone(),
            changed,
            elapsed_s: (started.elapsed().as_secs_f64() * 100.0).round() / 100.0,
            workers: WorkerCounts {
                alive: wait::alive_among(&master, &wanted),
                wanted: wanted.len(),
            },
            cores: master.cores,
            memory_mb: master.memory,
            versions: reference,
            urls,
            master_url: names.master_url(),
        };
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::Io(format!("cannot render the result: {e}")))?;
        println!("{text}");
        return Ok(());
    }
    let verdict = if changed {
        "is ready"
    } else {
        "is up to date, nothing changed"
    };
    println!(
        "cluster {} {verdict} ({:.1}s): {}",
        spec.name,
        started.elapsed().as_secs_f64(),
        summary_line(&master, spec.workers, containers.len(), &reference)
    );
    if spec.students > 0 {
        println!(
            "  Students    {} Jupyter servers, each with its own token and notebooks — `sparkbox roster -n {}` lists them",
            spec.students, spec.name
        );
    }
    print_urls(&urls, &names.master_url());
    Ok(())
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
        "warning: cluster {} publishes its ports on {}, so other machines can reach: {}. Spark's RPC requires the cluster's generated secret (spark.authenticate), so nobody can submit to the master without it. Run `sparkbox up -n {}` without --bind to keep everything on 127.0.0.1.",
        spec.name,
        spec.bind_address,
        open.join("; "),
        spec.name
    )
}

fn summary_line(
    master: &MasterJson,
    wanted: u32,
    containers: usize,
    reference: &Versions,
) -> String {
    format!(
        "{wanted}/{wanted} workers alive, {} cores, {} MiB; versions identical in {containers} containers (Spark {}, Python {}, Java {})",
        master.cores,
        master.memory,
        reference.get("spark").unwrap_or("?"),
        reference.get("python").unwrap_or("?"),
        reference.get("java").unwrap_or("?"),
    )
}

fn print_urls(urls: &Urls, master_url: &str) {
    if let Some(u) = &urls.jupyter {
        println!("  Jupyter     {u}");
    }
    if let Some(u) = &urls.master_ui {
        println!("  Master UI   {u}");
    }
    if let Some(u) = &urls.app_ui {
        match urls.app_uis.last() {
            Some(last) if urls.app_uis.len() > 1 => println!(
                "  App UIs     {u} … {last} (one per notebook running Spark, in start order)"
            ),
            _ => println!("  App UI      {u} (while a notebook runs Spark)"),
        }
    }
    if let Some(u) = &urls.history {
        println!("  History     {u} (finished applications)");
    }
    if let Some(u) = &urls.connect {
        println!("  Connect     {u}");
        if let Some(c) = &urls.connect_client {
            println!(
                "              from Python {}: pip install \"{}\", then SparkSession.builder.remote(\"{u}\").getOrCreate()",
                c.python, c.requirement
            );
        }
    }
    println!("  Spark       {master_url} (inside the network)");
}

/// The optional services' (container, role) pairs of a desired cluster.
pub(crate) fn extra_services(desired: &desired::Desired) -> Vec<(String, String)> {
    desired
        .extras
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                c.labels.get(labels::ROLE).cloned().unwrap_or_default(),
            )
        })
        .collect()
}

/// What a host program needs to talk to the Spark Connect server: the
/// client package of the cluster's exact Spark version, on the same Python
/// minor version (Python UDFs run on the workers' Python).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ConnectClient {
    /// The pip requirement, e.g. "pyspark[connect]==4.0.1" (the package the
    /// image itself was built from, with the Connect client's dependencies).
    pub requirement: String,
    /// The Python version line the client must run on, e.g. "3.11".
    pub python: String,
}

/// The pip requirement of the Spark Connect client for Spark `spark`: the
/// package the image itself is built from, with the client's dependencies.
pub fn connect_requirement(spark: &str) -> String {
    format!("pyspark[connect]=={spark}")
}

/// The client a host program needs for a cluster running `versions`.
pub fn connect_client(versions: &Versions) -> ConnectClient {
    let python = versions.get("python").unwrap_or("?");
    let line: Vec<&str> = python.split('.').take(2).collect();
    ConnectClient {
        requirement: connect_requirement(versions.get("spark").unwrap_or("?")),
        python: line.join("."),
    }
}

pub(crate) fn parity_error(cluster: &str, report: &ParityReport) -> Error {
    Error::ParityMismatch(format!(
        "version parity failed in cluster {cluster}: the containers do not run the same versions\n{}fix: undo the change in the marked container (or recreate it: `sparkbox down -n {cluster}` then `sparkbox up -n {cluster}`; volumes are kept)",
        parity::render(report)
    ))
}

pub(crate) async fn image_versions<E: Engine>(engine: &E, tag: &str) -> Result<Versions> {
    let info = engine.image(tag).await?.ok_or_else(|| Error::Engine {
        action: format!("inspect image {tag}"),
        detail: "the image is gone — run `sparkbox build`".into(),
    })?;
    match image::versions_from_labels(&info.labels) {
        Some(v) => Ok(v),
        None => image::read_versions_file(engine, tag).await,
    }
}

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

/// URLs on the host.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Urls {
    /// The master web UI.
    pub master_ui: Option<String>,
    /// JupyterLab, token included.
    pub jupyter: Option<String>,
    /// The application UI of the Jupyter driver (the first one).
    pub app_ui: Option<String>,
    /// Every published application UI, in the order drivers take them.
    pub app_uis: Vec<String>,
    /// The history server UI.
    pub history: Option<String>,
    /// The Spark Connect URL for `SparkSession.builder.remote(...)`.
    pub connect: Option<String>,
    /// The client package a host program needs for `connect`.
    pub connect_client: Option<ConnectClient>,
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
    /// Its UI on the host.
    pub url: Option<String>,
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
    pub jupyters: Vec<crate::commands::roster::Seat>,
}

/// Reads everything `status` shows.
pub async fn collect_status<E: Engine>(engine: &E, cluster: &str) -> Result<StatusReport> {
    let names = Names::new(cluster);
    let observed = Observed::read(engine, cluster, None).await?;
    let mut containers: Vec<&ContainerState> = observed.containers.iter().collect();
    containers.sort_by_key(|c| {
        let role = c.labels.get(labels::ROLE).and_then(|r| Role::parse(r));
        let index: u32 = c
            .labels
            .get(labels::INDEX)
            .and_then(|i| i.parse().ok())
            .unwrap_or(0);
        (role, index)
    });
    let running: Vec<String> = containers
        .iter()
        .filter(|c| c.is_running())
        .map(|c| c.name.clone())
        .collect();
    let image_ref = containers
        .iter()
        .find_map(|c| c.labels.get(labels::IMAGE_REF).cloned());
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
    let reference = match &image_ref {
        Some(tag) => image_versions(engine, tag).await.ok(),
        None => None,
    };
    let report = match &reference {
        Some(r) => parity::compare(r, &measured),
        None => ParityReport {
            ok: running.is_empty(),
            differences: vec![],
            unreadable: running
                .iter()
                .map(|c| (c.clone(), "the image's versions are unknown".to_string()))
                .collect(),
            matching: vec![],
        },
    };
    let host = |port: u16| format!("http://127.0.0.1:{port}");
    let jupyter = observed.jupyter();
    let mut urls = Urls {
        master_ui: label_port(observed.master(), labels::UI_PORT).map(host),
        jupyter: jupyter.and_then(|j| {
            let port = label_port(Some(j), labels::JUPYTER_PORT)?;
            let token = j.labels.get(labels::TOKEN)?;
            Some(format!("{}/lab?token={token}", host(port)))
        }),
        app_ui: label_port(jupyter, labels::APP_UI_PORT).map(host),
        app_uis: label_port(jupyter, labels::APP_UI_PORT)
            .map(|first| desired::app_ui_ports(first).map(host).collect())
            .unwrap_or_default(),
        history: label_port(
            observed.with_role(Role::History).next(),
            labels::SERVICE_PORT,
        )
        .map(host),
        connect: label_port(
            observed.with_role(Role::Connect).next(),
            labels::SERVICE_PORT,
        )
        .map(|p| format!("sc://localhost:{p}")),
        connect_client: None,
    };
    if urls.connect.is_some() {
        urls.connect_client = reference.as_ref().map(connect_client);
    }
    let container_reports: Vec<ContainerReport> = containers
        .iter()
        .map(|c| {
            let role = c.labels.get(labels::ROLE).cloned().unwrap_or_default();
            let url = match role.as_str() {
                "jupyter" => label_port(Some(c), labels::JUPYTER_PORT).and_then(|port| {
                    let token = c.labels.get(labels::TOKEN)?;
                    Some(format!("{}/lab?token={token}", host(port)))
                }),
                "history" => urls.history.clone(),
                "connect" => urls.connect.clone(),
                _ => label_port(Some(c), labels::UI_PORT).map(host),
            };
            ContainerReport {
                name: c.name.clone(),
                index: c.labels.get(labels::INDEX).and_then(|i| i.parse().ok()),
                role,
                state: c.state.clone(),
                health: c.health.clone(),
                versions_ok: report.container_ok(&c.name),
                url,
            }
        })
        .collect();
    let wanted = observed.workers().len();
    let alive = master
        .as_ref()
        .map(|m| m.alive_workers().len())
        .unwrap_or(0);
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
    let m = master.unwrap_or_default();
    Ok(StatusReport {
        schema: 1,
        cluster: cluster.to_string(),
        state: state.to_string(),
        image: image_ref,
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
        jupyters: crate::commands::roster::seats(&observed, "127.0.0.1"),
    })
}

/// `sparkbox status`: exit 0 when ready, 8 on a version mismatch, 7 otherwise.
pub async fn status(conn: &Connection, args: StatusArgs, config: &Config) -> Result<()> {
    let cluster = config.cluster_name(&args.name)?;
    let engine = conn.engine().await?;
    let report = collect_status(&engine, &cluster).await?;
    if args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::Io(format!("cannot render the status: {e}")))?;
        println!("{text}");
    } else {
        print_status(&report);
    }
    match report.state.as_str() {
        "ready" => Ok(()),
        _ if !report.parity.ok => Err(parity_error(
            &report.cluster,
            &ParityReport {
                ok: false,
                differences: report.parity.differences.clone(),
                unreadable: report.parity.unreadable.clone(),
                matching: vec![],
            },
        )),
        "absent" => Err(Error::NotReady(format!(
            "cluster {} does not exist — create it with `sparkbox up -n {}`",
            report.cluster, report.cluster
        ))),
        other => Err(Error::NotReady(format!(
            "cluster {} is {other}: {}/{} workers alive — `sparkbox up -n {}` restores it",
            report.cluster, report.workers.alive, report.workers.wanted, report.cluster
        ))),
    }
}

fn print_status(r: &StatusReport) {
    println!(
        "cluster {}: {} — workers {}/{} alive, cores {}/{} used, memory {}/{} MiB used, parity {}",
        r.cluster,
        r.state,
        r.workers.alive,
        r.workers.wanted,
        r.cores.used,
        r.cores.total,
        r.memory_mb.used,
        r.memory_mb.total,
        if r.parity.ok { "ok" } else { "FAILED" }
    );
    if let Some(image) = &r.image {
        println!("image {image}");
    }
    println!(
        "{:<24} {:<8} {:<8} {:<10} {:<9} url",
        "container", "role", "state", "health", "versions"
    );
    for c in &r.containers {
        println!(
            "{:<24} {:<8} {:<8} {:<10} {:<9} {}",
            c.name,
            c.role,
            c.state,
            c.health.as_deref().unwrap_or("-"),
            if c.versions_ok { "ok" } else { "DIFFERENT" },
            c.url.as_deref().unwrap_or("")
        );
    }
    for app in &r.apps {
        println!(
            "app {} {:?} {} cores {}",
            app.id, app.name, app.cores, app.state
        );
    }
    print_urls(&r.urls, &r.master_url);
}

/// `sparkbox down`.
pub async fn down(
    conn: &Connection,
    args: DownArgs,
    config: &Config,
    progress: &Progress,
) -> Result<()> {
    let cluster = &config.cluster_name(&args.name)?;
    let engine = conn.engine().await?;
    let _lock = lock::acquire(cluster, "down", LOCK_WAIT, progress).await?;
    let observed = Observed::read(&engine, cluster, None).await?;
    if observed.is_empty() {
        println!("cluster {cluster} does not exist; nothing to remove");
        return Ok(());
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
    let mut kept = Vec::new();
    if args.volumes {
        for volume in &observed.volumes {
            engine.remove_volume(volume).await?;
        }
    } else {
        kept.clone_from(&observed.volumes);
    }
    progress.finish();
    println!(
        "removed cluster {cluster}: {} containers, {} network(s){}",
        observed.containers.len(),
        observed.networks.len(),
        if args.volumes {
            format!(", {} volume(s)", observed.volumes.len())
        } else {
            String::new()
        }
    );
    if !kept.is_empty() {
        println!(
            "kept volume(s) {} — your notebooks are there for the next `up`; `sparkbox down -n {cluster} --volumes` deletes them",
            kept.join(", ")
        );
    }
    Ok(())
}
