//! `checkpoint-shim`: a node agent that serves the kubelet's checkpoint API,
//! `POST /checkpoint/{namespace}/{pod}/{container}` (KEP-2008,
//! `pkg/kubelet/server/server.go`), byte-compatible, and checkpoints through
//! CRI `CheckpointContainer` on containerd or CRI-O. For clusters whose
//! kubelet cannot turn on its `ContainerCheckpoint` gate.
//!
//! Pipeline: [`options::Options`] (flags) → [`options::Options::validate`] →
//! [`options::Config`] → [`server::Server::new`] → [`server::Server::run_until`].
//!
//! * [`runtime`]: the CRI calls behind a narrow trait; the tonic client.
//! * [`checkpoint`]: container lookup, unique archive names, cleanup, timeouts,
//!   one checkpoint per container at a time.
//! * [`routes`]: the HTTP API with the kubelet's answers.
//! * [`auth`]: x509 / TokenReview / SubjectAccessReview, and the bypasses named for testing.
//! * [`metrics`]: the `/metrics` exposition.
//! * [`controller`]: the PodCheckpoint controller (the declarative API's node agent).

pub mod auth;
pub mod checkpoint;
pub mod controller;
pub mod metrics;
pub mod options;
pub mod routes;
pub mod runtime;
pub mod server;

pub use options::{Config, Options};
pub use server::Server;
