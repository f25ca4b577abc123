//! Kubernetes objects for server tests: a running pod, its variants, a node.
//! The same objects serve the servers' fakes (as values) and
//! kube-apiserver-standin (as a YAML manifest, [`manifest`]).

use api_types::k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateWaiting, ContainerStatus,
    DaemonEndpoint, Node, NodeAddress, NodeDaemonEndpoints, NodeStatus, Pod, PodSpec, PodStatus,
};
use api_types::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// kubectl's `kubectl.kubernetes.io/default-container` annotation.
pub const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";

/// A pod `ns/name` (uid `uid-NAME`) in phase Running on `node` (none when
/// empty) whose containers (image `app:v1`) all run.
pub fn running_pod(ns: &str, name: &str, node: &str, containers: &[&str]) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: (!node.is_empty()).then(|| node.to_owned()),
            containers: containers
                .iter()
                .map(|c| Container {
                    name: (*c).into(),
                    image: Some("app:v1".into()),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            container_statuses: Some(
                containers
                    .iter()
                    .map(|c| ContainerStatus {
                        name: (*c).into(),
                        ready: true,
                        image: "app:v1".into(),
                        state: Some(ContainerState {
                            running: Some(ContainerStateRunning::default()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
    }
}

/// `pod` in another phase.
pub fn with_phase(mut pod: Pod, phase: &str) -> Pod {
    if let Some(s) = pod.status.as_mut() {
        s.phase = Some(phase.into());
    }
    pod
}

/// `pod` with `container` waiting for `reason`.
pub fn with_waiting(mut pod: Pod, container: &str, reason: &str) -> Pod {
    if let Some(all) = pod
        .status
        .as_mut()
        .and_then(|s| s.container_statuses.as_mut())
    {
        for c in all.iter_mut().filter(|c| c.name == container) {
            c.state = Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.into()),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
    }
    pod
}

/// `pod` annotated with `container` as its default.
pub fn with_default_container(mut pod: Pod, container: &str) -> Pod {
    pod.metadata.annotations = Some(
        [(
            DEFAULT_CONTAINER_ANNOTATION.to_owned(),
            container.to_owned(),
        )]
        .into(),
    );
    pod
}

/// A node with addresses `(type, address)` and an optional published kubelet port.
pub fn node(name: &str, addresses: &[(&str, &str)], port: Option<i32>) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: None,
        status: Some(NodeStatus {
            addresses: Some(
                addresses
                    .iter()
                    .map(|(t, a)| NodeAddress {
                        type_: (*t).into(),
                        address: (*a).into(),
                    })
                    .collect(),
            ),
            daemon_endpoints: port.map(|p| NodeDaemonEndpoints {
                kubelet_endpoint: Some(DaemonEndpoint { port: p }),
            }),
            ..Default::default()
        }),
    }
}

/// A node at `127.0.0.1` (InternalIP) publishing `port` as its kubelet port:
/// a node agent of a test.
pub fn local_node(name: &str, port: u16) -> Node {
    node(name, &[("InternalIP", "127.0.0.1")], Some(i32::from(port)))
}

/// RBAC for node agents' SubjectAccessReviews (kube-apiserver-standin
/// policy): `alice` may `create nodes/checkpoint`, nobody else.
pub const ALICE_MAY_CHECKPOINT_NODES: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: node-checkpointer}
rules:
- apiGroups: [""]
  resources: ["nodes/checkpoint"]
  verbs: ["create"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: alice-node-checkpoints}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: node-checkpointer}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}
"#;

/// A multi-document YAML manifest of `objects` (for kube-apiserver-standin's
/// object files).
pub fn manifest<T: serde::Serialize>(
    objects: &[T],
) -> Result<String, serde_saphyr::SerializeError> {
    serde_saphyr::to_string_multiple(objects)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_round_trip_through_yaml() {
        let pod = with_default_container(
            running_pod("default", "web", "node-1", &["app", "side"]),
            "side",
        );
        let yaml = manifest(&[
            serde_json::to_value(&pod).unwrap(),
            serde_json::to_value(local_node("node-1", 10350)).unwrap(),
        ])
        .unwrap();
        let docs: Vec<&str> = yaml.split("---\n").collect();
        assert_eq!(docs.len(), 2);
        let back: Pod = serde_saphyr::from_str(docs[0]).unwrap();
        assert_eq!(back, pod);
        assert!(docs[1].contains("kind: Node"), "{yaml}");
        assert!(docs[1].contains("Port: 10350"), "{yaml}");
    }
}
