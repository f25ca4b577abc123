//! Objects held in memory, the way kube-apiserver's registry and etcd keep
//! them: every type (built-in and custom) keyed by storage, namespace and
//! name; one global `resourceVersion` counter shared by all types (etcd's
//! revision); uid, creationTimestamp, generation, generateName; optimistic
//! concurrency; finalizers and `deletionTimestamp`; the status subresource
//! rules; the NamespaceLifecycle rule that a namespaced object needs its
//! namespace; and, per storage, a bounded history of changes from which
//! watches replay and historical (`resourceVersionMatch=Exact`, `continue`)
//! lists are rebuilt.
//!
//! Bodies are kept as JSON: the stand-in does not need typed objects, and
//! keeping what clients sent lets tests seed any field (a Pod's `status`
//! given at create stands in for the kubelet's status updates).
//!
//! The CustomResourceDefinition "controllers" run inline: a created CRD is
//! named and established in the same call (its 201 answer still shows the
//! empty status kube-apiserver answers with), and a deleted one takes its
//! instances with it, honouring their finalizers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use apiserver_lib::StatusError;
use serde_json::{Value, json};

use super::crd;
use super::resources::{self, ResourceType, Rt};
use super::selector::{FieldSelector, LabelSelector};
use super::status::{self, FieldError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to parse YAML in {path}: {reason}")]
    Yaml { path: PathBuf, reason: String },
    #[error("{path}: document {index} has no apiVersion/kind")]
    NoKind { path: PathBuf, index: usize },
    #[error("{path}: document {index}: the stand-in does not serve {api_version} {kind}")]
    UnknownKind {
        path: PathBuf,
        index: usize,
        api_version: String,
        kind: String,
    },
    #[error("{path}: document {index}: {status}")]
    Rejected {
        path: PathBuf,
        index: usize,
        #[source]
        status: Box<StatusError>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Namespaces that exist from the start, as in a fresh cluster.
pub const INITIAL_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

const CRD_STORAGE: &str = "apiextensions.k8s.io/customresourcedefinitions";

/// Bounds on what clients can make the store hold on to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Changes kept per storage for watch replay and historical lists
    /// (kube-apiserver's watch cache is per resource too).
    pub history_changes: usize,
    /// Bytes (serialized) of history kept per storage.
    pub history_bytes: usize,
    /// Open watches at once; more get 429.
    pub max_watchers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            history_changes: 1000,
            history_bytes: 64 * 1024 * 1024,
            max_watchers: 1000,
        }
    }
}

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    Added,
    Modified,
    Deleted,
}

impl ChangeType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Added => "ADDED",
            ChangeType::Modified => "MODIFIED",
            ChangeType::Deleted => "DELETED",
        }
    }
}

/// One write: the object as stored after it (for a deletion, the last
/// stored state carrying the deletion's resourceVersion) and before it.
#[derive(Debug, Clone)]
pub struct Change {
    pub rv: u64,
    pub storage: String,
    pub namespace: String,
    pub name: String,
    pub kind: ChangeType,
    pub object: Value,
    pub prev: Option<Value>,
    size: usize,
}

/// What watchers hear.
#[derive(Debug, Clone)]
pub enum Notice {
    Change(Arc<Change>),
    /// A storage stopped being served (its CRD is gone): watches on it end.
    Gone(String),
    /// The server is stopping: every watch ends.
    Shutdown,
}

#[derive(Debug, Default)]
struct History {
    changes: VecDeque<Arc<Change>>,
    bytes: usize,
    /// Every change with a resourceVersion above this is kept.
    start: u64,
}

type Key = (String, String, String);

#[derive(Debug, Default)]
struct Inner {
    objects: BTreeMap<Key, Value>,
    resource_version: u64,
    history: HashMap<String, History>,
    /// Served custom resource types by (group, version, plural).
    custom: BTreeMap<(String, String, String), Rt>,
}

/// The object store.
#[derive(Debug)]
pub struct Store {
    inner: RwLock<Inner>,
    notices: tokio::sync::broadcast::Sender<Notice>,
    limits: Limits,
    watchers: AtomicUsize,
}

impl Default for Store {
    fn default() -> Self {
        Self::with_limits(Limits::default())
    }
}

/// Which part of an object a write may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    /// The main resource: `status` is kept from the stored object when the
    /// type has a status subresource.
    Main,
    /// `/status`: only `status` is taken.
    Status,
    /// `/approval` of a CertificateSigningRequest: only `status.conditions` is taken.
    Approval,
}

/// Options of a write.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: validate and answer, store nothing.
    pub dry_run: bool,
}

/// How a delete is asked for (`DeleteOptions`).
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub dry_run: bool,
    pub propagation_policy: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
}

/// What a delete did.
#[derive(Debug, Clone)]
pub enum Deleted {
    /// Removed; the last stored object.
    Gone(Value),
    /// Finalizers hold it: the object now carries `deletionTimestamp`.
    Pending(Value),
}

/// `ListOptions` the store answers.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<u64>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
}

/// A page of a list.
#[derive(Debug, Clone)]
pub struct ListPage {
    pub items: Vec<Value>,
    pub resource_version: u64,
    pub continue_token: String,
    pub remaining: Option<u64>,
}

/// A validation hook run under the store's lock: the new object and, on
/// update, the stored one.
pub type Validate<'a> = &'a dyn Fn(&Value, Option<&Value>) -> Result<(), StatusError>;

fn no_validation(_: &Value, _: Option<&Value>) -> Result<(), StatusError> {
    Ok(())
}

/// RFC 3339, whole seconds, UTC.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn new_uid() -> String {
    let b: [u8; 16] = rand::random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn random_suffix() -> String {
    // apimachinery's utilrand alphabet (no vowels, no confusable digits).
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// RFC 1123 subdomain, as most names must be.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric())
}

/// `system:` names (RBAC bootstrap roles) and `v1alpha1.group` (APIServices) are fine too.
fn valid_name_for(rt: &ResourceType, name: &str) -> bool {
    if rt.group == "rbac.authorization.k8s.io" {
        return !name.is_empty() && !name.contains('/') && name != "." && name != "..";
    }
    valid_name(name)
}

const NAME_MESSAGE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// Types whose objects carry `metadata.generation`.
fn tracks_generation(rt: &ResourceType) -> bool {
    rt.is_custom() || ["apps", "batch", "apiextensions.k8s.io"].contains(&rt.group.as_str())
}

fn meta(v: &Value) -> &Value {
    v.get("metadata").unwrap_or(&Value::Null)
}

fn meta_str<'a>(v: &'a Value, key: &str) -> &'a str {
    meta(v).get(key).and_then(Value::as_str).unwrap_or("")
}

fn string_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn finalizers(v: &Value) -> Vec<String> {
    string_list(meta(v).get("finalizers"))
}

/// Everything but `metadata` (and `status` when it is a subresource): what
/// `generation` counts changes of.
fn spec_part(rt: &ResourceType, v: &Value) -> Value {
    let mut out = v.clone();
    if let Some(m) = out.as_object_mut() {
        m.remove("metadata");
        m.remove("apiVersion");
        m.remove("kind");
        if rt.status_subresource {
            m.remove("status");
        }
    }
    out
}

fn json_size(v: &Value) -> usize {
    serde_json::to_vec(v).map(|b| b.len()).unwrap_or(0)
}

fn set_meta(v: &mut Value, key: &str, value: Value) {
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert(key.into(), value);
    }
}

fn remove_meta(v: &mut Value, key: &str) {
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove(key);
    }
}

/// A continue token as kube-apiserver's etcd3 store writes it.
fn encode_continue(rv: u64, start: &str) -> String {
    use base64::Engine;
    let text = format!(
        "{{\"v\":\"meta.k8s.io/v1\",\"rv\":{rv},\"start\":{}}}",
        serde_json::to_string(&format!("{start}\u{0}")).unwrap_or_default()
    );
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

/// `storage.DecodeContinue`: `(start key, rv)`.
fn decode_continue(token: &str) -> Result<(String, u64), String> {
    use base64::Engine;
    // Go's RawURLEncoding: no padding, trailing bits ignored.
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true),
    );
    let bytes = engine
        .decode(token)
        .map_err(|e| format!("illegal base64 data: {e}"))?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| {
        format!(
            "continue key is not valid: {}",
            super::patch::go_json_error(&bytes)
        )
    })?;
    match v.get("v").and_then(Value::as_str).unwrap_or("") {
        "meta.k8s.io/v1" => {}
        other => {
            return Err(format!(
                "continue key is not valid: server does not recognize this encoded version {other:?}"
            ));
        }
    }
    let rv = v.get("rv").and_then(Value::as_u64).unwrap_or(0);
    if rv == 0 {
        return Err(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
                .into(),
        );
    }
    let start = v.get("start").and_then(Value::as_str).unwrap_or("");
    if start.is_empty() {
        return Err(
            "continue key is not valid: encoded start key empty (version meta.k8s.io/v1)".into(),
        );
    }
    Ok((start.to_owned(), rv))
}

/// The message of an expired continue token (`storage/etcd3` `errResourceExpired`... as apimachinery words it).
pub const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

impl Store {
    /// A store holding the initial namespaces.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store with `limits`, holding the initial namespaces.
    pub fn with_limits(limits: Limits) -> Self {
        let (notices, _) = tokio::sync::broadcast::channel(4096);
        let store = Self {
            inner: RwLock::new(Inner::default()),
            notices,
            limits,
            watchers: AtomicUsize::new(0),
        };
        if let Some(ns) = resources::lookup("", "v1", "namespaces") {
            for name in INITIAL_NAMESPACES {
                let _ = store.create(ns, "", json!({"metadata": {"name": name}}));
            }
        }
        store
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Namespace part of a key: empty for cluster-scoped types.
    fn scope(rt: &ResourceType, namespace: &str) -> String {
        if rt.namespaced {
            namespace.to_owned()
        } else {
            String::new()
        }
    }

    fn key(rt: &ResourceType, namespace: &str, name: &str) -> Key {
        (
            rt.storage.clone(),
            Self::scope(rt, namespace),
            name.to_owned(),
        )
    }

    /// The current resourceVersion (etcd revision).
    pub fn resource_version(&self) -> u64 {
        self.read().resource_version
    }

    /// The served type at `group/version/resource`: built-in or from an established CRD.
    pub fn resolve(&self, group: &str, version: &str, resource: &str) -> Option<Rt> {
        if let Some(rt) = resources::lookup(group, version, resource) {
            return Some(rt.clone());
        }
        self.read()
            .custom
            .get(&(group.to_owned(), version.to_owned(), resource.to_owned()))
            .cloned()
    }

    /// The served type of `apiVersion` + `kind`.
    pub fn resolve_kind(&self, api_version: &str, kind: &str) -> Option<Rt> {
        if let Some(rt) = resources::by_kind(api_version, kind) {
            return Some(rt.clone());
        }
        self.read()
            .custom
            .values()
            .find(|r| r.api_version() == api_version && r.kind == kind)
            .cloned()
    }

    /// Every served custom resource type (each served version), by group.
    pub fn custom_types(&self) -> Vec<Rt> {
        self.read().custom.values().cloned().collect()
    }

    /// Listen for changes (see [`Notice`]).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }

    /// Count one more watcher; `None` when [`Limits::max_watchers`] are open.
    pub fn watcher_slot(self: &Arc<Self>) -> Option<WatcherSlot> {
        let n = self.watchers.fetch_add(1, Ordering::SeqCst);
        if n >= self.limits.max_watchers {
            self.watchers.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(WatcherSlot(self.clone()))
    }

    /// End every watch (server shutdown).
    pub fn shutdown(&self) {
        let _ = self.notices.send(Notice::Shutdown);
    }

    pub fn get(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
    ) -> Result<Value, StatusError> {
        self.read()
            .objects
            .get(&Self::key(rt, namespace, name))
            .cloned()
            .ok_or_else(|| status::not_found(rt, name))
    }

    /// Every object of a type (all namespaces).
    pub fn all(&self, rt: &ResourceType) -> Vec<Value> {
        let inner = self.read();
        Self::range(&inner.objects, &rt.storage)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn range<'a>(
        objects: &'a BTreeMap<Key, Value>,
        storage: &'a str,
    ) -> impl Iterator<Item = (&'a Key, &'a Value)> + 'a {
        objects
            .range((storage.to_owned(), String::new(), String::new())..)
            .take_while(move |((s, _, _), _)| s == storage)
    }

    /// A `<Kind>List` of the objects in `namespace` (all when `None`) matching the selectors.
    pub fn list(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Value {
        let opts = ListOptions {
            labels: labels.clone(),
            fields: fields.clone(),
            ..Default::default()
        };
        match self.list_page(rt, namespace, &opts) {
            Ok(page) => json!({
                "kind": rt.list_kind,
                "apiVersion": rt.api_version(),
                "metadata": {"resourceVersion": page.resource_version.to_string()},
                "items": page.items,
            }),
            Err(_) => {
                json!({"kind": rt.list_kind, "apiVersion": rt.api_version(), "metadata": {}, "items": []})
            }
        }
    }

    /// The objects of a storage as they were at `rv` (rebuilt from the
    /// history), or `Err(oldest kept)` when `rv` is older than the history.
    fn snapshot(inner: &Inner, storage: &str, rv: u64) -> Result<BTreeMap<Key, Value>, u64> {
        let mut objects: BTreeMap<Key, Value> = Self::range(&inner.objects, storage)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if rv >= inner.resource_version {
            return Ok(objects);
        }
        let history = inner.history.get(storage);
        let start = history.map_or(0, |h| h.start);
        if rv < start {
            return Err(start + 1);
        }
        if let Some(h) = history {
            for c in h.changes.iter().rev().take_while(|c| c.rv > rv) {
                let key = (c.storage.clone(), c.namespace.clone(), c.name.clone());
                match (&c.kind, &c.prev) {
                    (ChangeType::Added, _) => {
                        objects.remove(&key);
                    }
                    (_, Some(prev)) => {
                        objects.insert(key, prev.clone());
                    }
                    (_, None) => {}
                }
            }
        }
        Ok(objects)
    }

    /// The oldest resourceVersion a watch on `storage` can start from.
    pub fn history_start(&self, storage: &str) -> u64 {
        self.read().history.get(storage).map_or(0, |h| h.start)
    }

    /// The newest change of `storage` (0 when none), for bookmarks.
    pub fn latest_change(&self, storage: &str) -> u64 {
        self.read()
            .history
            .get(storage)
            .and_then(|h| h.changes.back().map(|c| c.rv))
            .unwrap_or(0)
    }

    /// The changes of `storage` after `rv`, and the current resourceVersion;
    /// `Err(oldest)` when `rv` is older than the history kept.
    pub fn changes_since(&self, storage: &str, rv: u64) -> Result<(Vec<Arc<Change>>, u64), u64> {
        let inner = self.read();
        let h = inner.history.get(storage);
        let start = h.map_or(0, |h| h.start);
        if rv < start {
            let oldest = h
                .and_then(|h| h.changes.front().map(|c| c.rv))
                .unwrap_or(inner.resource_version);
            return Err(oldest);
        }
        let changes = h
            .map(|h| h.changes.iter().filter(|c| c.rv > rv).cloned().collect())
            .unwrap_or_default();
        Ok((changes, inner.resource_version))
    }

    /// The objects of `storage` now (in `namespace` when given), and the resourceVersion.
    pub fn current(&self, storage: &str, namespace: Option<&str>) -> (Vec<Value>, u64) {
        let inner = self.read();
        let items = Self::range(&inner.objects, storage)
            .filter(|((_, ns, _), _)| namespace.is_none_or(|n| n == ns))
            .map(|(_, v)| v.clone())
            .collect();
        (items, inner.resource_version)
    }

    /// A list page, as the registry's `List` (etcd or watch cache) answers it.
    pub fn list_page(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        opts: &ListOptions,
    ) -> Result<ListPage, StatusError> {
        let namespace = namespace.filter(|_| rt.namespaced);
        let inner = self.read();
        let current = inner.resource_version;
        let rv_param = opts.resource_version.as_deref().unwrap_or("");
        let rv_match = opts.resource_version_match.as_deref().unwrap_or("");
        let parse_rv = |s: &str| -> Result<u64, StatusError> {
            s.parse::<u64>().map_err(|_| {
                status::invalid_options(
                    "ListOptions",
                    &[FieldError::invalid(
                        "resourceVersion",
                        &format!("{s:?}"),
                        "must be a valid resource version",
                    )],
                )
            })
        };
        let too_large = |rv: u64| {
            let mut e = status::with_reason(
                504,
                "Timeout",
                format!("Timeout: Too large resource version: {rv}, current: {current}"),
                Some(
                    api_types::k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusDetails {
                        causes: Some(vec![
                        api_types::k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusCause {
                            reason: Some("ResourceVersionTooLarge".into()),
                            message: Some("Too large resource version".into()),
                            field: None,
                        },
                    ]),
                        retry_after_seconds: Some(1),
                        ..Default::default()
                    },
                ),
            );
            e.0.details.get_or_insert_with(Default::default);
            e
        };
        // (snapshot revision, start key, from the watch cache without paging)
        let (at, start_key, unpaged) = if let Some(token) = opts.continue_token.as_deref() {
            let (start, rv) = decode_continue(token)
                .map_err(|e| status::bad_request(format!("invalid continue token: {e}")))?;
            (rv, Some(start), false)
        } else {
            match (rv_param, rv_match) {
                ("", _) => (current, None, false),
                ("0", "" | "NotOlderThan") => (current, None, true),
                (s, "Exact") => {
                    let rv = parse_rv(s)?;
                    if rv > current {
                        return Err(too_large(rv));
                    }
                    (rv, None, false)
                }
                (s, _) => {
                    let rv = parse_rv(s)?;
                    if rv > current {
                        return Err(too_large(rv));
                    }
                    (current, None, opts.limit.is_none())
                }
            }
        };
        let snapshot = Self::snapshot(&inner, &rt.storage, at).map_err(|_| {
            if opts.continue_token.is_some() {
                status::expired(CONTINUE_EXPIRED)
            } else {
                status::expired("The resourceVersion for the provided list is too old.")
            }
        })?;
        drop(inner);
        let key_of = |(_, ns, name): &Key| -> String {
            if rt.namespaced && namespace.is_none() {
                format!("{ns}/{name}")
            } else {
                name.clone()
            }
        };
        let mut matching = snapshot
            .iter()
            .filter(|((_, ns, _), _)| namespace.is_none_or(|n| n == ns))
            .filter(|(k, _)| {
                start_key
                    .as_ref()
                    .is_none_or(|s| key_of(k).as_str() >= s.as_str())
            })
            .filter(|(_, v)| opts.labels.matches(v) && opts.fields.matches(v));
        let limit = if unpaged {
            None
        } else {
            opts.limit.filter(|l| *l > 0)
        };
        let mut items = Vec::new();
        let mut last_key = None;
        for (k, v) in matching.by_ref() {
            if limit.is_some_and(|l| items.len() as u64 >= l) {
                // One more exists: this page is not the last.
                let rest = 1 + matching.count() as u64;
                let selectors_empty = opts.labels.is_empty() && opts.fields.is_empty();
                return Ok(ListPage {
                    items,
                    resource_version: at,
                    continue_token: encode_continue(at, &last_key.unwrap_or_else(|| key_of(k))),
                    remaining: selectors_empty.then_some(rest),
                });
            }
            last_key = Some(key_of(k));
            items.push(v.clone());
        }
        Ok(ListPage {
            items,
            resource_version: at,
            continue_token: String::new(),
            remaining: None,
        })
    }

    /// Record a write under the lock: set the resourceVersion, store or
    /// remove, keep the history, tell the watchers.
    fn commit(
        &self,
        inner: &mut Inner,
        key: Key,
        kind: ChangeType,
        object: Option<Value>,
    ) -> (u64, Value) {
        inner.resource_version += 1;
        let rv = inner.resource_version;
        let prev = match (&object, kind) {
            (Some(obj), _) => {
                let mut obj = obj.clone();
                set_meta(&mut obj, "resourceVersion", json!(rv.to_string()));
                inner.objects.insert(key.clone(), obj)
            }
            (None, _) => inner.objects.remove(&key),
        };
        let event_object = match kind {
            ChangeType::Deleted => {
                let mut last = prev.clone().unwrap_or(Value::Null);
                set_meta(&mut last, "resourceVersion", json!(rv.to_string()));
                last
            }
            _ => inner.objects.get(&key).cloned().unwrap_or(Value::Null),
        };
        let size = json_size(&event_object) + prev.as_ref().map_or(0, json_size);
        let change = Arc::new(Change {
            rv,
            storage: key.0.clone(),
            namespace: key.1.clone(),
            name: key.2.clone(),
            kind,
            object: event_object.clone(),
            prev,
            size,
        });
        let history = inner.history.entry(key.0.clone()).or_default();
        history.bytes += size;
        history.changes.push_back(change.clone());
        while history.changes.len() > self.limits.history_changes
            || (history.bytes > self.limits.history_bytes && history.changes.len() > 1)
        {
            if let Some(old) = history.changes.pop_front() {
                history.bytes -= old.size;
                history.start = old.rv;
            }
        }
        let _ = self.notices.send(Notice::Change(change));
        if key.0 == CRD_STORAGE {
            self.refresh_custom(inner);
        }
        (rv, event_object)
    }

    /// Rebuild the served custom types from the CRDs; end the watches of
    /// storages no longer served.
    fn refresh_custom(&self, inner: &mut Inner) {
        let before: std::collections::BTreeSet<String> =
            inner.custom.values().map(|r| r.storage.clone()).collect();
        let mut custom = BTreeMap::new();
        for ((_, _, _), crd) in Self::range(&inner.objects, CRD_STORAGE) {
            for rt in crd::served_types(crd) {
                custom.insert(
                    (rt.group.clone(), rt.version.clone(), rt.resource.clone()),
                    rt,
                );
            }
        }
        let after: std::collections::BTreeSet<String> =
            custom.values().map(|r| r.storage.clone()).collect();
        inner.custom = custom;
        let now = inner.resource_version;
        for new in after.difference(&before) {
            // A new resource's watch cache starts now: older resourceVersions are 410.
            inner.history.insert(
                new.clone(),
                History {
                    start: now,
                    ..Default::default()
                },
            );
        }
        for gone in before.difference(&after) {
            if !Self::range(&inner.objects, gone).any(|_| true) {
                inner.history.remove(gone);
            }
            let _ = self.notices.send(Notice::Gone(gone.clone()));
        }
    }

    /// Create `body` in `namespace` (ignored for cluster-scoped types), no
    /// validation beyond names (built-ins, files).
    pub fn create(
        &self,
        rt: &ResourceType,
        namespace: &str,
        body: Value,
    ) -> Result<Value, StatusError> {
        self.create_with(
            rt,
            namespace,
            body,
            &WriteOptions::default(),
            &no_validation,
        )
    }

    /// Create, with a validation hook and options.
    pub fn create_with(
        &self,
        rt: &ResourceType,
        namespace: &str,
        mut body: Value,
        opts: &WriteOptions,
        validate: Validate<'_>,
    ) -> Result<Value, StatusError> {
        if !body.is_object() {
            return Err(status::bad_request(
                "the body of the request was not a JSON object",
            ));
        }
        check_type(rt, &body)?;
        let meta = meta_mut(&mut body)?;
        if rt.namespaced {
            match meta.get("namespace").and_then(Value::as_str) {
                Some(ns) if !ns.is_empty() && ns != namespace => {
                    return Err(status::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    meta.insert("namespace".into(), json!(namespace));
                }
            }
        } else {
            meta.remove("namespace");
        }
        if meta
            .get("resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|rv| !rv.is_empty())
        {
            return Err(status::without_reason(
                500,
                "resourceVersion should not be set on objects to be created",
            ));
        }
        let mut name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if name.is_empty()
            && let Some(prefix) = meta.get("generateName").and_then(Value::as_str)
            && !prefix.is_empty()
        {
            name = format!("{prefix}{}", random_suffix());
            meta.insert("name".into(), json!(name));
        }
        let mut meta_errors = Vec::new();
        if name.is_empty() {
            meta_errors.push(FieldError::required(
                "metadata.name",
                "name or generateName is required",
            ));
        } else if !valid_name_for(rt, &name) {
            meta_errors.push(FieldError::invalid(
                "metadata.name",
                &format!("{name:?}"),
                NAME_MESSAGE,
            ));
        }
        meta.insert("uid".into(), json!(new_uid()));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        for k in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(k);
        }
        if tracks_generation(rt) {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
        set_type(rt, &mut body);
        if rt.is_custom()
            && rt.status_subresource
            && let Some(m) = body.as_object_mut()
        {
            m.remove("status");
        }
        default_status(rt, &mut body);
        if !meta_errors.is_empty() {
            if rt.custom.as_ref().is_some_and(|c| c.has_rules)
                && meta_errors.iter().any(FieldError::blocks_rules)
            {
                meta_errors.push(FieldError::rules_not_checked());
            }
            return Err(status::invalid_object(rt, &name, &meta_errors));
        }
        if rt.custom.as_ref().is_some_and(|c| c.terminating) {
            return Err(status::crd_terminating(rt));
        }

        let mut inner = self.write();
        if rt.namespaced && namespace.is_empty() {
            return Err(status::bad_request(
                "a namespace is required for a namespaced resource",
            ));
        }
        if rt.namespaced {
            let ns_key = (
                "/namespaces".to_owned(),
                String::new(),
                namespace.to_owned(),
            );
            if !inner.objects.contains_key(&ns_key) {
                return Err(status::namespace_not_found(namespace));
            }
        }
        let key = Self::key(rt, namespace, &name);
        validate(&body, None)?;
        if inner.objects.contains_key(&key) {
            return Err(status::already_exists(rt, &name));
        }
        if opts.dry_run {
            return Ok(body);
        }
        if rt.storage == CRD_STORAGE {
            crd::default(&mut body);
            let answer_status = crd::initial_status(&body);
            let (_, mut created) =
                self.commit(&mut inner, key.clone(), ChangeType::Added, Some(body));
            // The naming and establishing controllers, at once.
            self.crd_controllers(&mut inner, &key);
            if let Some(m) = created.as_object_mut() {
                m.insert("status".into(), answer_status);
            }
            return Ok(created);
        }
        let (_, created) = self.commit(&mut inner, key, ChangeType::Added, Some(body));
        Ok(created)
    }

    /// What the CRD controllers write after a CRD changed: names, conditions.
    fn crd_controllers(&self, inner: &mut Inner, key: &Key) {
        let Some(crd) = inner.objects.get(key).cloned() else {
            return;
        };
        let others: Vec<&Value> = Self::range(&inner.objects, CRD_STORAGE)
            .filter(|(k, _)| *k != key)
            .map(|(_, v)| v)
            .collect();
        let conflict = crd::name_conflict(&crd, &others);
        let status = crd::controller_status(&crd, &now_rfc3339(), conflict);
        if crd.get("status") != Some(&status) {
            let mut updated = crd.clone();
            if let Some(m) = updated.as_object_mut() {
                m.insert("status".into(), status);
            }
            self.commit(inner, key.clone(), ChangeType::Modified, Some(updated));
        }
    }

    /// Replace an object (PUT), with no hooks: a non-empty
    /// `resourceVersion` must be current.
    pub fn update(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        body: Value,
    ) -> Result<Value, StatusError> {
        self.modify(
            rt,
            namespace,
            name,
            Subresource::Main,
            &WriteOptions::default(),
            |_| Ok(body),
            &no_validation,
        )
    }

    /// Write a new state of an existing object: `f` makes it from the stored
    /// one (a PUT body, a patched copy). The rules of kube-apiserver's
    /// `Update`: a `resourceVersion` in the result must be current (409), and
    /// custom resources need one unless `f` came from a patch (422); the
    /// server-owned metadata is kept; `status` or everything but `status`
    /// is kept per `sub`; no new finalizers while deleting; `generation`
    /// counts spec changes; a no-op writes nothing; an object being deleted
    /// whose last finalizer goes is removed.
    #[allow(clippy::too_many_arguments)]
    pub fn modify(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        sub: Subresource,
        opts: &WriteOptions,
        f: impl FnOnce(&Value) -> Result<Value, StatusError>,
        validate: Validate<'_>,
    ) -> Result<Value, StatusError> {
        let key = Self::key(rt, namespace, name);
        let mut inner = self.write();
        let Some(old) = inner.objects.get(&key).cloned() else {
            return Err(status::not_found(rt, name));
        };
        let mut new = f(&old)?;
        check_type(rt, &new)?;
        let old_meta = meta(&old).clone();
        let nm = meta_mut(&mut new)?;
        if nm
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty() && n != name)
        {
            let given = nm.get("name").and_then(Value::as_str).unwrap_or("");
            return Err(status::bad_request(format!(
                "the name of the object ({given}) does not match the name on the URL ({name})"
            )));
        }
        if rt.namespaced
            && nm
                .get("namespace")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty() && n != namespace)
        {
            return Err(status::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        match nm.get("resourceVersion").and_then(Value::as_str) {
            Some(rv)
                if !rv.is_empty()
                    && Some(rv) != old_meta.get("resourceVersion").and_then(Value::as_str) =>
            {
                return Err(status::conflict(rt, name));
            }
            Some(rv) if !rv.is_empty() => {}
            _ if rt.is_custom() => {
                return Err(status::with_reason(
                    422,
                    "Invalid",
                    format!(
                        "{} \"{name}\" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
                        rt.qualified()
                    ),
                    Some(api_types::k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusDetails {
                        name: Some(name.to_owned()),
                        group: Some(rt.group.clone()),
                        kind: Some(rt.resource.clone()),
                        causes: Some(vec![api_types::k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusCause {
                            reason: Some("FieldValueInvalid".into()),
                            message: Some("Invalid value: 0x0: must be specified for an update".into()),
                            field: Some("metadata.resourceVersion".into()),
                        }]),
                        ..Default::default()
                    }),
                ));
            }
            _ => {}
        }
        // Server-owned metadata.
        for k in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ] {
            match old_meta.get(k) {
                Some(v) => nm.insert(k.into(), v.clone()),
                None => nm.remove(k),
            };
        }
        nm.remove("managedFields");
        nm.remove("selfLink");
        set_type(rt, &mut new);
        match sub {
            Subresource::Main if rt.status_subresource => {
                if let Some(m) = new.as_object_mut() {
                    match old.get("status") {
                        Some(s) => m.insert("status".into(), s.clone()),
                        None => m.remove("status"),
                    };
                    if rt.is_csr() {
                        // csrStrategy.PrepareForUpdate: the spec is immutable.
                        match old.get("spec") {
                            Some(s) => m.insert("spec".into(), s.clone()),
                            None => m.remove("spec"),
                        };
                    }
                }
            }
            Subresource::Main => {}
            Subresource::Status => {
                let mut status = new.get("status").cloned();
                if rt.is_csr() {
                    // csrStatusStrategy: the conditions are /approval's.
                    super::certificates::keep_conditions(&mut status, old.get("status"));
                }
                new = old.clone();
                if let Some(m) = new.as_object_mut() {
                    match status {
                        Some(s) => m.insert("status".into(), s),
                        None => m.remove("status"),
                    };
                }
            }
            Subresource::Approval => {
                let conditions = new.pointer("/status/conditions").cloned();
                new = old.clone();
                super::certificates::set_conditions(&mut new, conditions);
            }
        }
        // No new finalizers on an object being deleted.
        if old_meta.get("deletionTimestamp").is_some() {
            let before = finalizers(&old);
            let added: Vec<String> = finalizers(&new)
                .into_iter()
                .filter(|f| !before.contains(f))
                .collect();
            if !added.is_empty() {
                let list: Vec<String> = added.iter().map(|f| format!("{f:?}")).collect();
                let e = FieldError::forbidden(
                    "metadata.finalizers",
                    &format!(
                        "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                        list.join(", ")
                    ),
                );
                return Err(status::invalid_object(rt, name, &[e.clone(), e]));
            }
        }
        if tracks_generation(rt) && spec_part(rt, &new) != spec_part(rt, &old) {
            let g = old_meta
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            set_meta(&mut new, "generation", json!(g + 1));
        }
        validate(&new, Some(&old))?;
        if new == old {
            return Ok(old);
        }
        if opts.dry_run {
            return Ok(new);
        }
        if rt.storage == CRD_STORAGE
            && old_meta.get("deletionTimestamp").is_some()
            && finalizers(&new).is_empty()
        {
            // Removing the cleanup finalizer by hand ends the CRD too.
            self.commit(&mut inner, key.clone(), ChangeType::Deleted, None);
            return Ok(new);
        }
        if old_meta.get("deletionTimestamp").is_some() && finalizers(&new).is_empty() {
            // The last finalizer is gone: the object goes, the watch sees
            // DELETED with the last stored state; the answer is the object
            // as it would have been, with the old resourceVersion.
            self.commit(&mut inner, key.clone(), ChangeType::Deleted, None);
            self.finish_crd_deletion(&mut inner, &rt.storage);
            return Ok(new);
        }
        let (_, written) = self.commit(&mut inner, key.clone(), ChangeType::Modified, Some(new));
        if rt.storage == CRD_STORAGE {
            self.crd_controllers(&mut inner, &key);
            return Ok(inner.objects.get(&key).cloned().unwrap_or(written));
        }
        Ok(written)
    }

    /// Delete an object with no options; returns it as it was.
    pub fn delete(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
    ) -> Result<Value, StatusError> {
        match self.delete_with(rt, namespace, name, &DeleteOptions::default())? {
            Deleted::Gone(v) | Deleted::Pending(v) => Ok(v),
        }
    }

    /// `DELETE` as the registry does it: preconditions, finalizers
    /// (`deletionTimestamp`, `deletionGracePeriodSeconds: 0`, generation+1),
    /// the propagation policy's finalizer, repeated deletes as no-ops.
    pub fn delete_with(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Deleted, StatusError> {
        let key = Self::key(rt, namespace, name);
        let mut inner = self.write();
        let Some(old) = inner.objects.get(&key).cloned() else {
            return Err(status::not_found(rt, name));
        };
        if let Some(uid) = &opts.precondition_uid {
            let actual = meta_str(&old, "uid");
            if uid != actual {
                return Err(status::precondition_failed(
                    rt,
                    name,
                    &format!(
                        "the UID in the precondition ({uid}) does not match the UID in record ({actual}). The object might have been deleted and then recreated"
                    ),
                ));
            }
        }
        if let Some(rv) = &opts.precondition_resource_version {
            let actual = meta_str(&old, "resourceVersion");
            if rv != actual {
                return Err(status::precondition_failed(
                    rt,
                    name,
                    &format!(
                        "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({actual}). The object might have been modified"
                    ),
                ));
            }
        }
        let mut fins = finalizers(&old);
        if rt.storage == CRD_STORAGE && !fins.iter().any(|f| f == crd::CLEANUP_FINALIZER) {
            fins.push(crd::CLEANUP_FINALIZER.to_owned());
        }
        match opts.propagation_policy.as_deref() {
            Some("Foreground") if !fins.iter().any(|f| f == "foregroundDeletion") => {
                fins.push("foregroundDeletion".into())
            }
            Some("Orphan") if !fins.iter().any(|f| f == "orphan") => fins.push("orphan".into()),
            _ => {}
        }
        if opts.dry_run {
            return Ok(if fins.is_empty() {
                Deleted::Gone(old)
            } else {
                Deleted::Pending(old)
            });
        }
        if meta(&old).get("deletionTimestamp").is_some() {
            // Already being deleted: nothing changes.
            return Ok(Deleted::Pending(old));
        }
        if fins.is_empty() {
            self.commit(&mut inner, key, ChangeType::Deleted, None);
            if rt.storage == "/namespaces" {
                self.delete_namespace_content(&mut inner, name);
            }
            self.finish_crd_deletion(&mut inner, &rt.storage);
            return Ok(Deleted::Gone(old));
        }
        let mut marked = old.clone();
        set_meta(&mut marked, "deletionTimestamp", json!(now_rfc3339()));
        set_meta(&mut marked, "deletionGracePeriodSeconds", json!(0));
        set_meta(&mut marked, "finalizers", json!(fins));
        if tracks_generation(rt) {
            let g = meta(&old)
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            set_meta(&mut marked, "generation", json!(g + 1));
        }
        let (_, written) = self.commit(&mut inner, key.clone(), ChangeType::Modified, Some(marked));
        if rt.storage == CRD_STORAGE {
            self.crd_controllers(&mut inner, &key);
            let answer = inner.objects.get(&key).cloned().unwrap_or(written);
            self.delete_crd_instances(&mut inner, &old);
            return Ok(Deleted::Pending(answer));
        }
        // kube-controller-manager's garbage collector takes its own
        // finalizers off (there are no dependents to wait for here).
        if fins
            .iter()
            .any(|f| f == "foregroundDeletion" || f == "orphan")
        {
            let mut rest = written.clone();
            let kept: Vec<String> = fins
                .into_iter()
                .filter(|f| f != "foregroundDeletion" && f != "orphan")
                .collect();
            if kept.is_empty() {
                self.commit(&mut inner, key, ChangeType::Deleted, None);
            } else {
                set_meta(&mut rest, "finalizers", json!(kept));
                self.commit(&mut inner, key, ChangeType::Modified, Some(rest));
            }
        }
        Ok(Deleted::Pending(written))
    }

    /// The namespace controller, at once: everything in the namespace goes.
    fn delete_namespace_content(&self, inner: &mut Inner, namespace: &str) {
        let keys: Vec<Key> = inner
            .objects
            .keys()
            .filter(|(_, ns, _)| ns == namespace)
            .cloned()
            .collect();
        for k in keys {
            self.commit(inner, k, ChangeType::Deleted, None);
        }
    }

    /// The CRD finalizer controller: delete every instance (those with
    /// finalizers get a deletionTimestamp), then the CRD when none is left.
    fn delete_crd_instances(&self, inner: &mut Inner, crd: &Value) {
        let storage = format!(
            "{}/{}",
            crd.pointer("/spec/group")
                .and_then(Value::as_str)
                .unwrap_or(""),
            crd.pointer("/spec/names/plural")
                .and_then(Value::as_str)
                .unwrap_or("")
        );
        let instances: Vec<(Key, Value)> = Self::range(&inner.objects, &storage)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in instances {
            if finalizers(&v).is_empty() {
                self.commit(inner, k, ChangeType::Deleted, None);
            } else if meta(&v).get("deletionTimestamp").is_none() {
                let mut marked = v.clone();
                set_meta(&mut marked, "deletionTimestamp", json!(now_rfc3339()));
                set_meta(&mut marked, "deletionGracePeriodSeconds", json!(0));
                let g = meta(&v)
                    .get("generation")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                set_meta(&mut marked, "generation", json!(g + 1));
                self.commit(inner, k, ChangeType::Modified, Some(marked));
            }
        }
        self.finish_crd_deletion(inner, &storage);
    }

    /// When `storage` belongs to a terminating CRD with no instances left,
    /// take the cleanup finalizer off and remove the CRD.
    fn finish_crd_deletion(&self, inner: &mut Inner, storage: &str) {
        if Self::range(&inner.objects, storage).next().is_some() {
            return;
        }
        let crd_key = Self::range(&inner.objects, CRD_STORAGE)
            .find(|(_, crd)| {
                let s = format!(
                    "{}/{}",
                    crd.pointer("/spec/group")
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                    crd.pointer("/spec/names/plural")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                );
                s == storage && meta(crd).get("deletionTimestamp").is_some()
            })
            .map(|(k, v)| (k.clone(), v.clone()));
        let Some((key, crd)) = crd_key else {
            return;
        };
        let rest: Vec<String> = finalizers(&crd)
            .into_iter()
            .filter(|f| f != crd::CLEANUP_FINALIZER)
            .collect();
        if rest.is_empty() {
            self.commit(inner, key, ChangeType::Deleted, None);
        } else {
            let mut updated = crd.clone();
            set_meta(&mut updated, "finalizers", json!(rest));
            self.commit(inner, key, ChangeType::Modified, Some(updated));
        }
    }

    /// Load a multi-document YAML file of objects (`--objects`).
    pub fn load_file(&self, path: &Path) -> Result<usize> {
        let docs = read_yaml_docs(path)?;
        let mut n = 0;
        for (index, doc) in docs.into_iter().enumerate() {
            self.load_object(path, index, doc)?;
            n += 1;
        }
        Ok(n)
    }

    /// Create one object as loaded from a file, creating its namespace when
    /// missing; a Namespace that already exists is skipped. Server-set
    /// metadata in the file (resourceVersion, uid, ... as `kubectl get -o
    /// yaml` prints them) is dropped. Custom resources are validated like
    /// API requests by `validate`.
    pub fn load_object(&self, path: &Path, index: usize, mut doc: Value) -> Result<()> {
        let (api_version, kind) = match (
            doc.get("apiVersion").and_then(Value::as_str),
            doc.get("kind").and_then(Value::as_str),
        ) {
            (Some(a), Some(k)) => (a.to_owned(), k.to_owned()),
            _ => {
                return Err(Error::NoKind {
                    path: path.into(),
                    index,
                });
            }
        };
        let rt = self
            .resolve_kind(&api_version, &kind)
            .ok_or_else(|| Error::UnknownKind {
                path: path.into(),
                index,
                api_version: api_version.clone(),
                kind: kind.clone(),
            })?;
        for k in [
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "managedFields",
        ] {
            remove_meta(&mut doc, k);
        }
        let namespace = doc
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_owned();
        if rt.storage == "/namespaces" {
            // Namespaces exist from the start or were created for earlier
            // documents: declaring one again is not an error.
            let name = doc
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            if self.get(&rt, "", name).is_ok() {
                return Ok(());
            }
        }
        let rejected = |status: StatusError| Error::Rejected {
            path: path.into(),
            index,
            status: Box::new(status),
        };
        if rt.namespaced
            && let Some(ns_rt) = resources::lookup("", "v1", "namespaces")
            && self.get(ns_rt, "", &namespace).is_err()
        {
            self.create(ns_rt, "", json!({"metadata": {"name": namespace}}))
                .map_err(rejected)?;
        }
        if rt.storage == CRD_STORAGE {
            let errs = crd::validate(&doc);
            if !errs.is_empty() {
                let name = meta_str(&doc, "name").to_owned();
                return Err(rejected(status::invalid_object(&rt, &name, &errs)));
            }
        }
        let mut status_part = None;
        if let (Some(custom), Some(m)) = (&rt.custom, doc.as_object_mut()) {
            if rt.status_subresource {
                status_part = m.remove("status");
            }
            super::schema::prune_object(&custom.schema, &mut doc);
            super::schema::apply_defaults(&custom.schema, &mut doc);
        }
        let validate = |new: &Value, old: Option<&Value>| {
            super::admission::validate_custom(&rt, new, old, false)
        };
        let created = self
            .create_with(&rt, &namespace, doc, &WriteOptions::default(), &validate)
            .map_err(rejected)?;
        if let Some(s) = status_part {
            // A file may seed a custom resource's status (as a controller would write it).
            let name = meta_str(&created, "name").to_owned();
            self.modify(
                &rt,
                &namespace,
                &name,
                Subresource::Status,
                &WriteOptions::default(),
                |cur| {
                    let mut next = cur.clone();
                    if let Some(m) = next.as_object_mut() {
                        m.insert("status".into(), s);
                    }
                    Ok(next)
                },
                &no_validation,
            )
            .map_err(rejected)?;
        }
        Ok(())
    }
}

/// One open watch, counted against [`Limits::max_watchers`] until dropped.
#[derive(Debug)]
pub struct WatcherSlot(Arc<Store>);

impl Drop for WatcherSlot {
    fn drop(&mut self) {
        self.0.watchers.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Read the non-empty documents of a multi-document YAML file as JSON values.
pub fn read_yaml_docs(path: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.into(),
        source,
    })?;
    parse_yaml_docs(&text).map_err(|reason| Error::Yaml {
        path: path.into(),
        reason,
    })
}

/// Parse multi-document YAML; empty documents are skipped.
pub fn parse_yaml_docs(text: &str) -> Result<Vec<Value>, String> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| e.to_string())?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

fn meta_mut(body: &mut Value) -> Result<&mut serde_json::Map<String, Value>, StatusError> {
    let Some(obj) = body.as_object_mut() else {
        return Err(status::bad_request(
            "the body of the request was not a JSON object",
        ));
    };
    let meta = obj.entry("metadata").or_insert_with(|| json!({}));
    if meta.is_null() {
        *meta = json!({});
    }
    meta.as_object_mut()
        .ok_or_else(|| status::bad_request("metadata must be an object"))
}

fn check_type(rt: &ResourceType, body: &Value) -> Result<(), StatusError> {
    let kind = body.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = body.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if rt.is_custom() {
        // Any served version of the group is read (conversion None).
        let name = meta_str(body, "name");
        if !kind.is_empty() && kind != rt.kind {
            return Err(status::invalid_fields(
                &format!("{kind}.{}", rt.group),
                &rt.group,
                kind,
                name,
                &[FieldError::invalid(
                    "kind",
                    &format!("{kind:?}"),
                    &format!("must be {}", rt.kind),
                )],
            ));
        }
        if !api_version.is_empty() && api_version.split('/').next() != Some(rt.group.as_str()) {
            return Err(status::bad_request(format!(
                "the API version in the data ({api_version}) does not match the expected API version ({})",
                rt.api_version()
            )));
        }
        return Ok(());
    }
    if (!kind.is_empty() && kind != rt.kind)
        || (!api_version.is_empty() && api_version != rt.api_version())
    {
        return Err(status::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({}) or kind {kind} is not {}",
            rt.api_version(),
            rt.kind
        )));
    }
    Ok(())
}

fn set_type(rt: &ResourceType, body: &mut Value) {
    if let Some(obj) = body.as_object_mut() {
        obj.insert("apiVersion".into(), json!(rt.api_version()));
        obj.insert("kind".into(), json!(rt.kind));
    }
}

fn default_status(rt: &ResourceType, body: &mut Value) {
    let Some(obj) = body.as_object_mut() else {
        return;
    };
    match (rt.group.as_str(), rt.resource.as_str()) {
        ("", "pods") => {
            obj.entry("status")
                .or_insert_with(|| json!({"phase": "Pending"}));
        }
        ("", "namespaces") => {
            obj.insert("status".into(), json!({"phase": "Active"}));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods() -> &'static ResourceType {
        resources::lookup("", "v1", "pods").unwrap()
    }

    #[test]
    fn crud_and_namespace_lifecycle() {
        let s = Store::new();
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "a"}}, "spec": {"nodeName": "n1"}});
        let created = s.create(pods(), "default", pod.clone()).unwrap();
        assert_eq!(created["metadata"]["namespace"], "default");
        assert_eq!(created["status"]["phase"], "Pending");
        assert!(created["metadata"]["uid"].as_str().unwrap().len() == 36);
        assert_eq!(
            s.create(pods(), "default", pod.clone())
                .unwrap_err()
                .code()
                .as_u16(),
            409
        );
        let e = s.create(pods(), "nope", pod).unwrap_err();
        assert_eq!(e.message(), "namespaces \"nope\" not found");
        assert_eq!(
            s.get(pods(), "default", "p").unwrap()["spec"]["nodeName"],
            "n1"
        );
        let e = s.get(pods(), "default", "q").unwrap_err();
        assert_eq!(
            (e.code().as_u16(), e.message()),
            (404, "pods \"q\" not found")
        );
        let list = s.list(
            pods(),
            Some("default"),
            &LabelSelector::parse("app=a").unwrap(),
            &FieldSelector::default(),
        );
        assert_eq!(list["kind"], "PodList");
        assert_eq!(list["items"].as_array().unwrap().len(), 1);
        let list = s.list(
            pods(),
            None,
            &LabelSelector::parse("app=b").unwrap(),
            &FieldSelector::default(),
        );
        assert_eq!(list["items"].as_array().unwrap().len(), 0);
        s.delete(pods(), "default", "p").unwrap();
        assert!(s.get(pods(), "default", "p").is_err());
    }

    #[test]
    fn generate_name_and_invalid_names() {
        let s = Store::new();
        let p = s
            .create(
                pods(),
                "default",
                json!({"metadata": {"generateName": "x-"}}),
            )
            .unwrap();
        assert!(p["metadata"]["name"].as_str().unwrap().starts_with("x-"));
        let e = s
            .create(pods(), "default", json!({"metadata": {"name": "Bad_Name"}}))
            .unwrap_err();
        assert_eq!(e.code().as_u16(), 422);
        assert!(
            e.message()
                .starts_with("Pod \"Bad_Name\" is invalid: metadata.name"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn multi_doc_yaml() {
        let docs = parse_yaml_docs("---\napiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n---\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: other}\n").unwrap();
        assert_eq!(docs.len(), 2);
        let s = Store::new();
        for (i, d) in docs.into_iter().enumerate() {
            s.load_object(Path::new("x.yaml"), i, d).unwrap();
        }
        assert!(s.get(pods(), "other", "p").is_ok());
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}});
        s.load_object(Path::new("x.yaml"), 2, ns).unwrap();
        let e = s
            .load_object(
                Path::new("x.yaml"),
                0,
                json!({"apiVersion": "v9", "kind": "Thing"}),
            )
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.yaml: document 0: the stand-in does not serve v9 Thing"
        );
    }
}
