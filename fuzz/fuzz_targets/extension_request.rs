//! checkpoint-apiserver's whole request handling in process: its router
//! (`Server::router`) with the filters, routes, percent-decoding, name
//! validation, query and body options, in front of the fakes of
//! `apiserver_ext::testing` (one pod `default/web` with container `app` on
//! `node-1`; a node that always succeeds; a token for an allowed user).
//! Input: `[METHOD ]TARGET\nBODY`.
//!
//! Invariants: nothing panics; no 5xx (with these fakes only the request can
//! be at fault); every failure of the API (all but health and metrics, which
//! are plain text) is a `metav1.Status` whose code is the HTTP code; whatever reaches the node has valid names, a timeout within
//! `0..=3600` and a well-formed node URL.
#![no_main]

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use api_types::k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStatus, DaemonEndpoint, Node,
    NodeAddress, NodeDaemonEndpoints, NodeStatus, Pod, PodSpec, PodStatus,
};
use api_types::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use apiserver_ext::Server;
use apiserver_ext::events::{EventRecorder, PodEvent};
use apiserver_ext::kubelet_client::{
    ArchiveCall, CheckpointCall, Error as KubeletError, KubeletClient, NodeArchive,
};
use apiserver_ext::testing::{FakeLeases, FakeListers, Fakes};
use apiserver_ext::turns::ContainerTurns;
use apiserver_lib::UserInfo;
use apiserver_lib::authentication::{Authenticator, StaticTokensForTesting};
use apiserver_lib::authorization::StaticAuthorizerForTesting;
use axum::Router;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

/// Discards events (the fuzzer makes millions).
#[derive(Debug)]
struct NoEvents;

impl EventRecorder for NoEvents {
    fn record(&self, _: PodEvent) {}
}

/// A node that checks what it is asked and always succeeds.
#[derive(Debug)]
struct CheckingNode;

impl KubeletClient for CheckingNode {
    fn checkpoint<'a>(
        &'a self,
        call: &'a CheckpointCall,
    ) -> Pin<Box<dyn Future<Output = Result<String, KubeletError>> + Send + 'a>> {
        assert!(call.container.validate().is_ok(), "{call:?}");
        assert!((0..=api_types::MAX_TIMEOUT_SECONDS).contains(&call.timeout_seconds));
        let url = call.url().expect("a node URL");
        assert!(!url.contains(".."), "{url}");
        Box::pin(async move {
            Ok(format!(
                "/var/lib/kubelet/checkpoints/{}",
                call.container.archive_file_name(Default::default(), 1)
            ))
        })
    }

    /// The fakes hold no PodCheckpoint, so no archive call should get here;
    /// if one does, it must be well-formed, and the node has no such archive.
    fn archive<'a>(
        &'a self,
        call: &'a ArchiveCall,
    ) -> Pin<Box<dyn Future<Output = Result<NodeArchive, KubeletError>> + Send + 'a>> {
        let url = call.url().expect("a node URL");
        assert!(!url.contains(".."), "{url}");
        Box::pin(async move {
            Err(KubeletError::Gone {
                node: call.node.clone(),
                message: format!("no archive of podcheckpoint {}/{}", call.namespace, call.name),
            })
        })
    }
}

fn pod() -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("uid-web".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some("node-1".into()),
            containers: vec![Container {
                name: "app".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            container_statuses: Some(vec![ContainerStatus {
                name: "app".into(),
                state: Some(ContainerState {
                    running: Some(ContainerStateRunning::default()),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

fn node() -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some("node-1".into()),
            ..Default::default()
        },
        spec: None,
        status: Some(NodeStatus {
            addresses: Some(vec![NodeAddress {
                type_: "InternalIP".into(),
                address: "127.0.0.1".into(),
            }]),
            daemon_endpoints: Some(NodeDaemonEndpoints {
                kubelet_endpoint: Some(DaemonEndpoint { port: 10250 }),
            }),
            ..Default::default()
        }),
    }
}

fn setup() -> (tokio::runtime::Runtime, Router) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut tokens = StaticTokensForTesting {
        tokens: BTreeMap::new(),
    };
    tokens
        .tokens
        .insert("t".into(), UserInfo::new("alice", vec![]));
    let fakes = Fakes::new(FakeListers::new().with_pod(pod()).with_node(node()));
    let mut config = fakes.config(
        Authenticator {
            request_header: None,
            client_ca: None,
            token: Some(Arc::new(tokens)),
        },
        Arc::new(StaticAuthorizerForTesting {
            users: vec!["alice".into()],
            groups: vec![],
        }),
    );
    config.rest.kubelet_client = Arc::new(CheckingNode);
    config.rest.events = Arc::new(NoEvents);
    // Good inputs in a row must not wait the 1 s between checkpoints of one container.
    config.rest.turns = ContainerTurns::new(Arc::new(FakeLeases::default()))
        .with_spacing(std::time::Duration::ZERO);
    let router = Server::new(config).router();
    (runtime, router)
}

static STATE: OnceLock<(tokio::runtime::Runtime, Router)> = OnceLock::new();

// Not HEAD: its answers carry no body, so no Status to check.
const METHODS: [&str; 5] = ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"];

fuzz_target!(|data: &[u8]| {
    let (runtime, router) = STATE.get_or_init(setup);
    let (line, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let mut method = http::Method::POST;
    let mut target = line;
    for m in METHODS {
        if let Some(rest) = line.strip_prefix(format!("{m} ").as_bytes()) {
            method = http::Method::from_bytes(m.as_bytes()).expect("method");
            target = rest;
        }
    }
    let Ok(uri) = http::Uri::try_from(target) else {
        return;
    };
    if uri.scheme().is_some() || uri.authority().is_some() {
        return;
    }
    let path = uri.path().to_owned();
    let Ok(req) = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", "Bearer t")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.to_vec()))
    else {
        return;
    };
    let (code, bytes) = runtime.block_on(async {
        let resp = router.clone().oneshot(req).await.expect("infallible");
        let code = resp.status();
        let bytes = resp.into_body().collect().await.expect("a body").to_bytes();
        (code, bytes)
    });
    assert!(
        !code.is_server_error(),
        "{code}: {}",
        String::from_utf8_lossy(&bytes)
    );
    // The API answers with Status objects; health and metrics are plain text.
    let plain = ["/healthz", "/livez", "/readyz", "/metrics"]
        .iter()
        .any(|p| path.starts_with(p));
    if code.is_client_error() && !plain {
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{code} is not a Status ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        assert_eq!(v["kind"], "Status");
        assert_eq!(v["code"].as_u64(), Some(u64::from(code.as_u16())));
    }
});
