//! The `POD | TYPE/NAME` argument, as upstream's resource builder reads it
//! (`k8s.io/cli-runtime/pkg/resource/builder.go`: `Builder.ResourceNames("pods", name)`
//! with `splitResourceTypeName` into a `resourceTuple`), and the resource
//! kinds whose objects select pods (what kubectl's RESTMapper resolves for
//! `kubectl exec TYPE/NAME`).

use std::fmt;

/// The kinds whose objects select pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceKind {
    Pod,
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    Job,
    Service,
    ReplicationController,
}

impl ResourceKind {
    pub const ALL: [ResourceKind; 8] = [
        ResourceKind::Pod,
        ResourceKind::Deployment,
        ResourceKind::StatefulSet,
        ResourceKind::DaemonSet,
        ResourceKind::ReplicaSet,
        ResourceKind::Job,
        ResourceKind::Service,
        ResourceKind::ReplicationController,
    ];

    /// The singular name kubectl prints (`deployment`).
    pub fn singular(self) -> &'static str {
        match self {
            ResourceKind::Pod => "pod",
            ResourceKind::Deployment => "deployment",
            ResourceKind::StatefulSet => "statefulset",
            ResourceKind::DaemonSet => "daemonset",
            ResourceKind::ReplicaSet => "replicaset",
            ResourceKind::Job => "job",
            ResourceKind::Service => "service",
            ResourceKind::ReplicationController => "replicationcontroller",
        }
    }

    /// The API group (`""` for the core group).
    pub fn group(self) -> &'static str {
        match self {
            ResourceKind::Pod | ResourceKind::Service | ResourceKind::ReplicationController => "",
            ResourceKind::Deployment
            | ResourceKind::StatefulSet
            | ResourceKind::DaemonSet
            | ResourceKind::ReplicaSet => "apps",
            ResourceKind::Job => "batch",
        }
    }

    /// The resource: the plural name in URLs and RBAC rules (`deployments`).
    pub fn plural(self) -> &'static str {
        match self {
            ResourceKind::Pod => "pods",
            ResourceKind::Deployment => "deployments",
            ResourceKind::StatefulSet => "statefulsets",
            ResourceKind::DaemonSet => "daemonsets",
            ResourceKind::ReplicaSet => "replicasets",
            ResourceKind::Job => "jobs",
            ResourceKind::Service => "services",
            ResourceKind::ReplicationController => "replicationcontrollers",
        }
    }

    /// The resource as the server names it in messages (`deployments.apps`).
    pub fn resource(self) -> String {
        match self.group() {
            "" => self.plural().to_owned(),
            group => format!("{}.{group}", self.plural()),
        }
    }

    /// Every name kubectl accepts for the kind: singular, plural, short name,
    /// and `plural.group` / `singular.group`.
    fn aliases(self) -> &'static [&'static str] {
        match self {
            ResourceKind::Pod => &["pod", "pods", "po"],
            ResourceKind::Deployment => &[
                "deployment",
                "deployments",
                "deploy",
                "deployment.apps",
                "deployments.apps",
            ],
            ResourceKind::StatefulSet => &[
                "statefulset",
                "statefulsets",
                "sts",
                "statefulset.apps",
                "statefulsets.apps",
            ],
            ResourceKind::DaemonSet => &[
                "daemonset",
                "daemonsets",
                "ds",
                "daemonset.apps",
                "daemonsets.apps",
            ],
            ResourceKind::ReplicaSet => &[
                "replicaset",
                "replicasets",
                "rs",
                "replicaset.apps",
                "replicasets.apps",
            ],
            ResourceKind::Job => &["job", "jobs", "job.batch", "jobs.batch"],
            ResourceKind::Service => &["service", "services", "svc"],
            ResourceKind::ReplicationController => {
                &["replicationcontroller", "replicationcontrollers", "rc"]
            }
        }
    }

    /// Parse a TYPE as kubectl does (case-insensitive).
    pub fn parse(kind: &str) -> Option<Self> {
        let lower = kind.to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|k| k.aliases().contains(&lower.as_str()))
    }

    /// The collection URL in a namespace.
    pub fn collection_path(self, namespace: &str) -> String {
        let prefix = match self.group() {
            "" => "/api/v1".to_owned(),
            group => format!("/apis/{group}/v1"),
        };
        format!("{prefix}/namespaces/{namespace}/{}", self.plural())
    }
}

/// Why `POD | TYPE/NAME` names no resource.
#[derive(Debug, thiserror::Error)]
pub enum ResourceArgError {
    /// `splitResourceTypeName`'s message.
    #[error("arguments in resource/name form must have a single resource and name")]
    Malformed,
    /// kubectl's message for a type it cannot map.
    #[error("the server doesn't have a resource type {0:?}")]
    UnknownType(String),
}

/// The first argument: a kind and a name (upstream's `resourceTuple`, with
/// the resource already mapped to a [`ResourceKind`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceTuple {
    pub kind: ResourceKind,
    pub name: String,
}

impl ResourceTuple {
    /// `Builder.ResourceNames("pods", arg)`: `NAME` is a pod, `TYPE/NAME`
    /// names any [`ResourceKind`].
    pub fn parse(arg: &str) -> Result<Self, ResourceArgError> {
        match arg.split_once('/') {
            None => Ok(Self {
                kind: ResourceKind::Pod,
                name: arg.to_owned(),
            }),
            Some((kind, name)) => {
                if kind.is_empty() || name.is_empty() || name.contains('/') {
                    return Err(ResourceArgError::Malformed);
                }
                let kind = ResourceKind::parse(kind)
                    .ok_or_else(|| ResourceArgError::UnknownType(kind.to_owned()))?;
                Ok(Self {
                    kind,
                    name: name.to_owned(),
                })
            }
        }
    }
}

impl fmt::Display for ResourceTuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.singular(), self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubectl_type_names() {
        let t = ResourceTuple::parse("counter").unwrap();
        assert_eq!((t.kind, t.name.as_str()), (ResourceKind::Pod, "counter"));
        for (arg, kind) in [
            ("pod/x", ResourceKind::Pod),
            ("po/x", ResourceKind::Pod),
            ("deploy/x", ResourceKind::Deployment),
            ("Deployment/x", ResourceKind::Deployment),
            ("deployments.apps/x", ResourceKind::Deployment),
            ("sts/x", ResourceKind::StatefulSet),
            ("statefulset/x", ResourceKind::StatefulSet),
            ("ds/x", ResourceKind::DaemonSet),
            ("rs/x", ResourceKind::ReplicaSet),
            ("replicaset/x", ResourceKind::ReplicaSet),
            ("job/x", ResourceKind::Job),
            ("jobs.batch/x", ResourceKind::Job),
            ("svc/x", ResourceKind::Service),
            ("rc/x", ResourceKind::ReplicationController),
        ] {
            let t = ResourceTuple::parse(arg).unwrap();
            assert_eq!(t.kind, kind, "{arg}");
            assert_eq!(t.name, "x");
        }
        assert_eq!(
            ResourceTuple::parse("deploy/web").unwrap().to_string(),
            "deployment/web"
        );
        assert_eq!(
            ResourceTuple::parse("cronjob/x").unwrap_err().to_string(),
            "the server doesn't have a resource type \"cronjob\""
        );
        for bad in ["/x", "pod/", "pod/a/b", "/"] {
            assert_eq!(
                ResourceTuple::parse(bad).unwrap_err().to_string(),
                "arguments in resource/name form must have a single resource and name",
                "{bad}"
            );
        }
    }

    #[test]
    fn collection_paths() {
        assert_eq!(
            ResourceKind::Pod.collection_path("ns"),
            "/api/v1/namespaces/ns/pods"
        );
        assert_eq!(
            ResourceKind::Deployment.collection_path("ns"),
            "/apis/apps/v1/namespaces/ns/deployments"
        );
        assert_eq!(
            ResourceKind::Job.collection_path("ns"),
            "/apis/batch/v1/namespaces/ns/jobs"
        );
        assert_eq!(
            ResourceKind::ReplicationController.collection_path("ns"),
            "/api/v1/namespaces/ns/replicationcontrollers"
        );
    }

    #[test]
    fn resources_as_the_server_names_them() {
        let names: Vec<String> = ResourceKind::ALL.iter().map(|k| k.resource()).collect();
        assert_eq!(
            names,
            [
                "pods",
                "deployments.apps",
                "statefulsets.apps",
                "daemonsets.apps",
                "replicasets.apps",
                "jobs.batch",
                "services",
                "replicationcontrollers"
            ]
        );
    }
}
