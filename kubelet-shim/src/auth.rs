//! Authentication and authorization set up like the kubelet's
//! (`pkg/kubelet/server/auth.go`, `cmd/kubelet/app/auth.go`): x509 client
//! certificates, bearer tokens through TokenReview, SubjectAccessReview for
//! `nodes/<subresource>` of this node; plus the bypasses named for testing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use apiserver_lib::UserInfo;
use apiserver_lib::authn::{Authenticator, StaticTokensForTesting, TokenReviewAuthenticator};
use apiserver_lib::authz::{
    Attributes, Authorizer, StaticAuthorizerForTesting, SubjectAccessReviewAuthorizer,
};
use apiserver_lib::tls::CaVerifier;

use crate::options::{AuthorizationMode, Config};

/// The kubelet's webhook cache TTLs (`--authorization-webhook-cache-*-ttl`).
pub const SAR_ALLOW_TTL: Duration = Duration::from_secs(300);
pub const SAR_DENY_TTL: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to load --client-ca-file: {0}")]
    ClientCa(#[source] apiserver_lib::tls::Error),
    #[error("--token-auth-file-for-testing: {0}")]
    Tokens(#[from] apiserver_lib::authn::TokenFileError),
    #[error("failed to read --kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("failed to build an API client: {0}")]
    Client(#[source] kube::Error),
    #[error(
        "authorization needs an API server for SubjectAccessReview: give --kubeconfig or run in a pod with a service account (or, for tests only, --authorization-allow-users-for-testing)"
    )]
    NoApiServer,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The resource attributes the kubelet authorizes a request with:
/// `nodes/<subresource>` named after this node, verb from the HTTP method
/// (`GetRequestAttributes` in `pkg/kubelet/server/auth.go`).
pub fn node_attributes(
    user: UserInfo,
    method: &http::Method,
    node_name: &str,
    subresource: &str,
) -> Attributes {
    let verb = match *method {
        http::Method::POST => "create",
        http::Method::GET | http::Method::HEAD => "get",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => "delete",
        _ => "",
    };
    Attributes {
        user,
        verb: verb.to_owned(),
        group: String::new(),
        resource: "nodes".to_owned(),
        subresource: subresource.to_owned(),
        namespace: String::new(),
        name: node_name.to_owned(),
        path: String::new(),
    }
}

/// An API client from `--kubeconfig`, else the in-cluster service account when
/// running in a pod, else none.
pub async fn api_client(kubeconfig: Option<&Path>) -> Result<Option<kube::Client>> {
    let config = match kubeconfig {
        Some(path) => {
            let kc =
                kube::config::Kubeconfig::read_from(path).map_err(|source| Error::Kubeconfig {
                    path: path.to_owned(),
                    source,
                })?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|source| Error::Kubeconfig {
                    path: path.to_owned(),
                    source,
                })?
        }
        None => match kube::Config::incluster() {
            Ok(c) => c,
            Err(_) => return Ok(None),
        },
    };
    kube::Client::try_from(config)
        .map(Some)
        .map_err(Error::Client)
}

/// The authenticator and authorizer for `config`.
pub async fn from_config(config: &Config) -> Result<(Authenticator, Arc<dyn Authorizer>)> {
    let client_ca = config
        .client_ca_file
        .as_deref()
        .map(CaVerifier::from_file)
        .transpose()
        .map_err(Error::ClientCa)?;
    let needs_client = config.token_auth_file_for_testing.is_none()
        || config.authorization == AuthorizationMode::Webhook;
    let client = if needs_client {
        api_client(config.kubeconfig.as_deref()).await?
    } else {
        None
    };
    let token: Option<Arc<dyn apiserver_lib::authn::TokenAuthenticator>> = match &config
        .token_auth_file_for_testing
    {
        Some(path) => {
            tracing::warn!(
                file = %path.display(),
                "--token-auth-file-for-testing: bearer tokens come from a static file, not TokenReview; never use this in production"
            );
            Some(Arc::new(StaticTokensForTesting::load(path)?))
        }
        None => match &client {
            Some(c) => Some(Arc::new(TokenReviewAuthenticator::new(
                c.clone(),
                Vec::new(),
            ))),
            None => {
                tracing::warn!(
                    "no API server configured: bearer tokens are not accepted (client certificates only)"
                );
                None
            }
        },
    };
    let authorizer: Arc<dyn Authorizer> = match &config.authorization {
        AuthorizationMode::AllowUsersForTesting(users) => {
            tracing::warn!(
                ?users,
                "--authorization-allow-users-for-testing: SubjectAccessReview is skipped; never use this in production"
            );
            Arc::new(StaticAuthorizerForTesting {
                users: users.clone(),
                groups: Vec::new(),
            })
        }
        AuthorizationMode::Webhook => match client {
            Some(c) => Arc::new(SubjectAccessReviewAuthorizer::new(
                c,
                SAR_ALLOW_TTL,
                SAR_DENY_TTL,
            )),
            None => return Err(Error::NoApiServer),
        },
    };
    if client_ca.is_none() && token.is_none() {
        tracing::warn!("neither --client-ca-file nor bearer tokens: every request will get 401");
    }
    Ok((
        Authenticator {
            request_header: None,
            client_ca,
            token,
        },
        authorizer,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_follow_the_kubelet() {
        let a = node_attributes(UserInfo::default(), &http::Method::POST, "n1", "checkpoint");
        assert_eq!(
            (a.verb.as_str(), a.resource.as_str(), a.subresource.as_str()),
            ("create", "nodes", "checkpoint")
        );
        assert_eq!(a.name, "n1");
        assert_eq!(a.group, "");
        let a = node_attributes(UserInfo::default(), &http::Method::GET, "n1", "metrics");
        assert_eq!(a.verb, "get");
        let a = node_attributes(
            UserInfo::default(),
            &http::Method::from_bytes(b"BREW").unwrap(),
            "n1",
            "checkpoint",
        );
        assert_eq!(a.verb, "");
    }
}
