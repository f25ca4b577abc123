//! Discovery and OpenAPI documents, methods other than POST, the gate, health
//! and metrics.

use http::{Method, StatusCode};
use serde_json::Value;

use super::{As, BASE, assert_status, harness};

#[tokio::test]
async fn other_methods_are_405() {
    let h = harness(true);
    for m in [Method::GET, Method::PUT, Method::DELETE, Method::PATCH] {
        let (code, _, bytes) = h
            .send(
                As::Proxy("alice", vec![]),
                m.clone(),
                &format!("{BASE}/ns/pods/single/checkpoint"),
                b"",
                &[],
            )
            .await;
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_status(code, &body, 405, "MethodNotAllowed");
        if m == Method::GET {
            insta::assert_json_snapshot!("status_method_not_allowed", body);
        }
    }
    // Discovery is read-only too.
    let (code, _, bytes) = h
        .send(As::Token("bob-token"), Method::POST, "/apis", b"", &[])
        .await;
    assert_status(
        code,
        &serde_json::from_slice(&bytes).unwrap(),
        405,
        "MethodNotAllowed",
    );
    assert!(h.fakes.kubelet_client.calls().is_empty());
}

#[tokio::test]
async fn gate_off_hides_the_subresource() {
    let h = harness(false);
    let (code, body) = h.checkpoint("single", "").await;
    assert_status(code, &body, 404, "NotFound");
    insta::assert_json_snapshot!("status_gate_off", body);
    let (code, body) = h
        .get_json("/apis/subresources.checkpoint.kcr.dev/v1alpha1")
        .await;
    assert_eq!(code, StatusCode::OK);
    insta::assert_json_snapshot!("discovery_version_gate_off", body);
    let (_, body) = h.get_json("/openapi/v2").await;
    assert_eq!(body["paths"], serde_json::json!({}));
    assert!(h.fakes.kubelet_client.calls().is_empty());
    // Still 401 first for strangers.
    let (code, body) = h.checkpoint_as(As::Nobody, "single", "", b"").await;
    assert_status(code, &body, 401, "Unauthorized");
}

#[tokio::test]
async fn discovery_and_openapi_documents() {
    let h = harness(true);
    for (name, path) in [
        ("discovery_apis", "/apis"),
        ("discovery_group", "/apis/subresources.checkpoint.kcr.dev"),
        (
            "discovery_version",
            "/apis/subresources.checkpoint.kcr.dev/v1alpha1",
        ),
        ("openapi_v2", "/openapi/v2"),
        ("openapi_v3", "/openapi/v3"),
        (
            "openapi_v3_group",
            "/openapi/v3/apis/subresources.checkpoint.kcr.dev/v1alpha1",
        ),
    ] {
        let (code, body) = h.get_json(path).await;
        assert_eq!(code, StatusCode::OK, "{path}: {body:#}");
        insta::assert_json_snapshot!(name, body);
    }
    // Discovery needs authentication.
    let (code, _, bytes) = h.send(As::Nobody, Method::GET, "/apis", b"", &[]).await;
    assert_status(
        code,
        &serde_json::from_slice(&bytes).unwrap(),
        401,
        "Unauthorized",
    );
    // ETags for the aggregator's OpenAPI downloader.
    let (_, headers, _) = h
        .send(As::Token("bob-token"), Method::GET, "/openapi/v2", b"", &[])
        .await;
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let (code, _, body) = h
        .send(
            As::Token("bob-token"),
            Method::GET,
            "/openapi/v2",
            b"",
            &[("If-None-Match", etag.as_str())],
        )
        .await;
    assert_eq!(code, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    // Unknown paths: a 404 Status.
    let (code, body) = h
        .get_json("/apis/subresources.checkpoint.kcr.dev/v1alpha1/namespaces/ns/pods/single/exec")
        .await;
    assert_status(code, &body, 404, "NotFound");
    insta::assert_json_snapshot!("status_unknown_path", body);
}

#[tokio::test]
async fn health_needs_no_credentials_and_metrics_needs_rbac() {
    let h = harness(true);
    for path in ["/healthz", "/livez", "/readyz"] {
        let (code, _, body) = h.send(As::Nobody, Method::GET, path, b"", &[]).await;
        assert_eq!(code, StatusCode::OK, "{path}");
        assert_eq!(body, b"ok");
    }
    let (code, _, body) = h
        .send(As::Nobody, Method::GET, "/readyz?verbose", b"", &[])
        .await;
    assert_eq!(code, StatusCode::OK);
    insta::assert_snapshot!("readyz_verbose", String::from_utf8(body).unwrap());
    h.fakes.listers.set_unreachable(Some("connection refused"));
    let (code, _, body) = h.send(As::Nobody, Method::GET, "/readyz", b"", &[]).await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(String::from_utf8_lossy(&body).contains("[-]kube-apiserver failed"));
    let (code, _, _) = h.send(As::Nobody, Method::GET, "/livez", b"", &[]).await;
    assert_eq!(
        code,
        StatusCode::OK,
        "liveness does not depend on the API server"
    );

    // The API server being down is a 503 for a checkpoint, too.
    let (code, body) = h.checkpoint("single", "").await;
    assert_status(code, &body, 503, "ServiceUnavailable");

    // /metrics needs a user allowed to `get /metrics`
    let (code, _, body) = h.send(As::Nobody, Method::GET, "/metrics", b"", &[]).await;
    assert_status(
        code,
        &serde_json::from_slice(&body).unwrap(),
        401,
        "Unauthorized",
    );
    let (code, _, body) = h
        .send(As::Proxy("bob", vec![]), Method::GET, "/metrics", b"", &[])
        .await;
    let status: Value = serde_json::from_slice(&body).unwrap();
    assert_status(code, &status, 403, "Forbidden");
    assert_eq!(
        status["message"],
        "forbidden: User \"bob\" cannot get path \"/metrics\""
    );
    let (code, headers, body) = h
        .send(
            As::Proxy("alice", vec![]),
            Method::GET,
            "/metrics",
            b"",
            &[],
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains("code=\"503\",reason=\"ServiceUnavailable\""),
        "{text}"
    );
}
