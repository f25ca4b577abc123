//! The server pipeline: [`Config`] → [`Server::new`] (certificates, clients,
//! the listener) → [`Server::run_until`] (serve until shutdown, then drain).
//! Mirrors the kubelet's `ListenAndServeKubeletServer` for the one endpoint.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use apiserver_lib::tls::{self, ServingCert};
use tokio::net::TcpListener;

use crate::auth;
use crate::checkpoint::{self, Checkpointer, Settings};
use crate::controller::{self, PodCheckpointController};
use crate::metrics::Metrics;
use crate::options::{Config, ControllerMode, TlsSource};
use crate::routes::App;
use crate::runtime::{CriRuntime, RuntimeService};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to load the serving certificate: {0}")]
    ServingCert(#[source] tls::Error),
    #[error("failed to load --client-ca-file: {0}")]
    ClientCa(#[source] tls::Error),
    #[error("failed to build the TLS configuration: {0}")]
    Tls(#[source] tls::Error),
    #[error(transparent)]
    Auth(#[from] auth::Error),
    #[error(transparent)]
    Checkpoints(#[from] checkpoint::Error),
    #[error(
        "--podcheckpoint-controller=true needs an API server: give --kubeconfig or run in a pod with a service account"
    )]
    NoApiServerForController,
    #[error("failed to listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A bound, ready server.
#[derive(Debug)]
pub struct Server {
    app: App,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    runtime_socket: PathBuf,
    checkpoint_endpoint: bool,
    controller: Option<PodCheckpointController>,
}

impl Server {
    /// Everything from `config`, with the CRI runtime on `--container-runtime-endpoint`.
    pub async fn new(config: Config) -> Result<Self> {
        let runtime = Arc::new(CriRuntime::connect_lazy(&config.runtime_socket));
        Self::with_runtime(config, runtime).await
    }

    /// Like [`Server::new`] with a given runtime.
    pub async fn with_runtime(config: Config, runtime: Arc<dyn RuntimeService>) -> Result<Self> {
        let serving = match &config.tls {
            TlsSource::Files { cert, key } => ServingCert::load(cert, key),
            TlsSource::SelfSigned { dir } => ServingCert::self_signed_in(
                dir,
                "checkpoint-shim",
                &[config.node_name.clone(), "localhost".into()],
            ),
        }
        .map_err(Error::ServingCert)?;
        let client_cas = match &config.client_ca_file {
            Some(path) => tls::read_certs(path).map_err(Error::ClientCa)?,
            None => Vec::new(),
        };
        let tls = tls::server_config(serving, &client_cas).map_err(Error::Tls)?;
        let (authenticator, authorizer) = auth::from_config(&config).await?;
        let metrics = Metrics::new();
        let mut settings = Settings::new(config.checkpoints_dir());
        settings.runtime_request_timeout = config.runtime_request_timeout;
        settings.grace = config.checkpoint_grace;
        settings.max_in_flight = config.max_in_flight_checkpoints;
        let checkpointer = Checkpointer::new(runtime, settings, metrics.clone());
        checkpointer.ensure_dir()?;
        let controller = match config.podcheckpoint_controller {
            ControllerMode::False => None,
            mode => match auth::api_client(config.kubeconfig.as_deref()).await? {
                Some(client) => {
                    let mut settings = controller::Settings::new(config.node_name.clone());
                    settings.max_concurrent = config.max_concurrent_podcheckpoints;
                    Some(PodCheckpointController::new(
                        client,
                        checkpointer.clone(),
                        settings,
                        &metrics,
                    ))
                }
                None if mode == ControllerMode::True => {
                    return Err(Error::NoApiServerForController);
                }
                None => {
                    tracing::info!("no API server configured: the PodCheckpoint controller is off");
                    None
                }
            },
        };
        let app = App::new(
            checkpointer,
            authenticator,
            authorizer,
            config.feature_gates.clone(),
            config.node_name.clone(),
            metrics,
        );
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: config.listen,
                source,
            })?;
        Ok(Self {
            app,
            listener,
            tls,
            runtime_socket: config.runtime_socket,
            checkpoint_endpoint: config.checkpoint_endpoint,
            controller,
        })
    }

    /// The address actually listened on (useful with `--port 0`).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    pub fn app(&self) -> &App {
        &self.app
    }

    /// Serves HTTPS until `shutdown` resolves, then lets requests in flight finish.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) {
        tracing::info!(
            address = ?self.local_addr(),
            runtime = %self.runtime_socket.display(),
            checkpoints = %self.app.checkpointer().settings().dir.display(),
            "checkpoint-shim serving"
        );
        let router = self.app.router_with(self.checkpoint_endpoint);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let controller = self.controller.map(|c| {
            let mut stopped = stopped.clone();
            tokio::spawn(c.run_until(async move {
                let _ = stopped.wait_for(|s| *s).await;
            }))
        });
        apiserver_lib::serve::serve_tls(self.listener, self.tls, router, shutdown).await;
        let _ = stop.send(true);
        if let Some(task) = controller {
            let _ = task.await;
        }
        tracing::info!("checkpoint-shim stopped");
    }
}
