//! The server: routes, health checks and the TLS accept loop
//! (metrics-server's `server.RunUntil`).
//!
//! Routes: `/healthz`, `/livez`, `/readyz` (named checks, no
//! authentication), `/metrics` (authenticated, `get /metrics` authorized), and everything else
//! authenticated: discovery, OpenAPI, `pods/{pod}/checkpoint`; unknown paths
//! are a 404 Status.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use api_types::features::{CONTAINER_CHECKPOINT_API, FeatureGates};
use api_types::{StatusReason, status};
use apiserver_lib::StatusError;
use apiserver_lib::authn::Authenticator;
use apiserver_lib::authz::{Attributes, Authorizer, Decision};
use apiserver_lib::health::{Check, HealthChecks};
use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{Method, StatusCode, header};

use crate::concurrency::NodeLimiter;
use crate::discovery::Document;
use crate::events::EventRecorder;
use crate::lookup::ClusterReader;
use crate::metrics::{self, Metrics};
use crate::node::NodeClient;
use crate::target::AddressType;

/// How long the `kube-apiserver` readiness check may take.
const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Request-handling settings (from the options).
#[derive(Debug, Clone)]
pub struct Settings {
    pub gates: FeatureGates,
    pub max_timeout_seconds: i64,
    pub max_request_body_bytes: usize,
    pub address_types: Vec<AddressType>,
    pub kubelet_port: Option<u16>,
    /// Bound of the node call when the request gives no timeout.
    pub kubelet_request_timeout: Duration,
    /// Added to the request's timeout.
    pub kubelet_timeout_margin: Duration,
    pub node_queue_timeout: Duration,
}

impl Settings {
    /// Defaults as the flags have them, with the gate as given.
    pub fn with_gate(gate_on: bool) -> Self {
        let spec = format!("{CONTAINER_CHECKPOINT_API}={gate_on}");
        Self {
            gates: FeatureGates::parse(api_types::features::APISERVER_GATES, &spec)
                .unwrap_or_else(|_| FeatureGates::defaults(api_types::features::APISERVER_GATES)),
            max_timeout_seconds: api_types::MAX_TIMEOUT_SECONDS,
            max_request_body_bytes: crate::options::DEFAULT_MAX_REQUEST_BODY_BYTES,
            address_types: vec![
                AddressType::InternalIP,
                AddressType::ExternalIP,
                AddressType::Hostname,
            ],
            kubelet_port: None,
            kubelet_request_timeout: api_types::timeouts::DEFAULT_RUNTIME_REQUEST_TIMEOUT,
            kubelet_timeout_margin: api_types::timeouts::DEFAULT_KUBELET_TIMEOUT_MARGIN,
            node_queue_timeout: Duration::from_secs(20),
        }
    }

    pub fn gate_on(&self) -> bool {
        self.gates.enabled(CONTAINER_CHECKPOINT_API)
    }

    /// How long a node call may take for a request timeout (0 = default).
    pub fn call_deadline(&self, timeout_seconds: i64) -> Duration {
        api_types::timeouts::Deadlines::new(timeout_seconds, self.kubelet_request_timeout).runtime()
            + self.kubelet_timeout_margin
    }
}

/// Everything a request needs; each dependency behind a narrow trait.
#[derive(Debug)]
pub struct App {
    pub settings: Settings,
    pub authn: Authenticator,
    pub authz: Arc<dyn Authorizer>,
    pub cluster: Arc<dyn ClusterReader>,
    pub nodes: Arc<dyn NodeClient>,
    pub events: Arc<dyn EventRecorder>,
    pub metrics: Arc<Metrics>,
    pub limiter: Arc<NodeLimiter>,
}

/// A complete configuration: where to listen, TLS, and the app.
#[derive(Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub tls: Arc<rustls::ServerConfig>,
    pub app: App,
}

/// The running server.
#[derive(Debug)]
pub struct Server {
    listen: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    app: Arc<App>,
    shutting_down: Arc<AtomicBool>,
}

/// A path this server routes (other than health and metrics).
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Checkpoint { namespace: &'a str, pod: &'a str },
    Document(Document),
    Unknown,
}

fn route(path: &str) -> Route<'_> {
    let trimmed = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    if let Some(doc) = Document::for_path(trimmed) {
        return Route::Document(doc);
    }
    let segs: Vec<&str> = trimmed.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        ["apis", g, v, "namespaces", ns, "pods", pod, "checkpoint"]
            if *g == api_types::SUBRESOURCES_GROUP && *v == api_types::VERSION =>
        {
            Route::Checkpoint { namespace: ns, pod }
        }
        _ => Route::Unknown,
    }
}

async fn api(State(app): State<Arc<App>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    match route(&path) {
        Route::Checkpoint { namespace, pod } => {
            crate::checkpoint::handle(app, req, namespace, pod).await
        }
        other => {
            let (parts, _) = req.into_parts();
            if let Err(s) = crate::checkpoint::authenticate(&app, &parts).await {
                return StatusError(s).into_response();
            }
            match other {
                Route::Document(doc) if parts.method == Method::GET => {
                    doc.respond(app.settings.gate_on(), &parts.headers)
                }
                Route::Document(_) => {
                    StatusError(status::method_not_allowed(parts.method.as_str())).into_response()
                }
                _ => StatusError(status::not_found(
                    "the server could not find the requested resource",
                ))
                .into_response(),
            }
        }
    }
}

/// `/metrics` for whoever may `get` the non-resource URL `/metrics`
/// (Prometheus scrapers are granted it by RBAC, as for kube-apiserver's).
async fn serve_metrics(State(app): State<Arc<App>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let user = match crate::checkpoint::authenticate(&app, &parts).await {
        Ok(user) => user,
        Err(s) => return StatusError(s).into_response(),
    };
    let attrs = Attributes::non_resource(user, "get", "/metrics");
    match app.authz.authorize(&attrs).await {
        Ok(Decision::Allow) => {}
        Ok(Decision::Deny(_)) => {
            let message = format!(
                "forbidden: User \"{}\" cannot get path \"/metrics\"",
                attrs.user.name
            );
            return StatusError(status::failure(StatusReason::Forbidden, message, None))
                .into_response();
        }
        Err(e) => {
            return StatusError(status::service_unavailable(format!(
                "the request could not be authorized: {e}"
            )))
            .into_response();
        }
    }
    match app.metrics.encode() {
        Ok(text) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
            text,
        )
            .into_response(),
        Err(e) => StatusError(status::internal_error(e.to_string())).into_response(),
    }
}

impl Server {
    pub fn new(config: Config) -> Self {
        Self {
            listen: config.listen,
            tls: config.tls,
            app: Arc::new(config.app),
            shutting_down: Arc::default(),
        }
    }

    /// The named health checks: livez `ping`; readyz `ping`, `kube-apiserver`
    /// (the API server answers) and `shutdown` (fails once draining).
    pub fn health_checks(&self) -> HealthChecks {
        let cluster = self.app.cluster.clone();
        let shutting_down = self.shutting_down.clone();
        HealthChecks {
            livez: vec![Check::ping()],
            readyz: vec![
                Check::ping(),
                Check::new("kube-apiserver", move || {
                    let cluster = cluster.clone();
                    async move {
                        match tokio::time::timeout(READY_CHECK_TIMEOUT, cluster.ready()).await {
                            Ok(r) => r.map_err(|e| e.to_string()),
                            Err(_) => Err("the API server did not answer in time".to_owned()),
                        }
                    }
                }),
                Check::new("shutdown", move || {
                    let down = shutting_down.load(Ordering::SeqCst);
                    async move {
                        if down {
                            Err("the server is shutting down".to_owned())
                        } else {
                            Ok(())
                        }
                    }
                }),
            ],
        }
    }

    /// All routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/metrics", get(serve_metrics))
            .fallback(api)
            .with_state(self.app.clone())
            .merge(self.health_checks().router())
    }

    /// Listen on the configured address and serve until `shutdown` resolves.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), Error> {
        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .map_err(|source| Error::Listen {
                addr: self.listen,
                source,
            })?;
        self.serve_on(listener, shutdown).await;
        Ok(())
    }

    /// Serve on a bound listener until `shutdown` resolves, then drain.
    pub async fn serve_on(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, gate = %self.app.settings.gates.to_spec(), "serving");
        }
        let router = self.router();
        let flag = self.shutting_down.clone();
        let shutdown = async move {
            shutdown.await;
            flag.store(true, Ordering::SeqCst);
        };
        apiserver_lib::serve::serve_tls(listener, self.tls.clone(), router, shutdown).await;
        tracing::info!("stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route("/apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/ns/pods/p/checkpoint"),
            Route::Checkpoint {
                namespace: "ns",
                pod: "p"
            }
        );
        assert_eq!(
            route(
                "/apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/ns/pods/p/checkpoint/"
            ),
            Route::Checkpoint {
                namespace: "ns",
                pod: "p"
            }
        );
        assert_eq!(route("/apis/"), Route::Document(Document::Apis));
        assert_eq!(
            route("/apis/subresources.checkpoint.kcr.dev/v1beta1/namespaces/ns/pods/p/checkpoint"),
            Route::Unknown
        );
        assert_eq!(
            route("/apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/ns/pods/p/exec"),
            Route::Unknown
        );
        assert_eq!(route("/"), Route::Unknown);
        assert_eq!(route(""), Route::Unknown);
    }

    #[test]
    fn deadlines() {
        let s = Settings::with_gate(true);
        assert!(s.gate_on());
        assert!(!Settings::with_gate(false).gate_on());
        // The runtime timeout (2m by default), then the node's 5s grace, then this server's 5s.
        assert_eq!(s.call_deadline(0), Duration::from_secs(130));
        assert_eq!(s.call_deadline(2), Duration::from_secs(12));
        assert_eq!(s.call_deadline(-1), Duration::from_secs(130));
        assert_eq!(
            s.call_deadline(2),
            api_types::timeouts::Deadlines::new(2, s.kubelet_request_timeout).extension()
        );
    }
}
