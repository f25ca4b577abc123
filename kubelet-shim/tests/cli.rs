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
    let (code, stderr) = start(&[format!("--root-dir={}", tmp.path().display())]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        "error: failed to start checkpoint-shim: authorization needs an API server for SubjectAccessReview: give --kubeconfig or run in a pod with a service account (or, for tests only, --authorization-allow-users-for-testing)\n"
    );
}

/// The shim started with `args` after a valid minimum, outside a pod; its
/// exit code and stderr.
fn start(args: &[String]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_checkpoint-shim"))
        .args(["--node-name=n1", "--port=0", "--address=127.0.0.1"])
        .args(args)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn an_unusable_runtime_socket_is_named_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let root = format!("--root-dir={}", tmp.path().join("kubelet").display());
    let missing = tmp.path().join("missing.sock");
    let file = tmp.path().join("file.sock");
    std::fs::write(&file, "").unwrap();
    for (socket, why) in [
        (
            &missing,
            "it does not exist (is the runtime running, and is its socket mounted?)",
        ),
        (&file, "it is not a unix socket"),
    ] {
        let (code, stderr) = start(&[
            root.clone(),
            "--authorization-allow-users-for-testing=alice".to_owned(),
            format!("--container-runtime-endpoint=unix://{}", socket.display()),
        ]);
        assert_eq!(code, Some(1), "{stderr}");
        assert_eq!(
            stderr,
            format!(
                "error: failed to start checkpoint-shim: cannot use the container runtime socket {} (--container-runtime-endpoint): {why}\n",
                socket.display()
            )
        );
    }
}

#[test]
fn a_runtime_socket_the_shim_may_not_use_is_named_at_start() {
    // As a non-root user (the socket is root's, 0600), as a shim without
    // root would be: permission denied, named.
    assert!(
        kcr_testkit::tmpfs::is_root(),
        "this test runs the shim as another user: run the tests as root, as CI does"
    );
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = tmp.path().join("cri.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600)).unwrap();
    let root = tmp.path().join("kubelet");
    std::fs::create_dir(&root).unwrap();
    std::os::unix::fs::chown(&root, Some(65534), Some(65534)).unwrap();
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
            env!("CARGO_BIN_EXE_checkpoint-shim"),
            "--node-name=n1",
            "--port=0",
            "--address=127.0.0.1",
            "--authorization-allow-users-for-testing=alice",
            &format!("--root-dir={}", root.display()),
            &format!("--container-runtime-endpoint=unix://{}", socket.display()),
        ])
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!(
            "error: failed to start checkpoint-shim: cannot use the container runtime socket {} (--container-runtime-endpoint): permission denied (the shim runs as root next to the kubelet)\n",
            socket.display()
        )
    );
}

#[test]
fn an_unusable_checkpoints_directory_is_named_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let not_a_dir = tmp.path().join("kubelet");
    std::fs::write(&not_a_dir, "").unwrap();
    let (code, stderr) = start(&[
        format!("--root-dir={}", not_a_dir.display()),
        "--authorization-allow-users-for-testing=alice".to_owned(),
        "--container-runtime-endpoint=unix:///nonexistent.sock".to_owned(),
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "error: failed to start checkpoint-shim: cannot use the checkpoints directory {}/checkpoints (<--root-dir>/checkpoints): Not a directory (os error 20)\n",
            not_a_dir.display()
        )
    );
}
