//! Item 2, a real checkpoint: end-to-end `kubectl checkpoint` of a container
//! holding ~256 MiB of touched memory against the runtime's own CRI
//! `CheckpointContainer` of the same container (`cri-pod checkpoint`),
//! interleaved ABBA. Every archive is removed once measured.
//!
//! With `--api=object` (issue 15's `object_real_checkpoint`, ≥ 1 GiB) the
//! plugin goes through a PodCheckpoint: the archive it prints is relative
//! to the node agent's checkpoint directory (`--archive-root`), and the
//! objects are deleted after each run (the agent removes their archives).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::command::{Cmd, Spacing};
use crate::stats::{Samples, a_first, ratio};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, default_value = "kubectl")]
    kubectl: PathBuf,
    #[arg(long)]
    kubeconfig: PathBuf,
    #[arg(long, default_value = "default")]
    namespace: String,
    #[arg(long)]
    pod: String,
    #[arg(long)]
    container: String,
    /// The cri-pod binary of the test harness.
    #[arg(long)]
    cri_pod: PathBuf,
    /// The CRI socket of the node running the pod.
    #[arg(long)]
    socket: PathBuf,
    /// Where the direct CRI calls write their archives (removed after each).
    #[arg(long)]
    out_dir: PathBuf,
    /// A string only the memory-holding process has on its command line; its
    /// VmRSS is read from /proc and must reach --min-rss-mib (and the process
    /// must have started its sleeping child) before measuring.
    #[arg(long)]
    rss_marker: String,
    #[arg(long, default_value_t = 250)]
    min_rss_mib: u64,
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=100))]
    iterations: u32,
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=10))]
    warmup: u32,
    /// Timeout given to both calls (seconds).
    #[arg(long, default_value_t = 120)]
    timeout: u32,
    /// `kubectl checkpoint --api=…` (object or subresource).
    #[arg(long, default_value = "subresource")]
    api: String,
    /// The node's checkpoint directory: relative archive paths (the object path) are under it.
    #[arg(long)]
    archive_root: Option<PathBuf>,
    /// A kubeconfig that may delete PodCheckpoints (needed with --api=object).
    #[arg(long)]
    admin_kubeconfig: Option<PathBuf>,
    /// The name of the `ratio` line and the prefix of the others.
    #[arg(long, default_value = "real_checkpoint")]
    ratio_name: String,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let rss = wait_for_rss(&args.rss_marker, args.min_rss_mib, Duration::from_secs(120))?;
    println!(
        "{} container_rss_mib={:.1} pid={}",
        args.ratio_name,
        rss.kib as f64 / 1024.0,
        rss.pid
    );
    let id = container_id(args)?;
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("failed to create {}", args.out_dir.display()))?;

    let kubectl = Cmd::new(&args.kubectl)
        .args(["checkpoint", &args.pod, "-c", &args.container])
        .arg(format!("--api={}", args.api))
        .arg("--kubeconfig")
        .arg(&args.kubeconfig)
        .arg("-n")
        .arg(&args.namespace)
        .arg("--timeout")
        .arg(format!("{}s", args.timeout));
    let location = args.out_dir.join("kcr-bench-cri.tar");
    let cri = Cmd::new(&args.cri_pod)
        .arg("checkpoint")
        .arg("--socket")
        .arg(&args.socket)
        .arg("--id")
        .arg(&id)
        .arg("--location")
        .arg(&location)
        .arg("--timeout")
        .arg(args.timeout.to_string());

    let mut s_kubectl = Samples::default();
    let mut s_cri = Samples::default();
    let mut size_kubectl = Vec::new();
    let mut size_cri = Vec::new();
    let total = args.warmup + args.iterations;
    // ABBA puts two kubectl checkpoints of the container back to back; the
    // extension's per-container spacing is waited out, untimed.
    let mut spacing = Spacing::default();
    for i in 0..total {
        let measured = i >= args.warmup;
        let mut via_kubectl = || -> anyhow::Result<()> {
            let r = spacing.run(&kubectl)?;
            let archive = archive_of(&r.stdout)?;
            let size = if archive.is_relative() {
                let root = args
                    .archive_root
                    .as_ref()
                    .context("the archive path is relative: --archive-root is needed")?;
                let size = std::fs::metadata(root.join(&archive))
                    .with_context(|| format!("failed to stat the archive {}", archive.display()))?
                    .len();
                let admin = args
                    .admin_kubeconfig
                    .as_ref()
                    .context("--admin-kubeconfig is needed to delete the PodCheckpoints")?;
                Cmd::new(&args.kubectl)
                    .args([
                        "delete",
                        "podcheckpoints",
                        "--all",
                        "--wait=true",
                        "-n",
                        &args.namespace,
                    ])
                    .arg("--kubeconfig")
                    .arg(admin)
                    .run()?;
                size
            } else {
                take(&archive)?
            };
            if measured {
                s_kubectl.push(r.wall);
                size_kubectl.push(size);
            }
            eprintln!("[bench] kubectl checkpoint: {:?}, {size} bytes", r.wall);
            Ok(())
        };
        let mut via_cri = || -> anyhow::Result<()> {
            let r = cri.run()?;
            let size = take(&location)?;
            if measured {
                s_cri.push(r.wall);
                size_cri.push(size);
            }
            eprintln!(
                "[bench] CRI CheckpointContainer: {:?}, {size} bytes",
                r.wall
            );
            Ok(())
        };
        if a_first(i as usize) {
            via_kubectl()?;
            via_cri()?;
        } else {
            via_cri()?;
            via_kubectl()?;
        }
    }
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let (kb, cb) = (median_u64(&size_kubectl), median_u64(&size_cri));
    let part = &args.ratio_name;
    println!(
        "{part} kubectl_checkpoint_{} {}",
        args.api,
        s_kubectl.summary()
    );
    println!("{part} cri_checkpoint {}", s_cri.summary());
    println!(
        "{part} archive_mib kubectl={:.1} cri={:.1}",
        mib(kb),
        mib(cb)
    );
    println!(
        "{part} throughput_mib_per_s kubectl={:.1} cri={:.1}",
        mib(kb) / s_kubectl.median().as_secs_f64(),
        mib(cb) / s_cri.median().as_secs_f64()
    );
    println!(
        "ratio {part} {:.3}",
        ratio(s_kubectl.median(), s_cri.median())
    );
    Ok(())
}

fn median_u64(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// The path on the `Checkpoint Archive:` line of the plugin's output.
fn archive_of(stdout: &str) -> anyhow::Result<PathBuf> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("Checkpoint Archive:"))
        .map(|p| PathBuf::from(p.trim()))
        .with_context(|| format!("no archive in the output of kubectl checkpoint: {stdout}"))
}

/// The size of an archive, which is then removed (disk space).
fn take(archive: &Path) -> anyhow::Result<u64> {
    let size = std::fs::metadata(archive)
        .with_context(|| format!("failed to stat the archive {}", archive.display()))?
        .len();
    std::fs::remove_file(archive)
        .with_context(|| format!("failed to remove the archive {}", archive.display()))?;
    Ok(size)
}

/// The running container's id, from `cri-pod ls`.
fn container_id(args: &Args) -> anyhow::Result<String> {
    let out = Cmd::new(&args.cri_pod)
        .arg("ls")
        .arg("--socket")
        .arg(&args.socket)
        .args(["--namespace", &args.namespace, "--name", &args.pod])
        .run()?;
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&out.stdout).context("failed to parse the output of cri-pod ls")?;
    list.iter()
        .find(|c| c["name"] == args.container.as_str() && c["state"] == "CONTAINER_RUNNING")
        .and_then(|c| c["id"].as_str())
        .map(str::to_owned)
        .with_context(|| {
            format!(
                "no running container {} in pod {}/{}",
                args.container, args.namespace, args.pod
            )
        })
}

#[derive(Debug)]
pub struct Rss {
    pub pid: u32,
    pub kib: u64,
}

/// Waits until the process with `marker` on its command line holds `min_mib`.
pub fn wait_for_rss(marker: &str, min_mib: u64, within: Duration) -> anyhow::Result<Rss> {
    let start = Instant::now();
    loop {
        let found = find_rss(marker)?;
        match &found {
            // Done allocating once it sleeps in a child (awk's system("sleep")).
            Some(r) if r.kib >= min_mib * 1024 && has_children(r.pid) => {
                return found.context("unreachable");
            }
            _ if start.elapsed() > within => bail!(
                "no process with {marker:?} on its command line reached {min_mib} MiB of RSS in {within:?} (last: {found:?})"
            ),
            _ => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

fn has_children(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .is_ok_and(|c| !c.trim().is_empty())
}

/// The largest VmRSS among processes whose command line contains `marker`.
fn find_rss(marker: &str) -> anyhow::Result<Option<Rss>> {
    let me = std::process::id();
    let mut best: Option<Rss> = None;
    for entry in std::fs::read_dir("/proc").context("failed to read /proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if !String::from_utf8_lossy(&cmdline).contains(marker) {
            continue;
        }
        let kib = crate::rss::status_kib(pid, "VmRSS").unwrap_or(0);
        if best.as_ref().is_none_or(|b| kib > b.kib) {
            best = Some(Rss { pid, kib });
        }
    }
    Ok(best)
}
