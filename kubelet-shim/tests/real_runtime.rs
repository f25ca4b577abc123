#![allow(clippy::unwrap_used)]
//! `checkpoint-shim` (the real binary) against the REAL runtime: a private
//! containerd 2.x with runc and CRIU from `kcr-testkit`, a pod started the
//! way the kubelet starts it, the shim over HTTPS with a test CA, and
//! requests exactly as `curl -X POST --cert ...` would send them to a kubelet.
//!
//! A missing prerequisite (root, containerd 2.x, runc, CRIU, the test images)
//! fails the test with a message naming it; `sudo hack/setup.sh` installs them.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use apiserver_lib::pki::{Ca, Pem};
use apiserver_lib::tls::{self, ServerTrust};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kcr_testkit::archive::check_archive;
use kcr_testkit::containerd::{Containerd, Options};
use kcr_testkit::cri::{ContainerSpec, ContainerState, PodSpec};
use kcr_testkit::files::mode_of;
use kcr_testkit::harness::{Process, certs, free_port, identity, wait_ready, write_file};

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<bytes::Bytes>>;

/// A client of the shim as `who`, keeping its connections (two checkpoints
/// must fit in one second).
fn client(server_ca: &Ca, who: Option<&Pem>) -> HttpsClient {
    let cfg = tls::client_config(
        ServerTrust::Ca(certs(&server_ca.pem.cert)),
        who.map(identity),
    )
    .unwrap();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(cfg)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    Client::builder(TokioExecutor::new()).build(https)
}

async fn send(client: &HttpsClient, method: Method, url: &str) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method)
        .uri(url)
        .body(Empty::new())
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let code = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (code, String::from_utf8_lossy(&body).into_owned())
}

fn stamp_of(path: &str) -> &str {
    // checkpoint-counter_kcr-shim-app-2026-11-27T07:30:00Z[-N].tar
    let name = path.rsplit('/').next().unwrap();
    let at = name.find("-20").unwrap();
    &name[at + 1..at + 21]
}

/// `(name without -N, N)`: `...:33Z.tar` is attempt 1, `...:33Z-2.tar` attempt 2.
fn split_attempt(path: &str) -> (&str, u32) {
    let stem = path.strip_suffix(".tar").unwrap();
    match stem.rsplit_once("Z-") {
        Some((base, n)) => (base, n.parse().unwrap()),
        None => (stem.strip_suffix('Z').unwrap(), 1),
    }
}

#[tokio::test]
async fn checkpoint_a_running_container_through_the_shim() {
    let containerd = match Containerd::start(Options::default()).await {
        Ok(c) => c,
        Err(e) => panic!("the real-runtime harness cannot start: {e}"),
    };
    let mut runner = containerd.pod_runner().await.expect("CRI client");
    let pod = PodSpec::new("kcr-shim", "counter");
    let running = runner
        .run_pod(&pod, &[ContainerSpec::new("app")])
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot run the test pod: {e}\ncontainerd log:\n{}",
                containerd.log_tail(40)
            )
        });
    let app_id = running.container_id("app").unwrap().to_owned();

    // PKI and the shim, started as a user would start it next to a kubelet.
    let tmp = tempfile::tempdir().unwrap();
    let server_ca = Ca::new("shim-server-ca").unwrap();
    let client_ca = Ca::new("shim-client-ca").unwrap();
    let serving = server_ca
        .server("test-node", &["localhost", "127.0.0.1"])
        .unwrap();
    let write = |name: &str, text: &str| write_file(tmp.path(), name, text);
    let cert = write("shim.crt", &serving.cert);
    let key = write("shim.key", &serving.key);
    let ca = write("client-ca.crt", &client_ca.pem.cert);
    let root = tmp.path().join("kubelet");
    let port = free_port();
    let mut shim = Process::spawn(
        Command::new(env!("CARGO_BIN_EXE_checkpoint-shim"))
            .arg(format!(
                "--container-runtime-endpoint=unix://{}",
                containerd.socket().display()
            ))
            .arg(format!("--root-dir={}", root.display()))
            .arg("--address=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg("--node-name=test-node")
            .arg(format!("--tls-cert-file={}", cert.display()))
            .arg(format!("--tls-private-key-file={}", key.display()))
            .arg(format!("--client-ca-file={}", ca.display()))
            .arg("--authorization-allow-users-for-testing=alice")
            .env("RUST_LOG", "info"),
        &tmp.path().join("shim.log"),
    )
    .expect("start checkpoint-shim");

    let base = format!("https://localhost:{port}");
    let anonymous = client(&server_ca, None);
    let alice = client(&server_ca, Some(&client_ca.client("alice", &[]).unwrap()));

    // Ready when /healthz (which calls CRI Version) says ok.
    wait_ready(
        port,
        Some(&server_ca.pem.cert),
        "/healthz",
        Duration::from_secs(20),
        || shim.alive(),
    )
    .await
    .unwrap_or_else(|e| panic!("checkpoint-shim not healthy: {e}"));
    let checkpoints = root.join("checkpoints");
    assert_eq!(mode_of(&checkpoints), 0o700);

    // A checkpoint, exactly as against a kubelet.
    let url = format!("{base}/checkpoint/kcr-shim/counter/app");
    let (code, body) = send(&alice, Method::POST, &url).await;
    assert_eq!(code, StatusCode::OK, "{body}\n{}", shim.log());
    let resp: api_types::CheckpointResponse = serde_json::from_str(&body).unwrap();
    let first = resp.archive_path().unwrap().to_owned();
    assert!(
        first.starts_with(&format!(
            "{}/checkpoint-counter_kcr-shim-app-",
            checkpoints.display()
        )) && first.ends_with(".tar"),
        "{first}"
    );
    assert_eq!(mode_of(Path::new(&first)), 0o600);
    let report = check_archive(Path::new(&first), "app").unwrap();
    assert!(report.criu_images > 0);

    // The container keeps running.
    let mut cri = containerd.cri().await.unwrap();
    assert_eq!(
        cri.container_state(&app_id).await.unwrap(),
        ContainerState::ContainerRunning
    );

    // Two checkpoints in one second: two files, the second with the kubelet's
    // name plus `-2`. A checkpoint takes a fraction of a second; retry if a
    // pair happens to straddle a second boundary.
    let mut pair = None;
    for _ in 0..5 {
        let (c1, b1) = send(&alice, Method::POST, &format!("{url}?timeout=30")).await;
        let (c2, b2) = send(&alice, Method::POST, &format!("{url}?timeout=30")).await;
        assert_eq!((c1, c2), (StatusCode::OK, StatusCode::OK), "{b1} {b2}");
        let p1: api_types::CheckpointResponse = serde_json::from_str(&b1).unwrap();
        let p2: api_types::CheckpointResponse = serde_json::from_str(&b2).unwrap();
        let (p1, p2) = (
            p1.archive_path().unwrap().to_owned(),
            p2.archive_path().unwrap().to_owned(),
        );
        assert_ne!(p1, p2);
        assert!(Path::new(&p1).is_file() && Path::new(&p2).is_file());
        if stamp_of(&p1) == stamp_of(&p2) {
            pair = Some((p1, p2));
            break;
        }
    }
    let (p1, p2) = pair.expect("no two checkpoints landed in the same second in 5 tries");
    // Same kubelet prefix and second; the second archive takes the next `-N`.
    let (base1, n1) = split_attempt(&p1);
    let (base2, n2) = split_attempt(&p2);
    assert_eq!(base1, base2);
    assert_eq!(n2, n1 + 1, "{p1} then {p2}");
    check_archive(Path::new(&p2), "app").unwrap();
    assert_eq!(mode_of(Path::new(&p2)), 0o600);

    // Unknown container, unknown pod: the kubelet's 404s.
    let (code, body) = send(
        &alice,
        Method::POST,
        &format!("{base}/checkpoint/kcr-shim/counter/nope"),
    )
    .await;
    assert_eq!(
        (code, body.as_str()),
        (StatusCode::NOT_FOUND, "container nope does not exist")
    );
    let (code, body) = send(
        &alice,
        Method::POST,
        &format!("{base}/checkpoint/kcr-shim/ghost/app"),
    )
    .await;
    assert_eq!(
        (code, body.as_str()),
        (StatusCode::NOT_FOUND, "pod does not exist")
    );

    // No client certificate: 401; and nothing was written for any of these.
    let (code, body) = send(&anonymous, Method::POST, &url).await;
    assert_eq!(
        (code, body.as_str()),
        (StatusCode::UNAUTHORIZED, "Unauthorized")
    );
    let archives = std::fs::read_dir(&checkpoints).unwrap().count();
    assert!(archives >= 3, "{archives}");

    assert_eq!(
        cri.container_state(&app_id).await.unwrap(),
        ContainerState::ContainerRunning
    );

    // SIGTERM stops the shim cleanly; then the pod and containerd go.
    let status = shim
        .terminate()
        .await
        .unwrap_or_else(|e| panic!("checkpoint-shim: {e}\n{}", shim.log()));
    assert!(status.success(), "{status}\n{}", shim.log());
    let log = shim.log();
    assert!(log.contains("checkpoint written"), "{log}");
    drop(shim);
    runner.remove_pod(&running).await.unwrap();
    containerd.stop().unwrap();
}
