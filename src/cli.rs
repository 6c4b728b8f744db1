//! The command line: commands and flags, nothing else.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::progress::ProgressMode;

/// A real multi-node Apache Spark cluster with Jupyter on your own machine.
#[derive(Debug, Parser)]
#[command(name = "sparkbox", version, about, propagate_version = true)]
pub struct Cli {
    /// Show detailed logs (the full build output, engine calls).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// How to show progress: auto (live on a terminal, plain lines otherwise), tty, plain, quiet.
    #[arg(long, global = true, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,

    /// The cluster file (default: ./sparkbox.toml when it exists), given before the
    /// command like compose: `sparkbox -f FILE up`. Flags override it.
    #[arg(long, short = 'f', value_name = "FILE", env = "SPARKBOX_FILE")]
    pub file: Option<PathBuf>,

    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The sparkbox commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Bring a cluster up (or heal, or rescale it) and wait until it is ready.
    Up(UpArgs),
    /// Show a cluster's containers, workers, versions and URLs.
    Status(StatusArgs),
    /// Remove a cluster's containers and network (volumes stay unless --volumes).
    Down(DownArgs),
    /// List every sparkbox cluster on the engine.
    Ls(LsArgs),
    /// List the swarm's nodes (DOCKER_HOST at a manager) and what of every cluster runs on each.
    Nodes(LsArgs),
    /// Stop a cluster's containers, keeping them and their volumes.
    Stop(StopArgs),
    /// Each student's Jupyter URL with its token (a cluster made with --students).
    Roster(RosterArgs),
    /// Check this machine for what a cluster needs, with what to do about each finding.
    Doctor(DoctorArgs),
    /// Show the logs of a cluster's containers, interleaved with prefixes.
    Logs(LogsArgs),
    /// Change the number of workers of a running cluster, touching nothing else.
    Scale(ScaleArgs),
    /// Start a stopped cluster again and wait until it is ready, like `up`.
    Start(StartArgs),
    /// Build the jupyter-spark image (once; later runs find it up to date).
    Build(BuildArgs),
    /// Manage sparkbox images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Print the supported Spark versions and what each pins.
    Versions,
    /// Print the settings `up` would use: sparkbox.toml, then flags, then defaults.
    Config(ConfigArgs),
    /// Run a command in a cluster container (a TTY when this terminal has one).
    Exec(ExecArgs),
    /// Open a pyspark shell attached to the cluster (in the Jupyter container).
    Shell(ShellArgs),
    /// Copy a Python application into the cluster and spark-submit it to the master.
    Submit(SubmitArgs),
    /// Print a shell completion script: `source <(sparkbox completions bash)`.
    Completions(CompletionsArgs),
    /// Print the man page, or write one per command into a folder (--dir).
    Man(ManArgs),
}

/// `sparkbox completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, powershell or elvish.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `sparkbox man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write sparkbox.1 and sparkbox-COMMAND.1 for every command into this folder
    /// (e.g. /usr/local/share/man/man1) instead of printing sparkbox.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Flags that choose what image is built.
#[derive(Debug, Clone, Args, Default)]
pub struct ImageArgs {
    /// Spark release to run (a supported one, e.g. 4.0.1, or a line like 3.5).
    #[arg(long, value_name = "VERSION")]
    pub spark_version: Option<String>,

    /// Base image for the build (default debian:bookworm-slim; made offline with debootstrap when it cannot be pulled).
    #[arg(long, value_name = "IMAGE")]
    pub base_image: Option<String>,

    /// Debian mirror for making the base image offline (default: the host's apt configuration).
    #[arg(long, value_name = "URL")]
    pub debian_mirror: Option<String>,

    /// CA bundle that apt and pip trust during the build (default: SSL_CERT_FILE, PIP_CERT, REQUESTS_CA_BUNDLE or the system bundle).
    #[arg(long, value_name = "FILE")]
    pub ca_bundle: Option<PathBuf>,

    /// An extra Python package for every container (repeatable), e.g. --python-package polars==1.9.0.
    #[arg(long = "python-package", value_name = "SPEC")]
    pub python_packages: Vec<String>,

    /// A registry to pull the image from before building it (and `image push` to), HOST[:PORT]/PATH, e.g. 127.0.0.1:5000/sparkbox; credentials come from `docker login`.
    #[arg(long, value_name = "REG", env = "SPARKBOX_REGISTRY")]
    pub registry: Option<String>,
}

/// `sparkbox build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// What to build.
    #[command(flatten)]
    pub image: ImageArgs,

    /// Build even if an up-to-date image exists (the layer cache is still used).
    #[arg(long)]
    pub force: bool,

    /// Ignore the builder's layer cache (implies --force).
    #[arg(long)]
    pub no_cache: bool,
}

/// The cluster to act on.
#[derive(Debug, Clone, Args, Default)]
pub struct NameArg {
    /// Cluster name: prefixes every container, network and volume (default: the file's
    /// [cluster] name, else "sparkbox").
    #[arg(long, short = 'n', env = "SPARKBOX_NAME")]
    pub name: Option<String>,
}

/// What a cluster is made of; each flag overrides sparkbox.toml.
#[derive(Debug, Clone, Args, Default)]
pub struct ClusterArgs {
    /// Which cluster.
    #[command(flatten)]
    pub name: NameArg,

    /// Number of Spark workers (default 2).
    #[arg(long, short = 'w')]
    pub workers: Option<u32>,

    /// Cores each worker offers (default 1).
    #[arg(long)]
    pub cores: Option<u32>,

    /// Memory each worker offers to executors, Spark syntax: 512m, 1g, 2g (default 1g).
    #[arg(long)]
    pub memory: Option<String>,

    /// What image to run.
    #[command(flatten)]
    pub image: ImageArgs,

    /// Host port of the master web UI (default 8080, or the next free one).
    #[arg(long, value_name = "PORT")]
    pub master_ui_port: Option<u16>,

    /// Host port of JupyterLab (default 8888, or the next free one).
    #[arg(long, value_name = "PORT")]
    pub jupyter_port: Option<u16>,

    /// First host port of the application (driver) UIs: it and the next 3 are
    /// published, one per notebook running Spark (default 4040, or the next free block).
    #[arg(long, value_name = "PORT")]
    pub app_ui_port: Option<u16>,

    /// Host directory mounted at /data in every container (default: ./data next
    /// to sparkbox.toml, or in the current directory; made when missing).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,

    /// Run a Spark history server over the applications' event logs.
    #[arg(long)]
    pub history: bool,

    /// No history server (it stays off, or is removed; its event-log volume is kept).
    #[arg(long, conflicts_with = "history")]
    pub no_history: bool,

    /// Host port of the history server UI (default 18080, or the next free one).
    #[arg(long, value_name = "PORT")]
    pub history_port: Option<u16>,

    /// A classroom: N Jupyter servers on the one cluster, each with its own
    /// token, notebooks volume and port (`sparkbox roster` lists them).
    #[arg(long, value_name = "N")]
    pub students: Option<u32>,

    /// Publish the ports on this address instead of 127.0.0.1 (e.g. 0.0.0.0 for a
    /// classroom); Spark's RPC then requires a generated secret.
    #[arg(long, value_name = "ADDRESS")]
    pub bind: Option<String>,

    /// Run a Spark Connect server, for programs on the host (Spark 4 and newer).
    #[arg(long)]
    pub connect: bool,

    /// No Spark Connect server (it stays off, or is removed).
    #[arg(long, conflicts_with = "connect")]
    pub no_connect: bool,

    /// Host port of the Spark Connect server (default 15002, or the next free one).
    #[arg(long, value_name = "PORT")]
    pub connect_port: Option<u16>,

    /// Seconds to wait for every worker, Jupyter and the version check (default 180).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,

    /// Run the cluster as services on the Docker Swarm whose manager
    /// DOCKER_HOST points at ([cluster] engine = "swarm")
    #[arg(long)]
    pub swarm: bool,

    /// On a swarm: at most this many workers on one node (default 1)
    #[arg(long, value_name = "N")]
    pub workers_per_node: Option<u32>,
}

/// `sparkbox up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// The cluster's settings.
    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Make this container anew from the image with the cluster's settings,
    /// even if it is as wanted (a name or `master`, `jupyter`, `worker-2`, …;
    /// repeatable). Its volumes and the data directory are kept.
    #[arg(long, value_name = "CONTAINER")]
    pub recreate: Vec<String>,

    /// On success print one JSON document (schema 1, in the README) instead of
    /// text; progress stays on stderr.
    #[arg(long, conflicts_with = "dry_run")]
    pub json: bool,

    /// When `up` fails after reaching the engine, write a diagnostics bundle
    /// (as `logs --bundle`) into DIR, then fail as usual.
    #[arg(long, value_name = "DIR")]
    pub bundle_on_failure: Option<PathBuf>,
}

/// `sparkbox config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The settings to resolve (as for `up`).
    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// Print JSON instead of TOML.
    #[arg(long)]
    pub json: bool,
}

/// `sparkbox exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Which cluster.
    #[command(flatten)]
    pub name: NameArg,

    /// Do not allocate a TTY even when this terminal has one.
    #[arg(long, short = 'T')]
    pub no_tty: bool,

    /// Run as this user inside the container (default: the image's user, spark).
    #[arg(long, short = 'u', value_name = "USER")]
    pub user: Option<String>,

    /// master, jupyter, worker (the first), worker-N, or a container name.
    pub target: String,

    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// `sparkbox shell`.
#[derive(Debug, Args)]
pub struct ShellArgs {
    /// Which cluster.
    #[command(flatten)]
    pub name: NameArg,

    /// Extra arguments for pyspark (after `--`), e.g. -- --conf spark.executor.memory=1g.
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

/// `sparkbox submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Which cluster.
    #[command(flatten)]
    pub name: NameArg,

    /// Python files (.py, .zip, .egg) the application imports, comma-separated or repeated.
    #[arg(long, value_name = "FILES", value_delimiter = ',')]
    pub py_files: Vec<PathBuf>,

    /// A Spark setting for this application (repeatable): --conf spark.executor.memory=1g.
    #[arg(long, value_name = "KEY=VALUE")]
    pub conf: Vec<String>,

    /// The application (a .py file on this machine).
    pub app: PathBuf,

    /// Arguments for the application.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    pub args: Vec<String>,
}

/// `sparkbox status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Which cluster.
    #[command(flatten)]
    pub name: NameArg,

    /// Print the documented JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `sparkbox down`.
#[derive(Debug, Args)]
pub struct DownArgs {
    /// Which cluster.
    #[command(flatten)]
    pub name: NameArg,

    /// Also delete the cluster's volumes (notebooks!).
    #[arg(long)]
    pub volumes: bool,
}

/// `sparkbox ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `sparkbox roster`.
#[derive(Debug, Args)]
pub struct RosterArgs {
    /// Which cluster.
    #[command(flatten)]
    pub name: NameArg,

    /// The address students reach this machine by (default: the --bind address,
    /// else 127.0.0.1).
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,

    /// Write the roster as CSV to FILE ("-" for standard output).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,

    /// Write the roster as JSON to FILE ("-" for standard output).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// `sparkbox stop`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Which cluster.
    #[command(flatten)]
    pub name: NameArg,
}

/// `sparkbox doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The cluster you plan to run (as for `up`): its workers × memory are checked
    /// against this machine, its ports and image looked for.
    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// The host Python whose Spark Connect client is checked against the
    /// cluster (with --connect, or when the cluster runs a Connect server).
    #[arg(long, value_name = "PYTHON", default_value = "python3")]
    pub python: String,
}

/// `sparkbox logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Which cluster.
    #[command(flatten)]
    pub name: NameArg,

    /// A role (master, worker, jupyter) or a container name; all when omitted.
    pub target: Option<String>,

    /// Keep printing new lines, including those of workers added later.
    #[arg(long, short = 'f')]
    pub follow: bool,

    /// Only the last N lines of each container.
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,

    /// Only lines newer than this: seconds ("90s"), minutes ("10m"), hours ("2h") ago.
    #[arg(long, value_name = "AGE")]
    pub since: Option<String>,

    /// Write a diagnostics bundle into DIR instead of printing: every
    /// container's whole log and inspect document, status.json, versions.txt,
    /// master.json, engine.json and README.txt.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["target", "follow", "tail", "since"])]
    pub bundle: Option<PathBuf>,
}

/// `sparkbox scale`.
#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// Which cluster.
    #[command(flatten)]
    pub name: NameArg,

    /// The new number of workers (the highest-numbered go first when shrinking).
    #[arg(long, short = 'w')]
    pub workers: u32,

    /// Seconds to wait for the workers to register (default 180).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
}

/// `sparkbox start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Which cluster.
    #[command(flatten)]
    pub name: NameArg,

    /// Seconds to wait for every worker, Jupyter and the version check (default 180).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
}

/// `sparkbox image …`.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Make sure the base image exists: present, pulled, or made offline with debootstrap.
    Base {
        /// Base image reference.
        #[arg(long, value_name = "IMAGE")]
        base_image: Option<String>,
        /// Debian mirror (default: the host's apt configuration).
        #[arg(long, value_name = "URL")]
        debian_mirror: Option<String>,
    },
    /// Print the tag the image for these settings has, and whether it exists.
    Tag {
        /// What image.
        #[command(flatten)]
        image: ImageArgs,
    },
    /// Save the image `up` uses with these settings to one file, with a SHA-256 checksum.
    Save {
        /// The file to write (replaced when it exists); `docker load -i FILE` reads it too.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// What image.
        #[command(flatten)]
        image: ImageArgs,
    },
    /// Push the image `up` uses with these settings to the registry (--registry or [image] registry) and print its digest.
    Push {
        /// What image, and where to.
        #[command(flatten)]
        image: ImageArgs,
    },
    /// Check a file made by `image save` and load its image, so `up` needs no build.
    Load {
        /// The file `sparkbox image save` wrote.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Remove the sparkbox images and build stages no container uses (the
    /// current settings' image stays unless --all).
    Prune(PruneArgs),
}

/// `sparkbox image prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove the current settings' image too when no container uses it.
    #[arg(long)]
    pub all: bool,

    /// List what would be removed, and remove nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// The image to keep: the one `up` would use with these settings.
    #[command(flatten)]
    pub image: ImageArgs,
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// clap's own consistency checks (e.g. one short flag used twice), which
    /// release builds skip.
    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
