//! A real kube-apiserver-standin for the declarative path, in process: the
//! PodCheckpoint CRD of `deploy/crd`, the ClusterRoles of
//! `deploy/base/user-rbac.yaml` and `deploy/crd/rbac.yaml` bound to users,
//! pods on node `node-1`; and a test [`Agent`] that plays checkpoint-shim's
//! controller through the API (claims through `/status`, completes with
//! archives, fails, or never claims).
#![allow(dead_code)] // each test crate uses a part

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api_types::podcheckpoint::{PodCheckpoint, reason};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kcr_testkit::mock_api::objects::{
    NODE, NODE_ADDRESS, namespace, node, pod, with_labels, workload,
};
use kcr_testkit::standin::{self, Config, Running};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

/// Users bound by [`POLICY`].
pub const CREATOR: &str = "alice"; // checkpoint-creator, cluster-wide
pub const EDITOR: &str = "carol"; // podcheckpoint-editor in default
pub const VIEWER: &str = "dave"; // podcheckpoint-viewer in default

/// What an admin does after `kubectl apply -k deploy/ deploy/crd`.
const POLICY: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: alice-checkpoint}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: checkpoint-creator}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: carol-podcheckpoints, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: podcheckpoint-editor}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: carol}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: dave-podcheckpoints, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: podcheckpoint-viewer}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: dave}
"#;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// The stand-in and its admin client.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub running: Running,
    pub admin: kube::Client,
}

/// Pods: `counter` (app), `trio` (a, b, c), `multi` (a, b), `waiting`
/// (Pending), `web-2` of deployment `web`, `db-0` in prod.
fn objects() -> String {
    let docs = [
        serde_json::to_value(namespace("default")).unwrap(),
        serde_json::to_value(namespace("prod")).unwrap(),
        serde_json::to_value(node(NODE, NODE_ADDRESS)).unwrap(),
        serde_json::to_value(pod("default", "counter", "Running", &["app"])).unwrap(),
        serde_json::to_value(pod("default", "trio", "Running", &["a", "b", "c"])).unwrap(),
        serde_json::to_value(pod("default", "multi", "Running", &["a", "b"])).unwrap(),
        serde_json::to_value(pod("default", "waiting", "Pending", &["app"])).unwrap(),
        serde_json::to_value(with_labels(
            pod("default", "web-2", "Running", &["nginx"]),
            &[("app", "web")],
        ))
        .unwrap(),
        workload("Deployment", "default", "web", &[("app", "web")]),
        serde_json::to_value(pod("prod", "db-0", "Running", &["pg"])).unwrap(),
    ];
    docs.iter()
        .map(|d| serde_saphyr::to_string(d).unwrap())
        .collect::<Vec<_>>()
        .join("---\n")
}

impl Cluster {
    /// With the CRD, the roles, the pods; `request_timeout` is the
    /// stand-in's `--request-timeout`.
    pub async fn start(with_crd: bool, request_timeout: Option<Duration>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("objects.yaml"), objects()).unwrap();
        std::fs::write(dir.path().join("bindings.yaml"), POLICY).unwrap();
        let mut config = Config::new(dir.path().join("pki"));
        config.object_files = vec![dir.path().join("objects.yaml")];
        if with_crd {
            config
                .object_files
                .insert(0, repo("deploy/crd/podcheckpoints.yaml"));
        }
        config.policy_files = vec![
            repo("deploy/base/user-rbac.yaml"),
            repo("deploy/crd/rbac.yaml"),
            dir.path().join("bindings.yaml"),
        ];
        config.bookmark_interval = Duration::from_secs(1);
        if let Some(t) = request_timeout {
            config.request_timeout = t;
        }
        config.write_kubeconfig = Some(dir.path().join("admin.kubeconfig"));
        let running = standin::start(config).await.unwrap();
        let kubeconfig =
            kube::config::Kubeconfig::read_from(dir.path().join("admin.kubeconfig")).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        let admin = kube::Client::try_from(cfg).unwrap();
        Self {
            dir,
            running,
            admin,
        }
    }

    /// A kubeconfig for `user` (a client certificate, no groups), namespace default.
    pub fn kubeconfig(&self, user: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{user}.kubeconfig"));
        std::fs::write(&path, self.running.kubeconfig(user, &[]).unwrap()).unwrap();
        path
    }

    /// The admin's kubeconfig.
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }

    pub fn pod_checkpoints(&self, namespace: &str) -> Api<PodCheckpoint> {
        Api::namespaced(self.admin.clone(), namespace)
    }

    /// Start the test agent with `behaviour` for every PodCheckpoint.
    pub fn agent(&self, behaviour: Behaviour) -> Agent {
        Agent::start(self.admin.clone(), behaviour)
    }
}

/// What the test agent does with each PodCheckpoint.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Claim it at once, complete it after `after`.
    Complete { after: Duration },
    /// Claim it, then end it with `reason` and `message`.
    Fail {
        reason: &'static str,
        message: String,
    },
    /// Claim it and never finish.
    Stall,
    /// Never touch it (no agent on the node).
    Never,
}

/// checkpoint-shim's controller, played through the API: only `/status`
/// is written, as the real agent does.
pub struct Agent {
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn condition(status: &str, reason: &str, message: &str) -> serde_json::Value {
    json!({"type": "Ready", "status": status, "reason": reason, "message": message,
           "lastTransitionTime": "2026-11-30T07:00:00Z", "observedGeneration": 1})
}

impl Agent {
    fn start(client: kube::Client, behaviour: Behaviour) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            let api: Api<PodCheckpoint> = Api::all(client.clone());
            let mut events = watcher(api, watcher::Config::default())
                .default_backoff()
                .applied_objects()
                .boxed();
            while let Some(Ok(pc)) = events.next().await {
                let name = pc.metadata.name.clone().unwrap_or_default();
                {
                    let mut seen = seen2.lock().unwrap();
                    if seen.contains(&name) {
                        continue;
                    }
                    seen.push(name);
                }
                tokio::spawn(act(client.clone(), pc, behaviour.clone()));
            }
        });
        Self { seen, task }
    }

    /// Names of the PodCheckpoints it saw.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// Wait until it saw one; its name.
    pub async fn first(&self) -> String {
        for _ in 0..200 {
            if let Some(n) = self.seen().first() {
                return n.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the agent saw no PodCheckpoint");
    }
}

async fn act(client: kube::Client, pc: PodCheckpoint, behaviour: Behaviour) {
    if matches!(behaviour, Behaviour::Never) {
        return;
    }
    let namespace = pc.metadata.namespace.clone().unwrap();
    let name = pc.metadata.name.clone().unwrap();
    let api: Api<PodCheckpoint> = Api::namespaced(client.clone(), &namespace);
    let pods: Api<Pod> = Api::namespaced(client, &namespace);
    let pod = pods.get(&pc.spec.source_pod_name).await.unwrap();
    let images: Vec<(String, String)> = pod
        .spec
        .as_ref()
        .unwrap()
        .containers
        .iter()
        .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
        .filter(|(c, _)| pc.spec.containers.is_empty() || pc.spec.containers.contains(c))
        .collect();
    let names: Vec<&str> = images.iter().map(|(c, _)| c.as_str()).collect();
    let status = |s: serde_json::Value| patch_status(&api, &name, s);
    status(json!({
        "nodeName": NODE,
        "sourcePodUID": pod.metadata.uid,
        "startTime": "2026-11-30T07:00:00Z",
        "containers": names.join(","),
        "conditions": [condition("False", reason::IN_PROGRESS, "")],
    }))
    .await;
    match behaviour {
        Behaviour::Complete { after } => {
            tokio::time::sleep(after).await;
            let pod_name = &pc.spec.source_pod_name;
            let checkpointed: Vec<serde_json::Value> = images
                .iter()
                .enumerate()
                .map(|(i, (c, image))| {
                    json!({"name": c, "image": image, "containerID": format!("containerd://{c}-id"),
                           "archive": {"path": format!("checkpoint-{pod_name}_{namespace}-{c}-2026-11-30T07:00:01Z.tar"),
                                       "sizeBytes": 1000 * (i + 1), "sha256": "ab".repeat(32)}})
                })
                .collect();
            let total: usize = (1..=images.len()).map(|i| 1000 * i).sum();
            status(json!({
                "completionTime": "2026-11-30T07:00:01Z",
                "checkpointedContainers": checkpointed,
                "totalSizeBytes": total,
                "conditions": [condition("True", reason::COMPLETED, "")],
            }))
            .await;
        }
        Behaviour::Fail { reason, message } => {
            status(json!({
                "completionTime": "2026-11-30T07:00:01Z",
                "conditions": [condition("False", reason, &message)],
            }))
            .await;
        }
        Behaviour::Stall | Behaviour::Never => {}
    }
}

async fn patch_status(api: &Api<PodCheckpoint>, name: &str, status: serde_json::Value) {
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .unwrap();
}

/// The plugin's outcome.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// A command with only HOME, PATH and KUBECONFIG in its environment.
pub fn command(
    program: &Path,
    home: &Path,
    kubeconfig: &Path,
    args: &[&str],
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    cmd.env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("KUBECONFIG", kubeconfig)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

pub async fn output(cmd: &mut tokio::process::Command) -> Run {
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("the command ends within 2 minutes")
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// The five lines the test agent's archive gives for `pod`'s `container`.
pub fn five_lines(ns: &str, pod: &str, container: &str) -> String {
    format!(
        "Node:                  {NODE}\n\
         Namespace:             {ns}\n\
         Pod:                   {pod}\n\
         Container:             {container}\n\
         Checkpoint Archive:    checkpoint-{pod}_{ns}-{container}-2026-11-30T07:00:01Z.tar\n"
    )
}
