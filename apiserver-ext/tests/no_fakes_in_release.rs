#![allow(clippy::unwrap_used)]
//! The test doubles of `apiserver_ext::testing` (`FakeKubeletClient`,
//! `FakeListers`, `FakeEventRecorder`) are compiled only for this crate's
//! tests and with the `testing` feature. This checks that only tests can
//! turn the feature on: it is not a default feature, and no workspace member
//! asks for it except as a dev-dependency — so a release build of
//! `checkpoint-apiserver` (or of the whole workspace) carries no fake.

use std::path::Path;
use std::process::Command;

#[test]
fn only_tests_turn_on_the_testing_feature() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = meta["packages"].as_array().unwrap();
    let ext = packages
        .iter()
        .find(|p| p["name"] == "apiserver-ext")
        .unwrap();
    assert!(ext["features"].get("testing").is_some());
    assert!(
        !ext["features"]["default"]
            .as_array()
            .is_some_and(|d| d.iter().any(|f| f == "testing")),
        "testing is a default feature"
    );
    let mut asked = Vec::new();
    for p in packages {
        for d in p["dependencies"].as_array().unwrap() {
            if d["name"] == "apiserver-ext"
                && d["features"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f == "testing")
            {
                assert_eq!(
                    d["kind"], "dev",
                    "{} turns on apiserver-ext/testing as a {} dependency",
                    p["name"], d["kind"]
                );
                asked.push(p["name"].as_str().unwrap().to_owned());
            }
        }
    }
    assert_eq!(asked, ["apiserver-ext"], "only this crate's tests");
}
