//! The HTTP API, answered the way the kubelet's server answers
//! (`pkg/kubelet/server/server.go`: `checkpoint`, the auth filter of
//! `InstallAuthFilter`):
//!
//! | request | answer |
//! |---|---|
//! | `POST /checkpoint/{ns}/{pod}/{container}?timeout=S` | 200 `{"items":["<archive>"]}` (application/json) |
//! | gate `ContainerCheckpoint` off | 404 `404 page not found` (the route does not exist) |
//! | no or unknown credentials | 401 `Unauthorized` |
//! | denied | 403 `Forbidden (user=U, verb=create, resource=nodes, subresource=checkpoint)` |
//! | another method | 405 `405: Method Not Allowed` |
//! | bad name or timeout | 400 (the validation message) |
//! | unknown pod / container | 404 `pod does not exist` / `container C does not exist` |
//! | container not running, checkpoint in progress | 409 |
//! | too many checkpoints in flight | 429 |
//! | runtime or CRIU failure | 500 `checkpointing of ns/pod/c failed (rpc error: ...)` |
//! | the runtime did not answer in time | 504 `checkpointing of ns/pod/c failed (timed out ...)` |
//!
//! Error bodies are plain text, as the kubelet's are. The request body is
//! never read; the path and query are bounded; nothing in a request can
//! make the server panic.

use std::sync::Arc;
use std::time::Instant;

use api_types::CheckpointResponse;
use api_types::features::{CONTAINER_CHECKPOINT, FeatureGates};
use api_types::validation::{Target, parse_timeout_seconds, validate_target};
use apiserver_lib::UserInfo;
use apiserver_lib::authn::Authenticator;
use apiserver_lib::authz::{Authorizer, Decision};
use apiserver_lib::health::HealthChecks;
use apiserver_lib::status::json_response;
use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::{HeaderValue, Method, StatusCode, header};

use crate::auth::node_attributes;
use crate::checkpoint::Checkpointer;
use crate::metrics::{self, Metrics};

/// Longest request path accepted (valid targets need well under 400 bytes).
pub const MAX_PATH_BYTES: usize = 1024;
/// Longest query string accepted.
pub const MAX_QUERY_BYTES: usize = 1024;
/// Path prefix of the checkpoint endpoint.
pub const CHECKPOINT_PREFIX: &str = "/checkpoint/";

/// A plain-text answer, as the kubelet writes its errors.
pub fn text(code: StatusCode, message: impl Into<String>) -> Response {
    let mut resp = (code, message.into()).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "404 page not found\n")
}

/// A refusal: a code and a plain-text message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub code: StatusCode,
    pub message: String,
}

impl Reject {
    fn new(code: StatusCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "404 page not found\n")
    }
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        text(self.code, self.message)
    }
}

/// Everything the handlers need; cheap to clone.
#[derive(Debug, Clone)]
pub struct App {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    checkpointer: Checkpointer,
    authenticator: Authenticator,
    authorizer: Arc<dyn Authorizer>,
    gates: FeatureGates,
    node_name: String,
    metrics: Metrics,
}

impl App {
    pub fn new(
        checkpointer: Checkpointer,
        authenticator: Authenticator,
        authorizer: Arc<dyn Authorizer>,
        gates: FeatureGates,
        node_name: String,
        metrics: Metrics,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                checkpointer,
                authenticator,
                authorizer,
                gates,
                node_name,
                metrics,
            }),
        }
    }

    pub fn checkpointer(&self) -> &Checkpointer {
        &self.inner.checkpointer
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The health checks: `ping` for liveness; `ping` and the runtime's
    /// `Version` for readiness and `/healthz`.
    pub fn health_checks(&self) -> HealthChecks {
        let runtime = self.inner.checkpointer.runtime().clone();
        let bound = self.inner.checkpointer.settings().runtime_request_timeout;
        HealthChecks {
            livez: vec![apiserver_lib::health::Check::ping()],
            readyz: vec![
                apiserver_lib::health::Check::ping(),
                apiserver_lib::health::Check::new("runtime", move || {
                    let runtime = runtime.clone();
                    async move {
                        match tokio::time::timeout(bound, runtime.version()).await {
                            Ok(Ok(_)) => Ok(()),
                            Ok(Err(e)) => Err(format!("CRI Version failed: {e}")),
                            Err(_) => Err(format!("CRI Version did not answer within {bound:?}")),
                        }
                    }
                }),
            ],
        }
    }

    /// The whole HTTP API. Health endpoints need no credentials (as the
    /// kubelet's `/healthz`); `/checkpoint/...` and `/metrics` do.
    pub fn router(&self) -> Router {
        self.router_with(true)
    }

    /// [`App::router`], with or without the `/checkpoint/...` endpoint
    /// (`--checkpoint-endpoint`; without it the path is a 404, as on a
    /// kubelet whose gate is off).
    pub fn router_with(&self, checkpoint_endpoint: bool) -> Router {
        let router = if checkpoint_endpoint {
            Router::new().route("/checkpoint/{*rest}", any(checkpoint))
        } else {
            Router::new()
        };
        router
            .route("/metrics", any(metrics_handler))
            .with_state(self.clone())
            .merge(self.health_checks().router())
            .fallback(|| async { not_found() })
            .layer(axum::middleware::from_fn_with_state(self.clone(), count))
    }

    /// Authenticates and authorizes `nodes/<subresource>`; the error is the
    /// kubelet's answer.
    async fn admit(
        &self,
        parts: &http::request::Parts,
        subresource: &str,
    ) -> Result<UserInfo, Reject> {
        let user = match self.inner.authenticator.authenticate(parts).await {
            Ok((user, _)) => user,
            Err(e) => {
                tracing::debug!(error = %e, "unauthenticated request");
                return Err(Reject::new(StatusCode::UNAUTHORIZED, "Unauthorized"));
            }
        };
        let attrs = node_attributes(
            user.clone(),
            &parts.method,
            &self.inner.node_name,
            subresource,
        );
        let described = format!(
            "(user={}, verb={}, resource={}, subresource={})",
            attrs.user.name, attrs.verb, attrs.resource, attrs.subresource
        );
        match self.inner.authorizer.authorize(&attrs).await {
            Ok(Decision::Allow) => Ok(user),
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
}

/// Route name for metrics labels: never the raw path.
fn route_of(path: &str) -> &'static str {
    if path.starts_with(CHECKPOINT_PREFIX) {
        "checkpoint"
    } else if path == "/metrics" {
        "metrics"
    } else if path == "/healthz" || path.starts_with("/healthz/") {
        "healthz"
    } else if path == "/livez" || path.starts_with("/livez/") {
        "livez"
    } else if path == "/readyz" || path.starts_with("/readyz/") {
        "readyz"
    } else {
        "other"
    }
}

async fn count(State(app): State<App>, req: Request, next: Next) -> Response {
    let route = route_of(req.uri().path());
    let method = req.method().clone();
    let resp = next.run(req).await;
    app.inner
        .metrics
        .request(route, &method, resp.status().as_u16());
    resp
}

async fn metrics_handler(State(app): State<App>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    if let Err(reject) = app.admit(&parts, "metrics").await {
        return reject.into_response();
    }
    if parts.method != Method::GET {
        return method_not_allowed("GET");
    }
    match app.inner.metrics.encode() {
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

fn method_not_allowed(allow: &'static str) -> Response {
    let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "405: Method Not Allowed");
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

/// The three decoded path segments after `/checkpoint/`, or why not.
fn split_target(path: &str) -> Result<[String; 3], Reject> {
    let rest = path
        .strip_prefix(CHECKPOINT_PREFIX)
        .ok_or_else(Reject::not_found)?;
    let segments: Vec<&str> = rest.split('/').collect();
    let [ns, pod, container] = segments.as_slice() else {
        return Err(Reject::not_found());
    };
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| {
                Reject::new(
                    StatusCode::BAD_REQUEST,
                    "invalid request path: not UTF-8 after percent-decoding",
                )
            })
    };
    Ok([decode(ns)?, decode(pod)?, decode(container)?])
}

/// The last `timeout` query value (as the kubelet reads it), validated.
fn timeout_of(query: Option<&str>) -> Result<i64, Reject> {
    let query = query.unwrap_or_default();
    if query.len() > MAX_QUERY_BYTES {
        return Err(Reject::new(
            StatusCode::BAD_REQUEST,
            format!("invalid query: longer than {MAX_QUERY_BYTES} bytes"),
        ));
    }
    let last = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "timeout")
        .map(|(_, v)| v.into_owned())
        .last();
    match last {
        None => Ok(0),
        Some(raw) => parse_timeout_seconds(&raw, api_types::MAX_TIMEOUT_SECONDS)
            .map_err(|e| Reject::new(StatusCode::BAD_REQUEST, e.to_string())),
    }
}

/// What a `POST /checkpoint/{ns}/{pod}/{container}?timeout=S` asks for, once
/// its path and query are decoded and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRequest {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    /// Seconds; 0 = the runtime request timeout.
    pub timeout: i64,
}

/// Parses and validates the path (`/checkpoint/{ns}/{pod}/{container}`,
/// percent-encoded) and the query of a checkpoint request: a pure function of
/// the request line, so it can be fuzzed. Wrong shapes are 404 (not the
/// endpoint), everything else refused is 400; a name that passes is a valid
/// DNS-1123 name and safe in a file name.
pub fn parse_checkpoint_request(
    path: &str,
    query: Option<&str>,
) -> Result<CheckpointRequest, Reject> {
    if path.len() > MAX_PATH_BYTES {
        return Err(Reject::new(
            StatusCode::BAD_REQUEST,
            format!("invalid request path: longer than {MAX_PATH_BYTES} bytes"),
        ));
    }
    let [namespace, pod, container] = split_target(path)?;
    validate_target(&namespace, &pod, &container)
        .map_err(|e| Reject::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let timeout = timeout_of(query)?;
    Ok(CheckpointRequest {
        namespace,
        pod,
        container,
        timeout,
    })
}

async fn checkpoint(State(app): State<App>, req: Request) -> Response {
    // With the gate off the route does not exist, as on a kubelet.
    if !app.inner.gates.enabled(CONTAINER_CHECKPOINT) {
        return not_found();
    }
    // The body is never read.
    let (parts, _) = req.into_parts();
    let user = match app.admit(&parts, "checkpoint").await {
        Ok(u) => u,
        Err(reject) => return reject.into_response(),
    };
    if parts.method != Method::POST {
        return method_not_allowed("POST");
    }
    let CheckpointRequest {
        namespace: ns,
        pod,
        container,
        timeout,
    } = match parse_checkpoint_request(parts.uri.path(), parts.uri.query()) {
        Ok(r) => r,
        Err(reject) => return reject.into_response(),
    };
    let target = Target {
        namespace: &ns,
        pod: &pod,
        container: &container,
    };
    let started = Instant::now();
    match app.inner.checkpointer.checkpoint(target, timeout).await {
        Ok(archive) => {
            tracing::info!(
                user = %user.name,
                %target,
                path = %archive.path.display(),
                took = ?started.elapsed(),
                "checkpoint created"
            );
            json_response(
                StatusCode::OK,
                &CheckpointResponse::single(archive.path.to_string_lossy()),
            )
        }
        Err(e) => {
            let code = e.http_code();
            tracing::warn!(user = %user.name, %target, code = code.as_u16(), error = %e, "checkpoint refused or failed");
            text(code, e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_named_not_echoed() {
        assert_eq!(route_of("/checkpoint/a/b/c"), "checkpoint");
        assert_eq!(route_of("/healthz/runtime"), "healthz");
        assert_eq!(route_of("/metrics"), "metrics");
        assert_eq!(route_of("/../../etc/passwd"), "other");
    }

    #[test]
    fn path_segments() {
        assert!(split_target("/checkpoint/a/b").is_err());
        assert!(split_target("/checkpoint/a/b/c/d").is_err());
        assert!(split_target("/checkpoint/a/b/c/").is_err());
        let [a, b, c] = split_target("/checkpoint/ns/p%2Fx/c").unwrap();
        assert_eq!((a.as_str(), b.as_str(), c.as_str()), ("ns", "p/x", "c"));
        let bad = split_target("/checkpoint/ns/%ff/c").unwrap_err();
        assert_eq!(bad.code, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn request_line_parsing() {
        let r = parse_checkpoint_request("/checkpoint/default/web/app", Some("timeout=9")).unwrap();
        assert_eq!(
            r,
            CheckpointRequest {
                namespace: "default".into(),
                pod: "web".into(),
                container: "app".into(),
                timeout: 9,
            }
        );
        let too_long = format!("/checkpoint/default/web/{}", "a".repeat(MAX_PATH_BYTES));
        for (path, query, code) in [
            ("/checkpoint/a/b", None, StatusCode::NOT_FOUND),
            ("/checkpoint/../b/c", None, StatusCode::BAD_REQUEST),
            (
                "/checkpoint/a/b/c",
                Some("timeout=-1"),
                StatusCode::BAD_REQUEST,
            ),
            (too_long.as_str(), None, StatusCode::BAD_REQUEST),
        ] {
            assert_eq!(
                parse_checkpoint_request(path, query).unwrap_err().code,
                code,
                "{path:.40} {query:?}"
            );
        }
    }

    #[test]
    fn timeouts_take_the_last_value() {
        assert_eq!(timeout_of(None).unwrap(), 0);
        assert_eq!(timeout_of(Some("timeout=5&timeout=7")).unwrap(), 7);
        assert_eq!(timeout_of(Some("other=x")).unwrap(), 0);
        for bad in ["timeout=-1", "timeout=1.5", "timeout=abc", "timeout=3601"] {
            assert_eq!(
                timeout_of(Some(bad)).unwrap_err().code,
                StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }
    }
}
