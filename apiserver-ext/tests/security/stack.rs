//! The whole path for the security tests: kube-apiserver-standin (real
//! TokenReview, SubjectAccessReview, pods, nodes, Events, and the
//! `extension-apiserver-authentication` ConfigMap), checkpoint-apiserver built
//! from its flags exactly as the binary builds it (`Options` →
//! `Config::from_options` → `Server`, no testing bypass), and a real
//! checkpoint-shim as the node, on the fake CRI of `kcr-testkit`.
//!
//! Cluster: pod `default/web` (container `app`) on `node-1` (the shim);
//! pod `default/web-down` on `node-down` (nothing listens there). RBAC: alice
//! may checkpoint pods; bob may not. Tokens: `alice-token`, `bob-token`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use apiserver_ext::{Config, Options, Server};
use apiserver_lib::pki::{Ca, Pem};
use clap::Parser;
use http::{Method, StatusCode};
use kcr_testkit::fake_cri::{FakeContainer, FakeCri, UnixServer};
use kcr_testkit::fixtures::{local_node, manifest, running_pod};
use kcr_testkit::harness::{InProcess, free_port, write_file as write};
use kcr_testkit::standin;
use serde_json::Value;

pub use kcr_testkit::files::tree;

pub const GOOD: &str =
    "/apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/default/pods/web/checkpoint";

/// The path of `pods/{pod}/checkpoint` in `namespace`, segments as given.
pub fn checkpoint_path(namespace: &str, pod: &str) -> String {
    format!(
        "/apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/{namespace}/pods/{pod}/checkpoint"
    )
}

use kcr_testkit::hostile::{HttpsRequest, https_request};
pub use kcr_testkit::hostile::{PROTOS, Proto};

/// Who calls the extension.
#[derive(Debug, Clone, Copy)]
pub enum Who<'a> {
    /// kube-apiserver's aggregator: the front-proxy certificate and
    /// `X-Remote-User` / `X-Remote-Group`.
    Proxy(&'a str),
    /// A client certificate (and nothing else).
    Cert(&'a Pem),
    /// A bearer token.
    Token(&'a str),
    Nobody,
}

const POLICY: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: checkpoint-creator}
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
metadata: {name: alice-checkpoints}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: checkpoint-creator}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}
"#;

fn objects(shim_port: u16, closed_port: u16) -> String {
    let objects = [
        // Where the per-container Leases go (--lease-namespace).
        serde_json::to_value(kcr_testkit::mock_api::objects::namespace("kcr-system")),
        serde_json::to_value(local_node("node-1", shim_port)),
        serde_json::to_value(local_node("node-down", closed_port)),
        serde_json::to_value(running_pod("default", "web", "node-1", &["app"])),
        serde_json::to_value(running_pod("default", "web-down", "node-down", &["app"])),
    ];
    manifest(&objects.map(Result::unwrap)).unwrap()
}

/// How to build the stack.
#[derive(Default)]
pub struct StackSetup {
    /// The shim's `--root-dir` (default: in the temp dir).
    pub shim_root: Option<PathBuf>,
}

pub struct Stack {
    pub tmp: tempfile::TempDir,
    pub api: Option<standin::Running>,
    pub api_addr: std::net::SocketAddr,
    pub port: u16,
    pub serving_ca: Ca,
    /// The front-proxy client certificate kube-apiserver presents.
    pub proxy: Pem,
    /// The request-header CA (to issue certificates with other names).
    pub proxy_ca: Ca,
    /// The cluster's client CA (published in the ConfigMap).
    pub client_ca: Ca,
    pub fake: FakeCri,
    pub checkpoints: PathBuf,
    _cri: UnixServer,
    _shim: InProcess,
    server: Option<InProcess>,
}

fn standin_config(dir: &Path, bind: std::net::SocketAddr) -> standin::Config {
    let mut config = standin::Config::new(dir.join("apiserver-pki"));
    config.bind = bind;
    config.policy_files = vec![dir.join("policy.yaml")];
    config.object_files = vec![dir.join("objects.yaml")];
    config.token_auth_file = Some(dir.join("tokens.csv"));
    config.write_kubeconfig = Some(dir.join("admin.kubeconfig"));
    config
}

impl Stack {
    pub async fn start(setup: StackSetup) -> Stack {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();

        // The node: a real checkpoint-shim on the fake CRI.
        let fake =
            FakeCri::with_containers([FakeContainer::running("c-app", "default", "web", "app")]);
        let socket = dir.join("cri.sock");
        let cri = fake.spawn_unix(&socket).await.unwrap();
        let node_ca = Ca::new("node-ca").unwrap();
        let kubelet_client_ca = Ca::new("kubelet-client-ca").unwrap();
        let node_serving = node_ca
            .server("node-1", &["localhost", "127.0.0.1"])
            .unwrap();
        let shim_root = setup.shim_root.unwrap_or_else(|| dir.join("kubelet"));
        let shim_args = vec![
            "checkpoint-shim".to_owned(),
            format!("--container-runtime-endpoint=unix://{}", socket.display()),
            format!("--root-dir={}", shim_root.display()),
            "--address=127.0.0.1".to_owned(),
            "--port=0".to_owned(),
            "--node-name=node-1".to_owned(),
            format!(
                "--tls-cert-file={}",
                write(dir, "node.crt", &node_serving.cert).display()
            ),
            format!(
                "--tls-private-key-file={}",
                write(dir, "node.key", &node_serving.key).display()
            ),
            format!(
                "--client-ca-file={}",
                write(dir, "kubelet-client-ca.crt", &kubelet_client_ca.pem.cert).display()
            ),
            "--runtime-request-timeout=3s".to_owned(),
            "--authorization-allow-users-for-testing=checkpoint-apiserver".to_owned(),
        ];
        let shim_options = kubelet_shim::Options::try_parse_from(&shim_args).unwrap();
        shim_options.validate().unwrap();
        let shim_config = kubelet_shim::Config::from_options(&shim_options)
            .await
            .unwrap();
        let shim_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let shim_port = shim_listener.local_addr().unwrap().port();
        let shim = InProcess::spawn("checkpoint-shim", |shutdown| {
            kubelet_shim::Server::new(shim_config).serve_on(shim_listener, shutdown)
        });
        let closed_port = free_port();

        // The API server.
        write(dir, "policy.yaml", POLICY);
        write(dir, "objects.yaml", &objects(shim_port, closed_port));
        write(
            dir,
            "tokens.csv",
            "alice-token,alice,1001\nbob-token,bob,1002\n",
        );
        let api = standin::start(standin_config(
            dir,
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        ))
        .await
        .unwrap();
        let api_addr = api.addr;
        let pki = api.pki.clone();
        let proxy_ca = Ca::from_pem(
            &pki.front_proxy_ca,
            &std::fs::read_to_string(pki.dir.join("front-proxy-ca.key")).unwrap(),
        )
        .unwrap();
        let client_ca = Ca::from_pem(&pki.client_ca.cert, &pki.client_ca.key).unwrap();

        // checkpoint-apiserver, from its flags.
        let serving_ca = Ca::new("extension-ca").unwrap();
        let serving = serving_ca
            .server("checkpoint-apiserver", &["localhost", "127.0.0.1"])
            .unwrap();
        let ours = kubelet_client_ca
            .client("checkpoint-apiserver", &[])
            .unwrap();
        let args = vec![
            "checkpoint-apiserver".to_owned(),
            "--bind-address=127.0.0.1".to_owned(),
            format!(
                "--tls-cert-file={}",
                write(dir, "ext.crt", &serving.cert).display()
            ),
            format!(
                "--tls-private-key-file={}",
                write(dir, "ext.key", &serving.key).display()
            ),
            format!("--kubeconfig={}", dir.join("admin.kubeconfig").display()),
            "--feature-gates=ContainerCheckpointAPI=true".to_owned(),
            format!(
                "--kubelet-certificate-authority={}",
                write(dir, "node-ca.crt", &node_ca.pem.cert).display()
            ),
            format!(
                "--kubelet-client-certificate={}",
                write(dir, "ours.crt", &ours.cert).display()
            ),
            format!(
                "--kubelet-client-key={}",
                write(dir, "ours.key", &ours.key).display()
            ),
            "--kubelet-timeout-margin=2s".to_owned(),
        ];
        let options = Options::try_parse_from(&args).unwrap();
        options.validate().unwrap();
        let config = Config::from_options(&options).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = InProcess::spawn("checkpoint-apiserver", |shutdown| {
            Server::new(config).serve_on(listener, shutdown)
        });
        Stack {
            proxy: pki.front_proxy_client.clone(),
            tmp,
            api: Some(api),
            api_addr,
            port,
            serving_ca,
            proxy_ca,
            client_ca,
            fake,
            checkpoints: shim_root.join("checkpoints"),
            _cri: cri,
            _shim: shim,
            server: Some(server),
        }
    }

    /// Stops the API server (it becomes unreachable).
    pub async fn stop_api_server(&mut self) {
        if let Some(api) = self.api.take() {
            api.stop().await;
        }
    }

    /// Starts the API server again on the same address, with the same PKI,
    /// objects, tokens and policy.
    pub async fn restart_api_server(&mut self) {
        assert!(self.api.is_none(), "the API server is running");
        let config = standin_config(self.tmp.path(), self.api_addr);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match standin::start(config.clone()).await {
                Ok(api) => {
                    self.api = Some(api);
                    return;
                }
                // The port may still be held by the old listener.
                Err(_) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("kube-apiserver-standin did not restart: {e}"),
            }
        }
    }

    /// One request on a new connection; `Err` when no HTTP answer came back.
    pub async fn try_send(
        &self,
        proto: Proto,
        who: Who<'_>,
        method: Method,
        target: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<(StatusCode, String), String> {
        let identity = match who {
            Who::Proxy(_) => Some(&self.proxy),
            Who::Cert(pem) => Some(pem),
            Who::Token(_) | Who::Nobody => None,
        };
        let bearer;
        let mut all: Vec<(&str, &str)> = Vec::new();
        match who {
            Who::Proxy(user) => {
                all.push(("X-Remote-User", user));
                all.push(("X-Remote-Group", "devs"));
            }
            Who::Token(token) => {
                bearer = format!("Bearer {token}");
                all.push(("Authorization", bearer.as_str()));
            }
            Who::Cert(_) | Who::Nobody => {}
        }
        all.extend_from_slice(headers);
        https_request(HttpsRequest {
            port: self.port,
            server_ca: &self.serving_ca.pem.cert,
            identity,
            proto,
            method,
            target,
            headers: &all,
            body,
            timeout: Duration::from_secs(60),
        })
        .await
    }

    pub async fn send(
        &self,
        proto: Proto,
        who: Who<'_>,
        method: Method,
        target: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (StatusCode, String) {
        self.try_send(proto, who, method, target, headers, body)
            .await
            .unwrap_or_else(|e| panic!("{proto:?} {target:.100}: {e}"))
    }

    /// `POST target` on behalf of alice through the front proxy.
    pub async fn post(&self, proto: Proto, target: &str) -> (StatusCode, String) {
        self.send(
            proto,
            Who::Proxy("alice"),
            Method::POST,
            target,
            &[],
            Vec::new(),
        )
        .await
    }

    /// A good request succeeds: 200, a `ContainerCheckpoint` whose archive is
    /// in the shim's checkpoints directory; the archive is removed afterwards.
    pub async fn good_request_succeeds(&self, proto: Proto, after: &str) {
        let (code, body) = self
            .post(proto, &format!("{GOOD}?container=app&timeoutSeconds=5"))
            .await;
        assert_eq!(code, StatusCode::OK, "good request after {after}: {body}");
        let obj: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(obj["kind"], "ContainerCheckpoint", "{body}");
        let archive = PathBuf::from(obj["status"]["archivePath"].as_str().unwrap());
        assert_eq!(archive.parent(), Some(self.checkpoints.as_path()), "{body}");
        std::fs::remove_file(&archive).unwrap();
    }

    /// The names in the shim's checkpoints directory.
    pub fn archives(&self) -> Vec<String> {
        kcr_testkit::files::names_in(&self.checkpoints)
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        self.stop_api_server().await;
    }
}

/// A `metav1.Status` answer: its code agrees with the HTTP code; returns
/// (reason, message).
pub fn status_of(code: StatusCode, body: &str) -> (String, String) {
    let v: Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("not a Status ({e}): {code} {body:.300}"));
    assert_eq!(v["kind"], "Status", "{body:.300}");
    assert_eq!(v["status"], "Failure", "{body:.300}");
    assert_eq!(
        v["code"].as_u64(),
        Some(u64::from(code.as_u16())),
        "{body:.300}"
    );
    (
        v["reason"].as_str().unwrap_or_default().to_owned(),
        v["message"].as_str().unwrap_or_default().to_owned(),
    )
}

pub fn node_secrets() -> [&'static str; 4] {
    ["node-1", "127.0.0.1", "/checkpoints", ".tar"]
}
