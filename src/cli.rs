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
    /// Stop a cluster's containers, keeping them and their volumes.
    Stop(StopArgs),
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
#[derive(Debug, Clone, Args)]
pub struct NameArg {
    /// Cluster name: prefixes every container, network and volume.
    #[arg(long, short = 'n', default_value = crate::spec::DEFAULT_CLUSTER, env = "SPARKBOX_NAME")]
    pub name: String,
}

/// `sparkbox up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Which cluster.
    #[command(flatten)]
    pub name: NameArg,

    /// Number of Spark workers.
    #[arg(long, short = 'w', default_value_t = 2)]
    pub workers: u32,

    /// Cores each worker offers.
    #[arg(long, default_value_t = 1)]
    pub cores: u32,

    /// Memory each worker offers to executors (Spark syntax: 512m, 1g, 2g).
    #[arg(long, default_value = "1g")]
    pub memory: String,

    /// What image to run.
    #[command(flatten)]
    pub image: ImageArgs,

    /// Host port of the master web UI (default 8080, or the next free one).
    #[arg(long, value_name = "PORT")]
    pub master_ui_port: Option<u16>,

    /// Host port of JupyterLab (default 8888, or the next free one).
    #[arg(long, value_name = "PORT")]
    pub jupyter_port: Option<u16>,

    /// Host port of the application (driver) UI (default 4040, or the next free one).
    #[arg(long, value_name = "PORT")]
    pub app_ui_port: Option<u16>,

    /// Seconds to wait for every worker, Jupyter and the version check.
    #[arg(long, default_value_t = 180, value_name = "SECONDS")]
    pub timeout: u64,

    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
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
    /// Workers you plan to run (checked against cores and memory).
    #[arg(long, short = 'w', default_value_t = 2)]
    pub workers: u32,

    /// Memory per worker you plan to give (Spark syntax: 1g).
    #[arg(long, default_value = "1g")]
    pub memory: String,

    /// What image you plan to run.
    #[command(flatten)]
    pub image: ImageArgs,
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

    /// Seconds to wait for the workers to register.
    #[arg(long, default_value_t = 180, value_name = "SECONDS")]
    pub timeout: u64,
}

/// `sparkbox start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Which cluster.
    #[command(flatten)]
    pub name: NameArg,

    /// Seconds to wait for every worker, Jupyter and the version check.
    #[arg(long, default_value_t = 180, value_name = "SECONDS")]
    pub timeout: u64,
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
}
