//! Validation of the names and timeouts a request carries, with the rules and
//! messages Kubernetes applies (`k8s.io/apimachinery/pkg/util/validation`).
//!
//! Every server validates path segments with these functions before it uses
//! them, so no file path or URL is ever built from unvalidated input.

/// Longest DNS-1123 label (namespaces, container names).
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;
/// Longest DNS-1123 subdomain (pod names).
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";

/// What a validated name names; used in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Namespace,
    Pod,
    Container,
    Node,
}

impl NameKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NameKind::Namespace => "namespace",
            NameKind::Pod => "pod",
            NameKind::Container => "container",
            NameKind::Node => "node",
        }
    }
}

/// A name or timeout that is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("invalid {kind} name {value}: {}", .reasons.join(", "))]
    InvalidName {
        kind: &'static str,
        /// The offending value, quoted, escaped and shortened for messages.
        value: String,
        reasons: Vec<String>,
    },
    #[error("invalid timeout {value}: must be a whole number of seconds between 0 and {max}")]
    InvalidTimeout { value: String, max: i64 },
}

/// Quote a user-supplied value for an error message: escapes control
/// characters and NUL, and shortens hostile lengths.
pub fn quote_for_message(value: &str) -> String {
    const MAX: usize = 64;
    let mut shown: String = value.chars().take(MAX).collect();
    if value.chars().count() > MAX {
        shown.push_str("...");
    }
    format!("{shown:?}")
}

fn is_label_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn matches_label(s: &[u8]) -> bool {
    match (s.first(), s.last()) {
        (Some(&f), Some(&l)) => is_alnum(f) && is_alnum(l) && s.iter().all(|&b| is_label_char(b)),
        _ => false,
    }
}

/// Reasons `value` is not a DNS-1123 label (empty when it is one).
pub fn is_dns1123_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(format!(
            "must be no more than {DNS1123_LABEL_MAX_LENGTH} characters"
        ));
    }
    if !matches_label(value.as_bytes()) {
        errs.push(format!(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
             and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', \
             regex used for validation is '{DNS1123_LABEL_FMT}')"
        ));
    }
    errs
}

/// Reasons `value` is not a DNS-1123 subdomain (empty when it is one).
pub fn is_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(format!(
            "must be no more than {DNS1123_SUBDOMAIN_MAX_LENGTH} characters"
        ));
    }
    if !value.split('.').all(|part| matches_label(part.as_bytes())) {
        errs.push(format!(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' \
             or '.', and must start and end with an alphanumeric character (e.g. 'example.com', \
             regex used for validation is '{DNS1123_SUBDOMAIN_FMT}')"
        ));
    }
    errs
}

fn check(kind: NameKind, value: &str, reasons: Vec<String>) -> Result<(), ValidationError> {
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(ValidationError::InvalidName {
            kind: kind.as_str(),
            value: quote_for_message(value),
            reasons,
        })
    }
}

/// A namespace name is a DNS-1123 label (`ValidateNamespaceName`).
pub fn validate_namespace(value: &str) -> Result<(), ValidationError> {
    check(NameKind::Namespace, value, is_dns1123_label(value))
}

/// A pod name is a DNS-1123 subdomain (`ValidatePodName`).
pub fn validate_pod_name(value: &str) -> Result<(), ValidationError> {
    check(NameKind::Pod, value, is_dns1123_subdomain(value))
}

/// A container name is a DNS-1123 label (`validateContainers`).
pub fn validate_container_name(value: &str) -> Result<(), ValidationError> {
    check(NameKind::Container, value, is_dns1123_label(value))
}

/// A node name is a DNS-1123 subdomain (`ValidateNodeName`).
pub fn validate_node_name(value: &str) -> Result<(), ValidationError> {
    check(NameKind::Node, value, is_dns1123_subdomain(value))
}

/// Validate the three path segments of a checkpoint request at once.
pub fn validate_target(namespace: &str, pod: &str, container: &str) -> Result<(), ValidationError> {
    validate_namespace(namespace)?;
    validate_pod_name(pod)?;
    validate_container_name(container)
}

/// A timeout in seconds: 0 means "the runtime's default"; negative or above
/// `max` is refused.
pub fn validate_timeout_seconds(value: i64, max: i64) -> Result<i64, ValidationError> {
    if (0..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ValidationError::InvalidTimeout {
            value: value.to_string(),
            max,
        })
    }
}

/// Parse the `timeout` query parameter (decimal seconds, ASCII digits only: no
/// sign, fraction, unit or white space). Empty means 0, the runtime's default.
pub fn parse_timeout_seconds(raw: &str, max: i64) -> Result<i64, ValidationError> {
    let invalid = || ValidationError::InvalidTimeout {
        value: quote_for_message(raw),
        max,
    };
    if raw.is_empty() {
        return Ok(0);
    }
    if raw.len() > 19 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let value: i64 = raw.parse().map_err(|_| invalid())?;
    validate_timeout_seconds(value, max).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hostile() -> Vec<(&'static str, String)> {
        vec![
            ("empty", String::new()),
            ("254 chars", "a".repeat(254)),
            ("64 chars", "a".repeat(64)),
            ("64 KiB", "a".repeat(64 * 1024)),
            ("dotdot", "..".into()),
            ("dot", ".".into()),
            ("slash", "a/b".into()),
            ("traversal", "../../etc".into()),
            ("encoded slash", "a%2Fb".into()),
            ("encoded dots", "%2e%2e".into()),
            ("uppercase", "MyPod".into()),
            ("unicode", "pöd".into()),
            ("nul", "a\0b".into()),
            ("leading dash", "-a".into()),
            ("trailing dash", "a-".into()),
            ("underscore", "a_b".into()),
            ("space", "a b".into()),
            ("newline", "a\nb".into()),
            ("backslash", "a\\b".into()),
        ]
    }

    #[test]
    fn labels_accept_valid_names() {
        for ok in ["a", "0", "my-name", "123-abc", "a1", &"a".repeat(63)] {
            assert!(validate_namespace(ok).is_ok(), "{ok}");
            assert!(validate_container_name(ok).is_ok(), "{ok}");
            assert!(validate_pod_name(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn subdomains_accept_dotted_and_long_names() {
        for ok in [
            "example.com",
            "a.b.c",
            "counter-7d9f8-abcde",
            &"a".repeat(253),
        ] {
            assert!(validate_pod_name(ok).is_ok(), "{ok}");
        }
        assert!(validate_namespace("example.com").is_err());
        assert!(validate_container_name("a.b").is_err());
    }

    #[test]
    fn hostile_names_are_refused_everywhere() {
        for (what, value) in hostile() {
            // 64 chars is a valid subdomain but not a label.
            if what != "64 chars" {
                assert!(validate_pod_name(&value).is_err(), "pod accepted {what}");
            }
            assert!(
                validate_namespace(&value).is_err(),
                "namespace accepted {what}"
            );
            assert!(
                validate_container_name(&value).is_err(),
                "container accepted {what}"
            );
            assert!(
                validate_target("default", "p", &value).is_err(),
                "target accepted {what}"
            );
        }
    }

    #[test]
    fn subdomain_rejects_bad_segments() {
        for bad in ["a..b", ".a", "a.", "a.-b", "a.b-"] {
            assert!(validate_pod_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn messages_mirror_kubernetes_and_escape_input() {
        let err = validate_pod_name("a\0B").unwrap_err().to_string();
        assert!(
            err.starts_with("invalid pod name \"a\\0B\": a lowercase RFC 1123 subdomain"),
            "{err}"
        );
        let err = validate_namespace(&"a".repeat(64 * 1024))
            .unwrap_err()
            .to_string();
        assert!(
            err.len() < 600,
            "hostile length echoed: {} bytes",
            err.len()
        );
        assert!(err.contains("must be no more than 63 characters"));
        insta::assert_snapshot!("label_message", validate_container_name("Ctr").unwrap_err());
        insta::assert_snapshot!("subdomain_message", validate_pod_name("a/b").unwrap_err());
    }

    #[test]
    fn timeouts() {
        let max = 600;
        let table: &[(&str, Option<i64>)] = &[
            ("", Some(0)),
            ("0", Some(0)),
            ("30", Some(30)),
            ("600", Some(600)),
            ("601", None),
            ("-1", None),
            ("+5", None),
            ("1.5", None),
            ("5s", None),
            (" 5", None),
            ("abc", None),
            ("99999999999999999999999", None),
            ("9223372036854775807", None),
            ("\0", None),
        ];
        for (raw, want) in table {
            let got = parse_timeout_seconds(raw, max).ok();
            assert_eq!(got, *want, "timeout {raw:?}");
        }
        assert!(validate_timeout_seconds(-5, max).is_err());
        assert!(validate_timeout_seconds(i64::MAX, max).is_err());
        assert_eq!(validate_timeout_seconds(10, max), Ok(10));
        assert_eq!(
            parse_timeout_seconds("1.5", 600).unwrap_err().to_string(),
            "invalid timeout \"1.5\": must be a whole number of seconds between 0 and 600"
        );
    }
}
