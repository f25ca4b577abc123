//! The command-line option groups of both servers, as
//! `k8s.io/apiserver/pkg/server/options` has them and metrics-server's
//! `cmd/metrics-server/app/options` uses them: each server's `Options`
//! flattens the groups (`#[command(flatten)]`); each group lists every
//! problem of its flags (`validate() -> Vec<String>`) and turns valid flags
//! into its part of the server's config.
//!
//! * [`SecureServingOptions`]: address, port, serving certificate, `--cert-dir`;
//! * [`DelegatingAuthenticationOptions`]: client certificates, the front
//!   proxy, bearer tokens by TokenReview;
//! * [`DelegatingAuthorizationOptions`]: SubjectAccessReview and its cache;
//! * [`FeatureGateOptions`]: the `--feature-gates` flag;
//! * [`LoggingOptions`](crate::logging::LoggingOptions): `--logging-format`;
//! * [`ForTestingOptions`]: the bypasses named for testing.
//!
//! The two servers name some flags differently — checkpoint-shim keeps the
//! kubelet's names (`--address`, `--port`), checkpoint-apiserver
//! kube-apiserver's (`--bind-address`, `--secure-port`) — and have different
//! defaults, help and subsets of the delegation flags. A group therefore
//! takes the server's [`ServerFlags`]: the names, defaults and help of its
//! flags, and, as [`NoFlags`] where a server has none, the optional parts.

mod authentication;
mod authorization;
mod feature_gate;
mod serving;
mod testing;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::authorization::Authorizer;
use crate::kubeconfig::{self, Fallback};

pub use authentication::{
    ConfigMapAuthentication, DelegatedAuthentication, DelegatingAuthenticationOptions,
    Error as AuthenticationError, Lookup, RemoteAuthentication, RemoteAuthenticationOptions,
    RequestHeaderAuthenticationOptions, RequestHeaderFlags,
};
pub use authorization::{
    AuthorizationWebhook, AuthorizationWebhookOptions, DelegatingAuthorizationOptions,
    Error as AuthorizationError,
};
pub use feature_gate::FeatureGateOptions;
pub use serving::{SecureServingInfo, SecureServingOptions, SelfSigned};
pub use testing::{AllowGroupsForTesting, AllowGroupsForTestingOptions, ForTestingOptions};

/// Invalid options; every problem is listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid options:\n  {}", .0.join("\n  "))]
pub struct InvalidOptions(pub Vec<String>);

impl InvalidOptions {
    /// `Ok` when there is no problem.
    pub fn check(problems: Vec<String>) -> Result<(), Self> {
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Self(problems))
        }
    }
}

/// A flag value parsed when clap reads the flag, its error kept for
/// `validate`, so that every problem is listed at once (clap stops at the
/// first) and nothing is parsed twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<T> {
    raw: String,
    value: Result<T, String>,
}

impl<T> Parsed<T> {
    pub fn new<E: fmt::Display>(raw: &str, parse: impl FnOnce(&str) -> Result<T, E>) -> Self {
        Self {
            raw: raw.to_owned(),
            value: parse(raw).map_err(|e| e.to_string()),
        }
    }

    /// The flag as given.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The value, or why it is not one.
    pub fn get(&self) -> Result<&T, &str> {
        self.value.as_ref().map_err(String::as_str)
    }
}

/// A server's flags where they differ between the servers. Each server's
/// options module has one such type; the groups take it as a parameter.
pub trait ServerFlags: Clone + fmt::Debug + Send + Sync + 'static {
    /// `--bind-address` (kube-apiserver) or `--address` (the kubelet).
    const BIND_ADDRESS: &'static str;
    /// `--secure-port` or `--port`.
    const PORT: &'static str;
    const DEFAULT_PORT: &'static str;
    /// `--cert-dir`'s default, when it has a fixed one.
    const DEFAULT_CERT_DIR: Option<&'static str>;
    const CERT_DIR_HELP: &'static str;
    const CLIENT_CA_FILE_HELP: &'static str;
    /// The gates the server knows, with their defaults.
    const FEATURE_GATES: &'static [(&'static str, bool)];
    const FEATURE_GATES_HELP: &'static str;
    /// How long SubjectAccessReview decisions are cached (allowed, denied)
    /// when the server has no flags for it.
    const AUTHORIZATION_CACHE_TTLS: (Duration, Duration);
    /// `--authentication-kubeconfig` and the ConfigMap lookup, or [`NoFlags`].
    type RemoteAuthentication: RemoteAuthentication;
    /// `--requestheader-*`, or [`NoFlags`] (no front proxy).
    type RequestHeader: RequestHeaderFlags;
    /// `--authorization-kubeconfig` and the cache TTLs, or [`NoFlags`].
    type AuthorizationWebhook: AuthorizationWebhook;
    /// `--authorization-allow-groups-for-testing`, or [`NoFlags`].
    type AllowGroupsForTesting: AllowGroupsForTesting;
}

/// A server's API client and its delegated authentication and authorization:
/// the two `Delegating*Options` applied together, as `k8s.io/apiserver`'s
/// `RecommendedOptions.ApplyTo` does.
pub struct Delegation {
    /// `None`: no kubeconfig and not in a pod (with [`Fallback::InCluster`]).
    pub config: Option<kube::Config>,
    pub client: Option<kube::Client>,
    pub authentication: DelegatedAuthentication,
    pub authorizer: Arc<dyn Authorizer>,
}

impl fmt::Debug for Delegation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delegation")
            .field("authentication", &self.authentication)
            .field("authorizer", &self.authorizer)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DelegationError {
    #[error(transparent)]
    Kubeconfig(#[from] kubeconfig::Error),
    #[error(transparent)]
    Authentication(#[from] AuthenticationError),
    #[error(transparent)]
    Authorization(#[from] AuthorizationError),
}

/// The server's delegation: its API client from `kubeconfig` (else
/// `fallback`), then authentication and authorization through it (or
/// through their own kubeconfigs), with the testing bypasses when given.
pub async fn delegate<F: ServerFlags>(
    kubeconfig: Option<&Path>,
    fallback: Fallback,
    authentication: &DelegatingAuthenticationOptions<F>,
    authorization: &DelegatingAuthorizationOptions<F>,
    testing: &ForTestingOptions<F>,
) -> Result<Delegation, DelegationError> {
    let config = kubeconfig::load(kubeconfig, fallback).await?;
    let client = config.clone().map(kubeconfig::client).transpose()?;
    let authentication = authentication
        .apply(client.clone(), testing.token_file())
        .await?;
    let authorizer = authorization.apply(client.clone(), testing).await?;
    Ok(Delegation {
        config,
        client,
        authentication,
        authorizer,
    })
}

/// The part of a group a server does not have.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::Args)]
#[group(skip)]
pub struct NoFlags {}
