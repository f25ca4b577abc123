//! `ContainerCheckpoint`, the object `pods/checkpoint` returns on success.
//!
//! The proposal's kubectl prints the node and the archive path; this object
//! carries them (and the rest a tool wants) so `-o json|yaml` has a typed form.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{CONTAINER_CHECKPOINT_KIND, SUBRESOURCES_API_VERSION};

/// Result of checkpointing one container of one pod.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerCheckpoint {
    pub api_version: String,
    pub kind: String,
    /// name `POD-CONTAINER-YYYYMMDDhhmmss`, namespace of the pod, creationTimestamp.
    pub metadata: ObjectMeta,
    pub spec: ContainerCheckpointSpec,
    pub status: ContainerCheckpointStatus,
}

/// What was asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerCheckpointSpec {
    pub pod_name: String,
    #[serde(rename = "podUID", default, skip_serializing_if = "String::is_empty")]
    pub pod_uid: String,
    pub container: String,
    /// Seconds passed to the runtime; 0 = the runtime's default.
    #[serde(default)]
    pub timeout_seconds: i64,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerCheckpointStatus {
    pub node_name: String,
    /// The address the node was reached at.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_address: String,
    /// Path of the archive on the node (root-only, mode 0600).
    pub archive_path: String,
    pub start_time: Time,
    pub completion_time: Time,
}

impl ContainerCheckpoint {
    /// Build the object for a finished checkpoint.
    pub fn new(
        namespace: &str,
        spec: ContainerCheckpointSpec,
        status: ContainerCheckpointStatus,
    ) -> Self {
        let name = object_name(&spec.pod_name, &spec.container, status.completion_time.0);
        Self {
            api_version: SUBRESOURCES_API_VERSION.to_owned(),
            kind: CONTAINER_CHECKPOINT_KIND.to_owned(),
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(namespace.to_owned()),
                creation_timestamp: Some(status.completion_time.clone()),
                ..Default::default()
            },
            spec,
            status,
        }
    }

    /// The `Node:` line of the proposal's output: `name/address`.
    pub fn node_display(&self) -> String {
        if self.status.node_address.is_empty() {
            self.status.node_name.clone()
        } else {
            format!("{}/{}", self.status.node_name, self.status.node_address)
        }
    }
}

/// Object name `POD-CONTAINER-YYYYMMDDhhmmss`, cut to 253 characters.
pub fn object_name(pod: &str, container: &str, at: Timestamp) -> String {
    let stamp = at.strftime("%Y%m%d%H%M%S").to_string();
    let mut base = format!("{pod}-{container}");
    let room = 253 - stamp.len() - 1;
    if base.len() > room {
        base.truncate(room);
        while base.ends_with(['-', '.']) {
            base.pop();
        }
    }
    format!("{base}-{stamp}")
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> ContainerCheckpoint {
        let start: Timestamp = "2026-11-27T07:30:00Z".parse().unwrap();
        let end: Timestamp = "2026-11-27T07:30:01Z".parse().unwrap();
        ContainerCheckpoint::new(
            "default",
            ContainerCheckpointSpec {
                pod_name: "counter".into(),
                pod_uid: "6f1c0b8e-2a1d-4a5e-9d53-0c1f0d9a4b11".into(),
                container: "app".into(),
                timeout_seconds: 30,
            },
            ContainerCheckpointStatus {
                node_name: "node-1".into(),
                node_address: "127.0.0.1".into(),
                archive_path: "/var/lib/kubelet/checkpoints/checkpoint-counter_default-app-2026-11-27T07:30:00Z.tar".into(),
                start_time: Time(start),
                completion_time: Time(end),
            },
        )
    }

    #[test]
    fn round_trips_and_snapshots() {
        let c = sample();
        assert_eq!(
            c.metadata.name.as_deref(),
            Some("counter-app-20261127073001")
        );
        assert_eq!(c.node_display(), "node-1/127.0.0.1");
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(
            json["apiVersion"],
            "subresources.checkpoint.kcr.dev/v1alpha1"
        );
        assert_eq!(
            json["spec"]["podUID"],
            "6f1c0b8e-2a1d-4a5e-9d53-0c1f0d9a4b11"
        );
        assert_eq!(
            serde_json::from_value::<ContainerCheckpoint>(json.clone()).unwrap(),
            c
        );
        let yaml = serde_saphyr::to_string(&c).unwrap();
        assert_eq!(
            serde_saphyr::from_str::<ContainerCheckpoint>(&yaml).unwrap(),
            c
        );
        insta::assert_json_snapshot!("container_checkpoint_json", json);
        insta::assert_snapshot!("container_checkpoint_yaml", yaml);
    }

    #[test]
    fn long_names_are_cut_to_a_valid_length() {
        let at: Timestamp = "2026-11-27T07:30:01Z".parse().unwrap();
        let n = object_name(&"p".repeat(253), "c", at);
        assert_eq!(n.len(), 253);
        assert!(crate::validation::validate_pod_name(&n).is_ok(), "{n}");
    }
}
