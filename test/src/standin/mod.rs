//! `kube-apiserver-standin`: a test double for kube-apiserver and its
//! aggregator. No kube-apiserver can be installed on these machines, so the
//! tests and the local stack use this; product code never knows (it only sees
//! an API server behind a kubeconfig). It answers as kube-apiserver 1.28 did,
//! request by request, in `shared/design/KUBE-API-OBSERVED.md`, and follows
//! the upstream source where that is silent.
//!
//! * real TLS from its own CA; client certificates from its client CA
//!   (CN = user, O = groups) and static bearer tokens
//!   (`--token-auth-file`, kube's CSV) authenticate; everyone else gets 401
//!   (anonymous auth off; `/healthz`, `/livez`, `/readyz` are open);
//! * RBAC decisions over real Role/ClusterRole/RoleBinding/ClusterRoleBinding
//!   objects ([`rbac`]), the bootstrap roles a fresh cluster has, and
//!   `system:masters`, made before any lookup; request attributes parsed as
//!   kube-apiserver parses them ([`request_info`]);
//! * TokenReview, SubjectAccessReview, SelfSubjectAccessReview ([`reviews`]);
//! * APIServices proxied over TLS with the front-proxy client certificate
//!   and `X-Remote-*` headers ([`aggregator`]); the
//!   `kube-system/extension-apiserver-authentication` ConfigMap published at
//!   start;
//! * CustomResourceDefinitions ([`crd`]) registering their resources in
//!   discovery ([`resources`]) and the store, with structural schemas and
//!   CEL rules ([`schema`], [`admission`]);
//! * one store for every type ([`store`]): a global resourceVersion,
//!   optimistic concurrency, generation, the status subresource, finalizers,
//!   a bounded per-type history for watches ([`watch`]) and historical lists;
//!   merge and JSON patches ([`patch`]); label and field selectors
//!   ([`selector`]); both Event APIs over one set of objects ([`events`]);
//!   Table output for `kubectl get` ([`table`]);
//! * an audit log of every request answered ([`audit`]), for tests that
//!   count or attribute a client's requests;
//! * `--request-timeout` (60 s) and `?timeout=` (a Go duration) cut
//!   non-long-running requests with kube-apiserver's 504 Status; watches are
//!   long-running.
//!
//! Not served, on purpose (see `test/README.md`): server-side apply (415
//! saying so), managedFields (left out entirely), aggregated discovery (the
//! legacy documents are served; kubectl 1.27–1.33 use them), strategic merge
//! patch on built-ins, OpenAPI schemas, conversion and admission webhooks,
//! impersonation.

// Handlers return `StatusError` (a whole `metav1.Status`) by value: the
// error is the HTTP answer, built once per failed request.
#![allow(clippy::result_large_err)]

pub mod admission;
pub mod aggregator;
pub mod audit;
pub mod certificates;
pub mod certs;
pub mod crd;
pub mod events;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod rbac;
pub mod request_info;
pub mod resources;
pub mod reviews;
pub mod schema;
pub mod selector;
pub mod server;
pub mod status;
pub mod store;
pub mod table;
pub mod watch;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use apiserver_lib::authentication::Authenticator;
use apiserver_lib::tls::{self, CaVerifier};
use serde_json::json;

pub use certs::{Credentials, Pki};
pub use server::AppState;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("--bind-address must be a loopback address, not {0}")]
    NotLoopback(std::net::IpAddr),
    #[error(transparent)]
    Certs(#[from] certs::Error),
    #[error(transparent)]
    Tls(#[from] tls::Error),
    #[error(transparent)]
    Tokens(#[from] apiserver_lib::authentication::TokenFileError),
    #[error(transparent)]
    Objects(#[from] store::Error),
    #[error(transparent)]
    Policy(#[from] rbac::Error),
    #[error(transparent)]
    Aggregator(#[from] aggregator::Error),
    #[error("failed to publish {what}: {status}")]
    Publish {
        what: String,
        #[source]
        status: apiserver_lib::StatusError,
    },
    #[error("failed to listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Default `--request-timeout`, as kube-apiserver's.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `/version`.
pub const DEFAULT_VERSION: &str = "v1.33.0";

/// How to run the stand-in.
#[derive(Debug, Clone)]
pub struct Config {
    /// PKI directory (see [`certs`]); created when missing.
    pub cert_dir: PathBuf,
    /// Loopback address and port (0 picks one).
    pub bind: SocketAddr,
    pub token_auth_file: Option<PathBuf>,
    /// Multi-document YAML files of RBAC objects (other kinds skipped).
    pub policy_files: Vec<PathBuf>,
    /// Multi-document YAML files of objects to create at start.
    pub object_files: Vec<PathBuf>,
    /// `(namespace, name) → host:port` overrides of Service resolution.
    pub service_addresses: BTreeMap<(String, String), String>,
    pub request_timeout: Duration,
    /// Where to write the admin kubeconfig (`O=system:masters`), once listening.
    pub write_kubeconfig: Option<PathBuf>,
    /// `gitVersion` served at `/version`.
    pub version: String,
    /// How often watches with `allowWatchBookmarks=true` get a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Watch history, watcher bounds.
    pub limits: store::Limits,
}

impl Config {
    /// Defaults: 127.0.0.1 on a free port, 60 s timeout, no extra files.
    pub fn new(cert_dir: impl Into<PathBuf>) -> Self {
        Self {
            cert_dir: cert_dir.into(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            token_auth_file: None,
            policy_files: Vec::new(),
            object_files: Vec::new(),
            service_addresses: BTreeMap::new(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            write_kubeconfig: None,
            version: DEFAULT_VERSION.to_owned(),
            bookmark_interval: server::DEFAULT_BOOKMARK_INTERVAL,
            limits: store::Limits::default(),
        }
    }
}

/// The user and groups of the admin kubeconfig.
pub const ADMIN_USER: &str = "kubernetes-admin";

/// A started stand-in.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub url: String,
    pub pki: Pki,
    pub state: Arc<AppState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// A kubeconfig (text) for `user` in `groups`, by client certificate.
    pub fn kubeconfig(&self, user: &str, groups: &[String]) -> Result<String> {
        let pem = self.pki.issue_client(user, groups)?;
        Ok(certs::kubeconfig(
            &self.url,
            &self.pki.server_ca,
            user,
            &Credentials::Certificate(pem),
            "default",
        ))
    }

    /// A service-account token bound to the pod `namespace/pod` (which
    /// must exist and run as `service_account`), as the kubelet projects
    /// into a pod: its user carries the pod's name and UID as extras, and it
    /// stops authenticating once the pod is gone.
    pub fn bound_service_account_token(
        &self,
        namespace: &str,
        service_account: &str,
        pod: &str,
    ) -> std::result::Result<String, String> {
        self.state
            .bound_tokens
            .issue(namespace, service_account, pod)
    }

    /// A kubeconfig (text) that authenticates with a bearer `token`.
    pub fn token_kubeconfig(&self, user: &str, token: &str) -> String {
        certs::kubeconfig(
            &self.url,
            &self.pki.server_ca,
            user,
            &Credentials::Token(token.to_owned()),
            "default",
        )
    }

    /// Stop accepting, end the watches, let requests in flight finish.
    pub async fn stop(mut self) {
        self.state.store.shutdown();
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.state.store.shutdown();
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// The `extension-apiserver-authentication` ConfigMap as kube-apiserver publishes it.
pub fn extension_apiserver_authentication(pki: &Pki) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system"},
        "data": {
            "client-ca-file": pki.client_ca.cert,
            "requestheader-client-ca-file": pki.front_proxy_ca,
            "requestheader-allowed-names": json!([certs::FRONT_PROXY_CLIENT_CN]).to_string(),
            "requestheader-username-headers": "[\"X-Remote-User\"]",
            "requestheader-group-headers": "[\"X-Remote-Group\"]",
            "requestheader-extra-headers-prefix": "[\"X-Remote-Extra-\"]",
        }
    })
}

/// Build the state from `config` (PKI, policy, objects, tokens) without serving.
pub fn build_state(config: &Config, server_address: &str) -> Result<(Pki, AppState)> {
    let pki = Pki::load_or_create(&config.cert_dir)?;
    let store = store::Store::with_limits(config.limits);
    for (i, o) in rbac::bootstrap_policy().into_iter().enumerate() {
        store.load_object(Path::new("bootstrap policy"), i, o)?;
    }
    for f in &config.policy_files {
        let n = rbac::Rbac::load_policy_file(&store, f)?;
        tracing::info!(file = %f.display(), objects = n, "loaded RBAC policy");
    }
    if let Some(rt) = resources::lookup("", "v1", "configmaps") {
        store
            .create(rt, "kube-system", extension_apiserver_authentication(&pki))
            .map_err(|status| Error::Publish {
                what: "kube-system/extension-apiserver-authentication".into(),
                status,
            })?;
    }
    for f in &config.object_files {
        let n = store.load_file(f)?;
        tracing::info!(file = %f.display(), objects = n, "loaded objects");
    }
    let client_ca_certs = tls::parse_certs(
        pki.client_ca.cert.as_bytes(),
        &pki.dir.join("client-ca.crt"),
    )?;
    let static_tokens = match &config.token_auth_file {
        Some(path) => Some(
            Arc::new(apiserver_lib::authentication::StaticTokensForTesting::load(
                path,
            )?) as Arc<dyn apiserver_lib::authentication::TokenAuthenticator>,
        ),
        None => None,
    };
    let store = Arc::new(store);
    let bound_tokens = Arc::new(certificates::BoundTokens::new(store.clone(), static_tokens));
    let token =
        Some(bound_tokens.clone() as Arc<dyn apiserver_lib::authentication::TokenAuthenticator>);
    let authn = Authenticator {
        request_header: None,
        client_ca: Some(CaVerifier::new(
            &client_ca_certs,
            &pki.dir.join("client-ca.crt"),
        )?),
        token,
    };
    let aggregator = aggregator::Aggregator::new(
        pki.front_proxy_client.clone(),
        config.service_addresses.clone(),
    );
    let state = AppState {
        store,
        bound_tokens,
        authn,
        aggregator,
        request_timeout: config.request_timeout,
        server_address: server_address.to_owned(),
        version: config.version.clone(),
        bookmark_interval: config.bookmark_interval,
        audit: audit::AuditLog::default(),
    };
    Ok((pki, state))
}

/// Start serving on `config.bind`; returns once listening (and once the
/// admin kubeconfig, when asked for, is written).
pub async fn start(config: Config) -> Result<Running> {
    if !config.bind.ip().is_loopback() {
        return Err(Error::NotLoopback(config.bind.ip()));
    }
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|source| Error::Listen {
            addr: config.bind,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Listen {
        addr: config.bind,
        source,
    })?;
    let (pki, state) = build_state(&config, &addr.to_string())?;
    let url = format!("https://{addr}");
    let client_ca_certs = tls::parse_certs(
        pki.client_ca.cert.as_bytes(),
        &pki.dir.join("client-ca.crt"),
    )?;
    let tls_config = tls::server_config(pki.serving_cert()?, &client_ca_certs)?;
    let state = Arc::new(state);
    let router = server::router(state.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(apiserver_lib::serve::serve_tls(
        listener,
        tls_config,
        router,
        async {
            let _ = rx.await;
        },
    ));
    pki.write_server_url(&url)?;
    let running = Running {
        addr,
        url,
        pki,
        state,
        stop: Some(tx),
        task: Some(task),
    };
    if let Some(path) = &config.write_kubeconfig {
        let text = running.kubeconfig(ADMIN_USER, &[rbac::SYSTEM_MASTERS.to_owned()])?;
        certs::write_kubeconfig(path, &text)?;
    }
    tracing::info!(url = running.url, cert_dir = %running.pki.dir.display(), "kube-apiserver-standin serving");
    Ok(running)
}
