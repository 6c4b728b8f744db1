//! The orchestration ring: `up`, heal, scale, a changed setting, status of
//! every state, Ctrl-C after every engine call and engine errors, against the
//! in-memory [`FakeEngine`] — the real planning, execution, readiness and
//! parity code, no Docker, in seconds.

use std::collections::BTreeSet;
use std::time::Duration;

use sparkbox::cli::{ClusterArgs, NameArg};
use sparkbox::commands::build::settings_from;
use sparkbox::commands::cluster::{collect_status, resolve, spec_from, StatusReport};
use sparkbox::engine::fake::{Call, FakeEngine};
use sparkbox::engine::Engine;
use sparkbox::image;
use sparkbox::model::labels;
use sparkbox::model::spec::Names;
use sparkbox::ops::parity::{self, ParityReport};
use sparkbox::ops::wait::{self, MasterJson};
use sparkbox::plan::desired;
use sparkbox::plan::execute::{self, Context};
use sparkbox::plan::observe::Observed;
use sparkbox::plan::reconcile::reconcile;
use sparkbox::progress::{Progress, ProgressMode};
use sparkbox::settings::{recorded::Recorded, Config, Settings};
use sparkbox::{Error, Result};

/// One test's cluster: its own engine, name and data directory.
struct Lab {
    engine: FakeEngine,
    name: String,
    data: tempfile::TempDir,
}

impl Lab {
    fn new(name: &str) -> Lab {
        Lab {
            engine: FakeEngine::new(),
            name: format!("orch-{name}"),
            data: tempfile::tempdir().expect("a temporary data directory"),
        }
    }

    fn names(&self) -> Names {
        Names::new(&self.name)
    }

    /// `up` flags: this cluster, its data directory, and `workers` if given.
    fn args(&self, workers: Option<u32>) -> ClusterArgs {
        ClusterArgs {
            name: NameArg {
                name: Some(self.name.clone()),
            },
            workers,
            data: Some(self.data.path().join("data")),
            timeout: Some(20),
            ..Default::default()
        }
    }

    async fn up(&self, args: &ClusterArgs) -> Result<UpOutcome> {
        up(&self.engine, args).await
    }

    async fn status(&self) -> StatusReport {
        collect_status(&self.engine, &self.name)
            .await
            .expect("status reads the fake engine")
    }

    /// Container name → ID.
    fn ids(&self) -> std::collections::BTreeMap<String, String> {
        self.engine
            .container_names()
            .into_iter()
            .filter_map(|n| self.engine.container(&n).map(|c| (n, c.id)))
            .collect()
    }

    /// The containers a cluster of `workers` workers consists of.
    fn wanted(&self, workers: u32) -> BTreeSet<String> {
        let n = self.names();
        let mut set: BTreeSet<String> = [n.master(), n.jupyter()].into();
        set.extend((1..=workers).map(|i| n.worker(i)));
        set
    }

    /// Asserts the cluster is exactly `workers` workers plus master and
    /// Jupyter, all running, and `status` calls it ready.
    async fn assert_ready(&self, workers: u32) {
        let names: BTreeSet<String> = self.engine.container_names().into_iter().collect();
        assert_eq!(names, self.wanted(workers), "the cluster's containers");
        for name in &names {
            let c = self.engine.container(name).expect("listed");
            assert!(c.is_running(), "{name} is not running: {:?}", c.state);
        }
        let status = self.status().await;
        assert_eq!(status.state, "ready", "{status:?}");
        assert_eq!(status.workers.alive, workers as usize);
        assert_eq!(status.workers.wanted, workers as usize);
        assert!(status.parity.ok, "{:?}", status.parity);
    }
}

fn quiet() -> Progress {
    Progress::new(ProgressMode::Quiet, false)
}

/// What an `up` did and found.
#[derive(Debug)]
struct UpOutcome {
    /// The plan it executed, as `--dry-run` prints it.
    plan: String,
    /// The master's view once ready.
    master: MasterJson,
    /// Version parity over every container.
    parity: ParityReport,
}

/// `sparkbox up` on `engine`, from the real pieces (observe, settle,
/// desired, reconcile, execute, readiness, parity) in the order
/// `commands::cluster::up_on_engine` runs them, until `ops::up` takes an
/// engine.
async fn up<E: Engine>(engine: &E, args: &ClusterArgs) -> Result<UpOutcome> {
    let progress = quiet();
    let config = Config::default();
    let cluster = config.cluster_name(&args.name)?;
    let existing = engine.containers(&[(labels::CLUSTER, &cluster)]).await?;
    let recorded = Recorded::from_labels(existing.iter().map(|c| &c.labels));
    let settings = Settings::resolve_over(&config, args, recorded.as_ref())?;
    let mut spec = spec_from(&settings)?;
    if spec.data_dir.is_some() {
        spec.host_user = Some((1000, 1000));
    }
    let build = settings_from(&settings.image, false, false);
    let names = Names::new(&spec.name);
    let tag = spec.image.tag();
    let observed = Observed::read(engine, &spec.name, Some(&tag)).await?;
    let (resolved, _notes) = resolve(&spec, &observed)?;
    let desired = desired::desired(&spec, &resolved);
    let plan = reconcile(&desired, &observed);
    if let Some(dir) = &spec.data_dir {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io(e.to_string()))?;
    }
    let ctx = Context {
        cluster: &spec.name,
        recipe: &spec.image,
        settings: &build,
        timeout: spec.timeout,
    };
    let deadline = execute::execute(engine, &plan, &ctx, &progress).await?;
    let info = engine.image(&tag).await?.ok_or_else(|| Error::Engine {
        action: format!("inspect image {tag}"),
        detail: "gone".into(),
    })?;
    let reference = image::versions_from_labels(&info.labels).ok_or_else(|| Error::Engine {
        action: format!("inspect image {tag}"),
        detail: "no versions label".into(),
    })?;
    let jupyters: Vec<String> = desired.jupyters.iter().map(|j| j.name.clone()).collect();
    let mut containers = vec![names.master()];
    containers.extend(jupyters.iter().cloned());
    containers.extend((1..=spec.workers).map(|n| names.worker(n)));
    let (ready, measured) = tokio::join!(
        wait::wait_ready(
            engine,
            &spec.name,
            &names,
            wait::ReadyTargets {
                workers: spec.workers,
                jupyters: &jupyters,
                extras: &[],
            },
            deadline,
            &progress
        ),
        parity::measure_all(engine, &containers)
    );
    let master = ready?;
    let parity = parity::compare(&reference, &measured);
    if !parity.ok {
        return Err(Error::ParityMismatch(parity::render(&parity)));
    }
    Ok(UpOutcome {
        plan: plan.to_string(),
        master,
        parity,
    })
}

#[tokio::test]
async fn up_on_an_empty_engine_makes_a_ready_cluster() {
    let lab = Lab::new("empty");
    let out = lab.up(&lab.args(Some(3))).await.expect("up");
    assert!(out.plan.contains("build image"), "{}", out.plan);
    assert_eq!(wait::alive_among(&out.master, &lab.wanted(3).into_iter().collect::<Vec<_>>()), 3);
    // The defaults: one core and 1 GiB a worker, as the master counts them.
    assert_eq!((out.master.cores, out.master.memory), (3, 3 * 1024));
    assert!(out.parity.ok && out.parity.matching.len() == 5, "{:?}", out.parity);
    lab.assert_ready(3).await;
    // Every object carries the cluster label; the data directory was made.
    assert_eq!(lab.engine.network_names(), vec![lab.names().network()]);
    assert_eq!(lab.engine.volume_names(), vec![lab.names().notebooks_volume()]);
    assert!(lab.data.path().join("data").is_dir());
    let image = lab
        .engine
        .image_info(&lab.engine.container(&lab.names().master()).expect("master").spec.image)
        .expect("the image");
    assert!(image.labels.contains_key(labels::VERSIONS));
    assert!(image.labels.contains_key(labels::IMAGE_HASH));
}

#[tokio::test]
async fn a_second_up_changes_nothing() {
    let lab = Lab::new("again");
    lab.up(&lab.args(Some(2))).await.expect("first up");
    let ids = lab.ids();
    lab.engine.clear_log();
    let out = lab.up(&lab.args(None)).await.expect("second up");
    assert!(out.plan.starts_with("nothing to do"), "{}", out.plan);
    assert_eq!(lab.engine.mutations(), Vec::<String>::new());
    assert_eq!(lab.ids(), ids);
    lab.assert_ready(2).await;
}

#[tokio::test]
async fn up_heals_a_stopped_worker_and_only_it() {
    let lab = Lab::new("heal");
    lab.up(&lab.args(Some(3))).await.expect("up");
    let ids = lab.ids();
    let w2 = lab.names().worker(2);
    assert!(lab.engine.exit_container(&w2, 137));
    assert_eq!(lab.status().await.state, "degraded");
    lab.engine.clear_log();
    lab.up(&lab.args(None)).await.expect("healing up");
    assert_eq!(lab.engine.mutations(), vec![format!("start_container {w2}")]);
    assert_eq!(lab.ids(), ids, "no container was recreated");
    for (name, _) in ids {
        let starts = lab.engine.container(&name).expect("there").start_count;
        assert_eq!(starts, if name == w2 { 2 } else { 1 }, "{name}");
    }
    lab.assert_ready(3).await;
}

#[tokio::test]
async fn scaling_touches_only_workers() {
    let lab = Lab::new("scale");
    let names = lab.names();
    lab.up(&lab.args(Some(2))).await.expect("up");
    let before = lab.ids();
    lab.engine.clear_log();
    let out = lab.up(&lab.args(Some(4))).await.expect("scale up");
    assert_eq!((out.master.cores, out.master.memory), (4, 4 * 1024));
    let mut made = lab.engine.mutations();
    made.sort();
    assert_eq!(
        made,
        vec![
            format!("create_container {}", names.worker(3)),
            format!("create_container {}", names.worker(4)),
            format!("start_container {}", names.worker(3)),
            format!("start_container {}", names.worker(4)),
        ]
    );
    let after = lab.ids();
    for (name, id) in &before {
        assert_eq!(after.get(name), Some(id), "{name} was recreated");
    }
    lab.assert_ready(4).await;

    lab.engine.clear_log();
    lab.up(&lab.args(Some(1))).await.expect("scale down");
    assert_eq!(
        lab.engine.mutations(),
        vec![
            format!("remove_container {}", names.worker(4)),
            format!("remove_container {}", names.worker(3)),
            format!("remove_container {}", names.worker(2)),
        ]
    );
    for name in lab.wanted(1) {
        assert_eq!(lab.ids().get(&name), after.get(&name), "{name} was recreated");
    }
    lab.assert_ready(1).await;
}

#[tokio::test]
async fn a_changed_setting_recreates_only_what_it_shapes() {
    let lab = Lab::new("cores");
    let names = lab.names();
    lab.up(&lab.args(Some(2))).await.expect("up");
    let before = lab.ids();
    let conf = |lab: &Lab| {
        let j = lab.engine.container(&names.jupyter()).expect("jupyter");
        j.env("SPARKBOX_SPARK_CONF").map(str::to_string)
    };
    let conf_before = conf(&lab);
    let mut args = lab.args(None);
    args.cores = Some(2);
    lab.engine.clear_log();
    let out = lab.up(&args).await.expect("up --cores 2");
    assert!(out.plan.contains("config changed"), "{}", out.plan);
    assert_eq!(out.master.cores, 4, "two workers of two cores");
    let after = lab.ids();
    for worker in [names.worker(1), names.worker(2)] {
        assert_ne!(after.get(&worker), before.get(&worker), "{worker} kept its old config");
        let c = lab.engine.container(&worker).expect("there");
        assert_eq!(c.env("SPARKBOX_WORKER_CORES"), Some("2"));
    }
    // The drivers' fair share follows the worker size, so Jupyter is
    // recreated exactly when its rendered settings changed; the master
    // (which knows nothing of worker sizes) is kept.
    let jupyter_changed = conf(&lab) != conf_before;
    assert_eq!(
        after.get(&names.jupyter()) != before.get(&names.jupyter()),
        jupyter_changed,
        "Jupyter recreated iff its settings changed ({conf_before:?} -> {:?})",
        conf(&lab)
    );
    assert_eq!(after.get(&names.master()), before.get(&names.master()), "the master was recreated");
    let master = names.master();
    assert!(
        lab.engine.mutations().iter().all(|m| !m.ends_with(&master)),
        "{:?}",
        lab.engine.mutations()
    );
    lab.assert_ready(2).await;
}
