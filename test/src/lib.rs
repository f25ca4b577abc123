//! `kcr-testkit`: the test harness shared by every crate's tests, the e2e suite and the
//! local stack. Test doubles only; never linked into product binaries.
//!
//! * [`prereq`] — checks that the runtime stack from `hack/setup.sh` is present.
//! * [`containerd`] — a private containerd 2.x with a throw-away config, cleaned on drop.
//! * [`cri`] — CRI client over a unix socket and a [`cri::PodRunner`] that does what the
//!   kubelet would (pod sandbox + containers with the kubelet's labels).
//! * [`archive`] — checks a checkpoint archive (checkpointctl cannot be installed here).
//! * [`criu_fixture`] — a small checkpoint archive with real CRIU images, for tests and
//!   fuzz seeds.
//! * [`fake_cri`] — an in-process fake CRI `RuntimeService` with switchable checkpoint
//!   behaviour, served over `tokio::io::duplex` or a unix socket.
//! * [`hostile`] — certificates that must be refused, raw HTTP/1.1 over TLS, and the tables
//!   of hostile path segments and timeouts, for the security tests of both servers.
//! * [`harness`] — a server under test in process or as its binary, its certificates and
//!   files, waiting until it is ready.
//! * [`fixtures`] — Kubernetes objects for server tests (a running pod, a node).
//! * [`files`] — what a server left on disk (trees, listings, modes).
//! * [`tmpfs`] — a small tmpfs for disk-full tests.
//! * [`logs`] — a server's `tracing` events captured as JSON (audit lines).
//! * [`sandbox`] — a server binary run the way its manifest runs it (user, no capabilities,
//!   read-only root, its volumes).
//! * [`kustomize`] — the project's kustomizations rendered by the real `kubectl kustomize`,
//!   for the manifest tests.
//! * [`mock_api`] — one mock Kubernetes API server driven by scenarios: in process behind
//!   a `kube::Client`, or over HTTP(S) on loopback for binaries; records every request.
//!
//! ```no_run
//! use kcr_testkit::archive::check_archive;
//! use kcr_testkit::containerd::{Containerd, Options};
//! use kcr_testkit::cri::{ContainerSpec, PodSpec};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let containerd = Containerd::start(Options::default()).await?;
//! let mut runner = containerd.pod_runner().await?;
//! let pod = PodSpec::new("default", "web");
//! let running = runner.run_pod(&pod, &[ContainerSpec::new("app")]).await?;
//! let id = running.container_id("app").ok_or("no container")?;
//! let archive = std::path::Path::new("/tmp/app.tar");
//! runner.cri().checkpoint(id, archive, 0).await?;
//! let report = check_archive(archive, "app")?;
//! println!("{}", report.summary());
//! # Ok(())
//! # }
//! ```
//!
//! ```no_run
//! use kcr_testkit::cri::Cri;
//! use kcr_testkit::fake_cri::{CheckpointMode, FakeContainer, FakeCri};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let fake = FakeCri::with_containers([FakeContainer::running("c1", "default", "web", "app")]);
//! fake.set_mode(CheckpointMode::Fail("criu failed".into()));
//! let mut cri = Cri::new(fake.channel().await?);
//! assert!(cri.checkpoint("c1", "/tmp/x.tar".as_ref(), 0).await.is_err());
//! assert_eq!(fake.checkpoint_requests()[0].container_id, "c1");
//! # Ok(())
//! # }
//! ```

pub mod archive;
pub mod containerd;
pub mod cri;
pub mod criu_fixture;
pub mod fake_cri;
pub mod files;
pub mod fixtures;
pub mod harness;
pub mod hostile;
pub mod kustomize;
pub mod logs;
pub mod mock_api;
pub mod prereq;
pub mod sandbox;
pub mod standin;
pub mod tmpfs;

/// Image reference of the busybox app image (default command: a shell counter loop).
pub const APP_IMAGE: &str = "localhost/kcr-test/app:v1";
/// Image reference of the sandbox ("pause") image (`/bin/sleep inf`).
pub const PAUSE_IMAGE: &str = "localhost/kcr-test/pause:v1";
/// The containerd namespace CRI uses.
pub const CRI_NAMESPACE: &str = "k8s.io";

/// CRI labels the kubelet puts on every container (`pkg/kubelet/types/labels.go`).
pub mod labels {
    /// `io.kubernetes.pod.name`
    pub const POD_NAME: &str = "io.kubernetes.pod.name";
    /// `io.kubernetes.pod.namespace`
    pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
    /// `io.kubernetes.pod.uid`
    pub const POD_UID: &str = "io.kubernetes.pod.uid";
    /// `io.kubernetes.container.name`
    pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
}
