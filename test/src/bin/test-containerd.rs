//! `test-containerd`: a private containerd for a long-running local stack.
//! Starts it in `--dir` (kept afterwards), prints the socket path on stdout, runs until
//! SIGTERM or SIGINT, then removes its pods and stops it and its shims.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use kcr_testkit::containerd::{Containerd, Options};

/// Run a private containerd 2.x (CRI, CRIU on PATH, test images imported) until SIGTERM.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Directory for config, root, state, socket and log; kept afterwards. Default: a
    /// temporary directory, removed afterwards.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Directory holding app.tar and pause.tar [default: $KCR_TEST_IMAGES or .cache/images]
    #[arg(long)]
    images: Option<PathBuf>,
    /// Do not import the test images.
    #[arg(long)]
    no_import: bool,
    /// containerd's --log-level.
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Seconds to wait for containerd to answer CRI Version.
    #[arg(long, default_value_t = 30)]
    startup_timeout: u64,
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
    init_tracing();
    let args = Args::parse();
    let opts = Options {
        dir: args.dir,
        images_dir: args.images,
        import_images: !args.no_import,
        startup_timeout: Duration::from_secs(args.startup_timeout),
        log_level: args.log_level,
    };
    let mut containerd = Containerd::start(opts)
        .await
        .context("starting containerd")?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{}", containerd.socket().display())?;
    stdout.flush()?;
    tracing::info!(dir = %containerd.dir().display(), pid = ?containerd.pid(), "containerd ready");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let crashed = loop {
        tokio::select! {
            _ = term.recv() => break None,
            _ = tokio::signal::ctrl_c() => break None,
            _ = tick.tick() => {
                if let Some(status) = containerd.exited() {
                    break Some(status);
                }
            }
        }
    };
    if let Some(status) = crashed {
        let tail = containerd.log_tail(20);
        containerd.stop().ok();
        anyhow::bail!("containerd exited on its own ({status}); last log lines:\n{tail}");
    }
    tokio::task::spawn_blocking(move || containerd.stop())
        .await?
        .context("stopping containerd")?;
    Ok(())
}

fn init_tracing() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
}
