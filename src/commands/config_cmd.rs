//! `sparkbox config`: the settings `up` would use, resolved — over what the
//! existing cluster was made with, when the engine answers and it exists.

use std::time::Duration;

use crate::cli::ConfigArgs;
use crate::engine::Connection;
use crate::error::{Error, Result};
use crate::plan::observe::read_record;
use crate::settings::{Config, Recorded, Settings};

/// How long `config` waits for the engine before printing without the record.
const ENGINE_PATIENCE: Duration = Duration::from_secs(3);

/// Prints the resolved settings as TOML (a file that reproduces them) or JSON.
pub async fn run(conn: &Connection, args: ConfigArgs, config: &Config) -> Result<()> {
    let name = config.cluster_name(&args.cluster.name)?;
    let unknown = |why: String| {
        format!("the engine did not answer ({why}): if cluster {name} exists, `up` keeps what it was made with where nothing here says otherwise")
    };
    let (recorded, about) =
        match tokio::time::timeout(ENGINE_PATIENCE, record_of(conn, &name)).await {
            Ok(Ok(Some(r))) => (
                Some(r),
                format!("over what the existing cluster {name} was made with (its labels)"),
            ),
            Ok(Ok(None)) => (None, String::new()),
            Ok(Err(e)) => (None, unknown(e.to_string().replace('\n', " "))),
            Err(_) => (
                None,
                unknown(format!("not within {} s", ENGINE_PATIENCE.as_secs())),
            ),
        };
    // The same checks `up` makes.
    let settings = Settings::resolve_over(config, &args.cluster, recorded.as_ref())?;
    settings.spec()?;
    if args.json {
        let text = serde_json::to_string_pretty(&settings)
            .map_err(|e| Error::Io(format!("cannot render the settings: {e}")))?;
        if !about.is_empty() {
            eprintln!("note: {about}");
        }
        println!("{text}");
    } else {
        if !about.is_empty() {
            println!("# {about}");
        }
        print!("{}", settings.to_toml());
    }
    Ok(())
}

/// The record of the cluster `name`, when it exists.
async fn record_of(conn: &Connection, name: &str) -> Result<Option<Recorded>> {
    let engine = conn.engine().await?;
    read_record(&engine, name).await
}
