//! `kcr-bench`: the performance measurements of issues 7, 14 and 15 on the local stack.
//! hack/bench.sh (`make bench`) brings the stack up and runs each subcommand;
//! every ratio is printed as `ratio NAME VALUE`, the raw figures before it.

mod command;
mod control;
mod download;
mod floor;
mod load;
mod object;
mod pcload;
mod real;
mod requests;
mod rss;
mod stats;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Benchmarks of kubectl-checkpoint on the local stack (hack/bench.sh)"
)]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Control path: `kubectl checkpoint POD` vs `kubectl create --raw` of the same request and `kubectl get pod POD` (fake CRI, instant).
    Control(control::Args),
    /// The declarative path: `kubectl checkpoint --api=object` vs `--api=subresource` (fake CRI, instant).
    Object(object::Args),
    /// Download: `kubectl checkpoint download` of a real archive vs `cp` of the node's file; RSS of the servers.
    Download(download::Args),
    /// PodCheckpoints under load: many created at once on one node, then deleted.
    Pcload(pcload::Args),
    /// Real checkpoint: `kubectl checkpoint` vs the runtime's CRI CheckpointContainer.
    Real(real::Args),
    /// Load: concurrent checkpoint requests straight to checkpoint-apiserver.
    Load(load::Args),
    /// Peak RSS (VmHWM) of the stack's processes against limits.
    Rss(rss::Args),
}

fn main() -> std::process::ExitCode {
    let result = match Args::parse().command {
        Cmd::Control(a) => control::run(&a),
        Cmd::Object(a) => object::run(&a),
        Cmd::Download(a) => download::run(&a),
        Cmd::Pcload(a) => pcload::run(&a),
        Cmd::Real(a) => real::run(&a),
        Cmd::Load(a) => load::run(&a),
        Cmd::Rss(a) => rss::run(&a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
