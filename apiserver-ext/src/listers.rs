//! Reading pods and nodes: narrow traits shaped like client-go's listers
//! (`k8s.io/client-go/listers/core/v1` `PodLister`/`NodeLister`, what
//! metrics-server reads through), answered live by kube-rs ([`KubeListers`];
//! a checkpoint needs the pod as it is now, not a cache), with fakes in
//! [`crate::testing`]. `Ok(None)` is "not found".

use api_types::PodCheckpoint;
use api_types::status;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server answered with an error other than 404 (e.g. our own RBAC).
    #[error("failed to read {what}: {message}")]
    Api {
        what: String,
        message: String,
        code: u16,
    },
    /// The API server could not be reached.
    #[error("failed to read {what}: the API server cannot be reached: {source}")]
    Unreachable {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    /// 500 when the API server refused us (a deployment problem), 503 when it is unreachable.
    pub fn status(&self) -> Status {
        match self {
            Error::Api { .. } => status::internal_error(self.to_string()),
            Error::Unreachable { .. } => status::service_unavailable(self.to_string()),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Pods by namespace and name (`PodLister.Pods(ns).Get(name)`).
pub trait PodLister: Send + Sync + std::fmt::Debug {
    fn get_pod<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Pod>>>;
}

/// Nodes by name (`NodeLister.Get(name)`).
pub trait NodeLister: Send + Sync + std::fmt::Debug {
    fn get_node<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Node>>>;
}

/// PodCheckpoints (`checkpoint.kcr.dev/v1alpha1`) by namespace and name,
/// as the generated lister of a custom resource reads them.
pub trait PodCheckpointLister: Send + Sync + std::fmt::Debug {
    fn get_pod_checkpoint<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<PodCheckpoint>>>;
}

/// The listers through kube-rs.
#[derive(Clone)]
pub struct KubeListers {
    client: kube::Client,
}

impl std::fmt::Debug for KubeListers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeListers").finish_non_exhaustive()
    }
}

impl KubeListers {
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }
}

/// What a failed read says: the API server's own answer, or that it cannot be reached.
pub fn read_error(what: String, e: kube::Error) -> Error {
    match e {
        kube::Error::Api(s) => Error::Api {
            what,
            message: s.message.clone(),
            code: s.code,
        },
        other => Error::Unreachable {
            what,
            source: Box::new(other),
        },
    }
}

impl PodLister for KubeListers {
    fn get_pod<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Pod>>> {
        Box::pin(async move {
            let api: kube::Api<Pod> = kube::Api::namespaced(self.client.clone(), namespace);
            api.get_opt(name)
                .await
                .map_err(|e| read_error(format!("pod {namespace}/{name}"), e))
        })
    }
}

impl NodeLister for KubeListers {
    fn get_node<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Node>>> {
        Box::pin(async move {
            let api: kube::Api<Node> = kube::Api::all(self.client.clone());
            api.get_opt(name)
                .await
                .map_err(|e| read_error(format!("node {name}"), e))
        })
    }
}

impl PodCheckpointLister for KubeListers {
    fn get_pod_checkpoint<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<PodCheckpoint>>> {
        Box::pin(async move {
            let api: kube::Api<PodCheckpoint> =
                kube::Api::namespaced(self.client.clone(), namespace);
            api.get_opt(name)
                .await
                .map_err(|e| read_error(format!("podcheckpoint {namespace}/{name}"), e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kcr_testkit::fixtures::{node, running_pod};
    use kcr_testkit::mock_api::{MockApi, Scenario};

    #[tokio::test]
    async fn kube_listers_against_the_mock_api_server() {
        let mock = MockApi::new(vec![
            Scenario::object(&running_pod("ns", "p", "n1", &["app"])),
            Scenario::object(&node("n1", &[("InternalIP", "10.0.0.1")], Some(10250))),
        ]);
        let listers = KubeListers::new(mock.client());
        let p = listers.get_pod("ns", "p").await.unwrap().unwrap();
        assert_eq!(p.metadata.name.as_deref(), Some("p"));
        assert!(listers.get_pod("ns", "ghost").await.unwrap().is_none());
        assert!(listers.get_node("n1").await.unwrap().is_some());
        assert!(listers.get_node("n9").await.unwrap().is_none());
        assert_eq!(
            mock.request_lines(),
            vec![
                "GET /api/v1/namespaces/ns/pods/p",
                "GET /api/v1/namespaces/ns/pods/ghost",
                "GET /api/v1/nodes/n1",
                "GET /api/v1/nodes/n9",
            ]
        );
    }

    #[tokio::test]
    async fn kube_listers_errors() {
        let mock = MockApi::new(vec![Scenario::ForbidReads]);
        let listers = KubeListers::new(mock.client());
        let err = listers.get_pod("ns", "p").await.unwrap_err();
        assert!(matches!(err, Error::Api { code: 403, .. }), "{err:?}");
        assert_eq!(err.status().code, Some(500));
        assert!(
            err.to_string().starts_with("failed to read pod ns/p: "),
            "{err}"
        );

        let mock = MockApi::new(vec![Scenario::Unreachable]);
        let listers = KubeListers::new(mock.client());
        let err = listers.get_node("n1").await.unwrap_err();
        assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
        assert_eq!(err.status().code, Some(503));
    }
}
