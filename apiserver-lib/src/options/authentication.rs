//! Delegated authentication (`k8s.io/apiserver/pkg/server/options`
//! `DelegatingAuthenticationOptions`, with its `ClientCertAuthenticationOptions`
//! and `RequestHeaderAuthenticationOptions`): client certificates against
//! `--client-ca-file`, a front proxy's `X-Remote-*` headers against
//! `--requestheader-client-ca-file`, bearer tokens by TokenReview.
//!
//! checkpoint-apiserver reads what the flags leave unset from the
//! `kube-system/extension-apiserver-authentication` ConfigMap that
//! kube-apiserver publishes; checkpoint-shim, like the kubelet, has only
//! `--client-ca-file` and TokenReview ([`NoFlags`] for the rest).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use rustls::pki_types::CertificateDer;

use super::{NoFlags, ServerFlags};
use crate::authentication::{
    Authenticator, RequestHeaderConfig, StaticTokensForTesting, TokenAuthenticator, TokenFileError,
    TokenReviewAuthenticator,
};
use crate::kubeconfig;
use crate::tls::{self, CaVerifier};

/// Namespace of the ConfigMap kube-apiserver publishes.
pub const CONFIGMAP_NAMESPACE: &str = "kube-system";
/// Name of that ConfigMap.
pub const CONFIGMAP_NAME: &str = "extension-apiserver-authentication";

pub const KEY_CLIENT_CA: &str = "client-ca-file";
pub const KEY_REQUESTHEADER_CA: &str = "requestheader-client-ca-file";
pub const KEY_ALLOWED_NAMES: &str = "requestheader-allowed-names";
pub const KEY_USERNAME_HEADERS: &str = "requestheader-username-headers";
pub const KEY_GROUP_HEADERS: &str = "requestheader-group-headers";
pub const KEY_EXTRA_PREFIXES: &str = "requestheader-extra-headers-prefix";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read ConfigMap {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}: {source}")]
    Lookup {
        #[source]
        source: kube::Error,
    },
    #[error(
        "{0}\n(grant the extension-apiserver-authentication-reader Role, or pass --authentication-skip-lookup with --client-ca-file/--requestheader-client-ca-file, or --authentication-tolerate-lookup-failure)"
    )]
    LookupRequired(Box<Error>),
    #[error(
        "ConfigMap {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}: key {key} is not a JSON list of strings: {reason}"
    )]
    BadList { key: &'static str, reason: String },
    #[error("failed to load --client-ca-file: {0}")]
    ClientCa(#[source] tls::Error),
    #[error(transparent)]
    Tls(#[from] tls::Error),
    #[error("--token-auth-file-for-testing: {0}")]
    TokenFile(#[from] TokenFileError),
    #[error(transparent)]
    Kubeconfig(#[from] kubeconfig::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether to read the ConfigMap kube-apiserver publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Never,
    /// Read it; failing to is an error.
    Required,
    /// Read it; failing to is a warning.
    Tolerant,
}

/// `--authentication-kubeconfig` and the ConfigMap lookup flags (or [`NoFlags`]).
pub trait RemoteAuthentication:
    clap::Args + clap::FromArgMatches + Clone + std::fmt::Debug + Send + Sync + 'static
{
    /// A kubeconfig of its own for TokenReview and the lookup.
    fn kubeconfig(&self) -> Option<&Path>;
    fn lookup(&self) -> Lookup;
}

impl RemoteAuthentication for NoFlags {
    fn kubeconfig(&self) -> Option<&Path> {
        None
    }
    fn lookup(&self) -> Lookup {
        Lookup::Never
    }
}

/// checkpoint-apiserver's remote authentication flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RemoteAuthenticationOptions {
    /// kubeconfig for TokenReview and for reading kube-system/extension-apiserver-authentication
    /// [default: --kubeconfig].
    #[arg(long, value_name = "FILE")]
    pub authentication_kubeconfig: Option<PathBuf>,

    /// Do not read the client and request-header CAs from the
    /// kube-system/extension-apiserver-authentication ConfigMap; use the flags only.
    #[arg(long)]
    pub authentication_skip_lookup: bool,

    /// Start even when the extension-apiserver-authentication ConfigMap cannot be read.
    #[arg(long)]
    pub authentication_tolerate_lookup_failure: bool,
}

impl RemoteAuthentication for RemoteAuthenticationOptions {
    fn kubeconfig(&self) -> Option<&Path> {
        self.authentication_kubeconfig.as_deref()
    }
    fn lookup(&self) -> Lookup {
        match (
            self.authentication_skip_lookup,
            self.authentication_tolerate_lookup_failure,
        ) {
            (true, _) => Lookup::Never,
            (false, true) => Lookup::Tolerant,
            (false, false) => Lookup::Required,
        }
    }
}

/// The front-proxy flags (or [`NoFlags`]: no front proxy).
pub trait RequestHeaderFlags:
    clap::Args + clap::FromArgMatches + Clone + std::fmt::Debug + Send + Sync + 'static
{
    /// The flags, when the server has them.
    fn flags(&self) -> Option<&RequestHeaderAuthenticationOptions>;
}

impl RequestHeaderFlags for NoFlags {
    fn flags(&self) -> Option<&RequestHeaderAuthenticationOptions> {
        None
    }
}

impl RequestHeaderFlags for RequestHeaderAuthenticationOptions {
    fn flags(&self) -> Option<&RequestHeaderAuthenticationOptions> {
        Some(self)
    }
}

/// `--requestheader-*` (`RequestHeaderAuthenticationOptions`).
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct RequestHeaderAuthenticationOptions {
    /// CA bundle of the front proxy (kube-apiserver's --requestheader-client-ca-file); the
    /// X-Remote-* headers count only on connections with a certificate it signed [default: the
    /// ConfigMap's requestheader-client-ca-file].
    #[arg(long, value_name = "FILE")]
    pub requestheader_client_ca_file: Option<PathBuf>,

    /// Common names allowed on the front-proxy certificate, comma-separated; empty allows any
    /// certificate the request-header CA signed [default: the ConfigMap's list].
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub requestheader_allowed_names: Vec<String>,

    /// Headers holding the user name [default: the ConfigMap's list, else X-Remote-User].
    #[arg(long, value_name = "HEADERS", value_delimiter = ',')]
    pub requestheader_username_headers: Vec<String>,

    /// Headers holding the groups, one header per group [default: the ConfigMap's list, else
    /// X-Remote-Group].
    #[arg(long, value_name = "HEADERS", value_delimiter = ',')]
    pub requestheader_group_headers: Vec<String>,

    /// Prefixes of the headers holding extra user attributes [default: the ConfigMap's list,
    /// else X-Remote-Extra-].
    #[arg(long, value_name = "PREFIXES", value_delimiter = ',')]
    pub requestheader_extra_headers_prefix: Vec<String>,
}

impl RequestHeaderAuthenticationOptions {
    /// Every header name that is not one.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        for (flag, list) in [
            (
                "--requestheader-username-headers",
                &self.requestheader_username_headers,
            ),
            (
                "--requestheader-group-headers",
                &self.requestheader_group_headers,
            ),
            (
                "--requestheader-extra-headers-prefix",
                &self.requestheader_extra_headers_prefix,
            ),
        ] {
            for h in list {
                if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                    errs.push(format!("{flag}: {h:?} is not a valid header name"));
                }
            }
        }
        errs
    }
}

/// The server's authentication flags.
#[derive(Debug, Clone, clap::Args)]
pub struct DelegatingAuthenticationOptions<F: ServerFlags> {
    #[command(flatten)]
    pub remote: F::RemoteAuthentication,

    #[arg(long, value_name = "FILE", help = F::CLIENT_CA_FILE_HELP)]
    pub client_ca_file: Option<PathBuf>,

    #[command(flatten)]
    pub request_header: F::RequestHeader,
}

/// The authenticator, and the CAs to hint in the TLS handshake (so that a
/// Go front proxy sends its certificate).
#[derive(Debug, Clone)]
pub struct DelegatedAuthentication {
    pub authenticator: Authenticator,
    pub client_cas: Vec<CertificateDer<'static>>,
}

impl<F: ServerFlags> DelegatingAuthenticationOptions<F> {
    /// Every problem with the flags.
    pub fn validate(&self) -> Vec<String> {
        self.request_header
            .flags()
            .map(RequestHeaderAuthenticationOptions::validate)
            .unwrap_or_default()
    }

    /// The authenticator: certificates from the flags (else from the
    /// ConfigMap), bearer tokens from `token_file_for_testing` or else by
    /// TokenReview through `client` (`--authentication-kubeconfig` when
    /// given); no API server, no bearer tokens.
    pub async fn apply(
        &self,
        client: Option<kube::Client>,
        token_file_for_testing: Option<&Path>,
    ) -> Result<DelegatedAuthentication> {
        let client = kubeconfig::client_or(self.remote.kubeconfig(), client).await?;
        let token: Option<Arc<dyn TokenAuthenticator>> = match (token_file_for_testing, &client) {
            (Some(path), _) => {
                tracing::warn!(
                    file = %path.display(),
                    "--token-auth-file-for-testing: bearer tokens come from a static file, NOT TokenReview; never use this in production"
                );
                Some(Arc::new(StaticTokensForTesting::load(path)?))
            }
            (None, Some(c)) => Some(Arc::new(TokenReviewAuthenticator::new(
                c.clone(),
                Vec::new(),
            ))),
            (None, None) => {
                tracing::warn!(
                    "no API server configured: bearer tokens are not accepted (client certificates only)"
                );
                None
            }
        };
        let request_header = self.request_header.flags();
        let both_from_flags = self.client_ca_file.is_some()
            && request_header.is_some_and(|r| r.requestheader_client_ca_file.is_some());
        let lookup = if both_from_flags {
            Lookup::Never
        } else {
            self.remote.lookup()
        };
        let configmap = match (lookup, client) {
            (Lookup::Never, _) | (_, None) => None,
            (lookup, Some(client)) => match ConfigMapAuthentication::lookup(client).await {
                Ok(found) => {
                    if found.is_none() {
                        tracing::warn!(
                            "ConfigMap kube-system/extension-apiserver-authentication not found"
                        );
                    }
                    found
                }
                Err(e) if lookup == Lookup::Tolerant => {
                    tracing::warn!(error = %e, "continuing without the authentication ConfigMap");
                    None
                }
                Err(e) => return Err(Error::LookupRequired(Box::new(e))),
            },
        };
        let delegated = self.build(configmap.as_ref(), token)?;
        let a = &delegated.authenticator;
        if request_header.is_some() && a.request_header.is_none() {
            tracing::warn!("no request-header CA: requests proxied by kube-apiserver will be 401");
        }
        if a.request_header.is_none() && a.client_ca.is_none() && a.token.is_none() {
            tracing::warn!(
                "neither client certificates nor bearer tokens are accepted: every request will get 401"
            );
        }
        Ok(delegated)
    }

    /// Combine flags and the ConfigMap: each setting from its flag when
    /// given, else from the ConfigMap, else kube-apiserver's default header names.
    pub fn build(
        &self,
        configmap: Option<&ConfigMapAuthentication>,
        token: Option<Arc<dyn TokenAuthenticator>>,
    ) -> Result<DelegatedAuthentication> {
        let cm = configmap.cloned().unwrap_or_default();
        let mut hints = Vec::new();
        let client_ca = match &self.client_ca_file {
            Some(path) => Some((
                tls::read_certs(path).map_err(Error::ClientCa)?,
                path.clone(),
            )),
            None => cm.ca(KEY_CLIENT_CA, cm.client_ca.as_deref())?,
        };
        let client_ca = match client_ca {
            Some((certs, origin)) => {
                hints.extend(certs.iter().cloned());
                Some(CaVerifier::new(&certs, &origin)?)
            }
            None => None,
        };
        let request_header = match self.request_header.flags() {
            Some(flags) => {
                let ca = match &flags.requestheader_client_ca_file {
                    Some(path) => Some((tls::read_certs(path)?, path.clone())),
                    None => cm.ca(KEY_REQUESTHEADER_CA, cm.requestheader_ca.as_deref())?,
                };
                match ca {
                    Some((certs, origin)) => {
                        hints.extend(certs.iter().cloned());
                        Some(cm.request_header(flags, CaVerifier::new(&certs, &origin)?))
                    }
                    None => None,
                }
            }
            None => None,
        };
        Ok(DelegatedAuthentication {
            authenticator: Authenticator {
                request_header,
                client_ca,
                token,
            },
            client_cas: hints,
        })
    }
}

/// What the `kube-system/extension-apiserver-authentication` ConfigMap says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigMapAuthentication {
    /// PEM of the client CA bundle.
    pub client_ca: Option<String>,
    /// PEM of the front-proxy CA bundle.
    pub requestheader_ca: Option<String>,
    pub allowed_names: Vec<String>,
    pub username_headers: Vec<String>,
    pub group_headers: Vec<String>,
    pub extra_headers_prefix: Vec<String>,
}

fn json_list(data: &BTreeMap<String, String>, key: &'static str) -> Result<Vec<String>> {
    match data.get(key).map(|s| s.trim()) {
        None | Some("") => Ok(Vec::new()),
        Some(raw) => serde_json::from_str::<Vec<String>>(raw).map_err(|e| Error::BadList {
            key,
            reason: e.to_string(),
        }),
    }
}

/// The flag's list when given, else the ConfigMap's, else `default`; trimmed.
fn or_else(flag: &[String], cm: &[String], default: Option<&str>) -> Vec<String> {
    let pick = if flag.is_empty() { cm } else { flag };
    let out: Vec<String> = pick
        .iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    match default {
        Some(d) if out.is_empty() => vec![d.to_owned()],
        _ => out,
    }
}

impl ConfigMapAuthentication {
    /// Parse the ConfigMap kube-apiserver publishes (lists are JSON arrays).
    pub fn from_configmap(cm: &ConfigMap) -> Result<Self> {
        let empty = BTreeMap::new();
        let data = cm.data.as_ref().unwrap_or(&empty);
        let pem = |key: &str| data.get(key).filter(|s| !s.trim().is_empty()).cloned();
        Ok(Self {
            client_ca: pem(KEY_CLIENT_CA),
            requestheader_ca: pem(KEY_REQUESTHEADER_CA),
            allowed_names: json_list(data, KEY_ALLOWED_NAMES)?,
            username_headers: json_list(data, KEY_USERNAME_HEADERS)?,
            group_headers: json_list(data, KEY_GROUP_HEADERS)?,
            extra_headers_prefix: json_list(data, KEY_EXTRA_PREFIXES)?,
        })
    }

    /// Read the ConfigMap; `Ok(None)` when it does not exist.
    pub async fn lookup(client: kube::Client) -> Result<Option<Self>> {
        let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, CONFIGMAP_NAMESPACE);
        match api.get_opt(CONFIGMAP_NAME).await {
            Ok(Some(cm)) => Ok(Some(Self::from_configmap(&cm)?)),
            Ok(None) => Ok(None),
            Err(source) => Err(Error::Lookup { source }),
        }
    }

    /// The certificates of a CA bundle of the ConfigMap, named for errors.
    fn ca(
        &self,
        key: &str,
        pem: Option<&str>,
    ) -> Result<Option<(Vec<CertificateDer<'static>>, PathBuf)>> {
        match pem {
            Some(pem) => {
                let origin = PathBuf::from(format!("configmap {CONFIGMAP_NAME} {key}"));
                Ok(Some((tls::parse_certs(pem.as_bytes(), &origin)?, origin)))
            }
            None => Ok(None),
        }
    }

    /// The front-proxy settings: each from its flag, else from the ConfigMap.
    fn request_header(
        &self,
        flags: &RequestHeaderAuthenticationOptions,
        ca: CaVerifier,
    ) -> RequestHeaderConfig {
        RequestHeaderConfig {
            ca,
            allowed_names: or_else(
                &flags.requestheader_allowed_names,
                &self.allowed_names,
                None,
            ),
            username_headers: or_else(
                &flags.requestheader_username_headers,
                &self.username_headers,
                Some("X-Remote-User"),
            ),
            group_headers: or_else(
                &flags.requestheader_group_headers,
                &self.group_headers,
                Some("X-Remote-Group"),
            ),
            extra_headers_prefix: or_else(
                &flags.requestheader_extra_headers_prefix,
                &self.extra_headers_prefix,
                Some("X-Remote-Extra-"),
            ),
        }
    }
}
