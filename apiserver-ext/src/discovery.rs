//! Discovery (`/apis`, `/apis/subresources.checkpoint.kcr.dev`,
//! `/apis/subresources.checkpoint.kcr.dev/v1alpha1`) and the OpenAPI endpoints, as
//! responses. `pods/checkpoint` is listed only while the
//! `ContainerCheckpointAPI` gate is on.

use api_types::discovery;
use apiserver_lib::status::json_response;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::openapi;

/// The documents served without authorization (any authenticated user may
/// read them, as `system:discovery` allows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Document {
    Apis,
    Group,
    Version,
    OpenApiV2,
    OpenApiV3,
    OpenApiV3Group,
}

impl Document {
    /// Which document a path names (no trailing slash).
    pub fn for_path(path: &str) -> Option<Self> {
        let group = format!("/apis/{}", api_types::SUBRESOURCES_GROUP);
        let version = format!("{group}/{}", api_types::VERSION);
        let v3_group = format!("/openapi/v3/{}", openapi::v3_group_key());
        Some(match path {
            "/apis" => Document::Apis,
            p if p == group => Document::Group,
            p if p == version => Document::Version,
            "/openapi/v2" => Document::OpenApiV2,
            "/openapi/v3" => Document::OpenApiV3,
            p if p == v3_group => Document::OpenApiV3Group,
            _ => return None,
        })
    }

    /// The document as JSON.
    pub fn body(self, gate_on: bool) -> serde_json::Value {
        let to = |v: Result<serde_json::Value, serde_json::Error>| v.unwrap_or_default();
        match self {
            Document::Apis => to(serde_json::to_value(discovery::api_group_list())),
            Document::Group => to(serde_json::to_value(discovery::api_group())),
            Document::Version => to(serde_json::to_value(discovery::api_resource_list(gate_on))),
            Document::OpenApiV2 => openapi::v2(gate_on),
            Document::OpenApiV3 => openapi::v3_index(gate_on),
            Document::OpenApiV3Group => openapi::v3_group(gate_on),
        }
    }

    /// The response, with an ETag for the OpenAPI documents (304 when the
    /// client's `If-None-Match` matches, as the aggregator's downloader expects).
    pub fn respond(self, gate_on: bool, headers: &HeaderMap) -> Response {
        let body = self.body(gate_on);
        let is_openapi = matches!(
            self,
            Document::OpenApiV2 | Document::OpenApiV3 | Document::OpenApiV3Group
        );
        if !is_openapi {
            return json_response(StatusCode::OK, &body);
        }
        let etag = format!("\"{}\"", openapi::hash(&body));
        let matches = headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
        let mut resp = if matches {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            json_response(StatusCode::OK, &body)
        };
        if let Ok(v) = HeaderValue::from_str(&etag) {
            resp.headers_mut().insert(header::ETAG, v);
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(Document::for_path("/apis"), Some(Document::Apis));
        assert_eq!(
            Document::for_path("/apis/subresources.checkpoint.kcr.dev"),
            Some(Document::Group)
        );
        assert_eq!(
            Document::for_path("/apis/subresources.checkpoint.kcr.dev/v1alpha1"),
            Some(Document::Version)
        );
        assert_eq!(
            Document::for_path("/openapi/v3/apis/subresources.checkpoint.kcr.dev/v1alpha1"),
            Some(Document::OpenApiV3Group)
        );
        assert_eq!(Document::for_path("/api"), None);
        assert_eq!(Document::for_path("/apis/other"), None);
    }
}
