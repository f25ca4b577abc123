//! Objects held in memory: every built-in resource type, keyed by type,
//! namespace and name, with kube-apiserver's bookkeeping (uid,
//! resourceVersion, creationTimestamp, generateName) and the
//! NamespaceLifecycle rule that a namespaced object needs its namespace.
//!
//! Bodies are kept as JSON: the stand-in does not need typed objects, and
//! keeping what clients sent lets tests seed any field (a Pod's `status`
//! stands in for the kubelet's status updates).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use apiserver_lib::StatusError;
use serde_json::{Value, json};

use super::resources::{self, ResourceType};
use super::selector::{FieldSelector, LabelSelector};
use super::status;

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

type Key = (String, String, String);

fn type_key(rt: &ResourceType) -> String {
    format!("{}/{}", rt.group, rt.resource)
}

#[derive(Debug, Default)]
struct Inner {
    objects: BTreeMap<Key, Value>,
    resource_version: u64,
}

/// The object store.
#[derive(Debug, Default)]
pub struct Store {
    inner: RwLock<Inner>,
}

fn now_rfc3339() -> String {
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

impl Store {
    /// A store holding the initial namespaces.
    pub fn new() -> Self {
        let store = Self::default();
        if let Some(ns) = resources::lookup("", "v1", "namespaces") {
            for name in INITIAL_NAMESPACES {
                let _ = store.create(ns, "", json!({"metadata": {"name": name}}));
            }
        }
        store
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

    pub fn get(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
    ) -> Result<Value, StatusError> {
        let key = (type_key(rt), Self::scope(rt, namespace), name.to_owned());
        self.read()
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| status::not_found(rt, name))
    }

    /// Every object of a type (all namespaces).
    pub fn all(&self, rt: &ResourceType) -> Vec<Value> {
        let tk = type_key(rt);
        self.read()
            .objects
            .iter()
            .filter(|((t, _, _), _)| *t == tk)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A `<Kind>List` of the objects in `namespace` (all when `None`) matching the selectors.
    pub fn list(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Value {
        let tk = type_key(rt);
        let inner = self.read();
        let items: Vec<Value> = inner
            .objects
            .iter()
            .filter(|((t, ns, _), _)| {
                *t == tk && namespace.is_none_or(|n| !rt.namespaced || n == ns)
            })
            .map(|(_, v)| v)
            .filter(|v| labels.matches(v) && fields.matches(v))
            .cloned()
            .collect();
        json!({
            "kind": format!("{}List", rt.kind),
            "apiVersion": rt.api_version(),
            "metadata": {"resourceVersion": inner.resource_version.to_string()},
            "items": items,
        })
    }

    /// Create `body` in `namespace` (ignored for cluster-scoped types).
    pub fn create(
        &self,
        rt: &ResourceType,
        namespace: &str,
        mut body: Value,
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
        if name.is_empty() {
            return Err(status::invalid(
                rt,
                "",
                "metadata.name: Required value: name or generateName is required",
            ));
        }
        if !valid_name_for(rt, &name) {
            return Err(status::invalid(
                rt,
                &name,
                &format!(
                    "metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
                ),
            ));
        }
        meta.insert("uid".into(), json!(new_uid()));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        meta.remove("deletionTimestamp");
        set_type(rt, &mut body);
        default_status(rt, &mut body);

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
                let ns_rt = resources::lookup("", "v1", "namespaces");
                return Err(match ns_rt {
                    Some(ns_rt) => status::not_found(ns_rt, namespace),
                    None => status::internal("namespaces are not served"),
                });
            }
        }
        let key = (type_key(rt), Self::scope(rt, namespace), name.clone());
        if inner.objects.contains_key(&key) {
            return Err(status::already_exists(rt, &name));
        }
        inner.resource_version += 1;
        let rv = inner.resource_version.to_string();
        if let Some(m) = body.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("resourceVersion".into(), json!(rv));
        }
        inner.objects.insert(key, body.clone());
        Ok(body)
    }

    /// Replace an object (PUT); a non-empty `resourceVersion` must be current.
    pub fn update(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        mut body: Value,
    ) -> Result<Value, StatusError> {
        check_type(rt, &body)?;
        let key = (type_key(rt), Self::scope(rt, namespace), name.to_owned());
        let mut inner = self.write();
        let Some(old) = inner.objects.get(&key) else {
            return Err(status::not_found(rt, name));
        };
        let old_meta = old.get("metadata").cloned().unwrap_or_default();
        let meta = meta_mut(&mut body)?;
        if meta
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| n != name)
        {
            return Err(status::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        if let Some(rv) = meta.get("resourceVersion").and_then(Value::as_str)
            && !rv.is_empty()
            && Some(rv) != old_meta.get("resourceVersion").and_then(Value::as_str)
        {
            return Err(status::conflict(rt, name));
        }
        for k in ["name", "namespace", "uid", "creationTimestamp"] {
            match old_meta.get(k) {
                Some(v) => meta.insert(k.into(), v.clone()),
                None => meta.remove(k),
            };
        }
        inner.resource_version += 1;
        meta.insert(
            "resourceVersion".into(),
            json!(inner.resource_version.to_string()),
        );
        set_type(rt, &mut body);
        inner.objects.insert(key, body.clone());
        Ok(body)
    }

    /// Delete an object; returns it as it was.
    pub fn delete(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
    ) -> Result<Value, StatusError> {
        let key = (type_key(rt), Self::scope(rt, namespace), name.to_owned());
        let mut inner = self.write();
        let removed = inner
            .objects
            .remove(&key)
            .ok_or_else(|| status::not_found(rt, name))?;
        inner.resource_version += 1;
        if rt.resource == "namespaces" && rt.group.is_empty() {
            // Namespace deletion takes its content with it (without the finalizer dance).
            inner.objects.retain(|(t, ns, _), _| {
                ns != name
                    || resources::BUILTIN
                        .iter()
                        .any(|r| !r.namespaced && type_key(r) == *t)
            });
        }
        Ok(removed)
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
    /// missing; a Namespace that already exists is skipped.
    pub fn load_object(&self, path: &Path, index: usize, doc: Value) -> Result<()> {
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
        let rt = resources::by_kind(&api_version, &kind).ok_or_else(|| Error::UnknownKind {
            path: path.into(),
            index,
            api_version: api_version.clone(),
            kind: kind.clone(),
        })?;
        let namespace = doc
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_owned();
        if rt.resource == "namespaces" && rt.group.is_empty() {
            // Namespaces exist from the start or were created for earlier
            // documents: declaring one again is not an error.
            let name = doc
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            if self.get(rt, "", name).is_ok() {
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
        self.create(rt, &namespace, doc).map_err(rejected)?;
        Ok(())
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
    match (rt.group, rt.resource) {
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
