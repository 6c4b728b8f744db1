//! `sparkbox doctor`: what this machine offers against what a cluster needs,
//! each finding with what to do about it (the findings are made in
//! [`crate::ops::doctor`]).

use std::path::Path;

use crate::cli::{DoctorArgs, ImageArgs};
use crate::engine::Connection;
use crate::error::{Error, Result};
use crate::ops::doctor::{self, Level};
use crate::ops::prune;
use crate::plan::observe::read_record;
use crate::settings::{Config, Settings, DEFAULT_FILE};

/// `sparkbox doctor`: exit 0 unless something fails.
pub async fn run(conn: &Connection, args: DoctorArgs, config: &Config) -> Result<()> {
    let name = config.cluster_name(&args.cluster.name)?;
    let engine = match conn.engine().await {
        Ok(engine) => engine,
        Err(e) => {
            // Without an engine the settings are judged as given.
            Settings::resolve(config, &args.cluster)?.image.recipe()?;
            println!("FAIL  docker: {e}");
            return Err(e);
        }
    };
    // The plan as `up` would make it: over the existing cluster's record.
    let recorded = read_record(&engine, &name).await?;
    let settings = Settings::resolve_over(config, &args.cluster, recorded.as_ref())?;
    let recipe = settings.image.recipe()?;
    let mut findings = doctor::check(&engine, &settings, &recipe, &args.python).await?;
    // What `sparkbox image prune` (no flags) would free: it keeps the
    // image of the default settings, so this asks with those.
    let keep = config.image_settings(&ImageArgs::default()).recipe()?.tag();
    let command = match &config.path {
        Some(path) if path != Path::new(DEFAULT_FILE) => {
            format!("sparkbox -f {} image prune", path.display())
        }
        _ => "sparkbox image prune".to_string(),
    };
    findings.push(match prune::plan(&engine, Some(&keep)).await {
        Ok(plan) => doctor::reclaim_finding(&plan, &command),
        Err(e) => doctor::Finding {
            level: Level::Warn,
            text: format!("images: cannot tell what `{command}` would free: {e}"),
        },
    });
    for f in &findings {
        println!("{}", f.line());
    }
    let failures = findings.iter().filter(|f| f.level == Level::Fail).count();
    if failures > 0 {
        return Err(Error::InvalidInput(format!(
            "doctor found {failures} problem(s); see FAIL above"
        )));
    }
    Ok(())
}
