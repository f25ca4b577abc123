//! Archive file names.
//!
//! The kubelet writes `<root-dir>/checkpoints/checkpoint-<pod>_<namespace>-<container>-<RFC3339>.tar`
//! (`pkg/kubelet/kubelet.go` `CheckpointContainer`), to the second, so two
//! checkpoints within one second overwrite each other. We keep the kubelet's
//! name for the first archive of a second and add `-N` (N ≥ 2) for further ones,
//! so tools that match the kubelet's prefix keep working and nothing is overwritten.

use k8s_openapi::jiff::Timestamp;

/// Prefix every archive name starts with.
pub const ARCHIVE_PREFIX: &str = "checkpoint-";
/// Suffix of every archive name.
pub const ARCHIVE_SUFFIX: &str = ".tar";

/// The name of the `attempt`-th archive (1-based) for a container at `at`.
/// Inputs must be validated names (no `/`, no `..`).
pub fn archive_file_name(
    pod: &str,
    namespace: &str,
    container: &str,
    at: Timestamp,
    attempt: u32,
) -> String {
    let stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ");
    if attempt <= 1 {
        format!("{ARCHIVE_PREFIX}{pod}_{namespace}-{container}-{stamp}{ARCHIVE_SUFFIX}")
    } else {
        format!("{ARCHIVE_PREFIX}{pod}_{namespace}-{container}-{stamp}-{attempt}{ARCHIVE_SUFFIX}")
    }
}

/// The prefix shared by every archive of one container:
/// `checkpoint-<pod>_<namespace>-<container>-`.
pub fn archive_prefix(pod: &str, namespace: &str, container: &str) -> String {
    format!("{ARCHIVE_PREFIX}{pod}_{namespace}-{container}-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_compatible_then_unique() {
        let at: Timestamp = "2026-11-27T07:30:00.987Z".parse().unwrap();
        let first = archive_file_name("counter", "default", "app", at, 1);
        assert_eq!(
            first,
            "checkpoint-counter_default-app-2026-11-27T07:30:00Z.tar"
        );
        let second = archive_file_name("counter", "default", "app", at, 2);
        assert_eq!(
            second,
            "checkpoint-counter_default-app-2026-11-27T07:30:00Z-2.tar"
        );
        assert_ne!(first, second);
        assert!(first.starts_with(&archive_prefix("counter", "default", "app")));
        assert!(!first.contains('/'));
    }
}
