//! Command-line options, named like the kubelet's flags where the kubelet has
//! one (`cmd/kubelet/app/options`): the shared groups of
//! `apiserver_lib::options` with this server's [`KubeletFlags`], and the
//! node's own (runtime endpoint, root dir, node name, runtime timeout).
//! [`Options::validate`] lists every problem at once;
//! [`crate::config::Config::from_options`] turns valid options into a config.

use std::convert::Infallible;
use std::path::PathBuf;
use std::time::Duration;

use api_types::duration::GoDuration;
use api_types::features::SHIM_GATES;
use api_types::timeouts::DEFAULT_RUNTIME_REQUEST_TIMEOUT;
use api_types::validation::validate_node_name;
use apiserver_lib::logging::LoggingOptions;
use apiserver_lib::options::{
    DelegatingAuthenticationOptions, DelegatingAuthorizationOptions, FeatureGateOptions,
    ForTestingOptions, InvalidOptions, NoFlags, Parsed, SecureServingOptions, ServerFlags,
};
use clap::Parser;

use crate::runtime::parse_endpoint;

/// Default `--container-runtime-endpoint`, as the kubelet's.
pub const DEFAULT_RUNTIME_ENDPOINT: &str = "unix:///run/containerd/containerd.sock";

/// checkpoint-shim's flags where the two servers differ: the kubelet's names.
#[derive(Debug, Clone, Copy)]
pub struct KubeletFlags;

impl ServerFlags for KubeletFlags {
    const BIND_ADDRESS: &'static str = "address";
    const PORT: &'static str = "port";
    const DEFAULT_PORT: &'static str = "10350";
    const DEFAULT_CERT_DIR: Option<&'static str> = None;
    const CERT_DIR_HELP: &'static str = "Where the self-signed serving pair is kept when no --tls-cert-file is given (made 0700; a directory of another user gets a subdirectory checkpoint-shim/ of this server's own) [default: <root-dir>/pki/checkpoint-shim]";
    const CLIENT_CA_FILE_HELP: &'static str =
        "CA bundle that client certificates must chain to; CN is the user, O the groups";
    const FEATURE_GATES: &'static [(&'static str, bool)] = SHIM_GATES;
    const FEATURE_GATES_HELP: &'static str =
        "Feature gates, A=true|false,...; known: ContainerCheckpoint=true|false (default true)";
    /// The kubelet's `--authorization-webhook-cache-{authorized,unauthorized}-ttl`.
    const AUTHORIZATION_CACHE_TTLS: (Duration, Duration) =
        (Duration::from_secs(300), Duration::from_secs(30));
    type RemoteAuthentication = NoFlags;
    type RequestHeader = NoFlags;
    type AuthorizationWebhook = NoFlags;
    type AllowGroupsForTesting = NoFlags;
}

fn parse_runtime_endpoint(raw: &str) -> Result<Parsed<PathBuf>, Infallible> {
    Ok(Parsed::new(raw, parse_endpoint))
}

/// A node agent that serves the kubelet's checkpoint API.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "checkpoint-shim",
    version,
    about = "Serve the kubelet's checkpoint API (POST /checkpoint/{namespace}/{pod}/{container}) over HTTPS and checkpoint containers through CRI.",
    long_about = "Serve the kubelet's checkpoint API (POST /checkpoint/{namespace}/{pod}/{container}, KEP-2008) over HTTPS and checkpoint containers through CRI, for nodes whose kubelet cannot turn on its ContainerCheckpoint gate.\n\nArchives are written to <root-dir>/checkpoints/checkpoint-<pod>_<namespace>-<container>-<RFC3339>.tar (a -N suffix for further archives within one second; nothing is ever overwritten), owned by root with mode 0600.\n\nRequests are authenticated by x509 client certificate (--client-ca-file) or bearer token (TokenReview), and authorized by SubjectAccessReview of `create` on `nodes/checkpoint` for --node-name, like the kubelet's; each checkpoint request leaves an audit line."
)]
pub struct Options {
    /// The endpoint of the CRI runtime service (a unix socket).
    #[arg(
        long,
        value_name = "ENDPOINT",
        default_value = DEFAULT_RUNTIME_ENDPOINT,
        value_parser = parse_runtime_endpoint
    )]
    pub container_runtime_endpoint: Parsed<PathBuf>,

    /// Directory of the kubelet's files; archives go to <root-dir>/checkpoints (created 0700).
    #[arg(long, value_name = "DIR", default_value = api_types::DEFAULT_KUBELET_ROOT_DIR)]
    pub root_dir: PathBuf,

    #[command(flatten)]
    pub secure_serving: SecureServingOptions<KubeletFlags>,

    /// This node's name, the `name` authorized in `nodes/checkpoint` [default: the host name, lower-cased].
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,

    /// kubeconfig for TokenReview and SubjectAccessReview [default: the in-cluster service account, when in a pod].
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    #[command(flatten)]
    pub feature_gates: FeatureGateOptions<KubeletFlags>,

    /// Timeout of runtime calls (Go duration); also the checkpoint timeout when a request gives none.
    #[arg(long, value_name = "DURATION", default_value_t = GoDuration(DEFAULT_RUNTIME_REQUEST_TIMEOUT))]
    pub runtime_request_timeout: GoDuration,

    #[command(flatten)]
    pub authentication: DelegatingAuthenticationOptions<KubeletFlags>,

    #[command(flatten)]
    pub authorization: DelegatingAuthorizationOptions<KubeletFlags>,

    #[command(flatten)]
    pub testing: ForTestingOptions<KubeletFlags>,

    #[command(flatten)]
    pub logging: LoggingOptions,

    /// Fulfil the PodCheckpoints (checkpoint.kcr.dev) of this node's pods: auto = when an API
    /// server is configured (--kubeconfig or in a pod), true = required, false = off.
    #[arg(long, value_name = "MODE", value_enum, default_value = "auto")]
    pub podcheckpoint_controller: ControllerMode,

    /// PodCheckpoints checkpointed at once on this node (1-8); the others wait with
    /// Ready=False/Pending.
    #[arg(long, value_name = "N", default_value_t = crate::controller::DEFAULT_MAX_CONCURRENT)]
    pub max_concurrent_podcheckpoints: usize,

    /// Request the serving certificate from signer checkpoint.kcr.dev/shim-serving through the
    /// CSR API (certificates.k8s.io/v1; checkpoint-apiserver --shim-signer=true signs it) and renew
    /// it at 80 % of its lifetime; until issued, the self-signed pair of --cert-dir is served and
    /// /readyz fails. Needs an API server; excludes --tls-cert-file.
    #[arg(long, value_name = "BOOL", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub rotate_server_certificates: bool,

    /// IP addresses of the node (comma-separated), named in the serving certificate requested by
    /// --rotate-server-certificates [default: the Node's status.addresses].
    #[arg(long, value_name = "IP", value_delimiter = ',')]
    pub node_ip: Vec<std::net::IpAddr>,

    /// How long --rotate-server-certificates waits for a request to be signed before it names
    /// the request in an error and makes a new one.
    #[arg(long, value_name = "DURATION", default_value_t = GoDuration(crate::certificate::DEFAULT_REQUEST_TIMEOUT))]
    pub serving_certificate_request_timeout: GoDuration,

    /// Serve the kubelet-compatible POST /checkpoint/... endpoint; false on clusters whose
    /// kubelet serves it (health and metrics are still served).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub checkpoint_endpoint: bool,

    /// Keep at most N PodCheckpoint archives per container (namespace, pod, container) on this
    /// node, the newest; the objects holding older ones are deleted. 0: no limit. Objects
    /// annotated checkpoint.kcr.dev/pin=true are exempt.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_archives_per_container: usize,

    /// Keep the PodCheckpoint archives on this node under this many bytes (a Kubernetes
    /// quantity: 50Gi, 500M): the oldest unpinned objects are deleted, and a checkpoint that
    /// cannot fit fails before writing. 0: no limit.
    #[arg(long, value_name = "QUANTITY", default_value = "0")]
    pub max_archive_bytes: ByteQuantity,

    /// Remove an archive directory (<root-dir>/checkpoints/<uid>/, written by this agent) whose
    /// PodCheckpoint is gone once it has had none for this long (Go duration).
    #[arg(long, value_name = "DURATION", default_value_t = GoDuration(crate::controller::DEFAULT_ORPHAN_ARCHIVE_GRACE))]
    pub orphan_archive_grace: GoDuration,

    /// Never remove archive directories whose PodCheckpoint is gone.
    #[arg(long)]
    pub keep_orphan_archives: bool,

    /// FOR TESTING ONLY: behave like the kubelet for archive names: exactly
    /// checkpoint-<pod>_<namespace>-<container>-<RFC3339>.tar, to the second, overwriting an
    /// archive of that name (no -N suffix), so tests can prove what a caller guarantees on
    /// kubelet nodes.
    #[arg(long)]
    pub kubelet_archive_names_for_testing: bool,
}

/// A number of bytes given as a Kubernetes quantity (`50Gi`, `500M`,
/// `1.5Gi`, `1000`), as `kubectl` and resource limits take them; kept with
/// the text given, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByteQuantity {
    pub raw: String,
    pub bytes: u64,
}

impl std::str::FromStr for ByteQuantity {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "{raw:?} is not a quantity of bytes (a number with an optional suffix: Ki, Mi, Gi, Ti, Pi, Ei, k, M, G, T, P, E)"
            )
        };
        // The parser reads a bare suffix as 0 and accepts "inf"/"nan":
        // a quantity starts with a digit.
        if !raw.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(bad());
        }
        let q = kube_quantity::ParsedQuantity::try_from(raw).map_err(|_| bad())?;
        let bytes = q.to_bytes_f64().ok_or_else(bad)?.ceil();
        if !bytes.is_finite() || bytes < 0.0 || bytes >= u64::MAX as f64 {
            return Err(bad());
        }
        Ok(ByteQuantity {
            raw: raw.to_owned(),
            // In range: checked above.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            bytes: bytes as u64,
        })
    }
}

impl std::fmt::Display for ByteQuantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.raw)
    }
}

/// `--podcheckpoint-controller`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ControllerMode {
    /// On when an API server is configured.
    Auto,
    /// On; no API server is an error at start.
    True,
    /// Off.
    False,
}

/// Most PodCheckpoints checkpointed at once: the node-wide limit of
/// checkpoints in flight, which the synchronous endpoint shares.
pub const MAX_CONCURRENT_PODCHECKPOINTS: usize = 8;

/// The host name, lower-cased, as the kubelet defaults its node name.
pub fn default_node_name() -> Option<String> {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())?;
    let name = raw.trim().to_ascii_lowercase();
    (!name.is_empty()).then_some(name)
}

impl Options {
    /// Every problem with the options, at once.
    pub fn validate(&self) -> Result<(), InvalidOptions> {
        let mut errs = Vec::new();
        if let Err(e) = self.container_runtime_endpoint.get() {
            errs.push(format!("--container-runtime-endpoint: {e}"));
        }
        if !self.root_dir.is_absolute() {
            errs.push(format!(
                "--root-dir: must be an absolute path, got {:?}",
                self.root_dir
            ));
        }
        match self.node_name() {
            None => errs.push("--node-name: not given and the host name is unknown".into()),
            Some(n) => {
                if let Err(e) = validate_node_name(&n) {
                    errs.push(format!("--node-name: {e}"));
                }
            }
        }
        errs.extend(self.secure_serving.validate());
        errs.extend(self.authentication.validate());
        errs.extend(self.authorization.validate());
        errs.extend(self.feature_gates.validate());
        if self.runtime_request_timeout.get() < Duration::from_secs(1) {
            errs.push("--runtime-request-timeout: must be at least 1s".into());
        }
        errs.extend(self.logging.validate());
        if self.rotate_server_certificates && self.secure_serving.tls_cert_file.is_some() {
            errs.push(
                "--rotate-server-certificates and --tls-cert-file exclude each other".to_owned(),
            );
        }
        if self.serving_certificate_request_timeout.get() < Duration::from_secs(1) {
            errs.push("--serving-certificate-request-timeout: must be at least 1s".into());
        }
        if !(1..=MAX_CONCURRENT_PODCHECKPOINTS).contains(&self.max_concurrent_podcheckpoints) {
            errs.push(format!(
                "--max-concurrent-podcheckpoints: must be between 1 and {MAX_CONCURRENT_PODCHECKPOINTS} (the node's limit of checkpoints in flight), got {}",
                self.max_concurrent_podcheckpoints
            ));
        }
        if self.orphan_archive_grace.get() < Duration::from_secs(1) {
            errs.push("--orphan-archive-grace: must be at least 1s (to keep orphans, give --keep-orphan-archives)".into());
        }
        InvalidOptions::check(errs)
    }

    /// `--node-name`, else the host name.
    pub fn node_name(&self) -> Option<String> {
        self.node_name.clone().or_else(default_node_name)
    }

    /// `<root-dir>/checkpoints`.
    pub fn checkpoints_dir(&self) -> PathBuf {
        self.root_dir.join(api_types::CHECKPOINTS_DIR)
    }

    /// `--cert-dir`'s default: `<root-dir>/pki/checkpoint-shim`.
    pub fn default_cert_dir(&self) -> PathBuf {
        self.root_dir.join("pki").join("checkpoint-shim")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Options {
        let mut argv = vec!["checkpoint-shim"];
        argv.extend_from_slice(args);
        Options::try_parse_from(argv).unwrap()
    }

    #[test]
    fn controller_and_endpoint_flags() {
        let o = parse(&["--node-name=n"]);
        assert_eq!(o.podcheckpoint_controller, ControllerMode::Auto);
        assert_eq!(o.max_concurrent_podcheckpoints, 2);
        assert!(o.checkpoint_endpoint);
        let o = parse(&[
            "--node-name=n",
            "--podcheckpoint-controller=true",
            "--max-concurrent-podcheckpoints=8",
            "--checkpoint-endpoint=false",
        ]);
        o.validate().unwrap();
        assert_eq!(o.podcheckpoint_controller, ControllerMode::True);
        assert_eq!(o.max_concurrent_podcheckpoints, 8);
        assert!(!o.checkpoint_endpoint);
        assert!(parse(&["--node-name=n", "--checkpoint-endpoint"]).checkpoint_endpoint);
        let err = parse(&["--node-name=n", "--max-concurrent-podcheckpoints=0"])
            .validate()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid options:\n  --max-concurrent-podcheckpoints: must be between 1 and 8 (the node's limit of checkpoints in flight), got 0"
        );
    }

    #[test]
    fn retention_flags() {
        let o = parse(&["--node-name=n"]);
        assert_eq!(o.max_archives_per_container, 0);
        assert_eq!(o.max_archive_bytes.bytes, 0);
        assert_eq!(o.orphan_archive_grace.get(), Duration::from_secs(600));
        assert!(!o.keep_orphan_archives);
        let o = parse(&[
            "--node-name=n",
            "--max-archives-per-container=3",
            "--max-archive-bytes=50Gi",
            "--orphan-archive-grace=30s",
            "--keep-orphan-archives",
        ]);
        o.validate().unwrap();
        assert_eq!(o.max_archives_per_container, 3);
        assert_eq!(o.max_archive_bytes.bytes, 50 << 30);
        assert_eq!(o.max_archive_bytes.to_string(), "50Gi");
        assert_eq!(o.orphan_archive_grace.get(), Duration::from_secs(30));
        assert!(o.keep_orphan_archives);
        for (raw, bytes) in [
            ("1.5Gi", 3 << 29),
            ("500M", 500_000_000),
            ("1000", 1000),
            ("1k", 1000),
            ("2Ki", 2048),
            ("0", 0),
        ] {
            assert_eq!(raw.parse::<ByteQuantity>().unwrap().bytes, bytes, "{raw}");
        }
        for bad in ["", "Gi", "-1Gi", "50GB", "inf", "nan", "1 Gi", "lots"] {
            let err = bad.parse::<ByteQuantity>().unwrap_err();
            assert!(err.contains("is not a quantity of bytes"), "{bad}: {err}");
        }
        let err = Options::try_parse_from(["checkpoint-shim", "--max-archive-bytes=50GB"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"50GB\" is not a quantity of bytes (a number with an optional suffix: Ki, Mi, Gi, Ti, Pi, Ei, k, M, G, T, P, E)"),
            "{err}"
        );
        let err = parse(&["--node-name=n", "--orphan-archive-grace=0s"])
            .validate()
            .unwrap_err();
        assert_eq!(
            err.0,
            [
                "--orphan-archive-grace: must be at least 1s (to keep orphans, give --keep-orphan-archives)"
            ]
        );
    }

    #[test]
    fn defaults_mirror_the_kubelet() {
        let o = parse(&["--node-name", "node-1"]);
        o.validate().unwrap();
        assert_eq!(
            o.container_runtime_endpoint.get().unwrap(),
            &PathBuf::from("/run/containerd/containerd.sock")
        );
        assert_eq!(o.root_dir, PathBuf::from("/var/lib/kubelet"));
        assert_eq!(
            o.checkpoints_dir(),
            PathBuf::from("/var/lib/kubelet/checkpoints")
        );
        assert_eq!(o.secure_serving.listen(), "0.0.0.0:10350".parse().unwrap());
        assert_eq!(o.runtime_request_timeout.get(), Duration::from_secs(120));
        assert!(
            o.feature_gates
                .gates()
                .enabled(api_types::features::CONTAINER_CHECKPOINT)
        );
        assert!(o.testing.authorizer().is_none());
        assert_eq!(o.secure_serving.cert_dir, None);
        assert_eq!(
            o.default_cert_dir(),
            PathBuf::from("/var/lib/kubelet/pki/checkpoint-shim")
        );
        assert!(o.testing.token_file().is_none());
    }

    #[test]
    fn testing_bypass_is_explicit() {
        let o = parse(&[
            "--node-name=n",
            "--authorization-allow-users-for-testing=alice, bob",
            "--feature-gates=ContainerCheckpoint=false",
            "--runtime-request-timeout=30s",
        ]);
        o.validate().unwrap();
        assert_eq!(
            o.testing.authorizer().unwrap().users,
            vec!["alice".to_owned(), "bob".to_owned()]
        );
        assert!(
            !o.feature_gates
                .gates()
                .enabled(api_types::features::CONTAINER_CHECKPOINT)
        );
        assert_eq!(o.runtime_request_timeout.get(), Duration::from_secs(30));
    }

    #[test]
    fn all_problems_are_reported() {
        let err = parse(&[
            "--node-name=Bad_Name",
            "--container-runtime-endpoint=tcp://1.2.3.4:5",
            "--feature-gates=Nope=true",
            "--runtime-request-timeout=0s",
            "--root-dir=relative",
        ])
        .validate()
        .unwrap_err();
        insta::assert_snapshot!(err.to_string());
        // A duration that does not parse is refused by the parser, with Go's message.
        let err =
            Options::try_parse_from(["checkpoint-shim", "--runtime-request-timeout=2 minutes"])
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("time: unknown unit \" minutes\" in duration \"2 minutes\""),
            "{err}"
        );
    }

    #[test]
    fn tls_files_come_in_pairs() {
        let err = parse(&["--node-name=n", "--tls-cert-file=/a.crt"])
            .validate()
            .unwrap_err();
        assert_eq!(
            err.0,
            ["--tls-cert-file and --tls-private-key-file go together"]
        );
        let o = parse(&[
            "--node-name=n",
            "--tls-cert-file=/a.crt",
            "--tls-private-key-file=/a.key",
        ]);
        o.validate().unwrap();
        assert_eq!(
            o.secure_serving.tls_cert_file.as_deref(),
            Some(std::path::Path::new("/a.crt"))
        );
    }
}
