//! The end-to-end scenarios (issue 6). Each needs a cluster described by
//! `KCR_E2E_CONFIG`; without one every scenario fails saying so.
//! Scenarios share the cluster (gates, the APIService), so they run one at a
//! time: `cargo test -p e2e -- --test-threads=1` (a lock enforces it anyway).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use api_types::{ContainerCheckpoint, PodCheckpoint};
use e2e::{
    Config, PodSpec, Run, kubectl, kubectl_as, kubectl_stdin, parse_five_lines, run_command,
};

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

/// `kubectl checkpoint --api=subresource ARGS`: the synchronous
/// `pods/checkpoint` (the scenarios of issue 6 that are about it), even
/// where the cluster serves PodCheckpoints.
fn checkpoint_sub(cfg: &Config, args: &[&str]) -> Run {
    let mut all = vec!["--api=subresource"];
    all.extend_from_slice(args);
    checkpoint(cfg, &all)
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
/// `path` is absolute (the subresource's answer) or relative to the node's
/// checkpoint directory (a PodCheckpoint's status).
fn assert_archive(cfg: &Config, path: &str, container: &str) {
    let Some(dir) = &cfg.node_checkpoints_dir else {
        return;
    };
    let path = &on_node(dir, path);
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

/// An archive's path on this machine: as given when absolute, else under
/// the node's checkpoint directory `dir`.
fn on_node(dir: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        dir.join(path)
    }
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
    let run = checkpoint_sub(cfg, &[MULTI, "-c", "nope"]);
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
    let run = checkpoint_sub(cfg, &[SINGLE, "-o", "json"]);
    assert!(run.ok(), "{run}");
    let obj: ContainerCheckpoint =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{run}"));
    assert_eq!(obj.kind, "ContainerCheckpoint");
    assert_eq!(obj.spec.pod_name, SINGLE);
    assert_eq!(obj.spec.container, "app");
    assert_archive(cfg, &obj.status.archive_path, "app");

    let run = checkpoint_sub(cfg, &[SINGLE, "-o", "yaml"]);
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
        &[
            "checkpoint",
            "--api=subresource",
            "-n",
            &cfg.namespace,
            SINGLE,
        ],
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
    let run = checkpoint_sub(cfg, &[SINGLE]);
    gate(&cfg.commands.extension_gate, "extensionGate", true);
    assert_failed(
        &run,
        "checkpointing is disabled on this cluster (feature gate ContainerCheckpointAPI on checkpoint-apiserver)",
    );

    gate(&cfg.commands.node_gate, "nodeGate", false);
    let run = checkpoint_sub(cfg, &[SINGLE]);
    gate(&cfg.commands.node_gate, "nodeGate", true);
    assert_failed(
        &run,
        "does not serve the checkpoint API (feature gate ContainerCheckpoint)",
    );
    assert!(
        run.stderr.contains("on node "),
        "the message names the node\n{run}"
    );

    let run = checkpoint_sub(cfg, &[SINGLE]);
    assert!(run.ok(), "both gates back on: works again\n{run}");
    assert!(parse_five_lines(&run.stdout).is_some(), "{run}");
}

#[test]
fn s07_extension_absent() {
    let (_g, cfg) = setup();
    ensure_pod(cfg, &pod(cfg, SINGLE, &["app"]));
    run_command("removeExtension", &cfg.commands.remove_extension, &[], None)
        .unwrap_or_else(|e| panic!("{e}"));
    let sub = checkpoint_sub(cfg, &[SINGLE]);
    let plain = checkpoint(cfg, &[SINGLE]);
    run_command(
        "restoreExtension",
        &cfg.commands.restore_extension,
        &[],
        None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    if sub.stderr.contains("but it serves PodCheckpoints") {
        // The cluster serves PodCheckpoints: only the subresource is gone.
        assert_failed(
            &sub,
            "this cluster does not serve the pods/checkpoint subresource (the checkpoint extension: kubectl apply -k deploy/",
        );
        assert!(sub.stderr.contains("leave out --api=subresource"), "{sub}");
        assert!(
            plain.ok() && parse_five_lines(&plain.stdout).is_some(),
            "without the extension a PodCheckpoint still does it\n{plain}"
        );
    } else {
        for run in [&sub, &plain] {
            assert_failed(
                run,
                "this cluster does not serve checkpoints: install the checkpoint extension",
            );
        }
    }
    let run = checkpoint_sub(cfg, &[SINGLE]);
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
        let run = checkpoint_sub(cfg, &[SINGLE, "-o", "json"]);
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
            .map(|_| s.spawn(|| checkpoint_sub(cfg, &[SINGLE, "-o", "json"])))
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
            "--api=subresource",
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

// ------------------------------------------------------------------------
// Issue 13: PodCheckpoints (checkpoint.kcr.dev), fulfilled by the node agent.

const THREE: &str = "e2e-three";

/// The PodCheckpoint `name`, as the user (`kubeconfig`) reads it.
fn get_pc(cfg: &Config, name: &str) -> PodCheckpoint {
    let run = kubectl(
        cfg,
        &[
            "get",
            "podcheckpoint",
            "-n",
            &cfg.namespace,
            name,
            "-o",
            "json",
        ],
    )
    .unwrap();
    assert!(run.ok(), "get podcheckpoint/{name}:\n{run}");
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{run}"))
}

/// The Ready condition's (reason, message), or empty strings.
fn ready_of(pc: &PodCheckpoint) -> (String, String) {
    pc.ready_condition()
        .map(|c| (c.reason.clone(), c.message.clone()))
        .unwrap_or_default()
}

/// Read the object until `done` says so, at most `within`.
fn wait_pc(
    cfg: &Config,
    name: &str,
    within: Duration,
    what: &str,
    done: impl Fn(&PodCheckpoint) -> bool,
) -> PodCheckpoint {
    let deadline = Instant::now() + within;
    loop {
        let pc = get_pc(cfg, name);
        if done(&pc) {
            return pc;
        }
        assert!(
            Instant::now() < deadline,
            "podcheckpoint/{name} not {what} within {within:?}: {:#?}",
            pc.status
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn finished(pc: &PodCheckpoint) -> bool {
    pc.is_finished()
}

/// `kubectl checkpoint ARGS --wait=false`: the created object's name.
fn create_no_wait(cfg: &Config, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.push("--wait=false");
    let run = checkpoint(cfg, &all);
    created_name(&run)
}

/// NAME from `podcheckpoint.checkpoint.kcr.dev/NAME created` (kubectl
/// create's line, which `--wait=false` prints).
fn created_name(run: &Run) -> String {
    assert!(run.ok(), "{run}");
    run.stdout
        .trim_end()
        .strip_prefix("podcheckpoint.checkpoint.kcr.dev/")
        .and_then(|rest| rest.strip_suffix(" created"))
        .filter(|name| !name.is_empty() && !name.contains(char::is_whitespace))
        .unwrap_or_else(|| panic!("--wait=false prints kubectl create's line\n{run}"))
        .to_owned()
}

/// `kubectl create -f -` of a PodCheckpoint with `spec` as `kubeconfig`'s user.
fn create_pc(cfg: &Config, kubeconfig: &Path, name: &str, spec: serde_json::Value) -> Run {
    let obj = serde_json::json!({
        "apiVersion": "checkpoint.kcr.dev/v1alpha1",
        "kind": "PodCheckpoint",
        "metadata": {"name": name, "namespace": cfg.namespace},
        "spec": spec,
    });
    kubectl_stdin(
        cfg,
        kubeconfig,
        &["create", "-f", "-"],
        obj.to_string().as_bytes(),
    )
    .unwrap()
}

fn sha256_hex(path: &Path) -> String {
    use sha2::Digest;
    let mut file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut file, &mut hasher).unwrap();
    format!("{:x}", hasher.finalize())
}

/// Files whose name ends in `.partial` anywhere under `dir`.
fn partial_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(p);
            } else if p.to_string_lossy().ends_with(".partial") {
                found.push(p);
            }
        }
    }
    found
}

fn slow_pod(cfg: &Config) -> e2e::PodRef {
    cfg.slow_pod.clone().unwrap_or_else(|| {
        panic!("the config names no slowPod (a pod on a node whose runtime is slow): this scenario needs one")
    })
}

/// Issue 13, 1: a checkpoint longer than the API server lets a request
/// last: `pods/checkpoint` is cut with a Timeout, the PodCheckpoint path
/// (a watch, long-running) completes and prints the five lines.
#[test]
fn pc01_longer_than_the_request_timeout() {
    let (_g, cfg) = setup();
    let slow = slow_pod(cfg);
    let args = ["-n", &slow.namespace, &slow.name, "-c", &slow.container];
    let mut sub = vec!["checkpoint", "--api=subresource"];
    sub.extend_from_slice(&args);
    let run = kubectl(cfg, &sub).unwrap();
    assert_failed(&run, "");
    // kube-apiserver's Timeout (504) for a request cut at --request-timeout
    assert!(
        run.stderr.contains(
            "the server was unable to return a response in the time allotted, but may still be processing the request"
        ),
        "the API server's Timeout\n{run}"
    );

    let mut obj = vec!["checkpoint"];
    obj.extend_from_slice(&args);
    let run = kubectl(cfg, &obj).unwrap();
    assert!(run.ok(), "through a PodCheckpoint it completes\n{run}");
    let five = parse_five_lines(&run.stdout)
        .unwrap_or_else(|| panic!("not the proposal's five lines:\n{run}"));
    assert_eq!(five.pod, slow.name);
    assert_eq!(five.container, slow.container);
    assert!(
        Path::new(&five.archive).is_relative(),
        "relative to the node's checkpoint directory: {}",
        five.archive
    );
    if let Some(dir) = &cfg.slow_node_checkpoints_dir {
        let meta = std::fs::metadata(dir.join(&five.archive)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "archive mode");
    }
}

/// Issue 13, 2: `--all-containers` of a three-container pod: three
/// archives, each in status with the size and sha256 of the file.
#[test]
fn pc02_all_containers_of_a_three_container_pod() {
    let (_g, cfg) = setup();
    let containers = ["app", "sidecar", "logger"];
    ensure_pod(cfg, &pod(cfg, THREE, &containers));
    let run = checkpoint(cfg, &[THREE, "--all-containers", "-o", "json"]);
    assert!(run.ok(), "{run}");
    let pc: PodCheckpoint =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{run}"));
    let status = pc.status.clone().expect("status");
    assert!(pc.is_ready(), "{status:#?}");
    let names: BTreeSet<&str> = status
        .checkpointed_containers
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, containers.into_iter().collect(), "{status:#?}");
    let dir = cfg.node_checkpoints_dir.as_ref().unwrap_or_else(|| {
        panic!(
            "the config names no nodeCheckpointsDir: the files cannot be compared with the status"
        )
    });
    let mut total = 0;
    for c in &status.checkpointed_containers {
        let archive = c.archive.as_ref().unwrap_or_else(|| panic!("{c:#?}"));
        assert!(Path::new(&archive.path).is_relative(), "{}", archive.path);
        let file = on_node(dir, &archive.path);
        let meta = std::fs::metadata(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(
            meta.len(),
            u64::try_from(archive.size_bytes).unwrap(),
            "{c:#?}"
        );
        assert_eq!(sha256_hex(&file), archive.sha256, "{c:#?}");
        assert!(!c.image.is_empty() && !c.container_id.is_empty(), "{c:#?}");
        assert_archive(cfg, &archive.path, &c.name);
        total += archive.size_bytes;
    }
    assert_eq!(status.total_size_bytes, Some(total));
    for c in containers {
        assert_running(cfg, THREE, c);
    }

    // the default output: five lines per container
    let run = checkpoint(cfg, &[THREE, "--all-containers"]);
    assert!(run.ok(), "{run}");
    let blocks: Vec<_> = run.stdout.split("\n\n").collect();
    assert_eq!(blocks.len(), 3, "{run}");
    for block in blocks {
        let five = parse_five_lines(&format!("{}\n", block.trim_end()))
            .unwrap_or_else(|| panic!("not five lines:\n{run}"));
        assert_archive(cfg, &five.archive, &five.container);
    }
}

/// Issue 13, 3: plain kubectl on the objects, every minor 1.27 … 1.33:
/// `get podcheckpoints` with the printer columns and `wait
/// --for=condition=Ready`.
#[test]
fn pc03_get_and_wait_through_every_kubectl() {
    let (_g, cfg) = setup();
    ensure_pod(cfg, &pod(cfg, SINGLE, &["app"]));
    let dir = cfg.versions_dir().unwrap();
    for minor in &cfg.kubectl_minors {
        let bin = dir.join(format!("kubectl.1.{minor}"));
        assert!(
            bin.is_file(),
            "kubectl 1.{minor} is missing: {} (installed by the google-cloud-sdk package)",
            bin.display()
        );
        let as_user = |args: &[&str]| kubectl_as(cfg, &bin, &cfg.kubeconfig, args).unwrap();
        let run = as_user(&["checkpoint", "-n", &cfg.namespace, SINGLE, "--wait=false"]);
        let name = created_name(&run);

        let run = as_user(&[
            "wait",
            "-n",
            &cfg.namespace,
            "--for=condition=Ready",
            "--timeout=120s",
            &format!("podcheckpoint/{name}"),
        ]);
        assert!(run.ok(), "kubectl 1.{minor} wait:\n{run}");
        assert!(
            run.stdout.contains(&format!("{name} condition met")),
            "kubectl 1.{minor} wait:\n{run}"
        );

        let run = as_user(&["get", "podcheckpoints", "-n", &cfg.namespace]);
        assert!(run.ok(), "kubectl 1.{minor} get:\n{run}");
        let header: Vec<&str> = run
            .stdout
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        assert_eq!(
            header,
            [
                "NAME",
                "POD",
                "CONTAINERS",
                "NODE",
                "READY",
                "REASON",
                "SIZE",
                "AGE"
            ],
            "kubectl 1.{minor} get:\n{run}"
        );
        let row: Vec<&str> = run
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name.as_str()))
            .unwrap_or_else(|| panic!("kubectl 1.{minor}: no row for {name}\n{run}"))
            .split_whitespace()
            .collect();
        assert_eq!(
            row[1..6],
            [SINGLE, "app", "node-local", "True", "CheckpointCompleted"][..],
            "kubectl 1.{minor} get:\n{run}"
        );
        assert!(row[6].parse::<u64>().is_ok_and(|n| n > 0), "SIZE\n{run}");

        // the short name and the category
        for what in ["pcp", "checkpoint"] {
            let run = as_user(&["get", what, "-n", &cfg.namespace, "-o", "name"]);
            assert!(
                run.ok() && run.stdout.contains(&format!("/{name}\n")),
                "kubectl 1.{minor} get {what}:\n{run}"
            );
        }
    }
}

/// Issue 13, 4: bad specs get a clear terminal status (missing pod, a
/// container not in the pod, a pod not running) or are refused at create
/// (negative timeout) and at update (the spec is immutable).
#[test]
fn pc04_bad_specs() {
    let (_g, cfg) = setup();
    ensure_pod(cfg, &pod(cfg, SINGLE, &["app"]));
    let mut pending = pod(cfg, "e2e-pending", &["app"]);
    pending.phase = "Pending".into();
    ensure_pod(cfg, &pending);
    let unique = std::process::id();

    let cases = [
        (
            format!("e2e-ghost-{unique}"),
            serde_json::json!({"sourcePodName": "e2e-ghost"}),
            "pod default/e2e-ghost not found".replace("default", &cfg.namespace),
        ),
        (
            format!("e2e-nope-{unique}"),
            serde_json::json!({"sourcePodName": SINGLE, "containers": ["nope"]}),
            "nope".to_owned(),
        ),
        (
            format!("e2e-pending-{unique}"),
            serde_json::json!({"sourcePodName": "e2e-pending"}),
            "Pending".to_owned(),
        ),
    ];
    for (name, spec, _) in &cases {
        let run = create_pc(cfg, &cfg.kubeconfig, name, spec.clone());
        assert!(run.ok(), "{run}");
    }
    for (name, _, needle) in &cases {
        let pc = wait_pc(cfg, name, Duration::from_secs(60), "finished", finished);
        let (reason, message) = ready_of(&pc);
        assert_eq!(reason, "CheckpointFailed", "{name}: {message}");
        assert!(
            message.contains(needle.as_str()),
            "{name}: {message:?} lacks {needle:?}"
        );
        assert!(
            pc.status
                .as_ref()
                .is_some_and(|s| s.checkpointed_containers.is_empty()),
            "{name}: {:#?}",
            pc.status
        );
    }
    let (_, message) = ready_of(&get_pc(cfg, &cases[1].0));
    assert!(
        message.contains("app"),
        "the message lists the valid names: {message}"
    );
    // terminal: not retried (the object stays as it is)
    let before = get_pc(cfg, &cases[0].0);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        get_pc(cfg, &cases[0].0).metadata.resource_version,
        before.metadata.resource_version,
        "a failed PodCheckpoint is left alone"
    );

    let run = create_pc(
        cfg,
        &cfg.kubeconfig,
        &format!("e2e-negative-{unique}"),
        serde_json::json!({"sourcePodName": SINGLE, "timeoutSeconds": -1}),
    );
    // kubectl create's own shape for a 422: `The KIND "NAME" is invalid: ...`
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stderr.contains(&format!(
            "The PodCheckpoint \"e2e-negative-{unique}\" is invalid: spec.timeoutSeconds: Invalid value: -1: spec.timeoutSeconds in body should be greater than or equal to 0"
        )),
        "the schema refuses a negative timeout\n{run}"
    );
    let run = kubectl(
        cfg,
        &[
            "get",
            "podcheckpoint",
            "-n",
            &cfg.namespace,
            &format!("e2e-negative-{unique}"),
        ],
    )
    .unwrap();
    assert!(!run.ok(), "nothing was created\n{run}");

    let admin = cfg.admin_kubeconfig.as_ref().unwrap_or_else(|| {
        panic!("the config names no adminKubeconfig: editing a spec needs a user who may patch PodCheckpoints")
    });
    let run = kubectl_as(
        cfg,
        &cfg.kubectl,
        admin,
        &[
            "patch",
            "podcheckpoint",
            "-n",
            &cfg.namespace,
            &cases[1].0,
            "--type=merge",
            "-p",
            r#"{"spec":{"containers":["app"]}}"#,
        ],
    )
    .unwrap();
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stderr.contains(&format!(
            "The PodCheckpoint \"{}\" is invalid: spec: Invalid value: \"object\": spec is immutable",
            cases[1].0
        )),
        "the schema's CEL rule refuses a spec edit\n{run}"
    );

    for (name, _, _) in &cases {
        let run = kubectl(
            cfg,
            &[
                "delete",
                "podcheckpoint",
                "-n",
                &cfg.namespace,
                name,
                "--timeout=60s",
            ],
        )
        .unwrap();
        assert!(run.ok(), "{run}");
    }
}

/// Issue 13, 5: the node agent killed mid-checkpoint and started again:
/// the object ends completed or `CheckpointFailed` "interrupted", no
/// partial archive is left, and the object can be deleted.
#[test]
fn pc05_agent_killed_mid_checkpoint() {
    let (_g, cfg) = setup();
    let slow = slow_pod(cfg);
    let restart = cfg.commands.restart_agent.clone().unwrap_or_else(|| {
        panic!("the config has no commands.restartAgent (kill a node's agent and start it again): this scenario needs it")
    });
    let name = create_no_wait(cfg, &[&slow.name, "-c", &slow.container]);
    let pc = wait_pc(cfg, &name, Duration::from_secs(30), "in progress", |pc| {
        ready_of(pc).0 == "CheckpointInProgress"
    });
    let node = pc
        .status
        .and_then(|s| s.node_name)
        .expect("nodeName once claimed");
    run_command("restartAgent", &restart, &[&node], None).unwrap_or_else(|e| panic!("{e}"));

    let pc = wait_pc(cfg, &name, Duration::from_secs(60), "finished", finished);
    let (reason, message) = ready_of(&pc);
    match reason.as_str() {
        "CheckpointCompleted" => {}
        "CheckpointFailed" => assert!(message.contains("interrupted"), "{message}"),
        other => panic!("ended {other}: {message}"),
    }
    let uid = pc.metadata.uid.clone().unwrap_or_default();
    if let Some(dir) = &cfg.slow_node_checkpoints_dir {
        // The runtime may still be writing when the agent comes back; give
        // it its time, then nothing partial may be left.
        std::thread::sleep(Duration::from_secs(10));
        assert_eq!(
            partial_files(dir),
            Vec::<PathBuf>::new(),
            "no partial archive"
        );
        for c in pc.status.iter().flat_map(|s| &s.checkpointed_containers) {
            let archive = c
                .archive
                .as_ref()
                .expect("archive of a completed container");
            let file = on_node(dir, &archive.path);
            assert_eq!(sha256_hex(&file), archive.sha256);
        }
    }
    let run = kubectl(
        cfg,
        &[
            "delete",
            "podcheckpoint",
            "-n",
            &cfg.namespace,
            &name,
            "--timeout=60s",
        ],
    )
    .unwrap();
    assert!(run.ok(), "not stuck: it can be deleted\n{run}");
    if let Some(dir) = &cfg.slow_node_checkpoints_dir {
        assert!(!dir.join(&uid).exists(), "its archives went with it");
    }
}

/// Issue 13, 6: two agents with different node names against one API
/// server: each PodCheckpoint is claimed, written and reported on by the
/// agent of its pod's node alone.
#[test]
fn pc06_only_the_pods_node_agent_acts() {
    let (_g, cfg) = setup();
    ensure_pod(cfg, &pod(cfg, SINGLE, &["app"]));
    let slow = slow_pod(cfg);
    let node_of = |ns: &str, pod: &str| {
        let run = kubectl(
            cfg,
            &[
                "get",
                "pod",
                "-n",
                ns,
                pod,
                "-o",
                "jsonpath={.spec.nodeName}",
            ],
        )
        .unwrap();
        assert!(run.ok(), "{run}");
        run.stdout.trim().to_owned()
    };
    let objects = [
        (
            create_no_wait(cfg, &[SINGLE]),
            node_of(&cfg.namespace, SINGLE),
        ),
        (
            create_no_wait(cfg, &[&slow.name, "-c", &slow.container]),
            node_of(&slow.namespace, &slow.name),
        ),
    ];
    assert_ne!(objects[0].1, objects[1].1, "the two pods run on two nodes");
    for (name, node) in &objects {
        let pc = wait_pc(cfg, name, Duration::from_secs(60), "finished", finished);
        let (reason, message) = ready_of(&pc);
        assert_eq!(reason, "CheckpointCompleted", "{name}: {message}");
        assert_eq!(
            pc.status.as_ref().and_then(|s| s.node_name.as_deref()),
            Some(node.as_str())
        );

        // Who wrote: the agents' events on it name their node (reportingInstance).
        let reporters: BTreeSet<String> = events_of_namespace(cfg)
            .iter()
            .filter(|e| {
                e["regarding"]["kind"] == "PodCheckpoint" && e["regarding"]["name"] == name.as_str()
            })
            .map(|e| {
                e["reportingInstance"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            reporters,
            BTreeSet::from([node.clone()]),
            "only {node}'s agent reported on {name}"
        );
    }
}

/// `kubectl checkpoint inspect` on an archive the suite just made: the
/// container, its image and ID, and the process tree CRIU dumped.
#[test]
fn pc07_inspect_an_archive_just_made() {
    let (_g, cfg) = setup();
    ensure_pod(cfg, &pod(cfg, SINGLE, &["app"]));
    let dir = cfg.node_checkpoints_dir.clone().unwrap_or_else(|| {
        panic!("the config names no nodeCheckpointsDir: inspect needs the archive on this machine")
    });
    let run = checkpoint(cfg, &[SINGLE, "-c", "app", "-o", "json"]);
    assert!(run.ok(), "{run}");
    let pc: PodCheckpoint = serde_json::from_str(&run.stdout).unwrap();
    let c = pc
        .status
        .as_ref()
        .map(|s| s.checkpointed_containers[0].clone())
        .expect("status");
    let file = on_node(&dir, &c.archive.as_ref().expect("archive").path);
    let file_arg = file.to_string_lossy().into_owned();

    let run = kubectl(cfg, &["checkpoint", "inspect", &file_arg]).unwrap();
    assert!(run.ok(), "{run}");
    let row = run
        .stdout
        .lines()
        .find(|l| l.starts_with("app "))
        .unwrap_or_else(|| panic!("a row for container app\n{run}"));
    assert!(row.contains(&c.image), "the image {}\n{run}", c.image);

    let run = kubectl(
        cfg,
        &[
            "checkpoint",
            "inspect",
            &file_arg,
            "--ps-tree-cmd",
            "-o",
            "json",
        ],
    )
    .unwrap();
    assert!(run.ok(), "{run}");
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["container_name"], "app", "{doc:#}");
    assert_eq!(doc["image"], c.image.as_str(), "{doc:#}");
    let id = doc["id"].as_str().unwrap_or_default();
    assert!(
        !id.is_empty() && c.container_id.ends_with(id),
        "the container ID {:?} in the archive matches the status' {:?}",
        id,
        c.container_id
    );
    // the process tree: at least the container's init process, with a command
    let mut processes = Vec::new();
    let mut todo = vec![&doc["process_tree"]];
    while let Some(p) = todo.pop() {
        processes.push(p);
        todo.extend(p["children"].as_array().into_iter().flatten());
    }
    assert_eq!(doc["process_tree"]["pid"], 1, "{doc:#}");
    assert!(
        processes
            .iter()
            .all(|p| p["command"].as_str().is_some_and(|c| !c.is_empty())),
        "{doc:#}"
    );
    // the test image's command: a shell counting in a loop
    assert_eq!(doc["process_tree"]["command"], "sh", "{doc:#}");
    let cmdline = doc["process_tree"]["cmdline"].as_str().unwrap_or_default();
    assert!(
        cmdline.starts_with("/bin/sh -c "),
        "the init process' command line\n{doc:#}"
    );
}

// ------------------------------------------------------------------------
// Issue 14, retention on the node agent (node-local: containerd + CRIU):
// the rules delete objects, the finalizer removes exactly their
// directories; files the agent did not write stay.

/// The pod of the retention scenarios (its own, so the per-container cap
/// counts only what these scenarios make).
const RETAIN: &str = "e2e-retain";

/// The node's checkpoint directory, which these scenarios inspect.
fn node_dir(cfg: &Config) -> PathBuf {
    cfg.node_checkpoints_dir.clone().unwrap_or_else(|| {
        panic!("the config names no nodeCheckpointsDir: retention is proven on the node's files")
    })
}

/// `kubectl create` of a PodCheckpoint of `RETAIN`/app with `annotations`
/// and extra `spec` fields, then wait until it completes.
fn completed_pc(
    cfg: &Config,
    name: &str,
    annotations: serde_json::Value,
    spec: serde_json::Value,
) -> PodCheckpoint {
    let mut full = serde_json::json!({"sourcePodName": RETAIN, "containers": ["app"]});
    if let (Some(full), Some(extra)) = (full.as_object_mut(), spec.as_object()) {
        full.extend(extra.clone());
    }
    let obj = serde_json::json!({
        "apiVersion": "checkpoint.kcr.dev/v1alpha1",
        "kind": "PodCheckpoint",
        "metadata": {"name": name, "namespace": cfg.namespace, "annotations": annotations},
        "spec": full,
    });
    let run = kubectl_stdin(
        cfg,
        &cfg.kubeconfig,
        &["create", "-f", "-"],
        obj.to_string().as_bytes(),
    )
    .unwrap();
    assert!(run.ok(), "{run}");
    let pc = wait_pc(cfg, name, Duration::from_secs(60), "finished", finished);
    let (reason, message) = ready_of(&pc);
    assert_eq!(reason, "CheckpointCompleted", "{name}: {message}");
    pc
}

fn uid_of(pc: &PodCheckpoint) -> String {
    pc.metadata.uid.clone().expect("uid")
}

/// The object's archive directory holds exactly the files its status
/// names, with their digests (and the agent's `.podcheckpoint` marker, which
/// says the directory is the agent's own).
fn assert_files_of(dir: &Path, pc: &PodCheckpoint) {
    let status = pc.status.as_ref().expect("status");
    let mut named = BTreeSet::new();
    for c in &status.checkpointed_containers {
        let archive = c.archive.as_ref().expect("archive");
        let file = on_node(dir, &archive.path);
        assert_eq!(
            sha256_hex(&file),
            archive.sha256,
            "{} still on the node, unchanged",
            file.display()
        );
        named.insert(file);
    }
    let on_disk: BTreeSet<PathBuf> = std::fs::read_dir(dir.join(uid_of(pc)))
        .unwrap_or_else(|e| panic!("the directory of {:?}: {e}", pc.metadata.name))
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().is_none_or(|n| n != ".podcheckpoint"))
        .collect();
    assert_eq!(on_disk, named, "{:?}", pc.metadata.name);
}

/// Whether `kubectl get` says the PodCheckpoint is gone (NotFound).
fn pc_gone(cfg: &Config, name: &str) -> bool {
    let run = kubectl(cfg, &["get", "podcheckpoint", "-n", &cfg.namespace, name]).unwrap();
    if run.ok() {
        return false;
    }
    assert!(run.stderr.contains("(NotFound)"), "{run}");
    true
}

/// Wait until the object and its archive directory are both gone.
fn wait_gone(cfg: &Config, name: &str, dir: &Path, uid: &str, deadline: Instant, why: &str) {
    loop {
        if pc_gone(cfg, name) && !dir.join(uid).exists() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "podcheckpoint/{name} or its directory {} still there ({why})",
            dir.join(uid).display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every `events.k8s.io` Event of the test namespace, as the viewer reads them.
fn events_of_namespace(cfg: &Config) -> Vec<serde_json::Value> {
    let run = kubectl_as(
        cfg,
        &cfg.kubectl,
        &cfg.viewer_kubeconfig,
        &[
            "get",
            "events.events.k8s.io",
            "-n",
            &cfg.namespace,
            "-o",
            "json",
        ],
    )
    .unwrap();
    assert!(run.ok(), "{run}");
    let mut list: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    match list["items"].take() {
        serde_json::Value::Array(items) => items,
        _ => Vec::new(),
    }
}

/// The (reason, note) of the events regarding PodCheckpoint `name`.
fn pc_events(cfg: &Config, name: &str) -> Vec<(String, String)> {
    events_of_namespace(cfg)
        .iter()
        .filter(|e| e["regarding"]["kind"] == "PodCheckpoint" && e["regarding"]["name"] == name)
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or_default().to_owned(),
                e["note"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Wait for an event `reason` on PodCheckpoint `name`; its note.
fn wait_event(cfg: &Config, name: &str, reason: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let events = pc_events(cfg, name);
        if let Some((_, note)) = events.iter().find(|(r, _)| r == reason) {
            return note.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {reason} event on podcheckpoint/{name}: {events:#?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A file named as the kubelet names its archives, directly in the
/// checkpoint directory: the agent did not write it and must leave it.
struct KubeletFile(PathBuf);

impl KubeletFile {
    fn new(cfg: &Config, dir: &Path) -> Self {
        let path = dir.join(format!(
            "checkpoint-{RETAIN}_{}-app-2026-01-02T03:04:{:02}Z.tar",
            cfg.namespace,
            std::process::id() % 60
        ));
        std::fs::write(&path, b"the kubelet's archive").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        Self(path)
    }

    fn assert_kept(&self) {
        assert_eq!(
            std::fs::read(&self.0).unwrap_or_else(|e| panic!("{}: {e}", self.0.display())),
            b"the kubelet's archive",
            "a file the agent did not write stays"
        );
    }
}

impl Drop for KubeletFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn delete_pc(cfg: &Config, name: &str) {
    let run = kubectl(
        cfg,
        &[
            "delete",
            "podcheckpoint",
            "-n",
            &cfg.namespace,
            name,
            "--ignore-not-found",
            "--timeout=60s",
        ],
    )
    .unwrap();
    assert!(run.ok(), "{run}");
}

/// Issue 14, TTL: `spec.ttlSecondsAfterFinished: 3` deletes the object and
/// exactly its archive directory a few seconds after completion, with a
/// `TTLExpired` event; another object's archive and a kubelet-named file in
/// the checkpoint directory stay.
#[test]
fn pc21_ttl_after_finished_deletes_exactly_its_archives() {
    let (_g, cfg) = setup();
    let dir = node_dir(cfg);
    ensure_pod(cfg, &pod(cfg, RETAIN, &["app"]));
    let kubelet = KubeletFile::new(cfg, &dir);
    let unique = std::process::id();
    let keep = format!("e2e-keep-{unique}");
    let ttl = format!("e2e-ttl-{unique}");
    let kept = completed_pc(cfg, &keep, serde_json::json!({}), serde_json::json!({}));
    let short = completed_pc(
        cfg,
        &ttl,
        serde_json::json!({}),
        serde_json::json!({"ttlSecondsAfterFinished": 3}),
    );
    let done = Instant::now();
    assert_files_of(&dir, &short);
    let others_before: BTreeSet<PathBuf> = archives(cfg)
        .into_iter()
        .filter(|p| !p.ends_with(uid_of(&short)))
        .collect();

    // gone within a few seconds after the expiry (3 s after completionTime,
    // which has whole seconds)
    wait_gone(
        cfg,
        &ttl,
        &dir,
        &uid_of(&short),
        done + Duration::from_secs(3 + 10),
        "ttlSecondsAfterFinished: 3",
    );
    let note = wait_event(cfg, &ttl, "TTLExpired");
    assert!(
        note.contains("spec.ttlSecondsAfterFinished=3 expired") && note.contains("node-local"),
        "{note}"
    );
    let note = wait_event(cfg, &ttl, "ArchivesDeleted");
    assert!(note.contains("deleted 1 archive file ("), "{note}");

    // the rest of the checkpoint directory is as it was
    let others_after: BTreeSet<PathBuf> = archives(cfg).into_iter().collect();
    assert!(
        others_before.is_subset(&others_after),
        "only the expired object's directory went: missing {:?}",
        others_before.difference(&others_after).collect::<Vec<_>>()
    );
    kubelet.assert_kept();
    assert_files_of(&dir, &get_pc(cfg, &keep));
    assert_eq!(get_pc(cfg, &keep).metadata.uid, kept.metadata.uid);
    delete_pc(cfg, &keep);
}

/// Restarts node-local's agent with extra flags; restores local-up's flags
/// when dropped (also when the scenario fails), so later scenarios run on
/// the agent they expect.
struct AgentFlags<'a> {
    cfg: &'a Config,
    node: &'a str,
}

impl<'a> AgentFlags<'a> {
    /// Only the restore: for a scenario that stopped the agent itself.
    fn restore_on_drop(cfg: &'a Config, node: &'a str) -> Self {
        Self { cfg, node }
    }

    fn set(cfg: &'a Config, node: &'a str, flags: &[&str]) -> Self {
        let restart = cfg.commands.restart_agent.clone().unwrap_or_else(|| {
            panic!("the config has no commands.restartAgent (start a node's agent again with extra flags): this scenario needs it")
        });
        let mut args = vec![node];
        args.extend_from_slice(flags);
        run_command("restartAgent", &restart, &args, None).unwrap_or_else(|e| panic!("{e}"));
        Self { cfg, node }
    }
}

impl Drop for AgentFlags<'_> {
    fn drop(&mut self) {
        if let Some(restart) = &self.cfg.commands.restart_agent {
            let restored = run_command("restartAgent", restart, &[self.node], None);
            if let Err(e) = restored
                && !std::thread::panicking()
            {
                panic!("restoring the agent's flags: {e}");
            }
        }
    }
}

/// Issue 14, per-container cap: with `--max-archives-per-container=2`,
/// three checkpoints of one container leave the two newest objects and
/// their files; the oldest object and its directory go, with a
/// `MaxArchivesPerContainerExceeded` event. A pinned object (older than all
/// three) is kept and does not count.
#[test]
fn pc22_max_archives_per_container_keeps_the_newest_and_the_pinned() {
    let (_g, cfg) = setup();
    let dir = node_dir(cfg);
    ensure_pod(cfg, &pod(cfg, RETAIN, &["app"]));
    let kubelet = KubeletFile::new(cfg, &dir);
    let _agent = AgentFlags::set(cfg, "node-local", &["--max-archives-per-container=2"]);
    let unique = std::process::id();
    let names: Vec<String> = ["pinned", "oldest", "middle", "newest"]
        .iter()
        .map(|n| format!("e2e-cap-{n}-{unique}"))
        .collect();
    let mut objects = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let annotations = if i == 0 {
            serde_json::json!({"checkpoint.kcr.dev/pin": "true"})
        } else {
            serde_json::json!({})
        };
        objects.push(completed_pc(cfg, name, annotations, serde_json::json!({})));
        // completionTime has whole seconds: one second apart, so "oldest"
        // is unambiguous
        std::thread::sleep(Duration::from_millis(1100));
    }
    wait_gone(
        cfg,
        &names[1],
        &dir,
        &uid_of(&objects[1]),
        Instant::now() + Duration::from_secs(20),
        "the oldest of three with --max-archives-per-container=2",
    );
    let note = wait_event(cfg, &names[1], "MaxArchivesPerContainerExceeded");
    assert!(
        note.contains(&format!(
            "container {}/{RETAIN}/app has 2 newer archives",
            cfg.namespace
        )) && note.contains("--max-archives-per-container=2"),
        "{note}"
    );
    for i in [0, 2, 3] {
        let now = get_pc(cfg, &names[i]);
        assert_eq!(now.metadata.uid, objects[i].metadata.uid, "{}", names[i]);
        assert!(now.is_ready(), "{}: {:#?}", names[i], now.status);
        assert_files_of(&dir, &now);
    }
    kubelet.assert_kept();
    for name in &names {
        delete_pc(cfg, name);
    }
}

/// Issue 14, deletion: deleting a PodCheckpoint removes its archive
/// directory (`ArchivesDeleted`) and nothing else: another object's
/// archives and the kubelet's file stay.
#[test]
fn pc23_deleting_an_object_removes_its_archives_and_no_others() {
    let (_g, cfg) = setup();
    let dir = node_dir(cfg);
    ensure_pod(cfg, &pod(cfg, RETAIN, &["app"]));
    let kubelet = KubeletFile::new(cfg, &dir);
    let unique = std::process::id();
    let gone = format!("e2e-del-{unique}");
    let keep = format!("e2e-del-keep-{unique}");
    let deleted = completed_pc(cfg, &gone, serde_json::json!({}), serde_json::json!({}));
    let kept = completed_pc(cfg, &keep, serde_json::json!({}), serde_json::json!({}));
    assert_files_of(&dir, &deleted);
    let before: BTreeSet<PathBuf> = archives(cfg);

    delete_pc(cfg, &gone);
    // kubectl delete waits for the finalizer: the directory is gone now
    assert!(pc_gone(cfg, &gone));
    assert!(
        !dir.join(uid_of(&deleted)).exists(),
        "its directory went with it"
    );
    let note = wait_event(cfg, &gone, "ArchivesDeleted");
    assert!(
        note.contains("deleted 1 archive file (") && note.contains("node-local"),
        "{note}"
    );
    let after = archives(cfg);
    let expected: BTreeSet<PathBuf> = before
        .into_iter()
        .filter(|p| !p.ends_with(uid_of(&deleted)))
        .collect();
    assert_eq!(after, expected, "only its directory went");
    assert_files_of(&dir, &kept);
    kubelet.assert_kept();
    delete_pc(cfg, &keep);
}

// ---------------------------------------------------------------- downloads (issue 14)

/// The cluster admin's kubeconfig (bound to cluster-admin, so holding
/// `get podcheckpoints/archive`).
fn admin_kubeconfig(cfg: &Config) -> PathBuf {
    cfg.admin_kubeconfig.clone().unwrap_or_else(|| {
        panic!("the config names no adminKubeconfig: a user allowed to download archives is needed")
    })
}

/// A fresh, empty directory for downloaded files.
fn download_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kcr-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Checkpoint container app of SINGLE through a PodCheckpoint (as alice):
/// the object and its one container's archive status.
fn checkpoint_single(
    cfg: &Config,
) -> (
    PodCheckpoint,
    api_types::podcheckpoint::PodCheckpointContainerStatus,
) {
    ensure_pod(cfg, &pod(cfg, SINGLE, &["app"]));
    let run = checkpoint(cfg, &[SINGLE, "-c", "app", "-o", "json"]);
    assert!(run.ok(), "{run}");
    let pc: PodCheckpoint =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{run}"));
    let c = pc
        .status
        .as_ref()
        .map(|s| s.checkpointed_containers[0].clone())
        .expect("status");
    (pc, c)
}

/// Issue 14 (a): `kubectl checkpoint download NAME -f FILE`, `-f -` and
/// `kubectl checkpoint POD --download FILE` of a real archive (containerd +
/// CRIU) give files byte-identical to the node's, 0600.
#[test]
fn dl01_download_a_real_archive() {
    let (_g, cfg) = setup();
    let admin = admin_kubeconfig(cfg);
    let node_dir = cfg.node_checkpoints_dir.clone().unwrap_or_else(|| {
        panic!("the config names no nodeCheckpointsDir: the download cannot be compared with the node's file")
    });
    let (pc, c) = checkpoint_single(cfg);
    let name = pc.metadata.name.clone().expect("name");
    let archive = c.archive.clone().expect("archive");
    let on_disk = on_node(&node_dir, &archive.path);
    assert_eq!(
        sha256_hex(&on_disk),
        archive.sha256,
        "the node's file is the status' one"
    );
    let dir = download_dir("dl01");

    // download NAME -f FILE
    let file = dir.join("app.tar");
    let file_arg = file.to_string_lossy().into_owned();
    let run = kubectl_as(
        cfg,
        &cfg.kubectl,
        &admin,
        &[
            "checkpoint",
            "download",
            "-n",
            &cfg.namespace,
            &name,
            "-c",
            "app",
            "-f",
            &file_arg,
            "--range-size",
            "64Ki",
        ],
    )
    .unwrap();
    assert!(run.ok(), "{run}");
    assert!(
        run.stdout.contains(&archive.sha256),
        "the saved line names the sha256\n{run}"
    );
    assert_eq!(
        sha256_hex(&file),
        archive.sha256,
        "byte-identical to the node's file"
    );
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(meta.len(), u64::try_from(archive.size_bytes).unwrap());
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "downloaded file mode"
    );
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(left, vec![file.clone()], "no temporary file left");

    // -f -: stdout, in order
    let out = dir.join("stdout.tar");
    let status = std::process::Command::new(&cfg.kubectl)
        .args([
            "checkpoint",
            "download",
            "-n",
            &cfg.namespace,
            &name,
            "-f",
            "-",
            "--range-size",
            "64Ki",
            "--parallel",
            "3",
        ])
        .env("KUBECONFIG", &admin)
        .env("PATH", cfg.path_env())
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .status()
        .unwrap();
    assert!(status.success(), "download -f - exited {status}");
    assert_eq!(sha256_hex(&out), archive.sha256, "stdout byte-identical");

    // POD --download FILE: checkpoint and download in one (as the admin,
    // who may do both)
    let both = dir.join("both.tar");
    let both_arg = both.to_string_lossy().into_owned();
    let run = kubectl_as(
        cfg,
        &cfg.kubectl,
        &admin,
        &[
            "checkpoint",
            "-n",
            &cfg.namespace,
            SINGLE,
            "-c",
            "app",
            "--download",
            &both_arg,
        ],
    )
    .unwrap();
    assert!(run.ok(), "{run}");
    let five = parse_five_lines(&format!(
        "{}\n",
        run.stdout.lines().take(5).collect::<Vec<_>>().join("\n")
    ))
    .unwrap_or_else(|| panic!("the five lines first\n{run}"));
    let node_file = on_node(&node_dir, &five.archive);
    assert_eq!(
        sha256_hex(&both),
        sha256_hex(&node_file),
        "byte-identical to {}",
        node_file.display()
    );
    assert_eq!(
        std::fs::metadata(&both).unwrap().permissions().mode() & 0o777,
        0o600
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Issue 14 (c, d): alice (checkpoint-creator only) is refused with 403
/// naming `get podcheckpoints/archive`; an unknown object is 404; a
/// container not in the object is named with the ones it has. No file is
/// left in any case.
#[test]
fn dl02_refusals_and_bad_input() {
    let (_g, cfg) = setup();
    let admin = admin_kubeconfig(cfg);
    let (pc, _) = checkpoint_single(cfg);
    let name = pc.metadata.name.clone().expect("name");
    let dir = download_dir("dl02");
    let file = dir.join("x.tar");
    let file_arg = file.to_string_lossy().into_owned();

    // alice created it, but may not take the memory away
    // -c: without it the plugin prints kubectl's `Defaulted container` line first
    let run = checkpoint(cfg, &["download", &name, "-c", "app", "-f", &file_arg]);
    assert_failed(&run, "forbidden");
    assert!(run.stderr.contains("User \"alice\""), "{run}");
    assert!(
        run.stderr.contains("podcheckpoints/archive"),
        "names the right\n{run}"
    );

    // unknown object
    let run = kubectl_as(
        cfg,
        &cfg.kubectl,
        &admin,
        &[
            "checkpoint",
            "download",
            "-n",
            &cfg.namespace,
            "no-such-pc",
            "-f",
            &file_arg,
        ],
    )
    .unwrap();
    assert_failed(&run, "not found");
    assert!(run.stderr.contains("no-such-pc"), "{run}");

    // a container the object has no archive of
    let run = kubectl_as(
        cfg,
        &cfg.kubectl,
        &admin,
        &[
            "checkpoint",
            "download",
            "-n",
            &cfg.namespace,
            &name,
            "-c",
            "nope",
            "-f",
            &file_arg,
        ],
    )
    .unwrap();
    assert_failed(&run, "container nope has no archive");
    assert!(
        run.stderr.contains("[app]"),
        "lists the containers it has\n{run}"
    );

    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(left, Vec::<PathBuf>::new(), "no file written");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A PodCheckpoint's name and the node its status names.
fn name_and_node(pc: &PodCheckpoint) -> (String, String) {
    let name = pc.metadata.name.clone().expect("name");
    let node = pc
        .status
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .expect("nodeName");
    (name, node)
}

/// Issue 14 (b): node-local's agent killed (SIGKILL) and started again
/// while a download is in flight, one small range at a time: the plugin
/// asks again from the byte it reached and saves a byte-identical file.
#[test]
fn dl03_agent_killed_mid_download_resumes() {
    let (_g, cfg) = setup();
    let admin = admin_kubeconfig(cfg);
    let restart = cfg.commands.restart_agent.clone().unwrap_or_else(|| {
        panic!("the config has no commands.restartAgent (kill a node's agent and start it again): this scenario needs it")
    });
    let (pc, c) = checkpoint_single(cfg);
    let (name, node) = name_and_node(&pc);
    let archive = c.archive.clone().expect("archive");
    let dir = download_dir("dl03");
    let file = dir.join("app.tar");
    let file_arg = file.to_string_lossy().into_owned();
    let mut child = std::process::Command::new(&cfg.kubectl)
        .args([
            "checkpoint",
            "download",
            "-n",
            &cfg.namespace,
            &name,
            "-f",
            &file_arg,
            "--range-size",
            "1Ki",
            "--parallel",
            "1",
            "--retries",
            "30",
        ])
        .env("KUBECONFIG", &admin)
        .env("PATH", cfg.path_env())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the download of {} bytes ended before the agent could be killed: this scenario needs a bigger archive",
        archive.size_bytes
    );
    run_command("restartAgent", &restart, &[&node], None).unwrap_or_else(|e| panic!("{e}"));
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the download resumes: {}\n{stderr}",
        out.status
    );
    assert_eq!(
        sha256_hex(&file),
        archive.sha256,
        "byte-identical after the resume"
    );
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Issue 14: a node agent that stays down — the plugin retries, then fails
/// naming the node, and leaves nothing under the final name (nor its
/// temporary file).
#[test]
fn dl04_agent_down_fails_naming_the_node() {
    let (_g, cfg) = setup();
    let admin = admin_kubeconfig(cfg);
    let stop = cfg.commands.stop_agent.clone().unwrap_or_else(|| {
        panic!("the config has no commands.stopAgent (kill a node's agent and leave it down): this scenario needs it")
    });
    let (pc, _) = checkpoint_single(cfg);
    let (name, node) = name_and_node(&pc);
    let dir = download_dir("dl04");
    let file = dir.join("app.tar");
    let file_arg = file.to_string_lossy().into_owned();

    run_command("stopAgent", &stop, &[&node], None).unwrap_or_else(|e| panic!("{e}"));
    // Started again (with local-up's flags) however this scenario ends.
    let _restart = AgentFlags::restore_on_drop(cfg, &node);
    let run = kubectl_as(
        cfg,
        &cfg.kubectl,
        &admin,
        &[
            "checkpoint",
            "download",
            "-n",
            &cfg.namespace,
            &name,
            "-f",
            &file_arg,
            "--retries",
            "2",
        ],
    )
    .unwrap();
    assert!(
        !run.ok(),
        "the download fails while the agent is down\n{run}"
    );
    assert!(
        run.stderr.contains(&format!("from node {node}"))
            && run.stderr.contains("3 attempts failed"),
        "the error names the node and the attempts\n{run}"
    );
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.is_empty(),
        "nothing left in the target directory: {left:?}\n{run}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
