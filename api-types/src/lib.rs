//! Wire contract of kubectl-checkpoint.
//!
//! Everything that crosses a process boundary lives here, so the plugin
//! (`kubectl-cmd`), the aggregated API server (`apiserver-ext`) and the node
//! agent (`kubelet-shim`) agree on one definition:
//!
//! * the group/version constants of the aggregated API ([`SUBRESOURCES_GROUP`], [`VERSION`]);
//! * [`PodCheckpointOptions`], the request options (mirrors the proposal's
//!   `PodCheckpointOptions` in `k8s.io/api/core/v1`);
//! * [`ContainerCheckpoint`], the object returned on success;
//! * [`ContainerRef`], the container a checkpoint is of (`namespace/pod/container`);
//! * [`CheckpointResponse`], the kubelet's `{"items": [...]}` answer;
//! * [`PodCheckpoint`], the declarative custom resource of `checkpoint.kcr.dev`
//!   ([`podcheckpoint`]) and its CRD;
//! * [`status`] builders for every failure `metav1.Status` of the contract;
//! * [`duration`]: Go durations, parsed and printed once for every binary;
//! * [`timeouts`]: the one timeout model (default, bound, nested deadlines);
//! * [`discovery`] documents, [`features`] gates, [`validation`] of names and
//!   timeouts, and the [`archive`] file-name rule.

pub mod archive;
pub mod checkpoint;
pub mod container_ref;
pub mod discovery;
pub mod download;
pub mod duration;
pub mod features;
pub mod kubelet;
pub mod options;
pub mod podcheckpoint;
pub mod status;
pub mod timeouts;
pub mod validation;

pub use checkpoint::{ContainerCheckpoint, ContainerCheckpointSpec, ContainerCheckpointStatus};
pub use container_ref::ContainerRef;
pub use kubelet::CheckpointResponse;
pub use options::PodCheckpointOptions;
pub use podcheckpoint::{PodCheckpoint, PodCheckpointSpec, PodCheckpointStatus};
pub use status::StatusReason;

/// Re-exported so users of the types need not pin k8s-openapi themselves.
pub use k8s_openapi;

/// API group served by checkpoint-apiserver (cf. `register.go` `GroupName`).
pub const SUBRESOURCES_GROUP: &str = "subresources.checkpoint.kcr.dev";
/// The only version of [`SUBRESOURCES_GROUP`] so far.
pub const VERSION: &str = "v1alpha1";
/// `SUBRESOURCES_GROUP/VERSION`, the `apiVersion` of objects in this API.
pub const SUBRESOURCES_API_VERSION: &str = "subresources.checkpoint.kcr.dev/v1alpha1";
/// Name of the APIService that registers this group/version with the aggregator.
pub const API_SERVICE_NAME: &str = "v1alpha1.subresources.checkpoint.kcr.dev";
/// The resource the subresource hangs off.
pub const RESOURCE: &str = "pods";
/// The subresource the proposal adds.
pub const SUBRESOURCE: &str = "checkpoint";
/// `pods/checkpoint`, as discovery lists it.
pub const POD_CHECKPOINT_RESOURCE: &str = "pods/checkpoint";
/// The proposal's new verb, authorised on core `pods` by the extension.
pub const CHECKPOINT_VERB: &str = "checkpoint";
/// Kind of the success object.
pub const CONTAINER_CHECKPOINT_KIND: &str = "ContainerCheckpoint";
/// Kind of the request options object.
pub const POD_CHECKPOINT_OPTIONS_KIND: &str = "PodCheckpointOptions";
/// Default directory where the kubelet (and kubelet-shim) writes archives, under `--root-dir`.
pub const DEFAULT_KUBELET_ROOT_DIR: &str = "/var/lib/kubelet";
/// Sub-directory of the kubelet root dir holding checkpoint archives.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// Default port of kubelet-shim (the kubelet's is 10250).
pub const DEFAULT_SHIM_PORT: u16 = 10350;
/// The `spec.signerName` of checkpoint-shim serving certificates: requested
/// by the shims (`--rotate-server-certificates`), approved and signed by
/// checkpoint-apiserver (`--shim-signer`).
pub const SHIM_SERVING_SIGNER_NAME: &str = "checkpoint.kcr.dev/shim-serving";
pub use timeouts::MAX_TIMEOUT_SECONDS;

/// Path of the subresource for one pod in the aggregated group:
/// `/apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/{ns}/pods/{pod}/checkpoint`.
///
/// The caller must have validated `namespace` and `pod` (see [`validation`]);
/// valid names never need escaping.
pub fn pod_checkpoint_path(namespace: &str, pod: &str) -> String {
    format!("/apis/{SUBRESOURCES_GROUP}/{VERSION}/namespaces/{namespace}/pods/{pod}/{SUBRESOURCE}")
}

/// Path of the kubelet endpoint for one container: `/checkpoint/{ns}/{pod}/{container}`.
pub fn kubelet_checkpoint_path(namespace: &str, pod: &str, container: &str) -> String {
    format!("/checkpoint/{namespace}/{pod}/{container}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_exact() {
        assert_eq!(
            pod_checkpoint_path("default", "counter"),
            "/apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/default/pods/counter/checkpoint"
        );
        assert_eq!(
            kubelet_checkpoint_path("default", "counter", "app"),
            "/checkpoint/default/counter/app"
        );
        assert_eq!(
            SUBRESOURCES_API_VERSION,
            format!("{SUBRESOURCES_GROUP}/{VERSION}")
        );
        assert_eq!(API_SERVICE_NAME, format!("{VERSION}.{SUBRESOURCES_GROUP}"));
    }
}
