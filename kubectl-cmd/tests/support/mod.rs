//! The cluster the plugin's integration tests talk to, served by
//! `kcr_testkit::mock_api`: its objects, its users and a kubeconfig.

use std::path::{Path, PathBuf};

use kcr_testkit::mock_api::objects::{
    NODE, NODE_ADDRESS, namespace, node, pod, with_annotations, with_labels, workload,
};
use kcr_testkit::mock_api::{MockServer, Scenario, closed_port};

/// Token of the kubeconfig's user `alice`.
pub const TOKEN: &str = "alice-token";

/// The cluster without the checkpoint extension: pods, workloads,
/// namespaces `default` and `prod`, the node, alice's token.
pub fn cluster() -> Vec<Scenario> {
    let pods = [
        with_labels(
            pod("default", "counter", "Running", &["app"]),
            &[("app", "counter")],
        ),
        pod("default", "multi", "Running", &["a", "b"]),
        with_annotations(
            pod("default", "annotated", "Running", &["a", "b"]),
            &[("kubectl.kubernetes.io/default-container", "b")],
        ),
        pod("default", "waiting", "Pending", &["app"]),
        with_labels(
            pod("default", "web-1", "Pending", &["nginx"]),
            &[("app", "web")],
        ),
        with_labels(
            pod("default", "web-2", "Running", &["nginx"]),
            &[("app", "web")],
        ),
        with_labels(
            pod("default", "report-x1", "Running", &["job"]),
            &[("job-name", "report")],
        ),
        with_labels(pod("prod", "db-0", "Running", &["pg"]), &[("app", "db")]),
    ];
    let workloads = [
        workload("Deployment", "default", "web", &[("app", "web")]),
        workload("ReplicaSet", "default", "web-5d9f", &[("app", "web")]),
        workload("DaemonSet", "default", "agent", &[("app", "agent")]),
        workload("Job", "default", "report", &[("job-name", "report")]),
        workload("StatefulSet", "prod", "db", &[("app", "db")]),
    ];
    pods.iter()
        .map(Scenario::object)
        .chain(workloads.into_iter().map(Scenario::Object))
        .chain([
            Scenario::object(&namespace("default")),
            Scenario::object(&namespace("prod")),
            Scenario::object(&node(NODE, NODE_ADDRESS)),
            Scenario::token(TOKEN, "alice"),
        ])
        .collect()
}

/// [`cluster`] with the checkpoint extension installed, its gate on.
pub fn ready() -> Vec<Scenario> {
    let mut scenarios = cluster();
    scenarios.push(Scenario::Extension { gate_on: true });
    scenarios
}

/// Write a kubeconfig for `server`: contexts `mock` (namespace default,
/// current), `prod` (namespace prod), `nobody` (a user whose token the
/// server refuses) and `down` (a closed port).
pub fn kubeconfig(server: &MockServer, dir: &Path) -> PathBuf {
    let down = format!("http://127.0.0.1:{}", closed_port().unwrap());
    server
        .kubeconfig()
        .cluster("down", &down, None)
        .user("alice", Some(TOKEN))
        .user("nobody", Some("wrong-token"))
        .context("mock", "mock", "alice", Some("default"))
        .context("prod", "mock", "alice", Some("prod"))
        .context("nobody", "mock", "nobody", None)
        .context("down", "down", "alice", None)
        .current("mock")
        .write(dir)
        .unwrap()
}
