//! A checkpoint that succeeds, the ways options arrive, and every Status of the contract.

use api_types::ContainerCheckpoint;
use http::StatusCode;

use super::{As, assert_status, harness};
use crate::events::EventType;
use crate::kubelet_client;
use crate::testing::FakeAnswer;
use apiserver_lib::pki::Ca;

#[tokio::test]
async fn checkpoint_succeeds_and_records() {
    let h = harness(true);
    let (code, body) = h.checkpoint("single", "timeoutSeconds=30").await;
    assert_eq!(code, StatusCode::OK, "{body:#}");
    let obj: ContainerCheckpoint = serde_json::from_value(body).unwrap();
    assert_eq!(obj.kind, "ContainerCheckpoint");
    assert_eq!(obj.api_version, "subresources.checkpoint.kcr.dev/v1alpha1");
    assert_eq!(obj.metadata.namespace.as_deref(), Some("ns"));
    assert!(obj.metadata.name.unwrap().starts_with("single-app-"));
    assert_eq!(obj.spec.pod_name, "single");
    assert_eq!(obj.spec.pod_uid, "uid-single");
    assert_eq!(obj.spec.container, "app");
    assert_eq!(obj.spec.timeout_seconds, 30);
    assert_eq!(obj.status.node_name, "n1");
    assert_eq!(obj.status.node_address, "10.0.0.1");
    assert_eq!(
        obj.status.archive_path,
        "/var/lib/kubelet/checkpoints/checkpoint-single_ns-app-2026-11-27T07:30:00Z.tar"
    );
    assert!(obj.status.completion_time.0 >= obj.status.start_time.0);

    let calls = h.fakes.kubelet_client.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].url().unwrap(),
        "https://10.0.0.1:10250/checkpoint/ns/single/app?timeout=30"
    );

    // The SubjectAccessReview asked for verb checkpoint on core pods, with groups and extras.
    let sar = h
        .api
        .requests()
        .into_iter()
        .find(|r| r.line().ends_with("/subjectaccessreviews"))
        .unwrap();
    assert_eq!(sar.body["spec"]["user"], "alice");
    assert_eq!(
        sar.body["spec"]["groups"],
        serde_json::json!(["devs", "system:authenticated"])
    );
    assert_eq!(sar.body["spec"]["extra"]["scopes"][0], "checkpoint-scope");
    assert_eq!(
        sar.body["spec"]["resourceAttributes"],
        serde_json::json!({"verb": "checkpoint", "group": "", "resource": "pods", "namespace": "ns", "name": "single"})
    );

    let events = h.fakes.events.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].type_, EventType::Normal);
    assert_eq!(events[0].reason, "Checkpointed");
    assert_eq!(
        events[0].message,
        "Checkpointed container app on node n1 to /var/lib/kubelet/checkpoints/checkpoint-single_ns-app-2026-11-27T07:30:00Z.tar"
    );
    let metrics = h.metrics().encode().unwrap();
    assert!(
        metrics.contains("checkpoint_apiserver_requests_total{code=\"200\",reason=\"Success\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "checkpoint_apiserver_checkpoint_duration_seconds_count{result=\"success\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn options_from_body_token_and_defaults() {
    let h = harness(true);
    // A JSON body, a bearer token (TokenReview), the default-container annotation.
    let (code, body) = h
        .checkpoint_as(
            As::Token("alice-token"),
            "defaulted",
            "",
            br#"{"kind":"PodCheckpointOptions","apiVersion":"subresources.checkpoint.kcr.dev/v1alpha1","timeoutSeconds":5}"#,
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body:#}");
    assert_eq!(body["spec"]["container"], "sidecar");
    assert_eq!(body["spec"]["timeoutSeconds"], 5);
    // Query and body agreeing is fine; -c overrides the default container.
    let (code, body) = h
        .checkpoint_as(
            As::Proxy("alice", vec![]),
            "defaulted",
            "container=app",
            br#"{"container":"app"}"#,
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body:#}");
    assert_eq!(body["spec"]["container"], "app");
    assert_eq!(
        h.fakes.kubelet_client.calls()[1].url().unwrap(),
        "https://10.0.0.1:10250/checkpoint/ns/defaulted/app"
    );
}

/// One row of the Status table: who, pod, query, body, and what to expect.
struct Case {
    name: &'static str,
    who: As,
    pod: &'static str,
    query: &'static str,
    body: &'static [u8],
    node: Option<FakeAnswer>,
    code: u16,
    reason: &'static str,
    /// Whether the pod gets a CheckpointFailed event.
    event: bool,
}

fn case(
    name: &'static str,
    pod: &'static str,
    query: &'static str,
    code: u16,
    reason: &'static str,
) -> Case {
    Case {
        name,
        who: As::Proxy("alice", vec!["devs"]),
        pod,
        query,
        body: b"",
        node: None,
        code,
        reason,
        event: false,
    }
}

#[tokio::test]
async fn every_status_of_the_contract() {
    let mut cases = vec![
        Case { who: As::Nobody, ..case("unauthenticated", "single", "", 401, "Unauthorized") },
        Case { who: As::Token("no-such-token"), ..case("bad_token", "single", "", 401, "Unauthorized") },
        Case { who: As::Token("bob-token"), ..case("forbidden", "single", "", 403, "Forbidden") },
        Case { who: As::Token("bob-token"), ..case("forbidden_missing_pod", "ghost", "", 403, "Forbidden") },
        case("pod_not_found", "ghost", "", 404, "NotFound"),
        case("bad_timeout", "single", "timeoutSeconds=-1", 400, "BadRequest"),
        case("timeout_too_large", "single", "timeoutSeconds=999999", 400, "BadRequest"),
        case("duplicate_parameter", "single", "container=a&container=b", 400, "BadRequest"),
        case("invalid_container_name", "single", "container=..%2Fetc", 400, "BadRequest"),
        case("invalid_pod_name", "Bad_Name", "", 400, "BadRequest"),
        Case { body: b"{not json", ..case("bad_body", "single", "", 400, "BadRequest") },
        Case { body: br#"{"container":"sidecar"}"#, ..case("query_body_mismatch", "multi", "container=app", 400, "BadRequest") },
        Case { event: true, ..case("container_required", "multi", "", 400, "BadRequest") },
        Case { event: true, ..case("unknown_container", "multi", "container=nope", 400, "BadRequest") },
        Case { event: true, ..case("pod_pending", "pending", "", 409, "Conflict") },
        Case { event: true, ..case("pod_unscheduled", "unscheduled", "", 409, "Conflict") },
        Case { event: true, ..case("container_not_running", "crashing", "", 409, "Conflict") },
        Case { event: true, ..case("node_missing", "orphan", "", 409, "Conflict") },
        Case { event: true, ..case("node_without_address", "hidden", "", 503, "ServiceUnavailable") },
        Case {
            node: Some(FakeAnswer::Fail(kubelet_client::map_answer("n1", 404, b"404 page not found").unwrap_err())),
            event: true,
            ..case("node_gate_off", "single", "", 404, "NotFound")
        },
        Case {
            node: Some(FakeAnswer::Fail(kubelet_client::map_answer("n1", 404, b"container app does not exist").unwrap_err())),
            event: true,
            ..case("node_lost_the_container", "single", "", 409, "Conflict")
        },
        Case {
            node: Some(FakeAnswer::Fail(kubelet_client::map_answer("n1", 403, b"Forbidden").unwrap_err())),
            event: true,
            ..case("node_forbids_us", "single", "", 500, "InternalError")
        },
        Case {
            node: Some(FakeAnswer::Fail(kubelet_client::map_answer("n1", 500, b"checkpointing of ns/single/app failed (rpc error: code = Unknown desc = CRIU dump failed)").unwrap_err())),
            event: true,
            ..case("runtime_failed", "single", "", 500, "InternalError")
        },
        Case {
            node: Some(FakeAnswer::Fail(kubelet_client::map_answer("n1", 500, b"checkpointing of ns/single/app failed (rpc error: code = DeadlineExceeded desc = context deadline exceeded)").unwrap_err())),
            event: true,
            ..case("runtime_timed_out", "single", "timeoutSeconds=2", 504, "Timeout")
        },
        Case {
            node: Some(FakeAnswer::Fail(kubelet_client::Error::Unreachable {
                node: "n1".into(),
                endpoint: "10.0.0.1:10250".into(),
                reason: "client error (Connect): tcp connect error: Connection refused (os error 111)".into(),
            })),
            event: true,
            ..case("node_unreachable", "single", "", 503, "ServiceUnavailable")
        },
    ];
    // Spoofed headers: no certificate, a certificate from a stranger CA
    // claiming the front proxy's CN, a front-proxy-CA certificate with a CN
    // that is not allowed. (Each case gets a fresh harness; a CA made here
    // is a stranger to all of them.)
    let stranger = Ca::new("stranger").unwrap();
    let wrong_ca = stranger.client("front-proxy-client", &[]).unwrap();
    cases.push(Case {
        who: As::Spoofed("admin", None),
        ..case("spoofed_headers", "single", "", 401, "Unauthorized")
    });
    cases.push(Case {
        who: As::Spoofed("admin", Some(wrong_ca)),
        ..case(
            "spoofed_headers_wrong_ca",
            "single",
            "",
            401,
            "Unauthorized",
        )
    });
    cases.push(Case {
        who: As::SpoofedDisallowedCn("admin"),
        ..case(
            "spoofed_headers_disallowed_cn",
            "single",
            "",
            401,
            "Unauthorized",
        )
    });

    for c in cases {
        let h = harness(true);
        if let Some(a) = c.node.clone() {
            h.fakes.kubelet_client.set_answer(a);
        }
        let (code, body) = h.checkpoint_as(c.who.clone(), c.pod, c.query, c.body).await;
        assert_status(code, &body, c.code, c.reason);
        insta::assert_json_snapshot!(format!("status_{}", c.name), body);
        let events = h.fakes.events.events();
        if c.event {
            assert_eq!(events.len(), 1, "{}: {events:?}", c.name);
            assert_eq!(events[0].type_, EventType::Warning);
            assert_eq!(events[0].reason, "CheckpointFailed");
            assert!(
                events[0].message.contains(c.reason),
                "{}: {events:?}",
                c.name
            );
        } else {
            assert!(events.is_empty(), "{}: {events:?}", c.name);
        }
        let called = !h.fakes.kubelet_client.calls().is_empty();
        assert_eq!(called, c.node.is_some(), "{}: node called?", c.name);
        let metrics = h.metrics().encode().unwrap();
        assert!(
            metrics.contains(&format!(
                "checkpoint_apiserver_requests_total{{code=\"{}\",reason=\"{}\"}} 1",
                c.code, c.reason
            )),
            "{}: {metrics}",
            c.name
        );
    }
}
