#![allow(clippy::unwrap_used)]
//! The real startup pipeline — flags → `Options::validate` → `Config::from_options`
//! → `Server` — against the test kit's mock API server (plain HTTP) that
//! holds the `extension-apiserver-authentication` ConfigMap, a pod and a
//! node, answers SubjectAccessReviews, takes Events and Leases; the node is
//! a fake kubelet over TLS that wants the kubeconfig's bearer token. Then the
//! binary itself: it serves, and SIGTERM stops it cleanly.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use apiserver_ext::{Config, Options, Server};
use apiserver_lib::pki::{Ca, Pem};
use apiserver_lib::serve;
use apiserver_lib::tls::{self, ServerTrust};
use axum::Router;
use axum::extract::Request;
use axum::response::IntoResponse;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use kcr_testkit::harness::{InProcess, Process, certs, free_port, identity, wait_ready};
use kcr_testkit::mock_api::{LEASE_RESOURCE_VERSION, MockApi, MockServer, Scenario};
use serde_json::{Value, json};

/// checkpoint-apiserver's identity towards the API server and the node.
const SERVICE_ACCOUNT: &str = "system:serviceaccount:kcr-system:checkpoint-apiserver";

/// The mock API server (plain HTTP): the authentication ConfigMap, a pod on
/// node-1 whose kubelet listens on `kubelet_port`; the server's token is
/// `sa-token` and it may do anything; alice may checkpoint, nobody else.
fn mock_api(proxy_ca: &str, kubelet_port: u16) -> MockServer {
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system"},
        "data": {
            "requestheader-client-ca-file": proxy_ca,
            "requestheader-allowed-names": "[\"front-proxy-client\"]",
            "requestheader-username-headers": "[\"X-Remote-User\"]",
            "requestheader-group-headers": "[\"X-Remote-Group\"]",
            "requestheader-extra-headers-prefix": "[\"X-Remote-Extra-\"]"
        }
    });
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "uid": "uid-web"},
        "spec": {"nodeName": "node-1", "containers": [{"name": "app"}]},
        "status": {"phase": "Running", "containerStatuses": [{"name": "app", "ready": true,
            "restartCount": 0, "image": "x", "imageID": "", "state": {"running": {}}}]}
    });
    let node = json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}}}
    });
    MockApi::new([
        Scenario::Object(cm),
        Scenario::Object(pod),
        Scenario::Object(node),
        Scenario::token("sa-token", SERVICE_ACCOUNT),
        Scenario::allow_all(SERVICE_ACCOUNT),
        Scenario::allow_all("alice"),
    ])
    .serve()
    .unwrap()
}

/// A kubelet that checkpoints only for the bearer token `sa-token`.
async fn fake_kubelet(ca: &Ca) -> u16 {
    let serving = ca.server("node-1", &["127.0.0.1"]).unwrap();
    let config = tls::server_config(identity(&serving), &[]).unwrap();
    let router = Router::new().fallback(|req: Request| async move {
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if auth != "Bearer sa-token" {
            return (http::StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
        }
        axum::Json(
            json!({"items": [format!("/var/lib/kubelet/checkpoints{}.tar", req.uri().path())]}),
        )
        .into_response()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(serve::serve_tls(
        listener,
        config,
        router,
        std::future::pending(),
    ));
    port
}

fn kubeconfig(dir: &Path, server: &MockServer) -> std::path::PathBuf {
    server
        .kubeconfig()
        .user("u", Some("sa-token"))
        .context("x", "mock", "u", None)
        .current("x")
        .write(dir)
        .unwrap()
}

async fn post(port: u16, server_ca: Option<&str>, proxy: &Pem, user: &str) -> (u16, Value) {
    let trust = match server_ca {
        Some(ca) => ServerTrust::Ca(certs(ca)),
        None => ServerTrust::InsecureSkipVerify,
    };
    let cfg = tls::client_config(trust, Some(identity(proxy))).unwrap();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(cfg)
        .https_only()
        .enable_http1()
        .build();
    let client: Client<_, Full<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let req = http::Request::post(format!(
        "https://localhost:{port}/apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/default/pods/web/checkpoint?timeoutSeconds=5"
    ))
    .header("X-Remote-User", user)
    .body(Full::new(bytes::Bytes::new()))
    .unwrap();
    let resp = client.request(req).await.unwrap();
    let code = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (code, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_to_config_to_server() {
    let tmp = tempfile::tempdir().unwrap();
    let proxy_ca = Ca::new("front-proxy-ca").unwrap();
    let proxy = proxy_ca.client("front-proxy-client", &[]).unwrap();
    let kubelet_port = fake_kubelet(&Ca::new("kubelet-ca").unwrap()).await;
    let api = mock_api(&proxy_ca.pem.cert, kubelet_port);
    let kc = kubeconfig(tmp.path(), &api);
    let cert_dir = tmp.path().join("certs");

    let opts = Options::try_parse_from([
        "checkpoint-apiserver".to_owned(),
        format!("--kubeconfig={}", kc.display()),
        format!("--cert-dir={}", cert_dir.display()),
        "--feature-gates=ContainerCheckpointAPI=true".into(),
        "--kubelet-insecure-tls".into(),
    ])
    .unwrap();
    opts.validate().unwrap();
    let config = Config::from_options(&opts).await.unwrap();
    assert!(
        cert_dir.join("apiserver.crt").is_file(),
        "self-signed pair in --cert-dir"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = InProcess::spawn("checkpoint-apiserver", |shutdown| {
        Server::new(config).serve_on(listener, shutdown)
    });

    let (code, body) = post(port, None, &proxy, "alice").await;
    assert_eq!(code, 200, "{body:#}");
    assert_eq!(
        body["status"]["archivePath"],
        "/var/lib/kubelet/checkpoints/checkpoint/default/web/app.tar"
    );
    let (code, body) = post(port, None, &proxy, "bob").await;
    assert_eq!(code, 403, "{body:#}");
    // A front proxy from another CA: 401.
    let stranger = Ca::new("stranger")
        .unwrap()
        .client("front-proxy-client", &[])
        .unwrap();
    let (code, _) = post(port, None, &stranger, "alice").await;
    assert_eq!(code, 401);

    // What the server asked the API server, in order (events are written in the background).
    for _ in 0..150 {
        if api.requests().iter().any(|r| r.method == "DELETE") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // bob's SubjectAccessReview comes in between: left out.
    let log: Vec<(String, Value)> = api
        .requests()
        .into_iter()
        .filter(|r| !r.path_and_query.ends_with("/subjectaccessreviews"))
        .map(|r| (r.line(), r.body))
        .collect();
    let lines: Vec<&str> = log.iter().map(|(l, _)| l.as_str()).collect();
    let lease =
        "/apis/coordination.k8s.io/v1/namespaces/kcr-system/leases/checkpoint-66dabcc3ade6668c51c8";
    assert_eq!(
        lines[..7],
        [
            "GET /api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication",
            "GET /api/v1/namespaces/default/pods/web",
            "GET /api/v1/nodes/node-1",
            &format!("GET {lease}"),
            "POST /apis/coordination.k8s.io/v1/namespaces/kcr-system/leases",
            "POST /api/v1/namespaces/default/events",
            &format!("DELETE {lease}"),
        ],
        "{lines:#?}"
    );
    let created = &log[4].1;
    assert!(
        created["spec"]["holderIdentity"]
            .as_str()
            .is_some_and(|h| h.contains('_')),
        "{created:#}"
    );
    assert_eq!(
        created["metadata"]["annotations"]["checkpoint.kcr.dev/container"],
        "app"
    );
    // Released (1 s after the node's answer) only while still ours.
    let deleted = &log[6].1;
    assert_eq!(
        deleted["preconditions"]["resourceVersion"], LEASE_RESOURCE_VERSION,
        "{deleted:#}"
    );
    let event = log[5].1.clone();
    assert_eq!(event["reason"], "Checkpointed");
    assert_eq!(event["involvedObject"]["uid"], "uid-web");

    // Graceful shutdown: the serve loop returns.
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let proxy_ca = Ca::new("front-proxy-ca").unwrap();
    let api = mock_api(&proxy_ca.pem.cert, 1);
    let kc = kubeconfig(tmp.path(), &api);
    let port = free_port();
    let mut child = Process::spawn(
        Command::new(env!("CARGO_BIN_EXE_checkpoint-apiserver")).args([
            format!("--kubeconfig={}", kc.display()),
            format!("--cert-dir={}", tmp.path().join("certs").display()),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={port}"),
            "--kubelet-insecure-tls".into(),
        ]),
        &tmp.path().join("apiserver.log"),
    )
    .unwrap();
    // Ready: /readyz answers ok (the API server is reachable).
    wait_ready(port, None, "/readyz", Duration::from_secs(20), || {
        child.alive()
    })
    .await
    .unwrap_or_else(|e| panic!("checkpoint-apiserver did not become ready: {e}"));
    let status = child.terminate().await.unwrap();
    let stderr = child.log();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("received SIGTERM"), "{stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
}
