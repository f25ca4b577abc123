//! What bounds a request: the node call's deadline, per-node concurrency, body
//! size and type, hostile paths and bodies.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::Value;

use super::{As, BASE, assert_status, harness, harness_with};
use crate::testing::FakeAnswer;

#[tokio::test]
async fn the_node_call_is_bounded_by_the_requested_timeout() {
    let h = harness_with(|c| c.rest.kubelet.timeout_margin = Duration::from_millis(200));
    h.fakes.kubelet_client.set_answer(FakeAnswer::Hang);
    let started = std::time::Instant::now();
    let (code, body) = h.checkpoint("single", "timeoutSeconds=1").await;
    let took = started.elapsed();
    assert_status(code, &body, 504, "Timeout");
    assert!(
        took >= Duration::from_millis(1200) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(
        body["message"],
        "timed out after 1.2s waiting for node n1 to checkpoint container app of pod ns/single"
    );
    insta::assert_json_snapshot!("status_node_deadline", body);
    let events = h.fakes.events.events();
    assert_eq!(events[0].reason, "CheckpointFailed");
    assert!(events[0].message.contains("(Timeout)"), "{events:?}");
    let metrics = h.metrics().encode().unwrap();
    assert!(
        metrics.contains("checkpoint_duration_seconds_count{result=\"Timeout\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn per_node_concurrency_queues_with_a_deadline() {
    let h = Arc::new(harness_with(|c| {
        c.rest.kubelet.node_queue_timeout = Duration::from_millis(100)
    }));
    h.fakes.kubelet_client.set_delay(Duration::from_millis(600));
    let a = {
        let h = h.clone();
        tokio::spawn(async move { h.checkpoint("single", "").await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The slot is taken: the in-flight gauge shows it.
    let text = h.metrics().encode().unwrap();
    assert!(
        text.contains("node_checkpoints_in_flight{node=\"n1\"} 1"),
        "{text}"
    );
    let (code, body) = h.checkpoint("multi", "container=app").await;
    assert_status(code, &body, 503, "ServiceUnavailable");
    insta::assert_json_snapshot!("status_node_busy", body);
    let (code, _) = a.await.unwrap();
    assert_eq!(code, StatusCode::OK);
    // Once free, the next one goes through.
    h.fakes.kubelet_client.set_delay(Duration::ZERO);
    let (code, _) = h.checkpoint("multi", "container=app").await;
    assert_eq!(code, StatusCode::OK);
    let text = h.metrics().encode().unwrap();
    assert!(
        text.contains("node_checkpoints_in_flight{node=\"n1\"} 0"),
        "{text}"
    );
}

#[tokio::test]
async fn request_bodies_are_size_limited() {
    let h = harness(true);
    let big = vec![b' '; 70 * 1024];
    let (code, body) = h
        .checkpoint_as(As::Proxy("alice", vec![]), "single", "", &big)
        .await;
    assert_status(code, &body, 400, "BadRequest");
    assert_eq!(
        body["message"],
        "the request body is larger than 65536 bytes"
    );
    insta::assert_json_snapshot!("status_body_too_large", body);

    // A declared Content-Length over the limit is refused before reading.
    let path = format!("{BASE}/ns/pods/single/checkpoint");
    for declared in ["1000000000", "-1", "not-a-number"] {
        let (code, _, raw) = h
            .send(
                As::Proxy("alice", vec![]),
                Method::POST,
                &path,
                b"",
                &[("Content-Length", declared)],
            )
            .await;
        let body: Value = serde_json::from_slice(&raw).unwrap();
        assert_status(code, &body, 400, "BadRequest");
        assert_eq!(
            body["message"], "the request body is larger than 65536 bytes",
            "{declared}"
        );
    }
}

#[tokio::test]
async fn option_bodies_must_be_json() {
    let h = harness(true);
    let path = format!("{BASE}/ns/pods/single/checkpoint");
    let json = br#"{"container":"app"}"#;
    for ct in [
        "text/plain",
        "application/yaml",
        "application/vnd.kubernetes.protobuf",
        "application/x-www-form-urlencoded",
    ] {
        let (code, _, raw) = h
            .send(
                As::Proxy("alice", vec![]),
                Method::POST,
                &path,
                json,
                &[("Content-Type", ct)],
            )
            .await;
        let body: Value = serde_json::from_slice(&raw).unwrap();
        assert_status(code, &body, 400, "BadRequest");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("unsupported content type"),
            "{ct}: {body}"
        );
    }
    for ct in ["application/json", "application/json; charset=utf-8"] {
        let (code, _, raw) = h
            .send(
                As::Proxy("alice", vec![]),
                Method::POST,
                &path,
                json,
                &[("Content-Type", ct)],
            )
            .await;
        assert_eq!(
            code,
            StatusCode::OK,
            "{ct}: {}",
            String::from_utf8_lossy(&raw)
        );
    }
    // no body: the content type does not matter (clients send one anyway)
    let (code, _, _) = h
        .send(
            As::Proxy("alice", vec![]),
            Method::POST,
            &path,
            b"",
            &[("Content-Type", "text/plain")],
        )
        .await;
    assert_eq!(code, StatusCode::OK);
}

#[tokio::test]
async fn hostile_input_never_panics() {
    let h = harness(true);
    let paths = [
        format!("{BASE}/ns/pods/%FF%FE/checkpoint"),
        format!("{BASE}/ns/pods/%2e%2e/checkpoint"),
        format!("{BASE}//pods/single/checkpoint"),
        format!("{BASE}/ns/pods/single/checkpoint?timeoutSeconds=%00&container=%FF"),
        format!("{BASE}/ns/pods/single/checkpoint?timeoutSeconds=99999999999999999999999"),
        format!("{BASE}/{}/pods/single/checkpoint", "a".repeat(300)),
        format!("{BASE}/ns/pods/{}/checkpoint", "p".repeat(300)),
        "/apis/../apis".to_owned(),
        "/%00".to_owned(),
    ];
    for p in &paths {
        let (code, _, bytes) = h
            .send(As::Proxy("alice", vec![]), Method::POST, p, b"", &[])
            .await;
        assert!(code.is_client_error(), "{p}: {code}");
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["kind"], "Status", "{p}");
    }
    for body in [
        &b"[]"[..],
        b"null",
        b"\"x\"",
        b"{\"timeoutSeconds\":-5}",
        b"{\"timeoutSeconds\":1e99}",
        b"{\"container\":{}}",
        b"\xff\xfe",
        b"{\"kind\":\"Pod\"}",
    ] {
        let (code, v) = h
            .checkpoint_as(As::Proxy("alice", vec![]), "single", "", body)
            .await;
        assert_status(code, &v, 400, "BadRequest");
    }
    assert!(h.fakes.kubelet_client.calls().is_empty());
}
