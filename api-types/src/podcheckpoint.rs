//! `PodCheckpoint` (`checkpoint.kcr.dev/v1alpha1`): a declarative,
//! asynchronous checkpoint of a pod's containers, fulfilled by the node
//! agent of the pod's node.
//!
//! Mirrors KEP-5823's `PodCheckpoint`
//! (`staging/src/k8s.io/api/node/v1alpha1/checkpoint_types.go` upstream):
//! the same condition (`Ready`) and reasons, `status.nodeName`,
//! `status.sourcePodUID`, `status.completionTime` and
//! `status.checkpointedContainers`, archive paths relative to the node's
//! checkpoint directory (no absolute host paths in the API). Out of tree it
//! is a CustomResourceDefinition in its own group (kube-apiserver serves a
//! group-version from a CRD or an APIService, never both), and it keeps
//! container-level archives: spec `sourcePodName`/`sourcePodUID` (flat,
//! rather than KEP-5823's later `sourcePod{name,uid}`), `containers`
//! (KEP-5823 always takes every container), `ttlSecondsAfterFinished` (as
//! Jobs). The spec is immutable (a CEL transition rule in the schema).
//!
//! The CRD is generated from these types ([`crd`]) and shipped in
//! `deploy/crd/` (checked by a test).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube_derive::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::timeouts::MAX_TIMEOUT_SECONDS;

/// API group of the custom resource (mirrors upstream's `checkpoint.k8s.io`).
pub const GROUP: &str = "checkpoint.kcr.dev";
/// Version of [`GROUP`].
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of a `PodCheckpoint`.
pub const API_VERSION: &str = "checkpoint.kcr.dev/v1alpha1";
/// Kind.
pub const KIND: &str = "PodCheckpoint";
/// Plural resource name.
pub const PLURAL: &str = "podcheckpoints";
/// Singular resource name (`kubectl create` prints
/// `podcheckpoint.checkpoint.kcr.dev/NAME created`).
pub const SINGULAR: &str = "podcheckpoint";
/// Short name (`kubectl get pcp`).
pub const SHORT_NAME: &str = "pcp";
/// Name of the CRD object.
pub const CRD_NAME: &str = "podcheckpoints.checkpoint.kcr.dev";
/// The finalizer the node agent puts on a PodCheckpoint it claims: its
/// archives are removed before the object goes.
pub const ARCHIVE_FINALIZER: &str = "checkpoint.kcr.dev/archive";

/// The summary condition type (`PodCheckpointReady` upstream).
pub const CONDITION_READY: &str = "Ready";

/// Reasons of the `Ready` condition, upstream's `PodCheckpointReason*`.
pub mod reason {
    /// Not yet taken (`Ready=False`): waiting for the agent or for a free slot.
    pub const PENDING: &str = "Pending";
    /// The agent is checkpointing (`Ready=False`).
    pub const IN_PROGRESS: &str = "CheckpointInProgress";
    /// Every requested container is checkpointed (`Ready=True`).
    pub const COMPLETED: &str = "CheckpointCompleted";
    /// Terminal failure (`Ready=False`); the message says why.
    pub const FAILED: &str = "CheckpointFailed";
    /// The pod named by the spec is not the instance asked for (`Ready=False`).
    pub const SOURCE_POD_REPLACED: &str = "SourcePodReplaced";
}

/// Which pod to checkpoint and how. Immutable after creation.
// clippy reads the repeated `printcolumn(type_ = ...)` keys as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "checkpoint.kcr.dev",
    version = "v1alpha1",
    kind = "PodCheckpoint",
    plural = "podcheckpoints",
    shortname = "pcp",
    category = "checkpoint",
    namespaced,
    status = "PodCheckpointStatus",
    derive = "PartialEq",
    derive = "Default",
    crates(
        kube_core = "::kube_core",
        k8s_openapi = "::k8s_openapi",
        schemars = "::schemars",
        serde = "::serde",
        serde_json = "::serde_json"
    ),
    printcolumn(name = "Pod", type_ = "string", json_path = ".spec.sourcePodName"),
    printcolumn(
        name = "Containers",
        type_ = "string",
        json_path = ".status.containers"
    ),
    printcolumn(name = "Node", type_ = "string", json_path = ".status.nodeName"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Size",
        type_ = "integer",
        json_path = ".status.totalSizeBytes",
        format = "int64"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(
    crates(kube_core = "::kube_core"),
    validation = Rule::new("self == oldSelf").message("spec is immutable")
)]
#[serde(rename_all = "camelCase")]
pub struct PodCheckpointSpec {
    /// Name of the pod to checkpoint, in the PodCheckpoint's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub source_pod_name: String,

    /// Pins one instance of the pod: the checkpoint fails with
    /// `SourcePodReplaced` unless the pod named `sourcePodName` has this UID.
    #[serde(
        rename = "sourcePodUID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(length(max = 128))]
    pub source_pod_uid: Option<String>,

    /// Containers to checkpoint; empty: every running regular container of
    /// the pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 63)))]
    pub containers: Vec<String>,

    /// Seconds the runtime may take for each container; 0 or unset: the
    /// node's default (`--runtime-request-timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_TIMEOUT_SECONDS))]
    pub timeout_seconds: Option<i64>,

    /// Delete the object (and so its archives) this many seconds after it
    /// finished (completed or failed), as Jobs do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i64>,
}

/// What the node agent observed and did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodCheckpointStatus {
    /// The node the pod ran on, where the archives are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,

    /// UID of the pod instance checkpointed (or being checkpointed).
    #[serde(
        rename = "sourcePodUID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub source_pod_uid: Option<String>,

    /// When the agent started checkpointing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,

    /// When the last archive was written (or the checkpoint failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,

    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Comma-separated names of the containers being or having been
    /// checkpointed (the `CONTAINERS` column: an API server's printer column
    /// shows one JSONPath result only, so a list cannot be one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containers: Option<String>,

    /// The containers checkpointed, each with its archive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkpointed_containers: Vec<PodCheckpointContainerStatus>,

    /// Sum of the archives' sizes (the `SIZE` column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_size_bytes: Option<i64>,

    /// The `Ready` condition (reasons Pending, CheckpointInProgress,
    /// CheckpointCompleted, CheckpointFailed, SourcePodReplaced), in the
    /// `metav1.Condition` shape.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// One checkpointed container (upstream's `PodCheckpointContainerStatus`,
/// plus what identifies its archive).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodCheckpointContainerStatus {
    /// Container name.
    pub name: String,
    /// Image of the container (as the runtime reports it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    /// `<runtime>://<id>`, as in the pod's status.
    #[serde(
        rename = "containerID",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub container_id: String,
    /// The archive on the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<CheckpointArchive>,
}

/// A checkpoint archive on the node.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointArchive {
    /// Path relative to the node's checkpoint directory (KEP-5823 keeps
    /// absolute host paths out of the API).
    pub path: String,
    /// Size in bytes.
    pub size_bytes: i64,
    /// Lower-case hex SHA-256 of the archive.
    pub sha256: String,
}

impl PodCheckpoint {
    /// The `Ready` condition, if the agent set one.
    pub fn ready_condition(&self) -> Option<&Condition> {
        self.status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == CONDITION_READY)
    }

    /// Whether the checkpoint reached a terminal state: completed, failed
    /// or replaced.
    pub fn is_finished(&self) -> bool {
        self.ready_condition().is_some_and(|c| {
            c.status == "True"
                || c.reason == reason::FAILED
                || c.reason == reason::SOURCE_POD_REPLACED
        })
    }

    /// Whether every requested archive is written (`Ready=True`).
    pub fn is_ready(&self) -> bool {
        self.ready_condition().is_some_and(|c| c.status == "True")
    }
}

/// `/apis/checkpoint.kcr.dev/v1alpha1/namespaces/{namespace}/podcheckpoints`;
/// `namespace` must be a validated name.
pub fn collection_path(namespace: &str) -> String {
    format!("/apis/{API_VERSION}/namespaces/{namespace}/{PLURAL}")
}

/// The CustomResourceDefinition, generated from these types (what
/// `deploy/crd/podcheckpoints.yaml` holds).
pub fn crd() -> CustomResourceDefinition {
    <PodCheckpoint as kube_core::CustomResourceExt>::crd()
}

/// Header of the generated manifest `deploy/crd/podcheckpoints.yaml`.
pub const CRD_MANIFEST_HEADER: &str = "# Generated from api-types/src/podcheckpoint.rs by\n#   cargo run -q -p api-types --example crdgen > deploy/crd/podcheckpoints.yaml\n# Do not edit: a test checks that this file matches the types.\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_agree_with_the_crd() {
        let crd = crd();
        assert_eq!(crd.metadata.name.as_deref(), Some(CRD_NAME));
        assert_eq!(crd.spec.group, GROUP);
        assert_eq!(crd.spec.names.plural, PLURAL);
        assert_eq!(crd.spec.names.kind, KIND);
        assert_eq!(crd.spec.names.singular.as_deref(), Some(SINGULAR));
        assert_eq!(
            collection_path("default"),
            "/apis/checkpoint.kcr.dev/v1alpha1/namespaces/default/podcheckpoints"
        );
        assert_eq!(
            crd.spec.names.short_names.as_deref(),
            Some(&[SHORT_NAME.to_owned()][..])
        );
        assert_eq!(crd.spec.versions[0].name, VERSION);
        assert_eq!(API_VERSION, format!("{GROUP}/{VERSION}"));
        assert_ne!(GROUP, crate::SUBRESOURCES_GROUP);
    }

    #[test]
    fn deploy_crd_is_generated_from_the_types() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/crd/podcheckpoints.yaml"
        );
        let shipped = std::fs::read_to_string(path).unwrap_or_default();
        let generated = format!(
            "{CRD_MANIFEST_HEADER}{}",
            serde_saphyr::to_string(&crd()).unwrap_or_default()
        );
        assert!(
            shipped == generated,
            "{path} is not what the types generate: run `cargo run -q -p api-types --example crdgen > deploy/crd/podcheckpoints.yaml`"
        );
    }

    #[test]
    fn crd_yaml_snapshot() {
        insta::assert_snapshot!(
            "podcheckpoints_crd",
            serde_saphyr::to_string(&crd()).unwrap_or_default()
        );
    }

    #[test]
    fn object_json_snapshot() {
        let mut pc = PodCheckpoint::new(
            "counter-x7k2p",
            PodCheckpointSpec {
                source_pod_name: "counter".into(),
                containers: vec!["app".into()],
                timeout_seconds: Some(30),
                ..Default::default()
            },
        );
        pc.metadata.namespace = Some("default".into());
        pc.status = Some(PodCheckpointStatus {
            node_name: Some("node-1".into()),
            source_pod_uid: Some("7b2c1e4a-0e3a-4f1b-9c2d-2a5f6e8d1234".into()),
            checkpointed_containers: vec![PodCheckpointContainerStatus {
                name: "app".into(),
                image: "localhost/kcr-test/app:v1".into(),
                container_id: "containerd://0123abcd".into(),
                archive: Some(CheckpointArchive {
                    path: "checkpoint-counter_default-app-2026-11-30T07:00:00Z.tar".into(),
                    size_bytes: 265_728,
                    sha256: "ab".repeat(32),
                }),
            }],
            total_size_bytes: Some(265_728),
            containers: Some("app".into()),
            ..Default::default()
        });
        insta::assert_json_snapshot!("podcheckpoint_json", pc);
        let back: PodCheckpoint =
            serde_json::from_value(serde_json::to_value(&pc).unwrap_or_default())
                .unwrap_or_default();
        assert_eq!(back, pc);
    }
}
