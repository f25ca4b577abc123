//! A real `checkpoint-shim` server over TLS (options parsed from flags, as the
//! binary does) in front of a given CRI runtime, and clients that speak
//! HTTP/1.1 and HTTP/2 to it, or write raw bytes. Shared by the hostile-input,
//! authentication-attack and fault tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use apiserver_lib::pki::{Ca, Pem};
use clap::Parser;
use http::{Method, StatusCode};
use kcr_testkit::files::{mode_of, names_in, tree};
use kcr_testkit::fixtures::ALICE_MAY_CHECKPOINT_NODES;
use kcr_testkit::harness::{InProcess, write_file};
use kcr_testkit::hostile::raw_https_status_line;
use kubelet_shim::runtime::RuntimeService;
use kubelet_shim::{Config, Options, Server};

pub const NODE: &str = "node-1";

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
    /// `HostConfig::grace`, the extra wait after the CRI timeout.
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

impl ShimSetup {
    /// Real TokenReview and SubjectAccessReview through the API server of
    /// `dir/admin.kubeconfig` (see [`standin`]), no bypass named for testing.
    pub fn with_api_server(dir: &Path) -> Self {
        Self {
            testing_auth: false,
            flags: vec![format!(
                "--kubeconfig={}",
                dir.join("admin.kubeconfig").display()
            )],
            ..Self::default()
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
    pub checkpoints: PathBuf,
    pub tmp: tempfile::TempDir,
    server: InProcess,
}

impl Shim {
    pub async fn start(runtime: Arc<dyn RuntimeService>, setup: ShimSetup) -> Shim {
        let tmp = tempfile::tempdir().unwrap();
        let server_ca = Ca::new("server-ca").unwrap();
        let client_ca = Ca::new("client-ca").unwrap();
        let serving = server_ca.server(NODE, &["localhost", "127.0.0.1"]).unwrap();
        let write = |name: &str, text: &str| {
            write_file(tmp.path(), name, text)
                .to_string_lossy()
                .into_owned()
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
        let options = Options::try_parse_from(&args).unwrap();
        options.validate().unwrap();
        let mut config = Config::with_runtime(&options, runtime).await.unwrap();
        if let Some(grace) = setup.grace {
            config.host.grace = grace;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = InProcess::spawn("checkpoint-shim", |shutdown| {
            Server::new(config).serve_on(listener, shutdown)
        });
        let alice = client_ca.client("alice", &[]).unwrap();
        Shim {
            port,
            server_ca,
            client_ca,
            alice,
            checkpoints: root.join("checkpoints"),
            tmp,
            server,
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
        raw_https_status_line(self.port, &self.server_ca.pem.cert, who, request)
            .await
            .unwrap()
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
        names_in(&self.checkpoints)
    }

    /// Stops the server and waits for it (it must stop within 10 s).
    pub async fn stop(self) {
        self.server.stop().await;
    }
}

/// kube-apiserver-standin with bearer tokens `alice-token`, `bob-token` and
/// [`ALICE_MAY_CHECKPOINT_NODES`]; the admin kubeconfig at `dir/admin.kubeconfig`.
pub async fn standin(dir: &Path) -> kcr_testkit::standin::Running {
    use kcr_testkit::standin;
    std::fs::write(dir.join("policy.yaml"), ALICE_MAY_CHECKPOINT_NODES).unwrap();
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
