//! The `pods/checkpoint` subresource ([`CheckpointREST`], as
//! `pkg/registry/core/pod/rest/subresources.go` has `ExecREST`, `LogREST`):
//!
//! 1. in front of it, the filters: audit, authentication (401);
//! 2. gate (404), method (405), names (400);
//! 3. SubjectAccessReview of verb `checkpoint` on core `pods` NS/POD (403);
//! 4. options from the query and/or a size-limited JSON body (400);
//! 5. the pod (404), its phase (409), the container (400), its node (409),
//!    the container's state (409);
//! 6. the node, its address and port (409/503); the container's turn (one
//!    checkpoint of it at a time, at least 1 s apart, across replicas: 409,
//!    [`crate::turns`]); a per-node slot (503);
//! 7. the node call, bounded by the request's timeout plus a margin
//!    (500/503/504 by the node's answer);
//! 8. an Event on the pod and the metrics; a `ContainerCheckpoint` or a Status.

use std::sync::Arc;
use std::time::{Duration, Instant};

use api_types::checkpoint::{ContainerCheckpointSpec, ContainerCheckpointStatus};
use api_types::features::{CONTAINER_CHECKPOINT_API, FeatureGates};
use api_types::options::OptionsError;
use api_types::timeouts::Deadlines;
use api_types::{
    ContainerCheckpoint, ContainerRef, PodCheckpointOptions, StatusReason, status, validation,
};
use apiserver_lib::audit::AuditContext;
use apiserver_lib::authorization::{Attributes, Authorizer, Decision};
use apiserver_lib::status::json_response;
use apiserver_lib::{StatusError, UserInfo};
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{Method, StatusCode};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, Time};
use k8s_openapi::jiff::Timestamp;

use crate::concurrency::NodeLimiter;
use crate::events::{EventRecorder, PodEvent};
use crate::kubelet_client::{self, KubeletClient, KubeletClientConfig};
use crate::listers::{NodeLister, PodCheckpointLister, PodLister};
use crate::metrics::Metrics;
use crate::strategy;
use crate::turns::{self, ContainerTurns};

/// The subresource and everything it calls, each behind a narrow trait.
#[derive(Debug)]
pub struct CheckpointREST {
    pub feature_gates: FeatureGates,
    /// `--max-timeout-seconds`.
    pub max_timeout_seconds: i64,
    /// `--max-request-body-bytes`.
    pub max_request_body_bytes: usize,
    /// `--max-archive-range-bytes`.
    pub max_archive_range_bytes: u64,
    pub authorizer: Arc<dyn Authorizer>,
    pub pods: Arc<dyn PodLister>,
    pub pod_checkpoints: Arc<dyn PodCheckpointLister>,
    pub nodes: Arc<dyn NodeLister>,
    pub kubelet: KubeletClientConfig,
    pub kubelet_client: Arc<dyn KubeletClient>,
    pub events: Arc<dyn EventRecorder>,
    pub metrics: Arc<Metrics>,
    pub limiter: NodeLimiter,
    /// Checkpoints of one container take turns, at least 1 s apart, across replicas.
    pub turns: ContainerTurns,
}

/// What is known of a checkpoint as it goes: for the Event and the audit line.
#[derive(Debug, Default)]
struct Progress {
    container: Option<String>,
    node: Option<String>,
}

impl CheckpointREST {
    /// Whether the subresource is served (`ContainerCheckpointAPI`).
    pub fn gate_on(&self) -> bool {
        self.feature_gates.enabled(CONTAINER_CHECKPOINT_API)
    }

    /// Serve one request to `.../namespaces/{ns}/pods/{pod}/checkpoint` (raw,
    /// still percent-encoded path segments) from an authenticated user.
    pub async fn handle(self: Arc<Self>, req: Request, namespace: &str, pod: &str) -> Response {
        match self.serve(req, &decode(namespace), &decode(pod)).await {
            Ok(obj) => json_response(StatusCode::OK, &obj),
            Err(s) => StatusError(s).into_response(),
        }
    }

    async fn serve(
        self: Arc<Self>,
        req: Request,
        namespace: &str,
        pod_name: &str,
    ) -> Result<ContainerCheckpoint, Status> {
        let (parts, body) = req.into_parts();
        let user = request_user(&parts).map_err(|s| *s)?;
        let audit = parts.extensions.get::<AuditContext>().cloned();
        if !self.gate_on() {
            return Err(status::not_found(
                "the server could not find the requested resource (pods/checkpoint is served only with --feature-gates=ContainerCheckpointAPI=true)",
            ));
        }
        if parts.method != Method::POST {
            return Err(status::method_not_allowed(parts.method.as_str()));
        }
        validation::validate_namespace(namespace)
            .and_then(|()| validation::validate_pod_name(pod_name))
            .map_err(|e| status::bad_request(e.to_string()))?;

        self.authorize(user.clone(), namespace, pod_name).await?;

        let opts = self.options(&parts, body).await?;
        tracing::debug!(user = %user.name, namespace, pod = pod_name, ?opts, "checkpoint requested");

        let pod = self
            .pods
            .get_pod(namespace, pod_name)
            .await
            .map_err(|e| e.status())?
            .ok_or_else(|| status::pod_not_found(pod_name))?;

        // From here on, each result is an Event on the pod. The rest runs in its
        // own task: a client that goes away (kube-apiserver cuts requests at
        // its --request-timeout) does not abandon a checkpoint half-way.
        let task = tokio::spawn(self.clone().checkpoint_pod(pod, opts, audit));
        match task.await {
            Ok(result) => result,
            Err(e) => Err(status::internal_error(format!(
                "the checkpoint task failed: {e}"
            ))),
        }
    }

    async fn authorize(&self, user: UserInfo, namespace: &str, pod: &str) -> Result<(), Status> {
        let attrs = Attributes {
            user,
            verb: api_types::CHECKPOINT_VERB.to_owned(),
            group: String::new(),
            resource: api_types::RESOURCE.to_owned(),
            subresource: String::new(),
            namespace: namespace.to_owned(),
            name: pod.to_owned(),
            path: String::new(),
        };
        self.decide(&attrs, "checkpoint").await
    }

    /// The authorizer's decision on `attrs` as the request's answer: a
    /// denial is a 403 Status naming the right (and an info line saying
    /// `what` was denied to whom), an authorizer failure a 503.
    pub(crate) async fn decide(&self, attrs: &Attributes, what: &str) -> Result<(), Status> {
        match self.authorizer.authorize(attrs).await {
            Ok(Decision::Allow) => Ok(()),
            Ok(Decision::Deny(reason)) => {
                tracing::info!(
                    user = %attrs.user.name,
                    namespace = %attrs.namespace,
                    name = %attrs.name,
                    %reason,
                    "{what} denied"
                );
                Err(attrs.forbidden(&reason))
            }
            Err(e) => {
                tracing::warn!(error = %e, "authorization failed");
                Err(status::service_unavailable(format!(
                    "the request could not be authorized: {e}"
                )))
            }
        }
    }

    async fn options(&self, parts: &Parts, body: Body) -> Result<PodCheckpointOptions, Status> {
        let max = self.max_timeout_seconds;
        let limit = self.max_request_body_bytes;
        let bad = |e: OptionsError| status::bad_request(e.to_string());
        let query =
            PodCheckpointOptions::from_query(parts.uri.query().unwrap_or(""), max).map_err(bad)?;
        let too_large =
            || status::bad_request(format!("the request body is larger than {limit} bytes"));
        // A declared length over the limit is refused before anything is read.
        if let Some(len) = parts.headers.get(http::header::CONTENT_LENGTH)
            && len
                .to_str()
                .ok()
                .and_then(|l| l.parse::<u64>().ok())
                .is_none_or(|l| l > limit as u64)
        {
            return Err(too_large());
        }
        // The body must arrive in time: a caller may not hold the request open.
        let bytes = match tokio::time::timeout(BODY_READ_TIMEOUT, axum::body::to_bytes(body, limit))
            .await
        {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(_)) => return Err(too_large()),
            Err(_) => {
                return Err(status::bad_request(format!(
                    "the request body was not received within {}s",
                    BODY_READ_TIMEOUT.as_secs()
                )));
            }
        };
        // Options in a body are JSON (kube-apiserver would answer 415 to others).
        if !bytes.iter().all(u8::is_ascii_whitespace)
            && let Some(ct) = parts.headers.get(http::header::CONTENT_TYPE)
        {
            let media = ct
                .to_str()
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim();
            if !media.eq_ignore_ascii_case("application/json") {
                return Err(status::bad_request(format!(
                    "unsupported content type {}: send PodCheckpointOptions as application/json",
                    api_types::validation::quote_for_message(media)
                )));
            }
        }
        let body = PodCheckpointOptions::from_body(&bytes).map_err(bad)?;
        let opts = PodCheckpointOptions::merge(query, body).map_err(bad)?;
        opts.validate(max).map_err(bad)?;
        Ok(opts)
    }

    /// Steps 5–8 for a pod that exists; records the Event and tells the audit line.
    async fn checkpoint_pod(
        self: Arc<Self>,
        pod: Pod,
        opts: PodCheckpointOptions,
        audit: Option<AuditContext>,
    ) -> Result<ContainerCheckpoint, Status> {
        let mut progress = Progress::default();
        let result = self.checkpoint_container(&pod, &opts, &mut progress).await;
        let event = match &result {
            Ok(c) => PodEvent::checkpointed(
                &pod,
                &c.spec.container,
                &c.status.node_name,
                &c.status.archive_path,
            ),
            Err(s) => PodEvent::failed(&pod, progress.container.as_deref(), s),
        };
        self.events.record(event);
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        match &result {
            Ok(c) => tracing::info!(
                namespace, pod = %name, container = %c.spec.container, node = %c.status.node_name,
                archive = %c.status.archive_path, "checkpointed"
            ),
            Err(s) => tracing::info!(
                namespace, pod = %name, reason = s.reason.as_deref().unwrap_or(""),
                message = s.message.as_deref().unwrap_or(""), "checkpoint failed"
            ),
        }
        if let Some(audit) = audit {
            audit.update(|e| {
                e.container = progress.container.unwrap_or_default();
                e.node = progress.node.unwrap_or_default();
                if let Ok(c) = &result {
                    e.archive = c.status.archive_path.clone();
                }
            });
        }
        result
    }

    async fn checkpoint_container(
        &self,
        pod: &Pod,
        opts: &PodCheckpointOptions,
        progress: &mut Progress,
    ) -> Result<ContainerCheckpoint, Status> {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let pod_name = pod.metadata.name.clone().unwrap_or_default();

        strategy::check_pod_running(pod).map_err(|e| e.status())?;
        let container = strategy::find_or_default_container_by_name(pod, opts.container.as_deref())
            .map_err(|e| e.status())?;
        progress.container = Some(container.clone());
        let node_name = strategy::node_name(pod).map_err(|e| e.status())?;
        progress.node = Some(node_name.clone());
        strategy::check_container_running(pod, &container).map_err(|e| e.status())?;

        let node = self
            .nodes
            .get_node(&node_name)
            .await
            .map_err(|e| e.status())?
            .ok_or_else(|| {
                kubelet_client::Error::NodeMissing {
                    pod: pod_name.clone(),
                    node: node_name.clone(),
                }
                .status()
            })?;
        let target = ContainerRef::new(&namespace, &pod_name, &container);
        let call = self
            .kubelet
            .call(&node, target.clone(), opts.timeout())
            .map_err(|e| e.status())?;

        // The container's turn: one checkpoint of it at a time, in this
        // replica and across replicas, waiting no longer than the request's
        // own timeout (and --node-queue-timeout).
        let deadlines = Deadlines::new(opts.timeout(), self.kubelet.request_timeout);
        let deadline = self.kubelet.call_deadline(opts.timeout());
        let wait = deadlines.runtime().min(self.kubelet.node_queue_timeout);
        let hold = self.kubelet.node_queue_timeout
            + deadline
            + self.turns.spacing()
            + turns::CLOCK_SKEW_ALLOWANCE;
        let turn = self
            .turns
            .acquire(&target, tokio::time::Instant::now() + wait, hold)
            .await
            .map_err(|e| e.status())?;

        let start = Timestamp::now();
        let queued = self.metrics.queued(&node_name);
        let permit = self
            .limiter
            .acquire(&node_name, self.kubelet.node_queue_timeout)
            .await
            .map_err(|e| e.status())?;
        drop(queued);
        let in_flight = self.metrics.in_flight(&node_name);
        let t0 = Instant::now();
        let answer = tokio::time::timeout(deadline, self.kubelet_client.checkpoint(&call)).await;
        let took = t0.elapsed();
        let elapsed = took.as_secs_f64();
        drop(in_flight);
        drop(permit);
        // The next checkpoint of this container goes no earlier than the
        // spacing after this answer; after a timeout, not before the node
        // has given up on its runtime (it waits runtime + NODE_GRACE) either.
        let node_busy_until = if answer.is_err() {
            deadlines.node().saturating_sub(took)
        } else {
            Duration::ZERO
        };
        turn.end_after(node_busy_until + self.turns.spacing());
        let archive = match answer {
            Ok(Ok(path)) => {
                self.metrics.checkpoint_duration("success", elapsed);
                path
            }
            Ok(Err(e)) => {
                let s = e.status();
                self.metrics
                    .checkpoint_duration(s.reason.as_deref().unwrap_or("Unknown"), elapsed);
                return Err(s);
            }
            Err(_) => {
                self.metrics
                    .checkpoint_duration(StatusReason::Timeout.as_str(), elapsed);
                return Err(status::timeout(format!(
                    "timed out after {} waiting for node {node_name} to checkpoint container {container} of pod {namespace}/{pod_name}",
                    api_types::duration::format_go_duration(deadline)
                )));
            }
        };
        let end = Timestamp::now();
        Ok(ContainerCheckpoint::new(
            &namespace,
            ContainerCheckpointSpec {
                pod_name,
                pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
                container,
                timeout_seconds: opts.timeout(),
            },
            ContainerCheckpointStatus {
                node_name,
                node_address: call.address,
                archive_path: archive,
                start_time: Time(start),
                completion_time: Time(end),
            },
        ))
    }
}

/// How long a request body may take to arrive.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A path segment, percent-decoded (invalid UTF-8 replaced: validation refuses it).
pub fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

/// The user the authentication filter put on the request, or a 401 (the
/// filter lets no request without one through).
pub(crate) fn request_user(parts: &http::request::Parts) -> Result<UserInfo, Box<Status>> {
    parts
        .extensions
        .get::<UserInfo>()
        .cloned()
        .ok_or_else(|| Box::new(status::unauthorized()))
}
