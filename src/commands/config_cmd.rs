//! `sparkbox config`: the settings `up` would use, resolved.

use crate::cli::ConfigArgs;
use crate::error::{Error, Result};
use crate::settings::{Config, Settings};

/// Prints the resolved settings as TOML (a file that reproduces them) or JSON.
pub fn run(args: ConfigArgs, config: &Config) -> Result<()> {
    let settings = Settings::resolve(config, &args.cluster)?;
    // The same checks `up` makes before touching the engine.
    settings.spec()?;
    if args.json {
        let text = serde_json::to_string_pretty(&settings)
            .map_err(|e| Error::Io(format!("cannot render the settings: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", settings.to_toml());
    }
    Ok(())
}
