//! `checkpoint-apiserver`: the API-server half of kubectl-checkpoint, an
//! aggregated API server (APIService `v1alpha1.subresources.checkpoint.kcr.dev`) serving
//! `POST /apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/{ns}/pods/{pod}/checkpoint`.
//!
//! Mirrors `pkg/registry/core/pod/rest` (the subresource) and metrics-server's
//! server pipeline: [`Options`] → [`Options::validate`] →
//! [`Config::from_options`] → [`Server::new`] → [`Server::run_until`].
//!
//! One file per concern, each dependency behind a narrow trait with a fake
//! in [`testing`] (tests and the `testing` feature only):
//! * [`options`]: the flags (`apiserver_lib::options` groups, [`options::KubeletClientOptions`]);
//! * [`config`]: [`Config`], from the options;
//! * [`server`]: routes, the filters in front of them, health, serving;
//! * [`checkpoint`]: [`checkpoint::CheckpointREST`], the request flow of the subresource;
//! * [`archive`]: `podcheckpoints/archive`, ranges of a PodCheckpoint's archives streamed from its node agent;
//! * [`strategy`]: the pod's checks and the container choice;
//! * [`listers`]: [`listers::PodLister`], [`listers::NodeLister`] through kube-rs;
//! * [`kubelet_client`]: [`kubelet_client::KubeletClient`], the node address and
//!   the HTTPS call to the kubelet;
//! * [`concurrency`]: bounded checkpoints per node with a queue deadline;
//! * [`turns`]: checkpoints of one container one at a time, at least 1 s
//!   apart, across replicas through [`leases`] (per-container Leases);
//! * [`events`]: [`events::EventRecorder`], Events on the pod;
//! * [`discovery`], [`openapi`]: the documents;
//! * [`metrics`]: the `/metrics` exposition;
//! * [`signer`]: the signer of checkpoint-shim serving certificates (CSR API).

pub mod archive;
pub mod checkpoint;
pub mod concurrency;
pub mod config;
pub mod discovery;
pub mod events;
pub mod kubelet_client;
pub mod leases;
pub mod listers;
pub mod metrics;
pub mod openapi;
pub mod options;
pub mod server;
pub mod signer;
pub mod strategy;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod turns;

#[cfg(test)]
mod tests;

pub use config::Config;
pub use options::Options;
pub use server::Server;

// `main` runs `apiserver_lib::command::run::<Options>()`.
apiserver_lib::server_command! {
    Options => Config, config::Error => Server; "failed to configure checkpoint-apiserver", "checkpoint-apiserver failed"
}
