//! What an existing cluster was made with, read back from its labels: the
//! third layer of the settings (flags, then `sparkbox.toml`, then this, then
//! the defaults), so that healing a cluster never reconfigures it.
//!
//! Every container carries the whole record as one label
//! ([`labels::RECORD`], left out of the config hash), written when it is
//! made; the newest container's is the cluster's newest record, so removing
//! a container loses nothing unless it was the only one a change remade (the
//! README lists such cases). Counts are read from what exists (the
//! highest worker and student numbers), since scaling down makes no
//! container that could record it; Spark Connect, which no other container
//! depends on, likewise counts when its container exists.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::model::labels::{self, Labelled};
use crate::model::spec::{AppSettings, ClusterSpec, Role};

/// The settings an existing cluster's containers carry. A field is None when
/// no container records it (a cluster made by an older sparkbox, or the
/// containers that held it are gone); the next layer then decides.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Recorded {
    /// The highest worker number that exists (a removed worker in the middle
    /// of the range is healed, not dropped).
    pub workers: Option<u32>,
    /// Cores per worker.
    pub cores: Option<u32>,
    /// Memory per worker in MiB.
    pub memory_mb: Option<u64>,
    /// Spark release of the image.
    pub spark_version: Option<String>,
    /// Base image of the image.
    pub base_image: Option<String>,
    /// Extra Python packages of the image.
    pub python_packages: Option<Vec<String>>,
    /// The host directory mounted at /data.
    pub data: Option<PathBuf>,
    /// The address ports are published on.
    pub bind: Option<String>,
    /// Whether a history server runs.
    pub history: Option<bool>,
    /// Whether a Spark Connect server runs.
    pub connect: Option<bool>,
    /// Students (0: one Jupyter without students).
    pub students: Option<u32>,
    /// `[apps]`, as the Jupyter servers were made with it.
    pub apps: Option<AppSettings>,
    /// The notebooks volume of the (first) Jupyter server.
    pub notebooks: Option<String>,
    /// On a swarm: its workers per node (None: one engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swarm: Option<u32>,
}

impl Recorded {
    /// The record a container of `spec` carries.
    pub fn of_spec(spec: &ClusterSpec) -> Recorded {
        Recorded {
            workers: Some(spec.workers),
            cores: Some(spec.worker_cores),
            memory_mb: Some(spec.worker_memory_mb),
            spark_version: Some(spec.image.entry.spark.to_string()),
            base_image: Some(spec.image.base_image.clone()),
            python_packages: Some(spec.image.extra_packages.clone()),
            data: spec.data_dir.clone(),
            bind: Some(spec.bind_address.clone()),
            history: Some(spec.history.is_some()),
            connect: Some(spec.connect.is_some()),
            students: Some(spec.students),
            apps: Some(spec.apps.clone()),
            notebooks: Some(spec.notebooks_volume.clone()),
            swarm: spec.swarm.map(|s| s.workers_per_node),
        }
    }

    /// The record as the label value.
    pub fn to_label(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads the record of a cluster from its containers' label maps and
    /// creation times; None when there are none (nothing exists to keep).
    pub fn from_containers<'a>(
        containers: impl IntoIterator<Item = (&'a HashMap<String, String>, i64)>,
    ) -> Option<Recorded> {
        let containers: Vec<(&HashMap<String, String>, i64)> = containers.into_iter().collect();
        let derived = Recorded::from_labels(containers.iter().map(|(l, _)| *l))?;
        let newest = containers
            .iter()
            .filter_map(|(l, created)| {
                let record: Recorded =
                    serde_json::from_str(Labelled(l).get(labels::RECORD)?).ok()?;
                Some((*created, record))
            })
            // The first of equal times: the engine lists the newest first,
            // and its times are whole seconds.
            .fold(
                None,
                |best: Option<(i64, Recorded)>, (created, r)| match best {
                    Some((t, b)) if t >= created => Some((t, b)),
                    _ => Some((created, r)),
                },
            )
            .map(|(_, r)| r);
        let Some(r) = newest else {
            return Some(derived);
        };
        Some(Recorded {
            workers: derived.workers.or(r.workers),
            students: derived.students.or(r.students),
            connect: derived.connect,
            cores: r.cores.or(derived.cores),
            memory_mb: r.memory_mb.or(derived.memory_mb),
            spark_version: r.spark_version.or(derived.spark_version),
            base_image: r.base_image.or(derived.base_image),
            python_packages: r.python_packages.or(derived.python_packages),
            data: r.data.or(derived.data),
            bind: r.bind.or(derived.bind),
            history: r.history.or(derived.history),
            apps: r.apps.or(derived.apps),
            notebooks: r.notebooks.or(derived.notebooks),
            // Where the objects are is what they are: services or containers.
            swarm: derived.swarm.map(|d| r.swarm.unwrap_or(d)),
        })
    }

    /// The record as the per-setting labels tell it (clusters made before
    /// the record label, and the counts): None without containers.
    pub fn from_labels<'a>(
        containers: impl IntoIterator<Item = &'a HashMap<String, String>>,
    ) -> Option<Recorded> {
        let views: Vec<Labelled<'a>> = containers.into_iter().map(Labelled).collect();
        if views.is_empty() {
            return None;
        }
        let with_role = |role: Role| views.iter().filter(move |v| v.role() == Some(role));
        // Cluster-wide values: the master's first (it is recreated whenever
        // they change), else any container's.
        let ordered: Vec<&Labelled> = with_role(Role::Master)
            .chain(views.iter().filter(|v| v.role() != Some(Role::Master)))
            .collect();
        let first = |key: &str| ordered.iter().find_map(|v| v.get(key)).map(str::to_string);
        let workers = with_role(Role::Worker).filter_map(|v| v.index()).max();
        let worker = with_role(Role::Worker).min_by_key(|v| v.index().unwrap_or(u32::MAX));
        let jupyters: Vec<&Labelled> = with_role(Role::Jupyter).collect();
        let students = (!jupyters.is_empty())
            .then(|| jupyters.iter().filter_map(|v| v.index()).max().unwrap_or(0));
        let first_jupyter = jupyters
            .iter()
            .min_by_key(|v| v.index().unwrap_or(0))
            .copied();
        let notebooks = first_jupyter.and_then(|j| {
            let volume = j.get(labels::NOTEBOOKS)?;
            // A student's volume is the classroom's name plus "-N".
            Some(match j.index() {
                Some(n) => volume
                    .strip_suffix(&format!("-{n}"))
                    .unwrap_or(volume)
                    .to_string(),
                None => volume.to_string(),
            })
        });
        Some(Recorded {
            workers,
            cores: worker.and_then(|w| w.number(labels::WORKER_CORES)),
            memory_mb: worker.and_then(|w| w.number(labels::WORKER_MEMORY)),
            // The image and [apps] are in the record label alone.
            spark_version: None,
            base_image: None,
            python_packages: None,
            data: first(labels::DATA_DIR).map(PathBuf::from),
            bind: first(labels::BIND),
            history: Some(with_role(Role::History).next().is_some()),
            connect: Some(with_role(Role::Connect).next().is_some()),
            students,
            apps: None,
            notebooks,
            swarm: (first(labels::ENGINE).as_deref() == Some(labels::ENGINE_SWARM)).then(|| {
                first(labels::WORKERS_PER_NODE)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1)
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn nothing_recorded_without_containers() {
        assert_eq!(Recorded::from_labels(std::iter::empty()), None);
    }

    #[test]
    fn the_record_is_read_from_every_role() {
        let master = labels(&[
            (labels::ROLE, "master"),
            (labels::DATA_DIR, "/srv/data"),
            (labels::BIND, "0.0.0.0"),
        ]);
        let w1 = labels(&[
            (labels::ROLE, "worker"),
            (labels::INDEX, "1"),
            (labels::WORKER_CORES, "2"),
            (labels::WORKER_MEMORY, "1536"),
        ]);
        // Worker 2 was removed behind sparkbox's back: worker 3 still counts.
        let w3 = labels(&[(labels::ROLE, "worker"), (labels::INDEX, "3")]);
        let j2 = labels(&[
            (labels::ROLE, "jupyter"),
            (labels::INDEX, "2"),
            (labels::NOTEBOOKS, "class-notebooks-2"),
        ]);
        let history = labels(&[(labels::ROLE, "history")]);
        let r = Recorded::from_labels([&master, &w1, &w3, &j2, &history]).expect("a record");
        assert_eq!(r.workers, Some(3));
        assert_eq!((r.cores, r.memory_mb), (Some(2), Some(1536)));
        assert_eq!(r.data, Some(PathBuf::from("/srv/data")));
        assert_eq!(r.bind.as_deref(), Some("0.0.0.0"));
        assert_eq!((r.history, r.connect), (Some(true), Some(false)));
        assert_eq!(r.students, Some(2));
        assert_eq!(r.notebooks.as_deref(), Some("class-notebooks"));
    }

    #[test]
    fn the_newest_record_wins_and_counts_are_what_exists() {
        let old = Recorded {
            workers: Some(5),
            cores: Some(1),
            history: Some(false),
            data: Some(PathBuf::from("/old")),
            ..Default::default()
        };
        let new = Recorded {
            workers: Some(5),
            cores: Some(2),
            history: Some(true),
            data: Some(PathBuf::from("/new")),
            connect: Some(true),
            ..Default::default()
        };
        let master = labels(&[(labels::ROLE, "master"), (labels::RECORD, &old.to_label())]);
        let w1 = labels(&[
            (labels::ROLE, "worker"),
            (labels::INDEX, "1"),
            (labels::RECORD, &new.to_label()),
        ]);
        let w2 = labels(&[(labels::ROLE, "worker"), (labels::INDEX, "2")]);
        let r =
            Recorded::from_containers([(&master, 100), (&w1, 200), (&w2, 300)]).expect("a record");
        assert_eq!(r.cores, Some(2), "the newest record");
        assert_eq!(r.history, Some(true));
        assert_eq!(r.data, Some(PathBuf::from("/new")));
        assert_eq!(
            r.workers,
            Some(2),
            "the workers that exist, not a record's count"
        );
        assert_eq!(
            r.connect,
            Some(false),
            "Connect counts when its container exists"
        );
        // Without any record label, the per-setting labels.
        let r = Recorded::from_containers([(&w2, 1)]).expect("a record");
        assert_eq!((r.workers, r.cores), (Some(2), None));
    }
}
