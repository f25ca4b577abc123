//! An in-process fake CRI `RuntimeService` for unit and integration tests of code that
//! talks CRI (the kubelet-shim). It holds a list of containers (given up front, from a
//! file, or created through `RunPodSandbox` + `CreateContainer` + `StartContainer` the
//! way [`crate::cri::PodRunner`] does), answers `Version`, `Status`, `ListContainers`
//! (honouring the filter), `ContainerStatus`, the pod/container lifecycle calls, and
//! `CheckpointContainer` with a behaviour switchable at run time ([`CheckpointMode`]).
//! Every `CheckpointContainer` request is recorded for assertions. Other methods answer
//! `Unimplemented`.
//!
//! Served over `tokio::io::duplex` ([`FakeCri::channel`]) or a unix socket
//! ([`FakeCri::spawn_unix`]).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1 as api;
use k8s_cri::v1::runtime_service_server::{RuntimeService, RuntimeServiceServer};
use serde::{Deserialize, Serialize};
use tokio::net::UnixListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::{UnboundedReceiverStream, UnixListenerStream};
use tonic::transport::{Channel, Endpoint, Server, Uri};
use tonic::{Request, Response, Status};

use crate::labels;

/// The message containerd 1.x answers `CheckpointContainer` with.
pub const UNIMPLEMENTED_MESSAGE: &str = "method CheckpointContainer not implemented";

/// What failed serving the fake.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to bind the fake CRI socket {path}")]
    Bind {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("fake CRI server failed")]
    Serve(#[source] tonic::transport::Error),
    #[error("failed to connect to the in-process fake CRI")]
    Connect(#[source] tonic::transport::Error),
    #[error("failed to read containers file {path}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("containers file {path} is not a JSON or YAML list of containers: {message}")]
    ParseFile { path: PathBuf, message: String },
    #[error(
        "invalid checkpoint mode {0:?}: want instant, slow:SECONDS, hang, fail:MESSAGE, unimplemented or partial"
    )]
    Mode(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How `CheckpointContainer` behaves.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CheckpointMode {
    /// Writes a small valid-looking archive (mode 0600) at `location` and succeeds.
    #[default]
    Instant,
    /// Waits, then behaves like `Instant` (the request's `timeout` is not enforced).
    Slow(Duration),
    /// Never answers.
    Hang,
    /// Answers `Unknown` with this message (containerd's code for a failed CRIU dump).
    Fail(String),
    /// Answers `Unimplemented` like containerd 1.x.
    Unimplemented,
    /// Writes the first half of an archive at `location`, then fails with `Unknown`.
    PartialThenFail,
}

impl FromStr for CheckpointMode {
    type Err = Error;

    /// `instant`, `slow:SECONDS` (fractions allowed), `hang`, `fail:MESSAGE`,
    /// `unimplemented`, `partial` (or `partial-then-fail`).
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        let (kind, arg) = match s.split_once(':') {
            Some((k, a)) => (k, Some(a)),
            None => (s, None),
        };
        match (kind, arg) {
            ("instant", None) => Ok(Self::Instant),
            ("hang", None) => Ok(Self::Hang),
            ("unimplemented", None) => Ok(Self::Unimplemented),
            ("partial" | "partial-then-fail", None) => Ok(Self::PartialThenFail),
            ("fail", None) => Ok(Self::Fail("checkpoint failed (fake CRI)".into())),
            ("fail", Some(msg)) => Ok(Self::Fail(msg.into())),
            ("slow", Some(secs)) => secs
                .parse::<f64>()
                .ok()
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .map(Self::Slow)
                .ok_or_else(|| Error::Mode(s.into())),
            _ => Err(Error::Mode(s.into())),
        }
    }
}

/// State of a fake container (CRI `ContainerState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FakeState {
    Created,
    #[default]
    Running,
    Exited,
    Unknown,
}

impl FakeState {
    fn to_cri(self) -> api::ContainerState {
        match self {
            Self::Created => api::ContainerState::ContainerCreated,
            Self::Running => api::ContainerState::ContainerRunning,
            Self::Exited => api::ContainerState::ContainerExited,
            Self::Unknown => api::ContainerState::ContainerUnknown,
        }
    }
}

/// A container the fake knows. In a containers file (JSON or YAML list):
/// `{"id": "c1", "namespace": "default", "pod": "web", "name": "app"}` plus optional
/// `uid`, `state` (`running` default, `created`, `exited`, `unknown`), `created_at`
/// (Unix nanoseconds), `attempt`, `pod_sandbox_id`, `labels`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakeContainer {
    pub id: String,
    pub namespace: String,
    pub pod: String,
    pub name: String,
    #[serde(default)]
    pub uid: String,
    #[serde(default)]
    pub state: FakeState,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub attempt: u32,
    #[serde(default)]
    pub pod_sandbox_id: String,
    /// Extra labels (the kubelet's four are derived from the fields above).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl FakeContainer {
    /// A running container with the kubelet's labels.
    pub fn running(
        id: impl Into<String>,
        namespace: impl Into<String>,
        pod: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        let namespace = namespace.into();
        let pod = pod.into();
        Self {
            id: id.into(),
            uid: format!("uid-{namespace}-{pod}"),
            pod_sandbox_id: format!("sandbox-{namespace}-{pod}"),
            namespace,
            pod,
            name: name.into(),
            state: FakeState::Running,
            created_at: now_nanos(),
            attempt: 0,
            labels: BTreeMap::new(),
        }
    }

    pub fn with_state(mut self, state: FakeState) -> Self {
        self.state = state;
        self
    }

    pub fn with_created_at(mut self, nanos: i64) -> Self {
        self.created_at = nanos;
        self
    }

    pub fn with_attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// All labels CRI reports: the extra ones plus the kubelet's.
    pub fn all_labels(&self) -> HashMap<String, String> {
        let mut out: HashMap<String, String> = self.labels.clone().into_iter().collect();
        out.insert(labels::POD_NAMESPACE.into(), self.namespace.clone());
        out.insert(labels::POD_NAME.into(), self.pod.clone());
        out.insert(labels::POD_UID.into(), self.uid.clone());
        out.insert(labels::CONTAINER_NAME.into(), self.name.clone());
        out
    }

    fn metadata(&self) -> api::ContainerMetadata {
        api::ContainerMetadata {
            name: self.name.clone(),
            attempt: self.attempt,
        }
    }

    fn to_cri(&self) -> api::Container {
        api::Container {
            id: self.id.clone(),
            pod_sandbox_id: self.pod_sandbox_id.clone(),
            metadata: Some(self.metadata()),
            image: Some(api::ImageSpec {
                image: crate::APP_IMAGE.into(),
                ..Default::default()
            }),
            image_ref: crate::APP_IMAGE.into(),
            state: self.state.to_cri() as i32,
            created_at: self.created_at,
            labels: self.all_labels(),
            annotations: HashMap::new(),
            ..Default::default()
        }
    }

    fn status(&self) -> api::ContainerStatus {
        api::ContainerStatus {
            id: self.id.clone(),
            metadata: Some(self.metadata()),
            state: self.state.to_cri() as i32,
            created_at: self.created_at,
            started_at: if self.state == FakeState::Created {
                0
            } else {
                self.created_at
            },
            image: Some(api::ImageSpec {
                image: crate::APP_IMAGE.into(),
                ..Default::default()
            }),
            image_ref: crate::APP_IMAGE.into(),
            labels: self.all_labels(),
            ..Default::default()
        }
    }

    /// Whether `filter` (CRI `ContainerFilter`) selects this container: exact id, state,
    /// sandbox id, and every label of `label_selector`.
    pub fn matches(&self, filter: &api::ContainerFilter) -> bool {
        if !filter.id.is_empty() && filter.id != self.id {
            return false;
        }
        if let Some(state) = &filter.state
            && state.state != self.state.to_cri() as i32
        {
            return false;
        }
        if !filter.pod_sandbox_id.is_empty() && filter.pod_sandbox_id != self.pod_sandbox_id {
            return false;
        }
        let labels = self.all_labels();
        filter
            .label_selector
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// One `CheckpointContainer` request as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRecord {
    pub container_id: String,
    pub location: String,
    pub timeout: i64,
}

#[derive(Debug, Clone)]
struct FakeSandbox {
    id: String,
    metadata: api::PodSandboxMetadata,
    labels: HashMap<String, String>,
    ready: bool,
    created_at: i64,
}

#[derive(Debug, Default)]
struct State {
    containers: Vec<FakeContainer>,
    sandboxes: Vec<FakeSandbox>,
    mode: CheckpointMode,
    mode_file: Option<PathBuf>,
    node_root: Option<PathBuf>,
    requests: Vec<CheckpointRecord>,
    in_flight: usize,
    max_in_flight: usize,
    next_id: u64,
}

/// The fake runtime. Cheap to clone; clones share state, so a test keeps one handle
/// while the server runs another.
#[derive(Debug, Clone, Default)]
pub struct FakeCri {
    state: Arc<Mutex<State>>,
}

impl FakeCri {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_containers(containers: impl IntoIterator<Item = FakeContainer>) -> Self {
        let fake = Self::new();
        for c in containers {
            fake.add_container(c);
        }
        fake
    }

    /// Reads a JSON or YAML list of [`FakeContainer`]s.
    pub fn load_containers(path: &Path) -> Result<Vec<FakeContainer>> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
            path: path.to_owned(),
            source,
        })?;
        match serde_json::from_str(&text) {
            Ok(list) => Ok(list),
            Err(json_err) => serde_saphyr::from_str(&text).map_err(|yaml_err| Error::ParseFile {
                path: path.to_owned(),
                message: format!("as JSON: {json_err}; as YAML: {yaml_err}"),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not hide the state from the others.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add_container(&self, mut container: FakeContainer) {
        if container.created_at == 0 {
            container.created_at = now_nanos();
        }
        self.lock().containers.push(container);
    }

    pub fn remove_container(&self, id: &str) {
        self.lock().containers.retain(|c| c.id != id);
    }

    pub fn set_container_state(&self, id: &str, state: FakeState) {
        for c in self.lock().containers.iter_mut().filter(|c| c.id == id) {
            c.state = state;
        }
    }

    pub fn containers(&self) -> Vec<FakeContainer> {
        self.lock().containers.clone()
    }

    pub fn set_mode(&self, mode: CheckpointMode) {
        self.lock().mode = mode;
    }

    pub fn mode(&self) -> CheckpointMode {
        self.lock().mode.clone()
    }

    /// Re-read on every `CheckpointContainer`: when the file exists and holds a mode
    /// (`hang`, `fail:boom`, ...), that mode wins over [`FakeCri::set_mode`]. Lets a
    /// test switch the mode of a `fake-cri` process it runs.
    /// The node's `/` as this runtime sees it: an archive location (a node
    /// path, from the client) is written under `dir`, as when the client runs
    /// in a mount namespace of its own (a pod with hostPath volumes).
    pub fn set_node_root(&self, dir: impl Into<PathBuf>) {
        self.lock().node_root = Some(dir.into());
    }

    /// Where the archive of node path `location` is written.
    fn on_disk(&self, location: &str) -> PathBuf {
        match &self.lock().node_root {
            Some(root) => root.join(location.trim_start_matches('/')),
            None => PathBuf::from(location),
        }
    }

    pub fn set_mode_file(&self, path: impl Into<PathBuf>) {
        self.lock().mode_file = Some(path.into());
    }

    /// The `CheckpointContainer` requests received so far, in order.
    pub fn checkpoint_requests(&self) -> Vec<CheckpointRecord> {
        self.lock().requests.clone()
    }

    /// The most `CheckpointContainer` calls that were in progress at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.lock().max_in_flight
    }

    /// The tonic service, to add to a server of your own.
    pub fn service(&self) -> RuntimeServiceServer<FakeCri> {
        RuntimeServiceServer::new(self.clone())
    }

    /// Serves the fake in-process over `tokio::io::duplex` and returns a connected
    /// channel (each reconnect gets a fresh duplex pipe). The server task ends when the
    /// channel and its clones are dropped.
    pub async fn channel(&self) -> Result<Channel> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<tokio::io::DuplexStream>();
        let incoming = UnboundedReceiverStream::new(rx).map(Ok::<_, std::io::Error>);
        let service = self.service();
        tokio::spawn(async move {
            if let Err(e) = Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await
            {
                tracing::warn!(%e, "fake CRI (duplex) stopped");
            }
        });
        Endpoint::from_static("http://fake-cri.invalid")
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let tx = tx.clone();
                async move {
                    let (client, server) = tokio::io::duplex(1 << 16);
                    tx.send(server)
                        .map_err(|_| std::io::Error::other("fake CRI server stopped"))?;
                    Ok::<_, std::io::Error>(TokioIo::new(client))
                }
            }))
            .await
            .map_err(Error::Connect)
    }

    /// Serves on a unix socket until `shutdown` completes; removes the socket afterwards.
    pub async fn serve_unix(
        &self,
        path: &Path,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<()> {
        let listener = bind(path)?;
        let result = Server::builder()
            .add_service(self.service())
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
            .await
            .map_err(Error::Serve);
        let _ = std::fs::remove_file(path);
        result
    }

    /// Binds `path` now and serves in a background task; dropping the returned handle
    /// stops the server and removes the socket.
    pub async fn spawn_unix(&self, path: impl Into<PathBuf>) -> Result<UnixServer> {
        let path = path.into();
        let listener = bind(&path)?;
        let service = self.service();
        let task = tokio::spawn(async move {
            if let Err(e) = Server::builder()
                .add_service(service)
                .serve_with_incoming(UnixListenerStream::new(listener))
                .await
            {
                tracing::warn!(%e, "fake CRI (unix) stopped");
            }
        });
        Ok(UnixServer { path, task })
    }

    fn effective_mode(&self) -> CheckpointMode {
        let (mode, file) = {
            let s = self.lock();
            (s.mode.clone(), s.mode_file.clone())
        };
        file.and_then(|f| std::fs::read_to_string(f).ok())
            .filter(|text| !text.trim().is_empty())
            .and_then(|text| match text.parse() {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::warn!(%e, "ignoring mode file");
                    None
                }
            })
            .unwrap_or(mode)
    }

    fn find(&self, id: &str) -> Result<FakeContainer, Status> {
        self.lock()
            .containers
            .iter()
            .find(|c| c.id == id)
            .cloned()
            .ok_or_else(|| not_found(id))
    }

    fn new_id(&self, prefix: &str) -> String {
        let mut s = self.lock();
        s.next_id += 1;
        format!("{prefix}{:016x}{:016x}", s.next_id, now_nanos())
    }
}

/// A fake CRI served on a unix socket by [`FakeCri::spawn_unix`].
#[derive(Debug)]
pub struct UnixServer {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl UnixServer {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for UnixServer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

fn bind(path: &Path) -> Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    UnixListener::bind(path).map_err(|source| Error::Bind {
        path: path.to_owned(),
        source,
    })
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_nanos()).ok())
        .unwrap_or_default()
}

/// containerd's answer for an unknown container id.
fn not_found(id: &str) -> Status {
    Status::not_found(format!(
        "an error occurred when try to find container {id:?}: not found"
    ))
}

/// Counts a checkpoint as in flight until dropped (also when the client gives up).
struct InFlight(FakeCri);

impl InFlight {
    fn enter(fake: &FakeCri) -> Self {
        let mut s = fake.lock();
        s.in_flight += 1;
        s.max_in_flight = s.max_in_flight.max(s.in_flight);
        Self(fake.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
    }
}

fn write_archive(location: &Path, c: &FakeContainer, partial: bool) -> std::io::Result<()> {
    let names = crate::archive::FakeArchive {
        container_id: &c.id,
        container_name: &c.name,
        pod_name: &c.pod,
        pod_namespace: &c.namespace,
        pod_uid: &c.uid,
    };
    let bytes = crate::archive::write_fake_archive(Vec::new(), names)?;
    let bytes = if partial {
        &bytes[..bytes.len() / 2]
    } else {
        &bytes[..]
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(location)?;
    file.write_all(bytes)?;
    file.sync_all()
}

type CriResult<T> = std::result::Result<Response<T>, Status>;

fn unimplemented(method: &str) -> Status {
    Status::unimplemented(format!("fake CRI does not implement {method}"))
}

#[tonic::async_trait]
impl RuntimeService for FakeCri {
    async fn version(&self, _: Request<api::VersionRequest>) -> CriResult<api::VersionResponse> {
        Ok(Response::new(api::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "fake-cri".into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: "v1".into(),
        }))
    }

    async fn run_pod_sandbox(
        &self,
        request: Request<api::RunPodSandboxRequest>,
    ) -> CriResult<api::RunPodSandboxResponse> {
        let config = request.into_inner().config.unwrap_or_default();
        let metadata = config
            .metadata
            .ok_or_else(|| Status::invalid_argument("sandbox config must include metadata"))?;
        let id = self.new_id("sb");
        self.lock().sandboxes.push(FakeSandbox {
            id: id.clone(),
            metadata,
            labels: config.labels,
            ready: true,
            created_at: now_nanos(),
        });
        Ok(Response::new(api::RunPodSandboxResponse {
            pod_sandbox_id: id,
        }))
    }

    async fn stop_pod_sandbox(
        &self,
        request: Request<api::StopPodSandboxRequest>,
    ) -> CriResult<api::StopPodSandboxResponse> {
        let id = request.into_inner().pod_sandbox_id;
        let mut s = self.lock();
        for sb in s.sandboxes.iter_mut().filter(|sb| sb.id == id) {
            sb.ready = false;
        }
        for c in s.containers.iter_mut().filter(|c| c.pod_sandbox_id == id) {
            c.state = FakeState::Exited;
        }
        Ok(Response::new(api::StopPodSandboxResponse {}))
    }

    async fn remove_pod_sandbox(
        &self,
        request: Request<api::RemovePodSandboxRequest>,
    ) -> CriResult<api::RemovePodSandboxResponse> {
        let id = request.into_inner().pod_sandbox_id;
        let mut s = self.lock();
        s.sandboxes.retain(|sb| sb.id != id);
        s.containers.retain(|c| c.pod_sandbox_id != id);
        Ok(Response::new(api::RemovePodSandboxResponse {}))
    }

    async fn pod_sandbox_status(
        &self,
        request: Request<api::PodSandboxStatusRequest>,
    ) -> CriResult<api::PodSandboxStatusResponse> {
        let id = request.into_inner().pod_sandbox_id;
        let s = self.lock();
        let sb = s
            .sandboxes
            .iter()
            .find(|sb| sb.id == id)
            .ok_or_else(|| Status::not_found(format!("sandbox {id:?} not found")))?;
        Ok(Response::new(api::PodSandboxStatusResponse {
            status: Some(api::PodSandboxStatus {
                id: sb.id.clone(),
                metadata: Some(sb.metadata.clone()),
                state: sandbox_state(sb.ready),
                created_at: sb.created_at,
                labels: sb.labels.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn list_pod_sandbox(
        &self,
        request: Request<api::ListPodSandboxRequest>,
    ) -> CriResult<api::ListPodSandboxResponse> {
        let filter = request.into_inner().filter.unwrap_or_default();
        let s = self.lock();
        let items = s
            .sandboxes
            .iter()
            .filter(|sb| filter.id.is_empty() || filter.id == sb.id)
            .filter(|sb| {
                filter
                    .state
                    .as_ref()
                    .is_none_or(|st| st.state == sandbox_state(sb.ready))
            })
            .filter(|sb| {
                filter
                    .label_selector
                    .iter()
                    .all(|(k, v)| sb.labels.get(k) == Some(v))
            })
            .map(|sb| api::PodSandbox {
                id: sb.id.clone(),
                metadata: Some(sb.metadata.clone()),
                state: sandbox_state(sb.ready),
                created_at: sb.created_at,
                labels: sb.labels.clone(),
                ..Default::default()
            })
            .collect();
        Ok(Response::new(api::ListPodSandboxResponse { items }))
    }

    async fn create_container(
        &self,
        request: Request<api::CreateContainerRequest>,
    ) -> CriResult<api::CreateContainerResponse> {
        let req = request.into_inner();
        let config = req.config.unwrap_or_default();
        let metadata = config
            .metadata
            .ok_or_else(|| Status::invalid_argument("container config must include metadata"))?;
        let sandbox = {
            let s = self.lock();
            s.sandboxes
                .iter()
                .find(|sb| sb.id == req.pod_sandbox_id)
                .cloned()
                .ok_or_else(|| {
                    Status::not_found(format!("sandbox {:?} not found", req.pod_sandbox_id))
                })?
        };
        let id = self.new_id("");
        self.add_container(FakeContainer {
            id: id.clone(),
            namespace: sandbox.metadata.namespace,
            pod: sandbox.metadata.name,
            uid: sandbox.metadata.uid,
            name: metadata.name,
            state: FakeState::Created,
            created_at: now_nanos(),
            attempt: metadata.attempt,
            pod_sandbox_id: sandbox.id,
            labels: config.labels.into_iter().collect(),
        });
        Ok(Response::new(api::CreateContainerResponse {
            container_id: id,
        }))
    }

    async fn start_container(
        &self,
        request: Request<api::StartContainerRequest>,
    ) -> CriResult<api::StartContainerResponse> {
        let id = request.into_inner().container_id;
        self.find(&id)?;
        self.set_container_state(&id, FakeState::Running);
        Ok(Response::new(api::StartContainerResponse {}))
    }

    async fn stop_container(
        &self,
        request: Request<api::StopContainerRequest>,
    ) -> CriResult<api::StopContainerResponse> {
        let id = request.into_inner().container_id;
        self.find(&id)?;
        self.set_container_state(&id, FakeState::Exited);
        Ok(Response::new(api::StopContainerResponse {}))
    }

    async fn remove_container(
        &self,
        request: Request<api::RemoveContainerRequest>,
    ) -> CriResult<api::RemoveContainerResponse> {
        FakeCri::remove_container(self, &request.into_inner().container_id);
        Ok(Response::new(api::RemoveContainerResponse {}))
    }

    async fn list_containers(
        &self,
        request: Request<api::ListContainersRequest>,
    ) -> CriResult<api::ListContainersResponse> {
        let filter = request.into_inner().filter.unwrap_or_default();
        let containers = self
            .lock()
            .containers
            .iter()
            .filter(|c| c.matches(&filter))
            .map(FakeContainer::to_cri)
            .collect();
        Ok(Response::new(api::ListContainersResponse { containers }))
    }

    async fn container_status(
        &self,
        request: Request<api::ContainerStatusRequest>,
    ) -> CriResult<api::ContainerStatusResponse> {
        let c = self.find(&request.into_inner().container_id)?;
        Ok(Response::new(api::ContainerStatusResponse {
            status: Some(c.status()),
            ..Default::default()
        }))
    }

    async fn update_container_resources(
        &self,
        _: Request<api::UpdateContainerResourcesRequest>,
    ) -> CriResult<api::UpdateContainerResourcesResponse> {
        Err(unimplemented("UpdateContainerResources"))
    }

    async fn reopen_container_log(
        &self,
        _: Request<api::ReopenContainerLogRequest>,
    ) -> CriResult<api::ReopenContainerLogResponse> {
        Err(unimplemented("ReopenContainerLog"))
    }

    async fn exec_sync(
        &self,
        _: Request<api::ExecSyncRequest>,
    ) -> CriResult<api::ExecSyncResponse> {
        Err(unimplemented("ExecSync"))
    }

    async fn exec(&self, _: Request<api::ExecRequest>) -> CriResult<api::ExecResponse> {
        Err(unimplemented("Exec"))
    }

    async fn attach(&self, _: Request<api::AttachRequest>) -> CriResult<api::AttachResponse> {
        Err(unimplemented("Attach"))
    }

    async fn port_forward(
        &self,
        _: Request<api::PortForwardRequest>,
    ) -> CriResult<api::PortForwardResponse> {
        Err(unimplemented("PortForward"))
    }

    async fn container_stats(
        &self,
        _: Request<api::ContainerStatsRequest>,
    ) -> CriResult<api::ContainerStatsResponse> {
        Err(unimplemented("ContainerStats"))
    }

    async fn list_container_stats(
        &self,
        _: Request<api::ListContainerStatsRequest>,
    ) -> CriResult<api::ListContainerStatsResponse> {
        Err(unimplemented("ListContainerStats"))
    }

    async fn pod_sandbox_stats(
        &self,
        _: Request<api::PodSandboxStatsRequest>,
    ) -> CriResult<api::PodSandboxStatsResponse> {
        Err(unimplemented("PodSandboxStats"))
    }

    async fn list_pod_sandbox_stats(
        &self,
        _: Request<api::ListPodSandboxStatsRequest>,
    ) -> CriResult<api::ListPodSandboxStatsResponse> {
        Err(unimplemented("ListPodSandboxStats"))
    }

    async fn update_runtime_config(
        &self,
        _: Request<api::UpdateRuntimeConfigRequest>,
    ) -> CriResult<api::UpdateRuntimeConfigResponse> {
        Err(unimplemented("UpdateRuntimeConfig"))
    }

    async fn status(&self, _: Request<api::StatusRequest>) -> CriResult<api::StatusResponse> {
        let condition = |kind: &str| api::RuntimeCondition {
            r#type: kind.into(),
            status: true,
            ..Default::default()
        };
        Ok(Response::new(api::StatusResponse {
            status: Some(api::RuntimeStatus {
                conditions: vec![condition("RuntimeReady"), condition("NetworkReady")],
            }),
            ..Default::default()
        }))
    }

    async fn checkpoint_container(
        &self,
        request: Request<api::CheckpointContainerRequest>,
    ) -> CriResult<api::CheckpointContainerResponse> {
        let req = request.into_inner();
        self.lock().requests.push(CheckpointRecord {
            container_id: req.container_id.clone(),
            location: req.location.clone(),
            timeout: req.timeout,
        });
        let mode = self.effective_mode();
        if mode == CheckpointMode::Unimplemented {
            return Err(Status::unimplemented(UNIMPLEMENTED_MESSAGE));
        }
        let container = self.find(&req.container_id)?;
        if container.state != FakeState::Running {
            return Err(Status::failed_precondition(format!(
                "container {} is not running",
                container.id
            )));
        }
        let _in_flight = InFlight::enter(self);
        let on_disk = self.on_disk(&req.location);
        let write = |partial| {
            write_archive(&on_disk, &container, partial).map_err(|e| {
                Status::unknown(format!(
                    "failed to write checkpoint archive {}: {e}",
                    req.location
                ))
            })
        };
        match mode {
            CheckpointMode::Instant => write(false)?,
            CheckpointMode::Slow(delay) => {
                tokio::time::sleep(delay).await;
                write(false)?;
            }
            CheckpointMode::Hang => std::future::pending::<()>().await,
            CheckpointMode::Fail(message) => return Err(Status::unknown(message)),
            CheckpointMode::PartialThenFail => {
                write(true)?;
                return Err(Status::unknown(format!(
                    "failed to checkpoint container {}: CRIU dump failed after writing part of {} (fake)",
                    container.id, req.location
                )));
            }
            CheckpointMode::Unimplemented => {
                return Err(Status::unimplemented(UNIMPLEMENTED_MESSAGE));
            }
        }
        Ok(Response::new(api::CheckpointContainerResponse {}))
    }

    type GetContainerEventsStream = tonic::codegen::BoxStream<api::ContainerEventResponse>;

    async fn get_container_events(
        &self,
        _: Request<api::GetEventsRequest>,
    ) -> CriResult<Self::GetContainerEventsStream> {
        Err(unimplemented("GetContainerEvents"))
    }

    async fn list_metric_descriptors(
        &self,
        _: Request<api::ListMetricDescriptorsRequest>,
    ) -> CriResult<api::ListMetricDescriptorsResponse> {
        Err(unimplemented("ListMetricDescriptors"))
    }

    async fn list_pod_sandbox_metrics(
        &self,
        _: Request<api::ListPodSandboxMetricsRequest>,
    ) -> CriResult<api::ListPodSandboxMetricsResponse> {
        Err(unimplemented("ListPodSandboxMetrics"))
    }

    async fn runtime_config(
        &self,
        _: Request<api::RuntimeConfigRequest>,
    ) -> CriResult<api::RuntimeConfigResponse> {
        Err(unimplemented("RuntimeConfig"))
    }
}

fn sandbox_state(ready: bool) -> i32 {
    if ready {
        api::PodSandboxState::SandboxReady as i32
    } else {
        api::PodSandboxState::SandboxNotready as i32
    }
}

#[cfg(test)]
#[path = "fake_cri_tests.rs"]
mod tests;
