//! The pure heart of `up`: desired state × observed state → plan. No I/O.

use std::collections::BTreeSet;

use crate::engine::{ContainerSpec, ContainerState};
use crate::model::labels::Labelled;
use crate::model::spec::Role;
use crate::plan::desired::Desired;
use crate::plan::observe::Observed;
use crate::plan::{Action, Cause, Plan, Stage, Step};

fn hash(labels_map: &std::collections::HashMap<String, String>) -> Option<&str> {
    Labelled(labels_map).config_hash()
}

/// Steps for one container: create it, replace it, start it, or nothing.
/// Returns whether the container gets (re)created.
fn converge(
    steps: &mut Vec<Step>,
    stage: Stage,
    want: &ContainerSpec,
    have: Option<&ContainerState>,
    force_replace: Option<Cause>,
) -> bool {
    let create = |cause| Step {
        stage,
        action: Action::CreateContainer(Box::new(want.clone())),
        cause,
    };
    match have {
        None => {
            steps.push(create(Cause::NotFound));
            true
        }
        Some(c) => {
            let changed = hash(&c.labels) != hash(&want.labels) || c.name != want.name;
            let cause = if changed {
                Some(Cause::ConfigChanged)
            } else {
                force_replace
            };
            if let Some(cause) = cause {
                steps.push(Step {
                    stage: Stage::Removal,
                    action: Action::RemoveContainer(c.name.clone()),
                    cause,
                });
                steps.push(create(cause));
                true
            } else if !c.is_running() {
                steps.push(Step {
                    stage,
                    action: Action::StartContainer(c.name.clone()),
                    cause: Cause::Stopped,
                });
                false
            } else {
                false
            }
        }
    }
}

/// What a plan may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything: `up`.
    All,
    /// Workers only, and only their count (`scale`): missing workers are
    /// made, stopped ones started, those above the count removed; a worker
    /// whose settings differ is left as it is, and nothing else is touched.
    WorkerCount,
}

/// The plan that turns `observed` into `desired`, within `scope`.
pub fn reconcile(desired: &Desired, observed: &Observed, scope: Scope) -> Plan {
    match scope {
        Scope::All => reconcile_all(desired, observed, &BTreeSet::new()),
        Scope::WorkerCount => worker_count(desired, observed),
    }
}

fn worker_count(desired: &Desired, observed: &Observed) -> Plan {
    let have_workers = observed.workers();
    let mut steps = Vec::new();
    for (n, want) in &desired.workers {
        match have_workers.get(n) {
            None => steps.push(Step {
                stage: Stage::Workers,
                action: Action::CreateContainer(Box::new(want.clone())),
                cause: Cause::NotFound,
            }),
            Some(have) if !have.is_running() => steps.push(Step {
                stage: Stage::Workers,
                action: Action::StartContainer(have.name.clone()),
                cause: Cause::Stopped,
            }),
            Some(_) => {}
        }
    }
    scale_down(&mut steps, desired, &have_workers);
    steps.sort_by_key(|s| s.stage);
    Plan { steps }
}

/// Removes the workers above the wanted count, highest numbers first, so a
/// partial scale-down leaves a dense range.
fn scale_down(
    steps: &mut Vec<Step>,
    desired: &Desired,
    have_workers: &std::collections::BTreeMap<u32, &ContainerState>,
) {
    for (n, have) in have_workers.iter().rev() {
        if !desired.workers.contains_key(n) {
            steps.push(Step {
                stage: Stage::Removal,
                action: Action::RemoveContainer(have.name.clone()),
                cause: Cause::ScaleDown,
            });
        }
    }
}

/// The plan of [`Scope::All`] that also makes the containers named in
/// `recreate` anew (`up --recreate`), as they are wanted now.
pub fn reconcile_recreating(
    desired: &Desired,
    observed: &Observed,
    recreate: &BTreeSet<String>,
) -> Plan {
    reconcile_all(desired, observed, recreate)
}

fn reconcile_all(desired: &Desired, observed: &Observed, recreate: &BTreeSet<String>) -> Plan {
    let asked = |want: &ContainerSpec| recreate.contains(&want.name).then_some(Cause::Requested);
    let mut steps = Vec::new();
    if !observed.image_present {
        steps.push(Step {
            stage: Stage::Image,
            action: Action::BuildImage(desired.image_tag.clone()),
            cause: Cause::NotFound,
        });
    }
    if !observed.networks.contains(&desired.network) {
        steps.push(Step {
            stage: Stage::Infrastructure,
            action: Action::CreateNetwork(desired.network.clone()),
            cause: Cause::NotFound,
        });
    }
    for volume in &desired.volumes {
        if !observed.volumes.contains(volume) {
            steps.push(Step {
                stage: Stage::Infrastructure,
                action: Action::CreateVolume(volume.clone()),
                cause: Cause::NotFound,
            });
        }
    }

    let master_new = converge(
        &mut steps,
        Stage::Master,
        &desired.master,
        observed.master(),
        asked(&desired.master),
    );
    // Workers registered with a replaced master are replaced with it.
    let worker_cause = (master_new && observed.master().is_some()).then_some(Cause::MasterReplaced);
    let have_workers = observed.workers();
    for (n, want) in &desired.workers {
        converge(
            &mut steps,
            Stage::Workers,
            want,
            have_workers.get(n).copied(),
            asked(want).or(worker_cause),
        );
    }
    scale_down(&mut steps, desired, &have_workers);
    let have_jupyters = observed.jupyters();
    let jupyter_index = |c: &ContainerSpec| -> u32 { Labelled(&c.labels).index().unwrap_or(0) };
    for want in &desired.jupyters {
        converge(
            &mut steps,
            Stage::Jupyter,
            want,
            have_jupyters.get(&jupyter_index(want)).copied(),
            asked(want),
        );
    }
    for (n, have) in &have_jupyters {
        if !desired.jupyters.iter().any(|w| jupyter_index(w) == *n) {
            steps.push(Step {
                stage: Stage::Removal,
                action: Action::RemoveContainer(have.name.clone()),
                cause: Cause::NotWanted,
            });
        }
    }
    // A driver of a replaced master is replaced with it (its application
    // would be lost); the history server does not care.
    let have_extras: Vec<&ContainerState> = observed.extras().collect();
    for want in &desired.extras {
        let have = have_extras.iter().find(|c| c.name == want.name).copied();
        let is_driver = Labelled(&want.labels).role() == Some(Role::Connect);
        converge(
            &mut steps,
            Stage::Services,
            want,
            have,
            asked(want).or(worker_cause.filter(|_| is_driver)),
        );
    }
    for have in have_extras {
        if !desired.extras.iter().any(|w| w.name == have.name) {
            steps.push(Step {
                stage: Stage::Removal,
                action: Action::RemoveContainer(have.name.clone()),
                cause: Cause::NotWanted,
            });
        }
    }
    steps.sort_by_key(|s| s.stage);
    Plan { steps }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::labels;
    use crate::plan::desired::desired;
    use crate::plan::desired::tests::{sample_resolved, sample_spec};
    use std::collections::HashMap;

    fn running(spec: &ContainerSpec) -> ContainerState {
        ContainerState {
            name: spec.name.clone(),
            id: format!("id-{}", spec.name),
            labels: spec.labels.clone(),
            state: "running".into(),
            health: Some("healthy".into()),
            ports: vec![],
            status: "Up".into(),
            created: 0,
            image_id: String::new(),
            node: None,
        }
    }

    fn observed_from(d: &Desired) -> Observed {
        let mut containers = vec![running(&d.master)];
        containers.extend(d.jupyters.iter().map(running));
        containers.extend(d.workers.values().map(running));
        Observed {
            image_present: true,
            networks: vec![d.network.clone()],
            volumes: d.volumes.clone(),
            containers,
        }
    }

    #[test]
    fn fresh_cluster_plan() {
        let d = desired(&sample_spec(3), &sample_resolved(3));
        let plan = reconcile(&d, &Observed::default(), Scope::All);
        insta::assert_snapshot!(plan.to_string(), @r"
         1. build image sparkbox/jupyter-spark:test (not found)
         2. create network demo-net (not found)
         3. create volume demo-notebooks (not found)
         4. create container demo-master (not found)
         5. create container demo-worker-1 (not found)
         6. create container demo-worker-2 (not found)
         7. create container demo-worker-3 (not found)
         8. create container demo-jupyter (not found)
        ");
    }

    #[test]
    fn healthy_cluster_needs_nothing() {
        let d = desired(&sample_spec(2), &sample_resolved(2));
        let plan = reconcile(&d, &observed_from(&d), Scope::All);
        assert!(plan.is_empty(), "{plan}");
        assert_eq!(
            plan.to_string(),
            "nothing to do: the cluster matches the desired state\n"
        );
    }

    #[test]
    fn scaling_up_adds_only_the_new_worker() {
        let two = desired(&sample_spec(2), &sample_resolved(2));
        let three = desired(&sample_spec(3), &sample_resolved(3));
        let plan = reconcile(&three, &observed_from(&two), Scope::All);
        insta::assert_snapshot!(plan.to_string(), @" 1. create container demo-worker-3 (not found)");
    }

    #[test]
    fn scaling_down_removes_the_highest_first() {
        let three = desired(&sample_spec(3), &sample_resolved(3));
        let one = desired(&sample_spec(1), &sample_resolved(1));
        let plan = reconcile(&one, &observed_from(&three), Scope::All);
        insta::assert_snapshot!(plan.to_string(), @r"
         1. remove container demo-worker-3 (scale down)
         2. remove container demo-worker-2 (scale down)
        ");
    }

    #[test]
    fn dead_worker_is_started_and_missing_one_created() {
        let d = desired(&sample_spec(3), &sample_resolved(3));
        let mut obs = observed_from(&d);
        obs.containers.retain(|c| c.name != "demo-worker-3");
        for c in obs
            .containers
            .iter_mut()
            .filter(|c| c.name == "demo-worker-1")
        {
            c.state = "exited".into();
        }
        let plan = reconcile(&d, &obs, Scope::All);
        insta::assert_snapshot!(plan.to_string(), @r"
         1. start container demo-worker-1 (stopped)
         2. create container demo-worker-3 (not found)
        ");
    }

    /// Jupyter is replaced too: its drivers' default executor memory is a
    /// share of a worker's.
    #[test]
    fn changed_worker_config_replaces_workers_not_master() {
        let d = desired(&sample_spec(2), &sample_resolved(2));
        let obs = observed_from(&d);
        let mut spec = sample_spec(2);
        spec.worker_cores = 2;
        let d2 = desired(&spec, &sample_resolved(2));
        let plan = reconcile(&d2, &obs, Scope::All);
        insta::assert_snapshot!(plan.to_string(), @r"
         1. remove container demo-worker-1 (config changed)
         2. remove container demo-worker-2 (config changed)
         3. remove container demo-jupyter (config changed)
         4. create container demo-worker-1 (config changed)
         5. create container demo-worker-2 (config changed)
         6. create container demo-jupyter (config changed)
        ");
    }

    #[test]
    fn optional_services_come_last_and_go_when_not_asked_for() {
        let mut spec = sample_spec(1);
        spec.history = Some(crate::model::spec::PortChoice::Auto(18080));
        spec.connect = Some(crate::model::spec::PortChoice::Auto(15002));
        let mut resolved = sample_resolved(1);
        resolved.history_port = Some(18080);
        resolved.connect_port = Some(15002);
        let with = desired(&spec, &resolved);
        let plan = reconcile(
            &with,
            &observed_from(&desired(&sample_spec(1), &sample_resolved(1))),
            Scope::All,
        );
        insta::assert_snapshot!(plan.to_string(), @r"
         1. create volume demo-events (not found)
         2. remove container demo-jupyter (config changed)
         3. create container demo-jupyter (config changed)
         4. create container demo-history (not found)
         5. create container demo-connect (not found)
        ");
        let mut obs = observed_from(&with);
        obs.containers.extend(with.extras.iter().map(running));
        let without = desired(&sample_spec(1), &sample_resolved(1));
        let plan = reconcile(&without, &obs, Scope::All);
        insta::assert_snapshot!(plan.to_string(), @r"
         1. remove container demo-jupyter (config changed)
         2. remove container demo-history (not asked for)
         3. remove container demo-connect (not asked for)
         4. create container demo-jupyter (config changed)
        ");
    }

    #[test]
    fn replaced_master_takes_its_workers_along() {
        let d = desired(&sample_spec(1), &sample_resolved(1));
        let mut obs = observed_from(&d);
        for c in obs
            .containers
            .iter_mut()
            .filter(|c| c.name == "demo-master")
        {
            c.labels = HashMap::from([
                (labels::ROLE.to_string(), "master".to_string()),
                (labels::CONFIG_HASH.to_string(), "old".to_string()),
            ]);
        }
        let plan = reconcile(&d, &obs, Scope::All);
        insta::assert_snapshot!(plan.to_string(), @r"
         1. remove container demo-master (config changed)
         2. remove container demo-worker-1 (master replaced)
         3. create container demo-master (config changed)
         4. create container demo-worker-1 (master replaced)
        ");
    }
}
