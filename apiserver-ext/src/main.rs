//! `checkpoint-apiserver`: parse, validate, configure, serve until SIGTERM.

use std::process::ExitCode;

use anyhow::Context;
use apiserver_ext::{Config, Options, Server};
use apiserver_lib::logging;
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}`: the chain of causes on one line, never a backtrace.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let opts = Options::parse();
    logging::init("info", opts.logging_format);
    opts.validated()?;
    let config = Config::from_options(&opts)
        .await
        .context("failed to configure checkpoint-apiserver")?;
    Server::new(config)
        .run_until(logging::shutdown_signal())
        .await
        .context("checkpoint-apiserver failed")?;
    Ok(())
}
