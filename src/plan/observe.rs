//! One snapshot of what exists for a cluster, found by labels only.

use std::collections::BTreeMap;

use crate::engine::{ContainerState, Engine};
use crate::error::Result;
use crate::model::labels::{self, Labelled};
use crate::model::record::Recorded;
use crate::model::spec::Role;

/// What the cluster `cluster` was made with, from its containers alone
/// (one list call); None when it has none.
pub async fn read_record<E: Engine>(engine: &E, cluster: &str) -> Result<Option<Recorded>> {
    let containers = engine.containers(&[(labels::CLUSTER, cluster)]).await?;
    Ok(record_of(&containers))
}

/// The record these containers of one cluster keep in their labels.
pub fn record_of(containers: &[ContainerState]) -> Option<Recorded> {
    Recorded::from_containers(containers.iter().map(|c| (&c.labels, c.created)))
}

/// What the engine holds for one cluster.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Whether the image the spec wants is present.
    pub image_present: bool,
    /// Networks of the cluster.
    pub networks: Vec<String>,
    /// Volumes of the cluster.
    pub volumes: Vec<String>,
    /// Containers of the cluster, in any state.
    pub containers: Vec<ContainerState>,
}

impl Observed {
    /// Reads the cluster's objects (and whether `image_tag` exists).
    pub async fn read<E: Engine>(
        engine: &E,
        cluster: &str,
        image_tag: Option<&str>,
    ) -> Result<Observed> {
        let filter = [(labels::CLUSTER, cluster)];
        let (containers, networks, volumes) = tokio::try_join!(
            engine.containers(&filter),
            engine.networks(&filter),
            engine.volumes(&filter)
        )?;
        let image_present = match image_tag {
            Some(tag) => engine.image(tag).await?.is_some(),
            None => false,
        };
        Ok(Observed {
            image_present,
            networks,
            volumes,
            containers,
        })
    }

    /// The containers with `role`.
    pub fn with_role(&self, role: Role) -> impl Iterator<Item = &ContainerState> {
        self.containers
            .iter()
            .filter(move |c| Labelled(&c.labels).role() == Some(role))
    }

    /// The master container, if any.
    pub fn master(&self) -> Option<&ContainerState> {
        self.with_role(Role::Master).next()
    }

    /// The first Jupyter container (the only one without students), if any.
    pub fn jupyter(&self) -> Option<&ContainerState> {
        self.jupyters().into_values().next()
    }

    /// Jupyter containers by student number (0: the one of a cluster
    /// without students).
    pub fn jupyters(&self) -> BTreeMap<u32, &ContainerState> {
        self.with_role(Role::Jupyter)
            .map(|c| {
                let index = c
                    .labels
                    .get(labels::INDEX)
                    .and_then(|i| i.parse().ok())
                    .unwrap_or(0);
                (index, c)
            })
            .collect()
    }

    /// The optional services' containers (history server, Spark Connect).
    pub fn extras(&self) -> impl Iterator<Item = &ContainerState> {
        self.with_role(Role::History)
            .chain(self.with_role(Role::Connect))
    }

    /// Worker containers by their number.
    pub fn workers(&self) -> BTreeMap<u32, &ContainerState> {
        self.with_role(Role::Worker)
            .filter_map(|c| {
                c.labels
                    .get(labels::INDEX)
                    .and_then(|i| i.parse().ok())
                    .map(|i| (i, c))
            })
            .collect()
    }

    /// True when nothing of the cluster exists.
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.networks.is_empty() && self.volumes.is_empty()
    }
}
