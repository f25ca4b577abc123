//! Test doubles of the narrow traits, beside them: a fake kubelet client,
//! fake listers, a fake event recorder, and a [`Config`] built on them.
//! Compiled for this crate's tests and with the `testing` feature (which
//! only the tests, the fuzz targets and the benchmarks turn on): release
//! binaries carry none of it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api_types::PodCheckpoint;
use api_types::download;
use api_types::features::{APISERVER_GATES, CONTAINER_CHECKPOINT_API, FeatureGates};
use apiserver_lib::authentication::Authenticator;
use apiserver_lib::authorization::Authorizer;
use apiserver_lib::health::Check;
use apiserver_lib::options::SecureServingInfo;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Node, Pod};

use crate::checkpoint::CheckpointREST;
use crate::concurrency::NodeLimiter;
use crate::config::Config;
use crate::events::{EventRecorder, PodEvent};
use crate::kubelet_client::{
    self, ArchiveCall, CheckpointCall, KubeletClient, KubeletClientConfig, NodeArchive,
};
use crate::leases::{self, ContainerLeases, HeldLease, lease_name};
use crate::listers::{self, NodeLister, PodCheckpointLister, PodLister};
use crate::metrics::Metrics;
use crate::options::{DEFAULT_MAX_ARCHIVE_RANGE_BYTES, DEFAULT_MAX_REQUEST_BODY_BYTES};
use crate::turns::ContainerTurns;
use api_types::ContainerRef;

/// What [`FakeKubeletClient`] answers.
#[derive(Debug, Clone)]
pub enum FakeAnswer {
    /// A kubelet-like archive path.
    Archive,
    Fail(kubelet_client::Error),
    /// Never answer (to exercise deadlines).
    Hang,
    /// As the kubelet names archives: stamped to the second when the call
    /// arrives, the same path for two calls within one second.
    KubeletArchive,
}

/// A fake node endpoint: a scripted answer after an optional delay; records calls.
#[derive(Debug)]
pub struct FakeKubeletClient {
    answer: Mutex<FakeAnswer>,
    delay: Mutex<Duration>,
    calls: Mutex<Vec<CheckpointCall>>,
    /// When each call arrived and when it was answered.
    times: Mutex<Vec<(tokio::time::Instant, Option<tokio::time::Instant>)>>,
    /// Archive bytes by (namespace, podcheckpoint, container), as node agents hold them.
    archives: Mutex<BTreeMap<(String, String, String), Vec<u8>>>,
    archive_failure: Mutex<Option<kubelet_client::Error>>,
    archive_calls: Mutex<Vec<ArchiveCall>>,
}

impl Default for FakeKubeletClient {
    fn default() -> Self {
        Self::new(FakeAnswer::Archive)
    }
}

impl FakeKubeletClient {
    pub fn new(answer: FakeAnswer) -> Self {
        Self {
            answer: Mutex::new(answer),
            delay: Mutex::new(Duration::ZERO),
            calls: Mutex::default(),
            times: Mutex::default(),
            archives: Mutex::default(),
            archive_failure: Mutex::default(),
            archive_calls: Mutex::default(),
        }
    }

    fn answered(&self, index: Option<usize>) {
        if let (Some(i), Ok(mut t)) = (index, self.times.lock())
            && let Some(entry) = t.get_mut(i)
        {
            entry.1 = Some(tokio::time::Instant::now());
        }
    }

    /// When each call arrived and when it was answered (`None`: not yet), in arrival order.
    pub fn call_times(&self) -> Vec<(tokio::time::Instant, Option<tokio::time::Instant>)> {
        self.times.lock().map(|t| t.clone()).unwrap_or_default()
    }

    pub fn set_answer(&self, answer: FakeAnswer) {
        if let Ok(mut a) = self.answer.lock() {
            *a = answer;
        }
    }

    pub fn set_delay(&self, delay: Duration) {
        if let Ok(mut d) = self.delay.lock() {
            *d = delay;
        }
    }

    /// The node agents hold `bytes` as the archive of `container` in `ns/name`.
    pub fn put_archive(&self, ns: &str, name: &str, container: &str, bytes: Vec<u8>) {
        if let Ok(mut a) = self.archives.lock() {
            a.insert(
                (ns.to_owned(), name.to_owned(), container.to_owned()),
                bytes,
            );
        }
    }

    /// Every archive read fails with `error` (or, with `None`, is served again).
    pub fn fail_archives(&self, error: Option<kubelet_client::Error>) {
        if let Ok(mut f) = self.archive_failure.lock() {
            *f = error;
        }
    }

    pub fn archive_calls(&self) -> Vec<ArchiveCall> {
        self.archive_calls
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    pub fn calls(&self) -> Vec<CheckpointCall> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The path a kubelet would write for `call`.
    pub fn archive_path(call: &CheckpointCall) -> String {
        format!(
            "/var/lib/kubelet/checkpoints/{}",
            call.container
                .archive_file_name("2026-11-27T07:30:00Z".parse().unwrap_or_default(), 1)
        )
    }
}

impl KubeletClient for FakeKubeletClient {
    fn checkpoint<'a>(
        &'a self,
        call: &'a CheckpointCall,
    ) -> BoxFuture<'a, kubelet_client::Result<String>> {
        if let Ok(mut c) = self.calls.lock() {
            c.push(call.clone());
        }
        let arrived = tokio::time::Instant::now();
        let index = self
            .times
            .lock()
            .map(|mut t| {
                t.push((arrived, None));
                t.len() - 1
            })
            .ok();
        let stamp = api_types::k8s_openapi::jiff::Timestamp::now();
        let answer = self
            .answer
            .lock()
            .map(|a| a.clone())
            .unwrap_or(FakeAnswer::Hang);
        let delay = self.delay.lock().map(|d| *d).unwrap_or_default();
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            self.answered(index);
            match answer {
                FakeAnswer::Archive => Ok(Self::archive_path(call)),
                FakeAnswer::KubeletArchive => Ok(format!(
                    "/var/lib/kubelet/checkpoints/{}",
                    call.container.archive_file_name(stamp, 1)
                )),
                FakeAnswer::Fail(e) => Err(e),
                FakeAnswer::Hang => futures::future::pending().await,
            }
        })
    }

    /// Serves the archives put in with the node agent's range rules; a
    /// missing one is gone from the node.
    fn archive<'a>(
        &'a self,
        call: &'a ArchiveCall,
    ) -> BoxFuture<'a, kubelet_client::Result<NodeArchive>> {
        if let Ok(mut c) = self.archive_calls.lock() {
            c.push(call.clone());
        }
        let failure = self.archive_failure.lock().ok().and_then(|f| f.clone());
        let bytes = self.archives.lock().ok().and_then(|a| {
            a.get(&(
                call.namespace.clone(),
                call.name.clone(),
                call.query.container.clone(),
            ))
            .cloned()
        });
        Box::pin(async move {
            if let Some(e) = failure {
                return Err(e);
            }
            let node = call.node.clone();
            let Some(bytes) = bytes else {
                return Err(kubelet_client::Error::ArchiveGone {
                    message: format!(
                        "archive of podcheckpoint {}/{} is gone from node {node}",
                        call.namespace, call.name
                    ),
                    node,
                });
            };
            let size = bytes.len() as u64;
            let q = &call.query;
            let (start, end) =
                download::satisfiable(q.offset, q.length, u64::MAX, size).map_err(|size| {
                    kubelet_client::Error::RangeNotSatisfiable {
                        node: node.clone(),
                        message: format!(
                            "offset {} is past the end of archive x.tar ({size} bytes)",
                            q.offset
                        ),
                    }
                })?;
            let slice = bytes
                .get(start as usize..end as usize)
                .map(<[u8]>::to_vec)
                .unwrap_or_default();
            Ok(NodeArchive {
                content_range: download::content_range(start, end, size),
                content_length: Some(end - start),
                body: axum::body::Body::from(slice),
            })
        })
    }
}

/// A fake cluster: pods and nodes in maps, and an optional failure.
#[derive(Debug, Default)]
pub struct FakeListers {
    pods: Mutex<BTreeMap<(String, String), Pod>>,
    pod_checkpoints: Mutex<BTreeMap<(String, String), PodCheckpoint>>,
    nodes: Mutex<BTreeMap<String, Node>>,
    /// When set, every call fails as if the API server were unreachable.
    unreachable: Mutex<Option<String>>,
}

impl FakeListers {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_pod(self, pod: Pod) -> Self {
        self.put_pod(pod);
        self
    }

    pub fn with_node(self, node: Node) -> Self {
        self.put_node(node);
        self
    }

    pub fn put_pod(&self, pod: Pod) {
        let key = (
            pod.metadata.namespace.clone().unwrap_or_default(),
            pod.metadata.name.clone().unwrap_or_default(),
        );
        if let Ok(mut pods) = self.pods.lock() {
            pods.insert(key, pod);
        }
    }

    pub fn put_pod_checkpoint(&self, pc: PodCheckpoint) {
        let key = (
            pc.metadata.namespace.clone().unwrap_or_default(),
            pc.metadata.name.clone().unwrap_or_default(),
        );
        if let Ok(mut pcs) = self.pod_checkpoints.lock() {
            pcs.insert(key, pc);
        }
    }

    pub fn put_node(&self, node: Node) {
        if let Ok(mut nodes) = self.nodes.lock() {
            nodes.insert(node.metadata.name.clone().unwrap_or_default(), node);
        }
    }

    pub fn set_unreachable(&self, reason: Option<&str>) {
        if let Ok(mut u) = self.unreachable.lock() {
            *u = reason.map(str::to_owned);
        }
    }

    fn check(&self, what: String) -> listers::Result<()> {
        match self.unreachable.lock().ok().and_then(|u| u.clone()) {
            Some(reason) => Err(listers::Error::Unreachable {
                what,
                source: reason.into(),
            }),
            None => Ok(()),
        }
    }

    /// The `kube-apiserver` readiness check, failing while unreachable.
    pub fn api_server_check(self: &Arc<Self>) -> Check {
        let this = self.clone();
        Check::new("kube-apiserver", move || {
            let r = this
                .check("the API server version".into())
                .map_err(|e| e.to_string());
            async move { r }
        })
    }
}

impl PodLister for FakeListers {
    fn get_pod<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, listers::Result<Option<Pod>>> {
        let found = self.check(format!("pod {namespace}/{name}")).map(|()| {
            self.pods
                .lock()
                .ok()
                .and_then(|p| p.get(&(namespace.to_owned(), name.to_owned())).cloned())
        });
        Box::pin(async move { found })
    }
}

impl PodCheckpointLister for FakeListers {
    fn get_pod_checkpoint<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, listers::Result<Option<PodCheckpoint>>> {
        let found = self
            .check(format!("podcheckpoint {namespace}/{name}"))
            .map(|()| {
                self.pod_checkpoints
                    .lock()
                    .ok()
                    .and_then(|p| p.get(&(namespace.to_owned(), name.to_owned())).cloned())
            });
        Box::pin(async move { found })
    }
}

impl NodeLister for FakeListers {
    fn get_node<'a>(&'a self, name: &'a str) -> BoxFuture<'a, listers::Result<Option<Node>>> {
        let found = self
            .check(format!("node {name}"))
            .map(|()| self.nodes.lock().ok().and_then(|n| n.get(name).cloned()));
        Box::pin(async move { found })
    }
}

/// Keeps events in memory.
#[derive(Debug, Default)]
pub struct FakeEventRecorder {
    events: Mutex<Vec<PodEvent>>,
}

impl FakeEventRecorder {
    pub fn events(&self) -> Vec<PodEvent> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl EventRecorder for FakeEventRecorder {
    fn record(&self, event: PodEvent) {
        if let Ok(mut e) = self.events.lock() {
            e.push(event);
        }
    }
}

/// Per-container Leases in memory, shared by the replicas made with
/// [`FakeLeases::replica`]: a holder and an expiry per Lease name.
#[derive(Debug, Clone)]
pub struct FakeLeases {
    identity: String,
    leases: Arc<Mutex<BTreeMap<String, (String, tokio::time::Instant)>>>,
}

impl Default for FakeLeases {
    fn default() -> Self {
        Self {
            identity: "replica-0".into(),
            leases: Arc::default(),
        }
    }
}

impl FakeLeases {
    /// Another replica over the same Leases.
    pub fn replica(&self, identity: &str) -> Self {
        Self {
            identity: identity.to_owned(),
            leases: self.leases.clone(),
        }
    }

    /// A Lease left by `holder`, expiring `expires_in` from now (a crashed replica's).
    pub fn plant(&self, target: &ContainerRef, holder: &str, expires_in: Duration) {
        if let Ok(mut l) = self.leases.lock() {
            l.insert(
                lease_name(target),
                (holder.to_owned(), tokio::time::Instant::now() + expires_in),
            );
        }
    }

    /// The holder of `target`'s Lease, if it is held and not expired.
    pub fn holder(&self, target: &ContainerRef) -> Option<String> {
        let l = self.leases.lock().ok()?;
        l.get(&lease_name(target))
            .filter(|(_, until)| *until > tokio::time::Instant::now())
            .map(|(h, _)| h.clone())
    }
}

impl ContainerLeases for FakeLeases {
    fn acquire<'a>(
        &'a self,
        target: &'a ContainerRef,
        hold: Duration,
        until: tokio::time::Instant,
    ) -> BoxFuture<'a, leases::Result<HeldLease>> {
        Box::pin(async move {
            let name = lease_name(target);
            let started = tokio::time::Instant::now();
            loop {
                let now = tokio::time::Instant::now();
                let holder = {
                    let Ok(mut l) = self.leases.lock() else {
                        return Err(leases::Error::Unreachable {
                            target: target.clone(),
                            lease: name,
                            message: "poisoned".into(),
                        });
                    };
                    match l.get(&name) {
                        Some((holder, expiry)) if *expiry > now => holder.clone(),
                        _ => {
                            l.insert(name.clone(), (self.identity.clone(), now + hold));
                            return Ok(HeldLease {
                                name,
                                resource_version: self.identity.clone(),
                            });
                        }
                    }
                };
                if now >= until {
                    return Err(leases::Error::Held {
                        target: target.clone(),
                        lease: format!("kcr-system/{name}"),
                        holder,
                        waited: started.elapsed(),
                    });
                }
                tokio::time::sleep(Duration::from_millis(20).min(until - now)).await;
            }
        })
    }

    fn release(&self, held: HeldLease) -> BoxFuture<'_, ()> {
        if let Ok(mut l) = self.leases.lock()
            && l.get(&held.name)
                .is_some_and(|(h, _)| *h == held.resource_version)
        {
            l.remove(&held.name);
        }
        Box::pin(async {})
    }
}

/// The gates with `ContainerCheckpointAPI` as given.
pub fn gates(container_checkpoint_api: bool) -> FeatureGates {
    FeatureGates::parse(
        APISERVER_GATES,
        &format!("{CONTAINER_CHECKPOINT_API}={container_checkpoint_api}"),
    )
    .unwrap_or_else(|_| FeatureGates::defaults(APISERVER_GATES))
}

/// The fakes of one server under test.
#[derive(Debug, Default, Clone)]
pub struct Fakes {
    pub listers: Arc<FakeListers>,
    pub kubelet_client: Arc<FakeKubeletClient>,
    pub events: Arc<FakeEventRecorder>,
    pub leases: FakeLeases,
}

impl Fakes {
    pub fn new(listers: FakeListers) -> Self {
        Self {
            listers: Arc::new(listers),
            ..Self::default()
        }
    }

    /// A config on these fakes: the gate on, the flags' defaults, a
    /// self-signed certificate; `authenticator` and `authorizer` as given.
    pub fn config(&self, authenticator: Authenticator, authorizer: Arc<dyn Authorizer>) -> Config {
        let kubelet = KubeletClientConfig::default();
        Config {
            secure_serving: SecureServingInfo::ephemeral(([127, 0, 0, 1], 0).into(), &[])
                .unwrap_or_else(|e| panic!("a self-signed serving config: {e}")),
            authenticator,
            rest: CheckpointREST {
                feature_gates: gates(true),
                max_timeout_seconds: api_types::MAX_TIMEOUT_SECONDS,
                max_request_body_bytes: DEFAULT_MAX_REQUEST_BODY_BYTES,
                max_archive_range_bytes: DEFAULT_MAX_ARCHIVE_RANGE_BYTES,
                authorizer,
                pods: self.listers.clone(),
                pod_checkpoints: self.listers.clone(),
                nodes: self.listers.clone(),
                limiter: NodeLimiter::new(kubelet.max_checkpoints_per_node),
                turns: ContainerTurns::new(Arc::new(self.leases.clone())),
                kubelet,
                kubelet_client: self.kubelet_client.clone(),
                events: self.events.clone(),
                metrics: Arc::new(Metrics::new()),
            },
            api_server_check: self.listers.api_server_check(),
            shim_signer: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api_types::ContainerRef;
    use kcr_testkit::fixtures::running_pod;

    #[tokio::test]
    async fn fake_kubelet_client() {
        let fake = FakeKubeletClient::default();
        let c = CheckpointCall {
            node: "n1".into(),
            address: "10.0.0.1".into(),
            port: 10250,
            container: ContainerRef::new("ns", "p", "app"),
            timeout_seconds: 0,
        };
        assert_eq!(
            fake.checkpoint(&c).await.unwrap(),
            "/var/lib/kubelet/checkpoints/checkpoint-p_ns-app-2026-11-27T07:30:00Z.tar"
        );
        fake.set_answer(FakeAnswer::Fail(kubelet_client::Error::NotServed {
            node: "n1".into(),
        }));
        assert!(fake.checkpoint(&c).await.is_err());
        fake.set_answer(FakeAnswer::Hang);
        assert!(
            tokio::time::timeout(Duration::from_millis(20), fake.checkpoint(&c))
                .await
                .is_err()
        );
        assert_eq!(fake.calls().len(), 3);
    }

    #[tokio::test]
    async fn fake_listers() {
        let fake = Arc::new(FakeListers::new().with_pod(running_pod("ns", "p", "n1", &["app"])));
        assert!(fake.get_pod("ns", "p").await.unwrap().is_some());
        assert!(fake.get_pod("other", "p").await.unwrap().is_none());
        fake.set_unreachable(Some("connection refused"));
        let err = fake.get_pod("ns", "p").await.unwrap_err();
        assert_eq!(err.status().code, Some(503));
        assert!(fake.api_server_check().run().await.is_err());
    }
}
