//! The server (the kubelet's `server.Server`, `pkg/kubelet/server/server.go`,
//! for its one endpoint): routes behind the kubelet's filters, the handlers,
//! health, and serving until shutdown (`ListenAndServeKubeletServer`).
//!
//! | route | filters | handler |
//! |---|---|---|
//! | `/checkpoint/{ns}/{pod}/{container}` (only with the gate on) | audit, authentication | authorize `nodes/checkpoint`, [`Host::checkpoint_container`] |
//! | `GET /podcheckpoints/{ns}/{name}/archive` (only with the PodCheckpoint controller) | authentication | authorize `get nodes/checkpoint`, [`ArchiveServer`] |
//! | `/metrics` | authentication | authorize `nodes/metrics`, the exposition |
//! | `/healthz`, `/livez`, `/readyz` | – | `ping`; `runtime` (CRI `Version`) for readiness |
//! | anything else | – | 404 |
//!
//! Every answer is counted by route, method and code.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use api_types::CheckpointResponse;
use api_types::features::{CONTAINER_CHECKPOINT, FeatureGates};
use apiserver_lib::UserInfo;
use apiserver_lib::audit::{AuditContext, Entry};
use apiserver_lib::authentication::Authenticator;
use apiserver_lib::authorization::{Attributes, Authorizer, Decision};
use apiserver_lib::filters::{WithAudit, WithAuthentication};
use apiserver_lib::health::{Check, HealthChecks};
use apiserver_lib::serve::{self, BindError};
use apiserver_lib::status::json_response;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Extension, Router};
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode, header};
use tokio::net::TcpListener;

use crate::archive::{ArchiveServer, KubePodCheckpoints, parse_archive_request};
use crate::certificate::CertificateManager;
use crate::config::Config;
use crate::controller::{self, PodCheckpointController};
use crate::host::Host;
use crate::metrics::{self, Metrics};
use crate::routes::{
    CHECKPOINT_PREFIX, CheckpointRequest, Reject, method_not_allowed, not_found,
    parse_checkpoint_request, route_of, split_target, text,
};

/// The server; cheap to clone (the handlers' state).
#[derive(Debug, Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    listen: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    authenticator: Arc<Authenticator>,
    authorizer: Arc<dyn Authorizer>,
    feature_gates: FeatureGates,
    node_name: String,
    host: Host,
    metrics: Metrics,
    runtime_socket: std::path::PathBuf,
    checkpoint_endpoint: bool,
    /// The PodCheckpoint controller, taken and run by [`Server::serve_on`].
    controller: std::sync::Mutex<Option<PodCheckpointController>>,
    /// `--rotate-server-certificates`, run by [`Server::serve_on`].
    certificates: Option<CertificateManager>,
    /// The archives of the controller's PodCheckpoints, when it runs.
    archives: Option<ArchiveServer>,
}

/// The resource attributes the kubelet authorizes a request with:
/// `nodes/<subresource>` named after this node, verb from the HTTP method
/// (`GetRequestAttributes` in `pkg/kubelet/server/auth.go`).
pub fn node_attributes(
    user: UserInfo,
    method: &Method,
    node_name: &str,
    subresource: &str,
) -> Attributes {
    let verb = match *method {
        Method::POST => "create",
        Method::GET | Method::HEAD => "get",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "",
    };
    Attributes {
        user,
        verb: verb.to_owned(),
        group: String::new(),
        resource: "nodes".to_owned(),
        subresource: subresource.to_owned(),
        namespace: String::new(),
        name: node_name.to_owned(),
        path: String::new(),
    }
}

fn unauthorized(_: &apiserver_lib::authentication::Error) -> Response {
    text(StatusCode::UNAUTHORIZED, "Unauthorized")
}

impl Server {
    pub fn new(config: Config) -> Self {
        let archives = match (config.podcheckpoint_controller, &config.api_client) {
            (true, Some(client)) => Some(ArchiveServer::new(
                Arc::new(KubePodCheckpoints::new(client.clone())),
                config.host.dir.clone(),
                config.node_name.clone(),
            )),
            _ => None,
        };
        Self::with_archives(config, archives)
    }

    /// [`Server::new`] with the archives served from a given
    /// [`ArchiveServer`] (`None`: no archive route).
    pub fn with_archives(config: Config, archives: Option<ArchiveServer>) -> Self {
        let metrics = Metrics::new();
        let host = Host::new(config.runtime, config.host, metrics.clone());
        let controller = match (config.podcheckpoint_controller, config.api_client) {
            (true, Some(client)) => {
                let mut settings = controller::Settings::new(config.node_name.clone());
                settings.max_concurrent = config.max_concurrent_podcheckpoints;
                settings.retention = config.retention;
                settings.max_archive_bytes_flag = config.max_archive_bytes_flag;
                settings.orphan_grace = config.orphan_archive_grace;
                Some(PodCheckpointController::new(
                    client,
                    host.clone(),
                    settings,
                    &metrics,
                ))
            }
            _ => None,
        };
        Self {
            inner: Arc::new(Inner {
                listen: config.secure_serving.listen,
                tls: config.secure_serving.tls,
                authenticator: Arc::new(config.authenticator),
                authorizer: config.authorizer,
                feature_gates: config.feature_gates,
                node_name: config.node_name,
                host,
                metrics,
                runtime_socket: config.runtime_socket,
                checkpoint_endpoint: config.checkpoint_endpoint,
                controller: std::sync::Mutex::new(controller),
                certificates: config.certificate_manager,
                archives,
            }),
        }
    }

    pub fn host(&self) -> &Host {
        &self.inner.host
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The health checks: `ping` for liveness; `ping` and the runtime's
    /// `Version` for readiness and `/healthz`.
    pub fn health_checks(&self) -> HealthChecks {
        let runtime = self.inner.host.runtime().clone();
        let bound = self.inner.host.config().runtime_request_timeout;
        let certificates = self.inner.certificates.clone().map(|manager| {
            Check::new("serving-certificate", move || {
                let issued = manager.issued();
                async move {
                    if issued {
                        Ok(())
                    } else {
                        Err(format!(
                            "no serving certificate from {} yet (kubectl get csr)",
                            api_types::SHIM_SERVING_SIGNER_NAME
                        ))
                    }
                }
            })
        });
        HealthChecks {
            livez: vec![Check::ping()],
            readyz: [
                Check::ping(),
                Check::new("runtime", move || {
                    let runtime = runtime.clone();
                    async move {
                        match tokio::time::timeout(bound, runtime.version()).await {
                            Ok(Ok(_)) => Ok(()),
                            Ok(Err(e)) => Err(format!("CRI Version failed: {e}")),
                            Err(_) => Err(format!("CRI Version did not answer within {bound:?}")),
                        }
                    }
                }),
            ]
            .into_iter()
            .chain(certificates)
            .collect(),
        }
    }

    /// The whole HTTP API. Health endpoints need no credentials (as the
    /// kubelet's `/healthz`); `/checkpoint/...` and `/metrics` do. With the
    /// gate off the checkpoint route does not exist, as on a kubelet.
    pub fn router(&self) -> Router {
        let authentication =
            WithAuthentication::new(self.inner.authenticator.clone(), unauthorized);
        let mut router = authentication
            .clone()
            .wrap(
                Router::new()
                    .route("/metrics", any(serve_metrics))
                    .with_state(self.clone()),
            )
            .merge(self.health_checks().router());
        if self.inner.checkpoint_endpoint && self.inner.feature_gates.enabled(CONTAINER_CHECKPOINT)
        {
            let node = self.inner.node_name.clone();
            let checkpoint = authentication.clone().wrap(
                Router::new()
                    .route("/checkpoint/{*rest}", any(checkpoint))
                    .with_state(self.clone()),
            );
            router = router.merge(WithAudit::new(move |req| describe(req, &node)).wrap(checkpoint));
        }
        if self.inner.archives.is_some() {
            router = router.merge(
                authentication.wrap(
                    Router::new()
                        .route("/podcheckpoints/{*rest}", any(archive))
                        .with_state(self.clone()),
                ),
            );
        }
        router
            .fallback(|| async { not_found() })
            .layer(axum::middleware::from_fn_with_state(self.clone(), count))
    }

    /// The parts of a request the authenticated `user` may make on
    /// `nodes/<subresource>` (the body is never read); else the kubelet's answer.
    async fn admit(
        &self,
        user: UserInfo,
        req: Request,
        subresource: &str,
    ) -> Result<Parts, Response> {
        let (parts, _) = req.into_parts();
        match self.authorize(user, &parts, subresource).await {
            Ok(()) => Ok(parts),
            Err(reject) => Err(reject.into_response()),
        }
    }

    /// Authorizes `nodes/<subresource>` for the authenticated user; the
    /// error is the kubelet's answer.
    async fn authorize(
        &self,
        user: UserInfo,
        parts: &Parts,
        subresource: &str,
    ) -> Result<(), Reject> {
        let attrs = node_attributes(user, &parts.method, &self.inner.node_name, subresource);
        let described = format!(
            "(user={}, verb={}, resource={}, subresource={})",
            attrs.user.name, attrs.verb, attrs.resource, attrs.subresource
        );
        match self.inner.authorizer.authorize(&attrs).await {
            Ok(Decision::Allow) => Ok(()),
            Ok(Decision::Deny(reason)) => {
                tracing::info!(user = %attrs.user.name, verb = %attrs.verb, subresource, %reason, "forbidden");
                Err(Reject::new(
                    StatusCode::FORBIDDEN,
                    format!("Forbidden {described}"),
                ))
            }
            Err(e) => {
                tracing::error!(error = %e, user = %attrs.user.name, "authorization error");
                Err(Reject::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("Authorization error {described}"),
                ))
            }
        }
    }

    /// Listen on the configured address and serve until `shutdown` resolves.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), BindError> {
        let listener = serve::bind(self.inner.listen).await?;
        self.serve_on(listener, shutdown).await;
        Ok(())
    }

    /// Serves HTTPS on a bound listener until `shutdown` resolves, then lets
    /// requests in flight finish.
    pub async fn serve_on(self, listener: TcpListener, shutdown: impl Future<Output = ()> + Send) {
        tracing::info!(
            address = ?listener.local_addr().ok(),
            node = %self.inner.node_name,
            gates = %self.inner.feature_gates.to_spec(),
            runtime = %self.inner.runtime_socket.display(),
            checkpoints = %self.inner.host.config().dir.display(),
            "checkpoint-shim serving"
        );
        let router = self.router();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let controller = self
            .inner
            .controller
            .lock()
            .ok()
            .and_then(|mut c| c.take())
            .map(|c| {
                let mut stopped = stopped.clone();
                tokio::spawn(c.run_until(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                }))
            });
        let certificates = self.inner.certificates.clone().map(|manager| {
            let mut stopped = stopped.clone();
            tokio::spawn(manager.run_until(async move {
                let _ = stopped.wait_for(|s| *s).await;
            }))
        });
        serve::serve_tls(listener, self.inner.tls.clone(), router, shutdown).await;
        let _ = stop.send(true);
        if let Some(task) = certificates {
            let _ = task.await;
        }
        if let Some(task) = controller {
            let _ = task.await;
        }
        tracing::info!("checkpoint-shim stopped");
    }
}

/// The audit entry of a request to the checkpoint route, from its path.
fn describe(req: &Request, node: &str) -> Option<Entry> {
    let path = req.uri().path();
    path.starts_with(CHECKPOINT_PREFIX).then(|| {
        let [namespace, pod, container] = split_target(path).unwrap_or_default();
        Entry {
            namespace,
            pod,
            container,
            node: node.to_owned(),
            ..Entry::default()
        }
    })
}

async fn count(State(server): State<Server>, req: Request, next: Next) -> Response {
    let route = route_of(req.uri().path());
    let method = req.method().clone();
    let resp = next.run(req).await;
    server
        .inner
        .metrics
        .request(route, &method, resp.status().as_u16());
    resp
}

async fn serve_metrics(
    State(server): State<Server>,
    Extension(user): Extension<UserInfo>,
    req: Request,
) -> Response {
    let parts = match server.admit(user, req, "metrics").await {
        Ok(parts) => parts,
        Err(answer) => return answer,
    };
    if parts.method != Method::GET {
        return method_not_allowed("GET");
    }
    match server.inner.metrics.encode() {
        Ok(body) => {
            let mut resp = (StatusCode::OK, body).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(metrics::CONTENT_TYPE),
            );
            resp
        }
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed to encode metrics",
        ),
    }
}

async fn checkpoint(
    State(server): State<Server>,
    Extension(user): Extension<UserInfo>,
    req: Request,
) -> Response {
    let parts = match server.admit(user.clone(), req, "checkpoint").await {
        Ok(parts) => parts,
        Err(answer) => return answer,
    };
    if parts.method != Method::POST {
        return method_not_allowed("POST");
    }
    let CheckpointRequest { container, timeout } =
        match parse_checkpoint_request(parts.uri.path(), parts.uri.query()) {
            Ok(r) => r,
            Err(reject) => return reject.into_response(),
        };
    let started = Instant::now();
    match server
        .inner
        .host
        .checkpoint_container(&container, timeout)
        .await
    {
        Ok(archive) => {
            tracing::info!(
                user = %user.name,
                target = %container,
                path = %archive.path.display(),
                took = ?started.elapsed(),
                "checkpoint created"
            );
            if let Some(audit) = parts.extensions.get::<AuditContext>() {
                audit.update(|e| e.archive = archive.path.display().to_string());
            }
            json_response(
                StatusCode::OK,
                &CheckpointResponse::single(archive.path.to_string_lossy()),
            )
        }
        Err(e) => {
            let code = e.http_code();
            tracing::warn!(user = %user.name, target = %container, code = code.as_u16(), error = %e, "checkpoint refused or failed");
            text(code, e.to_string())
        }
    }
}

/// `GET /podcheckpoints/{ns}/{name}/archive`: for whoever may `get
/// nodes/checkpoint` on this node (the extension's identity).
async fn archive(
    State(server): State<Server>,
    Extension(user): Extension<UserInfo>,
    req: Request,
) -> Response {
    let Some(archives) = server.inner.archives.clone() else {
        return not_found();
    };
    let parts = match server.admit(user.clone(), req, "checkpoint").await {
        Ok(parts) => parts,
        Err(answer) => return answer,
    };
    if parts.method != Method::GET {
        return method_not_allowed("GET");
    }
    let request = match parse_archive_request(parts.uri.path(), parts.uri.query()) {
        Ok(r) => r,
        Err(reject) => return reject.into_response(),
    };
    let resp = archives.respond(&request).await;
    tracing::info!(
        user = %user.name,
        podcheckpoint = %format!("{}/{}", request.namespace, request.name),
        container = %request.query.container,
        offset = request.query.offset,
        length = ?request.query.length,
        code = resp.status().as_u16(),
        "archive read"
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_follow_the_kubelet() {
        let a = node_attributes(UserInfo::default(), &Method::POST, "n1", "checkpoint");
        assert_eq!(
            (a.verb.as_str(), a.resource.as_str(), a.subresource.as_str()),
            ("create", "nodes", "checkpoint")
        );
        assert_eq!(a.name, "n1");
        assert_eq!(a.group, "");
        let a = node_attributes(UserInfo::default(), &Method::GET, "n1", "metrics");
        assert_eq!(a.verb, "get");
        let a = node_attributes(
            UserInfo::default(),
            &Method::from_bytes(b"BREW").unwrap(),
            "n1",
            "checkpoint",
        );
        assert_eq!(a.verb, "");
    }
}
