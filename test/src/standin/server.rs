//! The request pipeline, in kube-apiserver's filter order
//! (`k8s.io/apiserver/pkg/server/config.go` `DefaultBuildHandlerChain`):
//! request info → request deadline (`?timeout=`, `--request-timeout`; 400 for
//! a malformed timeout; watches are long-running and not cut) →
//! authentication (401) → authorization (403) → the aggregator proxy for
//! APIService groups, else discovery, the review APIs and the REST verbs on
//! built-in and custom resources (`endpoints/handlers`).

use std::sync::Arc;
use std::time::Duration;

use apiserver_lib::StatusError;
use apiserver_lib::authentication::Authenticator;
use apiserver_lib::serve::RemoteAddr;
use apiserver_lib::status::json_response;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::{Value, json};

use super::aggregator::{self, Aggregator};
use super::audit::{AuditEvent, AuditLog, AuthenticatedUser};
use super::crd;
use super::events;
use super::openapi;
use super::patch;
use super::protobuf;
use super::rbac::{self, Rbac};
use super::request_info::{self, RequestInfo, query_param};
use super::resources::{self, ResourceType, Rt};
use super::reviews::{self, Review};
use super::schema;
use super::selector::{FieldSelector, LabelSelector};
use super::status::{self, FieldError};
use super::store::{self, DeleteOptions, Deleted, ListOptions, Store, Subresource, WriteOptions};
use super::table::{self, IncludeObject};
use super::watch;

/// kube-apiserver's limit on request bodies (3 MiB).
pub const MAX_REQUEST_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Default bookmark cadence (kube-apiserver sends one about once a minute).
pub const DEFAULT_BOOKMARK_INTERVAL: Duration = Duration::from_secs(60);

/// `--min-request-timeout`: a watch without `timeoutSeconds` lasts this
/// times a random factor in [1, 2), as kube-apiserver's.
pub const MIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(1800);

/// How long a list or get waits for a resourceVersion not reached yet
/// before 504 (the watch cache's `blockTimeout`).
const FRESHNESS_WAIT: Duration = Duration::from_secs(3);

/// Paths answered without authentication (what a 1.32+ structured
/// authentication config allows anonymous users on, with anonymous auth otherwise off).
const HEALTH_PATHS: [&str; 3] = ["/healthz", "/livez", "/readyz"];

/// Everything a request needs.
#[derive(Debug)]
pub struct AppState {
    pub store: Arc<Store>,
    /// Bound service-account tokens ([`super::certificates::BoundTokens`]).
    pub bound_tokens: Arc<super::certificates::BoundTokens>,
    pub authn: Authenticator,
    pub aggregator: Aggregator,
    pub request_timeout: Duration,
    /// `host:port` advertised in `/api`.
    pub server_address: String,
    /// `gitVersion` of `/version`, e.g. `v1.33.0`.
    pub version: String,
    /// How often a watch with `allowWatchBookmarks=true` gets a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Every request answered.
    pub audit: AuditLog,
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
    let audit = AuditEvent {
        user: String::new(),
        verb: if info.is_resource_request {
            info.verb.clone()
        } else {
            String::new()
        },
        method: method.to_string(),
        path: path.clone(),
        query: query.clone().unwrap_or_default(),
        resource: match (info.resource.as_str(), info.subresource.as_str()) {
            (r, "") => r.to_owned(),
            (r, sub) => format!("{r}/{sub}"),
        },
        namespace: info.namespace.clone(),
        name: info.name.clone(),
        code: 0,
    };
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
    let mut response = match deadline {
        Some(at) => match tokio::time::timeout_at(at, fut).await {
            Ok(r) => r,
            Err(_) => status::timeout().into_response(),
        },
        None => fut.await,
    };
    let user = response
        .extensions_mut()
        .remove::<AuthenticatedUser>()
        .map(|u| u.0)
        .unwrap_or_default();
    tracing::info!(
        user = user.as_str(),
        %method,
        path,
        query = query.as_deref().unwrap_or(""),
        content_type,
        code = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    s.audit.record(AuditEvent {
        user,
        code: response.status().as_u16(),
        ..audit
    });
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

/// kube-apiserver's answer for a path nothing serves: plain text.
fn page_not_found() -> Response {
    let mut r = (StatusCode::NOT_FOUND, "404 page not found\n").into_response();
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

async fn serve(
    s: &Arc<AppState>,
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
    let name = user.name.clone();
    let mut response = serve_as(s, info, parts, body, user, deadline).await;
    response.extensions_mut().insert(AuthenticatedUser(name));
    response
}

async fn serve_as(
    s: &Arc<AppState>,
    info: RequestInfo,
    parts: http::request::Parts,
    body: Body,
    user: apiserver_lib::UserInfo,
    deadline: Option<tokio::time::Instant>,
) -> Response {
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
        return discovery(s, &info, &parts.method, &parts.headers);
    }
    let Some(rt) = s
        .store
        .resolve(&info.api_group, &info.api_version, &info.resource)
    else {
        // A built-in group version answers a JSON Status; anything else
        // (unknown groups, CRDs not established) the plain-text 404.
        if resources::has_group_version(&info.api_group, &info.api_version) {
            return status::path_not_found().into_response();
        }
        return page_not_found();
    };
    if !rt.namespaced && !info.namespace.is_empty() && rt.resource != "namespaces" {
        return status::path_not_found().into_response();
    }
    let req = Req {
        info: &info,
        user: &attrs.user,
        query: parts.uri.query().map(str::to_owned),
        headers: &parts.headers,
    };
    match resource(s, rt, &req, body).await {
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

/// The groups after the built-in ones in `/apis`: APIService groups (by
/// their groupPriorityMinimum) and CRD groups (the priority 1000 kube's
/// crdregistration controller gives them), highest first.
fn extra_groups(s: &AppState) -> Vec<(String, Vec<String>)> {
    let mut all: Vec<(i32, String, Vec<String>)> = aggregator::groups_with_priority(&s.store);
    for rt in s.store.custom_types() {
        if let Some(e) = all.iter_mut().find(|(_, g, _)| *g == rt.group) {
            if !e.2.contains(&rt.version) {
                e.2.push(rt.version.clone());
                e.2.sort_by(|a, b| crd::version_order(a, b));
            }
        } else {
            all.push((1000, rt.group.clone(), vec![rt.version.clone()]));
        }
    }
    all.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    all.into_iter().map(|(_, g, vs)| (g, vs)).collect()
}

/// Whether the Accept header asks for aggregated discovery only in a
/// version the stand-in does not serve (it serves the legacy documents).
fn aggregated_only(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    !accept.is_empty()
        && accept.split(',').all(|m| {
            let m = m.trim();
            m.contains("as=APIGroupDiscoveryList")
        })
}

fn discovery(s: &AppState, info: &RequestInfo, method: &Method, headers: &HeaderMap) -> Response {
    if *method != Method::GET && *method != Method::HEAD {
        return page_not_found();
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
    if matches!(segs.as_slice(), ["api"] | ["apis"]) && aggregated_only(headers) {
        return status::with_reason(
            406,
            "NotAcceptable",
            "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf".into(),
            None,
        )
        .into_response();
    }
    let custom = s.store.custom_types();
    match segs.as_slice() {
        ["version"] => ok(version_json(&s.version)),
        ["api"] => to_value(
            serde_json::to_value(resources::api_versions(&s.server_address))
                .map(|v| typed("APIVersions", "v1", v)),
        ),
        ["api", "v1"] => match resources::resource_list("", "v1") {
            Some(l) => to_value(serde_json::to_value(l).map(|v| typed("APIResourceList", "v1", v))),
            None => page_not_found(),
        },
        ["apis"] => {
            let list = resources::api_group_list(&extra_groups(s));
            to_value(serde_json::to_value(list).map(|v| typed("APIGroupList", "v1", v)))
        }
        ["apis", group] => {
            let mut versions: Vec<String> = Vec::new();
            for r in resources::BUILTIN.iter().filter(|r| r.group == *group) {
                if !versions.contains(&r.version) {
                    versions.push(r.version.clone());
                }
            }
            if let Some((_, vs)) = extra_groups(s).into_iter().find(|(g, _)| g == group) {
                for v in vs {
                    if !versions.contains(&v) {
                        versions.push(v);
                    }
                }
            }
            if versions.is_empty() {
                return page_not_found();
            }
            to_value(
                serde_json::to_value(resources::api_group(group, &versions))
                    .map(|v| typed("APIGroup", "v1", v)),
            )
        }
        ["apis", group, version] => {
            let list = resources::resource_list(group, version).or_else(|| {
                resources::resource_list_of(group, version, custom.iter().map(|r| &**r))
            });
            match list {
                Some(l) => {
                    to_value(serde_json::to_value(l).map(|v| typed("APIResourceList", "v1", v)))
                }
                None => page_not_found(),
            }
        }
        ["openapi", "v2"] => {
            let accept = headers
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if accept.contains(openapi::V2_PROTOBUF) {
                let mut r = (StatusCode::OK, openapi::v2_protobuf(&s.version)).into_response();
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static(openapi::V2_PROTOBUF_RETURNED),
                );
                r
            } else {
                ok(openapi::v2_json(&s.version))
            }
        }
        ["openapi", "v3"] => ok(openapi::root(&s.version, &custom)),
        ["openapi", "v3", "api", version] => {
            match openapi::group_version("", version, &s.version, &custom) {
                Some(doc) => ok(doc),
                None => page_not_found(),
            }
        }
        ["openapi", "v3", "apis", group, version] => {
            match openapi::group_version(group, version, &s.version, &custom) {
                Some(doc) => ok(doc),
                None => page_not_found(),
            }
        }
        _ => page_not_found(),
    }
}

/// What one resource request carries.
struct Req<'a> {
    info: &'a RequestInfo,
    user: &'a apiserver_lib::UserInfo,
    query: Option<String>,
    headers: &'a HeaderMap,
}

impl Req<'_> {
    fn param(&self, key: &str) -> Option<String> {
        query_param(self.query.as_deref(), key)
    }

    fn header(&self, name: http::header::HeaderName) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn content_type(&self) -> &str {
        self.header(http::header::CONTENT_TYPE)
    }
}

/// How the answer is encoded (`Accept`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    Json,
    Yaml,
    /// `as=Table` with this `meta.k8s.io` version.
    Table(&'static str),
    /// `as=PartialObjectMetadata` / `...List`.
    Metadata,
}

/// Content negotiation (`negotiation.NegotiateOutputMediaType`), for the media
/// types the stand-in writes: JSON, YAML, Table and PartialObjectMetadata
/// as JSON; protobuf alone is 406.
fn negotiate(accept: &str) -> Result<Output, StatusError> {
    if accept.trim().is_empty() {
        return Ok(Output::Json);
    }
    for m in accept.split(',') {
        let mut params = m.split(';').map(str::trim);
        let media = params.next().unwrap_or("");
        let mut as_ = "";
        let mut v = "";
        let mut g = "";
        for p in params {
            match p.split_once('=') {
                Some(("as", x)) => as_ = x,
                Some(("v", x)) => v = x,
                Some(("g", x)) => g = x,
                _ => {}
            }
        }
        let json_like = media == "application/json" || media == "*/*" || media == "application/*";
        match (as_, g, v) {
            ("Table", "meta.k8s.io", "v1") if json_like => {
                return Ok(Output::Table("meta.k8s.io/v1"));
            }
            ("Table", "meta.k8s.io", "v1beta1") if json_like => {
                return Ok(Output::Table("meta.k8s.io/v1beta1"));
            }
            ("PartialObjectMetadata" | "PartialObjectMetadataList", "meta.k8s.io", "v1")
                if json_like =>
            {
                return Ok(Output::Metadata);
            }
            ("", _, _) if json_like => return Ok(Output::Json),
            ("", _, _) if media == "application/yaml" => return Ok(Output::Yaml),
            _ => {}
        }
    }
    Err(status::with_reason(
        406,
        "NotAcceptable",
        "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf".into(),
        None,
    ))
}

/// An object as the type's API version shows it (served version, Event view).
fn view(rt: &ResourceType, stored: &Value) -> Value {
    if rt.group == "events.k8s.io" {
        return events::to_v1(stored);
    }
    let mut v = stored.clone();
    if rt.storage == "/events" {
        events::complete_core(&mut v);
    }
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), json!(rt.api_version()));
        m.insert("kind".into(), json!(rt.kind));
    }
    v
}

/// A request body in the stored form (the core form of an Event).
fn unview(rt: &ResourceType, body: Value) -> Value {
    if rt.group == "events.k8s.io" {
        return events::from_v1(&body);
    }
    body
}

/// The type objects are stored as (core Events for both views).
fn storage_type(rt: &Rt) -> Rt {
    if rt.group == "events.k8s.io"
        && let Some(core) = resources::lookup("", "v1", "events")
    {
        return core.clone();
    }
    rt.clone()
}

fn respond(code: StatusCode, out: Output, v: &Value, warnings: &[String]) -> Response {
    let mut r = match out {
        Output::Yaml => match serde_saphyr::to_string(v) {
            Ok(text) => {
                let mut r = (code, text).into_response();
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/yaml"),
                );
                r
            }
            Err(e) => status::internal(e.to_string()).into_response(),
        },
        _ => json_response(code, v),
    };
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    for w in warnings {
        if let Ok(h) = HeaderValue::from_str(&format!(
            "299 - {}",
            serde_json::to_string(w).unwrap_or_default()
        )) {
            r.headers_mut().append(http::header::WARNING, h);
        }
    }
    r
}

/// Read a body up to the limit.
async fn read_bytes(body: Body) -> Result<bytes::Bytes, StatusError> {
    axum::body::to_bytes(body, MAX_REQUEST_BODY_BYTES)
        .await
        .map_err(|_| {
            status::with_reason(
                413,
                "RequestEntityTooLarge",
                format!("Request entity too large: limit is {MAX_REQUEST_BODY_BYTES}"),
                None,
            )
        })
}

/// Read a JSON body. Protobuf is read for the review kinds and Namespaces
/// only (what kubectl's typed clients send for `auth can-i`, `auth whoami`,
/// `create namespace`); YAML is read too; anything else gets 415.
async fn read_body(body: Body, content_type: &str, decodable: bool) -> Result<Value, StatusError> {
    read_body_checked(body, content_type, decodable)
        .await
        .map(|(v, _)| v)
}

/// [`read_body`], with the paths of duplicated JSON keys.
async fn read_body_checked(
    body: Body,
    content_type: &str,
    decodable: bool,
) -> Result<(Value, Vec<String>), StatusError> {
    let bytes = read_bytes(body).await?;
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    match media_type {
        "" | "application/json" => patch::parse_with_duplicates(&bytes).map_err(|_| {
            status::bad_request(format!(
                "couldn't get version/kind; json parse error: {}",
                patch::go_json_error(&bytes)
            ))
        }),
        "application/yaml" => {
            let text = String::from_utf8_lossy(&bytes);
            match store::parse_yaml_docs(&text) {
                Ok(mut docs) if docs.len() == 1 => Ok((docs.remove(0), Vec::new())),
                Ok(_) => Err(status::bad_request("expected exactly one YAML document")),
                Err(e) => Err(status::bad_request(format!("yaml parse error: {e}"))),
            }
        }
        protobuf::MEDIA_TYPE if decodable => protobuf::decode(&bytes)
            .map(|v| (v, Vec::new()))
            .map_err(|e| status::bad_request(format!("protobuf parse error: {e}"))),
        other => Err(status::with_reason(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (the stand-in does not read {other})"
            ),
            None,
        )),
    }
}

/// `fieldValidation` of Create/Update/PatchOptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

fn field_validation(req: &Req<'_>, options_kind: &str) -> Result<FieldValidation, StatusError> {
    match req.param("fieldValidation").as_deref() {
        None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
        Some("Ignore") => Ok(FieldValidation::Ignore),
        Some("Strict") => Ok(FieldValidation::Strict),
        Some(other) => Err(status::invalid_options(
            options_kind,
            &[FieldError::not_supported(
                "fieldValidation",
                &format!("{other:?}"),
                &["", "Ignore", "Strict", "Warn"],
            )],
        )),
    }
}

fn dry_run(req: &Req<'_>, options_kind: &str) -> Result<bool, StatusError> {
    match req.param("dryRun").as_deref() {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(status::invalid_options(
            options_kind,
            &[FieldError::new(
                "dryRun",
                "FieldValueNotSupported",
                format!("Unsupported value: []string{{{other:?}}}: supported values: \"All\""),
            )],
        )),
    }
}

/// Prune a custom resource body, default it, and apply `fieldValidation`
/// to what was unknown: Warn (warnings), Ignore, Strict (400).
fn decode_custom(
    rt: &ResourceType,
    body: &mut Value,
    mode: FieldValidation,
    warnings: &mut Vec<String>,
    duplicates: &[String],
) -> Result<(), StatusError> {
    let mut problems: Vec<String> = duplicates
        .iter()
        .map(|d| format!("duplicate field \"{d}\""))
        .collect();
    if let Some(custom) = &rt.custom {
        let unknown = schema::prune_object(&custom.schema, body);
        schema::apply_defaults(&custom.schema, body);
        problems.extend(unknown.iter().map(|u| format!("unknown field \"{u}\"")));
    }
    if problems.is_empty() {
        return Ok(());
    }
    match mode {
        FieldValidation::Ignore => Ok(()),
        FieldValidation::Warn => {
            warnings.extend(problems);
            Ok(())
        }
        FieldValidation::Strict => Err(status::bad_request(format!(
            "{kind} in version \"{v}\" cannot be handled as a {kind}: strict decoding error: {}",
            problems.join(", "),
            kind = rt.kind,
            v = rt.version,
        ))),
    }
}

/// Type-specific checks before a write (CRDs, APIServices, Events).
fn admit(
    rt: &Rt,
    body: &Value,
    name: &str,
    creating: bool,
    s: &AppState,
) -> Result<(), StatusError> {
    match (rt.group.as_str(), rt.resource.as_str()) {
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            let errs = crd::validate(body);
            if !errs.is_empty() {
                return Err(status::invalid_object(rt, name, &errs));
            }
        }
        ("apiregistration.k8s.io", "apiservices") => {
            aggregator::validate(body).map_err(|cause| status::invalid(rt, name, &cause))?;
            // The name of an APIService for a CRD's group version is held by the
            // APIService the crdregistration controller made for it.
            let group = body
                .pointer("/spec/group")
                .and_then(Value::as_str)
                .unwrap_or("");
            let version = body
                .pointer("/spec/version")
                .and_then(Value::as_str)
                .unwrap_or("");
            if creating
                && s.store
                    .custom_types()
                    .iter()
                    .any(|r| r.group == group && r.version == version)
            {
                return Err(status::already_exists(rt, name));
            }
        }
        ("events.k8s.io", "events") if creating => {
            let errs = events::validate_v1_create(body);
            if !errs.is_empty() {
                let core = storage_type(rt);
                return Err(status::invalid_object(&core, name, &errs));
            }
        }
        _ => {}
    }
    Ok(())
}

fn object_name(v: &Value) -> String {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

/// The field selector of a list or watch, checked against what the type
/// supports (`field label not supported: X` otherwise).
fn field_selector(rt: &ResourceType, text: &str) -> Result<FieldSelector, StatusError> {
    let parsed = FieldSelector::parse(text).map_err(|e| status::bad_request(e.to_string()))?;
    let supported = |f: &str| -> Option<String> {
        if f == "metadata.name" || f == "metadata.namespace" {
            return Some(f.to_owned());
        }
        match (rt.group.as_str(), rt.resource.as_str()) {
            ("", "pods") => [
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            ]
            .contains(&f)
            .then(|| f.to_owned()),
            ("", "events") => (f.starts_with("involvedObject.")
                || ["reason", "reportingComponent", "source", "type"].contains(&f))
            .then(|| f.to_owned()),
            ("events.k8s.io", "events") => events::v1_field_to_core(f),
            ("", "nodes") => (f == "spec.unschedulable").then(|| f.to_owned()),
            ("", "namespaces") => (f == "status.phase").then(|| f.to_owned()),
            ("", "secrets") => (f == "type").then(|| f.to_owned()),
            ("certificates.k8s.io", "certificatesigningrequests") => {
                (f == "spec.signerName").then(|| f.to_owned())
            }
            _ => None,
        }
    };
    parsed
        .map_fields(|f| supported(f).ok_or_else(|| f.to_owned()))
        .map_err(|f| status::bad_request(format!("field label not supported: {f}")))
}

fn list_options(req: &Req<'_>, rt: &ResourceType, watch: bool) -> Result<ListOptions, StatusError> {
    let labels = LabelSelector::parse(&req.param("labelSelector").unwrap_or_default())
        .map_err(|e| status::bad_request(e.to_string()))?;
    let fields = field_selector(rt, &req.param("fieldSelector").unwrap_or_default())?;
    let rv = req.param("resourceVersion").filter(|s| !s.is_empty());
    let rv_match = req.param("resourceVersionMatch").filter(|s| !s.is_empty());
    let send_initial = req.param("sendInitialEvents").filter(|s| !s.is_empty());
    let continue_token = req.param("continue").filter(|s| !s.is_empty());
    // apimachinery's `ValidateListOptions` / `validateWatchOptions`, in order.
    let mut errs = Vec::new();
    let m = rv_match.as_deref().unwrap_or("");
    if watch {
        if send_initial.is_some() {
            if m != "NotOlderThan" {
                errs.push(FieldError::forbidden(
                    "resourceVersionMatch",
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                ));
            }
            errs.push(FieldError::forbidden(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
            ));
        }
        if !m.is_empty() {
            if send_initial.is_none() {
                errs.push(FieldError::forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                ));
            }
            if m != "NotOlderThan" {
                errs.push(FieldError::not_supported(
                    "resourceVersionMatch",
                    &format!("{m:?}"),
                    &["NotOlderThan"],
                ));
            }
            if continue_token.is_some() {
                errs.push(FieldError::forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
        }
    } else {
        if !m.is_empty() {
            if rv.is_none() {
                errs.push(FieldError::forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            if continue_token.is_some() {
                errs.push(FieldError::forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
            if m != "Exact" && m != "NotOlderThan" {
                errs.push(FieldError::not_supported(
                    "resourceVersionMatch",
                    &format!("{m:?}"),
                    &["Exact", "NotOlderThan", ""],
                ));
            }
            if m == "Exact" && rv.as_deref() == Some("0") {
                errs.push(FieldError::forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                ));
            }
        }
        if send_initial.is_some() {
            errs.push(FieldError::forbidden(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for list",
            ));
        }
    }
    if !errs.is_empty() {
        return Err(status::invalid_options("ListOptions", &errs));
    }
    let limit = match req.param("limit").filter(|s| !s.is_empty()) {
        None => None,
        Some(l) => Some(l.parse::<i64>().map_err(|_| {
            status::bad_request(format!("strconv.ParseInt: parsing {l:?}: invalid syntax"))
        })?)
        .filter(|l| *l > 0)
        .map(|l| l as u64),
    };
    Ok(ListOptions {
        labels,
        fields,
        limit,
        continue_token,
        resource_version: rv,
        resource_version_match: rv_match,
    })
}

/// Wait (up to the watch cache's 3 s) until the store has seen `rv`.
async fn wait_for_rv(store: &Store, rv: Option<&str>) {
    let Some(want) = rv.and_then(|r| r.parse::<u64>().ok()) else {
        return;
    };
    if store.resource_version() >= want {
        return;
    }
    let mut notices = store.subscribe();
    let _ = tokio::time::timeout(FRESHNESS_WAIT, async {
        while store.resource_version() < want {
            if notices.recv().await.is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    })
    .await;
}

fn list_meta(rv: u64, continue_token: &str, remaining: Option<u64>) -> Value {
    let mut m = json!({"resourceVersion": rv.to_string(), "continue": continue_token});
    if let Some(r) = remaining {
        m["remainingItemCount"] = json!(r);
    }
    m
}

fn include_object(req: &Req<'_>) -> Result<IncludeObject, StatusError> {
    let v = req.param("includeObject").unwrap_or_default();
    IncludeObject::parse(&v)
        .ok_or_else(|| status::bad_request(format!("unsupported includeObject value: {v:?}")))
}

fn render_list(
    rt: &ResourceType,
    req: &Req<'_>,
    out: Output,
    items: &[Value],
    meta: Value,
) -> Result<Value, StatusError> {
    let viewed: Vec<Value> = items.iter().map(|o| view(rt, o)).collect();
    Ok(match out {
        Output::Table(api_version) => {
            let mut m = meta;
            if m.get("continue").and_then(Value::as_str) == Some("")
                && let Some(o) = m.as_object_mut()
            {
                o.remove("continue");
            }
            table::table(rt, api_version, &viewed, m, include_object(req)?, true)
        }
        Output::Metadata => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": meta,
            "items": viewed.iter().map(table::partial_metadata).collect::<Vec<_>>(),
        }),
        Output::Json | Output::Yaml => {
            // Built-in lists leave out their items' kind and apiVersion.
            let items: Vec<Value> = if rt.is_custom() {
                viewed
            } else {
                viewed
                    .into_iter()
                    .map(|mut o| {
                        if let Some(m) = o.as_object_mut() {
                            m.remove("kind");
                            m.remove("apiVersion");
                        }
                        o
                    })
                    .collect()
            };
            let mut meta = meta;
            if !rt.is_custom()
                && meta.get("continue").and_then(Value::as_str) == Some("")
                && let Some(o) = meta.as_object_mut()
            {
                o.remove("continue");
            }
            json!({"kind": rt.list_kind, "apiVersion": rt.api_version(), "metadata": meta, "items": items})
        }
    })
}

fn render_one(
    rt: &ResourceType,
    req: &Req<'_>,
    out: Output,
    stored: &Value,
) -> Result<Value, StatusError> {
    let v = view(rt, stored);
    Ok(match out {
        Output::Table(api_version) => {
            let rv = v
                .pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or_else(|| json!(""));
            table::table(
                rt,
                api_version,
                std::slice::from_ref(&v),
                json!({"resourceVersion": rv}),
                include_object(req)?,
                true,
            )
        }
        Output::Metadata => table::partial_metadata(&v),
        _ => v,
    })
}

async fn resource(
    s: &Arc<AppState>,
    rt: Rt,
    req: &Req<'_>,
    body: Body,
) -> Result<Response, StatusError> {
    let info = req.info;
    if let Some(review) = Review::of(&rt) {
        if info.verb != "create" || !info.subresource.is_empty() {
            return Err(status::method_not_supported(&rt, &info.verb));
        }
        let body = read_body(body, req.content_type(), true).await?;
        let answered = reviews::answer(
            review,
            &rt,
            &s.store,
            &s.authn,
            req.user,
            &info.namespace,
            body,
        )
        .await?;
        return Ok(json_response(StatusCode::CREATED, &answered));
    }
    let sub = match info.subresource.as_str() {
        "" => Subresource::Main,
        "status" if rt.status_subresource => Subresource::Status,
        "approval" if rt.is_csr() => Subresource::Approval,
        _ => return Err(status::path_not_found()),
    };
    if rt.custom.as_ref().is_some_and(|c| c.terminating) && info.verb == "create" {
        // Discovery shows fewer verbs while the CRD terminates; only create is refused.
        return Err(status::crd_terminating(&rt));
    }
    let served = if rt.is_custom() {
        crd::VERBS.contains(&info.verb.as_str())
    } else {
        rt.serves(&info.verb)
    };
    if !served && sub == Subresource::Main {
        return Err(status::method_not_supported(&rt, &info.verb));
    }
    let out = negotiate(req.header(http::header::ACCEPT))?;
    let srt = storage_type(&rt);
    let ns = info.namespace.as_str();
    let name = info.name.as_str();
    match (info.verb.as_str(), sub) {
        ("get", _) => {
            wait_for_rv(&s.store, req.param("resourceVersion").as_deref()).await;
            let stored = s
                .store
                .get(&srt, ns, name)
                .map_err(|_| status::not_found(&rt, name))?;
            Ok(respond(
                StatusCode::OK,
                out,
                &render_one(&rt, req, out, &stored)?,
                &[],
            ))
        }
        ("list", Subresource::Main) => {
            let opts = list_options(req, &rt, false)?;
            wait_for_rv(&s.store, opts.resource_version.as_deref()).await;
            let nsf = (!ns.is_empty() && rt.namespaced).then_some(ns);
            let page = s.store.list_page(&srt, nsf, &opts)?;
            let meta = list_meta(page.resource_version, &page.continue_token, page.remaining);
            let v = render_list(&rt, req, out, &page.items, meta)?;
            Ok(respond(StatusCode::OK, out, &v, &[]))
        }
        ("watch", Subresource::Main) => watch(s, rt, req, out),
        ("create", Subresource::Main) => {
            let dry = dry_run(req, "CreateOptions")?;
            let mode = field_validation(req, "CreateOptions")?;
            let mut warnings = Vec::new();
            let (mut body, dups) =
                read_body_checked(body, req.content_type(), rt.kind == "Namespace").await?;
            decode_custom(&rt, &mut body, mode, &mut warnings, &dups)?;
            let mut body = unview(&rt, body);
            if rt.is_csr() {
                body = super::certificates::prepare_for_create(body, req.user);
            }
            admit(&rt, &body, &object_name(&body), true, s)?;
            let rights = super::certificates::SignerRights::default();
            let validate = |new: &Value, old: Option<&Value>| {
                super::admission::validate_custom(&rt, new, old, false)?;
                if rt.is_csr() {
                    super::certificates::check(&rt, sub, rights, new, old)?;
                }
                Ok(())
            };
            let mut created =
                s.store
                    .create_with(&srt, ns, body, &WriteOptions { dry_run: dry }, &validate)?;
            if dry && let Some(m) = created.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            Ok(respond(
                StatusCode::CREATED,
                out,
                &render_one(&rt, req, out, &created)?,
                &warnings,
            ))
        }
        ("update", _) => {
            let dry = dry_run(req, "UpdateOptions")?;
            let mode = field_validation(req, "UpdateOptions")?;
            let mut warnings = Vec::new();
            let (mut body, dups) = read_body_checked(body, req.content_type(), false).await?;
            decode_custom(&rt, &mut body, mode, &mut warnings, &dups)?;
            let body = unview(&rt, body);
            if sub == Subresource::Main {
                admit(&rt, &body, name, false, s)?;
            }
            let status_only = sub == Subresource::Status;
            // Decided before the write: the store is locked during it.
            let rights = if rt.is_csr() {
                super::certificates::SignerRights::of(&s.store, &srt, req.user, name)
            } else {
                super::certificates::SignerRights::default()
            };
            let validate = |new: &Value, old: Option<&Value>| {
                super::admission::validate_custom(&rt, new, old, status_only)?;
                if rt.is_csr() {
                    super::certificates::check(&rt, sub, rights, new, old)?;
                }
                Ok(())
            };
            let written = s.store.modify(
                &srt,
                ns,
                name,
                sub,
                &WriteOptions { dry_run: dry },
                |_| Ok(body),
                &validate,
            )?;
            Ok(respond(
                StatusCode::OK,
                out,
                &render_one(&rt, req, out, &written)?,
                &warnings,
            ))
        }
        ("patch", _) => {
            let dry = dry_run(req, "PatchOptions")?;
            let mode = field_validation(req, "PatchOptions")?;
            if req.param("force").is_some_and(|f| !f.is_empty()) {
                return Err(status::invalid_options(
                    "PatchOptions",
                    &[FieldError::forbidden(
                        "force",
                        "may not be specified for non-apply patch",
                    )],
                ));
            }
            let media = req
                .content_type()
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_owned();
            enum Kind {
                Merge,
                Json,
            }
            let kind = match media.as_str() {
                "application/merge-patch+json" => Kind::Merge,
                "application/json-patch+json" => Kind::Json,
                "application/apply-patch+yaml" => {
                    return Err(status::with_reason(
                        415,
                        "UnsupportedMediaType",
                        "server-side apply (application/apply-patch+yaml) is not served by kube-apiserver-standin - accepted media types include: application/json-patch+json, application/merge-patch+json".into(),
                        None,
                    ));
                }
                _ if rt.is_custom() => return Err(status::unsupported_patch()),
                _ => {
                    return Err(status::with_reason(
                        415,
                        "UnsupportedMediaType",
                        format!(
                            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json (kube-apiserver-standin does not serve {media} patches)"
                        ),
                        None,
                    ));
                }
            };
            let bytes = read_bytes(body).await?;
            let decode_error = |bytes: &[u8]| {
                status::bad_request(format!(
                    "error decoding patch: {}",
                    patch::go_json_error(bytes)
                ))
            };
            let patch_doc: Value =
                serde_json::from_slice(&bytes).map_err(|_| decode_error(&bytes))?;
            let ops = match kind {
                Kind::Json => Some(
                    patch_doc
                        .as_array()
                        .cloned()
                        .ok_or_else(|| {
                            let what = match &patch_doc {
                                Value::Object(_) => "object",
                                Value::String(_) => "string",
                                Value::Number(_) => "number",
                                Value::Bool(_) => "bool",
                                _ => "null",
                            };
                            status::bad_request(format!("error decoding patch: json: cannot unmarshal {what} into Go value of type []handlers.jsonPatchOp"))
                        })?,
                ),
                Kind::Merge => None,
            };
            let mut warnings = Vec::new();
            let status_only = sub == Subresource::Status;
            // Decided before the write: the store is locked during it.
            let rights = if rt.is_csr() {
                super::certificates::SignerRights::of(&s.store, &srt, req.user, name)
            } else {
                super::certificates::SignerRights::default()
            };
            let validate = |new: &Value, old: Option<&Value>| {
                super::admission::validate_custom(&rt, new, old, status_only)?;
                if rt.is_csr() {
                    super::certificates::check(&rt, sub, rights, new, old)?;
                }
                Ok(())
            };
            let rt2 = rt.clone();
            let written = s.store.modify(
                &srt,
                ns,
                name,
                sub,
                &WriteOptions { dry_run: dry },
                |current| {
                    let mut doc = view(&rt2, current);
                    match &ops {
                        Some(ops) => patch::apply_json_patch(&mut doc, ops).map_err(|_| {
                            status::with_reason(
                                422,
                                "Invalid",
                                "the server rejected our request due to an error in our request"
                                    .into(),
                                Some(Default::default()),
                            )
                        })?,
                        None => patch::merge(&mut doc, &patch_doc),
                    }
                    decode_custom(&rt2, &mut doc, mode, &mut warnings, &[])?;
                    let doc = unview(&rt2, doc);
                    if sub == Subresource::Main {
                        admit(&rt2, &doc, name, false, s)?;
                    }
                    Ok(doc)
                },
                &validate,
            )?;
            Ok(respond(
                StatusCode::OK,
                out,
                &render_one(&rt, req, out, &written)?,
                &warnings,
            ))
        }
        ("delete", Subresource::Main) => {
            let opts = delete_options(req, body).await?;
            let deleted = s.store.delete_with(&srt, ns, name, &opts)?;
            Ok(match deleted {
                Deleted::Gone(obj) if !returns_deleted_object(&rt) => {
                    let uid = obj.pointer("/metadata/uid").cloned().unwrap_or(Value::Null);
                    let mut details =
                        json!({"name": name, "group": rt.group, "kind": rt.resource, "uid": uid});
                    if rt.group.is_empty()
                        && let Some(d) = details.as_object_mut()
                    {
                        d.remove("group");
                    }
                    respond(
                        StatusCode::OK,
                        Output::Json,
                        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}),
                        &[],
                    )
                }
                Deleted::Gone(obj) | Deleted::Pending(obj) => {
                    respond(StatusCode::OK, out, &render_one(&rt, req, out, &obj)?, &[])
                }
            })
        }
        ("deletecollection", Subresource::Main) => {
            let opts = delete_options(req, body).await?;
            let lopts = list_options(req, &rt, false)?;
            let nsf = (!ns.is_empty() && rt.namespaced).then_some(ns);
            let page = s.store.list_page(
                &srt,
                nsf,
                &ListOptions {
                    limit: None,
                    continue_token: None,
                    ..lopts
                },
            )?;
            let mut gone = Vec::new();
            for o in page.items {
                let n = object_name(&o);
                let ons = o
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or(ns)
                    .to_owned();
                match s.store.delete_with(&srt, &ons, &n, &opts) {
                    Ok(Deleted::Gone(mut obj)) => {
                        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                            m.insert(
                                "resourceVersion".into(),
                                json!(s.store.resource_version().to_string()),
                            );
                        }
                        gone.push(obj);
                    }
                    Ok(Deleted::Pending(obj)) => gone.push(obj),
                    Err(e) if e.code() == StatusCode::NOT_FOUND => {}
                    Err(e) => return Err(e),
                }
            }
            let meta = list_meta(s.store.resource_version(), "", None);
            let v = render_list(&rt, req, Output::Json, &gone, meta)?;
            Ok(respond(StatusCode::OK, Output::Json, &v, &[]))
        }
        _ => Err(status::method_not_supported(&rt, &info.verb)),
    }
}

/// Built-ins whose registry answers a DELETE with the object rather than a
/// Success Status (`ReturnDeletedObject`).
fn returns_deleted_object(rt: &ResourceType) -> bool {
    matches!(
        (rt.group.as_str(), rt.resource.as_str()),
        ("", "pods") | ("", "services") | ("", "namespaces")
    )
}

/// `DeleteOptions` from the body and the query, validated.
async fn delete_options(req: &Req<'_>, body: Body) -> Result<DeleteOptions, StatusError> {
    let bytes = read_bytes(body).await?;
    let body: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(&bytes).map_err(|_| {
            status::bad_request(format!(
                "couldn't get version/kind; json parse error: {}",
                patch::go_json_error(&bytes)
            ))
        })?
    };
    let from_body = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    let policy = req
        .param("propagationPolicy")
        .filter(|p| !p.is_empty())
        .or_else(|| from_body("propagationPolicy"));
    if let Some(p) = &policy
        && !["Foreground", "Background", "Orphan"].contains(&p.as_str())
    {
        return Err(status::invalid_options(
            "DeleteOptions",
            &[FieldError::not_supported(
                "propagationPolicy",
                &format!("{p:?}"),
                &["Foreground", "Background", "Orphan", "nil"],
            )],
        ));
    }
    let body_dry = body
        .get("dryRun")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .map(str::to_owned);
    let dry = match req.param("dryRun").filter(|d| !d.is_empty()).or(body_dry) {
        None => false,
        Some(d) if d == "All" => true,
        Some(other) => {
            return Err(status::invalid_options(
                "DeleteOptions",
                &[FieldError::new(
                    "dryRun",
                    "FieldValueNotSupported",
                    format!("Unsupported value: []string{{{other:?}}}: supported values: \"All\""),
                )],
            ));
        }
    };
    Ok(DeleteOptions {
        dry_run: dry,
        propagation_policy: policy,
        precondition_uid: body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_owned),
        precondition_resource_version: body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// `GET ...?watch=true`: a streamed 200 (see [`watch`]).
fn watch(s: &Arc<AppState>, rt: Rt, req: &Req<'_>, out: Output) -> Result<Response, StatusError> {
    let mut opts = list_options(req, &rt, true)?;
    let info = req.info;
    if !info.name.is_empty() && info.parts.len() >= 2 {
        // `/watch/.../NAME`: a watch of one name.
        let text = format!("metadata.name={}", info.name);
        let by_name =
            FieldSelector::parse(&text).map_err(|e| status::bad_request(e.to_string()))?;
        opts.fields = opts.fields.and(by_name);
    }
    let timeout = match req.param("timeoutSeconds").filter(|t| !t.is_empty()) {
        Some(t) => {
            let secs: i64 = t.parse().map_err(|_| {
                status::bad_request(format!("strconv.ParseInt: parsing {t:?}: invalid syntax"))
            })?;
            Duration::from_secs(secs.max(0) as u64)
        }
        None => MIN_REQUEST_TIMEOUT.mul_f64(1.0 + rand::random::<f64>()),
    };
    let resource_version = match opts.resource_version.as_deref() {
        None => None,
        Some(r) => Some(r.parse::<u64>().map_err(|_| {
            status::invalid_options(
                "ListOptions",
                &[FieldError::invalid(
                    "resourceVersion",
                    &format!("{r:?}"),
                    "must be a valid resource version",
                )],
            )
        })?),
    };
    let bookmarks = req
        .param("allowWatchBookmarks")
        .is_some_and(|b| b == "true" || b == "1");
    let include = include_object(req)?;
    let Some(slot) = s.store.watcher_slot() else {
        let mut r = status::with_reason(
            429,
            "TooManyRequests",
            "too many requests, please try again later".into(),
            Some(
                api_types::k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusDetails {
                    retry_after_seconds: Some(1),
                    ..Default::default()
                },
            ),
        )
        .into_response();
        r.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        return Ok(r);
    };
    let namespace = (!info.namespace.is_empty() && rt.namespaced).then(|| info.namespace.clone());
    let labels = opts.labels.clone();
    let fields = opts.fields.clone();
    let matches: watch::Matches = Box::new(move |o: &Value| {
        let in_ns = namespace
            .as_deref()
            .is_none_or(|n| o.pointer("/metadata/namespace").and_then(Value::as_str) == Some(n));
        in_ns && labels.matches(o) && fields.matches(o)
    });
    let rt2 = rt.clone();
    let mut first = true;
    let render: watch::Render = Box::new(move |o: &Value| {
        let v = view(&rt2, o);
        match out {
            Output::Table(api_version) => {
                let rv = v
                    .pointer("/metadata/resourceVersion")
                    .cloned()
                    .unwrap_or_else(|| json!(""));
                let t = table::table(
                    &rt2,
                    api_version,
                    std::slice::from_ref(&v),
                    json!({"resourceVersion": rv}),
                    include,
                    first,
                );
                first = false;
                t
            }
            Output::Metadata => table::partial_metadata(&v),
            _ => v,
        }
    });
    let w = watch::Watch {
        storage: storage_type(&rt).storage.clone(),
        api_version: rt.api_version(),
        kind: rt.kind.clone(),
        resource_version,
        timeout,
        bookmarks,
        bookmark_interval: s.bookmark_interval,
        matches,
        render,
    };
    let rx = watch::start(s.store.clone(), slot, w);
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(r)
}
