//! `archive-summary PATH [CONTAINER]`: prints a checkpoint archive's size and files; with
//! CONTAINER, also checks it is a valid checkpoint of that container (exit 1 if not).

use std::path::PathBuf;

use clap::Parser;
use kcr_testkit::archive;

/// Summarise (and optionally check) a container checkpoint archive.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The checkpoint archive (.tar).
    path: PathBuf,
    /// Check that the archive is a checkpoint of this container (CRIU images under
    /// checkpoint/, config.dump and spec.dump naming it).
    container: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let report = match &args.container {
        Some(name) => archive::check_archive(&args.path, name)?,
        None => archive::summarize(&args.path)?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.summary());
        if let Some(name) = &args.container {
            println!("ok: checkpoint of container {name}");
        }
    }
    Ok(())
}
