//! The reader on a REAL archive: containerd 2.x + runc + CRIU checkpoint a container through
//! CRI (kcr-testkit's private containerd), and everything the test knows about that
//! container must come back: name, pod, image, ID, runtime, the three processes with
//! their commands, plausible CRIU statistics, and sizes equal to the entries' sizes.
//! A missing prerequisite fails the test with a message naming it (`hack/setup.sh`
//! installs everything); nothing is skipped.

use std::time::Duration;

use checkpoint_archive::{Engine, Options, TaskState, inspect_path};
use kcr_testkit::archive::summarize;
use kcr_testkit::containerd::{Containerd, Options as ContainerdOptions};
use kcr_testkit::cri::{ContainerSpec, ContainerState, PodSpec};

const SCRIPT: &str = "sleep 1001 & sleep 1002 & wait";

#[tokio::test]
async fn a_real_containerd_archive_reads_back_what_was_running() {
    let containerd = match Containerd::start(ContainerdOptions::default()).await {
        Ok(c) => c,
        Err(e) => panic!("the CRI harness cannot start (run hack/setup.sh): {e}"),
    };
    let mut runner = containerd.pod_runner().await.expect("CRI client");
    let pod = PodSpec::new("kcr-test", "sleepers");
    let running = runner
        .run_pod(
            &pod,
            &[ContainerSpec::new("app").with_command(["/bin/sh", "-c", SCRIPT])],
        )
        .await
        .unwrap_or_else(|e| panic!("run pod: {e}\n{}", containerd.log_tail(20)));
    let id = running.container_id("app").expect("app").to_owned();
    runner
        .cri()
        .wait_for_state(
            &id,
            ContainerState::ContainerRunning,
            Duration::from_secs(10),
        )
        .await
        .expect("running");
    // The shell starts both children at once; give it a moment to have done so.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let out = tempfile::tempdir().expect("tempdir");
    let archive = out.path().join("checkpoint-sleepers_kcr-test-app.tar");
    runner
        .cri()
        .checkpoint(&id, &archive, 0)
        .await
        .unwrap_or_else(|e| panic!("CheckpointContainer: {e}\n{}", containerd.log_tail(20)));

    let options = Options {
        stats: true,
        ps_tree: true,
        cmdline: true,
        ..Options::default()
    };
    let started = std::time::Instant::now();
    let i = inspect_path(&archive, &options).expect("inspect the real archive");
    eprintln!("inspected in {:?}: {i:#?}", started.elapsed());

    assert_eq!(i.container.name, "app");
    assert_eq!(i.container.pod, "sleepers");
    assert_eq!(i.container.namespace, "kcr-test");
    assert_eq!(i.container.engine, Engine::Containerd);
    assert_eq!(i.config.id, id);
    assert_eq!(i.config.rootfs_image_name, kcr_testkit::APP_IMAGE);
    assert_eq!(i.config.oci_runtime, "io.containerd.runc.v2");
    assert!(
        i.container.created.len() == 20 && i.container.created.ends_with('Z'),
        "{}",
        i.container.created
    );
    let checkpointed = i.checkpointed.as_deref().expect("checkpointedTime");
    assert!(checkpointed >= i.container.created.as_str());

    // Sizes: exactly the entries' sizes, as an independent tar listing sees them.
    let listing = summarize(&archive).expect("tar listing");
    let sum = |pred: &dyn Fn(&str) -> bool| -> u64 {
        listing
            .files
            .iter()
            .filter(|f| pred(&f.path))
            .map(|f| f.size)
            .sum()
    };
    assert_eq!(
        i.sizes.checkpoint_size,
        sum(&|p| p.starts_with("checkpoint/"))
    );
    assert_eq!(
        i.sizes.pages_size,
        sum(&|p| p.starts_with("checkpoint/pages-"))
    );
    assert_eq!(i.sizes.rootfs_diff_size, sum(&|p| p == "rootfs-diff.tar"));
    assert_eq!(i.sizes.archive_size, listing.size);
    assert!(i.sizes.pages_size > 0);

    // CRIU's statistics: non-zero, consistent with each other and with the pages written.
    let s = i.stats.expect("stats");
    assert!(s.freezing_time > 0 && s.frozen_time > 0, "{s:?}");
    assert!(s.frozen_time >= s.memdump_time, "{s:?}");
    assert!(s.memdump_time > 0 && s.memwrite_time > 0, "{s:?}");
    assert!(s.frozen_time < 60_000_000, "frozen a minute? {s:?}");
    assert!(
        s.pages_scanned >= s.pages_written && s.pages_written > 0,
        "{s:?}"
    );
    assert_eq!(s.pages_written * 4096, i.sizes.pages_size, "{s:?}");

    // The process tree: the shell and its two sleeps, with their command lines.
    let tree = i.process_tree.expect("tree");
    let got: Vec<(usize, &str, Option<&str>)> = tree
        .processes
        .iter()
        .map(|p| (p.depth, p.comm.as_str(), p.cmdline.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            (0, "sh", Some(format!("/bin/sh -c {SCRIPT}").as_str())),
            (1, "sleep", Some("sleep 1001")),
            (1, "sleep", Some("sleep 1002")),
        ],
        "{tree:#?}"
    );
    let root = &tree.processes[0];
    assert_eq!(
        (root.pid, root.ppid),
        (1, 0),
        "PID 1 in the pod's namespace"
    );
    assert!(
        tree.processes
            .iter()
            .all(|p| p.state == TaskState::Alive && !p.cmdline_truncated)
    );
    assert!(tree.processes[1].pid < tree.processes[2].pid);
    assert!(started.elapsed() < Duration::from_secs(2));
}
