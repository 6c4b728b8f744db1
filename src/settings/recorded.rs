//! What an existing cluster was made with, read back from its labels: the
//! third layer of the settings (flags, then `sparkbox.toml`, then this, then
//! the defaults), so that healing a cluster never reconfigures it.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::model::labels::{self, Labelled};
use crate::model::spec::{AppSettings, Role};

/// The settings an existing cluster's containers carry. A field is None when
/// no container records it (a cluster made by an older sparkbox, or the
/// containers that held it are gone); the next layer then decides.
#[derive(Debug, Clone, Default, PartialEq)]
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
}

impl Recorded {
    /// Reads the record from the label maps of a cluster's containers; None
    /// when there are none (nothing exists to keep as it is).
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
            spark_version: first(labels::SPARK_VERSION),
            base_image: first(labels::BASE_IMAGE),
            python_packages: first(labels::PYTHON_PACKAGES)
                .and_then(|p| serde_json::from_str(&p).ok()),
            data: first(labels::DATA_DIR).map(PathBuf::from),
            bind: first(labels::BIND),
            history: Some(with_role(Role::History).next().is_some()),
            connect: Some(with_role(Role::Connect).next().is_some()),
            students,
            apps: first_jupyter
                .and_then(|j| j.get(labels::APPS))
                .and_then(|a| serde_json::from_str(a).ok()),
            notebooks,
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
            (labels::SPARK_VERSION, "3.5.9"),
            (labels::PYTHON_PACKAGES, "[\"tabulate==0.9.0\"]"),
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
            (
                labels::APPS,
                "{\"cores\":1,\"executor_memory_mb\":null,\"conf\":{}}",
            ),
        ]);
        let history = labels(&[(labels::ROLE, "history")]);
        let r = Recorded::from_labels([&master, &w1, &w3, &j2, &history]).expect("a record");
        assert_eq!(r.workers, Some(3));
        assert_eq!((r.cores, r.memory_mb), (Some(2), Some(1536)));
        assert_eq!(r.spark_version.as_deref(), Some("3.5.9"));
        assert_eq!(r.python_packages, Some(vec!["tabulate==0.9.0".to_string()]));
        assert_eq!(r.data, Some(PathBuf::from("/srv/data")));
        assert_eq!(r.bind.as_deref(), Some("0.0.0.0"));
        assert_eq!((r.history, r.connect), (Some(true), Some(false)));
        assert_eq!(r.students, Some(2));
        assert_eq!(r.notebooks.as_deref(), Some("class-notebooks"));
        assert_eq!(r.apps.and_then(|a| a.cores), Some(1));
    }
}
