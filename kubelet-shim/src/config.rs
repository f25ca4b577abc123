//! From validated [`Options`] to a [`Config`]: authentication and
//! authorization like the kubelet's (`cmd/kubelet/app/auth.go`: client
//! certificates, TokenReview, SubjectAccessReview), the serving certificate,
//! the checkpoints directory, the CRI runtime. Everything the node agent
//! needs is checked here, at start, and a failure names the path and the
//! flag it came from.

use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use api_types::features::FeatureGates;
use apiserver_lib::authentication::Authenticator;
use apiserver_lib::authorization::Authorizer;
use apiserver_lib::kubeconfig::Fallback;
use apiserver_lib::options::{DelegationError, SecureServingInfo, SelfSigned, delegate};
use apiserver_lib::tls;

use crate::certificate::CertificateManager;
use crate::host::{self, HostConfig};
use crate::options::{ControllerMode, MAX_CONCURRENT_PODCHECKPOINTS, Options};
use crate::runtime::{CriRuntime, RuntimeService};

/// Base name of the self-signed pair in `--cert-dir`.
pub const SELF_SIGNED_NAME: &str = "checkpoint-shim";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Delegation(#[from] DelegationError),
    #[error("failed to load the serving certificate: {0}")]
    ServingCert(tls::Error),
    #[error("cannot use the checkpoints directory {path} (<--root-dir>/checkpoints): {error}")]
    CheckpointsDir { path: PathBuf, error: io::Error },
    #[error(
        "cannot use the container runtime socket {path} (--container-runtime-endpoint): {reason}"
    )]
    RuntimeSocket { path: PathBuf, reason: String },
    #[error("invalid options: {0}")]
    Options(String),
    #[error(
        "--podcheckpoint-controller=true needs an API server: give --kubeconfig or run in a pod with a service account"
    )]
    NoApiServerForController,
    #[error(
        "--rotate-server-certificates needs an API server: give --kubeconfig or run in a pod with a service account"
    )]
    NoApiServerForCertificates,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the server runs with.
pub struct Config {
    pub secure_serving: SecureServingInfo,
    pub authenticator: Authenticator,
    pub authorizer: Arc<dyn Authorizer>,
    pub feature_gates: FeatureGates,
    /// `--node-name`: the `name` authorized in `nodes/checkpoint`.
    pub node_name: String,
    pub runtime: Arc<dyn RuntimeService>,
    /// The socket of `--container-runtime-endpoint`, for logs.
    pub runtime_socket: PathBuf,
    pub host: HostConfig,
    /// The API client of `--kubeconfig` (else the in-cluster service
    /// account), when there is one: the PodCheckpoint controller's.
    pub api_client: Option<kube::Client>,
    /// Whether the PodCheckpoint controller runs (`--podcheckpoint-controller`,
    /// resolved: `auto` is on exactly when there is an API client).
    pub podcheckpoint_controller: bool,
    /// `--max-concurrent-podcheckpoints`.
    pub max_concurrent_podcheckpoints: usize,
    /// `--checkpoint-endpoint`: whether `/checkpoint/...` is served.
    pub checkpoint_endpoint: bool,
    /// `--max-archives-per-container`, `--max-archive-bytes` (0: none).
    pub retention: crate::controller::retention::Policy,
    /// `--max-archive-bytes` as given, for messages.
    pub max_archive_bytes_flag: String,
    /// `--orphan-archive-grace`, or `None` with `--keep-orphan-archives`.
    pub orphan_archive_grace: Option<std::time::Duration>,
    /// `--rotate-server-certificates`: requests and renews the serving certificate.
    pub certificate_manager: Option<CertificateManager>,
}

/// Why the runtime's socket cannot be used, or `Ok`: it exists, is a socket,
/// and accepts a connection from this process.
pub fn check_runtime_socket(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => {
            "it does not exist (is the runtime running, and is its socket mounted?)".to_owned()
        }
        io::ErrorKind::PermissionDenied => {
            "permission denied (the shim runs as root next to the kubelet)".to_owned()
        }
        _ => e.to_string(),
    })?;
    if !meta.file_type().is_socket() {
        return Err("it is not a unix socket".to_owned());
    }
    std::os::unix::net::UnixStream::connect(path)
        .map(drop)
        .map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => {
                "permission denied (the shim runs as root next to the kubelet)".to_owned()
            }
            io::ErrorKind::ConnectionRefused => {
                "nothing accepts connections on it (is the runtime running?)".to_owned()
            }
            _ => e.to_string(),
        })
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("secure_serving", &self.secure_serving)
            .field("feature_gates", &self.feature_gates)
            .field("node_name", &self.node_name)
            .field("runtime_socket", &self.runtime_socket)
            .field("host", &self.host)
            .field("api_client", &self.api_client.is_some())
            .field("podcheckpoint_controller", &self.podcheckpoint_controller)
            .field(
                "max_concurrent_podcheckpoints",
                &self.max_concurrent_podcheckpoints,
            )
            .field("checkpoint_endpoint", &self.checkpoint_endpoint)
            .field("retention", &self.retention)
            .field("orphan_archive_grace", &self.orphan_archive_grace)
            .field("certificate_manager", &self.certificate_manager)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// The configuration of [`Options`] that [`Options::validate`] accepted,
    /// with the CRI runtime on `--container-runtime-endpoint` (checked now,
    /// connected to on first use and again after failures).
    pub async fn from_options(opts: &Options) -> Result<Config> {
        let socket = runtime_socket(opts)?;
        let runtime = Arc::new(CriRuntime::connect_lazy(&socket));
        let config = Self::with_runtime(opts, runtime).await?;
        check_runtime_socket(&socket).map_err(|reason| Error::RuntimeSocket {
            path: socket.clone(),
            reason,
        })?;
        Ok(config)
    }

    /// Like [`Config::from_options`] with a given runtime (the socket is not used).
    pub async fn with_runtime(opts: &Options, runtime: Arc<dyn RuntimeService>) -> Result<Config> {
        let delegation = delegate(
            opts.kubeconfig.as_deref(),
            Fallback::InCluster,
            &opts.authentication,
            &opts.authorization,
            &opts.testing,
        )
        .await?;
        let node_name = opts.node_name().ok_or_else(|| {
            Error::Options("--node-name: not given and the host name is unknown".into())
        })?;
        let podcheckpoint_controller = match (opts.podcheckpoint_controller, &delegation.client) {
            (ControllerMode::False, _) => false,
            (_, Some(_)) => true,
            (ControllerMode::True, None) => return Err(Error::NoApiServerForController),
            (ControllerMode::Auto, None) => {
                tracing::info!("no API server configured: the PodCheckpoint controller is off");
                false
            }
        };
        let mut host = HostConfig::new(opts.checkpoints_dir());
        host.runtime_request_timeout = opts.runtime_request_timeout.get();
        host.max_in_flight = MAX_CONCURRENT_PODCHECKPOINTS;
        host.kubelet_archive_names = opts.kubelet_archive_names_for_testing;
        if host.kubelet_archive_names {
            tracing::warn!(
                "--kubelet-archive-names-for-testing: archives are named to the second and overwritten, as the kubelet does; for tests only"
            );
        }
        // The checkpoints directory must be usable before the first request.
        host.ensure_dir().map_err(|e| match e {
            host::Error::CreateDir { path, source } => Error::CheckpointsDir {
                path,
                error: source,
            },
            other => Error::CheckpointsDir {
                path: host.dir.clone(),
                error: io::Error::other(other.to_string()),
            },
        })?;
        let default_cert_dir = opts.default_cert_dir();
        let hosts = [node_name.clone(), "localhost".to_owned()];
        let self_signed = SelfSigned {
            name: SELF_SIGNED_NAME,
            default_dir: Some(&default_cert_dir),
            hosts: &hosts,
        };
        let client_cas = &delegation.authentication.client_cas;
        let (secure_serving, certificate_manager) = if opts.rotate_server_certificates {
            let client = delegation
                .client
                .clone()
                .ok_or(Error::NoApiServerForCertificates)?;
            // Served until the signer's certificate arrives.
            let initial = opts
                .secure_serving
                .serving_cert(&self_signed)
                .map_err(Error::ServingCert)?;
            let serving = tls::ReloadableCert::new(initial).map_err(Error::ServingCert)?;
            let info = SecureServingInfo {
                listen: opts.secure_serving.listen(),
                tls: tls::server_config_reloadable(serving.clone(), client_cas)
                    .map_err(Error::ServingCert)?,
            };
            let manager = CertificateManager::new(
                client,
                node_name.clone(),
                opts.node_ip.clone(),
                serving,
                opts.serving_certificate_request_timeout.get(),
            );
            (info, Some(manager))
        } else {
            let info = opts
                .secure_serving
                .apply(&self_signed, client_cas)
                .map_err(Error::ServingCert)?;
            (info, None)
        };
        Ok(Config {
            secure_serving,
            authenticator: delegation.authentication.authenticator,
            authorizer: delegation.authorizer,
            feature_gates: opts.feature_gates.gates(),
            node_name,
            runtime,
            runtime_socket: runtime_socket(opts).unwrap_or_default(),
            host,
            api_client: delegation.client,
            podcheckpoint_controller,
            max_concurrent_podcheckpoints: opts.max_concurrent_podcheckpoints,
            checkpoint_endpoint: opts.checkpoint_endpoint,
            retention: crate::controller::retention::Policy {
                max_archives_per_container: (opts.max_archives_per_container > 0)
                    .then_some(opts.max_archives_per_container),
                max_archive_bytes: (opts.max_archive_bytes.bytes > 0)
                    .then_some(opts.max_archive_bytes.bytes),
            },
            max_archive_bytes_flag: opts.max_archive_bytes.raw.clone(),
            orphan_archive_grace: (!opts.keep_orphan_archives)
                .then(|| opts.orphan_archive_grace.get()),
            certificate_manager,
        })
    }
}

fn runtime_socket(opts: &Options) -> Result<PathBuf> {
    opts.container_runtime_endpoint
        .get()
        .cloned()
        .map_err(|e| Error::Options(format!("--container-runtime-endpoint: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_sockets_that_cannot_be_used_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.sock");
        assert_eq!(
            check_runtime_socket(&missing).unwrap_err(),
            "it does not exist (is the runtime running, and is its socket mounted?)"
        );
        let file = dir.path().join("file.sock");
        std::fs::write(&file, "").unwrap();
        assert_eq!(
            check_runtime_socket(&file).unwrap_err(),
            "it is not a unix socket"
        );
        let dead = dir.path().join("dead.sock");
        drop(std::os::unix::net::UnixListener::bind(&dead).unwrap());
        assert_eq!(
            check_runtime_socket(&dead).unwrap_err(),
            "nothing accepts connections on it (is the runtime running?)"
        );
        let live = dir.path().join("live.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&live).unwrap();
        assert_eq!(check_runtime_socket(&live), Ok(()));
    }
}
