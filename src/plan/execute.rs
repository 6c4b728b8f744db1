//! Runs a plan in dependency order — image, network and volumes, removals,
//! then the master with Jupyter alongside, then the workers in parallel (their
//! daemons wait inside for the master to listen), the optional services once
//! it listens — and reports progress. It makes no
//! decisions: those were made by `reconcile`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::future::try_join_all;

use crate::engine::{Engine, HostPathUse};
use crate::error::{Error, Result};
use crate::image::{self, BuildSettings};
use crate::model::labels;
use crate::model::recipe::ImageRecipe;
use crate::model::spec::Names;
use crate::plan::desired;
use crate::plan::wait;
use crate::plan::{Action, Plan, Stage, Step};
use crate::progress::Progress;

/// What execution needs besides the plan.
pub struct Context<'a> {
    /// The cluster name.
    pub cluster: &'a str,
    /// The image recipe (for a build step).
    pub recipe: &'a ImageRecipe,
    /// Host settings for a build step.
    pub settings: &'a BuildSettings,
    /// How long readiness waits may take, counted from after any build.
    pub timeout: Duration,
    /// Services on a swarm: the network is an overlay, and the image is
    /// pushed to the registry so every node pulls it by digest.
    pub swarm: bool,
}

/// Labels stamped on each new container by its image: which build of the
/// image it runs (its ID, and its registry digest when a registry knows it).
type Stamps = HashMap<String, HashMap<String, String>>;

/// The stamps for the images the plan's new containers use, read once the
/// image stage is done.
async fn image_stamps<E: Engine>(
    engine: &E,
    plan: &Plan,
    ctx: &Context<'_>,
    progress: &Progress,
) -> Result<Stamps> {
    let mut stamps = Stamps::new();
    for step in &plan.steps {
        let Action::CreateContainer(spec) = &step.action else {
            continue;
        };
        if stamps.contains_key(&spec.image) {
            continue;
        }
        let mut labels_map = HashMap::new();
        if let Some(info) = engine.image(&spec.image).await? {
            labels_map.insert(labels::IMAGE_ID.to_string(), info.id.clone());
            let mut digest = image::digest_of(&info.repo_digests, ctx.settings.registry.as_ref());
            if ctx.swarm && digest.is_none() {
                if let Some(registry) = &ctx.settings.registry {
                    digest =
                        Some(image::registry::push(engine, registry, &spec.image, progress).await?);
                }
            }
            if let Some(d) = digest {
                labels_map.insert(labels::IMAGE_DIGEST.to_string(), d);
            }
        }
        stamps.insert(spec.image.clone(), labels_map);
    }
    Ok(stamps)
}

/// The host directories the plan's new containers mount, each with the
/// constraints of every container that mounts it.
pub fn host_path_uses(plan: &Plan) -> Vec<HostPathUse> {
    let mut uses: Vec<HostPathUse> = Vec::new();
    for step in &plan.steps {
        let Action::CreateContainer(spec) = &step.action else {
            continue;
        };
        for bind in &spec.binds {
            let Some((source, _)) = bind.split_once(':') else {
                continue;
            };
            if !source.starts_with('/') {
                continue;
            }
            match uses.iter_mut().find(|u| u.path == source) {
                Some(u) => u.constraints.push(spec.constraints.clone()),
                None => uses.push(HostPathUse {
                    path: source.to_string(),
                    constraints: vec![spec.constraints.clone()],
                }),
            }
        }
    }
    uses
}

/// On a swarm, before anything starts: the host directories the new
/// services mount exist on every node that may run them.
async fn check_host_paths<E: Engine>(
    engine: &E,
    plan: &Plan,
    ctx: &Context<'_>,
    stamps: &Stamps,
    progress: &Progress,
) -> Result<()> {
    if !ctx.swarm {
        return Ok(());
    }
    let uses = host_path_uses(plan);
    let image = plan.steps.iter().find_map(|s| match &s.action {
        Action::CreateContainer(spec) => stamps
            .get(&spec.image)
            .and_then(|st| st.get(labels::IMAGE_DIGEST))
            .cloned(),
        _ => None,
    });
    let Some(image) = image.filter(|_| !uses.is_empty()) else {
        return Ok(());
    };
    let paths: Vec<&str> = uses.iter().map(|u| u.path.as_str()).collect();
    progress.phase(&format!(
        "checking {} on the swarm's nodes",
        paths.join(", ")
    ));
    engine
        .check_host_paths(ctx.cluster, &image, &uses, ctx.timeout)
        .await
}

/// Whether the container in the way of creating `spec` is the one an
/// earlier `up` asked for — interrupted, it did not see the engine finish
/// the create, and the `up` after it looked too early to see the container:
/// then it is this cluster's, of this role and index, made from these very
/// settings, and is adopted as made (started if need be). Anything else
/// stays a name conflict.
async fn made_by_an_earlier_up<E: Engine>(
    engine: &E,
    cluster: &str,
    spec: &crate::engine::ContainerSpec,
) -> Result<bool> {
    let same = |key: &str, c: &crate::engine::ContainerState| {
        spec.labels.contains_key(key) && c.labels.get(key) == spec.labels.get(key)
    };
    let theirs = engine.containers(&[(labels::CLUSTER, cluster)]).await?;
    Ok(theirs.iter().any(|c| {
        c.name == spec.name
            && [labels::CLUSTER, labels::ROLE, labels::CONFIG_HASH]
                .iter()
                .all(|key| same(key, c))
            && c.labels.get(labels::INDEX) == spec.labels.get(labels::INDEX)
    }))
}

async fn run_step<E: Engine>(
    engine: &E,
    step: &Step,
    ctx: &Context<'_>,
    stamps: &Stamps,
    progress: &Progress,
) -> Result<()> {
    tracing::info!("{step}");
    // Not the build: Ctrl-C stops it at once.
    let _change = match &step.action {
        Action::BuildImage(_) => None,
        _ => Some(crate::interrupt::begin_change()?),
    };
    match &step.action {
        Action::BuildImage(_) => {
            image::ensure_image(engine, ctx.recipe, ctx.settings, progress).await?;
        }
        Action::CreateNetwork(name) => {
            let mut network_labels = desired::cluster_labels(ctx.cluster);
            if ctx.swarm {
                network_labels.insert(labels::ENGINE.into(), labels::ENGINE_SWARM.into());
            }
            engine.create_network(name, network_labels).await?
        }
        Action::CreateVolume(name) => {
            engine
                .create_volume(name, desired::cluster_labels(ctx.cluster))
                .await?
        }
        Action::RemoveContainer(name) => engine.remove_container(name).await?,
        Action::CreateContainer(spec) => {
            let mut spec = spec.clone();
            if let Some(stamp) = stamps.get(&spec.image) {
                spec.labels.extend(stamp.clone());
            }
            match engine.create_container(&spec).await {
                Ok(_) => {}
                Err(e @ Error::NameConflict { .. }) => {
                    if !made_by_an_earlier_up(engine, ctx.cluster, &spec).await? {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
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
    stamps: &Stamps,
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
            run_step(engine, step, ctx, stamps, progress).await?;
        }
        return Ok(());
    }
    try_join_all(
        steps
            .into_iter()
            .map(|s| run_step(engine, s, ctx, stamps, progress)),
    )
    .await?;
    Ok(())
}

/// Executes `plan` against `engine`; returns the deadline for the
/// readiness waits that follow (the timeout, counted from after any build).
pub async fn execute<E: Engine>(
    engine: &E,
    plan: &Plan,
    ctx: &Context<'_>,
    progress: &Progress,
) -> Result<Instant> {
    let names = Names::new(ctx.cluster);
    run_stage(engine, plan, Stage::Image, ctx, &Stamps::new(), progress).await?;
    let stamps = image_stamps(engine, plan, ctx, progress).await?;
    let stamps = &stamps;
    check_host_paths(engine, plan, ctx, stamps, progress).await?;
    // A build has its own pace: the readiness deadline starts after it.
    let deadline = Instant::now() + ctx.timeout;
    for stage in [Stage::Infrastructure, Stage::Removal] {
        run_stage(engine, plan, stage, ctx, stamps, progress).await?;
    }
    // Jupyter needs the master only when a notebook starts Spark, so it
    // starts together with the master and uses the second core while the
    // master's JVM comes up.
    // Workers start with the master: each worker's entrypoint holds its Spark
    // daemon until the master accepts connections (SPARKBOX_WAIT_FOR_MASTER),
    // so none backs off for seconds, and the containers' own start — the
    // engine's work and the entrypoint's — overlaps the master's JVM start.
    // The optional services are drivers or readers of the drivers' logs:
    // they start once the master listens (a driver started earlier waits
    // for seconds before it tries the master again).
    let spark = async {
        run_stage(engine, plan, Stage::Master, ctx, stamps, progress).await?;
        run_stage(engine, plan, Stage::Workers, ctx, stamps, progress).await?;
        if plan.stage(Stage::Services).next().is_some() {
            wait::wait_master_listening(engine, ctx.cluster, &names.master(), deadline, progress)
                .await?;
        }
        run_stage(engine, plan, Stage::Services, ctx, stamps, progress).await
    };
    let (spark, jupyter) = tokio::join!(
        spark,
        run_stage(engine, plan, Stage::Jupyter, ctx, stamps, progress)
    );
    spark?;
    jupyter?;
    Ok(deadline)
}
