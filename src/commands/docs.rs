//! `sparkbox completions` and `sparkbox man`: generated from the command
//! line's own definition, so they list exactly the commands and flags there are.

use std::path::Path;

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs, ManArgs};
use crate::error::{Error, Result};

/// Prints the completion script for one shell.
pub fn completions(args: &CompletionsArgs) -> Result<()> {
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut command, "sparkbox", &mut out);
    write_stdout(&out)
}

/// Prints sparkbox.1, or writes a page per command into `--dir`.
pub fn man(args: &ManArgs) -> Result<()> {
    let command = Cli::command();
    match &args.dir {
        None => {
            let mut out = Vec::new();
            render(&command, &mut out)?;
            write_stdout(&out)
        }
        Some(dir) => {
            let written = write_pages(&command, dir)?;
            println!("wrote {written} man pages to {}", dir.display());
            Ok(())
        }
    }
}

/// sparkbox.1, then sparkbox-up.1, sparkbox-image-push.1, … for every
/// command and subcommand; the number of pages written.
fn write_pages(command: &clap::Command, dir: &Path) -> Result<usize> {
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, &e))?;
    let mut pages = vec![(command.get_name().to_string(), command.clone())];
    let mut i = 0;
    while i < pages.len() {
        let (name, cmd) = pages[i].clone();
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let full = format!("{name}-{}", sub.get_name());
            // The page's title and synopsis use the full name.
            pages.push((full.clone(), sub.clone().name(full)));
        }
        i += 1;
    }
    for (name, cmd) in &pages {
        let mut out = Vec::new();
        render(cmd, &mut out)?;
        let path = dir.join(format!("{name}.1"));
        std::fs::write(&path, out).map_err(|e| io_error(&path, &e))?;
    }
    Ok(pages.len())
}

fn render(command: &clap::Command, out: &mut Vec<u8>) -> Result<()> {
    clap_mangen::Man::new(command.clone())
        .render(out)
        .map_err(|e| Error::Io(format!("cannot render the man page: {e}")))
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        // `sparkbox man | head` closes the pipe early: not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::Io(format!("cannot write to standard output: {e}"))),
    }
}

fn io_error(path: &Path, e: &std::io::Error) -> Error {
    Error::InvalidInput(format!(
        "cannot write {}: {e} — give --dir a folder you can write to",
        path.display()
    ))
}
