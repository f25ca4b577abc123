//! From validated [`Options`] to a [`Config`]: kube clients, delegated
//! authentication (flags or the ConfigMap) and authorization, the node
//! client, the serving certificate (metrics-server's `Options.ServerConfig`
//! then `Config.Complete`).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use apiserver_lib::authn::{TokenAuthenticator, TokenReviewAuthenticator};
use apiserver_lib::authz::{Authorizer, StaticAuthorizerForTesting, SubjectAccessReviewAuthorizer};
use apiserver_lib::tls::{self, ServerTrust, ServingCert};
use rustls::pki_types::CertificateDer;
use secrecy::ExposeSecret;

use crate::authentication::{self, Flags, Sources};
use crate::concurrency::NodeLimiter;
use crate::events::KubeEventRecorder;
use crate::lookup::KubeClusterReader;
use crate::metrics::Metrics;
use crate::node::{Credentials, HttpsNodeClient};
use crate::options::{self, Options};
use crate::server::{App, Config, Settings};

/// Base name of the self-signed pair in `--cert-dir`.
pub const SELF_SIGNED_NAME: &str = "apiserver";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Options(#[from] options::Error),
    #[error("failed to load kubeconfig {path}: {reason}")]
    Kubeconfig { path: String, reason: String },
    #[error("failed to find a cluster configuration (give --kubeconfig): {0}")]
    InferConfig(String),
    #[error("failed to create a Kubernetes client: {0}")]
    Client(String),
    #[error(
        "{0}\n(grant the extension-apiserver-authentication-reader Role, or pass --authentication-skip-lookup with --client-ca-file/--requestheader-client-ca-file, or --authentication-tolerate-lookup-failure)"
    )]
    Lookup(authentication::Error),
    #[error(transparent)]
    Authentication(#[from] authentication::Error),
    #[error("serving certificate: {0}")]
    Serving(tls::Error),
    #[error("kubelet client: {0}")]
    Kubelet(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

async fn kube_config(path: Option<&Path>) -> Result<kube::Config> {
    match path {
        Some(p) => {
            let bad = |reason: String| Error::Kubeconfig {
                path: p.display().to_string(),
                reason,
            };
            let kc = kube::config::Kubeconfig::read_from(p).map_err(|e| bad(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| bad(e.to_string()))
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| Error::InferConfig(e.to_string())),
    }
}

/// Requests in flight to the API server at once (and so its connections, at
/// most): without a bound, a burst of checkpoints opens one HTTP/1.1
/// connection per concurrent lookup and keeps them all (seen: ~600 after 500
/// concurrent requests, memory growing past 64 MiB). client-go bounds its
/// clients too (QPS/burst); a queue here costs milliseconds.
pub const MAX_API_REQUESTS_IN_FLIGHT: usize = 32;

fn client(config: kube::Config) -> Result<kube::Client> {
    let builder =
        kube::client::ClientBuilder::try_from(config).map_err(|e| Error::Client(e.to_string()))?;
    Ok(builder
        .with_layer(&tower::limit::ConcurrencyLimitLayer::new(
            MAX_API_REQUESTS_IN_FLIGHT,
        ))
        .build())
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "checkpoint-apiserver".to_owned())
}

/// How node calls trust and authenticate, from the options and the cluster config.
pub fn kubelet_client(opts: &Options, cluster: &kube::Config) -> Result<HttpsNodeClient> {
    let trust = if opts.kubelet_insecure_tls {
        tracing::warn!("--kubelet-insecure-tls: kubelet serving certificates are not verified");
        ServerTrust::InsecureSkipVerify
    } else if let Some(ca) = &opts.kubelet_certificate_authority {
        ServerTrust::Ca(tls::read_certs(ca).map_err(|e| Error::Kubelet(e.to_string()))?)
    } else {
        let roots: Vec<CertificateDer<'static>> = cluster
            .root_cert
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(CertificateDer::from)
            .collect();
        if roots.is_empty() {
            return Err(Error::Kubelet(
                "no CA to verify kubelets with: give --kubelet-certificate-authority (or --kubelet-insecure-tls on test clusters)".into(),
            ));
        }
        ServerTrust::Ca(roots)
    };
    let identity = match (&opts.kubelet_client_certificate, &opts.kubelet_client_key) {
        (Some(cert), Some(key)) => {
            Some(ServingCert::load(cert, key).map_err(|e| Error::Kubelet(e.to_string()))?)
        }
        _ => None,
    };
    let credentials = if identity.is_some() {
        Credentials::None
    } else if let Some(t) = &cluster.auth_info.token {
        Credentials::Token(t.expose_secret().to_owned())
    } else if let Some(f) = &cluster.auth_info.token_file {
        Credentials::TokenFile(f.into())
    } else {
        tracing::warn!(
            "no credentials for kubelets: neither --kubelet-client-certificate nor a token in the kubeconfig"
        );
        Credentials::None
    };
    HttpsNodeClient::new(trust, identity, credentials).map_err(|e| Error::Kubelet(e.to_string()))
}

impl Config {
    /// Build the configuration; options are validated first.
    pub async fn from_options(opts: &Options) -> Result<Config> {
        opts.validated()?;
        let gates = opts
            .gates()
            .map_err(|e| options::Error(vec![e.to_string()]))?;
        let address_types = opts.address_types().map_err(|e| options::Error(vec![e]))?;

        let cluster_config = kube_config(opts.kubeconfig.as_deref()).await?;
        let cluster_client = client(cluster_config.clone())?;
        let authn_client = match &opts.authentication_kubeconfig {
            Some(p) => client(kube_config(Some(p)).await?)?,
            None => cluster_client.clone(),
        };
        let authz_client = match &opts.authorization_kubeconfig {
            Some(p) => client(kube_config(Some(p)).await?)?,
            None => cluster_client.clone(),
        };

        // Authentication.
        let token: Arc<dyn TokenAuthenticator> = match &opts.token_auth_file_for_testing {
            Some(path) => {
                tracing::warn!(file = %path.display(), "--token-auth-file-for-testing: bearer tokens are NOT reviewed by the API server");
                Arc::new(authentication::read_token_file(path)?)
            }
            None => Arc::new(TokenReviewAuthenticator::new(
                authn_client.clone(),
                Vec::new(),
            )),
        };
        let flags = Flags {
            client_ca_file: opts.client_ca_file.clone(),
            requestheader_client_ca_file: opts.requestheader_client_ca_file.clone(),
            requestheader_allowed_names: opts.requestheader_allowed_names.clone(),
            requestheader_username_headers: opts.requestheader_username_headers.clone(),
            requestheader_group_headers: opts.requestheader_group_headers.clone(),
            requestheader_extra_headers_prefix: opts.requestheader_extra_headers_prefix.clone(),
        };
        let both_from_flags =
            opts.client_ca_file.is_some() && opts.requestheader_client_ca_file.is_some();
        let sources = if opts.authentication_skip_lookup || both_from_flags {
            None
        } else {
            match Sources::lookup(authn_client).await {
                Ok(found) => {
                    if found.is_none() {
                        tracing::warn!(
                            "ConfigMap kube-system/extension-apiserver-authentication not found"
                        );
                    }
                    found
                }
                Err(e) if opts.authentication_tolerate_lookup_failure => {
                    tracing::warn!(error = %e, "continuing without the authentication ConfigMap");
                    None
                }
                Err(e) => return Err(Error::Lookup(e)),
            }
        };
        let delegated = authentication::build(&flags, sources.as_ref(), Some(token))?;
        if delegated.authenticator.request_header.is_none() {
            tracing::warn!("no request-header CA: requests proxied by kube-apiserver will be 401");
        }

        // Authorization.
        let authz: Arc<dyn Authorizer> = if opts.authorization_bypassed_for_testing() {
            tracing::warn!("--authorization-allow-*-for-testing: SubjectAccessReview is NOT used");
            Arc::new(StaticAuthorizerForTesting {
                users: opts.authorization_allow_users_for_testing.clone(),
                groups: opts.authorization_allow_groups_for_testing.clone(),
            })
        } else {
            Arc::new(SubjectAccessReviewAuthorizer::new(
                authz_client,
                opts.authorization_webhook_cache_authorized_ttl.get(),
                opts.authorization_webhook_cache_unauthorized_ttl.get(),
            ))
        };

        // Serving.
        let serving = match (&opts.tls_cert_file, &opts.tls_private_key_file) {
            (Some(cert), Some(key)) => ServingCert::load(cert, key),
            _ => ServingCert::self_signed_in(
                &opts.cert_dir,
                SELF_SIGNED_NAME,
                &["localhost".to_owned(), "127.0.0.1".to_owned()],
            ),
        }
        .map_err(Error::Serving)?;
        let tls = tls::server_config(serving, &delegated.client_cas).map_err(Error::Serving)?;

        let nodes = kubelet_client(opts, &cluster_config)?;
        let settings = Settings {
            gates,
            max_timeout_seconds: opts.max_timeout_seconds,
            max_request_body_bytes: opts.max_request_body_bytes,
            address_types,
            kubelet_port: opts.kubelet_port,
            kubelet_request_timeout: opts.kubelet_request_timeout.get(),
            kubelet_timeout_margin: opts.kubelet_timeout_margin.get(),
            node_queue_timeout: opts.node_queue_timeout.get(),
        };
        Ok(Config {
            listen: SocketAddr::new(opts.bind_address, opts.secure_port),
            tls,
            app: App {
                settings,
                authn: delegated.authenticator,
                authz,
                cluster: Arc::new(KubeClusterReader::new(cluster_client.clone())),
                nodes: Arc::new(nodes),
                events: Arc::new(KubeEventRecorder::new(cluster_client, hostname())),
                metrics: Arc::new(Metrics::new()),
                limiter: Arc::new(NodeLimiter::new(opts.max_checkpoints_per_node)),
            },
        })
    }
}
