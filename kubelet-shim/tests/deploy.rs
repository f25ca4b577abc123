#![allow(clippy::unwrap_used)]
//! `deploy/shim` rendered by the REAL `kubectl kustomize`, snapshotted, and
//! checked for what the DaemonSet must have.

use std::path::Path;

use kcr_testkit::manifests::render;

#[test]
fn kustomize_renders_the_daemonset() {
    let yaml = render(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/shim"));
    insta::assert_snapshot!("deploy_shim", yaml);

    for want in [
        "kind: DaemonSet",
        "path: /var/lib/kubelet/checkpoints",
        "mountPath: /var/lib/kubelet/checkpoints",
        "path: /run/containerd/containerd.sock",
        "fieldPath: spec.nodeName",
        "--node-name=$(NODE_NAME)",
        "hostNetwork: true",
        "- tokenreviews",
        "- subjectaccessreviews",
        "name: checkpoint-shim\n  namespace: kcr-system",
    ] {
        assert!(yaml.contains(want), "deploy/shim lacks {want:?}");
    }
    // The bypasses named for testing never ship.
    assert!(
        !yaml.contains("for-testing"),
        "a testing flag in deploy/shim"
    );
}
