//! The mock API server on the network (HTTP or HTTPS on 127.0.0.1, its own
//! thread and runtime) and a kubeconfig pointing at it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::StatusCode;
use serde_json::{Value, json};

use super::{MockApi, Recorded};

/// A port nothing listens on (bound, then released).
pub fn closed_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The mock API server on the network; it stops when dropped.
#[derive(Debug)]
pub struct MockServer {
    api: MockApi,
    url: String,
    ca_pem: Option<String>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MockServer {
    fn start(api: MockApi, tls: Option<(Arc<rustls::ServerConfig>, String)>) -> io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handler = api.clone();
        let router = axum::Router::new().fallback(move |request: axum::extract::Request| {
            let api = handler.clone();
            async move { api.answer_http(request).await }
        });
        let ca_pem = tls.as_ref().map(|(_, ca)| ca.clone());
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let shutdown = async {
                    let _ = rx.await;
                };
                match tls {
                    Some((config, _)) => {
                        apiserver_lib::serve::serve_tls(listener, config, router, shutdown).await;
                    }
                    None => {
                        let _ = axum::serve(listener, router)
                            .with_graceful_shutdown(shutdown)
                            .await;
                    }
                }
            });
        });
        Ok(Self {
            api,
            url: format!("{scheme}://127.0.0.1:{port}"),
            ca_pem,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The CA of the serving certificate (HTTPS only).
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The server's scenarios and record.
    pub fn api(&self) -> &MockApi {
        &self.api
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.api.requests()
    }

    /// `METHOD path?query` of every request so far.
    pub fn request_lines(&self) -> Vec<String> {
        self.api.request_lines()
    }

    /// A kubeconfig with this server as cluster `mock` (its CA included);
    /// add users and contexts.
    pub fn kubeconfig(&self) -> Kubeconfig {
        Kubeconfig::default().cluster("mock", self.url(), self.ca_pem())
    }

    /// A kube configuration for this server as `user` with bearer `token`
    /// in namespace `default`, loaded from a kubeconfig written to `dir`.
    pub async fn kube_config(
        &self,
        user: &str,
        token: &str,
        dir: &Path,
    ) -> io::Result<kube::Config> {
        let path = self
            .kubeconfig()
            .user(user, Some(token))
            .context("mock", "mock", user, Some("default"))
            .current("mock")
            .write(dir)?;
        let kubeconfig = kube::config::Kubeconfig::read_from(&path).map_err(io::Error::other)?;
        kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .map_err(io::Error::other)
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl MockApi {
    /// Serve plain HTTP on 127.0.0.1 (a port of its own) until the returned
    /// server is dropped.
    pub fn serve(&self) -> io::Result<MockServer> {
        MockServer::start(self.clone(), None)
    }

    /// Serve HTTPS on 127.0.0.1 with a certificate for `127.0.0.1` and
    /// `localhost` from a CA of its own ([`MockServer::ca_pem`]).
    pub fn serve_tls(&self) -> io::Result<MockServer> {
        let ca = apiserver_lib::pki::Ca::new("mock-api-ca").map_err(io::Error::other)?;
        let serving = ca
            .server("mock-api", &["127.0.0.1", "localhost"])
            .map_err(io::Error::other)?;
        let chain = apiserver_lib::tls::parse_certs(serving.cert.as_bytes(), Path::new("mock"))
            .map_err(io::Error::other)?;
        let key = rustls::pki_types::pem::PemObject::from_pem_slice(serving.key.as_bytes())
            .map_err(io::Error::other)?;
        let config =
            apiserver_lib::tls::server_config(apiserver_lib::tls::ServingCert { chain, key }, &[])
                .map_err(io::Error::other)?;
        MockServer::start(self.clone(), Some((config, ca.pem.cert.clone())))
    }

    async fn answer_http(&self, request: axum::extract::Request) -> axum::response::Response {
        match self.answer(request).await {
            Ok(r) => r.map(axum::body::Body::new),
            // `Unreachable` is for the in-process client; over the network
            // the nearest is a gateway that cannot connect.
            Err(e) => http::Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(axum::body::Body::from(e.to_string()))
                .unwrap_or_default(),
        }
    }
}

/// A kubeconfig file: clusters, users with bearer tokens, contexts.
#[derive(Debug, Clone, Default)]
pub struct Kubeconfig {
    clusters: Vec<(String, String, Option<String>)>,
    users: Vec<(String, Option<String>)>,
    contexts: Vec<(String, String, String, Option<String>)>,
    current: Option<String>,
}

impl Kubeconfig {
    /// A cluster at `server`, trusting `ca_pem` when given.
    pub fn cluster(mut self, name: &str, server: &str, ca_pem: Option<&str>) -> Self {
        self.clusters
            .push((name.into(), server.into(), ca_pem.map(str::to_owned)));
        self
    }

    /// A user with a bearer token, or without credentials.
    pub fn user(mut self, name: &str, token: Option<&str>) -> Self {
        self.users.push((name.into(), token.map(str::to_owned)));
        self
    }

    /// A context: cluster, user and namespace.
    pub fn context(
        mut self,
        name: &str,
        cluster: &str,
        user: &str,
        namespace: Option<&str>,
    ) -> Self {
        self.contexts.push((
            name.into(),
            cluster.into(),
            user.into(),
            namespace.map(str::to_owned),
        ));
        self
    }

    /// The current context.
    pub fn current(mut self, name: &str) -> Self {
        self.current = Some(name.into());
        self
    }

    /// Write `dir/kubeconfig` (and `dir/CLUSTER-ca.crt` for each CA); returns
    /// the kubeconfig's path.
    pub fn write(&self, dir: &Path) -> io::Result<PathBuf> {
        let mut clusters = Vec::new();
        for (name, server, ca) in &self.clusters {
            let mut cluster = json!({"server": server});
            if let Some(ca) = ca {
                let path = dir.join(format!("{name}-ca.crt"));
                std::fs::write(&path, ca)?;
                cluster["certificate-authority"] = json!(path);
            }
            clusters.push(json!({"name": name, "cluster": cluster}));
        }
        let users: Vec<Value> = self
            .users
            .iter()
            .map(|(name, token)| match token {
                Some(t) => json!({"name": name, "user": {"token": t}}),
                None => json!({"name": name, "user": {}}),
            })
            .collect();
        let contexts: Vec<Value> = self
            .contexts
            .iter()
            .map(|(name, cluster, user, ns)| {
                let mut context = json!({"cluster": cluster, "user": user});
                if let Some(ns) = ns {
                    context["namespace"] = json!(ns);
                }
                json!({"name": name, "context": context})
            })
            .collect();
        let config = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": self.current.clone().unwrap_or_default(),
            "clusters": clusters,
            "users": users,
            "contexts": contexts,
        });
        let yaml = serde_saphyr::to_string(&config).map_err(io::Error::other)?;
        let path = dir.join("kubeconfig");
        std::fs::write(&path, yaml)?;
        Ok(path)
    }
}
