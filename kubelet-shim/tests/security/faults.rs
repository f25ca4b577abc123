//! Faults around a real `checkpoint-shim` over TLS (issue 7, item 6, the
//! node side): the runtime hanging, CRIU failing, the CRI socket going away in
//! the middle of a checkpoint, no runtime at all, the disk filling up during a
//! checkpoint (a small tmpfs as `--root-dir`; needs root), and the API server
//! unreachable for TokenReview / SubjectAccessReview. Each answers with its
//! code, leaves no partial archive, and the shim serves the next request.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::shim::{PROTOS, Proto, Shim, ShimSetup};
use http::{Method, StatusCode};
use kcr_testkit::fake_cri::{CheckpointMode, FakeContainer, FakeCri};
use kcr_testkit::tmpfs::{Tmpfs, fill};
use kubelet_shim::runtime::CriRuntime;

fn containers() -> [FakeContainer; 2] {
    [
        FakeContainer::running("c-app", "default", "web", "app"),
        FakeContainer::running("c-side", "default", "web", "sidecar"),
    ]
}

async fn start(setup: ShimSetup) -> (FakeCri, Shim) {
    let fake = FakeCri::with_containers(containers());
    let runtime = Arc::new(CriRuntime::new(fake.channel().await.unwrap()));
    let shim = Shim::start(runtime, setup).await;
    (fake, shim)
}

#[tokio::test]
async fn a_hanging_runtime_gives_504_at_the_timeout_and_the_shim_keeps_serving() {
    let (fake, shim) = start(ShimSetup::default()).await;
    fake.set_mode(CheckpointMode::Hang);
    let started = Instant::now();
    let (code, body) = shim
        .post(Proto::Http2, "/checkpoint/default/web/app?timeout=1")
        .await;
    let took = started.elapsed();
    assert_eq!(code, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(
        body,
        "checkpointing of default/web/app failed (timed out after 1.2s waiting for the container runtime)"
    );
    // The timeout (1 s) plus the grace (0.2 s), not the runtime's pace.
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(shim.archives().is_empty());

    // While the runtime still holds that call: the same container is refused
    // (two dumps must never interleave), another one is served.
    let (code, _) = shim
        .post(Proto::Http1, "/checkpoint/default/web/app?timeout=1")
        .await;
    assert_eq!(code, StatusCode::CONFLICT);
    fake.set_mode(CheckpointMode::Instant);
    let (code, body) = shim
        .post(Proto::Http1, "/checkpoint/default/web/sidecar")
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    // Once the shim gives up on the hung call (--runtime-request-timeout=2s).
    tokio::time::sleep(Duration::from_millis(2300)).await;
    for proto in PROTOS {
        shim.good_request_succeeds(proto, "a hung runtime").await;
    }
    shim.stop().await;
}

#[tokio::test]
async fn criu_failing_gives_500_with_its_message_and_no_partial_archive() {
    let (fake, shim) = start(ShimSetup::default()).await;
    let cases = [
        (
            CheckpointMode::Fail("criu dump failed: Operation not permitted (see dump.log)".into()),
            "checkpointing of default/web/app failed (rpc error: code = Unknown desc = criu dump failed: Operation not permitted (see dump.log))",
        ),
        (
            CheckpointMode::PartialThenFail,
            "checkpointing of default/web/app failed (rpc error: code = Unknown desc = failed to checkpoint container c-app: CRIU dump failed after writing part of",
        ),
        (
            CheckpointMode::Unimplemented,
            "checkpointing of default/web/app failed (rpc error: code = Unimplemented desc =",
        ),
    ];
    for proto in PROTOS {
        for (mode, want) in &cases {
            fake.set_mode(mode.clone());
            let (code, body) = shim.post(proto, "/checkpoint/default/web/app").await;
            assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR, "{mode:?}: {body}");
            assert!(body.starts_with(want), "{mode:?}: {body}");
            let last = fake.checkpoint_requests().pop().unwrap();
            assert!(
                !Path::new(&last.location).exists(),
                "{mode:?}: partial archive left"
            );
            assert!(
                shim.archives().is_empty(),
                "{mode:?}: {:?}",
                shim.archives()
            );
            fake.set_mode(CheckpointMode::Instant);
            shim.good_request_succeeds(proto, &format!("{mode:?}"))
                .await;
        }
    }
    shim.stop().await;
}

/// The fake CRI on a unix socket, served by a runtime of its own so that
/// shutting that runtime down drops every connection at once, as a crashed
/// containerd does.
struct CriProcess {
    runtime: Option<tokio::runtime::Runtime>,
}

impl CriProcess {
    fn serve(fake: &FakeCri, socket: &Path) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let fake = fake.clone();
        let socket = socket.to_owned();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        runtime.spawn(async move {
            let server = fake.spawn_unix(socket).await.unwrap();
            ready_tx.send(()).unwrap();
            std::future::pending::<()>().await;
            drop(server);
        });
        ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Self {
            runtime: Some(runtime),
        }
    }

    fn crash(mut self, socket: &Path) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        let _ = std::fs::remove_file(socket);
    }
}

impl Drop for CriProcess {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[tokio::test]
async fn the_cri_socket_gone_mid_request_is_a_5xx_and_the_shim_recovers() {
    let sockets = tempfile::tempdir().unwrap();
    let socket: PathBuf = sockets.path().join("cri.sock");
    let fake = FakeCri::with_containers(containers());
    let cri = CriProcess::serve(&fake, &socket);
    let shim = Arc::new(
        Shim::start(
            Arc::new(CriRuntime::connect_lazy(&socket)),
            ShimSetup::default(),
        )
        .await,
    );
    shim.good_request_succeeds(Proto::Http1, "start").await;

    // The runtime takes 3 s; it dies in the middle of the call.
    fake.set_mode(CheckpointMode::Slow(Duration::from_secs(3)));
    let request = {
        let shim = shim.clone();
        tokio::spawn(async move { shim.post(Proto::Http2, "/checkpoint/default/web/app").await })
    };
    let waiting = Instant::now();
    while fake.checkpoint_requests().len() < 2 {
        assert!(
            waiting.elapsed() < Duration::from_secs(10),
            "the checkpoint never reached the runtime"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let crashed = Instant::now();
    cri.crash(&socket);
    let (code, body) = request.await.unwrap();
    let took = crashed.elapsed();
    assert!(code.is_server_error(), "{code} {body}");
    assert!(
        body.starts_with("checkpointing of default/web/app failed (rpc error: code = "),
        "{body}"
    );
    assert!(
        took < Duration::from_secs(2),
        "waited for a dead runtime: answered {took:?} after it died"
    );
    assert!(shim.archives().is_empty(), "{:?}", shim.archives());

    // No runtime at all: 503 from the container lookup, /readyz says why.
    let (code, body) = shim.post(Proto::Http1, "/checkpoint/default/web/app").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body.starts_with("failed to list containers: rpc error: code = Unavailable desc = "),
        "{body}"
    );
    let (code, body) = shim
        .send(
            Proto::Http1,
            None,
            Method::GET,
            "/readyz?verbose",
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(body.contains("[-]runtime failed"), "{body}");

    // The runtime comes back on the same socket: served again, no restart.
    fake.set_mode(CheckpointMode::Instant);
    let _cri = CriProcess::serve(&fake, &socket);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, body) = shim.post(Proto::Http2, "/checkpoint/default/web/app").await;
        if code == StatusCode::OK {
            for name in shim.archives() {
                std::fs::remove_file(shim.checkpoints.join(name)).unwrap();
            }
            break;
        }
        assert!(Instant::now() < deadline, "not served again: {code} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for proto in PROTOS {
        shim.good_request_succeeds(proto, "the runtime came back")
            .await;
    }
    Arc::into_inner(shim).unwrap().stop().await;
}

#[tokio::test]
async fn disk_full_during_a_checkpoint_is_500_and_leaves_no_partial_archive() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("kubelet");
    let _tmpfs = Tmpfs::mount(&root, "256k");
    let (fake, shim) = start(ShimSetup {
        root_dir: Some(root.clone()),
        ..ShimSetup::default()
    })
    .await;
    shim.good_request_succeeds(Proto::Http1, "start").await;

    // Something else on the node fills the disk (not in the checkpoints dir).
    let filler = root.join("filler");
    fill(&filler);
    for proto in PROTOS {
        let (code, body) = shim.post(proto, "/checkpoint/default/web/app").await;
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR, "{proto:?}: {body}");
        assert!(
            body.starts_with("checkpointing of default/web/app failed (rpc error: code = Unknown desc = failed to write checkpoint archive ")
                && body.contains("No space left on device"),
            "{proto:?}: {body}"
        );
        let last = fake.checkpoint_requests().pop().unwrap();
        assert!(
            !Path::new(&last.location).exists(),
            "partial archive {} left",
            last.location
        );
        assert!(shim.archives().is_empty(), "{:?}", shim.archives());
    }
    // Space again: served, without a restart.
    std::fs::remove_file(&filler).unwrap();
    for proto in PROTOS {
        shim.good_request_succeeds(proto, "disk full").await;
    }
    shim.stop().await;
}

#[tokio::test]
async fn the_api_server_unreachable_for_reviews() {
    // Like the kubelet: a TokenReview that cannot be made is 401, a
    // SubjectAccessReview that cannot be made is 500 — unless the decision is
    // cached (allowed 5 min, denied 30 s). Certificates need no API server.
    let dir = tempfile::tempdir().unwrap();
    let api = super::shim::standin(dir.path()).await;
    let (fake, shim) = start(ShimSetup::with_api_server(dir.path())).await;
    shim.good_request_succeeds(Proto::Http1, "start").await;
    api.stop().await;

    let carol = shim.client_ca.client("carol", &[]).unwrap();
    for proto in PROTOS {
        let started = Instant::now();
        let (code, body) = shim
            .send(
                proto,
                None,
                Method::POST,
                "/checkpoint/default/web/app",
                &[("Authorization", "Bearer bob-token")],
                Vec::new(),
            )
            .await;
        assert_eq!(
            (code, body.as_str()),
            (StatusCode::UNAUTHORIZED, "Unauthorized"),
            "{proto:?}"
        );
        let (code, body) = shim
            .send(
                proto,
                Some(&carol),
                Method::POST,
                "/checkpoint/default/web/app",
                &[],
                Vec::new(),
            )
            .await;
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR, "{proto:?}: {body}");
        assert_eq!(
            body,
            "Authorization error (user=carol, verb=create, resource=nodes, subresource=checkpoint)"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        // alice's allow is cached: still served.
        shim.good_request_succeeds(proto, "the API server went away")
            .await;
    }
    assert_eq!(fake.checkpoint_requests().len(), 3);
    shim.stop().await;
}
