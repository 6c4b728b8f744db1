//! `sparkbox logs`: every container of a cluster interleaved, each line with
//! its container's name as a prefix (coloured on a terminal, as compose does).

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::stream::{BoxStream, SelectAll, StreamExt};

use crate::cli::LogsArgs;
use crate::engine::{Connection, ContainerState, Engine};
use crate::error::{Error, Result};
use crate::model::labels;
use crate::progress::Progress;
use crate::settings::Config;

/// Parses "90s", "10m", "2h" or plain seconds into seconds.
pub fn parse_age(text: &str) -> Result<i64> {
    let t = text.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: i64 = digits.parse().map_err(|_| bad_age(text))?;
    match unit {
        "" | "s" => Ok(n),
        "m" => Ok(n * 60),
        "h" => Ok(n * 3600),
        "d" => Ok(n * 86400),
        _ => Err(bad_age(text)),
    }
}

fn bad_age(text: &str) -> Error {
    Error::InvalidInput(format!(
        "--since {text:?} is not an age — write it like 90s, 10m or 2h"
    ))
}

/// True when container `c` is selected by `target` (a role or a name).
pub fn selected(c: &ContainerState, target: Option<&str>) -> bool {
    match target {
        None => true,
        Some(t) => c.name == t || c.labels.get(labels::ROLE).map(String::as_str) == Some(t),
    }
}

/// Prefixes each line of `chunk` with the padded container name.
pub fn prefix_lines(name: &str, width: usize, colour: Option<u8>, chunk: &str) -> String {
    let label = match colour {
        Some(c) => format!("\x1b[{c}m{name:<width$} |\x1b[0m"),
        None => format!("{name:<width$} |"),
    };
    chunk.lines().map(|l| format!("{label} {l}\n")).collect()
}

const COLOURS: [u8; 6] = [36, 33, 32, 35, 34, 31];

/// `sparkbox logs`.
pub async fn run(
    conn: &Connection,
    args: LogsArgs,
    config: &Config,
    _progress: &Progress,
) -> Result<()> {
    let cluster = config.cluster_name(&args.name)?;
    if let Some(dir) = &args.bundle {
        return super::bundle::run(conn, &cluster, dir).await;
    }
    let since = match &args.since {
        Some(age) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            Some(now - parse_age(age)?)
        }
        None => None,
    };
    let engine = conn.engine().await?;
    let filter = [(labels::CLUSTER, cluster.as_str())];
    let target = args.target.as_deref();
    let mut containers: Vec<ContainerState> = engine
        .containers(&filter)
        .await?
        .into_iter()
        .filter(|c| selected(c, target))
        .collect();
    if containers.is_empty() {
        return Err(Error::InvalidInput(format!(
            "no container of cluster {cluster} matches {} — try master, worker, jupyter or a name from `sparkbox status -n {cluster}`",
            target.unwrap_or("anything")
        )));
    }
    containers.sort_by(|a, b| a.name.cmp(&b.name));
    let colour = std::io::stdout().is_terminal();
    let width = containers
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0)
        .max(16);
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut streams: SelectAll<BoxStream<'static, Result<String>>> = SelectAll::new();
    let add =
        |c: &ContainerState, i: usize, streams: &mut SelectAll<_>, tail: Option<usize>, since| {
            let name = c.name.clone();
            let code = colour.then(|| COLOURS[i % COLOURS.len()]);
            let stream = engine
                .log_stream(&c.name, args.follow, tail, since)
                .map(move |chunk| chunk.map(|text| prefix_lines(&name, width, code, &text)))
                .boxed();
            streams.push(stream);
        };
    for (i, c) in containers.iter().enumerate() {
        seen.insert(c.name.clone());
        add(c, i, &mut streams, args.tail, since);
    }
    let mut out = std::io::stdout();
    let mut rescan = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            item = streams.next() => match item {
                // A closed pipe (`| head`) ends the command quietly.
                Some(Ok(text)) if out.write_all(text.as_bytes()).and_then(|_| out.flush()).is_err() => {
                    return Ok(());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::warn!("{e}"),
                None if !args.follow => return Ok(()),
                None => {}
            },
            _ = rescan.tick(), if args.follow => {
                // Workers added later (by `scale` or `up`) join the output;
                // a cluster that is gone ends the command.
                let now = engine.containers(&filter).await?;
                if now.is_empty() {
                    return Ok(());
                }
                for c in now {
                    if selected(&c, target) && seen.insert(c.name.clone()) {
                        let i = seen.len();
                        add(&c, i, &mut streams, Some(0), None);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn ages_parse() {
        assert_eq!(parse_age("90s").ok(), Some(90));
        assert_eq!(parse_age("10m").ok(), Some(600));
        assert_eq!(parse_age("2h").ok(), Some(7200));
        assert_eq!(parse_age("15").ok(), Some(15));
        assert!(parse_age("soon").is_err());
    }

    #[test]
    fn lines_get_a_padded_prefix() {
        assert_eq!(
            prefix_lines("demo-master", 12, None, "a\nb\n"),
            "demo-master  | a\ndemo-master  | b\n"
        );
        assert!(prefix_lines("x", 1, Some(36), "a").starts_with("\x1b[36mx |\x1b[0m a"));
    }

    #[test]
    fn targets_select_by_role_or_name() {
        let c = ContainerState {
            name: "demo-worker-1".into(),
            labels: HashMap::from([(labels::ROLE.to_string(), "worker".to_string())]),
            ..Default::default()
        };
        assert!(selected(&c, None));
        assert!(selected(&c, Some("worker")));
        assert!(selected(&c, Some("demo-worker-1")));
        assert!(!selected(&c, Some("master")));
    }
}
