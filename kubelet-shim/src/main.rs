//! `checkpoint-shim`: see the library documentation and README.md.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use kubelet_shim::{Options, Server};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let options = Options::parse();
    apiserver_lib::logging::init("info", options.logging_format);
    let config = options.validate()?;
    tracing::info!(node = %config.node_name, gates = %config.feature_gates.to_spec(), "starting checkpoint-shim");
    let server = Server::new(config)
        .await
        .context("failed to start checkpoint-shim")?;
    server
        .run_until(apiserver_lib::logging::shutdown_signal())
        .await;
    Ok(())
}
