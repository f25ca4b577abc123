//! From validated [`Options`] to a [`Config`] (metrics-server's
//! `Options.ServerConfig` then `Config.Complete`): the API client, delegated
//! authentication (flags or the ConfigMap) and authorization, the serving
//! certificate, and the subresource with its listers, kubelet client and
//! event recorder.

use std::sync::Arc;

use apiserver_lib::authentication::Authenticator;
use apiserver_lib::health::Check;
use apiserver_lib::kubeconfig::{self, Fallback};
use apiserver_lib::options::{DelegationError, SecureServingInfo, SelfSigned, delegate};
use apiserver_lib::tls;

use crate::checkpoint::CheckpointREST;
use crate::concurrency::NodeLimiter;
use crate::events::KubeEventRecorder;
use crate::kubelet_client;
use crate::leases::{self, KubeLeases};
use crate::listers::KubeListers;
use crate::metrics::Metrics;
use crate::options::Options;
use crate::signer::{ShimCa, ShimSigner};
use crate::turns::ContainerTurns;

/// Base name of the self-signed pair in `--cert-dir`.
pub const SELF_SIGNED_NAME: &str = "apiserver";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Delegation(#[from] DelegationError),
    #[error("serving certificate: {0}")]
    Serving(tls::Error),
    #[error("kubelet client: {0}")]
    Kubelet(kubelet_client::Error),
    #[error("shim signer (--shim-signer): {0}")]
    Signer(#[from] crate::signer::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the server runs with.
#[derive(Debug)]
pub struct Config {
    pub secure_serving: SecureServingInfo,
    pub authenticator: Authenticator,
    /// The subresource, each dependency behind a narrow trait.
    pub rest: CheckpointREST,
    /// The `kube-apiserver` readiness check.
    pub api_server_check: Check,
    /// The signer of shim serving certificates (`--shim-signer`).
    pub shim_signer: Option<ShimSigner>,
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "checkpoint-apiserver".to_owned())
}

impl Config {
    /// The configuration of [`Options`] that [`Options::validate`] accepted.
    pub async fn from_options(opts: &Options) -> Result<Config> {
        let delegation = delegate(
            opts.kubeconfig.as_deref(),
            Fallback::Infer,
            &opts.authentication,
            &opts.authorization,
            &opts.testing,
        )
        .await?;
        // Inference never ends without a configuration: it fails first.
        let (Some(cluster_config), Some(cluster)) = (delegation.config, delegation.client) else {
            return Err(
                DelegationError::from(kubeconfig::Error::Infer("no configuration".into())).into(),
            );
        };
        let hosts = ["localhost".to_owned(), "127.0.0.1".to_owned()];
        let secure_serving = opts
            .secure_serving
            .apply(
                &SelfSigned {
                    name: SELF_SIGNED_NAME,
                    default_dir: None,
                    hosts: &hosts,
                },
                &delegation.authentication.client_cas,
            )
            .map_err(Error::Serving)?;
        let shim_ca = match (opts.shim_signer.shim_signer, opts.shim_signer.ca_secret()) {
            (true, Some((namespace, name))) => Some(Arc::new(
                ShimCa::load_or_create(cluster.clone(), namespace, name).await?,
            )),
            _ => None,
        };
        let extra_roots = shim_ca.as_ref().map(|ca| ca.roots()).unwrap_or_default();
        let kubelet_client = opts
            .kubelet_client
            .client(&cluster_config, &extra_roots)
            .map_err(Error::Kubelet)?;
        let shim_signer =
            shim_ca.map(|ca| ShimSigner::new(cluster.clone(), ca, opts.shim_signer.policy()));
        let listers = Arc::new(KubeListers::new(cluster.clone()));
        let kubelet = opts.kubelet_client.config();
        let leases = KubeLeases::new(
            cluster.clone(),
            &opts.lease_namespace,
            leases::identity(&hostname()),
        );
        tracing::info!(namespace = %opts.lease_namespace, identity = %leases.identity(), "per-container leases");
        Ok(Config {
            secure_serving,
            authenticator: delegation.authentication.authenticator,
            rest: CheckpointREST {
                feature_gates: opts.feature_gates.gates(),
                max_timeout_seconds: opts.max_timeout_seconds,
                max_request_body_bytes: opts.max_request_body_bytes,
                max_archive_range_bytes: opts.max_archive_range_bytes,
                authorizer: delegation.authorizer,
                pods: listers.clone(),
                pod_checkpoints: listers.clone(),
                nodes: listers,
                limiter: NodeLimiter::new(kubelet.max_checkpoints_per_node),
                turns: ContainerTurns::new(Arc::new(leases)),
                kubelet,
                kubelet_client: Arc::new(kubelet_client),
                events: Arc::new(KubeEventRecorder::new(cluster.clone(), hostname())),
                metrics: Arc::new(Metrics::new()),
            },
            api_server_check: Check::kube_apiserver(cluster),
            shim_signer,
        })
    }
}
