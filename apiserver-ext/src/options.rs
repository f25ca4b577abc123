//! Command-line options (`Options`) and their validation.
//!
//! Flag names follow `k8s.io/apiserver/pkg/server/options` (secure serving,
//! delegating authentication and authorization) and metrics-server's
//! `--kubelet-*` flags. `Options::validate` lists every problem at once;
//! [`crate::config::Config::from_options`] turns valid options into a config.

use std::net::IpAddr;
use std::path::PathBuf;

use api_types::duration::GoDuration;
use api_types::features::{APISERVER_GATES, FeatureGates};
use api_types::timeouts::{DEFAULT_KUBELET_TIMEOUT_MARGIN, DEFAULT_RUNTIME_REQUEST_TIMEOUT};
use clap::Parser;

use crate::target::AddressType;

/// Default `--secure-port`: kube-apiserver's own secure port. Unprivileged,
/// so the container runs as non-root, and unlike metrics-server's 10250 it
/// cannot clash with a kubelet when the pod runs on the host network.
pub const DEFAULT_SECURE_PORT: u16 = 6443;
/// Default `--cert-dir`, as `k8s.io/apiserver`'s.
pub const DEFAULT_CERT_DIR: &str = "apiserver.local.config/certificates";
/// Default largest request body (the options object is a few dozen bytes).
pub const DEFAULT_MAX_REQUEST_BODY_BYTES: usize = 64 * 1024;

/// Log format (`--logging-format`), shared with the other server.
pub use apiserver_lib::logging::Format as LoggingFormat;

/// An aggregated API server that checkpoints containers.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "checkpoint-apiserver",
    version,
    about = "Aggregated API server (APIService v1alpha1.subresources.checkpoint.kcr.dev) serving POST /apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/{namespace}/pods/{pod}/checkpoint.",
    long_about = "Aggregated API server (APIService v1alpha1.subresources.checkpoint.kcr.dev) serving POST /apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/{namespace}/pods/{pod}/checkpoint (options ?container=C&timeoutSeconds=S or a PodCheckpointOptions body).\n\nEach request is authenticated (front-proxy certificate and X-Remote-* headers, client certificate, or bearer token via TokenReview), authorized by SubjectAccessReview of verb `checkpoint` on core `pods`, checked against the pod and its node, and forwarded to the node's kubelet (or checkpoint-shim) as POST https://NODE:PORT/checkpoint/{namespace}/{pod}/{container}?timeout=S. The answer is a ContainerCheckpoint object, or a metav1.Status on failure; an Event is recorded on the pod either way.\n\nThe subresource is alpha: it is served only with --feature-gates=ContainerCheckpointAPI=true."
)]
pub struct Options {
    // ---- secure serving ----
    /// The IP address to serve on (0.0.0.0 or :: for all interfaces).
    #[arg(
        long,
        value_name = "IP",
        default_value = "0.0.0.0",
        help_heading = "Secure serving"
    )]
    pub bind_address: IpAddr,

    /// The port to serve HTTPS on (0 picks a free port, logged at start).
    #[arg(long, value_name = "PORT", default_value_t = DEFAULT_SECURE_PORT, help_heading = "Secure serving")]
    pub secure_port: u16,

    /// Serving certificate (PEM, may hold the chain). Without it and --tls-private-key-file, a
    /// self-signed pair is generated and kept in --cert-dir.
    #[arg(long, value_name = "FILE", help_heading = "Secure serving")]
    pub tls_cert_file: Option<PathBuf>,

    /// Private key of --tls-cert-file (PEM).
    #[arg(long, value_name = "FILE", help_heading = "Secure serving")]
    pub tls_private_key_file: Option<PathBuf>,

    /// Directory of the self-signed serving pair (apiserver.crt, apiserver.key) used when no
    /// --tls-cert-file is given.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_CERT_DIR, help_heading = "Secure serving")]
    pub cert_dir: PathBuf,

    // ---- cluster access ----
    /// kubeconfig for reading pods and nodes and writing events; its credentials (the service
    /// account token in-cluster) also call the kubelets [default: $KUBECONFIG, ~/.kube/config or
    /// the in-cluster service account].
    #[arg(long, value_name = "FILE", help_heading = "Cluster access")]
    pub kubeconfig: Option<PathBuf>,

    // ---- authentication ----
    /// kubeconfig for TokenReview and for reading kube-system/extension-apiserver-authentication
    /// [default: --kubeconfig].
    #[arg(long, value_name = "FILE", help_heading = "Authentication")]
    pub authentication_kubeconfig: Option<PathBuf>,

    /// Do not read the client and request-header CAs from the
    /// kube-system/extension-apiserver-authentication ConfigMap; use the flags only.
    #[arg(long, help_heading = "Authentication")]
    pub authentication_skip_lookup: bool,

    /// Start even when the extension-apiserver-authentication ConfigMap cannot be read.
    #[arg(long, help_heading = "Authentication")]
    pub authentication_tolerate_lookup_failure: bool,

    /// CA bundle for client certificates (CN is the user, O the groups) [default: the
    /// ConfigMap's client-ca-file].
    #[arg(long, value_name = "FILE", help_heading = "Authentication")]
    pub client_ca_file: Option<PathBuf>,

    /// CA bundle of the front proxy (kube-apiserver's --requestheader-client-ca-file); the
    /// X-Remote-* headers count only on connections with a certificate it signed [default: the
    /// ConfigMap's requestheader-client-ca-file].
    #[arg(long, value_name = "FILE", help_heading = "Authentication")]
    pub requestheader_client_ca_file: Option<PathBuf>,

    /// Common names allowed on the front-proxy certificate, comma-separated; empty allows any
    /// certificate the request-header CA signed [default: the ConfigMap's list].
    #[arg(
        long,
        value_name = "NAMES",
        value_delimiter = ',',
        help_heading = "Authentication"
    )]
    pub requestheader_allowed_names: Vec<String>,

    /// Headers holding the user name [default: the ConfigMap's list, else X-Remote-User].
    #[arg(
        long,
        value_name = "HEADERS",
        value_delimiter = ',',
        help_heading = "Authentication"
    )]
    pub requestheader_username_headers: Vec<String>,

    /// Headers holding the groups, one header per group [default: the ConfigMap's list, else
    /// X-Remote-Group].
    #[arg(
        long,
        value_name = "HEADERS",
        value_delimiter = ',',
        help_heading = "Authentication"
    )]
    pub requestheader_group_headers: Vec<String>,

    /// Prefixes of the headers holding extra user attributes [default: the ConfigMap's list,
    /// else X-Remote-Extra-].
    #[arg(
        long,
        value_name = "PREFIXES",
        value_delimiter = ',',
        help_heading = "Authentication"
    )]
    pub requestheader_extra_headers_prefix: Vec<String>,

    // ---- authorization ----
    /// kubeconfig for SubjectAccessReview [default: --kubeconfig].
    #[arg(long, value_name = "FILE", help_heading = "Authorization")]
    pub authorization_kubeconfig: Option<PathBuf>,

    /// How long an allowed SubjectAccessReview is cached (Go duration).
    #[arg(long, value_name = "DURATION", default_value_t = GoDuration::from_secs(10), help_heading = "Authorization")]
    pub authorization_webhook_cache_authorized_ttl: GoDuration,

    /// How long a denied SubjectAccessReview is cached (Go duration).
    #[arg(long, value_name = "DURATION", default_value_t = GoDuration::from_secs(10), help_heading = "Authorization")]
    pub authorization_webhook_cache_unauthorized_ttl: GoDuration,

    // ---- kubelet ----
    /// Node address types to try, in order (InternalIP, ExternalIP, Hostname, InternalDNS,
    /// ExternalDNS).
    #[arg(
        long,
        value_name = "TYPES",
        value_delimiter = ',',
        default_value = "InternalIP,ExternalIP,Hostname",
        help_heading = "Kubelet"
    )]
    pub kubelet_preferred_address_types: Vec<String>,

    /// Port of the node endpoint (10350 for checkpoint-shim) [default: the node's
    /// status.daemonEndpoints.kubeletEndpoint.Port, else 10250].
    #[arg(long, value_name = "PORT", help_heading = "Kubelet")]
    pub kubelet_port: Option<u16>,

    /// CA bundle that kubelet serving certificates must chain to [default: the cluster CA of
    /// --kubeconfig].
    #[arg(long, value_name = "FILE", help_heading = "Kubelet")]
    pub kubelet_certificate_authority: Option<PathBuf>,

    /// Do not verify kubelet serving certificates (test clusters with self-signed kubelet
    /// certificates only).
    #[arg(long, help_heading = "Kubelet")]
    pub kubelet_insecure_tls: bool,

    /// Client certificate presented to kubelets (PEM) [default: the bearer token of
    /// --kubeconfig, the service-account token in-cluster].
    #[arg(long, value_name = "FILE", help_heading = "Kubelet")]
    pub kubelet_client_certificate: Option<PathBuf>,

    /// Private key of --kubelet-client-certificate (PEM).
    #[arg(long, value_name = "FILE", help_heading = "Kubelet")]
    pub kubelet_client_key: Option<PathBuf>,

    /// The runtime timeout assumed when a request gives none (the kubelet's default
    /// --runtime-request-timeout); the node call is bounded by it plus --kubelet-timeout-margin.
    #[arg(long, value_name = "DURATION", default_value_t = GoDuration(DEFAULT_RUNTIME_REQUEST_TIMEOUT), help_heading = "Kubelet")]
    pub kubelet_request_timeout: GoDuration,

    /// Added to the request's timeout to bound the node call: more than the node's own grace
    /// past the runtime timeout (5s for kubelet and checkpoint-shim), so that the node reports
    /// a hung runtime before this server gives up on the node.
    #[arg(long, value_name = "DURATION", default_value_t = GoDuration(DEFAULT_KUBELET_TIMEOUT_MARGIN), help_heading = "Kubelet")]
    pub kubelet_timeout_margin: GoDuration,

    /// Checkpoints running at once on one node; further requests wait in a queue.
    #[arg(long, value_name = "N", default_value_t = 2, help_heading = "Kubelet")]
    pub max_checkpoints_per_node: usize,

    /// How long a request waits in a node's queue before it is refused with 503.
    #[arg(long, value_name = "DURATION", default_value_t = GoDuration::from_secs(20), help_heading = "Kubelet")]
    pub node_queue_timeout: GoDuration,

    // ---- requests ----
    /// Largest `timeoutSeconds` a request may ask for; at most 3600, what the nodes accept.
    #[arg(long, value_name = "SECONDS", default_value_t = api_types::MAX_TIMEOUT_SECONDS, help_heading = "Requests")]
    pub max_timeout_seconds: i64,

    /// Largest request body accepted (bytes).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_REQUEST_BODY_BYTES, help_heading = "Requests")]
    pub max_request_body_bytes: usize,

    /// Feature gates, A=true|false,...; known: ContainerCheckpointAPI=true|false (alpha, default
    /// false: the subresource is absent from discovery and its route answers 404).
    #[arg(
        long,
        value_name = "GATES",
        default_value = "",
        help_heading = "Requests"
    )]
    pub feature_gates: String,

    // ---- logging ----
    /// Log format (logs go to stderr; RUST_LOG sets the level, default info).
    #[arg(
        long,
        value_name = "FORMAT",
        value_enum,
        default_value = "text",
        help_heading = "Logging"
    )]
    pub logging_format: LoggingFormat,

    // ---- testing only ----
    /// FOR TESTING ONLY: skip SubjectAccessReview and allow exactly these users
    /// (comma-separated).
    #[arg(
        long,
        value_name = "USERS",
        value_delimiter = ',',
        help_heading = "Testing only"
    )]
    pub authorization_allow_users_for_testing: Vec<String>,

    /// FOR TESTING ONLY: skip SubjectAccessReview and allow members of these groups
    /// (comma-separated).
    #[arg(
        long,
        value_name = "GROUPS",
        value_delimiter = ',',
        help_heading = "Testing only"
    )]
    pub authorization_allow_groups_for_testing: Vec<String>,

    /// FOR TESTING ONLY: authenticate bearer tokens from this file (token,user,uid,"group1,group2"
    /// per line, as kube-apiserver's --token-auth-file) instead of TokenReview.
    #[arg(long, value_name = "FILE", help_heading = "Testing only")]
    pub token_auth_file_for_testing: Option<PathBuf>,
}

/// Invalid options; every problem is listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid options:\n  {}", .0.join("\n  "))]
pub struct Error(pub Vec<String>);

impl Options {
    /// Every problem with the options (empty: valid).
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if self.tls_cert_file.is_some() != self.tls_private_key_file.is_some() {
            errs.push("--tls-cert-file and --tls-private-key-file go together".to_owned());
        }
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
        if let Err(e) = self.gates() {
            errs.push(format!("--feature-gates: {e}"));
        }
        if !(1..=api_types::MAX_TIMEOUT_SECONDS).contains(&self.max_timeout_seconds) {
            errs.push(format!(
                "--max-timeout-seconds must be between 1 and {} (what kubelets and checkpoint-shim accept), got {}",
                api_types::MAX_TIMEOUT_SECONDS,
                self.max_timeout_seconds
            ));
        }
        if self.max_checkpoints_per_node < 1 {
            errs.push("--max-checkpoints-per-node must be at least 1".to_owned());
        }
        if self.max_request_body_bytes < 1024 {
            errs.push(format!(
                "--max-request-body-bytes must be at least 1024, got {}",
                self.max_request_body_bytes
            ));
        }
        if self.kubelet_request_timeout.get().is_zero() {
            errs.push("--kubelet-request-timeout must be positive".to_owned());
        }
        if self.node_queue_timeout.get().is_zero() {
            errs.push("--node-queue-timeout must be positive".to_owned());
        }
        for (flag, list) in [
            (
                "--requestheader-username-headers",
                &self.requestheader_username_headers,
            ),
            (
                "--requestheader-group-headers",
                &self.requestheader_group_headers,
            ),
            (
                "--requestheader-extra-headers-prefix",
                &self.requestheader_extra_headers_prefix,
            ),
        ] {
            for h in list {
                if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                    errs.push(format!("{flag}: {h:?} is not a valid header name"));
                }
            }
        }
        errs
    }

    /// Like [`Options::validate`], as a `Result`.
    pub fn validated(&self) -> Result<(), Error> {
        let errs = self.validate();
        if errs.is_empty() {
            Ok(())
        } else {
            Err(Error(errs))
        }
    }

    /// The parsed `--feature-gates`.
    pub fn gates(&self) -> Result<FeatureGates, api_types::features::FeatureGateError> {
        FeatureGates::parse(APISERVER_GATES, &self.feature_gates)
    }

    /// The parsed `--kubelet-preferred-address-types`.
    pub fn address_types(&self) -> Result<Vec<AddressType>, String> {
        let types: Vec<AddressType> = self
            .kubelet_preferred_address_types
            .iter()
            .map(|t| t.trim())
            .filter(|t| !t.is_empty())
            .map(|t| {
                AddressType::parse(t).ok_or_else(|| {
                    format!(
                        "--kubelet-preferred-address-types: unknown address type {t:?} (known: InternalIP, ExternalIP, Hostname, InternalDNS, ExternalDNS)"
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        if types.is_empty() {
            return Err("--kubelet-preferred-address-types must name at least one type".into());
        }
        Ok(types)
    }

    /// Whether a static authorizer (named for testing) replaces SubjectAccessReview.
    pub fn authorization_bypassed_for_testing(&self) -> bool {
        !self.authorization_allow_users_for_testing.is_empty()
            || !self.authorization_allow_groups_for_testing.is_empty()
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
        assert!(o.validate().is_empty(), "{:?}", o.validate());
        assert_eq!(o.secure_port, 6443);
        assert_eq!(
            o.address_types().unwrap(),
            vec![
                AddressType::InternalIP,
                AddressType::ExternalIP,
                AddressType::Hostname
            ]
        );
        assert!(
            !o.gates()
                .unwrap()
                .enabled(api_types::features::CONTAINER_CHECKPOINT_API)
        );
        assert!(!o.authorization_bypassed_for_testing());
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
        let err = o.validated().unwrap_err();
        insta::assert_snapshot!("invalid_options", err.to_string());
    }

    #[test]
    fn max_timeout_cannot_exceed_what_nodes_accept() {
        // Raised above the nodes' bound, a long timeout would end as a node 400
        // reported as a 500: refused at start-up instead, naming the limit.
        let err = parse(&["--max-timeout-seconds=7200"])
            .validated()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid options:\n  --max-timeout-seconds must be between 1 and 3600 (what kubelets and checkpoint-shim accept), got 7200"
        );
        assert!(parse(&["--max-timeout-seconds=3600"]).validated().is_ok());
    }
}
