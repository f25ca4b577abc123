//! What kube-apiserver checks on a custom resource before it is stored
//! (`customResourceStrategy.Validate`/`ValidateUpdate`): the OpenAPI schema,
//! then the CEL rules unless a blocking schema error stopped them (the
//! synthetic `<nil>` cause). `/status` writes validate the `status` subtree
//! with paths relative to it, as kube-apiserver does.

use apiserver_lib::StatusError;
use serde_json::Value;

use super::resources::ResourceType;
use super::schema;
use super::status::{self, FieldError};

/// Validate a custom resource (`old` on update). Built-ins pass.
pub fn validate_custom(
    rt: &ResourceType,
    new: &Value,
    old: Option<&Value>,
    status_only: bool,
) -> Result<(), StatusError> {
    let Some(custom) = &rt.custom else {
        return Ok(());
    };
    let mut errs: Vec<FieldError> = Vec::new();
    if status_only {
        if let (Some(s), Some(st)) = (
            custom.schema.pointer("/properties/status"),
            new.get("status"),
        ) {
            schema::validate(s, st, "", &mut errs);
        }
    } else {
        schema::validate(&custom.schema, new, "", &mut errs);
    }
    if custom.has_rules {
        if errs.iter().any(FieldError::blocks_rules) {
            errs.push(FieldError::rules_not_checked());
        } else {
            schema::validate_rules(&custom.schema, new, old, "", &mut errs);
        }
    }
    if errs.is_empty() {
        return Ok(());
    }
    let name = new
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    Err(status::invalid_object(rt, name, &errs))
}
