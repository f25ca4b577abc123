//! Structured logs to stderr (stdout is for output): `--logging-format`
//! ([`LoggingOptions`]), `RUST_LOG`, the shutdown signal and how a binary
//! reports a failure.

use std::error::Error;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

/// Log format (the servers' `--logging-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// `--logging-format` (`k8s.io/component-base/logs` `LoggingOptions`).
#[derive(Debug, Clone, clap::Args)]
pub struct LoggingOptions {
    /// Log format (logs go to stderr; RUST_LOG sets the level, default info).
    #[arg(long, value_name = "FORMAT", value_enum, default_value = "text")]
    pub logging_format: Format,
}

impl LoggingOptions {
    /// Every problem with the flag (none: clap checks the value).
    pub fn validate(&self) -> Vec<String> {
        Vec::new()
    }

    /// Start logging: info unless `RUST_LOG` says otherwise.
    pub fn init(&self) {
        init("info", self.logging_format);
    }
}

/// An error and its causes on one line, `outer: cause: cause`, each cause
/// once (messages here often quote their cause already).
pub fn error_chain(e: &(dyn Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let msg = s.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cur = s.source();
    }
    out
}

/// What a binary's `main` returns: success, or `error: ` and the chain of
/// causes on one line ([`error_chain`], never a backtrace) on stderr, and
/// exit code 1.
pub fn exit_code<E: AsRef<dyn Error + Send + Sync + 'static>>(result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// Initialise tracing to stderr. `RUST_LOG` wins over `default_level`.
pub fn init(default_level: &str, format: Format) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests) is not an error worth stopping for.
    let _ = match format {
        Format::Text => builder.try_init(),
        Format::Json => builder.json().try_init(),
    };
}

/// Resolves when SIGTERM or SIGINT arrives.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("received SIGTERM, shutting down"),
                _ = int.recv() => tracing::info!("received SIGINT, shutting down"),
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("failed to write /x: {0}")]
    struct Quoting(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("serving certificate")]
    struct Outer(#[source] Quoting);

    #[test]
    fn each_cause_once() {
        let e = Outer(Quoting(std::io::Error::other("denied")));
        assert_eq!(
            error_chain(&e),
            "serving certificate: failed to write /x: denied"
        );
    }
}
