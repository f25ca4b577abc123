//! The status the agent writes, always through `/status`, as JSON merge
//! patches: the whole `status` it means (arrays are replaced whole), and for
//! a first write the object's `resourceVersion`, so that of two writers only
//! one succeeds (the other gets 409 Conflict).

use api_types::PodCheckpointStatus;
use api_types::k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use api_types::k8s_openapi::jiff::Timestamp;
use api_types::podcheckpoint::{CONDITION_READY, PodCheckpoint};
use serde_json::{Value, json};

/// Longest condition message written (the API allows 32768).
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// `s` cut to at most `max` bytes on a character boundary, with `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The `Ready` condition as `meta.SetStatusCondition` would leave it:
/// `lastTransitionTime` moves only when `status` changes.
pub fn ready(
    pc: &PodCheckpoint,
    ready: bool,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> Condition {
    let status = if ready { "True" } else { "False" };
    let since = pc
        .ready_condition()
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: CONDITION_READY.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: truncate(message, MAX_MESSAGE_BYTES),
        last_transition_time: since,
        observed_generation: pc.metadata.generation,
    }
}

/// The status with its `Ready` condition replaced (other conditions kept).
pub fn with_condition(
    mut status: PodCheckpointStatus,
    condition: Condition,
) -> PodCheckpointStatus {
    status.conditions.retain(|c| c.type_ != CONDITION_READY);
    status.conditions.push(condition);
    status
}

/// Whether writing `new` would change nothing the object already says.
pub fn unchanged(pc: &PodCheckpoint, new: &PodCheckpointStatus) -> bool {
    pc.status.as_ref() == Some(new)
}

/// The merge patch that writes `status`; with `resource_version`, only if
/// the object is still at that version.
pub fn patch(status: &PodCheckpointStatus, resource_version: Option<&str>) -> Value {
    let mut patch = json!({ "status": status });
    if let Some(rv) = resource_version {
        patch["metadata"] = json!({ "resourceVersion": rv });
    }
    patch
}

#[cfg(test)]
mod tests {
    use super::*;
    use api_types::PodCheckpointSpec;
    use api_types::podcheckpoint::reason;

    #[test]
    fn transition_time_moves_only_with_status() {
        let t0: Timestamp = "2026-11-30T07:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-11-30T07:00:05Z".parse().unwrap();
        let mut pc = PodCheckpoint::new("x", PodCheckpointSpec::default());
        pc.metadata.generation = Some(1);
        let pending = ready(&pc, false, reason::PENDING, "waiting", t0);
        pc.status = Some(with_condition(Default::default(), pending));
        let started = ready(&pc, false, reason::IN_PROGRESS, "", t1);
        assert_eq!(started.last_transition_time, Time(t0));
        assert_eq!(started.observed_generation, Some(1));
        let done = ready(&pc, true, reason::COMPLETED, "", t1);
        assert_eq!(done.last_transition_time, Time(t1));
        let s = with_condition(pc.status.clone().unwrap(), done);
        assert_eq!(s.conditions.len(), 1);
        assert_eq!(
            patch(&s, Some("7"))["metadata"],
            json!({"resourceVersion": "7"})
        );
        assert!(patch(&s, None).get("metadata").is_none());
    }

    #[test]
    fn messages_are_bounded() {
        assert_eq!(truncate("abc", 3), "abc");
        let t = truncate(&"é".repeat(10), 7);
        assert!(t.len() <= 7 && t.ends_with('…'), "{t}");
    }
}
