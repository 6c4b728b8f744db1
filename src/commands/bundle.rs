//! `sparkbox logs --bundle DIR`: the diagnostics bundle of a cluster (the
//! work is in [`crate::ops::bundle`]).

use std::path::Path;

use crate::engine::Connection;
use crate::error::Result;
use crate::ops::bundle::{check_dir, write};

/// `sparkbox logs --bundle DIR`.
pub async fn run(conn: &Connection, cluster: &str, dir: &Path) -> Result<()> {
    check_dir(dir)?;
    let engine = conn.engine().await?;
    let summary = write(&engine, cluster, dir).await?;
    print!(
        "diagnostics bundle of cluster {cluster}: {}",
        summary.report()
    );
    Ok(())
}
