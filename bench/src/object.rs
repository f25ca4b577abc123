//! Issue 15 item 2, the declarative path against the synchronous one:
//! `kubectl checkpoint POD --api=object` (create a PodCheckpoint, watch it
//! until the node agent writes Ready) against `kubectl checkpoint POD
//! --api=subresource` (one POST), same pod, same kubectl and kubeconfig,
//! the node's runtime answering at once, interleaved ABBA. Where the time
//! goes comes from the stand-in's request log: the requests each side made
//! (plugin and agent), and for the object the phases create → claimed →
//! Ready → the plugin's exit.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;

use crate::command::{Cmd, Spacing};
use crate::requests::{Log, Request, breakdown, print_breakdown};
use crate::stats::{Samples, a_first, ratio};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// kubectl binary (the plugin must be on PATH).
    #[arg(long, default_value = "kubectl")]
    kubectl: PathBuf,
    /// The user's kubeconfig (checkpoint-creator).
    #[arg(long)]
    kubeconfig: PathBuf,
    /// The user, as the request log names it.
    #[arg(long, default_value = "alice")]
    user: String,
    /// A kubeconfig that may delete PodCheckpoints (the objects are removed
    /// after each run, outside the timing).
    #[arg(long)]
    admin_kubeconfig: PathBuf,
    /// The user the node agents authenticate as, in the request log.
    #[arg(
        long,
        default_value = "system:serviceaccount:kcr-system:checkpoint-shim"
    )]
    agent_user: String,
    /// The user checkpoint-apiserver authenticates as, in the request log.
    #[arg(
        long,
        default_value = "system:serviceaccount:kcr-system:checkpoint-apiserver"
    )]
    extension_user: String,
    #[arg(long, default_value = "default")]
    namespace: String,
    /// A running pod whose node answers checkpoints at once.
    #[arg(long)]
    pod: String,
    /// The stand-in's JSON request log.
    #[arg(long)]
    standin_log: PathBuf,
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=1000))]
    iterations: u32,
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=100))]
    warmup: u32,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// The phases of one object run, from its requests and its start/end.
#[derive(Debug, Default)]
struct Phases {
    /// Spawn → the create answered.
    to_created: Option<f64>,
    /// Create answered → the agent's first write (the claim).
    to_claimed: Option<f64>,
    /// Claim → the agent's last write (Ready).
    to_ready: Option<f64>,
    /// Ready written → the plugin exited.
    to_exit: Option<f64>,
}

fn phases(requests: &[Request], user: &str, agent: &str, start: f64, end: f64) -> Phases {
    let created = requests
        .iter()
        .find(|r| {
            r.user == user
                && r.method == "POST"
                && r.code == 201
                && r.path.ends_with("/podcheckpoints")
        })
        .map(|r| r.at);
    let writes: Vec<f64> = requests
        .iter()
        .filter(|r| r.user == agent && r.method != "GET" && r.path.contains("/podcheckpoints/"))
        .map(|r| r.at)
        .collect();
    let claimed = writes.first().copied();
    let ready = writes.last().copied();
    Phases {
        to_created: created.map(|c| c - start),
        to_claimed: created.zip(claimed).map(|(c, cl)| cl - c),
        to_ready: claimed.zip(ready).map(|(cl, r)| r - cl),
        to_exit: ready.map(|r| end - r),
    }
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let kubectl = |api: &str| {
        Cmd::new(&args.kubectl)
            .args(["checkpoint", &args.pod, &format!("--api={api}")])
            .arg("--kubeconfig")
            .arg(&args.kubeconfig)
            .arg("-n")
            .arg(&args.namespace)
    };
    let object = kubectl("object");
    let subresource = kubectl("subresource");
    let cleanup = Cmd::new(&args.kubectl)
        .args(["delete", "podcheckpoints", "--all", "--wait=true"])
        .arg("--kubeconfig")
        .arg(&args.admin_kubeconfig)
        .arg("-n")
        .arg(&args.namespace);
    let log = Log::new(&args.standin_log);

    for (name, cmd) in [("object", &object), ("subresource", &subresource)] {
        let first = cmd
            .run()
            .with_context(|| format!("kubectl checkpoint --api={name} before measuring"))?;
        anyhow::ensure!(
            first.stdout.contains("Checkpoint Archive:"),
            "kubectl checkpoint --api={name} printed no archive: {}",
            first.stdout
        );
    }
    cleanup.run()?;

    let (mut s_obj, mut s_sub) = (Samples::default(), Samples::default());
    let mut obj_requests: Vec<Request> = Vec::new();
    let mut sub_requests: Vec<Request> = Vec::new();
    let mut phase_samples: [Samples; 4] = Default::default();
    let total = args.warmup + args.iterations;
    let mut measured_runs = 0usize;
    // The subresource path goes through the extension's per-container turns.
    let mut spacing = Spacing::default();
    for i in 0..total {
        let measured = i >= args.warmup;
        let mut via_object = || -> anyhow::Result<()> {
            let mark = log.mark()?;
            let start = now();
            let r = object.run()?;
            let end = now();
            // the agent's last write may be logged just after the watch saw it
            std::thread::sleep(Duration::from_millis(50));
            let requests = log.since(mark)?;
            cleanup.run()?;
            if measured {
                s_obj.push(r.wall);
                let p = phases(&requests, &args.user, &args.agent_user, start, end);
                for (samples, value) in phase_samples.iter_mut().zip([
                    p.to_created,
                    p.to_claimed,
                    p.to_ready,
                    p.to_exit,
                ]) {
                    if let Some(v) = value {
                        samples.push(Duration::from_secs_f64(v.max(0.0)));
                    }
                }
                obj_requests.extend(requests);
            }
            Ok(())
        };
        let mut via_subresource = || -> anyhow::Result<()> {
            let mark = log.mark()?;
            let r = spacing.run(&subresource)?;
            std::thread::sleep(Duration::from_millis(50));
            if measured {
                s_sub.push(r.wall);
                sub_requests.extend(log.since(mark)?);
            }
            Ok(())
        };
        if a_first(i as usize) {
            via_object()?;
            via_subresource()?;
        } else {
            via_subresource()?;
            via_object()?;
        }
        if measured {
            measured_runs += 1;
        }
    }
    println!("object kubectl_checkpoint_object {}", s_obj.summary());
    println!("object kubectl_checkpoint_subresource {}", s_sub.summary());
    for (name, samples) in [
        "spawn_to_created",
        "created_to_claimed",
        "claimed_to_ready",
        "ready_to_exit",
    ]
    .iter()
    .zip(&phase_samples)
    {
        println!("object phase {name} {}", samples.summary());
    }
    let prefix = format!("{}-", args.pod);
    let mine = |all: &[Request], user: &str| -> Vec<Request> {
        all.iter().filter(|r| r.user == user).cloned().collect()
    };
    print_breakdown(
        "object",
        "plugin(object)",
        &breakdown(&mine(&obj_requests, &args.user), Some(&prefix)),
        measured_runs,
    );
    print_breakdown(
        "object",
        "agent(object)",
        &breakdown(&mine(&obj_requests, &args.agent_user), Some(&prefix)),
        measured_runs,
    );
    print_breakdown(
        "object",
        "plugin(subresource)",
        &breakdown(&mine(&sub_requests, &args.user), None),
        measured_runs,
    );
    print_breakdown(
        "object",
        "extension(subresource)",
        &breakdown(&mine(&sub_requests, &args.extension_user), None),
        measured_runs,
    );
    println!(
        "ratio object_vs_subresource {:.3}",
        ratio(s_obj.median(), s_sub.median())
    );
    Ok(())
}
