//! Builders for the failure `metav1.Status` objects of the contract
//! (cf. `k8s.io/apimachinery/pkg/api/errors`): the same JSON kube-apiserver
//! returns, so kubectl-style clients can show it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusDetails};

/// Every failure reason the contract uses, with its HTTP code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StatusReason {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    InternalError,
    ServiceUnavailable,
    Timeout,
    /// 416: a range of an archive that starts past its end (not one of
    /// apimachinery's reasons: kube-apiserver has no ranged reads; the code
    /// is HTTP's, the reason its RFC 9110 name).
    RequestedRangeNotSatisfiable,
}

impl StatusReason {
    pub const ALL: [StatusReason; 10] = [
        StatusReason::BadRequest,
        StatusReason::Unauthorized,
        StatusReason::Forbidden,
        StatusReason::NotFound,
        StatusReason::MethodNotAllowed,
        StatusReason::Conflict,
        StatusReason::InternalError,
        StatusReason::ServiceUnavailable,
        StatusReason::Timeout,
        StatusReason::RequestedRangeNotSatisfiable,
    ];

    /// The `reason` string of the Status.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusReason::BadRequest => "BadRequest",
            StatusReason::Unauthorized => "Unauthorized",
            StatusReason::Forbidden => "Forbidden",
            StatusReason::NotFound => "NotFound",
            StatusReason::MethodNotAllowed => "MethodNotAllowed",
            StatusReason::Conflict => "Conflict",
            StatusReason::InternalError => "InternalError",
            StatusReason::ServiceUnavailable => "ServiceUnavailable",
            StatusReason::Timeout => "Timeout",
            StatusReason::RequestedRangeNotSatisfiable => "RequestedRangeNotSatisfiable",
        }
    }

    /// The HTTP status code that goes with the reason.
    pub fn code(self) -> u16 {
        match self {
            StatusReason::BadRequest => 400,
            StatusReason::Unauthorized => 401,
            StatusReason::Forbidden => 403,
            StatusReason::NotFound => 404,
            StatusReason::MethodNotAllowed => 405,
            StatusReason::Conflict => 409,
            StatusReason::InternalError => 500,
            StatusReason::ServiceUnavailable => 503,
            StatusReason::Timeout => 504,
            StatusReason::RequestedRangeNotSatisfiable => 416,
        }
    }

    /// The reason a bare HTTP code maps to (what a client assumes when the
    /// body is not a Status), as `errors.NewGenericServerResponse` does.
    pub fn from_code(code: u16) -> Option<StatusReason> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// Parse a `reason` string.
    pub fn parse(reason: &str) -> Option<StatusReason> {
        Self::ALL.into_iter().find(|r| r.as_str() == reason)
    }
}

impl std::fmt::Display for StatusReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure Status with a reason, a message and optional details.
pub fn failure(
    reason: StatusReason,
    message: impl Into<String>,
    details: Option<StatusDetails>,
) -> Status {
    Status {
        code: Some(i32::from(reason.code())),
        details,
        message: Some(message.into()),
        metadata: Default::default(),
        reason: Some(reason.as_str().to_owned()),
        status: Some("Failure".to_owned()),
    }
}

/// Details naming one object: `{name, group, kind}` where `kind` is the
/// resource, as apimachinery fills it.
pub fn details(group: &str, resource: &str, name: &str) -> StatusDetails {
    StatusDetails {
        name: (!name.is_empty()).then(|| name.to_owned()),
        group: (!group.is_empty()).then(|| group.to_owned()),
        kind: (!resource.is_empty()).then(|| resource.to_owned()),
        ..Default::default()
    }
}

/// Details for a core pod.
pub fn pod_details(name: &str) -> StatusDetails {
    details("", "pods", name)
}

/// 400: the request is malformed.
pub fn bad_request(message: impl Into<String>) -> Status {
    failure(StatusReason::BadRequest, message, None)
}

/// 401, with apiserver's message.
pub fn unauthorized() -> Status {
    failure(StatusReason::Unauthorized, "Unauthorized", None)
}

/// What a denied request asked for, as the RBAC authorizer names it in its
/// message (the fields of `authorizer.AttributesRecord` that
/// `responsewriters.forbiddenMessage` reads).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForbiddenRequest<'a> {
    pub user: &'a str,
    pub verb: &'a str,
    /// API group; empty for the core group.
    pub group: &'a str,
    /// `pods`, or `pods/checkpoint` with a subresource.
    pub resource: &'a str,
    /// Empty for a cluster-scoped request.
    pub namespace: &'a str,
    pub name: &'a str,
}

impl ForbiddenRequest<'_> {
    /// 403 in the words of the RBAC authorizer:
    /// `pods "P" is forbidden: User "U" cannot checkpoint resource "pods" in API group "" in the namespace "NS"`,
    /// then `: reason` when the authorizer gave one.
    pub fn status(&self, reason: &str) -> Status {
        let (user, verb, group, resource) = (self.user, self.verb, self.group, self.resource);
        let (namespace, name) = (self.namespace, self.name);
        // The object is named by its resource without the subresource, qualified by group.
        let (res, _) = resource.split_once('/').unwrap_or((resource, ""));
        let qualified = if group.is_empty() {
            res.to_owned()
        } else {
            format!("{res}.{group}")
        };
        let object = if name.is_empty() {
            qualified
        } else {
            format!("{qualified} \"{name}\"")
        };
        let scope = if namespace.is_empty() {
            "at the cluster scope".to_owned()
        } else {
            format!("in the namespace \"{namespace}\"")
        };
        let mut message = format!(
            "{object} is forbidden: User \"{user}\" cannot {verb} resource \"{resource}\" in API group \"{group}\" {scope}"
        );
        if !reason.is_empty() {
            message.push_str(": ");
            message.push_str(reason);
        }
        failure(
            StatusReason::Forbidden,
            message,
            Some(details(group, res, name)),
        )
    }
}

/// 403 in the words of the RBAC authorizer; the positional form of
/// [`ForbiddenRequest::status`], kept for existing callers.
pub fn forbidden(
    user: &str,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: &str,
    name: &str,
    reason: &str,
) -> Status {
    ForbiddenRequest {
        user,
        verb,
        group,
        resource,
        namespace,
        name,
    }
    .status(reason)
}

/// 404 for a pod: `pods "P" not found`.
pub fn pod_not_found(name: &str) -> Status {
    failure(
        StatusReason::NotFound,
        format!("pods \"{name}\" not found"),
        Some(pod_details(name)),
    )
}

/// 404 with a free message (unknown route, gate off).
pub fn not_found(message: impl Into<String>) -> Status {
    failure(StatusReason::NotFound, message, None)
}

/// 405 for a method other than POST.
pub fn method_not_allowed(method: &str) -> Status {
    failure(
        StatusReason::MethodNotAllowed,
        format!(
            "the server does not allow this method on the requested resource (method {method}; only POST creates a checkpoint)"
        ),
        None,
    )
}

/// 409 about a pod.
pub fn conflict(pod: &str, message: impl Into<String>) -> Status {
    failure(StatusReason::Conflict, message, Some(pod_details(pod)))
}

/// 500 carrying the node's or runtime's message.
pub fn internal_error(message: impl Into<String>) -> Status {
    failure(StatusReason::InternalError, message, None)
}

/// 503: a dependency (node, API server) cannot be reached.
pub fn service_unavailable(message: impl Into<String>) -> Status {
    failure(StatusReason::ServiceUnavailable, message, None)
}

/// 504: the checkpoint did not finish in time.
pub fn timeout(message: impl Into<String>) -> Status {
    failure(StatusReason::Timeout, message, None)
}

/// Parse a response body as a Status, if it is one.
pub fn parse(body: &[u8]) -> Option<Status> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    if value.get("kind")?.as_str()? != "Status" {
        return None;
    }
    serde_json::from_value(value).ok()
}

/// The reason of a Status, when it is one of ours.
pub fn reason_of(status: &Status) -> Option<StatusReason> {
    status.reason.as_deref().and_then(StatusReason::parse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_round_trip() {
        for r in StatusReason::ALL {
            assert_eq!(StatusReason::from_code(r.code()), Some(r));
            assert_eq!(StatusReason::parse(r.as_str()), Some(r));
        }
        assert_eq!(StatusReason::from_code(418), None);
    }

    #[test]
    fn every_reason_snapshot() {
        for r in StatusReason::ALL {
            let s = failure(r, format!("a {r} failure"), Some(pod_details("counter")));
            let json = serde_json::to_value(&s).unwrap();
            assert_eq!(json["kind"], "Status");
            assert_eq!(json["apiVersion"], "v1");
            assert_eq!(json["code"], r.code());
            let back: Status = serde_json::from_value(json.clone()).unwrap();
            assert_eq!(back, s);
            let yaml = serde_saphyr::to_string(&s).unwrap();
            let from_yaml: Status = serde_saphyr::from_str(&yaml).unwrap();
            assert_eq!(from_yaml, s);
            insta::assert_json_snapshot!(format!("status_{}", r.as_str()), json);
        }
    }

    #[test]
    fn forbidden_message_mirrors_rbac() {
        let s = forbidden("bob", "checkpoint", "", "pods", "default", "counter", "");
        assert_eq!(
            s.message.as_deref(),
            Some(
                "pods \"counter\" is forbidden: User \"bob\" cannot checkpoint resource \"pods\" in API group \"\" in the namespace \"default\""
            )
        );
        let s = forbidden(
            "bob",
            "create",
            "subresources.checkpoint.kcr.dev",
            "pods/checkpoint",
            "ns",
            "p",
            "",
        );
        assert_eq!(
            s.message.as_deref(),
            Some(
                "pods.subresources.checkpoint.kcr.dev \"p\" is forbidden: User \"bob\" cannot create resource \"pods/checkpoint\" in API group \"subresources.checkpoint.kcr.dev\" in the namespace \"ns\""
            )
        );
        insta::assert_json_snapshot!(
            "forbidden",
            forbidden("bob", "checkpoint", "", "pods", "default", "counter", "")
        );
    }

    #[test]
    fn builders_snapshot() {
        insta::assert_json_snapshot!("pod_not_found", pod_not_found("ghost"));
        insta::assert_json_snapshot!("method_not_allowed", method_not_allowed("GET"));
        insta::assert_json_snapshot!("unauthorized", unauthorized());
    }

    #[test]
    fn parse_only_accepts_status() {
        let body = serde_json::to_vec(&pod_not_found("x")).unwrap();
        let s = parse(&body).unwrap();
        assert_eq!(reason_of(&s), Some(StatusReason::NotFound));
        assert!(parse(br#"{"items":[]}"#).is_none());
        assert!(parse(b"not json").is_none());
        assert!(parse(b"").is_none());
    }
}
