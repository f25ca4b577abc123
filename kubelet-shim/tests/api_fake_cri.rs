#![allow(clippy::unwrap_used)]
//! The HTTP API against the in-process fake CRI of `kcr-testkit` (tonic over
//! `tokio::io::duplex`): every answer the endpoint gives, the archive name
//! rule, no overwrite, partial-file cleanup, timeouts and concurrency. The
//! router is called directly with the peer certificate chain in the request
//! extensions, as `apiserver_lib::serve` puts it; `tls_end_to_end` does the
//! same over real TLS.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use api_types::features::{FeatureGates, SHIM_GATES};
use api_types::k8s_openapi::jiff::Timestamp;
use apiserver_lib::UserInfo;
use apiserver_lib::authentication::{Authenticator, StaticTokensForTesting};
use apiserver_lib::authorization::StaticAuthorizerForTesting;
use apiserver_lib::options::SecureServingInfo;
use apiserver_lib::pki::{Ca, Pem};
use apiserver_lib::serve::PeerCertificates;
use apiserver_lib::tls::CaVerifier;
use axum::Router;
use axum::body::Body;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use kcr_testkit::fake_cri::{CheckpointMode, FakeContainer, FakeCri, FakeState};
use kcr_testkit::files::{mode_of, names_in};
use kcr_testkit::harness::certs;
use kubelet_shim::host::HostConfig;
use kubelet_shim::runtime::{CriRuntime, RuntimeService};
use kubelet_shim::{Config, Server};
use rustls::pki_types::CertificateDer;
use tower::ServiceExt;

const NODE: &str = "node-1";
/// The second every archive of these tests is stamped with.
const STAMP: &str = "2026-11-27T07:30:00.5Z";
const FIRST: &str = "checkpoint-web_default-app-2026-11-27T07:30:00Z.tar";

#[derive(Clone, Copy, Debug)]
enum Who<'a> {
    /// Client certificate CN=alice: allowed.
    Alice,
    /// Client certificate CN=bob: authenticated, not allowed.
    Bob,
    /// A certificate from a CA the shim does not trust.
    Stranger,
    /// A bearer token.
    Token(&'a str),
    Anonymous,
}

struct Fixture {
    fake: FakeCri,
    router: Router,
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    alice: Vec<CertificateDer<'static>>,
    bob: Vec<CertificateDer<'static>>,
    stranger: Vec<CertificateDer<'static>>,
}

struct Setup {
    gates: &'static str,
    grace: Duration,
    runtime_request_timeout: Duration,
    max_in_flight: usize,
    /// `None`: the fake CRI.
    runtime: Option<Arc<dyn RuntimeService>>,
    /// `--checkpoint-endpoint`.
    checkpoint_endpoint: bool,
    /// `--kubelet-archive-names-for-testing`.
    kubelet_archive_names: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            gates: "",
            grace: Duration::from_millis(200),
            runtime_request_timeout: Duration::from_secs(2),
            max_in_flight: 8,
            runtime: None,
            checkpoint_endpoint: true,
            kubelet_archive_names: false,
        }
    }
}

fn pem_chain(pem: &Pem) -> Vec<CertificateDer<'static>> {
    certs(&pem.cert)
}

async fn fixture_with(setup: Setup) -> Fixture {
    let fake = FakeCri::with_containers([
        FakeContainer::running("c-app", "default", "web", "app"),
        FakeContainer::running("c-side", "default", "web", "sidecar"),
        FakeContainer::running("c-done", "default", "web", "done").with_state(FakeState::Exited),
        FakeContainer::running("c-other", "other", "db", "app"),
    ]);
    let runtime: Arc<dyn RuntimeService> = match setup.runtime {
        Some(r) => r,
        None => Arc::new(CriRuntime::new(fake.channel().await.unwrap())),
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("checkpoints");
    let mut host = HostConfig::new(dir.clone());
    host.grace = setup.grace;
    host.runtime_request_timeout = setup.runtime_request_timeout;
    host.max_in_flight = setup.max_in_flight;
    host.kubelet_archive_names = setup.kubelet_archive_names;
    let stamp: Timestamp = STAMP.parse().unwrap();
    host.clock = Arc::new(move || stamp);

    let ca = Ca::new("client-ca").unwrap();
    let alice = pem_chain(&ca.client("alice", &["devs"]).unwrap());
    let bob = pem_chain(&ca.client("bob", &[]).unwrap());
    let stranger = pem_chain(&Ca::new("other").unwrap().client("alice", &[]).unwrap());
    let mut tokens = StaticTokensForTesting::default();
    tokens
        .tokens
        .insert("alice-token".into(), UserInfo::new("alice", vec![]));
    tokens
        .tokens
        .insert("carol-token".into(), UserInfo::new("carol", vec![]));
    let authenticator = Authenticator {
        request_header: None,
        client_ca: Some(CaVerifier::new(&certs(&ca.pem.cert), Path::new("client-ca")).unwrap()),
        token: Some(Arc::new(tokens)),
    };
    let authorizer = Arc::new(StaticAuthorizerForTesting {
        users: vec!["alice".into()],
        groups: vec![],
    });
    let server = Server::new(Config {
        secure_serving: SecureServingInfo::ephemeral(([127, 0, 0, 1], 0).into(), &[]).unwrap(),
        authenticator,
        authorizer,
        feature_gates: FeatureGates::parse(SHIM_GATES, setup.gates).unwrap(),
        node_name: NODE.into(),
        runtime,
        runtime_socket: PathBuf::from("/unused.sock"),
        host,
        api_client: None,
        podcheckpoint_controller: false,
        max_concurrent_podcheckpoints: 2,
        checkpoint_endpoint: setup.checkpoint_endpoint,
        retention: Default::default(),
        max_archive_bytes_flag: "0".into(),
        orphan_archive_grace: None,
        certificate_manager: None,
    });
    Fixture {
        fake,
        router: server.router(),
        dir,
        _tmp: tmp,
        alice,
        bob,
        stranger,
    }
}

async fn fixture() -> Fixture {
    fixture_with(Setup::default()).await
}

struct Answer {
    code: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Fixture {
    async fn call(&self, method: Method, uri: &str, who: Who<'_>) -> Answer {
        let mut req = Request::builder().method(method).uri(uri);
        let chain = match who {
            Who::Alice => self.alice.clone(),
            Who::Bob => self.bob.clone(),
            Who::Stranger => self.stranger.clone(),
            Who::Token(t) => {
                req = req.header("Authorization", format!("Bearer {t}"));
                Vec::new()
            }
            Who::Anonymous => Vec::new(),
        };
        let mut req = req.body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(PeerCertificates(Arc::new(chain)));
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let code = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Answer {
            code,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    async fn post(&self, uri: &str) -> Answer {
        self.call(Method::POST, uri, Who::Alice).await
    }

    fn archives(&self) -> Vec<String> {
        names_in(&self.dir)
    }
}

#[tokio::test]
async fn checkpoint_answers_like_the_kubelet() {
    let f = fixture().await;
    let a = f.post("/checkpoint/default/web/app").await;
    assert_eq!(a.code, StatusCode::OK, "{}", a.body);
    assert_eq!(a.headers["content-type"], "application/json");
    let path = f.dir.join(FIRST);
    assert_eq!(
        a.body,
        format!("{{\"items\":[\"{}\"]}}", path.display()),
        "byte-compatible with the kubelet"
    );
    assert_eq!(mode_of(&path), 0o600);
    assert_eq!(mode_of(&f.dir), 0o700);
    kcr_testkit::archive::check_archive(&path, "app").unwrap();

    // The CRI request: the newest running `app` of default/web, the
    // reserved location, the runtime request timeout when none was asked for.
    let reqs = f.fake.checkpoint_requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].container_id, "c-app");
    assert_eq!(reqs[0].location, path.to_string_lossy());
    assert_eq!(reqs[0].timeout, 2);

    // An explicit timeout passes through (the last value wins, as in the kubelet).
    let a = f
        .post("/checkpoint/default/web/sidecar?timeout=3&timeout=7")
        .await;
    assert_eq!(a.code, StatusCode::OK, "{}", a.body);
    let reqs = f.fake.checkpoint_requests();
    assert_eq!(reqs[1].container_id, "c-side");
    assert_eq!(reqs[1].timeout, 7);
}

#[tokio::test]
async fn the_checkpoints_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let f = fixture().await;
    // As a hostPath DirectoryOrCreate leaves it.
    std::fs::create_dir_all(&f.dir).unwrap();
    std::fs::set_permissions(&f.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let a = f.post("/checkpoint/default/web/app").await;
    assert_eq!(a.code, StatusCode::OK, "{}", a.body);
    assert_eq!(mode_of(&f.dir), 0o700);

    // A symlink in its place is not followed.
    std::fs::remove_dir_all(&f.dir).unwrap();
    let elsewhere = f.dir.with_file_name("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &f.dir).unwrap();
    let a = f.post("/checkpoint/default/web/app").await;
    assert_eq!(a.code, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        a.body
            .ends_with("not a directory (symbolic links are not followed)"),
        "{}",
        a.body
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    assert_eq!(f.fake.checkpoint_requests().len(), 1);
}

#[tokio::test]
async fn newest_attempt_wins() {
    let f = fixture().await;
    f.fake.add_container(
        FakeContainer::running("c-app-restarted", "default", "web", "app").with_attempt(3),
    );
    f.fake.add_container(
        FakeContainer::running("c-app-old", "default", "web", "app")
            .with_attempt(2)
            .with_created_at(i64::MAX),
    );
    let a = f.post("/checkpoint/default/web/app").await;
    assert_eq!(a.code, StatusCode::OK, "{}", a.body);
    assert_eq!(
        f.fake.checkpoint_requests()[0].container_id,
        "c-app-restarted"
    );
}

#[tokio::test]
async fn archives_are_never_overwritten() {
    let f = fixture().await;
    // Something (a kubelet, an earlier run) already wrote the first name of this second.
    std::fs::create_dir_all(&f.dir).unwrap();
    std::fs::write(f.dir.join(FIRST), b"precious").unwrap();

    let mut paths = Vec::new();
    for _ in 0..3 {
        let a = f.post("/checkpoint/default/web/app").await;
        assert_eq!(a.code, StatusCode::OK, "{}", a.body);
        let resp: api_types::CheckpointResponse = serde_json::from_str(&a.body).unwrap();
        paths.push(resp.archive_path().unwrap().to_owned());
    }
    let names: Vec<String> = paths
        .iter()
        .map(|p| {
            Path::new(p)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        names,
        [
            "checkpoint-web_default-app-2026-11-27T07:30:00Z-2.tar",
            "checkpoint-web_default-app-2026-11-27T07:30:00Z-3.tar",
            "checkpoint-web_default-app-2026-11-27T07:30:00Z-4.tar",
        ]
    );
    assert_eq!(std::fs::read(f.dir.join(FIRST)).unwrap(), b"precious");
    // A symlink or directory in the way is not overwritten either.
    std::os::unix::fs::symlink(
        "/etc/passwd",
        f.dir
            .join("checkpoint-web_default-app-2026-11-27T07:30:00Z-5.tar"),
    )
    .unwrap();
    let a = f.post("/checkpoint/default/web/app").await;
    assert!(
        a.body
            .ends_with("checkpoint-web_default-app-2026-11-27T07:30:00Z-6.tar\"]}"),
        "{}",
        a.body
    );
}

/// `--kubelet-archive-names-for-testing`: the kubelet's behaviour, which
/// checkpoint-apiserver's e2e scenario needs on a node: one name per second,
/// overwritten.
#[tokio::test]
async fn kubelet_archive_names_for_testing_overwrite_like_the_kubelet() {
    let f = fixture_with(Setup {
        kubelet_archive_names: true,
        ..Setup::default()
    })
    .await;
    std::fs::create_dir_all(&f.dir).unwrap();
    std::fs::write(f.dir.join(FIRST), b"precious").unwrap();
    for _ in 0..2 {
        let a = f.post("/checkpoint/default/web/app").await;
        assert_eq!(a.code, StatusCode::OK, "{}", a.body);
        let resp: api_types::CheckpointResponse = serde_json::from_str(&a.body).unwrap();
        assert_eq!(
            resp.archive_path().unwrap(),
            f.dir.join(FIRST).to_string_lossy(),
            "the kubelet's name, no -N"
        );
    }
    assert_eq!(f.archives(), [FIRST], "one archive: overwritten twice");
    assert_ne!(std::fs::read(f.dir.join(FIRST)).unwrap(), b"precious");
    assert_eq!(mode_of(&f.dir.join(FIRST)) & 0o777, 0o600);
    assert_eq!(f.fake.checkpoint_requests().len(), 2);
}

#[tokio::test]
async fn unknown_pod_or_container_is_404_and_not_running_is_409() {
    let f = fixture().await;
    let a = f.post("/checkpoint/default/ghost/app").await;
    assert_eq!(a.code, StatusCode::NOT_FOUND);
    assert_eq!(a.body, "pod does not exist");
    assert_eq!(a.headers["content-type"], "text/plain; charset=utf-8");
    // A pod of the same name in another namespace does not count.
    let a = f.post("/checkpoint/default/db/app").await;
    assert_eq!(a.body, "pod does not exist");

    let a = f.post("/checkpoint/default/web/nope").await;
    assert_eq!(a.code, StatusCode::NOT_FOUND);
    assert_eq!(a.body, "container nope does not exist");

    let a = f.post("/checkpoint/default/web/done").await;
    assert_eq!(a.code, StatusCode::CONFLICT);
    assert_eq!(
        a.body,
        "container done is not running (state CONTAINER_EXITED)"
    );
    assert!(f.fake.checkpoint_requests().is_empty());
    assert!(f.archives().is_empty());
}

#[tokio::test]
async fn runtime_failures_are_500_with_the_runtimes_message_and_leave_nothing() {
    let f = fixture().await;
    f.fake.set_mode(CheckpointMode::Unimplemented);
    let a = f.post("/checkpoint/default/web/app").await;
    assert_eq!(a.code, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        a.body,
        "checkpointing of default/web/app failed (rpc error: code = Unimplemented desc = method CheckpointContainer not implemented)"
    );

    f.fake.set_mode(CheckpointMode::Fail(
        "criu dump failed: Operation not permitted".into(),
    ));
    let a = f.post("/checkpoint/default/web/app").await;
    assert_eq!(a.code, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        a.body,
        "checkpointing of default/web/app failed (rpc error: code = Unknown desc = criu dump failed: Operation not permitted)"
    );

    // CRIU wrote half an archive, then failed: the half is removed.
    f.fake.set_mode(CheckpointMode::PartialThenFail);
    let a = f.post("/checkpoint/default/web/app").await;
    assert_eq!(a.code, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        a.body.starts_with(
            "checkpointing of default/web/app failed (rpc error: code = Unknown desc = failed to checkpoint container c-app"
        ),
        "{}",
        a.body
    );
    let last = f.fake.checkpoint_requests().pop().unwrap();
    assert!(!Path::new(&last.location).exists());
    assert!(f.archives().is_empty(), "{:?}", f.archives());

    // The failed names were released: the next success takes the first name.
    f.fake.set_mode(CheckpointMode::Instant);
    let a = f.post("/checkpoint/default/web/app").await;
    assert_eq!(a.code, StatusCode::OK);
    assert_eq!(f.archives(), [FIRST]);
}

#[tokio::test]
async fn a_hung_runtime_gives_504_and_blocks_the_container_until_it_returns() {
    let f = fixture().await;
    f.fake.set_mode(CheckpointMode::Hang);
    let started = Instant::now();
    let a = f.post("/checkpoint/default/web/app?timeout=1").await;
    let took = started.elapsed();
    assert_eq!(a.code, StatusCode::GATEWAY_TIMEOUT, "{}", a.body);
    assert_eq!(
        a.body,
        "checkpointing of default/web/app failed (timed out after 1.2s waiting for the container runtime)"
    );
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(f.fake.checkpoint_requests()[0].timeout, 1);
    assert!(f.archives().is_empty());

    // The runtime is still busy with that container: a second checkpoint
    // would interleave, so it is refused...
    let a = f.post("/checkpoint/default/web/app?timeout=1").await;
    assert_eq!(a.code, StatusCode::CONFLICT);
    assert_eq!(
        a.body,
        "a checkpoint of default/web/app is already in progress; concurrent checkpoints of one container are refused"
    );
    // ...until the shim gives up on the runtime call (--runtime-request-timeout later).
    f.fake.set_mode(CheckpointMode::Instant);
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let a = f.post("/checkpoint/default/web/app").await;
    assert_eq!(a.code, StatusCode::OK, "{}", a.body);
}

#[tokio::test]
async fn an_archive_finished_after_the_timeout_is_removed() {
    let f = fixture().await;
    // The runtime ignores the timeout and writes a complete archive at 1.6 s,
    // after the client got its 504 at 1.2 s.
    f.fake
        .set_mode(CheckpointMode::Slow(Duration::from_millis(1600)));
    let a = f.post("/checkpoint/default/web/app?timeout=1").await;
    assert_eq!(a.code, StatusCode::GATEWAY_TIMEOUT, "{}", a.body);
    let location = PathBuf::from(&f.fake.checkpoint_requests()[0].location);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        !location.exists(),
        "{} survived the timeout",
        location.display()
    );
    assert!(f.archives().is_empty(), "{:?}", f.archives());
}

#[tokio::test]
async fn concurrent_checkpoints_of_one_container_are_refused_with_409() {
    let f = fixture().await;
    f.fake
        .set_mode(CheckpointMode::Slow(Duration::from_millis(500)));
    let (a, b) = tokio::join!(
        f.post("/checkpoint/default/web/app"),
        f.post("/checkpoint/default/web/app")
    );
    let mut codes = [a.code, b.code];
    codes.sort();
    assert_eq!(codes, [StatusCode::OK, StatusCode::CONFLICT]);
    assert_eq!(f.fake.max_in_flight(), 1, "never interleaved");
    assert_eq!(f.archives(), [FIRST]);

    // Different containers do not wait for each other.
    let (a, b) = tokio::join!(
        f.post("/checkpoint/default/web/app"),
        f.post("/checkpoint/default/web/sidecar")
    );
    assert_eq!((a.code, b.code), (StatusCode::OK, StatusCode::OK));
    assert_eq!(f.fake.max_in_flight(), 2);
}

#[tokio::test]
async fn the_node_wide_limit_gives_429() {
    let f = fixture_with(Setup {
        max_in_flight: 1,
        ..Setup::default()
    })
    .await;
    f.fake
        .set_mode(CheckpointMode::Slow(Duration::from_millis(500)));
    let (a, b) = tokio::join!(f.post("/checkpoint/default/web/app"), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        f.post("/checkpoint/default/web/sidecar").await
    });
    assert_eq!(a.code, StatusCode::OK);
    assert_eq!(b.code, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        b.body,
        "too many checkpoints in progress on this node (at most 1); retry later"
    );
}

#[tokio::test]
async fn gate_off_removes_the_route() {
    let f = fixture_with(Setup {
        gates: "ContainerCheckpoint=false",
        ..Setup::default()
    })
    .await;
    for who in [Who::Alice, Who::Anonymous] {
        let a = f
            .call(Method::POST, "/checkpoint/default/web/app", who)
            .await;
        assert_eq!(a.code, StatusCode::NOT_FOUND);
        assert_eq!(a.body, "404 page not found\n");
    }
    assert!(f.fake.checkpoint_requests().is_empty());
    // Health is still served.
    let a = f.call(Method::GET, "/healthz", Who::Anonymous).await;
    assert_eq!(a.code, StatusCode::OK);
}

/// `--checkpoint-endpoint=false` (a cluster whose kubelet serves
/// `/checkpoint`, the shim running only as the PodCheckpoint agent): the
/// path does not exist; health and metrics are still served.
#[tokio::test]
async fn endpoint_off_leaves_health_and_metrics() {
    let f = fixture_with(Setup {
        checkpoint_endpoint: false,
        ..Setup::default()
    })
    .await;
    let a = f
        .call(Method::POST, "/checkpoint/default/web/app", Who::Alice)
        .await;
    assert_eq!(
        (a.code, a.body.as_str()),
        (StatusCode::NOT_FOUND, "404 page not found\n")
    );
    assert!(f.fake.checkpoint_requests().is_empty());
    assert_eq!(
        f.call(Method::GET, "/healthz", Who::Anonymous).await.code,
        StatusCode::OK
    );
    assert_eq!(
        f.call(Method::GET, "/metrics", Who::Alice).await.code,
        StatusCode::OK
    );
}

#[tokio::test]
async fn authentication_and_authorization_like_the_kubelet() {
    let f = fixture().await;
    let uri = "/checkpoint/default/web/app";
    for who in [Who::Anonymous, Who::Stranger, Who::Token("wrong")] {
        let a = f.call(Method::POST, uri, who).await;
        assert_eq!(a.code, StatusCode::UNAUTHORIZED, "{who:?}");
        assert_eq!(a.body, "Unauthorized");
    }
    let a = f.call(Method::POST, uri, Who::Bob).await;
    assert_eq!(a.code, StatusCode::FORBIDDEN);
    assert_eq!(
        a.body,
        "Forbidden (user=bob, verb=create, resource=nodes, subresource=checkpoint)"
    );
    let a = f.call(Method::POST, uri, Who::Token("carol-token")).await;
    assert_eq!(
        a.body,
        "Forbidden (user=carol, verb=create, resource=nodes, subresource=checkpoint)"
    );
    assert!(f.fake.checkpoint_requests().is_empty());

    let a = f.call(Method::POST, uri, Who::Token("alice-token")).await;
    assert_eq!(a.code, StatusCode::OK, "{}", a.body);
}

#[tokio::test]
async fn other_methods_are_405() {
    let f = fixture().await;
    for m in [Method::GET, Method::PUT, Method::DELETE, Method::PATCH] {
        let a = f
            .call(m.clone(), "/checkpoint/default/web/app", Who::Alice)
            .await;
        assert_eq!(a.code, StatusCode::METHOD_NOT_ALLOWED, "{m}");
        assert_eq!(a.body, "405: Method Not Allowed");
        assert_eq!(a.headers["allow"], "POST");
    }
    // Unauthenticated callers learn nothing more than 401.
    let a = f
        .call(Method::GET, "/checkpoint/default/web/app", Who::Anonymous)
        .await;
    assert_eq!(a.code, StatusCode::UNAUTHORIZED);
    assert!(f.fake.checkpoint_requests().is_empty());
}

#[tokio::test]
async fn hostile_names_and_timeouts_are_400() {
    let f = fixture().await;
    // http::Uri holds at most 64 KiB - 2; `tls_end_to_end` sends a full 64 KiB through hyper.
    let long = "a".repeat(64 * 1024 - 64);
    let cases: Vec<(String, &str)> = vec![
        (
            "/checkpoint/../web/app".into(),
            "invalid namespace name \"..\"",
        ),
        (
            "/checkpoint/default/../app".into(),
            "invalid pod name \"..\"",
        ),
        (
            "/checkpoint/default/web/..".into(),
            "invalid container name \"..\"",
        ),
        (
            "/checkpoint/default/web%2F..%2F..%2Fetc/app".into(),
            "invalid pod name \"web/../../etc\"",
        ),
        (
            "/checkpoint/default/web/a%2Fb".into(),
            "invalid container name \"a/b\"",
        ),
        (
            "/checkpoint/default/web/a%00b".into(),
            "invalid container name \"a\\0b\"",
        ),
        (
            "/checkpoint/default/Web/app".into(),
            "invalid pod name \"Web\"",
        ),
        (
            "/checkpoint/default/web/%ff".into(),
            "invalid request path: not UTF-8",
        ),
        (
            format!("/checkpoint/default/web/{long}"),
            "invalid request path: longer than 1024 bytes",
        ),
        (
            format!("/checkpoint/default/web/{}", "a".repeat(64)),
            "invalid container name",
        ),
        (
            "/checkpoint/default/web/app?timeout=-1".into(),
            "invalid timeout \"-1\"",
        ),
        (
            "/checkpoint/default/web/app?timeout=1.5".into(),
            "invalid timeout \"1.5\"",
        ),
        (
            "/checkpoint/default/web/app?timeout=abc".into(),
            "invalid timeout \"abc\"",
        ),
        (
            "/checkpoint/default/web/app?timeout=3601".into(),
            "invalid timeout \"3601\"",
        ),
        (
            "/checkpoint/default/web/app?timeout=%00".into(),
            "invalid timeout \"\\0\"",
        ),
        (
            format!("/checkpoint/default/web/app?timeout={long}"),
            "invalid query: longer than 1024 bytes",
        ),
    ];
    for (uri, want) in &cases {
        let a = f.post(uri).await;
        assert_eq!(a.code, StatusCode::BAD_REQUEST, "{uri:.80}: {}", a.body);
        assert!(a.body.starts_with(want), "{uri:.80}: {}", a.body);
        assert!(
            a.body.len() < 1024,
            "hostile input echoed: {} bytes",
            a.body.len()
        );
    }
    // Wrong shapes are not the endpoint at all.
    for uri in [
        "/checkpoint/default/web",
        "/checkpoint/default/web/app/x",
        "/checkpoint",
    ] {
        let a = f.post(uri).await;
        assert_eq!(a.code, StatusCode::NOT_FOUND, "{uri}");
    }
    assert!(f.fake.checkpoint_requests().is_empty());
    assert!(!f.dir.exists() || f.archives().is_empty());
}

#[tokio::test]
async fn runtime_unreachable() {
    let tmp = tempfile::tempdir().unwrap();
    let runtime = Arc::new(CriRuntime::connect_lazy(&tmp.path().join("nothing.sock")));
    let f = fixture_with(Setup {
        runtime: Some(runtime),
        ..Setup::default()
    })
    .await;
    let a = f.post("/checkpoint/default/web/app").await;
    assert_eq!(a.code, StatusCode::SERVICE_UNAVAILABLE, "{}", a.body);
    assert!(
        a.body
            .starts_with("failed to list containers: rpc error: code = Unavailable desc = "),
        "{}",
        a.body
    );
    let a = f.call(Method::GET, "/healthz", Who::Anonymous).await;
    assert_eq!(a.code, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(a.body.contains("[-]runtime failed"), "{}", a.body);
    let a = f.call(Method::GET, "/livez", Who::Anonymous).await;
    assert_eq!(a.code, StatusCode::OK);
}

#[tokio::test]
async fn health_and_metrics() {
    let f = fixture().await;
    let a = f.call(Method::GET, "/healthz", Who::Anonymous).await;
    assert_eq!((a.code, a.body.as_str()), (StatusCode::OK, "ok"));
    let a = f
        .call(Method::GET, "/healthz?verbose", Who::Anonymous)
        .await;
    assert!(a.body.contains("[+]runtime ok"), "{}", a.body);

    assert_eq!(
        f.post("/checkpoint/default/web/app").await.code,
        StatusCode::OK
    );
    assert_eq!(
        f.post("/checkpoint/default/web/nope").await.code,
        StatusCode::NOT_FOUND
    );
    let a = f.call(Method::GET, "/metrics", Who::Anonymous).await;
    assert_eq!(a.code, StatusCode::UNAUTHORIZED);
    let a = f.call(Method::GET, "/metrics", Who::Bob).await;
    assert_eq!(
        a.body,
        "Forbidden (user=bob, verb=get, resource=nodes, subresource=metrics)"
    );
    let a = f.call(Method::GET, "/metrics", Who::Alice).await;
    assert_eq!(a.code, StatusCode::OK);
    assert!(
        a.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    for want in [
        "checkpoint_shim_http_requests_total{path=\"checkpoint\",method=\"POST\",code=\"200\"} 1",
        "checkpoint_shim_http_requests_total{path=\"checkpoint\",method=\"POST\",code=\"404\"} 1",
        "checkpoint_shim_http_requests_total{path=\"metrics\",method=\"GET\",code=\"401\"} 1",
        "checkpoint_shim_checkpoint_duration_seconds_count{result=\"success\"} 1",
        "checkpoint_shim_checkpoint_archive_bytes_count 1",
    ] {
        assert!(a.body.contains(want), "missing {want}:\n{}", a.body);
    }
    let a = f.call(Method::GET, "/nowhere", Who::Anonymous).await;
    assert_eq!(a.code, StatusCode::NOT_FOUND);
}

mod over_tls {
    //! The same server over real TLS (`Config::with_runtime`, options parsed
    //! from flags), the fake CRI behind it.

    use super::*;
    use clap::Parser;
    use kcr_testkit::harness::{InProcess, write_file};
    use kcr_testkit::hostile::{HttpsRequest, Proto, https_request, raw_https_status_line};
    use kubelet_shim::Options;

    async fn request(
        server_ca: &Ca,
        port: u16,
        who: Option<&Pem>,
        method: Method,
        path: &str,
    ) -> (StatusCode, String) {
        https_request(HttpsRequest {
            port,
            server_ca: &server_ca.pem.cert,
            identity: who,
            proto: Proto::Http2,
            method,
            target: path,
            headers: &[],
            body: Vec::new(),
            timeout: Duration::from_secs(30),
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn tls_end_to_end() {
        let tmp = tempfile::tempdir().unwrap();
        let server_ca = Ca::new("server-ca").unwrap();
        let client_ca = Ca::new("client-ca").unwrap();
        let serving = server_ca
            .server("node-1", &["localhost", "127.0.0.1"])
            .unwrap();
        let write = |name: &str, text: &str| {
            write_file(tmp.path(), name, text)
                .to_string_lossy()
                .into_owned()
        };
        let cert = write("tls.crt", &serving.cert);
        let key = write("tls.key", &serving.key);
        let ca = write("client-ca.crt", &client_ca.pem.cert);
        let tokens = write("tokens.csv", "t0ken,alice,1\n");
        let root = tmp.path().join("kubelet");
        let options = Options::try_parse_from([
            "checkpoint-shim",
            "--container-runtime-endpoint=unix:///unused.sock",
            &format!("--root-dir={}", root.display()),
            "--address=127.0.0.1",
            "--port=0",
            "--node-name=node-1",
            &format!("--tls-cert-file={cert}"),
            &format!("--tls-private-key-file={key}"),
            &format!("--client-ca-file={ca}"),
            &format!("--token-auth-file-for-testing={tokens}"),
            "--authorization-allow-users-for-testing=alice",
        ])
        .unwrap();
        options.validate().unwrap();
        let fake =
            FakeCri::with_containers([FakeContainer::running("c-app", "default", "web", "app")]);
        let runtime = Arc::new(CriRuntime::new(fake.channel().await.unwrap()));
        let config = Config::with_runtime(&options, runtime).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let checkpoints = root.join("checkpoints");
        assert_eq!(mode_of(&checkpoints), 0o700, "created at start");
        let server = InProcess::spawn("checkpoint-shim", |shutdown| {
            Server::new(config).serve_on(listener, shutdown)
        });

        let alice = client_ca.client("alice", &[]).unwrap();
        let (code, body) = request(
            &server_ca,
            port,
            Some(&alice),
            Method::POST,
            "/checkpoint/default/web/app",
        )
        .await;
        assert_eq!(code, StatusCode::OK, "{body}");
        let resp: api_types::CheckpointResponse = serde_json::from_str(&body).unwrap();
        let path = PathBuf::from(resp.archive_path().unwrap());
        assert!(path.starts_with(&checkpoints), "{}", path.display());
        assert_eq!(mode_of(&path), 0o600);

        let (code, body) = request(
            &server_ca,
            port,
            None,
            Method::POST,
            "/checkpoint/default/web/app",
        )
        .await;
        assert_eq!(
            (code, body.as_str()),
            (StatusCode::UNAUTHORIZED, "Unauthorized")
        );

        // A full 64 KiB name never reaches the handler: hyper refuses it.
        let long = format!("/checkpoint/default/web/{}", "a".repeat(64 * 1024));
        let status_line = raw_https_status_line(
            port,
            &server_ca.pem.cert,
            Some(&alice),
            format!("POST {long} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();

        assert!(
            status_line.starts_with("HTTP/1.1 4"),
            "64 KiB path: {status_line:?}"
        );

        let (code, body) = request(&server_ca, port, None, Method::GET, "/healthz").await;
        assert_eq!((code, body.as_str()), (StatusCode::OK, "ok"));

        server.stop().await;
    }
}

#[tokio::test]
async fn every_checkpoint_request_leaves_one_audit_line() {
    let f = fixture().await;
    let (_guard, logs) = kcr_testkit::logs::capture();
    assert_eq!(
        f.post("/checkpoint/default/web/app").await.code,
        StatusCode::OK
    );
    let a = f
        .call(Method::POST, "/checkpoint/default/web/app", Who::Anonymous)
        .await;
    assert_eq!(a.code, StatusCode::UNAUTHORIZED);
    let a = f
        .call(Method::POST, "/checkpoint/default/web/nope", Who::Bob)
        .await;
    assert_eq!(a.code, StatusCode::FORBIDDEN);
    assert_eq!(
        f.post("/checkpoint/default/web/done").await.code,
        StatusCode::CONFLICT
    );
    // Not the checkpoint endpoint: not audited.
    let _ = f.call(Method::GET, "/healthz", Who::Anonymous).await;

    let line =
        |user: &str, groups: &str, container: &str, code: u16, reason: &str, archive: String| {
            serde_json::json!({
                "message": "checkpoint request", "user": user, "groups": groups,
                "namespace": "default", "pod": "web", "container": container, "node": NODE,
                "code": code, "reason": reason, "archive": archive
            })
        };
    assert_eq!(
        logs.fields_of(apiserver_lib::audit::TARGET),
        [
            line(
                "alice",
                "devs,system:authenticated",
                "app",
                200,
                "Success",
                f.dir.join(FIRST).display().to_string()
            ),
            line("", "", "app", 401, "Unauthorized", String::new()),
            line(
                "bob",
                "system:authenticated",
                "nope",
                403,
                "Forbidden",
                String::new()
            ),
            line(
                "alice",
                "devs,system:authenticated",
                "done",
                409,
                "Conflict",
                String::new()
            ),
        ]
    );
}

/// Issue 10: the endpoint and the PodCheckpoint agent share one `Host`, and
/// two CRI checkpoints of one container never run at once (they break
/// inside containerd): whichever comes second is refused with `InProgress`
/// (the agent waits and retries on it), other containers go in parallel.
#[tokio::test]
async fn the_endpoint_and_the_agent_never_checkpoint_one_container_at_once() {
    let fake = FakeCri::with_containers([
        FakeContainer::running("c-app", "default", "web", "app"),
        FakeContainer::running("c-side", "default", "web", "sidecar"),
    ]);
    fake.set_mode(CheckpointMode::Slow(Duration::from_millis(500)));
    let runtime: Arc<dyn RuntimeService> = Arc::new(CriRuntime::new(fake.channel().await.unwrap()));
    let tmp = tempfile::tempdir().unwrap();
    let host = kubelet_shim::host::Host::new(
        runtime,
        HostConfig::new(tmp.path().join("checkpoints")),
        kubelet_shim::metrics::Metrics::default(),
    );
    host.ensure_dir().unwrap();
    let app = api_types::ContainerRef::new("default", "web", "app");
    let side = api_types::ContainerRef::new("default", "web", "sidecar");
    let agent_dir = tmp.path().join("checkpoints").join("uid-1");
    std::fs::create_dir_all(&agent_dir).unwrap();

    let endpoint = {
        let (host, app) = (host.clone(), app.clone());
        tokio::spawn(async move { host.checkpoint_container(&app, 0).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let agent = host
        .checkpoint_at(&app, 0, agent_dir.join("app.tar.tmp"))
        .await;
    assert!(
        matches!(agent, Err(kubelet_shim::host::Error::InProgress(_))),
        "{agent:?}"
    );
    let other = host
        .checkpoint_at(&side, 0, agent_dir.join("sidecar.tar.tmp"))
        .await;
    assert!(other.is_ok(), "{other:?}");
    assert!(endpoint.await.unwrap().is_ok());
    // Once the first is done, the agent's turn.
    let agent = host
        .checkpoint_at(&app, 0, agent_dir.join("app.tar.tmp"))
        .await;
    assert!(agent.is_ok(), "{agent:?}");
    let ids: Vec<String> = fake
        .checkpoint_requests()
        .into_iter()
        .map(|r| r.container_id)
        .collect();
    assert_eq!(ids, ["c-app", "c-side", "c-app"]);
}
