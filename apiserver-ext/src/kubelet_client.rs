//! Calling a node's checkpoint endpoint: `POST
//! https://ADDR:PORT/checkpoint/{ns}/{pod}/{container}?timeout=S` on the
//! kubelet (KEP-2008) or checkpoint-shim, behind a narrow trait
//! ([`KubeletClient`], metrics-server's `KubeletInterface`,
//! `pkg/scraper/client/interface.go`) with a fake in [`crate::testing`].
//! The address and port come from the Node as kube-apiserver's
//! `NodeConnectionInfoGetter` finds them (`pkg/kubelet/client/kubelet_client.go`,
//! `GetPreferredNodeAddress` of `pkg/util/node`); the node's answers become
//! Statuses that name the node.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use api_types::{CheckpointResponse, ContainerRef, status};
use apiserver_lib::logging::error_chain;
use apiserver_lib::tls::{self, ServerTrust, ServingCert};
use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;

/// The kubelet's port when the node does not publish one.
pub const DEFAULT_KUBELET_PORT: u16 = 10250;

/// How long connecting (TCP + TLS) to a node may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest node answer read.
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// The most characters of a node's message carried into a Status.
const MAX_MESSAGE_CHARS: usize = 2048;

/// One checkpoint to ask a node for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointCall {
    pub node: String,
    /// IP address or host name of the node.
    pub address: String,
    pub port: u16,
    pub container: ContainerRef,
    /// Seconds passed to the node; 0 = the runtime's default.
    pub timeout_seconds: i64,
}

impl CheckpointCall {
    /// `https://ADDR:PORT/checkpoint/NS/POD/C[?timeout=S]`; `None` when the
    /// address is neither an IP address nor a DNS name.
    pub fn url(&self) -> Option<String> {
        let host = url_host(&self.address)?;
        let path = self.container.kubelet_checkpoint_path();
        let query = if self.timeout_seconds > 0 {
            format!("?timeout={}", self.timeout_seconds)
        } else {
            String::new()
        };
        Some(format!("https://{host}:{}{path}{query}", self.port))
    }

    /// `ADDR:PORT`, for messages.
    pub fn endpoint(&self) -> String {
        if self.address.contains(':') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }
}

/// One range of a PodCheckpoint's archive to read from the node agent that
/// wrote it (`GET /podcheckpoints/NS/NAME/archive?...`, [`api_types::download`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveCall {
    pub node: String,
    pub address: String,
    pub port: u16,
    pub namespace: String,
    pub name: String,
    /// container, uid, offset and length (capped).
    pub query: api_types::download::ArchiveQuery,
}

impl ArchiveCall {
    /// `https://ADDR:PORT/podcheckpoints/NS/NAME/archive?container=C&uid=U&offset=O&length=L`.
    pub fn url(&self) -> Option<String> {
        let host = url_host(&self.address)?;
        let path = api_types::download::node_archive_path(&self.namespace, &self.name);
        Some(format!(
            "https://{host}:{}{path}?{}",
            self.port,
            self.query.to_query()
        ))
    }

    /// `ADDR:PORT`, for messages.
    pub fn endpoint(&self) -> String {
        if self.address.contains(':') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }
}

/// The host of a node URL: an IP address (v6 bracketed) or a lower-cased DNS
/// name; `None` for anything else.
fn url_host(address: &str) -> Option<String> {
    match address.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => Some(format!("[{v6}]")),
        Ok(IpAddr::V4(v4)) => Some(v4.to_string()),
        Err(_) => {
            let lower = address.to_ascii_lowercase();
            api_types::validation::is_dns1123_subdomain(&lower)
                .is_empty()
                .then_some(lower)
        }
    }
}

/// A node's answer to an [`ArchiveCall`]: the range's bytes, still streaming.
pub struct NodeArchive {
    /// `bytes A-B/SIZE`, as the node sent it.
    pub content_range: String,
    pub content_length: Option<u64>,
    pub body: axum::body::Body,
}

impl std::fmt::Debug for NodeArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeArchive")
            .field("content_range", &self.content_range)
            .field("content_length", &self.content_length)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("pod {pod} is bound to node {node}, which does not exist")]
    NodeMissing { pod: String, node: String },
    #[error("node {node} has no address of the types [{}]", .types.join(" "))]
    NoAddress { node: String, types: Vec<String> },
    #[error(
        "the kubelet on node {node} does not serve the checkpoint API (feature gate ContainerCheckpoint)"
    )]
    NotServed { node: String },
    #[error("the kubelet on node {node} does not know the container: {message}")]
    Gone { node: String, message: String },
    #[error(
        "checkpoint-apiserver is not authorised on node {node}: grant create on nodes/checkpoint (kubelet ≥1.30) or nodes/proxy (older kubelets)"
    )]
    NotAuthorised { node: String, code: u16 },
    /// The node refused with 409: the container is not running, or a
    /// checkpoint of it is already in progress there.
    #[error("node {node}: {message}")]
    Conflict { node: String, message: String },
    /// The node refused with 429: its own limit of checkpoints in flight.
    #[error("node {node} is busy: {message}")]
    Busy { node: String, message: String },
    #[error("node {node}: {message}")]
    Runtime { node: String, message: String },
    #[error("node {node}: the runtime timed out: {message}")]
    RuntimeTimeout { node: String, message: String },
    #[error("node {node} answered HTTP {code}: {message}")]
    Unexpected {
        node: String,
        code: u16,
        message: String,
    },
    #[error("node {node} answered without exactly one archive path: {body}")]
    BadAnswer { node: String, body: String },
    #[error("node {node} ({endpoint}) cannot be reached: {reason}")]
    Unreachable {
        node: String,
        endpoint: String,
        reason: String,
    },
    #[error("node {node} has an address that is neither an IP address nor a DNS name: {address:?}")]
    BadAddress { node: String, address: String },
    /// The node agent no longer has the archive (or the object it read is
    /// not the one asked for).
    #[error("node {node}: {message}")]
    ArchiveGone { node: String, message: String },
    /// The range starts at or past the end of the archive.
    #[error("node {node}: {message}")]
    RangeNotSatisfiable { node: String, message: String },
    #[error(
        "checkpoint-apiserver is not authorised to read archives on node {node}: grant get on nodes/checkpoint"
    )]
    ArchiveNotAuthorised { node: String, code: u16 },
    #[error("failed to read the credentials for node calls: {0}")]
    Credentials(String),
    #[error("failed to build the node client: {0}")]
    Build(String),
}

impl Error {
    /// The Status of the contract.
    pub fn status(&self) -> Status {
        let message = self.to_string();
        match self {
            Error::NodeMissing { pod, .. } => status::conflict(pod, message),
            Error::NoAddress { .. } => status::service_unavailable(message),
            Error::NotServed { .. } => status::not_found(message),
            Error::Gone { .. } | Error::Conflict { .. } => {
                status::failure(api_types::StatusReason::Conflict, message, None)
            }
            Error::Busy { .. } | Error::Unexpected { code: 503, .. } => {
                status::service_unavailable(message)
            }
            Error::NotAuthorised { .. }
            | Error::Runtime { .. }
            | Error::Unexpected { .. }
            | Error::BadAnswer { .. }
            | Error::Credentials(_)
            | Error::Build(_) => status::internal_error(message),
            Error::RuntimeTimeout { .. } => status::timeout(message),
            Error::ArchiveGone { .. } => status::not_found(message),
            Error::RangeNotSatisfiable { .. } => status::failure(
                api_types::StatusReason::RequestedRangeNotSatisfiable,
                message,
                None,
            ),
            Error::ArchiveNotAuthorised { .. } => status::internal_error(message),
            Error::Unreachable { .. } | Error::BadAddress { .. } => {
                status::service_unavailable(message)
            }
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Checkpoints a container on a node; returns the archive path on the node.
/// The caller bounds the call in time.
pub trait KubeletClient: Send + Sync + std::fmt::Debug {
    fn checkpoint<'a>(&'a self, call: &'a CheckpointCall) -> BoxFuture<'a, Result<String>>;

    /// Reads a range of a PodCheckpoint's archive from the node agent; the
    /// answer's body streams. The caller bounds the wait for the headers.
    fn archive<'a>(&'a self, call: &'a ArchiveCall) -> BoxFuture<'a, Result<NodeArchive>>;
}

/// A node address type (`v1.NodeAddressType`).
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressType {
    InternalIP,
    ExternalIP,
    Hostname,
    InternalDNS,
    ExternalDNS,
}

impl AddressType {
    pub const ALL: [AddressType; 5] = [
        AddressType::InternalIP,
        AddressType::ExternalIP,
        AddressType::Hostname,
        AddressType::InternalDNS,
        AddressType::ExternalDNS,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AddressType::InternalIP => "InternalIP",
            AddressType::ExternalIP => "ExternalIP",
            AddressType::Hostname => "Hostname",
            AddressType::InternalDNS => "InternalDNS",
            AddressType::ExternalDNS => "ExternalDNS",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// How nodes are reached and called (metrics-server's `KubeletClientConfig`,
/// `pkg/scraper/client/configs.go`, with this server's deadlines and queue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeletClientConfig {
    /// `--kubelet-preferred-address-types` (`AddressTypePriority`).
    pub address_types: Vec<AddressType>,
    /// `--kubelet-port`; `None`: the node's published port.
    pub port: Option<u16>,
    /// `--node-agent-port` (archives); `None`: the port of checkpoint calls.
    pub agent_port: Option<u16>,
    /// The runtime timeout assumed when a request gives none.
    pub request_timeout: Duration,
    /// Added to the request's timeout to bound the node call.
    pub timeout_margin: Duration,
    pub max_checkpoints_per_node: usize,
    pub node_queue_timeout: Duration,
}

impl Default for KubeletClientConfig {
    /// The flags' defaults.
    fn default() -> Self {
        Self {
            address_types: vec![
                AddressType::InternalIP,
                AddressType::ExternalIP,
                AddressType::Hostname,
            ],
            port: None,
            agent_port: None,
            request_timeout: api_types::timeouts::DEFAULT_RUNTIME_REQUEST_TIMEOUT,
            timeout_margin: api_types::timeouts::DEFAULT_KUBELET_TIMEOUT_MARGIN,
            max_checkpoints_per_node: 2,
            node_queue_timeout: Duration::from_secs(20),
        }
    }
}

impl KubeletClientConfig {
    /// How long a node call may take for a request timeout (0 = default).
    pub fn call_deadline(&self, timeout_seconds: i64) -> Duration {
        api_types::timeouts::Deadlines::new(timeout_seconds, self.request_timeout).runtime()
            + self.timeout_margin
    }

    /// The port of `node`'s agent, which serves the archives of
    /// PodCheckpoints: `--node-agent-port`, else that of checkpoint calls
    /// (the agent is the node endpoint in shim mode and on the local stack).
    pub fn agent_port(&self, node: &Node) -> u16 {
        self.agent_port
            .unwrap_or_else(|| node_port(node, self.port))
    }

    /// Where to call the checkpoint of `container` on `node` (the address of
    /// the first preferred type the node lists, the port of the flag, else
    /// the node's published kubelet port, else 10250).
    pub fn call(
        &self,
        node: &Node,
        container: ContainerRef,
        timeout_seconds: i64,
    ) -> Result<CheckpointCall> {
        Ok(CheckpointCall {
            node: node.metadata.name.clone().unwrap_or_default(),
            address: node_address(node, &self.address_types)?,
            port: node_port(node, self.port),
            container,
            timeout_seconds,
        })
    }
}

/// The address to call a node at: the first address of the first preferred
/// type that the node lists.
pub fn node_address(node: &Node, types: &[AddressType]) -> Result<String> {
    let addresses = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_deref())
        .unwrap_or_default();
    types
        .iter()
        .find_map(|t| {
            addresses
                .iter()
                .find(|a| a.type_ == t.as_str() && !a.address.is_empty())
                .map(|a| a.address.clone())
        })
        .ok_or_else(|| Error::NoAddress {
            node: node.metadata.name.clone().unwrap_or_default(),
            types: types.iter().map(|t| t.as_str().to_owned()).collect(),
        })
}

/// The port: the flag's when given, else the node's published kubelet port, else 10250.
pub fn node_port(node: &Node, flag: Option<u16>) -> u16 {
    if let Some(p) = flag {
        return p;
    }
    node.status
        .as_ref()
        .and_then(|s| s.daemon_endpoints.as_ref())
        .and_then(|d| d.kubelet_endpoint.as_ref())
        .and_then(|e| u16::try_from(e.port).ok())
        .filter(|p| *p != 0)
        .unwrap_or(DEFAULT_KUBELET_PORT)
}

/// Map a node's HTTP answer (code, body) as the kubelet gives them.
pub fn map_answer(node: &str, code: u16, body: &[u8]) -> Result<String> {
    let text = || {
        let s = String::from_utf8_lossy(body);
        let s = s.trim();
        match s.char_indices().nth(MAX_MESSAGE_CHARS) {
            Some((i, _)) => format!("{}…", &s[..i]),
            None => s.to_owned(),
        }
    };
    let node = node.to_owned();
    match code {
        200 => serde_json::from_slice::<CheckpointResponse>(body)
            .ok()
            .and_then(|r| r.archive_path().map(str::to_owned))
            .ok_or_else(|| Error::BadAnswer { node, body: text() }),
        404 => {
            let message = text();
            // "pod does not exist" / "container X does not exist": the route is
            // there, the pod moved on; a bare 404 is the gate being off.
            if message.contains("does not exist") {
                Err(Error::Gone { node, message })
            } else {
                Err(Error::NotServed { node })
            }
        }
        401 | 403 => Err(Error::NotAuthorised { node, code }),
        409 => Err(Error::Conflict {
            node,
            message: text(),
        }),
        429 => Err(Error::Busy {
            node,
            message: text(),
        }),
        500 => {
            let message = text();
            let lower = message.to_ascii_lowercase();
            if lower.contains("deadline exceeded") || lower.contains("deadlineexceeded") {
                Err(Error::RuntimeTimeout { node, message })
            } else {
                Err(Error::Runtime { node, message })
            }
        }
        _ => Err(Error::Unexpected {
            node,
            code,
            message: text(),
        }),
    }
}

/// Map a node agent's failure answer to an archive read (plain text, as
/// [`map_answer`] reads the kubelet's).
pub fn map_archive_failure(node: &str, code: u16, body: &[u8]) -> Error {
    let s = String::from_utf8_lossy(body);
    let s = s.trim();
    let message = match s.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    };
    let node = node.to_owned();
    match code {
        404 if message.starts_with("404 page not found") => Error::ArchiveGone {
            node: node.clone(),
            message: format!(
                "the node agent on node {node} does not serve archives (is checkpoint-shim running there with its PodCheckpoint controller?)"
            ),
        },
        404 => Error::ArchiveGone { node, message },
        416 => Error::RangeNotSatisfiable { node, message },
        401 | 403 => Error::ArchiveNotAuthorised { node, code },
        409 => Error::Conflict { node, message },
        _ => Error::Unexpected {
            node,
            code,
            message,
        },
    }
}

/// How the node client proves who it is, besides an optional client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    None,
    Token(String),
    /// Re-read on every call (projected service-account tokens rotate).
    TokenFile(PathBuf),
}

/// The real client: HTTPS with rustls (ring), HTTP/1.1.
#[derive(Clone)]
pub struct HttpsKubeletClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    credentials: Credentials,
}

impl std::fmt::Debug for HttpsKubeletClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let creds = match &self.credentials {
            Credentials::None => "none",
            Credentials::Token(_) => "token",
            Credentials::TokenFile(_) => "token file",
        };
        f.debug_struct("HttpsKubeletClient")
            .field("credentials", &creds)
            .finish_non_exhaustive()
    }
}

impl HttpsKubeletClient {
    pub fn new(
        trust: ServerTrust,
        identity: Option<ServingCert>,
        credentials: Credentials,
    ) -> Result<Self> {
        let tls = tls::client_config(trust, identity).map_err(|e| Error::Build(e.to_string()))?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Ok(Self {
            client,
            credentials,
        })
    }

    /// Sends a request to a node; a transport failure is `unreachable`'s error.
    /// Sends `method` to the node at `url` (`None`: its address is no
    /// host): the answer's head, or what kept it from coming.
    async fn exchange(
        &self,
        target: &NodeTarget,
        url: Option<String>,
        method: http::Method,
        accept: &str,
    ) -> Result<http::Response<hyper::body::Incoming>> {
        let url = url.ok_or_else(|| Error::BadAddress {
            node: target.node.clone(),
            address: target.address.clone(),
        })?;
        let req = self.node_request(method, &url, accept).await?;
        self.send(req, &|r| target.unreachable(r)).await
    }

    async fn send(
        &self,
        req: http::Request<Full<Bytes>>,
        unreachable: &impl Fn(String) -> Error,
    ) -> Result<http::Response<hyper::body::Incoming>> {
        self.client
            .request(req)
            .await
            .map_err(|e| unreachable(error_chain(&e)))
    }

    /// An empty-bodied request to a node with this client's bearer token (if
    /// any) and `accept`; the URL was validated by the caller, so what can
    /// fail is the token.
    async fn node_request(
        &self,
        method: http::Method,
        url: &str,
        accept: &str,
    ) -> Result<http::Request<Full<Bytes>>> {
        let mut req = http::Request::builder().method(method).uri(url);
        if let Some(token) = self.token().await? {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        req.header(http::header::ACCEPT, accept)
            .body(Full::new(Bytes::new()))
            .map_err(|_| Error::Credentials("the bearer token is not a valid header value".into()))
    }

    async fn token(&self) -> Result<Option<String>> {
        match &self.credentials {
            Credentials::None => Ok(None),
            Credentials::Token(t) => Ok(Some(t.clone())),
            Credentials::TokenFile(path) => tokio::fs::read_to_string(path)
                .await
                .map(|t| Some(t.trim().to_owned()))
                .map_err(|e| Error::Credentials(format!("{}: {e}", path.display()))),
        }
    }
}

impl KubeletClient for HttpsKubeletClient {
    fn checkpoint<'a>(&'a self, call: &'a CheckpointCall) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let target = NodeTarget::new(&call.node, &call.address, call.endpoint());
            let resp = self
                .exchange(&target, call.url(), http::Method::POST, "application/json")
                .await?;
            let code = resp.status().as_u16();
            let body = read_answer(resp, &|r| target.unreachable(r)).await?;
            map_answer(&call.node, code, &body)
        })
    }

    fn archive<'a>(&'a self, call: &'a ArchiveCall) -> BoxFuture<'a, Result<NodeArchive>> {
        Box::pin(async move {
            let target = NodeTarget::new(&call.node, &call.address, call.endpoint());
            let resp = self
                .exchange(
                    &target,
                    call.url(),
                    http::Method::GET,
                    api_types::download::OCTET_STREAM,
                )
                .await?;
            let code = resp.status().as_u16();
            if code != 200 {
                let body = read_answer(resp, &|r| target.unreachable(r)).await?;
                return Err(map_archive_failure(&call.node, code, &body));
            }
            let header = |name: http::header::HeaderName| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let content_range = header(http::header::CONTENT_RANGE)
                .filter(|r| api_types::download::parse_content_range(r).is_some())
                .ok_or_else(|| Error::Unexpected {
                    node: call.node.clone(),
                    code,
                    message: "the archive came without a valid Content-Range".into(),
                })?;
            let content_length =
                header(http::header::CONTENT_LENGTH).and_then(|l| l.parse::<u64>().ok());
            Ok(NodeArchive {
                content_range,
                content_length,
                body: axum::body::Body::new(resp.into_body()),
            })
        })
    }
}

/// A node's (error or JSON) answer, at most [`MAX_ANSWER_BYTES`]; a body cut
/// short is `unreachable`'s error.
/// The node a call goes to, for its errors.
struct NodeTarget {
    node: String,
    address: String,
    endpoint: String,
}

impl NodeTarget {
    fn new(node: &str, address: &str, endpoint: String) -> Self {
        Self {
            node: node.to_owned(),
            address: address.to_owned(),
            endpoint,
        }
    }

    fn unreachable(&self, reason: String) -> Error {
        Error::Unreachable {
            node: self.node.clone(),
            endpoint: self.endpoint.clone(),
            reason,
        }
    }
}

async fn read_answer(
    resp: http::Response<hyper::body::Incoming>,
    unreachable: &impl Fn(String) -> Error,
) -> Result<Bytes> {
    Ok(Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|e| unreachable(format!("failed to read the answer: {e}")))?
        .to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use apiserver_lib::pki::{Ca, Pem};
    use apiserver_lib::serve;
    use axum::Router;
    use axum::extract::Request;
    use axum::response::IntoResponse;
    use kcr_testkit::fixtures::node;
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    use std::path::Path;

    fn call(address: &str, port: u16, timeout: i64) -> CheckpointCall {
        CheckpointCall {
            node: "n1".into(),
            address: address.into(),
            port,
            container: ContainerRef::new("ns", "p", "app"),
            timeout_seconds: timeout,
        }
    }

    #[test]
    fn urls_are_exact() {
        assert_eq!(
            call("10.0.0.1", 10250, 30).url().unwrap(),
            "https://10.0.0.1:10250/checkpoint/ns/p/app?timeout=30"
        );
        assert_eq!(
            call("fd00::1", 10250, 0).url().unwrap(),
            "https://[fd00::1]:10250/checkpoint/ns/p/app"
        );
        assert_eq!(call("fd00::1", 1, 0).endpoint(), "[fd00::1]:1");
        assert_eq!(
            call("Node-1.Example", 10350, 0).url().unwrap(),
            "https://node-1.example:10350/checkpoint/ns/p/app"
        );
        for bad in ["evil.com/x?", "a@b", "", "x y", "host:1"] {
            assert!(call(bad, 1, 0).url().is_none(), "{bad}");
        }
    }

    const DEFAULT_TYPES: [AddressType; 3] = [
        AddressType::InternalIP,
        AddressType::ExternalIP,
        AddressType::Hostname,
    ];

    #[test]
    fn addresses_and_ports() {
        let n = node(
            "n1",
            &[
                ("Hostname", "n1.example"),
                ("ExternalIP", "203.0.113.1"),
                ("InternalIP", "10.0.0.1"),
            ],
            Some(10250),
        );
        assert_eq!(node_address(&n, &DEFAULT_TYPES).unwrap(), "10.0.0.1");
        assert_eq!(
            node_address(&n, &[AddressType::Hostname, AddressType::InternalIP]).unwrap(),
            "n1.example"
        );
        let err = node_address(&n, &[AddressType::InternalDNS]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "node n1 has no address of the types [InternalDNS]"
        );
        assert_eq!(err.status().code, Some(503));

        assert_eq!(node_port(&n, None), 10250);
        assert_eq!(node_port(&n, Some(10350)), 10350);
        // Archives: the agent's port when given, else that of checkpoints.
        let mut config = KubeletClientConfig::default();
        assert_eq!(config.agent_port(&n), 10250);
        config.port = Some(10351);
        assert_eq!(config.agent_port(&n), 10351);
        config.agent_port = Some(10350);
        assert_eq!(config.agent_port(&n), 10350);
        assert_eq!(node_port(&node("n2", &[], Some(12345)), None), 12345);
        assert_eq!(node_port(&node("n2", &[], Some(0)), None), 10250);
        assert_eq!(node_port(&node("n2", &[], Some(-1)), None), 10250);
        assert_eq!(node_port(&node("n2", &[], None), None), 10250);
        assert_eq!(
            AddressType::parse("ExternalDNS"),
            Some(AddressType::ExternalDNS)
        );
        assert_eq!(AddressType::parse("internalip"), None);
    }

    #[test]
    fn deadlines() {
        let k = KubeletClientConfig::default();
        // The runtime timeout (2m by default), then the node's 5s grace, then this server's 5s.
        assert_eq!(k.call_deadline(0), Duration::from_secs(130));
        assert_eq!(k.call_deadline(2), Duration::from_secs(12));
        assert_eq!(k.call_deadline(-1), Duration::from_secs(130));
        assert_eq!(
            k.call_deadline(2),
            api_types::timeouts::Deadlines::new(2, k.request_timeout).extension()
        );
    }

    #[test]
    fn answers_map_to_statuses() {
        let ok = map_answer(
            "n1",
            200,
            br#"{"items":["/var/lib/kubelet/checkpoints/a.tar"]}"#,
        );
        assert_eq!(ok.unwrap(), "/var/lib/kubelet/checkpoints/a.tar");

        let table: Vec<(u16, &[u8], u16, &str)> = vec![
            (200, b"{\"items\":[]}", 500, "node n1 answered without exactly one archive path: {\"items\":[]}"),
            (200, b"not json", 500, "node n1 answered without exactly one archive path: not json"),
            (404, b"404 page not found\n", 404, "the kubelet on node n1 does not serve the checkpoint API (feature gate ContainerCheckpoint)"),
            (404, b"pod does not exist\n", 409, "the kubelet on node n1 does not know the container: pod does not exist"),
            (401, b"Unauthorized", 500, "checkpoint-apiserver is not authorised on node n1: grant create on nodes/checkpoint (kubelet ≥1.30) or nodes/proxy (older kubelets)"),
            (403, b"Forbidden (user=x, verb=create, resource=nodes, subresource(s)=[checkpoint])", 500, "checkpoint-apiserver is not authorised on node n1: grant create on nodes/checkpoint (kubelet ≥1.30) or nodes/proxy (older kubelets)"),
            (500, b"checkpointing of ns/p/app failed (rpc error: code = Unknown desc = CRIU failed)\n", 500, "node n1: checkpointing of ns/p/app failed (rpc error: code = Unknown desc = CRIU failed)"),
            (500, b"checkpointing of ns/p/app failed (rpc error: code = DeadlineExceeded desc = context deadline exceeded)", 504, "node n1: the runtime timed out: checkpointing of ns/p/app failed (rpc error: code = DeadlineExceeded desc = context deadline exceeded)"),
            (409, b"a checkpoint of ns/p/app is already in progress; concurrent checkpoints of one container are refused", 409, "node n1: a checkpoint of ns/p/app is already in progress; concurrent checkpoints of one container are refused"),
            (429, b"too many checkpoints in progress on this node (at most 4); retry later", 503, "node n1 is busy: too many checkpoints in progress on this node (at most 4); retry later"),
            (405, b"Method Not Allowed", 500, "node n1 answered HTTP 405: Method Not Allowed"),
        ];
        for (code, body, want_code, want_msg) in table {
            let err = map_answer("n1", code, body).unwrap_err();
            let s = err.status();
            assert_eq!(s.code, Some(i32::from(want_code)), "{code} {err}");
            assert_eq!(s.message.as_deref(), Some(want_msg), "{code}");
        }
        // long messages are cut
        let long = vec![b'x'; 10_000];
        let err = map_answer("n1", 500, &long).unwrap_err();
        assert!(err.to_string().chars().count() < 2100);
    }

    // ---- the HTTPS client against a fake node endpoint over real TLS ----

    fn certs(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
        tls::parse_certs(pem.as_bytes(), Path::new("test")).unwrap()
    }

    fn identity(pem: &Pem) -> ServingCert {
        ServingCert {
            chain: certs(&pem.cert),
            key: PrivateKeyDer::from_pem_slice(pem.key.as_bytes()).unwrap(),
        }
    }

    /// A node endpoint answering by container name: `ok`, `gate-off`,
    /// `forbidden`, `criu`; it echoes what it saw in the archive path.
    async fn fake_kubelet(ca: &Ca, client_ca: &Ca) -> (u16, tokio::sync::oneshot::Sender<()>) {
        let serving = ca.server("node", &["localhost", "127.0.0.1"]).unwrap();
        let config = tls::server_config(identity(&serving), &certs(&client_ca.pem.cert)).unwrap();
        let router = Router::new().fallback(|req: Request| async move {
            let path = req.uri().path().to_owned();
            let query = req.uri().query().unwrap_or("").to_owned();
            let auth = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let has_cert = req
                .extensions()
                .get::<serve::PeerCertificates>()
                .is_some_and(|p| !p.0.is_empty());
            if req.method() != http::Method::POST {
                return (http::StatusCode::METHOD_NOT_ALLOWED, "").into_response();
            }
            match path.rsplit('/').next().unwrap_or("") {
                "gate-off" => (http::StatusCode::NOT_FOUND, "404 page not found\n").into_response(),
                "forbidden" => (http::StatusCode::FORBIDDEN, "Forbidden").into_response(),
                "criu" => (
                    http::StatusCode::INTERNAL_SERVER_ERROR,
                    "checkpointing of ns/p/criu failed (CRIU says no)",
                )
                    .into_response(),
                _ => axum::Json(CheckpointResponse::single(format!(
                    "{path}|{query}|{auth}|cert={has_cert}"
                )))
                .into_response(),
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(serve::serve_tls(listener, config, router, async {
            let _ = rx.await;
        }));
        (port, tx)
    }

    fn named(port: u16, container: &str, timeout: i64) -> CheckpointCall {
        let mut c = call("127.0.0.1", port, timeout);
        c.container.container = container.into();
        c
    }

    /// A node agent's archive endpoint: 4 MiB of archive by container name
    /// `app`; `gone` 404, `past` 416, `bare` 200 without Content-Range.
    async fn fake_agent(ca: &Ca) -> (u16, tokio::sync::oneshot::Sender<()>) {
        let serving = ca.server("node", &["localhost", "127.0.0.1"]).unwrap();
        let config = tls::server_config(identity(&serving), &[]).unwrap();
        let router = Router::new().fallback(|req: Request| async move {
            let q =
                api_types::download::ArchiveQuery::parse(req.uri().query().unwrap_or("")).unwrap();
            let size: u64 = 4 << 20;
            match q.container.as_str() {
                "gone" => (
                    http::StatusCode::NOT_FOUND,
                    "archive u/x.tar of podcheckpoint ns/pc is gone from node n1",
                )
                    .into_response(),
                "past" => (
                    http::StatusCode::RANGE_NOT_SATISFIABLE,
                    "offset 9 is past the end",
                )
                    .into_response(),
                "bare" => (http::StatusCode::OK, "x").into_response(),
                _ => {
                    let (start, end) =
                        api_types::download::satisfiable(q.offset, q.length, u64::MAX, size)
                            .unwrap();
                    let body: Vec<u8> = (start..end).map(|i| (i % 251) as u8).collect();
                    (
                        http::StatusCode::OK,
                        [(
                            http::header::CONTENT_RANGE,
                            api_types::download::content_range(start, end, size),
                        )],
                        body,
                    )
                        .into_response()
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(serve::serve_tls(listener, config, router, async {
            let _ = rx.await;
        }));
        (port, tx)
    }

    #[tokio::test]
    async fn archive_ranges_stream_over_tls() {
        let ca = Ca::new("kubelet-ca").unwrap();
        let (port, _stop) = fake_agent(&ca).await;
        let client = HttpsKubeletClient::new(
            ServerTrust::Ca(certs(&ca.pem.cert)),
            None,
            Credentials::Token("sa".into()),
        )
        .unwrap();
        let call = |container: &str, offset: u64, length: u64| ArchiveCall {
            node: "n1".into(),
            address: "127.0.0.1".into(),
            port,
            namespace: "ns".into(),
            name: "pc".into(),
            query: api_types::download::ArchiveQuery {
                container: container.into(),
                uid: "u-1".into(),
                offset,
                length: Some(length),
            },
        };
        assert_eq!(
            call("app", 5, 7).url().unwrap(),
            format!(
                "https://127.0.0.1:{port}/podcheckpoints/ns/pc/archive?container=app&uid=u-1&offset=5&length=7"
            )
        );
        let archive = client.archive(&call("app", 1000, 3 << 20)).await.unwrap();
        assert_eq!(
            archive.content_range,
            format!("bytes 1000-{}/{}", 1000 + (3 << 20) - 1, 4 << 20)
        );
        assert_eq!(archive.content_length, Some(3 << 20));
        let bytes = axum::body::to_bytes(archive.body, usize::MAX)
            .await
            .unwrap();
        assert_eq!(bytes.len(), 3 << 20);
        assert!(
            bytes
                .iter()
                .enumerate()
                .all(|(i, b)| *b == ((i as u64 + 1000) % 251) as u8)
        );

        let err = client.archive(&call("gone", 0, 1)).await.unwrap_err();
        assert_eq!(err.status().code, Some(404));
        assert_eq!(
            err.to_string(),
            "node n1: archive u/x.tar of podcheckpoint ns/pc is gone from node n1"
        );
        let err = client.archive(&call("past", 9, 1)).await.unwrap_err();
        assert_eq!(err.status().code, Some(416));
        let err = client.archive(&call("bare", 0, 1)).await.unwrap_err();
        assert_eq!(err.status().code, Some(500));
        assert!(err.to_string().contains("Content-Range"), "{err}");
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut unreachable = call("app", 0, 1);
        unreachable.port = closed;
        let err = client.archive(&unreachable).await.unwrap_err();
        assert_eq!(err.status().code, Some(503));
        assert!(err.to_string().starts_with("node n1 (127.0.0.1:"), "{err}");
    }

    #[tokio::test]
    async fn https_client_against_a_fake_node() {
        let ca = Ca::new("kubelet-ca").unwrap();
        let client_ca = Ca::new("kubelet-client-ca").unwrap();
        let (port, _stop) = fake_kubelet(&ca, &client_ca).await;

        let token_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(token_file.path(), "sa-token\n").unwrap();
        let client = HttpsKubeletClient::new(
            ServerTrust::Ca(certs(&ca.pem.cert)),
            None,
            Credentials::TokenFile(token_file.path().into()),
        )
        .unwrap();
        let path = client.checkpoint(&named(port, "app", 7)).await.unwrap();
        assert_eq!(
            path,
            "/checkpoint/ns/p/app|timeout=7|Bearer sa-token|cert=false"
        );
        let path = client.checkpoint(&named(port, "app", 0)).await.unwrap();
        assert_eq!(path, "/checkpoint/ns/p/app||Bearer sa-token|cert=false");

        for (container, code) in [("gate-off", 404), ("forbidden", 500), ("criu", 500)] {
            let err = client
                .checkpoint(&named(port, container, 0))
                .await
                .unwrap_err();
            assert_eq!(err.status().code, Some(code), "{err}");
            assert!(err.to_string().contains("n1"), "{err}");
        }

        // A client certificate instead of a token.
        let id = client_ca.client("checkpoint-apiserver", &[]).unwrap();
        let client = HttpsKubeletClient::new(
            ServerTrust::Ca(certs(&ca.pem.cert)),
            Some(identity(&id)),
            Credentials::None,
        )
        .unwrap();
        let path = client.checkpoint(&named(port, "app", 0)).await.unwrap();
        assert_eq!(path, "/checkpoint/ns/p/app|||cert=true");

        // A node certificate from another CA: refused (503), unless insecure.
        let other = HttpsKubeletClient::new(
            ServerTrust::Ca(certs(&Ca::new("other").unwrap().pem.cert)),
            None,
            Credentials::Token("t".into()),
        )
        .unwrap();
        let err = other.checkpoint(&named(port, "app", 0)).await.unwrap_err();
        assert_eq!(err.status().code, Some(503), "{err}");
        assert!(err.to_string().contains("certificate"), "{err}");
        let insecure =
            HttpsKubeletClient::new(ServerTrust::InsecureSkipVerify, None, Credentials::None)
                .unwrap();
        assert!(insecure.checkpoint(&named(port, "app", 0)).await.is_ok());

        // Nothing listening: 503 naming the endpoint.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let err = insecure
            .checkpoint(&named(closed, "app", 0))
            .await
            .unwrap_err();
        assert_eq!(err.status().code, Some(503));
        assert!(
            err.to_string()
                .starts_with(&format!("node n1 (127.0.0.1:{closed}) cannot be reached: ")),
            "{err}"
        );

        // A missing token file is a 500 naming the file.
        let gone = HttpsKubeletClient::new(
            ServerTrust::InsecureSkipVerify,
            None,
            Credentials::TokenFile("/nonexistent/token".into()),
        )
        .unwrap();
        let err = gone.checkpoint(&named(port, "app", 0)).await.unwrap_err();
        assert!(err.to_string().contains("/nonexistent/token"), "{err}");
    }
}
