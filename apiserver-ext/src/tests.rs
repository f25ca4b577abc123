//! The whole router against fakes: a fake cluster, a fake node, fake events,
//! SubjectAccessReview and TokenReview through the mock API server, and the
//! peer certificates the TLS layer would attach. Every Status of the
//! contract is produced here and snapshotted.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use api_types::ContainerCheckpoint;
use apiserver_lib::UserInfo;
use apiserver_lib::authn::{Authenticator, RequestHeaderConfig, TokenReviewAuthenticator};
use apiserver_lib::authz::SubjectAccessReviewAuthorizer;
use apiserver_lib::pki::{Ca, Pem};
use apiserver_lib::serve::PeerCertificates;
use apiserver_lib::tls::{self, CaVerifier, ServingCert};
use axum::body::Body;
use http::{Method, StatusCode};
use rustls::pki_types::CertificateDer;
use serde_json::Value;
use tower::ServiceExt;

use crate::concurrency::NodeLimiter;
use crate::events::{EventType, FakeEventRecorder};
use crate::lookup::FakeClusterReader;
use crate::metrics::Metrics;
use crate::mock_api::{MockApi, Scenario};
use crate::node::{self, FakeAnswer, FakeNodeClient};
use crate::server::{App, Config, Server, Settings};
use crate::target::fixtures::{node, pod, with_default_container, with_phase, with_waiting};

const BASE: &str = "/apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces";

fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
    tls::parse_certs(pem.as_bytes(), Path::new("test")).unwrap()
}

struct Harness {
    server: Server,
    cluster: Arc<FakeClusterReader>,
    nodes: Arc<FakeNodeClient>,
    events: Arc<FakeEventRecorder>,
    metrics: Arc<Metrics>,
    api: MockApi,
    proxy_ca: Ca,
    client_ca: Ca,
}

/// Who calls, and how.
#[derive(Clone)]
enum As {
    Nobody,
    /// The front proxy (CN front-proxy-client) on behalf of a user with groups.
    Proxy(&'static str, Vec<&'static str>),
    /// Headers claiming a user, with this (possibly wrong) certificate.
    Spoofed(&'static str, Option<Pem>),
    /// Headers claiming a user, with a front-proxy-CA certificate whose CN is not allowed.
    SpoofedDisallowedCn(&'static str),
    Token(&'static str),
    ClientCert(Pem),
}

fn cluster() -> FakeClusterReader {
    FakeClusterReader::new()
        .with_pod(pod("ns", "single", "n1", &["app"]))
        .with_pod(pod("ns", "multi", "n1", &["app", "sidecar"]))
        .with_pod(with_default_container(
            pod("ns", "defaulted", "n1", &["app", "sidecar"]),
            "sidecar",
        ))
        .with_pod(with_phase(pod("ns", "pending", "", &["app"]), "Pending"))
        .with_pod(pod("ns", "unscheduled", "", &["app"]))
        .with_pod(with_waiting(
            pod("ns", "crashing", "n1", &["app"]),
            "app",
            "CrashLoopBackOff",
        ))
        .with_pod(pod("ns", "orphan", "gone-node", &["app"]))
        .with_pod(pod("ns", "hidden", "n-noaddr", &["app"]))
        .with_node(node(
            "n1",
            &[("Hostname", "n1"), ("InternalIP", "10.0.0.1")],
            Some(10250),
        ))
        .with_node(node("n-noaddr", &[("InternalDNS", "n.local")], None))
}

fn harness_with(settings: Settings) -> Harness {
    let proxy_ca = Ca::new("front-proxy-ca").unwrap();
    let client_ca = Ca::new("client-ca").unwrap();
    let api = MockApi::new(vec![
        Scenario::AllowUser("alice".into()),
        Scenario::Token(
            "alice-token".into(),
            UserInfo::new("alice", vec!["devs".into()]),
        ),
        Scenario::Token("bob-token".into(), UserInfo::new("bob", vec![])),
    ]);
    let cluster = Arc::new(cluster());
    let nodes = Arc::new(FakeNodeClient::default());
    let events = Arc::new(FakeEventRecorder::default());
    let metrics = Arc::new(Metrics::new());
    let authn = Authenticator {
        request_header: Some(RequestHeaderConfig::with_default_headers(
            CaVerifier::new(&certs(&proxy_ca.pem.cert), Path::new("proxy")).unwrap(),
            vec!["front-proxy-client".into()],
        )),
        client_ca: Some(CaVerifier::new(&certs(&client_ca.pem.cert), Path::new("client")).unwrap()),
        token: Some(Arc::new(TokenReviewAuthenticator::new(
            api.client(),
            Vec::new(),
        ))),
    };
    let (cert, key) = tls::generate_self_signed(&[]).unwrap();
    let serving = ServingCert {
        chain: certs(&cert),
        key: rustls::pki_types::pem::PemObject::from_pem_slice(key.as_bytes()).unwrap(),
    };
    let app = App {
        settings,
        authn,
        authz: Arc::new(SubjectAccessReviewAuthorizer::new(
            api.client(),
            Duration::ZERO,
            Duration::ZERO,
        )),
        cluster: cluster.clone(),
        nodes: nodes.clone(),
        events: events.clone(),
        metrics: metrics.clone(),
        limiter: Arc::new(NodeLimiter::new(1)),
    };
    let server = Server::new(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: tls::server_config(serving, &[]).unwrap(),
        app,
    });
    Harness {
        server,
        cluster,
        nodes,
        events,
        metrics,
        api,
        proxy_ca,
        client_ca,
    }
}

fn harness(gate_on: bool) -> Harness {
    harness_with(Settings::with_gate(gate_on))
}

impl Harness {
    async fn send(
        &self,
        who: As,
        method: Method,
        path_and_query: &str,
        body: &[u8],
        extra: &[(&str, &str)],
    ) -> (StatusCode, http::HeaderMap, Vec<u8>) {
        let mut req = http::Request::builder().method(method).uri(path_and_query);
        let mut peer: Vec<CertificateDer<'static>> = Vec::new();
        match who {
            As::Nobody => {}
            As::Proxy(user, groups) => {
                let pem = self.proxy_ca.client("front-proxy-client", &[]).unwrap();
                peer = certs(&pem.cert);
                req = req.header("X-Remote-User", user);
                for g in groups {
                    req = req.header("X-Remote-Group", g);
                }
                req = req.header("X-Remote-Extra-Scopes", "checkpoint-scope");
            }
            As::Spoofed(user, pem) => {
                if let Some(pem) = pem {
                    peer = certs(&pem.cert);
                }
                req = req
                    .header("X-Remote-User", user)
                    .header("X-Remote-Group", "system:masters");
            }
            As::SpoofedDisallowedCn(user) => {
                let pem = self.proxy_ca.client("mallory", &[]).unwrap();
                peer = certs(&pem.cert);
                req = req
                    .header("X-Remote-User", user)
                    .header("X-Remote-Group", "system:masters");
            }
            As::Token(t) => req = req.header("Authorization", format!("Bearer {t}")),
            As::ClientCert(pem) => peer = certs(&pem.cert),
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let mut req = req.body(Body::from(body.to_vec())).unwrap();
        req.extensions_mut()
            .insert(PeerCertificates(Arc::new(peer)));
        let resp = self.server.router().oneshot(req).await.unwrap();
        let code = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        (code, headers, bytes)
    }

    /// POST a checkpoint of ns/POD with QUERY as alice through the front proxy.
    async fn checkpoint(&self, pod: &str, query: &str) -> (StatusCode, Value) {
        self.checkpoint_as(As::Proxy("alice", vec!["devs"]), pod, query, b"")
            .await
    }

    async fn checkpoint_as(
        &self,
        who: As,
        pod: &str,
        query: &str,
        body: &[u8],
    ) -> (StatusCode, Value) {
        let q = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        let (code, _, bytes) = self
            .send(
                who,
                Method::POST,
                &format!("{BASE}/ns/pods/{pod}/checkpoint{q}"),
                body,
                &[],
            )
            .await;
        (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let (code, _, bytes) = self
            .send(As::Token("bob-token"), Method::GET, path, b"", &[])
            .await;
        (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}

fn assert_status(code: StatusCode, body: &Value, want: u16, reason: &str) {
    assert_eq!(code.as_u16(), want, "{body:#}");
    assert_eq!(body["kind"], "Status", "{body:#}");
    assert_eq!(body["apiVersion"], "v1");
    assert_eq!(body["status"], "Failure");
    assert_eq!(body["code"], want);
    assert_eq!(body["reason"], reason, "{body:#}");
}

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

    let calls = h.nodes.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].url().unwrap(),
        "https://10.0.0.1:10250/checkpoint/ns/single/app?timeout=30"
    );

    // The SubjectAccessReview asked for verb checkpoint on core pods, with groups and extras.
    let sar = h
        .api
        .recorded()
        .into_iter()
        .find(|r| r.line.ends_with("/subjectaccessreviews"))
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

    let events = h.events.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].type_, EventType::Normal);
    assert_eq!(events[0].reason, "Checkpointed");
    assert_eq!(
        events[0].message,
        "Checkpointed container app on node n1 to /var/lib/kubelet/checkpoints/checkpoint-single_ns-app-2026-11-27T07:30:00Z.tar"
    );
    let metrics = h.metrics.encode().unwrap();
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
        h.nodes.calls()[1].url().unwrap(),
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
            node: Some(FakeAnswer::Fail(node::map_answer("n1", 404, b"404 page not found").unwrap_err())),
            event: true,
            ..case("node_gate_off", "single", "", 404, "NotFound")
        },
        Case {
            node: Some(FakeAnswer::Fail(node::map_answer("n1", 404, b"container app does not exist").unwrap_err())),
            event: true,
            ..case("node_lost_the_container", "single", "", 409, "Conflict")
        },
        Case {
            node: Some(FakeAnswer::Fail(node::map_answer("n1", 403, b"Forbidden").unwrap_err())),
            event: true,
            ..case("node_forbids_us", "single", "", 500, "InternalError")
        },
        Case {
            node: Some(FakeAnswer::Fail(node::map_answer("n1", 500, b"checkpointing of ns/single/app failed (rpc error: code = Unknown desc = CRIU dump failed)").unwrap_err())),
            event: true,
            ..case("runtime_failed", "single", "", 500, "InternalError")
        },
        Case {
            node: Some(FakeAnswer::Fail(node::map_answer("n1", 500, b"checkpointing of ns/single/app failed (rpc error: code = DeadlineExceeded desc = context deadline exceeded)").unwrap_err())),
            event: true,
            ..case("runtime_timed_out", "single", "timeoutSeconds=2", 504, "Timeout")
        },
        Case {
            node: Some(FakeAnswer::Fail(node::Error::Unreachable {
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
            h.nodes.set_answer(a);
        }
        let (code, body) = h.checkpoint_as(c.who.clone(), c.pod, c.query, c.body).await;
        assert_status(code, &body, c.code, c.reason);
        insta::assert_json_snapshot!(format!("status_{}", c.name), body);
        let events = h.events.events();
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
        let called = !h.nodes.calls().is_empty();
        assert_eq!(called, c.node.is_some(), "{}: node called?", c.name);
        let metrics = h.metrics.encode().unwrap();
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

#[tokio::test]
async fn forbidden_leaks_nothing_about_the_pod() {
    let h = harness(true);
    let (code, body) = h
        .checkpoint_as(As::Proxy("viewer", vec!["viewers"]), "single", "", b"")
        .await;
    assert_status(code, &body, 403, "Forbidden");
    assert_eq!(
        body["message"],
        "pods \"single\" is forbidden: User \"viewer\" cannot checkpoint resource \"pods\" in API group \"\" in the namespace \"ns\": no RBAC policy matched"
    );
    // Same answer for a pod that does not exist: existence does not leak.
    let (_, ghost) = h
        .checkpoint_as(As::Proxy("viewer", vec!["viewers"]), "ghost", "", b"")
        .await;
    assert_eq!(
        ghost["message"]
            .as_str()
            .unwrap()
            .replace("ghost", "single"),
        body["message"]
    );
    // Neither the cluster nor the node was consulted.
    assert!(h.nodes.calls().is_empty());
    assert!(h.events.events().is_empty());
}

#[tokio::test]
async fn client_certificates_authenticate_as_their_subject() {
    let h = harness(true);
    let alice = h.client_ca.client("alice", &["devs"]).unwrap();
    let (code, body) = h
        .checkpoint_as(As::ClientCert(alice), "single", "", b"")
        .await;
    assert_eq!(code, StatusCode::OK, "{body:#}");
    // A client-CA certificate does not make the headers count.
    let mallory = h.client_ca.client("mallory", &[]).unwrap();
    let (code, body) = h
        .checkpoint_as(As::Spoofed("alice", Some(mallory)), "single", "", b"")
        .await;
    assert_status(code, &body, 403, "Forbidden");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("User \"mallory\"")
    );
}

#[tokio::test]
async fn other_methods_are_405() {
    let h = harness(true);
    for m in [Method::GET, Method::PUT, Method::DELETE, Method::PATCH] {
        let (code, _, bytes) = h
            .send(
                As::Proxy("alice", vec![]),
                m.clone(),
                &format!("{BASE}/ns/pods/single/checkpoint"),
                b"",
                &[],
            )
            .await;
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_status(code, &body, 405, "MethodNotAllowed");
        if m == Method::GET {
            insta::assert_json_snapshot!("status_method_not_allowed", body);
        }
    }
    // Discovery is read-only too.
    let (code, _, bytes) = h
        .send(As::Token("bob-token"), Method::POST, "/apis", b"", &[])
        .await;
    assert_status(
        code,
        &serde_json::from_slice(&bytes).unwrap(),
        405,
        "MethodNotAllowed",
    );
    assert!(h.nodes.calls().is_empty());
}

#[tokio::test]
async fn gate_off_hides_the_subresource() {
    let h = harness(false);
    let (code, body) = h.checkpoint("single", "").await;
    assert_status(code, &body, 404, "NotFound");
    insta::assert_json_snapshot!("status_gate_off", body);
    let (code, body) = h
        .get_json("/apis/subresources.checkpoint.kcr.dev/v1alpha1")
        .await;
    assert_eq!(code, StatusCode::OK);
    insta::assert_json_snapshot!("discovery_version_gate_off", body);
    let (_, body) = h.get_json("/openapi/v2").await;
    assert_eq!(body["paths"], serde_json::json!({}));
    assert!(h.nodes.calls().is_empty());
    // Still 401 first for strangers.
    let (code, body) = h.checkpoint_as(As::Nobody, "single", "", b"").await;
    assert_status(code, &body, 401, "Unauthorized");
}

#[tokio::test]
async fn discovery_and_openapi_documents() {
    let h = harness(true);
    for (name, path) in [
        ("discovery_apis", "/apis"),
        ("discovery_group", "/apis/subresources.checkpoint.kcr.dev"),
        (
            "discovery_version",
            "/apis/subresources.checkpoint.kcr.dev/v1alpha1",
        ),
        ("openapi_v2", "/openapi/v2"),
        ("openapi_v3", "/openapi/v3"),
        (
            "openapi_v3_group",
            "/openapi/v3/apis/subresources.checkpoint.kcr.dev/v1alpha1",
        ),
    ] {
        let (code, body) = h.get_json(path).await;
        assert_eq!(code, StatusCode::OK, "{path}: {body:#}");
        insta::assert_json_snapshot!(name, body);
    }
    // Discovery needs authentication.
    let (code, _, bytes) = h.send(As::Nobody, Method::GET, "/apis", b"", &[]).await;
    assert_status(
        code,
        &serde_json::from_slice(&bytes).unwrap(),
        401,
        "Unauthorized",
    );
    // ETags for the aggregator's OpenAPI downloader.
    let (_, headers, _) = h
        .send(As::Token("bob-token"), Method::GET, "/openapi/v2", b"", &[])
        .await;
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let (code, _, body) = h
        .send(
            As::Token("bob-token"),
            Method::GET,
            "/openapi/v2",
            b"",
            &[("If-None-Match", etag.as_str())],
        )
        .await;
    assert_eq!(code, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    // Unknown paths: a 404 Status.
    let (code, body) = h
        .get_json("/apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/ns/pods/single/exec")
        .await;
    assert_status(code, &body, 404, "NotFound");
    insta::assert_json_snapshot!("status_unknown_path", body);
}

#[tokio::test]
async fn health_needs_no_credentials_and_metrics_needs_rbac() {
    let h = harness(true);
    for path in ["/healthz", "/livez", "/readyz"] {
        let (code, _, body) = h.send(As::Nobody, Method::GET, path, b"", &[]).await;
        assert_eq!(code, StatusCode::OK, "{path}");
        assert_eq!(body, b"ok");
    }
    let (code, _, body) = h
        .send(As::Nobody, Method::GET, "/readyz?verbose", b"", &[])
        .await;
    assert_eq!(code, StatusCode::OK);
    insta::assert_snapshot!("readyz_verbose", String::from_utf8(body).unwrap());
    h.cluster.set_unreachable(Some("connection refused"));
    let (code, _, body) = h.send(As::Nobody, Method::GET, "/readyz", b"", &[]).await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(String::from_utf8_lossy(&body).contains("[-]kube-apiserver failed"));
    let (code, _, _) = h.send(As::Nobody, Method::GET, "/livez", b"", &[]).await;
    assert_eq!(
        code,
        StatusCode::OK,
        "liveness does not depend on the API server"
    );

    // The API server being down is a 503 for a checkpoint, too.
    let (code, body) = h.checkpoint("single", "").await;
    assert_status(code, &body, 503, "ServiceUnavailable");

    // /metrics needs a user allowed to `get /metrics`
    let (code, _, body) = h.send(As::Nobody, Method::GET, "/metrics", b"", &[]).await;
    assert_status(
        code,
        &serde_json::from_slice(&body).unwrap(),
        401,
        "Unauthorized",
    );
    let (code, _, body) = h
        .send(As::Proxy("bob", vec![]), Method::GET, "/metrics", b"", &[])
        .await;
    let status: Value = serde_json::from_slice(&body).unwrap();
    assert_status(code, &status, 403, "Forbidden");
    assert_eq!(
        status["message"],
        "forbidden: User \"bob\" cannot get path \"/metrics\""
    );
    let (code, headers, body) = h
        .send(
            As::Proxy("alice", vec![]),
            Method::GET,
            "/metrics",
            b"",
            &[],
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains("code=\"503\",reason=\"ServiceUnavailable\""),
        "{text}"
    );
}

#[tokio::test]
async fn the_node_call_is_bounded_by_the_requested_timeout() {
    let mut settings = Settings::with_gate(true);
    settings.kubelet_timeout_margin = Duration::from_millis(200);
    let h = harness_with(settings);
    h.nodes.set_answer(FakeAnswer::Hang);
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
    let events = h.events.events();
    assert_eq!(events[0].reason, "CheckpointFailed");
    assert!(events[0].message.contains("(Timeout)"), "{events:?}");
    let metrics = h.metrics.encode().unwrap();
    assert!(
        metrics.contains("checkpoint_duration_seconds_count{result=\"Timeout\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn per_node_concurrency_queues_with_a_deadline() {
    let mut settings = Settings::with_gate(true);
    settings.node_queue_timeout = Duration::from_millis(100);
    let h = Arc::new(harness_with(settings));
    h.nodes.set_delay(Duration::from_millis(600));
    let a = {
        let h = h.clone();
        tokio::spawn(async move { h.checkpoint("single", "").await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The slot is taken: the in-flight gauge shows it.
    let text = h.metrics.encode().unwrap();
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
    h.nodes.set_delay(Duration::ZERO);
    let (code, _) = h.checkpoint("multi", "container=app").await;
    assert_eq!(code, StatusCode::OK);
    let text = h.metrics.encode().unwrap();
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
    assert!(h.nodes.calls().is_empty());
}

#[tokio::test]
async fn api_server_unreachable_for_authorization_is_503() {
    let h = harness(true);
    // A TokenReview that cannot be made authenticates nobody (kube-apiserver's behaviour).
    let down = MockApi::new(vec![Scenario::Unreachable]);
    let app_authz =
        SubjectAccessReviewAuthorizer::new(down.client(), Duration::ZERO, Duration::ZERO);
    let server = {
        let (cert, key) = tls::generate_self_signed(&[]).unwrap();
        let serving = ServingCert {
            chain: certs(&cert),
            key: rustls::pki_types::pem::PemObject::from_pem_slice(key.as_bytes()).unwrap(),
        };
        Server::new(Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            tls: tls::server_config(serving, &[]).unwrap(),
            app: App {
                settings: Settings::with_gate(true),
                authn: Authenticator {
                    request_header: Some(RequestHeaderConfig::with_default_headers(
                        CaVerifier::new(&certs(&h.proxy_ca.pem.cert), Path::new("proxy")).unwrap(),
                        vec![],
                    )),
                    client_ca: None,
                    token: Some(Arc::new(TokenReviewAuthenticator::new(
                        down.client(),
                        vec![],
                    ))),
                },
                authz: Arc::new(app_authz),
                cluster: h.cluster.clone(),
                nodes: h.nodes.clone(),
                events: h.events.clone(),
                metrics: Arc::new(Metrics::new()),
                limiter: Arc::new(NodeLimiter::new(1)),
            },
        })
    };
    let h2 = Harness { server, ..h };
    let (code, body) = h2.checkpoint("single", "").await;
    assert_status(code, &body, 503, "ServiceUnavailable");
    insta::assert_json_snapshot!("status_authorization_unavailable", body);
    let (code, body) = h2
        .checkpoint_as(As::Token("alice-token"), "single", "", b"")
        .await;
    assert_status(code, &body, 401, "Unauthorized");
}
