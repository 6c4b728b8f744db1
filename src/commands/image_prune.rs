//! `sparkbox image prune`: removes the sparkbox images and build stages no
//! container uses, keeping the current settings' image unless `--all` (the
//! choice and the removals are [`crate::ops::prune`]'s).

use crate::cli::PruneArgs;
use crate::engine::Connection;
use crate::error::Result;
use crate::image::human_size;
use crate::ops::prune::{self, Kind, PrunePlan};
use crate::settings::Config;

/// `sparkbox image prune [--all] [--dry-run]`.
pub async fn run(conn: &Connection, args: PruneArgs, config: &Config) -> Result<()> {
    let current = if args.all {
        None
    } else {
        Some(config.image_settings(&args.image).recipe()?.tag())
    };
    let engine = conn.engine().await?;
    let plan = prune::plan(&engine, current.as_deref()).await?;
    for kept in &plan.kept {
        println!("kept    {} — {}", kept.name, kept.reason);
    }
    if plan.remove.is_empty() {
        println!("nothing to prune: no sparkbox image or build stage is unused");
        return Ok(());
    }
    if args.dry_run {
        for r in &plan.remove {
            println!("would remove {}  {}", r.name, human_size(r.frees));
        }
        println!(
            "would reclaim {} ({}) — run without --dry-run to remove them",
            human_size(plan.total()),
            counted(&plan)
        );
        return Ok(());
    }
    let mut reclaimed = 0;
    let mut install_step = false;
    let result = prune::execute(&engine, &plan, &mut |r| {
        println!("removed {}  {}", r.name, human_size(r.frees));
        reclaimed += r.frees;
        install_step |= r.kind == Kind::Stage && r.references.iter().all(|x| x == &r.id);
    })
    .await;
    println!("reclaimed {}", human_size(reclaimed));
    if install_step {
        println!("note: the next build of a new image redoes its install step (a few minutes)");
    }
    result
}

/// "2 images, 1 build stage".
fn counted(plan: &PrunePlan) -> String {
    let (images, stages) = plan.counts();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    match (images, stages) {
        (i, 0) => plural(i, "image"),
        (0, s) => plural(s, "build stage"),
        (i, s) => format!("{}, {}", plural(i, "image"), plural(s, "build stage")),
    }
}
