//! `sparkbox exec`, `shell` and `submit`: a command in one of a cluster's
//! containers with this terminal (or these pipes) attached, its exit code
//! passed through as sparkbox's own (the work is in [`crate::ops::exec`]).

use std::io::IsTerminal;

use crate::cli::{ExecArgs, ShellArgs, SubmitArgs};
use crate::engine::{Connection, ExecRequest};
use crate::error::Result;
use crate::model::contract::IMAGE_USER;
use crate::ops::exec::{self, Submission};
use crate::progress::Progress;

/// Whether a TTY is used: only when both ends are terminals.
fn terminal_on_both_ends() -> bool {
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

/// `sparkbox exec TARGET -- CMD…`.
pub async fn exec(conn: &Connection, args: ExecArgs, cluster: &str) -> Result<()> {
    let engine = conn.engine().await?;
    let container = exec::find_container(&engine, cluster, &args.target).await?;
    let tty = !args.no_tty && terminal_on_both_ends();
    let request = ExecRequest {
        command: args.command,
        // Containers start as root only to hand `spark` the host user's uid.
        user: Some(args.user.unwrap_or_else(|| IMAGE_USER.to_string())),
        env: Vec::new(),
        tty,
        // A terminal is attached only with a TTY; a pipe or file always is.
        stdin: tty || !std::io::stdin().is_terminal(),
    };
    exec::run_attached(&engine, &container, request).await
}

/// `sparkbox shell`: pyspark in the Jupyter container, which is the driver.
pub async fn shell(conn: &Connection, args: ShellArgs, cluster: &str) -> Result<()> {
    let engine = conn.engine().await?;
    let container = exec::find_container(&engine, cluster, "jupyter").await?;
    let tty = terminal_on_both_ends();
    let mut command = vec!["pyspark".to_string()];
    command.extend(args.args);
    let mut env = Vec::new();
    if !tty {
        // Without a terminal Python would run its input as a script and skip
        // pyspark's start-up file (which makes `spark` and `sc`); -i keeps it
        // an interactive shell that reads from the pipe.
        env.push(("PYSPARK_DRIVER_PYTHON_OPTS".to_string(), "-i".to_string()));
    }
    let request = ExecRequest {
        command,
        user: Some(IMAGE_USER.to_string()),
        env,
        tty,
        stdin: true,
    };
    exec::run_attached(&engine, &container, request).await
}

/// `sparkbox submit APP.py [ARGS…]`: copies the application (and its
/// --py-files) into the Jupyter container and runs spark-submit there
/// against the cluster's master, with its output streamed as it comes.
pub async fn submit(
    conn: &Connection,
    args: SubmitArgs,
    cluster: &str,
    progress: &Progress,
) -> Result<()> {
    let submission = Submission::prepare(&args.app, &args.py_files, args.conf, args.args)?;
    let engine = conn.engine().await?;
    exec::submit(&engine, cluster, &submission, progress).await
}
