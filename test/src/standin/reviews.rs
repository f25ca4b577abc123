//! The review APIs: TokenReview (`authentication.k8s.io/v1`), SelfSubjectReview
//! (`kubectl auth whoami`), SubjectAccessReview, LocalSubjectAccessReview and
//! SelfSubjectAccessReview (`kubectl auth can-i`), answered from the same
//! token table and RBAC policy the stand-in enforces.

use std::collections::BTreeMap;

use api_types::k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReviewSpec,
};
use apiserver_lib::authentication::{AUTHENTICATED_GROUP, Authenticator};
use apiserver_lib::{StatusError, UserInfo};
use serde_json::{Value, json};

use super::rbac::{self, Rbac};
use super::resources::ResourceType;
use super::status;
use super::store::Store;

/// Which review a POST creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Review {
    Token,
    SelfSubject,
    SubjectAccess,
    LocalSubjectAccess,
    SelfSubjectAccess,
}

impl Review {
    pub fn of(rt: &ResourceType) -> Option<Self> {
        Some(match (rt.group.as_str(), rt.resource.as_str()) {
            ("authentication.k8s.io", "tokenreviews") => Review::Token,
            ("authentication.k8s.io", "selfsubjectreviews") => Review::SelfSubject,
            ("authorization.k8s.io", "subjectaccessreviews") => Review::SubjectAccess,
            ("authorization.k8s.io", "localsubjectaccessreviews") => Review::LocalSubjectAccess,
            ("authorization.k8s.io", "selfsubjectaccessreviews") => Review::SelfSubjectAccess,
            _ => return None,
        })
    }
}

fn user_json(u: &UserInfo) -> Value {
    let mut v = json!({"username": u.name, "groups": u.groups});
    if !u.uid.is_empty() {
        v["uid"] = json!(u.uid);
    }
    if !u.extra.is_empty() {
        v["extra"] = json!(u.extra);
    }
    v
}

fn spec_of(body: &Value) -> Value {
    body.get("spec").cloned().unwrap_or_else(|| json!({}))
}

/// Answer a review: the request's object with `status` filled in.
pub async fn answer(
    review: Review,
    rt: &ResourceType,
    store: &Store,
    authn: &Authenticator,
    requester: &UserInfo,
    namespace: &str,
    body: Value,
) -> Result<Value, StatusError> {
    let mut out = body.clone();
    if !out.is_object() {
        return Err(status::bad_request(
            "the body of the request was not a JSON object",
        ));
    }
    let spec = spec_of(&body);
    let status_value = match review {
        Review::Token => {
            let token = spec.get("token").and_then(Value::as_str).unwrap_or("");
            let audiences = spec.get("audiences").cloned();
            match &authn.token {
                Some(t) if !token.is_empty() => match t.authenticate_token(token).await {
                    Ok(Some(mut user)) => {
                        if !user.groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
                            user.groups.push(AUTHENTICATED_GROUP.into());
                        }
                        let mut s = json!({"authenticated": true, "user": user_json(&user)});
                        if let Some(a) = audiences {
                            s["audiences"] = a;
                        }
                        s
                    }
                    Ok(None) | Err(_) => {
                        json!({"authenticated": false, "user": {}, "error": "invalid bearer token"})
                    }
                },
                _ => json!({"authenticated": false, "user": {}}),
            }
        }
        Review::SelfSubject => json!({"userInfo": user_json(requester)}),
        Review::SubjectAccess | Review::LocalSubjectAccess | Review::SelfSubjectAccess => {
            let parsed: SubjectAccessReviewSpec = serde_json::from_value(spec.clone())
                .map_err(|e| status::bad_request(format!("invalid spec: {e}")))?;
            let user = if review == Review::SelfSubjectAccess {
                requester.clone()
            } else {
                UserInfo {
                    name: parsed.user.clone().unwrap_or_default(),
                    uid: parsed.uid.clone().unwrap_or_default(),
                    groups: parsed.groups.clone().unwrap_or_default(),
                    extra: parsed
                        .extra
                        .clone()
                        .unwrap_or_default()
                        .into_iter()
                        .collect::<BTreeMap<_, _>>(),
                }
            };
            if review != Review::SelfSubjectAccess && user.name.is_empty() && user.groups.is_empty()
            {
                return Err(status::invalid(
                    rt,
                    "",
                    "spec.user: Invalid value: \"\": at least one of user or group must be specified",
                ));
            }
            let attrs = match (&parsed.resource_attributes, &parsed.non_resource_attributes) {
                (Some(r), None) => resource_attributes(user, r),
                (None, Some(n)) => non_resource_attributes(user, n),
                _ => {
                    return Err(status::invalid(
                        rt,
                        "",
                        "spec.resourceAttributes: Invalid value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
                    ));
                }
            };
            if review == Review::LocalSubjectAccess && attrs.namespace != namespace {
                return Err(status::invalid(
                    rt,
                    "",
                    &format!(
                        "spec.resourceAttributes.namespace: Invalid value: \"{}\": must match metadata.namespace",
                        attrs.namespace
                    ),
                ));
            }
            let decision = Rbac::authorize(store, &attrs);
            let mut s = json!({"allowed": decision.allowed});
            if !decision.reason.is_empty() {
                s["reason"] = json!(decision.reason);
            }
            s
        }
    };
    if let Some(obj) = out.as_object_mut() {
        obj.insert("apiVersion".into(), json!(rt.api_version()));
        obj.insert("kind".into(), json!(rt.kind));
        obj.entry("metadata").or_insert_with(|| json!({}));
        obj.insert("status".into(), status_value);
    }
    Ok(out)
}

fn resource_attributes(user: UserInfo, r: &ResourceAttributes) -> rbac::Attributes {
    rbac::Attributes {
        user,
        verb: r.verb.clone().unwrap_or_default(),
        resource_request: true,
        group: r.group.clone().unwrap_or_default(),
        resource: r.resource.clone().unwrap_or_default(),
        subresource: r.subresource.clone().unwrap_or_default(),
        namespace: r.namespace.clone().unwrap_or_default(),
        name: r.name.clone().unwrap_or_default(),
        path: String::new(),
    }
}

fn non_resource_attributes(user: UserInfo, n: &NonResourceAttributes) -> rbac::Attributes {
    rbac::Attributes {
        user,
        verb: n.verb.clone().unwrap_or_default(),
        resource_request: false,
        path: n.path.clone().unwrap_or_default(),
        ..Default::default()
    }
}
