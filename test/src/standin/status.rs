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
    status::details(rt.group, rt.resource, name)
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
    let kind = if rt.group.is_empty() {
        rt.kind.to_owned()
    } else {
        format!("{}.{}", rt.kind, rt.group)
    };
    with_reason(
        422,
        "Invalid",
        format!("{kind} \"{name}\" is invalid: {cause}"),
        Some(StatusDetails {
            kind: Some(rt.kind.to_owned()),
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
