//! `PodCheckpointOptions`, the options of a `pods/checkpoint` request.

use serde::{Deserialize, Serialize};

use crate::validation::{self, ValidationError};
use crate::{POD_CHECKPOINT_OPTIONS_KIND, SUBRESOURCES_API_VERSION};

/// PodCheckpointOptions is the query options to checkpoint a container.
///
/// Mirrors the proposal's type (KEP-5901 "Kubectl Checkpoint", Design Details;
/// upstream home `k8s.io/api/core/v1` `PodCheckpointOptions`):
///
/// ```go
/// type PodCheckpointOptions struct {
///     metav1.TypeMeta
///     Container string  // Container which to checkpoint
///     timeout int64     // timeout as specified in the kubelet API endpoint
/// }
/// ```
///
/// On the wire it comes from the query (`?container=C&timeoutSeconds=S`) or
/// from a JSON body; both present and different is a 400.
///
/// The query parameter is `timeoutSeconds`, not the kubelet's `timeout`:
/// kube-apiserver reads `?timeout=` on every request as its own deadline (a Go
/// duration, `filters/request_deadline.go`), answers 400 to `timeout=30`, and
/// cuts the request at that duration. A `timeout` parameter that reaches the
/// extension is therefore kube-apiserver's business and is ignored here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodCheckpointOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Container which to checkpoint; empty selects the pod's default container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Timeout in seconds as specified in the kubelet API endpoint; 0 or absent
    /// means the runtime's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i64>,
}

/// Query parameter carrying the checkpoint timeout in seconds.
pub const TIMEOUT_PARAM: &str = "timeoutSeconds";

/// Why the options of a request are not acceptable (all map to 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    #[error("query parameter {0:?} is given more than once")]
    DuplicateParameter(String),
    #[error("the query string is not valid UTF-8 after decoding")]
    InvalidQueryEncoding,
    #[error("request body is not a valid PodCheckpointOptions: {0}")]
    InvalidBody(String),
    #[error("request body has kind {0:?}, expected PodCheckpointOptions")]
    WrongKind(String),
    #[error("request body has apiVersion {0:?}, expected {SUBRESOURCES_API_VERSION}")]
    WrongApiVersion(String),
    #[error("{field} is {query:?} in the query but {body:?} in the body")]
    Mismatch {
        field: &'static str,
        query: String,
        body: String,
    },
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

impl PodCheckpointOptions {
    /// Options for `container` with `timeout_seconds` (0 = runtime default).
    pub fn new(container: Option<&str>, timeout_seconds: Option<i64>) -> Self {
        Self {
            api_version: Some(SUBRESOURCES_API_VERSION.to_owned()),
            kind: Some(POD_CHECKPOINT_OPTIONS_KIND.to_owned()),
            container: container.map(str::to_owned),
            timeout_seconds,
        }
    }

    /// Parse the query string (without `?`). Known keys are `container` and
    /// `timeoutSeconds`; each at most once. Other keys (among them
    /// kube-apiserver's `timeout`) are ignored.
    pub fn from_query(query: &str, max_timeout: i64) -> Result<Self, OptionsError> {
        let mut out = Self::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            // form_urlencoded replaces invalid UTF-8 with U+FFFD: refuse it.
            if key.contains('\u{FFFD}') || value.contains('\u{FFFD}') {
                return Err(OptionsError::InvalidQueryEncoding);
            }
            match key.as_ref() {
                "container" => {
                    if out.container.is_some() {
                        return Err(OptionsError::DuplicateParameter("container".into()));
                    }
                    out.container = Some(value.into_owned());
                }
                TIMEOUT_PARAM => {
                    if out.timeout_seconds.is_some() {
                        return Err(OptionsError::DuplicateParameter(TIMEOUT_PARAM.into()));
                    }
                    out.timeout_seconds =
                        Some(validation::parse_timeout_seconds(&value, max_timeout)?);
                }
                _ => {}
            }
        }
        if out.container.as_deref() == Some("") {
            out.container = None;
        }
        Ok(out)
    }

    /// Parse a JSON body. An empty body is no options.
    pub fn from_body(body: &[u8]) -> Result<Self, OptionsError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        // Only a JSON object is an options object (serde would also take an array).
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(OptionsError::InvalidBody("expected a JSON object".into()));
        }
        let opts: Self =
            serde_json::from_slice(body).map_err(|e| OptionsError::InvalidBody(e.to_string()))?;
        if let Some(kind) = opts.kind.as_deref()
            && kind != POD_CHECKPOINT_OPTIONS_KIND
        {
            return Err(OptionsError::WrongKind(kind.to_owned()));
        }
        if let Some(v) = opts.api_version.as_deref()
            && v != SUBRESOURCES_API_VERSION
        {
            return Err(OptionsError::WrongApiVersion(v.to_owned()));
        }
        Ok(opts)
    }

    /// Combine query and body options: a field given in both must agree.
    pub fn merge(query: Self, body: Self) -> Result<Self, OptionsError> {
        let container = match (query.container, body.container.filter(|c| !c.is_empty())) {
            (Some(q), Some(b)) if q != b => {
                return Err(OptionsError::Mismatch {
                    field: "container",
                    query: q,
                    body: b,
                });
            }
            (q, b) => q.or(b),
        };
        let timeout_seconds = match (query.timeout_seconds, body.timeout_seconds) {
            (Some(q), Some(b)) if q != b => {
                return Err(OptionsError::Mismatch {
                    field: "timeoutSeconds",
                    query: q.to_string(),
                    body: b.to_string(),
                });
            }
            (q, b) => q.or(b),
        };
        Ok(Self {
            api_version: Some(SUBRESOURCES_API_VERSION.into()),
            kind: Some(POD_CHECKPOINT_OPTIONS_KIND.into()),
            container,
            timeout_seconds,
        })
    }

    /// Validate the container name (when given) and the timeout.
    pub fn validate(&self, max_timeout: i64) -> Result<(), OptionsError> {
        if let Some(c) = &self.container {
            validation::validate_container_name(c)?;
        }
        if let Some(t) = self.timeout_seconds {
            validation::validate_timeout_seconds(t, max_timeout)?;
        }
        Ok(())
    }

    /// Timeout in seconds, 0 meaning the runtime's default.
    pub fn timeout(&self) -> i64 {
        self.timeout_seconds.unwrap_or(0)
    }

    /// The query string a client sends (`container=C&timeout=S`), without `?`.
    pub fn to_query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if let Some(c) = &self.container {
            q.append_pair("container", c);
        }
        if let Some(t) = self.timeout_seconds {
            q.append_pair(TIMEOUT_PARAM, &t.to_string());
        }
        q.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing() {
        let o = PodCheckpointOptions::from_query("container=app&timeoutSeconds=30", 600).unwrap();
        assert_eq!(o.container.as_deref(), Some("app"));
        assert_eq!(o.timeout_seconds, Some(30));
        assert_eq!(o.to_query(), "container=app&timeoutSeconds=30");
        // kube-apiserver's own deadline parameter is not ours
        let o = PodCheckpointOptions::from_query("container=app&timeout=30s", 600).unwrap();
        assert_eq!(o.timeout_seconds, None);
        let o = PodCheckpointOptions::from_query("", 600).unwrap();
        assert_eq!(o, PodCheckpointOptions::default());
        let o = PodCheckpointOptions::from_query("pretty=true&container=", 600).unwrap();
        assert_eq!(o.container, None);
    }

    #[test]
    fn hostile_queries() {
        let table = [
            "container=a&container=b",
            "timeoutSeconds=1&timeoutSeconds=2",
            "timeoutSeconds=-1",
            "timeoutSeconds=1.5",
            "timeoutSeconds=abc",
            "timeoutSeconds=999999999999999999999",
            "timeoutSeconds=601",
            "container=%FF",
            "timeoutSeconds=%00",
        ];
        for q in table {
            assert!(
                PodCheckpointOptions::from_query(q, 600).is_err(),
                "accepted {q}"
            );
        }
        // decoded container names are validated, not trusted
        let o = PodCheckpointOptions::from_query("container=..%2F..%2Fetc", 600).unwrap();
        assert!(o.validate(600).is_err());
        let o = PodCheckpointOptions::from_query("container=a%00b", 600).unwrap();
        assert!(o.validate(600).is_err());
    }

    #[test]
    fn body_parsing_and_merge() {
        let b = PodCheckpointOptions::from_body(
            br#"{"kind":"PodCheckpointOptions","apiVersion":"subresources.checkpoint.kcr.dev/v1alpha1","container":"app","timeoutSeconds":10}"#,
        )
        .unwrap();
        assert_eq!(b.container.as_deref(), Some("app"));
        assert_eq!(
            PodCheckpointOptions::from_body(b"").unwrap(),
            PodCheckpointOptions::default()
        );
        assert!(matches!(
            PodCheckpointOptions::from_body(br#"{"kind":"Pod"}"#),
            Err(OptionsError::WrongKind(_))
        ));
        assert!(matches!(
            PodCheckpointOptions::from_body(br#"{"apiVersion":"v9"}"#),
            Err(OptionsError::WrongApiVersion(_))
        ));
        assert!(matches!(
            PodCheckpointOptions::from_body(br#"{"bogus":1}"#),
            Err(OptionsError::InvalidBody(_))
        ));
        assert!(matches!(
            PodCheckpointOptions::from_body(b"{"),
            Err(OptionsError::InvalidBody(_))
        ));
        assert!(matches!(
            PodCheckpointOptions::from_body(br#"{"timeoutSeconds":1.5}"#),
            Err(OptionsError::InvalidBody(_))
        ));
        assert!(matches!(
            PodCheckpointOptions::from_body(br#"[]"#),
            Err(OptionsError::InvalidBody(_))
        ));

        let q = PodCheckpointOptions::from_query("container=app", 600).unwrap();
        let m = PodCheckpointOptions::merge(q.clone(), b.clone()).unwrap();
        assert_eq!(m.container.as_deref(), Some("app"));
        assert_eq!(m.timeout(), 10);
        let other = PodCheckpointOptions::from_query("container=db", 600).unwrap();
        let err = PodCheckpointOptions::merge(other, b).unwrap_err();
        assert_eq!(
            err.to_string(),
            "container is \"db\" in the query but \"app\" in the body"
        );
    }

    #[test]
    fn validate_bounds() {
        assert!(
            PodCheckpointOptions::new(Some("app"), Some(-1))
                .validate(600)
                .is_err()
        );
        assert!(
            PodCheckpointOptions::new(Some("app"), Some(601))
                .validate(600)
                .is_err()
        );
        assert!(
            PodCheckpointOptions::new(Some("App"), None)
                .validate(600)
                .is_err()
        );
        assert!(
            PodCheckpointOptions::new(Some("app"), Some(0))
                .validate(600)
                .is_ok()
        );
    }

    #[test]
    fn wire_round_trip() {
        let o = PodCheckpointOptions::new(Some("app"), Some(30));
        let json = serde_json::to_string(&o).unwrap();
        assert_eq!(
            serde_json::from_str::<PodCheckpointOptions>(&json).unwrap(),
            o
        );
        let yaml = serde_saphyr::to_string(&o).unwrap();
        assert_eq!(
            serde_saphyr::from_str::<PodCheckpointOptions>(&yaml).unwrap(),
            o
        );
        insta::assert_json_snapshot!("options_json", o);
        insta::assert_snapshot!("options_yaml", yaml);
    }
}
