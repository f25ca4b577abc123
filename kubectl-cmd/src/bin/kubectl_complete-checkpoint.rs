//! `kubectl_complete-checkpoint`: kubectl ≥ 1.26 runs it from PATH to complete
//! `kubectl checkpoint ...`, passing the plugin's arguments (the last one is
//! the word under the cursor). Prints candidates and a cobra directive.

use std::process::ExitCode;

use anyhow::Context;

fn main() -> anyhow::Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let mut out = std::io::stdout().lock();
    runtime
        .block_on(kubectl_cmd::run_completion(&args, &mut out))
        .context("failed to write completions")?;
    Ok(ExitCode::SUCCESS)
}
