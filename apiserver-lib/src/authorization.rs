//! Authorization: request attributes, decisions, delegation to the API
//! server by SubjectAccessReview (`k8s.io/apiserver/pkg/authorization/authorizerfactory`
//! delegating authorizer), and an allow-list named for testing.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api_types::k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use api_types::status::{self, ForbiddenRequest, StatusReason};
use futures::future::BoxFuture;
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;

use crate::authentication::UserInfo;

/// What is being asked for (`authorizer.Attributes`): a resource request, or,
/// when `path` is set, a non-resource request (`get /metrics`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Attributes {
    pub user: UserInfo,
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    /// Non-resource URL; when set, the resource fields are ignored.
    pub path: String,
}

impl Attributes {
    /// A non-resource request such as `get` on `/metrics`.
    pub fn non_resource(user: UserInfo, verb: &str, path: &str) -> Self {
        Self {
            user,
            verb: verb.to_owned(),
            path: path.to_owned(),
            ..Default::default()
        }
    }

    /// The 403 Status of a denial, in the RBAC authorizer's words
    /// (`responsewriters.Forbidden`): `pods "P" is forbidden: User "U"
    /// cannot ...: reason`, or for a non-resource request
    /// `forbidden: User "U" cannot get path "/metrics"`.
    pub fn forbidden(&self, reason: &str) -> Status {
        if !self.path.is_empty() {
            let message = format!(
                "forbidden: User \"{}\" cannot {} path \"{}\"",
                self.user.name, self.verb, self.path
            );
            return status::failure(StatusReason::Forbidden, message, None);
        }
        let resource = if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        };
        ForbiddenRequest {
            user: &self.user.name,
            verb: &self.verb,
            group: &self.group,
            resource: &resource,
            namespace: &self.namespace,
            name: &self.name,
        }
        .status(reason)
    }
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Denied, with the authorizer's reason (may be empty).
    Deny(String),
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to create a SubjectAccessReview: {0}")]
    Review(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub trait Authorizer: Send + Sync + std::fmt::Debug {
    fn authorize<'a>(&'a self, attrs: &'a Attributes) -> BoxFuture<'a, Result<Decision>>;
}

/// Delegates to the API server with a SubjectAccessReview, carrying the
/// user's groups, uid and extras. Decisions are cached briefly, as the
/// delegating authorizer does (allowed 10 s, denied 5 s by default here).
#[derive(Clone)]
pub struct SubjectAccessReviewAuthorizer {
    client: kube::Client,
    cache: Arc<Mutex<HashMap<Attributes, (Decision, Instant)>>>,
    allow_ttl: Duration,
    deny_ttl: Duration,
}

impl std::fmt::Debug for SubjectAccessReviewAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubjectAccessReviewAuthorizer")
            .field("allow_ttl", &self.allow_ttl)
            .field("deny_ttl", &self.deny_ttl)
            .finish()
    }
}

/// The most decisions kept; the cache is cleared when it fills.
const CACHE_MAX: usize = 4096;

impl SubjectAccessReviewAuthorizer {
    pub fn new(client: kube::Client, allow_ttl: Duration, deny_ttl: Duration) -> Self {
        Self {
            client,
            cache: Arc::default(),
            allow_ttl,
            deny_ttl,
        }
    }

    fn cached(&self, attrs: &Attributes) -> Option<Decision> {
        let cache = self.cache.lock().ok()?;
        let (decision, at) = cache.get(attrs)?;
        let ttl = if *decision == Decision::Allow {
            self.allow_ttl
        } else {
            self.deny_ttl
        };
        (at.elapsed() < ttl).then(|| decision.clone())
    }

    fn remember(&self, attrs: &Attributes, decision: &Decision) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(attrs.clone(), (decision.clone(), Instant::now()));
        }
    }

    /// The review sent for `attrs`.
    pub fn review_for(attrs: &Attributes) -> SubjectAccessReview {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(attrs.user.name.clone()),
                uid: opt(&attrs.user.uid),
                groups: Some(attrs.user.groups.clone()),
                extra: (!attrs.user.extra.is_empty()).then(|| {
                    attrs
                        .user
                        .extra
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect::<BTreeMap<_, _>>()
                }),
                resource_attributes: attrs.path.is_empty().then(|| ResourceAttributes {
                    verb: opt(&attrs.verb),
                    group: Some(attrs.group.clone()),
                    resource: opt(&attrs.resource),
                    subresource: opt(&attrs.subresource),
                    namespace: opt(&attrs.namespace),
                    name: opt(&attrs.name),
                    ..Default::default()
                }),
                non_resource_attributes: (!attrs.path.is_empty()).then(|| NonResourceAttributes {
                    path: Some(attrs.path.clone()),
                    verb: opt(&attrs.verb),
                }),
            },
            ..Default::default()
        }
    }
}

impl Authorizer for SubjectAccessReviewAuthorizer {
    fn authorize<'a>(&'a self, attrs: &'a Attributes) -> BoxFuture<'a, Result<Decision>> {
        Box::pin(async move {
            if let Some(d) = self.cached(attrs) {
                return Ok(d);
            }
            let api: kube::Api<SubjectAccessReview> = kube::Api::all(self.client.clone());
            let done = api
                .create(&PostParams::default(), &Self::review_for(attrs))
                .await
                .map_err(|e| Error::Review(e.to_string()))?;
            let status = done.status.unwrap_or_default();
            let decision = if status.allowed && status.denied != Some(true) {
                Decision::Allow
            } else {
                Decision::Deny(status.reason.unwrap_or_default())
            };
            self.remember(attrs, &decision);
            Ok(decision)
        })
    }
}

/// Allows the listed users and groups everything, denies everyone else.
/// For tests and local stacks only; never a default.
#[derive(Debug, Clone, Default)]
pub struct StaticAuthorizerForTesting {
    pub users: Vec<String>,
    pub groups: Vec<String>,
}

impl StaticAuthorizerForTesting {
    /// Whether it allows no one at all.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.groups.is_empty()
    }
}

impl Authorizer for StaticAuthorizerForTesting {
    fn authorize<'a>(&'a self, attrs: &'a Attributes) -> BoxFuture<'a, Result<Decision>> {
        let allowed = self.users.contains(&attrs.user.name)
            || attrs.user.groups.iter().any(|g| self.groups.contains(g));
        Box::pin(async move {
            Ok(if allowed {
                Decision::Allow
            } else {
                Decision::Deny("not in the static allow-list".into())
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(user: &str, groups: &[&str]) -> Attributes {
        Attributes {
            user: UserInfo::new(user, groups.iter().map(|g| g.to_string()).collect()),
            verb: "checkpoint".into(),
            group: String::new(),
            resource: "pods".into(),
            subresource: String::new(),
            namespace: "default".into(),
            name: "counter".into(),
            path: String::new(),
        }
    }

    #[tokio::test]
    async fn static_allow_list() {
        let a = StaticAuthorizerForTesting {
            users: vec!["admin".into()],
            groups: vec!["system:masters".into()],
        };
        assert_eq!(
            a.authorize(&attrs("admin", &[])).await.unwrap(),
            Decision::Allow
        );
        assert_eq!(
            a.authorize(&attrs("x", &["system:masters"])).await.unwrap(),
            Decision::Allow
        );
        assert!(matches!(
            a.authorize(&attrs("bob", &["dev"])).await.unwrap(),
            Decision::Deny(_)
        ));
    }

    #[test]
    fn denials_in_rbac_words() {
        assert_eq!(
            attrs("bob", &[])
                .forbidden("no RBAC policy matched")
                .message
                .as_deref(),
            Some(
                "pods \"counter\" is forbidden: User \"bob\" cannot checkpoint resource \"pods\" in API group \"\" in the namespace \"default\": no RBAC policy matched"
            )
        );
        let metrics = Attributes::non_resource(UserInfo::new("bob", vec![]), "get", "/metrics");
        assert_eq!(
            metrics.forbidden("x").message.as_deref(),
            Some("forbidden: User \"bob\" cannot get path \"/metrics\"")
        );
        assert_eq!(metrics.forbidden("").code, Some(403));
    }

    #[test]
    fn review_carries_the_user_and_core_group() {
        let mut a = attrs("bob", &["dev", "system:authenticated"]);
        a.user.extra.insert("scopes".into(), vec!["x".into()]);
        let r = SubjectAccessReviewAuthorizer::review_for(&a);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["spec"]["user"], "bob");
        assert_eq!(json["spec"]["groups"][0], "dev");
        assert_eq!(json["spec"]["extra"]["scopes"][0], "x");
        assert_eq!(json["spec"]["resourceAttributes"]["group"], "");
        assert_eq!(json["spec"]["resourceAttributes"]["verb"], "checkpoint");
        assert_eq!(json["spec"]["resourceAttributes"]["name"], "counter");
        assert!(
            json["spec"]["resourceAttributes"]
                .get("subresource")
                .is_none()
        );
    }
}
