//! A `metav1.Status` as an axum response.

use api_types::k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use api_types::status;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

/// A failure to answer with: its HTTP code is the Status's `code`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusError(pub Status);

impl StatusError {
    pub fn code(&self) -> StatusCode {
        self.0
            .code
            .and_then(|c| u16::try_from(c).ok())
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn reason(&self) -> &str {
        self.0.reason.as_deref().unwrap_or("Unknown")
    }

    pub fn message(&self) -> &str {
        self.0.message.as_deref().unwrap_or("")
    }
}

impl From<Status> for StatusError {
    fn from(s: Status) -> Self {
        Self(s)
    }
}

impl std::fmt::Display for StatusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code().as_u16(),
            self.reason(),
            self.message()
        )
    }
}

impl std::error::Error for StatusError {}

/// JSON response with `application/json`.
pub fn json_response<T: serde::Serialize>(code: StatusCode, body: &T) -> Response {
    let (code, bytes) = match serde_json::to_vec(body) {
        Ok(bytes) => (code, bytes),
        Err(e) => {
            let fallback = status::internal_error(format!("failed to encode response: {e}"));
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::to_vec(&fallback).unwrap_or_default(),
            )
        }
    };
    let mut resp = (code, bytes).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The outcome of an answer, for metrics and audit: its code and reason —
/// the Status reason when the answer is a [`StatusError`], `Success` for 2xx,
/// else the reason the code maps to (`StatusReason::from_code`), else the
/// code's canonical phrase without spaces (`TooManyRequests`).
pub fn outcome(resp: &Response) -> (u16, String) {
    let code = resp.status();
    let reason = match resp.extensions().get::<StatusError>() {
        Some(e) => e.reason().to_owned(),
        None if code.is_success() => "Success".to_owned(),
        None => api_types::StatusReason::from_code(code.as_u16())
            .map(|r| r.as_str().to_owned())
            .unwrap_or_else(|| {
                code.canonical_reason()
                    .unwrap_or("Unknown")
                    .replace(' ', "")
            }),
    };
    (code.as_u16(), reason)
}

impl IntoResponse for StatusError {
    fn into_response(self) -> Response {
        let code = self.code();
        let mut resp = json_response(code, &self.0);
        resp.extensions_mut().insert(self);
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_carries_code_and_json() {
        let resp = StatusError(status::pod_not_found("x")).into_response();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        assert!(resp.extensions().get::<StatusError>().is_some());
        assert_eq!(outcome(&resp), (404, "NotFound".to_owned()));
    }

    #[test]
    fn outcomes_of_plain_answers() {
        let plain = |code: StatusCode| outcome(&(code, "text").into_response());
        assert_eq!(plain(StatusCode::OK), (200, "Success".to_owned()));
        assert_eq!(plain(StatusCode::CONFLICT), (409, "Conflict".to_owned()));
        assert_eq!(
            plain(StatusCode::TOO_MANY_REQUESTS),
            (429, "TooManyRequests".to_owned())
        );
    }
}
