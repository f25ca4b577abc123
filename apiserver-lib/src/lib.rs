//! The serving machinery checkpoint-apiserver and checkpoint-shim share: the
//! few parts of `k8s.io/apiserver` (and the kubelet's server) they need.
//!
//! * [`tls`]: rustls server configs from `--tls-cert-file`/`--tls-private-key-file`
//!   or a generated self-signed pair (`--cert-dir`), client certificates
//!   requested but judged later, by [`authn`], so a bad certificate is a 401
//!   `Status` rather than a TLS alert.
//! * [`serve`]: the accept loop (TLS, HTTP/1.1 and HTTP/2), the peer's
//!   certificate chain put on each request, graceful shutdown.
//! * [`authn`]: request-header (front proxy), x509 client certificate and
//!   bearer token authentication, in kube-apiserver's order.
//! * [`authz`]: attributes, decisions, SubjectAccessReview delegation and a
//!   static allow-list named for testing.
//! * [`health`]: named checks behind `/healthz`, `/livez`, `/readyz`.
//! * [`status`]: a `metav1.Status` as an HTTP response.

pub mod authn;
pub mod authz;
pub mod health;
pub mod logging;
pub mod pki;
pub mod serve;
pub mod status;
pub mod tls;

pub use authn::UserInfo;
pub use status::StatusError;
