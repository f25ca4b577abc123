//! `kubectl checkpoint inspect` on a REAL archive: kcr-testkit's private containerd 2.x
//! (runc + CRIU) checkpoints `sh -c 'sleep 1001 & sleep 1002 & wait'` through CRI, and the
//! built plugin, run as kubectl runs it, must report that container: name, image, ID,
//! runtime, three processes with their commands, CRIU statistics, sizes of the real
//! entries. A missing prerequisite fails the test naming it (`hack/setup.sh`); nothing
//! is skipped.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use kcr_testkit::archive::summarize;
use kcr_testkit::containerd::{Containerd, Options};
use kcr_testkit::cri::{ContainerSpec, ContainerState, PodSpec};
use pretty_assertions::assert_eq;

const PLUGIN: &str = env!("CARGO_BIN_EXE_kubectl-checkpoint");
const SCRIPT: &str = "sleep 1001 & sleep 1002 & wait";

#[tokio::test]
async fn inspect_reports_the_checkpointed_container() {
    let containerd = Containerd::start(Options::default())
        .await
        .unwrap_or_else(|e| panic!("the CRI harness cannot start (run hack/setup.sh): {e}"));
    let mut runner = containerd.pod_runner().await.expect("CRI client");
    let pod = PodSpec::new("kcr-test", "sleepers");
    let running = runner
        .run_pod(
            &pod,
            &[ContainerSpec::new("app").with_command(["/bin/sh", "-c", SCRIPT])],
        )
        .await
        .unwrap_or_else(|e| panic!("run pod: {e}\n{}", containerd.log_tail(20)));
    let id = running.container_id("app").unwrap().to_owned();
    runner
        .cri()
        .wait_for_state(
            &id,
            ContainerState::ContainerRunning,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("checkpoint-sleepers_kcr-test-app.tar");
    runner
        .cri()
        .checkpoint(&id, &archive, 0)
        .await
        .unwrap_or_else(|e| panic!("CheckpointContainer: {e}\n{}", containerd.log_tail(20)));
    let a = archive.to_str().unwrap();

    let started = Instant::now();
    let out = Command::new(PLUGIN)
        .args(["inspect", a, "--stats", "--ps-tree-cmd", "-o", "json"])
        .output()
        .unwrap();
    let took = started.elapsed();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("kubectl-checkpoint inspect took {took:?}:\n{v:#}");
    assert_eq!(v["container_name"], "app");
    assert_eq!(v["image"], kcr_testkit::APP_IMAGE);
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["runtime"], "io.containerd.runc.v2");
    assert_eq!(v["engine"], "containerd");

    let listing = summarize(&archive).unwrap();
    let sum = |prefix: &str| -> u64 {
        listing
            .files
            .iter()
            .filter(|f| f.path.starts_with(prefix))
            .map(|f| f.size)
            .sum()
    };
    assert_eq!(v["checkpoint_size"]["total_size"], sum("checkpoint/"));
    assert_eq!(
        v["checkpoint_size"]["memory_pages_size"],
        sum("checkpoint/pages-")
    );
    assert_eq!(
        v["checkpoint_size"]["root_fs_diff_size"],
        sum("rootfs-diff.tar")
    );

    let stats = &v["statistics"];
    for field in [
        "freezing_time",
        "frozen_time",
        "memdump_time",
        "memwrite_time",
        "pages_scanned",
        "pages_written",
    ] {
        assert!(stats[field].as_u64().unwrap() > 0, "{field}: {stats}");
    }
    assert_eq!(
        stats["pages_written"].as_u64().unwrap() * 4096,
        sum("checkpoint/pages-")
    );

    let root = &v["process_tree"];
    assert_eq!(
        (&root["pid"], &root["command"], &root["task_state"]),
        (&1.into(), &"sh".into(), &"Alive".into())
    );
    assert_eq!(root["cmdline"], format!("/bin/sh -c {SCRIPT}"));
    let children: Vec<(String, String)> = root["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["command"].as_str().unwrap().to_owned(),
                c["cmdline"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        children,
        [
            ("sleep".to_owned(), "sleep 1001".to_owned()),
            ("sleep".to_owned(), "sleep 1002".to_owned())
        ]
    );

    // The table: checkpointctl show's columns with this container's values.
    let out = Command::new(PLUGIN).args(["inspect", a]).output().unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[1],
        format!("Displaying container checkpoint data from {a}")
    );
    let header: Vec<&str> = lines[3]
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "CONTAINER",
            "IMAGE",
            "ID",
            "RUNTIME",
            "CREATED",
            "ENGINE",
            "CHKPT SIZE",
            "ROOT FS DIFF SIZE"
        ]
    );
    let row: Vec<&str> = lines[5].split_whitespace().collect();
    assert_eq!(
        row[..4],
        [
            "app",
            kcr_testkit::APP_IMAGE,
            &id[..12],
            "io.containerd.runc.v2"
        ]
    );
    assert_eq!(row[5], "containerd");
}
