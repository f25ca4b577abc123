//! The signer `checkpoint.kcr.dev/shim-serving`: checkpoint-shim's serving
//! certificates, through the Kubernetes CSR API (`certificates.k8s.io/v1`),
//! the way kube-controller-manager's `csrapproving` and `csrsigning`
//! controllers handle `kubernetes.io/kubelet-serving`
//! (`pkg/controller/certificates/{approver,signer}`), with the approval
//! policy of a node agent:
//!
//! * the request was made by the shim's ServiceAccount
//!   (`--shim-service-account`), with a bound token: `spec.extra` names the
//!   pod (`authentication.kubernetes.io/pod-name`, `/pod-uid`), and that pod
//!   exists, has that UID, runs as that ServiceAccount and is bound to node N;
//! * every name it asks for is N or one of N's `status.addresses`, its
//!   common name is N, it asks for no other kind of name;
//! * its usages are server auth plus digital signature / key encipherment.
//!
//! Else it is denied, with a reason and a message that says what was wrong.
//! An approved request is signed by the CA of the Secret `--shim-ca-secret`
//! (created at start when absent; the key never leaves it and this process),
//! for at most `--shim-certificate-duration`, with the usages above only.
//! The approval (`/approval`) and the certificate (`/status`) are written as
//! merge patches conditional on the resourceVersion read: two replicas
//! signing one request race on the write, the loser re-reads and finds the
//! certificate.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use apiserver_lib::pki::{Ca, RequestedNames, SigningRequest};
use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use rustls::pki_types::CertificateDer;
use serde_json::json;

/// The signer's name (`spec.signerName`).
pub const SIGNER_NAME: &str = api_types::SHIM_SERVING_SIGNER_NAME;
/// Default `--shim-service-account`: deploy/shim's ServiceAccount.
pub const DEFAULT_SHIM_SERVICE_ACCOUNT: &str = "system:serviceaccount:kcr-system:checkpoint-shim";
/// Default `--shim-ca-secret`.
pub const DEFAULT_CA_SECRET: &str = "kcr-system/checkpoint-shim-ca";
/// The extra a bound service-account token carries: the pod's name.
pub const POD_NAME_EXTRA: &str = "authentication.kubernetes.io/pod-name";
/// The extra a bound service-account token carries: the pod's UID.
pub const POD_UID_EXTRA: &str = "authentication.kubernetes.io/pod-uid";
/// The usages granted (those of a kubelet's serving certificate).
pub const USAGES: [&str; 3] = ["digital signature", "key encipherment", "server auth"];
/// Default `--shim-certificate-duration`: a week (renewed at 80 %).
pub const DEFAULT_CERTIFICATE_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);
/// kube-apiserver's smallest `spec.expirationSeconds`.
pub const MIN_EXPIRATION_SECONDS: i32 = 600;
/// Certificates start this much in the past (clock skew between nodes).
const BACKDATE: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read the shim CA Secret {secret}: {source}")]
    ReadSecret {
        secret: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to create the shim CA Secret {secret}: {source}")]
    CreateSecret {
        secret: String,
        #[source]
        source: kube::Error,
    },
    #[error("the shim CA Secret {secret} is unusable: {reason}")]
    BadSecret { secret: String, reason: String },
    #[error("failed to generate the shim CA: {0}")]
    Generate(#[source] apiserver_lib::pki::Error),
    #[error("failed to read {what}: {source}")]
    Read {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to write {what} of CertificateSigningRequest {name}: {source}")]
    Write {
        what: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the signer admits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `system:serviceaccount:NAMESPACE:NAME` of the shims.
    pub service_account: String,
    /// Longest certificate issued.
    pub max_duration: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            service_account: DEFAULT_SHIM_SERVICE_ACCOUNT.to_owned(),
            max_duration: DEFAULT_CERTIFICATE_DURATION,
        }
    }
}

impl Policy {
    /// `(namespace, name)` of the ServiceAccount.
    pub fn service_account_parts(&self) -> Option<(&str, &str)> {
        let rest = self
            .service_account
            .strip_prefix("system:serviceaccount:")?;
        let (ns, name) = rest.split_once(':')?;
        (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
    }

    /// How long a certificate for `csr` is valid: its `expirationSeconds`
    /// when given (at least kube's 600 s), at most `max_duration`.
    pub fn duration_of(&self, csr: &CertificateSigningRequest) -> Duration {
        match csr.spec.expiration_seconds {
            Some(s) => {
                Duration::from_secs(s.max(MIN_EXPIRATION_SECONDS) as u64).min(self.max_duration)
            }
            None => self.max_duration,
        }
    }
}

/// The answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A shim on `node` asked for names of its node.
    Approve { node: String },
    /// Refused: the `Denied` condition's reason and message.
    Deny {
        reason: &'static str,
        message: String,
    },
}

fn deny(reason: &'static str, message: String) -> Decision {
    Decision::Deny { reason, message }
}

/// The pod named by the request's extras, as [`facts_of`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// The first decisions, made on the request alone: who asked, and for what
/// usages. `Ok` names the pod to look up next.
pub fn check_requester(
    policy: &Policy,
    csr: &CertificateSigningRequest,
) -> Result<PodRef, Decision> {
    let spec = &csr.spec;
    let user = spec.username.as_deref().unwrap_or("");
    let Some((namespace, _)) = policy.service_account_parts() else {
        return Err(deny(
            "NotShimServiceAccount",
            format!(
                "the signer is configured with an invalid service account {:?}",
                policy.service_account
            ),
        ));
    };
    if user != policy.service_account {
        return Err(deny(
            "NotShimServiceAccount",
            format!(
                "requested by {user:?}: only checkpoint-shim's service account {} may request {SIGNER_NAME} certificates",
                policy.service_account
            ),
        ));
    }
    let usages: BTreeSet<&str> = spec.usages.iter().flatten().map(String::as_str).collect();
    let extra: Vec<&&str> = usages.iter().filter(|u| !USAGES.contains(u)).collect();
    if !usages.contains("server auth") || !extra.is_empty() {
        return Err(deny(
            "UsagesNotAllowed",
            format!(
                "usages {:?} asked; a shim serving certificate has \"server auth\" and at most \"digital signature\" and \"key encipherment\" besides",
                usages
            ),
        ));
    }
    let one = |key: &str| -> Option<String> {
        let values = spec.extra.as_ref()?.get(key)?;
        match values.as_slice() {
            [v] if !v.is_empty() => Some(v.clone()),
            _ => None,
        }
    };
    match (one(POD_NAME_EXTRA), one(POD_UID_EXTRA)) {
        (Some(name), Some(uid)) => Ok(PodRef {
            namespace: namespace.to_owned(),
            name,
            uid,
        }),
        _ => Err(deny(
            "NoPodIdentity",
            format!(
                "the requester's credentials name no pod ({POD_NAME_EXTRA}, {POD_UID_EXTRA}): checkpoint-shim must use a bound service-account token (the projected token of its pod)"
            ),
        )),
    }
}

/// The decision on a request whose requester passed [`check_requester`],
/// from the pod it names (if it exists), that pod's node (if it exists) and
/// the names the PKCS#10 request asks for (or why it cannot be parsed).
pub fn decide(
    policy: &Policy,
    pod_ref: &PodRef,
    pod: Option<&Pod>,
    node: Option<&Node>,
    names: std::result::Result<RequestedNames, String>,
) -> Decision {
    let Some(pod) = pod else {
        return deny(
            "PodNotFound",
            format!(
                "the requesting pod {}/{} does not exist",
                pod_ref.namespace, pod_ref.name
            ),
        );
    };
    let uid = pod.metadata.uid.as_deref().unwrap_or("");
    if uid != pod_ref.uid {
        return deny(
            "PodNotFound",
            format!(
                "the requesting pod {}/{} (uid {}) no longer exists: the pod of that name has uid {uid}",
                pod_ref.namespace, pod_ref.name, pod_ref.uid
            ),
        );
    }
    let spec = pod.spec.as_ref();
    let sa = spec
        .and_then(|s| s.service_account_name.as_deref())
        .unwrap_or("default");
    if policy.service_account_parts().map(|(_, n)| n) != Some(sa) {
        return deny(
            "PodNotOfServiceAccount",
            format!(
                "the requesting pod {}/{} runs as service account {sa}, not {}",
                pod_ref.namespace, pod_ref.name, policy.service_account
            ),
        );
    }
    let Some(node_name) = spec
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
    else {
        return deny(
            "PodNotOnNode",
            format!(
                "the requesting pod {}/{} is not bound to a node",
                pod_ref.namespace, pod_ref.name
            ),
        );
    };
    if let Some(phase @ ("Succeeded" | "Failed")) =
        pod.status.as_ref().and_then(|s| s.phase.as_deref())
    {
        return deny(
            "PodNotRunning",
            format!(
                "the requesting pod {}/{} has ended ({phase})",
                pod_ref.namespace, pod_ref.name
            ),
        );
    }
    let Some(node) = node else {
        return deny(
            "NodeNotFound",
            format!("node {node_name} of the requesting pod does not exist"),
        );
    };
    let names = match names {
        Ok(n) => n,
        Err(reason) => {
            return deny(
                "InvalidRequest",
                format!("spec.request is not a valid PKCS#10 certificate request: {reason}"),
            );
        }
    };
    let (dns, ips) = node_names(node_name, node);
    let mut wrong: Vec<String> = Vec::new();
    if names.common_name.as_deref() != Some(node_name) {
        wrong.push(format!(
            "common name {:?} (must be the node name)",
            names.common_name.as_deref().unwrap_or("")
        ));
    }
    wrong.extend(
        names
            .dns_names
            .iter()
            .filter(|d| !dns.contains(*d))
            .map(|d| format!("DNS name {d}")),
    );
    wrong.extend(
        names
            .ip_addresses
            .iter()
            .filter(|ip| !ips.contains(*ip))
            .map(|ip| format!("IP address {ip}")),
    );
    wrong.extend(names.others.iter().map(|o| format!("name {o}")));
    if names.dns_names.is_empty() && names.ip_addresses.is_empty() {
        wrong.push("no DNS name or IP address at all".to_owned());
    }
    if !wrong.is_empty() {
        return deny(
            "NamesNotOfNode",
            format!(
                "the request asks for {} which node {node_name} does not have (its name and status.addresses: {})",
                wrong.join(", "),
                dns.iter()
                    .cloned()
                    .chain(ips.iter().map(IpAddr::to_string))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    Decision::Approve {
        node: node_name.to_owned(),
    }
}

/// The DNS names (its name, Hostname/InternalDNS/ExternalDNS addresses) and
/// IPs (InternalIP/ExternalIP addresses) of a node.
pub fn node_names(node_name: &str, node: &Node) -> (BTreeSet<String>, BTreeSet<IpAddr>) {
    let mut dns = BTreeSet::from([node_name.to_owned()]);
    let mut ips = BTreeSet::new();
    for a in node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
    {
        match a.type_.as_str() {
            "InternalIP" | "ExternalIP" => {
                if let Ok(ip) = a.address.parse() {
                    ips.insert(ip);
                }
            }
            "Hostname" | "InternalDNS" | "ExternalDNS" => {
                dns.insert(a.address.clone());
            }
            _ => {}
        }
    }
    (dns, ips)
}

/// The shim CA, from its Secret (`kubernetes.io/tls`: `tls.crt`, `tls.key`).
pub struct ShimCa {
    ca: Ca,
    /// `namespace/name` of the Secret.
    pub secret: String,
}

impl std::fmt::Debug for ShimCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShimCa")
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

impl ShimCa {
    /// The CA certificate(s), to trust for shim connections.
    pub fn roots(&self) -> Vec<CertificateDer<'static>> {
        apiserver_lib::tls::parse_certs(
            self.ca.pem.cert.as_bytes(),
            std::path::Path::new(&self.secret),
        )
        .unwrap_or_default()
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.ca.pem.cert
    }

    /// Read the Secret `namespace/name`, or create it with a new CA when it
    /// does not exist. Two replicas starting at once both try to create it;
    /// the loser (409) reads the winner's.
    pub async fn load_or_create(client: kube::Client, namespace: &str, name: &str) -> Result<Self> {
        let secret = format!("{namespace}/{name}");
        let api: Api<Secret> = Api::namespaced(client, namespace);
        let read = |source| Error::ReadSecret {
            secret: secret.clone(),
            source,
        };
        if let Some(s) = api.get_opt(name).await.map_err(read)? {
            return Self::from_secret(&s, secret.clone());
        }
        let ca = Ca::new(&format!(
            "checkpoint-shim-ca@{}",
            time::OffsetDateTime::now_utc().unix_timestamp()
        ))
        .map_err(Error::Generate)?;
        let object: Secret = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {"app.kubernetes.io/name": "checkpoint-apiserver"},
                "annotations": {"checkpoint.kcr.dev/signer": SIGNER_NAME},
            },
            "type": "kubernetes.io/tls",
            "data": {
                "tls.crt": ByteString(ca.pem.cert.clone().into_bytes()),
                "tls.key": ByteString(ca.pem.key.clone().into_bytes()),
            },
        }))
        .map_err(|e| Error::BadSecret {
            secret: secret.clone(),
            reason: e.to_string(),
        })?;
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => {
                tracing::info!(secret, "created the shim CA");
                Ok(Self { ca, secret })
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let s = api.get(name).await.map_err(read)?;
                Self::from_secret(&s, secret.clone())
            }
            Err(source) => Err(Error::CreateSecret { secret, source }),
        }
    }

    fn from_secret(s: &Secret, secret: String) -> Result<Self> {
        let field = |k: &str| -> Result<String> {
            let bytes = s
                .data
                .as_ref()
                .and_then(|d| d.get(k))
                .map(|b| b.0.clone())
                .or_else(|| {
                    s.string_data
                        .as_ref()
                        .and_then(|d| d.get(k))
                        .map(|v| v.clone().into_bytes())
                })
                .ok_or_else(|| Error::BadSecret {
                    secret: secret.clone(),
                    reason: format!("no {k}"),
                })?;
            String::from_utf8(bytes).map_err(|_| Error::BadSecret {
                secret: secret.clone(),
                reason: format!("{k} is not PEM"),
            })
        };
        let ca =
            Ca::from_pem(&field("tls.crt")?, &field("tls.key")?).map_err(|e| Error::BadSecret {
                secret: secret.clone(),
                reason: e.to_string(),
            })?;
        Ok(Self { ca, secret })
    }

    #[cfg(any(test, feature = "testing"))]
    pub fn for_testing(ca: Ca) -> Self {
        Self {
            ca,
            secret: "testing".into(),
        }
    }

    /// The certificate (PEM) for an approved request, valid for `duration`.
    pub fn sign(
        &self,
        request: &SigningRequest,
        duration: Duration,
    ) -> std::result::Result<String, String> {
        let now = time::OffsetDateTime::now_utc();
        let backdate = time::Duration::try_from(BACKDATE).unwrap_or(time::Duration::ZERO);
        let valid = time::Duration::try_from(duration).unwrap_or(time::Duration::days(7));
        self.ca
            .sign_serving_request(request, now - backdate, now + valid)
            .map_err(|e| e.to_string())
    }
}

/// The signer as a controller over the requests for [`SIGNER_NAME`].
#[derive(Clone)]
pub struct ShimSigner {
    client: kube::Client,
    ca: Arc<ShimCa>,
    policy: Policy,
}

impl std::fmt::Debug for ShimSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShimSigner")
            .field("ca", &self.ca)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

struct Ctx {
    client: kube::Client,
    ca: Arc<ShimCa>,
    policy: Policy,
}

fn has_condition(csr: &CertificateSigningRequest, type_: &str) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

fn condition(type_: &str, reason: &str, message: String) -> CertificateSigningRequestCondition {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    CertificateSigningRequestCondition {
        type_: type_.to_owned(),
        status: "True".to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

/// A merge patch adding `cond` to the conditions, conditional on the
/// resourceVersion read.
fn conditions_patch(
    csr: &CertificateSigningRequest,
    cond: CertificateSigningRequestCondition,
) -> serde_json::Value {
    let mut conditions = csr
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    conditions.push(cond);
    json!({
        "metadata": {"resourceVersion": csr.metadata.resource_version},
        "status": {"conditions": conditions},
    })
}

impl ShimSigner {
    pub fn new(client: kube::Client, ca: Arc<ShimCa>, policy: Policy) -> Self {
        Self { client, ca, policy }
    }

    /// Runs until `shutdown` resolves (a write in flight is abandoned; the
    /// next start, or the other replica, picks the request up again).
    pub async fn run_until(self, shutdown: impl std::future::Future<Output = ()> + Send) {
        let csrs: Api<CertificateSigningRequest> = Api::all(self.client.clone());
        let ctx = Arc::new(Ctx {
            client: self.client,
            ca: self.ca,
            policy: self.policy,
        });
        tracing::info!(
            signer = SIGNER_NAME,
            ca = %ctx.ca.secret,
            service_account = %ctx.policy.service_account,
            "shim certificate signer starting"
        );
        let run = Controller::new(
            csrs,
            watcher::Config::default().fields(&format!("spec.signerName={SIGNER_NAME}")),
        )
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok(_) | Err(kube::runtime::controller::Error::ObjectNotFound(_)) => {}
                Err(kube::runtime::controller::Error::ReconcilerFailed(e, obj)) => {
                    tracing::warn!(object = %obj, error = %e, "signing failed; will retry");
                }
                Err(e) => tracing::warn!(error = %e, "shim certificate signer"),
            }
        });
        tokio::select! {
            () = run => {}
            () = shutdown => {}
        }
        tracing::info!("shim certificate signer stopped");
    }
}

fn error_policy(_: Arc<CertificateSigningRequest>, _: &Error, _: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_secs(2))
}

/// The decision on `csr`, with the lookups it needs.
async fn evaluate(ctx: &Ctx, csr: &CertificateSigningRequest) -> Result<Decision> {
    let pod_ref = match check_requester(&ctx.policy, csr) {
        Ok(p) => p,
        Err(d) => return Ok(d),
    };
    let read = |what: String| move |source| Error::Read { what, source };
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &pod_ref.namespace);
    let pod = pods
        .get_opt(&pod_ref.name)
        .await
        .map_err(read(format!("pod {}/{}", pod_ref.namespace, pod_ref.name)))?;
    let node_name = pod
        .as_ref()
        .and_then(|p| p.spec.as_ref())
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty());
    let node = match &node_name {
        Some(n) => Api::<Node>::all(ctx.client.clone())
            .get_opt(n)
            .await
            .map_err(read(format!("node {n}")))?,
        None => None,
    };
    let names = std::str::from_utf8(&csr.spec.request.0)
        .map_err(|_| "not PEM".to_owned())
        .and_then(|pem| SigningRequest::from_pem(pem).map_err(|e| e.to_string()))
        .map(|r| r.names());
    Ok(decide(
        &ctx.policy,
        &pod_ref,
        pod.as_ref(),
        node.as_ref(),
        names,
    ))
}

async fn reconcile(csr: Arc<CertificateSigningRequest>, ctx: Arc<Ctx>) -> Result<Action> {
    let name = csr.metadata.name.clone().unwrap_or_default();
    let done = csr
        .status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty());
    if done
        || has_condition(&csr, "Denied")
        || has_condition(&csr, "Failed")
        || csr.spec.signer_name != SIGNER_NAME
    {
        return Ok(Action::await_change());
    }
    let api: Api<CertificateSigningRequest> = Api::all(ctx.client.clone());
    let write = |what| {
        let name = name.clone();
        move |source| Error::Write { what, name, source }
    };
    let requester = csr.spec.username.clone().unwrap_or_default();
    match evaluate(&ctx, &csr).await? {
        Decision::Deny { reason, message } => {
            if has_condition(&csr, "Approved") {
                // Approved by someone else: this signer still signs only
                // what its policy admits.
                tracing::warn!(
                    csr = name,
                    requester,
                    reason,
                    message,
                    "not signing an approved request the policy refuses"
                );
                let patch = conditions_patch(&csr, condition("Failed", reason, message));
                return match api
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                {
                    Ok(_) => Ok(Action::await_change()),
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        Ok(Action::requeue(Duration::from_millis(200)))
                    }
                    Err(e) => Err(write("status")(e)),
                };
            }
            tracing::info!(
                csr = name,
                requester,
                reason,
                message,
                "denied a shim serving certificate"
            );
            let patch = conditions_patch(&csr, condition("Denied", reason, message));
            match api
                .patch_approval(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                Ok(_) => Ok(Action::await_change()),
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    Ok(Action::requeue(Duration::from_millis(200)))
                }
                Err(e) => Err(write("approval")(e)),
            }
        }
        Decision::Approve { node } => {
            let approved = if has_condition(&csr, "Approved") {
                (*csr).clone()
            } else {
                let patch = conditions_patch(
                    &csr,
                    condition(
                        "Approved",
                        "AutoApproved",
                        format!(
                            "checkpoint-apiserver approved the serving certificate of the checkpoint-shim on node {node}"
                        ),
                    ),
                );
                match api
                    .patch_approval(&name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                {
                    Ok(c) => c,
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        return Ok(Action::requeue(Duration::from_millis(200)));
                    }
                    Err(e) => return Err(write("approval")(e)),
                }
            };
            let pem = std::str::from_utf8(&approved.spec.request.0).unwrap_or("");
            let signed = SigningRequest::from_pem(pem)
                .map_err(|e| e.to_string())
                .and_then(|r| ctx.ca.sign(&r, ctx.policy.duration_of(&approved)));
            let patch = match signed {
                Ok(cert) => json!({
                    "metadata": {"resourceVersion": approved.metadata.resource_version},
                    "status": {"certificate": ByteString(cert.into_bytes())},
                }),
                Err(e) => conditions_patch(
                    &approved,
                    condition("Failed", "SigningFailed", format!("failed to sign: {e}")),
                ),
            };
            match api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                Ok(_) => {
                    tracing::info!(csr = name, node, requester, duration = ?ctx.policy.duration_of(&approved), "signed a shim serving certificate");
                    Ok(Action::await_change())
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    Ok(Action::requeue(Duration::from_millis(200)))
                }
                Err(e) => Err(write("status")(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apiserver_lib::pki::serving_request;
    use serde_json::json;

    const SA: &str = DEFAULT_SHIM_SERVICE_ACCOUNT;

    fn csr(
        user: &str,
        extra: serde_json::Value,
        usages: &[&str],
        request: &str,
    ) -> CertificateSigningRequest {
        serde_json::from_value(json!({
            "apiVersion": "certificates.k8s.io/v1",
            "kind": "CertificateSigningRequest",
            "metadata": {"name": "csr-1", "resourceVersion": "7"},
            "spec": {
                "signerName": SIGNER_NAME,
                "request": ByteString(request.as_bytes().to_vec()),
                "usages": usages,
                "username": user,
                "extra": extra,
            }
        }))
        .unwrap()
    }

    fn bound(pod: &str, uid: &str) -> serde_json::Value {
        json!({POD_NAME_EXTRA: [pod], POD_UID_EXTRA: [uid]})
    }

    fn pod(name: &str, uid: &str, node: &str, sa: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "kcr-system", "uid": uid},
            "spec": {"nodeName": node, "serviceAccountName": sa, "containers": [{"name": "shim"}]},
            "status": {"phase": "Running"},
        }))
        .unwrap()
    }

    fn node(name: &str) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "status": {"addresses": [
                {"type": "InternalIP", "address": "10.0.0.7"},
                {"type": "ExternalIP", "address": "203.0.113.7"},
                {"type": "Hostname", "address": format!("{name}.example")},
            ]}
        }))
        .unwrap()
    }

    /// The decision for a request by `user` with `extra`, asking for `hosts`
    /// (CN `cn`), when the pod `shim-1` is `the_pod` and node `n1` exists.
    fn decision(
        user: &str,
        extra: serde_json::Value,
        cn: &str,
        hosts: &[&str],
        the_pod: Option<Pod>,
    ) -> Decision {
        let hosts: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        let (pem, _) = serving_request(cn, &hosts).unwrap();
        let c = csr(user, extra, &USAGES, &pem);
        let policy = Policy::default();
        let pod_ref = match check_requester(&policy, &c) {
            Ok(p) => p,
            Err(d) => return d,
        };
        let the_node = the_pod
            .as_ref()
            .and_then(|p| p.spec.as_ref()?.node_name.clone())
            .filter(|n| n == "n1")
            .map(|n| node(&n));
        let names = SigningRequest::from_pem(&pem)
            .map(|r| r.names())
            .map_err(|e| e.to_string());
        decide(
            &policy,
            &pod_ref,
            the_pod.as_ref(),
            the_node.as_ref(),
            names,
        )
    }

    fn reason(d: Decision) -> (&'static str, String) {
        match d {
            Decision::Deny { reason, message } => (reason, message),
            Decision::Approve { node } => panic!("approved for {node}"),
        }
    }

    #[test]
    fn a_shim_asking_for_its_node_s_names_is_approved() {
        let d = decision(
            SA,
            bound("shim-1", "u1"),
            "n1",
            &["n1", "n1.example", "10.0.0.7", "203.0.113.7"],
            Some(pod("shim-1", "u1", "n1", "checkpoint-shim")),
        );
        assert_eq!(d, Decision::Approve { node: "n1".into() });
        // A subset is fine too.
        let d = decision(
            SA,
            bound("shim-1", "u1"),
            "n1",
            &["10.0.0.7"],
            Some(pod("shim-1", "u1", "n1", "checkpoint-shim")),
        );
        assert_eq!(d, Decision::Approve { node: "n1".into() });
    }

    #[test]
    fn another_user_is_denied() {
        let (r, m) = reason(decision(
            "system:serviceaccount:default:default",
            bound("shim-1", "u1"),
            "n1",
            &["n1"],
            Some(pod("shim-1", "u1", "n1", "checkpoint-shim")),
        ));
        assert_eq!(r, "NotShimServiceAccount");
        assert_eq!(
            m,
            "requested by \"system:serviceaccount:default:default\": only checkpoint-shim's service account system:serviceaccount:kcr-system:checkpoint-shim may request checkpoint.kcr.dev/shim-serving certificates"
        );
        let (r, _) = reason(decision("alice", json!({}), "n1", &["n1"], None));
        assert_eq!(r, "NotShimServiceAccount");
    }

    #[test]
    fn a_token_without_a_pod_is_denied() {
        let (r, m) = reason(decision(SA, json!({}), "n1", &["n1"], None));
        assert_eq!(r, "NoPodIdentity");
        assert!(m.contains("bound service-account token"), "{m}");
    }

    #[test]
    fn an_unknown_or_replaced_pod_is_denied() {
        let (r, m) = reason(decision(SA, bound("shim-1", "u1"), "n1", &["n1"], None));
        assert_eq!(
            (r, m.as_str()),
            (
                "PodNotFound",
                "the requesting pod kcr-system/shim-1 does not exist"
            )
        );
        let (r, m) = reason(decision(
            SA,
            bound("shim-1", "u1"),
            "n1",
            &["n1"],
            Some(pod("shim-1", "u2", "n1", "checkpoint-shim")),
        ));
        assert_eq!(r, "PodNotFound");
        assert!(m.contains("(uid u1) no longer exists"), "{m}");
        let (r, _) = reason(decision(
            SA,
            bound("shim-1", "u1"),
            "n1",
            &["n1"],
            Some(pod("shim-1", "u1", "n1", "default")),
        ));
        assert_eq!(r, "PodNotOfServiceAccount");
    }

    #[test]
    fn names_of_another_node_are_denied() {
        // The pod runs on n1 and asks for n2's name.
        let (r, m) = reason(decision(
            SA,
            bound("shim-1", "u1"),
            "n1",
            &["n2"],
            Some(pod("shim-1", "u1", "n1", "checkpoint-shim")),
        ));
        assert_eq!(r, "NamesNotOfNode");
        assert_eq!(
            m,
            "the request asks for DNS name n2 which node n1 does not have (its name and status.addresses: n1, n1.example, 10.0.0.7, 203.0.113.7)"
        );
        // The common name must be the node's.
        let (r, m) = reason(decision(
            SA,
            bound("shim-1", "u1"),
            "n2",
            &["n1"],
            Some(pod("shim-1", "u1", "n1", "checkpoint-shim")),
        ));
        assert_eq!(r, "NamesNotOfNode");
        assert!(m.contains("common name \"n2\""), "{m}");
    }

    #[test]
    fn ip_addresses_must_be_the_node_s() {
        let (r, m) = reason(decision(
            SA,
            bound("shim-1", "u1"),
            "n1",
            &["n1", "10.0.0.8"],
            Some(pod("shim-1", "u1", "n1", "checkpoint-shim")),
        ));
        assert_eq!(r, "NamesNotOfNode");
        assert!(
            m.starts_with("the request asks for IP address 10.0.0.8 which"),
            "{m}"
        );
    }

    #[test]
    fn a_pod_on_another_node_is_denied() {
        // The pod is bound to n2 (which does not exist here): n1's names are not its.
        let (r, m) = reason(decision(
            SA,
            bound("shim-1", "u1"),
            "n1",
            &["n1"],
            Some(pod("shim-1", "u1", "n2", "checkpoint-shim")),
        ));
        assert_eq!(
            (r, m.as_str()),
            (
                "NodeNotFound",
                "node n2 of the requesting pod does not exist"
            )
        );
        let policy = Policy::default();
        let hosts = vec!["n1".to_owned()];
        let (pem, _) = serving_request("n1", &hosts).unwrap();
        let pod_ref = PodRef {
            namespace: "kcr-system".into(),
            name: "shim-1".into(),
            uid: "u1".into(),
        };
        let names = SigningRequest::from_pem(&pem).unwrap().names();
        let d = decide(
            &policy,
            &pod_ref,
            Some(&pod("shim-1", "u1", "n2", "checkpoint-shim")),
            Some(&node("n2")),
            Ok(names),
        );
        let (r, _) = reason(d);
        assert_eq!(r, "NamesNotOfNode");
    }

    #[test]
    fn client_auth_usages_are_denied() {
        let (pem, _) = serving_request("n1", &["n1".to_owned()]).unwrap();
        let c = csr(
            SA,
            bound("shim-1", "u1"),
            &["digital signature", "client auth", "server auth"],
            &pem,
        );
        let (r, _) = reason(check_requester(&Policy::default(), &c).unwrap_err());
        assert_eq!(r, "UsagesNotAllowed");
    }

    #[test]
    fn an_approved_request_is_signed_for_the_duration_asked_within_the_bound() {
        let ca = ShimCa::for_testing(Ca::new("shim-ca").unwrap());
        let (pem, _) = serving_request("n1", &["n1".to_owned()]).unwrap();
        let mut c = csr(SA, bound("shim-1", "u1"), &USAGES, &pem);
        let policy = Policy::default();
        assert_eq!(policy.duration_of(&c), DEFAULT_CERTIFICATE_DURATION);
        c.spec.expiration_seconds = Some(60);
        assert_eq!(policy.duration_of(&c), Duration::from_secs(600));
        c.spec.expiration_seconds = Some(3600);
        let cert = ca
            .sign(
                &SigningRequest::from_pem(&pem).unwrap(),
                policy.duration_of(&c),
            )
            .unwrap();
        let chain =
            apiserver_lib::tls::parse_certs(cert.as_bytes(), std::path::Path::new("c")).unwrap();
        let roots = ca.roots();
        let mut store = rustls::RootCertStore::empty();
        store.add(roots[0].clone()).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(store),
            apiserver_lib::tls::provider(),
        )
        .build()
        .unwrap();
        use rustls::client::danger::ServerCertVerifier;
        verifier
            .verify_server_cert(
                &chain[0],
                &[],
                &rustls::pki_types::ServerName::try_from("n1").unwrap(),
                &[],
                rustls::pki_types::UnixTime::now(),
            )
            .unwrap();
    }
}
