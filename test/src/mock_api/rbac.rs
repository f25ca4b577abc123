//! Authorization of the mock API server: the request's attributes
//! (`k8s.io/apiserver/pkg/authorization/authorizer.AttributesRecord`) and
//! RBAC's rule matching (`plugin/pkg/auth/authorizer/rbac` `RuleAllows`).

use k8s_openapi::api::authorization::v1::ResourceAttributes;
use k8s_openapi::api::rbac::v1::PolicyRule;

/// What a resource request asks to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    /// Empty for a cluster-scoped resource.
    pub namespace: String,
    /// Empty for a collection.
    pub name: String,
}

impl Attributes {
    /// `resource/subresource`, or `resource`.
    pub fn resource_and_subresource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }

    /// The attributes a (Self)SubjectAccessReview asks about.
    pub fn from_review(attrs: &ResourceAttributes) -> Self {
        let field = |v: &Option<String>| v.clone().unwrap_or_default();
        Self {
            verb: field(&attrs.verb),
            group: field(&attrs.group),
            resource: field(&attrs.resource),
            subresource: field(&attrs.subresource),
            namespace: field(&attrs.namespace),
            name: field(&attrs.name),
        }
    }

    /// kube-apiserver's 403 for these attributes:
    /// `pods "P" is forbidden: User "U" cannot get resource "pods" in API group "" in the namespace "NS"`.
    pub fn forbidden(
        &self,
        user: &str,
        reason: &str,
    ) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Status {
        api_types::status::forbidden(
            user,
            &self.verb,
            &self.group,
            &self.resource_and_subresource(),
            &self.namespace,
            &self.name,
            reason,
        )
    }
}

/// A `PolicyRule` granting `verbs` on `resources` (`pods`, `pods/checkpoint`,
/// `*`, `*/checkpoint`) of `api_groups` (`""` is the core group, `*` all).
pub fn rule(verbs: &[&str], api_groups: &[&str], resources: &[&str]) -> PolicyRule {
    let owned = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    PolicyRule {
        verbs: owned(verbs),
        api_groups: Some(owned(api_groups)),
        resources: Some(owned(resources)),
        ..Default::default()
    }
}

/// Paths every user may GET, as kube-apiserver's bootstrap ClusterRoles
/// `system:discovery` and `system:public-info-viewer` grant them.
pub fn open_path(path: &str) -> bool {
    const EXACT: &[&str] = &[
        "/api",
        "/apis",
        "/healthz",
        "/livez",
        "/readyz",
        "/version",
        "/version/",
        "/openapi",
    ];
    const PREFIXES: &[&str] = &["/api/", "/apis/", "/openapi/"];
    EXACT.contains(&path) || PREFIXES.iter().any(|p| path.starts_with(p))
}

/// RBAC's `RuleAllows` for a non-resource request (`nonResourceURLs`: an
/// exact path, or a prefix ending in `*`).
pub fn non_resource_rule_allows(rule: &PolicyRule, verb: &str, path: &str) -> bool {
    let verb = rule.verbs.iter().any(|v| v == "*" || v == verb);
    let url = rule.non_resource_urls.iter().flatten().any(|u| {
        u == path
            || u.strip_suffix('*')
                .is_some_and(|prefix| path.starts_with(prefix))
    });
    verb && url
}

fn has(list: &Option<Vec<String>>, want: &str) -> bool {
    list.iter().flatten().any(|v| v == "*" || v == want)
}

/// RBAC's `RuleAllows` for a resource request.
pub fn rule_allows(rule: &PolicyRule, a: &Attributes) -> bool {
    let verb = rule.verbs.iter().any(|v| v == "*" || *v == a.verb);
    let group = has(&rule.api_groups, &a.group);
    let combined = a.resource_and_subresource();
    let resource = rule.resources.iter().flatten().any(|r| {
        r == "*"
            || *r == combined
            || (!a.subresource.is_empty() && *r == format!("*/{}", a.subresource))
    });
    let name = match rule.resource_names.as_deref() {
        None | Some([]) => true,
        Some(names) => names.contains(&a.name),
    };
    verb && group && resource && name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(verb: &str, group: &str, resource: &str, sub: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: "ns".into(),
            name: "p".into(),
        }
    }

    #[test]
    fn rules_match_like_rbac() {
        let checkpoint = rule(
            &["create"],
            &["subresources.checkpoint.kcr.dev"],
            &["pods/checkpoint"],
        );
        assert!(rule_allows(
            &checkpoint,
            &attrs(
                "create",
                "subresources.checkpoint.kcr.dev",
                "pods",
                "checkpoint"
            )
        ));
        assert!(!rule_allows(
            &checkpoint,
            &attrs("create", "", "pods", "checkpoint")
        ));
        assert!(!rule_allows(
            &checkpoint,
            &attrs(
                "get",
                "subresources.checkpoint.kcr.dev",
                "pods",
                "checkpoint"
            )
        ));
        assert!(!rule_allows(
            &checkpoint,
            &attrs("create", "subresources.checkpoint.kcr.dev", "pods", "")
        ));
        let any_sub = rule(&["*"], &["*"], &["*/checkpoint"]);
        assert!(rule_allows(
            &any_sub,
            &attrs("create", "x", "pods", "checkpoint")
        ));
        assert!(!rule_allows(&any_sub, &attrs("create", "x", "pods", "")));
        let mut named = rule(&["get"], &[""], &["pods"]);
        named.resource_names = Some(vec!["q".into()]);
        assert!(!rule_allows(&named, &attrs("get", "", "pods", "")));
    }

    #[test]
    fn forbidden_in_kube_apiservers_words() {
        let a = attrs(
            "create",
            "subresources.checkpoint.kcr.dev",
            "pods",
            "checkpoint",
        );
        assert_eq!(
            a.forbidden("bob", "").message.unwrap_or_default(),
            "pods.subresources.checkpoint.kcr.dev \"p\" is forbidden: User \"bob\" cannot create resource \"pods/checkpoint\" in API group \"subresources.checkpoint.kcr.dev\" in the namespace \"ns\""
        );
        let list = Attributes {
            name: String::new(),
            ..attrs("list", "", "pods", "")
        };
        assert_eq!(
            list.forbidden("bob", "").message.unwrap_or_default(),
            "pods is forbidden: User \"bob\" cannot list resource \"pods\" in API group \"\" in the namespace \"ns\""
        );
    }
}
