//! `kube-apiserver-standin`: a kube-apiserver + aggregator test double for the
//! local stack and the tests (see `kcr_testkit::standin`). Listens on loopback only.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use kcr_testkit::standin::{self, Config, Credentials, Pki, aggregator, certs};

#[derive(Debug, Parser)]
#[command(
    name = "kube-apiserver-standin",
    version,
    about = "A kube-apiserver + aggregator stand-in for tests (loopback only)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve until SIGTERM/SIGINT.
    Serve(Serve),
    /// Write a kubeconfig for a user, by client certificate from the cert dir's client CA (or a token).
    Kubeconfig(Kubeconfig),
}

#[derive(Debug, clap::Args)]
struct Serve {
    /// PKI directory: CAs, serving and front-proxy certificates (created when missing).
    #[arg(long)]
    cert_dir: PathBuf,
    /// Loopback address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: std::net::IpAddr,
    /// Port to listen on (0 picks a free one; see --write-kubeconfig and <cert-dir>/server-url).
    #[arg(long, alias = "port", default_value_t = 6443)]
    secure_port: u16,
    /// Static bearer tokens, kube's CSV: token,user,uid,"group1,group2".
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
    /// Multi-document YAML of RBAC objects (ClusterRole, ClusterRoleBinding, Role, RoleBinding); other kinds are skipped. Repeatable.
    #[arg(long = "policy")]
    policy: Vec<PathBuf>,
    /// Multi-document YAML of objects to create at start (Pods, Nodes, Services, APIServices, ...). Repeatable.
    #[arg(long = "objects")]
    objects: Vec<PathBuf>,
    /// NAMESPACE/NAME=HOST:PORT: where a Service is reached, over its Service object. Repeatable.
    #[arg(long = "service-address")]
    service_address: Vec<String>,
    /// Cut non-long-running requests after this long (a Go duration), like kube-apiserver's flag.
    #[arg(long, default_value = "60s", value_parser = api_types::duration::parse_go_duration)]
    request_timeout: Duration,
    /// Write an admin kubeconfig (O=system:masters) here once listening.
    #[arg(long)]
    write_kubeconfig: Option<PathBuf>,
    /// gitVersion served at /version.
    #[arg(long, default_value = standin::DEFAULT_VERSION)]
    server_version: String,
    /// How often a watch with allowWatchBookmarks=true gets a BOOKMARK (a Go duration; kube-apiserver: about a minute).
    #[arg(long, default_value = "60s", value_parser = api_types::duration::parse_go_duration)]
    watch_bookmark_interval: Duration,
    /// Changes kept per resource for watch replay and resourceVersionMatch=Exact lists (older ones answer 410 Expired).
    #[arg(long, default_value_t = standin::store::Limits::default().history_changes)]
    watch_history: usize,
    /// Open watches at once; more get 429.
    #[arg(long, default_value_t = standin::store::Limits::default().max_watchers)]
    max_watchers: usize,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
}

#[derive(Debug, clap::Args)]
struct Kubeconfig {
    /// The stand-in's PKI directory.
    #[arg(long)]
    cert_dir: PathBuf,
    /// User name (certificate CN).
    #[arg(long, required_unless_present = "service_account")]
    user: Option<String>,
    /// Group (certificate O). Repeatable.
    #[arg(long = "group")]
    group: Vec<String>,
    /// NAMESPACE/NAME: a service account's identity (system:serviceaccount:NS:NAME and its groups).
    #[arg(long, conflicts_with = "user")]
    service_account: Option<String>,
    /// Authenticate with this bearer token (from --token-auth-file) instead of a certificate.
    #[arg(long)]
    token: Option<String>,
    /// Server URL (default: what the running stand-in wrote to <cert-dir>/server-url).
    #[arg(long)]
    server: Option<String>,
    /// Default namespace of the context.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Where to write the kubeconfig (0600).
    #[arg(long)]
    out: PathBuf,
}

async fn serve(args: Serve) -> Result<()> {
    apiserver_lib::logging::init(
        "info",
        if args.log_json {
            apiserver_lib::logging::Format::Json
        } else {
            apiserver_lib::logging::Format::Text
        },
    );
    let mut config = Config::new(&args.cert_dir);
    config.bind = std::net::SocketAddr::new(args.bind_address, args.secure_port);
    config.token_auth_file = args.token_auth_file;
    config.policy_files = args.policy;
    config.object_files = args.objects;
    for s in &args.service_address {
        let (key, addr) = aggregator::parse_service_address(s)?;
        config.service_addresses.insert(key, addr);
    }
    config.request_timeout = args.request_timeout;
    config.write_kubeconfig = args.write_kubeconfig;
    config.version = args.server_version;
    config.bookmark_interval = args.watch_bookmark_interval;
    config.limits.history_changes = args.watch_history.max(1);
    config.limits.max_watchers = args.max_watchers;
    let running = standin::start(config).await?;
    println!("{}", running.url);
    apiserver_lib::logging::shutdown_signal().await;
    running.stop().await;
    Ok(())
}

fn kubeconfig(args: Kubeconfig) -> Result<()> {
    let pki = Pki::load_or_create(&args.cert_dir)
        .with_context(|| format!("cert dir {}", args.cert_dir.display()))?;
    let server = match args.server {
        Some(s) => s,
        None => pki.server_url()?,
    };
    let (user, mut groups) = match (&args.service_account, &args.user) {
        (Some(sa), _) => {
            let Some((ns, name)) = sa.split_once('/') else {
                bail!("--service-account wants NAMESPACE/NAME, got {sa:?}");
            };
            (
                format!("system:serviceaccount:{ns}:{name}"),
                vec![
                    "system:serviceaccounts".to_owned(),
                    format!("system:serviceaccounts:{ns}"),
                ],
            )
        }
        (None, Some(u)) => (u.clone(), Vec::new()),
        (None, None) => bail!("--user or --service-account is required"),
    };
    groups.extend(args.group);
    let credentials = match args.token {
        Some(t) => Credentials::Token(t),
        None => Credentials::Certificate(pki.issue_client(&user, &groups)?),
    };
    let text = certs::kubeconfig(
        &server,
        &pki.server_ca,
        &user,
        &credentials,
        &args.namespace,
    );
    certs::write_kubeconfig(&args.out, &text)?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => serve(args).await,
        Command::Kubeconfig(args) => kubeconfig(args),
    }
}
