//! Reading pods and nodes: a narrow trait ([`ClusterReader`]), its kube-rs
//! implementation and a fake beside it.

use std::collections::BTreeMap;
use std::sync::Mutex;

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

/// What checkpoint-apiserver reads from the cluster (cf. metrics-server's
/// narrow lister interfaces). `Ok(None)` is "not found".
pub trait ClusterReader: Send + Sync + std::fmt::Debug {
    fn get_pod<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Pod>>>;
    fn get_node<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Node>>>;
    /// Whether the API server answers (the `kube-apiserver` readiness check).
    fn ready(&self) -> BoxFuture<'_, Result<()>>;
}

/// Reads through kube-rs.
#[derive(Clone)]
pub struct KubeClusterReader {
    client: kube::Client,
}

impl std::fmt::Debug for KubeClusterReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeClusterReader").finish_non_exhaustive()
    }
}

impl KubeClusterReader {
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }
}

fn map_err(what: String, e: kube::Error) -> Error {
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

impl ClusterReader for KubeClusterReader {
    fn get_pod<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Pod>>> {
        Box::pin(async move {
            let api: kube::Api<Pod> = kube::Api::namespaced(self.client.clone(), namespace);
            api.get_opt(name)
                .await
                .map_err(|e| map_err(format!("pod {namespace}/{name}"), e))
        })
    }

    fn get_node<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Node>>> {
        Box::pin(async move {
            let api: kube::Api<Node> = kube::Api::all(self.client.clone());
            api.get_opt(name)
                .await
                .map_err(|e| map_err(format!("node {name}"), e))
        })
    }

    fn ready(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.client
                .apiserver_version()
                .await
                .map(|_| ())
                .map_err(|e| map_err("the API server version".into(), e))
        })
    }
}

/// A fake cluster: pods and nodes in maps, and an optional failure.
#[derive(Debug, Default)]
pub struct FakeClusterReader {
    pods: Mutex<BTreeMap<(String, String), Pod>>,
    nodes: Mutex<BTreeMap<String, Node>>,
    /// When set, every call fails as if the API server were unreachable.
    unreachable: Mutex<Option<String>>,
}

impl FakeClusterReader {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_pod(self, pod: Pod) -> Self {
        self.put_pod(pod);
        self
    }

    pub fn with_node(self, node: Node) -> Self {
        self.put_node(node);
        self
    }

    pub fn put_pod(&self, pod: Pod) {
        let key = (
            pod.metadata.namespace.clone().unwrap_or_default(),
            pod.metadata.name.clone().unwrap_or_default(),
        );
        if let Ok(mut pods) = self.pods.lock() {
            pods.insert(key, pod);
        }
    }

    pub fn put_node(&self, node: Node) {
        if let Ok(mut nodes) = self.nodes.lock() {
            nodes.insert(node.metadata.name.clone().unwrap_or_default(), node);
        }
    }

    pub fn set_unreachable(&self, reason: Option<&str>) {
        if let Ok(mut u) = self.unreachable.lock() {
            *u = reason.map(str::to_owned);
        }
    }

    fn check(&self, what: String) -> Result<()> {
        match self.unreachable.lock().ok().and_then(|u| u.clone()) {
            Some(reason) => Err(Error::Unreachable {
                what,
                source: reason.into(),
            }),
            None => Ok(()),
        }
    }
}

impl ClusterReader for FakeClusterReader {
    fn get_pod<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Pod>>> {
        let found = self.check(format!("pod {namespace}/{name}")).map(|()| {
            self.pods
                .lock()
                .ok()
                .and_then(|p| p.get(&(namespace.to_owned(), name.to_owned())).cloned())
        });
        Box::pin(async move { found })
    }

    fn get_node<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Node>>> {
        let found = self
            .check(format!("node {name}"))
            .map(|()| self.nodes.lock().ok().and_then(|n| n.get(name).cloned()));
        Box::pin(async move { found })
    }

    fn ready(&self) -> BoxFuture<'_, Result<()>> {
        let r = self.check("the API server version".into());
        Box::pin(async move { r })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock_api::{MockApi, Scenario};
    use crate::target::fixtures::{node, pod};

    #[tokio::test]
    async fn kube_reader_against_the_mock_api_server() {
        let mock = MockApi::new(vec![
            Scenario::Pod(pod("ns", "p", "n1", &["app"])),
            Scenario::Node(node("n1", &[("InternalIP", "10.0.0.1")], Some(10250))),
        ]);
        let reader = KubeClusterReader::new(mock.client());
        let p = reader.get_pod("ns", "p").await.unwrap().unwrap();
        assert_eq!(p.metadata.name.as_deref(), Some("p"));
        assert!(reader.get_pod("ns", "ghost").await.unwrap().is_none());
        assert!(reader.get_node("n1").await.unwrap().is_some());
        assert!(reader.get_node("n9").await.unwrap().is_none());
        reader.ready().await.unwrap();
        assert_eq!(
            mock.requests(),
            vec![
                "GET /api/v1/namespaces/ns/pods/p",
                "GET /api/v1/namespaces/ns/pods/ghost",
                "GET /api/v1/nodes/n1",
                "GET /api/v1/nodes/n9",
                "GET /version",
            ]
        );
    }

    #[tokio::test]
    async fn kube_reader_errors() {
        let mock = MockApi::new(vec![Scenario::ForbidReads]);
        let reader = KubeClusterReader::new(mock.client());
        let err = reader.get_pod("ns", "p").await.unwrap_err();
        assert!(matches!(err, Error::Api { code: 403, .. }), "{err:?}");
        assert_eq!(err.status().code, Some(500));
        assert!(
            err.to_string().starts_with("failed to read pod ns/p: "),
            "{err}"
        );

        let mock = MockApi::new(vec![Scenario::Unreachable]);
        let reader = KubeClusterReader::new(mock.client());
        let err = reader.get_node("n1").await.unwrap_err();
        assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
        assert_eq!(err.status().code, Some(503));
        assert!(reader.ready().await.is_err());
    }

    #[tokio::test]
    async fn fake_reader() {
        let fake = FakeClusterReader::new().with_pod(pod("ns", "p", "n1", &["app"]));
        assert!(fake.get_pod("ns", "p").await.unwrap().is_some());
        assert!(fake.get_pod("other", "p").await.unwrap().is_none());
        fake.set_unreachable(Some("connection refused"));
        let err = fake.get_pod("ns", "p").await.unwrap_err();
        assert_eq!(err.status().code, Some(503));
        assert!(fake.ready().await.is_err());
    }
}
