//! Version parity: the versions measured live in every running container,
//! compared with each other and with what the image recorded at build time.

use std::collections::BTreeSet;

use futures_util::future::join_all;
use serde::Serialize;

use crate::engine::Engine;
use crate::model::versions::Versions;

/// The command that measures versions inside a container (fast: no JVM).
pub const MEASURE_COMMAND: [&str; 1] = [crate::model::contract::MEASURE_VERSIONS];

/// What one container reported.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Container name.
    pub container: String,
    /// Its versions, or why they could not be read.
    pub versions: Result<Versions, String>,
}

/// Measures every named container in parallel.
pub async fn measure_all<E: Engine>(engine: &E, containers: &[String]) -> Vec<Measured> {
    let futures = containers.iter().map(|name| async move {
        let versions = match engine.exec(name, &MEASURE_COMMAND).await {
            Ok(out) if out.exit_code == 0 => {
                Versions::from_json(&out.stdout).map_err(|e| e.to_string())
            }
            Ok(out) => Err(format!(
                "measure-versions exited {}: {}",
                out.exit_code,
                out.stderr.trim()
            )),
            // A swarm service on another node: what it measured in itself
            // at its start, as its log (read through the manager) says.
            // A node that is cut off answers no log request, and the
            // manager waits for it: the read has a bound.
            // A task whose container the manager does not know yet is read
            // the same way: its log holds every start's report.
            Err(e @ (crate::error::Error::OtherNode { .. } | crate::error::Error::NotReady(_))) => {
                let node = match e {
                    crate::error::Error::OtherNode { node, .. } => node,
                    _ => "no node known yet".to_string(),
                };
                match tokio::time::timeout(OTHER_NODE_LOG_PATIENCE, engine.logs_tail(name, 2000))
                    .await
                {
                    Ok(Ok(log)) => reported_versions(&log).unwrap_or_else(|| {
                        Err(format!("it runs on node {node} and {NOT_REPORTED_YET}"))
                    }),
                    Ok(Err(e)) => Err(format!(
                        "it runs on node {node}, and its log cannot be read: {e}"
                    )),
                    Err(_) => Err(format!(
                        "it runs on node {node}, which did not send its log in {} s (is the node reachable? `docker node ls` on the manager)",
                        OTHER_NODE_LOG_PATIENCE.as_secs()
                    )),
                }
            }
            Err(e) => Err(e.to_string()),
        };
        Measured {
            container: name.clone(),
            versions,
        }
    });
    join_all(futures).await
}

/// How long a swarm node may take to send a container's log through the manager.
pub const OTHER_NODE_LOG_PATIENCE: std::time::Duration = std::time::Duration::from_secs(8);

/// What a swarm service's unreadable versions say while its log has none.
pub const NOT_REPORTED_YET: &str = "its log has no measured versions yet";

/// The versions a container reported in its log: the last such line (its
/// latest start).
pub fn reported_versions(log: &str) -> Option<Result<Versions, String>> {
    log.lines()
        .rev()
        .find_map(|l| {
            l.trim()
                .strip_prefix(crate::model::contract::REPORTED_VERSIONS_PREFIX)
        })
        .map(|json| Versions::from_json(json).map_err(|e| e.to_string()))
}

/// One version key whose values are not the same everywhere.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ParityRow {
    /// The key, e.g. "py4j".
    pub key: String,
    /// What the image recorded at build time.
    pub expected: String,
    /// (container, value) for every container.
    pub values: Vec<(String, String)>,
}

/// The parity verdict.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ParityReport {
    /// True when every container runs exactly the image's versions.
    pub ok: bool,
    /// The keys that differ somewhere.
    pub differences: Vec<ParityRow>,
    /// Containers whose versions could not be read, with the reason.
    pub unreadable: Vec<(String, String)>,
    /// Containers that matched, by name.
    pub matching: Vec<String>,
}

impl ParityReport {
    /// True when `container` matched the image.
    pub fn container_ok(&self, container: &str) -> bool {
        self.matching.iter().any(|c| c == container)
    }
}

/// Compares every container's versions with the image's record, key by key.
pub fn compare(reference: &Versions, measured: &[Measured]) -> ParityReport {
    let mut keys: BTreeSet<String> = reference.values.keys().cloned().collect();
    keys.extend(reference.extra.keys().cloned());
    for m in measured {
        if let Ok(v) = &m.versions {
            keys.extend(v.values.keys().cloned());
            keys.extend(v.extra.keys().cloned());
        }
    }
    let readable: Vec<(&str, &Versions)> = measured
        .iter()
        .filter_map(|m| m.versions.as_ref().ok().map(|v| (m.container.as_str(), v)))
        .collect();
    let unreadable: Vec<(String, String)> = measured
        .iter()
        .filter_map(|m| {
            m.versions
                .as_ref()
                .err()
                .map(|e| (m.container.clone(), e.clone()))
        })
        .collect();
    let mut differences = Vec::new();
    let mut bad: BTreeSet<&str> = BTreeSet::new();
    for key in &keys {
        let expected = reference.get(key).unwrap_or("missing");
        let values: Vec<(String, String)> = readable
            .iter()
            .map(|(c, v)| (c.to_string(), v.get(key).unwrap_or("missing").to_string()))
            .collect();
        let differing: Vec<&str> = readable
            .iter()
            .filter(|(_, v)| v.get(key).unwrap_or("missing") != expected)
            .map(|(c, _)| *c)
            .collect();
        if !differing.is_empty() {
            bad.extend(differing);
            differences.push(ParityRow {
                key: key.clone(),
                expected: expected.to_string(),
                values,
            });
        }
    }
    let matching = readable
        .iter()
        .filter(|(c, _)| !bad.contains(c))
        .map(|(c, _)| c.to_string())
        .collect();
    ParityReport {
        ok: differences.is_empty() && unreadable.is_empty(),
        differences,
        unreadable,
        matching,
    }
}

/// Renders the differences as a table: one row per key, one column per container.
pub fn render(report: &ParityReport) -> String {
    let mut out = String::new();
    if !report.differences.is_empty() {
        let containers: Vec<&str> = report.differences[0]
            .values
            .iter()
            .map(|(c, _)| c.as_str())
            .collect();
        let mut rows: Vec<Vec<String>> = vec![{
            let mut h = vec!["version".to_string(), "image".to_string()];
            h.extend(containers.iter().map(|c| c.to_string()));
            h
        }];
        for row in &report.differences {
            let mut r = vec![row.key.clone(), row.expected.clone()];
            r.extend(row.values.iter().map(|(_, v)| {
                if *v == row.expected {
                    v.clone()
                } else {
                    format!("{v} (!)")
                }
            }));
            rows.push(r);
        }
        let widths: Vec<usize> = (0..rows[0].len())
            .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        for r in rows {
            let line: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(i, cell)| format!("{cell:<w$}", w = widths[i]))
                .collect();
            out.push_str("  ");
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
    }
    for (c, why) in &report.unreadable {
        out.push_str(&format!("  {c}: versions unreadable: {why}\n"));
    }
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_last_reported_versions_line_of_a_log_counts() {
        let v = r#"{"spark":"4.3.0","python":"3.11.2"}"#;
        let w = r#"{"spark":"4.3.0","python":"3.11.9"}"#;
        let log = format!(
            "starting\nsparkbox-versions: {v}\nrestarted\nsparkbox-versions: {w}\nworker up\n"
        );
        let got = reported_versions(&log).expect("a line").expect("parses");
        assert_eq!(got, Versions::from_json(w).expect("json"));
        assert!(reported_versions("no such line\n").is_none());
        assert!(matches!(
            reported_versions("sparkbox-versions: {broken"),
            Some(Err(_))
        ));
    }

    use super::*;

    fn versions(py4j: &str) -> Versions {
        let mut v = Versions::default();
        v.values.insert("spark".into(), "4.0.1".into());
        v.values.insert("py4j".into(), py4j.into());
        v
    }

    #[test]
    fn identical_containers_pass() {
        let reference = versions("0.10.9.9");
        let measured = vec![
            Measured {
                container: "a".into(),
                versions: Ok(versions("0.10.9.9")),
            },
            Measured {
                container: "b".into(),
                versions: Ok(versions("0.10.9.9")),
            },
        ];
        let r = compare(&reference, &measured);
        assert!(r.ok);
        assert!(r.container_ok("a") && r.container_ok("b"));
        assert_eq!(render(&r), "");
    }

    #[test]
    fn one_differing_container_is_named_in_a_table() {
        let reference = versions("0.10.9.9");
        let measured = vec![
            Measured {
                container: "demo-master".into(),
                versions: Ok(versions("0.10.9.9")),
            },
            Measured {
                container: "demo-jupyter".into(),
                versions: Ok(versions("0.10.9.7")),
            },
            Measured {
                container: "demo-worker-1".into(),
                versions: Err("not running".into()),
            },
        ];
        let r = compare(&reference, &measured);
        assert!(!r.ok);
        assert!(r.container_ok("demo-master"));
        assert!(!r.container_ok("demo-jupyter"));
        insta::assert_snapshot!(render(&r), @r"
          version  image     demo-master  demo-jupyter
          py4j     0.10.9.9  0.10.9.9     0.10.9.7 (!)
          demo-worker-1: versions unreadable: not running
        ");
    }
}
