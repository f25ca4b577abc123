#![allow(clippy::unwrap_used)]
//! `deploy/shim` and its runtime variants rendered by the REAL `kubectl
//! kustomize`, snapshotted, and checked for what the DaemonSet must have;
//! and deploy/, deploy/shim and deploy/namespace checked to share no object,
//! so that `kubectl delete -k` of one never deletes another's.

use std::collections::BTreeMap;
use std::process::Command;

use kcr_testkit::kustomize::Rendered;
use serde_json::Value;

/// Each ready-to-apply variant: (folder, runtime socket, kubelet root dir).
const VARIANTS: [(&str, &str, &str); 3] = [
    (
        "deploy/shim",
        "/run/containerd/containerd.sock",
        "/var/lib/kubelet",
    ),
    (
        "deploy/shim/crio",
        "/var/run/crio/crio.sock",
        "/var/lib/kubelet",
    ),
    (
        "deploy/shim/k3s",
        "/run/k3s/containerd/containerd.sock",
        "/var/lib/kubelet",
    ),
];

fn by_name<'a>(list: &'a Value, key: &str) -> BTreeMap<&'a str, &'a Value> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| (v[key].as_str().unwrap(), v))
        .collect()
}

#[test]
fn kustomize_renders_the_daemonset() {
    let shim = Rendered::of("deploy/shim").unwrap();
    insta::assert_snapshot!("deploy_shim", shim.yaml);

    for want in [
        "kind: DaemonSet",
        "fieldPath: spec.nodeName",
        "--node-name=$(NODE_NAME)",
        "hostNetwork: true",
        "- tokenreviews",
        "- subjectaccessreviews",
        "name: checkpoint-shim\n  namespace: kcr-system",
        "--podcheckpoint-controller=true",
        "--max-concurrent-podcheckpoints=2",
    ] {
        assert!(shim.yaml.contains(want), "deploy/shim lacks {want:?}");
    }
    // The agent's rights, exactly: TokenReview and SubjectAccessReview for
    // its endpoint; for the PodCheckpoint controller, list/watch/patch
    // (finalizer) and delete (retention) of podcheckpoints (get: the archive
    // endpoint reads the object of each range), patch of their status, get/list/watch
    // of pods, create/patch of events.k8s.io events; for its serving
    // certificate (--rotate-server-certificates), its CertificateSigningRequests
    // and its Node's addresses. Nothing else.
    let role = shim.get("ClusterRole", "kcr:checkpoint-shim").unwrap();
    let rules: Vec<String> = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let list = |k: &str| {
                r[k].as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            format!(
                "{}|{}|{}",
                list("apiGroups"),
                list("resources"),
                list("verbs")
            )
        })
        .collect();
    assert_eq!(
        rules,
        [
            "authentication.k8s.io|tokenreviews|create",
            "authorization.k8s.io|subjectaccessreviews|create",
            "checkpoint.kcr.dev|podcheckpoints|get,list,watch,patch,delete",
            "checkpoint.kcr.dev|podcheckpoints/status|patch",
            "|pods|get,list,watch",
            "events.k8s.io|events|create,patch",
            "certificates.k8s.io|certificatesigningrequests|create,get,list,watch",
            "|nodes|get",
        ]
    );
    let daemonset = shim.get("DaemonSet", "checkpoint-shim").unwrap();
    let args = &daemonset["spec"]["template"]["spec"]["containers"][0]["args"];
    assert!(
        args.as_array()
            .unwrap()
            .iter()
            .any(|a| a == "--rotate-server-certificates=true"),
        "the shim asks for a certificate the extension verifies: {args}"
    );
    // The bypasses named for testing never ship.
    assert!(
        !shim.yaml.contains("for-testing"),
        "a testing flag in deploy/shim"
    );
    // The namespace is deploy/namespace's: deleting the shim keeps it.
    assert!(
        shim.all("Namespace").is_empty(),
        "deploy/shim declares a Namespace"
    );

    // Every flag the DaemonSet passes is one the binary knows.
    let ds = shim.get("DaemonSet", "checkpoint-shim").unwrap();
    let help = Command::new(env!("CARGO_BIN_EXE_checkpoint-shim"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for a in ds["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
    {
        let flag = a.as_str().unwrap().split('=').next().unwrap();
        assert!(
            help.contains(flag),
            "{flag} is not a flag of checkpoint-shim"
        );
    }
}

/// The node's paths come from one component per runtime; each variant mounts
/// the runtime socket and `<root dir>/checkpoints` from the host at the same
/// paths inside (the runtime gets a host path), and passes them as flags.
#[test]
fn each_runtime_variant_mounts_its_socket_and_root_dir() {
    let mut others = Vec::new();
    for (dir, socket, root_dir) in VARIANTS {
        let r = Rendered::of(dir).unwrap();
        if dir != "deploy/shim" {
            insta::assert_snapshot!(
                format!("deploy_shim_{}", dir.rsplit('/').next().unwrap()),
                r.yaml
            );
            others.push(r.clone());
        }
        let ds = r.get("DaemonSet", "checkpoint-shim").unwrap();
        let pod = &ds["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        let env = by_name(&c["env"], "name");
        assert_eq!(env["CRI_SOCKET"]["value"], socket, "{dir}");
        assert_eq!(env["KUBELET_ROOT_DIR"]["value"], root_dir, "{dir}");
        let args: Vec<&str> = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(
            args.contains(&"--container-runtime-endpoint=unix://$(CRI_SOCKET)"),
            "{dir}: {args:?}"
        );
        assert!(
            args.contains(&"--root-dir=$(KUBELET_ROOT_DIR)"),
            "{dir}: {args:?}"
        );

        let volumes = by_name(&pod["volumes"], "name");
        let mounts = by_name(&c["volumeMounts"], "name");
        let checkpoints = format!("{root_dir}/checkpoints");
        for (name, path, ty) in [
            ("cri-socket", socket, "Socket"),
            ("checkpoints", checkpoints.as_str(), "DirectoryOrCreate"),
        ] {
            assert_eq!(
                volumes[name]["hostPath"]["path"], path,
                "{dir}: volume {name}"
            );
            assert_eq!(
                volumes[name]["hostPath"]["type"], ty,
                "{dir}: volume {name}"
            );
            assert_eq!(mounts[name]["mountPath"], path, "{dir}: mount {name}");
        }
        assert_eq!(volumes.len(), 3, "{dir}: cri-socket, checkpoints, pki");
    }

    // The variants differ from deploy/shim only in the component's values.
    let default = Rendered::of("deploy/shim").unwrap();
    for r in others {
        assert_eq!(r.keys(), default.keys(), "{}", r.dir.display());
    }
}

/// `kubectl delete -k deploy/shim` deletes exactly the objects deploy/shim
/// renders; the same for deploy/. Neither may hold an object of the other,
/// nor the Namespace (deploy/namespace), or deleting one would take down the
/// other (the APIService left without its Service stalls every namespace
/// deletion in the cluster).
#[test]
fn deploy_shim_and_namespace_are_disjoint() {
    let deploy = Rendered::of("deploy").unwrap().keys();
    let namespace = Rendered::of("deploy/namespace").unwrap().keys();
    for (dir, _, _) in VARIANTS {
        let shim = Rendered::of(dir).unwrap().keys();
        let shared: Vec<_> = shim.intersection(&deploy).collect();
        assert!(shared.is_empty(), "{dir} and deploy/ share {shared:?}");
        let shared: Vec<_> = shim.intersection(&namespace).collect();
        assert!(
            shared.is_empty(),
            "{dir} and deploy/namespace share {shared:?}"
        );
    }
    let shared: Vec<_> = deploy.intersection(&namespace).collect();
    assert!(
        shared.is_empty(),
        "deploy/ and deploy/namespace share {shared:?}"
    );
    assert_eq!(
        namespace.into_iter().collect::<Vec<_>>(),
        [(
            String::new(),
            "Namespace".to_owned(),
            String::new(),
            "kcr-system".to_owned()
        )]
    );
}
