//! The project's manifests as `kubectl kustomize` renders them (the REAL
//! kubectl, as `kubectl apply -k` would), as JSON documents to check.

use std::path::Path;
use std::process::Command;

/// `kubectl kustomize dir` (panics with the reason when it cannot render).
pub fn render(dir: &Path) -> String {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "kubectl is required on PATH to render {}: {e}",
                dir.display()
            )
        });
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("kustomize writes UTF-8")
}

/// The documents of a rendered manifest.
pub fn documents(yaml: &str) -> Vec<serde_json::Value> {
    yaml.split("\n---\n")
        .map(|doc| {
            serde_saphyr::from_str::<serde_json::Value>(doc)
                .unwrap_or_else(|e| panic!("not YAML ({e}): {doc:.200}"))
        })
        .collect()
}

/// The document of `kind` named `name` (panics when there is none).
pub fn find<'a>(docs: &'a [serde_json::Value], kind: &str, name: &str) -> &'a serde_json::Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("the manifest has no {kind} {name}"))
}

/// The volume of the first container's pod template named `name`.
pub fn volume<'a>(workload: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    workload["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["name"] == name))
        .unwrap_or_else(|| panic!("no volume {name}"))
}
