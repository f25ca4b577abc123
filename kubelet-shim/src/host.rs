//! [`Host`]: checkpointing one container through CRI, the one method of the
//! kubelet's `HostInterface` (`pkg/kubelet/server/server.go`) the checkpoint
//! endpoint calls, done the way the kubelet does it (`pkg/kubelet/kubelet.go`
//! `CheckpointContainer`), with the guarantees the kubelet lacks:
//!
//! * the archive name keeps the kubelet's form but is never reused: names are
//!   reserved in-process and checked on disk, a second archive in the same
//!   second gets `-2`, `-3`, ... ([`api_types::archive::archive_file_name`]);
//! * a failed, timed-out or abandoned checkpoint leaves no file behind, even
//!   when the runtime finishes writing after we stopped waiting;
//! * one checkpoint per container at a time: a second request while one is in
//!   progress (including one the runtime is still finishing after a timeout)
//!   is refused with 409, never interleaved;
//! * the wait is bounded: `timeout` seconds (the runtime is told the same),
//!   or `--runtime-request-timeout` when 0, plus a short grace.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api_types::ContainerRef;
use api_types::k8s_openapi::jiff::Timestamp;
use http::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::metrics::{CallResult, Metrics};
use crate::runtime::{
    self, CheckpointContainerRequest, Container, ContainerFilter, ContainerState, RuntimeService,
};

/// CRI labels the kubelet puts on every container (`pkg/kubelet/types/labels.go`).
pub mod labels {
    pub const POD_NAME: &str = "io.kubernetes.pod.name";
    pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
    pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
}

/// Most archives of one container within one second.
const MAX_ATTEMPTS_PER_SECOND: u32 = 1000;

/// Why a checkpoint was not made. Each variant maps to one HTTP code
/// ([`Error::http_code`]); the messages of the kubelet's own answers are kept
/// verbatim.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 404, as the kubelet answers.
    #[error("pod does not exist")]
    PodNotFound,
    /// 404, as the kubelet answers.
    #[error("container {0} does not exist")]
    ContainerNotFound(String),
    /// 409: the container exists but is not running.
    #[error("container {container} is not running (state {state})")]
    NotRunning { container: String, state: String },
    /// 409: a checkpoint of this container is in progress.
    #[error(
        "a checkpoint of {0} is already in progress; concurrent checkpoints of one container are refused"
    )]
    InProgress(String),
    /// 429: the node-wide limit of checkpoints in flight is reached.
    #[error("too many checkpoints in progress on this node (at most {0}); retry later")]
    TooMany(usize),
    /// 500/503/504: the runtime could not list containers.
    #[error("failed to list containers: {0}")]
    List(#[source] runtime::Error),
    /// 500 (504 for `DeadlineExceeded`): the runtime or CRIU failed; the
    /// kubelet's message with the runtime's error.
    #[error("checkpointing of {target} failed ({source})")]
    Runtime {
        target: String,
        #[source]
        source: runtime::Error,
    },
    /// 504: the runtime did not answer in time.
    #[error(
        "checkpointing of {target} failed (timed out after {after:?} waiting for the container runtime)"
    )]
    Timeout { target: String, after: Duration },
    /// 500: the checkpoints directory cannot be created.
    #[error("failed to create the checkpoints directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// 500: every name of this second is taken.
    #[error("no free archive name for {0} in this second")]
    NoFreeName(String),
    /// 500: the runtime said yes but the archive is not usable.
    #[error("checkpointing of {target} failed (archive {path}: {reason})")]
    Archive {
        target: String,
        path: PathBuf,
        reason: String,
    },
}

impl Error {
    /// The HTTP status code of the answer.
    pub fn http_code(&self) -> StatusCode {
        match self {
            Error::PodNotFound | Error::ContainerNotFound(_) => StatusCode::NOT_FOUND,
            Error::NotRunning { .. } | Error::InProgress(_) => StatusCode::CONFLICT,
            Error::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::List(e) => match e {
                runtime::Error::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
                runtime::Error::Call { status, .. } => match status.code() {
                    tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                    tonic::Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                },
            },
            Error::Runtime { source, .. } => match source.code() {
                Some(tonic::Code::DeadlineExceeded) | None => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Error::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Error::CreateDir { .. } | Error::NoFreeName(_) | Error::Archive { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An archive written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    pub path: PathBuf,
    pub size: u64,
    pub container_id: String,
}

/// The clock archive names are stamped with.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// How a [`Host`] checkpoints.
#[derive(Clone)]
pub struct HostConfig {
    /// `<root-dir>/checkpoints`.
    pub dir: PathBuf,
    /// `--runtime-request-timeout`: bounds list calls, and checkpoints asked
    /// for with `timeout=0`.
    pub runtime_request_timeout: Duration,
    /// How much longer than the runtime's own timeout we wait for its answer.
    pub grace: Duration,
    /// Checkpoints in flight on this node at most.
    pub max_in_flight: usize,
    pub clock: Clock,
    /// `--kubelet-archive-names-for-testing`: the kubelet's name, to the
    /// second, and an archive of that name overwritten (no `-N`).
    pub kubelet_archive_names: bool,
}

impl std::fmt::Debug for HostConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostConfig")
            .field("dir", &self.dir)
            .field("runtime_request_timeout", &self.runtime_request_timeout)
            .field("grace", &self.grace)
            .field("max_in_flight", &self.max_in_flight)
            .field("kubelet_archive_names", &self.kubelet_archive_names)
            .finish_non_exhaustive()
    }
}

impl HostConfig {
    /// Defaults for `dir`: the kubelet's 2 min runtime timeout, the node's
    /// 5 s grace, 8 in flight, the system clock.
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            runtime_request_timeout: api_types::timeouts::DEFAULT_RUNTIME_REQUEST_TIMEOUT,
            grace: api_types::timeouts::NODE_GRACE,
            max_in_flight: 8,
            clock: Arc::new(Timestamp::now),
            kubelet_archive_names: false,
        }
    }

    /// Creates `<root-dir>/checkpoints` (0700) if it does not exist. An
    /// existing directory open to group or others (a hostPath
    /// `DirectoryOrCreate` makes it 0755) is narrowed to 0700: archives hold
    /// process memory. A symlink or non-directory there is an error.
    pub fn ensure_dir(&self) -> Result<()> {
        let dir = &self.dir;
        let err = |source| Error::CreateDir {
            path: dir.clone(),
            source,
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(err)?;
        let meta = fs::symlink_metadata(dir).map_err(err)?;
        if !meta.file_type().is_dir() {
            return Err(err(io::Error::other(
                "not a directory (symbolic links are not followed)",
            )));
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                dir = %dir.display(),
                mode = format!("{mode:04o}"),
                "checkpoints directory is open to other users; restricting it to 0700"
            );
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(err)?;
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct State {
    /// Targets (`ns/pod/container`) with a checkpoint in flight.
    busy: HashSet<String>,
    /// Archive paths handed to the runtime and not yet settled.
    reserved: HashSet<PathBuf>,
}

/// Makes checkpoints; cheap to clone.
#[derive(Debug, Clone)]
pub struct Host {
    runtime: Arc<dyn RuntimeService>,
    config: Arc<HostConfig>,
    state: Arc<Mutex<State>>,
    slots: Arc<Semaphore>,
    metrics: Metrics,
}

/// A claim on the in-process state (a busy target, a reserved archive
/// name), given back when dropped.
#[derive(Debug)]
struct Claim<K: std::hash::Hash + Eq> {
    state: Arc<Mutex<State>>,
    key: K,
    set: fn(&mut State) -> &mut HashSet<K>,
}

impl<K: std::hash::Hash + Eq> Drop for Claim<K> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.state.lock() {
            (self.set)(&mut s).remove(&self.key);
        }
    }
}

/// A target (`ns/pod/container`) with a checkpoint in flight.
type BusyGuard = Claim<String>;
/// An archive path handed to the runtime and not yet settled.
type Reservation = Claim<PathBuf>;

/// A container that may be checkpointed now: its claim, a node-wide slot,
/// and the running container ([`Host::claim_running`]).
struct Claimed {
    key: String,
    busy: BusyGuard,
    slot: OwnedSemaphorePermit,
    container: Container,
}

/// What the background task hands back: the runtime's answer and the claims
/// that must live until the archive is settled.
#[derive(Debug)]
struct Done {
    result: runtime::Result<()>,
    took: Duration,
    reservation: Reservation,
    _busy: BusyGuard,
    _slot: OwnedSemaphorePermit,
}

/// Removes `path` if it exists (a partial or orphaned archive).
fn remove_archive(path: &Path) {
    match fs::remove_file(path) {
        Ok(()) => tracing::info!(path = %path.display(), "removed an unfinished archive"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "failed to remove an unfinished archive")
        }
    }
}

fn state_name(state: i32) -> String {
    ContainerState::try_from(state)
        .map(|s| s.as_str_name().to_owned())
        .unwrap_or_else(|_| format!("UNKNOWN({state})"))
}

impl Host {
    pub fn new(runtime: Arc<dyn RuntimeService>, config: HostConfig, metrics: Metrics) -> Self {
        let slots = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
        Self {
            runtime,
            config: Arc::new(config),
            state: Arc::default(),
            slots,
            metrics,
        }
    }

    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    pub fn runtime(&self) -> &Arc<dyn RuntimeService> {
        &self.runtime
    }

    /// See [`HostConfig::ensure_dir`].
    pub fn ensure_dir(&self) -> Result<()> {
        self.config.ensure_dir()
    }

    /// Checkpoints the running container of a validated target. `timeout_secs`
    /// is the request's `timeout` (validated; 0 = `--runtime-request-timeout`).
    pub async fn checkpoint_container(
        &self,
        target: &ContainerRef,
        timeout_secs: i64,
    ) -> Result<Archive> {
        let claimed = self.claim_running(target).await?;
        self.ensure_dir()?;
        let reservation = self.reserve(target)?;
        self.run(claimed, reservation, timeout_secs).await
    }

    /// The rules every checkpoint starts with: one per container at a time
    /// (409), the node-wide limit (429), and the container running.
    async fn claim_running(&self, target: &ContainerRef) -> Result<Claimed> {
        let key = target.to_string();
        let busy = self.claim(&key)?;
        let slot = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Error::TooMany(self.config.max_in_flight))?;
        let container = self.find_container(target).await?;
        Ok(Claimed {
            key,
            busy,
            slot,
            container,
        })
    }

    /// Like [`Host::checkpoint_container`], but the runtime writes to
    /// `location` (a fresh path the caller chose, in a directory it made;
    /// the PodCheckpoint controller's temporary name). The same rules hold:
    /// one checkpoint per container at a time, the node-wide limit, a
    /// bounded wait, nothing left at `location` on failure, 0600 on success.
    /// Returns the running container it checkpointed with the archive.
    pub async fn checkpoint_at(
        &self,
        target: &ContainerRef,
        timeout_secs: i64,
        location: PathBuf,
    ) -> Result<(Container, Archive)> {
        let claimed = self.claim_running(target).await?;
        let key = claimed.key.clone();
        let container = claimed.container.clone();
        let reservation = {
            let mut s = self
                .state
                .lock()
                .map_err(|_| Error::NoFreeName(key.clone()))?;
            if !s.reserved.insert(location.clone()) || fs::symlink_metadata(&location).is_ok() {
                return Err(Error::NoFreeName(key));
            }
            Reservation {
                state: self.state.clone(),
                key: location,
                set: |s| &mut s.reserved,
            }
        };
        let archive = self.run(claimed, reservation, timeout_secs).await?;
        Ok((container, archive))
    }

    /// Calls the runtime for a claimed container and settles its archive.
    async fn run(
        &self,
        claimed: Claimed,
        reservation: Reservation,
        timeout_secs: i64,
    ) -> Result<Archive> {
        let Claimed {
            key,
            busy,
            slot,
            container,
        } = claimed;
        let rrt_secs = i64::try_from(self.config.runtime_request_timeout.as_secs())
            .unwrap_or(i64::MAX)
            .max(1);
        // The kubelet sends its runtime request timeout when none was asked for.
        let cri_timeout = if timeout_secs > 0 {
            timeout_secs
        } else {
            rrt_secs
        };
        let wait = Duration::from_secs(cri_timeout.unsigned_abs()) + self.config.grace;
        let request = CheckpointContainerRequest {
            container_id: container.id.clone(),
            location: reservation.key.to_string_lossy().into_owned(),
            timeout: cri_timeout,
        };
        tracing::info!(
            target = %key,
            container_id = %container.id,
            location = %reservation.key.display(),
            timeout = cri_timeout,
            "checkpointing"
        );

        let (tx, mut rx) = oneshot::channel::<Done>();
        let runtime = self.runtime.clone();
        // Once we stop waiting, the runtime still gets this long to finish
        // (its archive is then removed); after that the call is dropped.
        let linger = self.config.runtime_request_timeout;
        let hard = wait + linger;
        tokio::spawn(async move {
            let started = Instant::now();
            let result =
                match tokio::time::timeout(hard, runtime.checkpoint_container(request)).await {
                    Ok(r) => r,
                    Err(_) => Err(runtime::Error::Timeout {
                        call: "CheckpointContainer",
                        after: hard,
                    }),
                };
            let took = started.elapsed();
            let dropped_call = matches!(result, Err(runtime::Error::Timeout { .. }));
            if result.is_err() {
                // Whatever the runtime wrote is partial.
                remove_archive(&reservation.key);
            }
            let done = Done {
                result,
                took,
                reservation,
                _busy: busy,
                _slot: slot,
            };
            if let Err(done) = tx.send(done) {
                // Nobody waits any more (the request timed out or went away):
                // no one will learn this archive's path, so it must not stay.
                tracing::warn!(
                    path = %done.reservation.key.display(),
                    took = ?done.took,
                    ok = done.result.is_ok(),
                    "the runtime answered after the request was abandoned; removing its archive"
                );
                remove_archive(&done.reservation.key);
                if dropped_call {
                    // The runtime may still write after we hung up: look again
                    // later, keeping the name reserved meanwhile.
                    let Done {
                        reservation,
                        _busy,
                        _slot,
                        ..
                    } = done;
                    drop((_busy, _slot));
                    tokio::time::sleep(linger).await;
                    remove_archive(&reservation.key);
                }
            }
        });

        let done = match tokio::time::timeout(wait, &mut rx).await {
            Ok(Ok(done)) => done,
            Ok(Err(_)) => {
                // The task ended without answering (it panicked): treat as a failure.
                return Err(Error::Timeout {
                    target: key,
                    after: wait,
                });
            }
            Err(_) => {
                rx.close();
                match rx.try_recv() {
                    Ok(done) => done,
                    Err(_) => {
                        self.metrics.checkpoint_duration(CallResult::Timeout, wait);
                        tracing::warn!(target = %key, after = ?wait, "the runtime did not answer in time");
                        return Err(Error::Timeout {
                            target: key,
                            after: wait,
                        });
                    }
                }
            }
        };
        self.settle(key, container.id, done)
    }

    /// After the runtime answered: the archive must exist; make it 0600.
    fn settle(&self, key: String, container_id: String, done: Done) -> Result<Archive> {
        let path = done.reservation.key.clone();
        match done.result {
            Err(source) => {
                let result = if matches!(source, runtime::Error::Timeout { .. }) {
                    CallResult::Timeout
                } else {
                    CallResult::Error
                };
                self.metrics.checkpoint_duration(result, done.took);
                tracing::warn!(target = %key, error = %source, "checkpoint failed");
                Err(Error::Runtime {
                    target: key,
                    source,
                })
            }
            Ok(()) => {
                self.metrics
                    .checkpoint_duration(CallResult::Success, done.took);
                let archive_err = |reason: String| Error::Archive {
                    target: key.clone(),
                    path: path.clone(),
                    reason,
                };
                let meta = match fs::symlink_metadata(&path) {
                    Ok(m) if m.file_type().is_file() => m,
                    Ok(_) => {
                        // Not ours to remove: something else is at that path.
                        return Err(archive_err(
                            "the runtime reported success but the path is not a regular file"
                                .into(),
                        ));
                    }
                    Err(e) => {
                        return Err(archive_err(format!(
                            "the runtime reported success but the archive cannot be read: {e}"
                        )));
                    }
                };
                if let Err(e) = fs::set_permissions(&path, fs::Permissions::from_mode(0o600)) {
                    remove_archive(&path);
                    return Err(archive_err(format!(
                        "failed to make it private (0600): {e}"
                    )));
                }
                self.metrics.archive_size(meta.len());
                tracing::info!(
                    target = %key,
                    path = %path.display(),
                    bytes = meta.len(),
                    took = ?done.took,
                    "checkpoint written"
                );
                Ok(Archive {
                    path,
                    size: meta.len(),
                    container_id,
                })
            }
        }
    }

    fn claim(&self, key: &str) -> Result<BusyGuard> {
        let mut s = self
            .state
            .lock()
            .map_err(|_| Error::InProgress(key.to_owned()))?;
        if !s.busy.insert(key.to_owned()) {
            return Err(Error::InProgress(key.to_owned()));
        }
        Ok(BusyGuard {
            state: self.state.clone(),
            key: key.to_owned(),
            set: |s| &mut s.busy,
        })
    }

    /// The first name of this second that is neither reserved nor on disk
    /// (with `kubelet_archive_names`: the kubelet's name of this second,
    /// whatever is there removed first, as the kubelet's runtime overwrites it).
    fn reserve(&self, t: &ContainerRef) -> Result<Reservation> {
        let now = (self.config.clock)();
        let mut s = self
            .state
            .lock()
            .map_err(|_| Error::NoFreeName(t.to_string()))?;
        if self.config.kubelet_archive_names {
            let path = self.config.dir.join(t.archive_file_name(now, 1));
            // One checkpoint per container at a time (the busy claim), so
            // only an earlier archive of this second can be there.
            if !s.reserved.insert(path.clone()) {
                return Err(Error::NoFreeName(t.to_string()));
            }
            if fs::symlink_metadata(&path).is_ok() {
                tracing::warn!(path = %path.display(), "overwriting an archive (--kubelet-archive-names-for-testing)");
                if let Err(e) = fs::remove_file(&path) {
                    s.reserved.remove(&path);
                    return Err(Error::Archive {
                        target: t.to_string(),
                        path,
                        reason: format!("failed to overwrite it: {e}"),
                    });
                }
            }
            return Ok(Reservation {
                state: self.state.clone(),
                key: path,
                set: |s| &mut s.reserved,
            });
        }
        for attempt in 1..=MAX_ATTEMPTS_PER_SECOND {
            let name = t.archive_file_name(now, attempt);
            let path = self.config.dir.join(name);
            if s.reserved.contains(&path) {
                continue;
            }
            match fs::symlink_metadata(&path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    s.reserved.insert(path.clone());
                    return Ok(Reservation {
                        state: self.state.clone(),
                        key: path,
                        set: |s| &mut s.reserved,
                    });
                }
                // Exists, or cannot be checked: never risk overwriting it.
                _ => continue,
            }
        }
        Err(Error::NoFreeName(t.to_string()))
    }

    async fn list(&self, filter: ContainerFilter) -> Result<Vec<Container>> {
        let bound = self.config.runtime_request_timeout;
        match tokio::time::timeout(bound, self.runtime.list_containers(filter)).await {
            Ok(r) => r.map_err(Error::List),
            Err(_) => Err(Error::List(runtime::Error::Timeout {
                call: "ListContainers",
                after: bound,
            })),
        }
    }

    /// The running container of the target; the newest attempt when several
    /// match. When none runs, tells an unknown pod from an unknown container.
    pub async fn find_container(&self, t: &ContainerRef) -> Result<Container> {
        let mut selector = HashMap::from([
            (labels::POD_NAMESPACE.to_owned(), t.namespace.clone()),
            (labels::POD_NAME.to_owned(), t.pod.clone()),
        ]);
        let pod_selector = selector.clone();
        selector.insert(labels::CONTAINER_NAME.to_owned(), t.container.clone());
        let running = i32::from(ContainerState::ContainerRunning);
        let found = self
            .list(ContainerFilter {
                state: Some(runtime::cri_state(ContainerState::ContainerRunning)),
                label_selector: selector.clone(),
                ..Default::default()
            })
            .await?;
        // The runtime should have filtered; check again rather than trust it.
        let newest = found
            .into_iter()
            .filter(|c| c.state == running && labels_match(c, &selector))
            .max_by_key(|c| (c.metadata.as_ref().map_or(0, |m| m.attempt), c.created_at));
        if let Some(c) = newest {
            return Ok(c);
        }
        let in_pod: Vec<Container> = self
            .list(ContainerFilter {
                label_selector: pod_selector.clone(),
                ..Default::default()
            })
            .await?
            .into_iter()
            .filter(|c| labels_match(c, &pod_selector))
            .collect();
        if in_pod.is_empty() {
            return Err(Error::PodNotFound);
        }
        let same_name = in_pod
            .iter()
            .filter(|c| labels_match(c, &selector))
            .max_by_key(|c| (c.metadata.as_ref().map_or(0, |m| m.attempt), c.created_at));
        match same_name {
            Some(c) => Err(Error::NotRunning {
                container: t.container.clone(),
                state: state_name(c.state),
            }),
            None => Err(Error::ContainerNotFound(t.container.clone())),
        }
    }
}

fn labels_match(c: &Container, selector: &HashMap<String, String>) -> bool {
    selector
        .iter()
        .all(|(k, v)| c.labels.get(k).is_some_and(|have| have == v))
}
