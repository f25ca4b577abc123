#![allow(clippy::unwrap_used)]
//! checkpoint-apiserver over real TLS, calling the real `checkpoint-shim`
//! (kubelet-shim, in process) which checkpoints through the fake CRI of
//! `kcr-testkit` on a unix socket. The cluster (pods, nodes) is the fake
//! reader; the caller is a front proxy with a client certificate and
//! X-Remote-* headers, as kube-apiserver's aggregator calls.
//!
//! Nodes: `node-1` (a shim, gate on), `node-2` (a shim with
//! `--feature-gates=ContainerCheckpoint=false`), `node-3` (nothing
//! listening), `node-4` (a shim that does not authorise us).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apiserver_ext::Server;
use apiserver_ext::kubelet_client::{Credentials, HttpsKubeletClient};
use apiserver_ext::testing::{FakeListers, Fakes};
use apiserver_lib::authentication::Authenticator;
use apiserver_lib::authorization::StaticAuthorizerForTesting;
use apiserver_lib::options::SecureServingInfo;
use apiserver_lib::pki::{Ca, Pem};
use apiserver_lib::tls::{self, CaVerifier, ServerTrust};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use kcr_testkit::fake_cri::{CheckpointMode, FakeContainer, FakeCri};
use kcr_testkit::fixtures::{local_node, running_pod};
use kcr_testkit::harness::{InProcess, certs, free_port, identity, write_file};

fn pod(name: &str, node: &str, containers: &[&str]) -> k8s_openapi::api::core::v1::Pod {
    running_pod("default", name, node, containers)
}

struct Shim {
    port: u16,
    root: PathBuf,
    _server: InProcess,
}

/// A real checkpoint-shim, configured through its own flags.
async fn start_shim(
    dir: &Path,
    name: &str,
    socket: &Path,
    serving: &Pem,
    client_ca: &Path,
    extra: &[&str],
) -> Shim {
    let root = dir.join(format!("{name}-root"));
    std::fs::create_dir_all(&root).unwrap();
    let cert = write_file(dir, &format!("{name}.crt"), &serving.cert);
    let key = write_file(dir, &format!("{name}.key"), &serving.key);
    let endpoint = format!("unix://{}", socket.display());
    let mut args = vec![
        "checkpoint-shim".to_owned(),
        format!("--container-runtime-endpoint={endpoint}"),
        format!("--root-dir={}", root.display()),
        "--address=127.0.0.1".into(),
        "--port=0".into(),
        format!("--node-name={name}"),
        format!("--tls-cert-file={}", cert.display()),
        format!("--tls-private-key-file={}", key.display()),
        format!("--client-ca-file={}", client_ca.display()),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let opts = <kubelet_shim::Options as clap::Parser>::try_parse_from(&args).unwrap();
    opts.validate().unwrap();
    let config = kubelet_shim::Config::from_options(&opts).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = InProcess::spawn("checkpoint-shim", |shutdown| {
        kubelet_shim::Server::new(config).serve_on(listener, shutdown)
    });
    Shim {
        port,
        root,
        _server: server,
    }
}

struct Stack {
    addr: std::net::SocketAddr,
    server_ca: Ca,
    proxy: Pem,
    fake: FakeCri,
    fakes: Fakes,
    shim1: Shim,
    _shims: Vec<Shim>,
    _cri: kcr_testkit::fake_cri::UnixServer,
    _tmp: tempfile::TempDir,
    _server: InProcess,
}

async fn stack() -> Stack {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    // The fake CRI, shared by all shims.
    let fake = FakeCri::with_containers([
        FakeContainer::running("c-app", "default", "web", "app"),
        FakeContainer::running("c-side", "default", "web", "sidecar"),
    ]);
    let socket = dir.join("cri.sock");
    let cri = fake.spawn_unix(&socket).await.unwrap();

    // Node PKI: the kubelets' serving CA, and the CA of kubelet clients.
    let node_ca = Ca::new("node-ca").unwrap();
    let kubelet_client_ca = Ca::new("kubelet-client-ca").unwrap();
    let kubelet_client_ca_file =
        write_file(dir, "kubelet-client-ca.crt", &kubelet_client_ca.pem.cert);
    let serving = node_ca.server("node", &["localhost", "127.0.0.1"]).unwrap();
    let allow_us = "--authorization-allow-users-for-testing=checkpoint-apiserver";
    let shim1 = start_shim(
        dir,
        "node-1",
        &socket,
        &serving,
        &kubelet_client_ca_file,
        &[allow_us],
    )
    .await;
    let shim2 = start_shim(
        dir,
        "node-2",
        &socket,
        &serving,
        &kubelet_client_ca_file,
        &[allow_us, "--feature-gates=ContainerCheckpoint=false"],
    )
    .await;
    let shim4 = start_shim(
        dir,
        "node-4",
        &socket,
        &serving,
        &kubelet_client_ca_file,
        &["--authorization-allow-users-for-testing=someone-else"],
    )
    .await;
    let closed = free_port();

    let cluster = FakeListers::new()
        .with_pod(pod("web", "node-1", &["app", "sidecar"]))
        .with_pod(pod("web-gate", "node-2", &["app"]))
        .with_pod(pod("web-down", "node-3", &["app"]))
        .with_pod(pod("web-forbid", "node-4", &["app"]))
        .with_node(local_node("node-1", shim1.port))
        .with_node(local_node("node-2", shim2.port))
        .with_node(local_node("node-3", closed))
        .with_node(local_node("node-4", shim4.port));

    // The apiserver's identity towards nodes.
    let our_cert = kubelet_client_ca
        .client("checkpoint-apiserver", &[])
        .unwrap();
    let kubelet_client = HttpsKubeletClient::new(
        ServerTrust::Ca(certs(&node_ca.pem.cert)),
        Some(identity(&our_cert)),
        Credentials::None,
    )
    .unwrap();

    // Serving and the front proxy.
    let server_ca = Ca::new("server-ca").unwrap();
    let proxy_ca = Ca::new("front-proxy-ca").unwrap();
    let proxy = proxy_ca.client("front-proxy-client", &[]).unwrap();
    let serving = server_ca
        .server("checkpoint-apiserver", &["localhost", "127.0.0.1"])
        .unwrap();
    let proxy_cas = certs(&proxy_ca.pem.cert);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();

    let fakes = Fakes::new(cluster);
    let authenticator = Authenticator {
        request_header: Some(
            apiserver_lib::authentication::RequestHeaderConfig::with_default_headers(
                CaVerifier::new(&proxy_cas, Path::new("front-proxy-ca")).unwrap(),
                vec!["front-proxy-client".into()],
            ),
        ),
        client_ca: None,
        token: None,
    };
    let mut config = fakes.config(
        authenticator,
        Arc::new(StaticAuthorizerForTesting {
            users: vec!["alice".into()],
            groups: vec![],
        }),
    );
    config.secure_serving = SecureServingInfo {
        listen: addr,
        tls: tls::server_config(identity(&serving), &proxy_cas).unwrap(),
    };
    config.rest.kubelet.timeout_margin = Duration::from_secs(3);
    config.rest.kubelet_client = Arc::new(kubelet_client);
    let server = InProcess::spawn("checkpoint-apiserver", |shutdown| {
        Server::new(config).serve_on(listener, shutdown)
    });
    Stack {
        addr,
        server_ca,
        proxy,
        fake,
        fakes,
        shim1,
        _shims: vec![shim2, shim4],
        _cri: cri,
        _tmp: tmp,
        _server: server,
    }
}

impl Stack {
    /// POST as the front proxy on behalf of `user` (or without a certificate).
    async fn post(
        &self,
        user: &str,
        with_cert: bool,
        pod: &str,
        query: &str,
    ) -> (u16, serde_json::Value) {
        let cfg = tls::client_config(
            ServerTrust::Ca(certs(&self.server_ca.pem.cert)),
            with_cert.then(|| identity(&self.proxy)),
        )
        .unwrap();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(cfg)
            .https_only()
            .enable_http2()
            .build();
        let client: Client<_, Full<bytes::Bytes>> = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build(https);
        let uri = format!(
            "https://localhost:{}/apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/default/pods/{pod}/checkpoint?{query}",
            self.addr.port()
        );
        let req = http::Request::post(uri)
            .header("X-Remote-User", user)
            .header("X-Remote-Group", "devs")
            .body(Full::new(bytes::Bytes::new()))
            .unwrap();
        let resp = client.request(req).await.unwrap();
        let code = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (
            code,
            serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_through_the_real_shim() {
    let s = stack().await;

    // Success: the archive exists on the "node", under the shim's root dir.
    let (code, body) = s
        .post("alice", true, "web", "container=app&timeoutSeconds=10")
        .await;
    assert_eq!(code, 200, "{body:#}");
    assert_eq!(body["kind"], "ContainerCheckpoint");
    assert_eq!(body["status"]["nodeName"], "node-1");
    assert_eq!(body["status"]["nodeAddress"], "127.0.0.1");
    let archive = body["status"]["archivePath"].as_str().unwrap().to_owned();
    let dir = s.shim1.root.join("checkpoints");
    assert!(
        archive.starts_with(&format!("{}/checkpoint-web_default-app-", dir.display())),
        "{archive}"
    );
    assert!(Path::new(&archive).is_file(), "{archive}");
    assert_eq!(body["spec"]["timeoutSeconds"], 10, "{body:#}");
    let requests = s.fake.checkpoint_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].container_id, "c-app");
    assert_eq!(requests[0].timeout, 10);
    assert_eq!(s.fakes.events.events()[0].reason, "Checkpointed");

    // Two containers, none named: the list, before any node call.
    let (code, body) = s.post("alice", true, "web", "").await;
    assert_eq!(code, 400, "{body:#}");
    assert_eq!(
        body["message"],
        "a container name must be specified for pod web, choose one of: [app sidecar]"
    );

    // The runtime fails: the node's message comes through, naming the node.
    s.fake.set_mode(CheckpointMode::Fail(
        "CRIU dump failed: no space left".into(),
    ));
    let (code, body) = s.post("alice", true, "web", "container=sidecar").await;
    assert_eq!(code, 500, "{body:#}");
    assert_eq!(body["reason"], "InternalError");
    let msg = body["message"].as_str().unwrap();
    assert!(
        msg.starts_with("node node-1: ") && msg.contains("CRIU dump failed: no space left"),
        "{msg}"
    );

    // The runtime hangs: the request's timeout bounds it; 504.
    s.fake.set_mode(CheckpointMode::Hang);
    let started = Instant::now();
    let (code, body) = s
        .post("alice", true, "web", "container=app&timeoutSeconds=1")
        .await;
    assert_eq!(code, 504, "{body:#}");
    assert_eq!(body["reason"], "Timeout");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    s.fake.set_mode(CheckpointMode::Instant);

    // The node's gate is off.
    let (code, body) = s.post("alice", true, "web-gate", "").await;
    assert_eq!(code, 404, "{body:#}");
    assert_eq!(
        body["message"],
        "the kubelet on node node-2 does not serve the checkpoint API (feature gate ContainerCheckpoint)"
    );

    // Nothing listens on the node.
    let (code, body) = s.post("alice", true, "web-down", "").await;
    assert_eq!(code, 503, "{body:#}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("node node-3 (127.0.0.1:"),
        "{body:#}"
    );

    // The node does not authorise us.
    let (code, body) = s.post("alice", true, "web-forbid", "").await;
    assert_eq!(code, 500, "{body:#}");
    assert_eq!(
        body["message"],
        "checkpoint-apiserver is not authorised on node node-4: grant create on nodes/checkpoint (kubelet ≥1.30) or nodes/proxy (older kubelets)"
    );

    // RBAC says no; spoofed headers without the proxy's certificate say nothing.
    let (code, body) = s.post("bob", true, "web", "container=app").await;
    assert_eq!(code, 403, "{body:#}");
    let (code, body) = s.post("alice", false, "web", "container=app").await;
    assert_eq!(code, 401, "{body:#}");

    // Only the first request and the sidecar attempt reached the runtime successfully or not.
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "one archive, nothing left over from failures"
    );
}
