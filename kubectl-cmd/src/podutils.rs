//! Which of several pods is the most active: `k8s.io/kubectl/pkg/util/podutils`
//! `ActivePods` (the order `kubectl exec TYPE/NAME` sorts by).

use std::cmp::Ordering;

use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::jiff::Timestamp;

fn ready_condition(pod: &Pod) -> Option<&PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

fn is_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

fn ready_time(pod: &Pod) -> Option<Timestamp> {
    ready_condition(pod)?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

fn phase_rank(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Running") => 2,
        Some("Unknown") => 1,
        _ => 0,
    }
}

fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().map(|c| c.restart_count).max())
        .unwrap_or(0)
}

fn has_node(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
}

/// `afterOrZero(t1, t2)`: t1 is zero, or after t2.
fn after_or_zero(t1: Option<Timestamp>, t2: Option<Timestamp>) -> bool {
    match (t1, t2) {
        (None, _) | (_, None) => t1.is_none(),
        (Some(a), Some(b)) => a > b,
    }
}

/// `ActivePods.Less`: `x` is less active than `y`.
pub fn active_pods_less(x: &Pod, y: &Pod) -> bool {
    // 1. unassigned < assigned
    if has_node(x) != has_node(y) {
        return !has_node(x);
    }
    // 2. Pending < Unknown < Running
    if phase_rank(x) != phase_rank(y) {
        return phase_rank(x) < phase_rank(y);
    }
    // 3. not ready < ready
    if is_ready(x) != is_ready(y) {
        return !is_ready(x);
    }
    // 4. ready for less time < more time
    if is_ready(x) && is_ready(y) && ready_time(x) != ready_time(y) {
        return after_or_zero(ready_time(x), ready_time(y));
    }
    // 5. more restarts < fewer restarts
    if max_restarts(x) != max_restarts(y) {
        return max_restarts(x) > max_restarts(y);
    }
    // 6. empty creation time < newer < older
    let (cx, cy) = (
        x.metadata.creation_timestamp.as_ref().map(|t| t.0),
        y.metadata.creation_timestamp.as_ref().map(|t| t.0),
    );
    if cx != cy {
        return after_or_zero(cx, cy);
    }
    false
}

/// [`active_pods_less`] as an ordering: `Less` means "less active", so the
/// pod `kubectl exec` picks is the greatest.
pub fn compare_active(a: &Pod, b: &Pod) -> Ordering {
    if active_pods_less(a, b) {
        Ordering::Less
    } else if active_pods_less(b, a) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

/// The pod `kubectl exec` would pick: the most active; the first listed on ties.
pub fn most_active(pods: &[Pod]) -> Option<&Pod> {
    let mut best: Option<&Pod> = None;
    for pod in pods {
        match best {
            Some(b) if compare_active(pod, b) != Ordering::Greater => {}
            _ => best = Some(pod),
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ContainerStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kcr_testkit::mock_api::objects::pod;

    use super::*;

    #[test]
    fn picks_the_most_active_pod() {
        let pending = pod("default", "a-pending", "Pending", &["app"]);
        let running = pod("default", "b-running", "Running", &["app"]);
        let mut restarted = pod("default", "c-restarted", "Running", &["app"]);
        if let Some(s) = restarted.status.as_mut() {
            s.container_statuses = Some(vec![ContainerStatus {
                name: "app".into(),
                restart_count: 3,
                ..Default::default()
            }]);
        }
        let mut older = pod("default", "d-older", "Running", &["app"]);
        older.metadata.creation_timestamp = Some(Time("2026-11-27T06:00:00Z".parse().unwrap()));
        let mut ready_longer = pod("default", "e-ready-longer", "Running", &["app"]);
        if let Some(c) = ready_longer
            .status
            .as_mut()
            .and_then(|s| s.conditions.as_mut())
        {
            c[0].last_transition_time = Some(Time("2026-11-27T06:30:00Z".parse().unwrap()));
        }

        assert_eq!(compare_active(&pending, &running), Ordering::Less);
        assert_eq!(compare_active(&restarted, &running), Ordering::Less);
        assert_eq!(compare_active(&older, &running), Ordering::Greater);
        assert_eq!(compare_active(&ready_longer, &older), Ordering::Greater);

        let name = |pods: &[Pod]| most_active(pods).and_then(|p| p.metadata.name.clone());
        assert_eq!(
            name(&[pending.clone(), running.clone()]).as_deref(),
            Some("b-running")
        );
        assert_eq!(
            name(&[running.clone(), restarted.clone()]).as_deref(),
            Some("b-running")
        );
        assert_eq!(
            name(&[running.clone(), older.clone()]).as_deref(),
            Some("d-older")
        );
        assert_eq!(
            name(&[older, ready_longer, running]).as_deref(),
            Some("e-ready-longer")
        );
        assert_eq!(
            name(std::slice::from_ref(&pending)).as_deref(),
            Some("a-pending")
        );
        assert_eq!(name(&[]), None);
    }
}
