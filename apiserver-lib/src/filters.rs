//! Request filters, as `k8s.io/apiserver/pkg/endpoints/filters` chains them
//! in front of the handlers: [`WithAuthentication`] (`WithAuthentication`)
//! and [`WithAudit`] (`WithAudit`).
//!
//! Handlers read who is calling from the request's extensions
//! (`axum::Extension<UserInfo>`), never authenticate themselves.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::audit::{self, AuditContext, Entry};
use crate::authentication::{Authenticator, Error};

/// What a server answers when no authenticator recognises a request (a
/// `metav1.Status` for an API server, plain text for a kubelet).
pub type Unauthorized = fn(&Error) -> Response;

/// Authenticates every request of the router it wraps
/// (`filters.WithAuthentication`): the [`crate::UserInfo`] goes into the
/// request's extensions (and into the audit entry, when the request is
/// audited); a request nobody recognises gets the server's [`Unauthorized`]
/// answer and never reaches a handler.
#[derive(Debug, Clone)]
pub struct WithAuthentication {
    authenticator: Arc<Authenticator>,
    unauthorized: Unauthorized,
}

impl WithAuthentication {
    pub fn new(authenticator: Arc<Authenticator>, unauthorized: Unauthorized) -> Self {
        Self {
            authenticator,
            unauthorized,
        }
    }

    /// `router` behind the filter (its routes and its fallback).
    pub fn wrap<S: Clone + Send + Sync + 'static>(self, router: Router<S>) -> Router<S> {
        router.layer(axum::middleware::from_fn_with_state(self, authenticate))
    }
}

async fn authenticate(
    State(filter): State<WithAuthentication>,
    req: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = req.into_parts();
    match filter.authenticator.authenticate(&parts).await {
        Ok((user, method)) => {
            tracing::debug!(user = %user.name, ?method, "authenticated");
            if let Some(audit) = parts.extensions.get::<AuditContext>() {
                audit.update(|e| e.user = Some(user.clone()));
            }
            parts.extensions.insert(user);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(e) => {
            match &e {
                Error::Unauthenticated => tracing::debug!("unauthenticated request"),
                other => tracing::warn!(error = %other, "authentication failed"),
            }
            (filter.unauthorized)(&e)
        }
    }
}

/// Which requests are audited, and what their path already says about them
/// (`None`: not audited).
pub type Describe = Arc<dyn Fn(&Request) -> Option<Entry> + Send + Sync>;

/// One audit line per request that `describe` recognises
/// (`filters.WithAudit`, with one stage: when the answer is known): who, which
/// container, which node, the outcome and the archive. Outside
/// [`WithAuthentication`], so refused credentials are audited too; the
/// handler adds what it learns through the request's [`AuditContext`].
#[derive(Clone)]
pub struct WithAudit {
    describe: Describe,
}

impl std::fmt::Debug for WithAudit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WithAudit").finish_non_exhaustive()
    }
}

impl WithAudit {
    pub fn new(describe: impl Fn(&Request) -> Option<Entry> + Send + Sync + 'static) -> Self {
        Self {
            describe: Arc::new(describe),
        }
    }

    /// `router` behind the filter.
    pub fn wrap<S: Clone + Send + Sync + 'static>(self, router: Router<S>) -> Router<S> {
        router.layer(axum::middleware::from_fn_with_state(self, audited))
    }
}

async fn audited(State(filter): State<WithAudit>, mut req: Request, next: Next) -> Response {
    let Some(entry) = (filter.describe)(&req) else {
        return next.run(req).await;
    };
    let pending = audit::Pending::new(AuditContext::new(entry));
    req.extensions_mut().insert(pending.context().clone());
    let resp = next.run(req).await;
    pending.finish(&resp);
    resp
}
