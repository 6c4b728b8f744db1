//! `sparkbox image save FILE` and `sparkbox image load FILE`: the image on a
//! USB stick, for machines that can neither build it nor pull it (the file's
//! format is [`crate::image::archive`], the work [`crate::ops::image_io`]).

use std::path::PathBuf;
use std::time::Instant;

use crate::cli::ImageArgs;
use crate::engine::{Connection, Engine};
use crate::error::{Error, Result};
use crate::image;
use crate::ops::image_io::{self, summary};
use crate::progress::Progress;
use crate::settings::Config;

/// `sparkbox image push`.
pub async fn push(
    conn: &Connection,
    args: ImageArgs,
    config: &Config,
    progress: &Progress,
) -> Result<()> {
    let started = Instant::now();
    let settings = config.image_settings(&args);
    let recipe = settings.recipe()?;
    let registry = settings.registry()?.ok_or_else(|| {
        Error::InvalidInput(
            "no registry to push to — pass --registry REG (e.g. 127.0.0.1:5000/sparkbox), set SPARKBOX_REGISTRY, or set [image] registry in sparkbox.toml".into(),
        )
    })?;
    let tag = recipe.tag();
    let engine = conn.engine().await?;
    if engine.image(&tag).await?.is_none() {
        return Err(Error::InvalidInput(format!(
            "the image {tag} is not on this engine, so there is nothing to push — make it with `sparkbox build` (same settings), then push"
        )));
    }
    let digest = image::registry::push(&engine, &registry, &tag, progress).await?;
    progress.finish();
    println!(
        "pushed {tag} to {} in {:.1}s",
        registry.reference_for(&tag),
        started.elapsed().as_secs_f64()
    );
    println!("digest: {digest}");
    println!(
        "other machines get it with `sparkbox up --registry {registry}` (or [image] registry = \"{registry}\")"
    );
    Ok(())
}

/// `sparkbox image save FILE`.
pub async fn save(
    conn: &Connection,
    file: PathBuf,
    args: ImageArgs,
    config: &Config,
    progress: &Progress,
) -> Result<()> {
    let started = Instant::now();
    let recipe = config.image_settings(&args).recipe()?;
    let tag = recipe.tag();
    image_io::check_output_path(&file)?;
    let engine = conn.engine().await?;
    let saved = image_io::save(&engine, &tag, &file, progress).await?;
    println!(
        "saved {tag} to {} in {:.1}s: {}, SHA-256 {}",
        file.display(),
        started.elapsed().as_secs_f64(),
        image::human_size(i64::try_from(saved.bytes).unwrap_or(i64::MAX)),
        &saved.record.sha256[..16]
    );
    println!("  {}", summary(&saved.record.versions));
    println!(
        "on another machine: `sparkbox image load {}`, then `sparkbox up`",
        file.file_name().unwrap_or_default().to_string_lossy()
    );
    Ok(())
}

/// `sparkbox image load FILE`.
pub async fn load(
    conn: &Connection,
    file: PathBuf,
    config: &Config,
    progress: &Progress,
) -> Result<()> {
    let started = Instant::now();
    let record = image_io::check_file(&file, progress).await?;
    let engine = conn.engine().await?;
    let loaded = image_io::load(&engine, &file, &record, progress).await?;
    if loaded.already_present {
        println!(
            "{} is already present (the same image); nothing to load — {} checked",
            record.image,
            file.display()
        );
    } else {
        println!(
            "loaded {} from {} in {:.1}s (SHA-256 checked)",
            record.image,
            file.display(),
            started.elapsed().as_secs_f64()
        );
        if let Some(old) = loaded.replaced {
            println!(
                "  the tag named another image before ({}); it now names this one",
                old.id
            );
        }
    }
    println!("  {}", summary(&record.versions));
    // `up` finds the image by its tag, which depends on the settings and on
    // the sparkbox version: say so when they would choose another one here.
    if let Ok(recipe) = config.image_settings(&ImageArgs::default()).recipe() {
        let wanted = recipe.tag();
        if wanted != record.image {
            println!(
                "note: `sparkbox up` with the settings here runs {wanted}, not this image — pass the settings it was built with (e.g. --spark-version {}), or save it with this sparkbox version (the file was saved by {})",
                record.versions.get("spark").unwrap_or("?"),
                record.saved_by
            );
        }
    }
    Ok(())
}
