//! What both binaries' `main` runs, once (metrics-server's
//! `NewCommandStartMetricsServer` run function): parse the flags, start
//! logging, validate, configure, serve until SIGTERM or SIGINT. A failure is
//! `error: ` and its causes on stderr, exit code 1.
//!
//! ```no_run
//! # use std::future::Future;
//! # use apiserver_lib::command::{ServerCommand, run};
//! # #[derive(Debug, clap::Parser)] struct Options { #[command(flatten)] logging: apiserver_lib::logging::LoggingOptions }
//! # impl ServerCommand for Options {
//! #     const CONFIGURE_FAILED: &'static str = "failed to configure x";
//! #     const SERVE_FAILED: &'static str = "x failed";
//! #     type Config = ();
//! #     type Error = std::io::Error;
//! #     fn logging(&self) -> &apiserver_lib::logging::LoggingOptions { &self.logging }
//! #     fn validate(&self) -> Result<(), apiserver_lib::options::InvalidOptions> { Ok(()) }
//! #     async fn configure(&self) -> Result<(), std::io::Error> { Ok(()) }
//! #     async fn serve(_: (), shutdown: impl Future<Output = ()> + Send) -> Result<(), apiserver_lib::serve::BindError> { shutdown.await; Ok(()) }
//! # }
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     run::<Options>().await
//! }
//! ```

use std::error::Error;
use std::future::Future;
use std::process::ExitCode;

use crate::logging::{LoggingOptions, exit_code, shutdown_signal};
use crate::options::InvalidOptions;
use crate::serve::BindError;

/// A server's command line and the steps from it to a running server.
pub trait ServerCommand: clap::Parser {
    /// What the error says first when configuring fails.
    const CONFIGURE_FAILED: &'static str;
    /// What the error says first when serving fails.
    const SERVE_FAILED: &'static str;
    type Config;
    type Error: Error + Send + Sync + 'static;
    fn logging(&self) -> &LoggingOptions;
    /// Every problem with the flags, at once.
    fn validate(&self) -> Result<(), InvalidOptions>;
    /// The config of valid flags.
    fn configure(&self) -> impl Future<Output = Result<Self::Config, Self::Error>>;
    /// Serve until `shutdown` resolves, then drain.
    fn serve(
        config: Self::Config,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = Result<(), BindError>>;
}

/// An error after what failed.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
struct Failed {
    what: &'static str,
    #[source]
    source: Box<dyn Error + Send + Sync>,
}

fn failed(what: &'static str) -> impl FnOnce(Box<dyn Error + Send + Sync>) -> Failed {
    move |source| Failed { what, source }
}

/// Run `C` from the process's arguments; the exit code.
pub async fn run<C: ServerCommand>() -> ExitCode {
    let opts = C::parse();
    opts.logging().init();
    let result: Result<(), Box<dyn Error + Send + Sync>> = async {
        opts.validate()?;
        let config = opts
            .configure()
            .await
            .map_err(|e| failed(C::CONFIGURE_FAILED)(e.into()))?;
        C::serve(config, shutdown_signal())
            .await
            .map_err(|e| failed(C::SERVE_FAILED)(e.into()))?;
        Ok(())
    }
    .await;
    exit_code(result)
}

/// Implements [`ServerCommand`] for a server crate's `Options` whose
/// pipeline has the usual names: `Config::from_options(&Options)` returning
/// `Result<Config, ConfigError>`, `Server::new(Config)`,
/// `Server::run_until(shutdown)`, the flags' `logging` group and
/// `Options::validate`.
#[macro_export]
macro_rules! server_command {
    ($options:ty => $config:ty, $error:ty => $server:ty; $configure_failed:literal, $serve_failed:literal) => {
        impl $crate::command::ServerCommand for $options {
            const CONFIGURE_FAILED: &'static str = $configure_failed;
            const SERVE_FAILED: &'static str = $serve_failed;
            type Config = $config;
            type Error = $error;

            fn logging(&self) -> &$crate::logging::LoggingOptions {
                &self.logging
            }

            fn validate(&self) -> Result<(), $crate::options::InvalidOptions> {
                <$options>::validate(self)
            }

            async fn configure(&self) -> Result<$config, $error> {
                <$config>::from_options(self).await
            }

            async fn serve(
                config: $config,
                shutdown: impl ::std::future::Future<Output = ()> + Send + 'static,
            ) -> Result<(), $crate::serve::BindError> {
                <$server>::new(config).run_until(shutdown).await
            }
        }
    };
}
