#![allow(clippy::unwrap_used)]
//! Shim mode with verified TLS, end to end in one process: the stand-in
//! kube-apiserver (CertificateSigningRequests, bound service-account tokens,
//! RBAC from the rendered deploy/ and deploy/shim manifests),
//! checkpoint-apiserver from its flags with `--shim-signer=true` (as
//! deploy/ runs it, as its ServiceAccount), and a real checkpoint-shim with
//! `--rotate-server-certificates` authenticating with a token bound to its
//! pod. The extension's own kubelet client then reaches the shim with the
//! certificate the signer issued — verified, no `--kubelet-insecure-tls` —
//! and refuses a shim that serves a self-signed one, naming UnknownIssuer.

use std::path::Path;
use std::time::{Duration, Instant};

use api_types::ContainerRef;
use apiserver_ext::kubelet_client::CheckpointCall;
use apiserver_ext::signer::{DEFAULT_SHIM_SERVICE_ACCOUNT, SIGNER_NAME};
use apiserver_ext::{Config, Options};
use apiserver_lib::pki::Ca;
use apiserver_lib::tls::{self, ReloadableCert};
use clap::Parser;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::Secret;
use kcr_testkit::fake_cri::{FakeContainer, FakeCri};
use kcr_testkit::fixtures::{manifest, node, running_pod};
use kcr_testkit::harness::{InProcess, write_file};
use kcr_testkit::kustomize::Rendered;
use kcr_testkit::standin;
use kube::Api;
use kube::api::{ListParams, PostParams};
use kubelet_shim::certificate::{CertificateManager, Error as CertError};

const SHIM_SA: &str = "checkpoint-shim";

fn shim_pod(name: &str, node: &str) -> serde_json::Value {
    let mut pod =
        serde_json::to_value(running_pod("kcr-system", name, node, &["checkpoint-shim"])).unwrap();
    pod["spec"]["serviceAccountName"] = SHIM_SA.into();
    pod
}

async fn client_of(kubeconfig: &str) -> kube::Client {
    let kc = kube::config::Kubeconfig::from_yaml(kubeconfig).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

/// A certificate manager for node-1 authenticating as `kubeconfig`.
async fn manager(kubeconfig: &str, timeout: Duration) -> CertificateManager {
    let (cert, key) = tls::generate_self_signed(&["node-1".to_owned()]).unwrap();
    let serving = tls::ServingCert {
        chain: tls::parse_certs(cert.as_bytes(), Path::new("c")).unwrap(),
        key: tls::parse_key(key.as_bytes(), Path::new("k")).unwrap(),
    };
    CertificateManager::new(
        client_of(kubeconfig).await,
        "node-1".into(),
        vec!["127.0.0.1".parse().unwrap()],
        ReloadableCert::new(serving).unwrap(),
        timeout,
    )
}

fn call(port: u16) -> CheckpointCall {
    CheckpointCall {
        node: "node-1".into(),
        address: "127.0.0.1".into(),
        port,
        container: ContainerRef::new("default", "web", "app"),
        timeout_seconds: 0,
    }
}

async fn start_shim(
    dir: &Path,
    name: &str,
    socket: &Path,
    client_ca: &Path,
    extra: &[String],
) -> (u16, InProcess) {
    let root = dir.join(format!("{name}-root"));
    std::fs::create_dir_all(&root).unwrap();
    let mut args = vec![
        "checkpoint-shim".to_owned(),
        format!("--container-runtime-endpoint=unix://{}", socket.display()),
        format!("--root-dir={}", root.display()),
        "--address=127.0.0.1".into(),
        "--port=0".into(),
        "--node-name=node-1".into(),
        format!("--client-ca-file={}", client_ca.display()),
        "--authorization-allow-users-for-testing=checkpoint-apiserver".into(),
        "--podcheckpoint-controller=false".into(),
    ];
    args.extend(extra.iter().cloned());
    let opts = kubelet_shim::Options::try_parse_from(&args).unwrap();
    opts.validate().unwrap();
    let config = kubelet_shim::Config::from_options(&opts).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = InProcess::spawn("checkpoint-shim", |shutdown| {
        kubelet_shim::Server::new(config).serve_on(listener, shutdown)
    });
    (port, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_extension_verifies_a_shim_whose_certificate_it_signed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    // The cluster: deploy/'s and deploy/shim's RBAC, a node with its address,
    // a shim pod on it and one on another node, the workload.
    let mut policy = Rendered::of("deploy").unwrap().yaml;
    policy.push_str("\n---\n");
    policy.push_str(&Rendered::of("deploy/shim").unwrap().yaml);
    write_file(dir, "policy.yaml", &policy);
    let objects = [
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kcr-system"}}),
        serde_json::to_value(node(
            "node-1",
            &[("InternalIP", "127.0.0.1"), ("Hostname", "node-1")],
            None,
        ))
        .unwrap(),
        serde_json::to_value(node("node-2", &[("InternalIP", "127.0.0.2")], None)).unwrap(),
        shim_pod("checkpoint-shim-aaaaa", "node-1"),
        shim_pod("checkpoint-shim-bbbbb", "node-2"),
        serde_json::to_value(running_pod("default", "web", "node-1", &["app"])).unwrap(),
    ];
    write_file(dir, "objects.yaml", &manifest(&objects).unwrap());
    let mut config = standin::Config::new(dir.join("apiserver-pki"));
    config.policy_files = vec![dir.join("policy.yaml")];
    config.object_files = vec![dir.join("objects.yaml")];
    config.write_kubeconfig = Some(dir.join("admin.kubeconfig"));
    let api = standin::start(config).await.unwrap();
    let admin = client_of(&std::fs::read_to_string(dir.join("admin.kubeconfig")).unwrap()).await;

    // checkpoint-apiserver as deploy/ runs it: its ServiceAccount, --shim-signer=true.
    let ext_user = "system:serviceaccount:kcr-system:checkpoint-apiserver";
    let ext_kubeconfig = api
        .kubeconfig(
            ext_user,
            &[
                "system:serviceaccounts".to_owned(),
                "system:serviceaccounts:kcr-system".to_owned(),
            ],
        )
        .unwrap();
    let kubelet_client_ca = Ca::new("kubelet-client-ca").unwrap();
    let ours = kubelet_client_ca
        .client("checkpoint-apiserver", &[])
        .unwrap();
    let args = vec![
        "checkpoint-apiserver".to_owned(),
        format!(
            "--kubeconfig={}",
            write_file(dir, "ext.kubeconfig", &ext_kubeconfig).display()
        ),
        "--shim-signer=true".to_owned(),
        format!("--cert-dir={}", dir.join("ext-certs").display()),
        format!(
            "--kubelet-client-certificate={}",
            write_file(dir, "ours.crt", &ours.cert).display()
        ),
        format!(
            "--kubelet-client-key={}",
            write_file(dir, "ours.key", &ours.key).display()
        ),
    ];
    let options = Options::try_parse_from(&args).unwrap();
    options.validate().unwrap();
    let ext = Config::from_options(&options).await.unwrap();
    let kubelet = ext.rest.kubelet_client.clone();

    // The CA was created in its Secret.
    let secret = Api::<Secret>::namespaced(admin.clone(), "kcr-system")
        .get("checkpoint-shim-ca")
        .await
        .unwrap();
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    assert!(secret.data.as_ref().unwrap().contains_key("tls.key"));

    // The shim's credentials: a token bound to its pod on node-1.
    let token = api
        .bound_service_account_token("kcr-system", SHIM_SA, "checkpoint-shim-aaaaa")
        .unwrap();
    let shim_kubeconfig = api.token_kubeconfig(DEFAULT_SHIM_SERVICE_ACCOUNT, &token);

    // Without the signer running, a request is not answered: the error
    // names the request and what must sign it.
    let err = manager(&shim_kubeconfig, Duration::from_secs(1))
        .await
        .request()
        .await
        .unwrap_err();
    let CertError::NotSigned { name, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(
        err.to_string(),
        format!(
            "CertificateSigningRequest {name} (signer checkpoint.kcr.dev/shim-serving) was not signed within 1s: checkpoint-apiserver must be running with --shim-signer=true to approve and sign it (kubectl get csr {name})"
        )
    );

    let signer = ext
        .shim_signer
        .clone()
        .expect("--shim-signer=true runs the signer");
    let signer = InProcess::spawn("shim signer", |shutdown| signer.run_until(shutdown));

    // The node: a fake CRI and the shim with --rotate-server-certificates.
    let fake = FakeCri::with_containers([FakeContainer::running("c-app", "default", "web", "app")]);
    let socket = dir.join("cri.sock");
    let _cri = fake.spawn_unix(&socket).await.unwrap();
    let client_ca = write_file(dir, "kubelet-client-ca.crt", &kubelet_client_ca.pem.cert);
    let (port, shim) = start_shim(
        dir,
        "rotating",
        &socket,
        &client_ca,
        &[
            format!(
                "--kubeconfig={}",
                write_file(dir, "shim.kubeconfig", &shim_kubeconfig).display()
            ),
            "--rotate-server-certificates=true".into(),
            "--node-ip=127.0.0.1".into(),
            "--serving-certificate-request-timeout=20s".into(),
        ],
    )
    .await;

    // The extension reaches it, verifying its certificate.
    let deadline = Instant::now() + Duration::from_secs(30);
    let archive = loop {
        match kubelet.checkpoint(&call(port)).await {
            Ok(path) => break path,
            Err(e) if Instant::now() < deadline => {
                eprintln!("not yet verified: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the extension never reached the shim with verified TLS: {e}"),
        }
    };
    assert!(archive.contains("checkpoint-web_default-app-"), "{archive}");

    // The request behind it: made by the shim's pod, approved by the signer.
    let csrs = Api::<CertificateSigningRequest>::all(admin.clone())
        .list(&ListParams::default().fields(&format!("spec.signerName={SIGNER_NAME}")))
        .await
        .unwrap();
    let signed: Vec<_> = csrs
        .items
        .iter()
        .filter(|c| {
            c.status
                .as_ref()
                .and_then(|s| s.certificate.as_ref())
                .is_some()
        })
        .collect();
    // (The request that timed out above is signed too, once the signer runs.)
    assert!(!signed.is_empty(), "{:#?}", csrs.items);
    for csr in &signed {
        assert_eq!(
            csr.spec.username.as_deref(),
            Some(DEFAULT_SHIM_SERVICE_ACCOUNT)
        );
        assert_eq!(
            csr.spec.extra.as_ref().unwrap()["authentication.kubernetes.io/pod-name"],
            vec!["checkpoint-shim-aaaaa".to_owned()]
        );
        let approved = csr
            .status
            .as_ref()
            .unwrap()
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Approved")
            .unwrap();
        assert_eq!(approved.reason.as_deref(), Some("AutoApproved"));
        assert_eq!(
            approved.message.as_deref(),
            Some(
                "checkpoint-apiserver approved the serving certificate of the checkpoint-shim on node node-1"
            )
        );
    }

    // A shim serving a self-signed certificate is refused, by name.
    let (self_signed_port, self_signed) =
        start_shim(dir, "self-signed", &socket, &client_ca, &[]).await;
    let err = kubelet
        .checkpoint(&call(self_signed_port))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");

    // A shim pod on node-2 asking for node-1's names is denied.
    let other = api
        .bound_service_account_token("kcr-system", SHIM_SA, "checkpoint-shim-bbbbb")
        .unwrap();
    let err = manager(
        &api.token_kubeconfig(DEFAULT_SHIM_SERVICE_ACCOUNT, &other),
        Duration::from_secs(20),
    )
    .await
    .request()
    .await
    .unwrap_err();
    let CertError::Denied {
        reason, message, ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(reason, "NamesNotOfNode");
    assert!(
        message.starts_with("the request asks for common name \"node-1\" (must be the node name), DNS name node-1, IP address 127.0.0.1 which node node-2 does not have"),
        "{message}"
    );

    // Anyone else (here the admin) is denied, and cannot pass for the shim:
    // the requester fields are the server's, not the body's.
    let err = manager(
        &std::fs::read_to_string(dir.join("admin.kubeconfig")).unwrap(),
        Duration::from_secs(20),
    )
    .await
    .request()
    .await
    .unwrap_err();
    assert!(
        matches!(&err, CertError::Denied { reason, .. } if reason == "NotShimServiceAccount"),
        "{err}"
    );
    let (request, _) =
        apiserver_lib::pki::serving_request("node-1", &["node-1".to_owned()]).unwrap();
    let forged: CertificateSigningRequest = serde_json::from_value(serde_json::json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": "forged"},
        "spec": {
            "signerName": SIGNER_NAME,
            "request": k8s_openapi::ByteString(request.into_bytes()),
            "usages": ["digital signature", "key encipherment", "server auth"],
            "username": DEFAULT_SHIM_SERVICE_ACCOUNT,
            "extra": {"authentication.kubernetes.io/pod-name": ["checkpoint-shim-aaaaa"]},
        },
        "status": {"certificate": k8s_openapi::ByteString(b"x".to_vec())},
    }))
    .unwrap();
    let created = Api::<CertificateSigningRequest>::all(admin.clone())
        .create(&PostParams::default(), &forged)
        .await
        .unwrap();
    assert_eq!(created.spec.username.as_deref(), Some(standin::ADMIN_USER));
    assert_eq!(created.spec.extra, None);
    assert!(created.status.is_none_or(|s| s.certificate.is_none()));

    self_signed.stop().await;
    shim.stop().await;
    signer.stop().await;
}
