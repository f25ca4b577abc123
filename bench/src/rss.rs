//! Figures of the local stack's processes from /proc: peak resident memory
//! (VmHWM, reset through `clear_refs`), VmRSS sampled while something runs,
//! CPU seconds. hack/lib/procs.sh keeps their PIDs in $KCR_LOCAL_DIR/pids/NAME.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;

/// USER_HZ: the unit of /proc/PID/stat's utime and stime on Linux.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// $KCR_LOCAL_DIR/pids
    #[arg(long)]
    pids_dir: PathBuf,
    /// NAME=MIB: report process NAME against a limit of MIB MiB (repeat).
    #[arg(long = "limit", value_parser = parse_limit, required = true)]
    limits: Vec<(String, u64)>,
}

fn parse_limit(s: &str) -> Result<(String, u64), String> {
    let (name, mib) = s
        .split_once('=')
        .ok_or_else(|| format!("want NAME=MIB, got {s:?}"))?;
    let mib = mib.parse().map_err(|e| format!("bad MiB in {s:?}: {e}"))?;
    Ok((name.to_owned(), mib))
}

/// A `kB` field of /proc/PID/status.
pub fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status =
        std::fs::read_to_string(&path).with_context(|| format!("failed to read {path}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in {path}"))
}

/// The PID in a pid file.
pub fn read_pid(file: &Path) -> anyhow::Result<u32> {
    std::fs::read_to_string(file)
        .with_context(|| format!("failed to read {}", file.display()))?
        .trim()
        .parse()
        .with_context(|| format!("no PID in {}", file.display()))
}

/// Resets a process's peak RSS (VmHWM) to its current RSS; false when the
/// kernel refused (not root).
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// utime + stime of a process, in seconds.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("failed to read /proc/{pid}/stat"))?;
    // Fields after the command (which may hold spaces) in parentheses.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime 15.
    let tick = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i - 3)
            .context("short /proc/PID/stat")?
            .parse::<f64>()?)
    };
    Ok((tick(14)? + tick(15)?) / CLOCK_TICKS_PER_SECOND)
}

/// Runs `work` while sampling the VmRSS of `pids` every `every`; returns its
/// result and the largest VmRSS seen per PID (KiB, in the order of `pids`).
pub fn sample_rss_during<T>(
    pids: &[u32],
    every: Duration,
    work: impl FnOnce() -> T,
) -> (T, Vec<u64>) {
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut peak = vec![0u64; pids.len()];
            loop {
                for (p, pid) in peak.iter_mut().zip(pids) {
                    *p = (*p).max(status_kib(*pid, "VmRSS").unwrap_or(0));
                }
                if done.load(Ordering::Relaxed) {
                    return peak;
                }
                std::thread::sleep(every);
            }
        });
        let out = work();
        done.store(true, Ordering::Relaxed);
        let peak = sampler.join().unwrap_or_else(|_| vec![0; pids.len()]);
        (out, peak)
    })
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    for (name, limit) in &args.limits {
        let pid = read_pid(&args.pids_dir.join(name))?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .with_context(|| format!("process {name} (pid {pid}) is not running"))?;
        let hwm = status_kib(pid, "VmHWM")? as f64 / 1024.0;
        let rss = status_kib(pid, "VmRSS")? as f64 / 1024.0;
        println!(
            "rss {name} comm={} pid={pid} vmhwm_mib={hwm:.1} vmrss_mib={rss:.1} limit_mib={limit} met={}",
            comm.trim(),
            if hwm <= *limit as f64 { "yes" } else { "no" }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_of_this_process() {
        let me = std::process::id();
        assert!(status_kib(me, "VmRSS").unwrap() > 0);
        assert!(cpu_seconds(me).unwrap() >= 0.0);
        let (out, peak) = sample_rss_during(&[me], Duration::from_millis(1), || 7);
        assert_eq!(out, 7);
        assert!(peak[0] > 0, "{peak:?}");
    }
}
