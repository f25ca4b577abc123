//! Structural schemas of custom resources, the way
//! `k8s.io/apiextensions-apiserver` applies them to a request body:
//! pruning of unknown fields (with the paths `fieldValidation` reports),
//! dropping of nulls on non-nullable fields, defaulting, OpenAPI validation
//! (kube-openapi's messages, turned into `field.Error`s as
//! `validation.ValidateCustomResource` does) and the `x-kubernetes-validations`
//! CEL rules (with the [`cel`] crate; `oldSelf` rules only on update).

use serde_json::{Map, Value};

use super::status::FieldError;

/// ObjectMeta's JSON fields: anything else under `metadata` is unknown.
pub const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

fn preserves_unknown(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

fn is_embedded(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-embedded-resource")
        .and_then(Value::as_bool)
        == Some(true)
}

fn nullable(schema: &Value) -> bool {
    schema.get("nullable").and_then(Value::as_bool) == Some(true)
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Whether the schema has `x-kubernetes-validations` anywhere.
pub fn has_rules(schema: &Value) -> bool {
    match schema {
        Value::Object(m) => {
            m.get("x-kubernetes-validations")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
                || m.values().any(has_rules)
        }
        Value::Array(a) => a.iter().any(has_rules),
        _ => false,
    }
}

/// Checks of a CRD's schema: every CEL rule compiles.
pub fn check_schema(schema: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(rules) = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        for (i, r) in rules.iter().enumerate() {
            let rule = r.get("rule").and_then(Value::as_str).unwrap_or("");
            let field = format!("{path}.x-kubernetes-validations[{i}].rule");
            if rule.is_empty() {
                errs.push(FieldError::required(field, ""));
            } else if let Err(e) = cel::Program::compile(rule) {
                errs.push(FieldError::invalid(
                    field,
                    &format!("\"{rule}\""),
                    &format!("compilation failed: {e}"),
                ));
            }
        }
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            errs.extend(check_schema(v, &format!("{path}.properties[{k}]")));
        }
    }
    if let Some(items) = schema.get("items") {
        errs.extend(check_schema(items, &format!("{path}.items")));
    }
    if let Some(ap) = schema.get("additionalProperties")
        && ap.is_object()
    {
        errs.extend(check_schema(ap, &format!("{path}.additionalProperties")));
    }
    errs
}

/// Remove what the schema does not declare; returns the unknown fields'
/// paths (`extra`, `spec.color`, `metadata.bogusMeta`). Nulls on
/// non-nullable fields are dropped too (not reported), as kube does before
/// defaulting.
pub fn prune_object(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut unknown = Vec::new();
    let Some(map) = obj.as_object_mut() else {
        return unknown;
    };
    if let Some(Value::Object(meta)) = map.get_mut("metadata") {
        meta.retain(|k, _| {
            let known = OBJECT_META_FIELDS.contains(&k.as_str());
            if !known {
                unknown.push(format!("metadata.{k}"));
            }
            known
        });
    }
    let props = schema.get("properties").and_then(Value::as_object);
    let keys: Vec<String> = map.keys().cloned().collect();
    for k in keys {
        if ["apiVersion", "kind", "metadata"].contains(&k.as_str()) {
            continue;
        }
        match props.and_then(|p| p.get(&k)) {
            Some(s) => {
                if let Some(v) = map.get_mut(&k) {
                    if v.is_null() && !nullable(s) {
                        map.remove(&k);
                    } else {
                        prune(s, v, &k, &mut unknown);
                    }
                }
            }
            None if preserves_unknown(schema) => {}
            None => {
                map.remove(&k);
                unknown.push(k);
            }
        }
    }
    unknown
}

fn prune(schema: &Value, value: &mut Value, path: &str, unknown: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                if is_embedded(schema) && ["apiVersion", "kind", "metadata"].contains(&k.as_str()) {
                    continue;
                }
                let sub = props.and_then(|p| p.get(&k)).or(additional);
                match sub {
                    Some(s) => {
                        if let Some(v) = map.get_mut(&k) {
                            if v.is_null() && !nullable(s) {
                                map.remove(&k);
                            } else {
                                prune(s, v, &child(path, &k), unknown);
                            }
                        }
                    }
                    None if preserves_unknown(schema) => {}
                    None => {
                        map.remove(&k);
                        unknown.push(child(path, &k));
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, v) in items.iter_mut().enumerate() {
                    prune(s, v, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

/// Apply `default`s to missing fields (and to nulls of non-nullable ones).
pub fn apply_defaults(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, s) in props {
                    if let Some(d) = s.get("default")
                        && map.get(k).is_none_or(|v| v.is_null() && !nullable(s))
                    {
                        map.insert(k.clone(), d.clone());
                    }
                    if let Some(v) = map.get_mut(k) {
                        apply_defaults(s, v);
                    }
                }
            }
            if let Some(ap) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for v in map.values_mut() {
                    apply_defaults(ap, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for v in items {
                    apply_defaults(s, v);
                }
            }
        }
        _ => {}
    }
}

/// The JSON type name kube-openapi reports for a value.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A number the way Go's `%v` prints it.
fn go_number(v: &Value) -> String {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.to_string()
            } else if let Some(u) = n.as_u64() {
                u.to_string()
            } else {
                let f = n.as_f64().unwrap_or(0.0);
                if f.fract() == 0.0 && f.abs() < 1e21 {
                    format!("{f:.0}")
                } else {
                    f.to_string()
                }
            }
        }
        other => other.to_string(),
    }
}

/// A bad value the way `field.Error` prints it.
pub fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "\"null\"".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(_) => go_number(v),
        Value::String(s) => format!("{s:?}"),
        Value::Array(_) => format!("[]interface {{}}{v}"),
        Value::Object(_) => format!("map[string]interface {{}}{v}"),
    }
}

fn valid_date_time(s: &str) -> bool {
    s.parse::<jiff::Timestamp>().is_ok()
        || jiff::civil::DateTime::strptime("%Y-%m-%dT%H:%M:%S", s).is_ok()
}

fn check_format(format: &str, s: &str) -> bool {
    match format {
        "date-time" => valid_date_time(s),
        "date" => jiff::civil::Date::strptime("%Y-%m-%d", s).is_ok(),
        "uuid" => {
            s.len() == 36
                && s.char_indices().all(|(i, c)| {
                    if [8, 13, 18, 23].contains(&i) {
                        c == '-'
                    } else {
                        c.is_ascii_hexdigit()
                    }
                })
        }
        _ => true,
    }
}

/// Validate `value` at `path` (already pruned and defaulted) against `schema`.
pub fn validate(schema: &Value, value: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let name = if path.is_empty() { "." } else { path };
    if value.is_null() {
        if nullable(schema) {
            return;
        }
        if let Some(t) = schema.get("type").and_then(Value::as_str) {
            errs.push(FieldError::new(
                path,
                "FieldValueTypeInvalid",
                format!("Invalid value: \"null\": {name} in body must be of type {t}: \"null\""),
            ));
        }
        return;
    }
    let int_or_string = schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true);
    if let Some(want) = schema.get("type").and_then(Value::as_str) {
        let actual = type_name(value);
        let ok = actual == want
            || (want == "number" && actual == "integer")
            || (int_or_string && (actual == "integer" || actual == "string"));
        if !ok {
            errs.push(FieldError::new(
                path,
                "FieldValueTypeInvalid",
                format!("Invalid value: \"{actual}\": {name} in body must be of type {want}: \"{actual}\""),
            ));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed
            .iter()
            .map(|a| match a {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        let shown = match value {
            Value::String(s) => format!("{s:?}"),
            other => format!("{:?}", other.to_string()),
        };
        let refs: Vec<&str> = list.iter().map(String::as_str).collect();
        errs.push(FieldError::not_supported(path, &shown, &refs));
    }
    match value {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            let bound = |k: &str| schema.get(k).and_then(Value::as_f64);
            let exclusive = |k: &str| schema.get(k).and_then(Value::as_bool) == Some(true);
            if let Some(min) = bound("minimum") {
                let (bad, words) = if exclusive("exclusiveMinimum") {
                    (x <= min, "greater than")
                } else {
                    (x < min, "greater than or equal to")
                };
                if bad {
                    errs.push(FieldError::invalid(
                        path,
                        &go_number(value),
                        &format!(
                            "{name} in body should be {words} {}",
                            go_number(&schema["minimum"])
                        ),
                    ));
                }
            }
            if let Some(max) = bound("maximum") {
                let (bad, words) = if exclusive("exclusiveMaximum") {
                    (x >= max, "less than")
                } else {
                    (x > max, "less than or equal to")
                };
                if bad {
                    errs.push(FieldError::invalid(
                        path,
                        &go_number(value),
                        &format!(
                            "{name} in body should be {words} {}",
                            go_number(&schema["maximum"])
                        ),
                    ));
                }
            }
            if let Some(m) = bound("multipleOf")
                && m != 0.0
                && (x / m).fract() != 0.0
            {
                errs.push(FieldError::invalid(
                    path,
                    &go_number(value),
                    &format!(
                        "{name} in body should be a multiple of {}",
                        go_number(&schema["multipleOf"])
                    ),
                ));
            }
        }
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                && len > max
            {
                errs.push(FieldError::new(
                    path,
                    "FieldValueTooLong",
                    format!("Too long: may not be longer than {max}"),
                ));
            }
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                && len < min
            {
                errs.push(FieldError::invalid(
                    path,
                    &format!("{s:?}"),
                    &format!("{name} in body should be at least {min} chars long"),
                ));
            }
            if let Some(p) = schema.get("pattern").and_then(Value::as_str)
                && regex::Regex::new(p).is_ok_and(|re| !re.is_match(s))
            {
                errs.push(FieldError::invalid(
                    path,
                    &format!("{s:?}"),
                    &format!("{name} in body should match '{p}'"),
                ));
            }
            if let Some(f) = schema.get("format").and_then(Value::as_str)
                && !check_format(f, s)
            {
                errs.push(FieldError::new(
                    path,
                    "FieldValueTypeInvalid",
                    format!("Invalid value: {s:?}: {name} in body must be of type {f}: {s:?}"),
                ));
            }
        }
        Value::Array(items) => {
            let n = items.len() as u64;
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && n > max
            {
                errs.push(FieldError::new(
                    path,
                    "FieldValueTooMany",
                    format!("Too many: {n}: must have at most {max} items"),
                ));
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && n < min
            {
                errs.push(FieldError::invalid(
                    path,
                    &go_value(value),
                    &format!("{name} in body should have at least {min} items"),
                ));
            }
            if let Some(s) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    validate(s, v, &format!("{path}[{i}]"), errs);
                }
            }
        }
        Value::Object(map) => {
            if let Some(req) = schema.get("required").and_then(Value::as_array) {
                for r in req.iter().filter_map(Value::as_str) {
                    if !map.contains_key(r) {
                        errs.push(FieldError::required(child(path, r), ""));
                    }
                }
            }
            let n = map.len() as u64;
            if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
                && n > max
            {
                errs.push(FieldError::new(
                    path,
                    "FieldValueTooMany",
                    format!("Too many: {n}: must have at most {max} items"),
                ));
            }
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, v) in map {
                if path.is_empty() && ["apiVersion", "kind", "metadata"].contains(&k.as_str()) {
                    continue;
                }
                if let Some(s) = props.and_then(|p| p.get(k)).or(additional) {
                    validate(s, v, &child(path, k), errs);
                }
            }
        }
        _ => {}
    }
}

/// JSON to a CEL value (integers as `int`, as kube's CEL types them).
fn to_cel(v: &Value) -> cel::Value {
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => cel::Value::Int(i),
            None => cel::Value::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => cel::Value::String(std::sync::Arc::new(s.clone())),
        Value::Array(a) => cel::Value::List(std::sync::Arc::new(a.iter().map(to_cel).collect())),
        Value::Object(m) => {
            let map: std::collections::HashMap<cel::objects::Key, cel::Value> = m
                .iter()
                .map(|(k, v)| {
                    (
                        cel::objects::Key::String(std::sync::Arc::new(k.clone())),
                        to_cel(v),
                    )
                })
                .collect();
            cel::Value::Map(cel::objects::Map {
                map: std::sync::Arc::new(map),
            })
        }
    }
}

fn mentions_old_self(rule: &str) -> bool {
    rule.match_indices("oldSelf").any(|(i, _)| {
        let before = rule[..i].chars().next_back();
        let after = rule[i + "oldSelf".len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

fn rule_error(
    path: &str,
    schema_type: &str,
    rule: &Map<String, Value>,
    detail: String,
) -> FieldError {
    let field = match rule.get("fieldPath").and_then(Value::as_str) {
        Some(fp) if !fp.is_empty() => format!("{path}{fp}"),
        _ => path.to_owned(),
    };
    match rule.get("reason").and_then(Value::as_str) {
        Some("FieldValueForbidden") => FieldError::forbidden(field, &detail),
        Some("FieldValueRequired") => FieldError::required(field, &detail),
        Some("FieldValueDuplicate") => FieldError::new(
            field,
            "FieldValueDuplicate",
            format!("Duplicate value: \"{schema_type}\": {detail}"),
        ),
        _ => FieldError::invalid(field, &format!("\"{schema_type}\""), &detail),
    }
}

/// Run the `x-kubernetes-validations` rules over `value` (and `old`, on update).
pub fn validate_rules(
    schema: &Value,
    value: &Value,
    old: Option<&Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    if value.is_null() {
        return;
    }
    if let Some(rules) = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        let schema_type = schema
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("object");
        for r in rules.iter().filter_map(Value::as_object) {
            let rule = r.get("rule").and_then(Value::as_str).unwrap_or("");
            let transition = mentions_old_self(rule);
            if transition && old.is_none() {
                continue;
            }
            let program = match cel::Program::compile(rule) {
                Ok(p) => p,
                Err(e) => {
                    errs.push(rule_error(
                        path,
                        schema_type,
                        r,
                        format!("compilation failed: {e}"),
                    ));
                    continue;
                }
            };
            let mut ctx = cel::Context::default();
            ctx.add_variable_from_value("self", to_cel(value));
            if let Some(o) = old {
                ctx.add_variable_from_value("oldSelf", to_cel(o));
            }
            let message = || match r.get("message").and_then(Value::as_str) {
                Some(m) if !m.is_empty() => m.to_owned(),
                _ => format!("failed rule: {rule}"),
            };
            // A rule is the CRD author's code: a panic in the interpreter
            // must not take the request down without a Status.
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| program.execute(&ctx)));
            let Ok(result) = result else {
                errs.push(rule_error(
                    path,
                    schema_type,
                    r,
                    "rule evaluation failed".into(),
                ));
                continue;
            };
            match result {
                Ok(cel::Value::Bool(true)) => {}
                Ok(cel::Value::Bool(false)) => {
                    errs.push(rule_error(path, schema_type, r, message()));
                }
                Ok(other) => errs.push(rule_error(
                    path,
                    schema_type,
                    r,
                    format!("rule did not evaluate to a bool: {other:?}"),
                )),
                Err(e) => errs.push(rule_error(path, schema_type, r, e.to_string())),
            }
        }
    }
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, v) in map {
                if path.is_empty() && ["apiVersion", "kind", "metadata"].contains(&k.as_str()) {
                    continue;
                }
                if let Some(s) = props.and_then(|p| p.get(k)).or(additional) {
                    let o = old.and_then(|o| o.get(k));
                    validate_rules(s, v, o, &child(path, k), errs);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                // Only map/set lists correlate items with the old object.
                let list_type = schema.get("x-kubernetes-list-type").and_then(Value::as_str);
                for (i, v) in items.iter().enumerate() {
                    let o = match list_type {
                        Some("set") => old
                            .and_then(Value::as_array)
                            .and_then(|a| a.iter().find(|x| *x == v)),
                        Some("map") => {
                            let keys: Vec<&str> = schema
                                .get("x-kubernetes-list-map-keys")
                                .and_then(Value::as_array)
                                .map(|k| k.iter().filter_map(Value::as_str).collect())
                                .unwrap_or_default();
                            old.and_then(Value::as_array).and_then(|a| {
                                a.iter()
                                    .find(|x| keys.iter().all(|k| x.get(*k) == v.get(*k)))
                            })
                        }
                        _ => None,
                    };
                    validate_rules(s, v, o, &format!("{path}[{i}]"), errs);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn widget_schema() -> Value {
        json!({"type":"object","properties":{
            "spec":{"type":"object","required":["name"],
              "x-kubernetes-validations":[{"rule":"self == oldSelf","message":"spec is immutable"}],
              "properties":{"name":{"type":"string"},
                "timeoutSeconds":{"type":"integer","minimum":0,"maximum":3600},
                "containers":{"type":"array","items":{"type":"string"}}}},
            "status":{"type":"object","properties":{"phase":{"type":"string"}}}}})
    }

    #[test]
    fn pruning_reports_paths() {
        let mut o = json!({"apiVersion":"a/v1","kind":"W","metadata":{"name":"x","bogusMeta":1},"extra":1,"spec":{"name":"a","color":"red"}});
        let unknown = prune_object(&widget_schema(), &mut o);
        assert_eq!(unknown, vec!["metadata.bogusMeta", "extra", "spec.color"]);
        assert_eq!(
            o,
            json!({"apiVersion":"a/v1","kind":"W","metadata":{"name":"x"},"spec":{"name":"a"}})
        );
    }

    #[test]
    fn messages_as_kube_openapi() {
        let s = widget_schema();
        let mut errs = Vec::new();
        validate(
            &s,
            &json!({"spec":{"timeoutSeconds":"abc","containers":[1]}}),
            "",
            &mut errs,
        );
        let texts: Vec<String> = errs.iter().map(FieldError::text).collect();
        assert_eq!(
            texts,
            vec![
                "spec.name: Required value",
                "spec.containers[0]: Invalid value: \"integer\": spec.containers[0] in body must be of type string: \"integer\"",
                "spec.timeoutSeconds: Invalid value: \"string\": spec.timeoutSeconds in body must be of type integer: \"string\"",
            ]
        );
        let mut errs = Vec::new();
        validate(
            &s,
            &json!({"spec":{"name":"a","timeoutSeconds":-1}}),
            "",
            &mut errs,
        );
        assert_eq!(
            errs[0].text(),
            "spec.timeoutSeconds: Invalid value: -1: spec.timeoutSeconds in body should be greater than or equal to 0"
        );
    }

    #[test]
    fn keywords_defaults_and_nulls() {
        let s = json!({"type": "object", "properties": {
            "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
            "tag": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 3, "minLength": 2},
            "list": {"type": "array", "maxItems": 2, "minItems": 1, "items": {"type": "integer"}},
            "opt": {"type": "integer", "nullable": true},
            "n": {"type": "integer", "default": 5},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "port": {"x-kubernetes-int-or-string": true},
            "ratio": {"type": "number", "exclusiveMinimum": true, "minimum": 0}}});
        let mut o = json!({"tag": "x", "list": [1, 2, 3], "opt": null, "n": null, "free": {"any": {"thing": 1}}, "port": "http", "ratio": 0});
        assert!(prune_object(&s, &mut o).is_empty());
        apply_defaults(&s, &mut o);
        assert_eq!(o["mode"], "a");
        assert_eq!(
            o["n"], 5,
            "a null on a non-nullable field is dropped, then defaulted"
        );
        assert_eq!(o["opt"], Value::Null);
        assert_eq!(o["free"]["any"]["thing"], 1);
        let mut errs = Vec::new();
        validate(&s, &o, "", &mut errs);
        let texts: Vec<String> = errs.iter().map(FieldError::text).collect();
        assert_eq!(
            texts,
            vec![
                "list: Too many: 3: must have at most 2 items",
                "ratio: Invalid value: 0: ratio in body should be greater than 0",
                "tag: Invalid value: \"x\": tag in body should be at least 2 chars long",
            ]
        );
        let mut errs = Vec::new();
        validate(&s, &json!({"mode": "c", "tag": "ABCD"}), "", &mut errs);
        let texts: Vec<String> = errs.iter().map(FieldError::text).collect();
        assert_eq!(
            texts,
            vec![
                "mode: Unsupported value: \"c\": supported values: \"a\", \"b\"",
                "tag: Too long: may not be longer than 3",
                "tag: Invalid value: \"ABCD\": tag in body should match '^[a-z]+$'",
            ]
        );
        assert!(errs[0].blocks_rules() && errs[1].blocks_rules() && !errs[2].blocks_rules());
    }

    #[test]
    fn transition_rules_run_on_update_only() {
        let s = widget_schema();
        let new = json!({"spec":{"name":"a","timeoutSeconds":31}});
        let old = json!({"spec":{"name":"a","timeoutSeconds":30}});
        let mut errs = Vec::new();
        validate_rules(&s, &new, None, "", &mut errs);
        assert!(errs.is_empty());
        validate_rules(&s, &new, Some(&old), "", &mut errs);
        assert_eq!(
            errs[0].text(),
            "spec: Invalid value: \"object\": spec is immutable"
        );
        let mut errs = Vec::new();
        validate_rules(&s, &old, Some(&old.clone()), "", &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
    }
}
