//! One mock Kubernetes API server for every crate's tests, driven by
//! [`Scenario`]s (kube-rs's "mock API server" style) and recording every
//! request ([`Recorded`]), reachable two ways:
//!
//! * in process, as a `tower::Service` behind a real [`kube::Client`]
//!   ([`MockApi::client`]) — for unit tests of code that takes a client;
//! * over the network, as a real HTTP or HTTPS server on 127.0.0.1
//!   ([`MockApi::serve`], [`MockApi::serve_tls`]) — for binaries (the
//!   plugin, real kubectl, checkpoint-apiserver) pointed at it by a
//!   [`Kubeconfig`].
//!
//! What it serves, as kube-apiserver would:
//! * discovery (`/api`, `/api/v1`, `/apis`, `apps/v1`, `batch/v1`, the
//!   checkpoint group per [`Scenario::Extension`] /
//!   [`Scenario::ExtensionUnavailable`] / [`Scenario::CoreCheckpoint`]) and `/version`;
//! * GET and list (with an equality `labelSelector`) of the objects of
//!   [`Scenario::Object`]: pods, nodes, namespaces, ConfigMaps, services,
//!   deployments, ...; a missing one is a 404 Status (`pods "x" not found`);
//! * TokenReview ([`Scenario::Token`]), SubjectAccessReview and
//!   SelfSubjectAccessReview (by the same rules as the requests, see below),
//!   Event creation, and creating/deleting `coordination.k8s.io` Leases
//!   (not stored: a create answers [`LEASE_RESOURCE_VERSION`]);
//! * `POST .../pods/P/checkpoint` in `subresources.checkpoint.kcr.dev/v1alpha1`
//!   (or the core group): what checkpoint-apiserver answers, from the stored
//!   pod and node — its options, 404/409/400 checks and container defaulting
//!   (`-c`, else the default-container annotation, else the only container).
//!
//! Authentication: a bearer token must be one of [`Scenario::Token`] (else
//! 401); `Impersonate-User` / `Impersonate-Group` name the user the request
//! acts as (impersonation itself is not checked). A request without
//! credentials and without impersonation is the test itself and may do
//! anything, like kube-apiserver's former insecure port.
//!
//! Authorization: without any [`Scenario::Allow`] every user may do
//! everything (`--authorization-mode=AlwaysAllow`). With at least one, a
//! user may do what the `Allow`s naming them grant (RBAC rule matching), and
//! nothing else; discovery, health, `/version` and SelfSubjectAccessReviews
//! are open to everyone, as kube-apiserver's bootstrap roles
//! `system:discovery`, `system:public-info-viewer` and `system:basic-user`
//! make them; another non-resource URL (`/metrics`) needs a rule with
//! `nonResourceURLs` ([`Scenario::allow_all`] has `*`). A denied request answers kube-apiserver's
//! 403 Status. The checkpoint POST in the aggregated group is authorised
//! twice, as on a real cluster: `create pods/checkpoint` in the group by
//! kube-apiserver, then verb `checkpoint` on core `pods` by the extension's
//! SubjectAccessReview.
//!
//! ```no_run
//! use kcr_testkit::mock_api::{MockApi, Scenario, objects, rule};
//!
//! # fn demo() -> std::io::Result<()> {
//! let api = MockApi::new([
//!     Scenario::object(&objects::pod("default", "web", "Running", &["app"])),
//!     Scenario::Extension { gate_on: true },
//!     Scenario::Allow(
//!         "creator".into(),
//!         rule(&["create"], &["subresources.checkpoint.kcr.dev"], &["pods/checkpoint"]),
//!     ),
//! ]);
//! let server = api.serve()?;
//! let dir = tempfile::tempdir()?;
//! let kubeconfig = server
//!     .kubeconfig()
//!     .user("admin", None)
//!     .context("mock", "mock", "admin", Some("default"))
//!     .current("mock")
//!     .write(dir.path())?;
//! // ... run `kubectl-checkpoint web --as creator` with KUBECONFIG=kubeconfig, then:
//! let posts: Vec<String> = server
//!     .request_lines()
//!     .into_iter()
//!     .filter(|l| l.starts_with("POST "))
//!     .collect();
//! # let _ = (kubeconfig, posts);
//! # Ok(())
//! # }
//! ```

pub mod objects;
mod rbac;
mod server;

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api_types::discovery::{api_group, api_resource_list, pod_checkpoint_resource};
use api_types::status;
use api_types::{
    ContainerCheckpoint, ContainerCheckpointSpec, ContainerCheckpointStatus, PodCheckpointOptions,
    StatusReason,
};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewStatus, UserInfo as KUser};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SelfSubjectAccessReview, SubjectAccessReview,
    SubjectAccessReviewStatus,
};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::rbac::v1::PolicyRule;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResource, APIResourceList, APIVersions, GroupVersionForDiscovery,
    Status, Time,
};
use serde_json::{Value, json};

pub use apiserver_lib::UserInfo;
pub use rbac::{Attributes, rule};
pub use server::{Kubeconfig, MockServer, closed_port};

/// The deny reason of the mock's SubjectAccessReviews (and of the
/// extension's 403 that quotes it).
pub const DENY_REASON: &str = "no RBAC policy matched";
/// When every checkpoint of the mock starts.
pub const CHECKPOINT_START: &str = "2026-11-27T07:30:00Z";
/// When every checkpoint of the mock completes; archives are named after it.
pub const CHECKPOINT_TIME: &str = "2026-11-27T07:30:01Z";
/// Where the mock's checkpoint archives are.
pub const ARCHIVE_DIR: &str = "/var/lib/kubelet/checkpoints";

/// What the mock API server holds and how it behaves. Scenarios combine:
/// a cluster is a list of them.
#[derive(Debug, Clone)]
pub enum Scenario {
    /// An object the server holds (any kind of [the served resources]: its
    /// `apiVersion` and `kind` place it). Build with [`Scenario::object`].
    ///
    /// [the served resources]: RESOURCES
    Object(Value),
    /// The checkpoint extension is installed: `/apis` lists
    /// `subresources.checkpoint.kcr.dev`; its version lists `pods/checkpoint`
    /// and serves the POST only with the gate on.
    Extension { gate_on: bool },
    /// The APIService is registered but its backend does not answer: the group
    /// is listed, its version document answers 503.
    ExtensionUnavailable,
    /// `/api/v1` lists `pods/checkpoint` and the core group serves the POST
    /// (should upstream ever add it).
    CoreCheckpoint,
    /// The checkpoint POST answers this Status (once authorised).
    CheckpointFails(StatusReason, String),
    /// The checkpoint POST answers this code with a body that is not a Status.
    CheckpointNonStatus(u16, String),
    /// The checkpoint POST answers after this long.
    SlowCheckpoint(Duration),
    /// This bearer token authenticates this user (requests and TokenReviews).
    Token(String, UserInfo),
    /// Every request answers 401.
    Unauthorized,
    /// RBAC: the user may do what the rule grants (see the module's
    /// "Authorization").
    Allow(String, PolicyRule),
    /// Every GET of a resource answers 403 (the caller lacks RBAC).
    ForbidReads,
    /// Creating an Event answers 500.
    EventsFail,
    /// The in-process client cannot connect (for a server over the network,
    /// point the client at [`closed_port`] instead).
    Unreachable,
}

impl Scenario {
    /// An object the server holds: a `k8s_openapi` object or JSON.
    pub fn object(object: &impl serde::Serialize) -> Self {
        Scenario::Object(serde_json::to_value(object).unwrap_or(Value::Null))
    }

    /// This bearer token authenticates the user `name` (no groups).
    pub fn token(token: &str, name: &str) -> Self {
        Scenario::Token(token.to_owned(), UserInfo::new(name, Vec::new()))
    }

    /// The user may do everything (`cluster-admin`: every resource and
    /// every non-resource URL).
    pub fn allow_all(user: &str) -> Self {
        let mut everything = rule(&["*"], &["*"], &["*"]);
        everything.non_resource_urls = Some(vec!["*".to_owned()]);
        Scenario::Allow(user.to_owned(), everything)
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub method: String,
    /// The path, then `?query` when the query is not empty.
    pub path_and_query: String,
    pub authorization: Option<String>,
    pub impersonate_user: Option<String>,
    pub impersonate_groups: Vec<String>,
    /// The body as JSON; `Null` when empty or not JSON.
    pub body: Value,
    /// `HTTP/1.1` or `HTTP/2.0`: what the client negotiated.
    pub version: String,
}

impl Recorded {
    /// `METHOD path?query`
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path_and_query)
    }
}

/// A resource the mock serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    pub group: &'static str,
    pub version: &'static str,
    pub resource: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
}

const fn served(
    group: &'static str,
    resource: &'static str,
    kind: &'static str,
    namespaced: bool,
) -> Served {
    Served {
        group,
        version: "v1",
        resource,
        kind,
        namespaced,
    }
}

/// The resources the mock serves (all in version `v1` of their group).
pub const RESOURCES: &[Served] = &[
    served("", "pods", "Pod", true),
    served("", "nodes", "Node", false),
    served("", "namespaces", "Namespace", false),
    served("", "configmaps", "ConfigMap", true),
    served("", "services", "Service", true),
    served("", "replicationcontrollers", "ReplicationController", true),
    served("", "events", "Event", true),
    served("apps", "deployments", "Deployment", true),
    served("apps", "statefulsets", "StatefulSet", true),
    served("apps", "daemonsets", "DaemonSet", true),
    served("apps", "replicasets", "ReplicaSet", true),
    served("batch", "jobs", "Job", true),
    served("coordination.k8s.io", "leases", "Lease", true),
];

/// The `resourceVersion` a Lease created on the mock gets (the mock keeps no
/// state: a created Lease is not stored, a delete always succeeds).
pub const LEASE_RESOURCE_VERSION: &str = "7";

type Response = http::Response<Full<Bytes>>;

/// The mock API server: scenarios and the record of requests. Cheap to
/// clone; clones share the record.
#[derive(Debug, Clone)]
pub struct MockApi {
    scenarios: Arc<Vec<Scenario>>,
    log: Arc<Mutex<Vec<Recorded>>>,
}

/// Who a request acts as; `None` is the test itself (no credentials).
type Caller = Option<UserInfo>;

fn json_response(code: u16, value: &impl serde::Serialize) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    http::Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

fn status_response(s: Status) -> Response {
    let code = s.code.and_then(|c| u16::try_from(c).ok()).unwrap_or(500);
    json_response(code, &s)
}

fn ok(value: &impl serde::Serialize) -> Option<Response> {
    Some(json_response(200, value))
}

fn no_route() -> Response {
    status_response(status::not_found(
        "the server could not find the requested resource",
    ))
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn headers_all(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect()
}

fn group_of(api_version: &str) -> &str {
    api_version
        .rsplit_once('/')
        .map(|(g, _)| g)
        .unwrap_or_default()
}

/// `{resource}.{group}` as apimachinery names a resource in messages.
fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    }
}

fn labels_match(object: &Value, selector: &str) -> bool {
    selector
        .split(',')
        .filter(|s| !s.is_empty())
        .all(|req| match req.split_once('=') {
            Some((k, v)) => object["metadata"]["labels"][k].as_str() == Some(v),
            // set-based requirements select nothing here
            None => false,
        })
}

fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The attributes of a resource request (`/api/v1/...`, `/apis/G/V/...`),
/// as kube-apiserver's `RequestInfoFactory` reads them.
fn request_attributes(method: &Method, path: &str) -> Option<Attributes> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segments.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    let (namespace, resource, tail) = match rest {
        ["namespaces", ns, resource, tail @ ..] => (*ns, *resource, tail),
        [resource, tail @ ..] => ("", *resource, tail),
        [] => return None,
    };
    let (name, subresource) = match tail {
        [] => ("", ""),
        [name] => (*name, ""),
        [name, sub] => (*name, *sub),
        _ => return None,
    };
    let verb = match (method.as_str(), name.is_empty()) {
        ("GET" | "HEAD", true) => "list",
        ("GET" | "HEAD", false) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "deletecollection",
        ("DELETE", false) => "delete",
        _ => return None,
    };
    Some(Attributes {
        verb: verb.to_owned(),
        group: group.to_owned(),
        resource: resource.to_owned(),
        subresource: subresource.to_owned(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    })
}

/// The container checkpoint-apiserver checkpoints: the one asked for (it
/// must exist), else the default-container annotation's, else the only one.
fn resolve_container(pod: &Pod, requested: Option<&str>) -> Result<String, Box<Status>> {
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let containers: Vec<String> = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter().map(|c| c.name.clone()))
        .collect();
    if let Some(name) = requested.filter(|n| !n.is_empty()) {
        if containers.iter().any(|c| c == name) {
            return Ok(name.to_owned());
        }
        return Err(Box::new(status::bad_request(format!(
            "container {name} is not valid for pod {pod_name}, choose one of: [{}]",
            containers.join(" ")
        ))));
    }
    if let Some(default) = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("kubectl.kubernetes.io/default-container"))
        && containers.contains(default)
    {
        return Ok(default.clone());
    }
    match containers.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(Box::new(status::bad_request(format!(
            "a container name must be specified for pod {pod_name}, choose one of: [{}]",
            containers.join(" ")
        )))),
    }
}

/// Whether the extension is installed, and how it answers.
enum Extension {
    Absent,
    Serving { gate_on: bool },
    Unavailable,
}

impl MockApi {
    pub fn new(scenarios: impl IntoIterator<Item = Scenario>) -> Self {
        Self {
            scenarios: Arc::new(scenarios.into_iter().collect()),
            log: Arc::default(),
        }
    }

    /// A kube client talking to this mock in process (no credentials: the
    /// test itself).
    pub fn client(&self) -> kube::Client {
        let api = self.clone();
        let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
            let api = api.clone();
            async move { api.answer(request).await }
        });
        kube::Client::new(service, "default")
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// `METHOD path?query` of every request so far.
    pub fn request_lines(&self) -> Vec<String> {
        self.requests().iter().map(Recorded::line).collect()
    }

    fn has(&self, f: impl Fn(&Scenario) -> bool) -> bool {
        self.scenarios.iter().any(f)
    }

    fn objects(&self) -> impl Iterator<Item = &Value> {
        self.scenarios.iter().filter_map(|s| match s {
            Scenario::Object(v) => Some(v),
            _ => None,
        })
    }

    fn extension(&self) -> Extension {
        let mut state = Extension::Absent;
        for s in self.scenarios.iter() {
            match s {
                Scenario::Extension { gate_on } => state = Extension::Serving { gate_on: *gate_on },
                Scenario::ExtensionUnavailable => return Extension::Unavailable,
                _ => {}
            }
        }
        state
    }

    /// The RBAC rules of [`Scenario::Allow`], with the user each grants.
    fn rules(&self) -> impl Iterator<Item = (&String, &PolicyRule)> {
        self.scenarios.iter().filter_map(|s| match s {
            Scenario::Allow(u, r) => Some((u, r)),
            _ => None,
        })
    }

    /// Whether `user` may do `attrs` (see the module's "Authorization").
    pub fn allows(&self, user: &str, attrs: &Attributes) -> bool {
        let mut rules = self.rules().peekable();
        if rules.peek().is_none() {
            return true;
        }
        rules.any(|(u, r)| u == user && rbac::rule_allows(r, attrs))
    }

    /// Answer one request (what both transports call); `Err` is a failure
    /// to connect ([`Scenario::Unreachable`]).
    pub async fn answer<B>(&self, request: http::Request<B>) -> io::Result<Response>
    where
        B: hyper::body::Body<Data = Bytes>,
    {
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let path_and_query = match parts.uri.query().filter(|q| !q.is_empty()) {
            Some(q) => format!("{}?{q}", parts.uri.path()),
            None => parts.uri.path().to_owned(),
        };
        if let Ok(mut log) = self.log.lock() {
            log.push(Recorded {
                method: parts.method.to_string(),
                path_and_query,
                authorization: header(&parts.headers, "authorization"),
                impersonate_user: header(&parts.headers, "impersonate-user"),
                impersonate_groups: headers_all(&parts.headers, "impersonate-group"),
                body: body.clone(),
                version: format!("{:?}", parts.version),
            });
        }
        if self.has(|s| matches!(s, Scenario::Unreachable)) {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "connection refused",
            ));
        }
        let Some(caller) = self.authenticate(&parts.headers) else {
            return Ok(status_response(status::unauthorized()));
        };
        let query = parts.uri.query().unwrap_or_default();
        Ok(self
            .route(&parts.method, parts.uri.path(), query, caller, body)
            .await)
    }

    /// The caller, or `None` for a 401.
    fn authenticate(&self, headers: &HeaderMap) -> Option<Caller> {
        if self.has(|s| matches!(s, Scenario::Unauthorized)) {
            return None;
        }
        let user = match header(headers, "authorization") {
            None => None,
            Some(value) => Some(self.token_user(value.strip_prefix("Bearer ")?)?),
        };
        Some(match header(headers, "impersonate-user") {
            Some(name) => Some(UserInfo::new(
                name,
                headers_all(headers, "impersonate-group"),
            )),
            None => user,
        })
    }

    fn token_user(&self, token: &str) -> Option<UserInfo> {
        self.scenarios.iter().find_map(|s| match s {
            Scenario::Token(t, u) if t == token => Some(u.clone()),
            _ => None,
        })
    }

    async fn route(
        &self,
        method: &Method,
        path: &str,
        query: &str,
        caller: Caller,
        body: Value,
    ) -> Response {
        if *method == Method::GET
            && let Some(r) = self.discovery(path)
        {
            return r;
        }
        let Some(attrs) = request_attributes(method, path) else {
            return no_route();
        };
        let self_review =
            attrs.group == "authorization.k8s.io" && attrs.resource == "selfsubjectaccessreviews";
        if let Some(user) = &caller
            && !self_review
            && !self.allows(&user.name, &attrs)
        {
            return status_response(attrs.forbidden(&user.name, ""));
        }
        if *method == Method::GET && self.has(|s| matches!(s, Scenario::ForbidReads)) {
            let name = caller
                .as_ref()
                .map_or("system:anonymous", |u| u.name.as_str());
            return status_response(attrs.forbidden(name, ""));
        }
        let create = attrs.verb == "create";
        match (
            attrs.group.as_str(),
            attrs.resource.as_str(),
            attrs.subresource.as_str(),
        ) {
            ("authorization.k8s.io", "subjectaccessreviews", "") if create => {
                self.subject_access_review(body)
            }
            ("authorization.k8s.io", "selfsubjectaccessreviews", "") if create => {
                self.self_subject_access_review(body, caller.as_ref())
            }
            ("authentication.k8s.io", "tokenreviews", "") if create => self.token_review(body),
            ("", "events", "") if create => {
                if self.has(|s| matches!(s, Scenario::EventsFail)) {
                    status_response(status::internal_error("etcd is sad"))
                } else {
                    json_response(201, &body)
                }
            }
            // checkpoint-apiserver's per-container Leases: created (and
            // answered with a resourceVersion), deleted; never stored.
            ("coordination.k8s.io", "leases", "") if create => {
                let mut lease = body;
                lease["metadata"]["resourceVersion"] = json!(LEASE_RESOURCE_VERSION);
                json_response(201, &lease)
            }
            ("coordination.k8s.io", "leases", "") if attrs.verb == "delete" => json_response(
                200,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
            ),
            (group, "pods", "checkpoint") => {
                let served = match (group, self.extension()) {
                    ("", _) => self.has(|s| matches!(s, Scenario::CoreCheckpoint)),
                    (api_types::SUBRESOURCES_GROUP, Extension::Serving { gate_on }) => gate_on,
                    (api_types::SUBRESOURCES_GROUP, Extension::Unavailable) => {
                        return status_response(status::service_unavailable(
                            "the server is currently unable to handle the request",
                        ));
                    }
                    _ => false,
                };
                if !served {
                    no_route()
                } else if *method != Method::POST {
                    status_response(status::method_not_allowed(method.as_str()))
                } else {
                    self.checkpoint(&attrs, caller.as_ref(), query).await
                }
            }
            _ if attrs.verb == "get" && attrs.subresource.is_empty() => self.get(&attrs),
            _ if attrs.verb == "list" => self.list(&attrs, query),
            _ => no_route(),
        }
    }

    fn served(attrs: &Attributes) -> Option<&'static Served> {
        RESOURCES
            .iter()
            .find(|s| s.group == attrs.group && s.resource == attrs.resource)
    }

    /// The stored objects of the request's resource and namespace.
    fn matching(&self, attrs: &Attributes) -> impl Iterator<Item = &Value> {
        let kind = Self::served(attrs).map(|s| s.kind);
        let (group, namespace) = (attrs.group.clone(), attrs.namespace.clone());
        self.objects().filter(move |o| {
            Some(o["kind"].as_str().unwrap_or_default()) == kind
                && group_of(o["apiVersion"].as_str().unwrap_or_default()) == group
                && o["metadata"]["namespace"].as_str().unwrap_or_default() == namespace
        })
    }

    fn find(&self, attrs: &Attributes) -> Option<&Value> {
        self.matching(attrs)
            .find(|o| o["metadata"]["name"].as_str() == Some(attrs.name.as_str()))
    }

    fn get(&self, attrs: &Attributes) -> Response {
        if Self::served(attrs).is_none() {
            return no_route();
        }
        match self.find(attrs) {
            Some(o) => json_response(200, o),
            None => status_response(status::failure(
                StatusReason::NotFound,
                format!(
                    "{} \"{}\" not found",
                    qualified(&attrs.group, &attrs.resource),
                    attrs.name
                ),
                Some(status::details(&attrs.group, &attrs.resource, &attrs.name)),
            )),
        }
    }

    fn list(&self, attrs: &Attributes, query: &str) -> Response {
        let Some(Served {
            group,
            version,
            kind,
            ..
        }) = Self::served(attrs)
        else {
            return no_route();
        };
        let selector = query_param(query, "labelSelector").unwrap_or_default();
        let items: Vec<&Value> = self
            .matching(attrs)
            .filter(|o| labels_match(o, &selector))
            .collect();
        let api_version = if group.is_empty() {
            (*version).to_owned()
        } else {
            format!("{group}/{version}")
        };
        json_response(
            200,
            &json!({"kind": format!("{kind}List"), "apiVersion": api_version, "metadata": {}, "items": items}),
        )
    }

    /// The discovery documents and `/version`; `None` for any other path.
    fn discovery(&self, path: &str) -> Option<Response> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match segments.as_slice() {
            ["api"] => ok(&APIVersions {
                versions: vec!["v1".into()],
                ..Default::default()
            }),
            ["api", "v1"] => ok(&self.resource_list("", "v1")),
            ["apis"] => ok(&APIGroupList {
                groups: self.groups(),
            }),
            ["apis", name] => match self.groups().into_iter().find(|g| g.name == *name) {
                Some(g) => ok(&g),
                None => Some(no_route()),
            },
            ["apis", api_types::SUBRESOURCES_GROUP, api_types::VERSION] => {
                Some(match self.extension() {
                    Extension::Absent => no_route(),
                    Extension::Unavailable => status_response(status::service_unavailable(
                        "the server is currently unable to handle the request",
                    )),
                    Extension::Serving { gate_on } => {
                        json_response(200, &api_resource_list(gate_on))
                    }
                })
            }
            ["apis", group @ ("apps" | "batch"), "v1"] => ok(&self.resource_list(group, "v1")),
            ["version"] => ok(
                &json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0",
                "gitCommit": "", "gitTreeState": "", "buildDate": "", "goVersion": "",
                "compiler": "", "platform": "linux/amd64"}),
            ),
            ["healthz" | "livez" | "readyz"] => Some(
                http::Response::builder()
                    .status(200)
                    .body(Full::new(Bytes::from_static(b"ok")))
                    .unwrap_or_default(),
            ),
            _ => None,
        }
    }

    fn resource_list(&self, group: &str, version: &str) -> APIResourceList {
        let mut resources: Vec<APIResource> = RESOURCES
            .iter()
            .filter(|s| s.group == group && s.version == version)
            .map(|s| APIResource {
                name: s.resource.into(),
                namespaced: s.namespaced,
                kind: s.kind.into(),
                verbs: vec!["get".into(), "list".into()],
                ..Default::default()
            })
            .collect();
        if group.is_empty() {
            resources.push(APIResource {
                name: "pods/exec".into(),
                namespaced: true,
                kind: "PodExecOptions".into(),
                verbs: vec!["create".into(), "get".into()],
                ..Default::default()
            });
            if self.has(|s| matches!(s, Scenario::CoreCheckpoint)) {
                resources.push(pod_checkpoint_resource());
            }
        }
        APIResourceList {
            group_version: if group.is_empty() {
                version.to_owned()
            } else {
                format!("{group}/{version}")
            },
            resources,
        }
    }

    fn groups(&self) -> Vec<APIGroup> {
        let gv = |g: &str| GroupVersionForDiscovery {
            group_version: format!("{g}/v1"),
            version: "v1".into(),
        };
        let mut groups: Vec<APIGroup> = ["apps", "batch"]
            .into_iter()
            .map(|g| APIGroup {
                name: g.into(),
                preferred_version: Some(gv(g)),
                versions: vec![gv(g)],
                ..Default::default()
            })
            .collect();
        if !matches!(self.extension(), Extension::Absent) {
            groups.push(api_group());
        }
        groups
    }

    /// Whether `user` may `verb` the non-resource URL `path`: discovery,
    /// health and version are open to everyone; anything else (`/metrics`)
    /// needs a rule with `nonResourceURLs`.
    pub fn allows_non_resource(&self, user: &str, verb: &str, path: &str) -> bool {
        let mut rules = self.rules().peekable();
        if rules.peek().is_none() || rbac::open_path(path) {
            return true;
        }
        rules.any(|(u, r)| u == user && rbac::non_resource_rule_allows(r, verb, path))
    }

    fn review_status(
        &self,
        user: Option<&str>,
        resource: Option<&ResourceAttributes>,
        non_resource: Option<&NonResourceAttributes>,
    ) -> SubjectAccessReviewStatus {
        let allowed = match (user, resource, non_resource) {
            (None, _, _) => true,
            (Some(user), Some(attrs), _) => self.allows(user, &Attributes::from_review(attrs)),
            (Some(user), None, Some(n)) => self.allows_non_resource(
                user,
                n.verb.as_deref().unwrap_or_default(),
                n.path.as_deref().unwrap_or_default(),
            ),
            (Some(_), None, None) => false,
        };
        SubjectAccessReviewStatus {
            allowed,
            reason: (!allowed).then(|| DENY_REASON.to_owned()),
            ..Default::default()
        }
    }

    fn subject_access_review(&self, body: Value) -> Response {
        let mut review: SubjectAccessReview = serde_json::from_value(body).unwrap_or_default();
        let user = review.spec.user.clone().unwrap_or_default();
        review.status = Some(self.review_status(
            Some(&user),
            review.spec.resource_attributes.as_ref(),
            review.spec.non_resource_attributes.as_ref(),
        ));
        json_response(201, &review)
    }

    fn self_subject_access_review(&self, body: Value, caller: Option<&UserInfo>) -> Response {
        let mut review: SelfSubjectAccessReview = serde_json::from_value(body).unwrap_or_default();
        review.status = Some(self.review_status(
            caller.map(|u| u.name.as_str()),
            review.spec.resource_attributes.as_ref(),
            review.spec.non_resource_attributes.as_ref(),
        ));
        json_response(201, &review)
    }

    fn token_review(&self, body: Value) -> Response {
        let mut review: TokenReview = serde_json::from_value(body).unwrap_or_default();
        let user = review
            .spec
            .token
            .as_deref()
            .and_then(|t| self.token_user(t));
        review.status = Some(TokenReviewStatus {
            authenticated: Some(user.is_some()),
            user: user.map(|u| KUser {
                username: Some(u.name),
                uid: (!u.uid.is_empty()).then_some(u.uid),
                groups: Some(u.groups),
                extra: Some(u.extra.into_iter().collect::<BTreeMap<_, _>>()),
            }),
            ..Default::default()
        });
        json_response(201, &review)
    }

    /// What checkpoint-apiserver answers (after kube-apiserver authorised
    /// the POST): its SubjectAccessReview, options, pod and container checks.
    async fn checkpoint(
        &self,
        attrs: &Attributes,
        caller: Option<&UserInfo>,
        query: &str,
    ) -> Response {
        let (namespace, pod_name) = (attrs.namespace.as_str(), attrs.name.as_str());
        if attrs.group == api_types::SUBRESOURCES_GROUP
            && let Some(user) = caller
        {
            let checkpoint = Attributes {
                verb: api_types::CHECKPOINT_VERB.into(),
                group: String::new(),
                resource: api_types::RESOURCE.into(),
                subresource: String::new(),
                ..attrs.clone()
            };
            if !self.allows(&user.name, &checkpoint) {
                return status_response(checkpoint.forbidden(&user.name, DENY_REASON));
            }
        }
        for s in self.scenarios.iter() {
            match s {
                Scenario::CheckpointFails(reason, message) => {
                    return status_response(status::failure(
                        *reason,
                        message.clone(),
                        Some(status::pod_details(pod_name)),
                    ));
                }
                Scenario::CheckpointNonStatus(code, body) => {
                    return http::Response::builder()
                        .status(StatusCode::from_u16(*code).unwrap_or(StatusCode::BAD_GATEWAY))
                        .body(Full::new(Bytes::from(body.clone())))
                        .unwrap_or_default();
                }
                Scenario::SlowCheckpoint(d) => tokio::time::sleep(*d).await,
                _ => {}
            }
        }
        match self.checkpoint_pod(namespace, pod_name, query) {
            Ok(c) => json_response(200, &c),
            Err(s) => status_response(*s),
        }
    }

    fn checkpoint_pod(
        &self,
        namespace: &str,
        pod_name: &str,
        query: &str,
    ) -> Result<ContainerCheckpoint, Box<Status>> {
        let options = PodCheckpointOptions::from_query(query, api_types::MAX_TIMEOUT_SECONDS)
            .map_err(|e| Box::new(status::bad_request(e.to_string())))?;
        let lookup = |resource: &str, namespace: &str, name: &str| {
            self.find(&Attributes {
                verb: "get".into(),
                resource: resource.into(),
                namespace: namespace.into(),
                name: name.into(),
                ..Default::default()
            })
            .cloned()
        };
        let pod: Pod = lookup("pods", namespace, pod_name)
            .and_then(|v| serde_json::from_value(v).ok())
            .ok_or_else(|| Box::new(status::pod_not_found(pod_name)))?;
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Unknown".into());
        if phase != "Running" {
            return Err(Box::new(status::conflict(
                pod_name,
                format!(
                    "cannot checkpoint a container in a non-running pod; current phase is {phase}"
                ),
            )));
        }
        let container = resolve_container(&pod, options.container.as_deref())?;
        let node_name = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let node_address = lookup("nodes", "", &node_name)
            .and_then(|v| serde_json::from_value::<Node>(v).ok())
            .and_then(|n| n.status?.addresses?.into_iter().next())
            .map(|a| a.address)
            .unwrap_or_default();
        let time = |t: &str| {
            t.parse::<k8s_openapi::jiff::Timestamp>()
                .map_err(|e| Box::new(status::internal_error(e.to_string())))
        };
        let (start, at) = (time(CHECKPOINT_START)?, time(CHECKPOINT_TIME)?);
        let archive = format!(
            "{ARCHIVE_DIR}/{}",
            api_types::archive::archive_file_name(pod_name, namespace, &container, at, 1)
        );
        Ok(ContainerCheckpoint::new(
            namespace,
            ContainerCheckpointSpec {
                pod_name: pod_name.into(),
                pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
                container,
                timeout_seconds: options.timeout(),
            },
            ContainerCheckpointStatus {
                node_name,
                node_address,
                archive_path: archive,
                start_time: Time(start),
                completion_time: Time(at),
            },
        ))
    }
}

#[cfg(test)]
mod tests;
