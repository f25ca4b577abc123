#![allow(clippy::unwrap_used)]
//! kube-apiserver-standin over real TLS: authentication, RBAC decisions, the
//! review APIs, the aggregator proxy (front-proxy certificate and headers,
//! spoofed headers dropped), the 403 and 504 answers, APIService
//! registration changing discovery, and the real kubectl against it.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apiserver_lib::authentication::{Authenticator, RequestHeaderConfig};
use apiserver_lib::pki::{Ca, Pem};
use apiserver_lib::serve::{self, PeerCertificates};
use apiserver_lib::tls::{self, CaVerifier, ServerTrust, ServingCert};
use axum::Router;
use axum::extract::Request;
use axum::response::IntoResponse;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use kcr_testkit::standin::{self, Config, Running, certs, status::TIMEOUT_MESSAGE};
use serde_json::{Value, json};

const GROUP: &str = "subresources.checkpoint.kcr.dev";

fn identity(pem: &Pem) -> ServingCert {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    ServingCert {
        chain: tls::parse_certs(pem.cert.as_bytes(), Path::new("t")).unwrap(),
        key: PrivateKeyDer::from_pem_slice(pem.key.as_bytes()).unwrap(),
    }
}

const POLICY: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: checkpoint-creator
rules:
- apiGroups: ["subresources.checkpoint.kcr.dev"]
  resources: ["pods/checkpoint"]
  verbs: ["create"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["checkpoint"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: alice-checkpoints
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: checkpoint-creator}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: viewers
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: viewer}
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: bob}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: skipped-by-the-policy-loader}
spec: {}
"#;

const OBJECTS: &str = r#"
apiVersion: v1
kind: Node
metadata: {name: node-1}
status:
  addresses:
  - {type: InternalIP, address: 127.0.0.1}
  daemonEndpoints:
    kubeletEndpoint: {Port: 10350}
---
apiVersion: v1
kind: Pod
metadata: {name: counter, namespace: default, labels: {app: counter}}
spec:
  nodeName: node-1
  containers: [{name: app, image: app:v1}]
status:
  phase: Running
"#;

struct Fixture {
    dir: tempfile::TempDir,
    running: Running,
}

async fn start(timeout: Duration) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.yaml"), POLICY).unwrap();
    std::fs::write(dir.path().join("objects.yaml"), OBJECTS).unwrap();
    std::fs::write(
        dir.path().join("tokens.csv"),
        "tok-viewer,viewer,1002,\"readers\"\n",
    )
    .unwrap();
    let mut config = Config::new(dir.path().join("pki"));
    config.policy_files = vec![dir.path().join("policy.yaml")];
    config.object_files = vec![dir.path().join("objects.yaml")];
    config.token_auth_file = Some(dir.path().join("tokens.csv"));
    config.request_timeout = timeout;
    config.write_kubeconfig = Some(dir.path().join("admin.kubeconfig"));
    let running = standin::start(config).await.unwrap();
    Fixture { dir, running }
}

#[derive(Debug)]
struct Reply {
    code: u16,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// Who calls: a client certificate, a token, or nobody.
enum Who<'a> {
    Cert(&'a str, &'a [&'a str]),
    Token(&'a str),
    Stranger,
    Anonymous,
}

async fn call(
    f: &Fixture,
    who: Who<'_>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Reply {
    let pki = &f.running.pki;
    let id = match who {
        Who::Cert(user, groups) => {
            let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
            Some(identity(&pki.issue_client(user, &groups).unwrap()))
        }
        Who::Stranger => Some(identity(
            &Ca::new("stranger")
                .unwrap()
                .client("admin", &["system:masters"])
                .unwrap(),
        )),
        _ => None,
    };
    let cfg = tls::client_config(
        ServerTrust::Ca(tls::parse_certs(pki.server_ca.as_bytes(), Path::new("ca")).unwrap()),
        id,
    )
    .unwrap();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(cfg)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    let client: Client<_, Full<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("https://127.0.0.1:{}{path}", f.running.addr.port()));
    if let Who::Token(t) = who {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let bytes = body
        .map(|b| serde_json::to_vec(&b).unwrap())
        .unwrap_or_default();
    if !bytes.is_empty() {
        req = req.header("Content-Type", "application/json");
    }
    let resp = client
        .request(req.body(Full::from(bytes)).unwrap())
        .await
        .unwrap();
    let code = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Reply {
        code,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

const ADMIN: Who<'static> = Who::Cert("admin", &["system:masters"]);

#[tokio::test]
async fn authentication_by_certificate_and_token() {
    let f = start(Duration::from_secs(60)).await;
    let whoami = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
    let r = call(
        &f,
        Who::Cert("alice", &["devs", "ops"]),
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        &[],
        Some(whoami.clone()),
    )
    .await;
    assert_eq!(r.code, 201, "{}", r.body);
    assert_eq!(
        r.json()["status"]["userInfo"]["username"],
        "alice",
        "{}",
        r.body
    );
    assert_eq!(
        r.json()["status"]["userInfo"]["groups"],
        json!(["devs", "ops", "system:authenticated"])
    );
    let r = call(
        &f,
        Who::Token("tok-viewer"),
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        &[],
        Some(whoami),
    )
    .await;
    assert_eq!(
        r.json()["status"]["userInfo"],
        json!({"username": "viewer", "uid": "1002", "groups": ["readers", "system:authenticated"]})
    );

    for who in [Who::Anonymous, Who::Token("wrong"), Who::Stranger] {
        let r = call(&f, who, "GET", "/api/v1/namespaces/default/pods", &[], None).await;
        assert_eq!(r.code, 401, "{}", r.body);
        assert_eq!(r.json()["reason"], "Unauthorized");
        assert_eq!(r.json()["message"], "Unauthorized");
    }
    let r = call(&f, Who::Anonymous, "GET", "/readyz", &[], None).await;
    assert_eq!((r.code, r.body.as_str()), (200, "ok"));
}

#[tokio::test]
async fn objects_discovery_and_the_published_configmap() {
    let f = start(Duration::from_secs(60)).await;
    let pod = call(
        &f,
        ADMIN,
        "GET",
        "/api/v1/namespaces/default/pods/counter",
        &[],
        None,
    )
    .await
    .json();
    assert_eq!(pod["spec"]["nodeName"], "node-1");
    let node = call(&f, ADMIN, "GET", "/api/v1/nodes/node-1", &[], None)
        .await
        .json();
    assert_eq!(
        node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"],
        10350
    );
    let list = call(
        &f,
        ADMIN,
        "GET",
        "/api/v1/pods?labelSelector=app%3Dcounter&fieldSelector=spec.nodeName%3Dnode-1",
        &[],
        None,
    )
    .await
    .json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let missing = call(
        &f,
        ADMIN,
        "GET",
        "/api/v1/namespaces/default/pods/ghost",
        &[],
        None,
    )
    .await;
    assert_eq!(
        (missing.code, missing.json()["message"].as_str().unwrap()),
        (404, "pods \"ghost\" not found")
    );

    let created = call(&f, ADMIN, "POST", "/api/v1/namespaces/default/events", &[], Some(json!({
        "metadata": {"generateName": "counter."}, "involvedObject": {"kind": "Pod", "name": "counter"}, "reason": "Checkpointed"}))).await;
    assert_eq!(created.code, 201, "{}", created.body);
    let name = created.json()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let events = call(
        &f,
        ADMIN,
        "GET",
        "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dcounter",
        &[],
        None,
    )
    .await
    .json();
    assert_eq!(events["items"][0]["reason"], "Checkpointed");
    assert_eq!(
        call(
            &f,
            ADMIN,
            "DELETE",
            &format!("/api/v1/namespaces/default/events/{name}"),
            &[],
            None
        )
        .await
        .code,
        200
    );

    let cm = call(
        &f,
        ADMIN,
        "GET",
        "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication",
        &[],
        None,
    )
    .await
    .json();
    assert_eq!(
        cm["data"]["requestheader-allowed-names"],
        "[\"front-proxy-client\"]"
    );
    assert_eq!(
        cm["data"]["requestheader-username-headers"],
        "[\"X-Remote-User\"]"
    );
    assert_eq!(
        cm["data"]["requestheader-group-headers"],
        "[\"X-Remote-Group\"]"
    );
    assert_eq!(
        cm["data"]["requestheader-extra-headers-prefix"],
        "[\"X-Remote-Extra-\"]"
    );
    assert_eq!(
        cm["data"]["client-ca-file"],
        f.running.pki.client_ca.cert.as_str()
    );

    let core = call(&f, Who::Cert("viewer", &[]), "GET", "/api/v1", &[], None)
        .await
        .json();
    assert_eq!(core["kind"], "APIResourceList");
    assert!(
        core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "pods")
    );
    let apis = call(&f, Who::Cert("viewer", &[]), "GET", "/apis", &[], None)
        .await
        .json();
    let names: Vec<&str> = apis["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"apps")
            && names.contains(&"authorization.k8s.io")
            && !names.contains(&GROUP),
        "{names:?}"
    );
}

#[tokio::test]
async fn rbac_decisions_and_reviews() {
    let f = start(Duration::from_secs(60)).await;
    let ssar = |verb: &str, group: &str, resource: &str, sub: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"namespace": "default", "verb": verb, "group": group, "resource": resource, "subresource": sub, "name": "counter"}}})
    };
    let can = |who: Who<'static>, body: Value| {
        let f = &f;
        async move {
            let r = call(
                f,
                who,
                "POST",
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                &[],
                Some(body),
            )
            .await;
            assert_eq!(r.code, 201, "{}", r.body);
            r.json()["status"]["allowed"].as_bool().unwrap()
        }
    };
    let alice = || Who::Cert("alice", &[]);
    let viewer = || Who::Cert("viewer", &[]);
    assert!(can(alice(), ssar("create", GROUP, "pods", "checkpoint")).await);
    assert!(can(alice(), ssar("checkpoint", "", "pods", "")).await);
    assert!(!can(viewer(), ssar("create", GROUP, "pods", "checkpoint")).await);
    assert!(!can(viewer(), ssar("checkpoint", "", "pods", "")).await);
    assert!(can(viewer(), ssar("get", "", "pods", "")).await);
    assert!(can(ADMIN, ssar("delete", "", "nodes", "")).await);

    // The same decisions, enforced: a viewer may read, not write, and the 403 reads like RBAC's.
    assert_eq!(
        call(
            &f,
            viewer(),
            "GET",
            "/api/v1/namespaces/default/pods",
            &[],
            None
        )
        .await
        .code,
        200
    );
    let r = call(
        &f,
        viewer(),
        "DELETE",
        "/api/v1/namespaces/default/pods/counter",
        &[],
        None,
    )
    .await;
    assert_eq!(r.code, 403);
    assert_eq!(
        r.json()["message"],
        "pods \"counter\" is forbidden: User \"viewer\" cannot delete resource \"pods\" in API group \"\" in the namespace \"default\""
    );
    let r = call(&f, viewer(), "GET", "/api/v1/nodes", &[], None).await;
    assert_eq!(
        r.json()["message"],
        "nodes is forbidden: User \"viewer\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
    );

    // SubjectAccessReview and TokenReview need system:auth-delegator (admin has all).
    let sar = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": "alice", "groups": ["system:authenticated"], "resourceAttributes": {"namespace": "default", "verb": "checkpoint", "resource": "pods", "name": "counter"}}});
    let r = call(
        &f,
        ADMIN,
        "POST",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        &[],
        Some(sar.clone()),
    )
    .await;
    assert_eq!(r.json()["status"]["allowed"], true, "{}", r.body);
    assert_eq!(
        r.json()["status"]["reason"],
        "RBAC: allowed by ClusterRoleBinding \"alice-checkpoints\" of ClusterRole \"checkpoint-creator\" to User \"alice\""
    );
    let mut bob = sar.clone();
    bob["spec"]["user"] = json!("bob");
    let r = call(
        &f,
        ADMIN,
        "POST",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        &[],
        Some(bob),
    )
    .await;
    assert_eq!(r.json()["status"]["allowed"], false);
    let r = call(
        &f,
        viewer(),
        "POST",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        &[],
        Some(sar),
    )
    .await;
    assert_eq!(r.code, 403);
    let tr = |token: &str| json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}});
    let r = call(
        &f,
        ADMIN,
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        &[],
        Some(tr("tok-viewer")),
    )
    .await;
    assert_eq!(r.json()["status"]["authenticated"], true);
    assert_eq!(r.json()["status"]["user"]["username"], "viewer");
    let r = call(
        &f,
        ADMIN,
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        &[],
        Some(tr("nope")),
    )
    .await;
    assert_eq!(r.json()["status"]["authenticated"], false);
}

/// What the extension saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    user: Option<apiserver_lib::UserInfo>,
    headers: http::HeaderMap,
}

/// A TLS backend standing in for the extension: authenticates the front
/// proxy from the published ConfigMap, records what it saw.
async fn backend(
    f: &Fixture,
) -> (
    u16,
    String,
    Arc<Mutex<Vec<Seen>>>,
    tokio::sync::oneshot::Sender<()>,
) {
    let cm = call(
        f,
        ADMIN,
        "GET",
        "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication",
        &[],
        None,
    )
    .await
    .json();
    let proxy_ca = tls::parse_certs(
        cm["data"]["requestheader-client-ca-file"]
            .as_str()
            .unwrap()
            .as_bytes(),
        Path::new("cm"),
    )
    .unwrap();
    let allowed: Vec<String> =
        serde_json::from_str(cm["data"]["requestheader-allowed-names"].as_str().unwrap()).unwrap();
    let authn = Arc::new(Authenticator {
        request_header: Some(RequestHeaderConfig::with_default_headers(
            CaVerifier::new(&proxy_ca, Path::new("cm")).unwrap(),
            allowed,
        )),
        client_ca: None,
        token: None,
    });
    let ca = Ca::new("extension-ca").unwrap();
    let serving = ca.server("ext", &["ext.kcr-system.svc"]).unwrap();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let seen2 = seen.clone();
    let router = Router::new().fallback(move |req: Request| {
        let authn = authn.clone();
        let seen = seen2.clone();
        async move {
            let (parts, _) = req.into_parts();
            assert!(parts.extensions.get::<PeerCertificates>().is_some());
            let user = authn.authenticate(&parts).await.ok().map(|(u, _)| u);
            seen.lock().unwrap().push(Seen {
                path: parts.uri.path().to_owned(),
                user: user.clone(),
                headers: parts.headers.clone(),
            });
            if parts.uri.path().ends_with("/slow") {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            if parts.uri.path() == "/apis/subresources.checkpoint.kcr.dev/v1alpha1" {
                return axum::Json(api_types::discovery::api_resource_list(true)).into_response();
            }
            axum::Json(json!({"user": user.map(|u| u.name)})).into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = tls::server_config(identity(&serving), &proxy_ca).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(serve::serve_tls(listener, config, router, async {
        let _ = rx.await;
    }));
    (port, ca.pem.cert.clone(), seen, tx)
}

async fn register(f: &Fixture, port: u16, ca_bundle: &str) {
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext", "namespace": "kcr-system"},
        "spec": {"clusterIP": "127.0.0.1", "ports": [{"port": port}]}});
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kcr-system"}});
    assert_eq!(
        call(f, ADMIN, "POST", "/api/v1/namespaces", &[], Some(ns))
            .await
            .code,
        201
    );
    assert_eq!(
        call(
            f,
            ADMIN,
            "POST",
            "/api/v1/namespaces/kcr-system/services",
            &[],
            Some(svc)
        )
        .await
        .code,
        201
    );
    let api = json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": "v1alpha1.subresources.checkpoint.kcr.dev"},
        "spec": {"group": GROUP, "version": "v1alpha1", "groupPriorityMinimum": 1000, "versionPriority": 15,
            "service": {"namespace": "kcr-system", "name": "ext", "port": port}, "caBundle": certs::base64(ca_bundle.as_bytes())}});
    let r = call(
        f,
        ADMIN,
        "POST",
        "/apis/apiregistration.k8s.io/v1/apiservices",
        &[],
        Some(api),
    )
    .await;
    assert_eq!(r.code, 201, "{}", r.body);
}

const CHECKPOINT: &str = "/apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/default/pods/counter/checkpoint?container=app";

#[tokio::test]
async fn aggregator_proxies_with_front_proxy_identity() {
    let f = start(Duration::from_secs(60)).await;
    let (port, ca, seen, _stop) = backend(&f).await;
    register(&f, port, &ca).await;

    let apis = call(&f, Who::Cert("viewer", &[]), "GET", "/apis", &[], None)
        .await
        .json();
    assert!(
        apis["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == GROUP),
        "{apis}"
    );
    let group = call(
        &f,
        Who::Cert("viewer", &[]),
        "GET",
        "/apis/subresources.checkpoint.kcr.dev",
        &[],
        None,
    )
    .await
    .json();
    assert_eq!(
        group["preferredVersion"]["groupVersion"],
        "subresources.checkpoint.kcr.dev/v1alpha1"
    );
    let list = call(
        &f,
        Who::Cert("viewer", &[]),
        "GET",
        "/apis/subresources.checkpoint.kcr.dev/v1alpha1",
        &[],
        None,
    )
    .await
    .json();
    assert_eq!(list["resources"][0]["name"], "pods/checkpoint", "{list}");

    // Allowed: proxied as alice, whatever she claims in headers; her credentials stay behind.
    let spoof = [
        ("X-Remote-User", "admin"),
        ("X-Remote-Group", "system:masters"),
        ("X-Remote-Extra-Scopes", "all"),
        ("Authorization", "Bearer tok-viewer"),
    ];
    let r = call(
        &f,
        Who::Cert("alice", &["devs", "ops"]),
        "POST",
        CHECKPOINT,
        &spoof,
        Some(json!({})),
    )
    .await;
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(r.json()["user"], "alice");
    let got = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        got.path,
        "/apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/default/pods/counter/checkpoint"
    );
    let user = got.user.unwrap();
    assert_eq!(user.name, "alice");
    assert_eq!(user.groups, vec!["devs", "ops", "system:authenticated"]);
    assert!(user.extra.is_empty(), "{:?}", user.extra);
    assert_eq!(
        got.headers.get_all("x-remote-group").iter().count(),
        3,
        "one header per group"
    );
    assert!(got.headers.get("authorization").is_none());

    // Denied: answered by the stand-in itself, in RBAC's words; the extension sees nothing.
    let before = seen.lock().unwrap().len();
    let r = call(
        &f,
        Who::Cert("bob", &[]),
        "POST",
        CHECKPOINT,
        &[],
        Some(json!({})),
    )
    .await;
    assert_eq!(r.code, 403);
    assert_eq!(
        r.json()["message"],
        "pods.subresources.checkpoint.kcr.dev \"counter\" is forbidden: User \"bob\" cannot create resource \"pods/checkpoint\" in API group \"subresources.checkpoint.kcr.dev\" in the namespace \"default\""
    );
    assert_eq!(r.json()["reason"], "Forbidden");
    assert_eq!(seen.lock().unwrap().len(), before);

    // kube-apiserver reads ?timeout= as a Go duration: bare seconds are a 400.
    let r = call(
        &f,
        Who::Cert("alice", &[]),
        "POST",
        &format!("{CHECKPOINT}&timeout=30"),
        &[],
        Some(json!({})),
    )
    .await;
    assert_eq!(r.code, 400);
    assert_eq!(
        r.json()["message"],
        "invalid timeout specified in the request URL - time: missing unit in duration \"30\""
    );
    let r = call(
        &f,
        Who::Cert("alice", &[]),
        "POST",
        &format!("{CHECKPOINT}&timeout=30s"),
        &[],
        Some(json!({})),
    )
    .await;
    assert_eq!(r.code, 200, "{}", r.body);

    // A wrong caBundle: the backend's certificate does not verify.
    let other = Ca::new("other").unwrap();
    let mut api = call(
        &f,
        ADMIN,
        "GET",
        "/apis/apiregistration.k8s.io/v1/apiservices/v1alpha1.subresources.checkpoint.kcr.dev",
        &[],
        None,
    )
    .await
    .json();
    api["spec"]["caBundle"] = json!(certs::base64(other.pem.cert.as_bytes()));
    assert_eq!(
        call(
            &f,
            ADMIN,
            "PUT",
            "/apis/apiregistration.k8s.io/v1/apiservices/v1alpha1.subresources.checkpoint.kcr.dev",
            &[],
            Some(api)
        )
        .await
        .code,
        200
    );
    let r = call(
        &f,
        Who::Cert("alice", &[]),
        "POST",
        CHECKPOINT,
        &[],
        Some(json!({})),
    )
    .await;
    assert_eq!(r.code, 503);
    assert!(
        r.body.starts_with("error trying to reach service: "),
        "{}",
        r.body
    );

    // Removing the APIService removes the group.
    let r = call(
        &f,
        ADMIN,
        "DELETE",
        "/apis/apiregistration.k8s.io/v1/apiservices/v1alpha1.subresources.checkpoint.kcr.dev",
        &[],
        None,
    )
    .await;
    assert_eq!(r.code, 200);
    let apis = call(&f, Who::Cert("viewer", &[]), "GET", "/apis", &[], None)
        .await
        .json();
    assert!(
        !apis["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == GROUP)
    );
    assert_eq!(
        call(
            &f,
            Who::Cert("viewer", &[]),
            "GET",
            "/apis/subresources.checkpoint.kcr.dev/v1alpha1",
            &[],
            None
        )
        .await
        .code,
        404
    );
    assert_eq!(
        call(
            &f,
            Who::Cert("alice", &[]),
            "POST",
            CHECKPOINT,
            &[],
            Some(json!({}))
        )
        .await
        .code,
        404
    );
}

#[tokio::test]
async fn request_timeout_cuts_proxied_requests() {
    let f = start(Duration::from_secs(1)).await;
    let (port, ca, seen, _stop) = backend(&f).await;
    register(&f, port, &ca).await;
    let slow =
        "/apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/default/pods/counter/slow";
    let t = Instant::now();
    let r = call(&f, ADMIN, "POST", slow, &[], Some(json!({}))).await;
    let took = t.elapsed();
    assert_eq!(r.code, 504, "{}", r.body);
    assert_eq!(r.json()["reason"], "Timeout");
    assert_eq!(r.json()["message"], TIMEOUT_MESSAGE);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(
        seen.lock().unwrap().iter().any(|s| s.path == slow),
        "the extension got the request"
    );
    // The stand-in stays healthy.
    assert_eq!(
        call(
            &f,
            ADMIN,
            "GET",
            "/api/v1/namespaces/default/pods/counter",
            &[],
            None
        )
        .await
        .code,
        200
    );
    // A shorter ?timeout= wins.
    let f2 = start(Duration::from_secs(60)).await;
    let (port2, ca2, _seen2, _stop2) = backend(&f2).await;
    register(&f2, port2, &ca2).await;
    let t = Instant::now();
    let r = call(
        &f2,
        ADMIN,
        "POST",
        &format!("{slow}?timeout=500ms"),
        &[],
        Some(json!({})),
    )
    .await;
    assert_eq!(r.code, 504);
    assert!(t.elapsed() < Duration::from_secs(3));
}

fn kubectl() -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("kubectl"))
            .find(|k| k.is_file())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_reads_pods_and_nodes() {
    let Some(kubectl) = kubectl() else {
        eprintln!("kubectl is not on PATH; skipping");
        return;
    };
    let f = start(Duration::from_secs(60)).await;
    let kubeconfig = f.dir.path().join("admin.kubeconfig");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) =
        tokio::task::block_in_place(|| run(&["get", "pod", "counter", "-o", "json"]));
    assert!(ok, "{err}");
    let pod: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(pod["spec"]["nodeName"], "node-1");
    let (ok, out, err) = tokio::task::block_in_place(|| run(&["get", "nodes", "-o", "name"]));
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "node/node-1");
    let (ok, out, err) =
        tokio::task::block_in_place(|| run(&["auth", "can-i", "checkpoint", "pods"]));
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "yes");

    // A viewer from the kubeconfig subcommand's code path.
    let viewer = f.dir.path().join("viewer.kubeconfig");
    certs::write_kubeconfig(&viewer, &f.running.kubeconfig("viewer", &[]).unwrap()).unwrap();
    let out = tokio::task::block_in_place(|| {
        std::process::Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&viewer)
            .args([
                "auth",
                "can-i",
                "create",
                "pods/checkpoint.subresources.checkpoint.kcr.dev",
            ])
            .output()
            .unwrap()
    });
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no");
}
