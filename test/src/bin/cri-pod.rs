//! `cri-pod`: starts and removes pods through CRI the way the kubelet would (kubelet
//! labels, host network), for the local stack and scripts. Works against containerd and
//! against `fake-cri`. Output is JSON on stdout.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use kcr_testkit::cri::{ContainerSpec, Cri, PodRunner, PodSpec};
use kcr_testkit::{containerd, labels};
use serde_json::json;

/// Run pods through CRI like the kubelet would.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// RunPodSandbox + CreateContainer/StartContainer per --container; prints
    /// {"sandbox_id", "namespace", "name", "uid", "containers": [{"name", "id"}]}.
    Run {
        /// The CRI socket.
        #[arg(long)]
        socket: PathBuf,
        #[arg(long)]
        namespace: String,
        /// Pod name.
        #[arg(long)]
        name: String,
        /// Pod UID [default: random].
        #[arg(long)]
        uid: Option<String>,
        /// A container name; repeat for several containers in the pod.
        #[arg(long = "container", required = true)]
        containers: Vec<String>,
        /// Image of every container.
        #[arg(long, default_value = kcr_testkit::APP_IMAGE)]
        image: String,
        /// cgroupfs parent [default: the `cgroup-parent` file next to the socket
        /// (written by test-containerd), else /kcr-test].
        #[arg(long)]
        cgroup_parent: Option<String>,
        /// Directory for container logs.
        #[arg(long)]
        log_dir: Option<PathBuf>,
        /// Command of every container (default: the image's counter loop). Put it last:
        /// it takes all following arguments.
        #[arg(long, num_args = 1.., allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Stops and removes pods: by sandbox id, or every sandbox of --namespace/--name.
    Rm {
        #[arg(long)]
        socket: PathBuf,
        #[arg(long, conflicts_with_all = ["namespace", "name"])]
        sandbox: Option<String>,
        #[arg(long, requires = "name")]
        namespace: Option<String>,
        #[arg(long, requires = "namespace")]
        name: Option<String>,
    },
    /// Lists containers (id, pod, container name, state) as JSON.
    Ls {
        #[arg(long)]
        socket: PathBuf,
        #[arg(long)]
        namespace: Option<String>,
        /// Pod name.
        #[arg(long)]
        name: Option<String>,
    },
    /// CRI CheckpointContainer of a container id to a file.
    Checkpoint {
        #[arg(long)]
        socket: PathBuf,
        /// Container id.
        #[arg(long)]
        id: String,
        /// Archive to write.
        #[arg(long)]
        location: PathBuf,
        /// Seconds (0 = the runtime's default).
        #[arg(long, default_value_t = 0)]
        timeout: i64,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match Args::parse().command {
        Cmd::Run {
            socket,
            namespace,
            name,
            uid,
            containers,
            image,
            cgroup_parent,
            log_dir,
            command,
        } => {
            let cgroup_parent = cgroup_parent.unwrap_or_else(|| default_cgroup_parent(&socket));
            let cri = Cri::connect(&socket).await?;
            let mut runner = PodRunner::new(cri, cgroup_parent);
            let mut pod = PodSpec::new(namespace, name);
            if let Some(uid) = uid {
                pod = pod.with_uid(uid);
            }
            if let Some(dir) = log_dir {
                pod = pod.with_log_dir(dir);
            }
            let specs: Vec<ContainerSpec> = containers
                .iter()
                .map(|c| {
                    ContainerSpec::new(c)
                        .with_image(&image)
                        .with_command(command.iter().cloned())
                })
                .collect();
            let running = runner
                .run_pod(&pod, &specs)
                .await
                .context("running the pod")?;
            println!("{}", serde_json::to_string_pretty(&running)?);
        }
        Cmd::Rm {
            socket,
            sandbox,
            namespace,
            name,
        } => {
            let mut cri = Cri::connect(&socket).await?;
            let ids: Vec<String> = match (sandbox, namespace, name) {
                (Some(id), _, _) => vec![id],
                (None, Some(ns), Some(name)) => cri
                    .find_pods(&ns, &name)
                    .await?
                    .into_iter()
                    .map(|p| p.id)
                    .collect(),
                _ => anyhow::bail!("give --sandbox or --namespace and --name"),
            };
            for id in &ids {
                cri.remove_pod(id).await?;
            }
            println!("{}", json!({ "removed": ids }));
        }
        Cmd::Ls {
            socket,
            namespace,
            name,
        } => {
            let mut cri = Cri::connect(&socket).await?;
            let mut selector = HashMap::new();
            if let Some(ns) = namespace {
                selector.insert(labels::POD_NAMESPACE.to_owned(), ns);
            }
            if let Some(name) = name {
                selector.insert(labels::POD_NAME.to_owned(), name);
            }
            let filter = k8s_cri::v1::ContainerFilter {
                label_selector: selector,
                ..Default::default()
            };
            let list: Vec<_> = cri
                .list_containers(Some(filter))
                .await?
                .into_iter()
                .map(|c| {
                    let label = |k: &str| c.labels.get(k).cloned().unwrap_or_default();
                    let state = k8s_cri::v1::ContainerState::try_from(c.state)
                        .map(|s| s.as_str_name())
                        .unwrap_or("CONTAINER_UNKNOWN");
                    json!({
                        "id": c.id,
                        "sandbox_id": c.pod_sandbox_id,
                        "namespace": label(labels::POD_NAMESPACE),
                        "pod": label(labels::POD_NAME),
                        "uid": label(labels::POD_UID),
                        "name": label(labels::CONTAINER_NAME),
                        "state": state,
                        "created_at": c.created_at,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        Cmd::Checkpoint {
            socket,
            id,
            location,
            timeout,
        } => {
            let mut cri = Cri::connect(&socket).await?;
            cri.checkpoint(&id, &location, timeout).await?;
            println!("{}", json!({ "location": location }));
        }
    }
    Ok(())
}

fn default_cgroup_parent(socket: &Path) -> String {
    socket
        .parent()
        .map(|dir| dir.join(containerd::CGROUP_PARENT_FILE))
        .and_then(|f| std::fs::read_to_string(f).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/kcr-test".to_owned())
}
