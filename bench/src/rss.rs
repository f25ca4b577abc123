//! Peak resident memory (VmHWM) of the local stack's processes, whose PIDs
//! hack/lib/procs.sh keeps in $KCR_LOCAL_DIR/pids/NAME.

use std::path::PathBuf;

use anyhow::Context;

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

pub fn run(args: &Args) -> anyhow::Result<()> {
    for (name, limit) in &args.limits {
        let file = args.pids_dir.join(name);
        let pid: u32 = std::fs::read_to_string(&file)
            .with_context(|| format!("failed to read {}", file.display()))?
            .trim()
            .parse()
            .with_context(|| format!("no PID in {}", file.display()))?;
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
