//! One module per subcommand: parse → plan → execute → report.

pub mod build;
pub mod bundle;
pub mod cluster;
pub mod config_cmd;
pub mod docs;
pub mod doctor;
pub mod exec;
pub mod image_io;
pub mod image_prune;
pub mod lifecycle;
pub mod logs;
pub mod roster;

use crate::cli::{Cli, Command, ImageCommand};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::settings::Config;

/// What to tell the user after Ctrl-C stopped `command`: the state it may
/// have left, and the command that sets it right.
pub fn interrupt_hint(command: &Command, config: &Config) -> String {
    let name = |arg: &crate::cli::NameArg| {
        config
            .cluster_name(arg)
            .unwrap_or_else(|_| crate::model::spec::DEFAULT_CLUSTER.to_string())
    };
    // The same command again finishes what it began: with the cluster's
    // record under the flags, `up -n NAME` alone would finish the cluster as
    // it was before this command, not as this command asked.
    let again = command_line();
    let partial = |cluster: String| {
        format!(
            "cluster {cluster} may be partly made or changed; `{again}` finishes it, `sparkbox down -n {cluster}` removes it (notebook volumes are kept)"
        )
    };
    match command {
        Command::Up(a) => partial(name(&a.cluster.name)),
        Command::Scale(a) => partial(name(&a.name)),
        Command::Start(a) => partial(name(&a.name)),
        Command::Stop(a) => {
            let c = name(&a.name);
            format!("some containers of {c} may still run; `sparkbox stop -n {c}` stops the rest, `sparkbox start -n {c}` brings all back")
        }
        Command::Down(a) => {
            let c = name(&a.name);
            format!("cluster {c} may be partly removed; `sparkbox down -n {c}` removes the rest")
        }
        Command::Build(_) => {
            "the image was not tagged; `sparkbox build` starts again and reuses the finished steps"
                .to_string()
        }
        Command::Submit(_) | Command::Exec(_) | Command::Shell(_) => {
            "the command may still run in the container; `sparkbox status` shows running applications"
                .to_string()
        }
        Command::Image(ImageCommand::Load { file }) => format!(
            "the image may or may not be loaded; `sparkbox image load {}` again finishes it (it leaves a loaded image as it is)",
            file.display()
        ),
        Command::Image(ImageCommand::Push { .. }) => {
            "the registry may hold some of the image's layers but not the tag; `sparkbox image push` again finishes it".to_string()
        }
        Command::Image(ImageCommand::Prune(_)) => {
            "some images may be removed already; `sparkbox image prune` again removes the rest"
                .to_string()
        }
        _ => "nothing was changed".to_string(),
    }
}

/// This process's command line as a shell would take it back.
fn command_line() -> String {
    let words: Vec<String> = std::env::args()
        .enumerate()
        .map(|(i, a)| {
            if i == 0 {
                return "sparkbox".to_string();
            }
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
            if plain {
                a
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect();
    words.join(" ")
}

/// Runs the parsed command line; Ctrl-C stops it with a hint at what to do next.
pub async fn run(cli: Cli) -> Result<()> {
    // Made from the command line alone: a broken sparkbox.toml does not
    // break completing its name.
    match &cli.command {
        Command::Completions(args) => return docs::completions(args),
        Command::Man(args) => return docs::man(args),
        _ => {}
    }
    let progress = Progress::new(cli.progress, cli.verbose > 0);
    let config = Config::load(cli.file.as_deref())?;
    // `submit` handles Ctrl-C itself: it stops spark-submit's process group in
    // the container (freeing the workers' cores) and removes the copied files.
    if matches!(cli.command, Command::Submit(_)) {
        return dispatch(cli, &config, &progress).await;
    }
    let hint = interrupt_hint(&cli.command, &config);
    let work = dispatch(cli, &config, &progress);
    tokio::pin!(work);
    tokio::select! {
        result = &mut work => result,
        _ = tokio::signal::ctrl_c() => {
            // The changes already sent finish (the command goes on only
            // until they have), so the engine holds what the next `up`
            // sees; a second Ctrl-C does not wait.
            crate::interrupt::request_stop();
            tokio::select! {
                _ = &mut work => {}
                _ = crate::interrupt::settled(INTERRUPT_PATIENCE) => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            progress.finish();
            Err(Error::Interrupted(hint))
        }
    }
}

/// How long Ctrl-C waits for the engine to finish the changes under way.
const INTERRUPT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

async fn dispatch(cli: Cli, cfg: &Config, progress: &Progress) -> Result<()> {
    // The one place an engine is reached; each command asks for it once its
    // input is checked.
    let conn = &crate::engine::Connection::new();
    match cli.command {
        Command::Up(args) => cluster::up(conn, args, cfg, progress).await,
        Command::Status(args) => cluster::status(conn, args, cfg).await,
        Command::Down(args) => cluster::down(conn, args, cfg, progress).await,
        Command::Ls(args) => lifecycle::ls(conn, args).await,
        Command::Nodes(args) => lifecycle::nodes(conn, args).await,
        Command::Roster(args) => roster::run(conn, args, cfg).await,
        Command::Doctor(args) => doctor::run(conn, args, cfg).await,
        Command::Logs(args) => logs::run(conn, args, cfg, progress).await,
        Command::Scale(args) => lifecycle::scale(conn, args, cfg, progress).await,
        Command::Stop(args) => lifecycle::stop(conn, args, cfg, progress).await,
        Command::Start(args) => lifecycle::start(conn, args, cfg, progress).await,
        Command::Build(args) => build::run(conn, args, cfg, progress).await,
        Command::Config(args) => config_cmd::run(conn, args, cfg).await,
        Command::Exec(args) => {
            let cluster = cfg.cluster_name(&args.name)?;
            exec::exec(conn, args, &cluster).await
        }
        Command::Shell(args) => {
            let cluster = cfg.cluster_name(&args.name)?;
            exec::shell(conn, args, &cluster).await
        }
        Command::Submit(args) => {
            let cluster = cfg.cluster_name(&args.name)?;
            exec::submit(conn, args, &cluster, progress).await
        }
        Command::Image(ImageCommand::Base {
            base_image,
            debian_mirror,
        }) => build::run_base(conn, base_image, debian_mirror, progress).await,
        Command::Image(ImageCommand::Tag { image }) => build::run_tag(conn, image, cfg).await,
        Command::Image(ImageCommand::Save { file, image }) => {
            image_io::save(conn, file, image, cfg, progress).await
        }
        Command::Image(ImageCommand::Load { file }) => {
            image_io::load(conn, file, cfg, progress).await
        }
        Command::Image(ImageCommand::Push { image }) => {
            image_io::push(conn, image, cfg, progress).await
        }
        Command::Image(ImageCommand::Prune(args)) => image_prune::run(conn, args, cfg).await,
        Command::Versions => {
            build::print_versions();
            Ok(())
        }
        Command::Completions(args) => docs::completions(&args),
        Command::Man(args) => docs::man(&args),
    }
}
