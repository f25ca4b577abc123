//! The serving certificate through the Kubernetes CSR API
//! (`--rotate-server-certificates`), like the kubelet's
//! (`pkg/kubelet/certificate/kubelet.go`, `k8s.io/client-go/util/certificate`):
//! a key generated in memory (it never touches the disk), a
//! `certificates.k8s.io/v1` CertificateSigningRequest for signer
//! `checkpoint.kcr.dev/shim-serving` with the kubelet's serving usages,
//! common name the node name, and the node's name and addresses as subject
//! alternative names; the certificate in `status.certificate` is served from
//! the next handshake on, and renewed at 80 % of its lifetime.
//!
//! checkpoint-apiserver (`--shim-signer=true`) approves and signs the
//! request when it comes from this shim's service account in a pod on that
//! node. Until a certificate is issued the server answers with its
//! self-signed one (callers that verify refuse it: `UnknownIssuer`), and
//! `/readyz` fails its `serving-certificate` check.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use api_types::SHIM_SERVING_SIGNER_NAME;
use api_types::k8s_openapi::ByteString;
use api_types::k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use api_types::k8s_openapi::api::core::v1::Node;
use api_types::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use apiserver_lib::pki;
use apiserver_lib::tls::{self, ReloadableCert, ServingCert};
use kube::Api;
use kube::api::PostParams;

/// The usages asked for: a kubelet serving certificate's.
pub const USAGES: [&str; 3] = ["digital signature", "key encipherment", "server auth"];
/// Default `--serving-certificate-request-timeout`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// Renew at this fraction of the certificate's lifetime.
pub const RENEW_AT: f64 = 0.8;
/// Wait after a failed request, doubled after each further failure up to
/// [`MAX_RETRY`] (a denied shim does not flood the API with requests).
const RETRY: Duration = Duration::from_secs(10);
/// The longest wait between failed requests.
const MAX_RETRY: Duration = Duration::from_secs(300);

/// The wait after `failures` failed requests in a row (at least one).
pub fn retry_after(failures: u32) -> Duration {
    RETRY
        .saturating_mul(1u32 << failures.saturating_sub(1).min(10))
        .min(MAX_RETRY)
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to generate a key and a certificate request: {0}")]
    Generate(#[source] pki::Error),
    #[error(
        "failed to create a CertificateSigningRequest for signer {SHIM_SERVING_SIGNER_NAME}: {0} (the shim's service account needs create, get, list and watch on certificatesigningrequests)"
    )]
    Create(#[source] kube::Error),
    #[error("failed to watch CertificateSigningRequest {name}: {reason}")]
    Watch { name: String, reason: String },
    #[error(
        "CertificateSigningRequest {name} (signer {SHIM_SERVING_SIGNER_NAME}) was not signed within {timeout:?}: checkpoint-apiserver must be running with --shim-signer=true to approve and sign it (kubectl get csr {name})"
    )]
    NotSigned { name: String, timeout: Duration },
    #[error("CertificateSigningRequest {name} was denied: {reason}: {message}")]
    Denied {
        name: String,
        reason: String,
        message: String,
    },
    #[error("CertificateSigningRequest {name} failed: {reason}: {message}")]
    Failed {
        name: String,
        reason: String,
        message: String,
    },
    #[error("the certificate issued for CertificateSigningRequest {name} is unusable: {reason}")]
    BadCertificate { name: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A certificate issued for this node, with its validity.
#[derive(Debug)]
pub struct Issued {
    pub csr: String,
    pub serving: ServingCert,
    pub not_before: time::OffsetDateTime,
    pub not_after: time::OffsetDateTime,
}

impl Issued {
    /// When to ask for the next one: at [`RENEW_AT`] of the lifetime.
    pub fn renew_in(&self) -> Duration {
        let life = (self.not_after - self.not_before).as_seconds_f64().max(0.0);
        let at = self.not_before + time::Duration::seconds_f64(life * RENEW_AT);
        let left = (at - time::OffsetDateTime::now_utc()).as_seconds_f64();
        Duration::from_secs_f64(left.max(1.0))
    }
}

/// Requests, serves and renews the node's serving certificate.
#[derive(Clone)]
pub struct CertificateManager {
    client: kube::Client,
    node_name: String,
    /// `--node-ip`; else the node's addresses are read from its Node.
    node_ips: Vec<std::net::IpAddr>,
    serving: Arc<ReloadableCert>,
    timeout: Duration,
    issued: Arc<AtomicBool>,
}

impl std::fmt::Debug for CertificateManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateManager")
            .field("node_name", &self.node_name)
            .field("node_ips", &self.node_ips)
            .field("timeout", &self.timeout)
            .field("issued", &self.issued.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl CertificateManager {
    pub fn new(
        client: kube::Client,
        node_name: String,
        node_ips: Vec<std::net::IpAddr>,
        serving: Arc<ReloadableCert>,
        timeout: Duration,
    ) -> Self {
        Self {
            client,
            node_name,
            node_ips,
            serving,
            timeout,
            issued: Arc::default(),
        }
    }

    /// Whether a certificate of the signer is being served.
    pub fn issued(&self) -> bool {
        self.issued.load(Ordering::SeqCst)
    }

    /// The certificate being served.
    pub fn serving(&self) -> &Arc<ReloadableCert> {
        &self.serving
    }

    /// The names asked for: the node name, then `--node-ip`, else the
    /// node's addresses (InternalIP, ExternalIP, Hostname, *DNS) when the
    /// Node can be read.
    pub async fn hosts(&self) -> Vec<String> {
        let mut hosts = vec![self.node_name.clone()];
        if !self.node_ips.is_empty() {
            hosts.extend(self.node_ips.iter().map(|ip| ip.to_string()));
            return hosts;
        }
        match Api::<Node>::all(self.client.clone())
            .get_opt(&self.node_name)
            .await
        {
            Ok(Some(node)) => {
                for a in node.status.and_then(|s| s.addresses).into_iter().flatten() {
                    if !hosts.contains(&a.address) {
                        hosts.push(a.address);
                    }
                }
            }
            Ok(None) => {
                tracing::warn!(node = %self.node_name, "node not found: the serving certificate names the node only (give --node-ip)")
            }
            Err(e) => {
                tracing::warn!(node = %self.node_name, error = %e, "cannot read the node's addresses: the serving certificate names the node only (give --node-ip)")
            }
        }
        hosts
    }

    /// One certificate: a new key, a CertificateSigningRequest, and the wait
    /// (at most the timeout) for the signer's answer.
    pub async fn request(&self) -> Result<Issued> {
        let hosts = self.hosts().await;
        let (csr_pem, key_pem) =
            pki::serving_request(&self.node_name, &hosts).map_err(Error::Generate)?;
        let api: Api<CertificateSigningRequest> = Api::all(self.client.clone());
        let object = CertificateSigningRequest {
            metadata: ObjectMeta {
                generate_name: Some(format!("checkpoint-shim-{}-", self.node_name)),
                labels: Some(
                    [(
                        "app.kubernetes.io/name".to_owned(),
                        "checkpoint-shim".to_owned(),
                    )]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            spec: CertificateSigningRequestSpec {
                signer_name: SHIM_SERVING_SIGNER_NAME.to_owned(),
                request: ByteString(csr_pem.into_bytes()),
                usages: Some(USAGES.iter().map(|u| (*u).to_owned()).collect()),
                ..CertificateSigningRequestSpec::default()
            },
            status: None,
        };
        let created = api
            .create(&PostParams::default(), &object)
            .await
            .map_err(Error::Create)?;
        let name = created.metadata.name.clone().unwrap_or_default();
        tracing::info!(csr = name, signer = SHIM_SERVING_SIGNER_NAME, hosts = ?hosts, "requested a serving certificate");
        let answered = tokio::time::timeout(
            self.timeout,
            kube::runtime::wait::await_condition(
                api,
                &name,
                |c: Option<&CertificateSigningRequest>| c.is_some_and(|c| answer_of(c).is_some()),
            ),
        )
        .await
        .map_err(|_| Error::NotSigned {
            name: name.clone(),
            timeout: self.timeout,
        })?
        .map_err(|e| Error::Watch {
            name: name.clone(),
            reason: e.to_string(),
        })?;
        let Some(csr) = answered else {
            return Err(Error::Watch {
                name,
                reason: "it was deleted".into(),
            });
        };
        match answer_of(&csr) {
            Some(Answer::Certificate(pem)) => issued(name, &pem, &key_pem),
            Some(Answer::Denied(reason, message)) => Err(Error::Denied {
                name,
                reason,
                message,
            }),
            Some(Answer::Failed(reason, message)) => Err(Error::Failed {
                name,
                reason,
                message,
            }),
            None => Err(Error::Watch {
                name,
                reason: "no answer".into(),
            }),
        }
    }

    /// Requests certificates until `shutdown`: one now (after a failure
    /// again in 10 s, doubling up to 5 min), each served as soon as issued
    /// and renewed at 80 % of its lifetime.
    pub async fn run_until(self, shutdown: impl std::future::Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        let mut failures = 0u32;
        loop {
            let wait = match self.request().await {
                Ok(issued) => match self.serving.replace(ServingCert {
                    chain: issued.serving.chain.clone(),
                    key: issued.serving.key.clone_key(),
                }) {
                    Ok(()) => {
                        failures = 0;
                        self.issued.store(true, Ordering::SeqCst);
                        tracing::info!(
                            csr = issued.csr,
                            not_after = %issued.not_after,
                            "serving the certificate issued by {SHIM_SERVING_SIGNER_NAME}"
                        );
                        issued.renew_in()
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::error!(csr = issued.csr, error = %e, "the issued certificate cannot be served");
                        retry_after(failures)
                    }
                },
                Err(e) => {
                    failures += 1;
                    let wait = retry_after(failures);
                    tracing::error!(error = %e, "no serving certificate from {SHIM_SERVING_SIGNER_NAME}; asking again in {wait:?}");
                    wait
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = &mut shutdown => return,
            }
        }
    }
}

enum Answer {
    Certificate(String),
    Denied(String, String),
    Failed(String, String),
}

fn answer_of(csr: &CertificateSigningRequest) -> Option<Answer> {
    let status = csr.status.as_ref()?;
    for c in status.conditions.iter().flatten() {
        if c.status != "True" {
            continue;
        }
        let rm = || {
            (
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        };
        match c.type_.as_str() {
            "Denied" => {
                let (r, m) = rm();
                return Some(Answer::Denied(r, m));
            }
            "Failed" => {
                let (r, m) = rm();
                return Some(Answer::Failed(r, m));
            }
            _ => {}
        }
    }
    let cert = status.certificate.as_ref()?;
    (!cert.0.is_empty()).then(|| Answer::Certificate(String::from_utf8_lossy(&cert.0).into_owned()))
}

fn issued(name: String, cert_pem: &str, key_pem: &str) -> Result<Issued> {
    let bad = |reason: String| Error::BadCertificate {
        name: name.clone(),
        reason,
    };
    let origin = std::path::Path::new("status.certificate");
    let chain = tls::parse_certs(cert_pem.as_bytes(), origin).map_err(|e| bad(e.to_string()))?;
    let key = tls::parse_key(key_pem.as_bytes(), std::path::Path::new("key"))
        .map_err(|e| bad(e.to_string()))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(&chain[0])
        .map_err(|e| bad(format!("not an X.509 certificate: {e}")))?;
    let validity = parsed.validity();
    let not_before = validity.not_before.to_datetime();
    let not_after = validity.not_after.to_datetime();
    Ok(Issued {
        csr: name,
        serving: ServingCert { chain, key },
        not_before,
        not_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_requests_back_off_to_five_minutes() {
        let waits: Vec<u64> = (1..=7).map(|n| retry_after(n).as_secs()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(retry_after(u32::MAX), MAX_RETRY);
    }
}
