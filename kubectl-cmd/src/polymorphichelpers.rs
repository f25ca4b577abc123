//! `POD | TYPE/NAME` → one pod, as `kubectl exec` finds it:
//! `k8s.io/kubectl/pkg/polymorphichelpers/attachablepodforobject.go`
//! (`attachablePodForObject`) and `helpers.go` (`GetFirstPod`, sorted by
//! [`crate::podutils`]'s `ActivePods`).

use std::io::Write;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::client::{ClientError, PodClient};
use crate::podutils::most_active;
use crate::resource::{ResourceKind, ResourceTuple};

/// Why no pod was found for `POD | TYPE/NAME`.
#[derive(Debug, thiserror::Error)]
pub enum PodForObjectError {
    #[error("cannot checkpoint a pod of {0}: it has no pod selector")]
    NoSelector(ResourceTuple),
    #[error("no pods found for {resource} (selector {selector})")]
    NoPods {
        resource: ResourceTuple,
        selector: String,
    },
    /// A read failed: `verb` on `kind` (`get` the workload, `list` pods, `get` the pod).
    #[error("failed to look up {resource}")]
    Lookup {
        resource: ResourceTuple,
        verb: &'static str,
        kind: ResourceKind,
        #[source]
        source: ClientError,
    },
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

/// `attachablePodForObject`: the pod itself, or the most active pod of the
/// object's selector (`GetFirstPod`). For TYPE/NAME a notice naming the
/// chosen pod goes to `notices` (stderr).
pub async fn attachable_pod_for_object(
    client: &impl PodClient,
    namespace: &str,
    resource: &ResourceTuple,
    notices: &mut impl Write,
) -> Result<Pod, PodForObjectError> {
    let lookup = |verb, kind| {
        move |source| PodForObjectError::Lookup {
            resource: resource.clone(),
            verb,
            kind,
            source,
        }
    };
    if resource.kind == ResourceKind::Pod {
        return client
            .get_pod(namespace, &resource.name)
            .await
            .map_err(lookup("get", ResourceKind::Pod));
    }
    let selector = client
        .selector_of(namespace, resource.kind, &resource.name)
        .await
        .map_err(lookup("get", resource.kind))?
        .as_ref()
        .and_then(selector_string)
        .ok_or_else(|| PodForObjectError::NoSelector(resource.clone()))?;
    let pods = client
        .list_pods(namespace, &selector)
        .await
        .map_err(lookup("list", ResourceKind::Pod))?;
    let pod = most_active(&pods)
        .cloned()
        .ok_or_else(|| PodForObjectError::NoPods {
            resource: resource.clone(),
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
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use kcr_testkit::mock_api::objects::{pod, with_labels};

    use super::*;
    use crate::client::fake::FakeClient;

    /// The read the server forbade: its verb and kind.
    fn forbidden(e: &PodForObjectError) -> Option<(&'static str, ResourceKind)> {
        match e {
            PodForObjectError::Lookup {
                verb, kind, source, ..
            } if source.is_forbidden() => Some((verb, *kind)),
            _ => None,
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

    fn workload_client() -> FakeClient {
        let mut c = FakeClient {
            pods: vec![
                with_labels(
                    pod("default", "web-1", "Pending", &["app"]),
                    &[("app", "web")],
                ),
                with_labels(
                    pod("default", "web-2", "Running", &["app"]),
                    &[("app", "web")],
                ),
                with_labels(pod("default", "db-0", "Running", &["db"]), &[("app", "db")]),
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

    async fn resolve(c: &FakeClient, arg: &str) -> (Result<Pod, PodForObjectError>, String) {
        let mut notices = Vec::new();
        let r = attachable_pod_for_object(
            c,
            "default",
            &ResourceTuple::parse(arg).unwrap(),
            &mut notices,
        )
        .await;
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
            matches!(&err, PodForObjectError::Lookup { source: ClientError::Server(s), .. } if s.message == "pods \"ghost\" not found"),
            "{err:?}"
        );
        assert_eq!(forbidden(&err), None);
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

    #[tokio::test]
    async fn forbidden_reads_name_the_read() {
        let mut c = workload_client();
        c.forbidden = vec!["get deployments.apps".into(), "list pods".into()];
        let (err, _) = resolve(&c, "deploy/web").await;
        assert_eq!(
            forbidden(&err.unwrap_err()),
            Some(("get", ResourceKind::Deployment))
        );
        let (err, _) = resolve(&c, "sts/db").await;
        assert_eq!(
            forbidden(&err.unwrap_err()),
            Some(("list", ResourceKind::Pod))
        );
        c.forbidden = vec!["get pod".into()];
        let (err, _) = resolve(&c, "counter").await;
        assert_eq!(
            forbidden(&err.unwrap_err()),
            Some(("get", ResourceKind::Pod))
        );
    }
}
