//! Authorization the way kube-apiserver's RBAC authorizer decides
//! (`k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac`), over the
//! Role/ClusterRole/RoleBinding/ClusterRoleBinding objects in the store, plus
//! the privileged `system:masters` group and the bootstrap roles and bindings
//! a fresh cluster has (`plugin/pkg/auth/authorizer/rbac/bootstrappolicy`) —
//! only those this project's callers rely on.
//!
//! The policy file format is the real one: a multi-document YAML of RBAC
//! objects, so `deploy/` manifests can be fed in as they are (other kinds in
//! the file are skipped).

use std::path::{Path, PathBuf};

use api_types::k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, Subject,
};
use apiserver_lib::UserInfo;
use serde_json::{Value, json};

use super::resources;
use super::store::{self, Store};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Read(#[from] store::Error),
    #[error("{path}: document {index} ({kind} {name}): {source}")]
    Load {
        path: PathBuf,
        index: usize,
        kind: String,
        name: String,
        #[source]
        source: store::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The group whose members may do anything (`user.SystemPrivilegedGroup`).
pub const SYSTEM_MASTERS: &str = "system:masters";

/// What is asked: a resource request or a non-resource path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    pub user: UserInfo,
    pub verb: String,
    pub resource_request: bool,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    pub path: String,
}

impl Attributes {
    fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// The decision and the reason RBAC gives (`RBAC: allowed by ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

fn has(list: &[String], value: &str) -> bool {
    list.iter().any(|v| v == "*" || v == value)
}

fn rule_allows(rule: &PolicyRule, a: &Attributes) -> bool {
    if !has(&rule.verbs, &a.verb) {
        return false;
    }
    if a.resource_request {
        let groups = rule.api_groups.as_deref().unwrap_or_default();
        let resources = rule.resources.as_deref().unwrap_or_default();
        let combined = a.combined_resource();
        let resource_ok = resources.iter().any(|r| {
            r == "*"
                || *r == combined
                || (!a.subresource.is_empty()
                    && r.strip_prefix("*/") == Some(a.subresource.as_str()))
        });
        let names = rule.resource_names.as_deref().unwrap_or_default();
        has(groups, &a.group) && resource_ok && (names.is_empty() || names.contains(&a.name))
    } else {
        rule.non_resource_urls
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|u| {
                u == "*"
                    || *u == a.path
                    || u.strip_suffix('*')
                        .is_some_and(|prefix| a.path.starts_with(prefix))
            })
    }
}

fn subject_matches(subject: &Subject, user: &UserInfo, binding_namespace: &str) -> bool {
    match subject.kind.as_str() {
        "User" => subject.name == user.name,
        "Group" => user.groups.contains(&subject.name),
        "ServiceAccount" => {
            let ns = subject
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_namespace);
            user.name == format!("system:serviceaccount:{ns}:{}", subject.name)
        }
        _ => false,
    }
}

fn describe(subject: &Subject) -> String {
    match subject.kind.as_str() {
        "ServiceAccount" => format!(
            "ServiceAccount \"{}/{}\"",
            subject.namespace.as_deref().unwrap_or(""),
            subject.name
        ),
        kind => format!("{kind} \"{}\"", subject.name),
    }
}

fn parse<T: serde::de::DeserializeOwned>(v: Value) -> Option<T> {
    serde_json::from_value(v).ok()
}

/// The RBAC authorizer over a store.
#[derive(Debug, Clone, Copy)]
pub struct Rbac;

impl Rbac {
    /// Decide `a` against the RBAC objects now in `store`.
    pub fn authorize(store: &Store, a: &Attributes) -> Decision {
        if a.user.groups.iter().any(|g| g == SYSTEM_MASTERS) {
            return Decision {
                allowed: true,
                reason: String::new(),
            };
        }
        let rt = |r: &str| resources::lookup("rbac.authorization.k8s.io", "v1", r);
        let (Some(crb_rt), Some(cr_rt), Some(rb_rt), Some(r_rt)) = (
            rt("clusterrolebindings"),
            rt("clusterroles"),
            rt("rolebindings"),
            rt("roles"),
        ) else {
            return Decision {
                allowed: false,
                reason: "RBAC types are not served".into(),
            };
        };
        let cluster_role =
            |name: &str| -> Option<ClusterRole> { store.get(cr_rt, "", name).ok().and_then(parse) };
        let role = |ns: &str, name: &str| -> Option<Role> {
            store.get(r_rt, ns, name).ok().and_then(parse)
        };

        for crb in store
            .all(crb_rt)
            .into_iter()
            .filter_map(parse::<ClusterRoleBinding>)
        {
            let Some(subject) = crb
                .subjects
                .iter()
                .flatten()
                .find(|s| subject_matches(s, &a.user, ""))
            else {
                continue;
            };
            if crb.role_ref.kind != "ClusterRole" {
                continue;
            }
            let Some(cr) = cluster_role(&crb.role_ref.name) else {
                continue;
            };
            if cr.rules.iter().flatten().any(|r| rule_allows(r, a)) {
                return Decision {
                    allowed: true,
                    reason: format!(
                        "RBAC: allowed by ClusterRoleBinding \"{}\" of ClusterRole \"{}\" to {}",
                        crb.metadata.name.unwrap_or_default(),
                        crb.role_ref.name,
                        describe(subject)
                    ),
                };
            }
        }
        if a.resource_request && !a.namespace.is_empty() {
            for rb in store
                .all(rb_rt)
                .into_iter()
                .filter_map(parse::<RoleBinding>)
            {
                let ns = rb.metadata.namespace.clone().unwrap_or_default();
                if ns != a.namespace {
                    continue;
                }
                let Some(subject) = rb
                    .subjects
                    .iter()
                    .flatten()
                    .find(|s| subject_matches(s, &a.user, &ns))
                else {
                    continue;
                };
                let rules: Vec<PolicyRule> = match rb.role_ref.kind.as_str() {
                    "ClusterRole" => cluster_role(&rb.role_ref.name)
                        .and_then(|r| r.rules)
                        .unwrap_or_default(),
                    "Role" => role(&ns, &rb.role_ref.name)
                        .and_then(|r| r.rules)
                        .unwrap_or_default(),
                    _ => Vec::new(),
                };
                if rules.iter().any(|r| rule_allows(r, a)) {
                    return Decision {
                        allowed: true,
                        reason: format!(
                            "RBAC: allowed by RoleBinding \"{}/{ns}\" of {} \"{}\" to {}",
                            rb.metadata.name.unwrap_or_default(),
                            rb.role_ref.kind,
                            rb.role_ref.name,
                            describe(subject)
                        ),
                    };
                }
            }
        }
        Decision {
            allowed: false,
            reason: String::new(),
        }
    }

    /// Load the RBAC objects of a multi-document YAML file into `store`;
    /// other kinds are skipped. Returns how many were loaded.
    pub fn load_policy_file(store: &Store, path: &Path) -> Result<usize> {
        let docs = store::read_yaml_docs(path)?;
        let mut n = 0;
        for (index, doc) in docs.into_iter().enumerate() {
            let kind = doc
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let api_version = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
            if api_version != "rbac.authorization.k8s.io/v1"
                || !["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]
                    .contains(&kind.as_str())
            {
                continue;
            }
            let name = doc
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            store
                .load_object(path, index, doc)
                .map_err(|source| Error::Load {
                    path: path.into(),
                    index,
                    kind,
                    name,
                    source,
                })?;
            n += 1;
        }
        Ok(n)
    }
}

/// The bootstrap roles and bindings of a fresh cluster that this project's
/// callers depend on: discovery for everyone authenticated, self reviews,
/// `cluster-admin` for `system:masters`, `system:auth-delegator`,
/// `extension-apiserver-authentication-reader`, and `view`.
pub fn bootstrap_policy() -> Vec<Value> {
    vec![
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "cluster-admin"},
            "rules": [
                {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                {"nonResourceURLs": ["*"], "verbs": ["*"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "cluster-admin"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": SYSTEM_MASTERS}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "system:discovery"},
            "rules": [{"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez",
                "/openapi", "/openapi/*", "/readyz", "/version", "/version/"], "verbs": ["get"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:discovery"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:discovery"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated"}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "system:basic-user"},
            "rules": [
                {"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"]},
                {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:basic-user"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:basic-user"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated"}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "system:auth-delegator"},
            "rules": [
                {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
                {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "extension-apiserver-authentication-reader", "namespace": "kube-system"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"],
                "resourceNames": ["extension-apiserver-authentication"], "verbs": ["get", "list", "watch"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "view"},
            "rules": [
                {"apiGroups": [""], "resources": ["configmaps", "endpoints", "events", "namespaces", "pods", "pods/log", "pods/status", "services", "serviceaccounts"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["apps"], "resources": ["daemonsets", "deployments", "replicasets", "statefulsets"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["get", "list", "watch"]}]}),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(extra: &[Value]) -> Store {
        let s = Store::new();
        for (i, o) in bootstrap_policy()
            .into_iter()
            .chain(extra.iter().cloned())
            .enumerate()
        {
            s.load_object(Path::new("policy"), i, o).unwrap();
        }
        s
    }

    #[allow(clippy::too_many_arguments)]
    fn res(
        user: &str,
        groups: &[&str],
        verb: &str,
        group: &str,
        resource: &str,
        sub: &str,
        ns: &str,
        name: &str,
    ) -> Attributes {
        Attributes {
            user: UserInfo::new(user, groups.iter().map(|g| g.to_string()).collect()),
            verb: verb.into(),
            resource_request: true,
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            name: name.into(),
            path: String::new(),
        }
    }

    #[test]
    fn masters_custom_verb_and_subresources() {
        let s = store_with(&[
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "checkpoint-creator"},
                "rules": [
                    {"apiGroups": ["subresources.checkpoint.kcr.dev"], "resources": ["pods/checkpoint"], "verbs": ["create"]},
                    {"apiGroups": [""], "resources": ["pods"], "verbs": ["checkpoint"]}]}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "alice-cp", "namespace": "default"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "checkpoint-creator"},
                "subjects": [{"kind": "User", "name": "alice"}]}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "viewer"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "User", "name": "viewer"}]}),
        ]);
        let allowed = |a: &Attributes| Rbac::authorize(&s, a).allowed;
        assert!(allowed(&res(
            "root",
            &[SYSTEM_MASTERS],
            "delete",
            "",
            "nodes",
            "",
            "",
            "n"
        )));
        assert!(allowed(&res(
            "alice",
            &[],
            "create",
            "subresources.checkpoint.kcr.dev",
            "pods",
            "checkpoint",
            "default",
            "p"
        )));
        assert!(allowed(&res(
            "alice",
            &[],
            "checkpoint",
            "",
            "pods",
            "",
            "default",
            "p"
        )));
        // Only in the bound namespace, only that group, only that subresource.
        assert!(!allowed(&res(
            "alice",
            &[],
            "create",
            "subresources.checkpoint.kcr.dev",
            "pods",
            "checkpoint",
            "other",
            "p"
        )));
        assert!(!allowed(&res(
            "alice",
            &[],
            "create",
            "",
            "pods",
            "checkpoint",
            "default",
            "p"
        )));
        assert!(!allowed(&res(
            "alice",
            &[],
            "create",
            "subresources.checkpoint.kcr.dev",
            "pods",
            "",
            "default",
            "p"
        )));
        assert!(allowed(&res(
            "viewer",
            &[],
            "list",
            "",
            "pods",
            "",
            "default",
            ""
        )));
        assert!(!allowed(&res(
            "viewer",
            &[],
            "create",
            "subresources.checkpoint.kcr.dev",
            "pods",
            "checkpoint",
            "default",
            "p"
        )));
        assert!(!allowed(&res(
            "viewer",
            &[],
            "checkpoint",
            "",
            "pods",
            "",
            "default",
            "p"
        )));
        let d = Rbac::authorize(
            &s,
            &res("alice", &[], "checkpoint", "", "pods", "", "default", "p"),
        );
        assert_eq!(
            d.reason,
            "RBAC: allowed by RoleBinding \"alice-cp/default\" of ClusterRole \"checkpoint-creator\" to User \"alice\""
        );
    }

    #[test]
    fn resource_names_service_accounts_and_paths() {
        let s = store_with(&[
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "auth-reader", "namespace": "kube-system"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "extension-apiserver-authentication-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "ext", "namespace": "kcr-system"}]}),
        ]);
        let sa = "system:serviceaccount:kcr-system:ext";
        let allowed = |a: &Attributes| Rbac::authorize(&s, a).allowed;
        assert!(allowed(&res(
            sa,
            &[],
            "get",
            "",
            "configmaps",
            "",
            "kube-system",
            "extension-apiserver-authentication"
        )));
        assert!(!allowed(&res(
            sa,
            &[],
            "get",
            "",
            "configmaps",
            "",
            "kube-system",
            "other"
        )));
        assert!(!allowed(&res(
            "system:serviceaccount:other:ext",
            &[],
            "get",
            "",
            "configmaps",
            "",
            "kube-system",
            "extension-apiserver-authentication"
        )));
        let path = |user: &str, groups: &[&str], p: &str| Attributes {
            user: UserInfo::new(user, groups.iter().map(|g| g.to_string()).collect()),
            verb: "get".into(),
            path: p.into(),
            ..Default::default()
        };
        assert!(allowed(&path(
            "x",
            &["system:authenticated"],
            "/apis/apps/v1"
        )));
        assert!(!allowed(&path("x", &[], "/apis")));
        assert!(!allowed(&path("x", &["system:authenticated"], "/metrics")));
    }
}
