//! Item 1, the control path: `kubectl checkpoint POD` against `kubectl get pod
//! POD` with the fake CRI answering at once, same kubectl, same kubeconfig,
//! interleaved ABBA; plus the plugin alone and its start-up (`--version`).

use std::path::PathBuf;

use anyhow::Context;

use crate::command::Cmd;
use crate::stats::{Samples, a_first, ratio};

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
    let checkpoint = kubectl(&["checkpoint", &args.pod]);
    let direct = Cmd::new(&args.plugin)
        .arg("--kubeconfig")
        .arg(&args.kubeconfig)
        .arg("-n")
        .arg(&args.namespace)
        .arg(&args.pod);
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

    let (mut s_get, mut s_ckpt, mut s_direct, mut s_version) = Default::default();
    let total = args.warmup + args.iterations;
    for i in 0..total {
        let measured = i >= args.warmup;
        let record = |cmd: &Cmd, into: &mut Samples| -> anyhow::Result<()> {
            let r = cmd.run()?;
            if measured {
                into.push(r.wall);
            }
            Ok(())
        };
        if a_first(i as usize) {
            record(&checkpoint, &mut s_ckpt)?;
            record(&get, &mut s_get)?;
        } else {
            record(&get, &mut s_get)?;
            record(&checkpoint, &mut s_ckpt)?;
        }
        record(&direct, &mut s_direct)?;
        record(&version, &mut s_version)?;
    }
    let s_get: Samples = s_get;
    let s_ckpt: Samples = s_ckpt;
    let s_direct: Samples = s_direct;
    let s_version: Samples = s_version;
    println!("control kubectl_get_pod {}", s_get.summary());
    println!("control kubectl_checkpoint {}", s_ckpt.summary());
    println!("control plugin_checkpoint_direct {}", s_direct.summary());
    println!("control plugin_version {}", s_version.summary());
    println!(
        "ratio control_path {:.3}",
        ratio(s_ckpt.median(), s_get.median())
    );
    Ok(())
}
