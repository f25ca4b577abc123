//! `checkpoint-apiserver`: the API-server half of kubectl-checkpoint, an
//! aggregated API server (APIService `v1alpha1.subresources.checkpoint.kcr.dev`) serving
//! `POST /apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/{ns}/pods/{pod}/checkpoint`.
//!
//! Mirrors `pkg/registry/core/pod/rest` (the subresource) and metrics-server's
//! server pipeline: [`options::Options`] → [`options::Options::validate`] →
//! [`server::Config`] (via [`server::Config::from_options`]) →
//! [`server::Server::run_until`].
//!
//! One file per concern, each dependency behind a narrow trait with a fake
//! beside it:
//! * [`checkpoint`]: the request flow of the subresource;
//! * [`target`]: container choice, pod and container state, node address and port;
//! * [`lookup`]: [`lookup::ClusterReader`] (pods, nodes) with kube-rs and a fake;
//! * [`node`]: [`node::NodeClient`], the HTTPS call to the kubelet, and a fake;
//! * [`concurrency`]: bounded checkpoints per node with a queue deadline;
//! * [`events`]: [`events::EventRecorder`], Events on the pod, and a fake;
//! * [`authentication`]: front-proxy/client-CA settings from flags or the
//!   `extension-apiserver-authentication` ConfigMap;
//! * [`discovery`], [`openapi`]: the documents;
//! * [`metrics`]: the `/metrics` exposition;
//! * [`options`], [`config`], [`server`]: the pipeline.

pub mod authentication;
pub mod checkpoint;
pub mod concurrency;
pub mod config;
pub mod discovery;
pub mod events;
pub mod lookup;
pub mod metrics;
pub mod node;
pub mod openapi;
pub mod options;
pub mod server;
pub mod target;

#[cfg(test)]
mod mock_api;
#[cfg(test)]
mod tests;

pub use options::Options;
pub use server::{App, Config, Server, Settings};
