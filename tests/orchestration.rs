//! The orchestration ring: `up`, heal, scale, a changed setting, status of
//! every state, Ctrl-C after every engine call and engine errors, against the
//! in-memory [`FakeEngine`] — the real planning, execution, readiness and
//! parity code, no Docker, in seconds.

use std::collections::BTreeSet;

use sparkbox::cli::{ClusterArgs, NameArg};
use sparkbox::engine::fake::{Call, FakeEngine};
use sparkbox::engine::Engine;
use sparkbox::model::labels;
use sparkbox::model::spec::Names;
use sparkbox::ops::status::StatusReport;
use sparkbox::ops::up::{UpDone, UpOutcome};
use sparkbox::ops::{lifecycle, status};
use sparkbox::plan::wait;
use sparkbox::progress::{Progress, ProgressMode};
use sparkbox::settings::Config;
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

    /// `sparkbox up` with `args`, to a ready cluster.
    async fn up(&self, args: &ClusterArgs) -> Result<UpDone> {
        let outcome =
            sparkbox::ops::up::up(&self.engine, &Config::default(), args, false, &quiet()).await?;
        match outcome {
            UpOutcome::Ready(done) => Ok(*done),
            UpOutcome::DryRun { .. } => panic!("up without --dry-run made a dry run"),
        }
    }

    /// `sparkbox up --dry-run` with `args`: the plan as it prints.
    async fn plan(&self, args: &ClusterArgs) -> String {
        let outcome = sparkbox::ops::up::up(&self.engine, &Config::default(), args, true, &quiet())
            .await
            .expect("a dry run");
        match outcome {
            UpOutcome::DryRun { plan, .. } => plan.to_string(),
            UpOutcome::Ready(_) => panic!("up --dry-run ran the plan"),
        }
    }

    async fn status(&self) -> StatusReport {
        status::collect(&self.engine, &self.name)
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
            // Once ready, each comes back by itself with the engine.
            assert!(c.keep_running, "{name} has no restart policy");
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

#[tokio::test]
async fn up_on_an_empty_engine_makes_a_ready_cluster() {
    let lab = Lab::new("empty");
    let plan = lab.plan(&lab.args(Some(3))).await;
    assert!(plan.contains("build image"), "{plan}");
    assert!(
        lab.engine.mutations().is_empty(),
        "a dry run changed something"
    );
    let out = lab.up(&lab.args(Some(3))).await.expect("up");
    assert!(out.report.changed);
    assert_eq!(
        (out.report.workers.alive, out.report.workers.wanted),
        (3, 3)
    );
    assert_eq!(
        wait::alive_among(&out.master, &lab.wanted(3).into_iter().collect::<Vec<_>>()),
        3
    );
    // The defaults: one core and 1 GiB a worker, as the master counts them.
    assert_eq!((out.master.cores, out.master.memory), (3, 3 * 1024));
    assert_eq!(
        out.containers, 5,
        "containers shown to run the same versions"
    );
    assert_eq!(
        out.report.versions.get("spark"),
        Some(out.report.versions.get("pyspark").unwrap_or("?"))
    );
    lab.assert_ready(3).await;
    // Every object carries the cluster label; the data directory was made.
    assert_eq!(lab.engine.network_names(), vec![lab.names().network()]);
    assert_eq!(
        lab.engine.volume_names(),
        vec![lab.names().notebooks_volume()]
    );
    assert!(lab.data.path().join("data").is_dir());
    let image = lab
        .engine
        .image_info(
            &lab.engine
                .container(&lab.names().master())
                .expect("master")
                .spec
                .image,
        )
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
    let plan = lab.plan(&lab.args(None)).await;
    assert!(plan.starts_with("nothing to do"), "{plan}");
    let out = lab.up(&lab.args(None)).await.expect("second up");
    assert!(!out.report.changed);
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
    assert_eq!(
        lab.engine.mutations(),
        vec![format!("start_container {w2}")]
    );
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
        assert_eq!(
            lab.ids().get(&name),
            after.get(&name),
            "{name} was recreated"
        );
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
    let plan = lab.plan(&args).await;
    assert!(plan.contains("config changed"), "{plan}");
    let out = lab.up(&args).await.expect("up --cores 2");
    assert_eq!(out.master.cores, 4, "two workers of two cores");
    let after = lab.ids();
    for worker in [names.worker(1), names.worker(2)] {
        assert_ne!(
            after.get(&worker),
            before.get(&worker),
            "{worker} kept its old config"
        );
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
    assert_eq!(
        after.get(&names.master()),
        before.get(&names.master()),
        "the master was recreated"
    );
    let master = names.master();
    assert!(
        lab.engine.mutations().iter().all(|m| !m.ends_with(&master)),
        "{:?}",
        lab.engine.mutations()
    );
    lab.assert_ready(2).await;
}

#[tokio::test]
async fn status_of_every_state() {
    let lab = Lab::new("status");
    let names = lab.names();
    let absent = lab.status().await;
    assert_eq!(absent.state, "absent");
    assert!(absent.containers.is_empty());

    lab.up(&lab.args(Some(2))).await.expect("up");
    let ready = lab.status().await;
    assert_eq!(ready.state, "ready");
    assert_eq!((ready.cores.total, ready.memory_mb.total), (2, 2048));
    assert!(ready
        .containers
        .iter()
        .all(|c| c.versions_ok && c.state == "running"));

    // A worker that died: degraded, and the master counts one worker.
    lab.engine.exit_container(&names.worker(1), 137);
    let degraded = lab.status().await;
    assert_eq!(degraded.state, "degraded");
    assert_eq!((degraded.workers.alive, degraded.workers.wanted), (1, 2));
    assert!(degraded.parity.ok, "the running containers still agree");
    let exited = degraded
        .containers
        .iter()
        .find(|c| c.name == names.worker(1))
        .expect("the exited worker is listed");
    assert_eq!(exited.versions, "not measured", "{exited:?}");

    // Everything stopped.
    for name in lab.engine.container_names() {
        lab.engine.stop_container(&name, 1).await.expect("stop");
    }
    let stopped = lab.status().await;
    assert_eq!(stopped.state, "stopped");
    assert_eq!(stopped.workers.alive, 0);
    // Nothing runs, so nothing was measured: not called different.
    assert!(
        stopped
            .containers
            .iter()
            .all(|c| c.versions == "not measured" && !c.versions_ok),
        "{:?}",
        stopped.containers
    );

    // Running again, but one container runs another py4j than the image.
    lab.up(&lab.args(None)).await.expect("up restarts them");
    assert_eq!(lab.status().await.state, "ready");
    assert!(lab.engine.set_version(&names.worker(2), "py4j", "0.10.9.5"));
    let mismatch = lab.status().await;
    assert_eq!(mismatch.state, "degraded");
    assert!(!mismatch.parity.ok);
    assert_eq!(mismatch.parity.differences.len(), 1);
    assert_eq!(mismatch.parity.differences[0].key, "py4j");
    let bad: Vec<&str> = mismatch
        .containers
        .iter()
        .filter(|c| !c.versions_ok)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(bad, vec![names.worker(2).as_str()]);
    let verdicts: Vec<(&str, &str)> = mismatch
        .containers
        .iter()
        .map(|c| (c.name.as_str(), c.versions.as_str()))
        .filter(|(_, v)| *v != "ok")
        .collect();
    assert_eq!(verdicts, vec![(names.worker(2).as_str(), "different")]);
    // And `up` refuses to call that cluster ready.
    let err = lab.up(&lab.args(None)).await.expect_err("parity fails");
    assert!(matches!(err, Error::ParityMismatch(_)), "{err}");
    assert!(err.to_string().contains("0.10.9.5"), "{err}");
}

/// Runs `up` until the engine pauses at its `n`-th mutating call and drops
/// the future there, as Ctrl-C does (`tokio::select!` in main); returns
/// false when `up` finished before reaching it.
async fn interrupt_at(lab: &Lab, args: &ClusterArgs, n: u32) -> bool {
    lab.engine.pause_at_mutation(n);
    let paused = tokio::select! {
        result = lab.up(args) => {
            result.expect("an up that was not interrupted succeeds");
            false
        }
        _ = lab.engine.paused() => true,
    };
    lab.engine.release();
    paused
}

/// For every mutating call of the plan `args` makes from `prepare`'s
/// state: interrupt there, then a fresh `up` converges to exactly the
/// wanted cluster.
async fn ctrl_c_after_every_call(
    tag: &str,
    prepare: Option<u32>,
    args: impl Fn(&Lab) -> ClusterArgs,
    workers: u32,
    check: impl Fn(&Lab),
) {
    // How many mutating calls the whole plan makes, uninterrupted.
    let probe = Lab::new(&format!("{tag}-probe"));
    if let Some(w) = prepare {
        probe.up(&probe.args(Some(w))).await.expect("prepare");
    }
    probe.engine.clear_log();
    probe.up(&args(&probe)).await.expect("the uninterrupted up");
    let total = probe.engine.mutations().len() as u32;
    assert!(total >= 2, "{:?}", probe.engine.mutations());
    eprintln!("{tag}: Ctrl-C after each of {total} mutating calls");
    for n in 1..=total {
        let lab = Lab::new(&format!("{tag}-{n}"));
        if let Some(w) = prepare {
            lab.up(&lab.args(Some(w))).await.expect("prepare");
        }
        let args = args(&lab);
        assert!(
            interrupt_at(&lab, &args, n).await,
            "up finished before call {n} of {total}"
        );
        lab.up(&args)
            .await
            .unwrap_or_else(|e| panic!("up after Ctrl-C at call {n} of {total}: {e}"));
        lab.assert_ready(workers).await;
        check(&lab);
    }
}

#[tokio::test]
async fn ctrl_c_after_every_call_of_a_first_up_then_up_converges() {
    ctrl_c_after_every_call("cc-new", None, |lab| lab.args(Some(2)), 2, |_| {}).await;
}

#[tokio::test]
async fn ctrl_c_after_every_call_of_a_change_then_up_converges() {
    let args = |lab: &Lab| {
        let mut a = lab.args(Some(3));
        a.cores = Some(2);
        a
    };
    ctrl_c_after_every_call("cc-change", Some(2), args, 3, |lab| {
        for n in 1..=3 {
            let w = lab
                .engine
                .container(&lab.names().worker(n))
                .expect("worker");
            assert_eq!(w.env("SPARKBOX_WORKER_CORES"), Some("2"), "{}", w.name());
            assert_eq!(
                w.start_count,
                1,
                "{} was started on its old config",
                w.name()
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_container_gone_before_its_removal_is_not_an_error() {
    let lab = Lab::new("gone-rm");
    let names = lab.names();
    lab.up(&lab.args(Some(3))).await.expect("up");
    // `docker rm -f` from elsewhere races the scale-down's removal.
    let w3 = names.worker(3);
    lab.engine.vanish_before(Call::RemoveContainer, &w3, &w3);
    lab.up(&lab.args(Some(1)))
        .await
        .expect("scale down despite the race");
    lab.assert_ready(1).await;
}

#[tokio::test]
async fn a_container_gone_before_its_start_fails_as_gone_then_up_heals() {
    let lab = Lab::new("gone-start");
    let names = lab.names();
    lab.up(&lab.args(Some(2))).await.expect("up");
    let w2 = names.worker(2);
    lab.engine.exit_container(&w2, 137);
    lab.engine.vanish_before(Call::StartContainer, &w2, &w2);
    let err = lab.up(&lab.args(None)).await.expect_err("the engine's 404");
    assert!(
        matches!(&err, Error::Gone { object, .. } if object.contains(&w2)),
        "{err:?}"
    );
    assert!(err.to_string().contains("run the command again"), "{err}");
    // With --workers: the cluster's record is its containers, and without
    // the flag `up` would settle on the highest worker that is left (one).
    lab.up(&lab.args(Some(2)))
        .await
        .expect("the next up creates it");
    lab.assert_ready(2).await;
}

#[tokio::test]
async fn a_create_an_interrupted_up_left_in_flight_is_adopted() {
    // Ctrl-C during an up: the engine finishes the worker's create after the
    // client is gone, and the next up, which looked before that, creates it
    // again — the 409 is its own container, made from these settings.
    let lab = Lab::new("late");
    let w2 = lab.names().worker(2);
    lab.engine.late_create(&w2);
    lab.up(&lab.args(Some(2)))
        .await
        .expect("the late create is adopted");
    lab.assert_ready(2).await;
    let creates = lab
        .engine
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("create_container") && c.ends_with(&w2))
        .count();
    assert_eq!(creates, 1, "{:?}", lab.engine.calls());
}

#[tokio::test]
async fn a_foreign_container_with_a_wanted_name_is_a_name_conflict() {
    let lab = Lab::new("conflict");
    let w2 = lab.names().worker(2);
    // Someone's own container, without sparkbox's labels, holds the name.
    lab.engine.add_image("busybox:latest", Default::default());
    lab.engine
        .create_network("theirs", Default::default())
        .await
        .expect("network");
    lab.engine
        .create_container(&sparkbox::engine::ContainerSpec {
            name: w2.clone(),
            image: "busybox".into(),
            network: "theirs".into(),
            ..Default::default()
        })
        .await
        .expect("their container");
    let err = lab
        .up(&lab.args(Some(2)))
        .await
        .expect_err("the engine's 409");
    assert!(
        matches!(&err, Error::NameConflict { name, .. } if *name == w2),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&format!("docker container rm -f {w2}")),
        "{text}"
    );
    assert_eq!(err.exit_code(), 1);
    // Once they remove it, up finishes the cluster.
    lab.engine.remove_container(&w2).await.expect("removed");
    lab.up(&lab.args(Some(2))).await.expect("up");
    lab.assert_ready(2).await;
}

#[tokio::test]
async fn an_unreachable_engine_is_reported_as_such() {
    let lab = Lab::new("unreachable");
    lab.engine.set_unreachable(true);
    let err = lab.up(&lab.args(Some(2))).await.expect_err("no engine");
    assert!(matches!(err, Error::DockerUnreachable { .. }), "{err:?}");
    assert_eq!(err.exit_code(), 3);
    assert!(lab.engine.container_names().is_empty());

    // The engine goes away in the middle of an up, and comes back.
    lab.engine.set_unreachable(false);
    lab.engine.fail_nth(
        Call::StartContainer,
        2,
        Error::DockerUnreachable {
            host: "fake".into(),
            detail: "connection reset".into(),
        },
    );
    let err = lab.up(&lab.args(Some(2))).await.expect_err("lost mid-way");
    assert!(matches!(err, Error::DockerUnreachable { .. }), "{err:?}");
    lab.up(&lab.args(Some(2)))
        .await
        .expect("up once it is back");
    lab.assert_ready(2).await;
}

#[tokio::test]
async fn an_engine_error_while_observing_changes_nothing() {
    let lab = Lab::new("observe-err");
    lab.engine.fail_nth(
        Call::Networks,
        1,
        Error::Engine {
            action: "list networks".into(),
            detail: "500 Internal Server Error".into(),
        },
    );
    let err = lab.up(&lab.args(Some(2))).await.expect_err("observe fails");
    assert!(err.to_string().contains("list networks"), "{err}");
    assert!(
        lab.engine.mutations().is_empty(),
        "{:?}",
        lab.engine.mutations()
    );
}

#[tokio::test]
async fn stop_then_start_restarts_the_same_containers() {
    let lab = Lab::new("stopstart");
    lab.up(&lab.args(Some(2))).await.expect("up");
    let ids = lab.ids();
    let stopped = lifecycle::stop(&lab.engine, &lab.name, &quiet())
        .await
        .expect("stop");
    assert_eq!(stopped, 4);
    assert_eq!(lab.status().await.state, "stopped");
    lab.engine.clear_log();
    let started = lifecycle::start(&lab.engine, &lab.name, 20, &quiet())
        .await
        .expect("start");
    assert_eq!((started.workers, started.containers), (2, 4));
    // The master first, alone; then the rest.
    let mutations = lab.engine.mutations();
    assert_eq!(
        mutations[0],
        format!("start_container {}", lab.names().master())
    );
    assert_eq!(mutations.len(), 4, "{mutations:?}");
    assert_eq!(lab.ids(), ids);
    lab.assert_ready(2).await;
}

#[tokio::test]
async fn scale_adds_and_removes_workers_only() {
    let lab = Lab::new("lscale");
    let names = lab.names();
    lab.up(&lab.args(Some(1))).await.expect("up");
    let before = lab.ids();
    lab.engine.clear_log();
    let up = lifecycle::scale(&lab.engine, &lab.name, 3, 20, &quiet())
        .await
        .expect("scale to 3")
        .expect("something to do");
    assert_eq!(up.workers, 3);
    assert!(
        lab.engine
            .mutations()
            .iter()
            .all(|m| m.ends_with(&names.worker(2)) || m.ends_with(&names.worker(3))),
        "{:?}",
        lab.engine.mutations()
    );
    for (name, id) in &before {
        assert_eq!(lab.ids().get(name), Some(id), "{name} was recreated");
    }
    lab.assert_ready(3).await;
    let none = lifecycle::scale(&lab.engine, &lab.name, 3, 20, &quiet())
        .await
        .expect("scale to the same count");
    assert!(none.is_none());
    lab.engine.clear_log();
    lifecycle::scale(&lab.engine, &lab.name, 1, 20, &quiet())
        .await
        .expect("scale to 1");
    assert_eq!(
        lab.engine.mutations(),
        vec![
            format!("remove_container {}", names.worker(3)),
            format!("remove_container {}", names.worker(2)),
        ]
    );
    for (name, id) in &before {
        assert_eq!(lab.ids().get(name), Some(id), "{name} was recreated");
    }
    lab.assert_ready(1).await;
}

#[tokio::test]
async fn down_removes_the_cluster_and_keeps_volumes_unless_asked() {
    let lab = Lab::new("down");
    lab.up(&lab.args(Some(2))).await.expect("up");
    // A container removed by hand while down runs is not an error.
    let w1 = lab.names().worker(1);
    lab.engine.vanish_before(Call::RemoveContainer, &w1, &w1);
    let removed = lifecycle::down(&lab.engine, &lab.name, false, &quiet())
        .await
        .expect("down")
        .expect("something to remove");
    assert_eq!((removed.containers, removed.networks), (4, 1));
    assert_eq!(removed.kept, vec![lab.names().notebooks_volume()]);
    assert!(lab.engine.container_names().is_empty());
    assert!(lab.engine.network_names().is_empty());
    assert_eq!(lab.engine.volume_names(), removed.kept);
    // Only the kept volume is left: not absent, nothing running.
    assert_eq!(lab.status().await.state, "stopped");
    let removed = lifecycle::down(&lab.engine, &lab.name, true, &quiet())
        .await
        .expect("down --volumes")
        .expect("the volume is left");
    assert_eq!(removed.volumes, vec![lab.names().notebooks_volume()]);
    assert_eq!(lab.status().await.state, "absent");
    let nothing = lifecycle::down(&lab.engine, &lab.name, true, &quiet())
        .await
        .expect("down of nothing");
    assert!(nothing.is_none());
}

/// `up` with nothing but the name, as `status` advises it.
fn bare(lab: &Lab) -> ClusterArgs {
    ClusterArgs {
        name: NameArg {
            name: Some(lab.name.clone()),
        },
        timeout: Some(20),
        ..Default::default()
    }
}

#[tokio::test]
async fn up_with_nothing_said_restores_the_cluster_as_it_was_made() {
    let lab = Lab::new("asmade");
    let made = ClusterArgs {
        cores: Some(2),
        memory: Some("1536m".into()),
        history: true,
        ..lab.args(Some(2))
    };
    lab.up(&made).await.expect("up");
    let scaled = lifecycle::scale(&lab.engine, &lab.name, 3, 20, &quiet())
        .await
        .expect("scale");
    assert!(scaled.is_some());
    let names = lab.names();
    lab.engine.exit_container(&names.worker(2), 137);
    let before = lab.ids();
    lab.engine.clear_log();
    // From anywhere (no file, no --data): only the killed worker is started.
    let plan = lab.plan(&bare(&lab)).await;
    assert_eq!(
        plan.trim(),
        format!(" 1. start container {} (stopped)", names.worker(2)).trim(),
        "{plan}"
    );
    let out = lab.up(&bare(&lab)).await.expect("the hinted up");
    assert_eq!(out.report.workers.wanted, 3);
    assert!(out.notes.is_empty(), "{:?}", out.notes);
    assert_eq!(lab.ids(), before, "a container was replaced");
    assert_eq!(
        lab.engine.mutations(),
        vec![format!("start_container {}", names.worker(2))]
    );
    let worker = lab.engine.container(&names.worker(3)).expect("worker-3");
    assert_eq!(worker.env("SPARKBOX_WORKER_CORES"), Some("2"));
    assert_eq!(worker.env("SPARKBOX_WORKER_MEMORY"), Some("1536m"));
    assert!(lab.engine.container(&names.history()).is_some());
    let data = lab.data.path().join("data").display().to_string();
    let jupyter = lab.engine.container(&names.jupyter()).expect("jupyter");
    assert!(
        jupyter.spec.binds.contains(&format!("{data}:/data")),
        "{:?}",
        jupyter.spec.binds
    );
}

#[tokio::test]
async fn up_says_which_setting_recreates_a_running_jupyter() {
    let lab = Lab::new("why");
    lab.up(&lab.args(Some(1))).await.expect("up");
    let other = tempfile::tempdir().expect("another data directory");
    let moved = ClusterArgs {
        data: Some(other.path().to_path_buf()),
        ..lab.args(Some(1))
    };
    let outcome = sparkbox::ops::up::up(&lab.engine, &Config::default(), &moved, true, &quiet())
        .await
        .expect("a dry run");
    let UpOutcome::DryRun { notes, .. } = outcome else {
        panic!("not a dry run");
    };
    let jupyter = lab.names().jupyter();
    let note = notes
        .iter()
        .find(|n| n.starts_with(&jupyter))
        .unwrap_or_else(|| panic!("no note about {jupyter}: {notes:?}"));
    let old = lab.data.path().join("data").display().to_string();
    assert!(
        note.contains(&format!(
            "the data directory {old} → {}",
            other.path().display()
        )),
        "{note}"
    );
    assert!(note.contains("kernels running in it stop"), "{note}");
    // A setting kept in the cluster's record, not in a label of its own.
    let history = ClusterArgs {
        history: true,
        ..lab.args(Some(1))
    };
    let outcome = sparkbox::ops::up::up(&lab.engine, &Config::default(), &history, true, &quiet())
        .await
        .expect("a dry run");
    let UpOutcome::DryRun { notes, .. } = outcome else {
        panic!("not a dry run");
    };
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with(&jupyter) && n.contains("the history server off → on")),
        "{notes:?}"
    );
    // A worker count alone never recreates Jupyter, so no such note.
    let outcome = sparkbox::ops::up::up(
        &lab.engine,
        &Config::default(),
        &lab.args(Some(2)),
        true,
        &quiet(),
    )
    .await
    .expect("a dry run");
    let UpOutcome::DryRun { notes, .. } = outcome else {
        panic!("not a dry run");
    };
    assert!(
        notes.iter().all(|n| !n.contains("is recreated")),
        "{notes:?}"
    );
}

#[tokio::test]
async fn a_container_removed_by_hand_takes_nothing_of_the_cluster_with_it() {
    let lab = Lab::new("byhand");
    let file = sparkbox::settings::Config {
        path: None,
        file: sparkbox::settings::parse(
            "[apps]\ncores = 1\n[volumes]\nnotebooks = \"mynb\"\n",
            std::path::Path::new("sparkbox.toml"),
        )
        .expect("a valid file"),
    };
    let made = ClusterArgs {
        history: true,
        ..lab.args(Some(3))
    };
    sparkbox::ops::up::up(&lab.engine, &file, &made, false, &quiet())
        .await
        .expect("up");
    let names = lab.names();
    // Each of these, removed by hand, is made again as it was, alone; up runs
    // with nothing said and no file, as the status hint and parity's fix say.
    for gone in [
        names.history(),
        names.jupyter(),
        names.worker(2),
        names.master(),
    ] {
        let before = lab.ids();
        let jupyter_before = lab.engine.container(&names.jupyter()).map(|c| c.spec);
        assert!(lab.engine.remove_behind_back(&gone), "{gone} existed");
        lab.engine.clear_log();
        let out = lab.up(&bare(&lab)).await.expect("up heals");
        let mut created: Vec<String> = lab
            .engine
            .mutations()
            .into_iter()
            .filter(|m| m.starts_with("create_container"))
            .collect();
        created.sort();
        // A master made anew is found by its workers under the same name.
        assert_eq!(
            created,
            vec![format!("create_container {gone}")],
            "healing {gone}"
        );
        let after = lab.ids();
        for (name, id) in &before {
            if *name != gone {
                assert_eq!(
                    after.get(name),
                    Some(id),
                    "{name} was replaced healing {gone}"
                );
            }
        }
        assert_eq!(out.report.workers.wanted, 3);
        let jupyter = lab.engine.container(&names.jupyter()).expect("jupyter");
        assert!(
            jupyter.spec.binds.iter().any(|b| b.starts_with("mynb:")),
            "{:?}",
            jupyter.spec.binds
        );
        let conf = jupyter.env("SPARKBOX_SPARK_CONF").unwrap_or_default();
        assert!(conf.contains("spark.cores.max=1"), "{conf}");
        assert!(conf.contains("spark.eventLog.enabled=true"), "{conf}");
        if let Some(mut spec) = jupyter_before {
            // A Jupyter server made anew gets a new token (the old one lived
            // in its labels only); everything else is as it was.
            let mut now = jupyter.spec.clone();
            for s in [&mut spec, &mut now] {
                s.labels.remove(labels::CONFIG_HASH);
                s.labels.remove(labels::TOKEN);
                s.labels.remove(labels::RECORD);
                s.env.retain(|(k, _)| k != "SPARKBOX_JUPYTER_TOKEN");
            }
            spec.env.sort();
            now.env.sort();
            assert_eq!(spec.env, now.env, "healing {gone}");
            assert_eq!(spec.labels, now.labels, "healing {gone}");
            assert_eq!(spec.binds, now.binds, "healing {gone}");
            assert_eq!(spec.ports, now.ports, "healing {gone}");
        }
        lab.assert_ready_with_history(3).await;
    }
}

impl Lab {
    async fn assert_ready_with_history(&self, workers: u32) {
        let names = self.names();
        assert!(self.engine.container(&names.history()).is_some());
        let status = self.status().await;
        assert_eq!(status.state, "ready", "{status:?}");
        assert_eq!(status.workers.alive, workers as usize);
    }
}

#[tokio::test]
async fn a_host_port_taken_on_the_engine_moves_with_a_note() {
    let lab = Lab::new("port");
    // Another program of the engine's publishes the master UI's default.
    lab.engine
        .add_image("other:1", std::collections::HashMap::new());
    lab.engine
        .create_network("other-net", std::collections::HashMap::new())
        .await
        .expect("network");
    let other = sparkbox::engine::ContainerSpec {
        name: "other-web".into(),
        image: "other:1".into(),
        network: "other-net".into(),
        ports: vec![sparkbox::engine::PortPublish {
            host_ip: "127.0.0.1".into(),
            host_port: 8080,
            container_port: 80,
        }],
        ..Default::default()
    };
    lab.engine.create_container(&other).await.expect("created");
    lab.engine
        .start_container("other-web")
        .await
        .expect("started");
    let out = lab.up(&lab.args(Some(1))).await.expect("up");
    assert!(
        out.notes
            .iter()
            .any(|n| n.contains("port 8080 is taken") && n.contains("--master-ui-port")),
        "{:?}",
        out.notes
    );
    assert_ne!(
        out.report.urls.master_ui.as_deref(),
        Some("http://127.0.0.1:8080")
    );
    // A fixed port that is taken is refused, naming the flag.
    let fixed = ClusterArgs {
        master_ui_port: Some(8080),
        ..lab.args(Some(1))
    };
    let err = lab.up(&fixed).await.expect_err("a taken fixed port");
    assert!(matches!(err, Error::PortTaken(_)), "{err:?}");
    assert!(err.to_string().contains("--master-ui-port"), "{err}");
}

#[tokio::test]
async fn checks_across_settings_see_the_cluster_as_it_was_made() {
    let lab = Lab::new("across");
    let big = ClusterArgs {
        memory: Some("4g".into()),
        ..lab.args(Some(1))
    };
    lab.up(&big).await.expect("up with 4g workers");
    // A file asking executors of 2g: more than the default worker (1g), but
    // not more than this cluster's workers, so `up` with it is fine.
    let file = sparkbox::settings::Config {
        path: None,
        file: sparkbox::settings::parse(
            "[apps]\nexecutor_memory = \"2g\"\n",
            std::path::Path::new("sparkbox.toml"),
        )
        .expect("a valid file"),
    };
    let out = sparkbox::ops::up::up(&lab.engine, &file, &bare(&lab), false, &quiet())
        .await
        .expect("the file fits the cluster as it was made");
    let UpOutcome::Ready(done) = out else {
        panic!("not a dry run");
    };
    assert_eq!(done.master.memory, 4096);
    // The same file against a fresh cluster of default workers is refused,
    // naming the key.
    let fresh = Lab::new("across-fresh");
    let err = sparkbox::ops::up::up(&fresh.engine, &file, &fresh.args(Some(1)), false, &quiet())
        .await
        .expect_err("2g executors on 1g workers");
    assert!(err.to_string().contains("executor_memory"), "{err}");
    assert!(
        fresh.engine.mutations().is_empty(),
        "a refused up changed something"
    );
}

#[tokio::test]
async fn the_parity_fix_recreates_the_marked_container_alone() {
    let lab = Lab::new("fix");
    lab.up(&lab.args(Some(2))).await.expect("up");
    let names = lab.names();
    let worker = names.worker(1);
    lab.engine.set_version(&worker, "py4j", "0.0.1");
    let err = lab.up(&bare(&lab)).await.expect_err("a version mismatch");
    let text = err.to_string();
    let hint = format!("`sparkbox up -n {} --recreate CONTAINER`", lab.name);
    assert!(text.contains(&hint), "{text}");
    let before = lab.ids();
    let options = sparkbox::ops::up::UpOptions {
        dry_run: false,
        recreate: vec!["worker-1".into()],
    };
    lab.engine.clear_log();
    sparkbox::ops::up::up_with(
        &lab.engine,
        &Config::default(),
        &bare(&lab),
        &options,
        &quiet(),
    )
    .await
    .expect("up --recreate worker-1");
    let after = lab.ids();
    for (name, id) in &before {
        if *name == worker {
            assert_ne!(after.get(name), Some(id), "{name} was not made anew");
        } else {
            assert_eq!(after.get(name), Some(id), "{name} was replaced");
        }
    }
    lab.assert_ready(2).await;
    // A name that is not the cluster's is refused with the ones it has.
    let wrong = sparkbox::ops::up::UpOptions {
        dry_run: true,
        recreate: vec!["worker-9".into()],
    };
    let err = sparkbox::ops::up::up_with(
        &lab.engine,
        &Config::default(),
        &bare(&lab),
        &wrong,
        &quiet(),
    )
    .await
    .expect_err("no worker-9");
    assert!(err.to_string().contains(&names.worker(2)), "{err}");
}

/// A registry host no machine's Docker configuration has credentials for.
const FAKE_REGISTRY: &str = "registry.sbx-fake.test:5000/sbx";

impl Lab {
    /// `up` flags with `--registry REG`.
    fn args_with_registry(&self, registry: &str) -> ClusterArgs {
        let mut args = self.args(Some(1));
        args.image.registry = Some(registry.to_string());
        args
    }
}

/// The image a first `up` built on its own engine, as `image push` leaves
/// it in the registry: (remote reference, the registry's copy).
async fn pushed_image(tag: &str) -> (String, sparkbox::engine::fake::FakeImage) {
    let builder = Lab::new(tag);
    let done = builder.up(&builder.args(Some(1))).await.expect("up builds");
    let registry = sparkbox::model::registry::Registry::parse(FAKE_REGISTRY).expect("valid");
    let local = done.report.image.clone();
    let digest = sparkbox::image::registry::push(&builder.engine, &registry, &local, &quiet())
        .await
        .expect("push");
    let remote = registry.reference_for(&local);
    assert!(
        digest.starts_with(&format!("{}@sha256:", registry.repository())),
        "{digest}"
    );
    let image = builder
        .engine
        .published(&remote)
        .expect("the registry holds it");
    (remote, image)
}

#[tokio::test]
async fn up_pulls_a_proven_image_from_the_registry_and_builds_nothing() {
    let (remote, image) = pushed_image("reg-src").await;
    let lab = Lab::new("reg-pull");
    lab.engine.publish(&remote, image.clone());
    let done = lab
        .up(&lab.args_with_registry(FAKE_REGISTRY))
        .await
        .expect("up");
    let mutations = lab.engine.mutations();
    assert!(
        mutations.iter().all(|m| !m.starts_with("build ")),
        "a build ran: {mutations:?}"
    );
    assert!(
        mutations.contains(&format!("pull {remote}")),
        "{mutations:?}"
    );
    lab.assert_ready(1).await;
    // Every container carries the image's ID and the registry's digest, and
    // status --json says them.
    let status = lab.status().await;
    let digest = status.image_digest.clone().expect("a digest");
    assert!(
        digest.starts_with(&format!("{FAKE_REGISTRY}/jupyter-spark@sha256:")),
        "{digest}"
    );
    assert_eq!(status.image_id.as_deref(), Some(image.id.as_str()));
    for name in lab.engine.container_names() {
        let c = lab.engine.container(&name).expect("listed");
        assert_eq!(
            c.spec.labels.get(labels::IMAGE_DIGEST),
            Some(&digest),
            "{name}"
        );
        assert_eq!(
            c.spec.labels.get(labels::IMAGE_ID),
            Some(&image.id),
            "{name}"
        );
    }
    assert_eq!(Some(done.report.image), status.image);
    assert_eq!(done.report.image_digest, Some(digest));
}

#[tokio::test]
async fn an_image_with_other_labels_under_the_right_tag_is_refused_by_name() {
    let (remote, mut image) = pushed_image("reg-tamper-src").await;
    image
        .labels
        .insert(labels::IMAGE_HASH.to_string(), "0".repeat(64));
    let lab = Lab::new("reg-tamper");
    lab.engine.publish(&remote, image);
    let err = lab
        .up(&lab.args_with_registry(FAKE_REGISTRY))
        .await
        .expect_err("a tampered image is not run");
    let text = err.to_string();
    assert!(matches!(err, Error::ImageMismatch { .. }), "{text}");
    assert!(
        text.contains(&remote) && text.contains("content hash"),
        "{text}"
    );
    assert_eq!(err.exit_code(), 5);
    // Nothing runs it, and it is under neither name.
    assert!(lab.engine.container_names().is_empty());
    assert!(lab.engine.image_info(&remote).is_none());
    let local = remote.replace(&format!("{FAKE_REGISTRY}/"), "sparkbox/");
    assert!(lab.engine.image_info(&local).is_none(), "{local}");
}

#[tokio::test]
async fn an_unreachable_or_empty_registry_means_a_build_said_once() {
    for down in [true, false] {
        let lab = Lab::new(if down { "reg-down" } else { "reg-empty" });
        lab.engine
            .set_registry_down("registry.sbx-fake.test:5000", down);
        lab.up(&lab.args_with_registry(FAKE_REGISTRY))
            .await
            .expect("up builds instead");
        let mutations = lab.engine.mutations();
        let pulls = mutations
            .iter()
            .filter(|m| m.contains("jupyter-spark"))
            .filter(|m| m.starts_with("pull "))
            .count();
        assert_eq!(pulls, 1, "{mutations:?}");
        assert!(
            mutations.iter().any(|m| m.starts_with("build ")),
            "{mutations:?}"
        );
        lab.assert_ready(1).await;
        assert_eq!(lab.status().await.image_digest, None);
    }
}

#[tokio::test]
async fn a_registry_that_wants_a_login_is_one_clear_error() {
    let (remote, image) = pushed_image("reg-auth-src").await;
    let lab = Lab::new("reg-auth");
    lab.engine.publish(&remote, image);
    lab.engine
        .require_login("registry.sbx-fake.test:5000", "alice", "s3cret");
    let err = lab
        .up(&lab.args_with_registry(FAKE_REGISTRY))
        .await
        .expect_err("no credentials");
    let text = err.to_string();
    assert!(matches!(err, Error::RegistryLogin { .. }), "{text}");
    assert!(
        text.contains("docker login registry.sbx-fake.test:5000"),
        "{text}"
    );
    assert_eq!(err.exit_code(), 10);
    // One pull, no retries, no build, nothing made.
    let mutations = lab.engine.mutations();
    assert_eq!(mutations, vec![format!("pull {remote}")]);
}

#[tokio::test]
async fn a_registry_name_that_is_not_one_is_refused_before_anything_is_touched() {
    let lab = Lab::new("reg-bad");
    let err = lab
        .up(&lab.args_with_registry("https://Registry/x"))
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("not a registry name"), "{err}");
    assert_eq!(err.exit_code(), 4);
    assert!(lab.engine.calls().is_empty(), "{:?}", lab.engine.calls());
}

/// `up` flags for cluster `name` on this lab's engine, with an image of
/// `spark` and `extra` Python packages.
fn image_args(lab: &Lab, name: &str, spark: Option<&str>, extra: &[&str]) -> ClusterArgs {
    let mut args = lab.args(Some(1));
    args.name.name = Some(name.to_string());
    args.image.spark_version = spark.map(str::to_string);
    args.image.python_packages = extra.iter().map(|s| s.to_string()).collect();
    args
}

/// The tag `up` gives the image of `args`.
fn tag_of(args: &ClusterArgs) -> String {
    Config::default()
        .image_settings(&args.image)
        .recipe()
        .expect("a recipe")
        .tag()
}

/// An engine with four sparkbox images: one a running cluster uses, one a
/// stopped cluster uses, the current settings' one and an old one (both
/// unused) — and four build stages interrupted builds left: two of today's
/// recipe, two of the one before (its `deps` stage), and someone else's
/// untagged image beside them.
async fn prune_lab() -> (Lab, [String; 4]) {
    let lab = Lab::new("prune");
    let running = image_args(&lab, "prune-run", None, &["polars==1.9.0"]);
    let stopped = image_args(&lab, "prune-stop", Some("3.5.9"), &[]);
    let current = image_args(&lab, "prune-cur", None, &[]);
    let old = image_args(&lab, "prune-old", None, &["duckdb==1.1.0"]);
    for args in [&running, &stopped, &current, &old] {
        lab.up(args).await.expect("up");
    }
    lifecycle::stop(&lab.engine, "prune-stop", &quiet())
        .await
        .expect("stop");
    for gone in ["prune-cur", "prune-old"] {
        lifecycle::down(&lab.engine, gone, true, &quiet())
            .await
            .expect("down");
    }
    let today = [
        "/bin/sh -c sh /tmp/sparkbox-build/build/install-deps.sh",
        "/bin/sh -c #(nop) COPY dir:77aa in /tmp/sparkbox-build/ ",
        "Imported from -",
    ];
    let before = [
        "|9 PYSPARK_VERSION=4.0.1 /bin/sh -c sh /tmp/install-deps.sh",
        "/bin/sh -c #(nop) COPY file:2c3d in /tmp/install-deps.sh ",
        "/bin/sh -c #(nop) COPY file:4e5f in /tmp/sparkbox-ca.crt ",
        "Imported from -",
    ];
    for history in [&today[..], &today[1..], &before[..], &before[1..]] {
        lab.engine
            .add_untagged_image(history, Default::default(), 1_500_000_000);
    }
    lab.engine.add_untagged_image(
        &["/bin/sh -c make", "Imported from -"],
        Default::default(),
        1_000,
    );
    let tags = [
        tag_of(&running),
        tag_of(&stopped),
        tag_of(&current),
        tag_of(&old),
    ];
    (lab, tags)
}

/// The untagged build stages on the fake engine.
async fn stages(engine: &FakeEngine) -> Vec<String> {
    let images = engine.images(&[]).await.expect("images");
    let mut out = Vec::new();
    for id in sparkbox::ops::prune::stage_suspects(&images) {
        let history = engine.image_history(&id).await.expect("history");
        if sparkbox::ops::prune::is_sparkbox_stage(&history) {
            out.push(id);
        }
    }
    out
}

#[tokio::test]
async fn prune_keeps_what_clusters_use_and_the_current_image() {
    use sparkbox::ops::prune;
    let (lab, [running, stopped, current, old]) = prune_lab().await;
    let builds_left = stages(&lab.engine).await;
    assert_eq!(builds_left.len(), 4, "the interrupted builds' stages");

    // A dry run lists and removes nothing.
    let plan = prune::plan(&lab.engine, Some(&current))
        .await
        .expect("plan");
    let mut names: Vec<&str> = plan.remove.iter().map(|r| r.name.as_str()).collect();
    names.sort();
    assert_eq!(names.len(), 5, "{names:?}");
    assert!(names.contains(&old.as_str()), "{names:?}");
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("untagged build stage"))
            .count(),
        4
    );
    let kept: Vec<(&str, &str)> = plan
        .kept
        .iter()
        .map(|k| (k.name.as_str(), k.reason.as_str()))
        .collect();
    assert!(
        kept.iter()
            .any(|(n, r)| *n == running && r.starts_with("used by prune-run")),
        "{kept:?}"
    );
    assert!(
        kept.iter()
            .any(|(n, r)| *n == stopped && r.contains("(cluster prune-stop)")),
        "{kept:?}"
    );
    assert!(
        kept.iter()
            .any(|(n, r)| *n == current && r.starts_with("the current settings' image")),
        "{kept:?}"
    );
    assert!(plan.total() > 0);
    lab.engine.clear_log();
    let again = prune::plan(&lab.engine, Some(&current))
        .await
        .expect("plan");
    assert_eq!(again, plan, "planning twice sees the same");
    assert!(lab.engine.mutations().is_empty(), "a plan changes nothing");

    // The prune: the old image and the stages go, the rest stays.
    let mut removed = Vec::new();
    prune::execute(&lab.engine, &plan, &mut |r| removed.push(r.id.clone()))
        .await
        .expect("prune");
    assert_eq!(removed.len(), 5);
    for tag in [&running, &stopped, &current] {
        assert!(lab.engine.image_info(tag).is_some(), "{tag} was removed");
    }
    assert!(
        lab.engine.image_info(&old).is_none(),
        "{old} is still there"
    );
    assert!(stages(&lab.engine).await.is_empty());
    assert!(lab.engine.image_info("debian:bookworm-slim").is_some());
    // Every container still has its image.
    for name in lab.engine.container_names() {
        let c = lab.engine.container(&name).expect("listed");
        assert!(lab.engine.image_info(&c.image_id).is_some(), "{name}");
    }
    let after = prune::plan(&lab.engine, Some(&current))
        .await
        .expect("plan");
    assert!(after.remove.is_empty(), "{after:?}");

    // --all: the current one goes too, as no container uses it; the
    // stopped cluster's image still stays.
    let all = prune::plan(&lab.engine, None).await.expect("plan --all");
    let ids: Vec<&str> = all.remove.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(ids, vec![current.as_str()]);
    prune::execute(&lab.engine, &all, &mut |_| {})
        .await
        .expect("prune --all");
    assert!(lab.engine.image_info(&current).is_none());
    assert!(lab.engine.image_info(&stopped).is_some());
    assert!(lab.engine.image_info(&running).is_some());
}

#[tokio::test]
async fn prune_refuses_an_image_a_container_took_meanwhile_and_says_which() {
    use sparkbox::ops::prune;
    let (lab, [_, _, current, old]) = prune_lab().await;
    let plan = prune::plan(&lab.engine, Some(&current))
        .await
        .expect("plan");
    // Between the plan and the removal, someone makes a container of it.
    lab.engine
        .create_network("elsewhere", Default::default())
        .await
        .expect("network");
    let spec = sparkbox::engine::ContainerSpec {
        name: "someone".into(),
        image: old.clone(),
        network: "elsewhere".into(),
        ..Default::default()
    };
    lab.engine.create_container(&spec).await.expect("container");
    let mut removed = Vec::new();
    let err = prune::execute(&lab.engine, &plan, &mut |r| removed.push(r.name.clone()))
        .await
        .expect_err("the engine refuses");
    let text = err.to_string();
    assert!(matches!(err, Error::InUse { .. }), "{err:?}");
    assert!(text.contains(&old), "{text}");
    assert!(text.contains("used by someone"), "{text}");
    assert!(text.contains("must force"), "the engine's words: {text}");
    // The others went anyway; the image stays.
    assert_eq!(removed.len(), 4, "{removed:?}");
    assert!(lab.engine.image_info(&old).is_some());
}

#[tokio::test]
async fn doctor_reports_what_prune_would_free() {
    use sparkbox::ops::{doctor, prune};
    let (lab, [_, _, current, _]) = prune_lab().await;
    let plan = prune::plan(&lab.engine, Some(&current))
        .await
        .expect("plan");
    let finding = doctor::reclaim_finding(&plan, "sparkbox image prune");
    assert!(
        finding
            .text
            .starts_with("images: 1 sparkbox image and 4 build stages ("),
        "{}",
        finding.text
    );
    assert!(
        finding
            .text
            .ends_with("no cluster uses — `sparkbox image prune` frees them"),
        "{}",
        finding.text
    );
    prune::execute(&lab.engine, &plan, &mut |_| {})
        .await
        .expect("prune");
    let after = prune::plan(&lab.engine, Some(&current))
        .await
        .expect("plan");
    assert!(doctor::reclaim_finding(&after, "sparkbox image prune")
        .text
        .contains("nothing to prune"));
}

/// A swarm node of the fake: `id` is also its hostname's tail.
fn fake_node(id: &str, manager: bool) -> sparkbox::engine::SwarmNode {
    sparkbox::engine::SwarmNode {
        id: id.to_string(),
        hostname: format!("host-{id}"),
        role: if manager { "manager" } else { "worker" }.to_string(),
        ready: true,
        state: "ready, active".to_string(),
        address: String::new(),
        labels: Default::default(),
        is_self: manager,
    }
}

#[tokio::test]
async fn a_data_directory_missing_on_a_swarm_node_is_named_before_anything_starts() {
    let (remote, image) = pushed_image("swarm-path-src").await;
    let lab = Lab::new("swarm-path");
    lab.engine.publish(&remote, image);
    lab.engine
        .set_swarm_nodes(vec![fake_node("m", true), fake_node("a", false)]);
    let data = lab.data.path().join("data");
    lab.engine
        .set_path_missing("a", &data.display().to_string());
    let mut args = lab.args_with_registry(FAKE_REGISTRY);
    args.workers = Some(2);
    args.swarm = true;
    let err = lab.up(&args).await.expect_err("a node lacks /data");
    let text = err.to_string();
    assert!(
        text.contains("host-a")
            && !text.contains("host-m")
            && text.contains(&data.display().to_string()),
        "{text}"
    );
    assert_eq!(err.exit_code(), 11);
    // Nothing of the cluster started; the network may stand (the next up uses it).
    assert!(
        lab.engine.container_names().is_empty(),
        "{:?}",
        lab.engine.container_names()
    );
    // A node that runs nothing of the cluster (drained) is not asked for it.
    let mut drained = fake_node("a", false);
    drained.ready = false;
    drained.state = "ready, drain".to_string();
    lab.engine
        .set_swarm_nodes(vec![fake_node("m", true), drained]);
    args.workers = Some(1);
    lab.up(&args)
        .await
        .expect("the node without /data runs nothing");
    lab.assert_ready(1).await;
}
