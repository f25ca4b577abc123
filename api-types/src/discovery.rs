//! Discovery documents of the aggregated group (what kube-apiserver's
//! aggregator and kubectl read): `/apis`, `/apis/subresources.checkpoint.kcr.dev`,
//! `/apis/subresources.checkpoint.kcr.dev/v1alpha1`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResource, APIResourceList, GroupVersionForDiscovery,
};

use crate::{
    CONTAINER_CHECKPOINT_KIND, POD_CHECKPOINT_RESOURCE, SUBRESOURCES_API_VERSION,
    SUBRESOURCES_GROUP, VERSION,
};

fn group_version() -> GroupVersionForDiscovery {
    GroupVersionForDiscovery {
        group_version: SUBRESOURCES_API_VERSION.to_owned(),
        version: VERSION.to_owned(),
    }
}

/// `/apis/subresources.checkpoint.kcr.dev`
pub fn api_group() -> APIGroup {
    APIGroup {
        name: SUBRESOURCES_GROUP.to_owned(),
        preferred_version: Some(group_version()),
        server_address_by_client_cidrs: None,
        versions: vec![group_version()],
    }
}

/// `/apis` as served by the extension itself (its one group).
pub fn api_group_list() -> APIGroupList {
    APIGroupList {
        groups: vec![api_group()],
    }
}

/// The `pods/checkpoint` entry: create only, namespaced, returns a ContainerCheckpoint.
pub fn pod_checkpoint_resource() -> APIResource {
    APIResource {
        name: POD_CHECKPOINT_RESOURCE.to_owned(),
        singular_name: String::new(),
        namespaced: true,
        kind: CONTAINER_CHECKPOINT_KIND.to_owned(),
        verbs: vec!["create".to_owned()],
        ..Default::default()
    }
}

/// The `podcheckpoints/archive` entry: get only, namespaced (the bytes of a
/// PodCheckpoint's archive, in ranges).
pub fn podcheckpoint_archive_resource() -> APIResource {
    APIResource {
        name: crate::download::PODCHECKPOINT_ARCHIVE_RESOURCE.to_owned(),
        singular_name: String::new(),
        namespaced: true,
        kind: crate::podcheckpoint::KIND.to_owned(),
        verbs: vec!["get".to_owned()],
        ..Default::default()
    }
}

/// `/apis/subresources.checkpoint.kcr.dev/v1alpha1`: lists `pods/checkpoint` only while
/// the `ContainerCheckpointAPI` gate is on; `podcheckpoints/archive` always
/// (the gate is the synchronous subresource's).
pub fn api_resource_list(gate_on: bool) -> APIResourceList {
    let mut resources = Vec::new();
    if gate_on {
        resources.push(pod_checkpoint_resource());
    }
    resources.push(podcheckpoint_archive_resource());
    APIResourceList {
        group_version: SUBRESOURCES_API_VERSION.to_owned(),
        resources,
    }
}

/// Whether a discovery document lists `podcheckpoints/archive` with `get`.
pub fn serves_podcheckpoint_archive(list: &APIResourceList) -> bool {
    list.resources.iter().any(|r| {
        r.name == crate::download::PODCHECKPOINT_ARCHIVE_RESOURCE
            && r.verbs.iter().any(|v| v == "get")
    })
}

/// Whether a discovery document lists `pods/checkpoint` with `create`.
pub fn serves_pod_checkpoint(list: &APIResourceList) -> bool {
    list.resources
        .iter()
        .any(|r| r.name == POD_CHECKPOINT_RESOURCE && r.verbs.iter().any(|v| v == "create"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents() {
        let on = api_resource_list(true);
        let off = api_resource_list(false);
        assert!(serves_pod_checkpoint(&on));
        assert!(!serves_pod_checkpoint(&off));
        assert!(serves_podcheckpoint_archive(&on) && serves_podcheckpoint_archive(&off));
        for (name, v) in [
            (
                "discovery_apis",
                serde_json::to_value(api_group_list()).unwrap(),
            ),
            (
                "discovery_group",
                serde_json::to_value(api_group()).unwrap(),
            ),
            (
                "discovery_resources_gate_on",
                serde_json::to_value(&on).unwrap(),
            ),
            (
                "discovery_resources_gate_off",
                serde_json::to_value(&off).unwrap(),
            ),
        ] {
            insta::assert_json_snapshot!(name, v);
        }
        let json = serde_json::to_string(&on).unwrap();
        assert_eq!(serde_json::from_str::<APIResourceList>(&json).unwrap(), on);
        let yaml = serde_saphyr::to_string(&on).unwrap();
        assert_eq!(
            serde_saphyr::from_str::<APIResourceList>(&yaml).unwrap(),
            on
        );
    }
}
