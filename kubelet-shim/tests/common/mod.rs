//! A real `checkpoint-shim` server over TLS (options parsed from flags, as the
//! binary does) in front of a given CRI runtime, and clients that speak
//! HTTP/1.1 and HTTP/2 to it, or write raw bytes. Shared by the hostile-input,
//! authentication-attack and fault tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use apiserver_lib::pki::{Ca, Pem};
use apiserver_lib::tls;
use clap::Parser;
use http::{Method, StatusCode};
use kubelet_shim::runtime::RuntimeService;
use kubelet_shim::{Options, Server};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const NODE: &str = "node-1";

pub fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
    tls::parse_certs(pem.as_bytes(), Path::new("test")).unwrap()
}

pub fn identity(pem: &Pem) -> tls::ServingCert {
    tls::ServingCert {
        chain: certs(&pem.cert),
        key: PrivateKeyDer::from_pem_slice(pem.key.as_bytes()).unwrap(),
    }
}

use kcr_testkit::hostile::{HttpsRequest, https_request};
pub use kcr_testkit::hostile::{PROTOS, Proto};

/// How to start the shim.
pub struct ShimSetup {
    /// Extra flags after the defaults (TLS files, client CA, node name, port 0).
    pub flags: Vec<String>,
    /// `--root-dir`; default a directory in the fixture's temp dir.
    pub root_dir: Option<PathBuf>,
    /// Adds `--authorization-allow-users-for-testing=alice` and a token file
    /// (`alice-token` → alice, `carol-token` → carol).
    pub testing_auth: bool,
    pub runtime_request_timeout: &'static str,
    /// `Config::checkpoint_grace`, the extra wait after the CRI timeout.
    pub grace: Option<Duration>,
}

impl Default for ShimSetup {
    fn default() -> Self {
        Self {
            flags: Vec::new(),
            root_dir: None,
            testing_auth: true,
            runtime_request_timeout: "2s",
            grace: Some(Duration::from_millis(200)),
        }
    }
}

/// A running shim.
pub struct Shim {
    pub port: u16,
    pub server_ca: Ca,
    pub client_ca: Ca,
    /// CN=alice from the client CA: allowed when `testing_auth`.
    pub alice: Pem,
    pub root: PathBuf,
    pub checkpoints: PathBuf,
    pub tmp: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Shim {
    pub async fn start(runtime: Arc<dyn RuntimeService>, setup: ShimSetup) -> Shim {
        let tmp = tempfile::tempdir().unwrap();
        let server_ca = Ca::new("server-ca").unwrap();
        let client_ca = Ca::new("client-ca").unwrap();
        let serving = server_ca.server(NODE, &["localhost", "127.0.0.1"]).unwrap();
        let write = |name: &str, text: &str| {
            let p = tmp.path().join(name);
            std::fs::write(&p, text).unwrap();
            p.to_string_lossy().into_owned()
        };
        let cert = write("tls.crt", &serving.cert);
        let key = write("tls.key", &serving.key);
        let ca = write("client-ca.crt", &client_ca.pem.cert);
        let root = setup
            .root_dir
            .clone()
            .unwrap_or_else(|| tmp.path().join("kubelet"));
        let mut args = vec![
            "checkpoint-shim".to_owned(),
            "--container-runtime-endpoint=unix:///unused.sock".to_owned(),
            format!("--root-dir={}", root.display()),
            "--address=127.0.0.1".to_owned(),
            "--port=0".to_owned(),
            format!("--node-name={NODE}"),
            format!("--tls-cert-file={cert}"),
            format!("--tls-private-key-file={key}"),
            format!("--client-ca-file={ca}"),
            format!(
                "--runtime-request-timeout={}",
                setup.runtime_request_timeout
            ),
        ];
        if setup.testing_auth {
            let tokens = write("tokens.csv", "alice-token,alice,1\ncarol-token,carol,2\n");
            args.push(format!("--token-auth-file-for-testing={tokens}"));
            args.push("--authorization-allow-users-for-testing=alice".to_owned());
        }
        args.extend(setup.flags);
        let mut config = Options::try_parse_from(&args).unwrap().validate().unwrap();
        if let Some(grace) = setup.grace {
            config.checkpoint_grace = grace;
        }
        let server = Server::with_runtime(config, runtime).await.unwrap();
        let port = server.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run_until(async {
            let _ = stopped.await;
        }));
        let alice = client_ca.client("alice", &[]).unwrap();
        Shim {
            port,
            server_ca,
            client_ca,
            alice,
            checkpoints: root.join("checkpoints"),
            root,
            tmp,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// One request on a new connection. `Err` when no HTTP answer came back.
    pub async fn try_send(
        &self,
        proto: Proto,
        who: Option<&Pem>,
        method: Method,
        target: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<(StatusCode, String), String> {
        https_request(HttpsRequest {
            port: self.port,
            server_ca: &self.server_ca.pem.cert,
            identity: who,
            proto,
            method,
            target,
            headers,
            body,
            timeout: Duration::from_secs(30),
        })
        .await
    }

    pub async fn send(
        &self,
        proto: Proto,
        who: Option<&Pem>,
        method: Method,
        target: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (StatusCode, String) {
        self.try_send(proto, who, method, target, headers, body)
            .await
            .unwrap_or_else(|e| panic!("{proto:?} {target:.100}: {e}"))
    }

    /// `POST target` as alice, no body.
    pub async fn post(&self, proto: Proto, target: &str) -> (StatusCode, String) {
        self.send(
            proto,
            Some(&self.alice),
            Method::POST,
            target,
            &[],
            Vec::new(),
        )
        .await
    }

    /// Writes `request` as is on a new TLS connection (HTTP/1.1) and returns
    /// the answer's status line.
    pub async fn raw_http1(&self, who: Option<&Pem>, request: &[u8]) -> String {
        let cfg = tls::client_config(
            tls::ServerTrust::Ca(certs(&self.server_ca.pem.cert)),
            who.map(identity),
        )
        .unwrap();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        let mut stream = connector
            .connect("localhost".try_into().unwrap(), tcp)
            .await
            .unwrap();
        // The server may answer (and close) before it has read everything.
        let _ = stream.write_all(request).await;
        let _ = stream.flush().await;
        // Read up to the end of the status line (the connection may stay open).
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            let mut buf = [0u8; 4096];
            while !answer.windows(2).any(|w| w == b"\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        let answer = String::from_utf8_lossy(&answer);
        answer.lines().next().unwrap_or_default().to_owned()
    }

    /// A good checkpoint request succeeds (200, an archive inside the
    /// checkpoints directory, mode 0600); the archive is removed afterwards
    /// so the directory is empty again.
    pub async fn good_request_succeeds(&self, proto: Proto, after: &str) {
        let (code, body) = self.post(proto, "/checkpoint/default/web/app").await;
        assert_eq!(code, StatusCode::OK, "good request after {after}: {body}");
        let resp: api_types::CheckpointResponse = serde_json::from_str(&body).unwrap();
        let path = PathBuf::from(resp.archive_path().unwrap());
        assert_eq!(path.parent(), Some(self.checkpoints.as_path()), "{body}");
        assert_eq!(mode_of(&path), 0o600);
        std::fs::remove_file(&path).unwrap();
    }

    /// Every file and directory under the fixture's temp dir (relative paths).
    pub fn tree(&self) -> Vec<String> {
        tree(self.tmp.path())
    }

    /// The names in the checkpoints directory.
    pub fn archives(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.checkpoints)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Stops the server and waits for it (it must stop within 10 s).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("the shim did not stop within 10 s")
                .unwrap();
        }
    }
}

pub fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

pub fn tree(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// RBAC for the shim's SubjectAccessReviews: alice may create
/// `nodes/checkpoint`; bob and carol may not.
pub const NODE_POLICY: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: node-checkpointer}
rules:
- apiGroups: [""]
  resources: ["nodes/checkpoint"]
  verbs: ["create"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: alice-node-checkpoints}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: node-checkpointer}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}
"#;

/// kube-apiserver-standin with bearer tokens `alice-token`, `bob-token` and
/// [`NODE_POLICY`]; the admin kubeconfig at `dir/admin.kubeconfig`.
pub async fn standin(dir: &Path) -> kcr_testkit::standin::Running {
    use kcr_testkit::standin;
    std::fs::write(dir.join("policy.yaml"), NODE_POLICY).unwrap();
    std::fs::write(
        dir.join("apiserver-tokens.csv"),
        "alice-token,alice,1001\nbob-token,bob,1002\n",
    )
    .unwrap();
    let mut config = standin::Config::new(dir.join("apiserver-pki"));
    config.policy_files = vec![dir.join("policy.yaml")];
    config.token_auth_file = Some(dir.join("apiserver-tokens.csv"));
    config.write_kubeconfig = Some(dir.join("admin.kubeconfig"));
    standin::start(config).await.unwrap()
}
