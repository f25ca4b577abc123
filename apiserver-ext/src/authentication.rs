//! Delegated authentication, as `k8s.io/apiserver/pkg/server/options`
//! `DelegatingAuthenticationOptions` sets it up: the client CA and the
//! front-proxy (request-header) settings come from the flags, else from the
//! `kube-system/extension-apiserver-authentication` ConfigMap that
//! kube-apiserver publishes; bearer tokens go to TokenReview.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use apiserver_lib::authn::{
    Authenticator, RequestHeaderConfig, StaticTokensForTesting, TokenAuthenticator,
};
use apiserver_lib::tls::{self, CaVerifier};
use k8s_openapi::api::core::v1::ConfigMap;
use rustls::pki_types::CertificateDer;

/// Namespace of the ConfigMap kube-apiserver publishes.
pub const CONFIGMAP_NAMESPACE: &str = "kube-system";
/// Name of that ConfigMap.
pub const CONFIGMAP_NAME: &str = "extension-apiserver-authentication";

pub const KEY_CLIENT_CA: &str = "client-ca-file";
pub const KEY_REQUESTHEADER_CA: &str = "requestheader-client-ca-file";
pub const KEY_ALLOWED_NAMES: &str = "requestheader-allowed-names";
pub const KEY_USERNAME_HEADERS: &str = "requestheader-username-headers";
pub const KEY_GROUP_HEADERS: &str = "requestheader-group-headers";
pub const KEY_EXTRA_PREFIXES: &str = "requestheader-extra-headers-prefix";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read ConfigMap {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}: {source}")]
    Lookup {
        #[source]
        source: kube::Error,
    },
    #[error(
        "ConfigMap {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}: key {key} is not a JSON list of strings: {reason}"
    )]
    BadList { key: &'static str, reason: String },
    #[error(transparent)]
    Tls(#[from] tls::Error),
    #[error("--token-auth-file-for-testing: {0}")]
    TokenFile(#[from] apiserver_lib::authn::TokenFileError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The authentication settings, from flags or the ConfigMap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    /// PEM of the client CA bundle.
    pub client_ca: Option<String>,
    /// PEM of the front-proxy CA bundle.
    pub requestheader_ca: Option<String>,
    pub allowed_names: Vec<String>,
    pub username_headers: Vec<String>,
    pub group_headers: Vec<String>,
    pub extra_headers_prefix: Vec<String>,
}

fn json_list(data: &BTreeMap<String, String>, key: &'static str) -> Result<Vec<String>> {
    match data.get(key).map(|s| s.trim()) {
        None | Some("") => Ok(Vec::new()),
        Some(raw) => serde_json::from_str::<Vec<String>>(raw).map_err(|e| Error::BadList {
            key,
            reason: e.to_string(),
        }),
    }
}

impl Sources {
    /// Parse the ConfigMap kube-apiserver publishes (lists are JSON arrays).
    pub fn from_configmap(cm: &ConfigMap) -> Result<Self> {
        let empty = BTreeMap::new();
        let data = cm.data.as_ref().unwrap_or(&empty);
        let pem = |key: &str| data.get(key).filter(|s| !s.trim().is_empty()).cloned();
        Ok(Self {
            client_ca: pem(KEY_CLIENT_CA),
            requestheader_ca: pem(KEY_REQUESTHEADER_CA),
            allowed_names: json_list(data, KEY_ALLOWED_NAMES)?,
            username_headers: json_list(data, KEY_USERNAME_HEADERS)?,
            group_headers: json_list(data, KEY_GROUP_HEADERS)?,
            extra_headers_prefix: json_list(data, KEY_EXTRA_PREFIXES)?,
        })
    }

    /// Read the ConfigMap; `Ok(None)` when it does not exist.
    pub async fn lookup(client: kube::Client) -> Result<Option<Self>> {
        let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, CONFIGMAP_NAMESPACE);
        match api.get_opt(CONFIGMAP_NAME).await {
            Ok(Some(cm)) => Ok(Some(Self::from_configmap(&cm)?)),
            Ok(None) => Ok(None),
            Err(source) => Err(Error::Lookup { source }),
        }
    }
}

/// The authentication flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    pub client_ca_file: Option<PathBuf>,
    pub requestheader_client_ca_file: Option<PathBuf>,
    pub requestheader_allowed_names: Vec<String>,
    pub requestheader_username_headers: Vec<String>,
    pub requestheader_group_headers: Vec<String>,
    pub requestheader_extra_headers_prefix: Vec<String>,
}

fn or_else(flag: &[String], cm: &[String], default: &str) -> Vec<String> {
    let pick = if !flag.is_empty() { flag } else { cm };
    let out: Vec<String> = pick
        .iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if out.is_empty() {
        vec![default.to_owned()]
    } else {
        out
    }
}

/// An authenticator and the CAs to hint in the TLS handshake (so a Go
/// front proxy sends its certificate).
#[derive(Debug, Clone)]
pub struct Delegated {
    pub authenticator: Authenticator,
    pub client_cas: Vec<CertificateDer<'static>>,
}

/// Combine flags and the ConfigMap: each setting from its flag when given,
/// else from the ConfigMap, else kube-apiserver's default header names.
pub fn build(
    flags: &Flags,
    configmap: Option<&Sources>,
    token: Option<Arc<dyn TokenAuthenticator>>,
) -> Result<Delegated> {
    let cm = configmap.cloned().unwrap_or_default();
    let mut hints = Vec::new();

    let client_ca = match (&flags.client_ca_file, &cm.client_ca) {
        (Some(path), _) => {
            let certs = tls::read_certs(path)?;
            Some((certs, path.clone()))
        }
        (None, Some(pem)) => {
            let origin = PathBuf::from(format!("configmap {CONFIGMAP_NAME} {KEY_CLIENT_CA}"));
            Some((tls::parse_certs(pem.as_bytes(), &origin)?, origin))
        }
        (None, None) => None,
    };
    let client_ca = match client_ca {
        Some((certs, origin)) => {
            hints.extend(certs.iter().cloned());
            Some(CaVerifier::new(&certs, &origin)?)
        }
        None => None,
    };

    let rh_ca = match (&flags.requestheader_client_ca_file, &cm.requestheader_ca) {
        (Some(path), _) => Some((tls::read_certs(path)?, path.clone())),
        (None, Some(pem)) => {
            let origin =
                PathBuf::from(format!("configmap {CONFIGMAP_NAME} {KEY_REQUESTHEADER_CA}"));
            Some((tls::parse_certs(pem.as_bytes(), &origin)?, origin))
        }
        (None, None) => None,
    };
    let request_header = match rh_ca {
        Some((certs, origin)) => {
            hints.extend(certs.iter().cloned());
            let allowed = if flags.requestheader_allowed_names.is_empty() {
                cm.allowed_names.clone()
            } else {
                flags.requestheader_allowed_names.clone()
            };
            Some(RequestHeaderConfig {
                ca: CaVerifier::new(&certs, &origin)?,
                allowed_names: allowed
                    .into_iter()
                    .map(|n| n.trim().to_owned())
                    .filter(|n| !n.is_empty())
                    .collect(),
                username_headers: or_else(
                    &flags.requestheader_username_headers,
                    &cm.username_headers,
                    "X-Remote-User",
                ),
                group_headers: or_else(
                    &flags.requestheader_group_headers,
                    &cm.group_headers,
                    "X-Remote-Group",
                ),
                extra_headers_prefix: or_else(
                    &flags.requestheader_extra_headers_prefix,
                    &cm.extra_headers_prefix,
                    "X-Remote-Extra-",
                ),
            })
        }
        None => None,
    };

    Ok(Delegated {
        authenticator: Authenticator {
            request_header,
            client_ca,
            token,
        },
        client_cas: hints,
    })
}

/// Read a `--token-auth-file`-style CSV (kube-apiserver's format).
pub fn read_token_file(path: &Path) -> Result<StaticTokensForTesting> {
    Ok(StaticTokensForTesting::load(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock_api::{MockApi, Scenario};
    use apiserver_lib::pki::Ca;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    pub(crate) fn configmap(proxy_ca: &str, client_ca: &str, names: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(CONFIGMAP_NAME.into()),
                namespace: Some(CONFIGMAP_NAMESPACE.into()),
                ..Default::default()
            },
            data: Some(
                [
                    (KEY_CLIENT_CA, client_ca.to_owned()),
                    (KEY_REQUESTHEADER_CA, proxy_ca.to_owned()),
                    (KEY_ALLOWED_NAMES, names.to_owned()),
                    (KEY_USERNAME_HEADERS, r#"["X-Remote-User"]"#.to_owned()),
                    (KEY_GROUP_HEADERS, r#"["X-Remote-Group"]"#.to_owned()),
                    (KEY_EXTRA_PREFIXES, r#"["X-Remote-Extra-"]"#.to_owned()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            ),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn configmap_lookup_through_the_mock_api() {
        let proxy = Ca::new("front-proxy-ca").unwrap();
        let client = Ca::new("client-ca").unwrap();
        let mock = MockApi::new(vec![Scenario::ConfigMap(configmap(
            &proxy.pem.cert,
            &client.pem.cert,
            r#"["front-proxy-client"]"#,
        ))]);
        let sources = Sources::lookup(mock.client()).await.unwrap().unwrap();
        assert_eq!(
            mock.requests(),
            vec![
                "GET /api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication"
            ]
        );
        assert_eq!(sources.allowed_names, vec!["front-proxy-client"]);
        let d = build(&Flags::default(), Some(&sources), None).unwrap();
        let rh = d.authenticator.request_header.unwrap();
        assert_eq!(rh.allowed_names, vec!["front-proxy-client"]);
        assert_eq!(rh.username_headers, vec!["X-Remote-User"]);
        assert!(d.authenticator.client_ca.is_some());
        assert_eq!(d.client_cas.len(), 2);

        // Absent ConfigMap: None; our RBAC missing: an error.
        let mock = MockApi::new(vec![]);
        assert!(Sources::lookup(mock.client()).await.unwrap().is_none());
        let mock = MockApi::new(vec![Scenario::ForbidReads]);
        let err = Sources::lookup(mock.client()).await.unwrap_err();
        assert!(
            err.to_string().starts_with(
                "failed to read ConfigMap kube-system/extension-apiserver-authentication"
            ),
            "{err}"
        );
    }

    #[test]
    fn flags_win_over_the_configmap() {
        let dir = tempfile::tempdir().unwrap();
        let proxy = Ca::new("front-proxy-ca").unwrap();
        let path = dir.path().join("proxy.crt");
        std::fs::write(&path, &proxy.pem.cert).unwrap();
        let cm = Sources {
            requestheader_ca: Some(Ca::new("other").unwrap().pem.cert),
            allowed_names: vec!["cm-name".into()],
            group_headers: vec!["X-Cm-Group".into()],
            ..Default::default()
        };
        let flags = Flags {
            requestheader_client_ca_file: Some(path.clone()),
            requestheader_allowed_names: vec!["flag-name".into()],
            requestheader_username_headers: vec!["X-Flag-User".into()],
            ..Default::default()
        };
        let d = build(&flags, Some(&cm), None).unwrap();
        let rh = d.authenticator.request_header.unwrap();
        assert_eq!(rh.ca.origin(), path.as_path());
        assert_eq!(rh.allowed_names, vec!["flag-name"]);
        assert_eq!(rh.username_headers, vec!["X-Flag-User"]);
        assert_eq!(rh.group_headers, vec!["X-Cm-Group"]);
        assert_eq!(rh.extra_headers_prefix, vec!["X-Remote-Extra-"]);
        assert!(d.authenticator.client_ca.is_none());

        // Nothing anywhere: no certificate authentication at all.
        let d = build(&Flags::default(), None, None).unwrap();
        assert!(d.authenticator.request_header.is_none() && d.client_cas.is_empty());
    }

    #[test]
    fn bad_configmaps() {
        let mut cm = configmap("x", "y", "not json");
        assert!(matches!(
            Sources::from_configmap(&cm),
            Err(Error::BadList {
                key: KEY_ALLOWED_NAMES,
                ..
            })
        ));
        cm = configmap("not a pem", "", "[]");
        let s = Sources::from_configmap(&cm).unwrap();
        assert!(s.client_ca.is_none());
        assert!(build(&Flags::default(), Some(&s), None).is_err());
    }

    #[test]
    fn token_file() {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            f.path(),
            "# comment\nadmin-token,admin,1,\"system:masters,devs\"\nbob-token,bob,2\n\n",
        )
        .unwrap();
        let t = read_token_file(f.path()).unwrap();
        assert_eq!(
            t.tokens["admin-token"].groups,
            vec!["system:masters", "devs"]
        );
        assert_eq!(t.tokens["bob-token"].name, "bob");
        std::fs::write(f.path(), "only-token\n").unwrap();
        assert_eq!(
            read_token_file(f.path()).unwrap_err().to_string(),
            format!(
                "--token-auth-file-for-testing: {}:1: token file must have at least 3 columns (token, user name, user uid), found 1",
                f.path().display()
            )
        );
    }
}
