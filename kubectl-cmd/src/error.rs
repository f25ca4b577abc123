//! The command's error and how kubectl would print it.

use std::time::Duration;

use api_types::duration::format_go_duration;
use api_types::validation::ValidationError;

use crate::access::{Access, CREATOR_ROLE, list};
use crate::client::{ClientError, chain, render_client_error};
use crate::config::ConfigError;
use crate::endpoint::EndpointError;
use crate::podcheckpoint::ObjectError;
use crate::podcmd::ContainerError;
use crate::polymorphichelpers::PodForObjectError;
use crate::printer::PrintError;
use crate::resource::{ResourceKind, ResourceTuple};

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
    PodForObject(#[from] PodForObjectError),
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
    Forbidden(Box<Forbidden>),
    /// The declarative path (a `PodCheckpoint`) failed or was interrupted.
    #[error(transparent)]
    Object(Box<ObjectError>),
    #[error(transparent)]
    Print(#[from] PrintError),
    #[error(transparent)]
    Inspect(#[from] crate::inspect::InspectError),
    #[error(transparent)]
    Download(#[from] crate::download::DownloadError),
}

/// The checkpoint call failed.
#[derive(Debug, thiserror::Error)]
#[error("failed to checkpoint {}", what(.container.as_deref(), .namespace, .pod))]
pub struct CheckpointFailure {
    pub namespace: String,
    pub pod: String,
    /// `None`: the server chooses.
    pub container: Option<String>,
    /// How long the client waited.
    pub wait: Duration,
    #[source]
    pub source: ClientError,
}

/// `container app of pod ns/p`, or `pod ns/p` when the server chooses.
pub fn what(container: Option<&str>, namespace: &str, pod: &str) -> String {
    match container {
        Some(c) => format!("container {c} of pod {namespace}/{pod}"),
        None => format!("pod {namespace}/{pod}"),
    }
}

/// A request the server forbade, and the rights the user lacks.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct Forbidden {
    /// The 403.
    pub source: ClientError,
    /// It answered the checkpoint POST, not a read to find the pod.
    pub checkpointing: bool,
    pub namespace: String,
    pub resource: ResourceTuple,
    /// The rights the user lacks (SelfSubjectAccessReviews); `None` when they
    /// could not be asked.
    pub missing: Option<Vec<Access>>,
    /// Every right the command needs here.
    pub needed: Vec<Access>,
    /// A last line (what was done before the server forbade the rest).
    pub note: Option<String>,
}

impl Forbidden {
    /// The server's message, then which rights are missing and who can
    /// grant them, then the note.
    fn render(&self) -> String {
        match &self.note {
            Some(note) => format!("{}\n{note}", self.render_rights()),
            None => self.render_rights(),
        }
    }

    fn render_rights(&self) -> String {
        let first = if self.checkpointing {
            render_checkpoint_error(&self.source)
        } else {
            render_client_error(&self.source)
        };
        let (ns, grant) = (
            &self.namespace,
            format!("ask a cluster admin to bind the ClusterRole {CREATOR_ROLE} to you"),
        );
        let second = match &self.missing {
            // Something else than these rights forbade it: the server's message says what.
            Some(missing) if missing.is_empty() => return first,
            Some(missing)
                if !self.checkpointing
                    && self.resource.kind != ResourceKind::Pod
                    && !missing.iter().any(Access::is_checkpoint) =>
            {
                format!(
                    "You lack {} in namespace {ns}, which kubectl checkpoint needs to find the pod of {}: name the pod instead, or {grant}.",
                    list(missing),
                    self.resource
                )
            }
            Some(missing) => format!("You lack {} in namespace {ns}: {grant}.", list(missing)),
            None => format!(
                "kubectl checkpoint {} needs {} in namespace {ns}: if you lack them, {grant}.",
                self.resource,
                list(&self.needed)
            ),
        };
        format!("{first}\n{second}")
    }
}

/// A failed checkpoint POST: the server's message as the error (it is about
/// the checkpoint, not about reading an object), anything else as kubectl words it.
fn render_checkpoint_error(e: &ClientError) -> String {
    match e {
        ClientError::Server(s) => format!("error: {}", s.message),
        other => render_client_error(other),
    }
}

impl Error {
    /// kubectl exits 1 on every error; an interrupted wait exits 130, as a
    /// shell reports SIGINT.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Object(e) => e.exit_code(),
            _ => 1,
        }
    }

    /// The text for stderr, ending in a newline.
    pub fn render(&self) -> String {
        let body = match self {
            Error::Usage(msg) => format!("error: {msg}\n{USAGE_HINT}"),
            Error::PodForObject(PodForObjectError::Lookup { source, .. }) => {
                render_client_error(source)
            }
            Error::Forbidden(f) => f.render(),
            Error::Object(e) => e.render(),
            Error::Download(crate::download::DownloadError::Read(e)) => render_client_error(e),
            Error::Endpoint(EndpointError::Discovery(source)) => render_client_error(source),
            Error::Checkpoint(f) => match &f.source {
                ClientError::TimedOut(_) => format!(
                    "error: no answer within {} while checkpointing {}; the checkpoint may still complete on the node",
                    format_go_duration(f.wait),
                    what(f.container.as_deref(), &f.namespace, &f.pod)
                ),
                other => render_checkpoint_error(other),
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
                container: Some("app".into()),
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
