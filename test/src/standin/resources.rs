//! The built-in resource types the stand-in serves, and the legacy discovery
//! documents (`/api`, `/api/v1`, `/apis`, `/apis/G`, `/apis/G/V`) built from
//! them. Custom resource types come from CRDs ([`super::crd`]) and share the
//! same [`ResourceType`].

use std::sync::{Arc, LazyLock};

use api_types::k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResource, APIResourceList, APIVersions, GroupVersionForDiscovery,
    ServerAddressByClientCIDR,
};

use super::crd;

/// One REST resource: a built-in one, or one a CustomResourceDefinition serves.
#[derive(Debug, Clone)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    /// Plural name, as in URLs.
    pub resource: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Discovery verbs, in the order kube-apiserver lists them.
    pub verbs: Vec<String>,
    /// Serves a `status` subresource (`<plural>/status`).
    pub status_subresource: bool,
    /// Where the objects are kept: two views of one object set (core and
    /// `events.k8s.io` Events) share it.
    pub storage: String,
    /// The CRD version this type is served from, for custom resources.
    pub custom: Option<Arc<crd::Served>>,
}

/// A shared resource type.
pub type Rt = Arc<ResourceType>;

impl ResourceType {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `resource` or `resource.group`, as Status messages name it.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    /// `Kind` or `Kind.group`, as Invalid messages name it.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// Serves objects (as opposed to create-only reviews).
    pub fn is_stored(&self) -> bool {
        self.verbs.iter().any(|v| v == "get")
    }

    /// Whether `verb` is served.
    pub fn serves(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    /// `certificates.k8s.io` CertificateSigningRequests (their strategy: [`super::certificates`]).
    pub fn is_csr(&self) -> bool {
        self.group == "certificates.k8s.io" && self.resource == "certificatesigningrequests"
    }

    /// A custom resource (served from a CRD).
    pub fn is_custom(&self) -> bool {
        self.custom.is_some()
    }

    pub(crate) fn api_resources(&self) -> Vec<APIResource> {
        let mut out = vec![APIResource {
            name: self.resource.clone(),
            singular_name: self.singular.clone(),
            namespaced: self.namespaced,
            kind: self.kind.clone(),
            verbs: self.verbs.clone(),
            short_names: (!self.short_names.is_empty()).then(|| self.short_names.clone()),
            categories: (!self.categories.is_empty()).then(|| self.categories.clone()),
            storage_version_hash: self.custom.as_ref().map(|c| c.storage_version_hash.clone()),
            ..Default::default()
        }];
        if self.is_csr() {
            out.push(APIResource {
                name: format!("{}/approval", self.resource),
                singular_name: String::new(),
                namespaced: self.namespaced,
                kind: self.kind.clone(),
                verbs: STATUS_VERBS.iter().map(|v| (*v).to_owned()).collect(),
                ..Default::default()
            });
        }
        if self.status_subresource && self.is_stored() {
            out.push(APIResource {
                name: format!("{}/status", self.resource),
                singular_name: String::new(),
                namespaced: self.namespaced,
                kind: self.kind.clone(),
                verbs: STATUS_VERBS.iter().map(|v| (*v).to_owned()).collect(),
                ..Default::default()
            });
        }
        out
    }
}

/// What a built-in stored type serves (sorted, as kube-apiserver lists built-ins).
const CRUD: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const CREATE: &[&str] = &["create"];
/// The verbs of a `status` subresource.
pub const STATUS_VERBS: &[&str] = &["get", "patch", "update"];

/// `(group, version, plural, singular, Kind, namespaced, short names, verbs, status subresource)`.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
    &'static [&'static str],
    bool,
);

/// Every built-in resource, grouped by group/version in discovery order.
const BUILTIN_ROWS: &[Row] = &[
    (
        "",
        "v1",
        "configmaps",
        "configmap",
        "ConfigMap",
        true,
        &["cm"],
        CRUD,
        false,
    ),
    (
        "",
        "v1",
        "endpoints",
        "endpoints",
        "Endpoints",
        true,
        &["ep"],
        CRUD,
        false,
    ),
    (
        "",
        "v1",
        "events",
        "event",
        "Event",
        true,
        &["ev"],
        CRUD,
        false,
    ),
    (
        "",
        "v1",
        "namespaces",
        "namespace",
        "Namespace",
        false,
        &["ns"],
        CRUD,
        true,
    ),
    (
        "",
        "v1",
        "nodes",
        "node",
        "Node",
        false,
        &["no"],
        CRUD,
        true,
    ),
    ("", "v1", "pods", "pod", "Pod", true, &["po"], CRUD, true),
    (
        "",
        "v1",
        "secrets",
        "secret",
        "Secret",
        true,
        &[],
        CRUD,
        false,
    ),
    (
        "",
        "v1",
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        true,
        &["sa"],
        CRUD,
        false,
    ),
    (
        "",
        "v1",
        "services",
        "service",
        "Service",
        true,
        &["svc"],
        CRUD,
        true,
    ),
    (
        "apiregistration.k8s.io",
        "v1",
        "apiservices",
        "apiservice",
        "APIService",
        false,
        &[],
        CRUD,
        true,
    ),
    (
        "apps",
        "v1",
        "daemonsets",
        "daemonset",
        "DaemonSet",
        true,
        &["ds"],
        CRUD,
        true,
    ),
    (
        "apps",
        "v1",
        "deployments",
        "deployment",
        "Deployment",
        true,
        &["deploy"],
        CRUD,
        true,
    ),
    (
        "apps",
        "v1",
        "replicasets",
        "replicaset",
        "ReplicaSet",
        true,
        &["rs"],
        CRUD,
        true,
    ),
    (
        "apps",
        "v1",
        "statefulsets",
        "statefulset",
        "StatefulSet",
        true,
        &["sts"],
        CRUD,
        true,
    ),
    (
        "events.k8s.io",
        "v1",
        "events",
        "event",
        "Event",
        true,
        &["ev"],
        CRUD,
        false,
    ),
    (
        "authentication.k8s.io",
        "v1",
        "selfsubjectreviews",
        "",
        "SelfSubjectReview",
        false,
        &[],
        CREATE,
        false,
    ),
    (
        "authentication.k8s.io",
        "v1",
        "tokenreviews",
        "",
        "TokenReview",
        false,
        &[],
        CREATE,
        false,
    ),
    (
        "authorization.k8s.io",
        "v1",
        "localsubjectaccessreviews",
        "",
        "LocalSubjectAccessReview",
        true,
        &[],
        CREATE,
        false,
    ),
    (
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "",
        "SelfSubjectAccessReview",
        false,
        &[],
        CREATE,
        false,
    ),
    (
        "authorization.k8s.io",
        "v1",
        "subjectaccessreviews",
        "",
        "SubjectAccessReview",
        false,
        &[],
        CREATE,
        false,
    ),
    ("batch", "v1", "jobs", "job", "Job", true, &[], CRUD, true),
    (
        "certificates.k8s.io",
        "v1",
        "certificatesigningrequests",
        "certificatesigningrequest",
        "CertificateSigningRequest",
        false,
        &["csr"],
        CRUD,
        true,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        false,
        &[],
        CRUD,
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "clusterrole",
        "ClusterRole",
        false,
        &[],
        CRUD,
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "rolebinding",
        "RoleBinding",
        true,
        &[],
        CRUD,
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        "role",
        "Role",
        true,
        &[],
        CRUD,
        false,
    ),
    (
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "customresourcedefinition",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
        CRUD,
        true,
    ),
    (
        "coordination.k8s.io",
        "v1",
        "leases",
        "lease",
        "Lease",
        true,
        &[],
        CRUD,
        false,
    ),
];

/// Every built-in resource type, in discovery order.
pub static BUILTIN: LazyLock<Vec<Rt>> = LazyLock::new(|| {
    BUILTIN_ROWS
        .iter()
        .map(
            |&(group, version, resource, singular, kind, namespaced, short, verbs, status)| {
                // Both Event APIs are views of one set of objects (kube-apiserver
                // stores events.k8s.io/v1 Events as core Events).
                let storage = if resource == "events" {
                    "/events".to_owned()
                } else {
                    format!("{group}/{resource}")
                };
                Arc::new(ResourceType {
                    group: group.to_owned(),
                    version: version.to_owned(),
                    resource: resource.to_owned(),
                    singular: singular.to_owned(),
                    kind: kind.to_owned(),
                    list_kind: format!("{kind}List"),
                    namespaced,
                    short_names: short.iter().map(|s| (*s).to_owned()).collect(),
                    categories: Vec::new(),
                    verbs: verbs.iter().map(|s| (*s).to_owned()).collect(),
                    status_subresource: status,
                    storage,
                    custom: None,
                })
            },
        )
        .collect()
});

/// The built-in groups in `/apis` order (core excluded).
pub fn builtin_groups() -> Vec<&'static str> {
    let mut groups: Vec<&'static str> = Vec::new();
    for r in BUILTIN.iter() {
        if !r.group.is_empty() && !groups.contains(&r.group.as_str()) {
            groups.push(r.group.as_str());
        }
    }
    groups
}

/// The built-in type at `group/version/resource`.
pub fn lookup(group: &str, version: &str, resource: &str) -> Option<&'static Rt> {
    BUILTIN
        .iter()
        .find(|r| r.group == group && r.version == version && r.resource == resource)
}

/// The built-in type of an object's `apiVersion` and `kind`.
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static Rt> {
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

/// `/api/v1` or `/apis/G/V` for the given types of one group version.
pub fn resource_list_of<'a>(
    group: &str,
    version: &str,
    types: impl IntoIterator<Item = &'a ResourceType>,
) -> Option<APIResourceList> {
    let resources: Vec<APIResource> = types
        .into_iter()
        .filter(|r| r.group == group && r.version == version)
        .flat_map(ResourceType::api_resources)
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

/// `/api/v1` or `/apis/G/V` for a built-in group version.
pub fn resource_list(group: &str, version: &str) -> Option<APIResourceList> {
    resource_list_of(group, version, BUILTIN.iter().map(|r| &**r))
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

/// `/apis`: the built-in groups, then `extra` (the APIService and CRD groups).
pub fn api_group_list(extra: &[(String, Vec<String>)]) -> APIGroupList {
    let mut groups: Vec<APIGroup> = builtin_groups()
        .into_iter()
        .map(|g| {
            let mut versions: Vec<String> = Vec::new();
            for r in BUILTIN.iter().filter(|r| r.group == g) {
                if !versions.iter().any(|v| *v == r.version) {
                    versions.push(r.version.clone());
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
