#![allow(clippy::unwrap_used)]
//! checkpoint-apiserver run exactly the way `deploy/` runs it (issue 11,
//! point 1): the Deployment's arguments and environment (rendered by
//! `kubectl kustomize deploy/`), as its `runAsUser`/`runAsGroup` with every
//! capability dropped and no new privileges, on a read-only root file
//! system, `--cert-dir` on an emptyDir as the kubelet makes it (root-owned,
//! 0777: not ours), and the in-cluster service account (token, CA,
//! `KUBERNETES_SERVICE_*`) of a kube-apiserver-standin that enforces
//! `deploy/`'s own RBAC. Only `--secure-port` changes, so tests can run side
//! by side. The server must become ready — before the fix it could not chmod
//! the emptyDir and exited. Needs root (see `kcr_testkit::sandbox`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kcr_testkit::harness::{Process, free_port, wait_ready, write_file};
use kcr_testkit::kustomize::{Rendered, volume};
use kcr_testkit::sandbox::{ManifestContainer, Sandbox};
use kcr_testkit::standin;

/// A directory everyone may read, as the files of a mounted secret.
fn public_dir(path: &Path) -> PathBuf {
    std::fs::create_dir_all(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_owned()
}

fn public_file(dir: &Path, name: &str, text: &str) {
    let p = write_file(dir, name, text);
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployment_becomes_ready_as_non_root_on_a_read_only_root() {
    assert!(
        kcr_testkit::tmpfs::is_root(),
        "this test runs the binary as the Deployment's user in a mount namespace: run the tests as root, as CI does"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let rendered = Rendered::of("deploy").unwrap_or_else(|e| panic!("{e}"));
    let deployment = rendered
        .get("Deployment", "checkpoint-apiserver")
        .unwrap_or_else(|e| panic!("{e}"));
    let container = ManifestContainer::from_workload(deployment, &[]).unwrap();
    assert_ne!(container.run_as_user, 0, "the Deployment runs as non-root");

    // The cluster: deploy/'s RBAC, the service account's token.
    let tmp = tempfile::tempdir().unwrap();
    let dir = public_dir(tmp.path());
    let sa = "system:serviceaccount:kcr-system:checkpoint-apiserver";
    write_file(
        &dir,
        "tokens.csv",
        &format!(
            "sa-token,{sa},uid-sa,\"system:serviceaccounts,system:serviceaccounts:kcr-system\"\n"
        ),
    );
    // kcr-system exists (deploy/namespace is applied first): the server
    // creates the shim CA Secret there (--shim-signer=true).
    write_file(
        &dir,
        "objects.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: kcr-system}\n",
    );
    let mut config = standin::Config::new(dir.join("apiserver-pki"));
    config.token_auth_file = Some(dir.join("tokens.csv"));
    config.policy_files = vec![root.join("deploy/base/rbac.yaml")];
    config.object_files = vec![dir.join("objects.yaml")];
    let api = standin::start(config).await.unwrap();

    // The pod's /run: the service account secret as the kubelet mounts it.
    let run = public_dir(&dir.join("run"));
    let secret = public_dir(&run.join("secrets/kubernetes.io/serviceaccount"));
    public_file(&secret, "token", "sa-token");
    public_file(&secret, "ca.crt", &api.pki.server_ca);
    public_file(&secret, "namespace", "kcr-system");

    let port = free_port();
    let container = container.with_arg("secure-port", &port.to_string());
    let mut sandbox = Sandbox::new(container.run_as_user, container.run_as_group)
        .bind(&run, "/run")
        .tmpfs("/tmp");
    for (name, path) in &container.volume_mounts {
        assert!(
            volume(deployment, name)
                .unwrap_or_else(|| panic!("no volume {name}"))
                .get("emptyDir")
                .is_some(),
            "volume {name} is not an emptyDir: extend this test"
        );
        sandbox = sandbox.empty_dir(path);
    }
    for (k, v) in &container.env {
        sandbox = sandbox.env(k, v);
    }
    let sandbox = sandbox
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", &api.addr.port().to_string())
        .env("HOSTNAME", "checkpoint-apiserver-0");
    let mut server = Process::spawn(
        &mut sandbox.command(
            Path::new(env!("CARGO_BIN_EXE_checkpoint-apiserver")),
            &container.args,
        ),
        &dir.join("apiserver.log"),
    )
    .unwrap();

    wait_ready(port, None, "/readyz", Duration::from_secs(30), || {
        server.alive()
    })
    .await
    .unwrap_or_else(|e| panic!("checkpoint-apiserver did not become ready: {e}"));
    // The self-signed pair went to a directory of its own inside the emptyDir.
    let log = server.log();
    assert!(
        log.contains("generated a self-signed serving certificate")
            && log.contains("/tmp/certs/apiserver"),
        "{log}"
    );
    // With deploy/'s RBAC it created the shim CA and runs the signer.
    let secrets = api.state.store.get(
        kcr_testkit::standin::resources::lookup("", "v1", "secrets").unwrap(),
        "kcr-system",
        "checkpoint-shim-ca",
    );
    assert!(secrets.is_ok(), "no shim CA Secret\n{log}");
    assert!(log.contains("shim certificate signer starting"), "{log}");
    let status = server.terminate().await.unwrap();
    assert!(status.success(), "{status}\n{}", server.log());
    api.stop().await;
}

#[test]
fn every_path_the_deployment_writes_is_a_volume() {
    // The root file system is read-only: the only directory the server may
    // write, --cert-dir, must be a volume of the pod.
    let rendered = Rendered::of("deploy").unwrap_or_else(|e| panic!("{e}"));
    let deployment = rendered
        .get("Deployment", "checkpoint-apiserver")
        .unwrap_or_else(|e| panic!("{e}"));
    let container = ManifestContainer::from_workload(deployment, &[]).unwrap();
    let cert_dir = container
        .args
        .iter()
        .find_map(|a| a.strip_prefix("--cert-dir="))
        .expect("the Deployment passes --cert-dir");
    assert!(
        container.volume_mounts.iter().any(|(_, p)| p == cert_dir),
        "--cert-dir={cert_dir} is not a volume mount"
    );
    let security = &deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["capabilities"]["drop"][0], "ALL");
}
