//! The project's kustomizations (`deploy/`, `deploy/shim`, ...) rendered by
//! the REAL `kubectl kustomize`, as JSON documents, for the manifest tests of
//! `apiserver-ext` and `kubelet-shim`.
//!
//! ```no_run
//! use kcr_testkit::kustomize::Rendered;
//!
//! let deploy = Rendered::of("deploy").unwrap();
//! let dep = deploy.get("Deployment", "checkpoint-apiserver").unwrap();
//! assert_eq!(dep["spec"]["replicas"], 2);
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubectl is required on PATH to render {dir}: {source}")]
    Spawn {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("kubectl kustomize {dir} failed: {stderr}")]
    Failed { dir: PathBuf, stderr: String },
    #[error("kubectl kustomize {dir} printed a document that is not YAML: {reason}")]
    Parse { dir: PathBuf, reason: String },
    #[error("{dir} renders no {kind} {name}")]
    Missing {
        dir: PathBuf,
        kind: String,
        name: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The repository's root (the workspace folder).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One kustomization, rendered.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The folder rendered.
    pub dir: PathBuf,
    /// `kubectl kustomize` output, as printed (for snapshots).
    pub yaml: String,
    /// Its documents.
    pub docs: Vec<Value>,
}

/// An object's identity: (apiVersion group, kind, namespace, name).
pub type ObjectKey = (String, String, String, String);

impl Rendered {
    /// Render `dir`, relative to the repository root.
    pub fn of(dir: &str) -> Result<Self> {
        let dir = repo_root().join(dir);
        let out = Command::new("kubectl")
            .arg("kustomize")
            .arg(&dir)
            .output()
            .map_err(|source| Error::Spawn {
                dir: dir.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(Error::Failed {
                dir,
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        let yaml = String::from_utf8_lossy(&out.stdout).into_owned();
        let docs = yaml
            .split("\n---\n")
            .filter(|d| !d.trim().is_empty())
            .map(serde_saphyr::from_str::<Value>)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Parse {
                dir: dir.clone(),
                reason: e.to_string(),
            })?;
        Ok(Self { dir, yaml, docs })
    }

    /// The object of `kind` named `name`.
    pub fn get(&self, kind: &str, name: &str) -> Result<&Value> {
        self.docs
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .ok_or_else(|| Error::Missing {
                dir: self.dir.clone(),
                kind: kind.into(),
                name: name.into(),
            })
    }

    /// Every object of `kind`.
    pub fn all(&self, kind: &str) -> Vec<&Value> {
        self.docs.iter().filter(|d| d["kind"] == kind).collect()
    }

    /// The identities of the objects, as `kubectl delete -k` would delete them.
    pub fn keys(&self) -> BTreeSet<ObjectKey> {
        self.docs.iter().map(key).collect()
    }
}

/// The pod template's volume named `name` of a workload (Deployment,
/// DaemonSet, ...), if it declares one.
pub fn volume<'a>(workload: &'a Value, name: &str) -> Option<&'a Value> {
    workload["spec"]["template"]["spec"]["volumes"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == name)
}

/// (group, kind, namespace, name) of one object.
pub fn key(doc: &Value) -> ObjectKey {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let api_version = s(&doc["apiVersion"]);
    let group = api_version
        .rsplit_once('/')
        .map(|(g, _)| g.to_owned())
        .unwrap_or_default();
    (
        group,
        s(&doc["kind"]),
        s(&doc["metadata"]["namespace"]),
        s(&doc["metadata"]["name"]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_group_kind_namespace_and_name() {
        let doc = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "ns"}});
        assert_eq!(
            key(&doc),
            ("apps".into(), "Deployment".into(), "ns".into(), "d".into())
        );
        let core =
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}});
        assert_eq!(
            key(&core),
            (String::new(), "Namespace".into(), String::new(), "n".into())
        );
    }
}
