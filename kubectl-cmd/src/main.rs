//! `kubectl-checkpoint`: on PATH, kubectl runs it for `kubectl checkpoint`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use tracing_subscriber::EnvFilter;

const DEFAULT_LOG: &str = "warn,kube_client::client::builder=off";

fn main() -> anyhow::Result<ExitCode> {
    // Logs to stderr (stdout is only the result), `warn` unless RUST_LOG says
    // otherwise; kube's per-request failure log is left out: the error is printed.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(kubectl_cmd::spinner::stderr_is_terminal())
        .with_env_filter(filter)
        .init();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr());
    let result = runtime.block_on(kubectl_cmd::run(std::env::args_os(), &mut out, &mut err));
    out.flush().ok();
    Ok(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = err.write_all(e.render().as_bytes());
            ExitCode::from(e.exit_code())
        }
    })
}
