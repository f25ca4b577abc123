#![allow(clippy::unwrap_used)]
//! `checkpoint-shim` (the real binary) against the REAL runtime: a private
//! containerd 2.x with runc and CRIU from `kcr-testkit`, a pod started the
//! way the kubelet starts it, the shim over HTTPS with a test CA, and
//! requests exactly as `curl -X POST --cert ...` would send them to a kubelet.
//!
//! A missing prerequisite (root, containerd 2.x, runc, CRIU, the test images)
//! fails the test with a message naming it; `sudo hack/setup.sh` installs them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use apiserver_lib::pki::{Ca, Pem};
use apiserver_lib::tls::{self, ServerTrust, ServingCert};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kcr_testkit::archive::check_archive;
use kcr_testkit::containerd::{Containerd, Options};
use kcr_testkit::cri::{ContainerSpec, ContainerState, PodSpec};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<bytes::Bytes>>;

fn certs(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    tls::parse_certs(pem.as_bytes(), Path::new("test")).unwrap()
}

fn client(server_ca: &Ca, who: Option<&Pem>) -> HttpsClient {
    let identity = who.map(|pem| ServingCert {
        chain: certs(&pem.cert),
        key: PrivateKeyDer::from_pem_slice(pem.key.as_bytes()).unwrap(),
    });
    let cfg = tls::client_config(ServerTrust::Ca(certs(&server_ca.pem.cert)), identity).unwrap();
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

/// The shim process; killed (SIGKILL) and reaped on drop, its stderr kept in a file.
struct Shim {
    child: Child,
    log: PathBuf,
}

impl Shim {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
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
    let write = |name: &str, text: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let cert = write("shim.crt", &serving.cert);
    let key = write("shim.key", &serving.key);
    let ca = write("client-ca.crt", &client_ca.pem.cert);
    let root = tmp.path().join("kubelet");
    let port = free_port();
    let log = tmp.path().join("shim.log");
    let child = Command::new(env!("CARGO_BIN_EXE_checkpoint-shim"))
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
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start checkpoint-shim");
    let mut shim = Shim { child, log };

    let base = format!("https://localhost:{port}");
    let anonymous = client(&server_ca, None);
    let alice = client(&server_ca, Some(&client_ca.client("alice", &[]).unwrap()));

    // Ready when /healthz (which calls CRI Version) says ok.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = shim.child.try_wait().unwrap() {
            panic!("checkpoint-shim exited ({status}):\n{}", shim.log());
        }
        let req = Request::get(format!("{base}/healthz"))
            .body(Empty::new())
            .unwrap();
        if let Ok(resp) = anonymous.request(req).await
            && resp.status() == StatusCode::OK
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "checkpoint-shim not healthy within 20 s:\n{}",
            shim.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
    let pid = shim.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = shim.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "checkpoint-shim ignored SIGTERM:\n{}",
            shim.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}\n{}", shim.log());
    let log = shim.log();
    assert!(log.contains("checkpoint written"), "{log}");
    drop(shim);
    runner.remove_pod(&running).await.unwrap();
    containerd.stop().unwrap();
}
