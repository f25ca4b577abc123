//! Named health checks behind `/healthz`, `/livez` and `/readyz`, answered
//! the way `k8s.io/apiserver/pkg/server/healthz` does (`ok`, `?verbose`,
//! `/readyz/<check>`, `?exclude=<check>`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::BoxFuture;
use http::StatusCode;

type CheckFn = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// A named check.
#[derive(Clone)]
pub struct Check {
    pub name: String,
    run: CheckFn,
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check").field("name", &self.name).finish()
    }
}

impl Check {
    pub fn new<F, Fut>(name: impl Into<String>, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        Self {
            name: name.into(),
            run: Arc::new(move || Box::pin(f())),
        }
    }

    /// Run the check: `Err` with the reason it failed.
    pub fn run(&self) -> BoxFuture<'static, Result<(), String>> {
        (self.run)()
    }

    /// The `kube-apiserver` check of a server that needs the API server:
    /// it answers `/version` through `client`.
    pub fn kube_apiserver(client: kube::Client) -> Self {
        Self::new("kube-apiserver", move || {
            let client = client.clone();
            async move {
                client
                    .apiserver_version()
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("failed to read the API server version: {e}"))
            }
        })
    }

    /// The `ping` check, always ok.
    pub fn ping() -> Self {
        Self::new("ping", || async { Ok(()) })
    }
}

/// Checks for liveness and readiness; `/healthz` runs the readiness set.
#[derive(Debug, Clone, Default)]
pub struct HealthChecks {
    pub livez: Vec<Check>,
    pub readyz: Vec<Check>,
}

async fn run(
    kind: &str,
    checks: &[Check],
    params: &HashMap<String, String>,
    only: Option<&str>,
) -> Response {
    let verbose = params.contains_key("verbose");
    let exclude: Vec<&str> = params
        .get("exclude")
        .map(|s| s.split(',').collect())
        .unwrap_or_default();
    let mut lines = String::new();
    let mut failed = false;
    let mut found = only.is_none();
    for check in checks {
        if exclude.contains(&check.name.as_str()) {
            lines.push_str(&format!("[+]{} excluded: ok\n", check.name));
            continue;
        }
        if let Some(o) = only {
            if o != check.name {
                continue;
            }
            found = true;
        }
        match (check.run)().await {
            Ok(()) => lines.push_str(&format!("[+]{} ok\n", check.name)),
            Err(reason) => {
                tracing::warn!(check = %check.name, %reason, "{kind} check failed");
                failed = true;
                lines.push_str(&format!("[-]{} failed: reason withheld\n", check.name));
            }
        }
    }
    if !found {
        return (StatusCode::NOT_FOUND, "404 page not found\n").into_response();
    }
    if failed {
        lines.push_str(&format!("{kind} check failed\n"));
        return (StatusCode::INTERNAL_SERVER_ERROR, lines).into_response();
    }
    if verbose || only.is_some() {
        lines.push_str(&format!("{kind} check passed\n"));
        (StatusCode::OK, lines).into_response()
    } else {
        (StatusCode::OK, "ok").into_response()
    }
}

impl HealthChecks {
    /// Routes for `/healthz`, `/livez`, `/readyz` and their `/<check>` forms.
    /// They need no authentication (kube-apiserver lets anyone read them).
    pub fn router(self) -> Router {
        let this = Arc::new(self);
        let mut router = Router::new();
        for (path, kind) in [
            ("/healthz", "healthz"),
            ("/livez", "livez"),
            ("/readyz", "readyz"),
        ] {
            let all = this.clone();
            let one = this.clone();
            router = router
                .route(
                    path,
                    get(move |Query(q): Query<HashMap<String, String>>| {
                        let all = all.clone();
                        async move { run(kind, all.checks(kind), &q, None).await }
                    }),
                )
                .route(
                    &format!("{path}/{{check}}"),
                    get(
                        move |Path(check): Path<String>,
                              Query(q): Query<HashMap<String, String>>| {
                            let one = one.clone();
                            async move { run(kind, one.checks(kind), &q, Some(&check)).await }
                        },
                    ),
                );
        }
        router
    }

    fn checks(&self, kind: &str) -> &[Check] {
        if kind == "livez" {
            &self.livez
        } else {
            &self.readyz
        }
    }
}
