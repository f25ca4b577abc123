#![allow(clippy::unwrap_used)]
//! `deploy/` and `deploy/namespace` rendered by the REAL `kubectl kustomize`,
//! snapshotted, and checked for what the server, the aggregator, a user of
//! `kubectl checkpoint` and a highly available extension need.
//! (`kubelet-shim/tests/deploy.rs` checks that deploy/, deploy/shim and
//! deploy/namespace never share an object.)

use std::process::Command;

use kcr_testkit::kustomize::Rendered;
use serde_json::json;

fn args(container: &serde_json::Value) -> Vec<&str> {
    container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect()
}

#[test]
fn kustomize_renders_the_extension() {
    let deploy = Rendered::of("deploy").unwrap();
    insta::assert_snapshot!("deploy", deploy.yaml);

    let dep = deploy.get("Deployment", "checkpoint-apiserver").unwrap();
    assert_eq!(dep["metadata"]["namespace"], "kcr-system");
    let c = &dep["spec"]["template"]["spec"]["containers"][0];
    let args = args(c);
    assert!(
        args.contains(&"--feature-gates=ContainerCheckpointAPI=true"),
        "{args:?}"
    );
    assert!(args.contains(&"--secure-port=6443"), "{args:?}");
    // Shims are verified: the extension signs their serving certificates.
    assert!(args.contains(&"--shim-signer=true"), "{args:?}");
    assert!(
        !deploy.yaml.contains("--kubelet-insecure-tls"),
        "deploy/ never turns node verification off"
    );
    let role = deploy
        .get("ClusterRole", "kcr:checkpoint-apiserver")
        .unwrap();
    assert!(
        role["rules"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!({
                "apiGroups": ["certificates.k8s.io"],
                "resources": ["signers"],
                "resourceNames": ["checkpoint.kcr.dev/shim-serving"],
                "verbs": ["approve", "sign"],
            })),
        "approve and sign for the shim signer only: {role}"
    );
    assert!(
        !deploy.yaml.contains("for-testing"),
        "a testing flag in deploy/"
    );
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

    let svc = deploy.get("Service", "checkpoint-apiserver").unwrap();
    assert_eq!(svc["spec"]["ports"][0]["port"], 443);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "https");

    let apisvc = deploy
        .get("APIService", "v1alpha1.subresources.checkpoint.kcr.dev")
        .unwrap();
    assert_eq!(apisvc["spec"]["group"], "subresources.checkpoint.kcr.dev");
    assert_eq!(apisvc["spec"]["version"], "v1alpha1");
    assert_eq!(apisvc["spec"]["service"]["name"], "checkpoint-apiserver");
    assert_eq!(apisvc["spec"]["service"]["namespace"], "kcr-system");

    let delegator = deploy
        .get(
            "ClusterRoleBinding",
            "kcr:checkpoint-apiserver:system:auth-delegator",
        )
        .unwrap();
    assert_eq!(delegator["roleRef"]["name"], "system:auth-delegator");
    let reader = deploy
        .get("RoleBinding", "kcr:checkpoint-apiserver:auth-reader")
        .unwrap();
    assert_eq!(reader["metadata"]["namespace"], "kube-system");
    assert_eq!(reader["roleRef"]["kind"], "Role");
    assert_eq!(
        reader["roleRef"]["name"],
        "extension-apiserver-authentication-reader"
    );

    let role = deploy
        .get("ClusterRole", "kcr:checkpoint-apiserver")
        .unwrap()
        .to_string();
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
    let binding = deploy
        .get("ClusterRoleBinding", "kcr:checkpoint-apiserver")
        .unwrap();
    assert_eq!(binding["subjects"][0]["namespace"], "kcr-system");

    // The namespace is deploy/namespace's, not deploy/'s (deleting deploy/
    // must not delete checkpoint-shim with it).
    assert!(
        deploy.all("Namespace").is_empty(),
        "deploy/ declares a Namespace"
    );
}

/// What an admin binds with README.md's `kubectl create clusterrolebinding
/// alice-checkpoint --clusterrole=checkpoint-creator --user=alice` is enough
/// for everything `kubectl checkpoint` does (kubectl-cmd/src/client.rs
/// `PodClient` reads, `TYPE/NAME` included, and on the declarative path the
/// `PodCheckpoints` calls: create, list + watch to wait, delete an unclaimed
/// one, get for the `kubectl wait` it suggests), and no more.
#[test]
fn checkpoint_creator_is_all_kubectl_checkpoint_needs() {
    let deploy = Rendered::of("deploy").unwrap();
    let creator = deploy.get("ClusterRole", "checkpoint-creator").unwrap();
    assert_eq!(
        creator["rules"],
        json!([
            // the checkpoint: kube-apiserver's check, then the extension's
            {"apiGroups": ["subresources.checkpoint.kcr.dev"], "resources": ["pods/checkpoint"], "verbs": ["create"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["checkpoint"]},
            // the declarative path: a PodCheckpoint, waited on; an unclaimed one deleted
            {"apiGroups": ["checkpoint.kcr.dev"], "resources": ["podcheckpoints"], "verbs": ["create", "delete", "get", "list", "watch"]},
            // the pod (phase, containers); the pods a workload selects
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
            // TYPE/NAME: the selector of each kind the plugin resolves
            {"apiGroups": [""], "resources": ["replicationcontrollers", "services"], "verbs": ["get"]},
            {"apiGroups": ["apps"], "resources": ["daemonsets", "deployments", "replicasets", "statefulsets"], "verbs": ["get"]},
            {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get"]}
        ])
    );
    // Not aggregated to admin/edit: archives hold memory.
    let labels = creator["metadata"]["labels"].to_string();
    assert!(!labels.contains("aggregate-to"), "{labels}");
}

/// `kubectl checkpoint download` needs exactly `checkpoint-downloader`: the
/// PodCheckpoint (its node, size and sha256) and its archive, checked by
/// kube-apiserver and by the extension; the server reads the object and
/// calls the node agent as `get nodes/checkpoint`.
#[test]
fn checkpoint_downloader_is_all_a_download_needs() {
    let deploy = Rendered::of("deploy").unwrap();
    let downloader = deploy.get("ClusterRole", "checkpoint-downloader").unwrap();
    assert_eq!(
        downloader["rules"],
        json!([
            {"apiGroups": ["subresources.checkpoint.kcr.dev"], "resources": ["podcheckpoints/archive"], "verbs": ["get"]},
            {"apiGroups": ["checkpoint.kcr.dev"], "resources": ["podcheckpoints"], "verbs": ["get"]}
        ])
    );
    let labels = downloader["metadata"]["labels"].to_string();
    assert!(!labels.contains("aggregate-to"), "{labels}");
    let server = deploy
        .get("ClusterRole", "kcr:checkpoint-apiserver")
        .unwrap();
    let rules = server["rules"].as_array().unwrap();
    for want in [
        json!({"apiGroups": [""], "resources": ["nodes/checkpoint"], "verbs": ["get"]}),
        json!({"apiGroups": ["checkpoint.kcr.dev"], "resources": ["podcheckpoints"], "verbs": ["get"]}),
    ] {
        assert!(
            rules.contains(&want),
            "the server's ClusterRole lacks {want}"
        );
    }
}

/// An unavailable APIService stalls namespace deletion cluster-wide, so the
/// extension runs like metrics-server's high-availability manifests.
#[test]
fn the_extension_is_highly_available() {
    let deploy = Rendered::of("deploy").unwrap();
    let dep = deploy.get("Deployment", "checkpoint-apiserver").unwrap();
    let selector = &dep["spec"]["selector"]["matchLabels"];
    assert_eq!(dep["spec"]["replicas"], 2);
    assert_eq!(
        dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0,
        "a rollout never drops below two replicas"
    );
    let pod = &dep["spec"]["template"]["spec"];
    assert_eq!(pod["priorityClassName"], "system-cluster-critical");
    let spread = &pod["topologySpreadConstraints"][0];
    assert_eq!(spread["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(spread["maxSkew"], 1);
    assert_eq!(
        spread["whenUnsatisfiable"], "ScheduleAnyway",
        "a single-node cluster still runs both replicas"
    );
    assert_eq!(&spread["labelSelector"]["matchLabels"], selector);

    let pdb = deploy
        .get("PodDisruptionBudget", "checkpoint-apiserver")
        .unwrap();
    assert_eq!(pdb["apiVersion"], "policy/v1");
    assert_eq!(pdb["metadata"]["namespace"], "kcr-system");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], selector);

    // Clusters that limit system-cluster-critical to namespaces with a
    // matching quota (GKE) admit the pods only with this quota.
    let quota = deploy
        .get("ResourceQuota", "checkpoint-apiserver-critical-pods")
        .unwrap();
    assert_eq!(quota["metadata"]["namespace"], "kcr-system");
    assert_eq!(
        quota["spec"]["scopeSelector"]["matchExpressions"],
        json!([{"scopeName": "PriorityClass", "operator": "In", "values": ["system-cluster-critical"]}])
    );
    let room: u32 = quota["spec"]["hard"]["pods"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        room > 2 * 2,
        "room for two replicas, the surge and terminating pods: {room}"
    );
}

/// deploy/crd: the CRD and KEP-5823's viewer, editor and admin roles,
/// aggregated to nothing (archives hold memory), none writing `status`.
#[test]
fn the_crd_and_its_roles() {
    let crd = Rendered::of("deploy/crd").unwrap();
    insta::assert_snapshot!("deploy_crd", crd.yaml);
    crd.get(
        "CustomResourceDefinition",
        "podcheckpoints.checkpoint.kcr.dev",
    )
    .unwrap();
    let verbs = |role: &str, resource: &str| -> Vec<String> {
        let role = crd.get("ClusterRole", role).unwrap();
        let mut verbs: Vec<String> = role["rules"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["apiGroups"] == json!(["checkpoint.kcr.dev"]))
            .filter(|r| {
                r["resources"]
                    .as_array()
                    .unwrap()
                    .contains(&json!(resource))
            })
            .flat_map(|r| r["verbs"].as_array().unwrap().clone())
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        verbs.sort();
        verbs
    };
    assert_eq!(
        verbs("podcheckpoint-viewer", "podcheckpoints"),
        ["get", "list", "watch"]
    );
    assert_eq!(
        verbs("podcheckpoint-editor", "podcheckpoints"),
        ["create", "delete", "get", "list", "watch"]
    );
    assert_eq!(
        verbs("podcheckpoint-admin", "podcheckpoints"),
        [
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch"
        ]
    );
    for role in [
        "podcheckpoint-viewer",
        "podcheckpoint-editor",
        "podcheckpoint-admin",
    ] {
        assert_eq!(
            verbs(role, "podcheckpoints/status"),
            ["get", "list", "watch"]
        );
        let labels = crd.get("ClusterRole", role).unwrap()["metadata"]["labels"].to_string();
        assert!(!labels.contains("aggregate-to"), "{role}: {labels}");
        assert!(
            crd.get("ClusterRole", role).unwrap()["aggregationRule"].is_null(),
            "{role}"
        );
    }
    // deploy/crd and deploy/ share no object: each applies and deletes on its own
    let deploy = Rendered::of("deploy").unwrap();
    for doc in &crd.docs {
        let (kind, name) = (
            doc["kind"].as_str().unwrap(),
            doc["metadata"]["name"].as_str().unwrap(),
        );
        assert!(deploy.get(kind, name).is_err(), "{kind} {name} is in both");
    }
}

#[test]
fn the_namespace_is_its_own_kustomization() {
    let ns = Rendered::of("deploy/namespace").unwrap();
    insta::assert_snapshot!("deploy_namespace", ns.yaml);
    assert_eq!(ns.docs.len(), 1, "only the Namespace");
    assert_eq!(
        ns.get("Namespace", "kcr-system").unwrap()["apiVersion"],
        "v1"
    );
}

/// What hack/kind-up.sh applies: the namespace and deploy/, for kind.
#[test]
fn the_kind_overlay_renders() {
    let kind = Rendered::of("test/kind/overlay").unwrap();
    kind.get("Namespace", "kcr-system").unwrap();
    let dep = kind.get("Deployment", "checkpoint-apiserver").unwrap();
    let c = &dep["spec"]["template"]["spec"]["containers"][0];
    assert!(args(c).contains(&"--kubelet-insecure-tls"));
    assert_eq!(c["imagePullPolicy"], "Never");
}
