//! Item 1, the control path: `kubectl checkpoint POD --api=subresource`
//! against kubectl sending the same request itself (`kubectl create --raw
//! <the pods/checkpoint URL> -f <empty file>`, issue 15's fair anchor) and
//! against `kubectl get pod POD` (issue 7's), with the fake CRI answering at
//! once, same kubectl, same kubeconfig, interleaved; plus the plugin alone,
//! its start-up (`--version`), and — with the stand-in's request log — each
//! request the plugin sends.

use std::path::PathBuf;

use anyhow::Context;

use api_types::pod_checkpoint_path;

use crate::command::{Cmd, Spacing};
use crate::requests::{Log, breakdown, print_breakdown};
use crate::stats::{Samples, a_first, ms, ratio};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// kubectl binary (the plugin must be on PATH for `kubectl checkpoint`).
    #[arg(long, default_value = "kubectl")]
    kubectl: PathBuf,
    /// The kubectl-checkpoint binary (timed alone and with --version).
    #[arg(long)]
    plugin: PathBuf,
    #[arg(long)]
    kubeconfig: PathBuf,
    #[arg(long, default_value = "default")]
    namespace: String,
    /// A running pod whose node answers checkpoints at once.
    #[arg(long)]
    pod: String,
    /// Measured rounds (each runs every command once).
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..=1000))]
    iterations: u32,
    /// Unmeasured rounds first (caches, page cache).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=100))]
    warmup: u32,
    /// The container the plugin picks (the pod's default): the raw request names it too.
    #[arg(long, default_value = "app")]
    container: String,
    /// The stand-in's JSON request log: each request of the plugin alone.
    #[arg(long)]
    standin_log: Option<PathBuf>,
    /// The user of --kubeconfig, as the request log names it.
    #[arg(long, default_value = "alice")]
    user: String,
    /// Where to keep the empty request body of `kubectl create --raw`.
    #[arg(long, default_value = "/tmp")]
    scratch_dir: PathBuf,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    // Flags after the verb: kubectl refuses flags before a plugin's name.
    let kubectl = |verb: &[&str]| {
        Cmd::new(&args.kubectl)
            .args(verb.iter().copied())
            .arg("--kubeconfig")
            .arg(&args.kubeconfig)
            .arg("-n")
            .arg(&args.namespace)
    };
    let get = kubectl(&["get", "pod", &args.pod]);
    // The synchronous path, also where the cluster serves PodCheckpoints.
    let checkpoint = kubectl(&["checkpoint", &args.pod, "--api=subresource"]);
    let empty = args
        .scratch_dir
        .join(format!("kcr-bench-empty-{}.json", std::process::id()));
    std::fs::write(&empty, b"").with_context(|| format!("failed to write {}", empty.display()))?;
    let url = format!(
        "{}?container={}",
        pod_checkpoint_path(&args.namespace, &args.pod),
        args.container
    );
    let raw = Cmd::new(&args.kubectl)
        .args(["create", "--raw", &url, "-f"])
        .arg(&empty)
        .arg("--kubeconfig")
        .arg(&args.kubeconfig);
    let direct = Cmd::new(&args.plugin)
        .arg("--kubeconfig")
        .arg(&args.kubeconfig)
        .arg("-n")
        .arg(&args.namespace)
        .arg(&args.pod)
        .arg("--api=subresource");
    let log = args.standin_log.as_deref().map(Log::new);
    let version = Cmd::new(&args.plugin).arg("--version");

    // The checkpoint must really happen (and print the archive) before we time it.
    let first = checkpoint
        .run()
        .context("kubectl checkpoint before measuring")?;
    anyhow::ensure!(
        first.stdout.contains("Checkpoint Archive:"),
        "kubectl checkpoint printed no archive: {}",
        first.stdout
    );
    let first = raw.run().context("kubectl create --raw before measuring")?;
    anyhow::ensure!(
        first.stdout.contains("\"archivePath\""),
        "kubectl create --raw answered no ContainerCheckpoint: {}",
        first.stdout
    );

    let (mut s_get, mut s_ckpt, mut s_raw, mut s_direct, mut s_version) = Default::default();
    let mut direct_requests = Vec::new();
    let total = args.warmup + args.iterations;
    // Every command but `get pod` and `--version` checkpoints the pod's
    // container through the extension: each waits out the spacing first.
    let mut spacing = Spacing::default();
    for i in 0..total {
        let measured = i >= args.warmup;
        let mut record = |cmd: &Cmd, into: &mut Samples| -> anyhow::Result<()> {
            let checkpoints = !std::ptr::eq(cmd, &get) && !std::ptr::eq(cmd, &version);
            let r = if checkpoints {
                spacing.run(cmd)?
            } else {
                cmd.run()?
            };
            if measured {
                into.push(r.wall);
            }
            Ok(())
        };
        if a_first(i as usize) {
            record(&checkpoint, &mut s_ckpt)?;
            record(&raw, &mut s_raw)?;
            record(&get, &mut s_get)?;
        } else {
            record(&get, &mut s_get)?;
            record(&raw, &mut s_raw)?;
            record(&checkpoint, &mut s_ckpt)?;
        }
        let mark = log.as_ref().map(Log::mark).transpose()?;
        record(&direct, &mut s_direct)?;
        if let (Some(log), Some(mark), true) = (&log, mark, measured) {
            std::thread::sleep(std::time::Duration::from_millis(20));
            direct_requests.extend(log.since(mark)?.into_iter().filter(|r| r.user == args.user));
        }
        record(&version, &mut s_version)?;
    }
    let _ = std::fs::remove_file(&empty);
    let s_get: Samples = s_get;
    let s_ckpt: Samples = s_ckpt;
    let s_raw: Samples = s_raw;
    let s_direct: Samples = s_direct;
    let s_version: Samples = s_version;
    println!("control kubectl_get_pod {}", s_get.summary());
    println!("control kubectl_create_raw {}", s_raw.summary());
    println!("control kubectl_checkpoint {}", s_ckpt.summary());
    println!("control plugin_checkpoint_direct {}", s_direct.summary());
    println!("control plugin_version {}", s_version.summary());
    println!(
        "control kubectl_dispatch_ms {:.1} (kubectl checkpoint - the plugin alone, medians)",
        ms(s_ckpt.median().saturating_sub(s_direct.median()))
    );
    if log.is_some() {
        print_breakdown(
            "control",
            "plugin",
            &breakdown(&direct_requests, None),
            args.iterations as usize,
        );
    }
    println!(
        "ratio control_path {:.3}",
        ratio(s_ckpt.median(), s_get.median())
    );
    println!(
        "ratio control_path_vs_raw {:.3}",
        ratio(s_ckpt.median(), s_raw.median())
    );
    Ok(())
}
