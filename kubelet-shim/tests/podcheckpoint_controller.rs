#![allow(clippy::unwrap_used)]
//! The PodCheckpoint controller (the node agent) against kube-apiserver-standin
//! in process, with the CRD and RBAC from deploy/, and the fake CRI: the
//! agent's half of e2e scenarios 5 (restart mid-checkpoint) and 6 (two
//! agents), bad specs, the per-node limit, deletion, and the API requests it
//! spends per PodCheckpoint (counted in the stand-in's audit log).

mod agent;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use agent::{Agent, AgentSetup, Cluster, NS, SHIM_SA, container_id, files_under, ready_reason};
use api_types::PodCheckpointSpec;
use api_types::podcheckpoint::{ARCHIVE_FINALIZER, reason};
use kcr_testkit::fake_cri::{CheckpointMode, FakeContainer, FakeCri, FakeState};
use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams};
use kubelet_shim::runtime::{CriRuntime, RuntimeService};
use serde_json::json;

const NODE_A: &str = "node-a";
const NODE_B: &str = "node-b";

async fn runtime(fake: &FakeCri) -> Arc<dyn RuntimeService> {
    Arc::new(CriRuntime::new(fake.channel().await.unwrap()))
}

fn fake_with(pod: &str, containers: &[&str]) -> FakeCri {
    let fake = FakeCri::new();
    add(&fake, pod, containers);
    fake
}

fn add(fake: &FakeCri, pod: &str, containers: &[&str]) {
    for c in containers {
        fake.add_container(FakeContainer::running(container_id(pod, c), NS, pod, *c));
    }
}

fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

/// What the metrics say, for one line prefix.
fn metric(agent: &Agent, line_prefix: &str) -> String {
    let text = agent.metrics.encode().unwrap();
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .unwrap_or_else(|| panic!("no {line_prefix} in\n{text}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_container_completes_in_five_requests() {
    let cluster = Cluster::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let fake = fake_with("web", &["app"]);
    cluster
        .pod("web", NODE_A, "Running", &[("app", true)])
        .await;
    let agent = Agent::start(
        &cluster,
        runtime(&fake).await,
        AgentSetup::new(NODE_A, tmp.path()),
    )
    .await;
    let before = cluster.work_requests(SHIM_SA).len();

    let created = cluster.create_pc("web-1", "web", &["app"]).await;
    let pc = cluster.finished("web-1").await;
    let (ready, why, message) = ready_reason(&pc);
    assert_eq!(
        (ready.as_str(), why.as_str()),
        ("True", reason::COMPLETED),
        "{message}"
    );
    assert!(
        message.starts_with("checkpointed app on node node-a: 1 archive, "),
        "{message}"
    );
    let st = pc.status.clone().unwrap();
    assert_eq!(st.node_name.as_deref(), Some(NODE_A));
    assert_eq!(st.containers.as_deref(), Some("app"));
    assert_eq!(st.observed_generation, Some(1));
    assert!(st.start_time.is_some() && st.completion_time.is_some());
    let pod = cluster.pods().get("web").await.unwrap();
    assert_eq!(st.source_pod_uid, pod.metadata.uid);
    assert_eq!(pc.finalizers(), [ARCHIVE_FINALIZER.to_owned()]);
    let [c] = st.checkpointed_containers.as_slice() else {
        panic!("{st:#?}")
    };
    assert_eq!(c.name, "app");
    assert_eq!(c.image, kcr_testkit::APP_IMAGE);
    assert_eq!(
        c.container_id,
        format!("containerd://{}", container_id("web", "app"))
    );
    let archive = c.archive.as_ref().unwrap();
    let uid = created.uid().unwrap();
    assert!(
        archive
            .path
            .starts_with(&format!("{uid}/checkpoint-web_{NS}-app-")),
        "{}",
        archive.path
    );
    let file = agent.checkpoints().join(&archive.path);
    let (size, sha) = kubelet_shim::controller::archives::digest(&file).unwrap();
    assert_eq!(
        (archive.size_bytes, archive.sha256.as_str()),
        (size as i64, sha.as_str())
    );
    assert_eq!(st.total_size_bytes, Some(size as i64));
    assert_eq!(mode_of(&file), 0o600);
    assert_eq!(mode_of(&agent.checkpoints().join(&uid)), 0o700);
    // What the runtime was asked: the temporary name in the object's directory.
    let asked = fake.checkpoint_requests();
    assert_eq!(asked.len(), 1);
    assert!(asked[0].location.ends_with(".tar.partial"), "{asked:?}");
    assert_eq!(
        files_under(&agent.checkpoints()),
        std::slice::from_ref(&archive.path)
    );

    // The budget: finalizer, claim, final status, an event on the object and
    // one on the pod; nothing else (issue 15 allows 6).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let spent: Vec<String> = cluster.work_requests(SHIM_SA)[before..]
        .iter()
        .map(|e| format!("{} {} {} {}", e.method, e.resource, e.name, e.code))
        .collect();
    assert_eq!(
        spent,
        [
            "PATCH podcheckpoints web-1 200",
            "PATCH podcheckpoints/status web-1 200",
            "PATCH podcheckpoints/status web-1 200",
            "POST events  201",
            "POST events  201",
        ],
        "{spent:#?}"
    );
    assert!(spent.len() <= 6);

    // Events on the object and on the pod.
    let events: kube::Api<api_types::k8s_openapi::api::events::v1::Event> =
        kube::Api::namespaced(cluster.admin.clone(), NS);
    let events = events.list(&Default::default()).await.unwrap().items;
    let about = |kind: &str, name: &str| {
        events
            .iter()
            .filter(|e| {
                e.regarding.as_ref().is_some_and(|r| {
                    r.kind.as_deref() == Some(kind) && r.name.as_deref() == Some(name)
                })
            })
            .map(|e| {
                (
                    e.reason.clone().unwrap_or_default(),
                    e.reporting_instance.clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        about("PodCheckpoint", "web-1"),
        [(reason::COMPLETED.to_owned(), Some(NODE_A.to_owned()))]
    );
    assert_eq!(
        about("Pod", "web"),
        [("Checkpointed".to_owned(), Some(NODE_A.to_owned()))]
    );
    assert!(
        metric(
            &agent,
            "checkpoint_shim_podcheckpoint_duration_seconds_count{result=\"completed\"}"
        )
        .ends_with(" 1")
    );
    assert_eq!(
        metric(&agent, "checkpoint_shim_podcheckpoint_archive_bytes_total"),
        format!("checkpoint_shim_podcheckpoint_archive_bytes_total {size}")
    );
    assert_eq!(
        metric(&agent, "checkpoint_shim_podcheckpoints_in_flight"),
        "checkpoint_shim_podcheckpoints_in_flight 0"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_containers_by_default_with_sizes_and_digests() {
    let cluster = Cluster::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let fake = fake_with("trio", &["a", "b", "c"]);
    cluster
        .pod(
            "trio",
            NODE_A,
            "Running",
            &[("a", true), ("b", true), ("c", true)],
        )
        .await;
    let agent = Agent::start(
        &cluster,
        runtime(&fake).await,
        AgentSetup::new(NODE_A, tmp.path()),
    )
    .await;
    // No container named: every running one; a name twice counts once elsewhere.
    cluster.create_pc("trio-all", "trio", &[]).await;
    cluster
        .create_pc("trio-dup", "trio", &["c", "a", "c"])
        .await;
    let all = cluster.finished("trio-all").await;
    let dup = cluster.finished("trio-dup").await;
    assert_eq!(ready_reason(&all).1, reason::COMPLETED, "{all:#?}");
    let st = all.status.unwrap();
    assert_eq!(st.containers.as_deref(), Some("a,b,c"));
    let mut total = 0;
    for (c, want) in st.checkpointed_containers.iter().zip(["a", "b", "c"]) {
        assert_eq!(c.name, want);
        let a = c.archive.as_ref().unwrap();
        let file = agent.checkpoints().join(&a.path);
        let (size, sha) = kubelet_shim::controller::archives::digest(&file).unwrap();
        assert_eq!(a.size_bytes, size as i64, "{}", a.path);
        assert_eq!(a.sha256, sha, "{}", a.path);
        assert_eq!(mode_of(&file), 0o600);
        total += size as i64;
    }
    assert_eq!(st.total_size_bytes, Some(total));
    let dup = dup.status.unwrap();
    assert_eq!(dup.containers.as_deref(), Some("c,a"));
    assert_eq!(dup.checkpointed_containers.len(), 2);
    // Five archives, one directory per object, no temporary file left.
    let files = files_under(&agent.checkpoints());
    assert_eq!(files.len(), 5, "{files:#?}");
    assert!(
        files
            .iter()
            .all(|f| f.ends_with(".tar") && !f.contains(".partial"))
    );
    // One at a time per container, never two dumps of one container at once.
    assert_eq!(fake.checkpoint_requests().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_specs_end_at_once_with_a_message() {
    let cluster = Cluster::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let fake = fake_with("web", &["app", "side"]);
    add(&fake, "starting", &["app"]);
    cluster
        .pod("web", NODE_A, "Running", &[("app", true), ("side", false)])
        .await;
    cluster
        .pod("starting", NODE_A, "Pending", &[("app", false)])
        .await;
    let agent = Agent::start(
        &cluster,
        runtime(&fake).await,
        AgentSetup::new(NODE_A, tmp.path()),
    )
    .await;
    let before = cluster.work_requests(SHIM_SA).len();

    cluster.create_pc("unknown", "web", &["nope", "app"]).await;
    cluster.create_pc("not-running", "starting", &[]).await;
    cluster.create_pc("side", "web", &["side"]).await;
    let mut pinned = PodCheckpointSpec {
        source_pod_name: "web".into(),
        source_pod_uid: Some("0b5e-not-this-one".into()),
        ..Default::default()
    };
    pinned.containers = vec!["app".into()];
    cluster.create_pc_spec("replaced", pinned).await;

    let web_uid = cluster.pods().get("web").await.unwrap().uid().unwrap();
    for (name, want_reason, want_message) in [
        (
            "unknown",
            reason::FAILED,
            format!("container \"nope\" is not in pod {NS}/web; valid container names: app, side"),
        ),
        (
            "not-running",
            reason::FAILED,
            format!("pod {NS}/starting is not running (phase Pending)"),
        ),
        (
            "side",
            reason::FAILED,
            format!(
                "container \"side\" of pod {NS}/web is not running (waiting: CrashLoopBackOff)"
            ),
        ),
        (
            "replaced",
            reason::SOURCE_POD_REPLACED,
            format!(
                "pod {NS}/web has UID {web_uid}, not 0b5e-not-this-one (spec.sourcePodUID): the pod was replaced"
            ),
        ),
    ] {
        let pc = cluster.finished(name).await;
        assert_eq!(
            ready_reason(&pc),
            ("False".to_owned(), want_reason.to_owned(), want_message),
            "{name}"
        );
        let st = pc.status.unwrap();
        assert_eq!(st.node_name.as_deref(), Some(NODE_A), "{name}");
        assert!(st.checkpointed_containers.is_empty());
        // Nothing to clean up: no finalizer.
        assert!(pc.metadata.finalizers.is_none(), "{name}");
    }
    // No retry storm: one status write and two events each (one for
    // SourcePodReplaced's pod... and each pod), then nothing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let spent = &cluster.work_requests(SHIM_SA)[before..];
    let status_writes = spent
        .iter()
        .filter(|e| e.resource == "podcheckpoints/status")
        .count();
    assert_eq!(status_writes, 4, "{spent:#?}");
    assert!(spent.len() <= 4 * 3, "{spent:#?}");
    assert!(fake.checkpoint_requests().is_empty());
    assert!(files_under(&agent.checkpoints()).is_empty());
    assert!(
        metric(
            &agent,
            "checkpoint_shim_podcheckpoint_failures_total{reason=\"unknown_container\"}"
        )
        .ends_with(" 1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_failure_carries_the_runtimes_message_and_leaves_nothing() {
    let cluster = Cluster::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let fake = fake_with("web", &["app", "db"]);
    cluster
        .pod("web", NODE_A, "Running", &[("app", true), ("db", true)])
        .await;
    let agent = Agent::start(
        &cluster,
        runtime(&fake).await,
        AgentSetup::new(NODE_A, tmp.path()),
    )
    .await;
    // The first container is checkpointed; the runtime finds the second
    // one stopped (the pod's status lags behind it).
    fake.set_container_state(&container_id("web", "db"), FakeState::Exited);
    cluster.create_pc("web-1", "web", &["app", "db"]).await;
    let pc = cluster.finished("web-1").await;
    let (ready, why, message) = ready_reason(&pc);
    assert_eq!((ready.as_str(), why.as_str()), ("False", reason::FAILED));
    assert_eq!(
        message,
        "container db is not running (state CONTAINER_EXITED)"
    );
    // All or nothing: the first container's archive went too.
    assert!(pc.status.unwrap().checkpointed_containers.is_empty());
    assert_eq!(fake.checkpoint_requests().len(), 1);
    assert!(
        files_under(&agent.checkpoints()).is_empty(),
        "{:?}",
        files_under(&agent.checkpoints())
    );

    // CRIU fails half way through writing: its message, no partial file.
    fake.set_mode(CheckpointMode::PartialThenFail);
    cluster.create_pc("web-2", "web", &["app"]).await;
    let message = ready_reason(&cluster.finished("web-2").await).2;
    assert!(
        message.starts_with(&format!(
            "checkpointing of {NS}/web/app failed (rpc error: code = Unknown desc = failed to checkpoint container {}: CRIU dump failed after writing part of ",
            container_id("web", "app")
        )),
        "{message}"
    );
    assert!(
        files_under(&agent.checkpoints()).is_empty(),
        "{:?}",
        files_under(&agent.checkpoints())
    );

    // A plain failure: the runtime's words.
    fake.set_mode(CheckpointMode::Fail(
        "criu failed: dump of 1234 failed".into(),
    ));
    cluster.create_pc("web-3", "web", &["app"]).await;
    let pc = cluster.finished("web-3").await;
    assert_eq!(
        ready_reason(&pc).2,
        format!(
            "checkpointing of {NS}/web/app failed (rpc error: code = Unknown desc = criu failed: dump of 1234 failed)"
        )
    );
    assert!(
        metric(
            &agent,
            "checkpoint_shim_podcheckpoint_failures_total{reason=\"runtime\"}"
        )
        .ends_with(" 3")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_n_at_once_the_rest_pending_once() {
    let cluster = Cluster::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeCri::new();
    for i in 0..3 {
        let pod = format!("p{i}");
        add(&fake, &pod, &["app"]);
        cluster.pod(&pod, NODE_A, "Running", &[("app", true)]).await;
    }
    fake.set_mode(CheckpointMode::Slow(Duration::from_millis(800)));
    let mut setup = AgentSetup::new(NODE_A, tmp.path());
    setup.max_concurrent = 1;
    let _agent = Agent::start(&cluster, runtime(&fake).await, setup).await;
    let before = cluster.work_requests(SHIM_SA).len();
    for i in 0..3 {
        cluster
            .create_pc(&format!("pc{i}"), &format!("p{i}"), &[])
            .await;
    }
    // Two of them wait, saying why.
    let waiting = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let list = cluster.pcs().list(&Default::default()).await.unwrap().items;
            let pending: Vec<_> = list
                .iter()
                .filter(|pc| {
                    pc.ready_condition()
                        .is_some_and(|c| c.reason == reason::PENDING)
                })
                .cloned()
                .collect();
            if pending.len() == 2 {
                return pending;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(
        ready_reason(&waiting[0]).2,
        "waiting for a free slot: 1 PodCheckpoint is already in progress on node node-a (--max-concurrent-podcheckpoints=1)"
    );
    assert_eq!(
        waiting[0].status.as_ref().unwrap().node_name.as_deref(),
        Some(NODE_A)
    );
    for i in 0..3 {
        let pc = cluster.finished(&format!("pc{i}")).await;
        assert_eq!(ready_reason(&pc).1, reason::COMPLETED, "{pc:#?}");
    }
    assert_eq!(fake.max_in_flight(), 1);
    // No churn: each object cost at most 6 requests (5, plus one Pending write
    // for those that waited).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let spent = &cluster.work_requests(SHIM_SA)[before..];
    let pending_writes = spent
        .iter()
        .filter(|e| e.resource == "podcheckpoints/status")
        .count();
    assert_eq!(pending_writes, 3 * 2 + 2, "{spent:#?}");
    assert_eq!(spent.len(), 3 * 5 + 2, "{spent:#?}");
}

/// e2e scenario 5, the agent's half: killed while the runtime hangs, then
/// started again: the object ends CheckpointFailed "interrupted", nothing
/// partial is left, nothing stays in progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_agent_fails_what_it_left_half_done() {
    let cluster = Cluster::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let fake = fake_with("web", &["app"]);
    cluster
        .pod("web", NODE_A, "Running", &[("app", true)])
        .await;
    fake.set_mode(CheckpointMode::Hang);
    let agent = Agent::start(
        &cluster,
        runtime(&fake).await,
        AgentSetup::new(NODE_A, tmp.path()),
    )
    .await;
    let created = cluster.create_pc("web-1", "web", &["app"]).await;
    cluster
        .wait_for("web-1", "in progress", |pc| {
            pc.ready_condition()
                .is_some_and(|c| c.reason == reason::IN_PROGRESS)
        })
        .await;
    tokio::time::timeout(Duration::from_secs(10), async {
        while fake.checkpoint_requests().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    // The runtime started writing the temporary file, then the agent dies.
    let partial = fake.checkpoint_requests()[0].location.clone();
    std::fs::write(&partial, b"half an archive").unwrap();
    agent.kill().await;
    assert!(Path::new(&partial).exists());

    fake.set_mode(CheckpointMode::Instant);
    let agent = Agent::start(
        &cluster,
        runtime(&fake).await,
        AgentSetup::new(NODE_A, tmp.path()),
    )
    .await;
    let pc = cluster.finished("web-1").await;
    assert_eq!(
        ready_reason(&pc),
        (
            "False".to_owned(),
            reason::FAILED.to_owned(),
            "interrupted: checkpoint-shim restarted while checkpointing".to_owned()
        )
    );
    assert!(!Path::new(&partial).exists());
    assert!(!agent.checkpoints().join(created.uid().unwrap()).exists());
    assert!(files_under(&agent.checkpoints()).is_empty());
    assert!(
        metric(
            &agent,
            "checkpoint_shim_podcheckpoint_failures_total{reason=\"interrupted\"}"
        )
        .ends_with(" 1")
    );
}

/// The other restart: the archive was whole (renamed) when the agent died,
/// before it wrote the status: the new agent completes the object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_agent_completes_what_it_had_finished() {
    let cluster = Cluster::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let fake = fake_with("web", &["app"]);
    cluster
        .pod("web", NODE_A, "Running", &[("app", true)])
        .await;
    let pod_uid = cluster.pods().get("web").await.unwrap().uid().unwrap();
    let created = cluster.create_pc("web-1", "web", &["app"]).await;
    let uid = created.uid().unwrap();
    // What the earlier run left: the finalizer, the claim, a whole archive.
    cluster
        .pcs()
        .patch(
            "web-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": [ARCHIVE_FINALIZER]}})),
        )
        .await
        .unwrap();
    cluster
        .pcs()
        .patch_status(
            "web-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "nodeName": NODE_A, "sourcePodUID": pod_uid, "containers": "app",
                "startTime": "2026-11-30T07:00:00Z", "observedGeneration": 1,
                "conditions": [{"type": "Ready", "status": "False", "reason": "CheckpointInProgress",
                    "message": "checkpointing app on node node-a", "lastTransitionTime": "2026-11-30T07:00:00Z"}]}})),
        )
        .await
        .unwrap();
    let dir = tmp.path().join("checkpoints").join(&uid);
    std::fs::create_dir_all(&dir).unwrap();
    let name = format!("checkpoint-web_{NS}-app-2026-11-30T07:00:01Z.tar");
    std::fs::write(dir.join(&name), b"a whole archive").unwrap();
    std::fs::write(dir.join(format!(".{name}-2.partial")), b"stale").unwrap();

    let agent = Agent::start(
        &cluster,
        runtime(&fake).await,
        AgentSetup::new(NODE_A, tmp.path()),
    )
    .await;
    let pc = cluster.finished("web-1").await;
    assert_eq!(ready_reason(&pc).1, reason::COMPLETED, "{pc:#?}");
    let st = pc.status.unwrap();
    let archive = st.checkpointed_containers[0].archive.clone().unwrap();
    assert_eq!(archive.path, format!("{uid}/{name}"));
    let (size, sha) = kubelet_shim::controller::archives::digest(&dir.join(&name)).unwrap();
    assert_eq!((archive.size_bytes, archive.sha256), (size as i64, sha));
    assert_eq!(
        st.checkpointed_containers[0].container_id,
        format!("containerd://{}", container_id("web", "app"))
    );
    assert!(
        fake.checkpoint_requests().is_empty(),
        "nothing checkpointed again"
    );
    drop(agent);
}

/// e2e scenario 6, the agent's half: two agents, two node names, one API
/// server: only the pod's node touches the object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_only_the_pods_node_acts() {
    let cluster = Cluster::start().await;
    let tmp_a = tempfile::tempdir().unwrap();
    let tmp_b = tempfile::tempdir().unwrap();
    // Both runtimes know a container of that name: only the spec decides.
    let fake_a = fake_with("web", &["app"]);
    let fake_b = fake_with("web", &["app"]);
    cluster
        .pod("web", NODE_A, "Running", &[("app", true)])
        .await;
    let a = Agent::start(
        &cluster,
        runtime(&fake_a).await,
        AgentSetup::new(NODE_A, tmp_a.path()),
    )
    .await;
    let mut setup_b = AgentSetup::new(NODE_B, tmp_b.path());
    setup_b.user = "agent-b".into();
    let b = Agent::start(&cluster, runtime(&fake_b).await, setup_b).await;
    let b_before = cluster.work_requests("agent-b").len();

    cluster.create_pc("web-1", "web", &["app"]).await;
    let pc = cluster.finished("web-1").await;
    assert_eq!(ready_reason(&pc).1, reason::COMPLETED);
    assert_eq!(pc.status.unwrap().node_name.as_deref(), Some(NODE_A));
    // Past the missing-pod grace: B writes nothing. (creationTimestamp has
    // whole seconds, so B may find the object past its grace and look the
    // pod up before A's claim shows; a read, never a write.)
    tokio::time::sleep(Duration::from_secs(2)).await;
    let b_spent = &cluster.work_requests("agent-b")[b_before..];
    assert!(
        b_spent
            .iter()
            .all(|e| e.verb == "get" && e.resource == "pods"),
        "{b_spent:#?}"
    );
    assert!(fake_b.checkpoint_requests().is_empty());
    assert!(files_under(&b.checkpoints()).is_empty());
    assert_eq!(fake_a.checkpoint_requests().len(), 1);

    // Deleting it: only A cleans up and releases the finalizer.
    cluster
        .pcs()
        .delete("web-1", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        while cluster.pcs().get_opt("web-1").await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap();
    assert!(files_under(&a.checkpoints()).is_empty());
    let b_spent = &cluster.work_requests("agent-b")[b_before..];
    assert!(
        b_spent
            .iter()
            .all(|e| e.verb == "get" && e.resource == "pods"),
        "{b_spent:#?}"
    );
}

/// A pod that exists nowhere: failed once, by one of the agents, after the
/// grace; the other's conditional write loses silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_pod_fails_once_with_two_agents() {
    let cluster = Cluster::start().await;
    let tmp_a = tempfile::tempdir().unwrap();
    let tmp_b = tempfile::tempdir().unwrap();
    let fake = FakeCri::new();
    let _a = Agent::start(
        &cluster,
        runtime(&fake).await,
        AgentSetup::new(NODE_A, tmp_a.path()),
    )
    .await;
    let mut setup_b = AgentSetup::new(NODE_B, tmp_b.path());
    setup_b.user = "agent-b".into();
    let _b = Agent::start(&cluster, runtime(&fake).await, setup_b).await;
    cluster.standin.state.audit.clear();

    cluster.create_pc("ghost-1", "ghost", &[]).await;
    let pc = cluster.finished("ghost-1").await;
    assert_eq!(
        ready_reason(&pc),
        (
            "False".to_owned(),
            reason::FAILED.to_owned(),
            format!("pod {NS}/ghost not found")
        )
    );
    assert_eq!(pc.status.unwrap().node_name, None, "on no node");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let writes: Vec<_> = cluster
        .standin
        .state
        .audit
        .events()
        .into_iter()
        .filter(|e| e.resource == "podcheckpoints/status" && e.code == 200)
        .collect();
    assert_eq!(writes.len(), 1, "{writes:#?}");
    let lost: Vec<_> = cluster
        .standin
        .state
        .audit
        .events()
        .into_iter()
        .filter(|e| e.resource == "podcheckpoints/status" && e.code != 200)
        .collect();
    assert!(lost.iter().all(|e| e.code == 409), "{lost:#?}");
    let event_posts = cluster
        .standin
        .state
        .audit
        .events()
        .into_iter()
        .filter(|e| e.resource == "events" && e.method == "POST")
        .count();
    assert_eq!(event_posts, 1);
}

/// Deleting a PodCheckpoint removes exactly its archives (not another's, not
/// the kubelet's), records an event, and releases the finalizer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_removes_exactly_its_archives() {
    let cluster = Cluster::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let fake = fake_with("web", &["app"]);
    cluster
        .pod("web", NODE_A, "Running", &[("app", true)])
        .await;
    let agent = Agent::start(
        &cluster,
        runtime(&fake).await,
        AgentSetup::new(NODE_A, tmp.path()),
    )
    .await;
    let kubelets = agent
        .checkpoints()
        .join(format!("checkpoint-web_{NS}-app-2026-11-30T07:00:00Z.tar"));
    std::fs::write(&kubelets, b"the kubelet's own").unwrap();
    let one = cluster.create_pc("web-1", "web", &[]).await;
    let two = cluster.create_pc("web-2", "web", &[]).await;
    cluster.finished("web-1").await;
    cluster.finished("web-2").await;
    let dir_one = agent.checkpoints().join(one.uid().unwrap());
    let dir_two = agent.checkpoints().join(two.uid().unwrap());
    assert!(dir_one.is_dir() && dir_two.is_dir());

    cluster
        .pcs()
        .delete("web-1", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        while cluster.pcs().get_opt("web-1").await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap();
    assert!(!dir_one.exists());
    assert!(dir_two.is_dir());
    assert!(kubelets.exists());
    let events: kube::Api<api_types::k8s_openapi::api::events::v1::Event> =
        kube::Api::namespaced(cluster.admin.clone(), NS);
    let deleted: Vec<String> = events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("ArchivesDeleted"))
        .map(|e| e.note.unwrap_or_default())
        .collect();
    assert_eq!(
        deleted,
        ["deleted 1 archive file (".to_owned()
            + &deleted_bytes(&deleted)
            + " bytes) from node node-a"]
    );
    assert!(
        metric(
            &agent,
            "checkpoint_shim_podcheckpoint_archives_deleted_total"
        )
        .ends_with(" 1")
    );
}

fn deleted_bytes(notes: &[String]) -> String {
    notes
        .first()
        .and_then(|n| n.split('(').nth(1))
        .and_then(|n| n.split(' ').next())
        .unwrap_or_default()
        .to_owned()
}

/// Issue 15's load shape, scaled by `KCR_LOAD_PODCHECKPOINTS` (default 60
/// PodCheckpoints over 15 pods; the is 200 over 50): all complete,
/// the agent spends at most 6 requests per object (5, +1 for those that
/// waited), then deleting all removes every archive and finalizer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_at_once_stay_within_the_request_budget() {
    let n: usize = std::env::var("KCR_LOAD_PODCHECKPOINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let pods = n.div_ceil(4);
    let cluster = Cluster::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeCri::new();
    for p in 0..pods {
        let pod = format!("load-{p}");
        add(&fake, &pod, &["app"]);
        cluster.pod(&pod, NODE_A, "Running", &[("app", true)]).await;
    }
    let agent = Agent::start(
        &cluster,
        runtime(&fake).await,
        AgentSetup::new(NODE_A, tmp.path()),
    )
    .await;
    let before = cluster.work_requests(SHIM_SA).len();
    let started = std::time::Instant::now();
    let pcs = cluster.pcs();
    let creates = (0..n).map(|i| {
        let pcs = pcs.clone();
        async move {
            let pc = api_types::PodCheckpoint::new(
                &format!("load-{i}"),
                PodCheckpointSpec {
                    source_pod_name: format!("load-{}", i % pods),
                    ..Default::default()
                },
            );
            pcs.create(&Default::default(), &pc).await.unwrap();
        }
    });
    futures::future::join_all(creates).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let list = pcs.list(&Default::default()).await.unwrap().items;
        let done = list.iter().filter(|pc| pc.is_finished()).count();
        if done == n {
            assert!(list.iter().all(|pc| pc.is_ready()), "none fails");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{done} of {n} finished"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let spent = cluster.work_requests(SHIM_SA).len() - before;
    eprintln!(
        "load: {n} PodCheckpoints over {pods} pods completed in {:.2}s; agent requests {spent} ({:.2} per PodCheckpoint)",
        took.as_secs_f64(),
        spent as f64 / n as f64
    );
    assert!(spent <= 6 * n, "{spent} requests for {n} PodCheckpoints");
    assert_eq!(files_under(&agent.checkpoints()).len(), n);

    let started = std::time::Instant::now();
    pcs.delete_collection(&DeleteParams::default(), &Default::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !pcs
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "finalizers not released"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "load: deleted all in {:.2}s",
        started.elapsed().as_secs_f64()
    );
    assert!(files_under(&agent.checkpoints()).is_empty());
}
