//! Runs a plan in dependency order — image, network and volumes, removals,
//! master, workers in parallel, Jupyter — and reports progress. It makes no
//! decisions: those were made by `reconcile`.

use std::time::Instant;

use futures_util::future::try_join_all;

use crate::engine::Engine;
use crate::error::Result;
use crate::image::{self, BuildSettings, ImageRecipe};
use crate::plan::{Action, Plan, Stage, Step};
use crate::progress::Progress;
use crate::services;
use crate::spec::Names;
use crate::wait;

/// What execution needs besides the plan.
pub struct Context<'a> {
    /// The cluster name.
    pub cluster: &'a str,
    /// The image recipe (for a build step).
    pub recipe: &'a ImageRecipe,
    /// Host settings for a build step.
    pub settings: &'a BuildSettings,
    /// When readiness waits give up.
    pub deadline: Instant,
}

async fn run_step<E: Engine>(
    engine: &E,
    step: &Step,
    ctx: &Context<'_>,
    progress: &Progress,
) -> Result<()> {
    tracing::info!("{step}");
    match &step.action {
        Action::BuildImage(_) => {
            image::ensure_image(engine, ctx.recipe, ctx.settings, progress).await?;
        }
        Action::CreateNetwork(name) => {
            engine
                .create_network(name, services::cluster_labels(ctx.cluster))
                .await?
        }
        Action::CreateVolume(name) => {
            engine
                .create_volume(name, services::cluster_labels(ctx.cluster))
                .await?
        }
        Action::RemoveContainer(name) => engine.remove_container(name).await?,
        Action::CreateContainer(spec) => {
            engine.create_container(spec).await?;
            engine.start_container(&spec.name).await?;
        }
        Action::StartContainer(name) => engine.start_container(name).await?,
    }
    Ok(())
}

async fn run_stage<E: Engine>(
    engine: &E,
    plan: &Plan,
    stage: Stage,
    ctx: &Context<'_>,
    progress: &Progress,
) -> Result<()> {
    let steps: Vec<&Step> = plan.stage(stage).collect();
    if steps.is_empty() {
        return Ok(());
    }
    for step in &steps {
        progress.phase(&step.to_string());
    }
    if stage == Stage::Image || stage == Stage::Infrastructure {
        for step in steps {
            run_step(engine, step, ctx, progress).await?;
        }
        return Ok(());
    }
    try_join_all(
        steps
            .into_iter()
            .map(|s| run_step(engine, s, ctx, progress)),
    )
    .await?;
    Ok(())
}

/// Executes `plan` against `engine`.
pub async fn execute<E: Engine>(
    engine: &E,
    plan: &Plan,
    ctx: &Context<'_>,
    progress: &Progress,
) -> Result<()> {
    let names = Names::new(ctx.cluster);
    for stage in [
        Stage::Image,
        Stage::Infrastructure,
        Stage::Removal,
        Stage::Master,
    ] {
        run_stage(engine, plan, stage, ctx, progress).await?;
    }
    let workers_to_start = plan.stage(Stage::Workers).next().is_some();
    if workers_to_start {
        // A worker started before the master listens backs off for seconds.
        wait::wait_master_listening(engine, ctx.cluster, &names.master(), ctx.deadline, progress)
            .await?;
    }
    // Jupyter does not depend on the workers: start both together.
    let (workers, jupyter) = tokio::join!(
        run_stage(engine, plan, Stage::Workers, ctx, progress),
        run_stage(engine, plan, Stage::Jupyter, ctx, progress)
    );
    workers?;
    jupyter?;
    Ok(())
}
