//! CRI client over a unix socket, and [`PodRunner`]: the part of the kubelet we cannot run
//! here. It creates host-network pod sandboxes and containers with exactly the labels the
//! kubelet sets (`pkg/kubelet/kuberuntime/labels.go`), so code that finds containers the
//! way the kubelet does (`ListContainers` by label) finds these.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use k8s_cri::v1 as api;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use serde::Serialize;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

pub use k8s_cri::v1::ContainerState;

use crate::labels;

/// What failed talking CRI.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to connect to the CRI socket {socket}")]
    Connect {
        socket: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
    /// The runtime answered with an error; code and message are in the text (the status
    /// is not also a `source`, so chains do not print it twice).
    #[error("CRI {call} failed: {code:?}: {message}", code = .status.code(), message = .status.message())]
    Call {
        call: &'static str,
        status: Box<tonic::Status>,
    },
    #[error("CRI {call} returned no {what}")]
    Missing {
        call: &'static str,
        what: &'static str,
    },
    #[error("container {id} did not reach {want:?} within {timeout:?} (last state {last:?})")]
    WaitTimeout {
        id: String,
        want: ContainerState,
        last: ContainerState,
        timeout: Duration,
    },
    #[error("failed to create the log directory {path}")]
    LogDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn call_err(call: &'static str) -> impl FnOnce(tonic::Status) -> Error {
    move |status| Error::Call {
        call,
        status: Box::new(status),
    }
}

/// Connects a gRPC channel to a CRI unix socket (fails now if nothing listens there).
pub async fn connect(socket: impl AsRef<Path>) -> Result<Channel> {
    let socket = socket.as_ref().to_owned();
    let path = socket.clone();
    // The URI is ignored by the connector; tonic only needs a syntactically valid one.
    Endpoint::from_static("http://[::]:50051")
        .connect_timeout(Duration::from_secs(5))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
        .map_err(|source| Error::Connect { socket, source })
}

/// The two CRI services on one channel, with the calls tests need.
#[derive(Debug, Clone)]
pub struct Cri {
    pub runtime: RuntimeServiceClient<Channel>,
    pub image: ImageServiceClient<Channel>,
}

impl Cri {
    /// Connects to a CRI unix socket.
    pub async fn connect(socket: impl AsRef<Path>) -> Result<Self> {
        Ok(Self::new(connect(socket).await?))
    }

    /// Wraps an existing channel (e.g. [`crate::fake_cri::FakeCri::channel`]).
    pub fn new(channel: Channel) -> Self {
        Self {
            runtime: RuntimeServiceClient::new(channel.clone()),
            image: ImageServiceClient::new(channel),
        }
    }

    pub async fn version(&mut self) -> Result<api::VersionResponse> {
        let req = api::VersionRequest {
            version: "v1".into(),
        };
        Ok(self
            .runtime
            .version(req)
            .await
            .map_err(call_err("Version"))?
            .into_inner())
    }

    pub async fn list_containers(
        &mut self,
        filter: Option<api::ContainerFilter>,
    ) -> Result<Vec<api::Container>> {
        let req = api::ListContainersRequest { filter };
        Ok(self
            .runtime
            .list_containers(req)
            .await
            .map_err(call_err("ListContainers"))?
            .into_inner()
            .containers)
    }

    pub async fn container_status(&mut self, id: &str) -> Result<api::ContainerStatus> {
        let req = api::ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        };
        self.runtime
            .container_status(req)
            .await
            .map_err(call_err("ContainerStatus"))?
            .into_inner()
            .status
            .ok_or(Error::Missing {
                call: "ContainerStatus",
                what: "status",
            })
    }

    /// The container's state as CRI reports it.
    pub async fn container_state(&mut self, id: &str) -> Result<ContainerState> {
        let status = self.container_status(id).await?;
        Ok(ContainerState::try_from(status.state).unwrap_or(ContainerState::ContainerUnknown))
    }

    /// Polls `ContainerStatus` until the container is in `want`.
    pub async fn wait_for_state(
        &mut self,
        id: &str,
        want: ContainerState,
        timeout: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.container_state(id).await?;
            if last == want {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::WaitTimeout {
                    id: id.into(),
                    want,
                    last,
                    timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `StopContainer` with a grace period in seconds (0 = kill now).
    pub async fn stop_container(&mut self, id: &str, timeout_secs: i64) -> Result<()> {
        let req = api::StopContainerRequest {
            container_id: id.into(),
            timeout: timeout_secs,
        };
        self.runtime
            .stop_container(req)
            .await
            .map_err(call_err("StopContainer"))?;
        Ok(())
    }

    pub async fn remove_container(&mut self, id: &str) -> Result<()> {
        let req = api::RemoveContainerRequest {
            container_id: id.into(),
        };
        self.runtime
            .remove_container(req)
            .await
            .map_err(call_err("RemoveContainer"))?;
        Ok(())
    }

    pub async fn list_pods(
        &mut self,
        filter: Option<api::PodSandboxFilter>,
    ) -> Result<Vec<api::PodSandbox>> {
        let req = api::ListPodSandboxRequest { filter };
        Ok(self
            .runtime
            .list_pod_sandbox(req)
            .await
            .map_err(call_err("ListPodSandbox"))?
            .into_inner()
            .items)
    }

    /// Pod sandboxes whose kubelet labels match namespace and name.
    pub async fn find_pods(&mut self, namespace: &str, name: &str) -> Result<Vec<api::PodSandbox>> {
        let filter = api::PodSandboxFilter {
            label_selector: HashMap::from([
                (labels::POD_NAMESPACE.to_owned(), namespace.to_owned()),
                (labels::POD_NAME.to_owned(), name.to_owned()),
            ]),
            ..Default::default()
        };
        self.list_pods(Some(filter)).await
    }

    /// Stops and removes the sandbox's containers, then the sandbox (what the kubelet
    /// does when a pod is deleted).
    pub async fn remove_pod(&mut self, sandbox_id: &str) -> Result<()> {
        let filter = api::ContainerFilter {
            pod_sandbox_id: sandbox_id.into(),
            ..Default::default()
        };
        for c in self.list_containers(Some(filter)).await? {
            self.stop_container(&c.id, 0).await?;
            self.remove_container(&c.id).await?;
        }
        let stop = api::StopPodSandboxRequest {
            pod_sandbox_id: sandbox_id.into(),
        };
        self.runtime
            .stop_pod_sandbox(stop)
            .await
            .map_err(call_err("StopPodSandbox"))?;
        let remove = api::RemovePodSandboxRequest {
            pod_sandbox_id: sandbox_id.into(),
        };
        self.runtime
            .remove_pod_sandbox(remove)
            .await
            .map_err(call_err("RemovePodSandbox"))?;
        Ok(())
    }

    /// Removes every pod sandbox (and its containers); returns how many.
    pub async fn remove_all_pods(&mut self) -> Result<usize> {
        let pods = self.list_pods(None).await?;
        for pod in &pods {
            self.remove_pod(&pod.id).await?;
        }
        Ok(pods.len())
    }

    /// CRI `CheckpointContainer`: `timeout_secs` 0 = the runtime's default.
    pub async fn checkpoint(
        &mut self,
        container_id: &str,
        location: &Path,
        timeout_secs: i64,
    ) -> Result<()> {
        let req = api::CheckpointContainerRequest {
            container_id: container_id.into(),
            location: location.to_string_lossy().into_owned(),
            timeout: timeout_secs,
        };
        self.runtime
            .checkpoint_container(req)
            .await
            .map_err(call_err("CheckpointContainer"))?;
        Ok(())
    }
}

/// A pod as the kubelet would describe it to the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSpec {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Extra pod labels (the kubelet copies the pod's labels onto the sandbox).
    pub labels: BTreeMap<String, String>,
    /// Where container logs go (`<log_dir>/<container>/0.log`); none = discarded.
    pub log_dir: Option<PathBuf>,
}

impl PodSpec {
    /// A pod with a fresh random UID.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            uid: random_uid(),
            labels: BTreeMap::new(),
            log_dir: None,
        }
    }

    pub fn with_uid(mut self, uid: impl Into<String>) -> Self {
        self.uid = uid.into();
        self
    }

    pub fn with_log_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.log_dir = Some(dir.into());
        self
    }

    /// Labels the kubelet puts on the sandbox.
    pub fn sandbox_labels(&self) -> HashMap<String, String> {
        let mut out: HashMap<String, String> = self.labels.clone().into_iter().collect();
        out.insert(labels::POD_NAME.into(), self.name.clone());
        out.insert(labels::POD_NAMESPACE.into(), self.namespace.clone());
        out.insert(labels::POD_UID.into(), self.uid.clone());
        out
    }

    /// Labels the kubelet puts on a container of this pod
    /// (`newContainerLabels` in `pkg/kubelet/kuberuntime/labels.go`).
    pub fn container_labels(&self, container: &str) -> HashMap<String, String> {
        HashMap::from([
            (labels::POD_NAME.to_owned(), self.name.clone()),
            (labels::POD_NAMESPACE.to_owned(), self.namespace.clone()),
            (labels::POD_UID.to_owned(), self.uid.clone()),
            (labels::CONTAINER_NAME.to_owned(), container.to_owned()),
        ])
    }
}

/// A container of a [`PodSpec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    /// Overrides the image's entrypoint when not empty.
    pub command: Vec<String>,
    pub args: Vec<String>,
}

impl ContainerSpec {
    /// A container running the app image's default command (a counter loop).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            image: crate::APP_IMAGE.into(),
            command: Vec::new(),
            args: Vec::new(),
        }
    }

    pub fn with_command<S: Into<String>>(mut self, command: impl IntoIterator<Item = S>) -> Self {
        self.command = command.into_iter().map(Into::into).collect();
        self
    }

    pub fn with_image(mut self, image: impl Into<String>) -> Self {
        self.image = image.into();
        self
    }
}

/// A started pod: its sandbox and its containers' ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunningPod {
    pub sandbox_id: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub containers: Vec<RunningContainer>,
}

impl RunningPod {
    /// The id of the container named `name`.
    pub fn container_id(&self, name: &str) -> Option<&str> {
        self.containers
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.id.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunningContainer {
    pub name: String,
    pub id: String,
}

/// Does what the kubelet does to start a pod: `RunPodSandbox` (host network, private pid
/// namespace per container, empty hostname, our own cgroup parent), then
/// `CreateContainer` + `StartContainer` per container.
#[derive(Debug, Clone)]
pub struct PodRunner {
    cri: Cri,
    cgroup_parent: String,
}

impl PodRunner {
    /// `cgroup_parent` is a cgroupfs path such as `/kcr-test-1234`; whoever owns the
    /// runtime removes its empty directories afterwards.
    pub fn new(cri: Cri, cgroup_parent: impl Into<String>) -> Self {
        Self {
            cri,
            cgroup_parent: cgroup_parent.into(),
        }
    }

    pub fn cri(&mut self) -> &mut Cri {
        &mut self.cri
    }

    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup_parent
    }

    /// The `PodSandboxConfig` the kubelet would send for `pod`.
    pub fn sandbox_config(&self, pod: &PodSpec) -> api::PodSandboxConfig {
        api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata {
                name: pod.name.clone(),
                uid: pod.uid.clone(),
                namespace: pod.namespace.clone(),
                attempt: 0,
            }),
            // runc refuses to set a hostname without a private UTS namespace.
            hostname: String::new(),
            log_directory: pod
                .log_dir
                .as_ref()
                .map(|d| d.to_string_lossy().into_owned())
                .unwrap_or_default(),
            labels: pod.sandbox_labels(),
            annotations: HashMap::from([(
                "kubernetes.io/config.source".to_owned(),
                "api".to_owned(),
            )]),
            linux: Some(api::LinuxPodSandboxConfig {
                cgroup_parent: self.cgroup_parent.clone(),
                security_context: Some(api::LinuxSandboxSecurityContext {
                    namespace_options: Some(namespaces()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// `RunPodSandbox` only; add containers with [`PodRunner::start_container`].
    pub async fn run_sandbox(&mut self, pod: &PodSpec) -> Result<RunningPod> {
        if let Some(dir) = &pod.log_dir {
            std::fs::create_dir_all(dir).map_err(|source| Error::LogDir {
                path: dir.clone(),
                source,
            })?;
        }
        let req = api::RunPodSandboxRequest {
            config: Some(self.sandbox_config(pod)),
            runtime_handler: String::new(),
        };
        let sandbox_id = self
            .cri
            .runtime
            .run_pod_sandbox(req)
            .await
            .map_err(call_err("RunPodSandbox"))?
            .into_inner()
            .pod_sandbox_id;
        Ok(RunningPod {
            sandbox_id,
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            uid: pod.uid.clone(),
            containers: Vec::new(),
        })
    }

    /// `CreateContainer` + `StartContainer` in a running sandbox; records the id in `running`.
    pub async fn start_container(
        &mut self,
        pod: &PodSpec,
        running: &mut RunningPod,
        container: &ContainerSpec,
    ) -> Result<String> {
        let log_path = match &pod.log_dir {
            Some(dir) => {
                let sub = dir.join(&container.name);
                std::fs::create_dir_all(&sub)
                    .map_err(|source| Error::LogDir { path: sub, source })?;
                format!("{}/0.log", container.name)
            }
            None => String::new(),
        };
        let config = api::ContainerConfig {
            metadata: Some(api::ContainerMetadata {
                name: container.name.clone(),
                attempt: 0,
            }),
            image: Some(api::ImageSpec {
                image: container.image.clone(),
                ..Default::default()
            }),
            command: container.command.clone(),
            args: container.args.clone(),
            labels: pod.container_labels(&container.name),
            annotations: HashMap::from([
                (
                    "io.kubernetes.container.restartCount".to_owned(),
                    "0".to_owned(),
                ),
                (
                    "io.kubernetes.container.terminationMessagePath".to_owned(),
                    "/dev/termination-log".to_owned(),
                ),
                (
                    "io.kubernetes.pod.terminationGracePeriod".to_owned(),
                    "30".to_owned(),
                ),
            ]),
            log_path,
            linux: Some(api::LinuxContainerConfig {
                security_context: Some(api::LinuxContainerSecurityContext {
                    namespace_options: Some(namespaces()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let req = api::CreateContainerRequest {
            pod_sandbox_id: running.sandbox_id.clone(),
            config: Some(config),
            sandbox_config: Some(self.sandbox_config(pod)),
        };
        let id = self
            .cri
            .runtime
            .create_container(req)
            .await
            .map_err(call_err("CreateContainer"))?
            .into_inner()
            .container_id;
        let start = api::StartContainerRequest {
            container_id: id.clone(),
        };
        self.cri
            .runtime
            .start_container(start)
            .await
            .map_err(call_err("StartContainer"))?;
        running.containers.push(RunningContainer {
            name: container.name.clone(),
            id: id.clone(),
        });
        Ok(id)
    }

    /// Sandbox plus all `containers`, each started and RUNNING. On failure the sandbox
    /// is removed again.
    pub async fn run_pod(
        &mut self,
        pod: &PodSpec,
        containers: &[ContainerSpec],
    ) -> Result<RunningPod> {
        let mut running = self.run_sandbox(pod).await?;
        let started = self.start_all(pod, &mut running, containers).await;
        if let Err(err) = started {
            if let Err(cleanup) = self.cri.remove_pod(&running.sandbox_id).await {
                tracing::warn!(%cleanup, sandbox = %running.sandbox_id, "failed to remove sandbox after error");
            }
            return Err(err);
        }
        Ok(running)
    }

    async fn start_all(
        &mut self,
        pod: &PodSpec,
        running: &mut RunningPod,
        containers: &[ContainerSpec],
    ) -> Result<()> {
        for c in containers {
            let id = self.start_container(pod, running, c).await?;
            self.cri
                .wait_for_state(
                    &id,
                    ContainerState::ContainerRunning,
                    Duration::from_secs(10),
                )
                .await?;
        }
        Ok(())
    }

    /// Stops and removes the pod's containers and sandbox.
    pub async fn remove_pod(&mut self, running: &RunningPod) -> Result<()> {
        self.cri.remove_pod(&running.sandbox_id).await
    }
}

/// Host network (no CNI here), a pid namespace per container, IPC per pod.
fn namespaces() -> api::NamespaceOption {
    api::NamespaceOption {
        network: api::NamespaceMode::Node as i32,
        pid: api::NamespaceMode::Container as i32,
        ipc: api::NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

/// A random RFC 4122 version-4 style UID (no extra dependency: std's random hasher keys).
pub fn random_uid() -> String {
    let mut bytes = [0u8; 16];
    for chunk in bytes.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_labels_are_the_kubelets() {
        let pod = PodSpec::new("ns1", "web").with_uid("u-1");
        let labels = pod.container_labels("app");
        assert_eq!(labels.len(), 4);
        assert_eq!(labels["io.kubernetes.pod.name"], "web");
        assert_eq!(labels["io.kubernetes.pod.namespace"], "ns1");
        assert_eq!(labels["io.kubernetes.pod.uid"], "u-1");
        assert_eq!(labels["io.kubernetes.container.name"], "app");
    }

    #[test]
    fn random_uids_look_like_uuids_and_differ() {
        let a = random_uid();
        let b = random_uid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'4');
    }

    #[tokio::test]
    async fn sandbox_config_is_host_network_without_hostname() {
        let channel = Endpoint::from_static("http://[::]:1").connect_lazy();
        let runner = PodRunner::new(Cri::new(channel), "/kcr-x");
        let cfg = runner.sandbox_config(&PodSpec::new("ns", "p"));
        assert_eq!(cfg.hostname, "");
        let linux = cfg.linux.expect("linux");
        assert_eq!(linux.cgroup_parent, "/kcr-x");
        let ns = linux
            .security_context
            .and_then(|s| s.namespace_options)
            .expect("namespace options");
        assert_eq!(ns.network, api::NamespaceMode::Node as i32);
        assert_eq!(ns.pid, api::NamespaceMode::Container as i32);
    }
}
