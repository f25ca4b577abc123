//! CustomResourceDefinitions (`apiextensions.k8s.io/v1`), as
//! `k8s.io/apiextensions-apiserver` serves them: validation and defaulting of
//! the CRD object, the `NamesAccepted`/`Established` conditions its
//! controllers set, and the [`ResourceType`] each served version registers
//! (discovery, storage, schema, printer columns).
//!
//! Conversion is `None` only: every served version reads and writes the same
//! objects, with `apiVersion` rewritten (what `strategy: None` does). Webhook
//! conversion is refused at create.

use std::sync::Arc;

use serde_json::{Value, json};

use super::resources::{ResourceType, Rt};
use super::schema;
use super::status::FieldError;

/// The finalizer kube-apiserver puts on a CRD being deleted.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Verbs of an established custom resource, in kube-apiserver's order.
pub const VERBS: &[&str] = &[
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "create",
    "update",
    "watch",
];
/// Verbs while the CRD is terminating.
pub const TERMINATING_VERBS: &[&str] = &["delete", "deletecollection", "get", "list", "watch"];

/// `swaggerMetadataDescriptions["name"]`: the Name column's description.
pub const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
/// `swaggerMetadataDescriptions["creationTimestamp"]`: the default Age column's description.
pub const CREATION_TIMESTAMP_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists.";

/// One `additionalPrinterColumns` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub json_path: String,
}

/// What a served version of a CRD brings to its [`ResourceType`].
#[derive(Debug, Clone)]
pub struct Served {
    pub crd_name: String,
    /// `openAPIV3Schema`.
    pub schema: Value,
    /// Printer columns (the default `Age` column when the CRD has none).
    pub columns: Vec<Column>,
    pub storage_version_hash: String,
    /// The CRD has a deletionTimestamp: no creates, fewer verbs.
    pub terminating: bool,
    /// The schema has `x-kubernetes-validations` rules somewhere.
    pub has_rules: bool,
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// `discovery.StorageVersionHash`: base64 of the first 8 bytes of
/// sha256(`group/version/kind`).
pub fn storage_version_hash(group: &str, version: &str, kind: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{group}/{version}/{kind}").as_bytes(),
    );
    super::certs::base64(&digest.as_ref()[..8])
}

/// Defaults kube-apiserver fills in on a CRD (`SetDefaults_CustomResourceDefinition*`).
pub fn default(crd: &mut Value) {
    let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(names) = spec.get_mut("names").and_then(Value::as_object_mut) {
        let kind = names
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if names
            .get("singular")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            names.insert("singular".into(), json!(kind.to_lowercase()));
        }
        if names
            .get("listKind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
            && !kind.is_empty()
        {
            names.insert("listKind".into(), json!(format!("{kind}List")));
        }
    }
    spec.entry("conversion")
        .or_insert_with(|| json!({"strategy": "None"}));
    if let Some(versions) = spec.get_mut("versions").and_then(Value::as_array_mut) {
        for v in versions {
            if let Some(cols) = v
                .get_mut("additionalPrinterColumns")
                .and_then(Value::as_array_mut)
            {
                for c in cols {
                    if let Some(c) = c.as_object_mut() {
                        // priority 0 and format "" stay absent, as kube stores them.
                        c.retain(|k, v| !(k == "priority" && v == &json!(0)));
                    }
                }
            }
        }
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

/// `ValidateCustomResourceDefinition`, the parts that decide whether the
/// stand-in can serve the CRD as kube-apiserver would.
pub fn validate(crd: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = s(crd, "/metadata/name");
    let group = s(crd, "/spec/group");
    let plural = s(crd, "/spec/names/plural");
    let kind = s(crd, "/spec/names/kind");
    if group.is_empty() {
        errs.push(FieldError::required("spec.group", ""));
    } else if !group.contains('.') {
        errs.push(FieldError::invalid(
            "spec.group",
            &format!("\"{group}\""),
            "should be a domain with at least one dot",
        ));
    }
    if !name.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        errs.push(FieldError::invalid(
            "metadata.name",
            &format!("\"{name}\""),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    match s(crd, "/spec/scope") {
        "Cluster" | "Namespaced" => {}
        "" => errs.push(FieldError::required("spec.scope", "")),
        other => errs.push(FieldError::not_supported(
            "spec.scope",
            &format!("\"{other}\""),
            &["Cluster", "Namespaced"],
        )),
    }
    if plural.is_empty() {
        errs.push(FieldError::required("spec.names.plural", ""));
    } else if !is_dns_label(plural) {
        errs.push(FieldError::invalid(
            "spec.names.plural",
            &format!("\"{plural}\""),
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
        ));
    }
    if kind.is_empty() {
        errs.push(FieldError::required("spec.names.kind", ""));
    }
    let singular = s(crd, "/spec/names/singular");
    if !singular.is_empty() && !is_dns_label(singular) {
        errs.push(FieldError::invalid(
            "spec.names.singular",
            &format!("\"{singular}\""),
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
        ));
    }
    match s(crd, "/spec/conversion/strategy") {
        "" | "None" => {}
        "Webhook" => errs.push(FieldError::invalid(
            "spec.conversion.strategy",
            "\"Webhook\"",
            "kube-apiserver-standin serves conversion strategy None only",
        )),
        other => errs.push(FieldError::not_supported(
            "spec.conversion.strategy",
            &format!("\"{other}\""),
            &["None", "Webhook"],
        )),
    }
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        errs.push(FieldError::invalid(
            "spec.versions",
            "[]v1.CustomResourceDefinitionVersion(nil)",
            "must have exactly one version marked as storage version",
        ));
    }
    let storage = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count();
    if !versions.is_empty() && storage != 1 {
        errs.push(FieldError::invalid(
            "spec.versions",
            "[]v1.CustomResourceDefinitionVersion{...}",
            "must have exactly one version marked as storage version",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        let vname = s(v, "/name");
        if !is_dns_label(vname) {
            errs.push(FieldError::invalid(
                format!("spec.versions[{i}].name"),
                &format!("\"{vname}\""),
                "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character",
            ));
        }
        match v.pointer("/schema/openAPIV3Schema") {
            None => errs.push(FieldError::required(
                format!("spec.versions[{i}].schema.openAPIV3Schema"),
                "schemas are required",
            )),
            Some(schema) => errs.extend(schema::check_schema(
                schema,
                "spec.validation.openAPIV3Schema",
            )),
        }
        if let Some(cols) = v.get("additionalPrinterColumns").and_then(Value::as_array) {
            for (j, c) in cols.iter().enumerate() {
                let field = format!("spec.versions[{i}].additionalPrinterColumns[{j}]");
                if s(c, "/name").is_empty() {
                    errs.push(FieldError::required(format!("{field}.name"), ""));
                }
                let t = s(c, "/type");
                if !["integer", "number", "string", "boolean", "date"].contains(&t) {
                    errs.push(FieldError::not_supported(
                        format!("{field}.type"),
                        &format!("\"{t}\""),
                        &["integer", "number", "string", "boolean", "date"],
                    ));
                }
                let path = s(c, "/jsonPath");
                if path.is_empty() {
                    errs.push(FieldError::required(format!("{field}.JSONPath"), ""));
                } else if let Err(e) = super::table::JsonPath::parse(path) {
                    errs.push(FieldError::invalid(
                        format!("{field}.JSONPath"),
                        &format!("\"{path}\""),
                        &format!("must be a simple json path: {e}"),
                    ));
                }
            }
        }
    }
    errs
}

/// The status in the 201 answer to a create: the controllers have not run yet.
pub fn initial_status(crd: &Value) -> Value {
    json!({
        "conditions": null,
        "acceptedNames": {"plural": "", "kind": ""},
        "storedVersions": storage_versions(crd),
    })
}

fn storage_versions(crd: &Value) -> Vec<String> {
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .map(|v| s(v, "/name").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The status the naming and establishing controllers write: names accepted
/// unless `conflict` says which name another CRD already holds.
pub fn controller_status(crd: &Value, now: &str, conflict: Option<(&str, String)>) -> Value {
    let names = crd
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut stored: Vec<String> = crd
        .pointer("/status/storedVersions")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    for v in storage_versions(crd) {
        if !stored.contains(&v) {
            stored.push(v);
        }
    }
    let old_conditions = crd
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let since = |t: &str, status: &str| {
        old_conditions
            .iter()
            .find(|c| s(c, "/type") == t && s(c, "/status") == status)
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| json!(now))
    };
    let mut conditions = match &conflict {
        None => vec![
            json!({"lastTransitionTime": since("NamesAccepted", "True"), "message": "no conflicts found", "reason": "NoConflicts", "status": "True", "type": "NamesAccepted"}),
            json!({"lastTransitionTime": since("Established", "True"), "message": "the initial names have been accepted", "reason": "InitialNamesAccepted", "status": "True", "type": "Established"}),
        ],
        Some((reason, message)) => vec![
            json!({"lastTransitionTime": since("NamesAccepted", "False"), "message": message, "reason": reason, "status": "False", "type": "NamesAccepted"}),
            json!({"lastTransitionTime": since("Established", "False"), "message": "not all names are accepted", "reason": "NotAccepted", "status": "False", "type": "Established"}),
        ],
    };
    if crd.pointer("/metadata/deletionTimestamp").is_some() {
        conditions.push(json!({"lastTransitionTime": since("Terminating", "True"), "message": "CustomResource deletion is in progress", "reason": "InstanceDeletionInProgress", "status": "True", "type": "Terminating"}));
    }
    let accepted = if conflict.is_some() {
        crd.pointer("/status/acceptedNames")
            .cloned()
            .unwrap_or_else(|| json!({"plural": "", "kind": ""}))
    } else {
        names
    };
    json!({"acceptedNames": accepted, "conditions": conditions, "storedVersions": stored})
}

/// Whether the CRD is `Established=True`.
pub fn is_established(crd: &Value) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| s(c, "/type") == "Established" && s(c, "/status") == "True")
        })
}

/// Which name of `crd` another established CRD of the same group already
/// holds (`NamesAccepted=False`), as the naming controller reports it.
pub fn name_conflict(crd: &Value, others: &[&Value]) -> Option<(&'static str, String)> {
    let group = s(crd, "/spec/group");
    let plural = s(crd, "/spec/names/plural");
    let kind = s(crd, "/spec/names/kind");
    for o in others {
        if s(o, "/spec/group") != group || s(o, "/metadata/name") == s(crd, "/metadata/name") {
            continue;
        }
        let accepted = |k: &str| s(o, &format!("/status/acceptedNames/{k}")).to_owned();
        if accepted("plural") == plural {
            return Some(("PluralConflict", format!("\"{plural}\" is already in use")));
        }
        if accepted("kind") == kind {
            return Some(("KindConflict", format!("\"{kind}\" is already in use")));
        }
    }
    None
}

/// kube's version priority (`version.CompareKubeAwareVersionStrings`):
/// GA before beta before alpha, higher numbers first, then the rest by name.
pub fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn parse(v: &str) -> Option<(u64, u8, u64)> {
        let rest = v.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major: u64 = digits.parse().ok()?;
        let rest = &rest[digits.len()..];
        if rest.is_empty() {
            return Some((major, 2, 0));
        }
        let (stage, rest) = if let Some(r) = rest.strip_prefix("beta") {
            (1, r)
        } else if let Some(r) = rest.strip_prefix("alpha") {
            (0, r)
        } else {
            return None;
        };
        let minor: u64 = rest.parse().ok()?;
        Some((major, stage, minor))
    }
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => (y.1, y.0, y.2).cmp(&(x.1, x.0, x.2)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

fn columns(v: &Value) -> Vec<Column> {
    let cols: Vec<Column> = v
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| Column {
                    name: s(c, "/name").to_owned(),
                    type_: s(c, "/type").to_owned(),
                    format: s(c, "/format").to_owned(),
                    description: match s(c, "/description") {
                        "" => format!(
                            "Custom resource definition column (in JSONPath format): {}",
                            s(c, "/jsonPath")
                        ),
                        d => d.to_owned(),
                    },
                    priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                    json_path: s(c, "/jsonPath").to_owned(),
                })
                .collect()
        })
        .unwrap_or_default();
    if cols.is_empty() {
        // serveDefaultColumnsIfEmpty
        return vec![Column {
            name: "Age".into(),
            type_: "date".into(),
            format: String::new(),
            description: CREATION_TIMESTAMP_DESCRIPTION.into(),
            priority: 0,
            json_path: ".metadata.creationTimestamp".into(),
        }];
    }
    cols
}

/// The resource types an established CRD serves, one per served version
/// (highest priority first). Empty until `Established=True`.
pub fn served_types(crd: &Value) -> Vec<Rt> {
    if !is_established(crd) {
        return Vec::new();
    }
    let group = s(crd, "/spec/group").to_owned();
    let plural = s(crd, "/spec/names/plural").to_owned();
    let kind = s(crd, "/spec/names/kind").to_owned();
    let terminating = crd.pointer("/metadata/deletionTimestamp").is_some();
    let names = |k: &str| -> Vec<String> {
        crd.pointer(&format!("/spec/names/{k}"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out: Vec<Rt> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("served").and_then(Value::as_bool) == Some(true))
                .map(|v| {
                    let version = s(v, "/name").to_owned();
                    let schema = v
                        .pointer("/schema/openAPIV3Schema")
                        .cloned()
                        .unwrap_or_else(|| json!({"type": "object"}));
                    let verbs = if terminating {
                        TERMINATING_VERBS
                    } else {
                        VERBS
                    };
                    Arc::new(ResourceType {
                        group: group.clone(),
                        version: version.clone(),
                        resource: plural.clone(),
                        singular: s(crd, "/spec/names/singular").to_owned(),
                        kind: kind.clone(),
                        list_kind: s(crd, "/spec/names/listKind").to_owned(),
                        namespaced: s(crd, "/spec/scope") == "Namespaced",
                        short_names: names("shortNames"),
                        categories: names("categories"),
                        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
                        status_subresource: v.pointer("/subresources/status").is_some(),
                        storage: format!("{group}/{plural}"),
                        custom: Some(Arc::new(Served {
                            crd_name: s(crd, "/metadata/name").to_owned(),
                            has_rules: schema::has_rules(&schema),
                            schema,
                            columns: columns(v),
                            storage_version_hash: storage_version_hash(&group, &version, &kind),
                            terminating,
                        })),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| version_order(&a.version, &b.version));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_version_hash_is_kubes() {
        // As observed for probes.example.test/v1alpha1 Widget.
        assert_eq!(
            storage_version_hash("probes.example.test", "v1alpha1", "Widget"),
            "pL0w+wU44aw="
        );
    }

    #[test]
    fn version_priority() {
        let mut v = vec!["v1alpha1", "v2", "v1beta2", "v1", "foo", "v1beta1", "v10"];
        v.sort_by(|a, b| version_order(a, b));
        assert_eq!(
            v,
            vec!["v10", "v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]
        );
    }
}
