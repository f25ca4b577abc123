//! From a pod to the container to checkpoint: the checks
//! `pkg/registry/core/pod/strategy.go` makes for exec/attach/log before it
//! finds the node (pod running, container named or defaulted, host
//! assigned, container running). The node's address is
//! [`crate::kubelet_client`]'s business.

use api_types::status;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;

/// The annotation naming a pod's default container (kubectl's `DefaultContainerAnnotationName`).
pub const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";

/// Why a pod cannot be checkpointed; each maps to a Status.
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
}

fn state_suffix(state: &str) -> String {
    if state.is_empty() {
        String::new()
    } else {
        format!(" ({state})")
    }
}

impl Error {
    /// The Status of the contract: 400 for container names, 409 for states.
    pub fn status(&self) -> Status {
        let message = self.to_string();
        match self {
            Error::ContainerRequired { .. } | Error::UnknownContainer { .. } => {
                status::bad_request(message)
            }
            Error::PodNotRunning { pod, .. }
            | Error::NoNode { pod }
            | Error::ContainerNotRunning { pod, .. } => status::conflict(pod, message),
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

/// The container to checkpoint, by kubectl's rule
/// (`k8s.io/kubectl/pkg/cmd/util/podcmd` `FindOrDefaultContainerByName`):
/// the one asked for (a regular container of the pod), else the
/// `kubectl.kubernetes.io/default-container` annotation's (when it names
/// one), else the only one; several and none named is an error listing them.
pub fn find_or_default_container_by_name(pod: &Pod, requested: Option<&str>) -> Result<String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use kcr_testkit::fixtures::{
        running_pod as pod, with_default_container, with_phase, with_waiting,
    };

    #[test]
    fn container_choice() {
        let single = pod("ns", "p", "n1", &["app"]);
        assert_eq!(
            find_or_default_container_by_name(&single, None).unwrap(),
            "app"
        );
        assert_eq!(
            find_or_default_container_by_name(&single, Some("")).unwrap(),
            "app"
        );
        assert_eq!(
            find_or_default_container_by_name(&single, Some("app")).unwrap(),
            "app"
        );

        let multi = pod("ns", "m", "n1", &["app", "sidecar"]);
        let err = find_or_default_container_by_name(&multi, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a container name must be specified for pod m, choose one of: [app sidecar]"
        );
        assert_eq!(err.status().code, Some(400));
        let err = find_or_default_container_by_name(&multi, Some("nope")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "container nope is not valid for pod m, choose one of: [app sidecar]"
        );
        assert_eq!(err.status().reason.as_deref(), Some("BadRequest"));

        let defaulted = with_default_container(multi.clone(), "sidecar");
        assert_eq!(
            find_or_default_container_by_name(&defaulted, None).unwrap(),
            "sidecar"
        );
        assert_eq!(
            find_or_default_container_by_name(&defaulted, Some("app")).unwrap(),
            "app"
        );
        // An annotation naming no container is ignored.
        let stale = with_default_container(multi, "gone");
        assert!(matches!(
            find_or_default_container_by_name(&stale, None),
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
}
