//! What a PodCheckpoint asks of this node, decided from its spec and the pod
//! as the node's pod reflector sees it: the containers to checkpoint, or a
//! terminal failure with a message a user can act on. Pure: no I/O.

use api_types::PodCheckpointSpec;
use api_types::k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use api_types::podcheckpoint::reason;

/// Why a PodCheckpoint cannot be done, for good: its `Ready` reason, a
/// message, and a short cause for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `CheckpointFailed` or `SourcePodReplaced`.
    pub reason: &'static str,
    /// Metric label: a fixed, small set.
    pub cause: &'static str,
    pub message: String,
}

/// The failure causes (metric label values).
pub mod cause {
    pub const POD_NOT_FOUND: &str = "pod_not_found";
    pub const POD_GONE: &str = "pod_left_node";
    pub const POD_NOT_RUNNING: &str = "pod_not_running";
    pub const UNKNOWN_CONTAINER: &str = "unknown_container";
    pub const CONTAINER_NOT_RUNNING: &str = "container_not_running";
    pub const NO_RUNNING_CONTAINER: &str = "no_running_container";
    pub const SOURCE_POD_REPLACED: &str = "source_pod_replaced";
    pub const RUNTIME: &str = "runtime";
    pub const INTERRUPTED: &str = "interrupted";
    pub const ARCHIVE: &str = "archive";
    /// `--max-archive-bytes` leaves no room for it.
    pub const ARCHIVE_BUDGET: &str = "archive_budget";
}

impl Failure {
    pub fn failed(cause: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason: reason::FAILED,
            cause,
            message: message.into(),
        }
    }

    pub fn replaced(message: impl Into<String>) -> Self {
        Self {
            reason: reason::SOURCE_POD_REPLACED,
            cause: cause::SOURCE_POD_REPLACED,
            message: message.into(),
        }
    }
}

/// The containers to checkpoint, in order, each named once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub containers: Vec<String>,
}

fn pod_name(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

fn status_of<'a>(pod: &'a Pod, container: &str) -> Option<&'a ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|s| s.name == container)
}

/// Why a container is not running, from its status (`waiting: CrashLoopBackOff`).
fn not_running_state(status: Option<&ContainerStatus>) -> String {
    let Some(state) = status.and_then(|s| s.state.as_ref()) else {
        return "no status yet".into();
    };
    if let Some(w) = &state.waiting {
        return format!(
            "waiting: {}",
            w.reason.as_deref().unwrap_or("unknown reason")
        );
    }
    if let Some(t) = &state.terminated {
        return format!(
            "terminated: {}, exit code {}",
            t.reason.as_deref().unwrap_or("unknown reason"),
            t.exit_code
        );
    }
    "unknown state".into()
}

fn is_running(pod: &Pod, container: &str) -> bool {
    status_of(pod, container)
        .and_then(|s| s.state.as_ref())
        .is_some_and(|s| s.running.is_some())
}

/// Decides what to checkpoint. Checks, in order: the pinned UID
/// (`SourcePodReplaced`), the pod's phase, the names asked for (unknown
/// ones listed with the valid names), each container running; an empty
/// list means every running regular container. Duplicate names count once.
pub fn plan(spec: &PodCheckpointSpec, pod: &Pod) -> Result<Plan, Failure> {
    let name = pod_name(pod);
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    if let Some(want) = spec.source_pod_uid.as_deref()
        && !want.is_empty()
        && want != uid
    {
        return Err(Failure::replaced(format!(
            "pod {name} has UID {uid}, not {want} (spec.sourcePodUID): the pod was replaced"
        )));
    }
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Unknown");
    if phase != "Running" {
        return Err(Failure::failed(
            cause::POD_NOT_RUNNING,
            format!("pod {name} is not running (phase {phase})"),
        ));
    }
    let regular: Vec<&str> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    if spec.containers.is_empty() {
        let running: Vec<String> = regular
            .iter()
            .filter(|c| is_running(pod, c))
            .map(|c| (*c).to_owned())
            .collect();
        if running.is_empty() {
            return Err(Failure::failed(
                cause::NO_RUNNING_CONTAINER,
                format!("no container of pod {name} is running"),
            ));
        }
        return Ok(Plan {
            containers: running,
        });
    }
    let mut containers: Vec<String> = Vec::new();
    for c in &spec.containers {
        if !containers.contains(c) {
            containers.push(c.clone());
        }
    }
    let unknown: Vec<&str> = containers
        .iter()
        .map(String::as_str)
        .filter(|c| !regular.contains(c))
        .collect();
    if !unknown.is_empty() {
        let quoted: Vec<String> = unknown.iter().map(|c| format!("{c:?}")).collect();
        return Err(Failure::failed(
            cause::UNKNOWN_CONTAINER,
            format!(
                "{} {} not in pod {name}; valid container names: {}",
                if unknown.len() == 1 {
                    "container"
                } else {
                    "containers"
                },
                quoted.join(", ") + if unknown.len() == 1 { " is" } else { " are" },
                regular.join(", ")
            ),
        ));
    }
    for c in &containers {
        if !is_running(pod, c) {
            return Err(Failure::failed(
                cause::CONTAINER_NOT_RUNNING,
                format!(
                    "container {c:?} of pod {name} is not running ({})",
                    not_running_state(status_of(pod, c))
                ),
            ));
        }
    }
    Ok(Plan { containers })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(phase: &str, containers: &[(&str, Option<&str>)]) -> Pod {
        let specs: Vec<_> = containers
            .iter()
            .map(|(n, _)| json!({"name": n, "image": "img"}))
            .collect();
        let statuses: Vec<_> = containers
            .iter()
            .map(|(n, waiting)| match waiting {
                None => json!({"name": n, "image": "img", "imageID": "", "ready": true,
                    "restartCount": 0, "state": {"running": {}}}),
                Some(r) => json!({"name": n, "image": "img", "imageID": "", "ready": false,
                    "restartCount": 0, "state": {"waiting": {"reason": r}}}),
            })
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "uid-1"},
            "spec": {"containers": specs},
            "status": {"phase": phase, "containerStatuses": statuses}
        }))
        .unwrap()
    }

    fn spec(containers: &[&str]) -> PodCheckpointSpec {
        PodCheckpointSpec {
            source_pod_name: "web".into(),
            containers: containers.iter().map(|c| (*c).to_owned()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_to_every_running_container_and_dedups() {
        let p = pod(
            "Running",
            &[
                ("app", None),
                ("side", Some("CrashLoopBackOff")),
                ("db", None),
            ],
        );
        assert_eq!(plan(&spec(&[]), &p).unwrap().containers, ["app", "db"]);
        assert_eq!(
            plan(&spec(&["db", "app", "db"]), &p).unwrap().containers,
            ["db", "app"]
        );
    }

    #[test]
    fn bad_specs_say_why() {
        let p = pod(
            "Running",
            &[("app", None), ("side", Some("CrashLoopBackOff"))],
        );
        let e = plan(&spec(&["nope"]), &p).unwrap_err();
        assert_eq!(
            e.message,
            "container \"nope\" is not in pod ns/web; valid container names: app, side"
        );
        assert_eq!(
            (e.reason, e.cause),
            (reason::FAILED, cause::UNKNOWN_CONTAINER)
        );
        let e = plan(&spec(&["x", "app", "y"]), &p).unwrap_err();
        assert_eq!(
            e.message,
            "containers \"x\", \"y\" are not in pod ns/web; valid container names: app, side"
        );
        let e = plan(&spec(&["side"]), &p).unwrap_err();
        assert_eq!(
            e.message,
            "container \"side\" of pod ns/web is not running (waiting: CrashLoopBackOff)"
        );
        let e = plan(&spec(&[]), &pod("Pending", &[("app", None)])).unwrap_err();
        assert_eq!(e.message, "pod ns/web is not running (phase Pending)");
        let e = plan(
            &spec(&[]),
            &pod("Running", &[("app", Some("ContainerCreating"))]),
        )
        .unwrap_err();
        assert_eq!(e.message, "no container of pod ns/web is running");
        let mut pinned = spec(&[]);
        pinned.source_pod_uid = Some("uid-0".into());
        let e = plan(&pinned, &pod("Running", &[("app", None)])).unwrap_err();
        assert_eq!(e.reason, reason::SOURCE_POD_REPLACED);
        assert_eq!(
            e.message,
            "pod ns/web has UID uid-1, not uid-0 (spec.sourcePodUID): the pod was replaced"
        );
        pinned.source_pod_uid = Some("uid-1".into());
        assert!(plan(&pinned, &pod("Running", &[("app", None)])).is_ok());
    }
}
