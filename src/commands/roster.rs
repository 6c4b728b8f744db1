//! `sparkbox roster`: each student's Jupyter URL with its token, for a
//! classroom cluster (`up --students N`), as a table, CSV or JSON.

use crate::cli::RosterArgs;
use crate::engine::{Connection, Engine};
use crate::error::{Error, Result};
use crate::model::labels::{self, Labelled};
use crate::plan::observe::Observed;
use crate::settings::Config;

pub use crate::ops::urls::Seat;
use crate::ops::urls::{other_node_addresses, seats_on};

/// The host students use: --host, else the bind address when it is one
/// address, else this machine's loopback.
pub fn host_for(flag: Option<&str>, bind: Option<&str>) -> String {
    if let Some(h) = flag {
        return h.to_string();
    }
    match bind {
        Some(b) if !b.is_empty() && b != "0.0.0.0" && b != "::" => {
            if b.contains(':') {
                format!("[{b}]")
            } else {
                b.to_string()
            }
        }
        _ => "127.0.0.1".to_string(),
    }
}

/// The roster as CSV (a header line, then one line per seat).
pub fn to_csv(seats: &[Seat]) -> String {
    let mut out = String::from("student,container,url,token,notebooks_volume,state\n");
    for s in seats {
        out.push_str(&format!(
            "{},{},{},{},{},{}\n",
            s.student, s.container, s.url, s.token, s.notebooks_volume, s.state
        ));
    }
    out
}

fn write_to(path: &std::path::Path, text: &str) -> Result<()> {
    if path.as_os_str() == "-" {
        print!("{text}");
        return Ok(());
    }
    std::fs::write(path, text).map_err(|e| {
        Error::Io(format!(
            "cannot write the roster to {}: {e} — choose a writable path",
            path.display()
        ))
    })?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// `sparkbox roster`.
pub async fn run(conn: &Connection, args: RosterArgs, config: &Config) -> Result<()> {
    let cluster = config.cluster_name(&args.name)?;
    let engine = conn.engine().await?;
    let observed = Observed {
        containers: engine
            .containers(&[(labels::CLUSTER, cluster.as_str())])
            .await?,
        ..Default::default()
    };
    let bind = observed
        .jupyter()
        .and_then(|j| Labelled(&j.labels).get(labels::BIND));
    let host = host_for(args.host.as_deref(), bind);
    // On a swarm a student's server may run on another node: its address.
    let addresses = if observed.containers.iter().any(|c| c.node.is_some()) {
        other_node_addresses(&engine.swarm_nodes().await?)
    } else {
        Default::default()
    };
    let seats = seats_on(&observed, &host, &addresses);
    if seats.is_empty() {
        return Err(Error::NotReady(format!(
            "cluster {cluster} has no Jupyter server — `sparkbox up -n {cluster} --students N` makes one per student"
        )));
    }
    if let Some(path) = &args.csv {
        write_to(path, &to_csv(&seats))?;
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&seats)
            .map_err(|e| Error::Io(format!("cannot render the roster: {e}")))?;
        write_to(path, &format!("{text}\n"))?;
    }
    if args.csv.is_none() && args.json.is_none() {
        println!("{:<8} {:<10} url", "student", "state");
        for s in &seats {
            println!("{:<8} {:<10} {}", s.student, s.state, s.url);
        }
        if host == "127.0.0.1" && bind.is_some_and(|b| !crate::model::spec::is_loopback(b)) {
            eprintln!("note: give students this machine's address instead of 127.0.0.1: `sparkbox roster --host ADDRESS`");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ContainerState;
    use std::collections::HashMap;

    fn jupyter(name: &str, index: Option<u32>, port: u16, token: &str) -> ContainerState {
        let mut l = HashMap::from([
            (labels::ROLE.to_string(), "jupyter".to_string()),
            (labels::JUPYTER_PORT.to_string(), port.to_string()),
            (labels::TOKEN.to_string(), token.to_string()),
            (labels::NOTEBOOKS.to_string(), format!("{name}-nb")),
        ]);
        if let Some(i) = index {
            l.insert(labels::INDEX.to_string(), i.to_string());
        }
        ContainerState {
            name: name.into(),
            labels: l,
            state: "running".into(),
            ..Default::default()
        }
    }

    #[test]
    fn seats_are_in_student_order_with_their_own_tokens() {
        let observed = Observed {
            containers: vec![
                jupyter("c-jupyter-2", Some(2), 8889, "bbbb"),
                jupyter("c-jupyter-1", Some(1), 8888, "aaaa"),
            ],
            ..Default::default()
        };
        let s = crate::ops::urls::seats(&observed, "10.0.0.5");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].student, 1);
        assert_eq!(s[0].url, "http://10.0.0.5:8888/lab?token=aaaa");
        assert_eq!(s[1].url, "http://10.0.0.5:8889/lab?token=bbbb");
        let csv = to_csv(&s);
        assert!(
            csv.starts_with("student,container,url,token,notebooks_volume,state\n1,c-jupyter-1,")
        );
        assert_eq!(csv.lines().count(), 3);
    }

    #[test]
    fn the_host_is_the_flag_then_a_single_bind_address() {
        assert_eq!(host_for(Some("lab.local"), Some("0.0.0.0")), "lab.local");
        assert_eq!(host_for(None, Some("192.168.1.20")), "192.168.1.20");
        assert_eq!(host_for(None, Some("0.0.0.0")), "127.0.0.1");
        assert_eq!(host_for(None, None), "127.0.0.1");
    }
}
