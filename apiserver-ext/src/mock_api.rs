//! A mock Kubernetes API server for unit tests (kube-rs style: a tower
//! service behind a real `kube::Client`, driven by [`Scenario`]s). It answers
//! GETs of pods, nodes, ConfigMaps and `/version`, TokenReviews,
//! SubjectAccessReviews and Event creation, and records every request.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use apiserver_lib::UserInfo;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewStatus, UserInfo as KUser};
use k8s_openapi::api::authorization::v1::{SubjectAccessReview, SubjectAccessReviewStatus};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};

/// What the mock API server knows and how it behaves.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Scenario {
    Pod(Pod),
    Node(Node),
    ConfigMap(ConfigMap),
    /// SubjectAccessReviews of this user are allowed; all others denied with
    /// `no RBAC policy matched`.
    AllowUser(String),
    /// This bearer token belongs to this user.
    Token(String, UserInfo),
    /// Every GET answers 403 (our service account lacks RBAC).
    ForbidReads,
    /// Event creation answers 500.
    EventsFail,
    /// Every request fails to connect.
    Unreachable,
}

/// A recorded request: `METHOD path` and the body.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub line: String,
    pub body: serde_json::Value,
}

#[derive(Debug, Clone)]
pub struct MockApi {
    scenarios: Arc<Vec<Scenario>>,
    log: Arc<Mutex<Vec<Recorded>>>,
}

fn json(code: u16, value: &impl serde::Serialize) -> http::Response<Full<Bytes>> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    http::Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

fn status(code: u16, reason: &str, message: &str) -> http::Response<Full<Bytes>> {
    json(
        code,
        &serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason, "code": code
        }),
    )
}

impl MockApi {
    pub fn new(scenarios: Vec<Scenario>) -> Self {
        Self {
            scenarios: Arc::new(scenarios),
            log: Arc::default(),
        }
    }

    /// A kube client talking to this mock.
    pub fn client(&self) -> kube::Client {
        let this = self.clone();
        let svc = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let this = this.clone();
            async move { this.answer(req).await }
        });
        kube::Client::new(svc, "default")
    }

    /// The recorded request lines, in order.
    pub fn requests(&self) -> Vec<String> {
        self.recorded().into_iter().map(|r| r.line).collect()
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn has(&self, f: impl Fn(&Scenario) -> bool) -> bool {
        self.scenarios.iter().any(f)
    }

    async fn answer(
        &self,
        req: http::Request<kube::client::Body>,
    ) -> Result<http::Response<Full<Bytes>>, std::io::Error> {
        let (parts, body) = req.into_parts();
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let line = format!("{} {}", parts.method, parts.uri.path());
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        if let Ok(mut log) = self.log.lock() {
            log.push(Recorded {
                line,
                body: body.clone(),
            });
        }
        if self.has(|s| matches!(s, Scenario::Unreachable)) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "connection refused",
            ));
        }
        Ok(self.route(&parts.method, parts.uri.path(), body))
    }

    fn route(
        &self,
        method: &http::Method,
        path: &str,
        body: serde_json::Value,
    ) -> http::Response<Full<Bytes>> {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        if *method == http::Method::GET {
            if self.has(|s| matches!(s, Scenario::ForbidReads)) {
                return status(403, "Forbidden", "forbidden by the mock");
            }
            match segs.as_slice() {
                ["version"] => {
                    return json(
                        200,
                        &serde_json::json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0",
                        "gitCommit": "", "gitTreeState": "", "buildDate": "", "goVersion": "",
                        "compiler": "", "platform": "linux/amd64"}),
                    );
                }
                ["api", "v1", "namespaces", ns, "pods", name] => {
                    for s in self.scenarios.iter() {
                        if let Scenario::Pod(p) = s
                            && p.metadata.namespace.as_deref() == Some(*ns)
                            && p.metadata.name.as_deref() == Some(*name)
                        {
                            return json(200, p);
                        }
                    }
                    return status(404, "NotFound", &format!("pods \"{name}\" not found"));
                }
                ["api", "v1", "nodes", name] => {
                    for s in self.scenarios.iter() {
                        if let Scenario::Node(n) = s
                            && n.metadata.name.as_deref() == Some(*name)
                        {
                            return json(200, n);
                        }
                    }
                    return status(404, "NotFound", &format!("nodes \"{name}\" not found"));
                }
                ["api", "v1", "namespaces", ns, "configmaps", name] => {
                    for s in self.scenarios.iter() {
                        if let Scenario::ConfigMap(c) = s
                            && c.metadata.namespace.as_deref() == Some(*ns)
                            && c.metadata.name.as_deref() == Some(*name)
                        {
                            return json(200, c);
                        }
                    }
                    return status(404, "NotFound", &format!("configmaps \"{name}\" not found"));
                }
                _ => {}
            }
        }
        if *method == http::Method::POST {
            match segs.as_slice() {
                ["apis", "authorization.k8s.io", "v1", "subjectaccessreviews"] => {
                    let mut review: SubjectAccessReview =
                        serde_json::from_value(body).unwrap_or_default();
                    let user = review.spec.user.clone().unwrap_or_default();
                    let allowed = self.has(|s| matches!(s, Scenario::AllowUser(u) if *u == user));
                    review.status = Some(SubjectAccessReviewStatus {
                        allowed,
                        reason: (!allowed).then(|| "no RBAC policy matched".to_owned()),
                        ..Default::default()
                    });
                    return json(201, &review);
                }
                ["apis", "authentication.k8s.io", "v1", "tokenreviews"] => {
                    let mut review: TokenReview = serde_json::from_value(body).unwrap_or_default();
                    let token = review.spec.token.clone().unwrap_or_default();
                    let user = self.scenarios.iter().find_map(|s| match s {
                        Scenario::Token(t, u) if *t == token => Some(u.clone()),
                        _ => None,
                    });
                    review.status = Some(TokenReviewStatus {
                        authenticated: Some(user.is_some()),
                        user: user.map(|u| KUser {
                            username: Some(u.name),
                            uid: (!u.uid.is_empty()).then_some(u.uid),
                            groups: Some(u.groups),
                            extra: Some(u.extra.into_iter().collect::<BTreeMap<_, _>>()),
                        }),
                        ..Default::default()
                    });
                    return json(201, &review);
                }
                ["api", "v1", "namespaces", _, "events"] => {
                    if self.has(|s| matches!(s, Scenario::EventsFail)) {
                        return status(500, "InternalError", "etcd is sad");
                    }
                    return json(201, &body);
                }
                _ => {}
            }
        }
        status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }
}
