//! The whole router against fakes ([`crate::testing`]): fake listers, a
//! fake kubelet client, fake events, SubjectAccessReview and TokenReview
//! through the mock API server, and the peer certificates the TLS layer
//! would attach. Every Status of the contract is produced here and
//! snapshotted; one file per concern:
//!
//! * [`contract`]: success, options, every Status of the contract;
//! * [`authentication`]: who is who (front proxy, certificates, tokens,
//!   the ConfigMap), denials, spoofing;
//! * [`documents`]: discovery, OpenAPI, methods, health and metrics;
//! * [`limits`]: deadlines, per-node concurrency, bodies, hostile input;
//! * [`audit`]: the audit line of every checkpoint request;
//! * [`turns`]: checkpoints of one container take turns, across replicas too.
//! * [`archive`]: `podcheckpoints/archive`, its ranges and Statuses.

mod archive;
mod audit;
mod authentication;
mod contract;
mod documents;
mod limits;
mod turns;

use std::sync::Arc;
use std::time::Duration;

use apiserver_lib::UserInfo;
use apiserver_lib::authentication::{Authenticator, RequestHeaderConfig, TokenReviewAuthenticator};
use apiserver_lib::authorization::SubjectAccessReviewAuthorizer;
use apiserver_lib::pki::{Ca, Pem};
use apiserver_lib::serve::PeerCertificates;
use apiserver_lib::tls::CaVerifier;
use axum::body::Body;
use http::{Method, StatusCode};
use kcr_testkit::fixtures::{
    node, running_pod as pod, with_default_container, with_phase, with_waiting,
};
use kcr_testkit::harness::certs;
use rustls::pki_types::CertificateDer;
use serde_json::Value;
use tower::ServiceExt;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::server::Server;
use crate::testing::{FakeListers, Fakes, gates};
use kcr_testkit::mock_api::{MockApi, Scenario};

const BASE: &str = "/apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces";

struct Harness {
    server: Server,
    fakes: Fakes,
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

fn cluster() -> FakeListers {
    FakeListers::new()
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

/// The front proxy's request-header authentication with `proxy_ca`.
fn front_proxy(proxy_ca: &Ca, allowed: Vec<String>) -> RequestHeaderConfig {
    RequestHeaderConfig::with_default_headers(
        CaVerifier::new(&certs(&proxy_ca.pem.cert), std::path::Path::new("proxy")).unwrap(),
        allowed,
    )
}

/// A server on fakes: alice may checkpoint (SubjectAccessReview through the
/// mock API server), tokens `alice-token` and `bob-token`; at most one
/// checkpoint per node; `tweak` changes the config before the server starts.
fn harness_with(tweak: impl FnOnce(&mut Config)) -> Harness {
    let proxy_ca = Ca::new("front-proxy-ca").unwrap();
    let client_ca = Ca::new("client-ca").unwrap();
    let api = MockApi::new(vec![
        Scenario::allow_all("alice"),
        Scenario::Token(
            "alice-token".into(),
            UserInfo::new("alice", vec!["devs".into()]),
        ),
        Scenario::Token("bob-token".into(), UserInfo::new("bob", vec![])),
    ]);
    let fakes = Fakes::new(cluster());
    let authn = Authenticator {
        request_header: Some(front_proxy(&proxy_ca, vec!["front-proxy-client".into()])),
        client_ca: Some(
            CaVerifier::new(&certs(&client_ca.pem.cert), std::path::Path::new("client")).unwrap(),
        ),
        token: Some(Arc::new(TokenReviewAuthenticator::new(
            api.client(),
            Vec::new(),
        ))),
    };
    let authz = SubjectAccessReviewAuthorizer::new(api.client(), Duration::ZERO, Duration::ZERO);
    let mut config = fakes.config(authn, Arc::new(authz));
    config.rest.limiter = crate::concurrency::NodeLimiter::new(1);
    tweak(&mut config);
    Harness {
        server: Server::new(config),
        fakes,
        api,
        proxy_ca,
        client_ca,
    }
}

fn harness(gate_on: bool) -> Harness {
    harness_with(|c| c.rest.feature_gates = gates(gate_on))
}

impl Harness {
    fn metrics(&self) -> Arc<Metrics> {
        self.server.metrics()
    }

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
