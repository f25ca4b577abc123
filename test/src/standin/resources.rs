//! The built-in resource types the stand-in serves, and the legacy discovery
//! documents (`/api`, `/api/v1`, `/apis`, `/apis/G`, `/apis/G/V`) built from
//! them. Only what this project's callers touch; no watch, no patch.

use api_types::k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResource, APIResourceList, APIVersions, GroupVersionForDiscovery,
    ServerAddressByClientCIDR,
};

/// One REST resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceType {
    pub group: &'static str,
    pub version: &'static str,
    /// Plural name, as in URLs.
    pub resource: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub verbs: &'static [&'static str],
}

impl ResourceType {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `resource` or `resource.group`, as Status messages name it.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_owned()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    /// Serves objects (as opposed to create-only reviews).
    pub fn is_stored(&self) -> bool {
        self.verbs.contains(&"get")
    }

    fn api_resource(&self) -> APIResource {
        APIResource {
            name: self.resource.to_owned(),
            singular_name: self.singular.to_owned(),
            namespaced: self.namespaced,
            kind: self.kind.to_owned(),
            verbs: self.verbs.iter().map(|v| (*v).to_owned()).collect(),
            short_names: (!self.short_names.is_empty())
                .then(|| self.short_names.iter().map(|s| (*s).to_owned()).collect()),
            ..Default::default()
        }
    }
}

const CRUD: &[&str] = &["create", "delete", "get", "list", "update"];
const CREATE: &[&str] = &["create"];

#[allow(clippy::too_many_arguments)]
const fn rt(
    group: &'static str,
    version: &'static str,
    resource: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    verbs: &'static [&'static str],
) -> ResourceType {
    ResourceType {
        group,
        version,
        resource,
        singular,
        kind,
        namespaced,
        short_names,
        verbs,
    }
}

/// Every built-in resource, grouped by group/version in discovery order.
pub const BUILTIN: &[ResourceType] = &[
    rt(
        "",
        "v1",
        "configmaps",
        "configmap",
        "ConfigMap",
        true,
        &["cm"],
        CRUD,
    ),
    rt(
        "",
        "v1",
        "endpoints",
        "endpoints",
        "Endpoints",
        true,
        &["ep"],
        CRUD,
    ),
    rt("", "v1", "events", "event", "Event", true, &["ev"], CRUD),
    rt(
        "",
        "v1",
        "namespaces",
        "namespace",
        "Namespace",
        false,
        &["ns"],
        CRUD,
    ),
    rt("", "v1", "nodes", "node", "Node", false, &["no"], CRUD),
    rt("", "v1", "pods", "pod", "Pod", true, &["po"], CRUD),
    rt("", "v1", "secrets", "secret", "Secret", true, &[], CRUD),
    rt(
        "",
        "v1",
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        true,
        &["sa"],
        CRUD,
    ),
    rt(
        "",
        "v1",
        "services",
        "service",
        "Service",
        true,
        &["svc"],
        CRUD,
    ),
    rt(
        "apiregistration.k8s.io",
        "v1",
        "apiservices",
        "apiservice",
        "APIService",
        false,
        &[],
        CRUD,
    ),
    rt(
        "apps",
        "v1",
        "daemonsets",
        "daemonset",
        "DaemonSet",
        true,
        &["ds"],
        CRUD,
    ),
    rt(
        "apps",
        "v1",
        "deployments",
        "deployment",
        "Deployment",
        true,
        &["deploy"],
        CRUD,
    ),
    rt(
        "apps",
        "v1",
        "replicasets",
        "replicaset",
        "ReplicaSet",
        true,
        &["rs"],
        CRUD,
    ),
    rt(
        "apps",
        "v1",
        "statefulsets",
        "statefulset",
        "StatefulSet",
        true,
        &["sts"],
        CRUD,
    ),
    rt(
        "events.k8s.io",
        "v1",
        "events",
        "event",
        "Event",
        true,
        &["ev"],
        CRUD,
    ),
    rt(
        "authentication.k8s.io",
        "v1",
        "selfsubjectreviews",
        "",
        "SelfSubjectReview",
        false,
        &[],
        CREATE,
    ),
    rt(
        "authentication.k8s.io",
        "v1",
        "tokenreviews",
        "",
        "TokenReview",
        false,
        &[],
        CREATE,
    ),
    rt(
        "authorization.k8s.io",
        "v1",
        "localsubjectaccessreviews",
        "",
        "LocalSubjectAccessReview",
        true,
        &[],
        CREATE,
    ),
    rt(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "",
        "SelfSubjectAccessReview",
        false,
        &[],
        CREATE,
    ),
    rt(
        "authorization.k8s.io",
        "v1",
        "subjectaccessreviews",
        "",
        "SubjectAccessReview",
        false,
        &[],
        CREATE,
    ),
    rt("batch", "v1", "jobs", "job", "Job", true, &[], CRUD),
    rt(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        false,
        &[],
        CRUD,
    ),
    rt(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "clusterrole",
        "ClusterRole",
        false,
        &[],
        CRUD,
    ),
    rt(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "rolebinding",
        "RoleBinding",
        true,
        &[],
        CRUD,
    ),
    rt(
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        "role",
        "Role",
        true,
        &[],
        CRUD,
    ),
];

/// The built-in groups in `/apis` order (core excluded).
pub fn builtin_groups() -> Vec<&'static str> {
    let mut groups: Vec<&'static str> = Vec::new();
    for r in BUILTIN {
        if !r.group.is_empty() && !groups.contains(&r.group) {
            groups.push(r.group);
        }
    }
    groups
}

/// The built-in type at `group/version/resource`.
pub fn lookup(group: &str, version: &str, resource: &str) -> Option<&'static ResourceType> {
    BUILTIN
        .iter()
        .find(|r| r.group == group && r.version == version && r.resource == resource)
}

/// The built-in type of an object's `apiVersion` and `kind`.
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceType> {
    BUILTIN
        .iter()
        .find(|r| r.api_version() == api_version && r.kind == kind)
}

/// Whether a built-in group/version exists.
pub fn has_group_version(group: &str, version: &str) -> bool {
    BUILTIN
        .iter()
        .any(|r| r.group == group && r.version == version)
}

/// `/api`.
pub fn api_versions(server_address: &str) -> APIVersions {
    APIVersions {
        versions: vec!["v1".into()],
        server_address_by_client_cidrs: vec![ServerAddressByClientCIDR {
            client_cidr: "0.0.0.0/0".into(),
            server_address: server_address.to_owned(),
        }],
    }
}

/// `/api/v1` or `/apis/G/V` for a built-in group version.
pub fn resource_list(group: &str, version: &str) -> Option<APIResourceList> {
    let resources: Vec<APIResource> = BUILTIN
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .map(ResourceType::api_resource)
        .collect();
    if resources.is_empty() {
        return None;
    }
    Some(APIResourceList {
        group_version: if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        },
        resources,
    })
}

/// An `APIGroup` with its versions, the first preferred.
pub fn api_group(name: &str, versions: &[String]) -> APIGroup {
    let gvs: Vec<GroupVersionForDiscovery> = versions
        .iter()
        .map(|v| GroupVersionForDiscovery {
            group_version: format!("{name}/{v}"),
            version: v.clone(),
        })
        .collect();
    APIGroup {
        name: name.to_owned(),
        preferred_version: gvs.first().cloned(),
        versions: gvs,
        server_address_by_client_cidrs: None,
    }
}

/// `/apis`: the built-in groups, then `extra` (the APIService groups).
pub fn api_group_list(extra: &[(String, Vec<String>)]) -> APIGroupList {
    let mut groups: Vec<APIGroup> = builtin_groups()
        .into_iter()
        .map(|g| {
            let mut versions: Vec<String> = Vec::new();
            for r in BUILTIN.iter().filter(|r| r.group == g) {
                if !versions.iter().any(|v| v == r.version) {
                    versions.push(r.version.to_owned());
                }
            }
            api_group(g, &versions)
        })
        .collect();
    for (name, versions) in extra {
        if let Some(existing) = groups.iter_mut().find(|g| &g.name == name) {
            for v in versions {
                if !existing.versions.iter().any(|gv| &gv.version == v) {
                    existing.versions.push(GroupVersionForDiscovery {
                        group_version: format!("{name}/{v}"),
                        version: v.clone(),
                    });
                }
            }
        } else {
            groups.push(api_group(name, versions));
        }
    }
    APIGroupList { groups }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_list_has_the_callers_resources() {
        let list = resource_list("", "v1").unwrap();
        assert_eq!(list.group_version, "v1");
        for r in [
            "pods",
            "nodes",
            "events",
            "namespaces",
            "configmaps",
            "services",
        ] {
            assert!(list.resources.iter().any(|x| x.name == r), "{r}");
        }
        // Upstream has no pods/checkpoint: the plugin must fall back to the extension.
        assert!(!list.resources.iter().any(|x| x.name == "pods/checkpoint"));
        assert!(resource_list("nope", "v1").is_none());
    }

    #[test]
    fn group_list_adds_apiservice_groups() {
        let list = api_group_list(&[(
            "subresources.checkpoint.kcr.dev".into(),
            vec!["v1alpha1".into()],
        )]);
        let names: Vec<&str> = list.groups.iter().map(|g| g.name.as_str()).collect();
        for g in [
            "apps",
            "authentication.k8s.io",
            "authorization.k8s.io",
            "apiregistration.k8s.io",
            "subresources.checkpoint.kcr.dev",
        ] {
            assert!(names.contains(&g), "{g}");
        }
        let cp = list
            .groups
            .iter()
            .find(|g| g.name == "subresources.checkpoint.kcr.dev")
            .unwrap();
        assert_eq!(
            cp.preferred_version.as_ref().unwrap().group_version,
            "subresources.checkpoint.kcr.dev/v1alpha1"
        );
    }
}
