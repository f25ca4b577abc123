//! Which URL serves `pods/checkpoint`, read from discovery: the core group
//! if `/api/v1` ever lists `pods/checkpoint` (the proposal's end state),
//! else the aggregated `subresources.checkpoint.kcr.dev/v1alpha1`.

use api_types::discovery::serves_pod_checkpoint;
use api_types::{
    API_SERVICE_NAME, SUBRESOURCE, SUBRESOURCES_API_VERSION, SUBRESOURCES_GROUP, VERSION,
};

use crate::client::{ClientError, PodClient};

/// The hint printed when the cluster does not know the group.
pub const INSTALL_HINT: &str = "kubectl apply -k deploy/ from the kubectl-checkpoint repository";

/// Where to POST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/api/v1/namespaces/{ns}/pods/{pod}/checkpoint`
    Core,
    /// `/apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/{ns}/pods/{pod}/checkpoint`
    Extension,
}

impl Endpoint {
    /// Path of the subresource; `namespace` and `pod` must be validated names.
    pub fn path(self, namespace: &str, pod: &str) -> String {
        match self {
            Endpoint::Core => format!("/api/v1/namespaces/{namespace}/pods/{pod}/{SUBRESOURCE}"),
            Endpoint::Extension => api_types::pod_checkpoint_path(namespace, pod),
        }
    }
}

/// Why the cluster cannot take a checkpoint request.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(
        "this cluster does not serve checkpoints: install the checkpoint extension ({INSTALL_HINT})"
    )]
    NotInstalled,
    #[error(
        "checkpointing is disabled on this cluster (feature gate ContainerCheckpointAPI on checkpoint-apiserver)"
    )]
    Disabled,
    #[error(
        "this cluster serves {SUBRESOURCES_GROUP} only in versions {0}, this kubectl-checkpoint needs {VERSION}: use a matching kubectl-checkpoint"
    )]
    UnsupportedVersions(String),
    #[error(
        "the checkpoint extension is installed but not available: {0} (check: kubectl get apiservice {API_SERVICE_NAME})"
    )]
    Unavailable(String),
    #[error("failed to read the server's discovery documents")]
    Discovery(#[source] ClientError),
}

/// Choose the endpoint from discovery.
pub async fn select_endpoint(client: &impl PodClient) -> Result<Endpoint, EndpointError> {
    let core = client
        .core_v1_resources()
        .await
        .map_err(EndpointError::Discovery)?;
    if serves_pod_checkpoint(&core) {
        return Ok(Endpoint::Core);
    }
    let groups = client
        .api_groups()
        .await
        .map_err(EndpointError::Discovery)?;
    let Some(group) = groups.groups.iter().find(|g| g.name == SUBRESOURCES_GROUP) else {
        return Err(EndpointError::NotInstalled);
    };
    if !group.versions.iter().any(|v| v.version == VERSION) {
        let versions: Vec<&str> = group.versions.iter().map(|v| v.version.as_str()).collect();
        return Err(EndpointError::UnsupportedVersions(versions.join(", ")));
    }
    match client.api_resources(SUBRESOURCES_API_VERSION).await {
        Ok(list) if serves_pod_checkpoint(&list) => Ok(Endpoint::Extension),
        Ok(_) => Err(EndpointError::Disabled),
        // The APIService exists but its backend does not answer.
        Err(ClientError::Server(s)) if s.code == 503 || s.code == 404 => {
            Err(EndpointError::Unavailable(s.message))
        }
        Err(e) => Err(EndpointError::Discovery(e)),
    }
}

#[cfg(test)]
mod tests {
    use api_types::discovery::{api_group, api_resource_list, pod_checkpoint_resource};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        APIGroup, APIGroupList, APIResourceList, GroupVersionForDiscovery,
    };

    use super::*;
    use crate::client::fake::FakeClient;

    fn apps_group() -> APIGroup {
        APIGroup {
            name: "apps".into(),
            versions: vec![GroupVersionForDiscovery {
                group_version: "apps/v1".into(),
                version: "v1".into(),
            }],
            ..Default::default()
        }
    }

    fn cluster(groups: Vec<APIGroup>, gate_on: Option<bool>) -> FakeClient {
        let mut c = FakeClient {
            core: APIResourceList {
                group_version: "v1".into(),
                resources: vec![],
            },
            groups: APIGroupList { groups },
            ..Default::default()
        };
        if let Some(on) = gate_on {
            c.resources
                .insert(SUBRESOURCES_API_VERSION.into(), api_resource_list(on));
        }
        c
    }

    #[tokio::test]
    async fn extension_when_the_gate_is_on() {
        let c = cluster(vec![apps_group(), api_group()], Some(true));
        assert_eq!(select_endpoint(&c).await.unwrap(), Endpoint::Extension);
        assert_eq!(
            c.calls(),
            [
                "get /api/v1",
                "get /apis",
                "get /apis/subresources.checkpoint.kcr.dev/v1alpha1"
            ]
        );
        assert_eq!(
            Endpoint::Extension.path("default", "counter"),
            "/apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/default/pods/counter/checkpoint"
        );
    }

    #[tokio::test]
    async fn core_is_preferred_when_listed() {
        let mut c = cluster(vec![api_group()], Some(true));
        c.core.resources.push(pod_checkpoint_resource());
        assert_eq!(select_endpoint(&c).await.unwrap(), Endpoint::Core);
        assert_eq!(c.calls(), ["get /api/v1"]);
        assert_eq!(
            Endpoint::Core.path("default", "counter"),
            "/api/v1/namespaces/default/pods/counter/checkpoint"
        );
    }

    #[tokio::test]
    async fn gate_off_and_not_installed() {
        let c = cluster(vec![api_group()], Some(false));
        assert_eq!(
            select_endpoint(&c).await.unwrap_err().to_string(),
            "checkpointing is disabled on this cluster (feature gate ContainerCheckpointAPI on checkpoint-apiserver)"
        );
        let c = cluster(vec![apps_group()], None);
        assert_eq!(
            select_endpoint(&c).await.unwrap_err().to_string(),
            "this cluster does not serve checkpoints: install the checkpoint extension (kubectl apply -k deploy/ from the kubectl-checkpoint repository)"
        );
        assert_eq!(c.calls(), ["get /api/v1", "get /apis"]);
    }

    #[tokio::test]
    async fn other_versions_and_unavailable_backend() {
        let mut g = api_group();
        g.versions = vec![GroupVersionForDiscovery {
            group_version: "subresources.checkpoint.kcr.dev/v1".into(),
            version: "v1".into(),
        }];
        let c = cluster(vec![g], None);
        assert!(
            matches!(select_endpoint(&c).await, Err(EndpointError::UnsupportedVersions(v)) if v == "v1")
        );
        let c = cluster(vec![api_group()], None);
        assert_eq!(
            select_endpoint(&c).await.unwrap_err().to_string(),
            "the checkpoint extension is installed but not available: the server could not find the requested resource (check: kubectl get apiservice v1alpha1.subresources.checkpoint.kcr.dev)"
        );
    }
}
