//! Command-line options, named like the kubelet's flags where the kubelet has
//! one (`cmd/kubelet/app/options`), and their validation into a [`Config`].

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use api_types::duration::GoDuration;
use api_types::features::{FeatureGates, SHIM_GATES};
use api_types::timeouts::DEFAULT_RUNTIME_REQUEST_TIMEOUT;
use api_types::validation::validate_node_name;
use clap::Parser;

use crate::runtime::parse_endpoint;

/// Default `--container-runtime-endpoint`, as the kubelet's.
pub const DEFAULT_RUNTIME_ENDPOINT: &str = "unix:///run/containerd/containerd.sock";

/// Log format (`--logging-format`), shared with the other server.
pub use apiserver_lib::logging::Format as LoggingFormat;

/// A node agent that serves the kubelet's checkpoint API.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "checkpoint-shim",
    version,
    about = "Serve the kubelet's checkpoint API (POST /checkpoint/{namespace}/{pod}/{container}) over HTTPS and checkpoint containers through CRI.",
    long_about = "Serve the kubelet's checkpoint API (POST /checkpoint/{namespace}/{pod}/{container}, KEP-2008) over HTTPS and checkpoint containers through CRI, for nodes whose kubelet cannot turn on its ContainerCheckpoint gate.\n\nArchives are written to <root-dir>/checkpoints/checkpoint-<pod>_<namespace>-<container>-<RFC3339>.tar (a -N suffix for further archives within one second; nothing is ever overwritten), owned by root with mode 0600.\n\nRequests are authenticated by x509 client certificate (--client-ca-file) or bearer token (TokenReview), and authorized by SubjectAccessReview of `create` on `nodes/checkpoint` for --node-name, like the kubelet's."
)]
pub struct Options {
    /// The endpoint of the CRI runtime service (a unix socket).
    #[arg(long, value_name = "ENDPOINT", default_value = DEFAULT_RUNTIME_ENDPOINT)]
    pub container_runtime_endpoint: String,

    /// Directory of the kubelet's files; archives go to <root-dir>/checkpoints (created 0700).
    #[arg(long, value_name = "DIR", default_value = api_types::DEFAULT_KUBELET_ROOT_DIR)]
    pub root_dir: PathBuf,

    /// The IP address to serve on (0.0.0.0 or :: for all interfaces).
    #[arg(long, value_name = "IP", default_value = "0.0.0.0")]
    pub address: IpAddr,

    /// The port to serve HTTPS on (0 picks a free port, logged at start).
    #[arg(long, value_name = "PORT", default_value_t = api_types::DEFAULT_SHIM_PORT)]
    pub port: u16,

    /// This node's name, the `name` authorized in `nodes/checkpoint` [default: the host name, lower-cased].
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,

    /// kubeconfig for TokenReview and SubjectAccessReview [default: the in-cluster service account, when in a pod].
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// Feature gates, A=true|false,...; known: ContainerCheckpoint=true|false (default true).
    #[arg(long, value_name = "GATES", default_value = "")]
    pub feature_gates: String,

    /// Timeout of runtime calls (Go duration); also the checkpoint timeout when a request gives none.
    #[arg(long, value_name = "DURATION", default_value_t = GoDuration(DEFAULT_RUNTIME_REQUEST_TIMEOUT))]
    pub runtime_request_timeout: GoDuration,

    /// Serving certificate (PEM, may hold the chain). Without it and --tls-private-key-file,
    /// a self-signed pair is kept in --cert-dir.
    #[arg(long, value_name = "FILE", requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,

    /// Private key of --tls-cert-file (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,

    /// Where the self-signed serving pair is kept when no --tls-cert-file is given (made 0700)
    /// [default: <root-dir>/pki/checkpoint-shim].
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,

    /// CA bundle that client certificates must chain to; CN is the user, O the groups.
    #[arg(long, value_name = "FILE")]
    pub client_ca_file: Option<PathBuf>,

    /// FOR TESTING ONLY: skip SubjectAccessReview and allow exactly these users (comma-separated).
    #[arg(long, value_name = "USERS", value_delimiter = ',')]
    pub authorization_allow_users_for_testing: Vec<String>,

    /// FOR TESTING ONLY: authenticate bearer tokens from this file (token,user,uid,"group1,group2"
    /// per line, as kube-apiserver's --token-auth-file) instead of TokenReview.
    #[arg(long, value_name = "FILE")]
    pub token_auth_file_for_testing: Option<PathBuf>,

    /// Log format (logs go to stderr; RUST_LOG sets the level).
    #[arg(long, value_name = "FORMAT", value_enum, default_value = "text")]
    pub logging_format: LoggingFormat,

    /// Fulfil the PodCheckpoints (checkpoint.kcr.dev) of this node's pods: auto = when an API
    /// server is configured (--kubeconfig or in a pod), true = required, false = off.
    #[arg(long, value_name = "MODE", value_enum, default_value = "auto")]
    pub podcheckpoint_controller: ControllerMode,

    /// PodCheckpoints checkpointed at once on this node (1-8); the others wait with
    /// Ready=False/Pending.
    #[arg(long, value_name = "N", default_value_t = crate::controller::DEFAULT_MAX_CONCURRENT)]
    pub max_concurrent_podcheckpoints: usize,

    /// Serve the kubelet-compatible POST /checkpoint/... endpoint; false on clusters whose
    /// kubelet serves it (health and metrics are still served).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub checkpoint_endpoint: bool,
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

/// Invalid options; every problem is listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid options:\n  {}", .0.join("\n  "))]
pub struct Error(pub Vec<String>);

/// Where the serving certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    Files {
        cert: PathBuf,
        key: PathBuf,
    },
    /// Generate (once) and keep a self-signed pair in this directory.
    SelfSigned {
        dir: PathBuf,
    },
}

/// Who decides what a user may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizationMode {
    /// SubjectAccessReview through the API server (the default).
    Webhook,
    /// A static allow-list; named for testing, never the default.
    AllowUsersForTesting(Vec<String>),
}

/// Validated settings the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub runtime_socket: PathBuf,
    pub root_dir: PathBuf,
    pub listen: SocketAddr,
    pub node_name: String,
    pub feature_gates: FeatureGates,
    pub runtime_request_timeout: Duration,
    pub tls: TlsSource,
    pub client_ca_file: Option<PathBuf>,
    /// `None`: the in-cluster service account, when there is one.
    pub kubeconfig: Option<PathBuf>,
    pub authorization: AuthorizationMode,
    pub token_auth_file_for_testing: Option<PathBuf>,
    /// How much longer than the runtime's own timeout a checkpoint is waited for.
    pub checkpoint_grace: Duration,
    /// Checkpoints in flight on the node at most (more: 429).
    pub max_in_flight_checkpoints: usize,
    /// Whether to run the PodCheckpoint controller.
    pub podcheckpoint_controller: ControllerMode,
    /// PodCheckpoints checkpointed at once.
    pub max_concurrent_podcheckpoints: usize,
    /// Whether `/checkpoint/...` is served.
    pub checkpoint_endpoint: bool,
}

impl Config {
    /// `<root-dir>/checkpoints`.
    pub fn checkpoints_dir(&self) -> PathBuf {
        self.root_dir.join(api_types::CHECKPOINTS_DIR)
    }
}

/// The host name, lower-cased, as the kubelet defaults its node name.
pub fn default_node_name() -> Option<String> {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())?;
    let name = raw.trim().to_ascii_lowercase();
    (!name.is_empty()).then_some(name)
}

impl Options {
    /// Checks every option, reporting all problems at once.
    pub fn validate(&self) -> Result<Config, Error> {
        let mut errs = Vec::new();
        let runtime_socket = parse_endpoint(&self.container_runtime_endpoint)
            .map_err(|e| errs.push(format!("--container-runtime-endpoint: {e}")))
            .ok();
        if !self.root_dir.is_absolute() {
            errs.push(format!(
                "--root-dir: must be an absolute path, got {:?}",
                self.root_dir
            ));
        }
        let node_name = match &self.node_name {
            Some(n) => Some(n.clone()),
            None => {
                let n = default_node_name();
                if n.is_none() {
                    errs.push("--node-name: not given and the host name is unknown".into());
                }
                n
            }
        };
        if let Some(n) = &node_name
            && let Err(e) = validate_node_name(n)
        {
            errs.push(format!("--node-name: {e}"));
        }
        let feature_gates = FeatureGates::parse(SHIM_GATES, &self.feature_gates)
            .map_err(|e| errs.push(format!("--feature-gates: {e}")))
            .ok();
        let runtime_request_timeout = match self.runtime_request_timeout.get() {
            d if d >= Duration::from_secs(1) => Some(d),
            _ => {
                errs.push("--runtime-request-timeout: must be at least 1s".into());
                None
            }
        };
        let tls = match (&self.tls_cert_file, &self.tls_private_key_file) {
            (Some(cert), Some(key)) => Some(TlsSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            }),
            (None, None) => Some(TlsSource::SelfSigned {
                dir: self
                    .cert_dir
                    .clone()
                    .unwrap_or_else(|| self.root_dir.join("pki").join("checkpoint-shim")),
            }),
            _ => {
                errs.push(
                    "--tls-cert-file and --tls-private-key-file must be given together".into(),
                );
                None
            }
        };
        let allow: Vec<String> = self
            .authorization_allow_users_for_testing
            .iter()
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        let authorization = if allow.is_empty() {
            AuthorizationMode::Webhook
        } else {
            AuthorizationMode::AllowUsersForTesting(allow)
        };
        if !(1..=MAX_CONCURRENT_PODCHECKPOINTS).contains(&self.max_concurrent_podcheckpoints) {
            errs.push(format!(
                "--max-concurrent-podcheckpoints: must be between 1 and {MAX_CONCURRENT_PODCHECKPOINTS} (the node's limit of checkpoints in flight), got {}",
                self.max_concurrent_podcheckpoints
            ));
        }
        match (
            runtime_socket,
            node_name,
            feature_gates,
            runtime_request_timeout,
            tls,
        ) {
            (Some(runtime_socket), Some(node_name), Some(feature_gates), Some(rrt), Some(tls))
                if errs.is_empty() =>
            {
                Ok(Config {
                    runtime_socket,
                    root_dir: self.root_dir.clone(),
                    listen: SocketAddr::new(self.address, self.port),
                    node_name,
                    feature_gates,
                    runtime_request_timeout: rrt,
                    tls,
                    client_ca_file: self.client_ca_file.clone(),
                    kubeconfig: self.kubeconfig.clone(),
                    authorization,
                    token_auth_file_for_testing: self.token_auth_file_for_testing.clone(),
                    checkpoint_grace: api_types::timeouts::NODE_GRACE,
                    max_in_flight_checkpoints: MAX_CONCURRENT_PODCHECKPOINTS,
                    podcheckpoint_controller: self.podcheckpoint_controller,
                    max_concurrent_podcheckpoints: self.max_concurrent_podcheckpoints,
                    checkpoint_endpoint: self.checkpoint_endpoint,
                })
            }
            _ => Err(Error(errs)),
        }
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
    fn defaults_mirror_the_kubelet() {
        let c = parse(&["--node-name", "node-1"]).validate().unwrap();
        assert_eq!(
            c.runtime_socket,
            PathBuf::from("/run/containerd/containerd.sock")
        );
        assert_eq!(c.root_dir, PathBuf::from("/var/lib/kubelet"));
        assert_eq!(
            c.checkpoints_dir(),
            PathBuf::from("/var/lib/kubelet/checkpoints")
        );
        assert_eq!(c.listen, "0.0.0.0:10350".parse().unwrap());
        assert_eq!(c.runtime_request_timeout, Duration::from_secs(120));
        assert!(
            c.feature_gates
                .enabled(api_types::features::CONTAINER_CHECKPOINT)
        );
        assert_eq!(c.authorization, AuthorizationMode::Webhook);
        assert_eq!(
            c.tls,
            TlsSource::SelfSigned {
                dir: "/var/lib/kubelet/pki/checkpoint-shim".into()
            }
        );
        assert!(c.token_auth_file_for_testing.is_none());
        assert_eq!(c.podcheckpoint_controller, ControllerMode::Auto);
        assert_eq!(c.max_concurrent_podcheckpoints, 2);
        assert!(c.checkpoint_endpoint);
    }

    #[test]
    fn controller_and_endpoint_flags() {
        let c = parse(&[
            "--node-name=n",
            "--podcheckpoint-controller=true",
            "--max-concurrent-podcheckpoints=8",
            "--checkpoint-endpoint=false",
        ])
        .validate()
        .unwrap();
        assert_eq!(c.podcheckpoint_controller, ControllerMode::True);
        assert_eq!(c.max_concurrent_podcheckpoints, 8);
        assert!(!c.checkpoint_endpoint);
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
    fn testing_bypass_is_explicit() {
        let c = parse(&[
            "--node-name=n",
            "--authorization-allow-users-for-testing=alice, bob",
            "--feature-gates=ContainerCheckpoint=false",
            "--runtime-request-timeout=30s",
        ])
        .validate()
        .unwrap();
        assert_eq!(
            c.authorization,
            AuthorizationMode::AllowUsersForTesting(vec!["alice".into(), "bob".into()])
        );
        assert!(
            !c.feature_gates
                .enabled(api_types::features::CONTAINER_CHECKPOINT)
        );
        assert_eq!(c.runtime_request_timeout, Duration::from_secs(30));
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
        let r = Options::try_parse_from(["checkpoint-shim", "--tls-cert-file=/a.crt"]);
        assert!(r.is_err());
        let c = parse(&[
            "--node-name=n",
            "--tls-cert-file=/a.crt",
            "--tls-private-key-file=/a.key",
        ])
        .validate()
        .unwrap();
        assert_eq!(
            c.tls,
            TlsSource::Files {
                cert: "/a.crt".into(),
                key: "/a.key".into()
            }
        );
    }
}
