//! The request pipeline, in kube-apiserver's filter order
//! (`k8s.io/apiserver/pkg/server/config.go` `DefaultBuildHandlerChain`):
//! request info → request deadline (`?timeout=`, `--request-timeout`; 400 for
//! a malformed timeout) → authentication (401) → authorization (403) → the
//! aggregator proxy for APIService groups, else discovery, the review APIs
//! and object storage.

use std::sync::Arc;
use std::time::Duration;

use apiserver_lib::authn::Authenticator;
use apiserver_lib::serve::RemoteAddr;
use apiserver_lib::status::json_response;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::aggregator::{self, Aggregator};
use super::openapi;
use super::protobuf;
use super::rbac::{self, Rbac};
use super::request_info::{self, RequestInfo};
use super::resources::{self, ResourceType};
use super::reviews::{self, Review};
use super::selector::{FieldSelector, LabelSelector};
use super::status;
use super::store::Store;

/// kube-apiserver's limit on request bodies (3 MiB).
pub const MAX_REQUEST_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Paths answered without authentication (what a 1.32+ structured
/// authentication config allows anonymous users on, with anonymous auth otherwise off).
const HEALTH_PATHS: [&str; 3] = ["/healthz", "/livez", "/readyz"];

/// Everything a request needs.
#[derive(Debug)]
pub struct AppState {
    pub store: Store,
    pub authn: Authenticator,
    pub aggregator: Aggregator,
    pub request_timeout: Duration,
    /// `host:port` advertised in `/api`.
    pub server_address: String,
    /// `gitVersion` of `/version`, e.g. `v1.33.0`.
    pub version: String,
}

/// The stand-in's router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new().fallback(handle).with_state(state)
}

async fn handle(State(s): State<Arc<AppState>>, req: Request) -> Response {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let info = request_info::parse(&method, &path, query.as_deref());
    let deadline = if info.is_long_running() {
        None
    } else {
        let timeout = match request_info::parse_timeout(query.as_deref()) {
            Err(message) => return status::bad_request(message).into_response(),
            Ok(Some(d)) if !d.is_zero() && d < s.request_timeout => d,
            Ok(_) => s.request_timeout,
        };
        Some(tokio::time::Instant::now() + timeout)
    };
    let fut = serve(&s, info, req, deadline);
    let response = match deadline {
        Some(at) => match tokio::time::timeout_at(at, fut).await {
            Ok(r) => r,
            Err(_) => status::timeout().into_response(),
        },
        None => fut.await,
    };
    tracing::info!(
        %method,
        path,
        query = query.as_deref().unwrap_or(""),
        content_type,
        code = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    response
}

fn forbidden(attrs: &rbac::Attributes) -> Response {
    if attrs.resource_request {
        let combined = if attrs.subresource.is_empty() {
            attrs.resource.clone()
        } else {
            format!("{}/{}", attrs.resource, attrs.subresource)
        };
        apiserver_lib::StatusError(api_types::status::forbidden(
            &attrs.user.name,
            &attrs.verb,
            &attrs.group,
            &combined,
            &attrs.namespace,
            &attrs.name,
            "",
        ))
        .into_response()
    } else {
        status::forbidden_path(&attrs.user.name, &attrs.verb, &attrs.path).into_response()
    }
}

/// `(group, version)` of a path under `/apis/G/V`.
fn apis_group_version(path: &str) -> Option<(&str, &str)> {
    let mut segs = path.trim_start_matches('/').split('/');
    if segs.next() != Some("apis") {
        return None;
    }
    match (segs.next(), segs.next()) {
        (Some(g), Some(v)) if !g.is_empty() && !v.is_empty() => Some((g, v)),
        _ => None,
    }
}

async fn serve(
    s: &AppState,
    info: RequestInfo,
    req: Request,
    deadline: Option<tokio::time::Instant>,
) -> Response {
    if HEALTH_PATHS.contains(&info.path.as_str())
        && matches!(*req.method(), Method::GET | Method::HEAD)
    {
        return (StatusCode::OK, "ok").into_response();
    }
    let (parts, body) = req.into_parts();
    let user = match s.authn.authenticate(&parts).await {
        Ok((user, _)) => user,
        Err(e) => {
            tracing::debug!(error = %e, path = info.path, "unauthenticated");
            return status::unauthorized().into_response();
        }
    };
    let attrs = rbac::Attributes {
        user,
        verb: info.verb.clone(),
        resource_request: info.is_resource_request,
        group: info.api_group.clone(),
        resource: info.resource.clone(),
        subresource: info.subresource.clone(),
        namespace: info.namespace.clone(),
        name: info.name.clone(),
        path: info.path.clone(),
    };
    let decision = Rbac::authorize(&s.store, &attrs);
    if !decision.allowed {
        tracing::info!(
            user = attrs.user.name,
            verb = attrs.verb,
            resource = attrs.resource,
            subresource = attrs.subresource,
            path = attrs.path,
            "forbidden"
        );
        return forbidden(&attrs);
    }

    if let Some((g, v)) = apis_group_version(&info.path)
        && let Some(api) = aggregator::find(&s.store, g, v)
    {
        let target = match s.aggregator.resolve(&s.store, &api) {
            Ok(t) => t,
            Err(e) => return e.into_response(),
        };
        let client_ip = parts.extensions.get::<RemoteAddr>().map(|r| r.0.ip());
        let req = http::Request::from_parts(parts, body);
        return match s
            .aggregator
            .proxy(&target, req, &attrs.user, client_ip, deadline)
            .await
        {
            Ok(r) => r,
            Err(e) => e.into_response(),
        };
    }

    if !info.is_resource_request {
        return discovery(s, &info, &parts.method);
    }
    let Some(rt) = resources::lookup(&info.api_group, &info.api_version, &info.resource) else {
        return status::path_not_found().into_response();
    };
    if !rt.namespaced && !info.namespace.is_empty() && rt.resource != "namespaces" {
        return status::path_not_found().into_response();
    }
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match resource(s, rt, &info, &attrs.user, &parts.uri, content_type, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn version_json(version: &str) -> Value {
    let trimmed = version.trim_start_matches('v');
    let mut it = trimmed.split('.');
    let major = it.next().unwrap_or("1");
    let minor = it.next().unwrap_or("0");
    json!({
        "major": major,
        "minor": minor,
        "gitVersion": version,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn discovery(s: &AppState, info: &RequestInfo, method: &Method) -> Response {
    if *method != Method::GET && *method != Method::HEAD {
        return status::path_not_found().into_response();
    }
    let ok = |v: Value| json_response(StatusCode::OK, &v);
    let segs: Vec<&str> = info
        .path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let to_value = |v: Result<Value, serde_json::Error>| match v {
        Ok(v) => ok(v),
        Err(e) => status::internal(e.to_string()).into_response(),
    };
    let typed = |kind: &str, api_version: &str, mut v: Value| {
        v["kind"] = json!(kind);
        v["apiVersion"] = json!(api_version);
        v
    };
    match segs.as_slice() {
        ["version"] => ok(version_json(&s.version)),
        ["api"] => to_value(
            serde_json::to_value(resources::api_versions(&s.server_address))
                .map(|v| typed("APIVersions", "v1", v)),
        ),
        ["api", "v1"] => match resources::resource_list("", "v1") {
            Some(l) => to_value(serde_json::to_value(l).map(|v| typed("APIResourceList", "v1", v))),
            None => status::path_not_found().into_response(),
        },
        ["apis"] => {
            let list = resources::api_group_list(&aggregator::groups(&s.store));
            to_value(serde_json::to_value(list).map(|v| typed("APIGroupList", "v1", v)))
        }
        ["apis", group] => {
            let mut versions: Vec<String> = resources::BUILTIN
                .iter()
                .filter(|r| r.group == *group)
                .map(|r| r.version.to_owned())
                .collect();
            versions.dedup();
            if let Some((_, vs)) = aggregator::groups(&s.store)
                .into_iter()
                .find(|(g, _)| g == group)
            {
                for v in vs {
                    if !versions.contains(&v) {
                        versions.push(v);
                    }
                }
            }
            if versions.is_empty() {
                return status::path_not_found().into_response();
            }
            to_value(
                serde_json::to_value(resources::api_group(group, &versions))
                    .map(|v| typed("APIGroup", "v1", v)),
            )
        }
        ["apis", group, version] => match resources::resource_list(group, version) {
            Some(l) => to_value(serde_json::to_value(l).map(|v| typed("APIResourceList", "v1", v))),
            None => status::path_not_found().into_response(),
        },
        ["openapi", "v3"] => ok(openapi::root(&s.version)),
        ["openapi", "v3", "api", version] => {
            match openapi::group_version("", version, &s.version) {
                Some(doc) => ok(doc),
                None => status::path_not_found().into_response(),
            }
        }
        ["openapi", "v3", "apis", group, version] => {
            match openapi::group_version(group, version, &s.version) {
                Some(doc) => ok(doc),
                None => status::path_not_found().into_response(),
            }
        }
        _ => status::path_not_found().into_response(),
    }
}

/// Read a JSON body. Protobuf is read for the review kinds and Namespaces
/// only (what kubectl's typed clients send for `auth can-i`, `auth whoami`,
/// `create namespace`); anything else that is not JSON gets 415.
async fn read_body(
    body: Body,
    content_type: &str,
    decodable: bool,
) -> Result<Value, apiserver_lib::StatusError> {
    let bytes = axum::body::to_bytes(body, MAX_REQUEST_BODY_BYTES)
        .await
        .map_err(|_| {
            status::with_reason(
                413,
                "RequestEntityTooLarge",
                format!("Request entity too large: limit is {MAX_REQUEST_BODY_BYTES}"),
                None,
            )
        })?;
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    match media_type {
        "" | "application/json" => serde_json::from_slice(&bytes)
            .map_err(|e| status::bad_request(format!("json parse error: {e}"))),
        protobuf::MEDIA_TYPE if decodable => protobuf::decode(&bytes)
            .map_err(|e| status::bad_request(format!("protobuf parse error: {e}"))),
        other => Err(status::with_reason(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json (the stand-in does not read {other})"
            ),
            None,
        )),
    }
}

async fn resource(
    s: &AppState,
    rt: &'static ResourceType,
    info: &RequestInfo,
    user: &apiserver_lib::UserInfo,
    uri: &http::Uri,
    content_type: &str,
    body: Body,
) -> Result<Response, apiserver_lib::StatusError> {
    let ok = |code: StatusCode, v: &Value| json_response(code, v);
    if let Some(review) = Review::of(rt) {
        if info.verb != "create" || !info.subresource.is_empty() {
            return Err(status::method_not_supported(rt, &info.verb));
        }
        let body = read_body(body, content_type, true).await?;
        let answered =
            reviews::answer(review, rt, &s.store, &s.authn, user, &info.namespace, body).await?;
        return Ok(ok(StatusCode::CREATED, &answered));
    }
    let query = uri.query();
    match (info.verb.as_str(), info.subresource.as_str()) {
        ("get", "" | "status") => Ok(ok(
            StatusCode::OK,
            &s.store.get(rt, &info.namespace, &info.name)?,
        )),
        ("list", "") => {
            let labels = LabelSelector::parse(
                &request_info::query_param(query, "labelSelector").unwrap_or_default(),
            )
            .map_err(|e| status::bad_request(e.to_string()))?;
            let fields = FieldSelector::parse(
                &request_info::query_param(query, "fieldSelector").unwrap_or_default(),
            )
            .map_err(|e| status::bad_request(e.to_string()))?;
            let ns =
                (!info.namespace.is_empty() && rt.namespaced).then_some(info.namespace.as_str());
            Ok(ok(StatusCode::OK, &s.store.list(rt, ns, &labels, &fields)))
        }
        ("create", "") => {
            let body = read_body(body, content_type, rt.kind == "Namespace").await?;
            if rt.group == "apiregistration.k8s.io" {
                aggregator::validate(&body).map_err(|cause| {
                    let name = body
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    status::invalid(rt, name, &cause)
                })?;
            }
            let created = s.store.create(rt, &info.namespace, body)?;
            Ok(ok(StatusCode::CREATED, &created))
        }
        ("update", "" | "status") => {
            let body = read_body(body, content_type, false).await?;
            if rt.group == "apiregistration.k8s.io" {
                aggregator::validate(&body)
                    .map_err(|cause| status::invalid(rt, &info.name, &cause))?;
            }
            Ok(ok(
                StatusCode::OK,
                &s.store.update(rt, &info.namespace, &info.name, body)?,
            ))
        }
        ("delete", "") => Ok(ok(
            StatusCode::OK,
            &s.store.delete(rt, &info.namespace, &info.name)?,
        )),
        (verb @ ("watch" | "patch" | "deletecollection"), _) => {
            Err(status::method_not_supported(rt, verb))
        }
        _ => Err(status::path_not_found()),
    }
}
