#![allow(clippy::unwrap_used)]
//! The archive endpoint's reads against kube-apiserver-standin with the
//! shim's RBAC from deploy/ (`get podcheckpoints`): a PodCheckpoint the
//! controller completed on the fake CRI is served byte for byte, in ranges,
//! and only by its UID.

mod agent;

use std::sync::Arc;

use agent::{Agent, AgentSetup, Cluster, NS, SHIM_SA, container_id};
use http_body_util::BodyExt;
use kcr_testkit::fake_cri::{FakeContainer, FakeCri};
use kube::ResourceExt;
use kubelet_shim::archive::{ArchiveServer, KubePodCheckpoints, parse_archive_request};
use kubelet_shim::runtime::{CriRuntime, RuntimeService};

const NODE_A: &str = "node-a";

async fn answer(server: &ArchiveServer, name: &str, query: &str) -> (u16, Option<String>, Vec<u8>) {
    let req = parse_archive_request(&format!("/podcheckpoints/{NS}/{name}/archive"), Some(query))
        .unwrap();
    let resp = server.respond(&req).await;
    let code = resp.status().as_u16();
    let range = resp
        .headers()
        .get(http::header::CONTENT_RANGE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (code, range, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_archive_is_served_in_ranges_by_uid() {
    let cluster = Cluster::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeCri::new();
    fake.add_container(FakeContainer::running(
        container_id("web", "app"),
        NS,
        "web",
        "app",
    ));
    cluster
        .pod("web", NODE_A, "Running", &[("app", true)])
        .await;
    let runtime: Arc<dyn RuntimeService> = Arc::new(CriRuntime::new(fake.channel().await.unwrap()));
    let agent = Agent::start(&cluster, runtime, AgentSetup::new(NODE_A, tmp.path())).await;
    let created = cluster.create_pc("web-1", "web", &["app"]).await;
    let pc = cluster.finished("web-1").await;
    let archive = pc.status.clone().unwrap().checkpointed_containers[0]
        .archive
        .clone()
        .unwrap();
    let on_disk = std::fs::read(agent.checkpoints().join(&archive.path)).unwrap();
    assert!(!on_disk.is_empty());
    let size = on_disk.len();

    // The endpoint reads the object as the shim's ServiceAccount.
    let server = ArchiveServer::new(
        Arc::new(KubePodCheckpoints::new(cluster.client_for(SHIM_SA).await)),
        agent.checkpoints(),
        NODE_A.into(),
    );
    let uid = created.uid().unwrap();
    let (code, range, body) = answer(&server, "web-1", &format!("container=app&uid={uid}")).await;
    assert_eq!(code, 200);
    assert_eq!(range, Some(format!("bytes 0-{}/{size}", size - 1)));
    assert!(body == on_disk, "the bytes differ from the node's file");

    let (code, range, body) = answer(
        &server,
        "web-1",
        &format!("container=app&uid={uid}&offset=7&length=100"),
    )
    .await;
    assert_eq!(code, 200);
    let end = (7 + 100).min(size);
    assert_eq!(range, Some(format!("bytes 7-{}/{size}", end - 1)));
    assert_eq!(body, on_disk[7..end]);

    let (code, range, _) = answer(
        &server,
        "web-1",
        &format!("container=app&uid={uid}&offset={size}"),
    )
    .await;
    assert_eq!((code, range), (416, Some(format!("bytes */{size}"))));

    // Another UID (the object replaced under the same name) is not served.
    let (code, _, body) = answer(
        &server,
        "web-1",
        "container=app&uid=00000000-0000-0000-0000-000000000000",
    )
    .await;
    assert_eq!(code, 404, "{}", String::from_utf8_lossy(&body));
    let (code, _, _) = answer(&server, "ghost", &format!("container=app&uid={uid}")).await;
    assert_eq!(code, 404);
    agent.stop().await;
}
