//! The jupyter-spark image made real: the in-memory build
//! context, the build itself, and the proof of what it contains.

pub mod archive;
pub mod base;
pub mod registry;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::StreamExt;

use crate::engine::{BuildEvent, BuildRequest, ByteStream, ContainerSpec, Engine};
use crate::error::{Error, Result};
use crate::model::recipe::{ImageRecipe, IMAGE_FILES};
use crate::model::versions::{self, Versions};
use crate::model::{contract, labels};
use crate::progress::Progress;

/// The name the CA bundle has in the build context (never in the image).
pub const CA_FILE_IN_CONTEXT: &str = "sparkbox-ca.crt";

/// The tag suffix of a build's stage, before its filesystem becomes the image.
pub const STAGE_SUFFIX: &str = "-stage";

/// Where the image keeps its measured versions.
pub const VERSIONS_FILE: &str = crate::model::contract::VERSIONS_FILE;

/// Proxy variables the builder treats as predefined (and keeps out of history).
const PROXY_VARIABLES: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Host settings that reach the build but do not shape the image.
#[derive(Debug, Clone, Default)]
pub struct BuildSettings {
    /// The CA bundle to trust during the build.
    pub ca_bundle: Option<PathBuf>,
    /// The Debian mirror for an offline base image.
    pub debian_mirror: Option<String>,
    /// Build even when the tag exists.
    pub force: bool,
    /// Ignore the builder's layer cache.
    pub no_cache: bool,
    /// Pull the image from here before building it.
    pub registry: Option<crate::model::registry::Registry>,
}

/// Finds the CA bundle: the flag, then SSL_CERT_FILE, PIP_CERT,
/// REQUESTS_CA_BUNDLE, then the usual system locations.
pub fn find_ca_bundle(flag: Option<&Path>) -> Result<Option<PathBuf>> {
    if let Some(path) = flag {
        return match std::fs::metadata(path) {
            Ok(m) if m.is_file() => Ok(Some(path.to_path_buf())),
            Ok(_) => Err(Error::FileUnreadable {
                path: path.to_path_buf(),
                detail: "not a file — pass a PEM bundle to --ca-bundle".into(),
            }),
            Err(e) => Err(Error::FileUnreadable {
                path: path.to_path_buf(),
                detail: format!("{e} — pass a PEM bundle to --ca-bundle"),
            }),
        };
    }
    let from_env = ["SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE"]
        .iter()
        .filter_map(std::env::var_os)
        .map(PathBuf::from);
    let system = [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/cert.pem",
    ]
    .iter()
    .map(PathBuf::from);
    Ok(from_env.chain(system).find(|p| p.is_file()))
}

/// The in-memory tar build context: the embedded files, the generated
/// recipe and the CA bundle.
pub fn build_context(ca_bundle: &[u8], recipe_env: &str) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |path: &str, contents: &[u8], mode: u32| -> Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(mode);
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, path, contents)
            .map_err(|e| Error::Io(format!("cannot make the build context: {e}")))
    };
    for f in IMAGE_FILES {
        add(f.path, f.contents, f.mode)?;
    }
    add(contract::RECIPE_FILE, recipe_env.as_bytes(), 0o644)?;
    add(CA_FILE_IN_CONTEXT, ca_bundle, 0o644)?;
    builder
        .into_inner()
        .map_err(|e| Error::Io(format!("cannot make the build context: {e}")))
}

/// The recipe file of the build context: what the install step needs to
/// know, as shell assignments it sources — one file, so one COPY step where
/// each build argument was a step of its own. The package index comes from
/// the user's own pip settings, if any.
pub fn recipe_env(recipe: &ImageRecipe) -> String {
    let e = recipe.entry;
    let expected = serde_json::to_string(&recipe.entry.expected()).unwrap_or_default();
    let extra = recipe.extra_packages.join(" ");
    let index = std::env::var("PIP_INDEX_URL").unwrap_or_default();
    let mut text = String::from(
        "# Written by sparkbox for build/install-deps.sh; deleted in the step that reads it.\n",
    );
    for (key, value) in [
        ("PYSPARK_VERSION", e.pyspark),
        ("PY4J_VERSION", e.py4j),
        ("NUMPY_VERSION", e.numpy),
        ("PANDAS_VERSION", e.pandas),
        ("PYARROW_VERSION", e.pyarrow),
        ("JUPYTERLAB_VERSION", e.jupyterlab),
        ("JAVA_PACKAGE", e.java_package),
        ("EXPECTED_VERSIONS", expected.as_str()),
        ("EXTRA_PYTHON_PACKAGES", extra.as_str()),
        ("PIP_INDEX_URL", index.as_str()),
    ] {
        text.push_str(&format!("{key}={}\n", shell_quote(value)));
    }
    text
}

/// `value` in single quotes for a POSIX shell (a quote inside as '\'').
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

/// The build arguments: the base image, and the host's proxies, which the
/// builder takes as predefined arguments and keeps out of the history.
pub fn build_args(recipe: &ImageRecipe) -> HashMap<String, String> {
    let mut args = HashMap::from([("BASE_IMAGE".to_string(), recipe.base_image.clone())]);
    for var in PROXY_VARIABLES {
        if let Ok(value) = std::env::var(var) {
            if !value.is_empty() {
                args.insert(var.to_string(), value);
            }
        }
    }
    args
}

/// The settings of the final image: the lines of images/jupyter-spark's
/// image.conf, then one LABEL line per label (sorted), as an import's
/// `changes`.
pub fn image_changes(labels_map: &HashMap<String, String>) -> Vec<String> {
    let config = IMAGE_FILES
        .iter()
        .find(|f| f.path == contract::IMAGE_CONFIG_FILE)
        .map(|f| String::from_utf8_lossy(f.contents).into_owned())
        .unwrap_or_default();
    let mut changes: Vec<String> = config
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let mut keys: Vec<&String> = labels_map.keys().collect();
    keys.sort();
    for key in keys {
        let value = labels_map[key]
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('$', "\\$")
            .replace('\n', " ");
        changes.push(format!("LABEL {key}=\"{value}\""));
    }
    changes
}

/// The outcome of `ensure_image`.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// The image tag.
    pub tag: String,
    /// Its ID.
    pub id: String,
    /// Its size in bytes.
    pub size: i64,
    /// False when the image was already there (or pulled) and nothing was built.
    pub built: bool,
    /// True when it came from the registry just now.
    pub pulled: bool,
    /// Where a registry knows it ("REPO@sha256:…"), when one does.
    pub digest: Option<String>,
    /// The versions recorded in its labels.
    pub versions: Versions,
}

/// The digest to record for an image with `repo_digests`: the registry's
/// own when one is set, else the first the engine knows.
pub fn digest_of(
    repo_digests: &[String],
    registry: Option<&crate::model::registry::Registry>,
) -> Option<String> {
    match registry {
        Some(r) => r.digest_in(repo_digests).map(str::to_string),
        None => repo_digests.first().cloned(),
    }
}

/// Reads the measured versions an image carries in its labels.
pub fn versions_from_labels(labels_map: &HashMap<String, String>) -> Option<Versions> {
    labels_map
        .get(labels::VERSIONS)
        .and_then(|text| Versions::from_json(text).ok())
}

/// Builds the image unless an image with the recipe's tag already exists.
pub async fn ensure_image<E: Engine>(
    engine: &E,
    recipe: &ImageRecipe,
    settings: &BuildSettings,
    progress: &Progress,
) -> Result<BuiltImage> {
    let tag = recipe.tag();
    if !settings.force {
        if let Some(existing) = engine.image(&tag).await? {
            let versions = versions_from_labels(&existing.labels).unwrap_or_default();
            return Ok(BuiltImage {
                digest: digest_of(&existing.repo_digests, settings.registry.as_ref()),
                tag,
                id: existing.id,
                size: existing.size,
                built: false,
                pulled: false,
                versions,
            });
        }
        if let Some(reg) = &settings.registry {
            if let Some(pulled) = registry::pull_verified(engine, reg, recipe, progress).await? {
                return Ok(BuiltImage {
                    tag,
                    versions: versions_from_labels(&pulled.image.labels).unwrap_or_default(),
                    id: pulled.image.id,
                    size: pulled.image.size,
                    built: false,
                    pulled: true,
                    digest: pulled.digest,
                });
            }
        }
    }
    base::ensure_base_image(
        engine,
        &recipe.base_image,
        settings.debian_mirror.as_deref(),
        progress,
    )
    .await?;

    let ca = match find_ca_bundle(settings.ca_bundle.as_deref())? {
        Some(path) => {
            tracing::info!("trusting the CA bundle {} during the build", path.display());
            std::fs::read(&path).map_err(|e| Error::FileUnreadable {
                path: path.clone(),
                detail: e.to_string(),
            })?
        }
        None => Vec::new(),
    };
    let context = build_context(&ca, &recipe_env(recipe))?;
    let stage_tag = format!("{tag}{STAGE_SUFFIX}");
    let request = BuildRequest {
        tag: stage_tag.clone(),
        build_args: build_args(recipe),
        // Labels go on at the import: the classic builder turns every API
        // label into a step of its own.
        labels: HashMap::new(),
        no_cache: settings.no_cache,
    };
    progress.phase(&format!("building {tag}"));
    let stage_id = match run_build(engine, context, &request, &tag, progress).await {
        Ok(id) => id,
        Err(e) => {
            remove_failed_steps(engine, &recipe.base_image).await;
            return Err(e);
        }
    };
    let result = finish_image(engine, recipe, &stage_id, &tag, progress).await;
    // The stage is a step on the way: none of its 1.5 GB is left behind.
    engine.remove_image(&stage_tag).await.ok();
    let (id, measured) = result?;
    let size = engine.image(&tag).await?.map(|i| i.size).unwrap_or(0);
    Ok(BuiltImage {
        tag,
        id,
        size,
        built: true,
        pulled: false,
        digest: None,
        versions: measured,
    })
}

/// Removes what a failed build left: the builder keeps the image of each
/// step that succeeded — here the copy of the build context (the CA bundle
/// in it) — untagged, on the base image. Only such images of sparkbox's own
/// copy step, with no tag and no child, are removed, and never by force.
async fn remove_failed_steps<E: Engine>(engine: &E, base_image: &str) {
    let Ok(Some(base)) = engine.image(base_image).await else {
        return;
    };
    let Ok(images) = engine.images(&[]).await else {
        return;
    };
    let parents: std::collections::HashSet<&str> = images
        .iter()
        .filter_map(|i| i.parent_id.as_deref())
        .collect();
    for image in &images {
        if !image.repo_tags.is_empty()
            || image.parent_id.as_deref() != Some(base.id.as_str())
            || parents.contains(image.id.as_str())
        {
            continue;
        }
        let Ok(history) = engine.image_history(&image.id).await else {
            continue;
        };
        let copied_context = history.first().is_some_and(|step| {
            step.contains(" COPY ") && step.trim_end().ends_with(" in /tmp/sparkbox-build/")
        });
        if copied_context {
            tracing::info!("removing {}, a step of the failed build", image.id);
            engine.remove_image_unforced(&image.id).await.ok();
        }
    }
}

/// The container a build of `tag` exports its filesystem from: one name per
/// image, so a build interrupted (Ctrl-C) while it existed is found again.
fn export_container_name(tag: &str) -> String {
    let hash = tag.rsplit('-').next().unwrap_or("image");
    format!("sparkbox-export-{hash}")
}

/// Checks the versions the built stage measured and makes the image `tag`
/// from its root filesystem: exported from a container that never runs and
/// imported with image.conf's settings and the labels, in one call. The
/// import holds the files as the build left them (the CA bundle deleted) in
/// one layer whose history says only "Imported": no step of the build, where
/// the CA was, survives — and no COPY of the whole tree, which cost ~100 s.
async fn finish_image<E: Engine>(
    engine: &E,
    recipe: &ImageRecipe,
    stage_id: &str,
    tag: &str,
    progress: &Progress,
) -> Result<(String, Versions)> {
    progress.phase("reading the versions the image measured");
    let measured = read_versions_file(engine, stage_id).await?;
    let diffs = versions::compare_with_matrix(&recipe.entry.expected(), &measured);
    if !diffs.is_empty() {
        return Err(Error::VersionMismatch {
            image: tag.to_string(),
            differences: versions::render_differences(&diffs),
        });
    }
    let mut image_labels = HashMap::from([
        (labels::IMAGE.to_string(), "jupyter-spark".to_string()),
        (labels::IMAGE_HASH.to_string(), recipe.content_hash()),
        (
            labels::VERSIONS.to_string(),
            serde_json::to_string(&measured).unwrap_or_default(),
        ),
    ]);
    for (key, value) in measured.values.iter().chain(measured.extra.iter()) {
        image_labels.insert(format!("{}{key}", labels::VERSION_PREFIX), value.clone());
    }

    progress.phase("making the image: one layer with its settings and measured versions");
    // Named after the image: a build stopped while its container existed
    // left it under this name, and it goes here.
    let container = export_container_name(tag);
    engine.remove_container(&container).await?;
    engine
        .create_container(&ContainerSpec {
            name: container.clone(),
            image: stage_id.to_string(),
            labels: HashMap::from([(labels::TEMPORARY.to_string(), "true".to_string())]),
            ..Default::default()
        })
        .await?;
    let (rootfs, export_error, ended, removed) = rootfs_of(engine, &container);
    // The container goes between the export's last byte and the end of the
    // import's body, so the image never exists beside it: a build stopped
    // (Ctrl-C) before that leaves no image, and the next build removes the
    // container by its name.
    let remove = async {
        ended.await.ok();
        engine.remove_container(&container).await.ok();
        removed.send(()).ok();
    };
    let (imported, ()) = tokio::join!(
        engine.import_rootfs(rootfs, tag, image_changes(&image_labels)),
        remove
    );
    // A failed export shows at the import as a broken body: say which it was.
    let export_error = export_error.lock().ok().and_then(|mut e| e.take());
    match (imported, export_error) {
        (Ok(id), None) => Ok((id, measured)),
        (_, Some(e)) | (Err(e), None) => {
            engine.remove_image(tag).await.ok();
            Err(e)
        }
    }
}

/// Where the export's own error is kept when it fails half-way.
type ExportError = std::sync::Arc<std::sync::Mutex<Option<Error>>>;

/// The export of `container` as an import's body; the slot of the export's
/// error; a signal for when the export has ended (or the body was dropped);
/// and the sender the body waits on before it ends.
fn rootfs_of<E: Engine>(
    engine: &E,
    container: &str,
) -> (
    ByteStream,
    ExportError,
    tokio::sync::oneshot::Receiver<()>,
    tokio::sync::oneshot::Sender<()>,
) {
    let slot: ExportError = Default::default();
    let keep = slot.clone();
    let (ended_tx, ended_rx) = tokio::sync::oneshot::channel();
    let (removed_tx, removed_rx) = tokio::sync::oneshot::channel::<()>();
    let bytes = engine
        .export_container(container)
        .map(move |item: Result<Bytes>| {
            item.map_err(|e| {
                let text = e.to_string();
                if let Ok(mut kept) = keep.lock() {
                    kept.get_or_insert(e);
                }
                std::io::Error::other(text)
            })
        });
    let end = futures_util::stream::once(async move {
        ended_tx.send(()).ok();
        removed_rx.await.ok();
    })
    .filter_map(|()| async { None::<std::io::Result<Bytes>> });
    (bytes.chain(end).boxed(), slot, ended_rx, removed_tx)
}

/// Reads /opt/sparkbox/versions.json from an image.
pub async fn read_versions_file<E: Engine>(engine: &E, image: &str) -> Result<Versions> {
    let out = engine
        .run_to_completion(image, &["cat", VERSIONS_FILE])
        .await?;
    if out.exit_code != 0 {
        return Err(Error::Io(format!(
            "the image {image} has no readable {VERSIONS_FILE}: {}",
            out.stderr.trim()
        )));
    }
    Versions::from_json(&out.stdout)
}

async fn run_build<E: Engine>(
    engine: &E,
    context: Vec<u8>,
    request: &BuildRequest,
    image: &str,
    progress: &Progress,
) -> Result<String> {
    let mut current_step = String::from("the start of the build");
    let mut tail: Vec<String> = Vec::new();
    let mut on_event = |event: BuildEvent| match event {
        BuildEvent::Step { n, total, text } => {
            progress.step(n, total, &text);
            current_step = format!("step {n}/{total} ({})", shorten(&text, 80));
            tail.clear();
        }
        BuildEvent::Output(line) => {
            progress.detail(&line);
            tail.push(line);
            if tail.len() > 25 {
                tail.remove(0);
            }
        }
    };
    let result = engine.build(context, request, &mut on_event).await;
    match result {
        Ok(id) => Ok(id),
        Err(Error::Engine { detail, .. }) => Err(Error::BuildFailed {
            image: image.to_string(),
            step: current_step,
            message: detail,
            tail: tail
                .iter()
                .filter(|l| !l.trim().is_empty())
                .cloned()
                .collect::<Vec<_>>()
                .join("\n"),
        }),
        Err(other) => Err(other),
    }
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}…")
    }
}

/// Human-readable size: "1.3 GB".
pub fn human_size(bytes: i64) -> String {
    let b = bytes.max(0) as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else {
        format!("{:.0} MB", b / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::recipe::sample as recipe;
    use crate::model::versions::MATRIX;

    #[test]
    fn changes_are_the_old_final_stage_then_one_escaped_label_a_line() {
        let labels = HashMap::from([
            (
                "b.key".to_string(),
                r#"{"spark":"4.3.0"} $HOME"#.to_string(),
            ),
            ("a.key".to_string(), "plain".to_string()),
        ]);
        let changes = image_changes(&labels);
        // What the final stage of the Dockerfile said before the import
        // took its place: the same settings, in the same order.
        let settings = [
            "ENV PATH=/opt/sparkbox/venv/bin:/opt/sparkbox/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV JAVA_HOME=/opt/sparkbox/java",
            "ENV SPARK_HOME=/opt/sparkbox/spark",
            "ENV SPARK_CONF_DIR=/home/spark/.sparkbox/spark-conf",
            "ENV PYSPARK_PYTHON=/opt/sparkbox/venv/bin/python",
            "ENV PYSPARK_DRIVER_PYTHON=/opt/sparkbox/venv/bin/python",
            "ENV PYTHONUNBUFFERED=1",
            "ENV LANG=C.UTF-8",
            "USER spark",
            "WORKDIR /home/spark",
            r#"ENTRYPOINT ["/usr/bin/tini", "--", "/opt/sparkbox/bin/entrypoint"]"#,
            r#"CMD ["jupyter"]"#,
        ];
        assert_eq!(&changes[..settings.len()], settings);
        assert_eq!(
            &changes[settings.len()..],
            [
                r#"LABEL a.key="plain""#,
                r#"LABEL b.key="{\"spark\":\"4.3.0\"} \$HOME""#
            ]
        );
    }

    #[test]
    fn the_recipe_reads_back_in_a_shell_as_written() {
        let text = recipe_env(&recipe(vec!["tabulate==0.9.0", "rich"]));
        let odd = "http://u:p'w@index.invalid/simple $x \"q\"";
        let script = format!(
            "{text}ODD={}\nprintf '%s\\n' \"$PYSPARK_VERSION\" \"$EXTRA_PYTHON_PACKAGES\" \"$EXPECTED_VERSIONS\" \"$ODD\"",
            shell_quote(odd)
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .expect("sh runs");
        let printed = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = printed.lines().collect();
        assert_eq!(lines[0], MATRIX[0].pyspark);
        assert_eq!(lines[1], "tabulate==0.9.0 rich");
        let expected: serde_json::Value = serde_json::from_str(lines[2]).expect("json");
        assert_eq!(expected["py4j"], MATRIX[0].py4j);
        assert_eq!(lines[3], odd);
    }

    #[test]
    fn context_holds_files_recipe_and_ca_but_args_only_base_and_proxies() {
        let ctx = build_context(b"PEM", "PYSPARK_VERSION='9'\n").expect("context");
        let mut archive = tar::Archive::new(ctx.as_slice());
        let names: Vec<String> = archive
            .entries()
            .expect("entries")
            .flatten()
            .filter_map(|e| e.path().ok().map(|p| p.to_string_lossy().to_string()))
            .collect();
        for name in [
            "Dockerfile",
            CA_FILE_IN_CONTEXT,
            contract::RECIPE_FILE,
            contract::IMAGE_CONFIG_FILE,
            "build/install-deps.sh",
        ] {
            assert!(names.contains(&name.to_string()), "{name} in {names:?}");
        }
        let args = build_args(&recipe(vec![]));
        assert_eq!(
            args.get("BASE_IMAGE").map(String::as_str),
            Some(crate::model::recipe::DEFAULT_BASE_IMAGE)
        );
        assert!(args
            .keys()
            .all(|k| k == "BASE_IMAGE" || PROXY_VARIABLES.contains(&k.as_str())));
    }
}
