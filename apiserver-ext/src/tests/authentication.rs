//! Who is who: denials that leak nothing, client certificates, a TokenReview or
//! SubjectAccessReview that cannot be made, the `extension-apiserver-authentication`
//! ConfigMap and the flags that override it.

use std::sync::Arc;
use std::time::Duration;

use apiserver_lib::authentication::{Authenticator, TokenReviewAuthenticator};
use apiserver_lib::authorization::SubjectAccessReviewAuthorizer;
use apiserver_lib::options::{
    AuthenticationError, ConfigMapAuthentication, DelegatingAuthenticationOptions,
    RequestHeaderAuthenticationOptions,
};
use apiserver_lib::pki::Ca;
use http::StatusCode;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{As, Harness, assert_status, front_proxy, harness};
use crate::options::ApiServerFlags;
use crate::server::Server;
use kcr_testkit::mock_api::{MockApi, Scenario};

#[tokio::test]
async fn forbidden_leaks_nothing_about_the_pod() {
    let h = harness(true);
    let (code, body) = h
        .checkpoint_as(As::Proxy("viewer", vec!["viewers"]), "single", "", b"")
        .await;
    assert_status(code, &body, 403, "Forbidden");
    assert_eq!(
        body["message"],
        "pods \"single\" is forbidden: User \"viewer\" cannot checkpoint resource \"pods\" in API group \"\" in the namespace \"ns\": no RBAC policy matched"
    );
    // Same answer for a pod that does not exist: existence does not leak.
    let (_, ghost) = h
        .checkpoint_as(As::Proxy("viewer", vec!["viewers"]), "ghost", "", b"")
        .await;
    assert_eq!(
        ghost["message"]
            .as_str()
            .unwrap()
            .replace("ghost", "single"),
        body["message"]
    );
    // Neither the cluster nor the node was consulted.
    assert!(h.fakes.kubelet_client.calls().is_empty());
    assert!(h.fakes.events.events().is_empty());
}

#[tokio::test]
async fn client_certificates_authenticate_as_their_subject() {
    let h = harness(true);
    let alice = h.client_ca.client("alice", &["devs"]).unwrap();
    let (code, body) = h
        .checkpoint_as(As::ClientCert(alice), "single", "", b"")
        .await;
    assert_eq!(code, StatusCode::OK, "{body:#}");
    // A client-CA certificate does not make the headers count.
    let mallory = h.client_ca.client("mallory", &[]).unwrap();
    let (code, body) = h
        .checkpoint_as(As::Spoofed("alice", Some(mallory)), "single", "", b"")
        .await;
    assert_status(code, &body, 403, "Forbidden");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("User \"mallory\"")
    );
}

#[tokio::test]
async fn api_server_unreachable_for_authorization_is_503() {
    let h = harness(true);
    // A TokenReview that cannot be made authenticates nobody (kube-apiserver's behaviour).
    let down = MockApi::new(vec![Scenario::Unreachable]);
    let app_authz =
        SubjectAccessReviewAuthorizer::new(down.client(), Duration::ZERO, Duration::ZERO);
    let authn = Authenticator {
        request_header: Some(front_proxy(&h.proxy_ca, vec![])),
        client_ca: None,
        token: Some(Arc::new(TokenReviewAuthenticator::new(
            down.client(),
            vec![],
        ))),
    };
    let server = Server::new(h.fakes.config(authn, Arc::new(app_authz)));
    let h2 = Harness { server, ..h };
    let (code, body) = h2.checkpoint("single", "").await;
    assert_status(code, &body, 503, "ServiceUnavailable");
    insta::assert_json_snapshot!("status_authorization_unavailable", body);
    let (code, body) = h2
        .checkpoint_as(As::Token("alice-token"), "single", "", b"")
        .await;
    assert_status(code, &body, 401, "Unauthorized");
}

// ---- the extension-apiserver-authentication ConfigMap and the flags ----

const CONFIGMAP_NAMESPACE: &str = "kube-system";
const CONFIGMAP_NAME: &str = "extension-apiserver-authentication";

/// The authentication flags of the server: only these set.
fn flags(
    client_ca_file: Option<std::path::PathBuf>,
    request_header: RequestHeaderAuthenticationOptions,
) -> DelegatingAuthenticationOptions<ApiServerFlags> {
    DelegatingAuthenticationOptions {
        remote: Default::default(),
        client_ca_file,
        request_header,
    }
}

fn configmap(proxy_ca: &str, client_ca: &str, names: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(CONFIGMAP_NAME.into()),
            namespace: Some(CONFIGMAP_NAMESPACE.into()),
            ..Default::default()
        },
        data: Some(
            [
                ("client-ca-file", client_ca.to_owned()),
                ("requestheader-client-ca-file", proxy_ca.to_owned()),
                ("requestheader-allowed-names", names.to_owned()),
                (
                    "requestheader-username-headers",
                    r#"["X-Remote-User"]"#.to_owned(),
                ),
                (
                    "requestheader-group-headers",
                    r#"["X-Remote-Group"]"#.to_owned(),
                ),
                (
                    "requestheader-extra-headers-prefix",
                    r#"["X-Remote-Extra-"]"#.to_owned(),
                ),
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
    let mock = MockApi::new(vec![Scenario::object(&configmap(
        &proxy.pem.cert,
        &client.pem.cert,
        r#"["front-proxy-client"]"#,
    ))]);
    let sources = ConfigMapAuthentication::lookup(mock.client())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        mock.request_lines(),
        vec!["GET /api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication"]
    );
    assert_eq!(sources.allowed_names, vec!["front-proxy-client"]);
    let d = flags(None, Default::default())
        .build(Some(&sources), None)
        .unwrap();
    let rh = d.authenticator.request_header.unwrap();
    assert_eq!(rh.allowed_names, vec!["front-proxy-client"]);
    assert_eq!(rh.username_headers, vec!["X-Remote-User"]);
    assert!(d.authenticator.client_ca.is_some());
    assert_eq!(d.client_cas.len(), 2);

    // Absent ConfigMap: None; our RBAC missing: an error.
    let mock = MockApi::new(vec![]);
    assert!(
        ConfigMapAuthentication::lookup(mock.client())
            .await
            .unwrap()
            .is_none()
    );
    let mock = MockApi::new(vec![Scenario::ForbidReads]);
    let err = ConfigMapAuthentication::lookup(mock.client())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("failed to read ConfigMap kube-system/extension-apiserver-authentication"),
        "{err}"
    );
}

#[test]
fn flags_win_over_the_configmap() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = Ca::new("front-proxy-ca").unwrap();
    let path = dir.path().join("proxy.crt");
    std::fs::write(&path, &proxy.pem.cert).unwrap();
    let cm = ConfigMapAuthentication {
        requestheader_ca: Some(Ca::new("other").unwrap().pem.cert),
        allowed_names: vec!["cm-name".into()],
        group_headers: vec!["X-Cm-Group".into()],
        ..Default::default()
    };
    let options = flags(
        None,
        RequestHeaderAuthenticationOptions {
            requestheader_client_ca_file: Some(path.clone()),
            requestheader_allowed_names: vec!["flag-name".into()],
            requestheader_username_headers: vec!["X-Flag-User".into()],
            ..Default::default()
        },
    );
    let d = options.build(Some(&cm), None).unwrap();
    let rh = d.authenticator.request_header.unwrap();
    assert_eq!(rh.ca.origin(), path.as_path());
    assert_eq!(rh.allowed_names, vec!["flag-name"]);
    assert_eq!(rh.username_headers, vec!["X-Flag-User"]);
    assert_eq!(rh.group_headers, vec!["X-Cm-Group"]);
    assert_eq!(rh.extra_headers_prefix, vec!["X-Remote-Extra-"]);
    assert!(d.authenticator.client_ca.is_none());

    // Nothing anywhere: no certificate authentication at all.
    let d = flags(None, Default::default()).build(None, None).unwrap();
    assert!(d.authenticator.request_header.is_none() && d.client_cas.is_empty());
}

#[test]
fn bad_configmaps() {
    let mut cm = configmap("x", "y", "not json");
    assert!(matches!(
        ConfigMapAuthentication::from_configmap(&cm),
        Err(AuthenticationError::BadList {
            key: "requestheader-allowed-names",
            ..
        })
    ));
    cm = configmap("not a pem", "", "[]");
    let s = ConfigMapAuthentication::from_configmap(&cm).unwrap();
    assert!(s.client_ca.is_none());
    assert!(
        flags(None, Default::default())
            .build(Some(&s), None)
            .is_err()
    );
}

#[tokio::test]
async fn token_file() {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        f.path(),
        "# comment\nadmin-token,admin,1,\"system:masters,devs\"\nbob-token,bob,2\n\n",
    )
    .unwrap();
    let options = flags(None, Default::default());
    let d = options.apply(None, Some(f.path())).await.unwrap();
    assert!(d.authenticator.token.is_some());
    std::fs::write(f.path(), "only-token\n").unwrap();
    assert_eq!(
        options
            .apply(None, Some(f.path()))
            .await
            .unwrap_err()
            .to_string(),
        format!(
            "--token-auth-file-for-testing: {}:1: token file must have at least 3 columns (token, user name, user uid), found 1",
            f.path().display()
        )
    );
}
