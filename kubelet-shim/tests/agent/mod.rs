//! A cluster for the PodCheckpoint controller's tests: kube-apiserver-standin
//! in process with the CRD from `deploy/crd/podcheckpoints.yaml` and the
//! node agent's RBAC from `deploy/shim/base/rbac.yaml`, pods written the way
//! the scheduler and the kubelet would (spec.nodeName, then status), and node
//! agents (the controller of the shim, against a given CRI runtime) that
//! authenticate as the shim's ServiceAccount or as users bound to its
//! ClusterRole, so the stand-in's audit log tells them apart.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use api_types::k8s_openapi::api::core::v1::Pod;
use api_types::k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use api_types::{PodCheckpoint, PodCheckpointSpec};
use kcr_testkit::standin::audit::AuditEvent;
use kcr_testkit::standin::{self, Running};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use kubelet_shim::controller::archives::MARKER;
use kubelet_shim::controller::retention::Policy;
use kubelet_shim::controller::{PodCheckpointController, Settings};
use kubelet_shim::host::{Host, HostConfig};
use kubelet_shim::metrics::Metrics;
use kubelet_shim::runtime::RuntimeService;
use serde_json::json;

pub const NS: &str = "apps";
/// The shim's ServiceAccount, as kube-apiserver names it.
pub const SHIM_SA: &str = "system:serviceaccount:kcr-system:checkpoint-shim";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Users other than the ServiceAccount, bound to the shim's ClusterRole
/// (a second agent the audit log can tell apart).
const EXTRA_AGENTS: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: test-agents}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "kcr:checkpoint-shim"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: agent-b}
"#;

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub standin: Running,
    pub admin: Client,
}

impl Cluster {
    pub async fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("objects.yaml"),
            format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NS}}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: kcr-system}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: default}}\n"),
        )
        .unwrap();
        std::fs::write(dir.path().join("agents.yaml"), EXTRA_AGENTS).unwrap();
        let mut config = standin::Config::new(dir.path().join("pki"));
        config.object_files = vec![dir.path().join("objects.yaml")];
        config.policy_files = vec![
            repo().join("deploy/shim/base/rbac.yaml"),
            dir.path().join("agents.yaml"),
        ];
        config.write_kubeconfig = Some(dir.path().join("admin.kubeconfig"));
        config.bookmark_interval = Duration::from_secs(1);
        let standin = standin::start(config).await.unwrap();
        let admin =
            client_from(&std::fs::read_to_string(dir.path().join("admin.kubeconfig")).unwrap())
                .await;
        let crd_yaml =
            std::fs::read_to_string(repo().join("deploy/crd/podcheckpoints.yaml")).unwrap();
        let crd: CustomResourceDefinition = serde_saphyr::from_str(&crd_yaml).unwrap();
        let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
        crds.create(&PostParams::default(), &crd).await.unwrap();
        let established = kube::runtime::wait::await_condition(
            crds,
            api_types::podcheckpoint::CRD_NAME,
            kube::runtime::wait::conditions::is_crd_established(),
        );
        tokio::time::timeout(Duration::from_secs(10), established)
            .await
            .unwrap()
            .unwrap();
        Cluster {
            dir,
            standin,
            admin,
        }
    }

    /// A client for `user` (the shim's ServiceAccount gets its groups).
    pub async fn client_for(&self, user: &str) -> Client {
        let groups: Vec<String> = if user.starts_with("system:serviceaccount:") {
            vec![
                "system:serviceaccounts".into(),
                "system:serviceaccounts:kcr-system".into(),
            ]
        } else {
            Vec::new()
        };
        client_from(&self.standin.kubeconfig(user, &groups).unwrap()).await
    }

    pub fn pcs(&self) -> Api<PodCheckpoint> {
        Api::namespaced(self.admin.clone(), NS)
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.admin.clone(), NS)
    }

    /// A pod on `node` as the kubelet reports it: `containers` are
    /// `(name, running)`; the pod's phase is `phase`.
    pub async fn pod(
        &self,
        name: &str,
        node: &str,
        phase: &str,
        containers: &[(&str, bool)],
    ) -> Pod {
        let specs: Vec<_> = containers
            .iter()
            .map(|(c, _)| json!({"name": c, "image": kcr_testkit::APP_IMAGE}))
            .collect();
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"nodeName": node, "containers": specs},
        }))
        .unwrap();
        let created = self
            .pods()
            .create(&PostParams::default(), &pod)
            .await
            .unwrap();
        let statuses: Vec<_> = containers
            .iter()
            .map(|(c, running)| {
                let state = if *running {
                    json!({"running": {"startedAt": "2026-11-30T07:00:00Z"}})
                } else {
                    json!({"waiting": {"reason": "CrashLoopBackOff"}})
                };
                json!({"name": c, "image": kcr_testkit::APP_IMAGE, "imageID": "",
                       "containerID": format!("containerd://{}", container_id(name, c)),
                       "ready": running, "restartCount": 0, "state": state})
            })
            .collect();
        self.pods()
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"phase": phase, "containerStatuses": statuses}})),
            )
            .await
            .unwrap();
        let _ = created;
        self.pods().get(name).await.unwrap()
    }

    pub async fn create_pc(&self, name: &str, pod: &str, containers: &[&str]) -> PodCheckpoint {
        self.create_pc_spec(
            name,
            PodCheckpointSpec {
                source_pod_name: pod.into(),
                containers: containers.iter().map(|c| (*c).to_owned()).collect(),
                ..Default::default()
            },
        )
        .await
    }

    pub async fn create_pc_spec(&self, name: &str, spec: PodCheckpointSpec) -> PodCheckpoint {
        self.pcs()
            .create(&PostParams::default(), &PodCheckpoint::new(name, spec))
            .await
            .unwrap()
    }

    /// Waits until the PodCheckpoint is finished (completed or failed).
    pub async fn finished(&self, name: &str) -> PodCheckpoint {
        self.wait_for(name, "finished", |pc| pc.is_finished()).await
    }

    pub async fn wait_for(
        &self,
        name: &str,
        what: &str,
        f: impl Fn(&PodCheckpoint) -> bool,
    ) -> PodCheckpoint {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(pc) = self.pcs().get_opt(name).await.unwrap()
                && f(&pc)
            {
                return pc;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {name}: {what}; it is {:#?}",
                self.pcs().get_opt(name).await.unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The requests `user` made, oldest first.
    pub fn requests_of(&self, user: &str) -> Vec<AuditEvent> {
        self.standin.state.audit.by_user(user)
    }

    /// `user`'s requests other than lists and watches (what it spent on
    /// the objects, as opposed to following them).
    pub fn work_requests(&self, user: &str) -> Vec<AuditEvent> {
        self.requests_of(user)
            .into_iter()
            .filter(|e| e.verb != "watch" && e.verb != "list")
            .collect()
    }

    /// Waits until `user` watches PodCheckpoints and pods (the agent is up).
    pub async fn agent_watching(&self, user: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let reqs = self.requests_of(user);
            let watching = |res: &str| reqs.iter().any(|e| e.verb == "watch" && e.resource == res);
            if watching("podcheckpoints") && watching("pods") {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "agent {user} never watched: {:#?}",
                self.standin.state.audit.events()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub async fn client_from(kubeconfig: &str) -> Client {
    let kc = kube::config::Kubeconfig::from_yaml(kubeconfig).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    Client::try_from(cfg).unwrap()
}

/// The fake CRI's container ID for a pod's container.
pub fn container_id(pod: &str, container: &str) -> String {
    format!("{pod}-{container}-id")
}

/// A node agent: the controller on its own Host, stopped on drop.
pub struct Agent {
    pub node: String,
    pub root: PathBuf,
    pub metrics: Metrics,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub struct AgentSetup {
    pub node: String,
    pub user: String,
    pub root: PathBuf,
    pub max_concurrent: usize,
    pub runtime_request_timeout: Duration,
    /// `--max-archives-per-container`, `--max-archive-bytes`.
    pub retention: Policy,
    /// `--orphan-archive-grace`; `None`: `--keep-orphan-archives`.
    pub orphan_grace: Option<Duration>,
}

impl AgentSetup {
    pub fn new(node: &str, root: &Path) -> Self {
        Self {
            node: node.into(),
            user: SHIM_SA.into(),
            root: root.to_owned(),
            max_concurrent: 2,
            runtime_request_timeout: Duration::from_secs(10),
            retention: Policy::default(),
            orphan_grace: Some(Duration::from_secs(600)),
        }
    }
}

impl Agent {
    pub async fn start(
        cluster: &Cluster,
        runtime: Arc<dyn RuntimeService>,
        setup: AgentSetup,
    ) -> Agent {
        let client = cluster.client_for(&setup.user).await;
        let metrics = Metrics::new();
        let mut cs = HostConfig::new(setup.root.join("checkpoints"));
        cs.runtime_request_timeout = setup.runtime_request_timeout;
        cs.grace = Duration::from_millis(200);
        let checkpointer = Host::new(runtime, cs, metrics.clone());
        checkpointer.ensure_dir().unwrap();
        let mut settings = Settings::new(&setup.node);
        settings.max_concurrent = setup.max_concurrent;
        settings.missing_pod_grace = Duration::from_millis(500);
        settings.retention = setup.retention;
        if let Some(b) = setup.retention.max_archive_bytes {
            settings.max_archive_bytes_flag = b.to_string();
        }
        settings.orphan_grace = setup.orphan_grace;
        let controller = PodCheckpointController::new(client, checkpointer, settings, &metrics);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(controller.run_until(async move {
            let _ = stopped.await;
        }));
        cluster.agent_watching(&setup.user).await;
        Agent {
            node: setup.node,
            root: setup.root,
            metrics,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// `<root>/checkpoints`.
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    /// Stops the agent the hard way (as a killed process: its work is dropped).
    pub async fn kill(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Stops the agent gracefully.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Every file under `dir`, relative, sorted; the agent's directory
/// markers left out (see [`marked_dirs`]).
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(base, &p, out);
                } else if e.file_name() != MARKER {
                    out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
                }
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

pub fn ready_reason(pc: &PodCheckpoint) -> (String, String, String) {
    let c = pc.ready_condition().expect("a Ready condition");
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

pub fn name_of(pc: &PodCheckpoint) -> String {
    pc.name_any()
}

/// The directories under `dir` that carry the agent's marker, sorted.
pub fn marked_dirs(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().join(MARKER).is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}
