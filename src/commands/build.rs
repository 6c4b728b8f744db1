//! `sparkbox build`, `sparkbox image base|tag`, `sparkbox versions`.

use std::time::Instant;

use crate::cli::{BuildArgs, ImageArgs};
use crate::engine::{Connection, Engine};
use crate::error::Result;
use crate::image;
use crate::image::base;
use crate::model::versions::{self, VERSION_KEYS};
use crate::progress::Progress;
use crate::settings::Config;

/// `sparkbox build`.
pub async fn run(
    conn: &Connection,
    args: BuildArgs,
    config: &Config,
    progress: &Progress,
) -> Result<()> {
    let started = Instant::now();
    let image = config.image_settings(&args.image);
    let recipe = image.recipe()?;
    let settings = image.build_settings(args.force, args.no_cache)?;
    // A user-given CA bundle is checked before anything slow happens.
    image::find_ca_bundle(settings.ca_bundle.as_deref())?;
    let engine = conn.engine().await?;
    let built = image::ensure_image(&engine, &recipe, &settings, progress).await?;
    progress.finish();
    if built.built {
        println!(
            "built {} ({}) in {:.1}s",
            built.tag,
            image::human_size(built.size),
            started.elapsed().as_secs_f64()
        );
        print_measured(&built.versions);
    } else if built.pulled {
        println!(
            "pulled {} in {:.1}s ({}); nothing to build",
            built.tag,
            started.elapsed().as_secs_f64(),
            built.digest.as_deref().unwrap_or("no digest")
        );
        print_measured(&built.versions);
    } else {
        println!(
            "{} is up to date (Spark {}); nothing to build — pass --force to rebuild",
            built.tag, recipe.entry.spark
        );
    }
    Ok(())
}

fn print_measured(measured: &versions::Versions) {
    for key in VERSION_KEYS {
        println!("  {key:<11} {}", measured.get(key).unwrap_or("?"));
    }
    for (name, v) in &measured.extra {
        println!("  {name:<11} {v}");
    }
}

/// `sparkbox image base`.
pub async fn run_base(
    conn: &Connection,
    base_image: Option<String>,
    debian_mirror: Option<String>,
    progress: &Progress,
) -> Result<()> {
    let reference =
        base_image.unwrap_or_else(|| crate::model::recipe::DEFAULT_BASE_IMAGE.to_string());
    let engine = conn.engine().await?;
    base::ensure_base_image(&engine, &reference, debian_mirror.as_deref(), progress).await?;
    progress.finish();
    println!("base image {reference} is present");
    Ok(())
}

/// `sparkbox image tag`.
pub async fn run_tag(conn: &Connection, args: ImageArgs, config: &Config) -> Result<()> {
    let recipe = config.image_settings(&args).recipe()?;
    let tag = recipe.tag();
    let engine = conn.engine().await?;
    let present = engine.image(&tag).await?.is_some();
    println!("{tag} {}", if present { "present" } else { "missing" });
    Ok(())
}

/// `sparkbox versions`.
pub fn print_versions() {
    for (i, entry) in versions::MATRIX.iter().enumerate() {
        let default = if i == 0 { " (default)" } else { "" };
        println!("Spark {}{default}", entry.spark);
        let expected = entry.expected();
        for key in VERSION_KEYS {
            println!("  {key:<11} {}", expected.get(key).unwrap_or("?"));
        }
    }
}
