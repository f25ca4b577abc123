//! Issue 14's measurement: downloading a real archive through the extension
//! (`kubectl checkpoint download NAME -c C -f FILE`: kubectl's plugin
//! dispatch, the plugin, the stand-in's aggregator proxy, checkpoint-apiserver,
//! the node agent) against `cp` of the node's archive file on the same machine,
//! interleaved ABBA, with the peak RSS of checkpoint-apiserver and of the
//! node agent during each download.
//!
//! For each `--pod NAME=MIB` (a container holding MIB MiB of touched memory,
//! hack/bench.sh's `mem_pod`): checkpoint it through a PodCheckpoint
//! (`kubectl checkpoint NAME --api=object -o json`), check the node's file
//! against the status's sha256 (which also leaves it in the page cache:
//! both sides read it warm), then time the two sides. Every download is
//! compared with the node's sha256 (outside the timing) and removed with the
//! copy; the PodCheckpoint is deleted after the pod's rounds (the agent
//! removes its archive).
//!
//! The floor ([`crate::floor`]): the least CPU any implementation of this
//! path must spend on the archive here (six AES-GCM passes for three TLS
//! hops, one SHA-256), spread over every core; `cp` / floor is the best
//! `download_vs_cp` this machine allows.
//!
//! RSS: before each download the peaks (VmHWM) of both servers are reset
//! through `/proc/PID/clear_refs` and read after it; VmRSS is also sampled
//! every `--sample-ms`. The larger of the two is reported.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use api_types::podcheckpoint::PodCheckpoint;
use sha2::{Digest, Sha256};

use crate::command::Cmd;
use crate::floor::{self, Floor};
use crate::real::wait_for_rss;
use crate::rss::{cpu_seconds, read_pid, reset_peak, sample_rss_during, status_kib};
use crate::stats::{Samples, a_first, ratio};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// kubectl binary (the plugin must be on PATH).
    #[arg(long, default_value = "kubectl")]
    kubectl: PathBuf,
    /// The kubeconfig that checkpoints (checkpoint-creator).
    #[arg(long)]
    kubeconfig: PathBuf,
    /// A kubeconfig that may download archives (`get podcheckpoints/archive`)
    /// and delete PodCheckpoints.
    #[arg(long)]
    admin_kubeconfig: PathBuf,
    #[arg(long, default_value = "default")]
    namespace: String,
    /// POD=MIB: a pod whose container holds MIB MiB (repeat; the first is the
    /// base of the flatness ratios, the last the size of `ratio download_vs_cp`).
    #[arg(long = "pod", value_parser = parse_pod, required = true)]
    pods: Vec<(String, u64)>,
    #[arg(long, default_value = "app")]
    container: String,
    /// The node's checkpoint directory: the status's archive paths are under it.
    #[arg(long)]
    archive_root: PathBuf,
    /// Where the downloads and the copies go (removed after each).
    #[arg(long)]
    out_dir: PathBuf,
    /// checkpoint-apiserver's pid file.
    #[arg(long)]
    extension_pid_file: PathBuf,
    /// The node agent's (checkpoint-shim of the pods' node) pid file.
    #[arg(long)]
    agent_pid_file: PathBuf,
    /// Peak RSS limits reported against (MiB).
    #[arg(long, default_value_t = 64)]
    extension_limit_mib: u64,
    #[arg(long, default_value_t = 32)]
    agent_limit_mib: u64,
    /// Throughput target: download / cp.
    #[arg(long, default_value_t = 0.8)]
    target: f64,
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    iterations: u32,
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=10))]
    warmup: u32,
    /// VmRSS sampling period during a download (milliseconds).
    #[arg(long, default_value_t = 50)]
    sample_ms: u64,
    /// Timeout of the checkpoint (seconds).
    #[arg(long, default_value_t = 300)]
    timeout: u32,
    /// Extra flags for `kubectl checkpoint download` (e.g. `--parallel=8`; repeat).
    #[arg(long = "download-flag", allow_hyphen_values = true)]
    download_flags: Vec<String>,
}

fn parse_pod(s: &str) -> Result<(String, u64), String> {
    let (name, mib) = s
        .split_once('=')
        .ok_or_else(|| format!("want POD=MIB, got {s:?}"))?;
    let mib = mib.parse().map_err(|e| format!("bad MiB in {s:?}: {e}"))?;
    Ok((name.to_owned(), mib))
}

/// The figures of one pod's rounds.
#[derive(Debug)]
struct Measured {
    mib: u64,
    download: Samples,
    cp: Samples,
    cp_fsync: Samples,
    archive_bytes: u64,
    /// Peak RSS (KiB) per download: (extension, agent).
    peaks: Vec<(u64, u64)>,
    /// CPU seconds per download: (stand-in, extension, agent).
    cpu: Vec<(f64, f64, f64)>,
    /// The least any implementation spends on this archive here.
    floor: Floor,
}

impl Measured {
    fn peak(&self) -> (u64, u64) {
        self.peaks
            .iter()
            .fold((0, 0), |(e, a), (pe, pa)| (e.max(*pe), a.max(*pa)))
    }

    /// Download throughput / cp throughput, medians.
    fn ratio(&self) -> f64 {
        ratio(self.cp.median(), self.download.median())
    }

    /// The floor's throughput / cp throughput: the best ratio any
    /// implementation of the path could reach on this machine.
    fn floor_ratio(&self) -> f64 {
        ratio(self.cp.median(), self.floor.wall())
    }
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("failed to create {}", args.out_dir.display()))?;
    let extension = read_pid(&args.extension_pid_file)?;
    let agent = read_pid(&args.agent_pid_file)?;
    let standin = args
        .extension_pid_file
        .parent()
        .map(|d| d.join("standin"))
        .and_then(|f| read_pid(&f).ok());
    let mut all = Vec::new();
    for (pod, mib) in &args.pods {
        let m = measure_pod(args, pod, *mib, extension, agent, standin)?;
        report(args, pod, &m);
        all.push(m);
    }
    if let (Some(first), Some(last)) = (all.first(), all.last()) {
        println!("ratio download_vs_cp {:.3}", last.ratio());
        println!("ratio download_floor_vs_cp {:.3}", last.floor_ratio());
        println!(
            "download target download_vs_cp>={} size_mib={} met={} reachable_here={} (floor {:.3})",
            args.target,
            last.mib,
            yes(last.ratio() >= args.target),
            yes(last.floor_ratio() >= args.target),
            last.floor_ratio()
        );
        let ((e0, a0), (e1, a1)) = (first.peak(), last.peak());
        let flat = |a: u64, b: u64| {
            if b == 0 {
                f64::NAN
            } else {
                a as f64 / b as f64
            }
        };
        println!(
            "ratio download_rss_flat_extension {:.3} ({} MiB vs {} MiB archive)",
            flat(e1, e0),
            last.mib,
            first.mib
        );
        println!(
            "ratio download_rss_flat_agent {:.3} ({} MiB vs {} MiB archive)",
            flat(a1, a0),
            last.mib,
            first.mib
        );
    }
    Ok(())
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn report(args: &Args, pod: &str, m: &Measured) {
    let p = format!("download {}mib", m.mib);
    let archive_mib = m.archive_bytes as f64 / (1024.0 * 1024.0);
    let rate = |s: &Samples| archive_mib / s.median().as_secs_f64();
    println!("{p} pod={pod} archive_mib={archive_mib:.1}");
    println!("{p} kubectl_checkpoint_download {}", m.download.summary());
    println!("{p} cp {}", m.cp.summary());
    println!("{p} cp_then_fsync {}", m.cp_fsync.summary());
    println!(
        "{p} throughput_mib_per_s download={:.1} cp={:.1} cp_then_fsync={:.1}",
        rate(&m.download),
        rate(&m.cp),
        rate(&m.cp_fsync)
    );
    let (e, a) = m.peak();
    println!(
        "{p} peak_rss_mib extension={:.1} agent={:.1} limit_mib extension={} agent={} met={}",
        kib_to_mib(e),
        kib_to_mib(a),
        args.extension_limit_mib,
        args.agent_limit_mib,
        yes(kib_to_mib(e) <= args.extension_limit_mib as f64
            && kib_to_mib(a) <= args.agent_limit_mib as f64)
    );
    let n = m.cpu.len().max(1) as f64;
    let (s, x, g) = m.cpu.iter().fold((0.0, 0.0, 0.0), |(s, x, g), (a, b, c)| {
        (s + a, x + b, g + c)
    });
    println!(
        "{p} cpu_seconds_per_download standin={:.2} extension={:.2} agent={:.2}",
        s / n,
        x / n,
        g / n
    );
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{p} floor aead_pass_ms={:.1} sha256_pass_ms={:.1} aead_passes={} cores={} cpu_ms={:.1} wall_ms={:.1}",
        ms(m.floor.aead_pass),
        ms(m.floor.sha256_pass),
        floor::AEAD_PASSES,
        m.floor.cores,
        ms(m.floor.cpu()),
        ms(m.floor.wall())
    );
    let name = format!("download_vs_cp_{}mib", m.mib);
    println!("ratio {name} {:.3}", m.ratio());
    println!(
        "ratio download_floor_vs_cp_{}mib {:.3}",
        m.mib,
        m.floor_ratio()
    );
    println!(
        "ratio download_vs_cp_fsync_{}mib {:.3}",
        m.mib,
        ratio(m.cp_fsync.median(), m.download.median())
    );
}

fn measure_pod(
    args: &Args,
    pod: &str,
    mib: u64,
    extension: u32,
    agent: u32,
    standin: Option<u32>,
) -> anyhow::Result<Measured> {
    let marker = format!("kcr_bench_{pod}");
    let held = wait_for_rss(&marker, mib * 97 / 100, Duration::from_secs(300))?;
    eprintln!(
        "[bench] download: pod {pod} holds {:.1} MiB (pid {})",
        held.kib as f64 / 1024.0,
        held.pid
    );
    let run = Cmd::new(&args.kubectl)
        .args(["checkpoint", pod, "-c", &args.container, "--api=object"])
        .args(["-o", "json", "-n", &args.namespace])
        .arg("--kubeconfig")
        .arg(&args.kubeconfig)
        .arg("--timeout")
        .arg(format!("{}s", args.timeout))
        .run()?;
    let pc: PodCheckpoint = serde_json::from_str(&run.stdout).with_context(|| {
        format!(
            "kubectl checkpoint printed no PodCheckpoint: {}",
            run.stdout
        )
    })?;
    let name = pc
        .metadata
        .name
        .clone()
        .context("the PodCheckpoint has no name")?;
    let delete = Cmd::new(&args.kubectl)
        .args(["delete", "podcheckpoint", &name, "--wait=true", "-n"])
        .arg(&args.namespace)
        .arg("--kubeconfig")
        .arg(&args.admin_kubeconfig);
    let result = measure_object(args, &pc, &name, mib, extension, agent, standin);
    delete.run()?;
    result
}

#[allow(clippy::too_many_arguments)]
fn measure_object(
    args: &Args,
    pc: &PodCheckpoint,
    name: &str,
    mib: u64,
    extension: u32,
    agent: u32,
    standin: Option<u32>,
) -> anyhow::Result<Measured> {
    let archive = pc
        .status
        .as_ref()
        .and_then(|s| {
            s.checkpointed_containers
                .iter()
                .find(|c| c.name == args.container)
        })
        .and_then(|c| c.archive.clone())
        .with_context(|| format!("podcheckpoint {name} has no archive of {}", args.container))?;
    let node_file = args.archive_root.join(&archive.path);
    let size = std::fs::metadata(&node_file)
        .with_context(|| format!("failed to stat {}", node_file.display()))?
        .len();
    ensure!(
        i64::try_from(size).ok() == Some(archive.size_bytes),
        "{} has {size} bytes, the status says {}",
        node_file.display(),
        archive.size_bytes
    );
    // Also reads the file into the page cache: both sides start warm.
    let want = sha256_file(&node_file)?;
    ensure!(
        want == archive.sha256,
        "{}: sha256 {want}, the status says {}",
        node_file.display(),
        archive.sha256
    );
    eprintln!(
        "[bench] download: podcheckpoint {name}, archive {} ({:.1} MiB)",
        node_file.display(),
        size as f64 / 1048576.0
    );

    let downloaded = args.out_dir.join("kcr-bench-download.tar");
    let copied = args.out_dir.join("kcr-bench-cp.tar");
    let download = Cmd::new(&args.kubectl)
        .args(["checkpoint", "download", name, "-c", &args.container, "-n"])
        .arg(&args.namespace)
        .arg("-f")
        .arg(&downloaded)
        .arg("--kubeconfig")
        .arg(&args.admin_kubeconfig)
        .args(&args.download_flags);
    let cp = Cmd::new("cp").arg(&node_file).arg(&copied);
    let fsync = Cmd::new("sync").arg(&copied);
    let every = Duration::from_millis(args.sample_ms.max(1));

    let mut m = Measured {
        mib,
        download: Samples::default(),
        cp: Samples::default(),
        cp_fsync: Samples::default(),
        archive_bytes: size,
        peaks: Vec::new(),
        cpu: Vec::new(),
        floor: floor::measure(size, 3),
    };
    for i in 0..args.warmup + args.iterations {
        let measured = i >= args.warmup;
        let mut via_download = || -> anyhow::Result<()> {
            let reset = reset_peak(extension) & reset_peak(agent);
            let cpu = |pid: Option<u32>| pid.and_then(|p| cpu_seconds(p).ok()).unwrap_or(0.0);
            let before = (cpu(standin), cpu(Some(extension)), cpu(Some(agent)));
            let (r, sampled) = sample_rss_during(&[extension, agent], every, || download.run());
            let r = r?;
            let after = (cpu(standin), cpu(Some(extension)), cpu(Some(agent)));
            let peak = |pid: u32, sampled: u64| -> anyhow::Result<u64> {
                // Without a reset VmHWM is the process's lifetime peak.
                let hwm = if reset { status_kib(pid, "VmHWM")? } else { 0 };
                Ok(hwm.max(sampled))
            };
            let (pe, pa) = (peak(extension, sampled[0])?, peak(agent, sampled[1])?);
            let got = sha256_file(&downloaded)?;
            std::fs::remove_file(&downloaded)
                .with_context(|| format!("failed to remove {}", downloaded.display()))?;
            if got != want {
                bail!("the download of {name} has sha256 {got}, the node's file {want}");
            }
            eprintln!(
                "[bench] kubectl checkpoint download: {:?}, peak RSS extension {:.1} MiB, agent {:.1} MiB{}",
                r.wall,
                kib_to_mib(pe),
                kib_to_mib(pa),
                if reset { "" } else { " (sampled only)" }
            );
            if measured {
                m.download.push(r.wall);
                m.peaks.push((pe, pa));
                m.cpu
                    .push((after.0 - before.0, after.1 - before.1, after.2 - before.2));
            }
            Ok(())
        };
        let mut via_cp = || -> anyhow::Result<()> {
            let r = cp.run()?;
            let s = fsync.run()?;
            std::fs::remove_file(&copied)
                .with_context(|| format!("failed to remove {}", copied.display()))?;
            eprintln!("[bench] cp: {:?} (+ fsync {:?})", r.wall, s.wall);
            if measured {
                m.cp.push(r.wall);
                m.cp_fsync.push(r.wall + s.wall);
            }
            Ok(())
        };
        if a_first(i as usize) {
            via_download()?;
            via_cp()?;
        } else {
            via_cp()?;
            via_download()?;
        }
    }
    Ok(m)
}

/// The sha256 of a file, in lowercase hex.
fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("failed to open {}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)
        .with_context(|| format!("failed to read {}", path.display()))?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_and_digests() {
        assert_eq!(parse_pod("dl-256=256"), Ok(("dl-256".into(), 256)));
        assert!(parse_pod("dl").is_err());
        assert!(parse_pod("dl=x").is_err());
        let dir = std::env::temp_dir().join(format!("kcr-bench-sha-{}", std::process::id()));
        std::fs::write(&dir, b"abc").unwrap();
        let got = sha256_file(&dir).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(
            got,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
