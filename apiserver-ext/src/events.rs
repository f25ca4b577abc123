//! An Event on the pod for each checkpoint result (`Checkpointed` Normal,
//! `CheckpointFailed` Warning), written as core/v1 Events the way client-go's
//! `record.EventRecorder` does. Recording never delays or fails a request:
//! the kube-rs recorder writes in the background and only logs failures.
//! A fake recorder is in [`crate::testing`].

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Status, Time};
use k8s_openapi::jiff::Timestamp;

/// `source.component` / `reportingComponent` of our events.
pub const COMPONENT: &str = "checkpoint-apiserver";
/// Reason of the success event.
pub const REASON_CHECKPOINTED: &str = "Checkpointed";
/// Reason of the failure event.
pub const REASON_FAILED: &str = "CheckpointFailed";
/// How long writing one event may take.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to create event {name} in {namespace}: {source}")]
    Create {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("timed out creating event {name} in {namespace}")]
    Timeout { namespace: String, name: String },
}

/// Normal or Warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// One event about a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEvent {
    pub namespace: String,
    pub pod: String,
    pub pod_uid: String,
    pub type_: EventType,
    pub reason: &'static str,
    pub message: String,
}

impl PodEvent {
    fn about(pod: &Pod, type_: EventType, reason: &'static str, message: String) -> Self {
        Self {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            pod: pod.metadata.name.clone().unwrap_or_default(),
            pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
            type_,
            reason,
            message,
        }
    }

    /// `Checkpointed`: container, node and archive path.
    pub fn checkpointed(pod: &Pod, container: &str, node: &str, archive: &str) -> Self {
        Self::about(
            pod,
            EventType::Normal,
            REASON_CHECKPOINTED,
            format!("Checkpointed container {container} on node {node} to {archive}"),
        )
    }

    /// `CheckpointFailed`: the Status reason and message (the container when it was chosen).
    pub fn failed(pod: &Pod, container: Option<&str>, status: &Status) -> Self {
        let what = match container {
            Some(c) => format!("container {c}"),
            None => "a container".to_owned(),
        };
        let reason = status.reason.as_deref().unwrap_or("Unknown");
        let message = status.message.as_deref().unwrap_or("");
        Self::about(
            pod,
            EventType::Warning,
            REASON_FAILED,
            format!("Checkpoint of {what} failed ({reason}): {message}"),
        )
    }

    /// The core/v1 Event, named `POD.HEX-NANOS` as client-go names them.
    pub fn to_event(&self, now: Timestamp, instance: &str) -> Event {
        let name = format!("{}.{:x}", self.pod, now.as_nanosecond());
        Event {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(self.namespace.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(self.pod.clone()),
                namespace: Some(self.namespace.clone()),
                uid: (!self.pod_uid.is_empty()).then(|| self.pod_uid.clone()),
                ..Default::default()
            },
            reason: Some(self.reason.to_owned()),
            message: Some(self.message.clone()),
            type_: Some(self.type_.as_str().to_owned()),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            source: Some(EventSource {
                component: Some(COMPONENT.into()),
                host: None,
            }),
            reporting_component: Some(COMPONENT.into()),
            reporting_instance: Some(instance.to_owned()),
            action: Some("Checkpoint".into()),
            ..Default::default()
        }
    }
}

/// Records events; never fails the caller.
pub trait EventRecorder: Send + Sync + std::fmt::Debug {
    fn record(&self, event: PodEvent);
}

/// Writes events with kube-rs in the background.
#[derive(Clone)]
pub struct KubeEventRecorder {
    client: kube::Client,
    instance: String,
}

impl std::fmt::Debug for KubeEventRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeEventRecorder")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl KubeEventRecorder {
    /// `instance` is the `reportingInstance` (the pod's host name).
    pub fn new(client: kube::Client, instance: impl Into<String>) -> Self {
        Self {
            client,
            instance: instance.into(),
        }
    }

    /// Write one event now.
    pub async fn write(&self, event: &PodEvent) -> Result<(), Error> {
        let ev = event.to_event(Timestamp::now(), &self.instance);
        let name = ev.metadata.name.clone().unwrap_or_default();
        let api: kube::Api<Event> = kube::Api::namespaced(self.client.clone(), &event.namespace);
        match tokio::time::timeout(WRITE_TIMEOUT, api.create(&Default::default(), &ev)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(source)) => Err(Error::Create {
                namespace: event.namespace.clone(),
                name,
                source,
            }),
            Err(_) => Err(Error::Timeout {
                namespace: event.namespace.clone(),
                name,
            }),
        }
    }
}

impl EventRecorder for KubeEventRecorder {
    fn record(&self, event: PodEvent) {
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.write(&event).await {
                tracing::warn!(error = %e, reason = event.reason, pod = %event.pod, "event not recorded");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api_types::status;
    use kcr_testkit::fixtures::running_pod;
    use kcr_testkit::mock_api::{MockApi, Scenario};

    fn now() -> Timestamp {
        "2026-11-27T07:30:01Z".parse().unwrap()
    }

    fn pod(ns: &str, name: &str, uid: &str) -> Pod {
        let mut p = running_pod(ns, name, "node-1", &["app"]);
        p.metadata.uid = (!uid.is_empty()).then(|| uid.to_owned());
        p
    }

    #[test]
    fn event_objects() {
        let counter = pod("default", "counter", "uid-1");
        let ok = PodEvent::checkpointed(
            &counter,
            "app",
            "node-1",
            "/var/lib/kubelet/checkpoints/checkpoint-counter_default-app-2026-11-27T07:30:00Z.tar",
        );
        insta::assert_json_snapshot!(
            "event_checkpointed",
            ok.to_event(now(), "checkpoint-apiserver-0")
        );
        let failed = PodEvent::failed(
            &counter,
            Some("app"),
            &status::internal_error(
                "node node-1: checkpointing of default/counter/app failed (CRIU)",
            ),
        );
        insta::assert_json_snapshot!(
            "event_failed",
            failed.to_event(now(), "checkpoint-apiserver-0")
        );
        let e = failed.to_event(now(), "i");
        assert_eq!(e.metadata.name.as_deref(), Some("counter.18ebd663e6d37a00"));
        assert_eq!(
            PodEvent::failed(&pod("ns", "p", ""), None, &status::bad_request("m")).message,
            "Checkpoint of a container failed (BadRequest): m"
        );
    }

    #[tokio::test]
    async fn kube_recorder_writes_and_tolerates_failure() {
        let mock = MockApi::new(vec![]);
        let rec = KubeEventRecorder::new(mock.client(), "pod-0");
        let ev = PodEvent::checkpointed(&pod("ns", "p", "u"), "app", "n1", "/a.tar");
        rec.write(&ev).await.unwrap();
        let recorded = mock.requests();
        assert_eq!(recorded[0].line(), "POST /api/v1/namespaces/ns/events");
        assert_eq!(recorded[0].body["reason"], "Checkpointed");
        assert_eq!(recorded[0].body["involvedObject"]["kind"], "Pod");
        assert_eq!(recorded[0].body["reportingInstance"], "pod-0");

        let mock = MockApi::new(vec![Scenario::EventsFail]);
        let rec = KubeEventRecorder::new(mock.client(), "pod-0");
        let err = rec.write(&ev).await.unwrap_err();
        assert!(
            err.to_string().starts_with("failed to create event p."),
            "{err}"
        );
        // record() never fails or panics; it logs.
        rec.record(ev);
        for _ in 0..100 {
            if mock.request_lines().len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(mock.request_lines().len(), 2);
    }
}
