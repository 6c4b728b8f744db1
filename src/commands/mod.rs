//! One module per subcommand: parse → plan → execute → report.

pub mod build;
pub mod cluster;
pub mod doctor;
pub mod lifecycle;
pub mod logs;

use crate::cli::{Cli, Command, ImageCommand};
use crate::error::Result;
use crate::progress::Progress;

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    let progress = Progress::new(cli.progress, cli.verbose > 0);
    match cli.command {
        Command::Up(args) => cluster::up(args, &progress).await,
        Command::Status(args) => cluster::status(args).await,
        Command::Down(args) => cluster::down(args, &progress).await,
        Command::Ls(args) => lifecycle::ls(args).await,
        Command::Doctor(args) => doctor::run(args).await,
        Command::Logs(args) => logs::run(args, &progress).await,
        Command::Scale(args) => lifecycle::scale(args, &progress).await,
        Command::Stop(args) => lifecycle::stop(args, &progress).await,
        Command::Start(args) => lifecycle::start(args, &progress).await,
        Command::Build(args) => build::run(args, &progress).await,
        Command::Image(ImageCommand::Base {
            base_image,
            debian_mirror,
        }) => build::run_base(base_image, debian_mirror, &progress).await,
        Command::Image(ImageCommand::Tag { image }) => build::run_tag(image).await,
        Command::Versions => {
            build::print_versions();
            Ok(())
        }
    }
}
