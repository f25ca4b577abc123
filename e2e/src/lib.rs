//! The end-to-end suite's plumbing: the config that tells it about the
//! cluster under test, and running kubectl (with our plugin on PATH).
//!
//! The suite is cluster-agnostic. Everything cluster-specific — how to make
//! a running pod, how to flip a feature gate, whether archives can be read
//! on the node — comes from the config file named by `KCR_E2E_CONFIG`.
//! `hack/lib/e2e-config.sh` writes it: `hack/e2e-local.sh` for the local
//! stack (`.local/e2e/e2e.yaml`), `hack/kind-up.sh` for a kind cluster
//! (`.local/kind/e2e.yaml`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Environment variable naming the config file.
pub const CONFIG_ENV: &str = "KCR_E2E_CONFIG";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{CONFIG_ENV} is not set: run the suite through `make e2e` (it brings up the local stack and writes the config), \
         or point {CONFIG_ENV} at a config for your cluster (see e2e/README.md)"
    )]
    NoConfig,
    #[error("failed to read the e2e config {path}: {source}")]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid e2e config {path}: {reason}")]
    ParseConfig { path: PathBuf, reason: String },
    #[error("failed to run {what}: {source}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} failed (exit {code:?}):\nstdout: {stdout}\nstderr: {stderr}")]
    CommandFailed {
        what: String,
        code: Option<i32>,
        stdout: String,
        stderr: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A command line from the config (program + leading arguments).
pub type CommandLine = Vec<String>;

/// The suite's config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Kubeconfig of the user the scenarios run as: bound to the
    /// `checkpoint-creator` ClusterRole of `deploy/` and nothing else, as
    /// README.md tells an admin to do.
    pub kubeconfig: PathBuf,
    /// Kubeconfig of a user who may read pods (the built-in `view` role)
    /// but not checkpoint them.
    pub viewer_kubeconfig: PathBuf,
    /// Kubeconfig of a user without any rights (bound to nothing; only what
    /// every authenticated user has, such as discovery).
    pub no_rights_kubeconfig: PathBuf,
    /// Namespace the scenarios work in.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// The kubectl to drive (`kubectl` on PATH by default).
    #[serde(default = "default_kubectl")]
    pub kubectl: PathBuf,
    /// Folder holding the `kubectl-checkpoint` binary; put first on PATH.
    pub plugin_dir: PathBuf,
    /// Folder of the versioned kubectl binaries (`kubectl.1.27` …); default:
    /// the folder of the kubectl on PATH, symlinks resolved.
    #[serde(default)]
    pub kubectl_versions_dir: Option<PathBuf>,
    /// Minors to run the version-skew scenario with.
    #[serde(default = "default_minors")]
    pub kubectl_minors: Vec<u32>,
    /// When set, archives are files on this machine (the local stack): the
    /// suite checks mode, content and that refused requests write nothing here.
    #[serde(default)]
    pub node_checkpoints_dir: Option<PathBuf>,
    /// Commands driving the cluster; each gets extra arguments as documented.
    pub commands: Commands,
    /// A pod whose runtime is slow (scenario 10); absent: scenario 10 fails
    /// saying so. Its checkpoints must take longer than the API server's
    /// `--request-timeout` (scenario pc01: 8 s against 5 s on the local stack).
    #[serde(default)]
    pub slow_pod: Option<PodRef>,
    /// Where the archives of the slow pod's node can be read on this
    /// machine, if they can (scenario pc05 checks no partial file is left).
    #[serde(default)]
    pub slow_node_checkpoints_dir: Option<PathBuf>,
    /// Kubeconfig of a cluster admin, for what no user role may do (editing
    /// a PodCheckpoint's spec, scenario pc04); absent: that check fails
    /// saying so.
    #[serde(default)]
    pub admin_kubeconfig: Option<PathBuf>,
}

/// Cluster-specific actions, as command lines.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Commands {
    /// Create a running pod; gets the [`PodSpec`] as JSON on stdin; must
    /// return once the pod's containers run.
    pub create_pod: CommandLine,
    /// Delete a pod; gets `NAMESPACE NAME`.
    pub delete_pod: CommandLine,
    /// Exit 0 when the container runs on its node; gets `NAMESPACE POD CONTAINER`.
    pub container_running: CommandLine,
    /// Set the extension's ContainerCheckpointAPI gate; gets `true|false`; returns once ready.
    pub extension_gate: CommandLine,
    /// Set the node endpoint's ContainerCheckpoint gate; gets `true|false`; returns once ready.
    pub node_gate: CommandLine,
    /// Remove the extension's APIService.
    pub remove_extension: CommandLine,
    /// Register it again; returns once discovery serves it.
    pub restore_extension: CommandLine,
    /// Kill the node agent of a node as a crash would (SIGKILL, no
    /// shutdown) and start it again; gets `NODE`; returns once it serves.
    #[serde(default)]
    pub restart_agent: Option<CommandLine>,
    /// Kill the node agent of a node (SIGKILL) and leave it down; gets
    /// `NODE`. `restartAgent` starts it again.
    #[serde(default)]
    pub stop_agent: Option<CommandLine>,
}

/// A pod to create for a scenario.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    pub namespace: String,
    pub name: String,
    pub containers: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// `Running` (default) or another phase for pods that must not run.
    #[serde(default = "default_phase")]
    pub phase: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub container: String,
}

fn default_namespace() -> String {
    "default".into()
}
fn default_kubectl() -> PathBuf {
    "kubectl".into()
}
fn default_minors() -> Vec<u32> {
    (27..=33).collect()
}
fn default_phase() -> String {
    "Running".into()
}

impl Config {
    /// Load the config named by `KCR_E2E_CONFIG`; relative paths in it are
    /// relative to the config file.
    pub fn from_env() -> Result<Self> {
        let path = std::env::var_os(CONFIG_ENV)
            .map(PathBuf::from)
            .ok_or(Error::NoConfig)?;
        Self::load(&path)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadConfig {
            path: path.into(),
            source,
        })?;
        let mut cfg: Config = serde_saphyr::from_str(&text).map_err(|e| Error::ParseConfig {
            path: path.into(),
            reason: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let abs = |p: &mut PathBuf| {
            if p.is_relative() && p.components().count() > 1 {
                *p = base.join(&*p);
            }
        };
        abs(&mut cfg.kubeconfig);
        abs(&mut cfg.viewer_kubeconfig);
        abs(&mut cfg.no_rights_kubeconfig);
        abs(&mut cfg.plugin_dir);
        for d in [
            cfg.node_checkpoints_dir.as_mut(),
            cfg.slow_node_checkpoints_dir.as_mut(),
            cfg.admin_kubeconfig.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            abs(d);
        }
        for cmd in [
            &mut cfg.commands.create_pod,
            &mut cfg.commands.delete_pod,
            &mut cfg.commands.container_running,
            &mut cfg.commands.extension_gate,
            &mut cfg.commands.node_gate,
            &mut cfg.commands.remove_extension,
            &mut cfg.commands.restore_extension,
        ]
        .into_iter()
        .chain(cfg.commands.restart_agent.as_mut())
        .chain(cfg.commands.stop_agent.as_mut())
        {
            if let Some(first) = cmd.first_mut() {
                let mut p = PathBuf::from(&*first);
                abs(&mut p);
                *first = p.to_string_lossy().into_owned();
            }
        }
        Ok(cfg)
    }

    /// The folder holding `kubectl.1.NN`.
    pub fn versions_dir(&self) -> Result<PathBuf> {
        if let Some(d) = &self.kubectl_versions_dir {
            return Ok(d.clone());
        }
        let out = Command::new("sh")
            .args(["-c", "readlink -f \"$(command -v kubectl)\""])
            .output()
            .map_err(|source| Error::Spawn {
                what: "readlink".into(),
                source,
            })?;
        let kubectl = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        match kubectl.parent() {
            Some(dir) if out.status.success() && !dir.as_os_str().is_empty() => {
                Ok(dir.to_path_buf())
            }
            _ => Err(Error::CommandFailed {
                what: "finding kubectl on PATH".into(),
                code: out.status.code(),
                stdout: String::new(),
                stderr: "no kubectl on PATH".into(),
            }),
        }
    }

    /// PATH with the plugin folder first.
    pub fn path_env(&self) -> String {
        let old = std::env::var("PATH").unwrap_or_default();
        format!("{}:{old}", self.plugin_dir.display())
    }
}

/// What a command printed and how it ended.
#[derive(Debug, Clone)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    fn from_output(out: Output, elapsed: Duration) -> Self {
        Self {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed,
        }
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?} after {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// Run `kubectl` (or `kubectl_bin`) with `args` as the user of `kubeconfig`,
/// with our plugin first on PATH.
pub fn kubectl_as(
    cfg: &Config,
    kubectl_bin: &Path,
    kubeconfig: &Path,
    args: &[&str],
) -> Result<Run> {
    let started = Instant::now();
    let out = Command::new(kubectl_bin)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("PATH", cfg.path_env())
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            what: format!("{} {}", kubectl_bin.display(), args.join(" ")),
            source,
        })?;
    Ok(Run::from_output(out, started.elapsed()))
}

/// [`kubectl_as`] with `stdin` fed to the command (`kubectl create -f -`).
pub fn kubectl_stdin(cfg: &Config, kubeconfig: &Path, args: &[&str], stdin: &[u8]) -> Result<Run> {
    let what = || format!("{} {}", cfg.kubectl.display(), args.join(" "));
    let started = Instant::now();
    let mut child = Command::new(&cfg.kubectl)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("PATH", cfg.path_env())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| Error::Spawn {
            what: what(),
            source,
        })?;
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(stdin).map_err(|source| Error::Spawn {
            what: what(),
            source,
        })?;
    }
    let out = child.wait_with_output().map_err(|source| Error::Spawn {
        what: what(),
        source,
    })?;
    Ok(Run::from_output(out, started.elapsed()))
}

/// `kubectl ARGS` as the config's user (`kubeconfig`).
pub fn kubectl(cfg: &Config, args: &[&str]) -> Result<Run> {
    kubectl_as(cfg, &cfg.kubectl, &cfg.kubeconfig, args)
}

/// Run one of the config's commands with extra arguments and optional stdin;
/// an error unless it exits 0.
pub fn run_command(
    what: &str,
    cmd: &CommandLine,
    extra: &[&str],
    stdin: Option<&[u8]>,
) -> Result<Run> {
    let (program, args) = cmd.split_first().ok_or_else(|| Error::ParseConfig {
        path: PathBuf::from(CONFIG_ENV),
        reason: format!("command {what} is empty"),
    })?;
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .args(extra)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| Error::Spawn {
            what: what.into(),
            source,
        })?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(data).map_err(|source| Error::Spawn {
            what: what.into(),
            source,
        })?;
    }
    let out = child.wait_with_output().map_err(|source| Error::Spawn {
        what: what.into(),
        source,
    })?;
    let run = Run::from_output(out, started.elapsed());
    if run.ok() {
        Ok(run)
    } else {
        Err(Error::CommandFailed {
            what: what.into(),
            code: run.code,
            stdout: run.stdout,
            stderr: run.stderr,
        })
    }
}

/// The proposal's five output lines, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiveLines {
    pub node: String,
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub archive: String,
}

/// Parse stdout of `kubectl checkpoint` in its default output; `None` unless
/// it is exactly the five labelled lines, in order.
pub fn parse_five_lines(stdout: &str) -> Option<FiveLines> {
    let lines: Vec<&str> = stdout.lines().collect();
    let labels = [
        "Node:",
        "Namespace:",
        "Pod:",
        "Container:",
        "Checkpoint Archive:",
    ];
    if lines.len() != labels.len() {
        return None;
    }
    let mut values = Vec::new();
    let mut columns = Vec::new();
    for (line, label) in lines.iter().zip(labels) {
        let rest = line.strip_prefix(label)?;
        let value = rest.trim_start();
        if value.is_empty() || value.len() == rest.len() {
            return None;
        }
        // values stand in one column, as in kubectl's describe-style output
        columns.push(line.len() - value.len());
        values.push(value.trim_end().to_owned());
    }
    if columns.iter().any(|c| *c != columns[0]) {
        return None;
    }
    let mut v = values.into_iter();
    Some(FiveLines {
        node: v.next()?,
        namespace: v.next()?,
        pod: v.next()?,
        container: v.next()?,
        archive: v.next()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_lines_must_be_aligned_and_complete() {
        let good = "Node:                  n/127.0.0.1\nNamespace:             default\nPod:                   p\nContainer:             c\nCheckpoint Archive:    /a.tar\n";
        let f = parse_five_lines(good).unwrap();
        assert_eq!(f.archive, "/a.tar");
        assert_eq!(f.node, "n/127.0.0.1");
        let misaligned = "Node: n\nNamespace:             default\nPod:                   p\nContainer:             c\nCheckpoint Archive:    /a.tar\n";
        assert!(parse_five_lines(misaligned).is_none());
        assert!(parse_five_lines("Node: n\n").is_none());
    }

    #[test]
    fn config_parses_and_resolves_relative_paths() {
        let dir = std::env::temp_dir().join(format!("kcr-e2e-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("e2e.yaml");
        std::fs::write(
            &path,
            "kubeconfig: ./admin.kubeconfig\nviewerKubeconfig: ./viewer.kubeconfig\nnoRightsKubeconfig: ./nobody.kubeconfig\npluginDir: ./bin\n\
             commands:\n  createPod: [./ctl, pod-create]\n  deletePod: [./ctl, pod-delete]\n  containerRunning: [./ctl, running]\n\
             \x20 extensionGate: [./ctl, extension-gate]\n  nodeGate: [./ctl, node-gate]\n  removeExtension: [./ctl, rm]\n  restoreExtension: [./ctl, add]\n",
        )
        .unwrap();
        let cfg = Config::load(&path).unwrap();
        assert_eq!(cfg.kubeconfig, dir.join("./admin.kubeconfig"));
        assert_eq!(cfg.no_rights_kubeconfig, dir.join("./nobody.kubeconfig"));
        assert_eq!(
            cfg.commands.create_pod[0],
            dir.join("./ctl").to_string_lossy()
        );
        assert_eq!(cfg.namespace, "default");
        assert_eq!(cfg.kubectl_minors, (27..=33).collect::<Vec<_>>());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The one writer of configs (`hack/lib/e2e-config.sh`, used for the
    /// local stack and for kind) writes what this struct reads.
    #[test]
    fn config_written_by_hack_parses() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let dir = std::env::temp_dir().join(format!("kcr-e2e-hack-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("bash")
            .arg("-c")
            .arg(
                r#"set -eu; source "$1/hack/lib/e2e-config.sh"
                SLOW_NODE_CHECKPOINTS_DIR="$2/slow" write_e2e_config "$2/e2e.yaml" "$2/users" default /plugins "$2/checkpoints" default/slow/app \
                  -- env KCR_LOCAL_DIR=/state /hack/local-ctl.sh"#,
            )
            .arg("bash")
            .arg(&root)
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "write_e2e_config failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cfg = Config::load(&dir.join("e2e.yaml")).unwrap();
        let users = dir.join("users");
        assert_eq!(cfg.kubeconfig, users.join("alice.kubeconfig"));
        assert_eq!(cfg.viewer_kubeconfig, users.join("viewer.kubeconfig"));
        assert_eq!(cfg.no_rights_kubeconfig, users.join("nobody.kubeconfig"));
        assert_eq!(cfg.plugin_dir, PathBuf::from("/plugins"));
        assert_eq!(cfg.node_checkpoints_dir, Some(dir.join("checkpoints")));
        assert_eq!(
            cfg.slow_pod,
            Some(PodRef {
                namespace: "default".into(),
                name: "slow".into(),
                container: "app".into()
            })
        );
        assert_eq!(
            cfg.commands.node_gate,
            [
                "env",
                "KCR_LOCAL_DIR=/state",
                "/hack/local-ctl.sh",
                "node-gate"
            ]
        );
        assert_eq!(
            cfg.commands.restore_extension.last().map(String::as_str),
            Some("restore-extension")
        );
        assert_eq!(
            cfg.commands
                .restart_agent
                .as_ref()
                .and_then(|c| c.last())
                .map(String::as_str),
            Some("agent-restart")
        );
        assert_eq!(
            cfg.commands
                .stop_agent
                .as_ref()
                .and_then(|c| c.last())
                .map(String::as_str),
            Some("agent-stop")
        );
        assert_eq!(cfg.slow_node_checkpoints_dir, Some(dir.join("slow")));
        // no users/admin.kubeconfig: no admin in the config
        assert_eq!(cfg.admin_kubeconfig, None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
