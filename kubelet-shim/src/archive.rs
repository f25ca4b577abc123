//! Serving the bytes of the archives the node agent wrote:
//! `GET /podcheckpoints/{ns}/{name}/archive?container=C&uid=UID&offset=O&length=L`
//! (the node half of `podcheckpoints/archive`, [`api_types::download`]).
//!
//! The file is found from the PodCheckpoint as the API has it now, never from
//! a path in the request: the object must exist with the UID the caller read
//! (a replaced object of the same name is not the one the caller was allowed
//! to read), have been fulfilled by this node, be Ready, and list the
//! container with an archive `<uid>/<file>` in its own directory (anything
//! else in the status is refused). The file is opened without following
//! symbolic links and streamed in a range (flat memory: a small buffer).
//!
//! | answer | when |
//! |---|---|
//! | 200, `Content-Range: bytes A-B/SIZE` | the bytes |
//! | 400 | bad names, query, no `uid` or `container` |
//! | 404 | no such object (or another UID), not this node's, no archive of the container, the file is gone |
//! | 409 | the object is not Ready |
//! | 416, `Content-Range: bytes */SIZE` | `offset` at or past the end |
//! | 500 | a status path outside the object's directory; I/O errors |
//! | 503 | the API server cannot be read |
//!
//! Authentication and authorization are the server's (`get nodes/checkpoint`
//! for this node, [`crate::server`]).

use std::collections::BTreeMap;
use std::io::SeekFrom;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use api_types::PodCheckpoint;
use api_types::download::{self, ArchiveQuery, OCTET_STREAM};
use api_types::validation;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use http::{HeaderValue, StatusCode, header};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::controller::archives::is_uid;
use crate::routes::{ARCHIVE_PREFIX, MAX_PATH_BYTES, Reject};

/// Read buffer of the stream (the memory one download holds).
pub const STREAM_BUFFER: usize = 256 * 1024;

/// PodCheckpoints by namespace and name, as the API has them now.
pub trait PodCheckpointGetter: Send + Sync + std::fmt::Debug {
    /// `Ok(None)`: not found; `Err`: the API server could not be read.
    fn get<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<PodCheckpoint>, String>>;
}

/// [`PodCheckpointGetter`] through kube-rs.
#[derive(Clone)]
pub struct KubePodCheckpoints {
    client: kube::Client,
}

impl std::fmt::Debug for KubePodCheckpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubePodCheckpoints").finish_non_exhaustive()
    }
}

impl KubePodCheckpoints {
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }
}

impl PodCheckpointGetter for KubePodCheckpoints {
    fn get<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<PodCheckpoint>, String>> {
        Box::pin(async move {
            let api: kube::Api<PodCheckpoint> =
                kube::Api::namespaced(self.client.clone(), namespace);
            api.get_opt(name).await.map_err(|e| e.to_string())
        })
    }
}

/// A [`PodCheckpointGetter`] over objects in memory (for tests).
#[derive(Debug, Default)]
pub struct FakePodCheckpoints {
    objects: Mutex<BTreeMap<(String, String), PodCheckpoint>>,
    failure: Mutex<Option<String>>,
}

impl FakePodCheckpoints {
    pub fn insert(&self, pc: PodCheckpoint) {
        let key = (
            pc.metadata.namespace.clone().unwrap_or_default(),
            pc.metadata.name.clone().unwrap_or_default(),
        );
        if let Ok(mut o) = self.objects.lock() {
            o.insert(key, pc);
        }
    }

    /// Every read fails with `message` from now on.
    pub fn fail(&self, message: &str) {
        if let Ok(mut f) = self.failure.lock() {
            *f = Some(message.to_owned());
        }
    }
}

impl PodCheckpointGetter for FakePodCheckpoints {
    fn get<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<PodCheckpoint>, String>> {
        let failure = self.failure.lock().ok().and_then(|f| f.clone());
        let found = self
            .objects
            .lock()
            .ok()
            .and_then(|o| o.get(&(namespace.to_owned(), name.to_owned())).cloned());
        Box::pin(async move {
            match failure {
                Some(message) => Err(message),
                None => Ok(found),
            }
        })
    }
}

/// A parsed archive request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveRequest {
    pub namespace: String,
    pub name: String,
    pub query: ArchiveQuery,
}

/// Parses `/podcheckpoints/{ns}/{name}/archive` and its query: wrong shapes
/// are 404, bad values 400; `container` and `uid` are required.
pub fn parse_archive_request(path: &str, query: Option<&str>) -> Result<ArchiveRequest, Reject> {
    let bad = |m: String| Reject::new(StatusCode::BAD_REQUEST, m);
    if path.len() > MAX_PATH_BYTES {
        return Err(bad(format!(
            "invalid request path: longer than {MAX_PATH_BYTES} bytes"
        )));
    }
    let rest = path
        .strip_prefix(ARCHIVE_PREFIX)
        .ok_or_else(|| Reject::new(StatusCode::NOT_FOUND, "404 page not found\n"))?;
    let segments: Vec<&str> = rest.split('/').collect();
    let [namespace, name, download::ARCHIVE_SUBRESOURCE] = segments.as_slice() else {
        return Err(Reject::new(StatusCode::NOT_FOUND, "404 page not found\n"));
    };
    validation::validate_namespace(namespace).map_err(|e| bad(e.to_string()))?;
    let errs = validation::is_dns1123_subdomain(name);
    if !errs.is_empty() {
        return Err(bad(format!(
            "invalid podcheckpoint name {}: {}",
            validation::quote_for_message(name),
            errs.join("; ")
        )));
    }
    let query = ArchiveQuery::parse(query.unwrap_or_default()).map_err(|e| bad(e.to_string()))?;
    if query.container.is_empty() {
        return Err(bad("container is required".into()));
    }
    if !is_uid(&query.uid) {
        return Err(bad("uid is required: the UID of the PodCheckpoint".into()));
    }
    Ok(ArchiveRequest {
        namespace: (*namespace).to_owned(),
        name: (*name).to_owned(),
        query,
    })
}

/// Serves archives from `<root-dir>/checkpoints`.
#[derive(Debug, Clone)]
pub struct ArchiveServer {
    getter: Arc<dyn PodCheckpointGetter>,
    /// `<root-dir>/checkpoints`: the status's paths are relative to it.
    root: PathBuf,
    node: String,
}

/// The range of an open archive to send.
#[derive(Debug)]
pub struct Opened {
    pub file: tokio::fs::File,
    pub start: u64,
    pub end: u64,
    pub size: u64,
    /// The status's relative path, for logs.
    pub archive: String,
}

impl ArchiveServer {
    pub fn new(getter: Arc<dyn PodCheckpointGetter>, root: PathBuf, node: String) -> Self {
        Self { getter, root, node }
    }

    /// The answer to a parsed request: the bytes, or the refusal.
    pub async fn respond(&self, req: &ArchiveRequest) -> Response {
        match self.open(req).await {
            Ok(opened) => stream(opened),
            Err(refusal) => refusal.into_response(),
        }
    }

    /// Finds and opens the archive a request names, positioned at its range.
    pub async fn open(&self, req: &ArchiveRequest) -> Result<Opened, Refusal> {
        let (ns, name, q) = (&req.namespace, &req.name, &req.query);
        let object = format!("podcheckpoint {ns}/{name}");
        let reject = |code, m: String| Err(Refusal::new(code, m));
        let pc = match self.getter.get(ns, name).await {
            Ok(Some(pc)) => pc,
            Ok(None) => return reject(StatusCode::NOT_FOUND, format!("{object} does not exist")),
            Err(e) => {
                return reject(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("failed to read {object}: {e}"),
                );
            }
        };
        let uid = pc.metadata.uid.clone().unwrap_or_default();
        if uid != q.uid {
            return reject(
                StatusCode::NOT_FOUND,
                format!("{object} with UID {} does not exist", q.uid),
            );
        }
        let status = pc.status.clone().unwrap_or_default();
        if status.node_name.as_deref() != Some(self.node.as_str()) {
            return reject(
                StatusCode::NOT_FOUND,
                format!("{object} was not checkpointed on node {}", self.node),
            );
        }
        if !pc.is_ready() {
            return reject(StatusCode::CONFLICT, format!("{object} is not Ready"));
        }
        let Some(archive) = status
            .checkpointed_containers
            .iter()
            .find(|c| c.name == q.container)
            .and_then(|c| c.archive.clone())
        else {
            return reject(
                StatusCode::NOT_FOUND,
                format!("container {} has no archive in {object}", q.container),
            );
        };
        let Some(file_name) = own_file(&archive.path, &uid) else {
            tracing::error!(%object, path = %archive.path, "archive path outside the object's directory");
            return reject(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "refusing the archive path {:?} of {object}: not a file in its own directory",
                    archive.path
                ),
            );
        };
        let path = self.root.join(&uid).join(file_name);
        let gone = || {
            Refusal::new(
                StatusCode::NOT_FOUND,
                format!(
                    "archive {} of {object} is gone from node {}",
                    archive.path, self.node
                ),
            )
        };
        let io_error = |e: std::io::Error| {
            Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("failed to read archive {} of {object}: {e}", archive.path),
            )
        };
        // Neither the object's directory nor the file may be a symbolic link.
        match tokio::fs::symlink_metadata(self.root.join(&uid)).await {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(_) => return Err(gone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(gone()),
            Err(e) => return Err(io_error(e)),
        }
        let link_meta = match tokio::fs::symlink_metadata(&path).await {
            Ok(m) if m.file_type().is_file() => m,
            Ok(_) => return Err(gone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(gone()),
            Err(e) => return Err(io_error(e)),
        };
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(gone()),
            Err(e) => return Err(io_error(e)),
        };
        let meta = file.metadata().await.map_err(io_error)?;
        if (meta.dev(), meta.ino()) != (link_meta.dev(), link_meta.ino()) {
            // Replaced between the two looks: treat it as gone, never follow it.
            return Err(gone());
        }
        let size = meta.len();
        let (start, end) = match download::satisfiable(q.offset, q.length, u64::MAX, size) {
            Ok(r) => r,
            Err(size) => {
                let mut refusal = Refusal::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    format!(
                        "offset {} is past the end of archive {} ({size} bytes)",
                        q.offset, archive.path
                    ),
                );
                refusal.size = Some(size);
                return Err(refusal);
            }
        };
        file.seek(SeekFrom::Start(start)).await.map_err(io_error)?;
        Ok(Opened {
            file,
            start,
            end,
            size,
            archive: archive.path,
        })
    }
}

/// Why an archive is not served: a code and a plain-text message (and, for
/// 416, the archive's size for `Content-Range: bytes */SIZE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: StatusCode,
    pub message: String,
    pub size: Option<u64>,
}

impl Refusal {
    fn new(code: StatusCode, message: String) -> Self {
        Self {
            code,
            message,
            size: None,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut resp = Reject::new(self.code, self.message).into_response();
        if let Some(size) = self.size
            && let Ok(v) = HeaderValue::from_str(&download::content_range(0, 0, size))
        {
            resp.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        resp
    }
}

/// The file name of `path` when it is `<uid>/<file>`: one plain file name
/// in the object's own directory, not hidden (temporary names are).
fn own_file<'a>(path: &'a str, uid: &str) -> Option<&'a str> {
    let (dir, file) = path.split_once('/')?;
    let plain = !file.is_empty()
        && !file.starts_with('.')
        && !file.contains('/')
        && !file.contains('\0')
        && file.ends_with(api_types::archive::ARCHIVE_SUFFIX);
    (dir == uid && is_uid(dir) && plain).then_some(file)
}

/// 200 with the range's bytes, read as they are sent.
fn stream(opened: Opened) -> Response {
    let len = opened.end - opened.start;
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
        opened.file.take(len),
        STREAM_BUFFER,
    ));
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(OCTET_STREAM));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&download::content_range(
        opened.start,
        opened.end,
        opened.size,
    )) {
        h.insert(header::CONTENT_RANGE, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use api_types::podcheckpoint::{
        CheckpointArchive, PodCheckpointContainerStatus, PodCheckpointStatus, reason,
    };
    use api_types::{PodCheckpointSpec, k8s_openapi};
    use http_body_util::BodyExt;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    const UID: &str = "0b7ae7c1-2b1a-4bd4-9f31-5b5c1b3fd7d1";
    const FILE: &str = "checkpoint-web_apps-app-2026-01-02T03:04:05Z.tar";

    fn pc(node: &str, ready: bool) -> PodCheckpoint {
        let mut pc = PodCheckpoint::new(
            "web-1",
            PodCheckpointSpec {
                source_pod_name: "web".into(),
                ..Default::default()
            },
        );
        pc.metadata.namespace = Some("apps".into());
        pc.metadata.uid = Some(UID.into());
        pc.status = Some(PodCheckpointStatus {
            node_name: Some(node.into()),
            checkpointed_containers: vec![PodCheckpointContainerStatus {
                name: "app".into(),
                archive: Some(CheckpointArchive {
                    path: format!("{UID}/{FILE}"),
                    size_bytes: 10,
                    sha256: String::new(),
                }),
                ..Default::default()
            }],
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                reason: if ready {
                    reason::COMPLETED
                } else {
                    reason::IN_PROGRESS
                }
                .into(),
                message: String::new(),
                last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
                observed_generation: None,
            }],
            ..Default::default()
        });
        pc
    }

    struct Setup {
        dir: tempfile::TempDir,
        fake: Arc<FakePodCheckpoints>,
        server: ArchiveServer,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(UID)).unwrap();
        std::fs::write(dir.path().join(UID).join(FILE), b"0123456789").unwrap();
        let fake = Arc::new(FakePodCheckpoints::default());
        fake.insert(pc("node-a", true));
        let server = ArchiveServer::new(fake.clone(), dir.path().to_owned(), "node-a".into());
        Setup { dir, fake, server }
    }

    fn request(query: &str) -> ArchiveRequest {
        parse_archive_request("/podcheckpoints/apps/web-1/archive", Some(query)).unwrap()
    }

    async fn answer(s: &Setup, query: &str) -> (u16, Option<String>, String) {
        let resp = s.server.respond(&request(query)).await;
        let code = resp.status().as_u16();
        let range = resp
            .headers()
            .get(header::CONTENT_RANGE)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (code, range, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn ranges_of_the_file() {
        let s = setup();
        let q = |rest: &str| format!("container=app&uid={UID}{rest}");
        assert_eq!(
            answer(&s, &q("")).await,
            (200, Some("bytes 0-9/10".into()), "0123456789".into())
        );
        assert_eq!(
            answer(&s, &q("&offset=3&length=4")).await,
            (200, Some("bytes 3-6/10".into()), "3456".into())
        );
        assert_eq!(
            answer(&s, &q("&offset=8&length=40")).await,
            (200, Some("bytes 8-9/10".into()), "89".into())
        );
        let (code, range, message) = answer(&s, &q("&offset=10")).await;
        assert_eq!((code, range.as_deref()), (416, Some("bytes */10")));
        assert_eq!(
            message,
            format!("offset 10 is past the end of archive {UID}/{FILE} (10 bytes)")
        );
    }

    #[tokio::test]
    async fn refusals_name_what_is_wrong() {
        let s = setup();
        let q = format!("container=app&uid={UID}");
        // Another UID: the object was replaced.
        let other = "container=app&uid=11111111-2b1a-4bd4-9f31-5b5c1b3fd7d1";
        assert_eq!(
            answer(&s, other).await,
            (
                404,
                None,
                "podcheckpoint apps/web-1 with UID 11111111-2b1a-4bd4-9f31-5b5c1b3fd7d1 does not exist".into()
            )
        );
        assert_eq!(
            answer(&s, &format!("container=db&uid={UID}")).await.2,
            "container db has no archive in podcheckpoint apps/web-1"
        );
        s.fake.insert(pc("node-b", true));
        assert_eq!(
            answer(&s, &q).await,
            (
                404,
                None,
                "podcheckpoint apps/web-1 was not checkpointed on node node-a".into()
            )
        );
        s.fake.insert(pc("node-a", false));
        assert_eq!(
            answer(&s, &q).await,
            (409, None, "podcheckpoint apps/web-1 is not Ready".into())
        );
        s.fake.insert(pc("node-a", true));
        std::fs::remove_file(s.dir.path().join(UID).join(FILE)).unwrap();
        assert_eq!(
            answer(&s, &q).await,
            (
                404,
                None,
                format!(
                    "archive {UID}/{FILE} of podcheckpoint apps/web-1 is gone from node node-a"
                )
            )
        );
        // A symbolic link in its place is not followed.
        std::os::unix::fs::symlink("/etc/hostname", s.dir.path().join(UID).join(FILE)).unwrap();
        assert_eq!(answer(&s, &q).await.0, 404);
        s.fake.fail("connection refused");
        assert_eq!(
            answer(&s, &q).await,
            (
                503,
                None,
                "failed to read podcheckpoint apps/web-1: connection refused".into()
            )
        );
        let fresh = setup();
        let missing = ArchiveServer::new(
            Arc::new(FakePodCheckpoints::default()),
            fresh.dir.path().to_owned(),
            "node-a".into(),
        );
        let resp = missing.respond(&request(&q)).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn status_paths_outside_the_object_directory_are_refused() {
        let s = setup();
        for bad in [
            format!("{UID}/../../etc/shadow.tar"),
            "/etc/shadow.tar".to_owned(),
            format!("{UID}/.{FILE}.partial"),
            format!("other/{FILE}"),
            format!("{UID}/sub/{FILE}"),
            format!("{UID}/notes.txt"),
        ] {
            let mut obj = pc("node-a", true);
            if let Some(st) = obj.status.as_mut() {
                st.checkpointed_containers[0].archive.as_mut().unwrap().path = bad.clone();
            }
            s.fake.insert(obj);
            let (code, _, message) = answer(&s, &format!("container=app&uid={UID}")).await;
            assert_eq!(code, 500, "{bad}: {message}");
            assert!(
                message.starts_with("refusing the archive path"),
                "{message}"
            );
        }
    }

    #[test]
    fn request_parsing() {
        let r = request(&format!("container=app&uid={UID}&offset=2&length=3"));
        assert_eq!((r.namespace.as_str(), r.name.as_str()), ("apps", "web-1"));
        assert_eq!((r.query.offset, r.query.length), (2, Some(3)));
        for (path, query, code, message) in [
            (
                "/podcheckpoints/apps/web-1",
                "",
                404,
                "404 page not found\n",
            ),
            (
                "/podcheckpoints/apps/web-1/archive",
                "uid=x",
                400,
                "container is required",
            ),
            (
                "/podcheckpoints/apps/web-1/archive",
                "container=app",
                400,
                "uid is required: the UID of the PodCheckpoint",
            ),
            (
                "/podcheckpoints/apps/web-1/archive",
                "container=app&uid=a/b",
                400,
                "uid is required: the UID of the PodCheckpoint",
            ),
            (
                "/podcheckpoints/apps/web-1/archive",
                "container=app&uid=x&offset=-1",
                400,
                "invalid offset \"-1\": must be a non-negative integer",
            ),
        ] {
            let e = parse_archive_request(path, Some(query)).unwrap_err();
            assert_eq!(
                (e.code.as_u16(), e.message.as_str()),
                (code, message),
                "{path}?{query}"
            );
        }
        let e = parse_archive_request("/podcheckpoints/a..b/web-1/archive", None).unwrap_err();
        assert_eq!(e.code, StatusCode::BAD_REQUEST);
    }
}
