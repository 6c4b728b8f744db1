//! One URL builder: every address sparkbox prints (Jupyter with its token,
//! the UIs, Spark Connect) is made here, from settled values or from labels.

use serde::Serialize;

use crate::engine::ContainerState;
use crate::model::labels::{self, Labelled};
use crate::model::spec::Role;
use crate::model::versions::Versions;
use crate::plan::desired::{self, Resolved};
use crate::plan::observe::Observed;

/// Where a browser on this machine reaches the published ports.
pub const LOCAL_HOST: &str = "127.0.0.1";

/// "http://HOST:PORT".
pub fn http(host: &str, port: u16) -> String {
    format!("http://{host}:{port}")
}

/// JupyterLab on HOST:PORT with its token.
pub fn jupyter(host: &str, port: u16, token: &str) -> String {
    format!("{}/lab?token={token}", http(host, port))
}

/// The Spark Connect URL for `SparkSession.builder.remote(...)` (its port
/// is always on this machine's loopback).
pub fn connect(port: u16) -> String {
    format!("sc://localhost:{port}")
}

/// A Jupyter container's URL on `host`, from its labels.
pub fn jupyter_of(c: &ContainerState, host: &str) -> Option<String> {
    let view = Labelled(&c.labels);
    Some(jupyter(
        host,
        view.port(labels::JUPYTER_PORT)?,
        view.token()?,
    ))
}

/// Every application UI published from `first` on.
fn app_uis(first: u16) -> Vec<String> {
    desired::app_ui_ports(first)
        .map(|p| http(LOCAL_HOST, p))
        .collect()
}

/// What a host program needs to talk to the Spark Connect server: the
/// client package of the cluster's exact Spark version, on the same Python
/// minor version (Python UDFs run on the workers' Python).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ConnectClient {
    /// The pip requirement, e.g. "pyspark[connect]==4.0.1" (the package the
    /// image itself was built from, with the Connect client's dependencies).
    pub requirement: String,
    /// The Python version line the client must run on, e.g. "3.11".
    pub python: String,
}

/// The pip requirement of the Spark Connect client for Spark `spark`: the
/// package the image itself is built from, with the client's dependencies.
pub fn connect_requirement(spark: &str) -> String {
    format!("pyspark[connect]=={spark}")
}

/// The client a host program needs for a cluster running `versions`.
pub fn connect_client(versions: &Versions) -> ConnectClient {
    let python = versions.get("python").unwrap_or("?");
    let line: Vec<&str> = python.split('.').take(2).collect();
    ConnectClient {
        requirement: connect_requirement(versions.get("spark").unwrap_or("?")),
        python: line.join("."),
    }
}

/// URLs on the host.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Urls {
    /// The master web UI.
    pub master_ui: Option<String>,
    /// JupyterLab, token included.
    pub jupyter: Option<String>,
    /// The application UI of the Jupyter driver (the first one).
    pub app_ui: Option<String>,
    /// Every published application UI, in the order drivers take them.
    pub app_uis: Vec<String>,
    /// The history server UI.
    pub history: Option<String>,
    /// The Spark Connect URL for `SparkSession.builder.remote(...)`.
    pub connect: Option<String>,
    /// The client package a host program needs for `connect`.
    pub connect_client: Option<ConnectClient>,
}

impl Urls {
    /// The URLs of a cluster just settled (`up`).
    pub fn of_resolved(resolved: &Resolved, reference: &Versions) -> Urls {
        let first = resolved.first_jupyter();
        Urls {
            master_ui: Some(http(LOCAL_HOST, resolved.master_ui_port)),
            jupyter: first.map(|j| jupyter(LOCAL_HOST, j.port, &j.token)),
            app_ui: first.map(|j| http(LOCAL_HOST, j.app_ui_port)),
            app_uis: first.map(|j| app_uis(j.app_ui_port)).unwrap_or_default(),
            history: resolved.history_port.map(|p| http(LOCAL_HOST, p)),
            connect: resolved.connect_port.map(connect),
            connect_client: resolved.connect_port.map(|_| connect_client(reference)),
        }
    }

    /// The URLs of an existing cluster, from its labels (`status`).
    pub fn of_observed(observed: &Observed, reference: Option<&Versions>) -> Urls {
        let port =
            |c: Option<&ContainerState>, key: &str| c.and_then(|c| Labelled(&c.labels).port(key));
        let first = observed.jupyter();
        let app_ui = port(first, labels::APP_UI_PORT);
        let connect_url = port(
            observed.with_role(Role::Connect).next(),
            labels::SERVICE_PORT,
        )
        .map(connect);
        Urls {
            master_ui: port(observed.master(), labels::UI_PORT).map(|p| http(LOCAL_HOST, p)),
            jupyter: first.and_then(|j| jupyter_of(j, LOCAL_HOST)),
            app_ui: app_ui.map(|p| http(LOCAL_HOST, p)),
            app_uis: app_ui.map(app_uis).unwrap_or_default(),
            history: port(
                observed.with_role(Role::History).next(),
                labels::SERVICE_PORT,
            )
            .map(|p| http(LOCAL_HOST, p)),
            connect_client: connect_url.as_ref().and(reference).map(connect_client),
            connect: connect_url,
        }
    }

    /// The URL `status` shows beside one container.
    pub fn of_container(&self, c: &ContainerState) -> Option<String> {
        let view = Labelled(&c.labels);
        match view.role() {
            Some(Role::Jupyter) => jupyter_of(c, LOCAL_HOST),
            Some(Role::History) => self.history.clone(),
            Some(Role::Connect) => self.connect.clone(),
            _ => view.port(labels::UI_PORT).map(|p| http(LOCAL_HOST, p)),
        }
    }
}

/// One Jupyter server of a cluster, with its URL: a line of the roster.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Seat {
    /// Student number (0 for the one Jupyter of a cluster without students).
    pub student: u32,
    /// Its container.
    pub container: String,
    /// JupyterLab with the token.
    pub url: String,
    /// The token alone.
    pub token: String,
    /// Where the student's notebooks live (kept by `down`).
    pub notebooks_volume: String,
    /// running, exited, …
    pub state: String,
}

/// Each node's address by hostname, for the nodes other than the one
/// sparkbox talks to (whose ports this machine reaches as today).
pub fn other_node_addresses(
    nodes: &[crate::engine::SwarmNode],
) -> std::collections::HashMap<String, String> {
    nodes
        .iter()
        .filter(|n| !n.is_self)
        .map(|n| (n.hostname.clone(), n.address.clone()))
        .collect()
}

/// The seats of a cluster's Jupyter containers, by student number; `host` is
/// the address students reach this machine by.
pub fn seats(observed: &Observed, host: &str) -> Vec<Seat> {
    seats_on(observed, host, &std::collections::HashMap::new())
}

/// [`seats`] of a cluster on a swarm: a Jupyter server on another node is
/// reached at that node's address (`node_addresses`: hostname → address of
/// each node but the one `host` names).
pub fn seats_on(
    observed: &Observed,
    host: &str,
    node_addresses: &std::collections::HashMap<String, String>,
) -> Vec<Seat> {
    observed
        .jupyters()
        .into_iter()
        .filter_map(|(student, c)| {
            let view = Labelled(&c.labels);
            let host = c
                .node
                .as_ref()
                .and_then(|n| node_addresses.get(n))
                .filter(|a| !a.is_empty())
                .map(String::as_str)
                .unwrap_or(host);
            Some(Seat {
                student,
                container: c.name.clone(),
                url: jupyter_of(c, host)?,
                token: view.token()?.to_string(),
                notebooks_volume: view.get(labels::NOTEBOOKS).unwrap_or_default().to_string(),
                state: c.state.clone(),
            })
        })
        .collect()
}
