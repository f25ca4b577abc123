//! `POD | TYPE/NAME` → one pod, as `kubectl exec` resolves it
//! (`k8s.io/kubectl/pkg/polymorphichelpers/attachablepodforobject.go`,
//! `GetFirstPod` with `sort.Reverse(podutils.ActivePods)`).

use std::cmp::Ordering;
use std::fmt;
use std::io::Write;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::client::{ClientError, PodClient};

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

    /// The resource as the server names it in messages (`deployments.apps`).
    pub fn resource(self) -> &'static str {
        match self {
            ResourceKind::Pod => "pods",
            ResourceKind::Deployment => "deployments.apps",
            ResourceKind::StatefulSet => "statefulsets.apps",
            ResourceKind::DaemonSet => "daemonsets.apps",
            ResourceKind::ReplicaSet => "replicasets.apps",
            ResourceKind::Job => "jobs.batch",
            ResourceKind::Service => "services",
            ResourceKind::ReplicationController => "replicationcontrollers",
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
        let (prefix, plural) = match self {
            ResourceKind::Pod => ("/api/v1", "pods"),
            ResourceKind::Deployment => ("/apis/apps/v1", "deployments"),
            ResourceKind::StatefulSet => ("/apis/apps/v1", "statefulsets"),
            ResourceKind::DaemonSet => ("/apis/apps/v1", "daemonsets"),
            ResourceKind::ReplicaSet => ("/apis/apps/v1", "replicasets"),
            ResourceKind::Job => ("/apis/batch/v1", "jobs"),
            ResourceKind::Service => ("/api/v1", "services"),
            ResourceKind::ReplicationController => ("/api/v1", "replicationcontrollers"),
        };
        format!("{prefix}/namespaces/{namespace}/{plural}")
    }
}

/// Why `POD | TYPE/NAME` does not name one pod.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("arguments in resource/name form must have a single resource and name")]
    Malformed,
    /// kubectl's message for a type it cannot map.
    #[error("the server doesn't have a resource type {0:?}")]
    UnknownType(String),
    #[error("cannot checkpoint a pod of {0}: it has no pod selector")]
    NoSelector(Target),
    #[error("no pods found for {target} (selector {selector})")]
    NoPods { target: Target, selector: String },
    #[error("failed to look up {target}")]
    Lookup {
        target: Target,
        #[source]
        source: ClientError,
    },
}

/// The first argument: a kind and a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: ResourceKind,
    pub name: String,
}

impl Target {
    /// `NAME` is a pod; `TYPE/NAME` names any [`ResourceKind`].
    pub fn parse(arg: &str) -> Result<Self, TargetError> {
        match arg.split_once('/') {
            None => Ok(Self {
                kind: ResourceKind::Pod,
                name: arg.to_owned(),
            }),
            Some((kind, name)) => {
                if kind.is_empty() || name.is_empty() || name.contains('/') {
                    return Err(TargetError::Malformed);
                }
                let kind = ResourceKind::parse(kind)
                    .ok_or_else(|| TargetError::UnknownType(kind.to_owned()))?;
                Ok(Self {
                    kind,
                    name: name.to_owned(),
                })
            }
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.singular(), self.name)
    }
}

/// `metav1.LabelSelectorAsSelector(...).String()`: requirements sorted by
/// key; `k=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`. `None` for a
/// selector that selects nothing in particular (empty).
pub fn selector_string(selector: &LabelSelector) -> Option<String> {
    let mut reqs: Vec<(String, String)> = Vec::new();
    for (k, v) in selector.match_labels.iter().flatten() {
        reqs.push((k.clone(), format!("{k}={v}")));
    }
    for e in selector.match_expressions.iter().flatten() {
        let mut values = e.values.clone().unwrap_or_default();
        values.sort();
        let text = match e.operator.as_str() {
            "In" => format!("{} in ({})", e.key, values.join(",")),
            "NotIn" => format!("{} notin ({})", e.key, values.join(",")),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            other => format!(
                "{} {} ({})",
                e.key,
                other.to_ascii_lowercase(),
                values.join(",")
            ),
        };
        reqs.push((e.key.clone(), text));
    }
    if reqs.is_empty() {
        return None;
    }
    reqs.sort();
    Some(
        reqs.into_iter()
            .map(|(_, r)| r)
            .collect::<Vec<_>>()
            .join(","),
    )
}

fn is_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

fn ready_condition(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

fn ready_time(pod: &Pod) -> Option<k8s_openapi::jiff::Timestamp> {
    ready_condition(pod)?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

fn phase_rank(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Running") => 2,
        Some("Unknown") => 1,
        _ => 0,
    }
}

fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().map(|c| c.restart_count).max())
        .unwrap_or(0)
}

fn has_node(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
}

/// `afterOrZero(t1, t2)`: t1 is zero, or after t2.
fn after_or_zero(
    t1: Option<k8s_openapi::jiff::Timestamp>,
    t2: Option<k8s_openapi::jiff::Timestamp>,
) -> bool {
    match (t1, t2) {
        (None, _) | (_, None) => t1.is_none(),
        (Some(a), Some(b)) => a > b,
    }
}

/// `podutils.ActivePods.Less`: `Less` means "less active", so the pod
/// `kubectl exec` picks is the greatest.
pub fn compare_active(a: &Pod, b: &Pod) -> Ordering {
    let less = |x: &Pod, y: &Pod| -> bool {
        // 1. unassigned < assigned
        if has_node(x) != has_node(y) {
            return !has_node(x);
        }
        // 2. Pending < Unknown < Running
        if phase_rank(x) != phase_rank(y) {
            return phase_rank(x) < phase_rank(y);
        }
        // 3. not ready < ready
        if is_ready(x) != is_ready(y) {
            return !is_ready(x);
        }
        // 4. ready for less time < more time
        if is_ready(x) && is_ready(y) && ready_time(x) != ready_time(y) {
            return after_or_zero(ready_time(x), ready_time(y));
        }
        // 5. more restarts < fewer restarts
        if max_restarts(x) != max_restarts(y) {
            return max_restarts(x) > max_restarts(y);
        }
        // 6. empty creation time < newer < older
        let (cx, cy) = (
            x.metadata.creation_timestamp.as_ref().map(|t| t.0),
            y.metadata.creation_timestamp.as_ref().map(|t| t.0),
        );
        if cx != cy {
            return after_or_zero(cx, cy);
        }
        false
    };
    if less(a, b) {
        Ordering::Less
    } else if less(b, a) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

/// The pod `kubectl exec` would pick: the most active; the first listed on ties.
pub fn pick_pod(pods: &[Pod]) -> Option<&Pod> {
    let mut best: Option<&Pod> = None;
    for pod in pods {
        match best {
            Some(b) if compare_active(pod, b) != Ordering::Greater => {}
            _ => best = Some(pod),
        }
    }
    best
}

/// Resolve the target to one pod. For TYPE/NAME, a notice naming the chosen
/// pod goes to `notices` (stderr).
pub async fn resolve_pod(
    client: &impl PodClient,
    namespace: &str,
    target: &Target,
    notices: &mut impl Write,
) -> Result<Pod, TargetError> {
    let lookup = |source| TargetError::Lookup {
        target: target.clone(),
        source,
    };
    if target.kind == ResourceKind::Pod {
        return client
            .get_pod(namespace, &target.name)
            .await
            .map_err(lookup);
    }
    let selector = client
        .selector_of(namespace, target.kind, &target.name)
        .await
        .map_err(lookup)?
        .as_ref()
        .and_then(selector_string)
        .ok_or_else(|| TargetError::NoSelector(target.clone()))?;
    let pods = client
        .list_pods(namespace, &selector)
        .await
        .map_err(lookup)?;
    let pod = pick_pod(&pods)
        .cloned()
        .ok_or_else(|| TargetError::NoPods {
            target: target.clone(),
            selector: selector.clone(),
        })?;
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    // A failed notice must not fail the command.
    let _ = if pods.len() > 1 {
        writeln!(notices, "Found {} pods, using pod/{name}", pods.len())
    } else {
        writeln!(notices, "Using pod/{name}")
    };
    Ok(pod)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::{
        Container, ContainerStatus, PodCondition, PodSpec, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        LabelSelectorRequirement, ObjectMeta, Time,
    };

    use super::*;
    use crate::client::fake::FakeClient;

    /// A pod for tests: `phase` "Running" also makes it Ready and assigned.
    pub(crate) fn pod(ns: &str, name: &str, phase: &str, containers: &[&str]) -> Pod {
        let running = phase == "Running";
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                creation_timestamp: Some(Time("2026-11-27T07:00:00Z".parse().unwrap())),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: running.then(|| "node-1".to_owned()),
                containers: containers
                    .iter()
                    .map(|c| Container {
                        name: (*c).into(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: running.then(|| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(Time("2026-11-27T07:01:00Z".parse().unwrap())),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        }
    }

    fn labelled(mut p: Pod, labels: &[(&str, &str)]) -> Pod {
        p.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        );
        p
    }

    #[test]
    fn parses_kubectl_type_names() {
        let t = Target::parse("counter").unwrap();
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
            let t = Target::parse(arg).unwrap();
            assert_eq!(t.kind, kind, "{arg}");
            assert_eq!(t.name, "x");
        }
        assert_eq!(
            Target::parse("deploy/web").unwrap().to_string(),
            "deployment/web"
        );
        assert_eq!(
            Target::parse("cronjob/x").unwrap_err().to_string(),
            "the server doesn't have a resource type \"cronjob\""
        );
        for bad in ["/x", "pod/", "pod/a/b", "/"] {
            assert_eq!(
                Target::parse(bad).unwrap_err().to_string(),
                "arguments in resource/name form must have a single resource and name",
                "{bad}"
            );
        }
    }

    #[test]
    fn selectors_print_like_apimachinery() {
        let sel = LabelSelector {
            match_labels: Some(BTreeMap::from([
                ("tier".into(), "web".into()),
                ("app".into(), "shop".into()),
            ])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "env".into(),
                    operator: "In".into(),
                    values: Some(vec!["prod".into(), "dev".into()]),
                },
                LabelSelectorRequirement {
                    key: "zz".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
                LabelSelectorRequirement {
                    key: "canary".into(),
                    operator: "Exists".into(),
                    values: None,
                },
                LabelSelectorRequirement {
                    key: "x".into(),
                    operator: "NotIn".into(),
                    values: Some(vec!["a".into()]),
                },
            ]),
        };
        assert_eq!(
            selector_string(&sel).as_deref(),
            Some("app=shop,canary,env in (dev,prod),tier=web,x notin (a),!zz")
        );
        assert_eq!(selector_string(&LabelSelector::default()), None);
    }

    #[test]
    fn picks_the_most_active_pod() {
        let pending = pod("default", "a-pending", "Pending", &["app"]);
        let running = pod("default", "b-running", "Running", &["app"]);
        let mut restarted = pod("default", "c-restarted", "Running", &["app"]);
        if let Some(s) = restarted.status.as_mut() {
            s.container_statuses = Some(vec![ContainerStatus {
                name: "app".into(),
                restart_count: 3,
                ..Default::default()
            }]);
        }
        let mut older = pod("default", "d-older", "Running", &["app"]);
        older.metadata.creation_timestamp = Some(Time("2026-11-27T06:00:00Z".parse().unwrap()));
        let mut ready_longer = pod("default", "e-ready-longer", "Running", &["app"]);
        if let Some(c) = ready_longer
            .status
            .as_mut()
            .and_then(|s| s.conditions.as_mut())
        {
            c[0].last_transition_time = Some(Time("2026-11-27T06:30:00Z".parse().unwrap()));
        }

        assert_eq!(compare_active(&pending, &running), Ordering::Less);
        assert_eq!(compare_active(&restarted, &running), Ordering::Less);
        assert_eq!(compare_active(&older, &running), Ordering::Greater);
        assert_eq!(compare_active(&ready_longer, &older), Ordering::Greater);

        let name = |pods: &[Pod]| pick_pod(pods).and_then(|p| p.metadata.name.clone());
        assert_eq!(
            name(&[pending.clone(), running.clone()]).as_deref(),
            Some("b-running")
        );
        assert_eq!(
            name(&[running.clone(), restarted.clone()]).as_deref(),
            Some("b-running")
        );
        assert_eq!(
            name(&[running.clone(), older.clone()]).as_deref(),
            Some("d-older")
        );
        assert_eq!(
            name(&[older, ready_longer, running]).as_deref(),
            Some("e-ready-longer")
        );
        assert_eq!(
            name(std::slice::from_ref(&pending)).as_deref(),
            Some("a-pending")
        );
        assert_eq!(name(&[]), None);
    }

    fn workload_client() -> FakeClient {
        let mut c = FakeClient {
            pods: vec![
                labelled(
                    pod("default", "web-1", "Pending", &["app"]),
                    &[("app", "web")],
                ),
                labelled(
                    pod("default", "web-2", "Running", &["app"]),
                    &[("app", "web")],
                ),
                labelled(pod("default", "db-0", "Running", &["db"]), &[("app", "db")]),
                pod("default", "counter", "Running", &["app"]),
            ],
            ..Default::default()
        };
        let sel = |v: &str| LabelSelector {
            match_labels: Some(BTreeMap::from([("app".into(), v.into())])),
            match_expressions: None,
        };
        c.selectors
            .insert((ResourceKind::Deployment, "web".into()), sel("web"));
        c.selectors
            .insert((ResourceKind::StatefulSet, "db".into()), sel("db"));
        c.selectors
            .insert((ResourceKind::Deployment, "empty".into()), sel("nothing"));
        c.selectors.insert(
            (ResourceKind::Service, "headless".into()),
            LabelSelector::default(),
        );
        c
    }

    async fn resolve(c: &FakeClient, arg: &str) -> (Result<Pod, TargetError>, String) {
        let mut notices = Vec::new();
        let r = resolve_pod(c, "default", &Target::parse(arg).unwrap(), &mut notices).await;
        (r, String::from_utf8(notices).unwrap())
    }

    #[tokio::test]
    async fn resolves_type_name_like_kubectl_exec() {
        let c = workload_client();
        let (pod, notice) = resolve(&c, "counter").await;
        assert_eq!(pod.unwrap().metadata.name.as_deref(), Some("counter"));
        assert_eq!(notice, "");

        let (pod, notice) = resolve(&c, "deployment/web").await;
        assert_eq!(pod.unwrap().metadata.name.as_deref(), Some("web-2"));
        assert_eq!(notice, "Found 2 pods, using pod/web-2\n");

        let (pod, notice) = resolve(&c, "sts/db").await;
        assert_eq!(pod.unwrap().metadata.name.as_deref(), Some("db-0"));
        assert_eq!(notice, "Using pod/db-0\n");

        let (err, _) = resolve(&c, "deploy/empty").await;
        assert_eq!(
            err.unwrap_err().to_string(),
            "no pods found for deployment/empty (selector app=nothing)"
        );
        let (err, _) = resolve(&c, "svc/headless").await;
        assert_eq!(
            err.unwrap_err().to_string(),
            "cannot checkpoint a pod of service/headless: it has no pod selector"
        );
        let (err, _) = resolve(&c, "ghost").await;
        let err = err.unwrap_err();
        assert!(
            matches!(&err, TargetError::Lookup { source: ClientError::Server(s), .. } if s.message == "pods \"ghost\" not found"),
            "{err:?}"
        );
        assert_eq!(
            c.calls(),
            [
                "get pod default/counter",
                "get deployments.apps default/web",
                "list pods default app=web",
                "get statefulsets.apps default/db",
                "list pods default app=db",
                "get deployments.apps default/empty",
                "list pods default app=nothing",
                "get services default/headless",
                "get pod default/ghost",
            ]
        );
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
}
