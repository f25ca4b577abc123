//! Downloading a PodCheckpoint's archives: the `podcheckpoints/archive`
//! subresource of the aggregated group and the node agent's endpoint behind
//! it.
//!
//! ```text
//! plugin    GET /apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/NS/podcheckpoints/NAME/archive?container=C&offset=O&length=L
//! extension GET https://NODE:PORT/podcheckpoints/NS/NAME/archive?container=C&uid=UID&offset=O&length=L
//! ```
//!
//! Both answer `200` with the bytes `[O, O+n)` of the archive
//! (`application/octet-stream`, `Content-Length: n`, `Content-Range: bytes
//! O-(O+n-1)/SIZE`); `n` is `L` or less: the rest of the archive, or the
//! server's cap on one range. A range is chosen by the query, not by a
//! `Range` header: the query is what kube-apiserver's aggregator proxies
//! unchanged. An offset at or past the end of a non-empty archive is `416`
//! (`Content-Range: bytes */SIZE`). The node agent finds the file from the
//! object's status, never from a path in the request.

use crate::validation;

/// The subresource's name.
pub const ARCHIVE_SUBRESOURCE: &str = "archive";
/// `podcheckpoints/archive`, as discovery and RBAC name it.
pub const PODCHECKPOINT_ARCHIVE_RESOURCE: &str = "podcheckpoints/archive";
/// The media type of archive bytes.
pub const OCTET_STREAM: &str = "application/octet-stream";
/// Longest query accepted.
pub const MAX_QUERY_BYTES: usize = 1024;

/// `/apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/NS/podcheckpoints/NAME/archive`.
pub fn archive_path(namespace: &str, name: &str) -> String {
    format!(
        "/apis/{}/{}/namespaces/{namespace}/{}/{name}/{ARCHIVE_SUBRESOURCE}",
        crate::SUBRESOURCES_GROUP,
        crate::VERSION,
        crate::podcheckpoint::PLURAL
    )
}

/// The node agent's path: `/podcheckpoints/NS/NAME/archive`.
pub fn node_archive_path(namespace: &str, name: &str) -> String {
    format!(
        "/{}/{namespace}/{name}/{ARCHIVE_SUBRESOURCE}",
        crate::podcheckpoint::PLURAL
    )
}

/// Why an archive request's query was refused (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("invalid query: longer than {MAX_QUERY_BYTES} bytes")]
    TooLong,
    #[error("invalid {name} {value:?}: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error("{0} is required")]
    Missing(&'static str),
}

/// What an archive request asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveQuery {
    /// `container`: empty when not given.
    pub container: String,
    /// `uid` (the node endpoint's: the object's UID the extension read).
    pub uid: String,
    /// `offset`: the first byte (0 when not given).
    pub offset: u64,
    /// `length`: at most this many bytes (to the end when not given); never 0.
    pub length: Option<u64>,
}

impl ArchiveQuery {
    /// Parses a query string: the last value of each key wins, unknown keys
    /// are ignored (as kube-apiserver's parameter codec does).
    pub fn parse(query: &str) -> Result<Self, QueryError> {
        if query.len() > MAX_QUERY_BYTES {
            return Err(QueryError::TooLong);
        }
        let mut q = ArchiveQuery::default();
        let number = |name: &'static str, v: &str| {
            v.parse::<u64>().map_err(|_| QueryError::Invalid {
                name,
                value: v.to_owned(),
                reason: "must be a non-negative integer".into(),
            })
        };
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match &*k {
                "container" => q.container = v.into_owned(),
                "uid" => q.uid = v.into_owned(),
                "offset" => q.offset = number("offset", &v)?,
                "length" => {
                    let n = number("length", &v)?;
                    if n == 0 {
                        return Err(QueryError::Invalid {
                            name: "length",
                            value: v.into_owned(),
                            reason: "must be positive".into(),
                        });
                    }
                    q.length = Some(n);
                }
                _ => {}
            }
        }
        if !q.container.is_empty() {
            let errs = validation::is_dns1123_label(&q.container);
            if !errs.is_empty() {
                return Err(QueryError::Invalid {
                    name: "container",
                    value: q.container,
                    reason: errs.join("; "),
                });
            }
        }
        Ok(q)
    }

    /// The query string, keys in a fixed order (empty ones left out).
    pub fn to_query(&self) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        if !self.container.is_empty() {
            s.append_pair("container", &self.container);
        }
        if !self.uid.is_empty() {
            s.append_pair("uid", &self.uid);
        }
        s.append_pair("offset", &self.offset.to_string());
        if let Some(l) = self.length {
            s.append_pair("length", &l.to_string());
        }
        s.finish()
    }
}

/// The bytes `[start, end)` of an archive of `size` bytes that a request
/// for `offset`/`length` gets, capped at `cap` bytes; `Err(size)` when the
/// offset is at or past the end of a non-empty archive (416).
pub fn satisfiable(
    offset: u64,
    length: Option<u64>,
    cap: u64,
    size: u64,
) -> Result<(u64, u64), u64> {
    if offset > size || (offset == size && size > 0) {
        return Err(size);
    }
    let want = length.unwrap_or(u64::MAX).min(cap.max(1));
    Ok((offset, offset.saturating_add(want).min(size)))
}

/// `bytes START-LAST/SIZE` for `[start, end)`; `bytes */SIZE` for an empty range.
pub fn content_range(start: u64, end: u64, size: u64) -> String {
    if end > start {
        format!("bytes {start}-{}/{size}", end - 1)
    } else {
        format!("bytes */{size}")
    }
}

/// `(start, end exclusive, size)` of a `Content-Range: bytes A-B/SIZE`;
/// `(0, 0, SIZE)` for `bytes */SIZE`.
pub fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, size) = rest.split_once('/')?;
    let size = size.parse::<u64>().ok()?;
    if range == "*" {
        return Some((0, 0, size));
    }
    let (a, b) = range.split_once('-')?;
    let (a, b) = (a.parse::<u64>().ok()?, b.parse::<u64>().ok()?);
    (a <= b && b < size).then_some((a, b + 1, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_exact() {
        assert_eq!(
            archive_path("default", "web-x7k2p"),
            "/apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/default/podcheckpoints/web-x7k2p/archive"
        );
        assert_eq!(
            node_archive_path("default", "web-x7k2p"),
            "/podcheckpoints/default/web-x7k2p/archive"
        );
    }

    #[test]
    fn queries_parse_and_print() {
        let q = ArchiveQuery::parse("container=app&offset=5&length=10&other=x").unwrap();
        assert_eq!(
            q,
            ArchiveQuery {
                container: "app".into(),
                uid: String::new(),
                offset: 5,
                length: Some(10),
            }
        );
        assert_eq!(q.to_query(), "container=app&offset=5&length=10");
        assert_eq!(ArchiveQuery::parse("").unwrap(), ArchiveQuery::default());
        assert_eq!(ArchiveQuery::parse("offset=1&offset=2").unwrap().offset, 2);
        for (bad, message) in [
            (
                "offset=-1",
                "invalid offset \"-1\": must be a non-negative integer",
            ),
            ("length=0", "invalid length \"0\": must be positive"),
            (
                "length=x",
                "invalid length \"x\": must be a non-negative integer",
            ),
        ] {
            assert_eq!(ArchiveQuery::parse(bad).unwrap_err().to_string(), message);
        }
        assert!(ArchiveQuery::parse("container=..").is_err());
        assert_eq!(
            ArchiveQuery::parse(&"a".repeat(MAX_QUERY_BYTES + 1)).unwrap_err(),
            QueryError::TooLong
        );
    }

    #[test]
    fn ranges() {
        assert_eq!(satisfiable(0, None, 100, 10), Ok((0, 10)));
        assert_eq!(satisfiable(4, Some(3), 100, 10), Ok((4, 7)));
        assert_eq!(satisfiable(4, Some(30), 100, 10), Ok((4, 10)));
        assert_eq!(satisfiable(0, None, 4, 10), Ok((0, 4)));
        assert_eq!(satisfiable(0, Some(8), 4, 10), Ok((0, 4)));
        assert_eq!(satisfiable(10, None, 4, 10), Err(10));
        assert_eq!(satisfiable(11, None, 4, 10), Err(10));
        assert_eq!(satisfiable(0, None, 4, 0), Ok((0, 0)));
        assert_eq!(
            satisfiable(u64::MAX, Some(u64::MAX), u64::MAX, u64::MAX),
            Err(u64::MAX)
        );
        assert_eq!(content_range(4, 7, 10), "bytes 4-6/10");
        assert_eq!(content_range(0, 0, 0), "bytes */0");
        assert_eq!(parse_content_range("bytes 4-6/10"), Some((4, 7, 10)));
        assert_eq!(parse_content_range("bytes */10"), Some((0, 0, 10)));
        for bad in [
            "bytes 6-4/10",
            "bytes 4-10/10",
            "4-6/10",
            "bytes a-b/c",
            "bytes 1-2",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad}");
        }
    }
}
