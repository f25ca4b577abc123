//! The command's error and how kubectl would print it.

use std::time::Duration;

use api_types::validation::ValidationError;

use crate::client::ClientError;
use crate::config::ConfigError;
use crate::container::ContainerError;
use crate::duration::format_go_duration;
use crate::endpoint::EndpointError;
use crate::printer::PrintError;
use crate::target::TargetError;

/// The hint kubectl adds to usage errors.
pub const USAGE_HINT: &str = "See 'kubectl checkpoint -h' for help and examples";

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything `kubectl checkpoint` can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad command line: printed with [`USAGE_HINT`].
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error("cannot checkpoint a container in a non-running pod; current phase is {0}")]
    NotRunning(String),
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error("failed to create the API client")]
    Client(#[source] ClientError),
    #[error(transparent)]
    Checkpoint(Box<CheckpointFailure>),
    #[error(transparent)]
    Print(#[from] PrintError),
    #[error(transparent)]
    Inspect(#[from] crate::inspect::InspectError),
}

/// The checkpoint call failed.
#[derive(Debug, thiserror::Error)]
#[error("failed to checkpoint container {container} of pod {namespace}/{pod}")]
pub struct CheckpointFailure {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    /// How long the client waited.
    pub wait: Duration,
    #[source]
    pub source: ClientError,
}

/// kubectl's rendering of a failed API call (`cmdutil.CheckErr`): server
/// errors as `Error from server (Reason): message`, connection failures in
/// kubectl's words.
pub fn render_client_error(e: &ClientError) -> String {
    match e {
        ClientError::Server(s) if s.code == 401 => {
            format!("error: You must be logged in to the server ({})", s.message)
        }
        ClientError::Server(s) if s.reason.is_empty() => {
            format!("Error from server: {}", s.message)
        }
        ClientError::Server(s) => format!("Error from server ({}): {}", s.reason, s.message),
        ClientError::ConnectionRefused { .. } | ClientError::Unreachable { .. } => e.to_string(),
        other => format!("error: {}", chain(other)),
    }
}

/// An error and its causes, `: `-joined.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

impl Error {
    /// kubectl exits 1 on every error.
    pub fn exit_code(&self) -> u8 {
        1
    }

    /// The text for stderr, ending in a newline.
    pub fn render(&self) -> String {
        let body = match self {
            Error::Usage(msg) => format!("error: {msg}\n{USAGE_HINT}"),
            Error::Target(TargetError::Lookup { source, .. }) => render_client_error(source),
            Error::Endpoint(EndpointError::Discovery(source)) => render_client_error(source),
            Error::Checkpoint(f) => match &f.source {
                ClientError::Server(s) => format!("error: {}", s.message),
                ClientError::TimedOut(_) => format!(
                    "error: no answer within {} while checkpointing container {} of pod {}/{}; the checkpoint may still complete on the node",
                    format_go_duration(f.wait),
                    f.container,
                    f.namespace,
                    f.pod
                ),
                other => render_client_error(other),
            },
            other => format!("error: {}", chain(other)),
        };
        format!("{body}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ServerError;

    fn server(code: u16, reason: &str, message: &str) -> ClientError {
        ClientError::Server(ServerError {
            code,
            reason: reason.into(),
            message: message.into(),
        })
    }

    #[test]
    fn kubectl_style_rendering() {
        assert_eq!(
            Error::Usage("unknown flag: --foo".into()).render(),
            "error: unknown flag: --foo\nSee 'kubectl checkpoint -h' for help and examples\n"
        );
        assert_eq!(
            render_client_error(&server(404, "NotFound", "pods \"x\" not found")),
            "Error from server (NotFound): pods \"x\" not found"
        );
        assert_eq!(
            render_client_error(&server(401, "Unauthorized", "Unauthorized")),
            "error: You must be logged in to the server (Unauthorized)"
        );
        assert_eq!(
            render_client_error(&server(418, "", "the server responded with HTTP 418")),
            "Error from server: the server responded with HTTP 418"
        );
        assert_eq!(
            render_client_error(&ClientError::ConnectionRefused {
                host: "127.0.0.1:1".into()
            }),
            "The connection to the server 127.0.0.1:1 was refused - did you specify the right host or port?"
        );
        let cp = |source| {
            Error::Checkpoint(Box::new(CheckpointFailure {
                namespace: "default".into(),
                pod: "counter".into(),
                container: "app".into(),
                wait: Duration::from_secs(40),
                source,
            }))
        };
        assert_eq!(
            cp(server(409, "Conflict", "container app is not running")).render(),
            "error: container app is not running\n"
        );
        assert_eq!(
            cp(ClientError::TimedOut(Duration::from_secs(40))).render(),
            "error: no answer within 40s while checkpointing container app of pod default/counter; the checkpoint may still complete on the node\n"
        );
        assert_eq!(
            Error::NotRunning("Pending".into()).render(),
            "error: cannot checkpoint a container in a non-running pod; current phase is Pending\n"
        );
    }
}
