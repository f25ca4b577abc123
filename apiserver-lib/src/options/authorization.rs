//! Delegated authorization (`k8s.io/apiserver/pkg/server/options`
//! `DelegatingAuthorizationOptions`): SubjectAccessReview through the API
//! server, decisions cached; or, named for testing, a static allow-list.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use api_types::duration::GoDuration;

use super::{ForTestingOptions, NoFlags, ServerFlags};
use crate::authorization::{Authorizer, SubjectAccessReviewAuthorizer};
use crate::kubeconfig;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "authorization needs an API server for SubjectAccessReview: give --kubeconfig or run in a pod with a service account (or, for tests only, --authorization-allow-users-for-testing)"
    )]
    NoApiServer,
    #[error(transparent)]
    Kubeconfig(#[from] kubeconfig::Error),
}

/// `--authorization-kubeconfig` and the cache TTLs (or [`NoFlags`]: the
/// server's kubeconfig and fixed TTLs).
pub trait AuthorizationWebhook:
    clap::Args + clap::FromArgMatches + Clone + std::fmt::Debug + Send + Sync + 'static
{
    fn kubeconfig(&self) -> Option<&Path>;
    /// How long allowed and denied decisions are cached, when flags say.
    fn cache_ttls(&self) -> Option<(Duration, Duration)>;
}

impl AuthorizationWebhook for NoFlags {
    fn kubeconfig(&self) -> Option<&Path> {
        None
    }
    fn cache_ttls(&self) -> Option<(Duration, Duration)> {
        None
    }
}

/// checkpoint-apiserver's authorization flags.
#[derive(Debug, Clone, clap::Args)]
pub struct AuthorizationWebhookOptions {
    /// kubeconfig for SubjectAccessReview [default: --kubeconfig].
    #[arg(long, value_name = "FILE")]
    pub authorization_kubeconfig: Option<PathBuf>,

    /// How long an allowed SubjectAccessReview is cached (Go duration).
    #[arg(long, value_name = "DURATION", default_value_t = GoDuration::from_secs(10))]
    pub authorization_webhook_cache_authorized_ttl: GoDuration,

    /// How long a denied SubjectAccessReview is cached (Go duration).
    #[arg(long, value_name = "DURATION", default_value_t = GoDuration::from_secs(10))]
    pub authorization_webhook_cache_unauthorized_ttl: GoDuration,
}

impl AuthorizationWebhook for AuthorizationWebhookOptions {
    fn kubeconfig(&self) -> Option<&Path> {
        self.authorization_kubeconfig.as_deref()
    }
    fn cache_ttls(&self) -> Option<(Duration, Duration)> {
        Some((
            self.authorization_webhook_cache_authorized_ttl.get(),
            self.authorization_webhook_cache_unauthorized_ttl.get(),
        ))
    }
}

/// The server's authorization flags.
#[derive(Debug, Clone, clap::Args)]
pub struct DelegatingAuthorizationOptions<F: ServerFlags> {
    #[command(flatten)]
    pub webhook: F::AuthorizationWebhook,
}

impl<F: ServerFlags> DelegatingAuthorizationOptions<F> {
    /// Every problem with the flags (none so far).
    pub fn validate(&self) -> Vec<String> {
        Vec::new()
    }

    /// The allow-list named for testing when one is given, else
    /// SubjectAccessReview through `client` (`--authorization-kubeconfig`
    /// when given).
    pub async fn apply(
        &self,
        client: Option<kube::Client>,
        testing: &ForTestingOptions<F>,
    ) -> Result<Arc<dyn Authorizer>, Error> {
        if let Some(allow) = testing.authorizer() {
            tracing::warn!(
                users = ?allow.users,
                groups = ?allow.groups,
                "--authorization-allow-*-for-testing: SubjectAccessReview is NOT used; never use this in production"
            );
            return Ok(Arc::new(allow));
        }
        let client = kubeconfig::client_or(self.webhook.kubeconfig(), client)
            .await?
            .ok_or(Error::NoApiServer)?;
        let (allowed, denied) = self
            .webhook
            .cache_ttls()
            .unwrap_or(F::AUTHORIZATION_CACHE_TTLS);
        Ok(Arc::new(SubjectAccessReviewAuthorizer::new(
            client, allowed, denied,
        )))
    }
}
