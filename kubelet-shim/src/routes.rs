//! The HTTP API, answered the way the kubelet's server answers
//! (`pkg/kubelet/server/server.go`: `checkpoint`, the auth filter of
//! `InstallAuthFilter`):
//!
//! | request | answer |
//! |---|---|
//! | `POST /checkpoint/{ns}/{pod}/{container}?timeout=S` | 200 `{"items":["<archive>"]}` (application/json) |
//! | gate `ContainerCheckpoint` off | 404 `404 page not found` (the route does not exist) |
//! | no or unknown credentials | 401 `Unauthorized` |
//! | denied | 403 `Forbidden (user=U, verb=create, resource=nodes, subresource=checkpoint)` |
//! | another method | 405 `405: Method Not Allowed` |
//! | bad name or timeout | 400 (the validation message) |
//! | unknown pod / container | 404 `pod does not exist` / `container C does not exist` |
//! | container not running, checkpoint in progress | 409 |
//! | too many checkpoints in flight | 429 |
//! | runtime or CRIU failure | 500 `checkpointing of ns/pod/c failed (rpc error: ...)` |
//! | the runtime did not answer in time | 504 `checkpointing of ns/pod/c failed (timed out ...)` |
//!
//! Error bodies are plain text, as the kubelet's are. The request body is
//! never read; the path and query are bounded; nothing in a request can
//! make the server panic. This module parses requests and writes answers;
//! [`crate::server`] routes them.

use api_types::ContainerRef;
use api_types::validation::parse_timeout_seconds;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

/// Path prefix of the archive endpoint.
pub const ARCHIVE_PREFIX: &str = "/podcheckpoints/";

/// Longest request path accepted (valid targets need well under 400 bytes).
pub const MAX_PATH_BYTES: usize = 1024;
/// Longest query string accepted.
pub const MAX_QUERY_BYTES: usize = 1024;
/// Path prefix of the checkpoint endpoint.
pub const CHECKPOINT_PREFIX: &str = "/checkpoint/";

/// A plain-text answer, as the kubelet writes its errors.
pub fn text(code: StatusCode, message: impl Into<String>) -> Response {
    let mut resp = (code, message.into()).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

pub fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "404 page not found\n")
}

/// A refusal: a code and a plain-text message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub code: StatusCode,
    pub message: String,
}

impl Reject {
    pub fn new(code: StatusCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "404 page not found\n")
    }
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        text(self.code, self.message)
    }
}

/// Route name for metrics labels: never the raw path.
pub fn route_of(path: &str) -> &'static str {
    if path.starts_with(CHECKPOINT_PREFIX) {
        "checkpoint"
    } else if path.starts_with(ARCHIVE_PREFIX) {
        "archive"
    } else if path == "/metrics" {
        "metrics"
    } else if path == "/healthz" || path.starts_with("/healthz/") {
        "healthz"
    } else if path == "/livez" || path.starts_with("/livez/") {
        "livez"
    } else if path == "/readyz" || path.starts_with("/readyz/") {
        "readyz"
    } else {
        "other"
    }
}

/// 405 with the one method allowed.
pub fn method_not_allowed(allow: &'static str) -> Response {
    let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "405: Method Not Allowed");
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

/// The three decoded path segments after `/checkpoint/`, or why not.
pub fn split_target(path: &str) -> Result<[String; 3], Reject> {
    let rest = path
        .strip_prefix(CHECKPOINT_PREFIX)
        .ok_or_else(Reject::not_found)?;
    let segments: Vec<&str> = rest.split('/').collect();
    let [ns, pod, container] = segments.as_slice() else {
        return Err(Reject::not_found());
    };
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| {
                Reject::new(
                    StatusCode::BAD_REQUEST,
                    "invalid request path: not UTF-8 after percent-decoding",
                )
            })
    };
    Ok([decode(ns)?, decode(pod)?, decode(container)?])
}

/// The last `timeout` query value (as the kubelet reads it), validated.
fn timeout_of(query: Option<&str>) -> Result<i64, Reject> {
    let query = query.unwrap_or_default();
    if query.len() > MAX_QUERY_BYTES {
        return Err(Reject::new(
            StatusCode::BAD_REQUEST,
            format!("invalid query: longer than {MAX_QUERY_BYTES} bytes"),
        ));
    }
    let last = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "timeout")
        .map(|(_, v)| v.into_owned())
        .last();
    match last {
        None => Ok(0),
        Some(raw) => parse_timeout_seconds(&raw, api_types::MAX_TIMEOUT_SECONDS)
            .map_err(|e| Reject::new(StatusCode::BAD_REQUEST, e.to_string())),
    }
}

/// What a `POST /checkpoint/{ns}/{pod}/{container}?timeout=S` asks for, once
/// its path and query are decoded and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRequest {
    pub container: ContainerRef,
    /// Seconds; 0 = the runtime request timeout.
    pub timeout: i64,
}

/// Parses and validates the path (`/checkpoint/{ns}/{pod}/{container}`,
/// percent-encoded) and the query of a checkpoint request: a pure function of
/// the request line, so it can be fuzzed. Wrong shapes are 404 (not the
/// endpoint), everything else refused is 400; a name that passes is a valid
/// DNS-1123 name and safe in a file name.
pub fn parse_checkpoint_request(
    path: &str,
    query: Option<&str>,
) -> Result<CheckpointRequest, Reject> {
    if path.len() > MAX_PATH_BYTES {
        return Err(Reject::new(
            StatusCode::BAD_REQUEST,
            format!("invalid request path: longer than {MAX_PATH_BYTES} bytes"),
        ));
    }
    let [namespace, pod, container] = split_target(path)?;
    let container = ContainerRef::new(namespace, pod, container);
    container
        .validate()
        .map_err(|e| Reject::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let timeout = timeout_of(query)?;
    Ok(CheckpointRequest { container, timeout })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_named_not_echoed() {
        assert_eq!(route_of("/checkpoint/a/b/c"), "checkpoint");
        assert_eq!(route_of("/healthz/runtime"), "healthz");
        assert_eq!(route_of("/metrics"), "metrics");
        assert_eq!(route_of("/../../etc/passwd"), "other");
    }

    #[test]
    fn path_segments() {
        assert!(split_target("/checkpoint/a/b").is_err());
        assert!(split_target("/checkpoint/a/b/c/d").is_err());
        assert!(split_target("/checkpoint/a/b/c/").is_err());
        let [a, b, c] = split_target("/checkpoint/ns/p%2Fx/c").unwrap();
        assert_eq!((a.as_str(), b.as_str(), c.as_str()), ("ns", "p/x", "c"));
        let bad = split_target("/checkpoint/ns/%ff/c").unwrap_err();
        assert_eq!(bad.code, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn request_line_parsing() {
        let r = parse_checkpoint_request("/checkpoint/default/web/app", Some("timeout=9")).unwrap();
        assert_eq!(
            r,
            CheckpointRequest {
                container: ContainerRef::new("default", "web", "app"),
                timeout: 9,
            }
        );
        let too_long = format!("/checkpoint/default/web/{}", "a".repeat(MAX_PATH_BYTES));
        for (path, query, code) in [
            ("/checkpoint/a/b", None, StatusCode::NOT_FOUND),
            ("/checkpoint/../b/c", None, StatusCode::BAD_REQUEST),
            (
                "/checkpoint/a/b/c",
                Some("timeout=-1"),
                StatusCode::BAD_REQUEST,
            ),
            (too_long.as_str(), None, StatusCode::BAD_REQUEST),
        ] {
            assert_eq!(
                parse_checkpoint_request(path, query).unwrap_err().code,
                code,
                "{path:.40} {query:?}"
            );
        }
    }

    #[test]
    fn timeouts_take_the_last_value() {
        assert_eq!(timeout_of(None).unwrap(), 0);
        assert_eq!(timeout_of(Some("timeout=5&timeout=7")).unwrap(), 7);
        assert_eq!(timeout_of(Some("other=x")).unwrap(), 0);
        for bad in ["timeout=-1", "timeout=1.5", "timeout=abc", "timeout=3601"] {
            assert_eq!(
                timeout_of(Some(bad)).unwrap_err().code,
                StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }
    }
}
