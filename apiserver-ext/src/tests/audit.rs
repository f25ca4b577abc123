//! The audit line of every checkpoint request (issue 11, point 6): at info
//! level, target `audit`, with the user, groups, pod, container, node,
//! outcome and archive — answered or refused.

use kcr_testkit::logs;
use serde_json::json;

use super::{As, harness};
use crate::kubelet_client;
use crate::testing::FakeAnswer;

#[tokio::test]
async fn every_checkpoint_request_leaves_one_audit_line() {
    let h = harness(true);
    let (_guard, logs) = logs::capture();

    let (code, _) = h.checkpoint("single", "timeoutSeconds=30").await;
    assert_eq!(code, 200);
    let (code, _) = h
        .checkpoint_as(As::Proxy("bob", vec!["viewers"]), "single", "", b"")
        .await;
    assert_eq!(code, 403);
    let (code, _) = h.checkpoint_as(As::Nobody, "single", "", b"").await;
    assert_eq!(code, 401);
    h.fakes
        .kubelet_client
        .set_answer(FakeAnswer::Fail(kubelet_client::Error::Unreachable {
            node: "n1".into(),
            endpoint: "10.0.0.1:10250".into(),
            reason: "connection refused".into(),
        }));
    let (code, _) = h.checkpoint("multi", "container=sidecar").await;
    assert_eq!(code, 503);
    // Not a checkpoint: not audited.
    let _ = h.get_json("/apis").await;

    let lines = logs.fields_of(apiserver_lib::audit::TARGET);
    assert_eq!(
        lines,
        [
            json!({
                "message": "checkpoint request", "user": "alice",
                "groups": "devs,system:authenticated", "namespace": "ns", "pod": "single",
                "container": "app", "node": "n1", "code": 200, "reason": "Success",
                "archive": "/var/lib/kubelet/checkpoints/checkpoint-single_ns-app-2026-11-27T07:30:00Z.tar"
            }),
            json!({
                "message": "checkpoint request", "user": "bob",
                "groups": "viewers,system:authenticated", "namespace": "ns", "pod": "single",
                "container": "", "node": "", "code": 403, "reason": "Forbidden", "archive": ""
            }),
            json!({
                "message": "checkpoint request", "user": "", "groups": "",
                "namespace": "ns", "pod": "single", "container": "", "node": "",
                "code": 401, "reason": "Unauthorized", "archive": ""
            }),
            json!({
                "message": "checkpoint request", "user": "alice",
                "groups": "devs,system:authenticated", "namespace": "ns", "pod": "multi",
                "container": "sidecar", "node": "n1", "code": 503,
                "reason": "ServiceUnavailable", "archive": ""
            }),
        ]
    );
}

#[tokio::test]
async fn hostile_names_cannot_forge_an_audit_line() {
    let h = harness(true);
    let (_guard, logs) = logs::capture();
    let (code, _) = h
        .checkpoint_as(As::Nobody, "evil%0Auser%3Dadmin", "", b"")
        .await;
    assert_eq!(code, 401);
    let lines = logs.fields_of(apiserver_lib::audit::TARGET);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["pod"], "\"evil\\nuser=admin\"");
}
