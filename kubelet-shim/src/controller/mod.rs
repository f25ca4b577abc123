//! The PodCheckpoint controller: the node agent's half of the declarative
//! API (KEP-5823's kubelet part, out of tree). It fulfils the
//! `checkpoint.kcr.dev/v1alpha1` PodCheckpoints whose pod runs on this node,
//! through the same CRI calls and archive rules as the synchronous endpoint
//! ([`crate::host::Host`], shared with it).
//!
//! Built on `kube::runtime`: a [`Controller`] over every PodCheckpoint, fed
//! also by a reflector of this node's pods (field selector
//! `spec.nodeName=<node>`; one watch both fills the store the reconciler
//! reads and triggers the PodCheckpoints that name a pod). No hand-written
//! watch loop. [`reconcile`] reads the object, its status and the pod store,
//! and never remembers what it did; the only memory is the handle of each
//! checkpoint in progress (the work runs in a task of its own, so a
//! checkpoint may take longer than any request timeout).
//!
//! For each PodCheckpoint, at most:
//! 1. add the finalizer `checkpoint.kcr.dev/archive` (a JSON patch with a
//!    `test` op);
//! 2. (only when the node's slots are full) one `Pending` status;
//! 3. claim: status `nodeName`, `sourcePodUID`, `startTime`, `containers`,
//!    `Ready=False/CheckpointInProgress` (a merge patch on `/status` with the
//!    object's resourceVersion);
//! 4. checkpoint each container in turn, into `<uid>/` ([`archives`]);
//! 5. the final status: `checkpointedContainers` with sizes and sha256,
//!    `Ready=True/CheckpointCompleted`, or `CheckpointFailed` /
//!    `SourcePodReplaced` with a message;
//! 6. one event on the PodCheckpoint and one on the pod.
//!
//! So five API requests for a checkpoint that did not wait, six for one that
//! did. A bad spec is one terminal status (and its events), never retried.
//! On deletion: the object's archive directory is removed, an event, the
//! finalizer goes.
//!
//! Retention ([`retention`]): a finished object is deleted when its
//! `spec.ttlSecondsAfterFinished` expires (requeued for that moment) or
//! when the node's limits (`--max-archives-per-container`,
//! `--max-archive-bytes`) choose it, each with an event naming the rule; a
//! checkpoint that cannot fit the byte limit fails before writing; archive
//! directories whose object is gone are swept after `--orphan-archive-grace`.
//!
//! Which agent acts: the one whose pod store holds the pod, or the one named
//! by `status.nodeName`. No other agent writes, with one exception: a
//! PodCheckpoint nobody claimed whose pod does not exist at all (`GET` →
//! 404) some time after its creation is failed by whichever agent gets
//! there first (the write is conditional on the resourceVersion, so one
//! succeeds and the others' 409 is dropped).

pub mod archives;
pub mod metrics;
pub mod plan;
pub mod retention;
pub mod status;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use api_types::ContainerRef;
use api_types::k8s_openapi::api::core::v1::{ObjectReference, Pod};
use api_types::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use api_types::k8s_openapi::jiff::Timestamp;
use api_types::podcheckpoint::{ARCHIVE_FINALIZER, reason};
use api_types::podcheckpoint::{CheckpointArchive, PodCheckpointContainerStatus};
use api_types::{PodCheckpoint, PodCheckpointStatus};
use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, StreamExt};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use tokio::sync::mpsc;

use crate::host::{self, Host};
use crate::metrics::Metrics;
use archives::Layout;
use metrics::ControllerMetrics;
use plan::{Failure, Plan, cause};
use retention::{Held, Orphans, Policy, Rule, Ttl};

/// Default `--max-concurrent-podcheckpoints`.
pub const DEFAULT_MAX_CONCURRENT: usize = 2;
/// Default `--orphan-archive-grace`.
pub const DEFAULT_ORPHAN_ARCHIVE_GRACE: Duration = Duration::from_secs(600);
/// `reportingController` of the agent's events.
pub const REPORTING_CONTROLLER: &str = "checkpoint.kcr.dev/checkpoint-shim";
/// The message of a checkpoint a restarted agent found unfinished.
pub const INTERRUPTED_MESSAGE: &str = "interrupted: checkpoint-shim restarted while checkpointing";
/// Longest event note (events.k8s.io allows 1 kB).
const MAX_NOTE_BYTES: usize = 1024;
/// How long to wait before asking again when a container is busy (a
/// synchronous checkpoint of it) or the node-wide limit is reached.
const BUSY_RETRY: Duration = Duration::from_millis(500);
/// A waiting PodCheckpoint looks again this often even without a wake-up.
const PENDING_RECHECK: Duration = Duration::from_secs(30);
/// How long a stopping controller may take to finish its reconciles.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Longest wait for the runtime's stats of one container (the size estimate).
const STATS_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the final status write is tried before handing the object to
/// the restart recovery.
const FINAL_WRITE_TRIES: u32 = 5;

/// What failed talking to the API server (transient: retried by the error
/// policy). Bad specs and runtime failures are not errors here: they end in
/// a terminal status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to add the finalizer to {object}: {source}")]
    AddFinalizer {
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to remove the finalizer from {object}: {source}")]
    RemoveFinalizer {
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to write the status of {object}: {source}")]
    WriteStatus {
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to read pod {pod}: {source}")]
    GetPod {
        pod: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to delete {object} ({rule}): {source}")]
    Delete {
        object: String,
        rule: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("failed to remove the archives of {object} ({dir}): {source}")]
    RemoveArchives {
        object: String,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The time, for TTLs and the orphan grace (a fake one in tests).
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Timestamp;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This node's name (`--node-name`).
    pub node_name: String,
    /// PodCheckpoints checkpointed at once on this node (`--max-concurrent-podcheckpoints`).
    pub max_concurrent: usize,
    /// How long after its creation an unclaimed PodCheckpoint may stay
    /// before its pod is looked up (and, if missing, the object failed).
    pub missing_pod_grace: Duration,
    /// How often an unclaimed PodCheckpoint whose pod exists (elsewhere,
    /// or not scheduled yet) is looked at again.
    pub missing_pod_recheck: Duration,
    /// The node's limits (`--max-archives-per-container`, `--max-archive-bytes`).
    pub retention: Policy,
    /// `--max-archive-bytes` as given, for messages.
    pub max_archive_bytes_flag: String,
    /// `--orphan-archive-grace`; `None`: orphans are kept (`--keep-orphan-archives`).
    pub orphan_grace: Option<Duration>,
    pub clock: Arc<dyn Clock>,
}

impl Settings {
    pub fn new(node_name: impl Into<String>) -> Self {
        Self {
            node_name: node_name.into(),
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            missing_pod_grace: Duration::from_secs(10),
            missing_pod_recheck: Duration::from_secs(300),
            retention: Policy::default(),
            max_archive_bytes_flag: "0".into(),
            orphan_grace: Some(DEFAULT_ORPHAN_ARCHIVE_GRACE),
            clock: Arc::new(SystemClock),
        }
    }
}

/// The controller, ready to run.
pub struct PodCheckpointController {
    client: Client,
    checkpointer: Host,
    settings: Settings,
    metrics: ControllerMetrics,
}

/// Work in progress for one PodCheckpoint (by UID).
#[derive(Debug)]
enum Job {
    /// Holds a slot; the handle is set once the task is spawned.
    Running(Option<tokio::task::AbortHandle>),
    /// Done; its final status is written but may not have reached the
    /// store yet (so it is not taken for an interrupted one).
    Finished,
}

impl std::fmt::Debug for PodCheckpointController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodCheckpointController")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

struct Context {
    client: Client,
    settings: Settings,
    checkpointer: Host,
    layout: Layout,
    pcs: Store<PodCheckpoint>,
    pods: Store<Pod>,
    /// `pods` has its first list: every reconcile waits on this one future.
    /// The store's own readiness wakes a single waiter (a oneshot inside
    /// kube's DelayedInit), so reconciles waiting on it together at start-up
    /// would all but one sleep forever; `Shared` wakes every clone.
    pods_ready: Shared<BoxFuture<'static, bool>>,
    recorder: Recorder,
    metrics: ControllerMetrics,
    wake: mpsc::UnboundedSender<ObjectRef<PodCheckpoint>>,
    jobs: Mutex<HashMap<String, Job>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl PodCheckpointController {
    /// `metrics`: the shim's registry, which gains the controller's metrics.
    pub fn new(client: Client, checkpointer: Host, settings: Settings, metrics: &Metrics) -> Self {
        Self {
            client,
            checkpointer,
            settings,
            metrics: ControllerMetrics::new(metrics),
        }
    }

    /// Runs until `shutdown` resolves; checkpoints in progress are then
    /// abandoned (their archives removed), and the next start resolves
    /// their objects.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
        let node = self.settings.node_name.clone();
        let pcs: Api<PodCheckpoint> = Api::all(self.client.clone());
        let pods: Api<Pod> = Api::all(self.client.clone());
        let (pod_store, pod_writer) = reflector::store();
        let pod_events = watcher(
            pods,
            watcher::Config::default().fields(&format!("spec.nodeName={node}")),
        )
        .default_backoff()
        .modify(|pod: &mut Pod| {
            // Never read here; the store is kept small.
            pod.managed_fields_mut().clear();
            pod.annotations_mut().clear();
        })
        .reflect(pod_writer)
        .touched_objects();
        let (wake, mut woken) = mpsc::unbounded_channel();
        let woken = futures::stream::poll_fn(move |cx| woken.poll_recv(cx));

        let controller = Controller::new(pcs, watcher::Config::default());
        let pc_store = controller.store();
        let ctx = Arc::new(Context {
            recorder: Recorder::new(
                self.client.clone(),
                Reporter {
                    controller: REPORTING_CONTROLLER.into(),
                    instance: Some(node.clone()),
                },
            ),
            client: self.client,
            layout: Layout::new(self.checkpointer.config().dir.clone()),
            checkpointer: self.checkpointer,
            settings: self.settings,
            pcs: pc_store.clone(),
            pods_ready: ready_for_all(pod_store.clone()),
            pods: pod_store,
            metrics: self.metrics,
            wake,
            jobs: Mutex::default(),
        });
        tracing::info!(
            node,
            max_concurrent = ctx.settings.max_concurrent,
            archives = %ctx.layout.root.display(),
            max_archives_per_container = ?ctx.settings.retention.max_archives_per_container,
            max_archive_bytes = ?ctx.settings.retention.max_archive_bytes,
            orphan_archive_grace = ?ctx.settings.orphan_grace,
            "PodCheckpoint controller starting"
        );
        let sweeper = ctx.settings.orphan_grace.map(|grace| {
            let ctx = ctx.clone();
            tokio::spawn(async move { ctx.sweep_orphans_forever(grace).await })
        });
        let shutdown = shutdown.shared();
        let run = controller
            .watches_stream(pod_events, move |pod: Pod| {
                pcs_of_pod(&pc_store, &pod).into_iter()
            })
            .reconcile_on(woken)
            .graceful_shutdown_on(shutdown.clone())
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|result| async move {
                match result {
                    Ok(_) => {}
                    Err(kube::runtime::controller::Error::ObjectNotFound(_)) => {}
                    Err(kube::runtime::controller::Error::ReconcilerFailed(e, obj)) => {
                        tracing::warn!(object = %obj, error = %e, "reconcile failed; will retry");
                    }
                    Err(e) => tracing::warn!(error = %e, "PodCheckpoint controller"),
                }
            });
        // Reconciles are short (checkpoints run in tasks of their own): the
        // controller gets a moment to finish them, no more (its watches may
        // be sleeping in a backoff).
        tokio::select! {
            () = run => {}
            () = async {
                shutdown.await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } => tracing::warn!("PodCheckpoint controller did not stop in time; stopping it"),
        }
        if let Some(sweeper) = sweeper {
            sweeper.abort();
        }
        for (_, job) in ctx.lock_jobs().drain() {
            if let Job::Running(Some(handle)) = job {
                handle.abort();
            }
        }
        tracing::info!("PodCheckpoint controller stopped");
    }
}

/// `store`'s first list, for any number of waiters: true once it is in,
/// false when its writer is gone first.
fn ready_for_all(store: Store<Pod>) -> Shared<BoxFuture<'static, bool>> {
    async move { store.wait_until_ready().await.is_ok() }
        .boxed()
        .shared()
}

/// The unfinished PodCheckpoints that name `pod`.
fn pcs_of_pod(store: &Store<PodCheckpoint>, pod: &Pod) -> Vec<ObjectRef<PodCheckpoint>> {
    let ns = pod.namespace();
    let name = pod.name_any();
    store
        .state()
        .iter()
        .filter(|pc| pc.namespace() == ns && pc.spec.source_pod_name == name && !pc.is_finished())
        .map(|pc| ObjectRef::from_obj(pc.as_ref()))
        .collect()
}

fn object_key(pc: &PodCheckpoint) -> String {
    format!("{}/{}", pc.namespace().unwrap_or_default(), pc.name_any())
}

fn has_finalizer(pc: &PodCheckpoint) -> bool {
    pc.finalizers().iter().any(|f| f == ARCHIVE_FINALIZER)
}

/// A 404, 409 or 422 (a failed `test`): the object moved on; look again
/// when its next version arrives.
fn moved_on(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if matches!(s.code, 404 | 409 | 422))
}

fn note(s: &str) -> Option<String> {
    Some(status::truncate(s, MAX_NOTE_BYTES))
}

fn error_policy(pc: Arc<PodCheckpoint>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(object = %object_key(&pc), %error, "will retry in 5s");
    Action::requeue(Duration::from_secs(5))
}

/// Decrements the in-flight gauge when the job ends, however it ends.
struct InFlight(ControllerMetrics);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.ended();
    }
}

async fn reconcile(pc: Arc<PodCheckpoint>, ctx: Arc<Context>) -> Result<Action> {
    let Some(uid) = pc.metadata.uid.clone() else {
        return Ok(Action::await_change());
    };
    // Which PodCheckpoints are ours depends on the node's pods: not before
    // their first list is in.
    if !ctx.pods_ready.clone().await {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let namespace = pc.namespace().unwrap_or_default();
    let pod = ctx
        .pods
        .get(&ObjectRef::new(&pc.spec.source_pod_name).within(&namespace));
    let owner = pc.status.as_ref().and_then(|s| s.node_name.clone());
    let mine = match &owner {
        Some(n) => *n == ctx.settings.node_name,
        None => pod.is_some(),
    };
    if pc.metadata.deletion_timestamp.is_some() {
        if mine && has_finalizer(&pc) {
            return ctx.cleanup(&pc, &uid).await;
        }
        return Ok(Action::await_change());
    }
    if !mine {
        if owner.is_none() {
            if !pc.is_finished() {
                return ctx.check_missing_pod(&pc).await;
            }
            // Failed on no node (its pod was nowhere): every agent may
            // expire it; the conditional delete lets one succeed.
            return ctx.expire(&pc).await;
        }
        return Ok(Action::await_change());
    }
    if pc.is_finished() {
        ctx.lock_jobs().remove(&uid);
        return ctx.retain(&pc).await;
    }
    if ctx.lock_jobs().contains_key(&uid) {
        return Ok(Action::await_change());
    }
    if pc.ready_condition().map(|c| c.reason.as_str()) == Some(reason::IN_PROGRESS) {
        // Claimed by this node, and no work for it here: this agent restarted.
        return ctx.recover(&pc, &uid, pod.as_deref()).await;
    }
    let Some(pod) = pod else {
        // Ours (waiting), and the pod has left this node.
        let failure = Failure::failed(
            cause::POD_GONE,
            format!(
                "pod {namespace}/{} is no longer on node {}",
                pc.spec.source_pod_name, ctx.settings.node_name
            ),
        );
        ctx.finish(&pc, &uid, None, Err(failure), None).await?;
        return Ok(Action::await_change());
    };
    let plan = match plan::plan(&pc.spec, &pod) {
        Ok(plan) => plan,
        Err(failure) => {
            ctx.finish(&pc, &uid, Some(&pod), Err(failure), None)
                .await?;
            return Ok(Action::await_change());
        }
    };
    if let Some(failure) = ctx.admit(&pc, &pod, &plan).await? {
        ctx.finish(&pc, &uid, Some(&pod), Err(failure), None)
            .await?;
        return Ok(Action::await_change());
    }
    if !ctx.reserve(&uid) {
        return ctx.pending(&pc).await;
    }
    match ctx.claim(&pc, &pod, &plan).await {
        Ok(Some(claimed)) => {
            ctx.spawn_job(uid, claimed, pod, plan);
            Ok(Action::await_change())
        }
        Ok(None) => {
            ctx.release(&uid);
            Ok(Action::requeue(Duration::from_secs(1)))
        }
        Err(e) => {
            ctx.release(&uid);
            Err(e)
        }
    }
}

impl Context {
    fn lock_jobs(&self) -> MutexGuard<'_, HashMap<String, Job>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn api(&self, pc: &PodCheckpoint) -> Api<PodCheckpoint> {
        Api::namespaced(self.client.clone(), &pc.namespace().unwrap_or_default())
    }

    /// Takes a slot for `uid` if one is free.
    fn reserve(&self, uid: &str) -> bool {
        let mut jobs = self.lock_jobs();
        let running = jobs
            .values()
            .filter(|j| matches!(j, Job::Running(_)))
            .count();
        if running >= self.settings.max_concurrent {
            return false;
        }
        jobs.insert(uid.to_owned(), Job::Running(None));
        true
    }

    /// Gives back a slot taken by [`Context::reserve`] that was not used.
    fn release(&self, uid: &str) {
        self.lock_jobs().remove(uid);
        self.wake_pending();
    }

    /// Reconciles the PodCheckpoints waiting on this node, oldest first:
    /// a slot is free.
    fn wake_pending(&self) {
        let mut waiting: Vec<Arc<PodCheckpoint>> = self.pcs.state_filter(|pc| {
            pc.status
                .as_ref()
                .is_some_and(|s| s.node_name.as_deref() == Some(&self.settings.node_name))
                && pc
                    .ready_condition()
                    .is_some_and(|c| c.reason == reason::PENDING)
        });
        waiting.sort_by(|a, b| {
            a.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0)
                .cmp(&b.metadata.creation_timestamp.as_ref().map(|t| t.0))
                .then_with(|| a.name_any().cmp(&b.name_any()))
        });
        for pc in waiting {
            let _ = self.wake.send(ObjectRef::from_obj(pc.as_ref()));
        }
    }

    async fn publish(&self, reference: &ObjectReference, event: Event) {
        if let Err(e) = self.recorder.publish(&event, reference).await {
            tracing::warn!(error = %e, reason = event.reason, "failed to record an event");
        }
    }

    /// Writes `status` through `/status`. `first`: only if the object is
    /// still at the version read. `None`: the object moved on or is gone.
    async fn write_status(
        &self,
        pc: &PodCheckpoint,
        status: &PodCheckpointStatus,
        first: bool,
    ) -> Result<Option<PodCheckpoint>> {
        let rv = if first { pc.resource_version() } else { None };
        let patch = status::patch(status, rv.as_deref());
        match self
            .api(pc)
            .patch_status(
                &pc.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(o) => Ok(Some(o)),
            // Gone, or (for a conditional write) changed since it was read.
            // A 422 is no race: it is an error, retried and logged.
            Err(kube::Error::Api(ref s)) if s.code == 404 || (first && s.code == 409) => {
                tracing::debug!(object = %object_key(pc), code = s.code, "status not written: the object moved on");
                Ok(None)
            }
            Err(source) => Err(Error::WriteStatus {
                object: object_key(pc),
                source,
            }),
        }
    }

    /// One `Pending` status, unless the object says so already.
    async fn pending(&self, pc: &PodCheckpoint) -> Result<Action> {
        let max = self.settings.max_concurrent;
        let node = &self.settings.node_name;
        let message = format!(
            "waiting for a free slot: {max} PodCheckpoint{} already in progress on node {node} (--max-concurrent-podcheckpoints={max})",
            if max == 1 { " is" } else { "s are" }
        );
        let first = pc.status.as_ref().is_none_or(|s| s.node_name.is_none());
        let mut st = pc.status.clone().unwrap_or_default();
        st.node_name = Some(node.clone());
        st.observed_generation = pc.metadata.generation;
        let st = status::with_condition(
            st,
            status::ready(pc, false, reason::PENDING, &message, Timestamp::now()),
        );
        if !status::unchanged(pc, &st) {
            self.write_status(pc, &st, first).await?;
        }
        Ok(Action::requeue(PENDING_RECHECK))
    }

    /// The finalizer, then the claiming status. `None`: the object moved on.
    async fn claim(
        &self,
        pc: &PodCheckpoint,
        pod: &Pod,
        plan: &Plan,
    ) -> Result<Option<PodCheckpoint>> {
        let mut current = pc.clone();
        if !has_finalizer(pc) {
            let patch = add_finalizer(pc);
            match self
                .api(pc)
                .patch(
                    &pc.name_any(),
                    &PatchParams::default(),
                    &Patch::Json::<()>(patch),
                )
                .await
            {
                Ok(o) => current = o,
                Err(e) if moved_on(&e) => return Ok(None),
                Err(source) => {
                    return Err(Error::AddFinalizer {
                        object: object_key(pc),
                        source,
                    });
                }
            }
        }
        let now = Timestamp::now();
        let containers = plan.containers.join(",");
        let mut st = current.status.clone().unwrap_or_default();
        st.node_name = Some(self.settings.node_name.clone());
        st.source_pod_uid = pod.metadata.uid.clone();
        st.start_time = Some(Time(now));
        st.completion_time = None;
        st.observed_generation = current.metadata.generation;
        st.containers = Some(containers.clone());
        st.checkpointed_containers.clear();
        st.total_size_bytes = None;
        let message = format!(
            "checkpointing {containers} on node {}",
            self.settings.node_name
        );
        let st = status::with_condition(
            st,
            status::ready(&current, false, reason::IN_PROGRESS, &message, now),
        );
        let claimed = self.write_status(&current, &st, true).await?;
        if claimed.is_some() {
            tracing::info!(object = %object_key(pc), pod = %pod.name_any(), %containers, "claimed PodCheckpoint");
        }
        Ok(claimed)
    }

    fn spawn_job(self: &Arc<Self>, uid: String, pc: PodCheckpoint, pod: Arc<Pod>, plan: Plan) {
        let ctx = self.clone();
        let mut jobs = self.lock_jobs();
        let task_uid = uid.clone();
        let handle = tokio::spawn(async move { ctx.run_job(task_uid, pc, pod, plan).await });
        if let Some(Job::Running(slot @ None)) = jobs.get_mut(&uid) {
            *slot = Some(handle.abort_handle());
        }
    }

    async fn run_job(self: Arc<Self>, uid: String, pc: PodCheckpoint, pod: Arc<Pod>, plan: Plan) {
        let started = Instant::now();
        self.metrics.started();
        let in_flight = InFlight(self.metrics.clone());
        let outcome = self.checkpoint_containers(&uid, &pc, &pod, &plan).await;
        drop(in_flight);
        let mut written = false;
        for attempt in 1..=FINAL_WRITE_TRIES {
            match self
                .finish(
                    &pc,
                    &uid,
                    Some(&pod),
                    outcome.clone(),
                    Some(started.elapsed()),
                )
                .await
            {
                Ok(()) => {
                    written = true;
                    break;
                }
                Err(e) => {
                    tracing::warn!(object = %object_key(&pc), error = %e, attempt, "failed to write the final status");
                    tokio::time::sleep(Duration::from_secs(1 << attempt.min(4))).await;
                }
            }
        }
        {
            let mut jobs = self.lock_jobs();
            if written {
                jobs.insert(uid, Job::Finished);
            } else {
                // The recovery of a restarted agent takes it from here.
                jobs.remove(&uid);
                let _ = self.wake.send(ObjectRef::from_obj(&pc));
            }
        }
        self.wake_pending();
    }

    /// Checkpoints each container in turn into the object's directory.
    async fn checkpoint_containers(
        &self,
        uid: &str,
        pc: &PodCheckpoint,
        pod: &Pod,
        plan: &Plan,
    ) -> Result<Vec<PodCheckpointContainerStatus>, Failure> {
        let namespace = pc.namespace().unwrap_or_default();
        let pod_name = pc.spec.source_pod_name.clone();
        let archive_failure = |what: &str, e: &dyn std::fmt::Display| {
            Failure::failed(cause::ARCHIVE, format!("{what}: {e}"))
        };
        self.checkpointer
            .ensure_dir()
            .map_err(|e| archive_failure("failed to prepare the checkpoints directory", &e))?;
        let dir = self
            .layout
            .create_object_dir(uid)
            .map_err(|e| archive_failure("failed to create the archive directory", &e))?;
        Layout::mark(&dir, &object_key(pc))
            .map_err(|e| archive_failure("failed to mark the archive directory", &e))?;
        let timeout = pc.spec.timeout_seconds.unwrap_or(0).max(0);
        let mut done = Vec::with_capacity(plan.containers.len());
        for name in &plan.containers {
            let target = ContainerRef::new(namespace.as_str(), pod_name.as_str(), name.as_str());
            let (final_path, partial) =
                Layout::new_archive_paths(&dir, &pod_name, &namespace, name, Timestamp::now())
                    .map_err(|e| archive_failure("failed to name the archive", &e))?;
            let (container, _) = self
                .checkpoint_one(target, timeout, partial.clone())
                .await
                .map_err(|e| Failure::failed(cause::RUNTIME, e.to_string()))?;
            let digest_path = partial.clone();
            let digest = tokio::task::spawn_blocking(move || archives::digest(&digest_path))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))
                .and_then(|r| r);
            let (size, sha256) = match digest {
                Ok(d) => d,
                Err(e) => {
                    let _ = std::fs::remove_file(&partial);
                    return Err(archive_failure("failed to read the archive", &e));
                }
            };
            if let Err(e) = std::fs::rename(&partial, &final_path) {
                let _ = std::fs::remove_file(&partial);
                return Err(archive_failure("failed to rename the archive", &e));
            }
            let (image, container_id) = self.identity(pod, name, &container).await;
            tracing::info!(
                object = %object_key(pc),
                container = %name,
                path = %final_path.display(),
                bytes = size,
                "container checkpointed"
            );
            done.push(PodCheckpointContainerStatus {
                name: name.clone(),
                image,
                container_id,
                archive: Some(CheckpointArchive {
                    path: self.layout.relative(&final_path),
                    size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
                    sha256,
                }),
            });
        }
        Ok(done)
    }

    /// One container, waiting while it is busy (a synchronous checkpoint of
    /// it) or the node-wide limit is reached, up to its timeout.
    async fn checkpoint_one(
        &self,
        target: ContainerRef,
        timeout: i64,
        location: PathBuf,
    ) -> Result<(crate::runtime::Container, host::Archive), host::Error> {
        let patience = if timeout > 0 {
            Duration::from_secs(timeout.unsigned_abs())
        } else {
            self.checkpointer.config().runtime_request_timeout
        };
        let give_up = Instant::now() + patience;
        loop {
            match self
                .checkpointer
                .checkpoint_at(&target, timeout, location.clone())
                .await
            {
                Err(host::Error::InProgress(_) | host::Error::TooMany(_))
                    if Instant::now() < give_up =>
                {
                    tokio::time::sleep(BUSY_RETRY).await;
                }
                other => return other,
            }
        }
    }

    /// Image and `<runtime>://<id>` of a checkpointed container, as the
    /// pod's status gives them when it agrees with the runtime.
    async fn identity(
        &self,
        pod: &Pod,
        name: &str,
        container: &crate::runtime::Container,
    ) -> (String, String) {
        let status = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|l| l.iter().find(|s| s.name == name));
        let image = status
            .map(|s| s.image.clone())
            .filter(|i| !i.is_empty())
            .or_else(|| container.image.as_ref().map(|i| i.image.clone()))
            .unwrap_or_else(|| container.image_ref.clone());
        let scheme = match status
            .and_then(|s| s.container_id.as_deref())
            .and_then(|id| id.split_once("://"))
        {
            Some((scheme, _)) => scheme.to_owned(),
            None => match self.checkpointer.runtime().version().await {
                Ok(v) => v.runtime_name,
                Err(_) => "cri".to_owned(),
            },
        };
        (image, format!("{scheme}://{}", container.id))
    }

    /// Writes the terminal status (completed, or failed and its archives
    /// removed), counts it and records its events. `took`: since the claim.
    async fn finish(
        &self,
        pc: &PodCheckpoint,
        uid: &str,
        pod: Option<&Pod>,
        outcome: Result<Vec<PodCheckpointContainerStatus>, Failure>,
        took: Option<Duration>,
    ) -> Result<()> {
        let node = &self.settings.node_name;
        let now = Timestamp::now();
        let first = pc.status.as_ref().is_none_or(|s| s.node_name.is_none());
        let mut st = pc.status.clone().unwrap_or_default();
        st.node_name = Some(node.clone());
        if st.source_pod_uid.is_none() {
            st.source_pod_uid = pod.and_then(|p| p.metadata.uid.clone());
        }
        st.observed_generation = pc.metadata.generation;
        st.completion_time = Some(Time(now));
        let (condition, ok, message) = match &outcome {
            Ok(done) => {
                let total: i64 = done
                    .iter()
                    .filter_map(|c| c.archive.as_ref())
                    .map(|a| a.size_bytes)
                    .sum();
                st.checkpointed_containers = done.clone();
                st.total_size_bytes = Some(total);
                let names: Vec<&str> = done.iter().map(|c| c.name.as_str()).collect();
                let message = format!(
                    "checkpointed {} on node {node}: {} archive{}, {total} bytes{}",
                    names.join(","),
                    done.len(),
                    if done.len() == 1 { "" } else { "s" },
                    took.map(|t| format!(", in {:.1}s", t.as_secs_f64()))
                        .unwrap_or_default()
                );
                (
                    status::ready(pc, true, reason::COMPLETED, &message, now),
                    true,
                    message,
                )
            }
            Err(f) => {
                // All or nothing: a failed PodCheckpoint keeps no archive.
                if let Err(e) = self.layout.remove_object_dir(uid) {
                    tracing::error!(object = %object_key(pc), error = %e, "failed to remove the archives of a failed checkpoint");
                }
                st.checkpointed_containers.clear();
                st.total_size_bytes = None;
                (
                    status::ready(pc, false, f.reason, &f.message, now),
                    false,
                    f.message.clone(),
                )
            }
        };
        let st = status::with_condition(st, condition);
        if self.write_status(pc, &st, first).await?.is_none() {
            return Ok(());
        }
        match &outcome {
            Ok(_) => {
                let bytes = st
                    .total_size_bytes
                    .unwrap_or_default()
                    .max(0)
                    .unsigned_abs();
                self.metrics.completed(took.unwrap_or_default(), bytes);
                tracing::info!(object = %object_key(pc), %message, "PodCheckpoint completed");
            }
            Err(f) => {
                if let Some(t) = took {
                    self.metrics.failed_after(t);
                }
                self.metrics.failure(f.cause);
                tracing::info!(object = %object_key(pc), reason = f.reason, %message, "PodCheckpoint failed");
            }
        }
        let (type_, pc_reason, pod_reason) = match &outcome {
            Ok(_) => (EventType::Normal, reason::COMPLETED, "Checkpointed"),
            Err(f) => (EventType::Warning, f.reason, f.reason),
        };
        self.publish(
            &pc.object_ref(&()),
            Event {
                type_,
                reason: pc_reason.into(),
                note: note(&message),
                action: "Checkpoint".into(),
                secondary: pod.map(|p| p.object_ref(&())),
            },
        )
        .await;
        if let Some(pod) = pod {
            let note_text = format!("PodCheckpoint {}: {message}", pc.name_any());
            self.publish(
                &pod.object_ref(&()),
                Event {
                    type_,
                    reason: pod_reason.into(),
                    note: note(&note_text),
                    action: "Checkpoint".into(),
                    secondary: Some(pc.object_ref(&())),
                },
            )
            .await;
        }
        let _ = ok;
        Ok(())
    }

    /// An object this node claimed with no work for it here: the agent
    /// restarted. Complete it if every archive is whole, else fail it.
    async fn recover(&self, pc: &PodCheckpoint, uid: &str, pod: Option<&Pod>) -> Result<Action> {
        let st = pc.status.clone().unwrap_or_default();
        let namespace = pc.namespace().unwrap_or_default();
        let pod_name = &pc.spec.source_pod_name;
        let containers: Vec<&str> = st
            .containers
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .filter(|c| !c.is_empty())
            .collect();
        // The pod's status names images and IDs only if it is the same pod.
        let pod = pod.filter(|p| p.metadata.uid == st.source_pod_uid);
        let dir = self.layout.object_dir(uid).ok();
        let found: Option<Vec<(String, PathBuf)>> = dir.as_ref().and_then(|dir| {
            containers
                .iter()
                .map(|c| {
                    Layout::find_archive(dir, pod_name, &namespace, c).map(|p| ((*c).to_owned(), p))
                })
                .collect()
        });
        let outcome = match found {
            Some(found) if !containers.is_empty() => {
                let mut done = Vec::new();
                let mut failed = None;
                for (name, path) in found {
                    let p = path.clone();
                    match tokio::task::spawn_blocking(move || archives::digest(&p)).await {
                        Ok(Ok((size, sha256))) => {
                            let status = pod
                                .and_then(|p| p.status.as_ref())
                                .and_then(|s| s.container_statuses.as_ref())
                                .and_then(|l| l.iter().find(|s| s.name == name));
                            done.push(PodCheckpointContainerStatus {
                                image: status.map(|s| s.image.clone()).unwrap_or_default(),
                                container_id: status
                                    .and_then(|s| s.container_id.clone())
                                    .unwrap_or_default(),
                                name,
                                archive: Some(CheckpointArchive {
                                    path: self.layout.relative(&path),
                                    size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
                                    sha256,
                                }),
                            });
                        }
                        _ => {
                            failed = Some(Failure::failed(cause::INTERRUPTED, INTERRUPTED_MESSAGE));
                            break;
                        }
                    }
                }
                match failed {
                    Some(f) => Err(f),
                    None => Ok(done),
                }
            }
            _ => Err(Failure::failed(cause::INTERRUPTED, INTERRUPTED_MESSAGE)),
        };
        tracing::info!(object = %object_key(pc), complete = outcome.is_ok(), "resolving a checkpoint left in progress by an earlier run");
        let took = st
            .start_time
            .as_ref()
            .and_then(|t| Duration::try_from(Timestamp::now().duration_since(t.0)).ok());
        self.finish(pc, uid, pod, outcome, took).await?;
        Ok(Action::await_change())
    }

    /// An unclaimed PodCheckpoint whose pod is not on this node: fail it if
    /// its pod exists nowhere (after a grace since its creation).
    async fn check_missing_pod(&self, pc: &PodCheckpoint) -> Result<Action> {
        let grace = self.settings.missing_pod_grace;
        let age = pc
            .metadata
            .creation_timestamp
            .as_ref()
            .and_then(|t| Duration::try_from(Timestamp::now().duration_since(t.0)).ok())
            .unwrap_or_default();
        if age < grace {
            return Ok(Action::requeue(grace - age + Duration::from_millis(100)));
        }
        let namespace = pc.namespace().unwrap_or_default();
        let pod_name = &pc.spec.source_pod_name;
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let found = pods
            .get_opt(pod_name)
            .await
            .map_err(|source| Error::GetPod {
                pod: format!("{namespace}/{pod_name}"),
                source,
            })?;
        if found.is_some() {
            // On a node without an agent, or not scheduled yet.
            return Ok(Action::requeue(self.settings.missing_pod_recheck));
        }
        let message = format!("pod {namespace}/{pod_name} not found");
        let now = Timestamp::now();
        let mut st = pc.status.clone().unwrap_or_default();
        st.observed_generation = pc.metadata.generation;
        st.completion_time = Some(Time(now));
        let st =
            status::with_condition(st, status::ready(pc, false, reason::FAILED, &message, now));
        if self.write_status(pc, &st, true).await?.is_some() {
            self.metrics.failure(cause::POD_NOT_FOUND);
            tracing::info!(object = %object_key(pc), %message, "PodCheckpoint failed");
            self.publish(
                &pc.object_ref(&()),
                Event {
                    type_: EventType::Warning,
                    reason: reason::FAILED.into(),
                    note: note(&message),
                    action: "Checkpoint".into(),
                    secondary: None,
                },
            )
            .await;
        }
        Ok(Action::await_change())
    }

    fn now(&self) -> Timestamp {
        self.settings.clock.now()
    }

    /// This node's completed PodCheckpoints with archives, from the watch cache.
    fn held(&self) -> Vec<Held> {
        self.pcs
            .state()
            .iter()
            .filter_map(|pc| retention::held(pc, &self.settings.node_name))
            .collect()
    }

    /// A finished object of this node: its TTL, then the node's limits.
    async fn retain(&self, pc: &PodCheckpoint) -> Result<Action> {
        let after = match retention::ttl_at(pc, self.now()) {
            Ttl::Expired => return self.expire(pc).await,
            Ttl::After(d) => Some(d),
            Ttl::None => None,
        };
        self.enforce_limits(0).await?;
        Ok(after.map_or_else(Action::await_change, Action::requeue))
    }

    /// Deletes the objects the node's limits choose, `incoming` bytes being
    /// about to be written.
    async fn enforce_limits(&self, incoming: u64) -> Result<()> {
        let policy = self.settings.retention;
        if policy == Policy::default() {
            return Ok(());
        }
        let evictions = retention::evictions(
            &self.held(),
            &policy,
            incoming,
            &self.settings.node_name,
            &self.settings.max_archive_bytes_flag,
        );
        for e in evictions {
            let found = self
                .pcs
                .state()
                .into_iter()
                .find(|pc| pc.metadata.uid.as_deref() == Some(e.uid.as_str()));
            if let Some(victim) = found {
                self.delete_for(&victim, e.rule, &e.message).await?;
            }
        }
        Ok(())
    }

    /// `spec.ttlSecondsAfterFinished`: deletes the object once it expired,
    /// else looks again at the expiry.
    async fn expire(&self, pc: &PodCheckpoint) -> Result<Action> {
        match retention::ttl_at(pc, self.now()) {
            Ttl::None => Ok(Action::await_change()),
            Ttl::After(d) => Ok(Action::requeue(d)),
            Ttl::Expired => {
                let done = pc
                    .status
                    .as_ref()
                    .and_then(|s| s.completion_time.as_ref())
                    .map(|t| t.0.to_string())
                    .unwrap_or_default();
                let message = format!(
                    "deleted by checkpoint-shim on node {}: finished at {done}, spec.ttlSecondsAfterFinished={} expired",
                    self.settings.node_name,
                    pc.spec.ttl_seconds_after_finished.unwrap_or_default()
                );
                self.delete_for(pc, Rule::Ttl, &message).await?;
                Ok(Action::await_change())
            }
        }
    }

    /// Deletes `pc` for `rule`, if it is still the object read (UID and
    /// resourceVersion preconditions: of several agents, or of a stale
    /// cache, one delete succeeds), with an event and a metric. Its
    /// finalizer then removes its archives.
    async fn delete_for(&self, pc: &PodCheckpoint, rule: Rule, message: &str) -> Result<()> {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: pc.metadata.uid.clone(),
                resource_version: pc.metadata.resource_version.clone(),
            }),
            ..DeleteParams::default()
        };
        match self.api(pc).delete(&pc.name_any(), &params).await {
            Ok(_) => {}
            Err(e) if moved_on(&e) => return Ok(()),
            Err(source) => {
                return Err(Error::Delete {
                    object: object_key(pc),
                    rule: rule.label(),
                    source,
                });
            }
        }
        self.metrics.retention(rule.label());
        tracing::info!(object = %object_key(pc), policy = rule.label(), %message, "PodCheckpoint deleted by a retention rule");
        self.publish(
            &pc.object_ref(&()),
            Event {
                type_: EventType::Normal,
                reason: rule.event_reason().into(),
                note: note(message),
                action: "Delete".into(),
                secondary: None,
            },
        )
        .await;
        Ok(())
    }

    /// Under `--max-archive-bytes`: a [`Failure`] when the checkpoint cannot
    /// fit (before anything is written), else room is made for it (the
    /// oldest unpinned objects deleted).
    async fn admit(&self, pc: &PodCheckpoint, pod: &Pod, plan: &Plan) -> Result<Option<Failure>> {
        if self.settings.retention.max_archive_bytes.is_none() {
            return Ok(None);
        }
        let estimate = self.estimate(pod, plan).await;
        let uid = pc.metadata.uid.as_deref();
        let held: Vec<Held> = self
            .held()
            .into_iter()
            .filter(|h| Some(h.uid.as_str()) != uid)
            .collect();
        if let Err(message) = retention::admit(
            &held,
            &self.settings.retention,
            estimate,
            &self.settings.node_name,
            &self.settings.max_archive_bytes_flag,
        ) {
            return Ok(Some(Failure::failed(cause::ARCHIVE_BUDGET, message)));
        }
        self.enforce_limits(estimate.unwrap_or(0)).await?;
        Ok(None)
    }

    /// The checkpoint's size as the runtime's stats suggest, if it reports
    /// them for every container ([`crate::runtime::estimate_from_stats`]).
    async fn estimate(&self, pod: &Pod, plan: &Plan) -> Option<u64> {
        let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
        let mut total = 0u64;
        for name in &plan.containers {
            let id = statuses
                .iter()
                .find(|s| &s.name == name)?
                .container_id
                .as_deref()?;
            let id = id.split_once("://").map_or(id, |(_, id)| id);
            let runtime = self.checkpointer.runtime();
            let size = tokio::time::timeout(STATS_TIMEOUT, runtime.checkpoint_size_estimate(id))
                .await
                .ok()?
                .map_err(|e| tracing::debug!(container = %name, error = %e, "no stats for a size estimate"))
                .ok()??;
            total = total.saturating_add(size);
        }
        Some(total)
    }

    /// Sweeps orphaned archive directories every quarter of the grace (at
    /// most every minute), once the watch cache is filled.
    async fn sweep_orphans_forever(self: Arc<Self>, grace: Duration) {
        // The store's readiness wakes one waiter only (a oneshot inside
        // kube's DelayedInit) and the controller waits on it too: ask again
        // until it says ready.
        loop {
            match tokio::time::timeout(Duration::from_millis(200), self.pcs.wait_until_ready())
                .await
            {
                Ok(Ok(())) => break,
                Ok(Err(_)) => return,
                Err(_) => {}
            }
        }
        let every = (grace / 4).clamp(Duration::from_millis(100), Duration::from_secs(60));
        let mut orphans = Orphans::default();
        loop {
            self.sweep_orphans(&mut orphans, grace).await;
            tokio::time::sleep(every).await;
        }
    }

    /// One sweep: directories of `<root>` named by a UUID and marked by
    /// this agent whose object is gone are removed once they have been so
    /// for `grace`. Nothing else is touched (the kubelet's archives, other
    /// files and unmarked directories stay); a live object's directory of
    /// this node that lacks the marker (written by an older agent) gets it.
    async fn sweep_orphans(&self, orphans: &mut Orphans, grace: Duration) {
        let objects: HashMap<String, Arc<PodCheckpoint>> = self
            .pcs
            .state()
            .into_iter()
            .filter_map(|pc| Some((pc.metadata.uid.clone()?, pc)))
            .collect();
        let entries = match std::fs::read_dir(&self.layout.root) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(dir = %self.layout.root.display(), error = %e, "cannot list the checkpoints directory for orphans");
                return;
            }
        };
        let mut orphaned = Vec::new();
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            // `file_type` does not follow symbolic links.
            if !archives::is_uuid(&name) || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let dir = entry.path();
            match objects.get(&name) {
                Some(pc) => {
                    let ours = pc.status.as_ref().and_then(|s| s.node_name.as_deref())
                        == Some(self.settings.node_name.as_str());
                    if ours && !Layout::is_marked(&dir) {
                        let _ = Layout::mark(&dir, &object_key(pc));
                    }
                }
                None if Layout::is_marked(&dir) => orphaned.push(name),
                None => {}
            }
        }
        for uid in orphans.observe(&orphaned, self.now(), grace) {
            orphans.forget(&uid);
            let dir = self.layout.root.join(&uid);
            let owner = std::fs::read_to_string(dir.join(archives::MARKER))
                .map(|s| s.trim().to_owned())
                .unwrap_or_default();
            let removed = match self.layout.remove_object_dir(&uid) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "failed to remove an orphaned archive directory");
                    continue;
                }
            };
            self.metrics.deleted(removed.files, removed.bytes);
            self.metrics.retention(Rule::Orphan.label());
            let message = format!(
                "removed {} ({} archive file{}, {} bytes) of PodCheckpoint {owner} (UID {uid}), gone for at least {} (--orphan-archive-grace)",
                dir.display(),
                removed.files,
                if removed.files == 1 { "" } else { "s" },
                removed.bytes,
                api_types::duration::format_go_duration(grace)
            );
            tracing::info!(%message, "orphaned archives removed");
            let node = ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(self.settings.node_name.clone()),
                ..ObjectReference::default()
            };
            self.publish(
                &node,
                Event {
                    type_: EventType::Normal,
                    reason: Rule::Orphan.event_reason().into(),
                    note: note(&message),
                    action: "Delete".into(),
                    secondary: None,
                },
            )
            .await;
        }
    }

    /// Deleting: stop its work, remove its archives, an event, release the
    /// finalizer.
    async fn cleanup(&self, pc: &PodCheckpoint, uid: &str) -> Result<Action> {
        let job = self.lock_jobs().remove(uid);
        if let Some(Job::Running(handle)) = job {
            if let Some(h) = handle {
                h.abort();
            }
            self.wake_pending();
        }
        let removed =
            self.layout
                .remove_object_dir(uid)
                .map_err(|source| Error::RemoveArchives {
                    object: object_key(pc),
                    dir: self.layout.root.join(uid),
                    source,
                })?;
        self.metrics.deleted(removed.files, removed.bytes);
        let message = format!(
            "deleted {} archive file{} ({} bytes) from node {}",
            removed.files,
            if removed.files == 1 { "" } else { "s" },
            removed.bytes,
            self.settings.node_name
        );
        tracing::info!(object = %object_key(pc), %message, "PodCheckpoint deleted");
        self.publish(
            &pc.object_ref(&()),
            Event {
                type_: EventType::Normal,
                reason: "ArchivesDeleted".into(),
                note: note(&message),
                action: "Delete".into(),
                secondary: None,
            },
        )
        .await;
        let Some(index) = pc.finalizers().iter().position(|f| f == ARCHIVE_FINALIZER) else {
            return Ok(Action::await_change());
        };
        match self
            .api(pc)
            .patch(
                &pc.name_any(),
                &PatchParams::default(),
                &Patch::Json::<()>(remove_finalizer(index)),
            )
            .await
        {
            Ok(_) => Ok(Action::await_change()),
            Err(e) if moved_on(&e) => Ok(Action::requeue(Duration::from_secs(1))),
            Err(source) => Err(Error::RemoveFinalizer {
                object: object_key(pc),
                source,
            }),
        }
    }
}

/// Adds the finalizer if the list is still what was read (`test`), as
/// kube's `finalizer` helper does.
fn add_finalizer(pc: &PodCheckpoint) -> json_patch::Patch {
    let ops = if pc.finalizers().is_empty() {
        serde_json::json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [ARCHIVE_FINALIZER]},
        ])
    } else {
        serde_json::json!([
            {"op": "test", "path": "/metadata/finalizers", "value": pc.finalizers()},
            {"op": "add", "path": "/metadata/finalizers/-", "value": ARCHIVE_FINALIZER},
        ])
    };
    serde_json::from_value(ops).unwrap_or_else(|_| json_patch::Patch(Vec::new()))
}

/// Removes the finalizer at `index` if it is still ours (`test`).
fn remove_finalizer(index: usize) -> json_patch::Patch {
    let path = format!("/metadata/finalizers/{index}");
    serde_json::from_value(serde_json::json!([
        {"op": "test", "path": path, "value": ARCHIVE_FINALIZER},
        {"op": "remove", "path": path},
    ]))
    .unwrap_or_else(|_| json_patch::Patch(Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every reconcile waiting for the pods' first list at start-up goes on
    /// when it is in (the store's own readiness wakes one waiter only).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_waiter_sees_the_store_ready() {
        let (store, mut writer) = reflector::store::<Pod>();
        let ready = ready_for_all(store);
        let waiters: Vec<_> = (0..8).map(|_| tokio::spawn(ready.clone())).collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        writer.apply_watcher_event(&watcher::Event::InitDone);
        for w in waiters {
            let got = tokio::time::timeout(Duration::from_secs(5), w).await;
            assert!(matches!(got, Ok(Ok(true))), "{got:?}");
        }
    }

    #[test]
    fn finalizer_patches_test_first() {
        let mut pc = PodCheckpoint::new("x", Default::default());
        let p = serde_json::to_value(add_finalizer(&pc)).unwrap();
        assert_eq!(
            p,
            serde_json::json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": ["checkpoint.kcr.dev/archive"]},
            ])
        );
        pc.metadata.finalizers = Some(vec!["other".into()]);
        let p = serde_json::to_value(add_finalizer(&pc)).unwrap();
        assert_eq!(p[1]["path"], "/metadata/finalizers/-");
        assert_eq!(p[0]["value"], serde_json::json!(["other"]));
        let p = serde_json::to_value(remove_finalizer(1)).unwrap();
        assert_eq!(
            p,
            serde_json::json!([
                {"op": "test", "path": "/metadata/finalizers/1", "value": "checkpoint.kcr.dev/archive"},
                {"op": "remove", "path": "/metadata/finalizers/1"},
            ])
        );
    }
}
