#![allow(clippy::unwrap_used)]
//! `deploy/` rendered by the REAL `kubectl kustomize`, snapshotted, and
//! checked for what the server and the aggregator need.

use std::path::Path;
use std::process::Command;

use kcr_testkit::manifests::{documents, find, render};

#[test]
fn kustomize_renders_the_extension() {
    let yaml = render(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy"));
    insta::assert_snapshot!("deploy", yaml);
    let docs = documents(&yaml);

    let dep = find(&docs, "Deployment", "checkpoint-apiserver");
    assert_eq!(dep["metadata"]["namespace"], "kcr-system");
    let c = &dep["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.contains(&"--feature-gates=ContainerCheckpointAPI=true"),
        "{args:?}"
    );
    assert!(args.contains(&"--secure-port=6443"), "{args:?}");
    assert!(!yaml.contains("for-testing"), "a testing flag in deploy/");
    assert_eq!(c["image"], "kcr.dev/checkpoint-apiserver:dev");
    assert_eq!(
        dep["spec"]["template"]["spec"]["serviceAccountName"],
        "checkpoint-apiserver"
    );

    // Every flag the Deployment passes is one the binary knows.
    let help = Command::new(env!("CARGO_BIN_EXE_checkpoint-apiserver"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for a in &args {
        let flag = a.split('=').next().unwrap();
        assert!(
            help.contains(flag),
            "{flag} is not a flag of checkpoint-apiserver"
        );
    }

    let svc = find(&docs, "Service", "checkpoint-apiserver");
    assert_eq!(svc["spec"]["ports"][0]["port"], 443);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "https");

    let apisvc = find(
        &docs,
        "APIService",
        "v1alpha1.subresources.checkpoint.kcr.dev",
    );
    assert_eq!(apisvc["spec"]["group"], "subresources.checkpoint.kcr.dev");
    assert_eq!(apisvc["spec"]["version"], "v1alpha1");
    assert_eq!(apisvc["spec"]["service"]["name"], "checkpoint-apiserver");
    assert_eq!(apisvc["spec"]["service"]["namespace"], "kcr-system");

    let delegator = find(
        &docs,
        "ClusterRoleBinding",
        "kcr:checkpoint-apiserver:system:auth-delegator",
    );
    assert_eq!(delegator["roleRef"]["name"], "system:auth-delegator");
    let reader = find(&docs, "RoleBinding", "kcr:checkpoint-apiserver:auth-reader");
    assert_eq!(reader["metadata"]["namespace"], "kube-system");
    assert_eq!(reader["roleRef"]["kind"], "Role");
    assert_eq!(
        reader["roleRef"]["name"],
        "extension-apiserver-authentication-reader"
    );

    let role = find(&docs, "ClusterRole", "kcr:checkpoint-apiserver").to_string();
    for want in [
        "\"pods\"",
        "\"nodes\"",
        "\"events\"",
        "\"tokenreviews\"",
        "\"subjectaccessreviews\"",
        "\"nodes/checkpoint\"",
        "\"nodes/proxy\"",
    ] {
        assert!(
            role.contains(want),
            "the server's ClusterRole lacks {want}: {role}"
        );
    }
    let binding = find(&docs, "ClusterRoleBinding", "kcr:checkpoint-apiserver");
    assert_eq!(binding["subjects"][0]["namespace"], "kcr-system");

    let creator = find(&docs, "ClusterRole", "checkpoint-creator");
    assert_eq!(
        creator["rules"],
        serde_json::json!([
            {"apiGroups": ["subresources.checkpoint.kcr.dev"], "resources": ["pods/checkpoint"], "verbs": ["create"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["checkpoint"]}
        ])
    );
    // Not aggregated to admin/edit: archives hold memory.
    let labels = creator["metadata"]["labels"].to_string();
    assert!(!labels.contains("aggregate-to"), "{labels}");
}
