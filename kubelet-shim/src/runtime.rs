//! The container runtime behind a narrow trait: the CRI `RuntimeService`
//! calls the checkpoint endpoint and the node agent need (mirrors the slice of
//! `k8s.io/cri-api/pkg/apis.RuntimeService` the kubelet uses for it,
//! `pkg/kubelet/cri/remote/remote_runtime.go`).
//!
//! [`CriRuntime`] is the real implementation: a tonic client on the runtime's
//! unix socket (`--container-runtime-endpoint`). Tests use the in-process fake
//! CRI server of `kcr-testkit` through the same client, so the gRPC layer is
//! exercised too.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::future::BoxFuture;
use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

pub use cri::{CheckpointContainerRequest, Container, ContainerFilter, ContainerState};

/// What failed talking to the runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The runtime answered the call with an error status.
    #[error("{}", go_status(.status))]
    Call {
        call: &'static str,
        status: Box<tonic::Status>,
    },
    /// The runtime did not answer within our bound.
    #[error("{call} did not return within {after:?}")]
    Timeout { call: &'static str, after: Duration },
}

impl Error {
    /// The gRPC code of a [`Error::Call`].
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            Error::Call { status, .. } => Some(status.code()),
            Error::Timeout { .. } => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A `--container-runtime-endpoint` that is not a unix socket.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unsupported container runtime endpoint {0:?}: only unix sockets are supported (unix:///path/to/socket)"
)]
pub struct EndpointError(pub String);

/// The socket path of a `--container-runtime-endpoint`: `unix:///path` or, as
/// the kubelet still accepts with a deprecation warning, a bare absolute path.
pub fn parse_endpoint(endpoint: &str) -> Result<PathBuf, EndpointError> {
    let path = match endpoint.strip_prefix("unix://") {
        Some(rest) => rest,
        None if endpoint.starts_with('/') => endpoint,
        None => return Err(EndpointError(endpoint.to_owned())),
    };
    if !path.starts_with('/') || path.len() < 2 {
        return Err(EndpointError(endpoint.to_owned()));
    }
    Ok(PathBuf::from(path))
}

/// A `ContainerFilter.state` value.
pub fn cri_state(state: ContainerState) -> cri::ContainerStateValue {
    cri::ContainerStateValue {
        state: i32::from(state),
    }
}

/// Name and version of the runtime (`VersionResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    pub runtime_name: String,
    pub runtime_version: String,
    pub runtime_api_version: String,
}

/// The CRI calls the checkpoint endpoint needs. Implementations must be cheap
/// to call concurrently.
pub trait RuntimeService: Send + Sync + std::fmt::Debug {
    /// CRI `Version`.
    fn version(&self) -> BoxFuture<'_, Result<VersionInfo>>;
    /// CRI `ListContainers` with a filter.
    fn list_containers(&self, filter: ContainerFilter) -> BoxFuture<'_, Result<Vec<Container>>>;
    /// CRI `CheckpointContainer`. Not bounded in time here: the caller decides
    /// how long to wait (the runtime is told `request.timeout`).
    fn checkpoint_container(
        &self,
        request: CheckpointContainerRequest,
    ) -> BoxFuture<'_, Result<()>>;
    /// What a checkpoint of the container would roughly weigh, from CRI
    /// `ContainerStats`: [`estimate_from_stats`]. `None`: the runtime
    /// reports no memory usage for it.
    fn checkpoint_size_estimate(&self, container_id: &str) -> BoxFuture<'_, Result<Option<u64>>>;
}

/// A checkpoint's size, estimated from a container's stats: its memory
/// working set (the kubelet's "memory usage"; CRIU dumps the process's
/// pages) plus its writable layer (the archive's rootfs diff), when the
/// runtime reports it. `None` without a memory figure.
pub fn estimate_from_stats(stats: &cri::ContainerStats) -> Option<u64> {
    let memory = stats.memory.as_ref()?.working_set_bytes.as_ref()?.value;
    let layer = stats
        .writable_layer
        .as_ref()
        .and_then(|l| l.used_bytes.as_ref())
        .map_or(0, |v| v.value);
    Some(memory.saturating_add(layer))
}

/// The real runtime: a CRI v1 client over a tonic channel.
#[derive(Debug, Clone)]
pub struct CriRuntime {
    client: RuntimeServiceClient<Channel>,
}

impl CriRuntime {
    /// A client on an existing channel (a unix socket, or an in-process server in tests).
    pub fn new(channel: Channel) -> Self {
        Self {
            client: RuntimeServiceClient::new(channel),
        }
    }

    /// A client on the unix socket at `socket`. The connection is made on
    /// first use (and remade after failures), so the shim starts before the
    /// runtime and survives its restarts; `/healthz` reports the runtime.
    pub fn connect_lazy(socket: &Path) -> Self {
        let path = socket.to_owned();
        // The URI is ignored by the connector; tonic only needs a valid one.
        let channel =
            Endpoint::from_static("http://[::]:50051")
                .connect_timeout(Duration::from_secs(5))
                .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?))
                    }
                }));
        Self::new(channel)
    }
}

fn call_err(call: &'static str) -> impl FnOnce(tonic::Status) -> Error {
    move |status| Error::Call {
        call,
        status: Box::new(status),
    }
}

impl RuntimeService for CriRuntime {
    fn version(&self) -> BoxFuture<'_, Result<VersionInfo>> {
        let mut client = self.client.clone();
        Box::pin(async move {
            let resp = client
                .version(cri::VersionRequest {
                    version: "v1".into(),
                })
                .await
                .map_err(call_err("Version"))?
                .into_inner();
            Ok(VersionInfo {
                runtime_name: resp.runtime_name,
                runtime_version: resp.runtime_version,
                runtime_api_version: resp.runtime_api_version,
            })
        })
    }

    fn list_containers(&self, filter: ContainerFilter) -> BoxFuture<'_, Result<Vec<Container>>> {
        let mut client = self.client.clone();
        Box::pin(async move {
            Ok(client
                .list_containers(cri::ListContainersRequest {
                    filter: Some(filter),
                })
                .await
                .map_err(call_err("ListContainers"))?
                .into_inner()
                .containers)
        })
    }

    fn checkpoint_container(
        &self,
        request: CheckpointContainerRequest,
    ) -> BoxFuture<'_, Result<()>> {
        let mut client = self.client.clone();
        Box::pin(async move {
            client
                .checkpoint_container(request)
                .await
                .map_err(call_err("CheckpointContainer"))?;
            Ok(())
        })
    }

    fn checkpoint_size_estimate(&self, container_id: &str) -> BoxFuture<'_, Result<Option<u64>>> {
        let mut client = self.client.clone();
        let request = cri::ContainerStatsRequest {
            container_id: container_id.to_owned(),
        };
        Box::pin(async move {
            let resp = client
                .container_stats(request)
                .await
                .map_err(call_err("ContainerStats"))?
                .into_inner();
            Ok(resp.stats.as_ref().and_then(estimate_from_stats))
        })
    }
}

/// A gRPC status the way Go's `status.Error` prints it, as the kubelet
/// relays runtime errors: `rpc error: code = Unimplemented desc = ...`.
pub fn go_status(status: &tonic::Status) -> String {
    format!(
        "rpc error: code = {} desc = {}",
        go_code_name(status.code()),
        status.message()
    )
}

/// `google.golang.org/grpc/codes.Code.String()`.
pub fn go_code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoint("unix:///run/containerd/containerd.sock"),
            Ok(PathBuf::from("/run/containerd/containerd.sock"))
        );
        assert_eq!(
            parse_endpoint("/run/crio/crio.sock"),
            Ok(PathBuf::from("/run/crio/crio.sock"))
        );
        for bad in [
            "tcp://127.0.0.1:1234",
            "unix://relative.sock",
            "unix://",
            "npipe:////./pipe/x",
            "",
            "run/x.sock",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_endpoint("tcp://x").unwrap_err().to_string(),
            "unsupported container runtime endpoint \"tcp://x\": only unix sockets are supported (unix:///path/to/socket)"
        );
    }

    #[test]
    fn size_estimate_is_memory_plus_writable_layer() {
        let v = |value| Some(cri::UInt64Value { value });
        let mut stats = cri::ContainerStats::default();
        assert_eq!(estimate_from_stats(&stats), None);
        stats.memory = Some(cri::MemoryUsage {
            working_set_bytes: v(300 << 20),
            ..Default::default()
        });
        assert_eq!(estimate_from_stats(&stats), Some(300 << 20));
        stats.writable_layer = Some(cri::FilesystemUsage {
            used_bytes: v(5 << 20),
            ..Default::default()
        });
        assert_eq!(estimate_from_stats(&stats), Some(305 << 20));
    }

    #[test]
    fn errors_print_like_go_grpc() {
        let e = Error::Call {
            call: "CheckpointContainer",
            status: Box::new(tonic::Status::unimplemented(
                "method CheckpointContainer not implemented",
            )),
        };
        assert_eq!(
            e.to_string(),
            "rpc error: code = Unimplemented desc = method CheckpointContainer not implemented"
        );
        assert_eq!(e.code(), Some(tonic::Code::Unimplemented));
        assert_eq!(go_code_name(tonic::Code::Cancelled), "Canceled");
    }
}
