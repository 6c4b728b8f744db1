//! `sparkbox doctor`: what this machine offers against what a cluster needs,
//! each finding with what to do about it (the findings are made in
//! [`crate::ops::doctor`]).

use crate::cli::DoctorArgs;
use crate::engine::Connection;
use crate::error::{Error, Result};
use crate::ops::doctor::{self, Level};
use crate::plan::observe::read_record;
use crate::settings::{Config, Settings};

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
    let findings = doctor::check(&engine, &settings, &recipe, &args.python).await?;
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
