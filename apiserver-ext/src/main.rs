//! `checkpoint-apiserver`: options → validate → config → serve until SIGTERM.

use std::process::ExitCode;

use anyhow::Context;
use apiserver_ext::{Config, Options, Server};
use apiserver_lib::logging;
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    logging::exit_code(run().await)
}

async fn run() -> anyhow::Result<()> {
    let opts = Options::parse();
    opts.logging.init();
    opts.validate()?;
    let config = Config::from_options(&opts)
        .await
        .context("failed to configure checkpoint-apiserver")?;
    Server::new(config)
        .run_until(logging::shutdown_signal())
        .await
        .context("checkpoint-apiserver failed")
}
