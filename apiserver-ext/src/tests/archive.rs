//! `podcheckpoints/archive`: ranges streamed from the (fake) node agent, and
//! every Status a download can meet.

use api_types::PodCheckpointSpec;
use api_types::k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use api_types::podcheckpoint::{
    CheckpointArchive, PodCheckpoint, PodCheckpointContainerStatus, PodCheckpointStatus, reason,
};
use http::{Method, StatusCode, header};
use serde_json::Value;

use super::{As, BASE, Harness, assert_status, harness};
use crate::kubelet_client;

const UID: &str = "6f1d3c1e-8d7a-4e38-9b9a-0c1f8f4f7a11";

fn pc(name: &str, node: &str, containers: &[&str], ready: bool) -> PodCheckpoint {
    let mut pc = PodCheckpoint::new(
        name,
        PodCheckpointSpec {
            source_pod_name: "single".into(),
            ..Default::default()
        },
    );
    pc.metadata.namespace = Some("ns".into());
    pc.metadata.uid = Some(UID.into());
    pc.status = Some(PodCheckpointStatus {
        node_name: Some(node.into()),
        checkpointed_containers: containers
            .iter()
            .map(|c| PodCheckpointContainerStatus {
                name: (*c).into(),
                archive: Some(CheckpointArchive {
                    path: format!("{UID}/checkpoint-single_ns-{c}-2026-11-27T07:30:00Z.tar"),
                    size_bytes: 10,
                    sha256: String::new(),
                }),
                ..Default::default()
            })
            .collect(),
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            reason: if ready {
                reason::COMPLETED
            } else {
                reason::IN_PROGRESS
            }
            .into(),
            message: if ready { "" } else { "checkpointing app" }.into(),
            last_transition_time: Time(api_types::k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            observed_generation: None,
        }],
        ..Default::default()
    });
    pc
}

/// alice's server with PodCheckpoints `one` (container app on n1), `two`
/// (app and sidecar), `busy` (not Ready) and `lost` (its node is gone);
/// the agent on n1 holds `one`'s archive: `0123456789`.
fn setup() -> Harness {
    let h = harness(true);
    let l = &h.fakes.listers;
    l.put_pod_checkpoint(pc("one", "n1", &["app"], true));
    l.put_pod_checkpoint(pc("two", "n1", &["app", "sidecar"], true));
    l.put_pod_checkpoint(pc("busy", "n1", &[], false));
    l.put_pod_checkpoint(pc("lost", "gone-node", &["app"], true));
    h.fakes
        .kubelet_client
        .put_archive("ns", "one", "app", b"0123456789".to_vec());
    h
}

async fn get(
    h: &Harness,
    who: As,
    name: &str,
    query: &str,
) -> (StatusCode, http::HeaderMap, Vec<u8>) {
    h.send(
        who,
        Method::GET,
        &format!("{BASE}/ns/podcheckpoints/{name}/archive?{query}"),
        b"",
        &[],
    )
    .await
}

fn alice() -> As {
    As::Proxy("alice", vec!["devs"])
}

async fn status(h: &Harness, who: As, name: &str, query: &str) -> (StatusCode, Value) {
    let (code, _, body) = get(h, who, name, query).await;
    (code, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn ranges_stream_from_the_node_agent() {
    let h = setup();
    let (code, headers, body) = get(&h, alice(), "one", "container=app&offset=2&length=5").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body, b"23456");
    assert_eq!(headers[header::CONTENT_RANGE], "bytes 2-6/10");
    assert_eq!(headers[header::CONTENT_TYPE], "application/octet-stream");
    assert_eq!(headers[header::CONTENT_LENGTH], "5");
    // The node was asked with the object's UID; the range as asked.
    let calls = h.fakes.kubelet_client.archive_calls();
    assert_eq!(
        calls[0].url().unwrap(),
        format!(
            "https://10.0.0.1:10250/podcheckpoints/ns/one/archive?container=app&uid={UID}&offset=2&length=5"
        )
    );
    // The only container is the default; no length is the server's cap.
    let (code, headers, body) = get(&h, alice(), "one", "").await;
    assert_eq!(
        (code, body.as_slice()),
        (StatusCode::OK, &b"0123456789"[..])
    );
    assert_eq!(headers[header::CONTENT_RANGE], "bytes 0-9/10");
    assert_eq!(
        h.fakes.kubelet_client.archive_calls()[1].query.length,
        Some(crate::options::DEFAULT_MAX_ARCHIVE_RANGE_BYTES)
    );
    // A UID sent by the client is not the node's business.
    get(&h, alice(), "one", "container=app&uid=evil").await;
    assert_eq!(h.fakes.kubelet_client.archive_calls()[2].query.uid, UID);

    // The SubjectAccessReview: get podcheckpoints/archive in the aggregated group.
    let sar = h
        .api
        .requests()
        .into_iter()
        .find(|r| r.line().ends_with("/subjectaccessreviews"))
        .unwrap();
    assert_eq!(
        sar.body["spec"]["resourceAttributes"],
        serde_json::json!({"verb": "get", "group": "subresources.checkpoint.kcr.dev", "resource": "podcheckpoints", "subresource": "archive", "namespace": "ns", "name": "one"})
    );
}

#[tokio::test]
async fn a_range_is_capped() {
    let h = super::harness_with(|c| c.rest.max_archive_range_bytes = 4);
    h.fakes
        .listers
        .put_pod_checkpoint(pc("one", "n1", &["app"], true));
    h.fakes
        .kubelet_client
        .put_archive("ns", "one", "app", b"0123456789".to_vec());
    let (code, headers, body) = get(&h, alice(), "one", "offset=3&length=100").await;
    assert_eq!((code, body.as_slice()), (StatusCode::OK, &b"3456"[..]));
    assert_eq!(headers[header::CONTENT_RANGE], "bytes 3-6/10");
}

/// `--node-agent-port`: archives come from the agent also where checkpoints
/// go to the kubelet's port.
#[tokio::test]
async fn archives_go_to_the_node_agent_port() {
    let h = super::harness_with(|c| {
        c.rest.kubelet.port = Some(10250);
        c.rest.kubelet.agent_port = Some(10350);
    });
    h.fakes
        .listers
        .put_pod_checkpoint(pc("one", "n1", &["app"], true));
    h.fakes
        .kubelet_client
        .put_archive("ns", "one", "app", b"0123456789".to_vec());
    let (code, _, _) = get(&h, alice(), "one", "offset=0&length=2").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(h.fakes.kubelet_client.archive_calls()[0].port, 10350);
    let (code, _) = h.checkpoint("single", "").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(h.fakes.kubelet_client.calls()[0].port, 10250);
}

#[tokio::test]
async fn every_status_of_a_download() {
    let h = setup();
    let cases: Vec<(As, &str, &str, u16, &str, String)> = vec![
        (
            As::Token("bob-token"),
            "one",
            "",
            403,
            "Forbidden",
            "podcheckpoints.subresources.checkpoint.kcr.dev \"one\" is forbidden: User \"bob\" cannot get resource \"podcheckpoints/archive\" in API group \"subresources.checkpoint.kcr.dev\" in the namespace \"ns\": no RBAC policy matched".into(),
        ),
        (
            alice(),
            "ghost",
            "",
            404,
            "NotFound",
            "podcheckpoints.checkpoint.kcr.dev \"ghost\" not found".into(),
        ),
        (
            alice(),
            "one",
            "container=db",
            400,
            "BadRequest",
            "container db is not valid for podcheckpoint one: it has archives of [app]".into(),
        ),
        (
            alice(),
            "two",
            "",
            400,
            "BadRequest",
            "a container name must be specified for podcheckpoint two, choose one of: [app sidecar]".into(),
        ),
        (
            alice(),
            "busy",
            "container=app",
            409,
            "Conflict",
            "podcheckpoint busy is not Ready (CheckpointInProgress: checkpointing app): it has no archive to read".into(),
        ),
        (
            alice(),
            "lost",
            "",
            404,
            "NotFound",
            "the archives of podcheckpoint lost are gone: node gone-node does not exist".into(),
        ),
        (
            alice(),
            "two",
            "container=sidecar",
            404,
            "NotFound",
            "node n1: archive of podcheckpoint ns/two is gone from node n1".into(),
        ),
        (
            alice(),
            "one",
            "offset=10",
            416,
            "RequestedRangeNotSatisfiable",
            "node n1: offset 10 is past the end of archive x.tar (10 bytes)".into(),
        ),
        (
            alice(),
            "one",
            "offset=-3",
            400,
            "BadRequest",
            "invalid offset \"-3\": must be a non-negative integer".into(),
        ),
        (
            alice(),
            "one",
            "length=0",
            400,
            "BadRequest",
            "invalid length \"0\": must be positive".into(),
        ),
        (
            alice(),
            "Bad_Name",
            "",
            400,
            "BadRequest",
            String::new(),
        ),
    ];
    for (who, name, query, code, reason, message) in cases {
        let (got, body) = status(&h, who, name, query).await;
        assert_status(got, &body, code, reason);
        if !message.is_empty() {
            assert_eq!(body["message"], message, "{name}?{query}");
        }
    }

    // The node agent cannot be reached: 503 naming the node.
    h.fakes
        .kubelet_client
        .fail_archives(Some(kubelet_client::Error::Unreachable {
            node: "n1".into(),
            endpoint: "10.0.0.1:10250".into(),
            reason: "connection refused".into(),
        }));
    let (got, body) = status(&h, alice(), "one", "").await;
    assert_status(got, &body, 503, "ServiceUnavailable");
    assert_eq!(
        body["message"],
        "node n1 (10.0.0.1:10250) cannot be reached: connection refused"
    );

    // Only GET.
    let (code, _, body) = h
        .send(
            alice(),
            Method::POST,
            &format!("{BASE}/ns/podcheckpoints/one/archive"),
            b"",
            &[],
        )
        .await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_status(code, &body, 405, "MethodNotAllowed");

    // Nobody: 401 before anything.
    let (code, body) = status(&h, As::Nobody, "one", "").await;
    assert_status(code, &body, 401, "Unauthorized");
}

#[test]
fn node_answers_become_statuses() {
    use crate::kubelet_client::map_archive_failure;
    let s = |code, body: &str| map_archive_failure("n1", code, body.as_bytes()).status();
    let gone = s(
        404,
        "archive u/x.tar of podcheckpoint ns/one is gone from node n1",
    );
    assert_eq!(
        (gone.code, gone.message.as_deref()),
        (
            Some(404),
            Some("node n1: archive u/x.tar of podcheckpoint ns/one is gone from node n1")
        )
    );
    let no_route = s(404, "404 page not found\n");
    assert_eq!(
        no_route.message.as_deref(),
        Some(
            "node n1: the node agent on node n1 does not serve archives (is checkpoint-shim running there with its PodCheckpoint controller?)"
        )
    );
    assert_eq!(s(416, "offset 9 is past the end").code, Some(416));
    assert_eq!(
        s(416, "x").reason.as_deref(),
        Some("RequestedRangeNotSatisfiable")
    );
    let denied = s(
        403,
        "Forbidden (user=x, verb=get, resource=nodes, subresource=checkpoint)",
    );
    assert_eq!(
        (denied.code, denied.message.as_deref()),
        (
            Some(500),
            Some(
                "checkpoint-apiserver is not authorised to read archives on node n1: grant get on nodes/checkpoint"
            )
        )
    );
    assert_eq!(s(409, "podcheckpoint ns/one is not Ready").code, Some(409));
    assert_eq!(s(503, "failed to read podcheckpoint").code, Some(503));
    assert_eq!(s(500, "boom").code, Some(500));
}
