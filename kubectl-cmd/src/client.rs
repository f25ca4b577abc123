//! The remote calls of the command, behind narrow traits "for test stubbing"
//! (as upstream `k8s.io/kubectl/pkg/cmd/exec` puts its `RemoteExecutor`
//! behind an interface): [`PodClient`] for lookups and discovery,
//! [`Checkpointer`] for the checkpoint itself, [`PodCheckpoints`] for the
//! declarative `PodCheckpoint` objects, [`AccessReviewer`] for
//! SelfSubjectAccessReviews. [`KubeClient`] implements them
//! over kube-rs's [`kube::Client`], so authentication, TLS and impersonation
//! come from the kubeconfig; `fake::FakeClient` beside it serves the unit tests.

use std::future::Future;
use std::time::Duration;

use api_types::ContainerCheckpoint;
use api_types::podcheckpoint::{self, PodCheckpoint};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt, future};
use http::{Method, Request, header};
use http_body_util::{BodyExt, Limited};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, ReplicationController, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroupList, APIResourceList, LabelSelector,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::diskcache::{self, DiskCache};
use crate::resource::ResourceKind;

/// Largest response body read from the server.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// A failure answer of the API server (a `metav1.Status`, or a bare HTTP code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    pub code: u16,
    /// `reason` of the Status (`NotFound`, `Forbidden`, ...), possibly empty.
    pub reason: String,
    pub message: String,
}

impl ServerError {
    /// Read a non-2xx answer the way client-go does: a `Status` body is taken
    /// as is; anything else becomes the generic message for its code
    /// (`errors.NewGenericServerResponse`).
    pub fn from_response(code: u16, body: &[u8]) -> Self {
        if let Some(status) = api_types::status::parse(body) {
            let (reason, generic) = generic_for_code(code, body);
            let message = status.message.filter(|m| !m.is_empty()).unwrap_or(generic);
            let code = status
                .code
                .and_then(|c| u16::try_from(c).ok())
                .filter(|c| *c != 0)
                .unwrap_or(code);
            return Self {
                code,
                reason: status.reason.filter(|r| !r.is_empty()).unwrap_or(reason),
                message,
            };
        }
        let (reason, message) = generic_for_code(code, body);
        Self {
            code,
            reason,
            message,
        }
    }
}

/// client-go's `NewGenericServerResponse`: reason and message for a code
/// whose body is not a Status.
fn generic_for_code(code: u16, body: &[u8]) -> (String, String) {
    let (reason, message) = match code {
        400 => ("BadRequest", "the server rejected our request for an unknown reason".to_owned()),
        401 => ("Unauthorized", "the server has asked for the client to provide credentials".to_owned()),
        403 => ("Forbidden", "the server does not allow access to the requested resource".to_owned()),
        404 => ("NotFound", "the server could not find the requested resource".to_owned()),
        405 => ("MethodNotAllowed", "the server does not allow this method on the requested resource".to_owned()),
        409 => ("Conflict", "the server reported a conflict".to_owned()),
        422 => ("Invalid", "the server rejected our request due to an error in our request".to_owned()),
        429 => (
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later".to_owned(),
        ),
        503 => ("ServiceUnavailable", "the server is currently unable to handle the request".to_owned()),
        504 => (
            "Timeout",
            "the server was unable to return a response in the time allotted, but may still be processing the request"
                .to_owned(),
        ),
        _ if code >= 500 => {
            let text: String = String::from_utf8_lossy(body).trim().chars().take(256).collect();
            ("InternalError", format!("an error on the server ({text:?}) has prevented the request from succeeding"))
        }
        _ => ("", format!("the server responded with HTTP {code}")),
    };
    (reason.to_owned(), message)
}

/// What can go wrong talking to the API server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a failure.
    #[error("{}", .0.message)]
    Server(ServerError),
    /// Nothing listens at the server's address (kubectl's wording).
    #[error(
        "The connection to the server {host} was refused - did you specify the right host or port?"
    )]
    ConnectionRefused { host: String },
    /// Any other transport failure (DNS, TLS, reset).
    #[error("Unable to connect to the server: {message}")]
    Unreachable { message: String },
    /// No answer within the deadline.
    #[error("no answer from the server within {}", api_types::duration::format_go_duration(*.0))]
    TimedOut(Duration),
    /// The answer was not the JSON expected.
    #[error("failed to decode the server's answer to {path}: {source}")]
    Decode {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    /// The answer body was larger than [`MAX_BODY_BYTES`] or broke off.
    #[error("failed to read the server's answer to {path}: {message}")]
    Body { path: String, message: String },
    /// The client could not be built from the configuration.
    #[error("failed to create the API client: {0}")]
    Build(#[source] kube::Error),
    #[error("failed to build request for {path}")]
    Request {
        path: String,
        #[source]
        source: http::Error,
    },
}

impl ClientError {
    /// The server's answer, when the failure is one.
    pub fn server(&self) -> Option<&ServerError> {
        match self {
            ClientError::Server(s) => Some(s),
            _ => None,
        }
    }

    /// The server answered 403 Forbidden.
    pub fn is_forbidden(&self) -> bool {
        self.server().is_some_and(|s| s.code == 403)
    }
}

/// Reads from the API server: the pod and workloads, names for
/// completion, and discovery documents.
pub trait PodClient {
    /// `GET /api/v1/namespaces/{ns}/pods/{name}`
    fn get_pod(&self, namespace: &str, name: &str) -> impl Future<Output = Result<Pod>> + Send;
    /// `GET /api/v1/namespaces/{ns}/pods?labelSelector=...`
    fn list_pods(
        &self,
        namespace: &str,
        label_selector: &str,
    ) -> impl Future<Output = Result<Vec<Pod>>> + Send;
    /// The pod selector of a workload (deployment, service, ...).
    fn selector_of(
        &self,
        namespace: &str,
        kind: ResourceKind,
        name: &str,
    ) -> impl Future<Output = Result<Option<LabelSelector>>> + Send;
    /// Names of the objects of a kind in a namespace (for completion).
    fn list_names(
        &self,
        namespace: &str,
        kind: ResourceKind,
    ) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// Names of the namespaces (for completion).
    fn list_namespaces(&self) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// `GET /api/v1`
    fn core_v1_resources(&self) -> impl Future<Output = Result<APIResourceList>> + Send;
    /// `GET /apis`
    fn api_groups(&self) -> impl Future<Output = Result<APIGroupList>> + Send;
    /// `GET /apis/{group_version}`
    fn api_resources(
        &self,
        group_version: &str,
    ) -> impl Future<Output = Result<APIResourceList>> + Send;
    /// Whether every discovery document read so far came from the server
    /// in this run (client-go's `CachedDiscoveryInterface.Fresh`): when not,
    /// a "not served" may be a stale cache, worth one retry after
    /// [`PodClient::invalidate_discovery`].
    fn discovery_fresh(&self) -> bool {
        true
    }
    /// Read discovery from the server from now on (`Invalidate`).
    fn invalidate_discovery(&self) {}
}

/// Whether the caller may do something: what `kubectl auth can-i` asks
/// (`k8s.io/kubectl/pkg/cmd/auth/cani.go`).
pub trait AccessReviewer {
    /// `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`: whether
    /// the server allows the caller these attributes.
    fn can_i(&self, attributes: ResourceAttributes) -> impl Future<Output = Result<bool>> + Send;
}

/// The checkpoint call.
pub trait Checkpointer {
    /// `POST {path_and_query}` with no body, waiting at most `wait` for the answer.
    fn checkpoint(
        &self,
        path_and_query: &str,
        wait: Duration,
    ) -> impl Future<Output = Result<ContainerCheckpoint>> + Send;
}

/// One range's bytes as the server sends them.
pub struct RangeBody {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// The archive's size.
    pub size: u64,
    pub chunks: BoxStream<'static, Result<Bytes, String>>,
}

impl std::fmt::Debug for RangeBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeBody")
            .field("start", &self.start)
            .field("end", &self.end)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// The reads a download makes, behind a trait for test stubbing.
pub trait ArchiveSource {
    /// `GET` the PodCheckpoint (`checkpoint.kcr.dev/v1alpha1`).
    fn get_pod_checkpoint(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<PodCheckpoint>> + Send;

    /// `GET .../podcheckpoints/NAME/archive?container=C&offset=O&length=L`.
    fn read_range(
        &self,
        namespace: &str,
        name: &str,
        container: &str,
        offset: u64,
        length: u64,
    ) -> impl Future<Output = Result<RangeBody>> + Send;
}

/// `PodCheckpoint` objects (`checkpoint.kcr.dev/v1alpha1`): what the
/// declarative path does with them.
pub trait PodCheckpoints {
    /// `POST /apis/checkpoint.kcr.dev/v1alpha1/namespaces/{ns}/podcheckpoints`
    fn create_pod_checkpoint(
        &self,
        namespace: &str,
        object: &PodCheckpoint,
    ) -> impl Future<Output = Result<PodCheckpoint>> + Send;
    /// The object named `name` as it changes: `Some` on every change (the
    /// first is its state when the watch starts), `None` when it is deleted
    /// (or gone). Errors come as items; the stream goes on after them
    /// (after a backoff), so the caller decides which ones end the wait.
    fn watch_pod_checkpoint(
        &self,
        namespace: &str,
        name: &str,
    ) -> BoxStream<'static, Result<Option<PodCheckpoint>>>;
    /// `DELETE .../podcheckpoints/{name}` with preconditions on the `uid`
    /// and `resourceVersion` seen last: 409 Conflict if it changed since
    /// (an agent may just have claimed it).
    fn delete_pod_checkpoint(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        resource_version: &str,
    ) -> impl Future<Output = Result<()>> + Send;
}

#[derive(Deserialize)]
#[serde(bound = "T: DeserializeOwned")]
struct Items<T> {
    #[serde(default = "Vec::new")]
    items: Vec<T>,
}

#[derive(Deserialize)]
struct Named {
    metadata: NamedMeta,
}

#[derive(Deserialize)]
struct NamedMeta {
    #[serde(default)]
    name: String,
}

/// [`PodClient`], [`Checkpointer`], [`PodCheckpoints`] and [`AccessReviewer`]
/// over a [`kube::Client`].
///
/// One client, so one connection: HTTP/2 when the server offers it (ALPN,
/// as kube-apiserver does), so that concurrent requests share one TLS
/// connection as client-go's do; discovery documents come from kubectl's
/// disk cache ([`crate::diskcache`]) when one is given.
#[derive(Clone)]
pub struct KubeClient {
    client: kube::Client,
    /// Archive ranges ([`ArchiveSource::read_range`]): HTTP/1.1 only, so each
    /// range in flight has a TLS connection of its own. On the one HTTP/2
    /// connection every range's bytes are decrypted on one core and framed
    /// by the server; apart, the connections spread over the cores (on the
    /// local stack: 16 % less CPU in the stand-in, 13 % less time per GiB).
    /// Built on the first range, from `config`: only downloads pay for it.
    ranges: std::sync::Arc<tokio::sync::OnceCell<kube::Client>>,
    config: kube::Config,
    /// `host:port` of the server, for kubectl's connection messages.
    server: String,
    /// `--request-timeout`: the deadline of every lookup request.
    request_timeout: Option<Duration>,
    discovery: Option<std::sync::Arc<DiskCache>>,
}

impl std::fmt::Debug for KubeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeClient")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl KubeClient {
    /// Build the client from a loaded configuration, without a discovery cache.
    pub fn new(config: kube::Config, request_timeout: Option<Duration>) -> Result<Self> {
        let server = server_host(&config.cluster_url);
        let client = build_client(config.clone(), Protocols::Any).map_err(ClientError::Build)?;
        Ok(Self {
            client,
            ranges: std::sync::Arc::default(),
            config,
            server,
            request_timeout,
            discovery: None,
        })
    }

    /// Read and write discovery documents through `cache_dir` (kubectl's
    /// `~/.kube/cache`): `cache_dir/discovery/<host_port>/`.
    pub fn with_discovery_cache(mut self, cache_dir: &std::path::Path, cluster_url: &str) -> Self {
        self.discovery = Some(std::sync::Arc::new(DiskCache::for_server(
            cache_dir,
            cluster_url.trim_end_matches('/'),
        )));
        self
    }

    /// A discovery document: from the cache when it holds a valid one,
    /// else from the server (and kept when it lists something).
    async fn discovery<T: DeserializeOwned>(
        &self,
        path: &str,
        file: &std::path::Path,
        listed: impl Fn(&T) -> bool,
    ) -> Result<T> {
        if let Some(cache) = &self.discovery
            && let Some(bytes) = cache.get(file)
            && let Ok(doc) = serde_json::from_slice::<T>(&bytes)
        {
            return Ok(doc);
        }
        let body = self
            .call(Method::GET, path, None, self.request_timeout)
            .await?;
        let doc: T = decode(path, &body)?;
        if let Some(cache) = &self.discovery
            && listed(&doc)
        {
            cache.put(file, &body);
        }
        Ok(doc)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        deadline: Option<Duration>,
    ) -> Result<Bytes> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::ACCEPT, "application/json");
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(body.map_or_else(kube::client::Body::empty, kube::client::Body::from))
            .map_err(|source| ClientError::Request {
                path: path.to_owned(),
                source,
            })?;
        let exchange = async {
            let response = self
                .client
                .send(request)
                .await
                .map_err(|e| transport_error(&e, &self.server))?;
            let code = response.status().as_u16();
            let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|e| ClientError::Body {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?
                .to_bytes();
            if (200..300).contains(&code) {
                Ok(body)
            } else {
                tracing::debug!(code, path, "request failed");
                Err(ClientError::Server(ServerError::from_response(code, &body)))
            }
        };
        match deadline {
            Some(d) if !d.is_zero() => tokio::time::timeout(d, exchange)
                .await
                .map_err(|_| ClientError::TimedOut(d))?,
            _ => exchange.await,
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let body = self
            .call(Method::GET, path, None, self.request_timeout)
            .await?;
        decode(path, &body)
    }

    async fn names(&self, path: &str) -> Result<Vec<String>> {
        let list: Items<Named> = self.get(path).await?;
        Ok(list
            .items
            .into_iter()
            .map(|n| n.metadata.name)
            .filter(|n| !n.is_empty())
            .collect())
    }
}

/// The HTTP versions a client's connections offer (ALPN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocols {
    /// HTTP/2 when the server offers it, else HTTP/1.1.
    Any,
    /// HTTP/1.1: one TLS connection per concurrent request.
    Http1,
}

/// kube-rs's client stack (`kube::client::ClientBuilder::try_from`) with a
/// connector that offers HTTP/2 as well as HTTP/1.1 ([`Protocols::Any`]):
/// kube's own offers only HTTP/1.1, which opens one TLS connection per
/// concurrent request.
fn build_client(
    config: kube::Config,
    protocols: Protocols,
) -> std::result::Result<kube::Client, kube::Error> {
    use hyper_util::client::legacy::connect::HttpConnector;
    use kube::client::ConfigExt;
    use tower::ServiceBuilder;

    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(config.connect_timeout);
    let tls = config.rustls_client_config()?;
    let mut https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    if let Some(name) = &config.tls_server_name {
        let name = rustls_pki_types::ServerName::try_from(name.clone()).map_err(|e| {
            kube::Error::Service(format!("invalid tls-server-name {name:?}: {e}").into())
        })?;
        https = https.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
    }
    let https = match protocols {
        Protocols::Any => https.enable_all_versions().wrap_connector(http),
        Protocols::Http1 => https.enable_http1().wrap_connector(http),
    };
    let hyper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, kube::client::Body>(https);
    let retry = config
        .default_retry
        .then(|| tower::retry::RetryLayer::new(kube::client::retry::RetryPolicy::server_retry()));
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(retry)
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(tower::BoxError::from)
        .service(hyper);
    Ok(kube::Client::new(service, config.default_namespace))
}

fn decode<T: DeserializeOwned>(path: &str, body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|source| ClientError::Decode {
        path: path.to_owned(),
        source,
    })
}

/// `host:port` of a cluster URL, with the scheme's default port.
fn server_host(url: &http::Uri) -> String {
    let host = url.host().unwrap_or("localhost");
    let port = url
        .port_u16()
        .unwrap_or(if url.scheme_str() == Some("http") {
            80
        } else {
            443
        });
    format!("{host}:{port}")
}

/// Turn a kube transport error into kubectl's wording.
fn transport_error(err: &kube::Error, server: &str) -> ClientError {
    if let kube::Error::Api(status) = err {
        return ClientError::Server(ServerError {
            code: status.code,
            reason: status.reason.clone(),
            message: status.message.clone(),
        });
    }
    let mut messages: Vec<String> = Vec::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return ClientError::ConnectionRefused {
                host: server.to_owned(),
            };
        }
        let text = e.to_string();
        if !messages.iter().any(|m| m.contains(&text)) {
            messages.push(text);
        }
        source = e.source();
    }
    ClientError::Unreachable {
        message: messages.last().cloned().unwrap_or_default(),
    }
}

/// How long a range's answer may take to start when `--request-timeout` is unset.
pub const RANGE_ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

impl ArchiveSource for KubeClient {
    async fn get_pod_checkpoint(&self, namespace: &str, name: &str) -> Result<PodCheckpoint> {
        self.get(&format!(
            "{}/{name}",
            podcheckpoint::collection_path(namespace)
        ))
        .await
    }

    /// The range's answer as it streams: the status line and headers within
    /// `--request-timeout` (60 s when unset), the bytes as they come.
    async fn read_range(
        &self,
        namespace: &str,
        name: &str,
        container: &str,
        offset: u64,
        length: u64,
    ) -> Result<RangeBody> {
        use api_types::download::{ArchiveQuery, archive_path, parse_content_range};
        let query = ArchiveQuery {
            container: container.to_owned(),
            offset,
            length: Some(length),
            ..ArchiveQuery::default()
        };
        let base = archive_path(namespace, name);
        let path = format!("{base}?{}", query.to_query());
        let request = Request::builder()
            .method(Method::GET)
            .uri(&path)
            .header(header::ACCEPT, "application/octet-stream, application/json")
            .body(kube::client::Body::empty())
            .map_err(|source| ClientError::Request {
                path: path.clone(),
                source,
            })?;
        let deadline = self
            .request_timeout
            .filter(|d| !d.is_zero())
            .unwrap_or(RANGE_ANSWER_TIMEOUT);
        let ranges = self
            .ranges
            .get_or_try_init(|| async {
                build_client(self.config.clone(), Protocols::Http1).map_err(ClientError::Build)
            })
            .await?;
        let response = tokio::time::timeout(deadline, ranges.send(request))
            .await
            .map_err(|_| ClientError::TimedOut(deadline))?
            .map_err(|e| transport_error(&e, &self.server))?;
        let code = response.status().as_u16();
        if code != 200 {
            let body = tokio::time::timeout(
                deadline,
                Limited::new(response.into_body(), MAX_BODY_BYTES).collect(),
            )
            .await
            .map_err(|_| ClientError::TimedOut(deadline))?
            .map_err(|e| ClientError::Body {
                path: base.clone(),
                message: e.to_string(),
            })?
            .to_bytes();
            return Err(ClientError::Server(ServerError::from_response(code, &body)));
        }
        let (start, end, size) = response
            .headers()
            .get(header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_content_range)
            .ok_or_else(|| ClientError::Body {
                path: base.clone(),
                message: "the answer has no valid Content-Range".into(),
            })?;
        let chunks = response
            .into_body()
            .into_data_stream()
            .map_err(|e| e.to_string())
            .boxed();
        Ok(RangeBody {
            start,
            end,
            size,
            chunks,
        })
    }
}

/// The `labelSelector` query of a pod list, encoded as client-go encodes it.
pub fn pods_path(namespace: &str, label_selector: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("labelSelector", label_selector)
        .finish();
    format!("/api/v1/namespaces/{namespace}/pods?{query}")
}

fn label_selector_of_map(
    map: Option<std::collections::BTreeMap<String, String>>,
) -> Option<LabelSelector> {
    map.filter(|m| !m.is_empty()).map(|m| LabelSelector {
        match_labels: Some(m),
        match_expressions: None,
    })
}

impl PodClient for KubeClient {
    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Pod> {
        self.get(&format!(
            "{}/{name}",
            ResourceKind::Pod.collection_path(namespace)
        ))
        .await
    }

    async fn list_pods(&self, namespace: &str, label_selector: &str) -> Result<Vec<Pod>> {
        let list: Items<Pod> = self.get(&pods_path(namespace, label_selector)).await?;
        Ok(list.items)
    }

    async fn selector_of(
        &self,
        namespace: &str,
        kind: ResourceKind,
        name: &str,
    ) -> Result<Option<LabelSelector>> {
        let path = format!("{}/{name}", kind.collection_path(namespace));
        Ok(match kind {
            ResourceKind::Pod => None,
            ResourceKind::Deployment => self
                .get::<Deployment>(&path)
                .await?
                .spec
                .map(|s| s.selector),
            ResourceKind::StatefulSet => self
                .get::<StatefulSet>(&path)
                .await?
                .spec
                .map(|s| s.selector),
            ResourceKind::DaemonSet => self.get::<DaemonSet>(&path).await?.spec.map(|s| s.selector),
            ResourceKind::ReplicaSet => self
                .get::<ReplicaSet>(&path)
                .await?
                .spec
                .map(|s| s.selector),
            ResourceKind::Job => self.get::<Job>(&path).await?.spec.and_then(|s| s.selector),
            ResourceKind::Service => label_selector_of_map(
                self.get::<Service>(&path)
                    .await?
                    .spec
                    .and_then(|s| s.selector),
            ),
            ResourceKind::ReplicationController => label_selector_of_map(
                self.get::<ReplicationController>(&path)
                    .await?
                    .spec
                    .and_then(|s| s.selector),
            ),
        })
    }

    async fn list_names(&self, namespace: &str, kind: ResourceKind) -> Result<Vec<String>> {
        self.names(&kind.collection_path(namespace)).await
    }

    async fn list_namespaces(&self) -> Result<Vec<String>> {
        self.names("/api/v1/namespaces").await
    }

    async fn core_v1_resources(&self) -> Result<APIResourceList> {
        self.discovery(
            "/api/v1",
            &diskcache::server_resources("v1"),
            |l: &APIResourceList| !l.resources.is_empty(),
        )
        .await
    }

    async fn api_groups(&self) -> Result<APIGroupList> {
        self.discovery(
            "/apis",
            std::path::Path::new(diskcache::SERVER_GROUPS),
            |l: &APIGroupList| !l.groups.is_empty(),
        )
        .await
    }

    async fn api_resources(&self, group_version: &str) -> Result<APIResourceList> {
        self.discovery(
            &format!("/apis/{group_version}"),
            &diskcache::server_resources(group_version),
            |l: &APIResourceList| !l.resources.is_empty(),
        )
        .await
    }

    fn discovery_fresh(&self) -> bool {
        self.discovery.as_ref().is_none_or(|c| c.fresh())
    }

    fn invalidate_discovery(&self) {
        if let Some(cache) = &self.discovery {
            tracing::debug!(dir = %cache.dir().display(), "invalidating the discovery cache");
            cache.invalidate();
        }
    }
}

impl AccessReviewer for KubeClient {
    async fn can_i(&self, attributes: ResourceAttributes) -> Result<bool> {
        const PATH: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(attributes),
                ..Default::default()
            },
            ..Default::default()
        };
        let body = serde_json::to_vec(&review).map_err(|source| ClientError::Decode {
            path: PATH.to_owned(),
            source,
        })?;
        let answer = self
            .call(Method::POST, PATH, Some(body), self.request_timeout)
            .await?;
        let review: SelfSubjectAccessReview = decode(PATH, &answer)?;
        Ok(review.status.is_some_and(|s| s.allowed))
    }
}

impl Checkpointer for KubeClient {
    async fn checkpoint(
        &self,
        path_and_query: &str,
        wait: Duration,
    ) -> Result<ContainerCheckpoint> {
        let body = self
            .call(Method::POST, path_and_query, None, Some(wait))
            .await?;
        decode(path_and_query, &body)
    }
}

/// Longest `timeoutSeconds` of one watch request (kube-rs refuses 295 s or more).
const MAX_WATCH_SECONDS: u64 = 290;

impl PodCheckpoints for KubeClient {
    async fn create_pod_checkpoint(
        &self,
        namespace: &str,
        object: &PodCheckpoint,
    ) -> Result<PodCheckpoint> {
        let path = podcheckpoint::collection_path(namespace);
        let body = serde_json::to_vec(object).map_err(|source| ClientError::Decode {
            path: path.clone(),
            source,
        })?;
        let answer = self
            .call(Method::POST, &path, Some(body), self.request_timeout)
            .await?;
        decode(&path, &answer)
    }

    /// kube-rs's `watcher` (LIST, then WATCH from its resourceVersion,
    /// resumed after the server ends it), narrowed by `metadata.name`, with
    /// kube-rs's default backoff after errors. `--request-timeout` bounds
    /// each watch request: it becomes the watch's `timeoutSeconds`.
    fn watch_pod_checkpoint(
        &self,
        namespace: &str,
        name: &str,
    ) -> BoxStream<'static, Result<Option<PodCheckpoint>>> {
        use kube::runtime::{WatchStreamExt, watcher};

        let api: kube::Api<PodCheckpoint> = kube::Api::namespaced(self.client.clone(), namespace);
        let mut config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        if let Some(t) = self.request_timeout {
            let seconds = t.as_secs().clamp(1, MAX_WATCH_SECONDS);
            config = config.timeout(u32::try_from(seconds).unwrap_or(1));
        }
        let server = self.server.clone();
        // As kube::runtime::watch_object: an object missing from a fresh
        // list is gone.
        watcher(api, config)
            .default_backoff()
            .scan(false, |seen, event| {
                match &event {
                    Ok(watcher::Event::Init) => *seen = false,
                    Ok(watcher::Event::InitApply(_)) => *seen = true,
                    _ => {}
                }
                future::ready(Some((*seen, event)))
            })
            .filter_map(move |(seen, event)| {
                let item = match event {
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                        Some(Ok(Some(o)))
                    }
                    Ok(watcher::Event::Delete(_)) => Some(Ok(None)),
                    Ok(watcher::Event::InitDone) if !seen => Some(Ok(None)),
                    Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
                    Err(e) => Some(Err(watch_error(e, &server))),
                };
                future::ready(item)
            })
            .boxed()
    }

    async fn delete_pod_checkpoint(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        resource_version: &str,
    ) -> Result<()> {
        let path = format!("{}/{name}", podcheckpoint::collection_path(namespace));
        let options = serde_json::json!({
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "preconditions": {"uid": uid, "resourceVersion": resource_version},
        });
        let body = serde_json::to_vec(&options).map_err(|source| ClientError::Decode {
            path: path.clone(),
            source,
        })?;
        self.call(Method::DELETE, &path, Some(body), self.request_timeout)
            .await
            .map(|_| ())
    }
}

/// A watcher's error in this module's terms.
fn watch_error(e: kube::runtime::watcher::Error, server: &str) -> ClientError {
    use kube::runtime::watcher::Error;
    match e {
        Error::InitialListFailed(e) | Error::WatchStartFailed(e) | Error::WatchFailed(e) => {
            transport_error(&e, server)
        }
        Error::WatchError(status) => ClientError::Server(ServerError {
            code: status.code,
            reason: status.reason.clone(),
            message: status.message.clone(),
        }),
        other => ClientError::Unreachable {
            message: other.to_string(),
        },
    }
}

/// kubectl's rendering of a failed API call (`cmdutil.CheckErr`): server
/// errors as `Error from server (Reason): message`, connection failures in
/// kubectl's words.
pub fn render_client_error(e: &ClientError) -> String {
    match e {
        ClientError::Server(s) if s.code == 401 => {
            format!("error: You must be logged in to the server ({})", s.message)
        }
        ClientError::Server(s) if s.reason.is_empty() => {
            format!("Error from server: {}", s.message)
        }
        ClientError::Server(s) => format!("Error from server ({}): {}", s.reason, s.message),
        ClientError::ConnectionRefused { .. } | ClientError::Unreachable { .. } => e.to_string(),
        other => format!("error: {}", chain(other)),
    }
}

/// An error and its causes, `: `-joined.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
pub mod fake {
    //! An in-memory [`PodClient`] + [`Checkpointer`] for unit tests.

    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;

    /// Pods, workload selectors and discovery documents held in memory; every
    /// call is recorded.
    #[derive(Debug, Default)]
    pub struct FakeClient {
        pub pods: Vec<Pod>,
        pub selectors: BTreeMap<(ResourceKind, String), LabelSelector>,
        pub core: APIResourceList,
        pub groups: APIGroupList,
        pub resources: BTreeMap<String, APIResourceList>,
        /// Answer of the checkpoint call.
        pub checkpoint_answer: Option<std::result::Result<ContainerCheckpoint, ServerError>>,
        /// Calls whose record starts with one of these answer 403 (`get pod`,
        /// `list pods`, `get deployments.apps`).
        pub forbidden: Vec<String>,
        /// What `can_i` denies, as recorded without `can-i ` (`create
        /// pods.subresources.checkpoint.kcr.dev/checkpoint`, `list pods`).
        pub cannot: Vec<String>,
        /// `can_i` fails (the review itself is refused).
        pub reviews_fail: bool,
        /// What the watch of a PodCheckpoint yields: each item after its
        /// delay; then nothing more (the stream stays open).
        pub watch_script: Vec<(
            Duration,
            std::result::Result<Option<PodCheckpoint>, ServerError>,
        )>,
        /// Answers of the PodCheckpoint deletes, in turn; then `Ok`.
        pub delete_answers: Mutex<std::collections::VecDeque<std::result::Result<(), ServerError>>>,
        pub calls: Mutex<Vec<String>>,
    }

    /// The suffix the fake server gives generated names.
    pub const GENERATED_SUFFIX: &str = "x7k2p";

    fn not_found(what: &str, name: &str) -> ClientError {
        ClientError::Server(ServerError {
            code: 404,
            reason: "NotFound".into(),
            message: format!("{what} \"{name}\" not found"),
        })
    }

    impl FakeClient {
        /// Record the call; 403 when it is forbidden.
        fn record(&self, call: String) -> Result<()> {
            let forbidden = self.forbidden.iter().any(|f| call.starts_with(f.as_str()));
            let error = forbidden.then(|| {
                ClientError::Server(ServerError {
                    code: 403,
                    reason: "Forbidden".into(),
                    message: format!("{call} is forbidden"),
                })
            });
            if let Ok(mut calls) = self.calls.lock() {
                calls.push(call);
            }
            error.map_or(Ok(()), Err)
        }

        pub fn calls(&self) -> Vec<String> {
            self.calls.lock().map(|c| c.clone()).unwrap_or_default()
        }

        fn pods_in<'a>(&'a self, namespace: &'a str) -> impl Iterator<Item = &'a Pod> + 'a {
            self.pods
                .iter()
                .filter(move |p| p.metadata.namespace.as_deref() == Some(namespace))
        }
    }

    /// Matches only `k=v,k2=v2` selectors, which is all the tests use.
    fn matches(pod: &Pod, selector: &str) -> bool {
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        selector
            .split(',')
            .filter(|s| !s.is_empty())
            .all(|req| match req.split_once('=') {
                Some((k, v)) => labels.get(k).map(String::as_str) == Some(v),
                None => false,
            })
    }

    impl PodClient for FakeClient {
        async fn get_pod(&self, namespace: &str, name: &str) -> Result<Pod> {
            self.record(format!("get pod {namespace}/{name}"))?;
            self.pods_in(namespace)
                .find(|p| p.metadata.name.as_deref() == Some(name))
                .cloned()
                .ok_or_else(|| not_found("pods", name))
        }

        async fn list_pods(&self, namespace: &str, label_selector: &str) -> Result<Vec<Pod>> {
            self.record(format!("list pods {namespace} {label_selector}"))?;
            Ok(self
                .pods_in(namespace)
                .filter(|p| matches(p, label_selector))
                .cloned()
                .collect())
        }

        async fn selector_of(
            &self,
            namespace: &str,
            kind: ResourceKind,
            name: &str,
        ) -> Result<Option<LabelSelector>> {
            self.record(format!("get {} {namespace}/{name}", kind.resource()))?;
            match self.selectors.get(&(kind, name.to_owned())) {
                Some(s) if s.match_labels.is_none() && s.match_expressions.is_none() => Ok(None),
                Some(s) => Ok(Some(s.clone())),
                None => Err(not_found(&kind.resource(), name)),
            }
        }

        async fn list_names(&self, namespace: &str, kind: ResourceKind) -> Result<Vec<String>> {
            self.record(format!("list {} {namespace}", kind.resource()))?;
            Ok(match kind {
                ResourceKind::Pod => self
                    .pods_in(namespace)
                    .filter_map(|p| p.metadata.name.clone())
                    .collect(),
                _ => self
                    .selectors
                    .keys()
                    .filter(|(k, _)| *k == kind)
                    .map(|(_, n)| n.clone())
                    .collect(),
            })
        }

        async fn list_namespaces(&self) -> Result<Vec<String>> {
            self.record("list namespaces".into())?;
            let mut ns: Vec<String> = self
                .pods
                .iter()
                .filter_map(|p| p.metadata.namespace.clone())
                .collect();
            ns.sort();
            ns.dedup();
            Ok(ns)
        }

        async fn core_v1_resources(&self) -> Result<APIResourceList> {
            self.record("get /api/v1".into())?;
            Ok(self.core.clone())
        }

        async fn api_groups(&self) -> Result<APIGroupList> {
            self.record("get /apis".into())?;
            Ok(self.groups.clone())
        }

        async fn api_resources(&self, group_version: &str) -> Result<APIResourceList> {
            self.record(format!("get /apis/{group_version}"))?;
            self.resources.get(group_version).cloned().ok_or_else(|| {
                ClientError::Server(ServerError {
                    code: 404,
                    reason: "NotFound".into(),
                    message: "the server could not find the requested resource".into(),
                })
            })
        }
    }

    impl AccessReviewer for FakeClient {
        async fn can_i(&self, a: ResourceAttributes) -> Result<bool> {
            let field = |v: &Option<String>| v.clone().unwrap_or_default();
            let mut what = format!("{} {}", field(&a.verb), field(&a.resource));
            if let Some(group) = a.group.as_ref().filter(|g| !g.is_empty()) {
                what.push('.');
                what.push_str(group);
            }
            if let Some(sub) = a.subresource.as_ref().filter(|s| !s.is_empty()) {
                what.push('/');
                what.push_str(sub);
            }
            self.record(format!("can-i {what} -n {}", field(&a.namespace)))?;
            if self.reviews_fail {
                return Err(ClientError::Unreachable {
                    message: "review refused".into(),
                });
            }
            Ok(!self.cannot.contains(&what))
        }
    }

    impl PodCheckpoints for FakeClient {
        async fn create_pod_checkpoint(
            &self,
            namespace: &str,
            object: &PodCheckpoint,
        ) -> Result<PodCheckpoint> {
            let body = serde_json::to_string(&object.spec).unwrap_or_default();
            self.record(format!("create podcheckpoints {namespace} {body}"))?;
            let mut created = object.clone();
            let meta = &mut created.metadata;
            meta.name = Some(format!(
                "{}{GENERATED_SUFFIX}",
                meta.generate_name.clone().unwrap_or_default()
            ));
            meta.namespace = Some(namespace.to_owned());
            meta.uid = Some("0c4f5b1e-uid".into());
            meta.resource_version = Some("1".into());
            Ok(created)
        }

        fn watch_pod_checkpoint(
            &self,
            namespace: &str,
            name: &str,
        ) -> BoxStream<'static, Result<Option<PodCheckpoint>>> {
            let _ = self.record(format!("watch podcheckpoints {namespace}/{name}"));
            let script = self.watch_script.clone();
            futures::stream::iter(script)
                .then(|(delay, item)| async move {
                    tokio::time::sleep(delay).await;
                    item.map_err(ClientError::Server)
                })
                .chain(futures::stream::pending())
                .boxed()
        }

        async fn delete_pod_checkpoint(
            &self,
            namespace: &str,
            name: &str,
            uid: &str,
            resource_version: &str,
        ) -> Result<()> {
            self.record(format!(
                "delete podcheckpoints {namespace}/{name} uid={uid} rv={resource_version}"
            ))?;
            let answer = self
                .delete_answers
                .lock()
                .ok()
                .and_then(|mut a| a.pop_front())
                .unwrap_or(Ok(()));
            answer.map_err(ClientError::Server)
        }
    }

    /// Archives are not served: the object path's `--download` is tested
    /// in `download.rs` against its own fake server.
    impl ArchiveSource for FakeClient {
        async fn get_pod_checkpoint(&self, namespace: &str, name: &str) -> Result<PodCheckpoint> {
            self.record(format!("get podcheckpoints {namespace}/{name}"))?;
            Err(not_found("podcheckpoints.checkpoint.kcr.dev", name))
        }

        async fn read_range(
            &self,
            namespace: &str,
            name: &str,
            container: &str,
            offset: u64,
            length: u64,
        ) -> Result<RangeBody> {
            self.record(format!(
                "get podcheckpoints/archive {namespace}/{name} container={container} offset={offset} length={length}"
            ))?;
            Err(not_found("podcheckpoints.checkpoint.kcr.dev", name))
        }
    }

    impl Checkpointer for FakeClient {
        async fn checkpoint(
            &self,
            path_and_query: &str,
            wait: Duration,
        ) -> Result<ContainerCheckpoint> {
            self.record(format!("post {path_and_query} wait={}s", wait.as_secs()))?;
            match &self.checkpoint_answer {
                Some(Ok(c)) => Ok(c.clone()),
                Some(Err(e)) => Err(ClientError::Server(e.clone())),
                None => Err(ClientError::TimedOut(wait)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_bodies_are_read_like_client_go() {
        let body =
            serde_json::to_vec(&api_types::status::pod_not_found("ghost")).unwrap_or_default();
        let e = ServerError::from_response(404, &body);
        assert_eq!(e.reason, "NotFound");
        assert_eq!(e.message, "pods \"ghost\" not found");

        let e = ServerError::from_response(503, b"service unavailable\n");
        assert_eq!(e.reason, "ServiceUnavailable");
        assert_eq!(
            e.message,
            "the server is currently unable to handle the request"
        );

        let e = ServerError::from_response(502, b"bad gateway");
        assert_eq!(e.reason, "InternalError");
        assert_eq!(
            e.message,
            "an error on the server (\"bad gateway\") has prevented the request from succeeding"
        );

        let e = ServerError::from_response(418, b"");
        assert_eq!(e.message, "the server responded with HTTP 418");

        // a Status without a message gets the generic one
        let e = ServerError::from_response(
            403,
            br#"{"kind":"Status","apiVersion":"v1","status":"Failure","code":403}"#,
        );
        assert_eq!(
            e.message,
            "the server does not allow access to the requested resource"
        );
        assert_eq!(e.reason, "Forbidden");
    }

    #[test]
    fn pod_list_query_is_encoded_like_client_go() {
        assert_eq!(
            pods_path("default", "app=web,tier in (a,b)"),
            "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb%2Ctier+in+%28a%2Cb%29"
        );
    }

    #[test]
    fn server_host_has_a_port() {
        assert_eq!(
            server_host(&"https://10.0.0.1".parse().unwrap()),
            "10.0.0.1:443"
        );
        assert_eq!(
            server_host(&"http://127.0.0.1:8080".parse().unwrap()),
            "127.0.0.1:8080"
        );
    }

    /// Lookups share the one HTTP/2 connection; archive ranges go over
    /// HTTP/1.1, a connection per range in flight.
    // Worker threads: the client's connections close (client dropped) while
    // the mock's drop waits for them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn archive_ranges_over_http1_lookups_over_http2() {
        let server = kcr_testkit::mock_api::MockApi::new([]).serve_tls().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = server
            .kube_config("alice", "alice-token", dir.path())
            .await
            .unwrap();
        let client = KubeClient::new(config, Some(Duration::from_secs(10))).unwrap();
        // The mock has neither: what counts is how each request came.
        assert!(client.get_pod_checkpoint("default", "pc").await.is_err());
        assert!(
            client
                .read_range("default", "pc", "app", 0, 16)
                .await
                .is_err()
        );
        drop(client);
        let seen: Vec<(String, String)> = server
            .requests()
            .iter()
            .map(|r| (r.line(), r.version.clone()))
            .collect();
        let object = "GET /apis/checkpoint.kcr.dev/v1alpha1/namespaces/default/podcheckpoints/pc";
        let range = "GET /apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/default/podcheckpoints/pc/archive?container=app&offset=0&length=16";
        assert_eq!(
            seen,
            [
                (object.to_owned(), "HTTP/2.0".to_owned()),
                (range.to_owned(), "HTTP/1.1".to_owned())
            ]
        );
    }
}
