//! The image contract: the paths inside a jupyter-spark image and the
//! environment variables its entrypoint reads. The Rust side names them only
//! through this table, and a test holds `images/jupyter-spark/` to it, so a
//! variable renamed on one side and not the other fails the build's tests.

/// The image's own programs.
pub const BIN_DIR: &str = "/opt/sparkbox/bin";
/// The healthcheck every role's container runs (`healthcheck [--wait S] ROLE`).
pub const HEALTHCHECK: &str = "/opt/sparkbox/bin/healthcheck";
/// The in-container probe (`probe http URL`, `probe tcp HOST:PORT`, …).
pub const PROBE: &str = "/opt/sparkbox/bin/probe";
/// Runs a command as `spark` from root (`as-spark CMD…`): every role, and
/// exec sessions of a cluster whose host user is root.
pub const AS_SPARK: &str = "/opt/sparkbox/bin/as-spark";
/// Prints the versions a container runs, live, as JSON.
pub const MEASURE_VERSIONS: &str = "/opt/sparkbox/bin/measure-versions";
/// The versions measured at build time.
pub const VERSIONS_FILE: &str = "/opt/sparkbox/versions.json";

/// Where the build copies its context (the install script reads it there and
/// deletes it, CA bundle and recipe included, in the same step).
pub const BUILD_CONTEXT_DIR: &str = "/tmp/sparkbox-build";
/// The generated recipe in the build context: pins, expected versions, extra
/// packages and the pip index, as shell assignments for build/install-deps.sh.
pub const RECIPE_FILE: &str = "build/recipe.env";
/// The final image's settings in images/jupyter-spark (ENV, USER, WORKDIR,
/// ENTRYPOINT, CMD: one Dockerfile instruction a line), given to the engine
/// when the built root filesystem is imported as the image.
pub const IMAGE_CONFIG_FILE: &str = "image.conf";
/// The user the image's containers run as.
pub const IMAGE_USER: &str = "spark";
/// The image's working directory (the `spark` user's home).
pub const IMAGE_WORKDIR: &str = "/home/spark";
/// The image's entrypoint (exec form).
pub const IMAGE_ENTRYPOINT: &[&str] = &["/usr/bin/tini", "--", "/opt/sparkbox/bin/entrypoint"];

/// Uid the containers' `spark` user takes (the data directory's owner).
pub const ENV_UID: &str = "SPARKBOX_UID";
/// Gid the containers' `spark` user takes.
pub const ENV_GID: &str = "SPARKBOX_GID";
/// A daemon's web UI port (inside and on the host alike).
pub const ENV_UI_PORT: &str = "SPARKBOX_UI_PORT";
/// The master's URL, for workers and drivers.
pub const ENV_MASTER_URL: &str = "SPARKBOX_MASTER_URL";
/// Cores a worker offers.
pub const ENV_WORKER_CORES: &str = "SPARKBOX_WORKER_CORES";
/// Memory a worker offers (Spark syntax).
pub const ENV_WORKER_MEMORY: &str = "SPARKBOX_WORKER_MEMORY";
/// "1": the worker's daemon waits until the master accepts connections.
pub const ENV_WAIT_FOR_MASTER: &str = "SPARKBOX_WAIT_FOR_MASTER";
/// Jupyter's token.
pub const ENV_JUPYTER_TOKEN: &str = "SPARKBOX_JUPYTER_TOKEN";
/// The first application UI port of a driver container.
pub const ENV_APP_UI_PORT: &str = "SPARKBOX_APP_UI_PORT";
/// The cluster's name (application names in notebooks).
pub const ENV_CLUSTER: &str = "SPARKBOX_CLUSTER";
/// The drivers' spark-defaults, one "key=value" a line.
pub const ENV_SPARK_CONF: &str = "SPARKBOX_SPARK_CONF";
/// Where the history server reads event logs.
pub const ENV_EVENTS_DIR: &str = "SPARKBOX_EVENTS_DIR";
/// The Spark Connect server's port inside its container.
pub const ENV_CONNECT_PORT: &str = "SPARKBOX_CONNECT_PORT";

/// Set on a swarm service: the container measures its versions at start and
/// prints them in its log after [`REPORTED_VERSIONS_PREFIX`], for the parity
/// check of a node whose engine the manager cannot exec on.
pub const REPORT_VERSIONS_ENV: &str = "SPARKBOX_REPORT_VERSIONS";
/// The start of the log line with a container's own measured versions.
pub const REPORTED_VERSIONS_PREFIX: &str = "sparkbox-versions: ";

/// Variables the image reads that sparkbox never sets: the image's own
/// defaults and internals, documented in images/jupyter-spark/README.md.
pub const IMAGE_ONLY_ENV: &[&str] = &[
    "SPARKBOX_DAEMON_OPTS",
    "SPARKBOX_DRIVER_HOST",
    "SPARKBOX_EAGER_SPARK",
    "SPARKBOX_EXTRA_PACKAGES",
    "SPARKBOX_PRIVILEGES_DROPPED",
    "SPARKBOX_SPARE_KERNELS",
    "SPARKBOX_WORKER_DIR",
];

/// Every variable sparkbox sets on a container.
pub const SET_BY_SPARKBOX: &[&str] = &[
    REPORT_VERSIONS_ENV,
    ENV_UID,
    ENV_GID,
    ENV_UI_PORT,
    ENV_MASTER_URL,
    ENV_WORKER_CORES,
    ENV_WORKER_MEMORY,
    ENV_WAIT_FOR_MASTER,
    ENV_JUPYTER_TOKEN,
    ENV_APP_UI_PORT,
    ENV_CLUSTER,
    ENV_SPARK_CONF,
    ENV_EVENTS_DIR,
    ENV_CONNECT_PORT,
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn image_file(path: &str) -> String {
        let file = crate::model::recipe::IMAGE_FILES
            .iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("{path} is not embedded"));
        String::from_utf8_lossy(file.contents).into_owned()
    }

    fn names_in(text: &str) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        let mut rest = text;
        while let Some(i) = rest.find("SPARKBOX_") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(tail.len());
            found.insert(tail[..end].to_string());
            rest = &tail[end..];
        }
        found
    }

    #[test]
    fn the_image_reads_exactly_the_variables_of_the_table() {
        let mut read = BTreeSet::new();
        for f in crate::model::recipe::IMAGE_FILES {
            if f.path.starts_with("bin/") || f.path.starts_with("python/") || f.path == "Dockerfile"
            {
                read.extend(names_in(&image_file(f.path)));
            }
        }
        let table: BTreeSet<String> = SET_BY_SPARKBOX
            .iter()
            .chain(IMAGE_ONLY_ENV)
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            read, table,
            "images/jupyter-spark and model::contract disagree"
        );
        let mut entrypoint = names_in(&image_file("bin/entrypoint"));
        entrypoint.extend(names_in(&image_file("bin/as-spark")));
        for name in SET_BY_SPARKBOX {
            assert!(
                entrypoint.contains(*name),
                "the entrypoint never reads {name}"
            );
        }
    }

    #[test]
    fn the_image_has_the_programs_of_the_table() {
        for path in [HEALTHCHECK, PROBE, MEASURE_VERSIONS, AS_SPARK] {
            let inside = path.strip_prefix(BIN_DIR).expect("under bin");
            let embedded = format!("bin{inside}");
            assert!(
                crate::model::recipe::IMAGE_FILES
                    .iter()
                    .any(|f| f.path == embedded),
                "{embedded} is missing from images/jupyter-spark"
            );
        }
        let dockerfile = image_file("Dockerfile");
        assert!(dockerfile.contains(&format!("COPY . {BUILD_CONTEXT_DIR}/")));
        let script = image_file("build/install-deps.sh");
        assert!(script.contains(&format!("CTX={BUILD_CONTEXT_DIR}\n")));
        assert!(script.contains(&format!("\"$CTX/{RECIPE_FILE}\"")));
        assert!(script.contains(&format!("\"$CTX/{IMAGE_CONFIG_FILE}\"")));
        assert!(script.contains(&format!("mkdir -p {BIN_DIR}\n")));
        assert!(script.contains(&format!("> {VERSIONS_FILE}\n")));
        // The context copy (CA bundle, recipe) goes in the step that used it.
        assert!(script.contains("rm -rf /root/.cache /tmp/*"));
    }

    #[test]
    fn the_image_config_runs_the_entrypoint_as_the_user_of_the_table() {
        let config = image_file(IMAGE_CONFIG_FILE);
        let lines: Vec<&str> = config
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .collect();
        let entrypoint = serde_json::to_string(IMAGE_ENTRYPOINT).expect("json");
        assert!(lines.contains(&format!("USER {IMAGE_USER}").as_str()));
        assert!(lines.contains(&format!("WORKDIR {IMAGE_WORKDIR}").as_str()));
        assert!(lines.contains(&format!("ENTRYPOINT {}", entrypoint.replace(',', ", ")).as_str()));
        assert!(IMAGE_ENTRYPOINT.contains(&format!("{BIN_DIR}/entrypoint").as_str()));
        let path = lines
            .iter()
            .find_map(|l| l.strip_prefix("ENV PATH="))
            .expect("ENV PATH");
        assert!(path.split(':').any(|d| d == BIN_DIR), "{path}");
        for line in &lines {
            let word = line.split_whitespace().next().unwrap_or("");
            assert!(
                ["ENV", "USER", "WORKDIR", "ENTRYPOINT", "CMD"].contains(&word),
                "{line}: not a setting an import takes"
            );
            // The install script splits the ENV lines on blanks to measure.
            if let Some(assignment) = line.strip_prefix("ENV ") {
                assert!(
                    assignment.contains('=') && !assignment.contains(char::is_whitespace),
                    "{line}"
                );
            }
        }
    }
}
