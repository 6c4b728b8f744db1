//! `sparkbox logs --bundle DIR`: the diagnostics bundle of a cluster (the
//! work is in [`crate::ops::bundle`]).

use std::path::Path;

use crate::engine::Connection;
use crate::error::Result;
use crate::ops::bundle::write;

// `up --bundle-on-failure` reaches these through here until the merge moves
// its caller to `crate::ops::bundle`.
pub use crate::ops::bundle::{after_failure, check_dir};

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
