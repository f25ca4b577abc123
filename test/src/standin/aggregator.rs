//! The aggregator part of kube-apiserver (`k8s.io/kube-aggregator`): APIService
//! objects register a group/version; requests under `/apis/<group>/<version>`
//! are proxied to the service they name, over TLS verified against the
//! APIService's `caBundle` (server name `<service>.<namespace>.svc`) unless
//! `insecureSkipTLSVerify`, presenting the front-proxy client certificate and
//! the authenticated user in `X-Remote-User`, one `X-Remote-Group` per group
//! and `X-Remote-Extra-<key>` headers. The caller's `Authorization` and any
//! `X-Remote-*` / `Impersonate-*` headers it sent are dropped.
//!
//! ## Where a service is reached
//! As `ResolveCluster` does (`kube-aggregator/pkg/apiserver/resolvers.go`,
//! the default without `--enable-aggregator-routing`), from the Service
//! object in the store:
//! * `type: ExternalName` → `externalName:<APIService port>`;
//! * ClusterIP / NodePort / LoadBalancer → `clusterIP:<the Service port equal to the APIService port>`
//!   (`port "N" not found` otherwise; `clusterIP: None` cannot be routed).
//!
//! There is no kube-proxy here, so a local stack gives the Service a
//! loopback `clusterIP` (or an `externalName` of `127.0.0.1`), or overrides
//! the address with `--service-address NS/NAME=HOST:PORT`, which wins over
//! the Service object. Resolution failures answer 503 `service unavailable`
//! (plain text, like the aggregator); connection failures 503
//! `error trying to reach service: ...`.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use api_types::k8s_openapi::api::core::v1::Service;
use api_types::k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use apiserver_lib::UserInfo;
use apiserver_lib::pki::Pem;
use apiserver_lib::tls::{self, ServerTrust};
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use serde_json::Value;

use super::resources;
use super::status;
use super::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid --service-address {0:?}: want NAMESPACE/NAME=HOST:PORT")]
    ServiceAddress(String),
    /// The APIService's service cannot be resolved (plain-text 503).
    #[error("service unavailable")]
    Unresolvable(String),
    /// Dialing, TLS or HTTP to the backend failed (503).
    #[error("error trying to reach service: {0}")]
    Unreachable(String),
    #[error("failed to build the proxy's TLS configuration: {0}")]
    Tls(#[from] tls::Error),
}

impl Error {
    /// The aggregator's answer for this failure.
    pub fn into_response(self) -> Response {
        match self {
            Error::Unresolvable(why) => {
                tracing::warn!(reason = %why, "APIService backend unresolvable");
                (StatusCode::SERVICE_UNAVAILABLE, "service unavailable\n").into_response()
            }
            Error::Unreachable(why) => {
                tracing::warn!(error = %why, "error while proxying request");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("error trying to reach service: {why}\n"),
                )
                    .into_response()
            }
            other => status::internal(other.to_string()).into_response(),
        }
    }
}

/// Parse `NAMESPACE/NAME=HOST:PORT`.
pub fn parse_service_address(s: &str) -> Result<((String, String), String), Error> {
    let bad = || Error::ServiceAddress(s.to_owned());
    let (svc, addr) = s.split_once('=').ok_or_else(bad)?;
    let (ns, name) = svc.split_once('/').ok_or_else(bad)?;
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    if ns.is_empty() || name.is_empty() || host.is_empty() || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    Ok(((ns.to_owned(), name.to_owned()), addr.to_owned()))
}

/// Where one APIService's requests go.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` to dial.
    pub address: String,
    /// TLS server name: `<service>.<namespace>.svc`.
    pub server_name: String,
    pub trust: ServerTrust,
}

fn apiservices_rt() -> Option<&'static resources::Rt> {
    resources::lookup("apiregistration.k8s.io", "v1", "apiservices")
}

/// Every APIService that names a service (the aggregated ones).
pub fn aggregated(store: &Store) -> Vec<APIService> {
    let Some(rt) = apiservices_rt() else {
        return Vec::new();
    };
    store
        .all(rt)
        .into_iter()
        .filter_map(|v| serde_json::from_value::<APIService>(v).ok())
        .filter(|a| a.spec.as_ref().is_some_and(|s| s.service.is_some()))
        .collect()
}

/// The aggregated groups and their versions (highest versionPriority first),
/// in order of groupPriorityMinimum (highest first), for `/apis`.
pub fn groups(store: &Store) -> Vec<(String, Vec<String>)> {
    groups_with_priority(store)
        .into_iter()
        .map(|(_, g, vs)| (g, vs))
        .collect()
}

/// [`groups`] with each group's `groupPriorityMinimum`.
pub fn groups_with_priority(store: &Store) -> Vec<(i32, String, Vec<String>)> {
    let mut by_group: BTreeMap<String, (i32, Vec<(i32, String)>)> = BTreeMap::new();
    for a in aggregated(store) {
        let Some(spec) = a.spec else { continue };
        let (Some(g), Some(v)) = (spec.group, spec.version) else {
            continue;
        };
        let e = by_group
            .entry(g)
            .or_insert((spec.group_priority_minimum, Vec::new()));
        e.0 = e.0.max(spec.group_priority_minimum);
        e.1.push((spec.version_priority, v));
    }
    let mut groups: Vec<(i32, String, Vec<String>)> = by_group
        .into_iter()
        .map(|(g, (prio, mut vs))| {
            vs.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            (prio, g, vs.into_iter().map(|(_, v)| v).collect())
        })
        .collect();
    groups.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    groups
}

/// The APIService serving `group/version` through a service, if any.
pub fn find(store: &Store, group: &str, version: &str) -> Option<APIService> {
    aggregated(store).into_iter().find(|a| {
        a.spec.as_ref().is_some_and(|s| {
            s.group.as_deref() == Some(group) && s.version.as_deref() == Some(version)
        })
    })
}

/// kube-aggregator's validation of an APIService on create/update.
pub fn validate(body: &Value) -> Result<(), String> {
    let a: APIService =
        serde_json::from_value(body.clone()).map_err(|e| format!("spec: Invalid value: {e}"))?;
    let name = a.metadata.name.unwrap_or_default();
    let spec = a.spec.ok_or("spec: Required value")?;
    let group = spec.group.unwrap_or_default();
    let version = spec.version.unwrap_or_default();
    if version.is_empty() {
        return Err("spec.version: Required value".into());
    }
    let want = if group.is_empty() {
        version.clone()
    } else {
        format!("{version}.{group}")
    };
    if !name.is_empty() && name != want {
        return Err(format!(
            "metadata.name: Invalid value: \"{name}\": must be `spec.version+\".\"+spec.group`: \"{want}\""
        ));
    }
    if spec.service.is_some() {
        if spec.group_priority_minimum <= 0 {
            return Err(format!(
                "spec.groupPriorityMinimum: Invalid value: {}: must be positive and less than 20000",
                spec.group_priority_minimum
            ));
        }
        if spec.version_priority <= 0 {
            return Err(format!(
                "spec.versionPriority: Invalid value: {}: must be positive and less than 1000",
                spec.version_priority
            ));
        }
        if spec.insecure_skip_tls_verify == Some(true)
            && spec.ca_bundle.as_ref().is_some_and(|b| !b.0.is_empty())
        {
            return Err("spec.insecureSkipTLSVerify: Invalid value: true: may not be true if caBundle is present".into());
        }
    }
    Ok(())
}

/// Proxies aggregated requests.
#[derive(Debug)]
pub struct Aggregator {
    front_proxy_client: Pem,
    service_addresses: BTreeMap<(String, String), String>,
}

/// Headers never forwarded: hop-by-hop, credentials, and the front-proxy
/// headers a caller might try to spoof.
fn dropped(name: &HeaderName) -> bool {
    let n = name.as_str();
    matches!(
        n,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "authorization"
    ) || n.starts_with("x-remote-")
        || n.starts_with("impersonate-")
}

/// `X-Remote-Extra-` keys are percent-encoded (`url.PathEscape`).
fn escape_extra_key(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The headers sent to the backend.
pub fn proxy_headers(
    incoming: &HeaderMap,
    user: &UserInfo,
    client_ip: Option<std::net::IpAddr>,
) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (k, v) in incoming {
        if !dropped(k) {
            out.append(k.clone(), v.clone());
        }
    }
    let mut put = |name: String, value: &str| {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::from_str(value)) {
            out.append(n, v);
        }
    };
    put("X-Remote-User".into(), &user.name);
    for g in &user.groups {
        put("X-Remote-Group".into(), g);
    }
    for (k, vs) in &user.extra {
        for v in vs {
            put(format!("X-Remote-Extra-{}", escape_extra_key(k)), v);
        }
    }
    if let Some(ip) = client_ip {
        put("X-Forwarded-For".into(), &ip.to_string());
    }
    out
}

impl Aggregator {
    pub fn new(
        front_proxy_client: Pem,
        service_addresses: BTreeMap<(String, String), String>,
    ) -> Self {
        Self {
            front_proxy_client,
            service_addresses,
        }
    }

    /// Where `api`'s requests go.
    pub fn resolve(&self, store: &Store, api: &APIService) -> Result<Target, Error> {
        let spec = api
            .spec
            .as_ref()
            .ok_or_else(|| Error::Unresolvable("no spec".into()))?;
        let svc_ref = spec
            .service
            .as_ref()
            .ok_or_else(|| Error::Unresolvable("no service".into()))?;
        let ns = svc_ref.namespace.clone().unwrap_or_default();
        let name = svc_ref.name.clone().unwrap_or_default();
        let port = svc_ref.port.unwrap_or(443);
        let trust = if spec.insecure_skip_tls_verify == Some(true) {
            ServerTrust::InsecureSkipVerify
        } else {
            let bundle = spec
                .ca_bundle
                .as_ref()
                .map(|b| b.0.clone())
                .unwrap_or_default();
            let cas = if bundle.is_empty() {
                Vec::new()
            } else {
                tls::parse_certs(&bundle, std::path::Path::new("APIService caBundle"))
                    .map_err(|e| Error::Unresolvable(e.to_string()))?
            };
            ServerTrust::Ca(cas)
        };
        let server_name = format!("{name}.{ns}.svc");
        if let Some(addr) = self.service_addresses.get(&(ns.clone(), name.clone())) {
            return Ok(Target {
                address: addr.clone(),
                server_name,
                trust,
            });
        }
        let svc_rt = resources::lookup("", "v1", "services")
            .ok_or_else(|| Error::Unresolvable("services not served".into()))?;
        let svc: Service = store
            .get(svc_rt, &ns, &name)
            .ok()
            .and_then(|v| serde_json::from_value(v).ok())
            .ok_or_else(|| Error::Unresolvable(format!("service \"{ns}/{name}\" not found")))?;
        let spec = svc.spec.unwrap_or_default();
        let address = match spec.type_.as_deref().unwrap_or("ClusterIP") {
            "ExternalName" => {
                let host = spec.external_name.unwrap_or_default();
                format!("{host}:{port}")
            }
            "ClusterIP" | "NodePort" | "LoadBalancer" => {
                let ip = spec.cluster_ip.unwrap_or_default();
                if ip == "None" {
                    return Err(Error::Unresolvable(
                        "cannot route to service with ClusterIP \"None\"".into(),
                    ));
                }
                if ip.is_empty() {
                    return Err(Error::Unresolvable(format!(
                        "service \"{ns}/{name}\" has no clusterIP"
                    )));
                }
                let found = spec
                    .ports
                    .unwrap_or_default()
                    .iter()
                    .any(|p| p.port == port);
                if !found {
                    return Err(Error::Unresolvable(format!("port \"{port}\" not found")));
                }
                if ip.contains(':') {
                    format!("[{ip}]:{port}")
                } else {
                    format!("{ip}:{port}")
                }
            }
            other => {
                return Err(Error::Unresolvable(format!(
                    "unsupported service type \"{other}\""
                )));
            }
        };
        Ok(Target {
            address,
            server_name,
            trust,
        })
    }

    /// Send `req` (path and query kept) to `target` as `user`; the response
    /// body is cut at `deadline` when there is one.
    pub async fn proxy(
        &self,
        target: &Target,
        req: http::Request<Body>,
        user: &UserInfo,
        client_ip: Option<std::net::IpAddr>,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Response, Error> {
        let identity = apiserver_lib_identity(&self.front_proxy_client)?;
        let mut config = tls::client_config(target.trust.clone(), Some(identity))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let unreachable = |e: &dyn std::fmt::Display| Error::Unreachable(e.to_string());
        let tcp = tokio::net::TcpStream::connect(&target.address)
            .await
            .map_err(|e| Error::Unreachable(format!("dial tcp {}: {e}", target.address)))?;
        let _ = tcp.set_nodelay(true);
        let server_name =
            ServerName::try_from(target.server_name.clone()).map_err(|e| unreachable(&e))?;
        let tls = connector
            .connect(server_name, tcp)
            .await
            .map_err(|e| unreachable(&e))?;
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");

        let (parts, body) = req.into_parts();
        let path_and_query = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let headers = proxy_headers(&parts.headers, user, client_ip);
        let io = TokioIo::new(tls);
        let response = if h2 {
            let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| unreachable(&e))?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "proxied HTTP/2 connection ended");
                }
            });
            let mut out = http::Request::builder()
                .method(parts.method)
                .uri(format!("https://{}{path_and_query}", target.server_name))
                .body(body)
                .map_err(|e| unreachable(&e))?;
            *out.headers_mut() = headers;
            send.send_request(out).await.map_err(|e| unreachable(&e))?
        } else {
            let (mut send, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| unreachable(&e))?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "proxied HTTP/1.1 connection ended");
                }
            });
            let mut out = http::Request::builder()
                .method(parts.method)
                .uri(path_and_query)
                .body(body)
                .map_err(|e| unreachable(&e))?;
            *out.headers_mut() = headers;
            if let Ok(host) = HeaderValue::from_str(&target.server_name) {
                out.headers_mut().insert(http::header::HOST, host);
            }
            send.send_request(out).await.map_err(|e| unreachable(&e))?
        };
        let (mut parts, body) = response.into_parts();
        let hop: Vec<HeaderName> = parts
            .headers
            .keys()
            .filter(|k| dropped(k) && k.as_str() != "authorization")
            .cloned()
            .collect();
        for k in hop {
            parts.headers.remove(k);
        }
        let body = match deadline {
            Some(at) => Body::new(DeadlineBody {
                inner: body,
                sleep: Box::pin(tokio::time::sleep_until(at)),
            }),
            None => Body::new(body),
        };
        Ok(Response::from_parts(parts, body))
    }
}

fn apiserver_lib_identity(pem: &Pem) -> Result<tls::ServingCert, Error> {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    let origin = std::path::Path::new("front-proxy-client.crt");
    Ok(tls::ServingCert {
        chain: tls::parse_certs(pem.cert.as_bytes(), origin)?,
        key: PrivateKeyDer::from_pem_slice(pem.key.as_bytes())
            .map_err(|e| Error::Unreachable(format!("front-proxy client key: {e}")))?,
    })
}

/// A proxied response body that fails at the request deadline, as
/// kube-apiserver cuts a non-long-running response mid-stream.
struct DeadlineBody {
    inner: Incoming,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl hyper::body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(
                "the request timed out while the response was streaming".into(),
            )));
        }
        Pin::new(&mut self.inner).poll_frame(cx).map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        hyper::body::Body::is_end_stream(&self.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn headers_are_replaced_not_merged() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer secret"));
        h.insert("x-remote-user", HeaderValue::from_static("admin"));
        h.append("X-Remote-Group", HeaderValue::from_static("system:masters"));
        h.insert("x-remote-extra-scopes", HeaderValue::from_static("all"));
        h.insert("impersonate-user", HeaderValue::from_static("admin"));
        h.insert("accept", HeaderValue::from_static("application/json"));
        let mut user = UserInfo::new("bob", vec!["dev".into(), "system:authenticated".into()]);
        user.extra.insert("scopes/a".into(), vec!["x".into()]);
        let out = proxy_headers(&h, &user, None);
        assert!(out.get("authorization").is_none());
        assert!(out.get("impersonate-user").is_none());
        assert_eq!(
            out.get_all("x-remote-user").iter().collect::<Vec<_>>(),
            vec!["bob"]
        );
        assert_eq!(
            out.get_all("x-remote-group").iter().collect::<Vec<_>>(),
            vec!["dev", "system:authenticated"]
        );
        assert!(out.get("x-remote-extra-scopes").is_none());
        assert_eq!(out["x-remote-extra-scopes%2Fa"], "x");
        assert_eq!(out["accept"], "application/json");
    }

    #[test]
    fn service_addresses_and_validation() {
        assert_eq!(
            parse_service_address("kcr-system/ext=127.0.0.1:8443").unwrap(),
            (("kcr-system".into(), "ext".into()), "127.0.0.1:8443".into())
        );
        assert!(parse_service_address("ext=127.0.0.1:1").is_err());
        assert!(parse_service_address("a/b=127.0.0.1").is_err());
        let ok = json!({"metadata": {"name": "v1alpha1.subresources.checkpoint.kcr.dev"}, "spec": {"group": "subresources.checkpoint.kcr.dev", "version": "v1alpha1",
            "groupPriorityMinimum": 1000, "versionPriority": 15, "service": {"namespace": "kcr-system", "name": "ext"}, "insecureSkipTLSVerify": true}});
        validate(&ok).unwrap();
        let mut bad = ok.clone();
        bad["metadata"]["name"] = json!("v1.subresources.checkpoint.kcr.dev");
        assert!(
            validate(&bad)
                .unwrap_err()
                .starts_with("metadata.name: Invalid value")
        );
    }

    #[test]
    fn resolution_follows_resolve_cluster() {
        let store = Store::new();
        let svc_rt = resources::lookup("", "v1", "services").unwrap();
        store.create(svc_rt, "default", json!({"metadata": {"name": "cip"}, "spec": {"clusterIP": "127.0.0.1", "ports": [{"port": 8443}]}})).unwrap();
        store.create(svc_rt, "default", json!({"metadata": {"name": "ext"}, "spec": {"type": "ExternalName", "externalName": "localhost"}})).unwrap();
        store
            .create(
                svc_rt,
                "default",
                json!({"metadata": {"name": "headless"}, "spec": {"clusterIP": "None"}}),
            )
            .unwrap();
        let api = |svc: &str, port: i32| -> APIService {
            serde_json::from_value(json!({"metadata": {"name": "v1.g"}, "spec": {"group": "g", "version": "v1", "groupPriorityMinimum": 1, "versionPriority": 1,
                "insecureSkipTLSVerify": true, "service": {"namespace": "default", "name": svc, "port": port}}})).unwrap()
        };
        let agg = Aggregator::new(
            Pem {
                cert: String::new(),
                key: String::new(),
            },
            BTreeMap::from([(
                ("default".to_string(), "flag".to_string()),
                "127.0.0.1:9".to_string(),
            )]),
        );
        let t = agg.resolve(&store, &api("cip", 8443)).unwrap();
        assert_eq!(
            (t.address.as_str(), t.server_name.as_str()),
            ("127.0.0.1:8443", "cip.default.svc")
        );
        assert!(
            matches!(agg.resolve(&store, &api("cip", 443)), Err(Error::Unresolvable(m)) if m == "port \"443\" not found")
        );
        assert_eq!(
            agg.resolve(&store, &api("ext", 7443)).unwrap().address,
            "localhost:7443"
        );
        assert!(agg.resolve(&store, &api("headless", 443)).is_err());
        assert!(agg.resolve(&store, &api("missing", 443)).is_err());
        assert_eq!(
            agg.resolve(&store, &api("flag", 443)).unwrap().address,
            "127.0.0.1:9"
        );
    }
}
