//! `certificates.k8s.io/v1` CertificateSigningRequests as kube-apiserver
//! serves them (`pkg/registry/certificates/certificates/strategy.go`,
//! `pkg/apis/certificates/validation`, the `CertificateApproval` and
//! `CertificateSigning` admission plugins), and bound service-account
//! tokens whose users carry the pod they were issued for.
//!
//! * create: `spec.username`, `uid`, `groups` and `extra` are the
//!   authenticated requester's, whatever the body says; `status` is cleared;
//!   `spec.request` must be a PEM `CERTIFICATE REQUEST` with a valid
//!   signature, `spec.signerName` and `spec.usages` are required,
//!   `spec.expirationSeconds` at least 600;
//! * update of the object: the spec and the status are kept (only metadata
//!   changes);
//! * `/approval`: only `status.conditions` is taken, and the requester needs
//!   `approve` on `signers` (certificates.k8s.io) named after the signer (or
//!   `<domain>/*`), else 403 `user not permitted to approve requests with
//!   signerName "…"`;
//! * `/status`: the conditions are kept (they are `/approval`'s); a write that
//!   changes `status.certificate` needs `sign` on `signers` likewise; once
//!   set, the certificate cannot change;
//! * Approved and Denied exclude each other, and neither can be removed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use apiserver_lib::StatusError;
use apiserver_lib::authentication::{TokenAuthenticator, UserInfo};
use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::rbac::{self, Rbac};
use super::resources::ResourceType;
use super::status::{self, FieldError};
use super::store::{Store, Subresource};

/// kube-apiserver's smallest `spec.expirationSeconds`.
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The extra a bound token carries: the pod's name.
pub const POD_NAME_EXTRA: &str = "authentication.kubernetes.io/pod-name";
/// The extra a bound token carries: the pod's UID.
pub const POD_UID_EXTRA: &str = "authentication.kubernetes.io/pod-uid";

/// `csrStrategy.PrepareForCreate`: the requester's identity, no status.
pub fn prepare_for_create(mut body: Value, user: &UserInfo) -> Value {
    if let Some(spec) = body.get_mut("spec").and_then(Value::as_object_mut) {
        for k in ["username", "uid", "groups", "extra"] {
            spec.remove(k);
        }
        spec.insert("username".into(), json!(user.name));
        if !user.uid.is_empty() {
            spec.insert("uid".into(), json!(user.uid));
        }
        if !user.groups.is_empty() {
            spec.insert("groups".into(), json!(user.groups));
        }
        if !user.extra.is_empty() {
            spec.insert("extra".into(), json!(user.extra));
        }
    }
    if let Some(m) = body.as_object_mut() {
        m.remove("status");
    }
    body
}

/// `ValidateCertificateSigningRequestCreate`, the parts a client can meet.
pub fn validate_create(new: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let request = new
        .pointer("/spec/request")
        .and_then(Value::as_str)
        .unwrap_or("");
    if request.is_empty() {
        errs.push(FieldError::required("spec.request", ""));
    } else {
        use base64::Engine;
        let pem = base64::engine::general_purpose::STANDARD
            .decode(request)
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        match pem {
            Some(pem) if pem.contains("-----BEGIN CERTIFICATE REQUEST-----") => {
                if let Err(e) = apiserver_lib::pki::SigningRequest::from_pem(&pem) {
                    errs.push(FieldError::invalid(
                        "spec.request",
                        "[]byte{...}",
                        &e.to_string(),
                    ));
                }
            }
            _ => errs.push(FieldError::invalid(
                "spec.request",
                "[]byte{...}",
                "PEM block type must be CERTIFICATE REQUEST",
            )),
        }
    }
    if new
        .pointer("/spec/signerName")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        errs.push(FieldError::required("spec.signerName", ""));
    }
    if new
        .pointer("/spec/usages")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        errs.push(FieldError::required("spec.usages", ""));
    }
    if let Some(s) = new
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        && s < MIN_EXPIRATION_SECONDS
    {
        errs.push(FieldError::invalid(
            "spec.expirationSeconds",
            &s.to_string(),
            "may not specify a duration less than 600 seconds (10 minutes)",
        ));
    }
    errs
}

fn conditions(status: Option<&Value>) -> Vec<Value> {
    status
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn has(conds: &[Value], type_: &str) -> bool {
    conds
        .iter()
        .any(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

/// `csrStatusStrategy`: a `/status` write keeps the stored conditions.
pub fn keep_conditions(status: &mut Option<Value>, old: Option<&Value>) {
    let kept = old.and_then(|o| o.get("conditions")).cloned();
    let s = status.get_or_insert_with(|| json!({}));
    if let Some(m) = s.as_object_mut() {
        match kept {
            Some(c) => m.insert("conditions".into(), c),
            None => m.remove("conditions"),
        };
    }
}

/// `csrApprovalStrategy`: only the conditions of an `/approval` write are
/// taken; a condition without `lastUpdateTime` gets the current time.
pub fn set_conditions(object: &mut Value, conditions: Option<Value>) {
    let now = api_types::k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let Some(m) = object.as_object_mut() else {
        return;
    };
    let status = m.entry("status").or_insert_with(|| json!({}));
    let Some(s) = status.as_object_mut() else {
        return;
    };
    match conditions {
        Some(Value::Array(mut cs)) => {
            for c in &mut cs {
                if let Some(c) = c.as_object_mut()
                    && c.get("lastUpdateTime").is_none_or(Value::is_null)
                {
                    c.insert("lastUpdateTime".into(), json!(now));
                }
            }
            s.insert("conditions".into(), Value::Array(cs));
        }
        _ => {
            s.remove("conditions");
        }
    }
}

/// `ValidateCertificateSigningRequestUpdate`: the conditions and the certificate.
pub fn validate_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let new_conds = conditions(new.get("status"));
    let old_conds = conditions(old.get("status"));
    for (i, c) in new_conds.iter().enumerate() {
        let t = c.get("type").and_then(Value::as_str).unwrap_or("");
        let st = c.get("status").and_then(Value::as_str).unwrap_or("");
        if t.is_empty() {
            errs.push(FieldError::required(
                format!("status.conditions[{i}].type"),
                "",
            ));
        }
        if matches!(t, "Approved" | "Denied" | "Failed") && st != "True" {
            errs.push(FieldError::not_supported(
                format!("status.conditions[{i}].status"),
                &format!("\"{st}\""),
                &["True"],
            ));
        }
    }
    if has(&new_conds, "Approved") && has(&new_conds, "Denied") {
        let i = new_conds
            .iter()
            .position(|c| c.get("type").and_then(Value::as_str) == Some("Denied"))
            .unwrap_or(0);
        errs.push(FieldError::invalid(
            format!("status.conditions[{i}].type"),
            "\"Denied\"",
            "Approved and Denied conditions are mutually exclusive",
        ));
    }
    for t in ["Approved", "Denied"] {
        if has(&old_conds, t) && !has(&new_conds, t) {
            errs.push(FieldError::forbidden(
                "status.conditions",
                &format!("updates may not remove a condition of type \"{t}\""),
            ));
        }
    }
    let old_cert = old.pointer("/status/certificate").and_then(Value::as_str);
    let new_cert = new.pointer("/status/certificate").and_then(Value::as_str);
    if old_cert.is_some_and(|c| !c.is_empty()) && old_cert != new_cert {
        errs.push(FieldError::forbidden(
            "status.certificate",
            "updates may not modify existing certificate content",
        ));
    }
    errs
}

/// `isAuthorizedForSignerName`: `verb` on `signers` named `signer`, or `<domain>/*`.
fn authorized_for_signer(store: &Store, user: &UserInfo, verb: &str, signer: &str) -> bool {
    let attrs = |name: String| rbac::Attributes {
        user: user.clone(),
        verb: verb.to_owned(),
        resource_request: true,
        group: "certificates.k8s.io".into(),
        resource: "signers".into(),
        subresource: String::new(),
        namespace: String::new(),
        name,
        path: String::new(),
    };
    if Rbac::authorize(store, &attrs(signer.to_owned())).allowed {
        return true;
    }
    signer
        .split_once('/')
        .is_some_and(|(domain, _)| Rbac::authorize(store, &attrs(format!("{domain}/*"))).allowed)
}

/// What the requester may do for the signer of the request it writes:
/// decided before the write (the store is locked during it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignerRights {
    pub approve: bool,
    pub sign: bool,
}

impl SignerRights {
    /// The rights of `user` for the signer of the stored request `name`
    /// (none when it does not exist: the write then fails with 404).
    pub fn of(store: &Store, rt: &ResourceType, user: &UserInfo, name: &str) -> Self {
        let Ok(stored) = store.get(rt, "", name) else {
            return Self::default();
        };
        let signer = stored
            .pointer("/spec/signerName")
            .and_then(Value::as_str)
            .unwrap_or("");
        Self {
            approve: authorized_for_signer(store, user, "approve", signer),
            sign: authorized_for_signer(store, user, "sign", signer),
        }
    }
}

/// Everything kube-apiserver checks on a write of a CertificateSigningRequest
/// (`old` on update): validation, then the admission plugins.
pub fn check(
    rt: &ResourceType,
    sub: Subresource,
    rights: SignerRights,
    new: &Value,
    old: Option<&Value>,
) -> Result<(), StatusError> {
    let name = new
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let errs = match old {
        None => validate_create(new),
        Some(old) => validate_update(new, old),
    };
    if !errs.is_empty() {
        return Err(status::invalid_object(rt, &name, &errs));
    }
    let Some(old) = old else {
        return Ok(());
    };
    let signer = old
        .pointer("/spec/signerName")
        .and_then(Value::as_str)
        .unwrap_or("");
    let forbidden = |what: &str| {
        status::with_reason(
            403,
            "Forbidden",
            format!(
                "{}.{} \"{name}\" is forbidden: user not permitted to {what} requests with signerName \"{signer}\"",
                rt.resource, rt.group
            ),
            Some(api_types::status::details(&rt.group, &rt.resource, &name)),
        )
    };
    match sub {
        Subresource::Approval if !rights.approve => Err(forbidden("approve")),
        Subresource::Status
            if new.pointer("/status/certificate") != old.pointer("/status/certificate")
                && !rights.sign =>
        {
            Err(forbidden("sign"))
        }
        _ => Ok(()),
    }
}

/// A token bound to a pod, as the kubelet's projected service-account
/// tokens are: valid while that pod (same UID) exists.
#[derive(Debug, Clone)]
struct Bound {
    namespace: String,
    service_account: String,
    pod: String,
    pod_uid: String,
}

/// Bound service-account tokens (what `serviceaccounts/token` with a pod
/// `boundObjectRef` issues), then the static tokens. The tokens are opaque
/// random strings here, not JWTs: clients never look inside them. The
/// user is `system:serviceaccount:NS:NAME` in groups `system:serviceaccounts`
/// and `system:serviceaccounts:NS`, with the extras
/// `authentication.kubernetes.io/pod-name` and `/pod-uid`.
#[derive(Debug)]
pub struct BoundTokens {
    store: Arc<Store>,
    tokens: Mutex<BTreeMap<String, Bound>>,
    fallback: Option<Arc<dyn TokenAuthenticator>>,
}

impl BoundTokens {
    pub fn new(store: Arc<Store>, fallback: Option<Arc<dyn TokenAuthenticator>>) -> Self {
        Self {
            store,
            tokens: Mutex::default(),
            fallback,
        }
    }

    /// A token for `service_account` bound to the pod `namespace/pod`,
    /// which must exist and run as that service account.
    pub fn issue(
        &self,
        namespace: &str,
        service_account: &str,
        pod: &str,
    ) -> Result<String, String> {
        let pods = super::resources::lookup("", "v1", "pods").ok_or("no pods type")?;
        let object = self
            .store
            .get(pods, namespace, pod)
            .map_err(|_| format!("pod {namespace}/{pod} does not exist"))?;
        let sa = object
            .pointer("/spec/serviceAccountName")
            .and_then(Value::as_str)
            .unwrap_or("default");
        if sa != service_account {
            return Err(format!(
                "pod {namespace}/{pod} runs as service account {sa}, not {service_account}"
            ));
        }
        let uid = object
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let token: String = {
            use rand::Rng;
            let mut rng = rand::rng();
            (0..40)
                .map(|_| {
                    char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)])
                })
                .collect()
        };
        self.tokens
            .lock()
            .map_err(|_| "token table poisoned".to_owned())?
            .insert(
                token.clone(),
                Bound {
                    namespace: namespace.to_owned(),
                    service_account: service_account.to_owned(),
                    pod: pod.to_owned(),
                    pod_uid: uid,
                },
            );
        Ok(token)
    }

    fn user_of(&self, token: &str) -> Option<UserInfo> {
        let bound = self.tokens.lock().ok()?.get(token).cloned()?;
        let pods = super::resources::lookup("", "v1", "pods")?;
        let pod = self.store.get(pods, &bound.namespace, &bound.pod).ok()?;
        // The pod it was bound to is gone (or replaced): the token is invalid.
        if pod.pointer("/metadata/uid").and_then(Value::as_str) != Some(bound.pod_uid.as_str()) {
            return None;
        }
        Some(UserInfo {
            name: format!(
                "system:serviceaccount:{}:{}",
                bound.namespace, bound.service_account
            ),
            uid: String::new(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{}", bound.namespace),
                "system:authenticated".into(),
            ],
            extra: BTreeMap::from([
                (POD_NAME_EXTRA.to_owned(), vec![bound.pod.clone()]),
                (POD_UID_EXTRA.to_owned(), vec![bound.pod_uid.clone()]),
            ]),
        })
    }
}

impl TokenAuthenticator for BoundTokens {
    fn authenticate_token<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, apiserver_lib::authentication::Result<Option<UserInfo>>> {
        Box::pin(async move {
            if let Some(user) = self.user_of(token) {
                return Ok(Some(user));
            }
            match &self.fallback {
                Some(f) => f.authenticate_token(token).await,
                None => Ok(None),
            }
        })
    }
}
