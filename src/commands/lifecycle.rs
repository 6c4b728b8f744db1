//! `sparkbox ls`, `stop`, `start` and `scale`: parse, call the operation, print.

use crate::cli::{LsArgs, ScaleArgs, StartArgs, StopArgs};
use crate::engine::Connection;
use crate::error::{Error, Result};
use crate::ops::lifecycle;
use crate::progress::Progress;
use crate::settings::Config;

/// `sparkbox ls`.
pub async fn ls(conn: &Connection, args: LsArgs) -> Result<()> {
    let engine = conn.engine().await?;
    let lines = lifecycle::ls(&engine).await?;
    if args.json {
        let text = serde_json::to_string_pretty(&lines)
            .map_err(|e| Error::Io(format!("cannot render the list: {e}")))?;
        println!("{text}");
        return Ok(());
    }
    if lines.is_empty() {
        println!("no sparkbox clusters on this engine — `sparkbox up` makes one");
        return Ok(());
    }
    println!(
        "{:<20} {:<8} {:>7} {:>9}  urls",
        "cluster", "state", "workers", "running"
    );
    for l in &lines {
        println!(
            "{:<20} {:<8} {:>7} {:>9}  {} {}",
            l.name,
            l.state,
            l.workers,
            format!("{}/{}", l.running, l.containers),
            l.master_ui.as_deref().unwrap_or(""),
            l.jupyter.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

/// `sparkbox nodes`: the swarm's nodes, each with what runs on it.
pub async fn nodes(conn: &Connection, args: LsArgs) -> Result<()> {
    let engine = conn.engine().await?;
    let lines = crate::ops::status::swarm_nodes(&engine).await?;
    if args.json {
        let text = serde_json::to_string_pretty(&lines)
            .map_err(|e| Error::Io(format!("cannot render the nodes: {e}")))?;
        println!("{text}");
        return Ok(());
    }
    println!(
        "{:<24} {:<8} {:<16} {:<15} {:<8} sparkbox containers",
        "node", "role", "state", "address", "label"
    );
    for l in &lines {
        println!(
            "{:<24} {:<8} {:<16} {:<15} {:<8} {}",
            format!("{}{}", l.node, if l.this_engine { " *" } else { "" }),
            l.role,
            l.state,
            l.address,
            l.placement.as_deref().unwrap_or("-"),
            if l.containers.is_empty() {
                "-".to_string()
            } else {
                l.containers.join(", ")
            }
        );
    }
    Ok(())
}

/// `sparkbox stop`: containers and volumes stay; `start` brings them back.
pub async fn stop(
    conn: &Connection,
    args: StopArgs,
    config: &Config,
    progress: &Progress,
) -> Result<()> {
    let cluster = &config.cluster_name(&args.name)?;
    let engine = conn.engine().await?;
    let stopped = lifecycle::stop(&engine, cluster, progress).await?;
    println!(
        "stopped cluster {cluster}: {stopped} containers (containers and volumes kept; `sparkbox start -n {cluster}` brings them back)"
    );
    Ok(())
}

/// `sparkbox start`: master first, then the rest once it listens, then the
/// same readiness and parity checks as `up`.
pub async fn start(
    conn: &Connection,
    args: StartArgs,
    config: &Config,
    progress: &Progress,
) -> Result<()> {
    let cluster = &config.cluster_name(&args.name)?;
    let timeout = config.timeout(args.timeout);
    let engine = conn.engine().await?;
    let s = lifecycle::start(&engine, cluster, timeout, progress).await?;
    println!(
        "cluster {cluster} is ready ({:.1}s): {w}/{w} workers alive; versions identical in {} containers",
        s.elapsed_s,
        s.containers,
        w = s.workers
    );
    Ok(())
}

/// `sparkbox scale`: adds or removes workers only.
pub async fn scale(
    conn: &Connection,
    args: ScaleArgs,
    config: &Config,
    progress: &Progress,
) -> Result<()> {
    let cluster = &config.cluster_name(&args.name)?;
    crate::model::spec::validate_workers(args.workers)?;
    let timeout = config.timeout(args.timeout);
    let engine = conn.engine().await?;
    match lifecycle::scale(&engine, cluster, args.workers, timeout, progress).await? {
        None => println!(
            "cluster {cluster} already has {} workers; nothing to do",
            args.workers
        ),
        Some(s) => println!(
            "cluster {cluster} scaled to {} workers ({:.1}s); master, Jupyter and the remaining workers untouched",
            s.workers, s.elapsed_s
        ),
    }
    Ok(())
}
