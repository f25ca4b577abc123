//! Authentication, in kube-apiserver's order: request-header (an aggregator
//! front proxy), x509 client certificate, bearer token.
//!
//! Mirrors `k8s.io/apiserver/pkg/authentication/request/{headerrequest,x509,bearertoken}`.
//! Request headers count only when the connection's client certificate
//! verifies against the request-header CA and its CN is allowed: a spoofed
//! `X-Remote-User` without one authenticates nobody.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use http::HeaderMap;
use http::request::Parts;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::PostParams;
use serde::{Deserialize, Serialize};

use crate::serve::PeerCertificates;
use crate::tls::{CaVerifier, subject_of};

/// `system:authenticated`, added to every authenticated user.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";

/// Who made a request (`user.Info`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UserInfo {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    pub fn new(name: impl Into<String>, groups: Vec<String>) -> Self {
        Self {
            name: name.into(),
            groups,
            ..Default::default()
        }
    }

    fn with_authenticated_group(mut self) -> Self {
        if !self.groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
            self.groups.push(AUTHENTICATED_GROUP.to_owned());
        }
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No authenticator recognised the request: 401.
    #[error("Unauthorized")]
    Unauthenticated,
    /// The token could not be checked (API server unreachable): 503-ish.
    #[error("failed to review the bearer token: {0}")]
    TokenReview(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Checks a bearer token (a TokenReview, or a static table for testing).
pub trait TokenAuthenticator: Send + Sync + std::fmt::Debug {
    /// `Ok(None)`: the token is not valid.
    fn authenticate_token<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<UserInfo>>>;
}

/// Front-proxy authentication options (`--requestheader-*`).
#[derive(Debug, Clone)]
pub struct RequestHeaderConfig {
    pub ca: CaVerifier,
    /// CNs allowed to act as front proxy; empty means any certificate the CA signed.
    pub allowed_names: Vec<String>,
    pub username_headers: Vec<String>,
    pub group_headers: Vec<String>,
    pub extra_headers_prefix: Vec<String>,
}

impl RequestHeaderConfig {
    /// kube-apiserver's usual header names.
    pub fn with_default_headers(ca: CaVerifier, allowed_names: Vec<String>) -> Self {
        Self {
            ca,
            allowed_names,
            username_headers: vec!["X-Remote-User".into()],
            group_headers: vec!["X-Remote-Group".into()],
            extra_headers_prefix: vec!["X-Remote-Extra-".into()],
        }
    }

    fn user_from_headers(&self, headers: &HeaderMap) -> Option<UserInfo> {
        let name = self
            .username_headers
            .iter()
            .filter_map(|h| headers.get(h.as_str()))
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .find(|v| !v.is_empty())?
            .to_owned();
        // One header per group, as kube-apiserver sends them (values are not split).
        let groups = self
            .group_headers
            .iter()
            .flat_map(|h| headers.get_all(h.as_str()).iter())
            .filter_map(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect();
        let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (key, value) in headers {
            let key = key.as_str();
            for prefix in &self.extra_headers_prefix {
                let prefix = prefix.to_ascii_lowercase();
                if let Some(rest) = key.strip_prefix(prefix.as_str())
                    && !rest.is_empty()
                    && let Ok(v) = value.to_str()
                {
                    let k = percent_decode(rest).to_ascii_lowercase();
                    extra.entry(k).or_default().push(v.to_owned());
                }
            }
        }
        Some(UserInfo {
            name,
            uid: String::new(),
            groups,
            extra,
        })
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// The union of the configured authenticators.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    pub request_header: Option<RequestHeaderConfig>,
    /// `--client-ca-file`: CN is the user, O the groups.
    pub client_ca: Option<CaVerifier>,
    pub token: Option<Arc<dyn TokenAuthenticator>>,
}

/// How a request was authenticated (for logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    RequestHeader,
    X509,
    Token,
}

impl Authenticator {
    /// Authenticate a request from its parts (the peer chain is read from the
    /// extensions set by [`crate::serve`]).
    pub async fn authenticate(&self, parts: &Parts) -> Result<(UserInfo, Method)> {
        let chain = parts
            .extensions
            .get::<PeerCertificates>()
            .map(|p| p.0.clone())
            .unwrap_or_default();
        if !chain.is_empty() {
            if let Some(rh) = &self.request_header
                && rh.ca.verify(&chain).is_ok()
            {
                let cn = chain
                    .first()
                    .and_then(subject_of)
                    .map(|(cn, _)| cn)
                    .unwrap_or_default();
                if rh.allowed_names.is_empty() || rh.allowed_names.contains(&cn) {
                    if let Some(user) = rh.user_from_headers(&parts.headers) {
                        return Ok((user.with_authenticated_group(), Method::RequestHeader));
                    }
                } else {
                    tracing::debug!(
                        cn,
                        "front-proxy certificate CN is not in --requestheader-allowed-names"
                    );
                }
            }
            if let Some(ca) = &self.client_ca {
                match ca.verify(&chain) {
                    Ok(()) => {
                        if let Some((cn, groups)) = chain.first().and_then(subject_of) {
                            return Ok((
                                UserInfo::new(cn, groups).with_authenticated_group(),
                                Method::X509,
                            ));
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "client certificate rejected"),
                }
            }
        }
        if let Some(token_auth) = &self.token
            && let Some(token) = bearer_token(&parts.headers)
        {
            return match token_auth.authenticate_token(token).await? {
                Some(user) => Ok((user.with_authenticated_group(), Method::Token)),
                None => Err(Error::Unauthenticated),
            };
        }
        Err(Error::Unauthenticated)
    }
}

/// The token of an `Authorization: Bearer` header, when there is one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// TokenReview against the API server (`--authentication-kubeconfig`).
#[derive(Clone)]
pub struct TokenReviewAuthenticator {
    client: kube::Client,
    audiences: Vec<String>,
}

impl std::fmt::Debug for TokenReviewAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenReviewAuthenticator")
            .field("audiences", &self.audiences)
            .finish()
    }
}

impl TokenReviewAuthenticator {
    pub fn new(client: kube::Client, audiences: Vec<String>) -> Self {
        Self { client, audiences }
    }
}

impl TokenAuthenticator for TokenReviewAuthenticator {
    fn authenticate_token<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<UserInfo>>> {
        Box::pin(async move {
            let api: kube::Api<TokenReview> = kube::Api::all(self.client.clone());
            let review = TokenReview {
                spec: TokenReviewSpec {
                    token: Some(token.to_owned()),
                    audiences: (!self.audiences.is_empty()).then(|| self.audiences.clone()),
                },
                ..Default::default()
            };
            let done = api
                .create(&PostParams::default(), &review)
                .await
                .map_err(|e| Error::TokenReview(e.to_string()))?;
            let Some(status) = done.status else {
                return Ok(None);
            };
            if status.authenticated != Some(true) {
                return Ok(None);
            }
            let Some(user) = status.user else {
                return Ok(None);
            };
            Ok(Some(UserInfo {
                name: user.username.unwrap_or_default(),
                uid: user.uid.unwrap_or_default(),
                groups: user.groups.unwrap_or_default(),
                extra: user.extra.unwrap_or_default().into_iter().collect(),
            }))
        })
    }
}

/// A fixed token table, for tests and local stacks only
/// (`--token-auth-file-for-testing`-style flags).
#[derive(Debug, Clone, Default)]
pub struct StaticTokensForTesting {
    pub tokens: BTreeMap<String, UserInfo>,
}

/// A `--token-auth-file` that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("failed to read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Line {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// Split one CSV record (double quotes group, `""` is a quote).
fn csv_fields(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.is_empty() => quoted = true,
            (',', false) => fields.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    fields.push(cur);
    Ok(fields)
}

impl StaticTokensForTesting {
    /// Parse kube-apiserver's `--token-auth-file` format
    /// (`k8s.io/apiserver/plugin/pkg/authenticator/token/tokenfile`):
    /// `token,user,uid[,"group1,group2"]` per line, `#` lines are comments.
    /// `origin` names the file in errors.
    pub fn parse(text: &str, origin: &Path) -> std::result::Result<Self, TokenFileError> {
        let mut tokens = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |reason: String| TokenFileError::Line {
                path: origin.into(),
                line: i + 1,
                reason,
            };
            let fields = csv_fields(line).map_err(err)?;
            if fields.len() < 3 {
                return Err(err(format!(
                    "token file must have at least 3 columns (token, user name, user uid), found {}",
                    fields.len()
                )));
            }
            let token = fields[0].trim().to_owned();
            let name = fields[1].trim().to_owned();
            if token.is_empty() || name.is_empty() {
                return Err(err("empty token or user name".into()));
            }
            let groups = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            let user = UserInfo {
                name,
                uid: fields[2].trim().to_owned(),
                groups,
                extra: BTreeMap::new(),
            };
            tokens.insert(token, user);
        }
        Ok(Self { tokens })
    }

    /// Read and parse a token file.
    pub fn load(path: &Path) -> std::result::Result<Self, TokenFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(&text, path)
    }
}

impl TokenAuthenticator for StaticTokensForTesting {
    fn authenticate_token<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<UserInfo>>> {
        let found = self.tokens.get(token).cloned();
        Box::pin(async move { Ok(found) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer_token(&h), None);
        h.insert(http::header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer_token(&h), Some("abc"));
        h.insert(http::header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer_token(&h), None);
        h.insert(http::header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer_token(&h), None);
    }

    #[test]
    fn token_file_in_kube_format() {
        let t = StaticTokensForTesting::parse(
            "# comment\nabc,alice,1001,\"devs,ops\"\nxyz,bob,1002\n\n",
            Path::new("tokens.csv"),
        )
        .unwrap();
        let a = &t.tokens["abc"];
        assert_eq!((a.name.as_str(), a.uid.as_str()), ("alice", "1001"));
        assert_eq!(a.groups, vec!["devs".to_string(), "ops".to_string()]);
        assert!(t.tokens["xyz"].groups.is_empty());
        let e = StaticTokensForTesting::parse("onlytoken,user\n", Path::new("t.csv")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.csv:1: token file must have at least 3 columns (token, user name, user uid), found 2"
        );
        let e = StaticTokensForTesting::parse(",alice,1\n", Path::new("t.csv")).unwrap_err();
        assert_eq!(e.to_string(), "t.csv:1: empty token or user name");
        let e = StaticTokensForTesting::parse("a,b,c,\"open\n", Path::new("t.csv")).unwrap_err();
        assert_eq!(e.to_string(), "t.csv:1: unterminated quoted field");
        assert!(matches!(
            StaticTokensForTesting::load(Path::new("/nonexistent/tokens.csv")),
            Err(TokenFileError::Read { .. })
        ));
    }

    #[test]
    fn extra_keys_are_decoded_and_lowercased() {
        assert_eq!(percent_decode("Scopes%2fA"), "Scopes/A");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
