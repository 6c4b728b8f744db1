//! The image from and to a registry: the credentials `docker login` stored,
//! a pull that is proven to be the image this sparkbox would build before it
//! is tagged as such, and a push that reports the digest.

use std::collections::BTreeSet;
use std::path::PathBuf;

use base64::Engine as _;

use crate::engine::{Engine, RegistryAuth};
use crate::error::{Error, Result};
use crate::model::labels;
use crate::model::recipe::ImageRecipe;
use crate::model::registry::{classify, Failure, Registry};
use crate::model::versions::{self, Versions};
use crate::progress::Progress;

/// The Docker client configuration file: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`.
pub fn docker_config_path() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("config.json"),
        _ => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/root"))
            .join(".docker")
            .join("config.json"),
    }
}

/// The server part of a config key: "https://host:5000/v2/" -> "host:5000".
fn server_of(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

/// The credentials for `host` in the Docker client
/// configuration `config` (its text): a credential helper's answer (per
/// host, else the store), else the `auths` entry. None when there are none.
pub fn credentials_in(config: &str, host: &str) -> Result<Option<RegistryAuth>> {
    let path = docker_config_path();
    let json: serde_json::Value = serde_json::from_str(config).map_err(|e| {
        Error::InvalidInput(format!(
            "{} is not valid JSON ({e}) — fix it, or log in again with `docker login`",
            path.display()
        ))
    })?;
    let helper = json
        .get("credHelpers")
        .and_then(|h| h.get(host))
        .or_else(|| json.get("credsStore"))
        .and_then(|v| v.as_str());
    if let Some(helper) = helper.filter(|h| !h.is_empty()) {
        if let Some(auth) = from_helper(helper, host)? {
            return Ok(Some(auth));
        }
    }
    let Some(auths) = json.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    let entry = auths
        .iter()
        .find(|(k, _)| server_of(k) == host)
        .map(|(_, v)| v);
    let Some(entry) = entry else {
        return Ok(None);
    };
    let field = |name: &str| {
        entry
            .get(name)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let mut auth = RegistryAuth {
        server: host.to_string(),
        username: field("username"),
        password: field("password"),
        identity_token: field("identitytoken"),
    };
    if let Some(encoded) = field("auth") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "the credentials for {host} in {} cannot be read (\"auth\" is not base64 of USER:PASSWORD) — log in again with `docker login {host}`",
                    path.display()
                ))
            })?;
        if let Some((user, password)) = decoded.split_once(':') {
            auth.username = Some(user.to_string());
            auth.password = Some(password.to_string());
        }
    }
    if auth.username.is_none() && auth.identity_token.is_none() {
        return Ok(None);
    }
    Ok(Some(auth))
}

/// Asks `docker-credential-HELPER get` for `server`'s credentials.
fn from_helper(helper: &str, server: &str) -> Result<Option<RegistryAuth>> {
    use std::io::Write;
    let program = format!("docker-credential-{helper}");
    let child = std::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(
                "the credential helper {program} cannot run ({e}); using the file's own entries"
            );
            return Ok(None);
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(server.as_bytes()).ok();
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Io(format!("the credential helper {program} failed: {e}")))?;
    if !out.status.success() {
        // "credentials not found in native keychain": none stored.
        tracing::debug!(
            "{program} has nothing for {server}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return Ok(None);
    }
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        Error::Io(format!(
            "the credential helper {program} answered something that is not JSON: {e}"
        ))
    })?;
    let user = answer
        .get("Username")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let secret = answer.get("Secret").and_then(|v| v.as_str()).unwrap_or("");
    if secret.is_empty() {
        return Ok(None);
    }
    // A user name of "<token>" marks an identity token.
    Ok(Some(if user == "<token>" {
        RegistryAuth {
            server: server.to_string(),
            identity_token: Some(secret.to_string()),
            ..RegistryAuth::default()
        }
    } else {
        RegistryAuth {
            server: server.to_string(),
            username: Some(user.to_string()),
            password: Some(secret.to_string()),
            identity_token: None,
        }
    }))
}

/// The credentials for `registry` from the user's Docker configuration
/// (none when the file does not exist).
pub fn credentials_for(registry: &Registry) -> Result<Option<RegistryAuth>> {
    let path = docker_config_path();
    match std::fs::read_to_string(&path) {
        Ok(text) => credentials_in(&text, registry.host()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::FileUnreadable {
            path,
            detail: format!("{e} — make it readable, or log in again with `docker login`"),
        }),
    }
}

/// Lines of a transfer worth showing: each layer's status once per change
/// (the byte counts move on a terminal only).
struct TransferLines<'a> {
    progress: &'a Progress,
    seen: BTreeSet<String>,
    layers: usize,
}

impl<'a> TransferLines<'a> {
    fn new(progress: &'a Progress) -> TransferLines<'a> {
        TransferLines {
            progress,
            seen: BTreeSet::new(),
            layers: 0,
        }
    }

    fn line(&mut self, line: String) {
        let moving = line.contains(" MB");
        if moving {
            self.layers += 1;
            if self.progress.is_live() {
                self.progress.status(&line);
            }
            return;
        }
        if self.seen.insert(line.clone()) {
            self.progress.status(&line);
            self.progress.detail(&line);
        }
    }
}

/// A pull's or push's engine refusal, classified by its words; any other
/// error (a full disk, which the engine layer names, an unreachable engine)
/// passes through as it is.
fn classified(err: Error) -> Result<(Failure, String)> {
    match err {
        Error::Engine { detail, .. } => Ok((classify(&detail), detail)),
        other => Err(other),
    }
}

/// The login error for `registry`.
fn login_error(action: String, registry: &Registry, detail: String) -> Error {
    Error::RegistryLogin {
        action,
        registry: registry.to_string(),
        host: registry.host().to_string(),
        config: docker_config_path().display().to_string(),
        detail,
    }
}

/// What was found in the registry.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The image, as the engine holds it now under the local tag too.
    pub image: crate::engine::ImageInfo,
    /// The registry's digest of it ("REPO@sha256:…").
    pub digest: Option<String>,
}

/// Pulls the image of `recipe` from `registry` and proves it is the image
/// this sparkbox would build (its content hash, its measured versions
/// against the matrix, its versions file against its labels) before giving
/// it the local tag. Ok(None) when the build should go on instead: the
/// registry is not reachable or does not have it (said once, as a note).
pub async fn pull_verified<E: Engine>(
    engine: &E,
    registry: &Registry,
    recipe: &ImageRecipe,
    progress: &Progress,
) -> Result<Option<Pulled>> {
    let local = recipe.tag();
    let remote = registry.reference_for(&local);
    let auth = credentials_for(registry)?;
    progress.phase(&format!("pulling {remote}"));
    let mut lines = TransferLines::new(progress);
    let pulled = engine
        .pull_with(&remote, auth.as_ref(), &mut |l| lines.line(l))
        .await;
    let transferred = lines.layers > 0;
    if let Err(err) = pulled {
        let (failure, detail) = classified(err)?;
        return match failure {
            Failure::Unauthorized => Err(login_error(format!("pull {remote}"), registry, detail)),
            Failure::Unreachable if !transferred => {
                progress.note(&format!(
                    "the registry {registry} cannot be reached ({detail}); building the image here instead"
                ));
                Ok(None)
            }
            Failure::NotFound => {
                progress.note(&format!(
                    "the registry {registry} has no {remote}; building it here (`sparkbox image push` then shares it)"
                ));
                Ok(None)
            }
            _ => Err(Error::Registry {
                action: format!("pull {remote}"),
                registry: registry.to_string(),
                detail,
                fix: "the engine keeps no half-pulled image under that name; run the command again (layers already pulled are kept), or drop --registry to build here".into(),
            }),
        };
    }
    let image = engine.image(&remote).await?.ok_or_else(|| Error::Engine {
        action: format!("pull {remote}"),
        detail: "the engine reported success but the image is not there".into(),
    })?;
    if let Err(why) = proves_recipe(engine, &remote, &image.labels, recipe).await {
        // Not run, and not left under the registry's name either.
        engine.remove_image(&remote).await.ok();
        return Err(Error::ImageMismatch {
            reference: remote,
            differences: why,
        });
    }
    engine.tag(&remote, &local).await?;
    let digest = registry.digest_in(&image.repo_digests).map(str::to_string);
    progress.note(&format!(
        "pulled {remote}{}: its content hash and versions are this sparkbox's, so it is used as {local}",
        digest
            .as_deref()
            .and_then(|d| d.rsplit_once('@'))
            .map(|(_, d)| format!(" ({d})"))
            .unwrap_or_default()
    ));
    Ok(Some(Pulled { image, digest }))
}

/// Why the image `reference` with `image_labels` is not the image of
/// `recipe`, if it is not.
async fn proves_recipe<E: Engine>(
    engine: &E,
    reference: &str,
    image_labels: &std::collections::HashMap<String, String>,
    recipe: &ImageRecipe,
) -> std::result::Result<(), String> {
    if image_labels.get(labels::IMAGE).map(String::as_str) != Some("jupyter-spark") {
        return Err(format!(
            "it has no {} label: it is not a sparkbox image",
            labels::IMAGE
        ));
    }
    let want = recipe.content_hash();
    match image_labels.get(labels::IMAGE_HASH) {
        Some(have) if *have == want => {}
        Some(have) => {
            return Err(format!(
                "its content hash is {have}, this sparkbox's recipe is {want}"
            ))
        }
        None => return Err(format!("it has no {} label", labels::IMAGE_HASH)),
    }
    let labelled = image_labels
        .get(labels::VERSIONS)
        .and_then(|t| Versions::from_json(t).ok())
        .ok_or_else(|| format!("it has no readable {} label", labels::VERSIONS))?;
    let diffs = versions::compare_with_matrix(&recipe.entry.expected(), &labelled);
    if !diffs.is_empty() {
        return Err(format!(
            "its versions differ from the matrix: {}",
            versions::render_differences(&diffs).replace('\n', "; ")
        ));
    }
    let measured = super::read_versions_file(engine, reference)
        .await
        .map_err(|e| e.to_string())?;
    if measured != labelled {
        return Err(format!(
            "its {} differs from its labels",
            super::VERSIONS_FILE
        ));
    }
    Ok(())
}

/// Pushes the local image `local_tag` to `registry`; returns the digest.
pub async fn push<E: Engine>(
    engine: &E,
    registry: &Registry,
    local_tag: &str,
    progress: &Progress,
) -> Result<String> {
    let remote = registry.reference_for(local_tag);
    let auth = credentials_for(registry)?;
    engine.tag(local_tag, &remote).await?;
    progress.phase(&format!("pushing {remote}"));
    let mut lines = TransferLines::new(progress);
    let pushed = engine
        .push(&remote, auth.as_ref(), &mut |l| lines.line(l))
        .await;
    if let Err(err) = pushed {
        let (failure, detail) = classified(err)?;
        return Err(match failure {
            Failure::Unauthorized => login_error(format!("push {remote}"), registry, detail),
            _ => Error::Registry {
                action: format!("push {remote}"),
                registry: registry.to_string(),
                detail,
                fix: "check the registry's name and that it runs and is reachable from the Docker engine, then run `sparkbox image push` again".into(),
            },
        });
    }
    let image = engine.image(&remote).await?.ok_or_else(|| Error::Engine {
        action: format!("push {remote}"),
        detail: "the image went away during the push".into(),
    })?;
    registry
        .digest_in(&image.repo_digests)
        .map(str::to_string)
        .ok_or_else(|| Error::Engine {
            action: format!("push {remote}"),
            detail: "the engine reported success but recorded no digest for the registry".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_auths_by_host_in_every_spelling_docker_writes() {
        let config = r#"{"auths": {
            "127.0.0.1:5000": {"auth": "YWxpY2U6czNjcmV0"},
            "https://registry.example.com": {"username": "bob", "password": "pw"},
            "http://10.0.0.9:5000/v2/": {"auth": "aHViOmh1YnB3"}
        }}"#;
        let a = credentials_in(config, "127.0.0.1:5000")
            .expect("ok")
            .expect("found");
        assert_eq!(a.username.as_deref(), Some("alice"));
        assert_eq!(a.password.as_deref(), Some("s3cret"));
        assert_eq!(a.server, "127.0.0.1:5000");
        let g = credentials_in(config, "registry.example.com")
            .expect("ok")
            .expect("found");
        assert_eq!(g.username.as_deref(), Some("bob"));
        let v2 = credentials_in(config, "10.0.0.9:5000")
            .expect("ok")
            .expect("found");
        assert_eq!(v2.username.as_deref(), Some("hub"));
        assert!(credentials_in(config, "other:1").expect("ok").is_none());
        // The secret never shows in a debug print.
        assert!(!format!("{a:?}").contains("s3cret"));
    }

    #[test]
    fn a_broken_config_is_named_with_the_fix() {
        let err = credentials_in("{not json", "h:1").expect_err("bad");
        assert!(err.to_string().contains("docker login"), "{err}");
        let err = credentials_in(r#"{"auths":{"h:1":{"auth":"%%%"}}}"#, "h:1").expect_err("bad");
        assert!(err.to_string().contains("docker login h:1"), "{err}");
    }

    #[test]
    fn a_missing_helper_falls_back_to_the_file() {
        let config = r#"{"credsStore": "sparkbox-no-such-helper",
                         "auths": {"h:1": {"auth": "dTpw"}}}"#;
        let a = credentials_in(config, "h:1").expect("ok").expect("found");
        assert_eq!(a.username.as_deref(), Some("u"));
    }
}
