//! The declarative path (KEP-5823's shape): create a `PodCheckpoint`
//! (`checkpoint.kcr.dev/v1alpha1`) and watch it until the node agent of the
//! pod's node has written every archive (`Ready=True`) or ended it
//! (`CheckpointFailed`, `SourcePodReplaced`).
//!
//! The wait is bounded twice: an agent must claim the object (set
//! `status.nodeName` or a `Ready` condition) within `--claim-timeout`, and
//! the whole checkpoint must end within that plus the client deadline of
//! each container ([`api_types::timeouts::Deadlines`]: the node does them
//! one after another). An object no agent claimed is deleted — with
//! preconditions on what was seen, so an agent that claims it at that very
//! moment wins — because an agent that comes up later would otherwise
//! checkpoint the pod long after the user was told it failed.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use api_types::duration::format_go_duration;
use api_types::podcheckpoint::{self, PodCheckpoint, PodCheckpointSpec};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio::time::Instant;

use crate::client::render_client_error;
use crate::client::{ClientError, PodCheckpoints};

/// Default of `--claim-timeout`.
pub const DEFAULT_CLAIM_TIMEOUT: Duration = Duration::from_secs(30);

/// What to create: `generateName: <pod>-` in `namespace`, the pod pinned to
/// the instance read (`pod_uid`), `containers` empty for all of them.
pub fn new_object(
    namespace: &str,
    pod: &str,
    pod_uid: Option<String>,
    containers: Vec<String>,
    timeout_seconds: u64,
) -> PodCheckpoint {
    PodCheckpoint {
        metadata: ObjectMeta {
            generate_name: Some(format!("{pod}-")),
            namespace: Some(namespace.to_owned()),
            ..Default::default()
        },
        spec: PodCheckpointSpec {
            source_pod_name: pod.to_owned(),
            source_pod_uid: pod_uid.filter(|u| !u.is_empty()),
            containers,
            timeout_seconds: i64::try_from(timeout_seconds).ok().filter(|t| *t > 0),
            ttl_seconds_after_finished: None,
        },
        ..PodCheckpoint::new("", PodCheckpointSpec::default())
    }
}

/// `podcheckpoint/NAME`
pub fn object_ref(name: &str) -> String {
    format!("{}/{name}", podcheckpoint::SINGULAR)
}

/// How to follow an object the plugin stopped waiting on.
pub fn follow_hint(name: &str, namespace: &str) -> String {
    format!(
        "kubectl wait --for=condition=Ready {} -n {namespace}",
        object_ref(name)
    )
}

/// An agent has seen the object: it set `status.nodeName` or a `Ready`
/// condition (`Pending` while it waits for a slot counts).
pub fn is_claimed(pc: &PodCheckpoint) -> bool {
    pc.status.as_ref().is_some_and(|s| s.node_name.is_some()) || pc.ready_condition().is_some()
}

/// Where the object stands, in a few words: `waiting for a checkpoint
/// agent`, `CheckpointInProgress on node node-1: writing container app`.
pub fn describe_state(pc: &PodCheckpoint) -> String {
    if !is_claimed(pc) {
        return "waiting for a checkpoint agent to claim it".to_owned();
    }
    let node = pc
        .status
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .map(|n| format!(" on node {n}"))
        .unwrap_or_default();
    match pc.ready_condition() {
        Some(c) if c.message.is_empty() => format!("{}{node}", c.reason),
        Some(c) => format!("{}{node}: {}", c.reason, c.message),
        None => format!("claimed{node}"),
    }
}

/// The bounds of the wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitLimits {
    /// `--claim-timeout`.
    pub claim: Duration,
    /// The client deadline of one container's checkpoint.
    pub per_container: Duration,
    /// How many containers, when known before an agent says (the spec's,
    /// or the pod's); else learnt from `status.containers`, 1 until then.
    pub containers: Option<usize>,
}

impl WaitLimits {
    /// The whole wait for `containers` containers.
    pub fn total(&self, containers: usize) -> Duration {
        let n = u32::try_from(containers.max(1)).unwrap_or(u32::MAX);
        self.claim + self.per_container.saturating_mul(n)
    }
}

/// What became of the unclaimed object.
#[derive(Debug)]
pub enum Deletion {
    /// Deleted.
    Deleted,
    /// Someone deleted it first.
    Gone,
    /// The delete failed (forbidden, unreachable): it is still there.
    Refused(ClientError),
}

/// How the wait ended.
#[derive(Debug)]
pub enum Outcome {
    /// `Ready=True`, or a terminal failure (see [`PodCheckpoint::is_ready`]).
    Finished(PodCheckpoint),
    /// No agent claimed it within the claim timeout.
    Unclaimed {
        last: PodCheckpoint,
        deletion: Deletion,
    },
    /// Claimed, but not finished within the whole wait.
    TimedOut {
        last: PodCheckpoint,
        waited: Duration,
    },
    /// Deleted (by someone else) before it finished.
    Deleted,
    /// The user interrupted the wait (SIGINT): the checkpoint goes on.
    Interrupted(PodCheckpoint),
}

/// Watch `created` until it finishes, an agent fails to claim it in time,
/// the whole wait is over, it is deleted, or `interrupt` fires. `progress`
/// sees every new state (for the spinner). Watch errors that retrying
/// cannot cure (401, 403, 404) end the wait as `Err`; others are retried
/// (the watch backs off) within the deadline.
pub async fn wait<I>(
    client: &impl PodCheckpoints,
    created: PodCheckpoint,
    limits: WaitLimits,
    mut interrupt: Pin<&mut I>,
    mut progress: impl FnMut(&PodCheckpoint),
) -> Result<Outcome, ClientError>
where
    I: Future<Output = ()> + ?Sized,
{
    let namespace = created.metadata.namespace.clone().unwrap_or_default();
    let name = created.metadata.name.clone().unwrap_or_default();
    let start = Instant::now();
    let claim_deadline = start + limits.claim;
    let total_for = |pc: &PodCheckpoint| {
        let n = limits.containers.unwrap_or_else(|| {
            pc.status
                .as_ref()
                .and_then(|s| s.containers.as_deref())
                .map_or(1, |c| c.split(',').filter(|n| !n.is_empty()).count())
        });
        start + limits.total(n)
    };
    let mut last = created;
    let mut claimed = is_claimed(&last);
    let mut deadline = total_for(&last);
    // After a delete refused as Conflict: try again on the next change.
    let mut delete_armed = true;
    let mut events = client.watch_pod_checkpoint(&namespace, &name);
    loop {
        tokio::select! {
            biased;
            () = &mut interrupt => return Ok(Outcome::Interrupted(last)),
            item = events.next() => match item {
                Some(Ok(Some(pc))) => {
                    let changed = pc.metadata.resource_version != last.metadata.resource_version;
                    last = pc;
                    if last.is_finished() {
                        return Ok(Outcome::Finished(last));
                    }
                    if changed {
                        delete_armed = true;
                        claimed = claimed || is_claimed(&last);
                        deadline = total_for(&last);
                        progress(&last);
                    }
                }
                Some(Ok(None)) => return Ok(Outcome::Deleted),
                Some(Err(e)) if is_fatal(&e) => return Err(e),
                Some(Err(e)) => tracing::debug!(error = %e, "watch failed; retrying"),
                None => {
                    tracing::debug!("watch ended; watching again");
                    events = client.watch_pod_checkpoint(&namespace, &name);
                }
            },
            () = tokio::time::sleep_until(claim_deadline), if !claimed && delete_armed => {
                let uid = last.metadata.uid.clone().unwrap_or_default();
                let rv = last.metadata.resource_version.clone().unwrap_or_default();
                let deletion = match client.delete_pod_checkpoint(&namespace, &name, &uid, &rv).await {
                    Ok(()) => Deletion::Deleted,
                    Err(e) if code(&e) == Some(409) => {
                        // It changed since it was seen: maybe claimed just now.
                        tracing::debug!(name, "the unclaimed object changed; looking again");
                        delete_armed = false;
                        continue;
                    }
                    Err(e) if code(&e) == Some(404) => Deletion::Gone,
                    Err(e) => Deletion::Refused(e),
                };
                tracing::info!(namespace, name, ?deletion, "no checkpoint agent claimed the PodCheckpoint");
                return Ok(Outcome::Unclaimed { last, deletion });
            },
            () = tokio::time::sleep_until(deadline) => {
                return Ok(Outcome::TimedOut { last, waited: deadline - start });
            },
        }
    }
}

fn code(e: &ClientError) -> Option<u16> {
    e.server().map(|s| s.code)
}

/// Errors a retry cannot cure: no credentials, no right, no such resource.
fn is_fatal(e: &ClientError) -> bool {
    matches!(code(e), Some(401 | 403 | 404))
}

/// The node of a pod, when it was read.
pub fn node_of(pod: Option<&Pod>) -> Option<String> {
    pod.and_then(|p| p.spec.as_ref())
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty())
}

/// How the declarative path fails.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The agent ended it with `CheckpointFailed` or `SourcePodReplaced`.
    #[error("{}", if .message.is_empty() { format!("{} failed: {}", object_ref(.name), .reason) } else { .message.clone() })]
    Failed {
        name: String,
        reason: String,
        message: String,
    },
    #[error(
        "no checkpoint agent claimed {} within {}: is checkpoint-shim's controller running on {}?",
        object_ref(.name),
        format_go_duration(*.waited),
        .node.as_ref().map_or_else(|| "the pod's node".to_owned(), |n| format!("node {n}"))
    )]
    Unclaimed {
        name: String,
        namespace: String,
        waited: Duration,
        node: Option<String>,
        deletion: Deletion,
    },
    #[error("{} did not finish within {} ({state})", object_ref(.name), format_go_duration(*.waited))]
    TimedOut {
        name: String,
        namespace: String,
        waited: Duration,
        state: String,
    },
    #[error("{} was deleted before it finished", object_ref(.name))]
    Deleted { name: String, namespace: String },
    /// SIGINT; `name` is `None` when it came before the create answered.
    #[error("stopped waiting")]
    Interrupted {
        name: Option<String>,
        namespace: String,
        pod: String,
    },
    /// The create failed (other than 403, which names the missing rights).
    #[error("failed to create a PodCheckpoint of pod {namespace}/{pod}")]
    Create {
        namespace: String,
        pod: String,
        #[source]
        source: ClientError,
    },
    /// The watch failed (other than 403).
    #[error("failed to watch {}", object_ref(.name))]
    Watch {
        name: String,
        namespace: String,
        #[source]
        source: ClientError,
    },
    /// Without the pod, the plugin cannot choose its default container, and
    /// an empty list would checkpoint every container.
    #[error(
        "cannot read pod {namespace}/{pod} (you lack get pods) to choose its default container: name the container with -c CONTAINER, or checkpoint every container with --all-containers"
    )]
    NeedsContainer { namespace: String, pod: String },
}

impl ObjectError {
    /// 130 for an interrupted wait (as a shell reports SIGINT), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            ObjectError::Interrupted { .. } => 130,
            _ => 1,
        }
    }

    /// The text for stderr, without the final newline.
    pub fn render(&self) -> String {
        match self {
            ObjectError::Unclaimed {
                name,
                namespace,
                deletion,
                ..
            } => {
                let what = object_ref(name);
                let second = match deletion {
                    Deletion::Deleted => format!(
                        "Deleted {what}, so that an agent that starts later does not checkpoint the pod unasked."
                    ),
                    Deletion::Gone => format!("{what} is gone already."),
                    Deletion::Refused(e) => format!(
                        "{what} is left in place (deleting it failed: {e}): an agent that starts later will still checkpoint the pod; to prevent it: kubectl delete {what} -n {namespace}"
                    ),
                };
                format!("error: {self}\n{second}")
            }
            ObjectError::TimedOut {
                name, namespace, ..
            } => format!(
                "error: {self}\nIt goes on without this command; follow it with: {}",
                follow_hint(name, namespace)
            ),
            ObjectError::Interrupted {
                name: Some(name),
                namespace,
                ..
            } => format!(
                "Stopped waiting; {} goes on. Follow it with:\n  {}",
                object_ref(name),
                follow_hint(name, namespace)
            ),
            ObjectError::Interrupted {
                name: None,
                namespace,
                pod,
            } => format!(
                "Stopped while creating the PodCheckpoint of pod {namespace}/{pod}; it may have been created: kubectl get {} -n {namespace}",
                podcheckpoint::PLURAL
            ),
            ObjectError::Create { source, .. } => render_client_error(source),
            ObjectError::Watch {
                name,
                namespace,
                source,
            } => format!(
                "{}\n{} was created and goes on: kubectl get {} -n {namespace}",
                render_client_error(source),
                object_ref(name),
                object_ref(name)
            ),
            other => format!("error: {other}"),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::VecDeque;

    use api_types::podcheckpoint::{
        CONDITION_READY, CheckpointArchive, PodCheckpointContainerStatus, PodCheckpointStatus,
        reason,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    use super::*;
    use crate::client::ServerError;
    use crate::client::fake::{FakeClient, GENERATED_SUFFIX};

    pub(crate) const NAME: &str = "counter-x7k2p";

    fn condition(status: &str, reason: &str, message: &str) -> Condition {
        Condition {
            type_: CONDITION_READY.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: Time("2026-11-30T07:00:00Z".parse().unwrap()),
            observed_generation: Some(1),
        }
    }

    /// The created object as the fake server names it.
    pub(crate) fn created(containers: &[&str]) -> PodCheckpoint {
        let mut pc = new_object(
            "default",
            "counter",
            Some("pod-uid-1".into()),
            containers.iter().map(|c| (*c).to_owned()).collect(),
            30,
        );
        pc.metadata.name = Some(format!("counter-{GENERATED_SUFFIX}"));
        pc.metadata.uid = Some("0c4f5b1e-uid".into());
        pc.metadata.resource_version = Some("1".into());
        pc
    }

    /// `created` at resourceVersion `rv` with this status.
    pub(crate) fn at(rv: u32, status: PodCheckpointStatus) -> PodCheckpoint {
        let mut pc = created(&["app"]);
        pc.metadata.resource_version = Some(rv.to_string());
        pc.status = Some(status);
        pc
    }

    pub(crate) fn in_progress(rv: u32) -> PodCheckpoint {
        at(
            rv,
            PodCheckpointStatus {
                node_name: Some("node-1".into()),
                containers: Some("app".into()),
                conditions: vec![condition("False", reason::IN_PROGRESS, "")],
                ..Default::default()
            },
        )
    }

    pub(crate) fn completed(rv: u32, containers: &[&str]) -> PodCheckpoint {
        let checkpointed = containers
            .iter()
            .map(|c| PodCheckpointContainerStatus {
                name: (*c).to_owned(),
                image: "localhost/kcr-test/app:v1".into(),
                container_id: format!("containerd://{c}-id"),
                archive: Some(CheckpointArchive {
                    path: format!("checkpoint-counter_default-{c}-2026-11-30T07:00:00Z.tar"),
                    size_bytes: 1000,
                    sha256: "ab".repeat(32),
                }),
            })
            .collect();
        at(
            rv,
            PodCheckpointStatus {
                node_name: Some("node-1".into()),
                containers: Some(containers.join(",")),
                checkpointed_containers: checkpointed,
                total_size_bytes: Some(1000 * i64::try_from(containers.len()).unwrap()),
                conditions: vec![condition("True", reason::COMPLETED, "")],
                ..Default::default()
            },
        )
    }

    pub(crate) fn failed(rv: u32, why: &str, message: &str) -> PodCheckpoint {
        at(
            rv,
            PodCheckpointStatus {
                node_name: Some("node-1".into()),
                conditions: vec![condition("False", why, message)],
                ..Default::default()
            },
        )
    }

    const LIMITS: WaitLimits = WaitLimits {
        claim: Duration::from_secs(30),
        per_container: Duration::from_secs(45),
        containers: Some(1),
    };

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    async fn run_wait(
        c: &FakeClient,
        limits: WaitLimits,
        interrupt_after: Option<Duration>,
    ) -> (Result<Outcome, ClientError>, Vec<String>) {
        let interrupt = async move {
            match interrupt_after {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let interrupt = std::pin::pin!(interrupt);
        let mut seen = Vec::new();
        let r = wait(c, created(&["app"]), limits, interrupt, |pc| {
            seen.push(describe_state(pc))
        })
        .await;
        (r, seen)
    }

    #[tokio::test(start_paused = true)]
    async fn waits_until_ready_and_reports_progress() {
        let c = FakeClient {
            watch_script: vec![
                (secs(0), Ok(Some(created(&["app"])))),
                (secs(1), Ok(Some(in_progress(2)))),
                (secs(50), Ok(Some(completed(3, &["app"])))),
            ],
            ..Default::default()
        };
        let (r, seen) = run_wait(&c, LIMITS, None).await;
        match r.unwrap() {
            Outcome::Finished(pc) => assert!(pc.is_ready()),
            other => panic!("{other:?}"),
        }
        assert_eq!(seen, ["CheckpointInProgress on node node-1"]);
        assert_eq!(c.calls(), ["watch podcheckpoints default/counter-x7k2p"]);
    }

    #[tokio::test(start_paused = true)]
    async fn terminal_failures_finish_the_wait() {
        for why in [reason::FAILED, reason::SOURCE_POD_REPLACED] {
            let c = FakeClient {
                watch_script: vec![(secs(2), Ok(Some(failed(2, why, "it broke"))))],
                ..Default::default()
            };
            match run_wait(&c, LIMITS, None).await.0.unwrap() {
                Outcome::Finished(pc) => assert!(!pc.is_ready() && pc.is_finished()),
                other => panic!("{other:?}"),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_unclaimed_object_is_deleted_with_preconditions() {
        let c = FakeClient {
            watch_script: vec![(secs(0), Ok(Some(created(&["app"]))))],
            ..Default::default()
        };
        let before = Instant::now();
        match run_wait(&c, LIMITS, None).await.0.unwrap() {
            Outcome::Unclaimed {
                deletion: Deletion::Deleted,
                ..
            } => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(before.elapsed(), secs(30));
        assert_eq!(
            c.calls().last().map(String::as_str),
            Some("delete podcheckpoints default/counter-x7k2p uid=0c4f5b1e-uid rv=1")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_claim_racing_the_delete_wins() {
        // The delete finds the object changed (409): the next event shows the
        // claim, and the wait goes on to the end.
        let c = FakeClient {
            watch_script: vec![
                (secs(0), Ok(Some(created(&["app"])))),
                (secs(31), Ok(Some(in_progress(2)))),
                (secs(5), Ok(Some(completed(3, &["app"])))),
            ],
            delete_answers: std::sync::Mutex::new(VecDeque::from([Err(ServerError {
                code: 409,
                reason: "Conflict".into(),
                message: "the ResourceVersion in the precondition (1) does not match".into(),
            })])),
            ..Default::default()
        };
        match run_wait(&c, LIMITS, None).await.0.unwrap() {
            Outcome::Finished(pc) => assert!(pc.is_ready()),
            other => panic!("{other:?}"),
        }
        let deletes = c.calls().iter().filter(|l| l.starts_with("delete")).count();
        assert_eq!(deletes, 1);

        // Changed but still unclaimed (someone labelled it): deleted on the next try.
        let mut labelled = created(&["app"]);
        labelled.metadata.resource_version = Some("2".into());
        let c = FakeClient {
            watch_script: vec![(secs(31), Ok(Some(labelled)))],
            delete_answers: std::sync::Mutex::new(VecDeque::from([Err(ServerError {
                code: 409,
                reason: "Conflict".into(),
                message: "changed".into(),
            })])),
            ..Default::default()
        };
        match run_wait(&c, LIMITS, None).await.0.unwrap() {
            Outcome::Unclaimed {
                deletion: Deletion::Deleted,
                ..
            } => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(
            c.calls().last().map(String::as_str),
            Some("delete podcheckpoints default/counter-x7k2p uid=0c4f5b1e-uid rv=2")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_forbidden_delete_leaves_the_object() {
        let c = FakeClient {
            forbidden: vec!["delete podcheckpoints".into()],
            ..Default::default()
        };
        match run_wait(&c, LIMITS, None).await.0.unwrap() {
            Outcome::Unclaimed {
                deletion: Deletion::Refused(e),
                ..
            } => assert!(e.is_forbidden()),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_whole_wait_is_bounded_per_container() {
        let c = FakeClient {
            watch_script: vec![(secs(1), Ok(Some(in_progress(2))))],
            ..Default::default()
        };
        let before = Instant::now();
        match run_wait(&c, LIMITS, None).await.0.unwrap() {
            Outcome::TimedOut { waited, last } => {
                assert_eq!(waited, secs(75));
                assert_eq!(describe_state(&last), "CheckpointInProgress on node node-1");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(before.elapsed(), secs(75));

        // Three containers learnt from the status: 30 + 3 × 45.
        let mut three = in_progress(2);
        if let Some(s) = three.status.as_mut() {
            s.containers = Some("a,b,c".into());
        }
        let c = FakeClient {
            watch_script: vec![(secs(1), Ok(Some(three)))],
            ..Default::default()
        };
        let limits = WaitLimits {
            containers: None,
            ..LIMITS
        };
        match run_wait(&c, limits, None).await.0.unwrap() {
            Outcome::TimedOut { waited, .. } => assert_eq!(waited, secs(165)),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn interrupt_deleted_and_fatal_errors() {
        let c = FakeClient {
            watch_script: vec![(secs(1), Ok(Some(in_progress(2))))],
            ..Default::default()
        };
        match run_wait(&c, LIMITS, Some(secs(3))).await.0.unwrap() {
            Outcome::Interrupted(last) => assert!(is_claimed(&last)),
            other => panic!("{other:?}"),
        }

        let c = FakeClient {
            watch_script: vec![(secs(1), Ok(None))],
            ..Default::default()
        };
        assert!(matches!(
            run_wait(&c, LIMITS, None).await.0.unwrap(),
            Outcome::Deleted
        ));

        // 500s are retried, 403 ends the wait.
        let c = FakeClient {
            watch_script: vec![
                (
                    secs(1),
                    Err(ServerError {
                        code: 500,
                        reason: "InternalError".into(),
                        message: "etcd".into(),
                    }),
                ),
                (
                    secs(1),
                    Err(ServerError {
                        code: 403,
                        reason: "Forbidden".into(),
                        message: "cannot watch".into(),
                    }),
                ),
            ],
            ..Default::default()
        };
        assert!(
            run_wait(&c, LIMITS, None)
                .await
                .0
                .unwrap_err()
                .is_forbidden()
        );
    }

    #[test]
    fn the_object_to_create() {
        let pc = new_object("prod", "db-0", Some("uid-1".into()), vec!["pg".into()], 30);
        assert_eq!(
            serde_json::to_value(&pc).unwrap(),
            serde_json::json!({
                "apiVersion": "checkpoint.kcr.dev/v1alpha1",
                "kind": "PodCheckpoint",
                "metadata": {"generateName": "db-0-", "namespace": "prod"},
                "spec": {"sourcePodName": "db-0", "sourcePodUID": "uid-1", "containers": ["pg"], "timeoutSeconds": 30}
            })
        );
        let pc = new_object("prod", "db-0", None, vec![], 0);
        assert_eq!(
            serde_json::to_value(&pc.spec).unwrap(),
            serde_json::json!({"sourcePodName": "db-0"})
        );
    }

    #[test]
    fn errors_as_printed() {
        let unclaimed = |node: Option<&str>, deletion| ObjectError::Unclaimed {
            name: NAME.into(),
            namespace: "default".into(),
            waited: secs(30),
            node: node.map(Into::into),
            deletion,
        };
        assert_eq!(
            unclaimed(Some("node-1"), Deletion::Deleted).render(),
            "error: no checkpoint agent claimed podcheckpoint/counter-x7k2p within 30s: is checkpoint-shim's controller running on node node-1?\n\
             Deleted podcheckpoint/counter-x7k2p, so that an agent that starts later does not checkpoint the pod unasked."
        );
        assert_eq!(
            unclaimed(
                None,
                Deletion::Refused(ClientError::Server(ServerError {
                    code: 403,
                    reason: "Forbidden".into(),
                    message: "no".into()
                }))
            )
            .render(),
            "error: no checkpoint agent claimed podcheckpoint/counter-x7k2p within 30s: is checkpoint-shim's controller running on the pod's node?\n\
             podcheckpoint/counter-x7k2p is left in place (deleting it failed: no): an agent that starts later will still checkpoint the pod; to prevent it: kubectl delete podcheckpoint/counter-x7k2p -n default"
        );
        let interrupted = ObjectError::Interrupted {
            name: Some(NAME.into()),
            namespace: "default".into(),
            pod: "counter".into(),
        };
        assert_eq!(interrupted.exit_code(), 130);
        assert_eq!(
            interrupted.render(),
            "Stopped waiting; podcheckpoint/counter-x7k2p goes on. Follow it with:\n  kubectl wait --for=condition=Ready podcheckpoint/counter-x7k2p -n default"
        );
        let timed_out = ObjectError::TimedOut {
            name: NAME.into(),
            namespace: "default".into(),
            waited: secs(75),
            state: describe_state(&in_progress(2)),
        };
        assert_eq!(timed_out.exit_code(), 1);
        assert_eq!(
            timed_out.render(),
            "error: podcheckpoint/counter-x7k2p did not finish within 1m15s (CheckpointInProgress on node node-1)\n\
             It goes on without this command; follow it with: kubectl wait --for=condition=Ready podcheckpoint/counter-x7k2p -n default"
        );
        let failed = ObjectError::Failed {
            name: NAME.into(),
            reason: reason::FAILED.into(),
            message: String::new(),
        };
        assert_eq!(
            failed.render(),
            "error: podcheckpoint/counter-x7k2p failed: CheckpointFailed"
        );
        assert_eq!(
            ObjectError::NeedsContainer {
                namespace: "default".into(),
                pod: "multi".into()
            }
            .render(),
            "error: cannot read pod default/multi (you lack get pods) to choose its default container: name the container with -c CONTAINER, or checkpoint every container with --all-containers"
        );
    }
}
