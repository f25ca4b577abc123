//! What a request asks for, parsed from its method and path the way
//! kube-apiserver does (`k8s.io/apiserver/pkg/endpoints/request/requestinfo.go`,
//! `RequestInfoFactory.NewRequestInfo`), plus the long-running check and the
//! `?timeout=` parsing of `filters/request_deadline.go`.

use std::time::Duration;

/// Subresources kube-apiserver treats as long-running (no request timeout):
/// `k8s.io/kubernetes/pkg/controlplane/apiserver/options` `BasicLongRunningRequestCheck`.
pub const LONG_RUNNING_SUBRESOURCES: [&str; 5] = ["attach", "exec", "log", "portforward", "proxy"];

/// Subresources of a namespace that stay on the `namespaces` resource.
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

/// `request.RequestInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    pub is_resource_request: bool,
    /// The URL path (for non-resource requests and messages).
    pub path: String,
    pub verb: String,
    pub api_prefix: String,
    pub api_group: String,
    pub api_version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    /// Path segments from the resource on (`resource/name/subresource/...`).
    pub parts: Vec<String>,
}

impl RequestInfo {
    /// `resource/subresource`, as RBAC rules and messages name it.
    pub fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }

    /// The long-running check: watches and the streaming subresources.
    pub fn is_long_running(&self) -> bool {
        self.is_resource_request
            && (self.verb == "watch"
                || LONG_RUNNING_SUBRESOURCES.contains(&self.subresource.as_str()))
    }
}

fn verb_for_method(method: &http::Method) -> String {
    match *method {
        http::Method::POST => "create".into(),
        http::Method::GET | http::Method::HEAD => "get".into(),
        http::Method::PUT => "update".into(),
        http::Method::PATCH => "patch".into(),
        http::Method::DELETE => "delete".into(),
        _ => method.as_str().to_ascii_lowercase(),
    }
}

/// Value of a query parameter (first occurrence), percent-decoded.
pub fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Parse a request.
pub fn parse(method: &http::Method, path: &str, query: Option<&str>) -> RequestInfo {
    let method_verb = verb_for_method(method);
    let mut info = RequestInfo {
        path: path.to_owned(),
        verb: method_verb.clone(),
        ..Default::default()
    };
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let Some((prefix, rest)) = segments.split_first() else {
        return info;
    };
    let mut parts: Vec<&str> = rest.to_vec();
    match *prefix {
        "api" => {
            // /api/v1/...
            if parts.len() < 2 {
                return info;
            }
            info.api_version = parts[0].to_owned();
            parts.remove(0);
        }
        "apis" => {
            // /apis/group/version/...
            if parts.len() < 3 {
                return info;
            }
            info.api_group = parts[0].to_owned();
            info.api_version = parts[1].to_owned();
            parts.drain(0..2);
        }
        _ => return info,
    }
    info.api_prefix = (*prefix).to_owned();
    info.is_resource_request = true;

    // /watch/... is the deprecated watch prefix.
    if parts.first() == Some(&"watch") {
        parts.remove(0);
        info.verb = "watch".into();
    }
    if parts.first() == Some(&"namespaces") && parts.len() > 1 {
        info.namespace = parts[1].to_owned();
        if parts.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&parts[2]) {
            parts.drain(0..2);
        }
    }
    info.parts = parts.iter().map(|s| (*s).to_owned()).collect();
    if parts.len() >= 3 {
        info.subresource = parts[2].to_owned();
    }
    if parts.len() >= 2 {
        info.name = parts[1].to_owned();
    }
    if let Some(r) = parts.first() {
        info.resource = (*r).to_owned();
    }

    if info.name.is_empty() && info.verb == "get" {
        let watch = query_param(query, "watch").is_some_and(|w| w == "true" || w == "1");
        info.verb = if watch { "watch".into() } else { "list".into() };
        // A list of one name by field selector is authorised as that name.
        if let Some(fs) = query_param(query, "fieldSelector")
            && let Some(name) = fs.split(',').find_map(|t| {
                t.strip_prefix("metadata.name=")
                    .or(t.strip_prefix("metadata.name=="))
            })
            && !name.is_empty()
            && !name.contains('/')
        {
            info.name = name.to_owned();
        }
    }
    if info.name.is_empty() && info.verb == "delete" {
        info.verb = "deletecollection".into();
    }
    info
}

/// The message prefix kube-apiserver uses for a bad `?timeout=`.
pub const INVALID_TIMEOUT_IN_URL: &str = "invalid timeout specified in the request URL";

/// `?timeout=` as `filters/request_deadline.go` reads it: a Go duration
/// (`time.ParseDuration`), so `30` is an error and `30s` is thirty seconds.
/// `Ok(None)` when absent.
pub fn parse_timeout(query: Option<&str>) -> Result<Option<Duration>, String> {
    let Some(value) = query_param(query, "timeout") else {
        return Ok(None);
    };
    if value.is_empty() {
        return Ok(None);
    }
    parse_go_duration(&value)
        .map(Some)
        .map_err(|e| format!("{INVALID_TIMEOUT_IN_URL} - {e}"))
}

/// Go's `time.ParseDuration` (the project's one parser); a negative
/// duration comes back as zero (the deadline filter treats it as "no user
/// timeout").
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    match api_types::duration::parse_go_duration(s) {
        Ok(d) => Ok(d),
        Err(api_types::duration::DurationError::Negative) => Ok(Duration::ZERO),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(method: http::Method, path: &str, query: Option<&str>) -> RequestInfo {
        parse(&method, path, query)
    }

    #[test]
    fn resource_requests() {
        let i = p(
            http::Method::POST,
            "/apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/ns/pods/p/checkpoint",
            Some("container=c"),
        );
        assert!(i.is_resource_request);
        assert_eq!(i.verb, "create");
        assert_eq!(i.api_group, "subresources.checkpoint.kcr.dev");
        assert_eq!(i.api_version, "v1alpha1");
        assert_eq!(i.namespace, "ns");
        assert_eq!(i.resource, "pods");
        assert_eq!(i.name, "p");
        assert_eq!(i.subresource, "checkpoint");
        assert_eq!(i.combined_resource(), "pods/checkpoint");

        let i = p(http::Method::GET, "/api/v1/namespaces/default/pods", None);
        assert_eq!((i.verb.as_str(), i.resource.as_str()), ("list", "pods"));
        let i = p(http::Method::GET, "/api/v1/pods", Some("watch=true"));
        assert_eq!(i.verb, "watch");
        assert!(i.is_long_running());
        let i = p(http::Method::GET, "/api/v1/namespaces/kube-system", None);
        assert_eq!(
            (i.resource.as_str(), i.name.as_str(), i.namespace.as_str()),
            ("namespaces", "kube-system", "kube-system")
        );
        let i = p(
            http::Method::GET,
            "/api/v1/nodes",
            Some("fieldSelector=metadata.name%3Dn1"),
        );
        assert_eq!((i.verb.as_str(), i.name.as_str()), ("list", "n1"));
        let i = p(http::Method::DELETE, "/api/v1/namespaces/d/pods", None);
        assert_eq!(i.verb, "deletecollection");
        let i = p(http::Method::GET, "/api/v1/namespaces/d/pods/x/log", None);
        assert!(i.is_long_running());
    }

    #[test]
    fn non_resource_requests() {
        for path in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps",
            "/apis/apps/v1",
            "/version",
            "/openapi/v2",
        ] {
            let i = p(http::Method::GET, path, None);
            assert!(!i.is_resource_request, "{path}");
            assert_eq!(i.verb, "get");
        }
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_go_duration("1.5h").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_go_duration("250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_go_duration("-5s").unwrap(), Duration::ZERO);
        assert_eq!(
            parse_go_duration("30").unwrap_err(),
            "time: missing unit in duration \"30\""
        );
        assert_eq!(
            parse_go_duration("1d").unwrap_err(),
            "time: unknown unit \"d\" in duration \"1d\""
        );
        assert_eq!(
            parse_go_duration("x").unwrap_err(),
            "time: invalid duration \"x\""
        );
        assert_eq!(
            parse_timeout(Some("container=c&timeout=30")).unwrap_err(),
            "invalid timeout specified in the request URL - time: missing unit in duration \"30\""
        );
        assert_eq!(
            parse_timeout(Some("timeout=2s")).unwrap(),
            Some(Duration::from_secs(2))
        );
        assert_eq!(parse_timeout(None).unwrap(), None);
    }
}
