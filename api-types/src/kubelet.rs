//! The kubelet's answer to `POST /checkpoint/{ns}/{pod}/{container}`
//! (`pkg/kubelet/server/server.go` `checkpointContainer`).

use serde::{Deserialize, Serialize};

/// `{"items": ["/var/lib/kubelet/checkpoints/checkpoint-....tar"]}`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointResponse {
    /// Paths of the archives written, on the node.
    pub items: Vec<String>,
}

impl CheckpointResponse {
    pub fn single(path: impl Into<String>) -> Self {
        Self {
            items: vec![path.into()],
        }
    }

    /// The one archive path, when the answer holds exactly one.
    pub fn archive_path(&self) -> Option<&str> {
        match self.items.as_slice() {
            [one] if !one.is_empty() => Some(one),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_wire_format() {
        let r = CheckpointResponse::single(
            "/var/lib/kubelet/checkpoints/checkpoint-counter_default-app-2026-11-27T07:30:00Z.tar",
        );
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"items":["/var/lib/kubelet/checkpoints/checkpoint-counter_default-app-2026-11-27T07:30:00Z.tar"]}"#
        );
        assert_eq!(
            serde_json::from_str::<CheckpointResponse>(&json).unwrap(),
            r
        );
        let yaml = serde_saphyr::to_string(&r).unwrap();
        assert_eq!(
            serde_saphyr::from_str::<CheckpointResponse>(&yaml).unwrap(),
            r
        );
        insta::assert_json_snapshot!("kubelet_response", r);
        assert!(CheckpointResponse::default().archive_path().is_none());
        assert!(
            CheckpointResponse {
                items: vec!["a".into(), "b".into()]
            }
            .archive_path()
            .is_none()
        );
    }
}
