//! The `metav1.Status` failures the stand-in answers with, worded as
//! `k8s.io/apimachinery/pkg/api/errors` words them. Reasons the project's
//! contract shares come from `api_types::status`; the storage-only ones
//! (AlreadyExists, Invalid) are built here.

use api_types::StatusReason;
use api_types::k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusDetails};
use api_types::status;
use apiserver_lib::StatusError;

use super::resources::ResourceType;

/// A Status with any reason and code.
pub fn with_reason(
    code: u16,
    reason: &str,
    message: String,
    details: Option<StatusDetails>,
) -> StatusError {
    StatusError(Status {
        code: Some(i32::from(code)),
        details,
        message: Some(message),
        metadata: Default::default(),
        reason: Some(reason.to_owned()),
        status: Some("Failure".to_owned()),
    })
}

fn details(rt: &ResourceType, name: &str) -> StatusDetails {
    status::details(&rt.group, &rt.resource, name)
}

/// 404 `pods "x" not found`.
pub fn not_found(rt: &ResourceType, name: &str) -> StatusError {
    StatusError(status::failure(
        StatusReason::NotFound,
        format!("{} \"{name}\" not found", rt.qualified()),
        Some(details(rt, name)),
    ))
}

/// 404 for a path nothing serves (kube-apiserver's body for unknown paths).
pub fn path_not_found() -> StatusError {
    StatusError(status::not_found(
        "the server could not find the requested resource",
    ))
}

/// 409 `pods "x" already exists`.
pub fn already_exists(rt: &ResourceType, name: &str) -> StatusError {
    with_reason(
        409,
        "AlreadyExists",
        format!("{} \"{name}\" already exists", rt.qualified()),
        Some(details(rt, name)),
    )
}

/// 409 on a stale resourceVersion.
pub fn conflict(rt: &ResourceType, name: &str) -> StatusError {
    with_reason(
        409,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
            rt.qualified()
        ),
        Some(details(rt, name)),
    )
}

/// 422 `Kind "x" is invalid: field: reason`.
pub fn invalid(rt: &ResourceType, name: &str, cause: &str) -> StatusError {
    with_reason(
        422,
        "Invalid",
        format!("{} \"{name}\" is invalid: {cause}", rt.qualified_kind()),
        Some(StatusDetails {
            kind: Some(rt.kind.clone()),
            ..details(rt, name)
        }),
    )
}

/// 400 with a message.
pub fn bad_request(message: impl Into<String>) -> StatusError {
    StatusError(status::bad_request(message))
}

/// 405 for a verb the resource does not support.
pub fn method_not_supported(rt: &ResourceType, verb: &str) -> StatusError {
    with_reason(
        405,
        "MethodNotAllowed",
        format!(
            "{verb} is not supported on resources of kind \"{}\"",
            rt.qualified()
        ),
        Some(details(rt, "")),
    )
}

/// 401.
pub fn unauthorized() -> StatusError {
    StatusError(status::unauthorized())
}

/// 403 for a non-resource path: `forbidden: User "u" cannot get path "/x"`.
pub fn forbidden_path(user: &str, verb: &str, path: &str) -> StatusError {
    StatusError(status::failure(
        StatusReason::Forbidden,
        format!("forbidden: User \"{user}\" cannot {verb} path \"{path}\""),
        Some(StatusDetails::default()),
    ))
}

/// The message kube-apiserver's request timeout answers with.
pub const TIMEOUT_MESSAGE: &str = "the server was unable to return a response in the time allotted, but may still be processing the request";

/// 504 past `--request-timeout`.
pub fn timeout() -> StatusError {
    StatusError(status::timeout(TIMEOUT_MESSAGE))
}

/// 503 from the aggregator when the backend cannot be reached.
pub fn service_unavailable(message: impl Into<String>) -> StatusError {
    StatusError(status::service_unavailable(message))
}

/// 500.
pub fn internal(message: impl Into<String>) -> StatusError {
    StatusError(status::internal_error(message))
}

/// One `field.Error`: where, why (`FieldValueInvalid`, ...) and the message
/// after the field (`Invalid value: -1: ...`). `field: None` is the `<nil>`
/// path of `field.Invalid(nil, ...)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: Option<String>,
    pub reason: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            reason,
            message: message.into(),
        }
    }

    /// `field.Required`.
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        let message = if detail.is_empty() {
            "Required value".to_owned()
        } else {
            format!("Required value: {detail}")
        };
        Self::new(field, "FieldValueRequired", message)
    }

    /// `field.Invalid` with the value already rendered the Go way (`-1`, `"abc"`).
    pub fn invalid(field: impl Into<String>, value: &str, detail: &str) -> Self {
        Self::new(
            field,
            "FieldValueInvalid",
            format!("Invalid value: {value}: {detail}"),
        )
    }

    /// `field.Forbidden`.
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        Self::new(field, "FieldValueForbidden", format!("Forbidden: {detail}"))
    }

    /// `field.NotSupported`.
    pub fn not_supported(field: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        Self::new(
            field,
            "FieldValueNotSupported",
            format!(
                "Unsupported value: {value}: supported values: {}",
                list.join(", ")
            ),
        )
    }

    /// The `<nil>` cause kube-apiserver adds when schema errors stop the CEL rules.
    pub fn rules_not_checked() -> Self {
        Self {
            field: None,
            reason: "FieldValueInvalid",
            message: "Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation".into(),
        }
    }

    /// Whether this error keeps the CEL rules from running
    /// (`apiextensions-apiserver` `hasBlockingErr`).
    pub fn blocks_rules(&self) -> bool {
        matches!(
            self.reason,
            "FieldValueNotSupported"
                | "FieldValueRequired"
                | "FieldValueTooLong"
                | "FieldValueTooMany"
                | "FieldValueTypeInvalid"
        )
    }

    fn field_text(&self) -> &str {
        self.field.as_deref().unwrap_or("<nil>")
    }

    /// `field: message`, as `field.Error.Error()` prints it.
    pub fn text(&self) -> String {
        format!("{}: {}", self.field_text(), self.message)
    }
}

/// 422 `Kind.group "name" is invalid: ...` (`errors.NewInvalid`): one error
/// plainly, several inside `[...]`; `details.kind` is the Kind.
pub fn invalid_fields(
    qualified_kind: &str,
    group: &str,
    kind: &str,
    name: &str,
    errors: &[FieldError],
) -> StatusError {
    // `utilerrors.NewAggregate(...).Error()`: identical messages once.
    let mut texts: Vec<String> = Vec::new();
    for e in errors {
        let t = e.text();
        if !texts.contains(&t) {
            texts.push(t);
        }
    }
    let text = match texts.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    let causes = errors
        .iter()
        .map(
            |e| api_types::k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusCause {
                field: Some(e.field_text().to_owned()),
                message: Some(e.message.clone()),
                reason: Some(e.reason.to_owned()),
            },
        )
        .collect();
    with_reason(
        422,
        "Invalid",
        format!("{qualified_kind} \"{name}\" is invalid: {text}"),
        Some(StatusDetails {
            name: (!name.is_empty()).then(|| name.to_owned()),
            group: (!group.is_empty()).then(|| group.to_owned()),
            kind: Some(kind.to_owned()),
            causes: Some(causes),
            ..Default::default()
        }),
    )
}

/// 422 for a type's object.
pub fn invalid_object(rt: &ResourceType, name: &str, errors: &[FieldError]) -> StatusError {
    invalid_fields(&rt.qualified_kind(), &rt.group, &rt.kind, name, errors)
}

/// 422 for request options (`CreateOptions.meta.k8s.io "" is invalid: ...`).
pub fn invalid_options(options_kind: &str, errors: &[FieldError]) -> StatusError {
    invalid_fields(
        &format!("{options_kind}.meta.k8s.io"),
        "meta.k8s.io",
        options_kind,
        "",
        errors,
    )
}

/// A Status with no reason (kube's `errors.NewInternalError`-less 500s, e.g.
/// `resourceVersion should not be set on objects to be created`).
pub fn without_reason(code: u16, message: impl Into<String>) -> StatusError {
    StatusError(Status {
        code: Some(i32::from(code)),
        details: None,
        message: Some(message.into()),
        metadata: Default::default(),
        reason: None,
        status: Some("Failure".to_owned()),
    })
}

/// 404 NotFound for a namespace that does not exist.
pub fn namespace_not_found(namespace: &str) -> StatusError {
    StatusError(status::failure(
        StatusReason::NotFound,
        format!("namespaces \"{namespace}\" not found"),
        Some(status::details("", "namespaces", namespace)),
    ))
}

/// 410 Expired.
pub fn expired(message: impl Into<String>) -> StatusError {
    with_reason(410, "Expired", message.into(), None)
}

/// 415 for a patch type a custom resource does not take (kube-apiserver's exact words).
pub fn unsupported_patch() -> StatusError {
    with_reason(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml".into(),
        None,
    )
}

/// 409 on a failed delete precondition (`details.kind` is the Kind here).
pub fn precondition_failed(rt: &ResourceType, name: &str, message: &str) -> StatusError {
    with_reason(
        409,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} \"{name}\": {message}",
            rt.qualified_kind()
        ),
        Some(StatusDetails {
            kind: Some(rt.kind.clone()),
            ..status::details(&rt.group, &rt.resource, name)
        }),
    )
}

/// 405 `create not allowed while custom resource definition is terminating`.
pub fn crd_terminating(rt: &ResourceType) -> StatusError {
    with_reason(
        405,
        "MethodNotAllowed",
        "create not allowed while custom resource definition is terminating".into(),
        Some(status::details(&rt.group, &rt.resource, "")),
    )
}
