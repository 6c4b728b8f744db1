//! The Docker implementation of [`Engine`] over bollard.

use std::collections::HashMap;
use std::time::Duration;

use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;

use super::{BuildEvent, BuildRequest, ByteStream, Engine, EngineInfo, ImageInfo, RunOutput};
use crate::error::{Error, Result};
use crate::labels;

/// How long to wait for the engine's first answer before calling it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A connected Docker engine with a negotiated API version.
#[derive(Debug, Clone)]
pub struct DockerEngine {
    docker: Docker,
    info: EngineInfo,
}

/// The engine address sparkbox will use: DOCKER_HOST or the platform default.
pub fn docker_host() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string())
}

/// Joins an error with all its causes, for messages that keep the real reason.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let piece = cause.to_string();
        if !text.contains(&piece) {
            text.push_str(": ");
            text.push_str(&piece);
        }
        source = cause.source();
    }
    text
}

fn classify_connect_error(host: &str, err: &bollard::errors::Error) -> Error {
    let detail = error_chain(err);
    if detail.to_ascii_lowercase().contains("permission denied") {
        Error::DockerPermission {
            host: host.to_string(),
        }
    } else {
        Error::DockerUnreachable {
            host: host.to_string(),
            detail,
        }
    }
}

impl DockerEngine {
    /// Connects to DOCKER_HOST (or the default socket) and negotiates the API
    /// version down to what the daemon speaks (Docker 20.10 speaks 1.41).
    pub async fn connect() -> Result<DockerEngine> {
        let host = docker_host();
        // bollard reads DOCKER_HOST itself; an empty value means "default".
        let docker = if std::env::var("DOCKER_HOST").is_ok_and(|h| !h.is_empty()) {
            Docker::connect_with_defaults()
        } else {
            Docker::connect_with_local_defaults()
        }
        .map_err(|e| Error::DockerUnreachable {
            host: host.clone(),
            detail: error_chain(&e),
        })?;
        let docker = tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version())
            .await
            .map_err(|_| Error::DockerUnreachable {
                host: host.clone(),
                detail: format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
            })?
            .map_err(|e| classify_connect_error(&host, &e))?;
        let version = docker
            .version()
            .await
            .map_err(|e| classify_connect_error(&host, &e))?;
        let info = EngineInfo {
            host,
            server_version: version.version.unwrap_or_else(|| "unknown".into()),
            api_version: docker.client_version().to_string(),
        };
        tracing::debug!(?info, "connected to the engine");
        Ok(DockerEngine { docker, info })
    }

    /// The underlying bollard client, for the modules that need more than the trait.
    pub fn client(&self) -> &Docker {
        &self.docker
    }
}

/// Splits builder output into lines and recognises "Step N/M : …" headers.
#[derive(Default)]
struct LineSplitter {
    partial: String,
}

impl LineSplitter {
    fn push(&mut self, chunk: &str, out: &mut Vec<BuildEvent>) {
        self.partial.push_str(chunk);
        while let Some(pos) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=pos).collect();
            let line = line.trim_end_matches(['\n', '\r']).to_string();
            out.push(parse_build_line(line));
        }
    }

    fn finish(&mut self, out: &mut Vec<BuildEvent>) {
        if !self.partial.trim().is_empty() {
            let line = std::mem::take(&mut self.partial);
            out.push(parse_build_line(line.trim_end().to_string()));
        }
    }
}

fn parse_build_line(line: String) -> BuildEvent {
    // The classic builder prints "Step 3/12 : RUN …".
    if let Some(rest) = line.strip_prefix("Step ") {
        if let Some((counts, text)) = rest.split_once(" : ") {
            if let Some((n, total)) = counts.split_once('/') {
                if let (Ok(n), Ok(total)) = (n.trim().parse(), total.trim().parse()) {
                    return BuildEvent::Step {
                        n,
                        total,
                        text: text.to_string(),
                    };
                }
            }
        }
    }
    BuildEvent::Output(line)
}

impl Engine for DockerEngine {
    fn info(&self) -> &EngineInfo {
        &self.info
    }

    async fn image(&self, reference: &str) -> Result<Option<ImageInfo>> {
        match self.docker.inspect_image(reference).await {
            Ok(img) => Ok(Some(ImageInfo {
                id: img.id.unwrap_or_default(),
                labels: img.config.and_then(|c| c.labels).unwrap_or_default(),
                size: img.size.unwrap_or(0),
            })),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(Error::from_engine(format!("inspect image {reference}"), e)),
        }
    }

    async fn pull(&self, reference: &str) -> Result<()> {
        let (repo, tag) = super::split_reference(reference);
        let options = CreateImageOptionsBuilder::new()
            .from_image(repo)
            .tag(tag)
            .build();
        let mut stream = self.docker.create_image(Some(options), None, None);
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| Error::Engine {
                action: format!("pull {reference}"),
                detail: error_chain(&e),
            })?;
            if let Some(status) = info.status {
                tracing::debug!(%status, "pull");
            }
        }
        Ok(())
    }

    async fn import_rootfs(
        &self,
        rootfs: ByteStream,
        reference: &str,
        changes: Vec<String>,
    ) -> Result<String> {
        let (repo, tag) = super::split_reference(reference);
        let options = CreateImageOptionsBuilder::new()
            .from_src("-")
            .repo(repo)
            .tag(tag)
            .changes(changes)
            .build();
        let body = bollard::body_try_stream(rootfs);
        let mut stream = self.docker.create_image(Some(options), Some(body), None);
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| Error::from_engine(format!("import {reference}"), e))?;
            if let Some(status) = info.status {
                tracing::debug!(%status, "import");
            }
        }
        let image = self.image(reference).await?.ok_or_else(|| Error::Engine {
            action: format!("import {reference}"),
            detail: "the engine reported success but the image is not there".into(),
        })?;
        Ok(image.id)
    }

    async fn build(
        &self,
        context: Vec<u8>,
        request: &BuildRequest,
        on_event: &mut (dyn FnMut(BuildEvent) + Send),
    ) -> Result<String> {
        let options = BuildImageOptionsBuilder::new()
            .dockerfile("Dockerfile")
            .t(&request.tag)
            .rm(true)
            .forcerm(true)
            .nocache(request.no_cache)
            .buildargs(&request.build_args)
            .labels(&request.labels)
            .build();
        let body = bollard::body_full(context.into());
        let mut stream = self.docker.build_image(options, None, Some(body));
        let mut splitter = LineSplitter::default();
        let mut image_id = None;
        let mut events = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(text) = info.stream.as_deref() {
                        splitter.push(text, &mut events);
                    }
                    if let Some(status) = info.status.as_deref() {
                        events.push(BuildEvent::Output(status.to_string()));
                    }
                    if let Some(id) = info.aux.and_then(|a| a.id) {
                        image_id = Some(id);
                    }
                    for event in events.drain(..) {
                        on_event(event);
                    }
                }
                Err(e) => {
                    splitter.finish(&mut events);
                    for event in events.drain(..) {
                        on_event(event);
                    }
                    let detail = match &e {
                        bollard::errors::Error::DockerStreamError { error } => error.clone(),
                        other => error_chain(other),
                    };
                    return Err(if crate::error::is_disk_full(&detail) {
                        Error::DiskFull {
                            during: format!("building {}", request.tag),
                        }
                    } else {
                        Error::Engine {
                            action: format!("build {}", request.tag),
                            detail,
                        }
                    });
                }
            }
        }
        splitter.finish(&mut events);
        for event in events.drain(..) {
            on_event(event);
        }
        match image_id {
            Some(id) => Ok(id),
            // Older builders only print "Successfully built"; ask for the tag.
            None => self
                .image(&request.tag)
                .await?
                .map(|i| i.id)
                .ok_or_else(|| Error::Engine {
                    action: format!("build {}", request.tag),
                    detail: "the build ended without producing an image".into(),
                }),
        }
    }

    async fn run_to_completion(&self, image: &str, command: &[&str]) -> Result<RunOutput> {
        let name = format!("sparkbox-run-{}", labels::random_suffix());
        let body = bollard::models::ContainerCreateBody {
            image: Some(image.to_string()),
            entrypoint: Some(command.iter().map(|s| s.to_string()).collect()),
            cmd: Some(vec![]),
            labels: Some(HashMap::from([(
                labels::TEMPORARY.to_string(),
                "true".to_string(),
            )])),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        self.docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| Error::from_engine(format!("create a container from {image}"), e))?;
        let result = self.run_created(&name).await;
        let remove = RemoveContainerOptionsBuilder::new().force(true).build();
        if let Err(e) = self.docker.remove_container(&name, Some(remove)).await {
            tracing::warn!("could not remove the temporary container {name}: {e}");
        }
        result
    }

    async fn remove_image(&self, reference: &str) -> Result<()> {
        let options = RemoveImageOptionsBuilder::new().force(true).build();
        match self
            .docker
            .remove_image(reference, Some(options), None)
            .await
        {
            Ok(_)
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(Error::from_engine(format!("remove image {reference}"), e)),
        }
    }
}

impl DockerEngine {
    async fn run_created(&self, name: &str) -> Result<RunOutput> {
        self.docker
            .start_container(name, None)
            .await
            .map_err(|e| Error::from_engine(format!("start {name}"), e))?;
        let mut wait = self.docker.wait_container(name, None);
        let mut exit_code = 0;
        while let Some(item) = wait.next().await {
            match item {
                Ok(r) => exit_code = r.status_code,
                // bollard reports a non-zero exit as an error carrying the code.
                Err(bollard::errors::Error::DockerContainerWaitError { code, .. }) => {
                    exit_code = code
                }
                Err(e) => return Err(Error::from_engine(format!("wait for {name}"), e)),
            }
        }
        let options = LogsOptionsBuilder::new().stdout(true).stderr(true).build();
        let mut logs = self.docker.logs(name, Some(options));
        let (mut stdout, mut stderr) = (String::new(), String::new());
        while let Some(item) = logs.next().await {
            match item.map_err(|e| Error::from_engine(format!("read the output of {name}"), e))? {
                bollard::container::LogOutput::StdErr { message } => {
                    stderr.push_str(&String::from_utf8_lossy(&message))
                }
                other => stdout.push_str(&other.to_string()),
            }
        }
        Ok(RunOutput {
            exit_code,
            stdout,
            stderr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_chunks_into_lines_and_steps() {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        s.push("Step 2/9 : RUN apt-get", &mut out);
        assert!(out.is_empty());
        s.push(" install -y x\n ---> Running in abc\nhello", &mut out);
        s.finish(&mut out);
        assert_eq!(
            out,
            vec![
                BuildEvent::Step {
                    n: 2,
                    total: 9,
                    text: "RUN apt-get install -y x".into()
                },
                BuildEvent::Output(" ---> Running in abc".into()),
                BuildEvent::Output("hello".into()),
            ]
        );
    }
}
