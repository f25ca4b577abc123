#![allow(clippy::unwrap_used)]
//! `deploy/shim` rendered by the REAL `kubectl kustomize`, snapshotted, and
//! checked for what the DaemonSet must have.

use std::path::Path;
use std::process::Command;

#[test]
fn kustomize_renders_the_daemonset() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/shim");
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(&dir)
        .output()
        .unwrap_or_else(|e| panic!("kubectl is required on PATH to render deploy/shim: {e}"));
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).unwrap();
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
