//! A plan: the list of engine calls `up` will make, each with its cause.

pub mod desired;
pub mod execute;
pub mod observe;
pub mod place;
pub mod ports;
pub mod reconcile;
pub mod settle;
pub mod wait;

use std::fmt;

use crate::engine::ContainerSpec;

/// Why a step is in the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The object does not exist.
    NotFound,
    /// It exists with another configuration.
    ConfigChanged,
    /// It exists but is not running.
    Stopped,
    /// It is above the wanted worker count.
    ScaleDown,
    /// The master it registers with is being replaced.
    MasterReplaced,
    /// An optional service the settings no longer ask for.
    NotWanted,
    /// The user asked for it to be made anew (`up --recreate`).
    Requested,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cause::NotFound => "not found",
            Cause::ConfigChanged => "config changed",
            Cause::Stopped => "stopped",
            Cause::ScaleDown => "scale down",
            Cause::MasterReplaced => "master replaced",
            Cause::NotWanted => "not asked for",
            Cause::Requested => "asked to recreate",
        })
    }
}

/// The stages of execution, in order; steps of one stage may run in parallel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Build the image.
    Image,
    /// Network and volumes.
    Infrastructure,
    /// Remove what must go.
    Removal,
    /// The master.
    Master,
    /// The workers, in parallel.
    Workers,
    /// Jupyter.
    Jupyter,
    /// History server and Spark Connect server, once the master listens.
    Services,
}

/// One engine call.
#[derive(Debug, Clone)]
pub enum Action {
    /// Build the image with this tag.
    BuildImage(String),
    /// Create the network.
    CreateNetwork(String),
    /// Create a volume.
    CreateVolume(String),
    /// Remove a container.
    RemoveContainer(String),
    /// Create and start a container.
    CreateContainer(Box<ContainerSpec>),
    /// Start an existing container.
    StartContainer(String),
}

/// One step of a plan.
#[derive(Debug, Clone)]
pub struct Step {
    /// When it runs.
    pub stage: Stage,
    /// What it does.
    pub action: Action,
    /// Why.
    pub cause: Cause,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (verb, object) = match &self.action {
            Action::BuildImage(tag) => ("build image", tag.as_str()),
            Action::CreateNetwork(n) => ("create network", n.as_str()),
            Action::CreateVolume(n) => ("create volume", n.as_str()),
            Action::RemoveContainer(n) => ("remove container", n.as_str()),
            Action::CreateContainer(spec) => ("create container", spec.name.as_str()),
            Action::StartContainer(n) => ("start container", n.as_str()),
        };
        write!(f, "{verb} {object} ({})", self.cause)
    }
}

/// The ordered steps that bring a cluster to its desired state.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The steps, sorted by stage.
    pub steps: Vec<Step>,
}

impl Plan {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The steps of one stage.
    pub fn stage(&self, stage: Stage) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(move |s| s.stage == stage)
    }

    /// True when the plan touches the master or any worker.
    pub fn touches_spark(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s.stage, Stage::Master | Stage::Workers | Stage::Services))
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.steps.is_empty() {
            return writeln!(f, "nothing to do: the cluster matches the desired state");
        }
        for (i, step) in self.steps.iter().enumerate() {
            writeln!(f, "{:>2}. {step}", i + 1)?;
        }
        Ok(())
    }
}
