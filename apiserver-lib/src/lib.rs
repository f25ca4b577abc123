//! The serving machinery checkpoint-apiserver and checkpoint-shim share: the
//! few parts of `k8s.io/apiserver` (and the kubelet's server) they need.
//!
//! * [`options`]: the command-line option groups both servers flatten, each
//!   with its validation and its step into the config;
//! * [`kubeconfig`]: the one kubeconfig loader and the API clients;
//! * [`tls`]: rustls server configs from `--tls-cert-file`/`--tls-private-key-file`
//!   or a generated self-signed pair (`--cert-dir`), client certificates
//!   requested but judged later, by [`authentication`], so a bad certificate is a 401
//!   `Status` rather than a TLS alert.
//! * [`serve`]: the accept loop (TLS, HTTP/1.1 and HTTP/2), the peer's
//!   certificate chain put on each request, graceful shutdown.
//! * [`authentication`]: request-header (front proxy), x509 client certificate and
//!   bearer token authentication, in kube-apiserver's order.
//! * [`authorization`]: attributes, decisions, SubjectAccessReview delegation and a
//!   static allow-list named for testing.
//! * [`filters`]: `WithAuthentication` and `WithAudit` in front of the handlers.
//! * [`audit`]: the audit line of every checkpoint request.
//! * [`health`]: named checks behind `/healthz`, `/livez`, `/readyz`.
//! * [`status`]: a `metav1.Status` as an HTTP response.
//! * [`logging`]: `--logging-format`, the shutdown signal, exit codes.
//! * [`command`]: what both binaries' `main` runs, once.

pub mod audit;
pub mod authentication;
pub mod authorization;
pub mod command;
pub mod filters;
pub mod health;
pub mod kubeconfig;
pub mod logging;
pub mod options;
pub mod pki;
pub mod serve;
pub mod status;
pub mod tls;

pub use authentication::UserInfo;
pub use status::StatusError;
