//! `fake-cri`: the in-process fake CRI runtime as a process on a unix socket, for the
//! e2e suite (behind a second kubelet-shim). Prints the socket path on stdout once it
//! listens; runs until SIGTERM or SIGINT.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use kcr_testkit::fake_cri::{CheckpointMode, FakeCri};

/// A fake CRI RuntimeService with switchable CheckpointContainer behaviour.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Unix socket to serve on (replaced if it exists).
    #[arg(long)]
    socket: PathBuf,
    /// CheckpointContainer behaviour: instant, slow:SECONDS, hang, fail:MESSAGE,
    /// unimplemented, partial.
    #[arg(long, default_value = "instant")]
    mode: CheckpointMode,
    /// A file re-read on every CheckpointContainer; when it holds a mode, that mode wins
    /// (switch modes at run time: `echo hang > FILE`).
    #[arg(long)]
    mode_file: Option<PathBuf>,
    /// JSON or YAML list of containers:
    /// [{"id", "namespace", "pod", "name", "uid"?, "state"?, "created_at"?, "labels"?}].
    /// More can be created at run time with RunPodSandbox/CreateContainer/StartContainer
    /// (e.g. `cri-pod run --socket ...`).
    #[arg(long)]
    pods: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = Args::parse();
    let fake = FakeCri::new();
    fake.set_mode(args.mode);
    if let Some(file) = args.mode_file {
        fake.set_mode_file(file);
    }
    if let Some(pods) = &args.pods {
        for c in FakeCri::load_containers(pods)? {
            fake.add_container(c);
        }
    }
    let server = fake
        .spawn_unix(&args.socket)
        .await
        .context("serving the fake CRI")?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{}", server.path().display())?;
    stdout.flush()?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    drop(server);
    Ok(())
}
