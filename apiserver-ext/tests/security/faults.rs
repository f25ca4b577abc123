//! Faults on the whole path (issue 7, item 6), checkpoint-apiserver side:
//! the node endpoint down, the runtime hanging, CRIU failing, the node's disk
//! full during a checkpoint (the shim's `--root-dir` on a small tmpfs; needs
//! root), and kube-apiserver unreachable for lookups. Each is answered with
//! its Status, leaves no partial archive, and the extension serves the next
//! request. See [`super::stack`] for the stack.

use std::path::Path;
use std::time::{Duration, Instant};

use super::stack::{GOOD, PROTOS, Proto, Stack, StackSetup, checkpoint_path, status_of};
use http::StatusCode;
use kcr_testkit::fake_cri::CheckpointMode;
use kcr_testkit::tmpfs::{Tmpfs, fill};

fn target() -> String {
    format!("{GOOD}?container=app")
}

/// Retries the good request until the node is free again (after a hung call).
async fn served_again(stack: &Stack, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (code, body) = stack
            .post(
                Proto::Http2,
                &format!("{GOOD}?container=app&timeoutSeconds=5"),
            )
            .await;
        if code == StatusCode::OK {
            for name in stack.archives() {
                std::fs::remove_file(stack.checkpoints.join(name)).unwrap();
            }
            return;
        }
        assert!(Instant::now() < deadline, "not served again: {code} {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_down_runtime_hanging_and_criu_failing() {
    let stack = Stack::start(StackSetup::default()).await;

    for proto in PROTOS {
        // Nothing listens on the node: 503 at once, well within the deadline.
        let started = Instant::now();
        let (code, body) = stack
            .post(
                proto,
                &format!("{}?container=app", checkpoint_path("default", "web-down")),
            )
            .await;
        let (reason, message) = status_of(code, &body);
        assert_eq!(
            (code, reason.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
            "{proto:?}: {message}"
        );
        assert!(message.contains("node-down"), "{message}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        stack.good_request_succeeds(proto, "a node down").await;

        // CRIU fails: 500 carrying its message; nothing left on the node.
        stack.fake.set_mode(CheckpointMode::Fail(
            "criu dump failed: Operation not permitted (see dump.log)".into(),
        ));
        let (code, body) = stack.post(proto, &target()).await;
        let (reason, message) = status_of(code, &body);
        assert_eq!(
            (code, reason.as_str()),
            (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
            "{proto:?}: {message}"
        );
        assert!(
            message.contains("criu dump failed: Operation not permitted (see dump.log)"),
            "{message}"
        );
        stack.fake.set_mode(CheckpointMode::PartialThenFail);
        let (code, body) = stack.post(proto, &target()).await;
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        let last = stack.fake.checkpoint_requests().pop().unwrap();
        assert!(!Path::new(&last.location).exists(), "partial archive left");
        assert!(stack.archives().is_empty(), "{:?}", stack.archives());
        stack.fake.set_mode(CheckpointMode::Instant);
        stack.good_request_succeeds(proto, "CRIU failing").await;

        // The runtime hangs: 504 at the request's timeout (1 s) plus the
        // extension's margin (2 s), not later.
        stack.fake.set_mode(CheckpointMode::Hang);
        let started = Instant::now();
        let (code, body) = stack
            .post(proto, &format!("{GOOD}?container=app&timeoutSeconds=1"))
            .await;
        let took = started.elapsed();
        let (reason, message) = status_of(code, &body);
        assert_eq!(
            (code, reason.as_str()),
            (StatusCode::GATEWAY_TIMEOUT, "Timeout"),
            "{proto:?}: {message}"
        );
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(5),
            "{took:?}"
        );
        assert!(stack.archives().is_empty());
        stack.fake.set_mode(CheckpointMode::Instant);
        // The shim holds the container until the runtime call ends
        // (--runtime-request-timeout=3s); then it is served again.
        served_again(&stack, Duration::from_secs(20)).await;
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_unreachable_for_lookups_is_503_and_the_extension_recovers() {
    let mut stack = Stack::start(StackSetup::default()).await;
    stack.good_request_succeeds(Proto::Http1, "start").await;
    let calls = stack.fake.checkpoint_requests().len();

    stack.stop_api_server().await;
    for proto in PROTOS {
        let started = Instant::now();
        let (code, body) = stack.post(proto, &target()).await;
        let (reason, message) = status_of(code, &body);
        assert_eq!(
            (code, reason.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
            "{proto:?}: {message}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{:?}",
            started.elapsed()
        );
        // Health says why; liveness does not restart us for it.
        let (code, body) = stack
            .send(
                proto,
                super::stack::Who::Nobody,
                http::Method::GET,
                "/readyz?verbose",
                &[],
                Vec::new(),
            )
            .await;
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        let (code, _) = stack
            .send(
                proto,
                super::stack::Who::Nobody,
                http::Method::GET,
                "/livez",
                &[],
                Vec::new(),
            )
            .await;
        assert_eq!(code, StatusCode::OK);
    }
    assert_eq!(
        stack.fake.checkpoint_requests().len(),
        calls,
        "reached the node"
    );

    stack.restart_api_server().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, body) = stack
            .post(
                Proto::Http2,
                &format!("{GOOD}?container=app&timeoutSeconds=5"),
            )
            .await;
        if code == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "not served again: {code} {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for name in stack.archives() {
        std::fs::remove_file(stack.checkpoints.join(name)).unwrap();
    }
    for proto in PROTOS {
        stack
            .good_request_succeeds(proto, "the API server came back")
            .await;
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_on_the_node_is_500_and_leaves_no_partial_archive() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("kubelet");
    let _tmpfs = Tmpfs::mount(&root, "256k");
    let stack = Stack::start(StackSetup {
        shim_root: Some(root.clone()),
    })
    .await;
    stack.good_request_succeeds(Proto::Http1, "start").await;

    let filler = root.join("filler");
    fill(&filler);
    for proto in PROTOS {
        let (code, body) = stack.post(proto, &target()).await;
        let (reason, message) = status_of(code, &body);
        assert_eq!(
            (code, reason.as_str()),
            (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
            "{proto:?}: {message}"
        );
        assert!(message.contains("No space left on device"), "{message}");
        let last = stack.fake.checkpoint_requests().pop().unwrap();
        assert!(
            !Path::new(&last.location).exists(),
            "partial archive {}",
            last.location
        );
        assert!(stack.archives().is_empty(), "{:?}", stack.archives());
    }
    std::fs::remove_file(&filler).unwrap();
    for proto in PROTOS {
        stack.good_request_succeeds(proto, "disk full").await;
    }
    stack.stop().await;
}
