#![allow(clippy::unwrap_used)]
//! Retention on the node agent, against kube-apiserver-standin in process
//! (the CRD and the agent's RBAC from deploy/, which must allow its
//! deletes) and the fake CRI: `spec.ttlSecondsAfterFinished`,
//! `--max-archives-per-container` with a pinned object,
//! `--max-archive-bytes` (oldest first, and a checkpoint refused before
//! writing), and the orphan sweep; each removes exactly the right files
//! (never the kubelet's own archive beside them) with an event and a metric.

mod agent;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use agent::{Agent, AgentSetup, Cluster, NS, SHIM_SA, container_id, files_under, marked_dirs};
use api_types::PodCheckpointSpec;
use api_types::k8s_openapi::api::events::v1::Event;
use api_types::podcheckpoint::reason;
use kcr_testkit::fake_cri::{FakeContainer, FakeCri};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kubelet_shim::controller::archives::MARKER;
use kubelet_shim::controller::retention::{PIN_ANNOTATION, Policy};
use kubelet_shim::runtime::{CriRuntime, RuntimeService};
use serde_json::json;

const NODE_A: &str = "node-a";

async fn runtime(fake: &FakeCri) -> Arc<dyn RuntimeService> {
    Arc::new(CriRuntime::new(fake.channel().await.unwrap()))
}

fn fake_with(pods: &[(&str, &[&str])]) -> FakeCri {
    let fake = FakeCri::new();
    for (pod, containers) in pods {
        for c in *containers {
            fake.add_container(FakeContainer::running(container_id(pod, c), NS, *pod, *c));
        }
    }
    fake
}

/// A file named as the kubelet names its own archives, directly in the
/// checkpoints directory: no rule may touch it.
fn kubelets_archive(agent: &Agent) -> std::path::PathBuf {
    let p = agent
        .checkpoints()
        .join(format!("checkpoint-web_{NS}-app-2026-11-30T07:00:00Z.tar"));
    std::fs::write(&p, b"the kubelet's own").unwrap();
    p
}

fn metric(agent: &Agent, line_prefix: &str) -> String {
    let text = agent.metrics.encode().unwrap();
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .unwrap_or_else(|| panic!("no {line_prefix} in\n{text}"))
        .to_owned()
}

async fn gone(cluster: &Cluster, name: &str, within: Duration) {
    tokio::time::timeout(within, async {
        while cluster.pcs().get_opt(name).await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{name} was not deleted within {within:?}"));
}

/// `(reason, note)` of the events about `kind`/`name`.
async fn events_about(cluster: &Cluster, kind: &str, name: &str) -> Vec<(String, String)> {
    let all: Vec<Event> = Api::<Event>::all(cluster.admin.clone())
        .list(&Default::default())
        .await
        .unwrap()
        .items;
    all.into_iter()
        .filter(|e| {
            e.regarding
                .as_ref()
                .is_some_and(|r| r.kind.as_deref() == Some(kind) && r.name.as_deref() == Some(name))
        })
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect()
}

async fn wait_events(
    cluster: &Cluster,
    kind: &str,
    name: &str,
    reason: &str,
) -> Vec<(String, String)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ev = events_about(cluster, kind, name).await;
        if ev.iter().any(|(r, _)| r == reason) {
            return ev;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {reason} event about {kind} {name}: {ev:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn note_of(events: &[(String, String)], reason: &str) -> String {
    events
        .iter()
        .find(|(r, _)| r == reason)
        .map(|(_, n)| n.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_deletes_the_object_and_only_its_archives_at_expiry() {
    let cluster = Cluster::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let fake = fake_with(&[("web", &["app"])]);
    cluster
        .pod("web", NODE_A, "Running", &[("app", true)])
        .await;
    let agent = Agent::start(
        &cluster,
        runtime(&fake).await,
        AgentSetup::new(NODE_A, tmp.path()),
    )
    .await;
    let kubelets = kubelets_archive(&agent);
    let spec = |ttl| PodCheckpointSpec {
        source_pod_name: "web".into(),
        ttl_seconds_after_finished: Some(ttl),
        ..Default::default()
    };
    let long = cluster.create_pc_spec("long", spec(3600)).await;
    cluster.finished("long").await;
    let short = cluster.create_pc_spec("short", spec(4)).await;
    let done = cluster.finished("short").await;
    assert_eq!(ready_reason(&done), reason::COMPLETED);
    let short_dir = agent.checkpoints().join(short.uid().unwrap());
    let long_dir = agent.checkpoints().join(long.uid().unwrap());
    assert!(short_dir.is_dir() && long_dir.is_dir());
    // Each object directory carries the agent's marker.
    assert!(short_dir.join(MARKER).is_file());
    assert_eq!(
        std::fs::read_to_string(short_dir.join(MARKER)).unwrap(),
        format!("{NS}/short\n")
    );

    // No polling while it waits: not a request until the expiry (at least
    // 3 s away: completionTime has whole seconds).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = cluster.work_requests(SHIM_SA).len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        cluster.pcs().get_opt("short").await.unwrap().is_some(),
        "deleted before its TTL"
    );
    assert_eq!(
        cluster.work_requests(SHIM_SA).len(),
        before,
        "{:#?}",
        &cluster.work_requests(SHIM_SA)[before..]
    );
    gone(&cluster, "short", Duration::from_secs(10)).await;
    let completed = done.status.unwrap().completion_time.unwrap().0;
    let deleted_after = api_types::k8s_openapi::jiff::Timestamp::now().duration_since(completed);
    assert!(
        deleted_after >= api_types::k8s_openapi::jiff::SignedDuration::from_secs(4),
        "deleted {deleted_after:?} after completion"
    );
    assert!(!short_dir.exists());
    assert!(long_dir.is_dir(), "another object's archives stay");
    assert!(kubelets.exists(), "the kubelet's archive stays");
    assert!(cluster.pcs().get_opt("long").await.unwrap().is_some());

    let events = wait_events(&cluster, "PodCheckpoint", "short", "ArchivesDeleted").await;
    let ttl_note = note_of(&events, "TTLExpired");
    assert!(
        ttl_note.starts_with("deleted by checkpoint-shim on node node-a: finished at ")
            && ttl_note.ends_with(", spec.ttlSecondsAfterFinished=4 expired"),
        "{events:#?}"
    );
    assert!(
        metric(
            &agent,
            "checkpoint_shim_podcheckpoint_retention_deletions_total{policy=\"ttl\"}"
        )
        .ends_with(" 1")
    );
    assert!(
        metric(
            &agent,
            "checkpoint_shim_podcheckpoint_archives_deleted_total"
        )
        .ends_with(" 1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_container_cap_deletes_the_oldest_unpinned_object() {
    let cluster = Cluster::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let fake = fake_with(&[("web", &["app"]), ("db", &["app"])]);
    cluster
        .pod("web", NODE_A, "Running", &[("app", true)])
        .await;
    cluster.pod("db", NODE_A, "Running", &[("app", true)]).await;
    let mut setup = AgentSetup::new(NODE_A, tmp.path());
    setup.retention = Policy {
        max_archives_per_container: Some(2),
        max_archive_bytes: None,
    };
    let agent = Agent::start(&cluster, runtime(&fake).await, setup).await;
    let kubelets = kubelets_archive(&agent);

    // A pinned one first: exempt, and not counted.
    let mut pinned = api_types::PodCheckpoint::new(
        "web-0",
        PodCheckpointSpec {
            source_pod_name: "web".into(),
            ..Default::default()
        },
    );
    pinned.metadata.annotations = Some(BTreeMap::from([(
        PIN_ANNOTATION.to_owned(),
        "true".to_owned(),
    )]));
    let pinned = cluster
        .pcs()
        .create(&Default::default(), &pinned)
        .await
        .unwrap();
    cluster.finished("web-0").await;
    let other = cluster.create_pc("db-1", "db", &[]).await;
    cluster.finished("db-1").await;
    let mut uids = Vec::new();
    for i in 1..=3 {
        let name = format!("web-{i}");
        uids.push(cluster.create_pc(&name, "web", &[]).await.uid().unwrap());
        cluster.finished(&name).await;
    }
    // The third archive of web/app: the oldest unpinned one goes.
    gone(&cluster, "web-1", Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for name in ["web-0", "web-2", "web-3", "db-1"] {
        assert!(
            cluster.pcs().get_opt(name).await.unwrap().is_some(),
            "{name} was deleted"
        );
    }
    let mut want = vec![
        pinned.uid().unwrap(),
        other.uid().unwrap(),
        uids[1].clone(),
        uids[2].clone(),
    ];
    want.sort();
    assert_eq!(marked_dirs(&agent.checkpoints()), want);
    let files = files_under(&agent.checkpoints());
    assert_eq!(files.len(), 5, "{files:#?}");
    assert!(files.iter().all(|f| !f.starts_with(&uids[0])), "{files:#?}");
    assert!(kubelets.exists());
    let events = wait_events(&cluster, "PodCheckpoint", "web-1", "ArchivesDeleted").await;
    assert_eq!(
        note_of(&events, "MaxArchivesPerContainerExceeded"),
        format!(
            "deleted by checkpoint-shim on node node-a: container {NS}/web/app has 2 newer archives on the node (--max-archives-per-container=2)"
        )
    );
    assert!(
        metric(
            &agent,
            "checkpoint_shim_podcheckpoint_retention_deletions_total{policy=\"max_archives_per_container\"}"
        )
        .ends_with(" 1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byte_budget_deletes_the_oldest_then_refuses_before_writing() {
    let cluster = Cluster::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let fake = fake_with(&[("web", &["app"])]);
    cluster
        .pod("web", NODE_A, "Running", &[("app", true)])
        .await;
    // One archive's size, measured on a throwaway agent with no limit.
    let size = {
        let probe = tempfile::tempdir().unwrap();
        let a = Agent::start(
            &cluster,
            runtime(&fake).await,
            AgentSetup::new(NODE_A, probe.path()),
        )
        .await;
        cluster.create_pc("probe", "web", &[]).await;
        let pc = cluster.finished("probe").await;
        a.stop().await;
        cluster
            .pcs()
            .patch(
                "probe",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": null}})),
            )
            .await
            .unwrap();
        cluster
            .pcs()
            .delete("probe", &Default::default())
            .await
            .unwrap();
        pc.status.unwrap().total_size_bytes.unwrap().unsigned_abs()
    };
    let mut setup = AgentSetup::new(NODE_A, tmp.path());
    setup.retention = Policy {
        max_archives_per_container: None,
        max_archive_bytes: Some(size),
    };
    let agent = Agent::start(&cluster, runtime(&fake).await, setup).await;
    let kubelets = kubelets_archive(&agent);

    // One archive fits; a second one (the fake runtime reports no memory,
    // so no estimate) is written, then the oldest goes.
    let a = cluster.create_pc("web-a", "web", &[]).await;
    cluster.finished("web-a").await;
    let b = cluster.create_pc("web-b", "web", &[]).await;
    assert_eq!(
        ready_reason(&cluster.finished("web-b").await),
        reason::COMPLETED
    );
    gone(&cluster, "web-a", Duration::from_secs(10)).await;
    assert!(!agent.checkpoints().join(a.uid().unwrap()).exists());
    assert_eq!(marked_dirs(&agent.checkpoints()), [b.uid().unwrap()]);
    let events = wait_events(
        &cluster,
        "PodCheckpoint",
        "web-a",
        "MaxArchiveBytesExceeded",
    )
    .await;
    assert_eq!(
        note_of(&events, "MaxArchiveBytesExceeded"),
        format!(
            "deleted by checkpoint-shim on node node-a: its archives ({size} bytes) are the oldest of {} bytes of archives on the node, more than --max-archive-bytes={size} allows",
            2 * size
        )
    );

    // Pinned, web-b fills the budget by itself: the next checkpoint fails
    // before anything is written, saying what uses the room.
    cluster
        .pcs()
        .patch(
            "web-b",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {PIN_ANNOTATION: "true"}}})),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = fake.checkpoint_requests().len();
    cluster.create_pc("web-c", "web", &[]).await;
    let c = cluster.finished("web-c").await;
    let c_ready = c.ready_condition().unwrap();
    assert_eq!(
        (c_ready.reason.as_str(), c_ready.message.clone()),
        (
            reason::FAILED,
            format!(
                "not enough room under --max-archive-bytes={size}: archives on node node-a use {size} bytes, {size} of them pinned (checkpoint.kcr.dev/pin), which no limit removes ({NS}/web-b {size} bytes (pinned)); the size of this checkpoint is unknown (the runtime reports no memory usage)"
            )
        )
    );
    assert_eq!(fake.checkpoint_requests().len(), asked, "nothing written");
    assert!(!agent.checkpoints().join(c.uid().unwrap()).exists());
    assert!(cluster.pcs().get_opt("web-b").await.unwrap().is_some());
    assert!(kubelets.exists());
    assert!(
        metric(
            &agent,
            "checkpoint_shim_podcheckpoint_failures_total{reason=\"archive_budget\"}"
        )
        .ends_with(" 1")
    );
    assert!(
        metric(
            &agent,
            "checkpoint_shim_podcheckpoint_retention_deletions_total{policy=\"max_archive_bytes\"}"
        )
        .ends_with(" 1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_go_after_the_grace_and_nothing_else_does() {
    let cluster = Cluster::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let fake = fake_with(&[("web", &["app"])]);
    cluster
        .pod("web", NODE_A, "Running", &[("app", true)])
        .await;
    let checkpoints = tmp.path().join("checkpoints");
    std::fs::create_dir_all(&checkpoints).unwrap();
    let dir = |name: &str, marked: bool| {
        let d = checkpoints.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join(format!("checkpoint-web_{NS}-app-2026-11-30T07:00:00Z.tar")),
            b"x",
        )
        .unwrap();
        if marked {
            std::fs::write(d.join(MARKER), format!("{NS}/deleted\n")).unwrap();
        }
        d
    };
    // Left by an object deleted while the agent was down.
    let orphan = dir("0b6f4a1c-2d3e-4f50-8a9b-0c1d2e3f4a5b", true);
    // Not the agent's: unmarked, or not named by a UUID.
    let unmarked = dir("1c7a5b2d-3e4f-4a61-9bac-1d2e3f4a5b6c", false);
    let not_uuid = dir("not-a-uid", true);
    // A symbolic link with a UUID name to a marked directory elsewhere.
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join(MARKER), "x").unwrap();
    std::fs::write(elsewhere.path().join("keep.tar"), "x").unwrap();
    let link = checkpoints.join("2d8b6c3e-4f5a-4b72-acbd-2e3f4a5b6c7d");
    std::os::unix::fs::symlink(elsewhere.path(), &link).unwrap();
    let kubelets = checkpoints.join(format!("checkpoint-web_{NS}-app-2026-11-30T07:00:00Z.tar"));
    std::fs::write(&kubelets, b"the kubelet's own").unwrap();
    let everything_but_the_orphan = |files: &[String]| {
        files
            .iter()
            .filter(|f| !f.starts_with("0b6f4a1c"))
            .cloned()
            .collect::<Vec<_>>()
    };
    let before = files_under(&checkpoints);

    // --keep-orphan-archives: nothing goes.
    let mut setup = AgentSetup::new(NODE_A, tmp.path());
    setup.orphan_grace = None;
    let keeping = Agent::start(&cluster, runtime(&fake).await, setup).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(files_under(&checkpoints), before);
    keeping.stop().await;

    let mut setup = AgentSetup::new(NODE_A, tmp.path());
    setup.orphan_grace = Some(Duration::from_secs(2));
    let agent = Agent::start(&cluster, runtime(&fake).await, setup).await;
    // The agent first sees the orphan after this.
    let started = std::time::Instant::now();
    // A live object's directory is no orphan, however long it lives.
    let live = cluster.create_pc("web-1", "web", &[]).await;
    cluster.finished("web-1").await;
    tokio::time::timeout(Duration::from_secs(10), async {
        while orphan.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the orphan was not removed");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "removed {:?} after the agent started, before the grace",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(unmarked.is_dir() && not_uuid.is_dir() && kubelets.exists());
    assert!(elsewhere.path().join("keep.tar").exists() && link.exists());
    assert!(agent.checkpoints().join(live.uid().unwrap()).is_dir());
    let mut want = everything_but_the_orphan(&before);
    let live_files: Vec<String> = files_under(&checkpoints)
        .into_iter()
        .filter(|f| f.starts_with(&live.uid().unwrap()))
        .collect();
    assert_eq!(live_files.len(), 1);
    want.extend(live_files);
    want.sort();
    assert_eq!(files_under(&checkpoints), want);

    let events = wait_events(&cluster, "Node", NODE_A, "OrphanArchivesDeleted").await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(
        note_of(&events, "OrphanArchivesDeleted"),
        format!(
            "removed {} (1 archive file, 1 bytes) of PodCheckpoint {NS}/deleted (UID 0b6f4a1c-2d3e-4f50-8a9b-0c1d2e3f4a5b), gone for at least 2s (--orphan-archive-grace)",
            orphan.display()
        )
    );
    assert!(
        metric(
            &agent,
            "checkpoint_shim_podcheckpoint_retention_deletions_total{policy=\"orphan\"}"
        )
        .ends_with(" 1")
    );
    assert!(
        metric(
            &agent,
            "checkpoint_shim_podcheckpoint_archive_bytes_deleted_total"
        )
        .ends_with(" 1")
    );
}

fn ready_reason(pc: &api_types::PodCheckpoint) -> String {
    pc.ready_condition()
        .map(|c| c.reason.clone())
        .unwrap_or_default()
}
