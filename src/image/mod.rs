//! The jupyter-spark image made real: the in-memory build
//! context, the build itself, and the proof of what it contains.

pub mod archive;
pub mod base;
pub mod registry;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::engine::{BuildEvent, BuildRequest, Engine};
use crate::error::{Error, Result};
use crate::model::labels;
use crate::model::recipe::{ImageRecipe, IMAGE_FILES};
use crate::model::versions::{self, Versions};
use crate::progress::Progress;

/// The name the CA bundle has in the build context (never in the image).
pub const CA_FILE_IN_CONTEXT: &str = "sparkbox-ca.crt";

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

/// The in-memory tar build context: the embedded files plus the CA bundle.
pub fn build_context(ca_bundle: &[u8]) -> Result<Vec<u8>> {
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
    add(CA_FILE_IN_CONTEXT, ca_bundle, 0o644)?;
    builder
        .into_inner()
        .map_err(|e| Error::Io(format!("cannot make the build context: {e}")))
}

/// The build arguments for `recipe`, with the host's proxy and index settings.
pub fn build_args(recipe: &ImageRecipe) -> HashMap<String, String> {
    let e = recipe.entry;
    let expected = serde_json::to_string(&recipe.entry.expected()).unwrap_or_default();
    let mut args: HashMap<String, String> = [
        ("BASE_IMAGE", recipe.base_image.as_str()),
        ("PYSPARK_VERSION", e.pyspark),
        ("PY4J_VERSION", e.py4j),
        ("NUMPY_VERSION", e.numpy),
        ("PANDAS_VERSION", e.pandas),
        ("PYARROW_VERSION", e.pyarrow),
        ("JUPYTERLAB_VERSION", e.jupyterlab),
        ("JAVA_PACKAGE", e.java_package),
        ("EXPECTED_VERSIONS", expected.as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    args.insert(
        "EXTRA_PYTHON_PACKAGES".into(),
        recipe.extra_packages.join(" "),
    );
    // The package index comes from the user's own pip settings, if any.
    args.insert(
        "PIP_INDEX_URL".into(),
        std::env::var("PIP_INDEX_URL").unwrap_or_default(),
    );
    for var in PROXY_VARIABLES {
        if let Ok(value) = std::env::var(var) {
            if !value.is_empty() {
                args.insert(var.to_string(), value);
            }
        }
    }
    args
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
                let image = engine.image(&tag).await?.ok_or_else(|| Error::Engine {
                    action: format!("tag {tag}"),
                    detail: "the pulled image lost its tag".into(),
                })?;
                return Ok(BuiltImage {
                    tag,
                    id: image.id,
                    size: image.size,
                    built: false,
                    pulled: true,
                    digest: pulled.digest,
                    versions: versions_from_labels(&image.labels).unwrap_or_default(),
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
    let context = build_context(&ca)?;
    let stage_tag = format!("{tag}-unlabelled");
    let request = BuildRequest {
        tag: stage_tag.clone(),
        build_args: build_args(recipe),
        // Labels go on in the second build, in one step: the classic builder
        // turns every API label into a step of its own.
        labels: HashMap::new(),
        no_cache: settings.no_cache,
    };
    progress.phase(&format!("building {tag}"));
    let stage_id = run_build(engine, context, &request, &tag, progress).await?;

    progress.phase("reading the versions the image measured");
    let measured = read_versions_file(engine, &stage_id).await?;
    let diffs = versions::compare_with_matrix(&recipe.entry.expected(), &measured);
    if !diffs.is_empty() {
        engine.remove_image(&stage_tag).await.ok();
        return Err(Error::VersionMismatch {
            image: tag,
            differences: versions::render_differences(&diffs),
        });
    }

    // A second, one-line build stamps the measured values as labels.
    progress.phase("labelling the image with its measured versions");
    let mut version_labels = HashMap::from([
        (labels::IMAGE.to_string(), "jupyter-spark".to_string()),
        (labels::IMAGE_HASH.to_string(), recipe.content_hash()),
        (
            labels::VERSIONS.to_string(),
            serde_json::to_string(&measured).unwrap_or_default(),
        ),
    ]);
    for (key, value) in measured.values.iter().chain(measured.extra.iter()) {
        version_labels.insert(format!("{}{key}", labels::VERSION_PREFIX), value.clone());
    }
    let label_context = {
        let dockerfile = label_dockerfile(&stage_tag, &version_labels);
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(dockerfile.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, "Dockerfile", dockerfile.as_bytes())
            .and_then(|_| builder.into_inner())
            .map_err(|e| Error::Io(format!("cannot make the label context: {e}")))?
    };
    let label_request = BuildRequest {
        tag: tag.clone(),
        build_args: HashMap::new(),
        labels: HashMap::new(),
        no_cache: false,
    };
    let id = run_build(engine, label_context, &label_request, &tag, progress).await?;
    engine.remove_image(&stage_tag).await.ok();
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

/// A Dockerfile that adds all `labels` to `from` in a single LABEL step.
pub fn label_dockerfile(from: &str, labels_map: &HashMap<String, String>) -> String {
    let mut keys: Vec<&String> = labels_map.keys().collect();
    keys.sort();
    let mut text = format!("FROM {from}\nLABEL");
    for key in keys {
        let value = labels_map[key]
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('$', "\\$")
            .replace('\n', " ");
        text.push_str(&format!(" \\\n    {key}=\"{value}\""));
    }
    text.push('\n');
    text
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
    fn labels_are_one_step_with_escaped_values() {
        let labels = HashMap::from([
            ("b.key".to_string(), r#"{"spark":"4.3.0"}"#.to_string()),
            ("a.key".to_string(), "plain".to_string()),
        ]);
        assert_eq!(
            label_dockerfile("img:1", &labels),
            "FROM img:1\nLABEL \\\n    a.key=\"plain\" \\\n    b.key=\"{\\\"spark\\\":\\\"4.3.0\\\"}\"\n"
        );
    }

    #[test]
    fn context_holds_files_and_ca_but_args_hold_no_ca() {
        let ctx = build_context(b"PEM").expect("context");
        let mut archive = tar::Archive::new(ctx.as_slice());
        let names: Vec<String> = archive
            .entries()
            .expect("entries")
            .flatten()
            .filter_map(|e| e.path().ok().map(|p| p.to_string_lossy().to_string()))
            .collect();
        assert!(names.contains(&"Dockerfile".to_string()));
        assert!(names.contains(&CA_FILE_IN_CONTEXT.to_string()));
        let args = build_args(&recipe(vec![]));
        assert_eq!(
            args.get("PYSPARK_VERSION").map(String::as_str),
            Some(MATRIX[0].pyspark)
        );
        assert!(args.values().all(|v| !v.contains("PEM")));
        let expected: serde_json::Value = serde_json::from_str(
            args.get("EXPECTED_VERSIONS")
                .map(String::as_str)
                .unwrap_or(""),
        )
        .expect("json");
        assert_eq!(expected["py4j"], MATRIX[0].py4j);
    }
}
