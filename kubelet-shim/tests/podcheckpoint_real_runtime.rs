#![allow(clippy::unwrap_used)]
//! The PodCheckpoint controller of the real `checkpoint-shim` binary (flags
//! as the DaemonSet passes them, the synchronous endpoint off) against the
//! REAL runtime — a private containerd 2.x with runc and CRIU from
//! `kcr-testkit` — and kube-apiserver-standin with the CRD and the agent's
//! RBAC from deploy/: a PodCheckpoint of a running container ends
//! `CheckpointCompleted` with a real archive whose size and sha256 are the
//! status's, and the container keeps running.
//!
//! A missing prerequisite fails the test with a message naming it;
//! `sudo hack/setup.sh` installs them.

mod agent;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use agent::{Cluster, NS, SHIM_SA, ready_reason};
use api_types::podcheckpoint::reason;
use kcr_testkit::archive::check_archive;
use kcr_testkit::containerd::{Containerd, Options};
use kcr_testkit::cri::{ContainerSpec, ContainerState, PodSpec};
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

/// The shim process; killed and reaped on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_podcheckpoint_of_a_real_container() {
    let containerd = match Containerd::start(Options::default()).await {
        Ok(c) => c,
        Err(e) => panic!("the real-runtime harness cannot start: {e}"),
    };
    let mut runner = containerd.pod_runner().await.expect("CRI client");
    let running = runner
        .run_pod(&PodSpec::new(NS, "counter"), &[ContainerSpec::new("app")])
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot run the test pod: {e}\ncontainerd log:\n{}",
                containerd.log_tail(40)
            )
        });
    let app_id = running.container_id("app").unwrap().to_owned();

    // The pod as the API server knows it: on test-node, running.
    let cluster = Cluster::start().await;
    let pod: api_types::k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "counter", "namespace": NS},
        "spec": {"nodeName": "test-node", "containers": [{"name": "app", "image": kcr_testkit::APP_IMAGE}]},
    }))
    .unwrap();
    cluster
        .pods()
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
    cluster
        .pods()
        .patch_status(
            "counter",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"phase": "Running", "containerStatuses": [{
                "name": "app", "image": kcr_testkit::APP_IMAGE, "imageID": "", "ready": true,
                "restartCount": 0, "containerID": format!("containerd://{app_id}"),
                "state": {"running": {"startedAt": "2026-11-30T07:00:00Z"}}}]}}),
            ),
        )
        .await
        .unwrap();

    // The shim, as the DaemonSet runs it, with its service account's kubeconfig.
    let tmp = tempfile::tempdir().unwrap();
    let kubeconfig = tmp.path().join("shim.kubeconfig");
    std::fs::write(
        &kubeconfig,
        cluster
            .standin
            .kubeconfig(
                SHIM_SA,
                &[
                    "system:serviceaccounts".into(),
                    "system:serviceaccounts:kcr-system".into(),
                ],
            )
            .unwrap(),
    )
    .unwrap();
    let root = tmp.path().join("kubelet");
    let log = tmp.path().join("shim.log");
    let _shim = Child(
        Command::new(env!("CARGO_BIN_EXE_checkpoint-shim"))
            .arg(format!(
                "--container-runtime-endpoint=unix://{}",
                containerd.socket().display()
            ))
            .arg(format!("--root-dir={}", root.display()))
            .arg("--address=127.0.0.1")
            .arg("--port=0")
            .arg("--node-name=test-node")
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg("--podcheckpoint-controller=true")
            .arg("--max-concurrent-podcheckpoints=2")
            .arg("--checkpoint-endpoint=false")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start checkpoint-shim"),
    );

    let created = cluster.create_pc("counter-1", "counter", &[]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let pc = loop {
        let pc = cluster.pcs().get("counter-1").await.unwrap();
        if pc.is_finished() {
            break pc;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not finished in 120 s: {pc:#?}\nshim log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (ready, why, message) = ready_reason(&pc);
    assert_eq!(
        (ready.as_str(), why.as_str()),
        ("True", reason::COMPLETED),
        "{message}\nshim log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let st = pc.status.unwrap();
    assert_eq!(st.node_name.as_deref(), Some("test-node"));
    let [c] = st.checkpointed_containers.as_slice() else {
        panic!("{st:#?}")
    };
    assert_eq!(c.container_id, format!("containerd://{app_id}"));
    let archive = c.archive.as_ref().unwrap();
    let uid = created.metadata.uid.unwrap();
    assert!(
        archive
            .path
            .starts_with(&format!("{uid}/checkpoint-counter_{NS}-app-"))
    );
    let file = root.join("checkpoints").join(&archive.path);
    let (size, sha) = kubelet_shim::controller::archives::digest(&file).unwrap();
    assert_eq!(
        (archive.size_bytes, archive.sha256.as_str()),
        (size as i64, sha.as_str())
    );
    let report = check_archive(Path::new(&file), "app").unwrap();
    assert_eq!(report.size, size);
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let mut cri = containerd.cri().await.unwrap();
    assert_eq!(
        cri.container_state(&app_id).await.unwrap(),
        ContainerState::ContainerRunning
    );
    assert!(
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("PodCheckpoint controller starting")
    );
}
