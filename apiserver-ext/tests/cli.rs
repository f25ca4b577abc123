#![allow(clippy::unwrap_used)]
//! The binary's command line: `--help` documents every flag (snapshot), bad
//! options are listed at once, and startup failures say what is wrong.

use std::process::Command;

use apiserver_ext::Options;
use clap::CommandFactory;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_checkpoint-apiserver"))
        .args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", "/nonexistent")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn help_documents_every_flag() {
    let (code, help, _) = run(&["--help"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("help", help);
    let cmd = Options::command();
    for arg in cmd.get_arguments() {
        if let Some(long) = arg.get_long() {
            assert!(
                help.contains(&format!("--{long}")),
                "--{long} is not in --help"
            );
            assert!(
                arg.get_long_help().or(arg.get_help()).is_some(),
                "--{long} has no help text"
            );
        }
    }
    for flag in [
        "--secure-port",
        "--bind-address",
        "--tls-cert-file",
        "--tls-private-key-file",
        "--cert-dir",
        "--kubeconfig",
        "--authentication-kubeconfig",
        "--authorization-kubeconfig",
        "--client-ca-file",
        "--requestheader-client-ca-file",
        "--requestheader-allowed-names",
        "--requestheader-username-headers",
        "--requestheader-group-headers",
        "--requestheader-extra-headers-prefix",
        "--kubelet-preferred-address-types",
        "--kubelet-port",
        "--kubelet-certificate-authority",
        "--kubelet-insecure-tls",
        "--kubelet-client-certificate",
        "--kubelet-client-key",
        "--max-timeout-seconds",
        "--feature-gates",
        "--max-checkpoints-per-node",
        "--node-queue-timeout",
        "--max-request-body-bytes",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}

#[test]
fn invalid_options_are_listed_at_once() {
    let (code, _, err) = run(&[
        "--feature-gates=ContainerCheckpointAPI=maybe",
        "--kubelet-insecure-tls",
        "--kubelet-certificate-authority=/x",
        "--tls-cert-file=/x",
    ]);
    assert_eq!(code, 1, "{err}");
    insta::assert_snapshot!("invalid_options_stderr", err);
}

#[test]
fn missing_kubeconfig_is_a_clear_error() {
    let (code, _, err) = run(&["--kubeconfig=/nonexistent/kubeconfig", "--secure-port=0"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("failed to configure checkpoint-apiserver"),
        "{err}"
    );
    assert!(
        err.contains("failed to load kubeconfig /nonexistent/kubeconfig"),
        "{err}"
    );
}
