//! Where sparkbox images live besides this engine: a registry prefix such as
//! `registry.example.com/team/sparkbox` or `127.0.0.1:5000/sparkbox`, under which the image
//! is `PREFIX/jupyter-spark:<spark>-<12 hex>` — the same tag as the local
//! one, so a registry holds exactly the images this sparkbox would build.
//! Pure: pulling and pushing live in `image/registry.rs`.

use crate::error::{Error, Result};

/// The repository name under the prefix.
pub const REMOTE_NAME: &str = "jupyter-spark";

/// A checked registry prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    prefix: String,
}

impl Registry {
    /// Checks `text` as a registry prefix: `HOST[:PORT][/PATH…]`, without a
    /// scheme, tag or digest.
    pub fn parse(text: &str) -> Result<Registry> {
        let bad = |why: &str| {
            Error::InvalidInput(format!(
                "--registry {text:?} is not a registry name: {why} — use HOST[:PORT]/PATH, e.g. registry.example.com/TEAM/sparkbox or 127.0.0.1:5000/sparkbox"
            ))
        };
        let trimmed = text.trim_end_matches('/');
        if trimmed.is_empty() {
            return Err(bad("it is empty"));
        }
        if let Some((scheme, _)) = trimmed.split_once("://") {
            return Err(bad(&format!("drop the scheme {scheme}://")));
        }
        if trimmed.contains('@') {
            return Err(bad("a digest (@…) belongs to an image, not to a registry"));
        }
        let mut parts = trimmed.split('/');
        let first = parts.next().unwrap_or_default();
        let rest: Vec<&str> = parts.collect();
        // The first part is a host when it looks like one (as the engine reads it).
        if !is_host(first) {
            return Err(bad(&format!(
                "{first:?} is not a host; start with the registry's host (a name with a dot, HOST:PORT or localhost)"
            )));
        }
        check_host(first).map_err(|why| bad(&why))?;
        let path = rest;
        for component in &path {
            if component.contains(':') {
                return Err(bad(&format!(
                    "{component:?} has a tag; sparkbox adds the tag itself"
                )));
            }
            if !path_component_ok(component) {
                return Err(bad(&format!(
                    "{component:?} is not a valid path part (lowercase letters, digits, and . _ - between them)"
                )));
            }
        }
        if trimmed.len() > 200 {
            return Err(bad("it is longer than 200 characters"));
        }
        Ok(Registry {
            prefix: trimmed.to_string(),
        })
    }

    /// The prefix as given (without a trailing slash).
    pub fn as_str(&self) -> &str {
        &self.prefix
    }

    /// The registry host the engine talks to ("registry.example.com", "127.0.0.1:5000").
    pub fn host(&self) -> &str {
        self.prefix.split('/').next().unwrap_or_default()
    }

    /// The remote repository: "PREFIX/jupyter-spark".
    pub fn repository(&self) -> String {
        format!("{}/{REMOTE_NAME}", self.prefix)
    }

    /// The remote reference of a local tag "sparkbox/jupyter-spark:T":
    /// "PREFIX/jupyter-spark:T".
    pub fn reference_for(&self, local_tag: &str) -> String {
        let tag = local_tag
            .rsplit_once(':')
            .map(|(_, t)| t)
            .unwrap_or("latest");
        format!("{}:{tag}", self.repository())
    }

    /// This registry's digest among an image's repo digests
    /// ("PREFIX/jupyter-spark@sha256:…").
    pub fn digest_in<'a>(&self, repo_digests: &'a [String]) -> Option<&'a str> {
        let want = format!("{}@", self.repository());
        repo_digests
            .iter()
            .find(|d| d.starts_with(&want))
            .map(String::as_str)
    }
}

impl std::fmt::Display for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.prefix)
    }
}

/// Whether the first part of a reference names a registry host (as the
/// engine reads it): a name with a dot, HOST:PORT, or localhost.
pub fn is_host(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost"
}

fn check_host(host: &str) -> std::result::Result<(), String> {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return Err(format!("{port:?} is not a port (1–65535)")),
        }
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || !name.split('.').all(label_ok) {
        return Err(format!("{name:?} is not a host name"));
    }
    Ok(())
}

/// One part of a repository path, as the distribution spec allows it:
/// lowercase alphanumerics, separated by ".", "_", "__" or dashes.
fn path_component_ok(c: &str) -> bool {
    let bytes = c.as_bytes();
    if bytes.is_empty() || !bytes[0].is_ascii_alphanumeric() {
        return false;
    }
    if !bytes[bytes.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    if !c
        .chars()
        .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
    {
        return false;
    }
    // "." and "_" alone or "__"; never ".." or "._" and the like.
    let separators: Vec<&str> = c
        .split(|ch: char| ch.is_ascii_alphanumeric())
        .filter(|s| !s.is_empty())
        .collect();
    separators
        .iter()
        .all(|s| *s == "." || *s == "_" || *s == "__" || s.chars().all(|ch| ch == '-'))
}

/// Why a pull or push failed, read from the engine's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The registry did not answer (refused, no such host, timeout, TLS).
    Unreachable,
    /// The registry answered but has no such image.
    NotFound,
    /// The registry refused the credentials (or wants some).
    Unauthorized,
    /// Anything else.
    Other,
}

/// Classifies the engine's message about a pull or push.
pub fn classify(detail: &str) -> Failure {
    let d = detail.to_lowercase();
    let any = |words: &[&str]| words.iter().any(|w| d.contains(w));
    if any(&[
        "unauthorized",
        "authentication required",
        "no basic auth credentials",
        "denied",
        "401 unauthorized",
        "403 forbidden",
    ]) {
        Failure::Unauthorized
    } else if any(&["manifest unknown", "not found", "name unknown"]) {
        Failure::NotFound
    } else if any(&[
        "connection refused",
        "no such host",
        "dial tcp",
        "i/o timeout",
        "timeout",
        "network is unreachable",
        "no route to host",
        "server gave http response to https client",
        "x509",
        "tls",
        "eof",
        "connection reset",
        "temporary failure in name resolution",
        "server misbehaving",
    ]) {
        Failure::Unreachable
    } else {
        Failure::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_hosts_ports_and_paths() {
        for ok in [
            "registry.example.com/team/sparkbox",
            "127.0.0.1:5000/sparkbox",
            "127.0.0.1:5000",
            "localhost:5000/a/b",
            "registry.example/team_a/spark-box",
            "registry.example.com/team/sparkbox/",
        ] {
            assert!(Registry::parse(ok).is_ok(), "{ok}");
        }
        let r = Registry::parse("127.0.0.1:5000/sparkbox/").expect("ok");
        assert_eq!(r.as_str(), "127.0.0.1:5000/sparkbox");
        assert_eq!(r.host(), "127.0.0.1:5000");
        assert_eq!(
            r.reference_for("sparkbox/jupyter-spark:4.3.0-abc"),
            "127.0.0.1:5000/sparkbox/jupyter-spark:4.3.0-abc"
        );
    }

    #[test]
    fn refuses_what_the_engine_would_refuse_with_the_reason() {
        for (bad, why) in [
            ("", "empty"),
            ("myorg/sparkbox", "not a host"),
            ("https://registry.example.com/org", "scheme"),
            ("registry.example.com/Org/x", "valid path part"),
            ("registry.example.com/org/x:1.0", "has a tag"),
            ("registry.example.com/org@sha256:00", "digest"),
            ("127.0.0.1:99999/x", "not a port"),
            ("bad_host.io:5000/x", "host name"),
            ("registry.example.com/a..b", "valid path part"),
            ("registry.example.com/a b", "valid path part"),
            ("registry.example.com//x", "valid path part"),
        ] {
            let err = Registry::parse(bad).expect_err(bad).to_string();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(err.contains("HOST[:PORT]/PATH"), "{err}");
        }
    }

    #[test]
    fn finds_its_own_digest_only() {
        let r = Registry::parse("127.0.0.1:5000/sbx").expect("ok");
        let digests = vec![
            "127.0.0.1:5000/other/jupyter-spark@sha256:aa".to_string(),
            "127.0.0.1:5000/sbx/jupyter-spark@sha256:bb".to_string(),
        ];
        assert_eq!(
            r.digest_in(&digests),
            Some("127.0.0.1:5000/sbx/jupyter-spark@sha256:bb")
        );
        assert_eq!(r.digest_in(&digests[..1]), None);
    }

    #[test]
    fn classifies_the_engines_words() {
        // Words the engine printed here against a real registry.
        assert_eq!(
            classify("Get \"http://127.0.0.1:5903/v2/\": dial tcp 127.0.0.1:5903: connect: connection refused"),
            Failure::Unreachable
        );
        assert_eq!(
            classify("manifest for 127.0.0.1:5901/x/tiny:2 not found: manifest unknown: manifest unknown"),
            Failure::NotFound
        );
        assert_eq!(
            classify(
                "Head \"http://127.0.0.1:5902/v2/x/tiny/manifests/1\": no basic auth credentials"
            ),
            Failure::Unauthorized
        );
        assert_eq!(
            classify("unauthorized: authentication required"),
            Failure::Unauthorized
        );
        assert_eq!(classify("something else"), Failure::Other);
    }
}
