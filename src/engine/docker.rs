//! The Docker implementation of [`Engine`] over bollard.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, EndpointSettings, ExecConfig, HealthConfig, HostConfig,
    NetworkCreateRequest, NetworkingConfig, PortBinding, VolumeCreateRequest,
};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
    ImportImageOptionsBuilder, ListContainersOptionsBuilder, ListImagesOptionsBuilder,
    ListNetworksOptionsBuilder, ListVolumesOptionsBuilder, LogsOptionsBuilder,
    PushImageOptionsBuilder, RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
    RemoveVolumeOptionsBuilder, ResizeExecOptionsBuilder, StopContainerOptionsBuilder,
    TagImageOptionsBuilder, UploadToContainerOptionsBuilder,
};
use bollard::Docker;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;

use super::{
    BuildEvent, BuildRequest, ByteStream, ContainerSpec, ContainerState, Engine, EngineInfo,
    ExecChunk, ExecRequest, ExecSession, ImageInfo, ImageSummary, RegistryAuth, RunOutput,
    SystemInfo,
};
use crate::error::{Error, Result};
use crate::model::labels;

/// How long to wait for the engine's first answer before calling it unreachable.
/// How long `remove_network` waits for a swarm's removed tasks to leave.
const NETWORK_RELEASE_PATIENCE: Duration = Duration::from_secs(60);

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a save or load may take to answer. The engine answers a save only
/// once it has gathered every layer, and a load only once it has unpacked the
/// whole archive — minutes for a large image from a slow USB stick — so the
/// client's usual two-minute limit would cut them off.
const ARCHIVE_TIMEOUT: Duration = Duration::from_secs(3 * 3600);

/// A connected Docker engine with a negotiated API version.
#[derive(Debug, Clone)]
pub struct DockerEngine {
    docker: Docker,
    info: EngineInfo,
    /// The server's version document, read once when connecting.
    version: bollard::models::SystemVersion,
    /// Whether it manages a swarm (then a swarm cluster's objects are services).
    swarm: super::swarm::SwarmRole,
}

/// The engine address sparkbox will use: DOCKER_HOST, else Docker's socket,
/// else Podman's where only Podman's is there.
pub fn docker_host() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| {
            let runtime_dir = std::env::var("XDG_RUNTIME_DIR").ok();
            default_socket(runtime_dir.as_deref(), |p| std::path::Path::new(p).exists())
        })
}

/// The default engine socket: Docker's when it is there or nothing is;
/// otherwise Podman's — the user's (rootless, under `runtime_dir`), then the
/// system's — when one of those is there.
fn default_socket(runtime_dir: Option<&str>, exists: impl Fn(&str) -> bool) -> String {
    const DOCKER: &str = "/var/run/docker.sock";
    if exists(DOCKER) {
        return format!("unix://{DOCKER}");
    }
    let user = runtime_dir.map(|d| format!("{d}/podman/podman.sock"));
    user.into_iter()
        .chain(["/run/podman/podman.sock".to_string()])
        .find(|p| exists(p))
        .map_or_else(|| format!("unix://{DOCKER}"), |p| format!("unix://{p}"))
}

pub use super::error_chain;

/// The innermost cause of an error: the words closest to what really happened.
pub fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut last = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        last = cause.to_string();
        source = cause.source();
    }
    last
}

fn classify_connect_error(host: &str, err: &bollard::errors::Error) -> Error {
    let detail = root_cause(err);
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
        // bollard reads DOCKER_HOST itself; an empty value means "default",
        // which may be Podman's socket.
        let docker = if std::env::var("DOCKER_HOST").is_ok_and(|h| !h.is_empty()) {
            Docker::connect_with_defaults()
        } else if host != "unix:///var/run/docker.sock" {
            Docker::connect_with_socket(&host, 120, bollard::API_DEFAULT_VERSION)
        } else {
            Docker::connect_with_local_defaults()
        }
        .map_err(|e| Error::DockerUnreachable {
            host: host.clone(),
            detail: root_cause(&e),
        })?;
        DockerEngine::negotiate(docker, host).await
    }

    /// Connects to the engine on the Unix socket `socket` ("unix:///…" or a
    /// path), whatever DOCKER_HOST says: for the tests that run engines of
    /// their own beside the machine's (one per lab node).
    pub async fn connect_to_socket(socket: &str) -> Result<DockerEngine> {
        let host = if socket.starts_with("unix://") {
            socket.to_string()
        } else {
            format!("unix://{socket}")
        };
        let docker = Docker::connect_with_socket(&host, 120, bollard::API_DEFAULT_VERSION)
            .map_err(|e| Error::DockerUnreachable {
                host: host.clone(),
                detail: root_cause(&e),
            })?;
        DockerEngine::negotiate(docker, host).await
    }

    async fn negotiate(docker: Docker, host: String) -> Result<DockerEngine> {
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
            server_version: version.version.clone().unwrap_or_else(|| "unknown".into()),
            api_version: docker.client_version().to_string(),
            // Podman names itself among the version's components.
            podman: version
                .components
                .iter()
                .flatten()
                .any(|c| c.name.to_ascii_lowercase().contains("podman")),
        };
        tracing::debug!(?info, "connected to the engine");
        let swarm = super::swarm::role_of(&docker).await;
        Ok(DockerEngine {
            docker,
            info,
            version,
            swarm,
        })
    }

    /// The underlying bollard client, for the real-Docker tests that reach
    /// past sparkbox (killing a container, listing every image); sparkbox
    /// itself goes through [`Engine`] only.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// What to address for the container `name`: itself, or — on a swarm
    /// manager, when `name` is a service — its task's container on this
    /// node; a task on another node cannot be reached from here.
    async fn target(&self, name: &str) -> Result<String> {
        if self.swarm.manager_node.is_none() {
            return Ok(name.to_string());
        }
        match super::swarm::place_of(&self.docker, &self.swarm, name).await? {
            super::swarm::TaskPlace::NotAService => Ok(name.to_string()),
            super::swarm::TaskPlace::Here(id) => Ok(id),
            super::swarm::TaskPlace::Starting(state) => Err(Error::NotReady(format!(
                "{name} has no container yet: its task is {state} — wait for it, or see `sparkbox status`"
            ))),
            super::swarm::TaskPlace::Elsewhere(node) => Err(Error::OtherNode {
                container: name.to_string(),
                node,
                host: self.info.host.clone(),
            }),
        }
    }

    /// The networks the engine lists with `filters`.
    async fn network_list(
        &self,
        filters: HashMap<String, Vec<String>>,
    ) -> Result<Vec<bollard::models::Network>> {
        let options = ListNetworksOptionsBuilder::new().filters(&filters).build();
        self.docker
            .list_networks(Some(options))
            .await
            .map_err(|e| engine_error("list networks", "the network list", e))
    }

    /// The networks named exactly `name`: (ID, the cluster its label names).
    async fn networks_named(&self, name: &str) -> Result<Vec<(String, Option<String>)>> {
        let list = self
            .network_list(HashMap::from([(
                "name".to_string(),
                vec![name.to_string()],
            )]))
            .await?;
        // The engine's name filter matches parts of names too.
        Ok(list
            .into_iter()
            .filter(|n| n.name.as_deref() == Some(name))
            .filter_map(|n| {
                let cluster = n.labels.and_then(|l| l.get(labels::CLUSTER).cloned());
                Some((n.id?, cluster))
            })
            .collect())
    }

    /// After creating the network `id` named `name` for `cluster`: an engine
    /// that allows two networks of one name (API 1.41 and before) may now
    /// hold two — a create whose client was interrupted finishes after the
    /// next `up` looked — and a container joining by name would then find it
    /// ambiguous. The cluster keeps the one just made (no container has
    /// joined either); one of the same name that is not the cluster's is a
    /// name conflict, and the new one goes again.
    async fn one_network_named(&self, name: &str, id: &str, cluster: Option<&str>) -> Result<()> {
        let others: Vec<(String, Option<String>)> = self
            .networks_named(name)
            .await?
            .into_iter()
            .filter(|(other, _)| other != id)
            .collect();
        if others.iter().any(|(_, c)| c.as_deref() != cluster) {
            self.remove_network_patiently(id, name).await?;
            return Err(Error::name_conflict(
                format!("create network {name}"),
                "network",
                name,
                "a network of that name that is not this cluster's exists".to_string(),
            ));
        }
        for (other, _) in &others {
            self.remove_network_patiently(other, name).await?;
        }
        Ok(())
    }

    /// Removes the network `reference` (a name or an ID) of the network
    /// `name`; a missing one is not an error. On a swarm the tasks of
    /// services just removed leave the overlay network a moment later ("in
    /// use by task"): waited for, bounded.
    async fn remove_network_patiently(&self, reference: &str, name: &str) -> Result<()> {
        let deadline = tokio::time::Instant::now() + NETWORK_RELEASE_PATIENCE;
        loop {
            match self.docker.remove_network(reference).await {
                Ok(()) => return Ok(()),
                Err(e) if is_not_found(&e) => return Ok(()),
                Err(e)
                    if e.to_string().contains("in use by task")
                        && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => {
                    return Err(engine_error(
                        format!("remove network {name}"),
                        format!("the network {name}"),
                        e,
                    ))
                }
            }
        }
    }

    /// True when `name` is a service of this swarm manager.
    async fn is_service(&self, name: &str) -> Result<Option<bollard::models::Service>> {
        if self.swarm.manager_node.is_none() {
            return Ok(None);
        }
        super::swarm::service(&self.docker, name).await
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
    // The classic builder prints "Step 3/12 : RUN …", Podman's (buildah)
    // "STEP 3/12: RUN …".
    let rest = line
        .strip_prefix("Step ")
        .or_else(|| line.strip_prefix("STEP "));
    if let Some((counts, text)) = rest.and_then(|r| r.split_once(':')) {
        if let Some((n, total)) = counts.split_once('/') {
            if let (Ok(n), Ok(total)) = (n.trim().parse(), total.trim().parse()) {
                return BuildEvent::Step {
                    n,
                    total,
                    text: text.trim_start().to_string(),
                };
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
                repo_digests: img.repo_digests.unwrap_or_default(),
            })),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(engine_error(
                format!("inspect image {reference}"),
                format!("the image {reference}"),
                e,
            )),
        }
    }

    async fn pull_with(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
        on_line: &mut (dyn FnMut(String) + Send),
    ) -> Result<()> {
        let (repo, tag) = super::split_reference(reference);
        let options = CreateImageOptionsBuilder::new()
            .from_image(repo)
            .tag(tag)
            .build();
        let mut stream = self
            .docker
            .create_image(Some(options), None, auth.map(credentials));
        drain_transfer(&mut stream, &format!("pull {reference}"), on_line, |info| {
            Transfer {
                id: info.id,
                status: info.status,
                bytes: info.progress_detail.and_then(|p| p.current.zip(p.total)),
                error: info.error_detail.and_then(|d| d.message),
            }
        })
        .await
    }

    async fn push(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
        on_line: &mut (dyn FnMut(String) + Send),
    ) -> Result<()> {
        let (repo, tag) = super::split_reference(reference);
        let options = PushImageOptionsBuilder::new().tag(tag).build();
        let mut stream = self
            .docker
            .push_image(repo, Some(options), auth.map(credentials));
        drain_transfer(&mut stream, &format!("push {reference}"), on_line, |info| {
            Transfer {
                id: None,
                status: info.status,
                bytes: info.progress_detail.and_then(|p| p.current.zip(p.total)),
                error: info.error_detail.and_then(|d| d.message),
            }
        })
        .await
    }

    async fn tag(&self, source: &str, target: &str) -> Result<()> {
        let (repo, tag) = super::split_reference(target);
        let options = TagImageOptionsBuilder::new().repo(repo).tag(tag).build();
        self.docker
            .tag_image(source, Some(options))
            .await
            .map_err(|e| {
                engine_error(
                    format!("tag {source} as {target}"),
                    format!("the image {source}"),
                    e,
                )
            })
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
        // The engine answers once it has written the whole layer: a built
        // image's filesystem takes longer than the client's usual limit.
        let docker = self.docker.clone().with_timeout(ARCHIVE_TIMEOUT);
        let mut stream = docker.create_image(Some(options), Some(body), None);
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| {
                engine_error(
                    format!("import {reference}"),
                    format!("the image {reference}"),
                    e,
                )
            })?;
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
            .map_err(|e| {
                engine_error(
                    format!("create a container from {image}"),
                    format!("the image {image}"),
                    e,
                )
            })?;
        let result = self.run_created(&name).await;
        let remove = RemoveContainerOptionsBuilder::new().force(true).build();
        if let Err(e) = self.docker.remove_container(&name, Some(remove)).await {
            tracing::warn!("could not remove the temporary container {name}: {e}");
        }
        result
    }

    async fn remove_image(&self, reference: &str) -> Result<()> {
        self.delete_image(reference, true).await
    }

    fn export_image(&self, reference: &str) -> BoxStream<'static, Result<Bytes>> {
        let docker = self.docker.clone().with_timeout(ARCHIVE_TIMEOUT);
        let action = format!("save the image {reference}");
        let during = format!("saving the image {reference}");
        let object = format!("the image {reference}");
        docker
            .export_image(reference)
            .map(move |item| item.map_err(|e| archive_error(&action, &during, &object, e)))
            .boxed()
    }

    fn export_container(&self, name: &str) -> BoxStream<'static, Result<Bytes>> {
        let docker = self.docker.clone().with_timeout(ARCHIVE_TIMEOUT);
        let action = format!("export the container {name}");
        let during = format!("exporting the container {name}");
        let object = format!("the container {name}");
        docker
            .export_container(name)
            .map(move |item| item.map_err(|e| archive_error(&action, &during, &object, e)))
            .boxed()
    }

    async fn import_image(&self, archive: ByteStream) -> Result<Vec<String>> {
        let docker = self.docker.clone().with_timeout(ARCHIVE_TIMEOUT);
        // quiet: the engine's per-layer progress comes only after it has read
        // the whole archive; sparkbox shows the bytes sent instead.
        let options = ImportImageOptionsBuilder::new().quiet(true).build();
        let mut stream = docker.import_image(options, bollard::body_try_stream(archive), None);
        let mut messages = Vec::new();
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| {
                archive_error(
                    "load the image archive",
                    "loading the image archive",
                    "the image archive",
                    e,
                )
            })?;
            for text in [info.stream, info.status].into_iter().flatten() {
                messages.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(str::to_string),
                );
            }
        }
        Ok(messages)
    }

    async fn images(&self, labels: &[(&str, &str)]) -> Result<Vec<ImageSummary>> {
        let options = ListImagesOptionsBuilder::new()
            .all(true)
            .filters(&label_filter(labels))
            .build();
        let list = self
            .docker
            .list_images(Some(options))
            .await
            .map_err(|e| engine_error("list images", "the image list", e))?;
        Ok(list
            .into_iter()
            .map(|i| ImageSummary {
                id: i.id,
                parent_id: Some(i.parent_id).filter(|p| !p.is_empty()),
                // Older engines list an untagged image as "<none>:<none>".
                repo_tags: i
                    .repo_tags
                    .into_iter()
                    .filter(|t| t != "<none>:<none>")
                    .collect(),
                labels: i.labels,
                size: i.size,
                created: i.created,
            })
            .collect())
    }

    async fn image_history(&self, reference: &str) -> Result<Vec<String>> {
        let steps = self.docker.image_history(reference).await.map_err(|e| {
            engine_error(
                format!("read the history of {reference}"),
                format!("the image {reference}"),
                e,
            )
        })?;
        Ok(steps.into_iter().map(|s| s.created_by).collect())
    }

    async fn remove_image_unforced(&self, reference: &str) -> Result<()> {
        self.delete_image(reference, false).await
    }

    async fn containers(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerState>> {
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&label_filter(labels))
            .build();
        let list = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| engine_error("list containers", "the container list", e))?;
        let services = if self.swarm.manager_node.is_some() {
            super::swarm::services_as_containers(&self.docker, labels).await?
        } else {
            Vec::new()
        };
        Ok(list
            .into_iter()
            .map(|c| {
                let status = c.status.unwrap_or_default();
                ContainerState {
                    name: c
                        .names
                        .and_then(|n| n.into_iter().next())
                        .map(|n| n.trim_start_matches('/').to_string())
                        .unwrap_or_default(),
                    id: c.id.unwrap_or_default(),
                    labels: c.labels.unwrap_or_default(),
                    state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                    health: super::health_from_status(&status),
                    ports: c
                        .ports
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|p| p.public_port.map(|h| (p.private_port, h)))
                        .collect(),
                    status,
                    created: c.created.unwrap_or(0),
                    image_id: c.image_id.unwrap_or_default(),
                    node: None,
                }
            })
            .chain(services)
            .collect())
    }

    async fn networks(&self, labels: &[(&str, &str)]) -> Result<Vec<String>> {
        let list = self.network_list(label_filter(labels)).await?;
        Ok(list.into_iter().filter_map(|n| n.name).collect())
    }

    async fn volumes(&self, labels: &[(&str, &str)]) -> Result<Vec<String>> {
        let options = ListVolumesOptionsBuilder::new()
            .filters(&label_filter(labels))
            .build();
        let list = self
            .docker
            .list_volumes(Some(options))
            .await
            .map_err(|e| engine_error("list volumes", "the volume list", e))?;
        Ok(list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect())
    }

    async fn create_network(&self, name: &str, labels: HashMap<String, String>) -> Result<()> {
        let cluster = labels.get(labels::CLUSTER).cloned();
        // A swarm cluster's network spans its nodes: an overlay that the
        // services and one-off containers (attachable) join.
        let swarm = super::swarm::is_swarm(&labels);
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some(if swarm { "overlay" } else { "bridge" }.into()),
            attachable: swarm.then_some(true),
            scope: swarm.then(|| "swarm".to_string()),
            labels: Some(labels),
            ..Default::default()
        };
        let created = self
            .docker
            .create_network(request)
            .await
            .map_err(|e| create_error("network", name, e))?;
        self.one_network_named(name, &created.id, cluster.as_deref())
            .await
    }

    async fn remove_network(&self, name: &str) -> Result<()> {
        // Several networks of one name (an engine that allows it, after a
        // create raced another): the name is ambiguous, and each of the
        // clusters' own goes by its ID — never one without sparkbox's label.
        let same = self.networks_named(name).await?;
        if same.len() > 1 {
            for (id, _) in same.iter().filter(|(_, cluster)| cluster.is_some()) {
                self.remove_network_patiently(id, name).await?;
            }
            return Ok(());
        }
        self.remove_network_patiently(name, name).await
    }

    async fn create_volume(&self, name: &str, labels: HashMap<String, String>) -> Result<()> {
        let request = VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels),
            ..Default::default()
        };
        self.docker
            .create_volume(request)
            .await
            .map(|_| ())
            .map_err(|e| create_error("volume", name, e))
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        let options = RemoveVolumeOptionsBuilder::new().force(false).build();
        match self.docker.remove_volume(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(engine_error(
                format!("remove volume {name}"),
                format!("the volume {name}"),
                e,
            )),
        }
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        if super::swarm::is_swarm(&spec.labels) {
            if self.swarm.manager_node.is_none() {
                return Err(Error::Swarm(format!(
                    "{} belongs to a swarm cluster, and the engine at {} is not a swarm manager — point DOCKER_HOST at a manager of that swarm",
                    spec.name, self.info.host
                )));
            }
            return super::swarm::create_service(&self.docker, spec).await;
        }
        let options = CreateContainerOptionsBuilder::new()
            .name(&spec.name)
            .build();
        let mut body = spec_to_body(spec);
        if self.info.podman {
            if let Some(host) = body.host_config.as_mut() {
                host.restart_policy = Some(unless_stopped());
            }
        }
        self.docker
            .create_container(Some(options), body)
            .await
            .map(|r| r.id)
            .map_err(|e| create_error("container", &spec.name, e))
    }

    async fn start_container(&self, name: &str) -> Result<()> {
        if let Some(service) = self.is_service(name).await? {
            return super::swarm::set_replicas(&self.docker, &service, 1).await;
        }
        // 304: it runs already (a container adopted from an earlier `up`).
        match self.docker.start_container(name, None).await {
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            other => other,
        }
        .map_err(|e| {
                let detail = error_chain(&e);
                if detail.contains("port is already allocated") || detail.contains("address already in use") {
                    Error::PortTaken(format!(
                        "cannot start {name}: a port it publishes is taken ({detail}) — choose another port or stop the program using it"
                    ))
                } else {
                    engine_error(format!("start {name}"), format!("the container {name}"), e)
                }
            })
    }

    async fn stop_container(&self, name: &str, timeout_s: i32) -> Result<()> {
        if let Some(service) = self.is_service(name).await? {
            super::swarm::set_replicas(&self.docker, &service, 0).await?;
            // Stopped when its task is: within the task's grace and a margin.
            let patience =
                std::time::Duration::from_secs(u64::try_from(timeout_s).unwrap_or(10) + 20);
            return super::swarm::wait_no_running_task(&self.docker, &service, patience).await;
        }
        let options = StopContainerOptionsBuilder::new().t(timeout_s).build();
        match self.docker.stop_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(engine_error(
                format!("stop {name}"),
                format!("the container {name}"),
                e,
            )),
        }
    }

    async fn keep_running(&self, name: &str) -> Result<()> {
        // Podman 4's Docker API cannot update a container: there the policy
        // was given at create time.
        if self.info.podman || self.is_service(name).await?.is_some() {
            return Ok(());
        }
        let body = bollard::models::ContainerUpdateBody {
            restart_policy: Some(unless_stopped()),
            ..Default::default()
        };
        self.docker.update_container(name, body).await.map_err(|e| {
            engine_error(
                format!("set the restart policy of {name}"),
                format!("the container {name}"),
                e,
            )
        })
    }

    async fn remove_container(&self, name: &str) -> Result<()> {
        if self.swarm.manager_node.is_some()
            && super::swarm::remove_service(&self.docker, name).await?
        {
            return Ok(());
        }
        let options = RemoveContainerOptionsBuilder::new().force(true).build();
        match self.docker.remove_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(engine_error(
                format!("remove container {name}"),
                format!("the container {name}"),
                e,
            )),
        }
    }

    async fn exec(&self, container: &str, command: &[&str]) -> Result<RunOutput> {
        self.exec_inner(container, None, command).await
    }

    async fn exec_attached(&self, container: &str, request: &ExecRequest) -> Result<ExecSession> {
        let target = self.target(container).await?;
        let container = target.as_str();
        let config = ExecConfig {
            attach_stdin: Some(request.stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(request.tty),
            env: (!request.env.is_empty()).then(|| {
                request
                    .env
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect()
            }),
            cmd: Some(request.command.clone()),
            user: request.user.clone(),
            ..Default::default()
        };
        let program = request.command.first().cloned().unwrap_or_default();
        let action = format!("run {program:?} in {container}");
        let created = self
            .docker
            .create_exec(container, config)
            .await
            .map_err(|e| exec_error(&action, container, e))?;
        let options = bollard::exec::StartExecOptions {
            detach: false,
            tty: request.tty,
            output_capacity: None,
        };
        let started = self
            .docker
            .start_exec(&created.id, Some(options))
            .await
            .map_err(|e| exec_error(&action, container, e))?;
        let bollard::exec::StartExecResults::Attached { output, input } = started else {
            return Err(Error::Engine {
                action,
                detail: "the engine started the command detached".into(),
            });
        };
        let owner = container.to_string();
        let output = output
            .filter_map(move |item| {
                let chunk = match item {
                    Ok(bollard::container::LogOutput::StdErr { message }) => {
                        Some(Ok(ExecChunk::Stderr(message)))
                    }
                    Ok(bollard::container::LogOutput::StdOut { message })
                    | Ok(bollard::container::LogOutput::Console { message }) => {
                        Some(Ok(ExecChunk::Stdout(message)))
                    }
                    Ok(bollard::container::LogOutput::StdIn { .. }) => None,
                    Err(e) => Some(Err(engine_error(
                        format!("read the output of {program:?}"),
                        format!("the container {owner}"),
                        e,
                    ))),
                };
                std::future::ready(chunk)
            })
            .boxed();
        Ok(ExecSession {
            id: created.id,
            output,
            input,
        })
    }

    async fn exec_resize(&self, exec_id: &str, columns: u16, rows: u16) -> Result<()> {
        let options = ResizeExecOptionsBuilder::new()
            .w(i32::from(columns))
            .h(i32::from(rows))
            .build();
        self.docker
            .resize_exec(exec_id, options)
            .await
            .map_err(|e| engine_error("resize the terminal of the command", "the command", e))
    }

    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>> {
        let inspect = self
            .docker
            .inspect_exec(exec_id)
            .await
            .map_err(|e| engine_error("read the exit code of the command", "the command", e))?;
        if inspect.running == Some(true) {
            return Ok(None);
        }
        Ok(inspect.exit_code)
    }

    async fn upload_tar(&self, container: &str, dir: &str, tar: Vec<u8>) -> Result<()> {
        let target = self.target(container).await?;
        let container = target.as_str();
        let options = UploadToContainerOptionsBuilder::new().path(dir).build();
        self.docker
            .upload_to_container(container, Some(options), bollard::body_full(tar.into()))
            .await
            .map_err(|e| exec_error(&format!("copy files into {container}:{dir}"), container, e))
    }

    fn log_stream(
        &self,
        container: &str,
        follow: bool,
        tail: Option<usize>,
        since: Option<i64>,
    ) -> futures_util::stream::BoxStream<'static, Result<String>> {
        let mut options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .follow(follow)
            .tail(&tail.map(|t| t.to_string()).unwrap_or_else(|| "all".into()));
        if let Some(since) = since {
            options = options.since(i32::try_from(since).unwrap_or(i32::MAX));
        }
        let name = container.to_string();
        let options = options.build();
        let raw = if self.swarm.manager_node.is_some() {
            // A service's log comes through the manager from whichever
            // node runs its task.
            let this = self.clone();
            let n = name.clone();
            futures_util::stream::once(async move {
                if matches!(this.is_service(&n).await, Ok(Some(_))) {
                    this.docker.service_logs(&n, Some(options)).boxed()
                } else {
                    this.docker.logs(&n, Some(options)).boxed()
                }
            })
            .flatten()
            .boxed()
        } else {
            self.docker.logs(container, Some(options)).boxed()
        };
        raw.map(move |item| {
            item.map(|chunk| chunk.to_string()).map_err(|e| {
                engine_error(
                    format!("read the log of {name}"),
                    format!("the container {name}"),
                    e,
                )
            })
        })
        .boxed()
    }

    fn timestamped_log(&self, container: &str) -> BoxStream<'static, Result<Bytes>> {
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .timestamps(true)
            .tail("all")
            .build();
        let name = container.to_string();
        self.docker
            .logs(container, Some(options))
            .filter_map(move |item| {
                let chunk = match item {
                    Ok(bollard::container::LogOutput::StdOut { message })
                    | Ok(bollard::container::LogOutput::StdErr { message })
                    | Ok(bollard::container::LogOutput::Console { message }) => Some(Ok(message)),
                    Ok(bollard::container::LogOutput::StdIn { .. }) => None,
                    Err(e) => Some(Err(engine_error(
                        format!("read the log of {name}"),
                        format!("the container {name}"),
                        e,
                    ))),
                };
                std::future::ready(chunk)
            })
            .boxed()
    }

    async fn inspect_container(&self, name: &str) -> Result<serde_json::Value> {
        let target = self.target(name).await?;
        let name = target.as_str();
        let doc = self
            .docker
            .inspect_container(name, None)
            .await
            .map_err(|e| {
                engine_error(
                    format!("inspect {name}"),
                    format!("the container {name}"),
                    e,
                )
            })?;
        serde_json::to_value(doc).map_err(|e| Error::Engine {
            action: format!("inspect {name}"),
            detail: format!("its inspect document cannot be rendered: {e}"),
        })
    }

    async fn swarm_nodes(&self) -> Result<Vec<super::SwarmNode>> {
        if self.swarm.manager_node.is_none() {
            return Err(super::not_a_manager(&self.info.host));
        }
        super::swarm::nodes(&self.docker, &self.swarm).await
    }

    async fn check_host_paths(
        &self,
        cluster: &str,
        image: &str,
        uses: &[super::HostPathUse],
        timeout: std::time::Duration,
    ) -> Result<()> {
        if self.swarm.manager_node.is_none() || uses.is_empty() {
            return Ok(());
        }
        super::swarm::check_host_paths(&self.docker, &self.swarm, cluster, image, uses, timeout)
            .await
    }

    async fn system_info(&self) -> Result<SystemInfo> {
        let info = self
            .docker
            .info()
            .await
            .map_err(|e| engine_error("describe itself", "the engine", e))?;
        let version = &self.version;
        Ok(SystemInfo {
            server_api_version: version.api_version.clone(),
            min_api_version: version.min_api_version.clone(),
            os: version.os.clone(),
            arch: version.arch.clone(),
            kernel_version: version.kernel_version.clone(),
            operating_system: info.operating_system,
            storage_driver: info.driver,
            cgroup_version: info.cgroup_version.map(|c| c.to_string()),
            cpus: info.ncpu,
            memory_bytes: info.mem_total,
            containers_running: info.containers_running,
            data_root: info.docker_root_dir,
        })
    }
}

/// An engine label filter; an empty value matches any value of the key.
fn label_filter(labels: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), super::label_selectors(labels))])
}

/// Classifies an error of a save or load: the engine reports failures in the
/// middle of the stream (a full disk among them) as stream errors.
fn archive_error(action: &str, during: &str, object: &str, e: bollard::errors::Error) -> Error {
    let detail = match &e {
        bollard::errors::Error::DockerStreamError { error } => error.clone(),
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => error_chain(other),
    };
    if crate::error::is_disk_full(&detail) {
        Error::DiskFull {
            during: during.to_string(),
        }
    } else if is_not_found(&e) {
        Error::Gone {
            action: action.to_string(),
            object: object.to_string(),
            detail,
        }
    } else {
        Error::Engine {
            action: action.to_string(),
            detail,
        }
    }
}

/// Classifies an error of running something in `container`: a 409 means it
/// is not running.
fn exec_error(action: &str, container: &str, e: bollard::errors::Error) -> Error {
    match &e {
        bollard::errors::Error::DockerResponseServerError {
            status_code: 409,
            message,
        } => Error::NotReady(format!(
            "cannot {action}: {message} — start it first (`sparkbox start`, or `sparkbox up`)"
        )),
        _ => engine_error(action, format!("the container {container}"), e),
    }
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Classifies an engine error seen while trying to `action` on `object`
/// ("the container demo-master"): a full disk, a 404 (the object is gone,
/// removed behind sparkbox's back), or the rest in the engine's own words.
///
/// A 409 is left to the callers that know what it means: on a create it is
/// a name in use ([`create_error`]), on an exec a container that is not
/// running ([`exec_error`]), but on a removal it is "in use" or "already
/// being removed", where the advice of [`Error::NameConflict`] would mislead.
/// bollard's credentials from ours.
fn credentials(auth: &RegistryAuth) -> bollard::auth::DockerCredentials {
    bollard::auth::DockerCredentials {
        username: auth.username.clone(),
        password: auth.password.clone(),
        identitytoken: auth.identity_token.clone(),
        serveraddress: Some(auth.server.clone()),
        ..Default::default()
    }
}

/// A pull's or push's failure with the engine's own words (the registry's
/// answer is in them); a full disk is named as such.
fn registry_error(action: String, err: &bollard::errors::Error) -> Error {
    let detail = match err {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        bollard::errors::Error::DockerStreamError { error } => error.clone(),
        other => error_chain(other),
    };
    registry_error_text(action, detail)
}

fn registry_error_text(action: String, detail: String) -> Error {
    if crate::error::is_disk_full(&detail) {
        return Error::DiskFull { during: action };
    }
    Error::Engine { action, detail }
}

/// One message of a pull's or push's stream.
struct Transfer {
    id: Option<String>,
    status: Option<String>,
    bytes: Option<(i64, i64)>,
    error: Option<String>,
}

/// Reads a pull's or push's stream to its end, telling `on_line` each
/// progress line ("a1b2c3: Downloading 12/300 MB"); an error in the stream
/// ends it with the engine's words.
async fn drain_transfer<T>(
    stream: &mut (impl futures_util::Stream<Item = std::result::Result<T, bollard::errors::Error>>
              + Unpin),
    action: &str,
    on_line: &mut (dyn FnMut(String) + Send),
    parts: impl Fn(T) -> Transfer,
) -> Result<()> {
    while let Some(item) = stream.next().await {
        let t = parts(item.map_err(|e| registry_error(action.to_string(), &e))?);
        if let Some(detail) = t.error {
            return Err(registry_error_text(action.to_string(), detail));
        }
        let Some(status) = t.status else { continue };
        let mut line = match t.id {
            Some(id) if !id.is_empty() => format!("{id}: {status}"),
            _ => status,
        };
        if let Some((current, total)) = t.bytes.filter(|(_, total)| *total > 0) {
            line.push_str(&format!(
                " {}/{} MB",
                current / 1_000_000,
                total / 1_000_000
            ));
        }
        on_line(line);
    }
    Ok(())
}

pub(crate) fn engine_error(
    action: impl Into<String>,
    object: impl Into<String>,
    err: bollard::errors::Error,
) -> Error {
    let action = action.into();
    let detail = err.to_string();
    if crate::error::is_disk_full(&detail) {
        return Error::DiskFull { during: action };
    }
    if is_not_found(&err) {
        return Error::Gone {
            action,
            object: object.into(),
            detail,
        };
    }
    Error::Engine { action, detail }
}

/// Classifies a create-time error: a 409 is a name already in use; a 404
/// names something the new object needs (its image, its network), so the
/// engine's own words say what is missing.
fn create_error(what: &str, name: &str, e: bollard::errors::Error) -> Error {
    let action = format!("create {what} {name}");
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code: 409,
            message,
        } if !crate::error::is_disk_full(&message) => {
            Error::name_conflict(action, what, name, message)
        }
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            message,
        } => Error::Engine {
            action,
            detail: message,
        },
        other => engine_error(action, format!("the {what} {name}"), other),
    }
}

/// The restart policy of a ready cluster's containers.
fn unless_stopped() -> bollard::models::RestartPolicy {
    bollard::models::RestartPolicy {
        name: Some(bollard::models::RestartPolicyNameEnum::UNLESS_STOPPED),
        maximum_retry_count: None,
    }
}

fn spec_to_body(spec: &ContainerSpec) -> ContainerCreateBody {
    let mut exposed = Vec::new();
    let mut bindings = HashMap::new();
    for p in &spec.ports {
        let key = format!("{}/tcp", p.container_port);
        exposed.push(key.clone());
        bindings.insert(
            key,
            Some(vec![PortBinding {
                host_ip: Some(p.host_ip.clone()),
                host_port: Some(p.host_port.to_string()),
            }]),
        );
    }
    let healthcheck = spec.healthcheck.as_ref().map(|cmd| {
        let mut test = vec!["CMD".to_string()];
        test.extend(cmd.iter().cloned());
        // Every check is an exec (a process in the container and the
        // runtime's own work): every 10 s keeps an idle cluster of five
        // containers at about 5% of one core, where every 5 s took about 9%.
        // `up` and `status` do not wait for these: they check live.
        HealthConfig {
            test: Some(test),
            interval: Some(10_000_000_000),
            timeout: Some(5_000_000_000),
            retries: Some(3),
            start_period: Some(60_000_000_000),
            start_interval: None,
        }
    });
    // No network: no endpoint to alias in (the engine refuses aliases there).
    let (network_mode, networking_config) = if spec.network.is_empty() {
        ("none".to_string(), None)
    } else {
        (
            spec.network.clone(),
            Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    spec.network.clone(),
                    EndpointSettings {
                        aliases: Some(vec![spec.name.clone()]),
                        ..Default::default()
                    },
                )])),
            }),
        )
    };
    ContainerCreateBody {
        hostname: Some(spec.name.clone()),
        image: Some(spec.image.clone()),
        user: spec.user.clone(),
        cmd: Some(spec.command.clone()),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(spec.labels.clone()),
        exposed_ports: Some(exposed),
        healthcheck,
        host_config: Some(HostConfig {
            port_bindings: Some(bindings),
            binds: Some(spec.binds.clone()),
            network_mode: Some(network_mode),
            memory: spec.memory_bytes,
            cpu_shares: spec.cpu_shares,
            cap_drop: spec.cap_add.as_ref().map(|_| vec!["ALL".to_string()]),
            cap_add: spec.cap_add.clone(),
            security_opt: spec
                .cap_add
                .as_ref()
                .map(|_| vec!["no-new-privileges:true".to_string()]),
            pids_limit: spec.pids_limit,
            ..Default::default()
        }),
        networking_config,
        ..Default::default()
    }
}

/// Runs a command in a container as `user` (e.g. "root"); for the real-Docker
/// tests — sparkbox itself runs commands as a user through
/// [`Engine::exec_attached`].
pub async fn exec_as(
    engine: &DockerEngine,
    container: &str,
    user: &str,
    command: &[&str],
) -> Result<RunOutput> {
    engine.exec_inner(container, Some(user), command).await
}

impl DockerEngine {
    /// Removes an image (untagged parents too); a missing one is fine. A
    /// 409 — "conflict: unable to remove repository reference … - container
    /// … is using its referenced image …", "image has dependent child
    /// images" — is the engine's own refusal, kept in its words.
    async fn delete_image(&self, reference: &str, force: bool) -> Result<()> {
        let options = RemoveImageOptionsBuilder::new()
            .force(force)
            .noprune(false)
            .build();
        match self
            .docker
            .remove_image(reference, Some(options), None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409,
                message,
            }) => Err(Error::InUse {
                image: reference.to_string(),
                detail: message,
            }),
            Err(e) => Err(engine_error(
                format!("remove image {reference}"),
                format!("the image {reference}"),
                e,
            )),
        }
    }

    async fn exec_inner(
        &self,
        container: &str,
        user: Option<&str>,
        command: &[&str],
    ) -> Result<RunOutput> {
        let target = self.target(container).await?;
        let container = target.as_str();
        let config = ExecConfig {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(command.iter().map(|s| s.to_string()).collect()),
            user: user.map(str::to_string),
            ..Default::default()
        };
        let action = || format!("run {:?} in {container}", command.first().unwrap_or(&""));
        let created = self
            .docker
            .create_exec(container, config)
            .await
            .map_err(|e| engine_error(action(), format!("the container {container}"), e))?;
        let started = self
            .docker
            .start_exec(&created.id, None)
            .await
            .map_err(|e| engine_error(action(), format!("the container {container}"), e))?;
        let (mut stdout, mut stderr) = (String::new(), String::new());
        if let bollard::exec::StartExecResults::Attached { mut output, .. } = started {
            while let Some(item) = output.next().await {
                match item
                    .map_err(|e| engine_error(action(), format!("the container {container}"), e))?
                {
                    bollard::container::LogOutput::StdErr { message } => {
                        stderr.push_str(&String::from_utf8_lossy(&message))
                    }
                    other => stdout.push_str(&other.to_string()),
                }
            }
        }
        let exit_code = super::exec_wait_exit(self, &created.id).await?;
        Ok(RunOutput {
            exit_code: exit_code.unwrap_or(-1),
            stdout,
            stderr,
        })
    }

    async fn run_created(&self, name: &str) -> Result<RunOutput> {
        self.docker.start_container(name, None).await.map_err(|e| {
            engine_error(format!("start {name}"), format!("the container {name}"), e)
        })?;
        let mut wait = self.docker.wait_container(name, None);
        let mut exit_code = 0;
        while let Some(item) = wait.next().await {
            match item {
                Ok(r) => exit_code = r.status_code,
                // bollard reports a non-zero exit as an error carrying the code.
                Err(bollard::errors::Error::DockerContainerWaitError { code, .. }) => {
                    exit_code = code
                }
                Err(e) => {
                    return Err(engine_error(
                        format!("wait for {name}"),
                        format!("the container {name}"),
                        e,
                    ))
                }
            }
        }
        let options = LogsOptionsBuilder::new().stdout(true).stderr(true).build();
        let mut logs = self.docker.logs(name, Some(options));
        let (mut stdout, mut stderr) = (String::new(), String::new());
        while let Some(item) = logs.next().await {
            match item.map_err(|e| {
                engine_error(
                    format!("read the output of {name}"),
                    format!("the container {name}"),
                    e,
                )
            })? {
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

    fn server_error(status_code: u16, message: &str) -> bollard::errors::Error {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message: message.to_string(),
        }
    }

    #[test]
    fn a_404_is_gone_and_names_the_object() {
        let e = engine_error(
            "start demo-master",
            "the container demo-master",
            server_error(404, "No such container: demo-master"),
        );
        match &e {
            Error::Gone { action, object, .. } => {
                assert_eq!(action, "start demo-master");
                assert_eq!(object, "the container demo-master");
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains("sparkbox status"), "{e}");
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn a_409_on_create_is_a_name_conflict() {
        let e = create_error(
            "container",
            "demo-master",
            server_error(
                409,
                "Conflict. The container name \"/demo-master\" is already in use",
            ),
        );
        match &e {
            Error::NameConflict {
                action,
                name,
                detail,
                ..
            } => {
                assert_eq!(action, "create container demo-master");
                assert_eq!(name, "demo-master");
                assert!(detail.contains("already in use"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            e.to_string().contains("docker container rm -f demo-master"),
            "{e}"
        );
        // A 404 on create (the image is missing) names what is missing, in
        // the engine's words: the new container was never there to be gone.
        let missing = create_error(
            "container",
            "demo-master",
            server_error(404, "No such image: sparkbox/jupyter-spark:x"),
        );
        match &missing {
            Error::Engine { detail, .. } => assert!(detail.contains("No such image"), "{detail}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_409_elsewhere_keeps_its_meaning() {
        // Exec in a stopped container: not ready, with what to do.
        let e = exec_error(
            "run \"ls\" in demo-master",
            "demo-master",
            server_error(409, "container demo-master is not running"),
        );
        assert!(matches!(e, Error::NotReady(_)), "{e:?}");
        assert!(e.to_string().contains("sparkbox start"), "{e}");
        // A volume in use is the engine's own words, not a name conflict.
        let e = engine_error(
            "remove volume v",
            "the volume v",
            server_error(409, "remove v: volume is in use"),
        );
        match e {
            Error::Engine { detail, .. } => assert!(detail.contains("volume is in use")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_full_disk_stays_disk_full_and_the_rest_is_the_engines_words() {
        let e = engine_error(
            "create a container from img",
            "the image img",
            server_error(500, "write /var/lib/docker/x: no space left on device"),
        );
        assert!(
            matches!(&e, Error::DiskFull { during } if during == "create a container from img")
        );
        assert_eq!(e.exit_code(), 6);
        let e = create_error(
            "volume",
            "v",
            server_error(
                409,
                "mkdir /var/lib/docker/volumes/v: no space left on device",
            ),
        );
        assert!(matches!(e, Error::DiskFull { .. }), "{e:?}");
        let e = engine_error(
            "list containers",
            "the container list",
            server_error(500, "boom"),
        );
        match e {
            Error::Engine { action, detail } => {
                assert_eq!(action, "list containers");
                assert!(detail.contains("boom"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        let e = archive_error(
            "save the image img",
            "saving the image img",
            "the image img",
            bollard::errors::Error::DockerStreamError {
                error: "write: no space left on device".into(),
            },
        );
        assert!(matches!(e, Error::DiskFull { .. }), "{e:?}");
    }

    #[test]
    fn the_default_socket_is_dockers_then_podmans() {
        let only = |there: &'static [&'static str]| move |p: &str| there.contains(&p);
        assert_eq!(
            default_socket(Some("/run/user/1000"), only(&["/var/run/docker.sock"])),
            "unix:///var/run/docker.sock"
        );
        assert_eq!(
            default_socket(
                Some("/run/user/1000"),
                only(&[
                    "/run/user/1000/podman/podman.sock",
                    "/run/podman/podman.sock"
                ])
            ),
            "unix:///run/user/1000/podman/podman.sock"
        );
        assert_eq!(
            default_socket(None, only(&["/run/podman/podman.sock"])),
            "unix:///run/podman/podman.sock"
        );
        // Nothing there: Docker's, which the error then names.
        assert_eq!(
            default_socket(None, only(&[])),
            "unix:///var/run/docker.sock"
        );
    }

    #[test]
    fn podman_step_lines_are_steps_too() {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        s.push(
            "STEP 1/12: FROM debian:bookworm-slim\nSTEP 2/12: ARG SPARK=4.3.0\n--> 3b1c\nSTEP x: no\n",
            &mut out,
        );
        assert_eq!(
            out,
            vec![
                BuildEvent::Step {
                    n: 1,
                    total: 12,
                    text: "FROM debian:bookworm-slim".into()
                },
                BuildEvent::Step {
                    n: 2,
                    total: 12,
                    text: "ARG SPARK=4.3.0".into()
                },
                BuildEvent::Output("--> 3b1c".into()),
                BuildEvent::Output("STEP x: no".into()),
            ]
        );
    }

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
