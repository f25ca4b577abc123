//! The rights `kubectl checkpoint` needs, and which of them the user lacks,
//! asked with SelfSubjectAccessReviews as `kubectl auth can-i` asks them
//! (`k8s.io/kubectl/pkg/cmd/auth/cani.go`). Asked only after the server
//! forbade something: the happy path sends no review.

use std::fmt;

use api_types::podcheckpoint;
use api_types::{CHECKPOINT_VERB, RESOURCE, SUBRESOURCE, SUBRESOURCES_GROUP};
use k8s_openapi::api::authorization::v1::ResourceAttributes;

use crate::client::{AccessReviewer, ClientError};
use crate::endpoint::Endpoint;
use crate::resource::ResourceKind;

/// The ClusterRole of `deploy/` that grants a user everything `kubectl
/// checkpoint` does.
pub const CREATOR_ROLE: &str = "checkpoint-creator";

/// A verb on a resource (and subresource) of an API group: one RBAC right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub verb: String,
    /// `""` is the core group.
    pub group: String,
    pub resource: String,
    pub subresource: String,
}

impl Access {
    pub fn new(verb: &str, group: &str, resource: &str, subresource: &str) -> Self {
        Self {
            verb: verb.to_owned(),
            group: group.to_owned(),
            resource: resource.to_owned(),
            subresource: subresource.to_owned(),
        }
    }

    /// A read of a kind: `get deployments.apps`, `list pods`.
    pub fn read(verb: &str, kind: ResourceKind) -> Self {
        Self::new(verb, kind.group(), kind.plural(), "")
    }

    /// Whether this is one of the rights to checkpoint (not to find the pod).
    pub fn is_checkpoint(&self) -> bool {
        self.verb == CHECKPOINT_VERB
            || self.subresource == SUBRESOURCE
            || (self.group == podcheckpoint::GROUP && self.resource == podcheckpoint::PLURAL)
    }

    /// The attributes of a review of this right in `namespace`.
    pub fn attributes(&self, namespace: &str) -> ResourceAttributes {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        ResourceAttributes {
            namespace: some(namespace),
            verb: some(&self.verb),
            group: Some(self.group.clone()),
            resource: some(&self.resource),
            subresource: some(&self.subresource),
            ..Default::default()
        }
    }
}

/// As an RBAC rule reads: `get deployments.apps`, `list pods`,
/// `create pods/checkpoint (API group subresources.checkpoint.kcr.dev)`.
impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.group.as_str(), self.subresource.as_str()) {
            ("", "") => write!(f, "{} {}", self.verb, self.resource),
            ("", sub) => write!(f, "{} {}/{sub}", self.verb, self.resource),
            (group, "") => write!(f, "{} {}.{group}", self.verb, self.resource),
            (group, sub) => write!(
                f,
                "{} {}/{sub} (API group {group})",
                self.verb, self.resource
            ),
        }
    }
}

/// `a, b, c`
pub fn list(rights: &[Access]) -> String {
    rights
        .iter()
        .map(Access::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rights to find the pod of a `kind`: get the pod; or get the object
/// and list pods by its selector.
pub fn to_find_pod(kind: ResourceKind) -> Vec<Access> {
    match kind {
        ResourceKind::Pod => vec![Access::read("get", ResourceKind::Pod)],
        other => vec![
            Access::read("get", other),
            Access::read("list", ResourceKind::Pod),
        ],
    }
}

/// The rights to checkpoint through `endpoint`: for the extension,
/// `create pods/checkpoint` in its group (checked by kube-apiserver) and
/// verb `checkpoint` on core pods (checked by the extension).
pub fn to_checkpoint(endpoint: Endpoint) -> Vec<Access> {
    match endpoint {
        Endpoint::Core => vec![Access::new("create", "", RESOURCE, SUBRESOURCE)],
        Endpoint::Extension => vec![
            Access::new("create", SUBRESOURCES_GROUP, RESOURCE, SUBRESOURCE),
            Access::new(CHECKPOINT_VERB, "", RESOURCE, ""),
        ],
    }
}

/// The rights to checkpoint through a `PodCheckpoint`: create it, and to
/// wait on it, list and watch it (kube's watcher lists, then watches, by
/// `metadata.name`).
pub fn to_create_object(wait: bool) -> Vec<Access> {
    let verbs: &[&str] = if wait {
        &["create", "list", "watch"]
    } else {
        &["create"]
    };
    verbs
        .iter()
        .map(|v| Access::new(v, podcheckpoint::GROUP, podcheckpoint::PLURAL, ""))
        .collect()
}

/// The rights to wait on a `PodCheckpoint`.
pub fn to_watch_object() -> Vec<Access> {
    ["list", "watch"]
        .iter()
        .map(|v| Access::new(v, podcheckpoint::GROUP, podcheckpoint::PLURAL, ""))
        .collect()
}

/// Which of `rights` the caller lacks in `namespace`: one review each, all at
/// once.
pub async fn missing(
    client: &impl AccessReviewer,
    namespace: &str,
    rights: &[Access],
) -> Result<Vec<Access>, ClientError> {
    let answers =
        futures::future::join_all(rights.iter().map(|r| client.can_i(r.attributes(namespace))))
            .await;
    let mut lacking = Vec::new();
    for (right, allowed) in rights.iter().zip(answers) {
        if !allowed? {
            lacking.push(right.clone());
        }
    }
    Ok(lacking)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::fake::FakeClient;

    #[test]
    fn rights_read_like_rbac_rules() {
        assert_eq!(
            list(&to_find_pod(ResourceKind::Deployment)),
            "get deployments.apps, list pods"
        );
        assert_eq!(
            list(&to_find_pod(ResourceKind::Service)),
            "get services, list pods"
        );
        assert_eq!(list(&to_find_pod(ResourceKind::Pod)), "get pods");
        assert_eq!(
            list(&to_checkpoint(Endpoint::Extension)),
            "create pods/checkpoint (API group subresources.checkpoint.kcr.dev), checkpoint pods"
        );
        assert_eq!(
            list(&to_checkpoint(Endpoint::Core)),
            "create pods/checkpoint"
        );
        assert!(
            to_checkpoint(Endpoint::Extension)
                .iter()
                .all(Access::is_checkpoint)
        );
        assert!(
            !to_find_pod(ResourceKind::Job)
                .iter()
                .any(Access::is_checkpoint)
        );
        assert_eq!(
            list(&to_create_object(true)),
            "create podcheckpoints.checkpoint.kcr.dev, list podcheckpoints.checkpoint.kcr.dev, watch podcheckpoints.checkpoint.kcr.dev"
        );
        assert_eq!(
            list(&to_create_object(false)),
            "create podcheckpoints.checkpoint.kcr.dev"
        );
        assert!(to_create_object(true).iter().all(Access::is_checkpoint));
        let a = to_checkpoint(Endpoint::Extension)[0].attributes("prod");
        assert_eq!(a.namespace.as_deref(), Some("prod"));
        assert_eq!(a.group.as_deref(), Some("subresources.checkpoint.kcr.dev"));
        assert_eq!(a.subresource.as_deref(), Some("checkpoint"));
        assert_eq!(
            Access::read("list", ResourceKind::Pod)
                .attributes("p")
                .subresource,
            None
        );
    }

    #[tokio::test]
    async fn missing_rights_are_reviewed_together() {
        let c = FakeClient {
            cannot: vec!["checkpoint pods".into(), "list pods".into()],
            ..Default::default()
        };
        let mut rights = to_find_pod(ResourceKind::Deployment);
        rights.extend(to_checkpoint(Endpoint::Extension));
        let lacking = missing(&c, "default", &rights).await.unwrap();
        assert_eq!(list(&lacking), "list pods, checkpoint pods");
        assert_eq!(
            c.calls(),
            [
                "can-i get deployments.apps -n default",
                "can-i list pods -n default",
                "can-i create pods.subresources.checkpoint.kcr.dev/checkpoint -n default",
                "can-i checkpoint pods -n default",
            ]
        );
        let c = FakeClient {
            reviews_fail: true,
            ..Default::default()
        };
        assert!(missing(&c, "default", &rights).await.is_err());
    }
}
