//! Progress reporting: an indicatif display on a terminal, plain timestamped
//! lines otherwise (CI logs), and every detail line with `-v`.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How progress is shown, from `--progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// A live display on a terminal, plain lines otherwise.
    Auto,
    /// Always the live display.
    Tty,
    /// Always plain timestamped lines.
    Plain,
    /// Nothing but errors.
    Quiet,
}

/// The progress reporter every long command writes to (on stderr).
pub struct Progress {
    live: bool,
    quiet: bool,
    verbose: bool,
    start: Instant,
    bar: Mutex<Option<ProgressBar>>,
}

impl Progress {
    /// A reporter for `mode`; `verbose` shows every detail line.
    pub fn new(mode: ProgressMode, verbose: bool) -> Progress {
        let live = match mode {
            ProgressMode::Auto => {
                std::io::stderr().is_terminal() && std::env::var_os("CI").is_none()
            }
            ProgressMode::Tty => true,
            ProgressMode::Plain | ProgressMode::Quiet => false,
        };
        Progress {
            live,
            quiet: mode == ProgressMode::Quiet,
            verbose,
            start: Instant::now(),
            bar: Mutex::new(None),
        }
    }

    /// Whether output is a live terminal display (and so may use colour).
    pub fn is_live(&self) -> bool {
        self.live
    }

    fn stamp(&self) -> String {
        format!("[{:>6.1}s]", self.start.elapsed().as_secs_f64())
    }

    fn with_bar(&self, f: impl FnOnce(&mut Option<ProgressBar>)) {
        if let Ok(mut guard) = self.bar.lock() {
            f(&mut guard);
        }
    }

    /// A headline: a new phase of the command begins.
    pub fn phase(&self, message: &str) {
        if self.quiet {
            return;
        }
        if self.live {
            self.with_bar(|bar| {
                if let Some(b) = bar.take() {
                    b.finish_and_clear();
                }
                let b = ProgressBar::new_spinner();
                b.set_style(
                    ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                b.enable_steady_tick(Duration::from_millis(120));
                b.set_message(message.to_string());
                *bar = Some(b);
            });
        } else {
            eprintln!("{} {message}", self.stamp());
        }
    }

    /// Step `n` of `total` of the current phase.
    pub fn step(&self, n: u32, total: u32, text: &str) {
        if self.quiet {
            return;
        }
        let short: String = text.chars().take(100).collect();
        if self.live {
            self.with_bar(|bar| {
                let b = bar.get_or_insert_with(ProgressBar::no_length);
                if b.length() != Some(u64::from(total)) {
                    b.set_length(u64::from(total));
                    b.set_style(
                        ProgressStyle::with_template(
                            "{bar:30.cyan/blue} {pos}/{len} {msg} [{elapsed}]",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                    );
                }
                b.set_position(u64::from(n.saturating_sub(1)));
                b.set_message(short.clone());
            });
        } else {
            eprintln!("{} step {n}/{total}: {short}", self.stamp());
        }
    }

    /// A detail line (build output): shown only with -v.
    pub fn detail(&self, line: &str) {
        if !self.verbose || self.quiet {
            return;
        }
        if self.live {
            self.with_bar(|bar| match bar {
                Some(b) => b.println(line),
                None => eprintln!("{line}"),
            });
        } else {
            eprintln!("{} | {line}", self.stamp());
        }
    }

    /// A transfer's moving status ("a1b2c3: Pushing 120/300 MB"): on a
    /// terminal it replaces the spinner's text; plain output prints it as a
    /// line (the caller passes only lines that say something new).
    pub fn status(&self, line: &str) {
        if self.quiet {
            return;
        }
        let short: String = line.chars().take(100).collect();
        if self.live {
            self.with_bar(|bar| {
                if let Some(b) = bar.as_ref() {
                    b.set_message(short.clone());
                }
            });
        } else {
            eprintln!("{} {short}", self.stamp());
        }
    }

    /// A note that is always shown (a warning, a chosen port).
    pub fn note(&self, message: &str) {
        if self.live {
            self.with_bar(|bar| match bar {
                Some(b) => b.println(message),
                None => eprintln!("{message}"),
            });
        } else if !self.quiet {
            eprintln!("{} {message}", self.stamp());
        } else {
            eprintln!("{message}");
        }
    }

    /// Ends the live display, if any.
    pub fn finish(&self) {
        self.with_bar(|bar| {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
        });
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
