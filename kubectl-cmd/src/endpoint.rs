//! Which API takes the checkpoint, read from discovery: the declarative
//! `PodCheckpoint` (`checkpoint.kcr.dev/v1alpha1`, a custom resource the
//! node agent fulfils) when the cluster serves it; else the synchronous
//! `pods/checkpoint` subresource — in the core group if `/api/v1` ever lists
//! it (the proposal's end state), else the aggregated
//! `subresources.checkpoint.kcr.dev/v1alpha1`. `--api` forces one.

use api_types::discovery::serves_pod_checkpoint;
use api_types::podcheckpoint;
use api_types::{
    API_SERVICE_NAME, SUBRESOURCE, SUBRESOURCES_API_VERSION, SUBRESOURCES_GROUP, VERSION,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIGroupList, APIResourceList};

use crate::client::{ClientError, PodClient};

/// The hint printed when the cluster does not know the group.
pub const INSTALL_HINT: &str = "kubectl apply -k deploy/ from the kubectl-checkpoint repository";

/// The hint printed when the cluster does not serve PodCheckpoints.
pub const CRD_INSTALL_HINT: &str = "kubectl apply -k deploy/crd from the kubectl-checkpoint repository, and checkpoint-shim's controller on the nodes";

/// `--api`: which API a checkpoint goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ApiKind {
    /// Create a `PodCheckpoint` and wait until the node agent has written it.
    Object,
    /// POST the synchronous `pods/checkpoint` subresource.
    Subresource,
}

/// The API chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selected {
    /// `PodCheckpoint` objects in `checkpoint.kcr.dev/v1alpha1`.
    Object,
    /// The `pods/checkpoint` subresource at this endpoint.
    Subresource(Endpoint),
}

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
        "this cluster does not serve the pods/checkpoint subresource (the checkpoint extension: {INSTALL_HINT}), but it serves PodCheckpoints: leave out --api=subresource"
    )]
    OnlyObject,
    #[error(
        "this cluster does not serve PodCheckpoints ({}/{}): install them ({CRD_INSTALL_HINT}), or leave out --api=object",
        podcheckpoint::CRD_NAME,
        podcheckpoint::VERSION
    )]
    ObjectNotInstalled,
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

/// Choose the API from discovery. Unforced: `PodCheckpoint` when served,
/// else the subresource (core, then the extension).
///
/// Requests: `GET /apis`, then `GET /apis/checkpoint.kcr.dev/v1alpha1`
/// when that group is listed; for the subresource `GET /api/v1` and, unless
/// the core group serves it, `GET /apis/subresources.checkpoint.kcr.dev/v1alpha1`.
/// Forced to the subresource, `GET /api/v1` comes first (as it always did).
pub async fn select_api(
    client: &impl PodClient,
    forced: Option<ApiKind>,
) -> Result<Selected, EndpointError> {
    if forced == Some(ApiKind::Subresource) {
        let core = core_resources(client).await?;
        if serves_pod_checkpoint(&core) {
            return Ok(Selected::Subresource(Endpoint::Core));
        }
        let groups = groups(client).await?;
        return match extension(client, &groups).await {
            Err(EndpointError::NotInstalled) if lists_object_group(&groups) => {
                Err(EndpointError::OnlyObject)
            }
            other => other.map(Selected::Subresource),
        };
    }
    let groups = groups(client).await?;
    if serves_objects(client, &groups).await? {
        return Ok(Selected::Object);
    }
    if forced == Some(ApiKind::Object) {
        return Err(EndpointError::ObjectNotInstalled);
    }
    let core = core_resources(client).await?;
    if serves_pod_checkpoint(&core) {
        return Ok(Selected::Subresource(Endpoint::Core));
    }
    extension(client, &groups).await.map(Selected::Subresource)
}

/// Choose the subresource's endpoint from discovery (`--api=subresource`).
pub async fn select_endpoint(client: &impl PodClient) -> Result<Endpoint, EndpointError> {
    match select_api(client, Some(ApiKind::Subresource)).await? {
        Selected::Subresource(endpoint) => Ok(endpoint),
        Selected::Object => Err(EndpointError::OnlyObject),
    }
}

async fn core_resources(client: &impl PodClient) -> Result<APIResourceList, EndpointError> {
    client
        .core_v1_resources()
        .await
        .map_err(EndpointError::Discovery)
}

async fn groups(client: &impl PodClient) -> Result<APIGroupList, EndpointError> {
    client.api_groups().await.map_err(EndpointError::Discovery)
}

fn lists_object_group(groups: &APIGroupList) -> bool {
    groups.groups.iter().any(|g| g.name == podcheckpoint::GROUP)
}

/// Whether `list` (a group version's discovery document) serves
/// `podcheckpoints` with the verbs the plugin uses.
pub fn serves_pod_checkpoints(list: &APIResourceList) -> bool {
    list.resources.iter().any(|r| {
        r.name == podcheckpoint::PLURAL
            && r.namespaced
            && ["create", "watch"]
                .iter()
                .all(|v| r.verbs.iter().any(|have| have == v))
    })
}

/// Whether the cluster serves `podcheckpoints` in `checkpoint.kcr.dev/v1alpha1`.
async fn serves_objects(
    client: &impl PodClient,
    groups: &APIGroupList,
) -> Result<bool, EndpointError> {
    let Some(group) = groups
        .groups
        .iter()
        .find(|g| g.name == podcheckpoint::GROUP)
    else {
        return Ok(false);
    };
    if !group
        .versions
        .iter()
        .any(|v| v.version == podcheckpoint::VERSION)
    {
        tracing::debug!(group = %group.name, "the PodCheckpoint group lacks the version this plugin speaks");
        return Ok(false);
    }
    match client.api_resources(podcheckpoint::API_VERSION).await {
        Ok(list) => Ok(serves_pod_checkpoints(&list)),
        // The CRD went away between the two reads.
        Err(ClientError::Server(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(EndpointError::Discovery(e)),
    }
}

/// The aggregated extension's endpoint, when `groups` lists it and it serves the subresource.
async fn extension(
    client: &impl PodClient,
    groups: &APIGroupList,
) -> Result<Endpoint, EndpointError> {
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
pub(crate) mod tests {
    use api_types::discovery::{api_group, api_resource_list, pod_checkpoint_resource};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        APIGroup, APIGroupList, APIResource, APIResourceList, GroupVersionForDiscovery,
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

    /// `checkpoint.kcr.dev` as kube-apiserver lists a CRD's group.
    pub(crate) fn object_group() -> APIGroup {
        APIGroup {
            name: podcheckpoint::GROUP.into(),
            versions: vec![GroupVersionForDiscovery {
                group_version: podcheckpoint::API_VERSION.into(),
                version: podcheckpoint::VERSION.into(),
            }],
            ..Default::default()
        }
    }

    /// `/apis/checkpoint.kcr.dev/v1alpha1` as kube-apiserver serves it for the CRD.
    pub(crate) fn object_resources() -> APIResourceList {
        let verbs = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
        APIResourceList {
            group_version: podcheckpoint::API_VERSION.into(),
            resources: vec![
                APIResource {
                    name: podcheckpoint::PLURAL.into(),
                    singular_name: podcheckpoint::SINGULAR.into(),
                    namespaced: true,
                    kind: podcheckpoint::KIND.into(),
                    short_names: Some(vec![podcheckpoint::SHORT_NAME.into()]),
                    categories: Some(vec!["checkpoint".into()]),
                    verbs: verbs(&[
                        "delete",
                        "deletecollection",
                        "get",
                        "list",
                        "patch",
                        "create",
                        "update",
                        "watch",
                    ]),
                    ..Default::default()
                },
                APIResource {
                    name: format!("{}/status", podcheckpoint::PLURAL),
                    namespaced: true,
                    kind: podcheckpoint::KIND.into(),
                    verbs: verbs(&["get", "patch", "update"]),
                    ..Default::default()
                },
            ],
        }
    }

    fn with_objects(mut c: FakeClient) -> FakeClient {
        c.groups.groups.push(object_group());
        c.resources
            .insert(podcheckpoint::API_VERSION.into(), object_resources());
        c
    }

    #[tokio::test]
    async fn the_object_api_wins_when_served() {
        let c = with_objects(cluster(vec![apps_group(), api_group()], Some(true)));
        assert_eq!(select_api(&c, None).await.unwrap(), Selected::Object);
        assert_eq!(
            c.calls(),
            ["get /apis", "get /apis/checkpoint.kcr.dev/v1alpha1"]
        );
        // even over a core pods/checkpoint
        let mut c = with_objects(cluster(vec![], None));
        c.core.resources.push(pod_checkpoint_resource());
        assert_eq!(select_api(&c, None).await.unwrap(), Selected::Object);
        assert_eq!(
            select_api(&c, Some(ApiKind::Object)).await.unwrap(),
            Selected::Object
        );
        // forced to the subresource, discovery is what it always was
        let c = with_objects(cluster(vec![api_group()], Some(true)));
        assert_eq!(
            select_api(&c, Some(ApiKind::Subresource)).await.unwrap(),
            Selected::Subresource(Endpoint::Extension)
        );
        assert_eq!(
            c.calls(),
            [
                "get /api/v1",
                "get /apis",
                "get /apis/subresources.checkpoint.kcr.dev/v1alpha1"
            ]
        );
    }

    #[tokio::test]
    async fn without_the_object_api_the_subresource_serves() {
        let c = cluster(vec![apps_group(), api_group()], Some(true));
        assert_eq!(
            select_api(&c, None).await.unwrap(),
            Selected::Subresource(Endpoint::Extension)
        );
        assert_eq!(
            c.calls(),
            [
                "get /apis",
                "get /api/v1",
                "get /apis/subresources.checkpoint.kcr.dev/v1alpha1"
            ]
        );
        // the group listed, the resource not (yet): the subresource
        let mut c = cluster(vec![api_group(), object_group()], Some(true));
        c.resources.insert(
            podcheckpoint::API_VERSION.into(),
            APIResourceList {
                group_version: podcheckpoint::API_VERSION.into(),
                resources: vec![],
            },
        );
        assert_eq!(
            select_api(&c, None).await.unwrap(),
            Selected::Subresource(Endpoint::Extension)
        );
        // the group listed, its version gone (404): the subresource
        let c = cluster(vec![api_group(), object_group()], Some(true));
        assert_eq!(
            select_api(&c, None).await.unwrap(),
            Selected::Subresource(Endpoint::Extension)
        );
    }

    #[tokio::test]
    async fn a_forced_api_that_is_absent_says_so() {
        let c = cluster(vec![api_group()], Some(true));
        assert_eq!(
            select_api(&c, Some(ApiKind::Object))
                .await
                .unwrap_err()
                .to_string(),
            "this cluster does not serve PodCheckpoints (podcheckpoints.checkpoint.kcr.dev/v1alpha1): install them (kubectl apply -k deploy/crd from the kubectl-checkpoint repository, and checkpoint-shim's controller on the nodes), or leave out --api=object"
        );
        assert_eq!(c.calls(), ["get /apis"]);
        let c = with_objects(cluster(vec![apps_group()], None));
        assert_eq!(
            select_api(&c, Some(ApiKind::Subresource))
                .await
                .unwrap_err()
                .to_string(),
            "this cluster does not serve the pods/checkpoint subresource (the checkpoint extension: kubectl apply -k deploy/ from the kubectl-checkpoint repository), but it serves PodCheckpoints: leave out --api=subresource"
        );
        // neither: the extension is what to install
        let c = cluster(vec![apps_group()], None);
        assert_eq!(
            select_api(&c, None).await.unwrap_err().to_string(),
            "this cluster does not serve checkpoints: install the checkpoint extension (kubectl apply -k deploy/ from the kubectl-checkpoint repository)"
        );
    }
}
