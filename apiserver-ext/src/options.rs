//! Command-line options: the shared groups of `apiserver_lib::options`
//! (flag names of `k8s.io/apiserver/pkg/server/options`) with this server's
//! [`ApiServerFlags`], and [`KubeletClientOptions`] (metrics-server's
//! `--kubelet-*`, `cmd/metrics-server/app/options/kubelet_client.go`).
//! [`Options::validate`] lists every problem at once;
//! [`crate::config::Config::from_options`] turns valid options into a config.

use std::path::PathBuf;
use std::time::Duration;

use api_types::duration::GoDuration;
use api_types::features::APISERVER_GATES;
use api_types::timeouts::{DEFAULT_KUBELET_TIMEOUT_MARGIN, DEFAULT_RUNTIME_REQUEST_TIMEOUT};
use apiserver_lib::logging::LoggingOptions;
use apiserver_lib::options::{
    AllowGroupsForTestingOptions, AuthorizationWebhookOptions, DelegatingAuthenticationOptions,
    DelegatingAuthorizationOptions, FeatureGateOptions, ForTestingOptions, InvalidOptions, Parsed,
    RemoteAuthenticationOptions, RequestHeaderAuthenticationOptions, SecureServingOptions,
    ServerFlags,
};
use clap::Parser;

use apiserver_lib::tls::{self, ServerTrust, ServingCert};
use rustls::pki_types::CertificateDer;
use secrecy::ExposeSecret;

use crate::kubelet_client::{
    self, AddressType, Credentials, HttpsKubeletClient, KubeletClientConfig,
};

/// Default `--secure-port`: kube-apiserver's own secure port. Unprivileged,
/// so the container runs as non-root, and unlike metrics-server's 10250 it
/// cannot clash with a kubelet when the pod runs on the host network.
pub const DEFAULT_SECURE_PORT: u16 = 6443;
/// Default `--cert-dir`, as `k8s.io/apiserver`'s.
pub const DEFAULT_CERT_DIR: &str = "apiserver.local.config/certificates";
/// Default largest request body (the options object is a few dozen bytes).
pub const DEFAULT_MAX_REQUEST_BODY_BYTES: usize = 64 * 1024;

/// `--max-archive-range-bytes`' default: 64 MiB, a range that crosses a
/// 10 MB/s path in under 7 s, well inside kube-apiserver's 60 s request timeout.
pub const DEFAULT_MAX_ARCHIVE_RANGE_BYTES: u64 = 64 * 1024 * 1024;

/// checkpoint-apiserver's flags where the two servers differ: kube-apiserver's names.
#[derive(Debug, Clone, Copy)]
pub struct ApiServerFlags;

impl ServerFlags for ApiServerFlags {
    const BIND_ADDRESS: &'static str = "bind-address";
    const PORT: &'static str = "secure-port";
    const DEFAULT_PORT: &'static str = "6443";
    const DEFAULT_CERT_DIR: Option<&'static str> = Some(DEFAULT_CERT_DIR);
    const CERT_DIR_HELP: &'static str = "Directory of the self-signed serving pair (apiserver.crt, apiserver.key) used when no --tls-cert-file is given; a directory of another user gets a subdirectory apiserver/ of this server's own";
    const CLIENT_CA_FILE_HELP: &'static str = "CA bundle for client certificates (CN is the user, O the groups) [default: the ConfigMap's client-ca-file]";
    const FEATURE_GATES: &'static [(&'static str, bool)] = APISERVER_GATES;
    const FEATURE_GATES_HELP: &'static str = "Feature gates, A=true|false,...; known: ContainerCheckpointAPI=true|false (alpha, default false: the subresource is absent from discovery and its route answers 404)";
    const AUTHORIZATION_CACHE_TTLS: (Duration, Duration) =
        (Duration::from_secs(10), Duration::from_secs(10));
    type RemoteAuthentication = RemoteAuthenticationOptions;
    type RequestHeader = RequestHeaderAuthenticationOptions;
    type AuthorizationWebhook = AuthorizationWebhookOptions;
    type AllowGroupsForTesting = AllowGroupsForTestingOptions;
}

/// An aggregated API server that checkpoints containers.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "checkpoint-apiserver",
    version,
    about = "Aggregated API server (APIService v1alpha1.subresources.checkpoint.kcr.dev) serving POST /apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/{namespace}/pods/{pod}/checkpoint.",
    long_about = "Aggregated API server (APIService v1alpha1.subresources.checkpoint.kcr.dev) serving POST /apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/{namespace}/pods/{pod}/checkpoint (options ?container=C&timeoutSeconds=S or a PodCheckpointOptions body).\n\nEach request is authenticated (front-proxy certificate and X-Remote-* headers, client certificate, or bearer token via TokenReview), authorized by SubjectAccessReview of verb `checkpoint` on core `pods`, checked against the pod and its node, and forwarded to the node's kubelet (or checkpoint-shim) as POST https://NODE:PORT/checkpoint/{namespace}/{pod}/{container}?timeout=S. The answer is a ContainerCheckpoint object, or a metav1.Status on failure; an Event is recorded on the pod either way, and an audit line logged.\n\nThe subresource is alpha: it is served only with --feature-gates=ContainerCheckpointAPI=true."
)]
pub struct Options {
    #[command(flatten, next_help_heading = "Secure serving")]
    pub secure_serving: SecureServingOptions<ApiServerFlags>,

    /// kubeconfig for reading pods and nodes and writing events; its credentials (the service
    /// account token in-cluster) also call the kubelets [default: $KUBECONFIG, ~/.kube/config or
    /// the in-cluster service account].
    #[arg(long, value_name = "FILE", help_heading = "Cluster access")]
    pub kubeconfig: Option<PathBuf>,

    #[command(flatten, next_help_heading = "Authentication")]
    pub authentication: DelegatingAuthenticationOptions<ApiServerFlags>,

    #[command(flatten, next_help_heading = "Authorization")]
    pub authorization: DelegatingAuthorizationOptions<ApiServerFlags>,

    #[command(flatten, next_help_heading = "Kubelet")]
    pub kubelet_client: KubeletClientOptions,

    #[command(flatten, next_help_heading = "Shim serving certificates")]
    pub shim_signer: ShimSignerOptions,

    /// Largest `timeoutSeconds` a request may ask for; at most 3600, what the nodes accept.
    #[arg(long, value_name = "SECONDS", default_value_t = api_types::MAX_TIMEOUT_SECONDS, help_heading = "Requests")]
    pub max_timeout_seconds: i64,

    /// Largest request body accepted (bytes).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_REQUEST_BODY_BYTES, help_heading = "Requests")]
    pub max_request_body_bytes: usize,

    /// Namespace of the per-container Leases (coordination.k8s.io/v1) through which the
    /// replicas take turns: one checkpoint of a container at a time, at least 1s apart.
    #[arg(long, value_name = "NAMESPACE", default_value = crate::leases::DEFAULT_NAMESPACE, help_heading = "Requests")]
    pub lease_namespace: String,

    /// Most bytes of an archive one GET of podcheckpoints/archive answers (a longer range is
    /// cut there; Content-Range says where). Each range must finish inside kube-apiserver's
    /// --request-timeout (60s).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_ARCHIVE_RANGE_BYTES, help_heading = "Requests")]
    pub max_archive_range_bytes: u64,

    #[command(flatten, next_help_heading = "Requests")]
    pub feature_gates: FeatureGateOptions<ApiServerFlags>,

    #[command(flatten, next_help_heading = "Logging")]
    pub logging: LoggingOptions,

    #[command(flatten, next_help_heading = "Testing only")]
    pub testing: ForTestingOptions<ApiServerFlags>,
}

fn parse_address_type(raw: &str) -> Result<Parsed<AddressType>, std::convert::Infallible> {
    Ok(Parsed::new(raw.trim(), |t| {
        AddressType::parse(t).ok_or_else(|| {
            format!(
                "--kubelet-preferred-address-types: unknown address type {t:?} (known: InternalIP, ExternalIP, Hostname, InternalDNS, ExternalDNS)"
            )
        })
    }))
}

/// `--kubelet-*`: how to reach and call the nodes' checkpoint endpoint.
#[derive(Debug, Clone, clap::Args)]
pub struct KubeletClientOptions {
    /// Node address types to try, in order (InternalIP, ExternalIP, Hostname, InternalDNS,
    /// ExternalDNS).
    #[arg(
        long,
        value_name = "TYPES",
        value_delimiter = ',',
        default_value = "InternalIP,ExternalIP,Hostname",
        value_parser = parse_address_type
    )]
    pub kubelet_preferred_address_types: Vec<Parsed<AddressType>>,

    /// Port of the node endpoint (10350 for checkpoint-shim) [default: the node's
    /// status.daemonEndpoints.kubeletEndpoint.Port, else 10250].
    #[arg(long, value_name = "PORT")]
    pub kubelet_port: Option<u16>,

    /// Port of the node agent (checkpoint-shim, deploy/shim: 10350), which serves the
    /// archives of PodCheckpoints (podcheckpoints/archive); set it where the kubelet serves
    /// the checkpoints themselves [default: the port of checkpoint calls].
    #[arg(long, value_name = "PORT")]
    pub node_agent_port: Option<u16>,

    /// CA bundle that kubelet serving certificates must chain to [default: the cluster CA of
    /// --kubeconfig].
    #[arg(long, value_name = "FILE")]
    pub kubelet_certificate_authority: Option<PathBuf>,

    /// Do not verify kubelet serving certificates (test clusters with self-signed kubelet
    /// certificates only).
    #[arg(long)]
    pub kubelet_insecure_tls: bool,

    /// Client certificate presented to kubelets (PEM) [default: the bearer token of --kubeconfig,
    /// the service-account token in-cluster].
    #[arg(long, value_name = "FILE")]
    pub kubelet_client_certificate: Option<PathBuf>,

    /// Private key of --kubelet-client-certificate (PEM).
    #[arg(long, value_name = "FILE")]
    pub kubelet_client_key: Option<PathBuf>,

    /// The runtime timeout assumed when a request gives none (the kubelet's default
    /// --runtime-request-timeout); the node call is bounded by it plus --kubelet-timeout-margin.
    #[arg(long, value_name = "DURATION", default_value_t = GoDuration(DEFAULT_RUNTIME_REQUEST_TIMEOUT))]
    pub kubelet_request_timeout: GoDuration,

    /// Added to the request's timeout to bound the node call: more than the node's own grace
    /// past the runtime timeout (5s for kubelet and checkpoint-shim), so that the node reports
    /// a hung runtime before this server gives up on the node.
    #[arg(long, value_name = "DURATION", default_value_t = GoDuration(DEFAULT_KUBELET_TIMEOUT_MARGIN))]
    pub kubelet_timeout_margin: GoDuration,

    /// Checkpoints running at once on one node; further requests wait in a queue.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub max_checkpoints_per_node: usize,

    /// How long a request waits in a queue before it is refused: for its container's turn
    /// (409; at most its own timeout), then for a slot on its node (503).
    #[arg(long, value_name = "DURATION", default_value_t = GoDuration::from_secs(20))]
    pub node_queue_timeout: GoDuration,
}

/// The signer of checkpoint-shim serving certificates (`crate::signer`).
#[derive(Debug, Clone, clap::Args)]
pub struct ShimSignerOptions {
    /// Approve and sign the CertificateSigningRequests of signer checkpoint.kcr.dev/shim-serving
    /// that checkpoint-shims make (--rotate-server-certificates), and trust the CA that signs them
    /// for node connections.
    #[arg(long, value_name = "BOOL", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub shim_signer: bool,

    /// NAMESPACE/NAME of the Secret (kubernetes.io/tls) holding the shim CA; created when absent.
    #[arg(long, value_name = "NAMESPACE/NAME", default_value = crate::signer::DEFAULT_CA_SECRET)]
    pub shim_ca_secret: String,

    /// The only user whose requests are approved: checkpoint-shim's service account.
    #[arg(long, value_name = "USER", default_value = crate::signer::DEFAULT_SHIM_SERVICE_ACCOUNT)]
    pub shim_service_account: String,

    /// Longest validity of a shim serving certificate (a request's expirationSeconds may shorten
    /// it; shims renew at 80 %).
    #[arg(long, value_name = "DURATION", default_value_t = GoDuration(crate::signer::DEFAULT_CERTIFICATE_DURATION))]
    pub shim_certificate_duration: GoDuration,
}

impl ShimSignerOptions {
    /// Every problem with the flags.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if self.ca_secret().is_none() {
            errs.push(format!(
                "--shim-ca-secret: must be NAMESPACE/NAME, got {:?}",
                self.shim_ca_secret
            ));
        }
        if self.policy().service_account_parts().is_none() {
            errs.push(format!(
                "--shim-service-account: must be system:serviceaccount:NAMESPACE:NAME, got {:?}",
                self.shim_service_account
            ));
        }
        if self.shim_certificate_duration.get() < std::time::Duration::from_secs(600) {
            errs.push("--shim-certificate-duration: must be at least 10m".to_owned());
        }
        errs
    }

    /// `(namespace, name)` of `--shim-ca-secret`.
    pub fn ca_secret(&self) -> Option<(&str, &str)> {
        let (ns, name) = self.shim_ca_secret.split_once('/')?;
        (!ns.is_empty() && !name.is_empty() && !name.contains('/')).then_some((ns, name))
    }

    /// The approval policy.
    pub fn policy(&self) -> crate::signer::Policy {
        crate::signer::Policy {
            service_account: self.shim_service_account.clone(),
            max_duration: self.shim_certificate_duration.get(),
        }
    }
}

impl KubeletClientOptions {
    /// Every problem with the flags.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if self.kubelet_client_certificate.is_some() != self.kubelet_client_key.is_some() {
            errs.push(
                "--kubelet-client-certificate and --kubelet-client-key go together".to_owned(),
            );
        }
        if self.kubelet_certificate_authority.is_some() && self.kubelet_insecure_tls {
            errs.push(
                "--kubelet-certificate-authority and --kubelet-insecure-tls exclude each other"
                    .to_owned(),
            );
        }
        if let Err(e) = self.address_types() {
            errs.push(e);
        }
        if self.max_checkpoints_per_node < 1 {
            errs.push("--max-checkpoints-per-node must be at least 1".to_owned());
        }
        if self.kubelet_request_timeout.get().is_zero() {
            errs.push("--kubelet-request-timeout must be positive".to_owned());
        }
        if self.node_queue_timeout.get().is_zero() {
            errs.push("--node-queue-timeout must be positive".to_owned());
        }
        errs
    }

    /// The preferred address types, in order.
    pub fn address_types(&self) -> Result<Vec<AddressType>, String> {
        let types: Vec<AddressType> = self
            .kubelet_preferred_address_types
            .iter()
            .filter(|t| !t.raw().is_empty())
            .map(|t| t.get().copied().map_err(str::to_owned))
            .collect::<Result<_, _>>()?;
        if types.is_empty() {
            return Err("--kubelet-preferred-address-types must name at least one type".into());
        }
        Ok(types)
    }

    /// The kubelet client: how node calls trust and authenticate, from the
    /// flags and the cluster's config: the flags' CA (else the cluster CA)
    /// and client certificate (else the kubeconfig's bearer token).
    pub fn client(
        &self,
        cluster: &kube::Config,
        extra_roots: &[CertificateDer<'static>],
    ) -> Result<HttpsKubeletClient, kubelet_client::Error> {
        let build = |e: tls::Error| kubelet_client::Error::Build(e.to_string());
        let trust = if self.kubelet_insecure_tls {
            tracing::warn!("--kubelet-insecure-tls: kubelet serving certificates are not verified");
            ServerTrust::InsecureSkipVerify
        } else if let Some(ca) = &self.kubelet_certificate_authority {
            let mut roots = tls::read_certs(ca).map_err(build)?;
            roots.extend_from_slice(extra_roots);
            ServerTrust::Ca(roots)
        } else {
            let roots: Vec<CertificateDer<'static>> = cluster
                .root_cert
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(CertificateDer::from)
                .chain(extra_roots.iter().cloned())
                .collect();
            if roots.is_empty() {
                return Err(kubelet_client::Error::Build(
                    "no CA to verify kubelets with: give --kubelet-certificate-authority (or --kubelet-insecure-tls on test clusters)".into(),
                ));
            }
            ServerTrust::Ca(roots)
        };
        let identity = match (&self.kubelet_client_certificate, &self.kubelet_client_key) {
            (Some(cert), Some(key)) => Some(ServingCert::load(cert, key).map_err(build)?),
            _ => None,
        };
        let credentials = if identity.is_some() {
            Credentials::None
        } else if let Some(t) = &cluster.auth_info.token {
            Credentials::Token(t.expose_secret().to_owned())
        } else if let Some(f) = &cluster.auth_info.token_file {
            Credentials::TokenFile(f.into())
        } else {
            tracing::warn!(
                "no credentials for kubelets: neither --kubelet-client-certificate nor a token in the kubeconfig"
            );
            Credentials::None
        };
        HttpsKubeletClient::new(trust, identity, credentials)
    }

    /// How nodes are called (see [`crate::kubelet_client`] for the client itself).
    pub fn config(&self) -> KubeletClientConfig {
        KubeletClientConfig {
            address_types: self
                .address_types()
                .unwrap_or_else(|_| KubeletClientConfig::default().address_types),
            port: self.kubelet_port,
            agent_port: self.node_agent_port,
            request_timeout: self.kubelet_request_timeout.get(),
            timeout_margin: self.kubelet_timeout_margin.get(),
            max_checkpoints_per_node: self.max_checkpoints_per_node,
            node_queue_timeout: self.node_queue_timeout.get(),
        }
    }
}

impl Options {
    /// Every problem with the options, at once.
    pub fn validate(&self) -> Result<(), InvalidOptions> {
        let mut errs = self.secure_serving.validate();
        errs.extend(self.authentication.validate());
        errs.extend(self.authorization.validate());
        errs.extend(self.kubelet_client.validate());
        errs.extend(self.shim_signer.validate());
        if !(1..=api_types::MAX_TIMEOUT_SECONDS).contains(&self.max_timeout_seconds) {
            errs.push(format!(
                "--max-timeout-seconds must be between 1 and {} (what kubelets and checkpoint-shim accept), got {}",
                api_types::MAX_TIMEOUT_SECONDS,
                self.max_timeout_seconds
            ));
        }
        if self.max_request_body_bytes < 1024 {
            errs.push(format!(
                "--max-request-body-bytes must be at least 1024, got {}",
                self.max_request_body_bytes
            ));
        }
        if let Err(e) = api_types::validation::validate_namespace(&self.lease_namespace) {
            errs.push(format!("--lease-namespace: {e}"));
        }
        if self.max_archive_range_bytes < 4096 {
            errs.push(format!(
                "--max-archive-range-bytes must be at least 4096, got {}",
                self.max_archive_range_bytes
            ));
        }
        errs.extend(self.feature_gates.validate());
        errs.extend(self.logging.validate());
        InvalidOptions::check(errs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Options {
        let mut all = vec!["checkpoint-apiserver"];
        all.extend_from_slice(args);
        Options::try_parse_from(all).unwrap()
    }

    #[test]
    fn defaults_are_valid() {
        let o = parse(&[]);
        assert!(o.validate().is_ok(), "{:?}", o.validate());
        assert_eq!(o.secure_serving.port, 6443);
        assert_eq!(
            o.kubelet_client.address_types().unwrap(),
            vec![
                AddressType::InternalIP,
                AddressType::ExternalIP,
                AddressType::Hostname
            ]
        );
        assert!(
            !o.feature_gates
                .gates()
                .enabled(api_types::features::CONTAINER_CHECKPOINT_API)
        );
        assert!(o.testing.authorizer().is_none());
    }

    #[test]
    fn every_problem_is_listed() {
        let o = parse(&[
            "--tls-cert-file=a",
            "--kubelet-client-key=k",
            "--kubelet-certificate-authority=ca",
            "--kubelet-insecure-tls",
            "--kubelet-preferred-address-types=InternalIP,Bogus",
            "--feature-gates=Nope=true",
            "--max-timeout-seconds=0",
            "--max-checkpoints-per-node=0",
            "--max-request-body-bytes=10",
            "--node-queue-timeout=0",
            "--requestheader-username-headers=bad header",
        ]);
        let err = o.validate().unwrap_err();
        insta::assert_snapshot!("invalid_options", err.to_string());
    }

    #[test]
    fn the_lease_namespace_must_be_a_namespace_name() {
        let o = parse(&[]);
        assert_eq!(o.lease_namespace, "kcr-system");
        let err = parse(&["--lease-namespace=Not_A_Namespace"])
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("--lease-namespace: "), "{err}");
        assert!(parse(&["--lease-namespace=checkpoints"]).validate().is_ok());
    }

    #[test]
    fn max_timeout_cannot_exceed_what_nodes_accept() {
        // Raised above the nodes' bound, a long timeout would end as a node 400
        // reported as a 500: refused at start-up instead, naming the limit.
        let err = parse(&["--max-timeout-seconds=7200"])
            .validate()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid options:\n  --max-timeout-seconds must be between 1 and 3600 (what kubelets and checkpoint-shim accept), got 7200"
        );
        assert!(parse(&["--max-timeout-seconds=3600"]).validate().is_ok());
    }
}
