//! Helpers for the security tests of every server: certificates that must be
//! refused (expired, not yet valid), an HTTPS client for HTTP/1.1 or HTTP/2
//! ([`https_request`]), and raw HTTP/1.1 over TLS for requests no client
//! library would build.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use apiserver_lib::pki::{self, Ca, Pem};
use apiserver_lib::tls::{self, ServerTrust, ServingCert};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A client certificate of `ca` for `cn` that expired ten days ago.
pub fn expired_client(ca: &Ca, cn: &str) -> Result<Pem, pki::Error> {
    let past = time::OffsetDateTime::now_utc() - time::Duration::days(10);
    ca.client_valid(cn, &[], past - time::Duration::days(30), past)
}

/// A client certificate of `ca` for `cn` valid only from ten days from now.
pub fn not_yet_valid_client(ca: &Ca, cn: &str) -> Result<Pem, pki::Error> {
    let future = time::OffsetDateTime::now_utc() + time::Duration::days(10);
    ca.client_valid(cn, &[], future, future + time::Duration::days(30))
}

/// Why a raw request could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RawError {
    #[error("bad certificate or key: {0}")]
    Pem(String),
    #[error("TLS setup failed: {0}")]
    Tls(#[source] tls::Error),
    #[error("failed to connect to 127.0.0.1:{port}: {source}")]
    Connect {
        port: u16,
        #[source]
        source: std::io::Error,
    },
}

fn identity(pem: &Pem) -> Result<ServingCert, RawError> {
    Ok(ServingCert {
        chain: tls::parse_certs(pem.cert.as_bytes(), Path::new("client"))
            .map_err(|e| RawError::Pem(e.to_string()))?,
        key: PrivateKeyDer::from_pem_slice(pem.key.as_bytes())
            .map_err(|e| RawError::Pem(e.to_string()))?,
    })
}

/// Writes `request` as is on a new TLS connection to `127.0.0.1:port`
/// (server name `localhost`, verified against `server_ca`), presenting
/// `client` if given, and returns the status line of the answer (empty when
/// the server closed without one). Waits at most 10 s.
pub async fn raw_https_status_line(
    port: u16,
    server_ca: &str,
    client: Option<&Pem>,
    request: &[u8],
) -> Result<String, RawError> {
    let roots = tls::parse_certs(server_ca.as_bytes(), Path::new("server-ca"))
        .map_err(|e| RawError::Pem(e.to_string()))?;
    let cfg = tls::client_config(ServerTrust::Ca(roots), client.map(identity).transpose()?)
        .map_err(RawError::Tls)?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|source| RawError::Connect { port, source })?;
    let name = rustls::pki_types::ServerName::try_from("localhost")
        .map_err(|e| RawError::Pem(e.to_string()))?;
    let mut stream = connector
        .connect(name, tcp)
        .await
        .map_err(|source| RawError::Connect { port, source })?;
    // The server may answer (and close) before it has read everything.
    let _ = stream.write_all(request).await;
    let _ = stream.flush().await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        while !answer.windows(2).any(|w| w == b"\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let answer = String::from_utf8_lossy(&answer);
    Ok(answer.lines().next().unwrap_or_default().to_owned())
}

/// Opens a TLS connection to `127.0.0.1:port` without a client certificate,
/// writes `partial` (an unfinished request head) and waits, at most `limit`,
/// for the server to close it. `Ok(Some(after))` when it closed, `Ok(None)`
/// when it was still open at `limit` (a slowloris client would keep it).
pub async fn closed_after_partial_request(
    port: u16,
    server_ca: &str,
    partial: &[u8],
    limit: Duration,
) -> Result<Option<Duration>, RawError> {
    let roots = tls::parse_certs(server_ca.as_bytes(), Path::new("server-ca"))
        .map_err(|e| RawError::Pem(e.to_string()))?;
    let cfg = tls::client_config(ServerTrust::Ca(roots), None).map_err(RawError::Tls)?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|source| RawError::Connect { port, source })?;
    let name = rustls::pki_types::ServerName::try_from("localhost")
        .map_err(|e| RawError::Pem(e.to_string()))?;
    let mut stream = connector
        .connect(name, tcp)
        .await
        .map_err(|source| RawError::Connect { port, source })?;
    let started = std::time::Instant::now();
    let _ = stream.write_all(partial).await;
    let _ = stream.flush().await;
    let mut sink = Vec::new();
    match tokio::time::timeout(limit, stream.read_to_end(&mut sink)).await {
        Ok(_) => Ok(Some(started.elapsed())),
        Err(_) => Ok(None),
    }
}

/// HTTP version a request is sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Http1,
    Http2,
}

/// Both versions, for table tests.
pub const PROTOS: [Proto; 2] = [Proto::Http1, Proto::Http2];

/// One HTTPS request to `https://localhost:PORT{target}`.
#[derive(Debug, Clone)]
pub struct HttpsRequest<'a> {
    pub port: u16,
    /// CA the server's certificate is verified against (PEM).
    pub server_ca: &'a str,
    /// Client certificate to present, if any.
    pub identity: Option<&'a Pem>,
    pub proto: Proto,
    pub method: http::Method,
    pub target: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: Vec<u8>,
    /// How long to wait for the whole answer.
    pub timeout: Duration,
}

/// Send `req` on a fresh connection; the status and the body as text, or
/// what went wrong (no answer in time, connection refused, ...).
pub async fn https_request(req: HttpsRequest<'_>) -> Result<(http::StatusCode, String), String> {
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let roots = tls::parse_certs(req.server_ca.as_bytes(), Path::new("server CA"))
        .map_err(|e| e.to_string())?;
    let identity = req
        .identity
        .map(identity)
        .transpose()
        .map_err(|e| e.to_string())?;
    let cfg = tls::client_config(ServerTrust::Ca(roots), identity).map_err(|e| e.to_string())?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(cfg)
        .https_only();
    let https = match req.proto {
        Proto::Http1 => https.enable_http1().build(),
        Proto::Http2 => https.enable_http2().build(),
    };
    let client: Client<_, Full<bytes::Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(req.proto == Proto::Http2)
        .build(https);
    let mut builder = http::Request::builder()
        .method(req.method)
        .uri(format!("https://localhost:{}{}", req.port, req.target));
    for (k, v) in req.headers {
        builder = builder.header(*k, *v);
    }
    let request = builder
        .body(Full::new(bytes::Bytes::from(req.body)))
        .map_err(|e| format!("request not buildable: {e}"))?;
    let answer = async {
        let resp = client
            .request(request)
            .await
            .map_err(|e| format!("{e:?}"))?;
        let code = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{e:?}"))?
            .to_bytes();
        Ok((code, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(req.timeout, answer)
        .await
        .map_err(|_| format!("no answer within {} s", req.timeout.as_secs()))?
}

/// Values of a timeout query parameter (`timeout` on a node, `timeoutSeconds`
/// on the extension) that every server must refuse with a 400: signs,
/// fractions, exponents, hex, units, padding, encodings, NUL, non-UTF-8, a
/// list, one over the 3600 s bound, and integers past `i64`.
pub const HOSTILE_TIMEOUTS: [&str; 18] = [
    "-1",
    "-0",
    "1.5",
    "0.5",
    "1e3",
    "abc",
    "0x10",
    "5s",
    "+5",
    "%205",
    "5%20",
    "%00",
    "%ff",
    "1%2C2",
    "3601",
    "9223372036854775807",
    "9223372036854775808",
    "99999999999999999999999999",
];

/// Values to put in place of one path segment (namespace, pod, container) that
/// every server must refuse with a 4xx: traversal, encodings, NUL, non-UTF-8,
/// case, unicode, empty and oversized names. `near_64k` is the length of the
/// longest one (just under what the caller's URI type can carry).
pub fn hostile_path_segments(near_64k: usize) -> Vec<(&'static str, String)> {
    vec![
        ("dot-dot", "..".into()),
        ("dot", ".".into()),
        ("encoded dot-dot", "%2e%2e".into()),
        ("encoded dot-dot, upper case", "%2E%2E".into()),
        ("encoded traversal", "%2e%2e%2f%2e%2e%2fetc".into()),
        ("encoded slash", "%2F".into()),
        ("name with encoded slash", "a%2Fb".into()),
        ("dot-dot with encoded slashes", "..%2F..%2Fetc".into()),
        ("double-encoded dot-dot", "%252e%252e".into()),
        ("overlong UTF-8 dots", "%c0%ae%c0%ae".into()),
        ("encoded NUL", "%00".into()),
        ("name with encoded NUL", "a%00b".into()),
        ("non-UTF-8", "%ff%fe".into()),
        ("encoded newline", "a%0ab".into()),
        ("encoded backslash", "a%5Cb".into()),
        ("encoded space", "a%20b".into()),
        ("upper case", "Web".into()),
        ("unicode", "p%C3%B6d".into()),
        ("empty", String::new()),
        ("254 chars", "a".repeat(254)),
        ("64 KiB", "a".repeat(near_64k)),
    ]
}
