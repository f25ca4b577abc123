//! Issue 15 item 3, the declarative path under load: N PodCheckpoints
//! created at once across the pods `PREFIX0..` on one node whose runtime
//! answers at once. All must reach `CheckpointCompleted`; reported: the time
//! to the last completion, the API requests the node agents made per
//! PodCheckpoint (from the stand-in's request log), the agent's peak RSS
//! (VmHWM, reset before through /proc/PID/clear_refs) and CPU seconds
//! (utime + stime of /proc/PID/stat). Then all are deleted at once and the
//! time until every object is gone (finalizers released) and every archive
//! directory removed is reported against a limit.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use api_types::podcheckpoint::{PodCheckpoint, PodCheckpointSpec, reason};
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;

use crate::requests::{Log, breakdown, print_breakdown};
use crate::rss::{cpu_seconds, read_pid, reset_peak};

/// Label on every PodCheckpoint the part creates.
const LABEL: &str = "kcr-bench";
const LABEL_VALUE: &str = "pcload";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A kubeconfig allowed to create, list, watch and delete PodCheckpoints.
    #[arg(long)]
    kubeconfig: PathBuf,
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Pods `PREFIX0 .. PREFIX{pods-1}`, running on the agent's node.
    #[arg(long, default_value = "load-")]
    pod_prefix: String,
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pods: u32,
    /// PodCheckpoints created at once (object i for pod i mod pods).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=5000))]
    objects: u32,
    /// File holding the PID of the node agent (checkpoint-shim) of that node.
    #[arg(long)]
    agent_pid_file: PathBuf,
    /// The user the agents authenticate as, in the request log.
    #[arg(
        long,
        default_value = "system:serviceaccount:kcr-system:checkpoint-shim"
    )]
    agent_user: String,
    /// The agent's checkpoint directory (`<root-dir>/checkpoints`): archives under `<uid>/`.
    #[arg(long)]
    checkpoint_dir: PathBuf,
    /// The stand-in's JSON request log.
    #[arg(long)]
    standin_log: PathBuf,
    /// Give up waiting for completion after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Target: every object and archive gone within this many seconds of the deletes.
    #[arg(long, default_value_t = 10)]
    delete_limit: u64,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("failed to start the tokio runtime")?
        .block_on(run_async(args))
}

async fn client(kubeconfig: &std::path::Path) -> anyhow::Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("failed to read {}", kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

fn object(namespace: &str, pod: &str) -> PodCheckpoint {
    let mut pc = PodCheckpoint::new(
        "",
        PodCheckpointSpec {
            source_pod_name: pod.to_owned(),
            ..Default::default()
        },
    );
    pc.metadata.name = None;
    pc.metadata.generate_name = Some(format!("{pod}-"));
    pc.metadata.namespace = Some(namespace.to_owned());
    pc.metadata.labels = Some([(LABEL.to_owned(), LABEL_VALUE.to_owned())].into());
    pc
}

async fn run_async(args: &Args) -> anyhow::Result<()> {
    let client = client(&args.kubeconfig).await?;
    let api: Api<PodCheckpoint> = Api::namespaced(client, &args.namespace);
    let selector = format!("{LABEL}={LABEL_VALUE}");
    let lp = ListParams::default().labels(&selector);
    let leftovers = api
        .list(&lp)
        .await
        .context("failed to list PodCheckpoints")?;
    if !leftovers.items.is_empty() {
        bail!(
            "{} PodCheckpoints labelled {selector} exist already: delete them first",
            leftovers.items.len()
        );
    }
    let pid = read_pid(&args.agent_pid_file)?;
    // Reset the peak RSS, so that VmHWM is this part's.
    let hwm_reset = reset_peak(pid);
    let cpu_before = cpu_seconds(pid)?;
    let log = Log::new(&args.standin_log);
    let mark = log.mark()?;

    // Watch first, so that no completion is missed.
    let n = args.objects as usize;
    let watch = watcher(api.clone(), watcher::Config::default().labels(&selector));
    let mut watch = std::pin::pin!(watch);

    let start = Instant::now();
    let creates = (0..args.objects).map(|i| {
        let api = api.clone();
        let pc = object(
            &args.namespace,
            &format!("{}{}", args.pod_prefix, i % args.pods),
        );
        async move { api.create(&PostParams::default(), &pc).await }
    });
    let created: Vec<PodCheckpoint> = futures::stream::iter(creates)
        .buffer_unordered(n)
        .try_collect()
        .await
        .context("failed to create a PodCheckpoint")?;
    let created_in = start.elapsed();
    let uids: Vec<String> = created
        .iter()
        .filter_map(|pc| pc.metadata.uid.clone())
        .collect();

    let mut finished: BTreeMap<String, (Duration, String, String)> = BTreeMap::new();
    let deadline = Duration::from_secs(args.timeout);
    while finished.len() < n {
        let left = deadline.saturating_sub(start.elapsed());
        let event = tokio::time::timeout(left, watch.try_next())
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "only {} of {n} PodCheckpoints finished within {deadline:?}",
                    finished.len()
                )
            })?
            .context("the watch of PodCheckpoints failed")?
            .context("the watch of PodCheckpoints ended")?;
        let objects = match event {
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) => vec![o],
            _ => vec![],
        };
        for pc in objects {
            let Some(ready) = pc.ready_condition() else {
                continue;
            };
            let terminal = ready.status == "True"
                || (ready.reason != reason::IN_PROGRESS && ready.reason != reason::PENDING);
            let name = pc.metadata.name.clone().unwrap_or_default();
            if terminal && !finished.contains_key(&name) {
                finished.insert(
                    name,
                    (start.elapsed(), ready.reason.clone(), ready.message.clone()),
                );
            }
        }
    }
    let last = finished
        .values()
        .map(|(t, _, _)| *t)
        .max()
        .unwrap_or_default();
    let failed: Vec<String> = finished
        .iter()
        .filter(|(_, (_, r, _))| r != reason::COMPLETED)
        .map(|(name, (_, r, m))| format!("{name}: {r}: {m}"))
        .collect();
    // The agents' last writes are logged when they are answered, before
    // the watch sees them; a moment for the log to be written.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cpu = cpu_seconds(pid)? - cpu_before;
    let hwm = crate::rss::status_kib(pid, "VmHWM")?;
    let requests = log.since(mark)?;
    let agent: Vec<_> = requests
        .iter()
        .filter(|r| r.user == args.agent_user)
        .collect();

    println!(
        "pcload objects={n} pods={} completed={} failed={} created_in_ms={:.0} last_completion_ms={:.0}",
        args.pods,
        n - failed.len(),
        failed.len(),
        created_in.as_secs_f64() * 1000.0,
        last.as_secs_f64() * 1000.0
    );
    println!(
        "pcload agent_requests total={} per_podcheckpoint={:.2} (every agent on the stack, user {})",
        agent.len(),
        agent.len() as f64 / n as f64,
        args.agent_user
    );
    let by = breakdown(agent.iter().copied(), Some(&args.pod_prefix));
    print_breakdown("pcload", "agent", &by, n);
    println!(
        "pcload agent_peak_rss_mib={:.1}{} agent_cpu_seconds={cpu:.2}",
        hwm as f64 / 1024.0,
        if hwm_reset {
            ""
        } else {
            " (VmHWM not reset: since the agent started)"
        }
    );

    // ------------------------------------------------------------ deletion
    let mark = log.mark()?;
    let start = Instant::now();
    let deletes = created
        .iter()
        .filter_map(|pc| pc.metadata.name.clone())
        .map(|name| {
            let api = api.clone();
            async move {
                api.delete(&name, &DeleteParams::default())
                    .await
                    .map(|_| ())
            }
        });
    futures::stream::iter(deletes)
        .buffer_unordered(n)
        .try_collect::<Vec<()>>()
        .await
        .context("failed to delete a PodCheckpoint")?;
    let deleted_in = start.elapsed();
    let limit = Duration::from_secs(args.delete_limit);
    let gone = loop {
        let objects = api.list(&lp).await?.items.len();
        let archives = uids
            .iter()
            .filter(|u| args.checkpoint_dir.join(u).exists())
            .count();
        if objects == 0 && archives == 0 {
            break Some(start.elapsed());
        }
        if start.elapsed() > limit * 3 {
            println!(
                "pcload after_delete objects_left={objects} archive_dirs_left={archives} after_ms={:.0}",
                start.elapsed().as_secs_f64() * 1000.0
            );
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let requests = log.since(mark)?;
    let agent: Vec<_> = requests
        .iter()
        .filter(|r| r.user == args.agent_user)
        .collect();
    println!(
        "pcload delete deletes_answered_ms={:.0} all_gone_ms={} limit_ms={} met={}",
        deleted_in.as_secs_f64() * 1000.0,
        gone.map_or_else(
            || "never".to_owned(),
            |g| format!("{:.0}", g.as_secs_f64() * 1000.0)
        ),
        limit.as_millis(),
        if gone.is_some_and(|g| g <= limit) {
            "yes"
        } else {
            "no"
        }
    );
    println!(
        "pcload agent_requests_on_delete total={} per_podcheckpoint={:.2}",
        agent.len(),
        agent.len() as f64 / n as f64
    );
    let by = breakdown(agent.iter().copied(), Some(&args.pod_prefix));
    print_breakdown("pcload_delete", "agent", &by, n);
    if !failed.is_empty() {
        bail!(
            "{} PodCheckpoints did not complete: {}",
            failed.len(),
            failed.join("; ")
        );
    }
    if gone.is_none() {
        bail!(
            "PodCheckpoints or their archives were still there {:?} after the deletes",
            limit * 3
        );
    }
    Ok(())
}
