//! Proves the harness with the REAL runtime (containerd 2.x + runc + CRIU): a pod with a
//! container, a direct CRI `CheckpointContainer`, the archive check, the container still
//! running, and nothing left behind. A missing prerequisite fails the test with a message
//! naming it (`sudo hack/setup.sh` installs everything).

use std::path::Path;
use std::time::Duration;

use kcr_testkit::archive::check_archive;
use kcr_testkit::containerd::{Containerd, Options};
use kcr_testkit::cri::{ContainerSpec, ContainerState, PodSpec};

fn mounts_under(dir: &Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| Path::new(m).starts_with(dir))
        .map(str::to_owned)
        .collect()
}

fn cgroup_dirs(parent: &str) -> Vec<String> {
    let rel = parent.trim_start_matches('/');
    std::fs::read_dir("/sys/fs/cgroup")
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path().join(rel))
                .chain([Path::new("/sys/fs/cgroup").join(rel)])
                .filter(|p| p.exists())
                .map(|p| p.display().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Processes whose command line mentions `dir` (containerd, its shims).
fn processes_mentioning(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .filter_map(|e| {
                    let pid: u32 = e.file_name().to_string_lossy().parse().ok()?;
                    let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
                    let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                    (cmd.contains(&needle) && alive(pid)).then(|| format!("{pid}: {cmd}"))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn alive(pid: u32) -> bool {
    // A zombie has exited; only its parent's wait is missing.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        })
        .unwrap_or(false)
}

#[tokio::test]
async fn checkpoint_a_running_container_through_cri() {
    let containerd = match Containerd::start(Options::default()).await {
        Ok(c) => c,
        Err(e) => panic!("the CRI harness cannot start: {e}"),
    };
    let dir = containerd.dir().to_owned();
    let cgroup_parent = containerd.cgroup_parent().to_owned();
    let containerd_pid = containerd.pid().expect("containerd runs");

    let mut runner = containerd.pod_runner().await.expect("CRI client");
    let pod = PodSpec::new("kcr-e2e", "counter");
    let running = runner
        .run_pod(&pod, &[ContainerSpec::new("app")])
        .await
        .unwrap_or_else(|e| panic!("run pod: {e}\n{}", containerd.log_tail(20)));
    let id = running
        .container_id("app")
        .expect("app container")
        .to_owned();

    // Let the counter loop run a moment so there is state to dump.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let out = tempfile::tempdir().expect("tempdir");
    let location = out.path().join("checkpoint-counter_kcr-e2e-app.tar");
    runner
        .cri()
        .checkpoint(&id, &location, 0)
        .await
        .unwrap_or_else(|e| panic!("CheckpointContainer: {e}\n{}", containerd.log_tail(20)));

    let report = check_archive(&location, "app").expect("a valid checkpoint archive");
    eprintln!("{}", report.summary());
    assert!(report.criu_images >= 3, "{}", report.summary());
    assert!(report.contains("checkpoint/inventory.img"));
    assert!(
        report
            .files
            .iter()
            .any(|f| f.path.starts_with("checkpoint/pages-")),
        "{}",
        report.summary()
    );
    assert_eq!(report.spec_pod_name.as_deref(), Some("counter"));
    assert_eq!(report.spec_pod_namespace.as_deref(), Some("kcr-e2e"));
    assert_eq!(report.spec_pod_uid.as_deref(), Some(pod.uid.as_str()));
    assert_eq!(report.config_id.as_deref(), Some(id.as_str()));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&location)
            .expect("archive")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "archive readable by others: {mode:o}");
    }

    // CheckpointContainer leaves the container running.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        runner.cri().container_state(&id).await.expect("state"),
        ContainerState::ContainerRunning
    );

    // A second container in the same sandbox (multi-container pods).
    let mut running = running;
    let second = runner
        .start_container(
            &pod,
            &mut running,
            &ContainerSpec::new("sleeper").with_command(["/bin/sleep", "inf"]),
        )
        .await
        .expect("second container");
    runner
        .cri()
        .wait_for_state(
            &second,
            ContainerState::ContainerRunning,
            Duration::from_secs(10),
        )
        .await
        .expect("second container runs");

    drop(runner);
    drop(containerd);

    assert!(!dir.exists(), "temp dir {} left behind", dir.display());
    assert!(mounts_under(&dir).is_empty(), "{:?}", mounts_under(&dir));
    assert!(
        cgroup_dirs(&cgroup_parent).is_empty(),
        "{:?}",
        cgroup_dirs(&cgroup_parent)
    );
    assert!(
        !alive(containerd_pid),
        "containerd {containerd_pid} still runs"
    );
    let left = processes_mentioning(&dir);
    assert!(left.is_empty(), "processes left: {left:?}");
}

/// A caller-given directory (the local stack's mode) is kept; everything else goes.
/// Runs in parallel with the test above: two private containerds side by side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_directory_is_kept_and_stop_reports_a_clean_shutdown() {
    let parent = tempfile::tempdir().expect("tempdir");
    let dir = parent.path().join("stack");
    let containerd = Containerd::start(Options::in_dir(&dir))
        .await
        .unwrap_or_else(|e| panic!("the CRI harness cannot start: {e}"));
    let cgroup_parent = containerd.cgroup_parent().to_owned();
    let mut runner = containerd.pod_runner().await.expect("CRI client");
    let running = runner
        .run_pod(
            &PodSpec::new("default", "web"),
            &[ContainerSpec::new("a"), ContainerSpec::new("b")],
        )
        .await
        .unwrap_or_else(|e| panic!("run pod: {e}\n{}", containerd.log_tail(20)));
    assert_eq!(running.containers.len(), 2);
    let pods = runner
        .cri()
        .find_pods("default", "web")
        .await
        .expect("find");
    assert_eq!(pods.len(), 1);
    assert!(
        !cgroup_dirs(&cgroup_parent).is_empty(),
        "pods use the cgroup parent"
    );
    drop(runner);

    containerd.stop().expect("clean shutdown");
    let dir = std::fs::canonicalize(&dir).expect("directory kept");
    assert!(dir.join("config.toml").is_file());
    assert!(dir.join("containerd.log").is_file());
    assert!(!dir.join("containerd.sock").exists());
    assert!(mounts_under(&dir).is_empty(), "{:?}", mounts_under(&dir));
    assert!(
        cgroup_dirs(&cgroup_parent).is_empty(),
        "{:?}",
        cgroup_dirs(&cgroup_parent)
    );
    let left = processes_mentioning(&dir);
    assert!(left.is_empty(), "processes left: {left:?}");
}
