//! [`ContainerRef`]: one container of one pod, what every checkpoint is of.

use std::fmt;

use k8s_openapi::jiff::Timestamp;

use crate::validation::{self, ValidationError};

/// One container of one pod, named the way the kubelet's checkpoint route
/// names it (`/checkpoint/{podNamespace}/{podID}/{containerName}`,
/// `pkg/kubelet/server/server.go`). Displayed as `namespace/pod/container`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerRef {
    pub namespace: String,
    pub pod: String,
    pub container: String,
}

impl ContainerRef {
    pub fn new(
        namespace: impl Into<String>,
        pod: impl Into<String>,
        container: impl Into<String>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            pod: pod.into(),
            container: container.into(),
        }
    }

    /// The three names are valid (a namespace and a container are DNS-1123
    /// labels, a pod a DNS-1123 subdomain): safe in a URL path and a file name.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validation::validate_target(&self.namespace, &self.pod, &self.container)
    }

    /// The kubelet's endpoint for this container: `/checkpoint/{ns}/{pod}/{container}`.
    pub fn kubelet_checkpoint_path(&self) -> String {
        crate::kubelet_checkpoint_path(&self.namespace, &self.pod, &self.container)
    }

    /// The name of the `attempt`-th archive (1-based) of this container at
    /// `at` (see [`crate::archive::archive_file_name`]).
    pub fn archive_file_name(&self, at: Timestamp, attempt: u32) -> String {
        crate::archive::archive_file_name(&self.pod, &self.namespace, &self.container, at, attempt)
    }
}

impl fmt::Display for ContainerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.namespace, self.pod, self.container)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_paths_and_archives() {
        let c = ContainerRef::new("default", "web", "app");
        assert_eq!(c.to_string(), "default/web/app");
        assert_eq!(c.kubelet_checkpoint_path(), "/checkpoint/default/web/app");
        let at: Timestamp = "2026-11-27T07:30:00.5Z".parse().unwrap();
        assert_eq!(
            c.archive_file_name(at, 2),
            "checkpoint-web_default-app-2026-11-27T07:30:00Z-2.tar"
        );
        assert!(c.validate().is_ok());
        assert_eq!(
            ContainerRef::new("default", "web", "..")
                .validate()
                .unwrap_err()
                .to_string(),
            validation::validate_container_name("..")
                .unwrap_err()
                .to_string()
        );
    }
}
