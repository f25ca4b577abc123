#![allow(clippy::unwrap_used)]
//! checkpoint-shim run exactly the way `deploy/shim` runs it (issue 11,
//! points 1 and 4): the DaemonSet's arguments and environment (rendered by
//! `kubectl kustomize deploy/shim`, `$(NODE_NAME)` expanded as the kubelet
//! does), as root with every capability dropped and no new privileges, on a
//! read-only root file system, with its volumes where the DaemonSet mounts
//! them: the CRI socket (the fake CRI of `kcr-testkit`), the node's
//! `/var/lib/kubelet/checkpoints` (a test directory, root-owned 0755 as
//! `DirectoryOrCreate` leaves it), the pki emptyDir (root-owned 0777), and
//! the in-cluster service account of a kube-apiserver-standin that enforces
//! `deploy/shim`'s RBAC. Only `--port` changes. The shim must become ready,
//! keep its files private, checkpoint for a user the API server allows, and
//! log an audit line for it. Needs root (see `kcr_testkit::sandbox`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{Method, StatusCode};
use kcr_testkit::fake_cri::{FakeContainer, FakeCri};
use kcr_testkit::files::mode_of;
use kcr_testkit::fixtures::ALICE_MAY_CHECKPOINT_NODES;
use kcr_testkit::harness::{Process, free_port, wait_ready, write_file};
use kcr_testkit::hostile::{HttpsRequest, Proto, https_request};
use kcr_testkit::kustomize::{Rendered, volume};
use kcr_testkit::sandbox::{ManifestContainer, Sandbox};
use kcr_testkit::standin;

fn dir_with_mode(path: &Path, mode: u32) -> PathBuf {
    std::fs::create_dir_all(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemonset_serves_checkpoints_with_its_own_paths() {
    assert!(
        kcr_testkit::tmpfs::is_root(),
        "this test runs the binary as the DaemonSet does in a mount namespace: run the tests as root, as CI does"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let rendered = Rendered::of("deploy/shim").unwrap_or_else(|e| panic!("{e}"));
    let daemonset = rendered
        .get("DaemonSet", "checkpoint-shim")
        .unwrap_or_else(|e| panic!("{e}"));
    let container =
        ManifestContainer::from_workload(daemonset, &[("spec.nodeName", "node-1")]).unwrap();

    // The cluster: deploy/shim's RBAC, the service account's token, alice.
    let tmp = tempfile::tempdir().unwrap();
    let dir = dir_with_mode(tmp.path(), 0o755);
    write_file(
        &dir,
        "tokens.csv",
        "sa-token,system:serviceaccount:kcr-system:checkpoint-shim,uid-sa,\"system:serviceaccounts\"\nalice-token,alice,1001\n",
    );
    write_file(&dir, "alice.yaml", ALICE_MAY_CHECKPOINT_NODES);
    // The node, whose addresses the shim names in its certificate request.
    write_file(
        &dir,
        "objects.yaml",
        "apiVersion: v1\nkind: Node\nmetadata: {name: node-1}\nstatus: {addresses: [{type: InternalIP, address: 127.0.0.1}, {type: Hostname, address: localhost}]}\n",
    );
    let mut config = standin::Config::new(dir.join("apiserver-pki"));
    config.token_auth_file = Some(dir.join("tokens.csv"));
    config.policy_files = vec![
        root.join("deploy/shim/base/rbac.yaml"),
        dir.join("alice.yaml"),
    ];
    config.object_files = vec![dir.join("objects.yaml")];
    config.write_kubeconfig = Some(dir.join("admin.kubeconfig"));
    let api = standin::start(config).await.unwrap();
    // The signer (checkpoint-apiserver --shim-signer=true in a cluster; its
    // policy is tested in apiserver-ext/tests/shim_tls.rs): here the test
    // approves and signs every request with a CA of its own.
    let signer_ca = std::sync::Arc::new(apiserver_lib::pki::Ca::new("shim-ca").unwrap());
    let admin = {
        let kc = kube::config::Kubeconfig::read_from(dir.join("admin.kubeconfig")).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(cfg).unwrap()
    };
    let signer = tokio::spawn(sign_everything(admin, signer_ca.clone()));

    // The node, under `node`: /run (the CRI socket, the service account
    // secret, the emptyDir) and /var/lib (the kubelet's checkpoints
    // directory). The runtime sees the node's paths there too.
    let node = dir_with_mode(&dir.join("node"), 0o755);
    let run = dir_with_mode(&node.join("run"), 0o755);
    let var_lib = dir_with_mode(&node.join("var/lib"), 0o755);
    let checkpoints = dir_with_mode(&var_lib.join("kubelet/checkpoints"), 0o755);
    let socket = dir_with_mode(&run.join("containerd"), 0o755).join("containerd.sock");
    let fake = FakeCri::with_containers([FakeContainer::running("c-app", "default", "web", "app")]);
    fake.set_node_root(&node);
    let _cri = fake.spawn_unix(&socket).await.unwrap();
    let secret = dir_with_mode(&run.join("secrets/kubernetes.io/serviceaccount"), 0o755);
    write_file(&secret, "token", "sa-token");
    write_file(&secret, "ca.crt", &api.pki.server_ca);
    write_file(&secret, "namespace", "kcr-system");

    let port = free_port();
    let container = container.with_arg("port", &port.to_string());
    let mut sandbox = Sandbox::new(container.run_as_user, container.run_as_group)
        .bind(&run, "/run")
        .bind(&var_lib, "/var/lib");
    for (name, path) in &container.volume_mounts {
        let v = volume(daemonset, name).unwrap_or_else(|| panic!("no volume {name}"));
        if v.get("emptyDir").is_some() {
            sandbox = sandbox.empty_dir(path);
        } else {
            let host = v["hostPath"]["path"].as_str().unwrap();
            assert_eq!(
                host, path,
                "hostPath volume {name} is mounted at the same path"
            );
            assert!(
                host.starts_with("/run/") || host.starts_with("/var/lib/"),
                "{host}: extend this test"
            );
        }
    }
    for (k, v) in &container.env {
        sandbox = sandbox.env(k, v);
    }
    let sandbox = sandbox
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", &api.addr.port().to_string());
    let mut shim = Process::spawn(
        &mut sandbox.command(
            Path::new(env!("CARGO_BIN_EXE_checkpoint-shim")),
            &container.args,
        ),
        &dir.join("shim.log"),
    )
    .unwrap();
    wait_ready(port, None, "/readyz", Duration::from_secs(30), || {
        shim.alive()
    })
    .await
    .unwrap_or_else(|e| panic!("checkpoint-shim did not become ready: {e}"));

    // Its files are private: the pki emptyDir (ours: narrowed) and the checkpoints.
    let pki = run.join("checkpoint-shim/pki");
    assert_eq!(mode_of(&pki), 0o700, "{}", shim.log());
    assert_eq!(mode_of(&pki.join("checkpoint-shim.key")), 0o600);
    assert_eq!(mode_of(&checkpoints), 0o700);

    // Ready means serving the signed certificate: a checkpoint for alice
    // (TokenReview, SubjectAccessReview), as a user would ask a kubelet,
    // verifying the shim against the signer's CA.
    let serving = signer_ca.pem.cert.clone();
    let (code, body) = https_request(HttpsRequest {
        port,
        server_ca: &serving,
        identity: None,
        proto: Proto::Http1,
        method: Method::POST,
        target: "/checkpoint/default/web/app",
        headers: &[("Authorization", "Bearer alice-token")],
        body: Vec::new(),
        timeout: Duration::from_secs(30),
    })
    .await
    .unwrap();
    assert_eq!(code, StatusCode::OK, "{body}\n{}", shim.log());
    let resp: api_types::CheckpointResponse = serde_json::from_str(&body).unwrap();
    let archive = resp.archive_path().unwrap().to_owned();
    assert!(
        archive.starts_with("/var/lib/kubelet/checkpoints/checkpoint-web_default-app-"),
        "{archive}"
    );
    let on_host = checkpoints.join(Path::new(&archive).file_name().unwrap());
    assert_eq!(mode_of(&on_host), 0o600);

    // The audit line, in the DaemonSet's JSON log format.
    let status = shim.terminate().await.unwrap();
    assert!(status.success(), "{status}\n{}", shim.log());
    let audit: Vec<serde_json::Value> = shim
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["target"] == apiserver_lib::audit::TARGET)
        .map(|l| l["fields"].clone())
        .collect();
    assert_eq!(
        audit,
        [serde_json::json!({
            "message": "checkpoint request", "user": "alice",
            "groups": "system:authenticated", "namespace": "default", "pod": "web",
            "container": "app", "node": "node-1", "code": 200, "reason": "Success",
            "archive": archive
        })],
        "{}",
        shim.log()
    );
    signer.abort();
    api.stop().await;
}

/// Approve and sign every CertificateSigningRequest of the shim signer.
async fn sign_everything(client: kube::Client, ca: std::sync::Arc<apiserver_lib::pki::Ca>) {
    use api_types::k8s_openapi::ByteString;
    use api_types::k8s_openapi::api::certificates::v1::CertificateSigningRequest;
    use kube::api::{ListParams, Patch, PatchParams};
    let api: kube::Api<CertificateSigningRequest> = kube::Api::all(client);
    loop {
        let fields = format!("spec.signerName={}", api_types::SHIM_SERVING_SIGNER_NAME);
        for csr in api
            .list(&ListParams::default().fields(&fields))
            .await
            .map(|l| l.items)
            .unwrap_or_default()
        {
            if csr
                .status
                .as_ref()
                .and_then(|s| s.certificate.as_ref())
                .is_some()
            {
                continue;
            }
            let name = csr.metadata.name.clone().unwrap_or_default();
            let approve = serde_json::json!({"status": {"conditions": [
                {"type": "Approved", "status": "True", "reason": "Test", "message": "signed by the test"}]}});
            let _ = api
                .patch_approval(&name, &PatchParams::default(), &Patch::Merge(approve))
                .await;
            let request = apiserver_lib::pki::SigningRequest::from_pem(
                std::str::from_utf8(&csr.spec.request.0).unwrap(),
            )
            .unwrap();
            let now = time::OffsetDateTime::now_utc();
            let cert = ca
                .sign_serving_request(
                    &request,
                    now - time::Duration::minutes(5),
                    now + time::Duration::hours(1),
                )
                .unwrap();
            let status =
                serde_json::json!({"status": {"certificate": ByteString(cert.into_bytes())}});
            let _ = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                .await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
