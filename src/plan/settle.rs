//! Settle: the values a cluster needs that depend on what exists — host
//! ports (kept when a container already has them, else the next free one),
//! Jupyter tokens and the RPC secret (kept for the cluster's life).

use std::collections::BTreeSet;

use crate::engine::ContainerState;
use crate::error::Result;
use crate::model::labels::{self, Labelled};
use crate::model::spec::{self, ClusterSpec, Names, PortChoice};
use crate::plan::desired::{self, Resolved};
use crate::plan::observe::Observed;
use crate::plan::ports;

/// The port a container recorded under `key`.
pub fn label_port(c: Option<&ContainerState>, key: &str) -> Option<u16> {
    c.and_then(|c| Labelled(&c.labels).port(key))
}

/// Settles ports, tokens and the RPC secret against what exists; returns
/// notes for the user.
/// `free` says whether a host port can be published (the engine's answer,
/// [`crate::engine::Engine::port_free`]).
pub fn settle(
    spec: &ClusterSpec,
    observed: &Observed,
    free: &dyn Fn(&str, u16) -> bool,
) -> Result<(Resolved, Vec<String>)> {
    let mut claimed = BTreeSet::new();
    let mut notes = Vec::new();
    let addr = spec.bind_address.as_str();
    let have_jupyters = observed.jupyters();
    let indices: Vec<u32> = if spec.students == 0 {
        vec![0]
    } else {
        (1..=spec.students).collect()
    };
    // Application UI blocks first (they need consecutive ports).
    let mut app_ui_ports = Vec::new();
    for (k, index) in indices.iter().enumerate() {
        let choice = if k == 0 {
            spec.app_ui_port
        } else {
            PortChoice::Auto(spec.app_ui_port.preferred())
        };
        let existing = label_port(have_jupyters.get(index).copied(), labels::APP_UI_PORT);
        let s = ports::settle_block(
            choice,
            existing,
            spec::APP_UI_PORTS,
            &mut claimed,
            addr,
            "--app-ui-port",
            free,
        )?;
        if s.moved && k == 0 {
            notes.push(format!(
                "port {} is taken on {addr}; the application UIs use {}-{} instead (or pass --app-ui-port)",
                spec.app_ui_port.preferred(),
                s.port,
                s.port + spec::APP_UI_PORTS - 1
            ));
        }
        app_ui_ports.push(s.port);
    }
    let mut settle =
        |choice: PortChoice, existing: Option<u16>, flag: &str, what: &str| -> Result<u16> {
            let s = ports::settle(choice, existing, &mut claimed, addr, flag, free)?;
            if s.moved {
                notes.push(format!(
                    "port {} is taken on {addr}; the {what} uses {} instead (or pass {flag})",
                    choice.preferred(),
                    s.port
                ));
            }
            Ok(s.port)
        };
    let master_ui_port = settle(
        spec.master_ui_port,
        label_port(observed.master(), labels::UI_PORT),
        "--master-ui-port",
        "master UI",
    )?;
    let mut jupyters = Vec::new();
    for (k, index) in indices.iter().enumerate() {
        let have = have_jupyters.get(index).copied();
        let (choice, what) = if k == 0 {
            (spec.jupyter_port, "Jupyter server".to_string())
        } else {
            // Students after the first take the next free ports.
            (
                PortChoice::Auto(spec.jupyter_port.preferred()),
                format!("Jupyter server of student {index}"),
            )
        };
        let port = settle(
            choice,
            label_port(have, labels::JUPYTER_PORT),
            "--jupyter-port",
            &what,
        )?;
        let token = match &spec.jupyter_token {
            Some(fixed) => fixed.clone(),
            None => have
                .and_then(|j| Labelled(&j.labels).token())
                .map(str::to_string)
                .unwrap_or_else(desired::new_token),
        };
        let notebooks_volume = if *index == 0 {
            spec.notebooks_volume.clone()
        } else {
            format!("{}-{index}", spec.notebooks_volume)
        };
        jupyters.push(desired::JupyterSlot {
            index: *index,
            port,
            app_ui_port: app_ui_ports[k],
            token,
            notebooks_volume,
        });
    }
    let existing_service = |name: &str| {
        label_port(
            observed.extras().find(|c| c.name == name),
            labels::SERVICE_PORT,
        )
    };
    let names = Names::new(&spec.name);
    let history_port = match spec.history {
        Some(choice) => Some(settle(
            choice,
            existing_service(&names.history()),
            "--history-port",
            "history server",
        )?),
        None => None,
    };
    let connect_port = match spec.connect {
        Some(choice) => Some(settle(
            choice,
            existing_service(&names.connect()),
            "--connect-port",
            "Spark Connect server",
        )?),
        None => None,
    };
    let existing_workers = observed.workers();
    let mut worker_ui_ports = std::collections::BTreeMap::new();
    // Existing workers keep their ports; new ones take free ones after them.
    for n in 1..=spec.workers {
        if let Some(p) = label_port(existing_workers.get(&n).copied(), labels::UI_PORT) {
            if claimed.insert(p) {
                worker_ui_ports.insert(n, p);
            }
        }
    }
    for n in 1..=spec.workers {
        if let std::collections::btree_map::Entry::Vacant(slot) = worker_ui_ports.entry(n) {
            let s = ports::settle(
                PortChoice::Auto(spec::FIRST_WORKER_UI_PORT),
                None,
                &mut claimed,
                addr,
                "--workers",
                free,
            )?;
            slot.insert(s.port);
        }
    }
    // Ports open beyond this machine: Spark's RPC needs a secret, kept for
    // the cluster's life like the tokens.
    let secret = (!spec::is_loopback(addr)).then(|| {
        observed
            .master()
            .and_then(|m| Labelled(&m.labels).get(labels::SECRET))
            .map(str::to_string)
            .unwrap_or_else(desired::new_token)
    });
    Ok((
        Resolved {
            image_tag: spec.image.tag(),
            master_ui_port,
            jupyters,
            secret,
            history_port,
            connect_port,
            worker_ui_ports,
            placement: None,
        },
        notes,
    ))
}
