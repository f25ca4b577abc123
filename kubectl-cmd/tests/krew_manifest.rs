//! `plugins/checkpoint.yaml` is a well-formed krew manifest for this crate's binaries.
#![allow(clippy::unwrap_used)]

use serde_json::Value;

#[test]
fn krew_manifest_names_our_binaries_and_version() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/checkpoint.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let m: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(
        m["apiVersion"],
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(m["kind"], "Plugin");
    // krew: the manifest's file name is the plugin name, `kubectl <name>` runs it
    assert_eq!(m["metadata"]["name"], "checkpoint");
    let spec = &m["spec"];
    assert_eq!(spec["version"], format!("v{}", env!("CARGO_PKG_VERSION")));
    assert!(spec["shortDescription"].as_str().unwrap().len() <= 50);
    assert!(spec["homepage"].as_str().unwrap().starts_with("https://"));
    let platforms = spec["platforms"].as_array().unwrap();
    assert_eq!(platforms.len(), 4);
    for p in platforms {
        assert_eq!(p["bin"], "kubectl-checkpoint");
        let sha = p["sha256"].as_str().unwrap();
        assert!(
            sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
            "{sha}"
        );
        let uri = p["uri"].as_str().unwrap();
        let (os, arch) = (
            p["selector"]["matchLabels"]["os"].as_str().unwrap(),
            p["selector"]["matchLabels"]["arch"].as_str().unwrap(),
        );
        assert!(
            uri.ends_with(&format!(
                "_v{}_{os}_{arch}.tar.gz",
                env!("CARGO_PKG_VERSION")
            )),
            "{uri}"
        );
        let files: Vec<&str> = p["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["from"].as_str().unwrap())
            .collect();
        assert_eq!(
            files,
            [
                "kubectl-checkpoint",
                "kubectl_complete-checkpoint",
                "LICENSE"
            ]
        );
    }
}
