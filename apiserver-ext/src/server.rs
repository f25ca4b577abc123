//! The server: routes, filters, health checks and the TLS accept loop
//! (metrics-server's `server.RunUntil`).
//!
//! Routes: `/healthz`, `/livez`, `/readyz` (named checks, no
//! authentication); everything else behind the authentication filter:
//! `/metrics` (`get /metrics` authorized), discovery, OpenAPI,
//! `pods/{pod}/checkpoint` (audited and counted, 401s included) and
//! `podcheckpoints/{name}/archive` ([`crate::archive`]); unknown paths are a
//! 404 Status.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use api_types::status;
use apiserver_lib::audit::Entry;
use apiserver_lib::authentication::Authenticator;
use apiserver_lib::authorization::{Attributes, Decision};
use apiserver_lib::filters::{WithAudit, WithAuthentication};
use apiserver_lib::health::{Check, HealthChecks};
use apiserver_lib::serve::{self, BindError};
use apiserver_lib::status::outcome;
use apiserver_lib::{StatusError, UserInfo};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use http::{Method, StatusCode, header};

use crate::checkpoint::{self, CheckpointREST};
use crate::config::Config;
use crate::discovery::Document;
use crate::metrics::{self, Metrics};

/// How long the `kube-apiserver` readiness check may take.
const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stopping server waits for turns ending in the background
/// (normally the 1 s spacing; after a node timeout, until the node gave up).
/// Kubernetes' default termination grace is 30 s.
const TURNS_GRACE: Duration = Duration::from_secs(15);

/// The running server.
#[derive(Debug)]
pub struct Server {
    listen: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    authenticator: Arc<Authenticator>,
    rest: Arc<CheckpointREST>,
    api_server_check: Check,
    shutting_down: Arc<AtomicBool>,
    shim_signer: Option<crate::signer::ShimSigner>,
}

/// A path this server routes (other than health and metrics).
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Checkpoint { namespace: &'a str, pod: &'a str },
    Archive { namespace: &'a str, name: &'a str },
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
        [
            "apis",
            g,
            v,
            "namespaces",
            ns,
            "podcheckpoints",
            name,
            "archive",
        ] if *g == api_types::SUBRESOURCES_GROUP && *v == api_types::VERSION => Route::Archive {
            namespace: ns,
            name,
        },
        _ => Route::Unknown,
    }
}

/// The audit entry of a checkpoint request, from its path (others are not audited).
fn describe(req: &Request) -> Option<Entry> {
    match route(req.uri().path()) {
        Route::Checkpoint { namespace, pod } => Some(Entry {
            namespace: checkpoint::decode(namespace),
            pod: checkpoint::decode(pod),
            ..Entry::default()
        }),
        _ => None,
    }
}

/// Counts every answer of the checkpoint route by code and reason.
async fn count(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let counted = matches!(route(req.uri().path()), Route::Checkpoint { .. });
    let resp = next.run(req).await;
    if counted {
        let (code, reason) = outcome(&resp);
        metrics.request(code, &reason);
    }
    resp
}

fn unauthorized(_: &apiserver_lib::authentication::Error) -> Response {
    StatusError(status::unauthorized()).into_response()
}

async fn api(State(rest): State<Arc<CheckpointREST>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    match route(&path) {
        Route::Checkpoint { namespace, pod } => rest.handle(req, namespace, pod).await,
        Route::Archive { namespace, name } => rest.handle_archive(req, namespace, name).await,
        Route::Document(doc) if req.method() == Method::GET => {
            doc.respond(rest.gate_on(), req.headers())
        }
        Route::Document(_) => {
            StatusError(status::method_not_allowed(req.method().as_str())).into_response()
        }
        Route::Unknown => StatusError(status::not_found(
            "the server could not find the requested resource",
        ))
        .into_response(),
    }
}

/// `/metrics` for whoever may `get` the non-resource URL `/metrics`
/// (Prometheus scrapers are granted it by RBAC, as for kube-apiserver's).
async fn serve_metrics(
    State(rest): State<Arc<CheckpointREST>>,
    Extension(user): Extension<UserInfo>,
) -> Response {
    let attrs = Attributes::non_resource(user, "get", "/metrics");
    match rest.authorizer.authorize(&attrs).await {
        Ok(Decision::Allow) => {}
        Ok(Decision::Deny(reason)) => {
            return StatusError(attrs.forbidden(&reason)).into_response();
        }
        Err(e) => {
            return StatusError(status::service_unavailable(format!(
                "the request could not be authorized: {e}"
            )))
            .into_response();
        }
    }
    match rest.metrics.encode() {
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
            listen: config.secure_serving.listen,
            tls: config.secure_serving.tls,
            authenticator: Arc::new(config.authenticator),
            rest: Arc::new(config.rest),
            api_server_check: config.api_server_check,
            shutting_down: Arc::default(),
            shim_signer: config.shim_signer,
        }
    }

    /// The metrics served on `/metrics`.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.rest.metrics.clone()
    }

    /// The named health checks: livez `ping`; readyz `ping`, `kube-apiserver`
    /// (the API server answers, within 5 s) and `shutdown` (fails once draining).
    pub fn health_checks(&self) -> HealthChecks {
        let api_server = self.api_server_check.clone();
        let shutting_down = self.shutting_down.clone();
        HealthChecks {
            livez: vec![Check::ping()],
            readyz: vec![
                Check::ping(),
                Check::new(api_server.name.clone(), move || {
                    let api_server = api_server.clone();
                    async move {
                        match tokio::time::timeout(READY_CHECK_TIMEOUT, api_server.run()).await {
                            Ok(r) => r,
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

    /// All routes, behind their filters.
    pub fn router(&self) -> Router {
        let api = Router::new()
            .route("/metrics", get(serve_metrics))
            .fallback(api)
            .with_state(self.rest.clone());
        let api = WithAuthentication::new(self.authenticator.clone(), unauthorized).wrap(api);
        let api = api.layer(axum::middleware::from_fn_with_state(
            self.rest.metrics.clone(),
            count,
        ));
        WithAudit::new(describe)
            .wrap(api)
            .merge(self.health_checks().router())
    }

    /// Listen on the configured address and serve until `shutdown` resolves.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), BindError> {
        let listener = serve::bind(self.listen).await?;
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
            tracing::info!(%addr, gate = %self.rest.feature_gates.to_spec(), "serving");
        }
        let router = self.router();
        let flag = self.shutting_down.clone();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let signer = self.shim_signer.clone().map(|signer| {
            let mut stopped = stopped.clone();
            tokio::spawn(signer.run_until(async move {
                let _ = stopped.wait_for(|s| *s).await;
            }))
        });
        let shutdown = async move {
            shutdown.await;
            flag.store(true, Ordering::SeqCst);
        };
        serve::serve_tls(listener, self.tls.clone(), router, shutdown).await;
        // Turns that end in the background give their Leases back before
        // the process goes: a successor (another holder identity) would wait
        // each one out.
        let left = self.rest.turns.finish(TURNS_GRACE).await;
        if left > 0 {
            tracing::warn!(
                turns = left,
                grace = ?TURNS_GRACE,
                "stopping with container Leases still held; they expire on their own"
            );
        }
        let _ = stop.send(true);
        if let Some(task) = signer {
            let _ = task.await;
        }
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
        assert_eq!(
            route(
                "/apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/ns/podcheckpoints/p-1/archive"
            ),
            Route::Archive {
                namespace: "ns",
                name: "p-1"
            }
        );
        assert_eq!(
            route("/apis/checkpoint.kcr.dev/v1alpha1/namespaces/ns/podcheckpoints/p-1/archive"),
            Route::Unknown
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
}
