//! `checkpoint-shim`: a node agent that serves the kubelet's checkpoint API,
//! `POST /checkpoint/{namespace}/{pod}/{container}` (KEP-2008,
//! `pkg/kubelet/server/server.go`), byte-compatible, and checkpoints through
//! CRI `CheckpointContainer` on containerd or CRI-O. For clusters whose
//! kubelet cannot turn on its `ContainerCheckpoint` gate.
//!
//! Pipeline, as in checkpoint-apiserver: [`Options`] (flags) →
//! [`Options::validate`] → [`Config::from_options`] → [`Server::new`] →
//! [`Server::run_until`].
//!
//! * [`options`]: the flags (`apiserver_lib::options` groups with the kubelet's names);
//! * [`config`]: [`Config`], checked at start (CRI socket, directories, certificates);
//! * [`server`]: the routes, the filters in front of them, health, serving;
//! * [`routes`]: parsing a request, the kubelet's answers;
//! * [`host`]: [`host::Host`], the kubelet's `CheckpointContainer`: container
//!   lookup, unique archive names, cleanup, timeouts, one checkpoint per container at a time;
//! * [`runtime`]: the CRI calls behind a narrow trait; the tonic client;
//! * [`metrics`]: the `/metrics` exposition.
//! * [`controller`]: the PodCheckpoint controller (the declarative API's node agent);
//! * [`archive`]: serving the bytes of the controller's archives, in ranges;
//! * [`certificate`]: the serving certificate through the CSR API (`--rotate-server-certificates`).

pub mod archive;
pub mod certificate;
pub mod config;
pub mod controller;
pub mod host;
pub mod metrics;
pub mod options;
pub mod routes;
pub mod runtime;
pub mod server;

pub use config::Config;
pub use options::Options;
pub use server::Server;

// `main` runs `apiserver_lib::command::run::<Options>()`.
apiserver_lib::server_command! {
    Options => Config, config::Error => Server; "failed to start checkpoint-shim", "checkpoint-shim failed"
}
