//! Feature gates, parsed from `--feature-gates=A=true,B=false` as
//! `k8s.io/component-base/featuregate` does.

use std::collections::BTreeMap;

/// The proposal's gate on checkpoint-apiserver (alpha: off by default).
pub const CONTAINER_CHECKPOINT_API: &str = "ContainerCheckpointAPI";
/// KEP-2008's kubelet gate, also honoured by kubelet-shim (beta since 1.30: on by default).
pub const CONTAINER_CHECKPOINT: &str = "ContainerCheckpoint";

/// Gates known to checkpoint-apiserver, with defaults.
pub const APISERVER_GATES: &[(&str, bool)] = &[(CONTAINER_CHECKPOINT_API, false)];
/// Gates known to kubelet-shim, with defaults.
pub const SHIM_GATES: &[(&str, bool)] = &[(CONTAINER_CHECKPOINT, true)];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeatureGateError {
    #[error("unrecognized feature gate: {0}")]
    Unknown(String),
    #[error("missing bool value for {0}")]
    MissingValue(String),
    #[error(
        "invalid value of {name}={value}, err: strconv.ParseBool: parsing {value:?}: invalid syntax"
    )]
    InvalidValue { name: String, value: String },
}

/// A set of known gates and their values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureGates {
    values: BTreeMap<&'static str, bool>,
}

impl FeatureGates {
    /// All gates at their defaults.
    pub fn defaults(known: &[(&'static str, bool)]) -> Self {
        Self {
            values: known.iter().copied().collect(),
        }
    }

    /// Parse a `--feature-gates` value over the defaults.
    pub fn parse(known: &[(&'static str, bool)], spec: &str) -> Result<Self, FeatureGateError> {
        let mut gates = Self::defaults(known);
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, value) = item
                .split_once('=')
                .ok_or_else(|| FeatureGateError::MissingValue(item.to_owned()))?;
            let name = name.trim();
            let key = known
                .iter()
                .map(|(k, _)| *k)
                .find(|k| *k == name)
                .ok_or_else(|| FeatureGateError::Unknown(name.to_owned()))?;
            let value =
                parse_go_bool(value.trim()).ok_or_else(|| FeatureGateError::InvalidValue {
                    name: name.to_owned(),
                    value: value.trim().to_owned(),
                })?;
            gates.values.insert(key, value);
        }
        Ok(gates)
    }

    /// Whether `name` is on; unknown gates are off.
    pub fn enabled(&self, name: &str) -> bool {
        self.values.get(name).copied().unwrap_or(false)
    }

    /// `A=true,B=false`, sorted, for logs and `--help`.
    pub fn to_spec(&self) -> String {
        self.values
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_upstream_maturity() {
        assert!(!FeatureGates::defaults(APISERVER_GATES).enabled(CONTAINER_CHECKPOINT_API));
        assert!(FeatureGates::defaults(SHIM_GATES).enabled(CONTAINER_CHECKPOINT));
    }

    #[test]
    fn parsing() {
        let g = FeatureGates::parse(APISERVER_GATES, "ContainerCheckpointAPI=true").unwrap();
        assert!(g.enabled(CONTAINER_CHECKPOINT_API));
        let g = FeatureGates::parse(SHIM_GATES, " ContainerCheckpoint = false ,").unwrap();
        assert!(!g.enabled(CONTAINER_CHECKPOINT));
        assert_eq!(g.to_spec(), "ContainerCheckpoint=false");
        assert_eq!(
            FeatureGates::parse(SHIM_GATES, "").unwrap(),
            FeatureGates::defaults(SHIM_GATES)
        );
        assert_eq!(
            FeatureGates::parse(SHIM_GATES, "Bogus=true")
                .unwrap_err()
                .to_string(),
            "unrecognized feature gate: Bogus"
        );
        assert!(matches!(
            FeatureGates::parse(SHIM_GATES, "ContainerCheckpoint"),
            Err(FeatureGateError::MissingValue(_))
        ));
        assert!(matches!(
            FeatureGates::parse(SHIM_GATES, "ContainerCheckpoint=yes"),
            Err(FeatureGateError::InvalidValue { .. })
        ));
        // a gate of the other component is unknown here
        assert!(FeatureGates::parse(SHIM_GATES, "ContainerCheckpointAPI=true").is_err());
    }
}
