use std::os::unix::fs::PermissionsExt;
use std::time::Instant;

use super::*;
use crate::cri::{ContainerSpec, Cri, PodRunner, PodSpec};

fn two_pods() -> FakeCri {
    FakeCri::with_containers([
        FakeContainer::running("c1", "default", "web", "app"),
        FakeContainer::running("c2", "default", "web", "sidecar"),
        FakeContainer::running("c3", "other", "web", "app").with_state(FakeState::Exited),
    ])
}

async fn client(fake: &FakeCri) -> Cri {
    Cri::new(fake.channel().await.expect("duplex channel"))
}

fn label_filter(pairs: &[(&str, &str)]) -> api::ContainerFilter {
    api::ContainerFilter {
        label_selector: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Default::default()
    }
}

fn ids(list: &[api::Container]) -> Vec<&str> {
    let mut ids: Vec<&str> = list.iter().map(|c| c.id.as_str()).collect();
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn version_over_duplex() {
    let mut cri = client(&FakeCri::new()).await;
    let v = cri.version().await.expect("version");
    assert_eq!(v.runtime_name, "fake-cri");
    assert_eq!(v.runtime_api_version, "v1");
}

#[tokio::test]
async fn list_containers_honours_the_filter() {
    let mut cri = client(&two_pods()).await;
    let all = cri.list_containers(None).await.expect("list");
    assert_eq!(ids(&all), ["c1", "c2", "c3"]);

    let by_id = api::ContainerFilter {
        id: "c2".into(),
        ..Default::default()
    };
    assert_eq!(
        ids(&cri.list_containers(Some(by_id)).await.expect("list")),
        ["c2"]
    );

    let running = api::ContainerFilter {
        state: Some(api::ContainerStateValue {
            state: api::ContainerState::ContainerRunning as i32,
        }),
        ..Default::default()
    };
    assert_eq!(
        ids(&cri.list_containers(Some(running)).await.expect("list")),
        ["c1", "c2"]
    );

    let kubelet = label_filter(&[
        (labels::POD_NAMESPACE, "default"),
        (labels::POD_NAME, "web"),
        (labels::CONTAINER_NAME, "app"),
    ]);
    let found = cri.list_containers(Some(kubelet)).await.expect("list");
    assert_eq!(ids(&found), ["c1"]);
    assert_eq!(found[0].labels[labels::POD_UID], "uid-default-web");
    assert_eq!(
        found[0].metadata.as_ref().map(|m| m.name.as_str()),
        Some("app")
    );

    let nobody = label_filter(&[(labels::POD_NAME, "nope")]);
    assert!(
        cri.list_containers(Some(nobody))
            .await
            .expect("list")
            .is_empty()
    );

    let exited_other = api::ContainerFilter {
        state: Some(api::ContainerStateValue {
            state: api::ContainerState::ContainerExited as i32,
        }),
        ..label_filter(&[(labels::POD_NAMESPACE, "other")])
    };
    assert_eq!(
        ids(&cri.list_containers(Some(exited_other)).await.expect("list")),
        ["c3"]
    );
}

#[tokio::test]
async fn container_status_and_unknown_ids() {
    let mut cri = client(&two_pods()).await;
    assert_eq!(
        cri.container_state("c3").await.expect("state"),
        api::ContainerState::ContainerExited
    );
    let err = cri.container_status("zzz").await.expect_err("unknown");
    let crate::cri::Error::Call { status, .. } = err else {
        panic!("unexpected {err}");
    };
    assert_eq!(status.code(), tonic::Code::NotFound);
}

async fn checkpoint(
    cri: &mut Cri,
    id: &str,
    location: &Path,
) -> std::result::Result<(), Box<tonic::Status>> {
    match cri.checkpoint(id, location, 7).await {
        Ok(()) => Ok(()),
        Err(crate::cri::Error::Call { status, .. }) => Err(status),
        Err(other) => panic!("unexpected {other}"),
    }
}

#[tokio::test]
async fn instant_writes_a_valid_archive_0600_and_records_the_request() {
    let fake = two_pods();
    let mut cri = client(&fake).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let location = dir.path().join("checkpoint.tar");
    checkpoint(&mut cri, "c1", &location)
        .await
        .expect("checkpoint");
    let mode = std::fs::metadata(&location)
        .expect("archive")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let report = crate::archive::check_archive(&location, "app").expect("valid archive");
    assert_eq!(report.spec_pod_namespace.as_deref(), Some("default"));
    assert_eq!(
        fake.checkpoint_requests(),
        [CheckpointRecord {
            container_id: "c1".into(),
            location: location.to_string_lossy().into_owned(),
            timeout: 7,
        }]
    );
}

#[tokio::test]
async fn slow_waits_then_succeeds() {
    let fake = two_pods();
    fake.set_mode(CheckpointMode::Slow(Duration::from_millis(300)));
    let mut cri = client(&fake).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let location = dir.path().join("slow.tar");
    let start = Instant::now();
    checkpoint(&mut cri, "c1", &location)
        .await
        .expect("checkpoint");
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert!(location.exists());
}

#[tokio::test]
async fn hang_never_answers() {
    let fake = two_pods();
    fake.set_mode(CheckpointMode::Hang);
    let mut cri = client(&fake).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let location = dir.path().join("hang.tar");
    let res = tokio::time::timeout(
        Duration::from_millis(300),
        checkpoint(&mut cri, "c1", &location),
    )
    .await;
    assert!(res.is_err(), "hang mode answered: {res:?}");
    assert!(!location.exists());
    assert_eq!(fake.checkpoint_requests().len(), 1);
    assert_eq!(fake.max_in_flight(), 1);
}

#[tokio::test]
async fn fail_answers_unknown_with_the_message() {
    let fake = two_pods();
    fake.set_mode(CheckpointMode::Fail("criu failed: boom".into()));
    let mut cri = client(&fake).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let status = checkpoint(&mut cri, "c1", &dir.path().join("f.tar"))
        .await
        .expect_err("fails");
    assert_eq!(status.code(), tonic::Code::Unknown);
    assert_eq!(status.message(), "criu failed: boom");
}

#[tokio::test]
async fn unimplemented_looks_like_containerd_1x() {
    let fake = two_pods();
    fake.set_mode(CheckpointMode::Unimplemented);
    let mut cri = client(&fake).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let status = checkpoint(&mut cri, "c1", &dir.path().join("u.tar"))
        .await
        .expect_err("unimplemented");
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    assert_eq!(
        status.message(),
        "method CheckpointContainer not implemented"
    );
}

#[tokio::test]
async fn partial_then_fail_leaves_a_broken_file() {
    let fake = two_pods();
    fake.set_mode(CheckpointMode::PartialThenFail);
    let mut cri = client(&fake).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let location = dir.path().join("p.tar");
    let status = checkpoint(&mut cri, "c1", &location)
        .await
        .expect_err("fails");
    assert_eq!(status.code(), tonic::Code::Unknown);
    let size = std::fs::metadata(&location).expect("partial file").len();
    assert!(size > 0);
    assert!(crate::archive::check_archive(&location, "app").is_err());
}

#[tokio::test]
async fn checkpoint_of_unknown_or_stopped_container() {
    let mut cri = client(&two_pods()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let status = checkpoint(&mut cri, "nope", &dir.path().join("x.tar"))
        .await
        .expect_err("unknown");
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert!(
        status.message().contains("not found"),
        "{}",
        status.message()
    );
    let status = checkpoint(&mut cri, "c3", &dir.path().join("y.tar"))
        .await
        .expect_err("exited");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
}

#[tokio::test]
async fn mode_switches_at_run_time_and_through_a_file() {
    let fake = two_pods();
    let mut cri = client(&fake).await;
    let dir = tempfile::tempdir().expect("tempdir");
    checkpoint(&mut cri, "c1", &dir.path().join("1.tar"))
        .await
        .expect("instant");
    fake.set_mode(CheckpointMode::Fail("now failing".into()));
    assert!(
        checkpoint(&mut cri, "c1", &dir.path().join("2.tar"))
            .await
            .is_err()
    );
    fake.set_mode(CheckpointMode::Instant);
    let mode_file = dir.path().join("mode");
    fake.set_mode_file(&mode_file);
    checkpoint(&mut cri, "c1", &dir.path().join("3.tar"))
        .await
        .expect("no file yet");
    std::fs::write(&mode_file, "unimplemented\n").expect("write mode");
    let status = checkpoint(&mut cri, "c1", &dir.path().join("4.tar"))
        .await
        .expect_err("file says unimplemented");
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    assert_eq!(fake.checkpoint_requests().len(), 4);
}

#[tokio::test]
async fn concurrent_checkpoints_are_counted() {
    let fake = two_pods();
    fake.set_mode(CheckpointMode::Slow(Duration::from_millis(200)));
    let cri = client(&fake).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut a, mut b) = (cri.clone(), cri.clone());
    let (pa, pb) = (dir.path().join("a.tar"), dir.path().join("b.tar"));
    let (ra, rb) = tokio::join!(checkpoint(&mut a, "c1", &pa), checkpoint(&mut b, "c2", &pb));
    ra.expect("a");
    rb.expect("b");
    assert_eq!(fake.max_in_flight(), 2);
}

#[tokio::test]
async fn pod_runner_works_against_the_fake() {
    let fake = FakeCri::new();
    let mut runner = PodRunner::new(client(&fake).await, "/kcr-fake");
    let pod = PodSpec::new("ns1", "multi").with_uid("uid-1");
    let running = runner
        .run_pod(
            &pod,
            &[
                ContainerSpec::new("one"),
                ContainerSpec::new("two").with_command(["/bin/sleep", "inf"]),
            ],
        )
        .await
        .expect("run pod");
    assert_eq!(running.containers.len(), 2);
    let two = running.container_id("two").expect("two").to_owned();
    let filter = label_filter(&[
        (labels::POD_NAMESPACE, "ns1"),
        (labels::POD_NAME, "multi"),
        (labels::CONTAINER_NAME, "two"),
    ]);
    let found = runner
        .cri()
        .list_containers(Some(filter))
        .await
        .expect("list");
    assert_eq!(ids(&found), [two.as_str()]);
    assert_eq!(found[0].labels[labels::POD_UID], "uid-1");
    assert_eq!(found[0].state, api::ContainerState::ContainerRunning as i32);
    assert_eq!(
        runner
            .cri()
            .find_pods("ns1", "multi")
            .await
            .expect("pods")
            .len(),
        1
    );

    runner.remove_pod(&running).await.expect("remove");
    assert!(fake.containers().is_empty());
    assert!(runner.cri().list_pods(None).await.expect("pods").is_empty());
}

#[tokio::test]
async fn serves_on_a_unix_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("fake.sock");
    let fake = two_pods();
    let server = fake.spawn_unix(&socket).await.expect("serve");
    let mut cri = Cri::connect(server.path()).await.expect("connect");
    assert_eq!(
        cri.version().await.expect("version").runtime_name,
        "fake-cri"
    );
    assert_eq!(cri.list_containers(None).await.expect("list").len(), 3);
    drop(server);
    assert!(!socket.exists());
}

#[test]
fn modes_parse() {
    let cases = [
        ("instant", CheckpointMode::Instant),
        (
            "slow:1.5",
            CheckpointMode::Slow(Duration::from_millis(1500)),
        ),
        ("hang", CheckpointMode::Hang),
        ("fail:criu: boom", CheckpointMode::Fail("criu: boom".into())),
        ("unimplemented", CheckpointMode::Unimplemented),
        ("partial", CheckpointMode::PartialThenFail),
    ];
    for (text, want) in cases {
        assert_eq!(text.parse::<CheckpointMode>().expect(text), want, "{text}");
    }
    for bad in ["", "slow", "slow:x", "slow:-1", "sometimes"] {
        let err = bad.parse::<CheckpointMode>().expect_err(bad);
        assert!(err.to_string().contains("invalid checkpoint mode"), "{err}");
    }
}

#[test]
fn containers_file_json_and_yaml() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("c.json");
    std::fs::write(
        &json,
        r#"[{"id": "c1", "namespace": "default", "pod": "web", "name": "app", "state": "exited"}]"#,
    )
    .expect("write");
    let list = FakeCri::load_containers(&json).expect("json");
    assert_eq!(list[0].state, FakeState::Exited);
    let yaml = dir.path().join("c.yaml");
    std::fs::write(
        &yaml,
        "- id: c1\n  namespace: default\n  pod: web\n  name: app\n  uid: u1\n",
    )
    .expect("write");
    let list = FakeCri::load_containers(&yaml).expect("yaml");
    assert_eq!(list[0].uid, "u1");
    assert_eq!(list[0].state, FakeState::Running);
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{").expect("write");
    assert!(FakeCri::load_containers(&bad).is_err());
}
