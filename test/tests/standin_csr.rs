#![allow(clippy::unwrap_used)]
//! kube-apiserver-standin's CertificateSigningRequests and bound tokens,
//! through kube-rs: what kube-apiserver's CSR strategy, validation and the
//! CertificateApproval / CertificateSigning admission plugins do.

use api_types::k8s_openapi::ByteString;
use api_types::k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use api_types::k8s_openapi::api::core::v1::Pod;
use kcr_testkit::standin::{self, Config, Running};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

const POLICY: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: csr-approval}
rules:
- apiGroups: ["certificates.k8s.io"]
  resources: ["certificatesigningrequests", "certificatesigningrequests/approval", "certificatesigningrequests/status"]
  verbs: ["get", "update", "patch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: example-signer}
rules:
- apiGroups: ["certificates.k8s.io"]
  resources: ["signers"]
  resourceNames: ["example.com/*"]
  verbs: ["approve"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: bob-carol-approval}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: csr-approval}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: bob}
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: carol}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: carol-signer}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: example-signer}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: carol}
"#;

async fn client_of(text: &str) -> Client {
    let kc = kube::config::Kubeconfig::from_yaml(text).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    Client::try_from(cfg).unwrap()
}

async fn start() -> (tempfile::TempDir, Running, Client) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.yaml"), POLICY).unwrap();
    std::fs::write(
        dir.path().join("objects.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: kcr-system}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: shim-1, namespace: kcr-system}\nspec: {nodeName: n1, serviceAccountName: shim, containers: [{name: c}]}\n",
    )
    .unwrap();
    let mut config = Config::new(dir.path().join("pki"));
    config.policy_files = vec![dir.path().join("policy.yaml")];
    config.object_files = vec![dir.path().join("objects.yaml")];
    let running = standin::start(config).await.unwrap();
    let admin = client_of(
        &running
            .kubeconfig(standin::ADMIN_USER, &["system:masters".to_owned()])
            .unwrap(),
    )
    .await;
    (dir, running, admin)
}

fn csr(name: &str, signer: &str, request: &str) -> CertificateSigningRequest {
    serde_json::from_value(json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "signerName": signer,
            "request": ByteString(request.as_bytes().to_vec()),
            "usages": ["server auth"],
            "username": "someone-else",
            "groups": ["system:masters"],
        },
        "status": {"conditions": [{"type": "Approved", "status": "True"}]},
    }))
    .unwrap()
}

fn message(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.message),
        other => panic!("{other}"),
    }
}

fn approved(type_: &str) -> serde_json::Value {
    json!({"status": {"conditions": [{"type": type_, "status": "True", "reason": "Test", "message": "test"}]}})
}

#[tokio::test]
async fn csr_create_approval_and_status_follow_kube_apiserver() {
    let (_dir, api, admin) = start().await;
    let (request, _) = apiserver_lib::pki::serving_request("n1", &["n1".to_owned()]).unwrap();
    let all: Api<CertificateSigningRequest> = Api::all(admin.clone());

    // Create: the requester is the authenticated user; no status.
    let created = all
        .create(
            &PostParams::default(),
            &csr("c1", "example.com/serving", &request),
        )
        .await
        .unwrap();
    assert_eq!(created.spec.username.as_deref(), Some(standin::ADMIN_USER));
    assert_eq!(
        created.spec.groups,
        Some(vec![
            "system:masters".to_owned(),
            "system:authenticated".to_owned()
        ])
    );
    assert!(created.status.is_none_or(|s| s.conditions.is_none()));

    // A request that is not a PKCS#10 request is invalid.
    let (code, msg) = message(
        all.create(
            &PostParams::default(),
            &csr("c2", "example.com/serving", "nope"),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code, 422);
    assert!(
        msg.starts_with("CertificateSigningRequest.certificates.k8s.io \"c2\" is invalid: spec.request: Invalid value"),
        "{msg}"
    );

    // /approval needs `approve` on the signer: bob has the subresource, not the signer.
    let bob: Api<CertificateSigningRequest> =
        Api::all(client_of(&api.kubeconfig("bob", &[]).unwrap()).await);
    let (code, msg) = message(
        bob.patch_approval(
            "c1",
            &PatchParams::default(),
            &Patch::Merge(approved("Approved")),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code, 403);
    assert_eq!(
        msg,
        "certificatesigningrequests.certificates.k8s.io \"c1\" is forbidden: user not permitted to approve requests with signerName \"example.com/serving\""
    );

    // carol may approve for example.com/* : only the conditions are taken.
    let carol: Api<CertificateSigningRequest> =
        Api::all(client_of(&api.kubeconfig("carol", &[]).unwrap()).await);
    let mut patch = approved("Approved");
    patch["spec"] = json!({"username": "carol"});
    let after = carol
        .patch_approval("c1", &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
    assert_eq!(after.spec.username.as_deref(), Some(standin::ADMIN_USER));
    let conditions = after.status.as_ref().unwrap().conditions.as_ref().unwrap();
    assert_eq!(conditions[0].type_, "Approved");
    assert!(conditions[0].last_update_time.is_some());

    // Approved and Denied exclude each other.
    let mut both = approved("Approved");
    both["status"]["conditions"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "Denied", "status": "True"}));
    let (code, msg) = message(
        carol
            .patch_approval("c1", &PatchParams::default(), &Patch::Merge(both))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 422);
    assert!(
        msg.contains("Approved and Denied conditions are mutually exclusive"),
        "{msg}"
    );

    // /status: carol may not sign; the admin may, once; the conditions stay.
    let cert = json!({"status": {"certificate": ByteString(b"PEM".to_vec()), "conditions": []}});
    let (code, msg) = message(
        carol
            .patch_status("c1", &PatchParams::default(), &Patch::Merge(cert.clone()))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 403);
    assert!(
        msg.ends_with(
            "user not permitted to sign requests with signerName \"example.com/serving\""
        ),
        "{msg}"
    );
    let signed = all
        .patch_status("c1", &PatchParams::default(), &Patch::Merge(cert))
        .await
        .unwrap();
    let status = signed.status.unwrap();
    assert_eq!(status.certificate, Some(ByteString(b"PEM".to_vec())));
    assert_eq!(status.conditions.unwrap()[0].type_, "Approved");
    let (code, msg) = message(
        all.patch_status(
            "c1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"certificate": ByteString(b"OTHER".to_vec())}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code, 422);
    assert!(
        msg.contains(
            "status.certificate: Forbidden: updates may not modify existing certificate content"
        ),
        "{msg}"
    );

    // The field selector of signers.
    let listed = all
        .list(&kube::api::ListParams::default().fields("spec.signerName=example.com/serving"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let listed = all
        .list(&kube::api::ListParams::default().fields("spec.signerName=other.example/x"))
        .await
        .unwrap();
    assert!(listed.items.is_empty());
}

#[tokio::test]
async fn bound_tokens_name_their_pod_and_die_with_it() {
    let (_dir, api, admin) = start().await;
    assert_eq!(
        api.bound_service_account_token("kcr-system", "other", "shim-1")
            .unwrap_err(),
        "pod kcr-system/shim-1 runs as service account shim, not other"
    );
    let token = api
        .bound_service_account_token("kcr-system", "shim", "shim-1")
        .unwrap();
    let shim = client_of(&api.token_kubeconfig("shim", &token)).await;
    let (request, _) = apiserver_lib::pki::serving_request("n1", &["n1".to_owned()]).unwrap();
    let created = Api::<CertificateSigningRequest>::all(shim.clone())
        .create(
            &PostParams::default(),
            &csr("by-shim", "example.com/serving", &request),
        )
        .await;
    // No RBAC for the shim here: 403, but it was authenticated as the service account.
    let (code, msg) = message(created.unwrap_err());
    assert_eq!(code, 403);
    assert!(
        msg.contains("User \"system:serviceaccount:kcr-system:shim\""),
        "{msg}"
    );
    let review: serde_json::Value = shim
        .request(
            http::Request::post("/apis/authentication.k8s.io/v1/selfsubjectreviews")
                .header("content-type", "application/json")
                .body(
                    serde_json::to_vec(&json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}))
                        .unwrap(),
                )
                .unwrap(),
        )
        .await
        .unwrap();
    let user = &review["status"]["userInfo"];
    assert_eq!(user["username"], "system:serviceaccount:kcr-system:shim");
    assert_eq!(
        user["extra"]["authentication.kubernetes.io/pod-name"],
        json!(["shim-1"])
    );
    let uid = Api::<Pod>::namespaced(admin.clone(), "kcr-system")
        .get("shim-1")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    assert_eq!(
        user["extra"]["authentication.kubernetes.io/pod-uid"],
        json!([uid])
    );

    // The pod goes: its token no longer authenticates.
    Api::<Pod>::namespaced(admin, "kcr-system")
        .delete("shim-1", &DeleteParams::default())
        .await
        .unwrap();
    let (code, _) = message(
        Api::<Pod>::namespaced(shim, "kcr-system")
            .get("shim-1")
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 401);
}
