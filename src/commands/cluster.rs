//! `sparkbox up`, `status` and `down`: parse, call the operation, print.

use crate::cli::{DownArgs, StatusArgs, UpArgs};
use crate::engine::Connection;
use crate::error::{Error, Result};
use crate::image;
use crate::ops::bundle;
use crate::ops::lifecycle;
use crate::ops::parity::ParityReport;
use crate::ops::ready::parity_error;
use crate::ops::status::{self, StatusReport};
use crate::ops::up::{self, UpDone, UpOutcome};
use crate::ops::urls::Urls;
use crate::progress::Progress;
use crate::settings::{Config, Settings};

/// `sparkbox up`.
pub async fn up(
    conn: &Connection,
    args: UpArgs,
    config: &Config,
    progress: &Progress,
) -> Result<()> {
    // What can be checked without an engine is, before one is asked. The
    // settings as flags and file give them are checked too, but the verdict
    // waits for the cluster's record when the engine answers: a check across
    // settings may pass with what the existing cluster was made with.
    let cluster = config.cluster_name(&args.cluster.name)?;
    let alone = Settings::resolve(config, &args.cluster).and_then(|s| s.spec().map(|_| ()));
    image::find_ca_bundle(
        config
            .image_settings(&args.cluster.image)
            .ca_bundle
            .as_deref(),
    )?;
    if let Some(dir) = &args.bundle_on_failure {
        // A directory the bundle could not go into is refused now, not after a failure.
        bundle::check_dir(dir)?;
    }
    let engine = match conn.engine().await {
        Ok(engine) => engine,
        // No engine, so no record: the settings are judged as given.
        Err(e) => return Err(alone.err().unwrap_or(e)),
    };
    // Every failure from here on happened on the engine: the one place a
    // diagnostics bundle is written for it (Ctrl-C drops this future instead).
    let options = up::UpOptions {
        dry_run: args.dry_run,
        recreate: args.recreate.clone(),
    };
    let result = up::up_with(&engine, config, &args.cluster, &options, progress).await;
    match result {
        Ok(UpOutcome::DryRun {
            cluster,
            plan,
            notes,
        }) => {
            println!("plan for cluster {cluster} (dry run, nothing changed):");
            print!("{plan}");
            for note in &notes {
                println!("note: {note}");
            }
            Ok(())
        }
        Ok(UpOutcome::Ready(done)) => print_ready(&done, args.json),
        Err(e) => {
            // A refused value changed nothing on the engine: no bundle for it.
            let on_engine = !matches!(
                e,
                Error::InvalidInput(_) | Error::UnknownSparkVersion { .. }
            );
            if let (Some(dir), true) = (&args.bundle_on_failure, on_engine) {
                bundle::after_failure(&engine, &cluster, dir, progress).await;
            }
            Err(e)
        }
    }
}

fn print_ready(done: &UpDone, json: bool) -> Result<()> {
    if let Some(warning) = &done.exposure {
        eprintln!("{warning}");
    }
    let r = &done.report;
    if json {
        let text = serde_json::to_string_pretty(r)
            .map_err(|e| Error::Io(format!("cannot render the result: {e}")))?;
        println!("{text}");
        return Ok(());
    }
    let verdict = if r.changed {
        "is ready"
    } else {
        "is up to date, nothing changed"
    };
    println!(
        "cluster {} {verdict} ({:.1}s): {wanted}/{wanted} workers alive, {} cores, {} MiB; versions identical in {} containers (Spark {}, Python {}, Java {})",
        r.cluster,
        r.elapsed_s,
        done.master.cores,
        done.master.memory,
        done.containers,
        r.versions.get("spark").unwrap_or("?"),
        r.versions.get("python").unwrap_or("?"),
        r.versions.get("java").unwrap_or("?"),
        wanted = r.workers.wanted,
    );
    if done.students > 0 {
        println!(
            "  Students    {} Jupyter servers, each with its own token and notebooks — `sparkbox roster -n {}` lists them",
            done.students, r.cluster
        );
    }
    print_urls(&r.urls, &r.master_url);
    Ok(())
}

/// `sparkbox status`: exit 0 when ready, 8 on a version mismatch, 7 otherwise.
pub async fn status(conn: &Connection, args: StatusArgs, config: &Config) -> Result<()> {
    let cluster = config.cluster_name(&args.name)?;
    let engine = conn.engine().await?;
    let report = status::collect(&engine, &cluster).await?;
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
            "cluster {} is {other}: {}/{} workers alive — `sparkbox up -n {}` restores it as it was made",
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
    let on_swarm = !r.nodes.is_empty();
    let node_column = |node: &str| {
        if on_swarm {
            format!("{node:<14} ")
        } else {
            String::new()
        }
    };
    println!(
        "{:<24} {:<8} {:<8} {:<10} {:<12} {}url",
        "container",
        "role",
        "state",
        "health",
        "versions",
        node_column("node")
    );
    for c in &r.containers {
        println!(
            "{:<24} {:<8} {:<8} {:<10} {:<12} {}{}",
            c.name,
            c.role,
            c.state,
            c.health.as_deref().unwrap_or("-"),
            match c.versions.as_str() {
                "different" => "DIFFERENT",
                other => other,
            },
            node_column(c.node.as_deref().unwrap_or("-")),
            c.url.as_deref().unwrap_or("")
        );
        if on_swarm && c.state != "running" {
            println!("    {}", c.status);
        }
    }
    for n in &r.nodes {
        println!(
            "node {} ({}, {}): {}",
            n.node,
            n.role,
            n.state,
            if n.containers.is_empty() {
                "nothing of this cluster".to_string()
            } else {
                n.containers.join(", ")
            }
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

/// `sparkbox down`.
pub async fn down(
    conn: &Connection,
    args: DownArgs,
    config: &Config,
    progress: &Progress,
) -> Result<()> {
    let cluster = &config.cluster_name(&args.name)?;
    let engine = conn.engine().await?;
    let Some(removed) = lifecycle::down(&engine, cluster, args.volumes, progress).await? else {
        println!("cluster {cluster} does not exist; nothing to remove");
        return Ok(());
    };
    println!(
        "removed cluster {cluster}: {} containers, {} network(s){}",
        removed.containers,
        removed.networks,
        if args.volumes {
            format!(", {} volume(s)", removed.volumes.len())
        } else {
            String::new()
        }
    );
    if !removed.kept.is_empty() {
        println!(
            "kept volume(s) {} — your notebooks are there for the next `up`; `sparkbox down -n {cluster} --volumes` deletes them",
            removed.kept.join(", ")
        );
    }
    Ok(())
}
