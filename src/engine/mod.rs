//! The container engine seen through one trait, so the orchestration logic
//! does not depend on bollard (Docker today; Podman's compatible API tomorrow).

pub mod docker;

use std::collections::HashMap;

use bytes::Bytes;
use futures_util::stream::BoxStream;

use crate::error::Result;

pub use docker::DockerEngine;

/// What the engine says about itself.
#[derive(Debug, Clone)]
pub struct EngineInfo {
    /// Where it was reached (DOCKER_HOST or the default socket).
    pub host: String,
    /// The server's product version, e.g. "20.10.24".
    pub server_version: String,
    /// The API version both sides agreed on, e.g. "1.41".
    pub api_version: String,
}

/// The parts of an image sparkbox looks at.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    /// Content-addressed ID ("sha256:…").
    pub id: String,
    /// Image labels.
    pub labels: HashMap<String, String>,
    /// Size in bytes.
    pub size: i64,
}

/// One thing that happened during an image build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildEvent {
    /// The builder began step `n` of `total` ("RUN apt-get …").
    Step { n: u32, total: u32, text: String },
    /// A line the step printed.
    Output(String),
}

/// The options of one image build.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// The tag to give the result.
    pub tag: String,
    /// Build arguments.
    pub build_args: HashMap<String, String>,
    /// Labels of the result.
    pub labels: HashMap<String, String>,
    /// Ignore the builder's layer cache.
    pub no_cache: bool,
}

/// A command's result when run to completion in a throwaway container.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// Exit code.
    pub exit_code: i64,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
}

/// A stream of bytes fed to the engine (a root filesystem tarball).
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// The engine operations sparkbox is built on.
#[allow(async_fn_in_trait)]
pub trait Engine {
    /// Where the engine is and which API version was negotiated.
    fn info(&self) -> &EngineInfo;

    /// The image named `reference`, or None when it is not present.
    async fn image(&self, reference: &str) -> Result<Option<ImageInfo>>;

    /// Pulls `reference` from its registry.
    async fn pull(&self, reference: &str) -> Result<()>;

    /// Imports a root filesystem tarball as the image `reference`.
    async fn import_rootfs(
        &self,
        rootfs: ByteStream,
        reference: &str,
        changes: Vec<String>,
    ) -> Result<String>;

    /// Builds `context` (a tar) and returns the new image's ID.
    async fn build(
        &self,
        context: Vec<u8>,
        request: &BuildRequest,
        on_event: &mut (dyn FnMut(BuildEvent) + Send),
    ) -> Result<String>;

    /// Runs `command` in a throwaway container of `image` and removes it.
    async fn run_to_completion(&self, image: &str, command: &[&str]) -> Result<RunOutput>;

    /// Removes an image (by reference or ID).
    async fn remove_image(&self, reference: &str) -> Result<()>;
}

/// Splits "repo/name:tag" into ("repo/name", "tag"); the tag defaults to "latest".
pub fn split_reference(reference: &str) -> (&str, &str) {
    let last_slash = reference.rfind('/').map(|i| i + 1).unwrap_or(0);
    match reference[last_slash..].rfind(':') {
        Some(i) => (
            &reference[..last_slash + i],
            &reference[last_slash + i + 1..],
        ),
        None => (reference, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::split_reference;

    #[test]
    fn splits_references_with_registry_ports() {
        assert_eq!(
            split_reference("debian:bookworm-slim"),
            ("debian", "bookworm-slim")
        );
        assert_eq!(split_reference("debian"), ("debian", "latest"));
        assert_eq!(
            split_reference("localhost:5000/team/img:1.0"),
            ("localhost:5000/team/img", "1.0")
        );
        assert_eq!(
            split_reference("localhost:5000/team/img"),
            ("localhost:5000/team/img", "latest")
        );
    }
}
