//! `sparkbox.toml`: the compose-style cluster file, and the settings that
//! result from it, the command line and the defaults (in that order of
//! precedence: flags, then the file, then defaults).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cli::{ClusterArgs, NameArg};
use crate::error::{Error, Result};
use crate::model::spec;

/// The file looked for in the current directory when `-f` is not given.
pub const DEFAULT_FILE: &str = "sparkbox.toml";

/// Every key the file accepts, shown with each error about an unknown key or
/// a wrong type.
pub const ACCEPTED_KEYS: &str = "\
[cluster] name (string), workers (integer), cores (integer), memory (string, e.g. \"1g\"), timeout (seconds), history (bool), connect (bool), bind (address), engine (\"local\" or \"swarm\"), workers_per_node (integer)
[image]   spark_version (string), base_image (string), debian_mirror (string), ca_bundle (path), python_packages (list of strings), registry (string)
[ports]   master_ui, jupyter, app_ui, history, connect (integers)
[jupyter] token (string)
[apps]    cores (integer), executor_memory (string), conf (table of \"spark.key\" = \"value\")
[volumes] notebooks (volume name), data (host directory)
[classroom] students (integer)";

/// `[cluster]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSection {
    /// Cluster name.
    pub name: Option<String>,
    /// Number of workers.
    pub workers: Option<u32>,
    /// Cores per worker.
    pub cores: Option<u32>,
    /// Memory per worker (Spark syntax).
    pub memory: Option<String>,
    /// Seconds `up` waits for readiness.
    pub timeout: Option<u64>,
    /// Run a history server.
    pub history: Option<bool>,
    /// Run a Spark Connect server.
    pub connect: Option<bool>,
    /// Publish ports on this address.
    pub bind: Option<String>,
    /// "local" (one engine) or "swarm" (services on a swarm).
    pub engine: Option<String>,
    /// On a swarm: at most this many workers per node.
    pub workers_per_node: Option<u32>,
}

/// `[classroom]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClassroomSection {
    /// One Jupyter server per student.
    pub students: Option<u32>,
}

/// `[image]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ImageSection {
    /// Spark release.
    pub spark_version: Option<String>,
    /// Base image of the build.
    pub base_image: Option<String>,
    /// Debian mirror for making the base image offline.
    pub debian_mirror: Option<String>,
    /// CA bundle for apt and pip during the build (relative to the file).
    pub ca_bundle: Option<PathBuf>,
    /// Extra Python packages for every container.
    pub python_packages: Option<Vec<String>>,
    /// A registry to pull the image from before building it.
    pub registry: Option<String>,
}

/// `[ports]`: a port given here is fixed, like the flag.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PortsSection {
    /// Master web UI.
    pub master_ui: Option<u16>,
    /// JupyterLab.
    pub jupyter: Option<u16>,
    /// Application (driver) UI.
    pub app_ui: Option<u16>,
    /// History server UI.
    pub history: Option<u16>,
    /// Spark Connect server.
    pub connect: Option<u16>,
}

/// `[jupyter]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct JupyterSection {
    /// A fixed token (default: a random one, kept for the cluster's life).
    pub token: Option<String>,
}

/// `[apps]`: defaults for every application the cluster runs.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AppsSection {
    /// Cores an application gets unless it asks (spark.deploy.defaultCores
    /// on the master, spark.cores.max for the cluster's drivers).
    pub cores: Option<u32>,
    /// spark.executor.memory for the cluster's drivers.
    pub executor_memory: Option<String>,
    /// Any other spark-defaults for the cluster's drivers.
    pub conf: Option<BTreeMap<String, String>>,
}

/// `[volumes]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct VolumesSection {
    /// Named volume holding the notebooks (default "<cluster>-notebooks").
    pub notebooks: Option<String>,
    /// Host directory mounted at /data in every container (relative to the file).
    pub data: Option<PathBuf>,
}

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    /// `[cluster]`.
    pub cluster: ClusterSection,
    /// `[image]`.
    pub image: ImageSection,
    /// `[ports]`.
    pub ports: PortsSection,
    /// `[jupyter]`.
    pub jupyter: JupyterSection,
    /// `[apps]`.
    pub apps: AppsSection,
    /// `[volumes]`.
    pub volumes: VolumesSection,
    /// `[classroom]`.
    pub classroom: ClassroomSection,
}

/// A loaded file (or none) and where relative paths in it start from.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The file read, if any.
    pub path: Option<PathBuf>,
    /// Its contents.
    pub file: FileConfig,
}

/// 1-based line and column of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

/// Parses the text of a cluster file; `path` names it in errors.
pub fn parse(text: &str, path: &Path) -> Result<FileConfig> {
    toml::from_str(text).map_err(|e| {
        let place = match e.span() {
            Some(span) => {
                let (line, column) = line_column(text, span.start);
                format!("{}:{line}:{column}", path.display())
            }
            None => path.display().to_string(),
        };
        let message = e.message().trim().replace('\n', " ");
        Error::InvalidInput(format!(
            "{place}: {message}\nthe accepted keys are:\n{ACCEPTED_KEYS}"
        ))
    })
}

impl Config {
    /// Loads `-f FILE`, or ./sparkbox.toml when it exists, or nothing.
    pub fn load(explicit: Option<&Path>) -> Result<Config> {
        let path = match explicit {
            Some(p) => {
                if !p.is_file() {
                    return Err(Error::InvalidInput(format!(
                        "cluster file {} does not exist — check the path given to -f (or SPARKBOX_FILE), or drop it to use ./{DEFAULT_FILE}",
                        p.display()
                    )));
                }
                p.to_path_buf()
            }
            None => {
                let p = PathBuf::from(DEFAULT_FILE);
                if !p.is_file() {
                    return Ok(Config::default());
                }
                p
            }
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::InvalidInput(format!(
                "cannot read cluster file {}: {e} — check its permissions",
                path.display()
            ))
        })?;
        let file = parse(&text, &path)?;
        Ok(Config {
            path: Some(path),
            file,
        })
    }

    /// The directory relative paths in the file start from.
    pub fn base_dir(&self) -> PathBuf {
        let dir = self
            .path
            .as_deref()
            .and_then(Path::parent)
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        std::path::absolute(&dir).unwrap_or(dir)
    }

    fn relative(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir().join(p)
        }
    }

    /// What a file value is called in errors: "sparkbox.toml [cluster] workers".
    fn key(&self, section: &str, key: &str) -> String {
        match &self.path {
            Some(p) => format!("{} [{section}] {key}", p.display()),
            None => format!("[{section}] {key}"),
        }
    }

    /// How a file value is introduced in errors: "sparkbox.toml [cluster] workers =".
    fn assign(&self, section: &str, key: &str) -> String {
        format!("{} =", self.key(section, key))
    }

    /// The image settings: flags over the file over the defaults (extra
    /// packages from both).
    pub fn image_settings(&self, args: &crate::cli::ImageArgs) -> ImageSettings {
        let f = &self.file.image;
        let mut python_packages = f.python_packages.clone().unwrap_or_default();
        for p in &args.python_packages {
            if !python_packages.contains(p) {
                python_packages.push(p.clone());
            }
        }
        ImageSettings {
            spark_version: args
                .spark_version
                .clone()
                .or_else(|| f.spark_version.clone())
                .unwrap_or_else(|| crate::model::versions::default_entry().spark.to_string()),
            base_image: args
                .base_image
                .clone()
                .or_else(|| f.base_image.clone())
                .unwrap_or_else(|| crate::model::recipe::DEFAULT_BASE_IMAGE.to_string()),
            debian_mirror: args
                .debian_mirror
                .clone()
                .or_else(|| f.debian_mirror.clone()),
            ca_bundle: args
                .ca_bundle
                .clone()
                .or_else(|| f.ca_bundle.as_deref().map(|p| self.relative(p))),
            python_packages,
            registry: args.registry.clone().or_else(|| f.registry.clone()),
        }
    }

    /// Seconds to wait for readiness: --timeout, then the file, then 180 (at least 1).
    pub fn timeout(&self, flag: Option<u64>) -> u64 {
        flag.or(self.file.cluster.timeout)
            .unwrap_or(DEFAULT_TIMEOUT)
            .max(1)
    }

    /// The cluster name: --name / SPARKBOX_NAME, then the file, then "sparkbox".
    pub fn cluster_name(&self, arg: &NameArg) -> Result<String> {
        match (&arg.name, &self.file.cluster.name) {
            (Some(name), _) => spec::validate_cluster_name(name).map(|()| name.clone()),
            (None, Some(name)) => {
                spec::check_cluster_name(name, Some(&self.assign("cluster", "name")))
                    .map(|()| name.clone())
            }
            (None, None) => Ok(spec::DEFAULT_CLUSTER.to_string()),
        }
    }
}

/// The image part of the settings.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ImageSettings {
    /// Spark release (as asked; resolved against the matrix when building).
    pub spark_version: String,
    /// Base image.
    pub base_image: String,
    /// Debian mirror for debootstrap (None: the host's apt configuration).
    pub debian_mirror: Option<String>,
    /// CA bundle (None: found on the host).
    pub ca_bundle: Option<PathBuf>,
    /// Extra Python packages.
    pub python_packages: Vec<String>,
    /// The registry to pull from (and push to), as given.
    pub registry: Option<String>,
}

impl ImageSettings {
    /// The registry, checked (None when none is set).
    pub fn registry(&self) -> Result<Option<crate::model::registry::Registry>> {
        self.registry
            .as_deref()
            .filter(|r| !r.is_empty())
            .map(crate::model::registry::Registry::parse)
            .transpose()
    }

    /// The image recipe these settings describe (the Spark release checked
    /// against the version matrix, the packages checked as pip requirements).
    pub fn recipe(&self) -> Result<crate::model::recipe::ImageRecipe> {
        let entry = crate::model::versions::lookup(&self.spark_version)?;
        crate::model::recipe::ImageRecipe::new(
            entry,
            Some(self.base_image.clone()),
            self.python_packages.clone(),
        )
    }

    /// How this machine builds it: the CA bundle and mirror, `force` to
    /// rebuild a present image, `no_cache` to ignore the builder's cache.
    pub fn build_settings(
        &self,
        force: bool,
        no_cache: bool,
    ) -> Result<crate::image::BuildSettings> {
        Ok(crate::image::BuildSettings {
            ca_bundle: self.ca_bundle.clone(),
            debian_mirror: self.debian_mirror.clone(),
            force: force || no_cache,
            no_cache,
            registry: self.registry()?,
        })
    }
}

/// One host port: fixed by the user, or a default that moves when taken.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PortSetting {
    /// The port tried first.
    pub port: u16,
    /// True when the user fixed it (a taken port is then an error).
    pub fixed: bool,
}

impl PortSetting {
    /// As a [`spec::PortChoice`].
    pub fn choice(&self) -> spec::PortChoice {
        if self.fixed {
            spec::PortChoice::Fixed(self.port)
        } else {
            spec::PortChoice::Auto(self.port)
        }
    }
}

/// Host ports.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PortSettings {
    /// Master web UI.
    pub master_ui: PortSetting,
    /// JupyterLab.
    pub jupyter: PortSetting,
    /// Application UI.
    pub app_ui: PortSetting,
    /// History server UI.
    pub history: PortSetting,
    /// Spark Connect server.
    pub connect: PortSetting,
}

pub use crate::model::record::Recorded;
pub use crate::model::spec::AppSettings;

/// Volumes and mounts.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VolumeSettings {
    /// Named volume holding the notebooks.
    pub notebooks: String,
    /// Host directory mounted at /data everywhere.
    pub data: Option<PathBuf>,
}

/// Optional services.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct ServiceSettings {
    /// Run a history server.
    pub history: bool,
    /// Run a Spark Connect server.
    pub connect: bool,
}

/// Everything `up` needs, resolved: what `sparkbox config` prints.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Settings {
    /// The file these came from, if any.
    pub file: Option<PathBuf>,
    /// Cluster name.
    pub name: String,
    /// Workers.
    pub workers: u32,
    /// Cores per worker.
    pub cores: u32,
    /// Memory per worker in MiB.
    pub memory_mb: u64,
    /// Seconds `up` waits.
    pub timeout: u64,
    /// The image.
    pub image: ImageSettings,
    /// Host ports.
    pub ports: PortSettings,
    /// A fixed Jupyter token (None: random, kept for the cluster's life).
    pub jupyter_token: Option<String>,
    /// Per-application defaults.
    pub apps: AppSettings,
    /// Volumes.
    pub volumes: VolumeSettings,
    /// Optional services.
    pub services: ServiceSettings,
    /// Address the ports are published on.
    pub bind: String,
    /// Jupyter servers for students (0: one Jupyter).
    pub students: u32,
    /// On a swarm: at most this many workers per node (None: one engine).
    pub swarm: Option<u32>,
}

/// Default seconds `up` waits.
pub const DEFAULT_TIMEOUT: u64 = 180;
/// Default workers.
pub const DEFAULT_WORKERS: u32 = 2;
/// The shared data directory's default name, next to the file or in the
/// current directory.
pub const DEFAULT_DATA_DIR: &str = "data";
/// Default memory per worker.
pub const DEFAULT_MEMORY: &str = "1g";

/// `[ports]` keys and their flags, in the order of [`PortSettings`].
const PORT_KEYS: [(&str, &str); 5] = [
    ("master_ui", "--master-ui-port"),
    ("jupyter", "--jupyter-port"),
    ("app_ui", "--app-ui-port"),
    ("history", "--history-port"),
    ("connect", "--connect-port"),
];

fn port(flag: Option<u16>, file: Option<u16>, default: u16) -> PortSetting {
    match flag.or(file) {
        Some(port) => PortSetting { port, fixed: true },
        None => PortSetting {
            port: default,
            fixed: false,
        },
    }
}

impl Settings {
    /// Flags over the file over the defaults, validated.
    pub fn resolve(config: &Config, args: &ClusterArgs) -> Result<Settings> {
        Settings::resolve_over(config, args, None)
    }

    /// Flags, then the file, then what the existing cluster was made with
    /// (`recorded`), then the defaults — validated. Healing a cluster with
    /// nothing said therefore changes nothing but what is broken.
    pub fn resolve_over(
        config: &Config,
        args: &ClusterArgs,
        recorded: Option<&Recorded>,
    ) -> Result<Settings> {
        let f = &config.file;
        let none = Recorded::default();
        let rec = recorded.unwrap_or(&none);
        let in_file = |section: &str, key: &str, e: Error| -> Error {
            match e {
                // "--flag VALUE is ..." becomes "FILE [section] key = VALUE is ...".
                Error::InvalidInput(m) => {
                    match m.strip_prefix("--").and_then(|r| r.split_once(' ')) {
                        Some((_, rest)) => {
                            Error::InvalidInput(format!("{} {rest}", config.assign(section, key)))
                        }
                        None => Error::InvalidInput(format!("{}: {m}", config.key(section, key))),
                    }
                }
                e @ Error::UnknownSparkVersion { .. } => {
                    Error::InvalidInput(format!("{}: {e}", config.key(section, key)))
                }
                other => other,
            }
        };
        // A refusal worded for the flag, told of whoever gave the value:
        // the flag as it is, the file by its key, or the existing cluster.
        let blame = |flag: bool, file: bool, section: &str, key: &str, e: Error| -> Error {
            match e {
                _ if flag => e,
                e if file => in_file(section, key, e),
                Error::InvalidInput(m) => {
                    Error::InvalidInput(format!("the existing cluster's {m}"))
                }
                other => other,
            }
        };
        let name = config.cluster_name(&args.name)?;
        let workers = match args.workers {
            Some(w) => w,
            None => f.cluster.workers.or(rec.workers).unwrap_or(DEFAULT_WORKERS),
        };
        spec::validate_workers(workers).map_err(|e| {
            let file = f.cluster.workers.is_some();
            blame(args.workers.is_some(), file, "cluster", "workers", e)
        })?;
        let cores = args.cores.or(f.cluster.cores).or(rec.cores).unwrap_or(1);
        spec::validate_cores(cores).map_err(|e| {
            let file = f.cluster.cores.is_some();
            blame(args.cores.is_some(), file, "cluster", "cores", e)
        })?;
        let memory_mb = match (&args.memory, &f.cluster.memory) {
            (Some(m), _) => spec::parse_memory_mb(m)?,
            (None, Some(m)) => {
                spec::parse_memory_mb(m).map_err(|e| in_file("cluster", "memory", e))?
            }
            (None, None) => match rec.memory_mb {
                Some(mb) => mb,
                None => spec::parse_memory_mb(DEFAULT_MEMORY)?,
            },
        };
        let timeout = config.timeout(args.timeout);
        let mut image = config.image_settings(&args.image);
        if args.image.spark_version.is_none() && f.image.spark_version.is_none() {
            if let Some(v) = &rec.spark_version {
                image.spark_version.clone_from(v);
            }
        }
        if args.image.base_image.is_none() && f.image.base_image.is_none() {
            if let Some(b) = &rec.base_image {
                image.base_image.clone_from(b);
            }
        }
        // The file's list (an empty one too) replaces the record's; flags
        // add to whichever holds.
        if f.image.python_packages.is_none() {
            if let Some(p) = &rec.python_packages {
                let mut packages = p.clone();
                for extra in &args.image.python_packages {
                    if !packages.contains(extra) {
                        packages.push(extra.clone());
                    }
                }
                image.python_packages = packages;
            }
        }
        // The file's image values, checked here so that a refusal names them.
        if args.image.base_image.is_none() {
            if let Some(base) = &f.image.base_image {
                crate::model::recipe::ImageRecipe::new(
                    crate::model::versions::default_entry(),
                    Some(base.clone()),
                    vec![],
                )
                .map_err(|e| in_file("image", "base_image", e))?;
            }
        }
        for package in f.image.python_packages.iter().flatten() {
            crate::model::recipe::validate_package_spec(package)
                .map_err(|e| in_file("image", "python_packages", e))?;
        }
        if args.image.registry.is_none() {
            if let Some(registry) = f.image.registry.as_deref().filter(|r| !r.is_empty()) {
                crate::model::registry::Registry::parse(registry)
                    .map_err(|e| in_file("image", "registry", e))?;
            }
        }
        // "3.5" means the newest supported 3.5 release: print what will run.
        let from_record = args.image.spark_version.is_none() && f.image.spark_version.is_none();
        image.spark_version = crate::model::versions::lookup(&image.spark_version)
            .map_err(|e| match (&args.image.spark_version, from_record) {
                (Some(_), _) => e,
                (None, false) => in_file("image", "spark_version", e),
                (None, true) => Error::InvalidInput(format!(
                    "the existing cluster {name} was made with Spark {}, which this sparkbox does not build: {e} — pass --spark-version to move it to a supported release (its containers are made anew; notebooks and data are kept)",
                    image.spark_version
                )),
            })?
            .spark
            .to_string();
        let ports = PortSettings {
            master_ui: port(
                args.master_ui_port,
                f.ports.master_ui,
                spec::DEFAULT_MASTER_UI_PORT,
            ),
            jupyter: port(
                args.jupyter_port,
                f.ports.jupyter,
                spec::DEFAULT_JUPYTER_PORT,
            ),
            app_ui: port(args.app_ui_port, f.ports.app_ui, spec::DEFAULT_APP_UI_PORT),
            history: port(
                args.history_port,
                f.ports.history,
                spec::DEFAULT_HISTORY_PORT,
            ),
            connect: port(
                args.connect_port,
                f.ports.connect,
                spec::DEFAULT_CONNECT_PORT,
            ),
        };
        let given = [
            args.master_ui_port,
            args.jupyter_port,
            args.app_ui_port,
            args.history_port,
            args.connect_port,
        ];
        let chosen = [
            &ports.master_ui,
            &ports.jupyter,
            &ports.app_ui,
            &ports.history,
            &ports.connect,
        ];
        for ((&(key, flag_name), flag), p) in PORT_KEYS.iter().zip(given).zip(chosen) {
            if p.port < 1024 {
                let e = Error::InvalidInput(format!(
                    "{flag_name} {} is a privileged port — give one from 1024 to 65535",
                    p.port
                ));
                return Err(blame(flag.is_some(), true, "ports", key, e));
            }
        }
        let jupyter_token = f.jupyter.token.clone();
        if let Some(t) = &jupyter_token {
            let ok = t.len() >= 8
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok {
                return Err(Error::InvalidInput(format!(
                    "{}: a token needs at least 8 letters, digits, '-' or '_' — or remove the key for a random one",
                    config.key("jupyter", "token")
                )));
            }
        }
        if let Some(c) = f.apps.cores {
            spec::validate_cores(c).map_err(|e| in_file("apps", "cores", e))?;
        }
        let rec_apps = rec.apps.clone().unwrap_or_default();
        let executor_memory_mb = match &f.apps.executor_memory {
            Some(m) => {
                Some(spec::parse_memory_mb(m).map_err(|e| in_file("apps", "executor_memory", e))?)
            }
            None => rec_apps.executor_memory_mb,
        };
        if let Some(mb) = executor_memory_mb {
            if mb > memory_mb {
                let holder = match &f.apps.executor_memory {
                    Some(_) => config.key("apps", "executor_memory"),
                    None => format!("[apps] executor_memory of the existing cluster {name}"),
                };
                return Err(Error::InvalidInput(format!(
                    "{holder}: {} is more than a worker offers ({}), so no executor could start — lower it (set [apps] executor_memory in sparkbox.toml) or raise --memory / [cluster] memory",
                    spec::format_memory_mb(mb),
                    spec::format_memory_mb(memory_mb)
                )));
            }
        }
        for key in f.apps.conf.iter().flat_map(|c| c.keys()) {
            if !key.starts_with("spark.") || key.contains(char::is_whitespace) {
                return Err(Error::InvalidInput(format!(
                    "{}: {key:?} is not a Spark setting — keys look like \"spark.sql.shuffle.partitions\"",
                    config.key("apps", "conf")
                )));
            }
        }
        let notebooks = match &f.volumes.notebooks {
            Some(v) => {
                let ok = !v.is_empty()
                    && v.len() <= 64
                    && v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
                if !ok {
                    return Err(Error::InvalidInput(format!(
                        "{}: {v:?} is not a volume name — use letters, digits, '_', '.', '-' (a named volume keeps notebooks across `down`/`up`)",
                        config.key("volumes", "notebooks")
                    )));
                }
                v.clone()
            }
            None => rec
                .notebooks
                .clone()
                .unwrap_or_else(|| spec::Names::new(&name).notebooks_volume()),
        };
        // The shared data directory: --data (relative to the current
        // directory), the file's [volumes] data (relative to the file), else
        // ./data next to the file or in the current directory.
        let data = match (&args.data, &f.volumes.data) {
            (Some(d), _) => std::path::absolute(d).unwrap_or_else(|_| d.clone()),
            (None, Some(d)) => config.relative(d),
            (None, None) => match &rec.data {
                Some(d) => d.clone(),
                None => config.base_dir().join(DEFAULT_DATA_DIR),
            },
        };
        if data.exists() && !data.is_dir() {
            let given = match (&args.data, &f.volumes.data) {
                (Some(_), _) => "--data".to_string(),
                (None, Some(_)) => config.key("volumes", "data"),
                (None, None) => "the data directory".to_string(),
            };
            return Err(Error::InvalidInput(format!(
                "{given}: {} is a file — pass --data DIR (or set [volumes] data) to a directory",
                data.display()
            )));
        }
        let engine = match &f.cluster.engine {
            None => None,
            Some(e) if e == "swarm" => Some(true),
            Some(e) if e == "local" => Some(false),
            Some(e) => {
                return Err(Error::InvalidInput(format!(
                    "{} = {e:?} is not an engine — give \"local\" (one Docker engine) or \"swarm\" (services on the swarm DOCKER_HOST manages)",
                    config.key("cluster", "engine")
                )))
            }
        };
        let on_swarm = args.swarm || engine.or(rec.swarm.map(|_| true)).unwrap_or(false);
        let bind_from = if args.bind.is_some() {
            Some("--bind".to_string())
        } else {
            f.cluster
                .bind
                .as_ref()
                .map(|_| config.key("cluster", "bind"))
        };
        if let (true, Some(from)) = (on_swarm, bind_from) {
            return Err(Error::InvalidInput(format!(
                "{from} cannot apply on a swarm: its ports are published in host mode on every address of the node that runs each service (Spark's RPC then requires the cluster's secret) — remove it, or use a firewall on the nodes"
            )));
        }
        let bind = args
            .bind
            .clone()
            .or_else(|| on_swarm.then(|| "0.0.0.0".to_string()))
            .or_else(|| f.cluster.bind.clone())
            .or_else(|| rec.bind.clone())
            .unwrap_or_else(|| "127.0.0.1".to_string());
        if bind.parse::<std::net::IpAddr>().is_err() {
            let e = Error::InvalidInput(format!(
                "--bind {bind:?} is not an IP address — give one of this machine's addresses, 0.0.0.0 for all, or leave it out for 127.0.0.1"
            ));
            let file = f.cluster.bind.is_some();
            return Err(blame(args.bind.is_some(), file, "cluster", "bind", e));
        }
        let students = args
            .students
            .or(f.classroom.students)
            .or(rec.students)
            .unwrap_or(0);
        if students > spec::MAX_STUDENTS {
            let e = Error::InvalidInput(format!(
                "--students {students} is out of range — give 1 to {}",
                spec::MAX_STUDENTS
            ));
            let file = f.classroom.students.is_some();
            return Err(blame(
                args.students.is_some(),
                file,
                "classroom",
                "students",
                e,
            ));
        }
        if students > 0 && jupyter_token.is_some() {
            let students_from = if args.students.is_none() && f.classroom.students.is_none() {
                format!(" (the existing cluster {name} has {students} students; `--students 0` makes it one Jupyter again)")
            } else {
                String::new()
            };
            return Err(Error::InvalidInput(format!(
                "{}: one fixed token would be every student's{students_from} — remove it, and each student's Jupyter gets its own",
                config.key("jupyter", "token")
            )));
        }
        let switch = |on: bool, off: bool, file: Option<bool>, recorded: Option<bool>| {
            if on || off {
                on
            } else {
                file.or(recorded).unwrap_or(false)
            }
        };
        let services = ServiceSettings {
            history: switch(
                args.history,
                args.no_history,
                f.cluster.history,
                rec.history,
            ),
            connect: switch(
                args.connect,
                args.no_connect,
                f.cluster.connect,
                rec.connect,
            ),
        };
        if services.connect {
            let major = image
                .spark_version
                .split('.')
                .next()
                .and_then(|m| m.parse::<u32>().ok());
            if major.is_some_and(|m| m < 4) {
                let from = if args.connect {
                    "--connect".to_string()
                } else if f.cluster.connect == Some(true) {
                    config.key("cluster", "connect")
                } else {
                    format!("the existing cluster {name}, which runs a Spark Connect server")
                };
                return Err(Error::InvalidInput(format!(
                    "Spark Connect needs Spark 4.0 or newer, and this cluster would run Spark {} (its package has no Connect server); Connect was asked for by {from} — pass --no-connect (or set [cluster] connect = false), or choose a 4.x --spark-version",
                    image.spark_version
                )));
            }
        }
        let per_node = args
            .workers_per_node
            .or(f.cluster.workers_per_node)
            .or(rec.swarm)
            .unwrap_or(1);
        if per_node == 0 {
            let from = if args.workers_per_node.is_some() {
                "--workers-per-node 0".to_string()
            } else {
                config.key("cluster", "workers_per_node")
            };
            return Err(Error::InvalidInput(format!(
                "{from} would place no worker anywhere — give 1 or more"
            )));
        }
        if !on_swarm && args.workers_per_node.is_some() {
            return Err(Error::InvalidInput(
                "--workers-per-node places workers on the nodes of a swarm — add --swarm (or set [cluster] engine = \"swarm\"), or leave it out".into(),
            ));
        }
        Ok(Settings {
            swarm: on_swarm.then_some(per_node),
            file: config.path.clone(),
            name,
            workers,
            cores,
            memory_mb,
            timeout,
            image,
            ports,
            jupyter_token,
            apps: AppSettings {
                cores: f.apps.cores.or(rec_apps.cores),
                executor_memory_mb,
                conf: f.apps.conf.clone().unwrap_or(rec_apps.conf),
            },
            volumes: VolumeSettings {
                notebooks,
                data: Some(data),
            },
            services,
            bind,
            students,
        })
    }

    /// The desired cluster these settings describe, checked before any engine call.
    pub fn spec(&self) -> Result<spec::ClusterSpec> {
        let settings = self;
        // Settings::resolve has checked the values (the data directory included).
        Ok(spec::ClusterSpec {
            name: settings.name.clone(),
            workers: settings.workers,
            worker_cores: settings.cores,
            worker_memory_mb: settings.memory_mb,
            image: settings.image.recipe()?,
            bind_address: settings.bind.clone(),
            master_ui_port: settings.ports.master_ui.choice(),
            jupyter_port: settings.ports.jupyter.choice(),
            app_ui_port: settings.ports.app_ui.choice(),
            timeout: std::time::Duration::from_secs(settings.timeout),
            jupyter_token: settings.jupyter_token.clone(),
            apps: settings.apps.clone(),
            notebooks_volume: settings.volumes.notebooks.clone(),
            data_dir: settings.volumes.data.clone(),
            host_user: None,
            history: settings
                .services
                .history
                .then(|| settings.ports.history.choice()),
            connect: settings
                .services
                .connect
                .then(|| settings.ports.connect.choice()),
            students: settings.students,
            swarm: settings.swarm.map(|per_node| spec::SwarmSpec {
                workers_per_node: per_node,
            }),
        })
    }

    /// The settings as a `sparkbox.toml` that would reproduce them.
    pub fn to_toml(&self) -> String {
        let file = FileConfig {
            cluster: ClusterSection {
                name: Some(self.name.clone()),
                workers: Some(self.workers),
                cores: Some(self.cores),
                memory: Some(spec::format_memory_mb(self.memory_mb)),
                timeout: Some(self.timeout),
                history: Some(self.services.history),
                connect: Some(self.services.connect),
                bind: Some(self.bind.clone()),
                engine: self.swarm.map(|_| "swarm".to_string()),
                workers_per_node: self.swarm,
            },
            image: ImageSection {
                spark_version: Some(self.image.spark_version.clone()),
                base_image: Some(self.image.base_image.clone()),
                debian_mirror: self.image.debian_mirror.clone(),
                ca_bundle: self.image.ca_bundle.clone(),
                python_packages: Some(self.image.python_packages.clone()),
                registry: self.image.registry.clone(),
            },
            ports: PortsSection {
                master_ui: Some(self.ports.master_ui.port),
                jupyter: Some(self.ports.jupyter.port),
                app_ui: Some(self.ports.app_ui.port),
                history: Some(self.ports.history.port),
                connect: Some(self.ports.connect.port),
            },
            jupyter: JupyterSection {
                token: self.jupyter_token.clone(),
            },
            apps: AppsSection {
                cores: self.apps.cores,
                executor_memory: self.apps.executor_memory_mb.map(spec::format_memory_mb),
                conf: Some(self.apps.conf.clone()),
            },
            volumes: VolumesSection {
                notebooks: Some(self.volumes.notebooks.clone()),
                data: self.volumes.data.clone(),
            },
            classroom: ClassroomSection {
                students: (self.students > 0).then_some(self.students),
            },
        };
        let mut text = match &self.file {
            Some(p) => format!("# resolved from {} and the command line\n", p.display()),
            None => {
                "# resolved from the command line and the defaults (no sparkbox.toml)\n".to_string()
            }
        };
        text.push_str(
            &toml::to_string(&file).unwrap_or_else(|e| format!("# cannot render: {e}\n")),
        );
        let moving: Vec<&str> = [
            ("master_ui", &self.ports.master_ui),
            ("jupyter", &self.ports.jupyter),
            ("app_ui", &self.ports.app_ui),
        ]
        .iter()
        .filter(|(_, p)| !p.fixed)
        .map(|(k, _)| *k)
        .collect();
        if !moving.is_empty() {
            text.push_str(&format!(
                "# ports not fixed ({}) move to the next free one when taken\n",
                moving.join(", ")
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Result<Config> {
        Ok(Config {
            path: Some(PathBuf::from("/proj/sparkbox.toml")),
            file: parse(text, Path::new("/proj/sparkbox.toml"))?,
        })
    }

    fn message(e: Error) -> String {
        e.to_string()
    }

    #[test]
    fn line_and_column_are_one_based() {
        assert_eq!(line_column("a\nbc\nd", 0), (1, 1));
        assert_eq!(line_column("a\nbc\nd", 3), (2, 2));
        assert_eq!(line_column("a\nbc\nd", 5), (3, 1));
    }

    #[test]
    fn an_unknown_key_names_file_line_column_and_the_accepted_keys() {
        let text = "[cluster]\nname = \"x\"\nwokers = 3\n";
        let e = message(config(text).expect_err("an error"));
        assert!(e.contains("/proj/sparkbox.toml:3:1"), "{e}");
        assert!(e.contains("wokers"), "{e}");
        assert!(e.contains("workers (integer)"), "{e}");
    }

    #[test]
    fn a_wrong_type_names_file_line_column() {
        let text = "[cluster]\nworkers = \"three\"\n";
        let e = message(config(text).expect_err("an error"));
        assert!(e.contains("/proj/sparkbox.toml:2:11"), "{e}");
        assert!(e.contains("invalid type"), "{e}");
        let e = message(config("[ports]\njupyter = 70000\n").expect_err("an error"));
        assert!(e.contains(":2:11"), "{e}");
        let e = message(config("[sparky]\n").expect_err("an error"));
        assert!(e.contains(":1:"), "{e}");
        assert!(e.contains("sparky"), "{e}");
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let c = config(
            "[cluster]\nname = \"lab\"\nworkers = 3\nmemory = \"2g\"\n[ports]\njupyter = 9999\n[image]\npython_packages = [\"polars==1.9.0\"]\nca_bundle = \"certs/ca.pem\"\n[volumes]\ndata = \"data\"\n",
        )
        .expect("parses");
        let defaults = Settings::resolve(&c, &ClusterArgs::default()).expect("valid");
        assert_eq!(defaults.name, "lab");
        assert_eq!(defaults.workers, 3);
        assert_eq!(defaults.memory_mb, 2048);
        assert_eq!(defaults.cores, 1);
        assert_eq!(
            defaults.ports.jupyter,
            PortSetting {
                port: 9999,
                fixed: true
            }
        );
        assert_eq!(
            defaults.ports.master_ui,
            PortSetting {
                port: 8080,
                fixed: false
            }
        );
        assert_eq!(defaults.volumes.notebooks, "lab-notebooks");
        assert_eq!(defaults.volumes.data, Some(PathBuf::from("/proj/data")));
        assert_eq!(
            defaults.image.ca_bundle,
            Some(PathBuf::from("/proj/certs/ca.pem"))
        );
        let args = ClusterArgs {
            workers: Some(1),
            name: NameArg {
                name: Some("other".into()),
            },
            image: crate::cli::ImageArgs {
                python_packages: vec!["rich==13.9.4".into()],
                ..Default::default()
            },
            ..Default::default()
        };
        let flagged = Settings::resolve(&c, &args).expect("valid");
        assert_eq!(flagged.workers, 1);
        assert_eq!(flagged.name, "other");
        assert_eq!(flagged.volumes.notebooks, "other-notebooks");
        assert_eq!(
            flagged.image.python_packages,
            vec!["polars==1.9.0".to_string(), "rich==13.9.4".to_string()]
        );
    }

    #[test]
    fn the_data_directory_is_the_flag_then_the_file_then_data_next_to_it() {
        let c = config("[volumes]\ndata = \"fixtures\"\n").expect("parses");
        let from_file = Settings::resolve(&c, &ClusterArgs::default()).expect("valid");
        assert_eq!(
            from_file.volumes.data,
            Some(PathBuf::from("/proj/fixtures"))
        );
        let flagged = Settings::resolve(
            &c,
            &ClusterArgs {
                data: Some(PathBuf::from("/srv/shared")),
                ..Default::default()
            },
        )
        .expect("valid");
        assert_eq!(flagged.volumes.data, Some(PathBuf::from("/srv/shared")));
        let bare = config("[cluster]\nworkers = 2\n").expect("parses");
        let default = Settings::resolve(&bare, &ClusterArgs::default()).expect("valid");
        assert_eq!(default.volumes.data, Some(PathBuf::from("/proj/data")));
        // Classroom and network settings: from the file, checked.
        let class =
            config("[cluster]\nbind = \"0.0.0.0\"\n[classroom]\nstudents = 3\n").expect("parses");
        let s = Settings::resolve(&class, &ClusterArgs::default()).expect("valid");
        assert_eq!((s.bind.as_str(), s.students), ("0.0.0.0", 3));
        let shared = config("[classroom]\nstudents = 2\n[jupyter]\ntoken = \"a-long-token\"\n")
            .expect("parses");
        let e = message(Settings::resolve(&shared, &ClusterArgs::default()).expect_err("error"));
        assert!(e.contains("every student's"), "{e}");
    }

    #[test]
    fn bad_values_in_the_file_name_the_key() {
        let c = config("[cluster]\nworkers = 0\n").expect("parses");
        let e = message(Settings::resolve(&c, &ClusterArgs::default()).expect_err("error"));
        assert!(e.contains("[cluster] workers"), "{e}");
        let c = config("[apps]\nexecutor_memory = \"4g\"\n").expect("parses");
        let e = message(Settings::resolve(&c, &ClusterArgs::default()).expect_err("error"));
        assert!(
            e.contains("executor_memory") && e.contains("more than a worker"),
            "{e}"
        );
        let c = config("[apps.conf]\n\"shuffle\" = \"8\"\n").expect("parses");
        assert!(Settings::resolve(&c, &ClusterArgs::default()).is_err());
        let c = config("[jupyter]\ntoken = \"short\"\n").expect("parses");
        assert!(Settings::resolve(&c, &ClusterArgs::default()).is_err());
    }

    #[test]
    fn resolved_settings_round_trip_through_toml() {
        let c = config("[cluster]\nworkers = 3\n[apps]\ncores = 1\n[apps.conf]\n\"spark.sql.shuffle.partitions\" = \"8\"\n")
            .expect("parses");
        let s = Settings::resolve(&c, &ClusterArgs::default()).expect("valid");
        let text = s.to_toml();
        let again = Config {
            path: c.path.clone(),
            file: parse(&text, Path::new("resolved.toml")).expect("printed TOML parses"),
        };
        let mut s2 = Settings::resolve(&again, &ClusterArgs::default()).expect("valid");
        // Printed ports are fixed ones; everything else is identical.
        s2.ports = s.ports.clone();
        assert_eq!(s, s2);
    }

    #[test]
    fn swarm_settings_are_checked_and_kept_by_the_record() {
        let bare = Config::default();
        let on = ClusterArgs {
            swarm: true,
            ..Default::default()
        };
        let s = Settings::resolve_over(&bare, &on, None).expect("valid");
        assert_eq!((s.swarm, s.bind.as_str()), (Some(1), "0.0.0.0"));
        let with_bind = ClusterArgs {
            bind: Some("127.0.0.1".into()),
            ..on.clone()
        };
        let e = message(Settings::resolve_over(&bare, &with_bind, None).expect_err("bind"));
        assert!(e.contains("--bind cannot apply on a swarm"), "{e}");
        let file = config("[cluster]\nengine = \"swarm\"\nbind = \"0.0.0.0\"\n").expect("parses");
        let e = message(
            Settings::resolve_over(&file, &ClusterArgs::default(), None).expect_err("bind"),
        );
        assert!(e.contains("[cluster] bind cannot apply on a swarm"), "{e}");
        let file = config("[cluster]\nengine = \"k8s\"\n").expect("parses");
        let e = message(
            Settings::resolve_over(&file, &ClusterArgs::default(), None).expect_err("engine"),
        );
        assert!(
            e.contains("[cluster] engine = \"k8s\" is not an engine"),
            "{e}"
        );
        let per_node = ClusterArgs {
            workers_per_node: Some(2),
            ..Default::default()
        };
        let e = message(Settings::resolve_over(&bare, &per_node, None).expect_err("no swarm"));
        assert!(e.contains("add --swarm"), "{e}");
        let zero = ClusterArgs {
            workers_per_node: Some(0),
            ..on.clone()
        };
        let e = message(Settings::resolve_over(&bare, &zero, None).expect_err("zero"));
        assert!(
            e.contains("--workers-per-node 0 would place no worker"),
            "{e}"
        );
        // A swarm cluster stays one, with its workers per node.
        let recorded = Recorded {
            swarm: Some(3),
            ..Default::default()
        };
        let kept =
            Settings::resolve_over(&bare, &ClusterArgs::default(), Some(&recorded)).expect("valid");
        assert_eq!(kept.swarm, Some(3));
    }

    #[test]
    fn the_existing_cluster_is_kept_unless_a_flag_or_the_file_says_otherwise() {
        let recorded = Recorded {
            workers: Some(3),
            cores: Some(2),
            memory_mb: Some(1536),
            spark_version: Some("3.5.9".into()),
            python_packages: Some(vec!["tabulate==0.9.0".into()]),
            data: Some(PathBuf::from("/srv/made-with")),
            bind: Some("0.0.0.0".into()),
            history: Some(true),
            students: Some(2),
            notebooks: Some("kept-notebooks".into()),
            ..Default::default()
        };
        let bare = Config::default();
        let healed =
            Settings::resolve_over(&bare, &ClusterArgs::default(), Some(&recorded)).expect("valid");
        assert_eq!(
            (healed.workers, healed.cores, healed.memory_mb),
            (3, 2, 1536)
        );
        assert_eq!(healed.image.spark_version, "3.5.9");
        assert_eq!(
            healed.image.python_packages,
            vec!["tabulate==0.9.0".to_string()]
        );
        assert_eq!(healed.volumes.data, Some(PathBuf::from("/srv/made-with")));
        assert_eq!(healed.volumes.notebooks, "kept-notebooks");
        assert_eq!((healed.bind.as_str(), healed.students), ("0.0.0.0", 2));
        assert!(healed.services.history);
        // A flag wins over the record, and so does the file.
        let flagged = Settings::resolve_over(
            &bare,
            &ClusterArgs {
                workers: Some(1),
                data: Some(PathBuf::from("/srv/new")),
                ..Default::default()
            },
            Some(&recorded),
        )
        .expect("valid");
        assert_eq!(flagged.workers, 1);
        assert_eq!(flagged.volumes.data, Some(PathBuf::from("/srv/new")));
        let file = config("[cluster]\nworkers = 4\nhistory = false\n").expect("parses");
        let from_file =
            Settings::resolve_over(&file, &ClusterArgs::default(), Some(&recorded)).expect("valid");
        assert_eq!(from_file.workers, 4);
        assert!(!from_file.services.history);
        assert_eq!(from_file.cores, 2);
        // Without a record, the defaults as before.
        let fresh = Settings::resolve_over(&bare, &ClusterArgs::default(), None).expect("valid");
        assert_eq!((fresh.workers, fresh.cores), (DEFAULT_WORKERS, 1));
    }

    #[test]
    fn services_turn_off_by_flag_over_the_record() {
        let recorded = Recorded {
            history: Some(true),
            connect: Some(true),
            ..Default::default()
        };
        let bare = Config::default();
        let kept =
            Settings::resolve_over(&bare, &ClusterArgs::default(), Some(&recorded)).expect("valid");
        assert!(kept.services.history && kept.services.connect);
        let off = Settings::resolve_over(
            &bare,
            &ClusterArgs {
                no_history: true,
                no_connect: true,
                ..Default::default()
            },
            Some(&recorded),
        )
        .expect("valid");
        assert!(!off.services.history && !off.services.connect);
        // Connect recorded on a cluster now asked to run Spark 3.5: the
        // error says where Connect came from and how to turn it off.
        let e = message(
            Settings::resolve_over(
                &bare,
                &ClusterArgs {
                    image: crate::cli::ImageArgs {
                        spark_version: Some("3.5".into()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
                Some(&recorded),
            )
            .expect_err("Connect on 3.5"),
        );
        assert!(
            e.contains("the existing cluster") && e.contains("--no-connect"),
            "{e}"
        );
    }

    #[test]
    fn an_empty_list_in_the_file_is_said_and_wins_over_the_record() {
        let mut conf = BTreeMap::new();
        conf.insert("spark.sql.shuffle.partitions".to_string(), "8".to_string());
        let recorded = Recorded {
            python_packages: Some(vec!["tabulate==0.9.0".into()]),
            apps: Some(AppSettings {
                conf,
                ..Default::default()
            }),
            ..Default::default()
        };
        let emptied = config("[image]\npython_packages = []\n[apps.conf]\n").expect("parses");
        let s = Settings::resolve_over(&emptied, &ClusterArgs::default(), Some(&recorded))
            .expect("valid");
        assert!(s.image.python_packages.is_empty());
        assert!(s.apps.conf.is_empty());
        let silent = config("[cluster]\nworkers = 2\n").expect("parses");
        let s = Settings::resolve_over(&silent, &ClusterArgs::default(), Some(&recorded))
            .expect("valid");
        assert_eq!(s.image.python_packages, vec!["tabulate==0.9.0".to_string()]);
        assert_eq!(s.apps.conf.len(), 1);
    }
}
