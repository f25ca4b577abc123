//! The `pods/checkpoint` subresource: the request flow of ARCHITECTURE.md
//! (cf. `pkg/registry/core/pod/rest/subresources.go`):
//!
//! 1. authentication (401), gate (404), method (405), names (400);
//! 2. SubjectAccessReview of verb `checkpoint` on core `pods` NS/POD (403);
//! 3. options from the query and/or a size-limited JSON body (400);
//! 4. the pod (404), its phase (409), the container (400), its node (409),
//!    the container's state (409);
//! 5. the node, its address and port (409/503), a per-node slot (503);
//! 6. the node call, bounded by the request's timeout plus a margin
//!    (500/503/504 by the node's answer);
//! 7. an Event on the pod and the metrics; a `ContainerCheckpoint` or a Status.

use std::sync::Arc;
use std::time::{Duration, Instant};

use api_types::checkpoint::{ContainerCheckpointSpec, ContainerCheckpointStatus};
use api_types::options::OptionsError;
use api_types::{ContainerCheckpoint, PodCheckpointOptions, StatusReason, status, validation};
use apiserver_lib::authz::{Attributes, Decision};
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

use crate::events::PodEvent;
use crate::node::CheckpointCall;
use crate::server::App;
use crate::target;

/// Authenticate a request: the user, or a 401 Status.
pub async fn authenticate(app: &App, parts: &Parts) -> Result<UserInfo, Status> {
    match app.authn.authenticate(parts).await {
        Ok((user, method)) => {
            tracing::debug!(user = %user.name, ?method, "authenticated");
            Ok(user)
        }
        Err(e) => {
            if !matches!(e, apiserver_lib::authn::Error::Unauthenticated) {
                tracing::warn!(error = %e, "authentication failed");
            }
            Err(status::unauthorized())
        }
    }
}

/// Serve one request to `.../namespaces/{ns}/pods/{pod}/checkpoint` (raw,
/// still percent-encoded path segments), counting it in the metrics.
pub async fn handle(app: Arc<App>, req: Request, namespace: &str, pod: &str) -> Response {
    let namespace = decode(namespace);
    let pod = decode(pod);
    let result = serve(app.clone(), req, &namespace, &pod).await;
    let (code, reason, resp) = match result {
        Ok(obj) => (
            200,
            "Success".to_owned(),
            json_response(StatusCode::OK, &obj),
        ),
        Err(s) => {
            let e = StatusError(s);
            (e.code().as_u16(), e.reason().to_owned(), e.into_response())
        }
    };
    app.metrics.request(code, &reason);
    resp
}

fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

async fn serve(
    app: Arc<App>,
    req: Request,
    namespace: &str,
    pod_name: &str,
) -> Result<ContainerCheckpoint, Status> {
    let (parts, body) = req.into_parts();
    let user = authenticate(&app, &parts).await?;
    if !app.settings.gate_on() {
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

    authorize(&app, user.clone(), namespace, pod_name).await?;

    let opts = options(&app, &parts, body).await?;
    tracing::debug!(user = %user.name, namespace, pod = pod_name, ?opts, "checkpoint requested");

    let pod = app
        .cluster
        .get_pod(namespace, pod_name)
        .await
        .map_err(|e| e.status())?
        .ok_or_else(|| status::pod_not_found(pod_name))?;

    // From here on, each result is an Event on the pod. The rest runs in its
    // own task: a client that goes away (kube-apiserver cuts requests at
    // its --request-timeout) does not abandon a checkpoint half-way.
    let task = tokio::spawn(checkpoint_pod(app.clone(), pod, opts));
    match task.await {
        Ok(result) => result,
        Err(e) => Err(status::internal_error(format!(
            "the checkpoint task failed: {e}"
        ))),
    }
}

async fn authorize(app: &App, user: UserInfo, namespace: &str, pod: &str) -> Result<(), Status> {
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
    match app.authz.authorize(&attrs).await {
        Ok(Decision::Allow) => Ok(()),
        Ok(Decision::Deny(reason)) => {
            tracing::info!(user = %attrs.user.name, namespace, pod, %reason, "checkpoint denied");
            Err(status::forbidden(
                &attrs.user.name,
                &attrs.verb,
                "",
                &attrs.resource,
                namespace,
                pod,
                &reason,
            ))
        }
        Err(e) => {
            tracing::warn!(error = %e, "authorization failed");
            Err(status::service_unavailable(format!(
                "the request could not be authorized: {e}"
            )))
        }
    }
}

/// How long a request body may take to arrive.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn options(app: &App, parts: &Parts, body: Body) -> Result<PodCheckpointOptions, Status> {
    let max = app.settings.max_timeout_seconds;
    let limit = app.settings.max_request_body_bytes;
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
    let bytes =
        match tokio::time::timeout(BODY_READ_TIMEOUT, axum::body::to_bytes(body, limit)).await {
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

/// Steps 4–7 for a pod that exists; records the Event.
async fn checkpoint_pod(
    app: Arc<App>,
    pod: Pod,
    opts: PodCheckpointOptions,
) -> Result<ContainerCheckpoint, Status> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let mut container = None;
    let result = checkpoint_container(&app, &pod, &opts, &mut container).await;
    let event = match &result {
        Ok(c) => PodEvent::checkpointed(
            &namespace,
            &name,
            &uid,
            &c.spec.container,
            &c.status.node_name,
            &c.status.archive_path,
        ),
        Err(s) => PodEvent::failed(
            &namespace,
            &name,
            &uid,
            container.as_deref(),
            s.reason.as_deref().unwrap_or("Unknown"),
            s.message.as_deref().unwrap_or(""),
        ),
    };
    app.events.record(event);
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
    result
}

async fn checkpoint_container(
    app: &App,
    pod: &Pod,
    opts: &PodCheckpointOptions,
    chosen: &mut Option<String>,
) -> Result<ContainerCheckpoint, Status> {
    let settings = &app.settings;
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let pod_name = pod.metadata.name.clone().unwrap_or_default();

    target::check_pod_running(pod).map_err(|e| e.status())?;
    let container =
        target::resolve_container(pod, opts.container.as_deref()).map_err(|e| e.status())?;
    *chosen = Some(container.clone());
    let node_name = target::node_name(pod).map_err(|e| e.status())?;
    target::check_container_running(pod, &container).map_err(|e| e.status())?;

    let node = app
        .cluster
        .get_node(&node_name)
        .await
        .map_err(|e| e.status())?
        .ok_or_else(|| {
            target::Error::NodeMissing {
                pod: pod_name.clone(),
                node: node_name.clone(),
            }
            .status()
        })?;
    let address = target::node_address(&node, &settings.address_types).map_err(|e| e.status())?;
    let port = target::node_port(&node, settings.kubelet_port);
    let call = CheckpointCall {
        node: node_name.clone(),
        address: address.clone(),
        port,
        namespace: namespace.clone(),
        pod: pod_name.clone(),
        container: container.clone(),
        timeout_seconds: opts.timeout(),
    };

    let start = Timestamp::now();
    let queued = app.metrics.queued(&node_name);
    let permit = app
        .limiter
        .acquire(&node_name, settings.node_queue_timeout)
        .await
        .map_err(|e| e.status())?;
    drop(queued);
    let in_flight = app.metrics.in_flight(&node_name);
    let deadline = settings.call_deadline(opts.timeout());
    let t0 = Instant::now();
    let answer = tokio::time::timeout(deadline, app.nodes.checkpoint(&call)).await;
    let elapsed = t0.elapsed().as_secs_f64();
    drop(in_flight);
    drop(permit);
    let archive = match answer {
        Ok(Ok(path)) => {
            app.metrics.checkpoint_duration("success", elapsed);
            path
        }
        Ok(Err(e)) => {
            let s = e.status();
            app.metrics
                .checkpoint_duration(s.reason.as_deref().unwrap_or("Unknown"), elapsed);
            return Err(s);
        }
        Err(_) => {
            app.metrics
                .checkpoint_duration(StatusReason::Timeout.as_str(), elapsed);
            return Err(status::timeout(format!(
                "timed out after {} waiting for node {node_name} to checkpoint container {container} of pod {namespace}/{pod_name}",
                human(deadline)
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
            node_address: address,
            archive_path: archive,
            start_time: Time(start),
            completion_time: Time(end),
        },
    ))
}

/// `7s`, `1.5s`, `2m5s`.
fn human(d: Duration) -> String {
    let secs = d.as_secs();
    let millis = d.subsec_millis();
    if secs >= 60 {
        format!("{}m{}s", secs / 60, secs % 60)
    } else if millis == 0 {
        format!("{secs}s")
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::human;
    use std::time::Duration;

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_secs(7)), "7s");
        assert_eq!(human(Duration::from_millis(1500)), "1.5s");
        assert_eq!(human(Duration::from_secs(125)), "2m5s");
    }
}
