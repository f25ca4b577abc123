//! `kubectl checkpoint`: the kubectl plugin of KEP-5901 "Kubectl Checkpoint".
//!
//! Modelled on upstream `k8s.io/kubectl/pkg/cmd/exec`: [`cmd`] is the
//! command definition (`NewCmdCheckpoint`), [`options::CheckpointOptions`]
//! has `complete()` / `validate()` / `run()`, the remote calls sit behind the
//! [`client::PodClient`], [`client::Checkpointer`],
//! [`client::PodCheckpoints`] and [`client::AccessReviewer`] traits, and the
//! [`printer`]s take plain data and an `impl Write`. [`endpoint`] chooses
//! the API from discovery: a `PodCheckpoint` waited on ([`podcheckpoint`])
//! when the cluster serves them, else the synchronous `pods/checkpoint`.
//! The argument is read as cli-runtime's resource builder reads it
//! ([`resource`]), the pod found as
//! [`polymorphichelpers`] finds it (ordered by [`podutils`]), the container
//! chosen as [`podcmd`] chooses it; [`access`] names the rights a user lacks.
//!
//! `kubectl checkpoint inspect FILE` ([`inspect`]) reads a local archive;
//! `kubectl checkpoint download NAME` ([`download`]) fetches a PodCheckpoint's
//! archive from its node, in ranges, resumed and verified.
//!
//! The binaries are thin: `kubectl-checkpoint` calls [`run`],
//! `kubectl_complete-checkpoint` calls [`run_completion`].

pub mod access;
pub mod client;
pub mod cmd;
pub mod completion;
pub mod config;
pub mod diskcache;
pub mod download;
pub mod endpoint;
pub mod error;
pub mod inspect;
pub mod options;
pub mod podcheckpoint;
pub mod podcmd;
pub mod podutils;
pub mod polymorphichelpers;
pub mod printer;
pub mod resource;
pub mod spinner;

use std::ffi::OsString;
use std::io::Write;
use std::time::Duration;

pub use error::{Error, Result};

use crate::client::KubeClient;
use crate::cmd::Parsed;
use crate::options::{CheckpointOptions, resource_name_arg};

/// Run `kubectl checkpoint` with `argv` (program name first): the result to
/// `out`, notices to `notices`. The caller prints the error
/// ([`Error::render`]) and exits with [`Error::exit_code`].
pub async fn run<I, T>(argv: I, out: &mut impl Write, notices: &mut impl Write) -> Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    if let Some(args) = inspect::subcommand_args(&argv) {
        return Ok(inspect::run(args, out)?);
    }
    if let Some(args) = download::subcommand_args(&argv) {
        return Ok(download::run(args, out, notices).await?);
    }
    let args = match cmd::parse(argv)? {
        Parsed::Help => return write_all(out, &inspect::with_subcommands(&cmd::help_text())),
        Parsed::Version => return write_all(out, &cmd::version_text()),
        Parsed::Run(args) => args,
    };
    resource_name_arg(&args)?;
    let loaded = args.config.load().await?;
    let options = CheckpointOptions::complete(&args, &loaded.namespace)?;
    options.validate()?;
    let cluster_url = loaded.config.cluster_url.to_string();
    let mut client =
        KubeClient::new(loaded.config, options.request_timeout).map_err(Error::Client)?;
    if let Some(dir) = diskcache::default_cache_dir() {
        client = client.with_discovery_cache(&dir, &cluster_url);
    }
    options.run(&client, out, notices, interrupted).await
}

/// SIGINT from now on: registered when called (just before a PodCheckpoint
/// is created), so that until then Ctrl-C ends the command as usual; the
/// future completes on the first SIGINT after.
fn interrupted() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let registered = signal(SignalKind::interrupt());
    async move {
        match registered {
            Ok(mut sigint) => {
                sigint.recv().await;
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot catch SIGINT");
                std::future::pending::<()>().await;
            }
        }
    }
}

fn write_all(out: &mut impl Write, text: &str) -> Result<()> {
    out.write_all(text.as_bytes())
        .map_err(|e| Error::Print(e.into()))
}

/// How long completion may talk to the cluster when `--request-timeout` is unset.
pub const COMPLETION_TIMEOUT: Duration = Duration::from_secs(5);

/// Answer kubectl's completion request for the plugin: `args` are the plugin's
/// arguments, the last one the word under the cursor. Never fails: on any
/// error nothing is suggested.
pub async fn run_completion(args: &[String], out: &mut impl Write) -> std::io::Result<()> {
    let line = completion::parse_line(args);
    if let Some(c) = completion::complete_offline(&line) {
        return c.write(out);
    }
    let empty = completion::Completion {
        candidates: Vec::new(),
        directive: completion::DIRECTIVE_NO_FILE_COMP,
    };
    let Ok(loaded) = line.flags.load().await else {
        return empty.write(out);
    };
    let timeout = line
        .flags
        .request_timeout()
        .ok()
        .flatten()
        .unwrap_or(COMPLETION_TIMEOUT);
    let Ok(client) = KubeClient::new(loaded.config, Some(timeout)) else {
        return empty.write(out);
    };
    completion::complete_online(&line, &loaded.namespace, &client)
        .await
        .write(out)
}
