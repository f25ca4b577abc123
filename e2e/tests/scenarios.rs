//! The end-to-end scenarios (issue 6). Each needs a cluster described by
//! `KCR_E2E_CONFIG`; without one every scenario fails saying so.
//! Scenarios share the cluster (gates, the APIService), so they run one at a
//! time: `cargo test -p e2e -- --test-threads=1` (a lock enforces it anyway).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use api_types::ContainerCheckpoint;
use e2e::{Config, PodSpec, Run, kubectl, kubectl_as, parse_five_lines, run_command};

static LOCK: Mutex<()> = Mutex::new(());
static CONFIG: OnceLock<Config> = OnceLock::new();

fn setup() -> (MutexGuard<'static, ()>, &'static Config) {
    let guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let cfg = CONFIG.get_or_init(|| Config::from_env().unwrap_or_else(|e| panic!("{e}")));
    (guard, cfg)
}

fn pod(cfg: &Config, name: &str, containers: &[&str]) -> PodSpec {
    PodSpec {
        namespace: cfg.namespace.clone(),
        name: name.into(),
        containers: containers.iter().map(|c| c.to_string()).collect(),
        annotations: BTreeMap::new(),
        phase: "Running".into(),
    }
}

/// Create the pod unless it exists already (scenarios reuse pods).
fn ensure_pod(cfg: &Config, spec: &PodSpec) {
    let get = kubectl(
        cfg,
        &[
            "get",
            "pod",
            "-n",
            &spec.namespace,
            &spec.name,
            "-o",
            "name",
        ],
    )
    .unwrap();
    if get.ok() {
        return;
    }
    let json = serde_json::to_vec(spec).unwrap();
    run_command("createPod", &cfg.commands.create_pod, &[], Some(&json))
        .unwrap_or_else(|e| panic!("{e}"));
}

fn checkpoint(cfg: &Config, args: &[&str]) -> Run {
    let mut all = vec!["checkpoint", "-n", cfg.namespace.as_str()];
    all.extend_from_slice(args);
    kubectl(cfg, &all).unwrap()
}

fn assert_running(cfg: &Config, pod: &str, container: &str) {
    run_command(
        "containerRunning",
        &cfg.commands.container_running,
        &[&cfg.namespace, pod, container],
        None,
    )
    .unwrap_or_else(|e| {
        panic!("container {pod}/{container} is not running after the checkpoint: {e}")
    });
}

fn archives(cfg: &Config) -> BTreeSet<PathBuf> {
    let Some(dir) = &cfg.node_checkpoints_dir else {
        return BTreeSet::new();
    };
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

/// Check the archive on the node when the config says it can be read here.
fn assert_archive(cfg: &Config, path: &str, container: &str) {
    let Some(dir) = &cfg.node_checkpoints_dir else {
        return;
    };
    let path = Path::new(path);
    assert!(
        path.starts_with(dir),
        "archive {} is not under {}",
        path.display(),
        dir.display()
    );
    let meta = std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("archive {} on the node: {e}", path.display()));
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "archive mode");
    kcr_testkit::archive::check_archive(path, container)
        .unwrap_or_else(|e| panic!("archive check: {e}"));
}

fn assert_failed(run: &Run, needle: &str) {
    assert_eq!(run.code, Some(1), "expected exit 1\n{run}");
    assert!(
        run.stdout.is_empty(),
        "nothing on stdout when it fails\n{run}"
    );
    // kubectl's two shapes: `error: ...` and, for failed reads of API
    // objects, `Error from server (Reason): ...`
    assert!(
        run.stderr.starts_with("error: ") || run.stderr.starts_with("Error from server ("),
        "kubectl-style error\n{run}"
    );
    assert!(
        run.stderr.contains(needle),
        "stderr should contain {needle:?}\n{run}"
    );
}

const SINGLE: &str = "e2e-single";
const MULTI: &str = "e2e-multi";

#[test]
fn s01_single_container_pod() {
    let (_g, cfg) = setup();
    ensure_pod(cfg, &pod(cfg, SINGLE, &["app"]));
    let run = checkpoint(cfg, &[SINGLE]);
    assert!(run.ok(), "{run}");
    let five = parse_five_lines(&run.stdout)
        .unwrap_or_else(|| panic!("not the proposal's five lines:\n{run}"));
    assert_eq!(five.namespace, cfg.namespace);
    assert_eq!(five.pod, SINGLE);
    assert_eq!(five.container, "app");
    assert!(!five.node.is_empty());
    assert!(five.archive.ends_with(".tar"), "{}", five.archive);
    assert_archive(cfg, &five.archive, "app");
    assert_running(cfg, SINGLE, "app");
}

#[test]
fn s02_multi_container_pod() {
    let (_g, cfg) = setup();
    let mut spec = pod(cfg, MULTI, &["app", "sidecar"]);
    spec.annotations.insert(
        "kubectl.kubernetes.io/default-container".into(),
        "sidecar".into(),
    );
    ensure_pod(cfg, &spec);

    let run = checkpoint(cfg, &[MULTI, "-c", "app"]);
    let five = parse_five_lines(&run.stdout).unwrap_or_else(|| panic!("-c app:\n{run}"));
    assert_eq!(five.container, "app");
    assert_archive(cfg, &five.archive, "app");

    let run = checkpoint(cfg, &[MULTI]);
    let five = parse_five_lines(&run.stdout).unwrap_or_else(|| panic!("default container:\n{run}"));
    assert_eq!(
        five.container, "sidecar",
        "the default-container annotation is honoured"
    );
    assert_archive(cfg, &five.archive, "sidecar");

    let before = archives(cfg);
    let run = checkpoint(cfg, &[MULTI, "-c", "nope"]);
    assert_failed(&run, "nope");
    assert!(
        run.stderr.contains("app") && run.stderr.contains("sidecar"),
        "the server's 400 lists the containers\n{run}"
    );
    assert_eq!(
        archives(cfg),
        before,
        "nothing written for an unknown container"
    );
    assert_running(cfg, MULTI, "app");
    assert_running(cfg, MULTI, "sidecar");
}

#[test]
fn s03_json_and_yaml_output() {
    let (_g, cfg) = setup();
    ensure_pod(cfg, &pod(cfg, SINGLE, &["app"]));
    let run = checkpoint(cfg, &[SINGLE, "-o", "json"]);
    assert!(run.ok(), "{run}");
    let obj: ContainerCheckpoint =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{run}"));
    assert_eq!(obj.kind, "ContainerCheckpoint");
    assert_eq!(obj.spec.pod_name, SINGLE);
    assert_eq!(obj.spec.container, "app");
    assert_archive(cfg, &obj.status.archive_path, "app");

    let run = checkpoint(cfg, &[SINGLE, "-o", "yaml"]);
    assert!(run.ok(), "{run}");
    let obj: ContainerCheckpoint =
        serde_saphyr::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{run}"));
    assert_eq!(
        obj.metadata.namespace.as_deref(),
        Some(cfg.namespace.as_str())
    );
    assert!(obj.status.completion_time.0 >= obj.status.start_time.0);
    assert_archive(cfg, &obj.status.archive_path, "app");
}

#[test]
fn s04_user_without_rights_is_forbidden() {
    let (_g, cfg) = setup();
    ensure_pod(cfg, &pod(cfg, SINGLE, &["app"]));
    let before = archives(cfg);
    let run = kubectl_as(
        cfg,
        &cfg.kubectl,
        &cfg.viewer_kubeconfig,
        &["checkpoint", "-n", &cfg.namespace, SINGLE],
    )
    .unwrap();
    assert_failed(&run, "forbidden");
    assert!(run.stderr.contains("User \"viewer\""), "{run}");
    assert!(!run.stderr.contains(".tar"), "no archive path leaks\n{run}");
    assert_eq!(archives(cfg), before, "nothing written on the node");
}

/// Issue 10: a user without any rights is told which right checkpointing
/// needs and which role grants it, not only that pods cannot be read.
#[test]
fn s11_user_without_any_rights_is_told_the_right() {
    let (_g, cfg) = setup();
    ensure_pod(cfg, &pod(cfg, SINGLE, &["app"]));
    let before = archives(cfg);
    let run = kubectl_as(
        cfg,
        &cfg.kubectl,
        &cfg.no_rights_kubeconfig,
        &["checkpoint", "-n", &cfg.namespace, SINGLE],
    )
    .unwrap();
    assert_failed(&run, "forbidden");
    assert!(run.stderr.contains("create pods/checkpoint"), "{run}");
    assert!(run.stderr.contains("checkpoint-creator"), "{run}");
    assert_eq!(archives(cfg), before, "nothing written on the node");
}

#[test]
fn s05_missing_and_not_running_pods() {
    let (_g, cfg) = setup();
    let run = checkpoint(cfg, &["e2e-ghost"]);
    assert_failed(&run, "pods \"e2e-ghost\" not found");

    let mut pending = pod(cfg, "e2e-pending", &["app"]);
    pending.phase = "Pending".into();
    ensure_pod(cfg, &pending);
    let run = checkpoint(cfg, &["e2e-pending"]);
    assert_failed(
        &run,
        "cannot checkpoint a container in a non-running pod; current phase is Pending",
    );
}

#[test]
fn s06_feature_gates_toggled() {
    let (_g, cfg) = setup();
    ensure_pod(cfg, &pod(cfg, SINGLE, &["app"]));
    let gate = |cmd: &Vec<String>, what: &str, on: bool| {
        run_command(what, cmd, &[if on { "true" } else { "false" }], None)
            .unwrap_or_else(|e| panic!("{e}"));
    };

    gate(&cfg.commands.extension_gate, "extensionGate", false);
    let run = checkpoint(cfg, &[SINGLE]);
    gate(&cfg.commands.extension_gate, "extensionGate", true);
    assert_failed(
        &run,
        "checkpointing is disabled on this cluster (feature gate ContainerCheckpointAPI on checkpoint-apiserver)",
    );

    gate(&cfg.commands.node_gate, "nodeGate", false);
    let run = checkpoint(cfg, &[SINGLE]);
    gate(&cfg.commands.node_gate, "nodeGate", true);
    assert_failed(
        &run,
        "does not serve the checkpoint API (feature gate ContainerCheckpoint)",
    );
    assert!(
        run.stderr.contains("on node "),
        "the message names the node\n{run}"
    );

    let run = checkpoint(cfg, &[SINGLE]);
    assert!(run.ok(), "both gates back on: works again\n{run}");
    assert!(parse_five_lines(&run.stdout).is_some(), "{run}");
}

#[test]
fn s07_extension_absent() {
    let (_g, cfg) = setup();
    ensure_pod(cfg, &pod(cfg, SINGLE, &["app"]));
    run_command("removeExtension", &cfg.commands.remove_extension, &[], None)
        .unwrap_or_else(|e| panic!("{e}"));
    let run = checkpoint(cfg, &[SINGLE]);
    run_command(
        "restoreExtension",
        &cfg.commands.restore_extension,
        &[],
        None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_failed(
        &run,
        "this cluster does not serve checkpoints: install the checkpoint extension",
    );
    let run = checkpoint(cfg, &[SINGLE]);
    assert!(run.ok(), "restored extension works again\n{run}");
}

#[test]
fn s08_version_skew() {
    let (_g, cfg) = setup();
    ensure_pod(cfg, &pod(cfg, SINGLE, &["app"]));
    let dir = cfg.versions_dir().unwrap();
    let mut outputs = Vec::new();
    for minor in &cfg.kubectl_minors {
        let bin = dir.join(format!("kubectl.1.{minor}"));
        assert!(
            bin.is_file(),
            "kubectl 1.{minor} is missing: {} (installed by the google-cloud-sdk package)",
            bin.display()
        );
        let run = kubectl_as(
            cfg,
            &bin,
            &cfg.kubeconfig,
            &["checkpoint", "-n", &cfg.namespace, SINGLE],
        )
        .unwrap();
        assert!(run.ok(), "kubectl 1.{minor}:\n{run}");
        let five =
            parse_five_lines(&run.stdout).unwrap_or_else(|| panic!("kubectl 1.{minor}:\n{run}"));
        assert_archive(cfg, &five.archive, "app");
        outputs.push((minor, FiveLinesNoArchive::from(&five)));
    }
    let first = &outputs[0].1;
    for (minor, out) in &outputs {
        assert_eq!(
            out, first,
            "kubectl 1.{minor} printed other output than 1.{}",
            outputs[0].0
        );
    }
}

#[derive(Debug, PartialEq, Eq)]
struct FiveLinesNoArchive(String, String, String, String);

impl From<&e2e::FiveLines> for FiveLinesNoArchive {
    fn from(f: &e2e::FiveLines) -> Self {
        Self(
            f.node.clone(),
            f.namespace.clone(),
            f.pod.clone(),
            f.container.clone(),
        )
    }
}

/// Issue 10: checkpoints of one container one after the other get archives
/// of their own, in seconds of their own: the extension sends the next one
/// no earlier than 1 s after the node answered, so even a kubelet (names to
/// the second, overwritten; the local stack's node-local behaves so, with
/// checkpoint-shim's --kubelet-archive-names-for-testing) never reuses a name.
#[test]
fn s09_checkpoints_one_after_the_other_never_share_a_name() {
    let (_g, cfg) = setup();
    ensure_pod(cfg, &pod(cfg, SINGLE, &["app"]));
    let mut paths: Vec<String> = Vec::new();
    for _ in 0..3 {
        let run = checkpoint(cfg, &[SINGLE, "-o", "json"]);
        assert!(run.ok(), "{run}");
        let obj: ContainerCheckpoint = serde_json::from_str(&run.stdout).unwrap();
        paths.push(obj.status.archive_path);
    }
    let unique: BTreeSet<_> = paths.iter().collect();
    assert_eq!(
        unique.len(),
        paths.len(),
        "an archive name was reused: {paths:#?}"
    );
    for pair in paths.windows(2) {
        assert_ne!(
            second_of(&pair[0]),
            second_of(&pair[1]),
            "two checkpoints in one second of the node: {paths:#?}"
        );
    }
    for p in &paths {
        assert_archive(cfg, p, "app");
    }
}

/// Issue 10: two `kubectl checkpoint` of one container at the same time
/// both succeed with two archives, on a node that names archives as the
/// kubelet does (node-local of the local stack): the extension queues the
/// second until 1 s after the node answered the first.
#[test]
fn s12_concurrent_checkpoints_of_one_container_give_two_archives() {
    let (_g, cfg) = setup();
    ensure_pod(cfg, &pod(cfg, SINGLE, &["app"]));
    let before = archives(cfg);
    let runs: Vec<Run> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| s.spawn(|| checkpoint(cfg, &[SINGLE, "-o", "json"])))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut paths = Vec::new();
    for run in &runs {
        assert!(run.ok(), "both succeed\n{run}");
        let obj: ContainerCheckpoint =
            serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{run}"));
        paths.push(obj.status.archive_path);
    }
    assert_ne!(paths[0], paths[1], "two archives, not one overwritten");
    assert_ne!(second_of(&paths[0]), second_of(&paths[1]), "{paths:#?}");
    for p in &paths {
        assert_archive(cfg, p, "app");
    }
    if cfg.node_checkpoints_dir.is_some() {
        let new: Vec<_> = archives(cfg).difference(&before).cloned().collect();
        assert_eq!(new.len(), 2, "two files exist on the node: {new:#?}");
    }
    assert_running(cfg, SINGLE, "app");
}

/// The RFC 3339 second in a kubelet-style archive name.
fn second_of(path: &str) -> Option<String> {
    let name = Path::new(path).file_name()?.to_str()?;
    let t = name.find('T')?;
    // YYYY-MM-DDTHH:MM:SSZ: 10 characters before the T, 10 from it
    name.get(t.checked_sub(10)?..t + 10).map(str::to_owned)
}

#[test]
fn s10_slow_runtime_times_out() {
    let (_g, cfg) = setup();
    let slow = cfg
        .slow_pod
        .clone()
        .unwrap_or_else(|| panic!("the config names no slowPod (a pod on a node whose runtime is slow): scenario 10 needs one"));
    let run = kubectl(
        cfg,
        &[
            "checkpoint",
            "-n",
            &slow.namespace,
            &slow.name,
            "-c",
            &slow.container,
            "--timeout",
            "2s",
        ],
    )
    .unwrap();
    assert_failed(&run, "");
    let lower = run.stderr.to_lowercase();
    assert!(
        lower.contains("timed out") || lower.contains("timeout") || lower.contains("time allotted"),
        "a Timeout message\n{run}"
    );
    assert!(
        run.elapsed < Duration::from_secs(15),
        "answered within a few seconds, took {:?}",
        run.elapsed
    );

    // the stack stays healthy
    ensure_pod(cfg, &pod(cfg, SINGLE, &["app"]));
    let run = checkpoint(cfg, &[SINGLE]);
    assert!(run.ok(), "after the timeout the stack still works\n{run}");
}
