//! From a pod and its node to the container and the endpoint to call: the
//! checks `pkg/registry/core/pod/strategy.go` makes for exec/attach/log
//! (container named or defaulted, pod running, host assigned), and the node
//! address choice of `pkg/util/node` (`GetPreferredNodeAddress`).

use api_types::status;
use k8s_openapi::api::core::v1::{ContainerStatus, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;

/// The annotation naming a pod's default container (kubectl's `DefaultContainerAnnotationName`).
pub const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";
/// The kubelet's port when the node does not publish one.
pub const DEFAULT_KUBELET_PORT: u16 = 10250;

/// A node address type (`v1.NodeAddressType`).
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressType {
    InternalIP,
    ExternalIP,
    Hostname,
    InternalDNS,
    ExternalDNS,
}

impl AddressType {
    pub fn as_str(self) -> &'static str {
        match self {
            AddressType::InternalIP => "InternalIP",
            AddressType::ExternalIP => "ExternalIP",
            AddressType::Hostname => "Hostname",
            AddressType::InternalDNS => "InternalDNS",
            AddressType::ExternalDNS => "ExternalDNS",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            AddressType::InternalIP,
            AddressType::ExternalIP,
            AddressType::Hostname,
            AddressType::InternalDNS,
            AddressType::ExternalDNS,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// Why a pod or node cannot be checkpointed; each maps to a Status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("cannot checkpoint a container in a non-running pod; current phase is {phase}")]
    PodNotRunning { pod: String, phase: String },
    #[error(
        "a container name must be specified for pod {pod}, choose one of: [{}]",
        .containers.join(" ")
    )]
    ContainerRequired {
        pod: String,
        containers: Vec<String>,
    },
    #[error(
        "container {container} is not valid for pod {pod}, choose one of: [{}]",
        .containers.join(" ")
    )]
    UnknownContainer {
        pod: String,
        container: String,
        containers: Vec<String>,
    },
    #[error("pod {pod} does not have a host assigned")]
    NoNode { pod: String },
    #[error("container {container} in pod {pod} is not running{}", state_suffix(.state))]
    ContainerNotRunning {
        pod: String,
        container: String,
        state: String,
    },
    #[error("pod {pod} is bound to node {node}, which does not exist")]
    NodeMissing { pod: String, node: String },
    #[error("node {node} has no address of the types [{}]", .types.join(" "))]
    NoAddress { node: String, types: Vec<String> },
}

fn state_suffix(state: &str) -> String {
    if state.is_empty() {
        String::new()
    } else {
        format!(" ({state})")
    }
}

impl Error {
    /// The Status of the contract: 400 for container names, 409 for states, 503 for an unreachable node.
    pub fn status(&self) -> Status {
        let message = self.to_string();
        match self {
            Error::ContainerRequired { .. } | Error::UnknownContainer { .. } => {
                status::bad_request(message)
            }
            Error::PodNotRunning { pod, .. }
            | Error::NoNode { pod }
            | Error::ContainerNotRunning { pod, .. }
            | Error::NodeMissing { pod, .. } => status::conflict(pod, message),
            Error::NoAddress { .. } => status::service_unavailable(message),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn pod_name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

fn container_names(pod: &Pod) -> Vec<String> {
    pod.spec
        .as_ref()
        .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default()
}

/// The pod must be in phase Running.
pub fn check_pod_running(pod: &Pod) -> Result<()> {
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Unknown".to_owned());
    if phase == "Running" {
        Ok(())
    } else {
        Err(Error::PodNotRunning {
            pod: pod_name(pod),
            phase,
        })
    }
}

/// The container to checkpoint: the one asked for (a regular container of
/// the pod), else the `kubectl.kubernetes.io/default-container` annotation's
/// (when it names one), else the only one.
pub fn resolve_container(pod: &Pod, requested: Option<&str>) -> Result<String> {
    let containers = container_names(pod);
    if let Some(name) = requested.filter(|n| !n.is_empty()) {
        if containers.iter().any(|c| c == name) {
            return Ok(name.to_owned());
        }
        return Err(Error::UnknownContainer {
            pod: pod_name(pod),
            container: name.to_owned(),
            containers,
        });
    }
    if let Some(default) = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEFAULT_CONTAINER_ANNOTATION))
        && containers.contains(default)
    {
        return Ok(default.clone());
    }
    match containers.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(Error::ContainerRequired {
            pod: pod_name(pod),
            containers,
        }),
    }
}

/// The node the pod is bound to.
pub fn node_name(pod: &Pod) -> Result<String> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Error::NoNode { pod: pod_name(pod) })
}

fn describe_state(status: &ContainerStatus) -> String {
    let Some(state) = &status.state else {
        return String::new();
    };
    if let Some(w) = &state.waiting {
        return match &w.reason {
            Some(r) => format!("waiting: {r}"),
            None => "waiting".to_owned(),
        };
    }
    if let Some(t) = &state.terminated {
        return match &t.reason {
            Some(r) => format!("terminated: {r}"),
            None => "terminated".to_owned(),
        };
    }
    String::new()
}

/// The container's status must say running.
pub fn check_container_running(pod: &Pod, container: &str) -> Result<()> {
    let status = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|all| all.iter().find(|c| c.name == container));
    let running = status
        .and_then(|s| s.state.as_ref())
        .is_some_and(|s| s.running.is_some());
    if running {
        Ok(())
    } else {
        Err(Error::ContainerNotRunning {
            pod: pod_name(pod),
            container: container.to_owned(),
            state: status.map(describe_state).unwrap_or_default(),
        })
    }
}

/// The address to call a node at: the first address of the first preferred
/// type that the node lists.
pub fn node_address(node: &Node, types: &[AddressType]) -> Result<String> {
    let addresses = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_deref())
        .unwrap_or_default();
    types
        .iter()
        .find_map(|t| {
            addresses
                .iter()
                .find(|a| a.type_ == t.as_str() && !a.address.is_empty())
                .map(|a| a.address.clone())
        })
        .ok_or_else(|| Error::NoAddress {
            node: node.metadata.name.clone().unwrap_or_default(),
            types: types.iter().map(|t| t.as_str().to_owned()).collect(),
        })
}

/// The port: the flag's when given, else the node's published kubelet port, else 10250.
pub fn node_port(node: &Node, flag: Option<u16>) -> u16 {
    if let Some(p) = flag {
        return p;
    }
    node.status
        .as_ref()
        .and_then(|s| s.daemon_endpoints.as_ref())
        .and_then(|d| d.kubelet_endpoint.as_ref())
        .and_then(|e| u16::try_from(e.port).ok())
        .filter(|p| *p != 0)
        .unwrap_or(DEFAULT_KUBELET_PORT)
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Pods and nodes for tests.
    use k8s_openapi::api::core::v1::{
        Container, ContainerState, ContainerStateRunning, ContainerStateWaiting, ContainerStatus,
        DaemonEndpoint, Node, NodeAddress, NodeDaemonEndpoints, NodeStatus, Pod, PodSpec,
        PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    /// A running pod on `node` whose containers all run.
    pub fn pod(ns: &str, name: &str, node: &str, containers: &[&str]) -> Pod {
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

    pub fn with_phase(mut pod: Pod, phase: &str) -> Pod {
        if let Some(s) = pod.status.as_mut() {
            s.phase = Some(phase.into());
        }
        pod
    }

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

    pub fn with_default_container(mut pod: Pod, container: &str) -> Pod {
        pod.metadata.annotations = Some(
            [(
                super::DEFAULT_CONTAINER_ANNOTATION.to_owned(),
                container.to_owned(),
            )]
            .into(),
        );
        pod
    }

    /// A node with addresses `(type, address)` and an optional published port.
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
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    const DEFAULT_TYPES: [AddressType; 3] = [
        AddressType::InternalIP,
        AddressType::ExternalIP,
        AddressType::Hostname,
    ];

    #[test]
    fn container_choice() {
        let single = pod("ns", "p", "n1", &["app"]);
        assert_eq!(resolve_container(&single, None).unwrap(), "app");
        assert_eq!(resolve_container(&single, Some("")).unwrap(), "app");
        assert_eq!(resolve_container(&single, Some("app")).unwrap(), "app");

        let multi = pod("ns", "m", "n1", &["app", "sidecar"]);
        let err = resolve_container(&multi, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a container name must be specified for pod m, choose one of: [app sidecar]"
        );
        assert_eq!(err.status().code, Some(400));
        let err = resolve_container(&multi, Some("nope")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "container nope is not valid for pod m, choose one of: [app sidecar]"
        );
        assert_eq!(err.status().reason.as_deref(), Some("BadRequest"));

        let defaulted = with_default_container(multi.clone(), "sidecar");
        assert_eq!(resolve_container(&defaulted, None).unwrap(), "sidecar");
        assert_eq!(resolve_container(&defaulted, Some("app")).unwrap(), "app");
        // An annotation naming no container is ignored.
        let stale = with_default_container(multi, "gone");
        assert!(matches!(
            resolve_container(&stale, None),
            Err(Error::ContainerRequired { .. })
        ));
    }

    #[test]
    fn states() {
        let p = pod("ns", "p", "n1", &["app"]);
        assert!(check_pod_running(&p).is_ok());
        assert!(check_container_running(&p, "app").is_ok());
        assert_eq!(node_name(&p).unwrap(), "n1");

        let pending = with_phase(pod("ns", "p", "", &["app"]), "Pending");
        let err = check_pod_running(&pending).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot checkpoint a container in a non-running pod; current phase is Pending"
        );
        assert_eq!(err.status().code, Some(409));
        let err = node_name(&pending).unwrap_err();
        assert_eq!(err.to_string(), "pod p does not have a host assigned");
        assert_eq!(err.status().reason.as_deref(), Some("Conflict"));

        let waiting = with_waiting(p, "app", "CrashLoopBackOff");
        let err = check_container_running(&waiting, "app").unwrap_err();
        assert_eq!(
            err.to_string(),
            "container app in pod p is not running (waiting: CrashLoopBackOff)"
        );
        assert_eq!(err.status().code, Some(409));
        let mut no_status = pod("ns", "p", "n1", &["app"]);
        no_status.status = None;
        assert_eq!(
            check_container_running(&no_status, "app")
                .unwrap_err()
                .to_string(),
            "container app in pod p is not running"
        );
        assert!(check_pod_running(&no_status).is_err());
    }

    #[test]
    fn addresses_and_ports() {
        let n = node(
            "n1",
            &[
                ("Hostname", "n1.example"),
                ("ExternalIP", "203.0.113.1"),
                ("InternalIP", "10.0.0.1"),
            ],
            Some(10250),
        );
        assert_eq!(node_address(&n, &DEFAULT_TYPES).unwrap(), "10.0.0.1");
        assert_eq!(
            node_address(&n, &[AddressType::Hostname, AddressType::InternalIP]).unwrap(),
            "n1.example"
        );
        let err = node_address(&n, &[AddressType::InternalDNS]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "node n1 has no address of the types [InternalDNS]"
        );
        assert_eq!(err.status().code, Some(503));

        assert_eq!(node_port(&n, None), 10250);
        assert_eq!(node_port(&n, Some(10350)), 10350);
        assert_eq!(node_port(&node("n2", &[], Some(12345)), None), 12345);
        assert_eq!(node_port(&node("n2", &[], Some(0)), None), 10250);
        assert_eq!(node_port(&node("n2", &[], Some(-1)), None), 10250);
        assert_eq!(node_port(&node("n2", &[], None), None), 10250);
        assert_eq!(
            AddressType::parse("ExternalDNS"),
            Some(AddressType::ExternalDNS)
        );
        assert_eq!(AddressType::parse("internalip"), None);
    }
}
