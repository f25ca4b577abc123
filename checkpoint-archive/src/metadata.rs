//! The archive's metadata files, as checkpointctl reads them
//! (`lib/metadata.go` `ContainerConfig`, `internal/container.go`
//! `getContainerInfo`): `config.dump` (the engine's container config) and
//! `spec.dump` (the OCI runtime spec; only its annotations are used).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{Error, Result};

/// `config.dump`: the subset of the engine's container config checkpointctl
/// reads (`lib/metadata.go` `ContainerConfig`). Times are kept as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerConfig {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub rootfs_image_name: String,
    /// `runtime`: the OCI runtime (`runc`, `crun`, containerd's
    /// `io.containerd.runc.v2`).
    #[serde(default, rename = "runtime")]
    pub oci_runtime: String,
    #[serde(default)]
    pub created_time: Option<String>,
    #[serde(default)]
    pub checkpointed_time: Option<String>,
}

/// `spec.dump`: only the annotations of the OCI spec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Spec {
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl Spec {
    fn annotation(&self, key: &str) -> &str {
        self.annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .map_or("", String::as_str)
    }
}

/// Who wrote the checkpoint, from `spec.dump`'s `io.container.manager`
/// annotation (`getContainerInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Podman,
    CriO,
    /// Anything else: containerd's CRI plugin leaves the annotation out.
    Containerd,
}

impl Engine {
    /// checkpointctl's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Podman => "Podman",
            Engine::CriO => "CRI-O",
            Engine::Containerd => "containerd",
        }
    }
}

/// `containerInfo` (`internal/container.go`): what checkpointctl derives
/// from the two dumps for its tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub name: String,
    /// RFC 3339, seconds (Podman, containerd), or CRI-O's annotation as is.
    pub created: String,
    pub engine: Engine,
    /// CRI-O only (`io.kubernetes.cri-o.IP.0`).
    pub ip: String,
    pub namespace: String,
    pub pod: String,
}

/// The zero `time.Time` of Go, which checkpointctl prints for a config
/// without `createdTime`.
pub const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// `createdTime` / `checkpointedTime` as Go's `Format(time.RFC3339)` prints
/// the parsed value: seconds precision, the written offset, `Z` for zero.
pub fn format_rfc3339(entry: &'static str, field: &'static str, value: &str) -> Result<String> {
    let invalid = || Error::InvalidTime {
        entry,
        field,
        value: crate::error::shorten(value),
    };
    let ts: jiff::Timestamp = value.parse().map_err(|_| invalid())?;
    let pieces = jiff::fmt::temporal::Pieces::parse(value).map_err(|_| invalid())?;
    let offset = pieces.offset().ok_or_else(invalid)?.to_numeric_offset();
    let local = ts.to_zoned(jiff::tz::TimeZone::fixed(offset));
    let base = local.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    Ok(if offset == jiff::tz::Offset::UTC {
        format!("{base}Z")
    } else {
        format!("{base}{}", local.strftime("%:z"))
    })
}

/// `getContainerInfo`: the engine from `io.container.manager`, then the
/// container's name and creation time where that engine keeps them.
pub fn container_info(config: &ContainerConfig, spec: &Spec) -> Result<ContainerInfo> {
    let created_from_config = || match &config.created_time {
        Some(t) => format_rfc3339("config.dump", "createdTime", t),
        None => Ok(GO_ZERO_TIME.to_owned()),
    };
    match spec.annotation("io.container.manager") {
        "libpod" => Ok(ContainerInfo {
            name: config.name.clone(),
            created: created_from_config()?,
            engine: Engine::Podman,
            ip: String::new(),
            namespace: String::new(),
            pod: String::new(),
        }),
        "cri-o" => {
            #[derive(Deserialize)]
            struct CriOMetadata {
                #[serde(default)]
                name: String,
            }
            let raw = spec.annotation("io.kubernetes.cri-o.Metadata");
            let metadata: CriOMetadata =
                serde_json::from_str(raw).map_err(|source| Error::CriOMetadata { source })?;
            Ok(ContainerInfo {
                name: metadata.name,
                created: spec.annotation("io.kubernetes.cri-o.Created").to_owned(),
                engine: Engine::CriO,
                ip: spec.annotation("io.kubernetes.cri-o.IP.0").to_owned(),
                namespace: spec.annotation("io.kubernetes.pod.namespace").to_owned(),
                pod: spec.annotation("io.kubernetes.pod.name").to_owned(),
            })
        }
        _ => Ok(ContainerInfo {
            name: spec
                .annotation("io.kubernetes.cri.container-name")
                .to_owned(),
            created: created_from_config()?,
            engine: Engine::Containerd,
            ip: String::new(),
            namespace: spec
                .annotation("io.kubernetes.cri.sandbox-namespace")
                .to_owned(),
            pod: spec.annotation("io.kubernetes.cri.sandbox-name").to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_go_rfc3339() {
        let f = |v| format_rfc3339("config.dump", "createdTime", v);
        assert_eq!(
            f("2026-11-27T07:42:44.435225779Z").unwrap(),
            "2026-11-27T07:42:44Z"
        );
        assert_eq!(
            f("2023-03-08T08:45:33.123+03:00").unwrap(),
            "2023-03-08T08:45:33+03:00"
        );
        assert_eq!(
            f("2023-03-08T08:45:33+00:00").unwrap(),
            "2023-03-08T08:45:33Z"
        );
        assert_eq!(f(GO_ZERO_TIME).unwrap(), GO_ZERO_TIME);
        assert_eq!(
            f("yesterday").unwrap_err().to_string(),
            "config.dump has an invalid createdTime \"yesterday\" (not an RFC 3339 time)"
        );
        assert!(f("2026-11-27T07:42:44").is_err(), "an offset is required");
    }

    fn spec(pairs: &[(&str, &str)]) -> Spec {
        Spec {
            annotations: Some(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
        }
    }

    fn config() -> ContainerConfig {
        ContainerConfig {
            id: "f311a40eb5b9".into(),
            name: "app_sleepers_kcr-test_uid_0".into(),
            rootfs_image_name: "localhost/kcr-test/app:v1".into(),
            oci_runtime: "io.containerd.runc.v2".into(),
            created_time: Some("2026-11-30T06:31:44.852446719Z".into()),
            checkpointed_time: None,
        }
    }

    #[test]
    fn engines_are_told_apart_like_checkpointctl() {
        let containerd = container_info(
            &config(),
            &spec(&[
                ("io.kubernetes.cri.container-name", "app"),
                ("io.kubernetes.cri.sandbox-name", "sleepers"),
                ("io.kubernetes.cri.sandbox-namespace", "kcr-test"),
            ]),
        )
        .unwrap();
        assert_eq!(
            containerd,
            ContainerInfo {
                name: "app".into(),
                created: "2026-11-30T06:31:44Z".into(),
                engine: Engine::Containerd,
                ip: String::new(),
                namespace: "kcr-test".into(),
                pod: "sleepers".into(),
            }
        );

        let podman =
            container_info(&config(), &spec(&[("io.container.manager", "libpod")])).unwrap();
        assert_eq!(podman.engine.as_str(), "Podman");
        assert_eq!(podman.name, "app_sleepers_kcr-test_uid_0");

        let crio = container_info(
            &config(),
            &spec(&[
                ("io.container.manager", "cri-o"),
                ("io.kubernetes.cri-o.Metadata", r#"{"name":"counter"}"#),
                (
                    "io.kubernetes.cri-o.Created",
                    "2025-05-22T14:31:24.818422898Z",
                ),
                ("io.kubernetes.cri-o.IP.0", "10.0.0.70"),
                ("io.kubernetes.pod.name", "counters"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (crio.name.as_str(), crio.created.as_str(), crio.ip.as_str()),
            ("counter", "2025-05-22T14:31:24.818422898Z", "10.0.0.70")
        );
        assert_eq!(crio.engine.as_str(), "CRI-O");

        let err = container_info(&config(), &spec(&[("io.container.manager", "cri-o")]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "spec.dump has an invalid io.kubernetes.cri-o.Metadata annotation"
        );

        let mut no_time = config();
        no_time.created_time = None;
        assert_eq!(
            container_info(&no_time, &Spec::default()).unwrap().created,
            GO_ZERO_TIME
        );
    }
}
