//! The built `kubectl-checkpoint` on the declarative path, against the real
//! kube-apiserver-standin with deploy/crd's PodCheckpoint CRD and deploy/'s
//! roles, while the test plays the node agent through the API: the five
//! lines per container, `-o json|yaml`, `--wait=false`, the agent's
//! failures, an agent that never comes, Ctrl-C, forced `--api` both ways,
//! and users with only checkpoint-creator, only the editor or the viewer
//! role.
#![allow(clippy::unwrap_used)]

mod standin;

use std::time::Duration;

use api_types::podcheckpoint::{PodCheckpoint, reason};
use pretty_assertions::assert_eq;
use standin::{Behaviour, CREATOR, Cluster, EDITOR, Run, VIEWER, command, five_lines, output};

const PLUGIN: &str = env!("CARGO_BIN_EXE_kubectl-checkpoint");

async fn run(cluster: &Cluster, user: &str, args: &[&str]) -> Run {
    let kubeconfig = cluster.kubeconfig(user);
    output(&mut command(
        PLUGIN.as_ref(),
        cluster.dir.path(),
        &kubeconfig,
        args,
    ))
    .await
}

fn assert_ok(r: &Run, stdout: &str, stderr: &str) {
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (Some(0), stdout, stderr),
        "{r:?}"
    );
}

fn assert_fails(r: &Run, stderr: &str) {
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (Some(1), "", stderr),
        "{r:?}"
    );
}

async fn objects(cluster: &Cluster) -> Vec<PodCheckpoint> {
    cluster
        .pod_checkpoints("default")
        .list(&Default::default())
        .await
        .unwrap()
        .items
}

/// The pod's UID as the server set it.
async fn uid(cluster: &Cluster, pod: &str) -> String {
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(cluster.admin.clone(), "default");
    pods.get(pod).await.unwrap().metadata.uid.unwrap()
}

const QUICK: Behaviour = Behaviour::Complete {
    after: Duration::from_millis(300),
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creator_checkpoints_one_container_and_gets_five_lines() {
    let cluster = Cluster::start(true, None).await;
    let _agent = cluster.agent(QUICK);
    let r = run(&cluster, CREATOR, &["counter", "--timeout", "30s"]).await;
    assert_ok(&r, &five_lines("default", "counter", "app"), "");

    let created = objects(&cluster).await;
    assert_eq!(created.len(), 1);
    let pc = &created[0];
    assert!(pc.metadata.name.as_deref().unwrap().starts_with("counter-"));
    assert_eq!(
        serde_json::to_value(&pc.spec).unwrap(),
        serde_json::json!({"sourcePodName": "counter", "sourcePodUID": uid(&cluster, "counter").await,
                           "containers": ["app"], "timeoutSeconds": 30})
    );
    assert!(pc.is_ready());

    // TYPE/NAME, and the default container with kubectl's notice
    let r = run(&cluster, CREATOR, &["deploy/web"]).await;
    assert_ok(
        &r,
        &five_lines("default", "web-2", "nginx"),
        "Using pod/web-2\n",
    );
    let r = run(&cluster, CREATOR, &["multi"]).await;
    assert_ok(
        &r,
        &five_lines("default", "multi", "a"),
        "Defaulted container \"a\" out of: a, b\n",
    );
    // a pod that is not running is refused before anything is created
    let r = run(&cluster, CREATOR, &["waiting"]).await;
    assert_fails(
        &r,
        "error: cannot checkpoint a container in a non-running pod; current phase is Pending\n",
    );
    assert_eq!(objects(&cluster).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_containers_prints_a_block_for_each() {
    let cluster = Cluster::start(true, None).await;
    let _agent = cluster.agent(QUICK);
    let r = run(&cluster, CREATOR, &["trio", "--all-containers"]).await;
    let blocks = ["a", "b", "c"].map(|c| five_lines("default", "trio", c));
    assert_ok(&r, &blocks.join("\n"), "");
    let created = objects(&cluster).await;
    assert_eq!(
        serde_json::to_value(&created[0].spec).unwrap(),
        serde_json::json!({"sourcePodName": "trio", "sourcePodUID": uid(&cluster, "trio").await}),
        "an empty list asks for every container"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_yaml_print_the_pod_checkpoint() {
    let cluster = Cluster::start(true, None).await;
    let _agent = cluster.agent(QUICK);
    let r = run(&cluster, CREATOR, &["counter", "-o", "json"]).await;
    assert_eq!((r.code, r.stderr.as_str()), (Some(0), ""), "{r:?}");
    assert!(
        r.stdout
            .starts_with("{\n    \"apiVersion\": \"checkpoint.kcr.dev/v1alpha1\",\n    \"kind\": \"PodCheckpoint\",\n"),
        "{}",
        r.stdout
    );
    let printed: PodCheckpoint = serde_json::from_str(&r.stdout).unwrap();
    assert!(printed.is_ready());
    let value: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    insta::assert_json_snapshot!("object_json", value, {
        ".metadata.name" => "[name]",
        ".metadata.uid" => "[uid]",
        ".metadata.resourceVersion" => "[rv]",
        ".metadata.creationTimestamp" => "[time]",
        ".spec.sourcePodUID" => "[pod uid]",
        ".status.sourcePodUID" => "[pod uid]",
    });

    let r = run(
        &cluster,
        CREATOR,
        &["trio", "--all-containers", "-o", "yaml"],
    )
    .await;
    assert_eq!((r.code, r.stderr.as_str()), (Some(0), ""), "{r:?}");
    let printed: PodCheckpoint = serde_saphyr::from_str(&r.stdout).unwrap();
    let status = printed.status.unwrap();
    assert_eq!(status.checkpointed_containers.len(), 3);
    assert_eq!(status.total_size_bytes, Some(6000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_false_creates_and_names_the_object() {
    let cluster = Cluster::start(true, None).await;
    let agent = cluster.agent(Behaviour::Never);
    let r = run(&cluster, CREATOR, &["counter", "--wait=false"]).await;
    let name = agent.first().await;
    assert_ok(
        &r,
        &format!("podcheckpoint.checkpoint.kcr.dev/{name} created\n"),
        "",
    );
    assert!(name.starts_with("counter-") && name.len() == "counter-".len() + 5);
    let created = objects(&cluster).await;
    assert_eq!(created.len(), 1, "left for the agent");
    assert!(created[0].status.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_failures_are_the_error() {
    let cluster = Cluster::start(true, None).await;
    let _agent = cluster.agent(Behaviour::Fail {
        reason: reason::FAILED,
        message: "container app: checkpointing failed: CRIU: dump failed: Operation not permitted"
            .into(),
    });
    let r = run(&cluster, CREATOR, &["counter"]).await;
    assert_fails(
        &r,
        "error: container app: checkpointing failed: CRIU: dump failed: Operation not permitted\n",
    );

    let cluster = Cluster::start(true, None).await;
    let _agent = cluster.agent(Behaviour::Fail {
        reason: reason::SOURCE_POD_REPLACED,
        message: "pod default/counter is uid uid-new, not the pinned uid-counter".into(),
    });
    let r = run(&cluster, CREATOR, &["counter", "-c", "app"]).await;
    assert_fails(
        &r,
        "error: pod default/counter is uid uid-new, not the pinned uid-counter\n",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_agent_names_the_node_and_deletes_the_object() {
    let cluster = Cluster::start(true, None).await;
    let agent = cluster.agent(Behaviour::Never);
    let started = std::time::Instant::now();
    let r = run(&cluster, CREATOR, &["counter", "--claim-timeout", "2s"]).await;
    let name = agent.first().await;
    assert_fails(
        &r,
        &format!(
            "error: no checkpoint agent claimed podcheckpoint/{name} within 2s: is checkpoint-shim's controller running on node node-1?\n\
             Deleted podcheckpoint/{name}, so that an agent that starts later does not checkpoint the pod unasked.\n"
        ),
    );
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(objects(&cluster).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_the_wait_not_the_checkpoint() {
    let cluster = Cluster::start(true, None).await;
    let agent = cluster.agent(Behaviour::Complete {
        after: Duration::from_secs(3),
    });
    let kubeconfig = cluster.kubeconfig(CREATOR);
    let child = command(
        PLUGIN.as_ref(),
        cluster.dir.path(),
        &kubeconfig,
        &["counter"],
    )
    .spawn()
    .unwrap();
    let name = agent.first().await;
    // claimed: the plugin is waiting
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = child.id().unwrap().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let follow = format!("kubectl wait --for=condition=Ready podcheckpoint/{name} -n default");
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned()
        ),
        (
            Some(130),
            String::new(),
            format!("Stopped waiting; podcheckpoint/{name} goes on. Follow it with:\n  {follow}\n")
        )
    );
    let pc = cluster.pod_checkpoints("default").get(&name).await.unwrap();
    assert!(!pc.is_finished(), "interrupted before the agent finished");

    // The hint works, with the real kubectl and only checkpoint-creator.
    let mut args: Vec<&str> = follow.split(' ').skip(1).collect();
    args.push("--timeout=30s");
    let r = output(&mut command(
        "kubectl".as_ref(),
        cluster.dir.path(),
        &kubeconfig,
        &args,
    ))
    .await;
    assert_ok(
        &r,
        &format!("podcheckpoint.checkpoint.kcr.dev/{name} condition met\n"),
        "",
    );
}

/// Issue 13's first e2e scenario, the plugin's side: a checkpoint that
/// outlasts the API server's request timeout (and the plugin's own
/// `--request-timeout`, which bounds each request, watches included) still
/// ends in the five lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_longer_than_the_request_timeouts() {
    let cluster = Cluster::start(true, Some(Duration::from_secs(2))).await;
    let _agent = cluster.agent(Behaviour::Complete {
        after: Duration::from_secs(4),
    });
    let started = std::time::Instant::now();
    let r = run(&cluster, CREATOR, &["counter", "--request-timeout", "1s"]).await;
    assert_ok(&r, &five_lines("default", "counter", "app"), "");
    assert!(started.elapsed() >= Duration::from_secs(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_apis_and_no_crd() {
    // The CRD, no extension: the subresource forced is absent.
    let cluster = Cluster::start(true, None).await;
    let r = run(&cluster, CREATOR, &["counter", "--api=subresource"]).await;
    assert_fails(
        &r,
        "error: this cluster does not serve the pods/checkpoint subresource (the checkpoint extension: kubectl apply -k deploy/ from the kubectl-checkpoint repository), but it serves PodCheckpoints: leave out --api=subresource\n",
    );
    let _agent = cluster.agent(QUICK);
    let r = run(&cluster, CREATOR, &["counter", "--api", "object"]).await;
    assert_ok(&r, &five_lines("default", "counter", "app"), "");

    // Neither: the object forced is absent; unforced, install the extension.
    let cluster = Cluster::start(false, None).await;
    let r = run(&cluster, CREATOR, &["counter", "--api=object"]).await;
    assert_fails(
        &r,
        "error: this cluster does not serve PodCheckpoints (podcheckpoints.checkpoint.kcr.dev/v1alpha1): install them (kubectl apply -k deploy/crd from the kubectl-checkpoint repository, and checkpoint-shim's controller on the nodes), or leave out --api=object\n",
    );
    let r = run(&cluster, CREATOR, &["counter"]).await;
    assert_fails(
        &r,
        "error: this cluster does not serve checkpoints: install the checkpoint extension (kubectl apply -k deploy/ from the kubectl-checkpoint repository)\n",
    );
}

/// KEP-5823's editor role (no pod reads) checkpoints with `-c` or
/// `--all-containers`; the viewer is told what it lacks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_editor_and_viewer_roles() {
    let cluster = Cluster::start(true, None).await;
    let _agent = cluster.agent(QUICK);
    let r = run(&cluster, EDITOR, &["counter"]).await;
    assert_fails(
        &r,
        "error: cannot read pod default/counter (you lack get pods) to choose its default container: name the container with -c CONTAINER, or checkpoint every container with --all-containers\n",
    );
    assert!(objects(&cluster).await.is_empty());
    let r = run(&cluster, EDITOR, &["counter", "-c", "app"]).await;
    assert_ok(&r, &five_lines("default", "counter", "app"), "");
    let r = run(&cluster, EDITOR, &["trio", "--all-containers"]).await;
    let blocks = ["a", "b", "c"].map(|c| five_lines("default", "trio", c));
    assert_ok(&r, &blocks.join("\n"), "");
    let specs: Vec<serde_json::Value> = objects(&cluster)
        .await
        .iter()
        .map(|p| serde_json::to_value(&p.spec).unwrap())
        .collect();
    assert!(
        specs.contains(&serde_json::json!({"sourcePodName": "counter", "containers": ["app"]})),
        "no UID without the pod: {specs:?}"
    );

    let r = run(&cluster, VIEWER, &["counter", "-c", "app"]).await;
    assert_fails(
        &r,
        "Error from server (Forbidden): podcheckpoints.checkpoint.kcr.dev is forbidden: User \"dave\" cannot create resource \"podcheckpoints\" in API group \"checkpoint.kcr.dev\" in the namespace \"default\"\n\
         You lack create podcheckpoints.checkpoint.kcr.dev in namespace default: ask a cluster admin to bind the ClusterRole checkpoint-creator to you.\n",
    );
}
