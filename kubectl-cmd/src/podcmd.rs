//! Which container of the pod to checkpoint, as `kubectl exec` chooses it:
//! `k8s.io/kubectl/pkg/cmd/util/podcmd` (`FindOrDefaultContainerByName`,
//! `AllContainerNames`, `DefaultContainerAnnotationName`).

use k8s_openapi::api::core::v1::Pod;

/// The annotation naming a pod's default container (`DefaultContainerAnnotationName`).
pub const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";

/// Why no container could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainerError {
    #[error("pod {namespace}/{pod} does not have any containers")]
    NoContainers { namespace: String, pod: String },
}

/// The chosen container and the notices to show on stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerChoice {
    pub name: String,
    pub notices: Vec<String>,
}

/// The names of the pod's containers, init containers and ephemeral containers.
fn names(pod: &Pod) -> (Vec<&str>, Vec<&str>, Vec<&str>) {
    let Some(spec) = pod.spec.as_ref() else {
        return Default::default();
    };
    (
        spec.containers.iter().map(|c| c.name.as_str()).collect(),
        spec.init_containers
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect(),
        spec.ephemeral_containers
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect(),
    )
}

/// `podcmd.AllContainerNames`: `a, b, init (init), debugger (ephem)`.
pub fn all_container_names(pod: &Pod) -> String {
    let (containers, init, ephemeral) = names(pod);
    containers
        .into_iter()
        .map(str::to_owned)
        .chain(init.into_iter().map(|n| format!("{n} (init)")))
        .chain(ephemeral.into_iter().map(|n| format!("{n} (ephem)")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every container name of the pod: containers, init containers, ephemeral
/// containers (what completion offers for `-c`).
pub fn container_names(pod: &Pod) -> Vec<String> {
    let (containers, init, ephemeral) = names(pod);
    containers
        .into_iter()
        .chain(init)
        .chain(ephemeral)
        .map(str::to_owned)
        .collect()
}

/// `FindOrDefaultContainerByName`: `-c` wins; else the default-container
/// annotation (when it names a container); else the first container, with
/// kubectl's notice when there was a choice to make.
///
/// Unlike upstream, a `-c` the pod does not list is not refused here: it goes
/// to the server as it is, whose answer (400, listing the pod's containers)
/// users see, and the pod read may be older than the server's.
pub fn find_or_default_container_by_name(
    pod: &Pod,
    requested: Option<&str>,
) -> Result<ContainerChoice, ContainerError> {
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    if let Some(name) = requested.filter(|n| !n.is_empty()) {
        return Ok(ContainerChoice {
            name: name.to_owned(),
            notices: Vec::new(),
        });
    }
    let mut notices = Vec::new();
    if let Some(name) = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEFAULT_CONTAINER_ANNOTATION))
        .filter(|n| !n.is_empty())
    {
        if container_names(pod).contains(name) {
            return Ok(ContainerChoice {
                name: name.clone(),
                notices,
            });
        }
        notices.push(format!(
            "Warning: default container name {name:?} not found in pod {pod_name}"
        ));
    }
    let (containers, init, ephemeral) = names(pod);
    let Some(first) = containers.first() else {
        return Err(ContainerError::NoContainers {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            pod: pod_name,
        });
    };
    if containers.len() > 1 || !init.is_empty() || !ephemeral.is_empty() {
        notices.push(format!(
            "Defaulted container {first:?} out of: {}",
            all_container_names(pod)
        ));
    }
    Ok(ContainerChoice {
        name: (*first).to_owned(),
        notices,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::Container;

    use super::*;
    use kcr_testkit::mock_api::objects::pod;

    fn annotated(mut p: Pod, default: &str) -> Pod {
        p.metadata.annotations = Some(BTreeMap::from([(
            DEFAULT_CONTAINER_ANNOTATION.into(),
            default.into(),
        )]));
        p
    }

    fn choice(name: &str, notices: &[&str]) -> ContainerChoice {
        ContainerChoice {
            name: name.into(),
            notices: notices.iter().map(|s| (*s).into()).collect(),
        }
    }

    #[test]
    fn explicit_container_wins() {
        let p = annotated(pod("default", "p", "Running", &["a", "b"]), "b");
        assert_eq!(
            find_or_default_container_by_name(&p, Some("a")),
            Ok(choice("a", &[]))
        );
        // unknown names are the server's to refuse
        assert_eq!(
            find_or_default_container_by_name(&p, Some("zzz")),
            Ok(choice("zzz", &[]))
        );
    }

    #[test]
    fn annotation_then_single_then_first_with_notice() {
        let p = annotated(pod("default", "p", "Running", &["a", "b"]), "b");
        assert_eq!(
            find_or_default_container_by_name(&p, None),
            Ok(choice("b", &[]))
        );

        let p = pod("default", "p", "Running", &["only"]);
        assert_eq!(
            find_or_default_container_by_name(&p, None),
            Ok(choice("only", &[]))
        );

        let p = pod("default", "p", "Running", &["a", "b"]);
        assert_eq!(
            find_or_default_container_by_name(&p, None),
            Ok(choice("a", &["Defaulted container \"a\" out of: a, b"]))
        );

        let p = annotated(pod("default", "p", "Running", &["a", "b"]), "gone");
        assert_eq!(
            find_or_default_container_by_name(&p, None),
            Ok(choice(
                "a",
                &[
                    "Warning: default container name \"gone\" not found in pod p",
                    "Defaulted container \"a\" out of: a, b"
                ]
            ))
        );
    }

    #[test]
    fn init_and_ephemeral_containers_are_listed() {
        let mut p = pod("default", "p", "Running", &["app"]);
        if let Some(spec) = p.spec.as_mut() {
            spec.init_containers = Some(vec![Container {
                name: "setup".into(),
                ..Default::default()
            }]);
        }
        assert_eq!(
            find_or_default_container_by_name(&p, None),
            Ok(choice(
                "app",
                &["Defaulted container \"app\" out of: app, setup (init)"]
            ))
        );
        assert_eq!(
            find_or_default_container_by_name(&p, Some("setup")),
            Ok(choice("setup", &[]))
        );
    }

    #[test]
    fn no_containers() {
        let p = pod("default", "p", "Running", &[]);
        assert_eq!(
            find_or_default_container_by_name(&p, None)
                .unwrap_err()
                .to_string(),
            "pod default/p does not have any containers"
        );
    }
}
