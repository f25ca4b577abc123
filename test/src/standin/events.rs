//! The two Event APIs, one set of objects: kube-apiserver stores
//! `events.k8s.io/v1` Events as core Events and converts between them
//! (`k8s.io/kubernetes/pkg/apis/events/v1/conversion.go`). Objects are kept
//! in the core form; this converts the `events.k8s.io` view in and out, maps
//! its field selectors, and validates its creates (`ValidateEventCreate`).

use serde_json::{Map, Value, json};

use super::status::FieldError;

/// `(events.k8s.io field, core field)`.
const FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("reportingController", "reportingComponent"),
];

/// Fields both forms share.
const SHARED: &[&str] = &[
    "metadata",
    "eventTime",
    "series",
    "reportingInstance",
    "action",
    "reason",
    "related",
    "type",
];

fn rename(from: &Map<String, Value>, to_new: bool) -> Map<String, Value> {
    let mut out = Map::new();
    for k in SHARED {
        if let Some(v) = from.get(*k) {
            out.insert((*k).to_owned(), v.clone());
        }
    }
    for (new, core) in FIELDS {
        let (src, dst) = if to_new { (core, new) } else { (new, core) };
        if let Some(v) = from.get(*src) {
            out.insert((*dst).to_owned(), v.clone());
        }
    }
    if let Some(series) = out.get_mut("series").and_then(Value::as_object_mut) {
        // core: {count, lastObservedTime}; events.k8s.io: the same names.
        series.remove("state");
    }
    out
}

/// A stored (core) Event as `events.k8s.io/v1` shows it.
pub fn to_v1(core: &Value) -> Value {
    let Some(m) = core.as_object() else {
        return core.clone();
    };
    let mut out = rename(m, true);
    out.insert("apiVersion".into(), json!("events.k8s.io/v1"));
    out.insert("kind".into(), json!("Event"));
    out.entry("deprecatedSource").or_insert_with(|| json!({}));
    out.entry("deprecatedFirstTimestamp").or_insert(Value::Null);
    out.entry("deprecatedLastTimestamp").or_insert(Value::Null);
    out.entry("eventTime").or_insert(Value::Null);
    if out.get("deprecatedCount") == Some(&json!(0)) {
        out.remove("deprecatedCount");
    }
    Value::Object(out)
}

/// An `events.k8s.io/v1` Event in the core form it is stored in.
pub fn from_v1(v1: &Value) -> Value {
    let Some(m) = v1.as_object() else {
        return v1.clone();
    };
    let mut out = rename(m, false);
    out.insert("apiVersion".into(), json!("v1"));
    out.insert("kind".into(), json!("Event"));
    Value::Object(out)
}

/// The fields a core Event always shows (Go's non-omitempty fields).
pub fn complete_core(core: &mut Value) {
    if let Some(m) = core.as_object_mut() {
        m.entry("source").or_insert_with(|| json!({}));
        m.entry("firstTimestamp").or_insert(Value::Null);
        m.entry("lastTimestamp").or_insert(Value::Null);
        m.entry("eventTime").or_insert(Value::Null);
        m.entry("reportingComponent").or_insert_with(|| json!(""));
        m.entry("reportingInstance").or_insert_with(|| json!(""));
        m.entry("involvedObject").or_insert_with(|| json!({}));
    }
}

/// An `events.k8s.io` field selector term in core terms; `None` when not supported.
pub fn v1_field_to_core(field: &str) -> Option<String> {
    if let Some(rest) = field.strip_prefix("regarding.") {
        return Some(format!("involvedObject.{rest}"));
    }
    match field {
        "metadata.name" | "metadata.namespace" | "reason" | "type" => Some(field.to_owned()),
        "reportingController" => Some("reportingComponent".into()),
        "deprecatedSource" => Some("source".into()),
        _ => None,
    }
}

/// `ValidateEventCreate` for `events.k8s.io/v1` (on the core form).
pub fn validate_v1_create(core: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let s = |p: &str| core.pointer(p).and_then(Value::as_str).unwrap_or("");
    let ns = s("/metadata/namespace");
    let involved_ns = s("/involvedObject/namespace");
    if involved_ns != ns {
        errs.push(FieldError::invalid(
            "involvedObject.namespace",
            &format!("{involved_ns:?}"),
            "does not match event.namespace",
        ));
    }
    if core.get("eventTime").is_none_or(Value::is_null) {
        errs.push(FieldError::required("eventTime", ""));
    }
    let t = s("/type");
    if t != "Normal" && t != "Warning" {
        errs.push(FieldError::invalid(
            "type",
            "\"\"",
            &format!("has invalid value: {t}"),
        ));
    }
    for (path, field) in [
        ("/reportingComponent", "reportingController"),
        ("/reportingInstance", "reportingInstance"),
        ("/action", "action"),
        ("/reason", "reason"),
    ] {
        if s(path).is_empty() {
            errs.push(FieldError::required(field, ""));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let v1 = json!({"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{"name":"e","namespace":"d"},
            "regarding":{"kind":"Widget","name":"w1","namespace":"d"},"reason":"R","note":"n","type":"Warning",
            "action":"A","reportingController":"c","reportingInstance":"i","eventTime":"2026-11-30T05:46:01.000000Z"});
        let core = from_v1(&v1);
        assert_eq!(core["involvedObject"]["name"], "w1");
        assert_eq!(core["message"], "n");
        assert_eq!(core["reportingComponent"], "c");
        assert!(validate_v1_create(&core).is_empty());
        let back = to_v1(&core);
        assert_eq!(back["regarding"], v1["regarding"]);
        assert_eq!(back["deprecatedSource"], json!({}));
        assert_eq!(back["deprecatedFirstTimestamp"], Value::Null);
    }
}
