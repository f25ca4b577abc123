#![allow(clippy::unwrap_used)]
//! Transcripts of the binary: `--help`, and what a user sees for bad flags.

use std::process::Command;

fn shim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_checkpoint-shim"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

#[test]
fn help() {
    let out = shim(&["--help"]);
    assert!(out.status.success());
    insta::assert_snapshot!("help", String::from_utf8(out.stdout).unwrap());
}

#[test]
fn invalid_flags_are_all_reported() {
    let out = shim(&[
        "--node-name=Node_1",
        "--feature-gates=ContainerCheckpoint=maybe",
        "--container-runtime-endpoint=tcp://10.0.0.1:1234",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    insta::assert_snapshot!("invalid_flags", String::from_utf8(out.stderr).unwrap());
}

#[test]
fn version() {
    let out = shim(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("checkpoint-shim {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn sar_without_an_api_server_is_refused_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let root = format!("--root-dir={}", tmp.path().display());
    let out = Command::new(env!("CARGO_BIN_EXE_checkpoint-shim"))
        .args(["--node-name=n1", "--port=0", "--address=127.0.0.1", &root])
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "error: failed to start checkpoint-shim: authorization needs an API server for SubjectAccessReview: give --kubeconfig or run in a pod with a service account (or, for tests only, --authorization-allow-users-for-testing)\n"
    );
}
