//! Checkpoints of one container take turns (issue 10): one at a time, the
//! next no earlier than 1 s after the node answered, in one replica and
//! across replicas (Leases); a bounded queue; a 409 that says what is in
//! progress. The fake node names archives as the kubelet does (to the
//! second, the same path twice in one second), so distinct paths prove the
//! spacing.

use std::sync::Arc;
use std::time::Duration;

use api_types::ContainerRef;
use http::StatusCode;
use serde_json::Value;
use tokio::time::Instant;

use super::{Harness, assert_status, harness_with};
use crate::concurrency::NodeLimiter;
use crate::testing::{FakeAnswer, FakeKubeletClient, FakeLeases};
use crate::turns::{ContainerTurns, Turn};

/// A replica on fakes whose node allows 2 checkpoints at once and names
/// archives like the kubelet, answering after `delay`.
fn replica(
    kubelet: &Arc<FakeKubeletClient>,
    leases: Arc<dyn crate::leases::ContainerLeases>,
) -> Harness {
    let kubelet = kubelet.clone();
    harness_with(move |c| {
        c.rest.limiter = NodeLimiter::new(2);
        c.rest.kubelet_client = kubelet;
        c.rest.turns = ContainerTurns::new(leases);
    })
}

fn kubelet_like(delay: Duration) -> Arc<FakeKubeletClient> {
    let k = Arc::new(FakeKubeletClient::new(FakeAnswer::KubeletArchive));
    k.set_delay(delay);
    k
}

fn archive(body: &Value) -> String {
    body["status"]["archivePath"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Every call arrived no earlier than 1 s after the previous one was answered.
fn assert_spaced(kubelet: &FakeKubeletClient) {
    let times = kubelet.call_times();
    for pair in times.windows(2) {
        let answered = pair[0].1.expect("an earlier call was not answered");
        assert!(
            pair[1].0 >= answered + Duration::from_secs(1),
            "a call went {:?} after the previous answer: {times:?}",
            pair[1].0.saturating_duration_since(answered)
        );
    }
}

#[tokio::test]
async fn concurrent_checkpoints_of_one_container_take_turns_a_second_apart() {
    let kubelet = kubelet_like(Duration::from_millis(200));
    let h = Arc::new(replica(&kubelet, Arc::new(FakeLeases::default())));
    let run = |h: Arc<Harness>| tokio::spawn(async move { h.checkpoint("single", "").await });
    let (a, b) = (run(h.clone()), run(h.clone()));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    assert_eq!(a.0, StatusCode::OK, "{}", a.1);
    assert_eq!(b.0, StatusCode::OK, "{}", b.1);
    assert_ne!(
        archive(&a.1),
        archive(&b.1),
        "the kubelet-like node would overwrite"
    );
    assert_eq!(kubelet.calls().len(), 2);
    assert_spaced(&kubelet);

    // One after the other, at once: the same.
    let (code, c) = h.checkpoint("single", "").await;
    assert_eq!(code, StatusCode::OK, "{c}");
    assert!(![archive(&a.1), archive(&b.1)].contains(&archive(&c)));
    assert_spaced(&kubelet);
}

#[tokio::test]
async fn different_containers_go_in_parallel() {
    let kubelet = kubelet_like(Duration::from_millis(600));
    let h = Arc::new(replica(&kubelet, Arc::new(FakeLeases::default())));
    let run = |h: Arc<Harness>, c: &'static str| {
        tokio::spawn(async move { h.checkpoint("multi", &format!("container={c}")).await })
    };
    let started = Instant::now();
    let (a, b) = (run(h.clone(), "app"), run(h.clone(), "sidecar"));
    assert_eq!(a.await.unwrap().0, StatusCode::OK);
    assert_eq!(b.await.unwrap().0, StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_millis(1100),
        "{:?}",
        started.elapsed()
    );
    let times = kubelet.call_times();
    assert_eq!(times.len(), 2);
    assert!(
        times[1].0.saturating_duration_since(times[0].0) < Duration::from_millis(300),
        "{times:?}"
    );
}

#[tokio::test]
async fn a_full_queue_is_refused_with_a_conflict() {
    let kubelet = kubelet_like(Duration::from_millis(1500));
    let k = kubelet.clone();
    let h = Arc::new(harness_with(move |c| {
        c.rest.limiter = NodeLimiter::new(2);
        c.rest.kubelet_client = k;
        c.rest.turns = ContainerTurns::new(Arc::new(FakeLeases::default())).with_max_waiting(1);
    }));
    let run = |h: Arc<Harness>| tokio::spawn(async move { h.checkpoint("single", "").await });
    let first = run(h.clone());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = run(h.clone());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let (code, body) = h.checkpoint("single", "").await;
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "refused at once"
    );
    assert_status(code, &body, 409, "Conflict");
    assert_eq!(
        body["message"],
        "a checkpoint of container app of pod ns/single is in progress and 1 more requests are waiting for it (at most 1 may wait); checkpoints of one container go to its node one at a time, at least 1s apart; try again later"
    );
    insta::assert_json_snapshot!("status_container_queue_full", body);
    assert_eq!(first.await.unwrap().0, StatusCode::OK);
    assert_eq!(second.await.unwrap().0, StatusCode::OK);
    assert_eq!(
        kubelet.calls().len(),
        2,
        "the refused request never reached the node"
    );
    let events = h.fakes.events.events();
    assert!(
        events
            .iter()
            .any(|e| e.reason == "CheckpointFailed" && e.message.contains("(Conflict)")),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_request_waits_no_longer_than_its_timeout() {
    let kubelet = kubelet_like(Duration::from_secs(3));
    let h = Arc::new(replica(&kubelet, Arc::new(FakeLeases::default())));
    let first = {
        let h = h.clone();
        tokio::spawn(async move { h.checkpoint("single", "").await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let (code, body) = h.checkpoint("single", "timeoutSeconds=1").await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert_status(code, &body, 409, "Conflict");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("a checkpoint of container app of pod ns/single is in progress; checkpoints of one container go to its node one at a time, at least 1s apart; waited 1"),
        "{message}"
    );
    assert!(
        message.ends_with(
            "for its turn (the request's timeout, at most --node-queue-timeout); try again later"
        ),
        "{message}"
    );
    assert_eq!(first.await.unwrap().0, StatusCode::OK);
    assert_eq!(kubelet.calls().len(), 1);
}

#[tokio::test]
async fn two_replicas_take_turns_through_the_lease() {
    let kubelet = kubelet_like(Duration::from_millis(200));
    let leases = FakeLeases::default();
    let r1 = Arc::new(replica(&kubelet, Arc::new(leases.replica("replica-1"))));
    let r2 = Arc::new(replica(&kubelet, Arc::new(leases.replica("replica-2"))));
    let run = |h: Arc<Harness>| tokio::spawn(async move { h.checkpoint("single", "").await });
    let (a, b) = (run(r1.clone()), run(r2.clone()));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    assert_eq!(a.0, StatusCode::OK, "{}", a.1);
    assert_eq!(b.0, StatusCode::OK, "{}", b.1);
    assert_ne!(archive(&a.1), archive(&b.1));
    assert_spaced(&kubelet);
    // Released a second after the last answer.
    let target = ContainerRef::new("ns", "single", "app");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(leases.holder(&target), None);
}

#[tokio::test]
async fn a_lease_left_by_a_crashed_replica_expires() {
    let kubelet = kubelet_like(Duration::ZERO);
    let leases = FakeLeases::default();
    let h = replica(&kubelet, Arc::new(leases.replica("replica-1")));
    let target = ContainerRef::new("ns", "single", "app");

    // Held for 30 s more: a request that may wait 1 s hears who holds it.
    leases.plant(&target, "crashed-replica_1", Duration::from_secs(30));
    let (code, body) = h.checkpoint("single", "timeoutSeconds=1").await;
    assert_status(code, &body, 409, "Conflict");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("a checkpoint of container app of pod ns/single is in progress (checkpoint-apiserver replica crashed-replica_1 holds Lease kcr-system/checkpoint-"),
        "{message}"
    );
    assert!(kubelet.calls().is_empty());

    // Expiring in 1.5 s: the request waits for it, then goes.
    leases.plant(&target, "crashed-replica_1", Duration::from_millis(1500));
    let started = Instant::now();
    let (code, body) = h.checkpoint("single", "").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(kubelet.calls().len(), 1);
}

/// The real Lease client against the kube-apiserver stand-in, with the
/// RBAC of deploy/ as the policy and the server's service account as the
/// user: what the Role grants is enough, and the stand-in's optimistic
/// concurrency decides races.
mod kube_leases {
    use super::*;
    use crate::leases::{self, ContainerLeases, KubeLeases, lease_name};
    use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
    use kcr_testkit::standin::{self, Config, Running};
    use kube::api::PostParams;

    const SA: &str = "system:serviceaccount:kcr-system:checkpoint-apiserver";

    async fn client(running: &Running, user: &str, groups: &[&str]) -> kube::Client {
        let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
        let yaml = running.kubeconfig(user, &groups).unwrap();
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(cfg).unwrap()
    }

    /// The stand-in with deploy/'s RBAC and the kcr-system namespace; a
    /// client as the server's service account.
    async fn start() -> (tempfile::TempDir, Running, kube::Client) {
        let dir = tempfile::tempdir().unwrap();
        let deploy = kcr_testkit::kustomize::Rendered::of("deploy")
            .unwrap_or_else(|e| panic!("rendering deploy/ (needs kubectl): {e}"));
        std::fs::write(dir.path().join("policy.yaml"), &deploy.yaml).unwrap();
        std::fs::write(
            dir.path().join("objects.yaml"),
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: kcr-system}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n",
        )
        .unwrap();
        let mut config = Config::new(dir.path().join("pki"));
        config.policy_files = vec![dir.path().join("policy.yaml")];
        config.object_files = vec![dir.path().join("objects.yaml")];
        let running = standin::start(config).await.unwrap();
        let sa = client(
            &running,
            SA,
            &[
                "system:serviceaccounts",
                "system:serviceaccounts:kcr-system",
            ],
        )
        .await;
        (dir, running, sa)
    }

    fn soon(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[tokio::test]
    async fn take_wait_release_and_take_over_an_expired_lease() {
        let (_dir, _running, sa) = start().await;
        let target = ContainerRef::new("ns", "single", "app");
        let r1 = KubeLeases::new(sa.clone(), "kcr-system", "replica-1_a".into());
        let r2 = KubeLeases::new(sa.clone(), "kcr-system", "replica-2_b".into());
        let hold = Duration::from_secs(30);

        let held = r1.acquire(&target, hold, soon(100)).await.unwrap();
        let api: kube::Api<Lease> = kube::Api::namespaced(sa.clone(), "kcr-system");
        let lease = api.get(&lease_name(&target)).await.unwrap();
        let spec = lease.spec.clone().unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("replica-1_a"));
        assert_eq!(spec.lease_duration_seconds, Some(30));
        let annotations = lease.metadata.annotations.clone().unwrap();
        assert_eq!(annotations[leases::ANNOTATION_NAMESPACE], "ns");
        assert_eq!(annotations[leases::ANNOTATION_POD], "single");
        assert_eq!(annotations[leases::ANNOTATION_CONTAINER], "app");

        // Held by a live replica: the other waits until its bound, then hears who.
        let started = Instant::now();
        let err = r2.acquire(&target, hold, soon(600)).await.unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(600));
        assert!(
            matches!(&err, leases::Error::Held { holder, .. } if holder == "replica-1_a"),
            "{err:?}"
        );
        assert_eq!(err.status().code, Some(409));

        // A waiter gets it once released.
        let waiter = {
            let r2 = r2.clone();
            let target = target.clone();
            tokio::spawn(async move { r2.acquire(&target, hold, soon(3000)).await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        r1.release(held).await;
        let held2 = waiter.await.unwrap().unwrap();
        let spec = api.get(&lease_name(&target)).await.unwrap().spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("replica-2_b"));
        r2.release(held2).await;
        assert!(
            api.get_opt(&lease_name(&target)).await.unwrap().is_none(),
            "released = deleted"
        );

        // A Lease a crashed replica left, renewed 10 min ago for 60 s: taken over at once.
        let renewed =
            k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(600);
        api.create(
            &PostParams::default(),
            &Lease {
                metadata: ObjectMeta {
                    name: Some(lease_name(&target)),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some("crashed_c".into()),
                    lease_duration_seconds: Some(60),
                    renew_time: Some(MicroTime(renewed)),
                    lease_transitions: Some(3),
                    ..Default::default()
                }),
            },
        )
        .await
        .unwrap();
        let started = Instant::now();
        let held = r1.acquire(&target, hold, soon(100)).await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(500));
        let spec = api.get(&lease_name(&target)).await.unwrap().spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("replica-1_a"));
        assert_eq!(spec.lease_transitions, Some(4));
        // Released with a stale resourceVersion (someone took it over): left alone.
        let stale = crate::leases::HeldLease {
            name: held.name.clone(),
            resource_version: "1".into(),
        };
        r2.release(stale).await;
        assert!(api.get_opt(&held.name).await.unwrap().is_some());
        r1.release(held).await;
    }

    #[tokio::test]
    async fn a_stale_resource_version_is_a_conflict() {
        // What the optimistic concurrency of the takeover relies on (KUBE-API-OBSERVED §4).
        let (_dir, _running, sa) = start().await;
        let api: kube::Api<Lease> = kube::Api::namespaced(sa, "kcr-system");
        let mut lease = api
            .create(
                &PostParams::default(),
                &Lease {
                    metadata: ObjectMeta {
                        name: Some("checkpoint-x".into()),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec::default()),
                },
            )
            .await
            .unwrap();
        let first = lease.clone();
        lease.spec = Some(LeaseSpec {
            holder_identity: Some("a".into()),
            ..Default::default()
        });
        api.replace("checkpoint-x", &PostParams::default(), &lease)
            .await
            .unwrap();
        let mut stale = first;
        stale.spec = Some(LeaseSpec {
            holder_identity: Some("b".into()),
            ..Default::default()
        });
        match api
            .replace("checkpoint-x", &PostParams::default(), &stale)
            .await
        {
            Err(kube::Error::Api(s)) => assert_eq!(s.code, 409, "{s:?}"),
            other => panic!("expected 409, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn the_role_allows_leases_in_kcr_system_only() {
        let (_dir, _running, sa) = start().await;
        let target = ContainerRef::new("ns", "single", "app");
        let elsewhere = KubeLeases::new(sa, "other", "replica-1_a".into());
        let err = elsewhere
            .acquire(&target, Duration::from_secs(5), soon(100))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, leases::Error::Api { code: 403, .. }),
            "{err:?}"
        );
        assert_eq!(err.status().code, Some(500));
        assert!(
            err.to_string()
                .starts_with("failed to take Lease other/checkpoint-"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn two_replicas_on_one_api_server_take_turns() {
        let (_dir, _running, sa) = start().await;
        let kubelet = kubelet_like(Duration::from_millis(200));
        let r1 = Arc::new(replica(
            &kubelet,
            Arc::new(KubeLeases::new(
                sa.clone(),
                "kcr-system",
                "replica-1_a".into(),
            )),
        ));
        let r2 = Arc::new(replica(
            &kubelet,
            Arc::new(KubeLeases::new(
                sa.clone(),
                "kcr-system",
                "replica-2_b".into(),
            )),
        ));
        let run = |h: Arc<Harness>| tokio::spawn(async move { h.checkpoint("single", "").await });
        let (a, b, c) = (run(r1.clone()), run(r2.clone()), run(r1.clone()));
        let (a, b, c) = (a.await.unwrap(), b.await.unwrap(), c.await.unwrap());
        for r in [&a, &b, &c] {
            assert_eq!(r.0, StatusCode::OK, "{}", r.1);
        }
        let paths: std::collections::BTreeSet<_> =
            [&a, &b, &c].iter().map(|r| archive(&r.1)).collect();
        assert_eq!(paths.len(), 3, "{paths:?}");
        assert_spaced(&kubelet);
        // Released after the last answer and the spacing.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let api: kube::Api<Lease> = kube::Api::namespaced(sa, "kcr-system");
        let target = ContainerRef::new("ns", "single", "app");
        assert!(api.get_opt(&lease_name(&target)).await.unwrap().is_none());
    }
}

/// `target`'s turn, waiting at most a second, its Lease held for a minute.
async fn take(turns: &ContainerTurns, target: &ContainerRef) -> crate::turns::Result<Turn> {
    turns
        .acquire(
            target,
            Instant::now() + Duration::from_secs(1),
            Duration::from_secs(60),
        )
        .await
}

/// A stopping server waits for the turns ending in the background: their
/// Leases are gone when it exits, so a successor replica (another holder
/// identity) does not wait them out.
#[tokio::test]
async fn finish_releases_the_leases_of_ending_turns() {
    let leases = FakeLeases::default();
    let target = ContainerRef::new("ns", "p", "c");
    let turns = ContainerTurns::new(Arc::new(leases.clone()));
    let turn = take(&turns, &target)
        .await
        .expect("a free container's turn");
    assert!(leases.holder(&target).is_some(), "the turn holds the Lease");
    turn.end_after(Duration::from_millis(200));
    assert_eq!(turns.finish(Duration::from_secs(5)).await, 0);
    assert_eq!(
        leases.holder(&target),
        None,
        "released before finish returned"
    );

    // A turn that would end after the grace is reported, not waited for.
    let turns = ContainerTurns::new(Arc::new(leases.clone()));
    let turn = take(&turns, &target).await.expect("released above");
    turn.end_after(Duration::from_secs(30));
    assert_eq!(turns.finish(Duration::from_millis(100)).await, 1);
}
