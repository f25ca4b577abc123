//! The one kubeconfig loader of both servers, and their API clients.
//!
//! `--kubeconfig` (and checkpoint-apiserver's `--authentication-kubeconfig`,
//! `--authorization-kubeconfig`) name a file; without one, checkpoint-apiserver
//! infers the configuration as client-go does (`$KUBECONFIG`,
//! `~/.kube/config`, the in-cluster service account) and checkpoint-shim, like
//! the kubelet, uses the in-cluster service account when it runs in a pod.

use std::path::{Path, PathBuf};

/// Requests in flight to the API server at once (and so its connections, at
/// most): without a bound, a burst of checkpoints opens one HTTP/1.1
/// connection per concurrent call and keeps them all (seen: ~600 after 500
/// concurrent requests, memory growing past 64 MiB). client-go bounds its
/// clients too (QPS/burst); a queue here costs milliseconds.
pub const MAX_API_REQUESTS_IN_FLIGHT: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to load kubeconfig {path}: {reason}")]
    Kubeconfig { path: PathBuf, reason: String },
    #[error("failed to find a cluster configuration (give --kubeconfig): {0}")]
    Infer(String),
    #[error("failed to create a Kubernetes client: {0}")]
    Client(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where the configuration comes from when no file is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// client-go's inference: `$KUBECONFIG`, `~/.kube/config`, in-cluster.
    Infer,
    /// The in-cluster service account when in a pod, else none.
    InCluster,
}

/// The configuration from `path`, else from `fallback` (`Ok(None)`: none found
/// with [`Fallback::InCluster`]).
pub async fn load(path: Option<&Path>, fallback: Fallback) -> Result<Option<kube::Config>> {
    match (path, fallback) {
        (Some(p), _) => {
            let bad = |reason: String| Error::Kubeconfig {
                path: p.to_owned(),
                reason,
            };
            let kc = kube::config::Kubeconfig::read_from(p).map_err(|e| bad(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map(Some)
                .map_err(|e| bad(e.to_string()))
        }
        (None, Fallback::Infer) => kube::Config::infer()
            .await
            .map(Some)
            .map_err(|e| Error::Infer(e.to_string())),
        (None, Fallback::InCluster) => Ok(kube::Config::incluster().ok()),
    }
}

/// A client for `config`, with at most [`MAX_API_REQUESTS_IN_FLIGHT`]
/// requests in flight.
pub fn client(config: kube::Config) -> Result<kube::Client> {
    let builder =
        kube::client::ClientBuilder::try_from(config).map_err(|e| Error::Client(e.to_string()))?;
    Ok(builder
        .with_layer(&tower::limit::ConcurrencyLimitLayer::new(
            MAX_API_REQUESTS_IN_FLIGHT,
        ))
        .build())
}

/// The client of `path` when one is named, else `default`.
pub async fn client_or(
    path: Option<&Path>,
    default: Option<kube::Client>,
) -> Result<Option<kube::Client>> {
    match path {
        Some(p) => load(Some(p), Fallback::Infer)
            .await?
            .map(client)
            .transpose(),
        None => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_file_is_named() {
        let err = load(Some(Path::new("/nonexistent/kubeconfig")), Fallback::Infer)
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("failed to load kubeconfig /nonexistent/kubeconfig: "),
            "{err}"
        );
        assert!(
            client_or(None, None).await.unwrap().is_none(),
            "no file, no default: no client"
        );
    }
}
