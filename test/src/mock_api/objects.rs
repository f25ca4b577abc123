//! Objects for the mock API server and for unit tests: a pod as the kubelet
//! reports it, a node, a namespace, a workload with a pod selector.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateWaiting, ContainerStatus,
    DaemonEndpoint, Namespace, Node, NodeAddress, NodeDaemonEndpoints, NodeStatus, Pod,
    PodCondition, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

/// The node every running pod of [`pod`] is bound to.
pub const NODE: &str = "node-1";
/// The InternalIP of [`NODE`] in [`node`].
pub const NODE_ADDRESS: &str = "127.0.0.1";
/// When every pod of [`pod`] was created.
pub const CREATED: &str = "2026-11-27T07:00:00Z";
/// When every running pod of [`pod`] became Ready.
pub const READY_SINCE: &str = "2026-11-27T07:01:00Z";

fn time(t: &str) -> Time {
    Time(t.parse::<Timestamp>().unwrap_or(Timestamp::UNIX_EPOCH))
}

fn meta(namespace: Option<&str>, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        ..Default::default()
    }
}

/// A pod in `phase` with these containers (image `busybox`). A `Running`
/// pod is bound to [`NODE`], Ready since [`READY_SINCE`] and its containers
/// run; any other phase is unscheduled and its containers wait.
pub fn pod(namespace: &str, name: &str, phase: &str, containers: &[&str]) -> Pod {
    let running = phase == "Running";
    let state = |running: bool| ContainerState {
        running: running.then(|| ContainerStateRunning {
            started_at: Some(time(READY_SINCE)),
        }),
        waiting: (!running).then(|| ContainerStateWaiting {
            reason: Some("ContainerCreating".into()),
            message: None,
        }),
        terminated: None,
    };
    Pod {
        metadata: ObjectMeta {
            uid: Some(format!("uid-{name}")),
            creation_timestamp: Some(time(CREATED)),
            ..meta(Some(namespace), name)
        },
        spec: Some(PodSpec {
            node_name: running.then(|| NODE.to_owned()),
            containers: containers
                .iter()
                .map(|c| Container {
                    name: (*c).into(),
                    image: Some("busybox".into()),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some(phase.into()),
            conditions: running.then(|| {
                vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(time(READY_SINCE)),
                    ..Default::default()
                }]
            }),
            container_statuses: Some(
                containers
                    .iter()
                    .map(|c| ContainerStatus {
                        name: (*c).into(),
                        ready: running,
                        restart_count: 0,
                        image: "busybox".into(),
                        image_id: String::new(),
                        state: Some(state(running)),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
    }
}

fn pairs(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The pod with these labels.
pub fn with_labels(mut pod: Pod, labels: &[(&str, &str)]) -> Pod {
    pod.metadata.labels = Some(pairs(labels));
    pod
}

/// The pod with these annotations.
pub fn with_annotations(mut pod: Pod, annotations: &[(&str, &str)]) -> Pod {
    pod.metadata.annotations = Some(pairs(annotations));
    pod
}

/// The pod bound to `node` (`""`: unscheduled), whatever its phase.
pub fn with_node(mut pod: Pod, node: &str) -> Pod {
    if let Some(spec) = pod.spec.as_mut() {
        spec.node_name = (!node.is_empty()).then(|| node.to_owned());
    }
    pod
}

/// A node with an InternalIP.
pub fn node(name: &str, internal_ip: &str) -> Node {
    Node {
        metadata: meta(None, name),
        status: Some(NodeStatus {
            addresses: Some(vec![NodeAddress {
                type_: "InternalIP".into(),
                address: internal_ip.into(),
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The node publishing its kubelet's port in `status.daemonEndpoints`.
pub fn with_kubelet_port(mut node: Node, port: i32) -> Node {
    if let Some(status) = node.status.as_mut() {
        status.daemon_endpoints = Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port }),
        });
    }
    node
}

/// A namespace.
pub fn namespace(name: &str) -> Namespace {
    Namespace {
        metadata: meta(None, name),
        ..Default::default()
    }
}

/// A workload selecting pods by these labels: `kind` is `Deployment`,
/// `ReplicaSet`, `StatefulSet`, `DaemonSet` (group `apps`) or `Job` (group
/// `batch`). Its template holds one container `c`.
pub fn workload(kind: &str, namespace: &str, name: &str, selector: &[(&str, &str)]) -> Value {
    let api_version = if kind == "Job" { "batch/v1" } else { "apps/v1" };
    let labels = pairs(selector);
    let mut spec = json!({
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        },
    });
    if kind == "StatefulSet" {
        spec["serviceName"] = json!(name);
    }
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_and_pending_pods() {
        let p = pod("ns", "web", "Running", &["app"]);
        assert_eq!(
            p.spec.as_ref().and_then(|s| s.node_name.as_deref()),
            Some(NODE)
        );
        let status = p.status.unwrap_or_default();
        assert!(status.container_statuses.unwrap_or_default()[0].ready);
        let p = pod("ns", "web", "Pending", &["app"]);
        assert_eq!(p.spec.as_ref().and_then(|s| s.node_name.clone()), None);
        assert!(
            p.status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .is_none()
        );
        let p = with_node(p, "n1");
        assert_eq!(p.spec.and_then(|s| s.node_name).as_deref(), Some("n1"));
        let n = with_kubelet_port(node("n1", "10.0.0.1"), 10250);
        let port = n
            .status
            .and_then(|s| s.daemon_endpoints)
            .and_then(|d| d.kubelet_endpoint)
            .map(|e| e.port);
        assert_eq!(port, Some(10250));
    }

    #[test]
    fn workloads_select_their_pods() {
        let d = workload("Deployment", "ns", "web", &[("app", "web")]);
        assert_eq!(d["apiVersion"], "apps/v1");
        assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web");
        assert_eq!(workload("Job", "ns", "x", &[])["apiVersion"], "batch/v1");
    }
}
