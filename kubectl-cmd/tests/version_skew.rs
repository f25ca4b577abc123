//! Version skew with the real kubectl: for every minor 1.27 … 1.33 the
//! `kubectl.1.NN` binary shipped beside the machine's `kubectl` dispatches
//! `kubectl checkpoint` to our plugin (found on PATH) and asks
//! `kubectl_complete-checkpoint` for completions. A missing binary fails the
//! test: nothing is skipped.
#![allow(clippy::unwrap_used)]

mod standin;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kcr_testkit::mock_api::MockApi;
use pretty_assertions::assert_eq;

const MINORS: std::ops::RangeInclusive<u32> = 27..=33;

/// The folder of the machine's kubectl, resolved through symlinks
/// (`readlink -f $(command -v kubectl)`'s dirname).
fn kubectl_dir() -> PathBuf {
    let path = std::env::var_os("PATH").expect("PATH is set");
    let kubectl = std::env::split_paths(&path)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
        .expect("kubectl is on PATH");
    let real = std::fs::canonicalize(&kubectl).unwrap();
    real.parent().unwrap().to_path_buf()
}

/// A PATH holding only the plugin and its completion helper.
fn plugin_path(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_kubectl-checkpoint"),
        bin.join("kubectl-checkpoint"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_kubectl_complete-checkpoint"),
        bin.join("kubectl_complete-checkpoint"),
    )
    .unwrap();
    bin
}

fn run(program: &Path, home: &Path, path: &Path, kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .env_clear()
        .env("HOME", home)
        .env("PATH", path)
        .env("KUBECONFIG", kubeconfig)
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn every_kubectl_minor_dispatches_to_the_plugin() {
    let server = MockApi::new(support::ready()).serve().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = support::kubeconfig(&server, dir.path());
    let bin = plugin_path(dir.path());
    let plugin = bin.join("kubectl-checkpoint");

    // What the plugin prints when run directly.
    let direct_help = run(&plugin, dir.path(), &bin, &kubeconfig, &["--help"]);
    let direct = run(
        &plugin,
        dir.path(),
        &bin,
        &kubeconfig,
        &["multi", "--timeout", "30s"],
    );
    let direct_err = run(&plugin, dir.path(), &bin, &kubeconfig, &["waiting"]);
    assert!(direct.status.success(), "{direct:?}");
    assert!(text(&direct.stdout).starts_with("Node:                  node-1/127.0.0.1\n"));
    assert_eq!(
        text(&direct.stderr),
        "Defaulted container \"a\" out of: a, b\n"
    );
    assert_eq!(direct_err.status.code(), Some(1));

    let folder = kubectl_dir();
    let mut missing = Vec::new();
    for minor in MINORS {
        let kubectl = folder.join(format!("kubectl.1.{minor}"));
        if !kubectl.is_file() {
            missing.push(kubectl);
            continue;
        }
        let version = run(
            &kubectl,
            dir.path(),
            &bin,
            &kubeconfig,
            &["version", "--client", "-o", "json"],
        );
        assert!(
            text(&version.stdout).contains(&format!("\"minor\": \"{minor}\"")),
            "{} is not 1.{minor}: {}",
            kubectl.display(),
            text(&version.stdout)
        );

        let help = run(
            &kubectl,
            dir.path(),
            &bin,
            &kubeconfig,
            &["checkpoint", "--help"],
        );
        assert_eq!(help.status.code(), Some(0), "1.{minor} --help: {help:?}");
        assert_eq!(
            text(&help.stdout),
            text(&direct_help.stdout),
            "1.{minor} --help"
        );

        let out = run(
            &kubectl,
            dir.path(),
            &bin,
            &kubeconfig,
            &["checkpoint", "multi", "--timeout", "30s"],
        );
        assert_eq!(
            (out.status.code(), text(&out.stdout), text(&out.stderr)),
            (Some(0), text(&direct.stdout), text(&direct.stderr)),
            "1.{minor} checkpoint"
        );

        let err = run(
            &kubectl,
            dir.path(),
            &bin,
            &kubeconfig,
            &["checkpoint", "waiting"],
        );
        assert_eq!(
            (err.status.code(), text(&err.stdout), text(&err.stderr)),
            (Some(1), String::new(), text(&direct_err.stderr)),
            "1.{minor} error"
        );

        // kubectl ≥ 1.26 asks kubectl_complete-checkpoint for the plugin's arguments.
        let pods = run(
            &kubectl,
            dir.path(),
            &bin,
            &kubeconfig,
            &["__complete", "checkpoint", "w"],
        );
        assert_eq!(
            text(&pods.stdout),
            "waiting\nweb-1\nweb-2\n:4\n",
            "1.{minor} completion: {pods:?}"
        );
        let containers = run(
            &kubectl,
            dir.path(),
            &bin,
            &kubeconfig,
            &["__complete", "checkpoint", "multi", "-c", ""],
        );
        assert_eq!(
            text(&containers.stdout),
            "a\nb\n:4\n",
            "1.{minor} container completion: {containers:?}"
        );
    }
    assert!(missing.is_empty(), "kubectl binaries missing: {missing:?}");

    // Cross-check: the pod list URL we build is the one kubectl builds.
    let kubectl = folder.join("kubectl.1.33");
    let before = server.request_lines().len();
    let get = run(
        &kubectl,
        dir.path(),
        &bin,
        &kubeconfig,
        &["get", "pods", "-l", "app=web,tier in (a,b)", "-o", "name"],
    );
    let theirs: Vec<String> = server.request_lines()[before..]
        .iter()
        .filter(|l| l.contains("/pods?"))
        .cloned()
        .collect();
    let ours = format!(
        "GET {}",
        kubectl_cmd::client::pods_path("default", "app=web,tier in (a,b)")
    );
    assert!(
        theirs
            .iter()
            .any(|l| l == &ours || l.starts_with(&format!("{ours}&"))),
        "kubectl asked {theirs:?}, we ask {ours}; {get:?}"
    );

    let posts = server
        .request_lines()
        .into_iter()
        .filter(|l| l.starts_with("POST"))
        .count();
    assert_eq!(posts, 1 + MINORS.count(), "one checkpoint per run");
}

/// The declarative path (a PodCheckpoint, the real kube-apiserver-standin,
/// the test playing the node agent) through the oldest and newest kubectl's
/// plugin dispatch: the same bytes as run directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_object_path_through_kubectl_1_27_and_1_33() {
    use standin::{Behaviour, CREATOR, Cluster, five_lines};

    let cluster = Cluster::start(true, None).await;
    let agent = cluster.agent(Behaviour::Complete {
        after: std::time::Duration::from_millis(200),
    });
    let dir = tempfile::tempdir().unwrap();
    let bin = plugin_path(dir.path());
    let kubeconfig = cluster.kubeconfig(CREATOR);
    let run = |program: PathBuf, args: &'static [&'static str]| {
        let mut cmd = tokio::process::Command::new(program);
        cmd.env_clear()
            .env("HOME", dir.path())
            .env("PATH", &bin)
            .env("KUBECONFIG", &kubeconfig)
            .args(args)
            .kill_on_drop(true);
        async move {
            let out = cmd.output().await.unwrap();
            (out.status.code(), text(&out.stdout), text(&out.stderr))
        }
    };
    let blocks = ["a", "b", "c"].map(|c| five_lines("default", "trio", c));
    let expected = (Some(0), blocks.join("\n"), String::new());
    let direct = run(
        bin.join("kubectl-checkpoint"),
        &["trio", "--all-containers"],
    )
    .await;
    assert_eq!(direct, expected);
    for minor in [27, 33] {
        let kubectl = kubectl_dir().join(format!("kubectl.1.{minor}"));
        assert!(kubectl.is_file(), "{} is missing", kubectl.display());
        let out = run(kubectl.clone(), &["checkpoint", "trio", "--all-containers"]).await;
        assert_eq!(out, expected, "1.{minor} checkpoint");
        let before = agent.seen().len();
        let out = run(kubectl, &["checkpoint", "counter", "--wait=false"]).await;
        let name = loop {
            if let Some(n) = agent.seen().get(before) {
                break n.clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        assert_eq!(
            out,
            (
                Some(0),
                format!("podcheckpoint.checkpoint.kcr.dev/{name} created\n"),
                String::new()
            ),
            "1.{minor} --wait=false"
        );
    }
}
