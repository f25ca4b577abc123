//! `checkpoint-apiserver`: parse, validate, configure, serve until SIGTERM.

use anyhow::Context;
use apiserver_ext::{Config, Options, Server};
use apiserver_lib::logging;
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let opts = Options::parse();
    logging::init("info", opts.logging_format.into());
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
