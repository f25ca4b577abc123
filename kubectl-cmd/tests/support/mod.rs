//! A scripted kube-apiserver for the plugin's integration tests: plain HTTP on
//! 127.0.0.1, driven by a [`Scenario`]. It serves discovery (`/api`,
//! `/api/v1`, `/apis`, the checkpoint group), pods, workloads, namespaces and
//! the checkpoint POST, and records every request so URLs can be asserted.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api_types::discovery::{api_group, api_resource_list, pod_checkpoint_resource};
use api_types::status;
use api_types::{
    ContainerCheckpoint, ContainerCheckpointSpec, ContainerCheckpointStatus, PodCheckpointOptions,
    StatusReason,
};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResource, APIResourceList, APIVersions, GroupVersionForDiscovery,
    Time,
};
use serde_json::{Value, json};

/// What the API server does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scenario {
    /// The extension is installed, its gate is on, checkpoints succeed.
    Ready,
    /// `/api/v1` lists `pods/checkpoint`: the core endpoint is used.
    CoreServed,
    /// `/apis` does not list `subresources.checkpoint.kcr.dev`.
    NotInstalled,
    /// The group is listed but `pods/checkpoint` is not (gate off).
    GateOff,
    /// The APIService's backend does not answer (503 on the group version).
    BackendDown,
    /// Every request answers 401.
    Unauthorized,
    /// The checkpoint POST answers this Status.
    CheckpointFails(StatusReason, String),
    /// The checkpoint POST answers a non-Status body with this code.
    CheckpointNonStatus(u16, String),
    /// The checkpoint POST answers after this long.
    SlowCheckpoint(Duration),
}

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    pub path_and_query: String,
    pub authorization: Option<String>,
    pub impersonate_user: Option<String>,
    pub impersonate_groups: Vec<String>,
}

impl Recorded {
    /// `METHOD path?query`
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path_and_query)
    }
}

#[derive(Clone)]
struct AppState {
    scenario: Scenario,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

/// The running server; stops when dropped.
pub struct MockServer {
    pub port: u16,
    requests: Arc<Mutex<Vec<Recorded>>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Token of the kubeconfig user the server accepts.
pub const TOKEN: &str = "alice-token";
/// The node every pod runs on, and its address.
pub const NODE: &str = "node-1";
pub const NODE_ADDRESS: &str = "127.0.0.1";

impl MockServer {
    pub fn start(scenario: Scenario) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let state = AppState {
            scenario,
            requests: requests.clone(),
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = Router::new().fallback(handle).with_state(state);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        Self {
            port,
            requests,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// `METHOD path?query` of every request.
    pub fn request_lines(&self) -> Vec<String> {
        self.requests().iter().map(Recorded::line).collect()
    }

    /// Write a kubeconfig for this server: contexts `mock` (namespace
    /// default, current), `prod` (namespace prod), `nobody` (a user whose
    /// token the server refuses) and `down` (a closed port).
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        std::fs::write(&path, kubeconfig_yaml(&self.url())).unwrap();
        path
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

pub fn kubeconfig_yaml(server: &str) -> String {
    let down = format!("http://127.0.0.1:{}", closed_port());
    format!(
        r#"apiVersion: v1
kind: Config
current-context: mock
clusters:
- name: mock
  cluster:
    server: {server}
- name: down
  cluster:
    server: {down}
users:
- name: alice
  user:
    token: {TOKEN}
- name: nobody
  user:
    token: wrong-token
contexts:
- name: mock
  context:
    cluster: mock
    user: alice
    namespace: default
- name: prod
  context:
    cluster: mock
    user: alice
    namespace: prod
- name: nobody
  context:
    cluster: mock
    user: nobody
- name: down
  context:
    cluster: down
    user: alice
"#
    )
}

fn json_response(code: StatusCode, v: impl serde::Serialize) -> Response {
    (
        code,
        [("content-type", "application/json")],
        serde_json::to_string(&v).unwrap(),
    )
        .into_response()
}

fn status_response(s: k8s_openapi::apimachinery::pkg::apis::meta::v1::Status) -> Response {
    let code = StatusCode::from_u16(s.code.unwrap_or(500) as u16).unwrap();
    json_response(code, s)
}

fn not_found(resource: &str, name: &str) -> Response {
    status_response(status::failure(
        StatusReason::NotFound,
        format!("{resource} \"{name}\" not found"),
        None,
    ))
}

fn no_route() -> Response {
    status_response(status::not_found(
        "the server could not find the requested resource",
    ))
}

fn time(s: &str) -> Value {
    json!(s)
}

/// A pod: Running pods are assigned, ready and have running containers.
pub fn pod(
    ns: &str,
    name: &str,
    phase: &str,
    containers: &[&str],
    labels: &[(&str, &str)],
    annotations: &[(&str, &str)],
) -> Value {
    let running = phase == "Running";
    let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
    let annotations: BTreeMap<&str, &str> = annotations.iter().copied().collect();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": format!("uid-{name}"),
            "creationTimestamp": time("2026-11-27T07:00:00Z"),
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            "nodeName": if running { Some(NODE) } else { None },
            "containers": containers.iter().map(|c| json!({"name": c, "image": "busybox"})).collect::<Vec<_>>(),
        },
        "status": {
            "phase": phase,
            "conditions": if running { json!([{"type": "Ready", "status": "True", "lastTransitionTime": time("2026-11-27T07:01:00Z")}]) } else { json!([]) },
            "containerStatuses": containers.iter().map(|c| json!({
                "name": c, "ready": running, "restartCount": 0, "image": "busybox", "imageID": "",
                "state": if running { json!({"running": {"startedAt": "2026-11-27T07:00:30Z"}}) } else { json!({"waiting": {"reason": "ContainerCreating"}}) },
            })).collect::<Vec<_>>(),
        },
    })
}

/// The pods of the cluster.
pub fn pods() -> Vec<Value> {
    vec![
        pod(
            "default",
            "counter",
            "Running",
            &["app"],
            &[("app", "counter")],
            &[],
        ),
        pod("default", "multi", "Running", &["a", "b"], &[], &[]),
        pod(
            "default",
            "annotated",
            "Running",
            &["a", "b"],
            &[],
            &[("kubectl.kubernetes.io/default-container", "b")],
        ),
        pod("default", "waiting", "Pending", &["app"], &[], &[]),
        pod(
            "default",
            "web-1",
            "Pending",
            &["nginx"],
            &[("app", "web")],
            &[],
        ),
        pod(
            "default",
            "web-2",
            "Running",
            &["nginx"],
            &[("app", "web")],
            &[],
        ),
        pod(
            "default",
            "report-x1",
            "Running",
            &["job"],
            &[("job-name", "report")],
            &[],
        ),
        pod("prod", "db-0", "Running", &["pg"], &[("app", "db")], &[]),
    ]
}

/// `(namespace, collection, name, selector)` of the workloads.
fn workloads() -> Vec<(
    &'static str,
    &'static str,
    &'static str,
    (&'static str, &'static str),
)> {
    vec![
        ("default", "deployments", "web", ("app", "web")),
        ("default", "replicasets", "web-5d9f", ("app", "web")),
        ("default", "daemonsets", "agent", ("app", "agent")),
        ("default", "jobs", "report", ("job-name", "report")),
        ("prod", "statefulsets", "db", ("app", "db")),
    ]
}

fn workload_object(ns: &str, collection: &str, name: &str, (k, v): (&str, &str)) -> Value {
    let (api_version, kind) = match collection {
        "deployments" => ("apps/v1", "Deployment"),
        "replicasets" => ("apps/v1", "ReplicaSet"),
        "daemonsets" => ("apps/v1", "DaemonSet"),
        "statefulsets" => ("apps/v1", "StatefulSet"),
        _ => ("batch/v1", "Job"),
    };
    let template = json!({"metadata": {"labels": {k: v}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let mut spec = json!({"selector": {"matchLabels": {k: v}}, "template": template});
    if collection == "statefulsets" {
        spec["serviceName"] = json!(name);
    }
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": ns}, "spec": spec})
}

fn labels_match(pod: &Value, selector: &str) -> bool {
    selector
        .split(',')
        .filter(|s| !s.is_empty())
        .all(|req| match req.split_once('=') {
            Some((k, v)) => pod["metadata"]["labels"][k].as_str() == Some(v),
            None => false,
        })
}

fn core_v1(scenario: &Scenario) -> APIResourceList {
    let mut resources = vec![
        APIResource {
            name: "pods".into(),
            namespaced: true,
            kind: "Pod".into(),
            verbs: vec!["get".into(), "list".into()],
            ..Default::default()
        },
        APIResource {
            name: "pods/exec".into(),
            namespaced: true,
            kind: "PodExecOptions".into(),
            verbs: vec!["create".into(), "get".into()],
            ..Default::default()
        },
        APIResource {
            name: "namespaces".into(),
            namespaced: false,
            kind: "Namespace".into(),
            verbs: vec!["get".into(), "list".into()],
            ..Default::default()
        },
    ];
    if *scenario == Scenario::CoreServed {
        resources.push(pod_checkpoint_resource());
    }
    APIResourceList {
        group_version: "v1".into(),
        resources,
    }
}

fn groups(scenario: &Scenario) -> APIGroupList {
    let gv = |g: &str, v: &str| GroupVersionForDiscovery {
        group_version: format!("{g}/{v}"),
        version: v.into(),
    };
    let mut groups = vec![
        APIGroup {
            name: "apps".into(),
            preferred_version: Some(gv("apps", "v1")),
            versions: vec![gv("apps", "v1")],
            ..Default::default()
        },
        APIGroup {
            name: "batch".into(),
            preferred_version: Some(gv("batch", "v1")),
            versions: vec![gv("batch", "v1")],
            ..Default::default()
        },
    ];
    if *scenario != Scenario::NotInstalled {
        groups.push(api_group());
    }
    APIGroupList { groups }
}

fn checkpoint(scenario: &Scenario, ns: &str, pod_name: &str, query: &str) -> Response {
    match scenario {
        Scenario::CheckpointFails(reason, message) => {
            return status_response(status::failure(
                *reason,
                message.clone(),
                Some(status::pod_details(pod_name)),
            ));
        }
        Scenario::CheckpointNonStatus(code, body) => {
            return (StatusCode::from_u16(*code).unwrap(), body.clone()).into_response();
        }
        _ => {}
    }
    let options = match PodCheckpointOptions::from_query(query, api_types::MAX_TIMEOUT_SECONDS) {
        Ok(o) => o,
        Err(e) => return status_response(status::bad_request(e.to_string())),
    };
    let Some(pod) = pods()
        .into_iter()
        .find(|p| p["metadata"]["namespace"] == ns && p["metadata"]["name"] == pod_name)
    else {
        return status_response(status::pod_not_found(pod_name));
    };
    let container = options.container.clone().unwrap_or_default();
    let names: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .map(|cs| cs.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    if !names.contains(&container.as_str()) {
        // what checkpoint-apiserver answers (kube-apiserver's wording for exec)
        return status_response(status::bad_request(format!(
            "container {container} is not valid for pod {pod_name}, choose one of: [{}]",
            names.join(" ")
        )));
    }
    let at: k8s_openapi::jiff::Timestamp = "2026-11-27T07:30:01Z".parse().unwrap();
    let archive = format!(
        "/var/lib/kubelet/checkpoints/{}",
        api_types::archive::archive_file_name(pod_name, ns, &container, at, 1)
    );
    let c = ContainerCheckpoint::new(
        ns,
        ContainerCheckpointSpec {
            pod_name: pod_name.into(),
            pod_uid: pod["metadata"]["uid"].as_str().unwrap_or_default().into(),
            container,
            timeout_seconds: options.timeout(),
        },
        ContainerCheckpointStatus {
            node_name: NODE.into(),
            node_address: NODE_ADDRESS.into(),
            archive_path: archive,
            start_time: Time("2026-11-27T07:30:00Z".parse().unwrap()),
            completion_time: Time(at),
        },
    );
    json_response(StatusCode::OK, c)
}

async fn handle(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    state.requests.lock().unwrap().push(Recorded {
        method: method.to_string(),
        path_and_query: uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        authorization: header("authorization"),
        impersonate_user: header("impersonate-user"),
        impersonate_groups: headers
            .get_all("impersonate-group")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect(),
    });
    let scenario = &state.scenario;
    // Like kube-apiserver with anonymous auth on: no credentials is
    // system:anonymous (kubectl sends none over plain HTTP), a wrong token is 401.
    let token_ok = header("authorization").is_none_or(|a| a == format!("Bearer {TOKEN}"));
    if *scenario == Scenario::Unauthorized || !token_ok {
        return status_response(status::unauthorized());
    }
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or_default().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let get = method == Method::GET;
    match segments.as_slice() {
        ["api"] if get => json_response(
            StatusCode::OK,
            APIVersions {
                versions: vec!["v1".into()],
                ..Default::default()
            },
        ),
        ["api", "v1"] if get => json_response(StatusCode::OK, core_v1(scenario)),
        ["apis"] if get => json_response(StatusCode::OK, groups(scenario)),
        ["apis", "subresources.checkpoint.kcr.dev"]
            if get && *scenario != Scenario::NotInstalled =>
        {
            json_response(StatusCode::OK, api_group())
        }
        ["apis", "subresources.checkpoint.kcr.dev", "v1alpha1"] if get => match scenario {
            Scenario::NotInstalled => no_route(),
            Scenario::BackendDown => status_response(status::service_unavailable(
                "the server is currently unable to handle the request",
            )),
            Scenario::GateOff => json_response(StatusCode::OK, api_resource_list(false)),
            _ => json_response(StatusCode::OK, api_resource_list(true)),
        },
        ["api", "v1", "namespaces"] if get => json_response(
            StatusCode::OK,
            json!({"kind": "NamespaceList", "apiVersion": "v1", "items": [{"metadata": {"name": "default"}}, {"metadata": {"name": "prod"}}]}),
        ),
        ["api", "v1", "namespaces", ns, "pods"] if get => {
            let selector: String = form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "labelSelector")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            let items: Vec<Value> = pods()
                .into_iter()
                .filter(|p| p["metadata"]["namespace"] == *ns && labels_match(p, &selector))
                .collect();
            json_response(
                StatusCode::OK,
                json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}),
            )
        }
        ["api", "v1", "namespaces", ns, "pods", name] if get => {
            match pods()
                .into_iter()
                .find(|p| p["metadata"]["namespace"] == *ns && p["metadata"]["name"] == *name)
            {
                Some(p) => json_response(StatusCode::OK, p),
                None => status_response(status::pod_not_found(name)),
            }
        }
        [
            "apis",
            group @ ("apps" | "batch"),
            "v1",
            "namespaces",
            ns,
            collection,
        ] if get => {
            let items: Vec<Value> = workloads()
                .into_iter()
                .filter(|(wns, c, _, _)| wns == ns && c == collection)
                .map(|(wns, c, n, s)| workload_object(wns, c, n, s))
                .collect();
            let _ = group;
            json_response(
                StatusCode::OK,
                json!({"kind": "List", "apiVersion": "v1", "items": items}),
            )
        }
        [
            "apis",
            group @ ("apps" | "batch"),
            "v1",
            "namespaces",
            ns,
            collection,
            name,
        ] if get => {
            match workloads()
                .into_iter()
                .find(|(wns, c, n, _)| wns == ns && c == collection && n == name)
            {
                Some((wns, c, n, s)) => {
                    json_response(StatusCode::OK, workload_object(wns, c, n, s))
                }
                None => not_found(&format!("{collection}.{group}"), name),
            }
        }
        [
            "apis",
            "subresources.checkpoint.kcr.dev",
            "v1alpha1",
            "namespaces",
            ns,
            "pods",
            pod_name,
            "checkpoint",
        ] if matches!(
            scenario,
            Scenario::Ready
                | Scenario::CheckpointFails(..)
                | Scenario::CheckpointNonStatus(..)
                | Scenario::SlowCheckpoint(_)
        ) =>
        {
            if method != Method::POST {
                return status_response(status::method_not_allowed(method.as_str()));
            }
            if let Scenario::SlowCheckpoint(d) = scenario {
                tokio::time::sleep(*d).await;
            }
            checkpoint(scenario, ns, pod_name, &query)
        }
        [
            "api",
            "v1",
            "namespaces",
            ns,
            "pods",
            pod_name,
            "checkpoint",
        ] if *scenario == Scenario::CoreServed && method == Method::POST => {
            checkpoint(scenario, ns, pod_name, &query)
        }
        _ => no_route(),
    }
}
