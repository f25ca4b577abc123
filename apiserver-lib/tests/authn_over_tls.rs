#![allow(clippy::unwrap_used)]
//! The serving stack end to end over real TLS, with the authentication
//! filter in front of a handler that only reads the user from the request:
//! which peers authenticate as whom, and which get 401.

use std::path::Path;
use std::sync::Arc;

use api_types::status;
use apiserver_lib::authentication::{Authenticator, RequestHeaderConfig, StaticTokensForTesting};
use apiserver_lib::filters::WithAuthentication;
use apiserver_lib::pki::{Ca, Pem};
use apiserver_lib::tls::{self, CaVerifier, ServerTrust};
use apiserver_lib::{StatusError, UserInfo, serve};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Extension, Router};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use kcr_testkit::harness::{certs, identity};

struct Fixture {
    addr: std::net::SocketAddr,
    server_ca: Ca,
    client_ca: Ca,
    proxy_ca: Ca,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

async fn start() -> Fixture {
    let server_ca = Ca::new("server-ca").unwrap();
    let client_ca = Ca::new("client-ca").unwrap();
    let proxy_ca = Ca::new("front-proxy-ca").unwrap();
    let serving = server_ca
        .server("localhost", &["localhost", "127.0.0.1"])
        .unwrap();
    let mut cas = certs(&client_ca.pem.cert);
    cas.extend(certs(&proxy_ca.pem.cert));
    let config = tls::server_config(identity(&serving), &cas).unwrap();
    let mut tokens = StaticTokensForTesting::default();
    tokens.tokens.insert(
        "good-token".into(),
        UserInfo::new("tok-user", vec!["tok-group".into()]),
    );
    let authn = Arc::new(Authenticator {
        request_header: Some(RequestHeaderConfig::with_default_headers(
            CaVerifier::new(&certs(&proxy_ca.pem.cert), Path::new("proxy")).unwrap(),
            vec!["front-proxy-client".into()],
        )),
        client_ca: Some(CaVerifier::new(&certs(&client_ca.pem.cert), Path::new("client")).unwrap()),
        token: Some(Arc::new(tokens)),
    });
    // The filter authenticates; the handler only reads who it was.
    let router = WithAuthentication::new(authn, |_| {
        StatusError(status::unauthorized()).into_response()
    })
    .wrap(Router::new().route(
        "/whoami",
        get(|Extension(user): Extension<UserInfo>| async move { axum::Json(user) }),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(serve::serve_tls(listener, config, router, async {
        let _ = rx.await;
    }));
    Fixture {
        addr,
        server_ca,
        client_ca,
        proxy_ca,
        stop: Some(tx),
    }
}

async fn get_whoami(
    f: &Fixture,
    identity_pem: Option<&Pem>,
    headers: &[(&str, &str)],
    http2: bool,
) -> (u16, String) {
    let cfg = tls::client_config(
        ServerTrust::Ca(certs(&f.server_ca.pem.cert)),
        identity_pem.map(identity),
    )
    .unwrap();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(cfg)
        .https_only();
    let https = if http2 {
        https.enable_http2().build()
    } else {
        https.enable_http1().build()
    };
    let client: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(http2)
        .build(https);
    let mut req = http::Request::get(format!("https://localhost:{}/whoami", f.addr.port()));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(req.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let code = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (code, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn who_is_who() {
    let f = start().await;
    let alice = f.client_ca.client("alice", &["devs"]).unwrap();
    let (code, body) = get_whoami(&f, Some(&alice), &[], false).await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("\"name\":\"alice\"")
            && body.contains("devs")
            && body.contains("system:authenticated"),
        "{body}"
    );

    // HTTP/2 as well.
    let (code, _) = get_whoami(&f, Some(&alice), &[], true).await;
    assert_eq!(code, 200);

    // The front proxy's headers count with its certificate...
    let proxy = f.proxy_ca.client("front-proxy-client", &[]).unwrap();
    let hdrs = [
        ("X-Remote-User", "bob"),
        ("X-Remote-Group", "g1"),
        ("X-Remote-Group", "g2"),
        ("X-Remote-Extra-Scopes%2fA", "s"),
    ];
    let (code, body) = get_whoami(&f, Some(&proxy), &hdrs, false).await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("\"name\":\"bob\"")
            && body.contains("g1")
            && body.contains("g2")
            && body.contains("scopes/a"),
        "{body}"
    );

    // ...and nowhere else: spoofed headers with no certificate, with a
    // client-CA certificate (authenticates as the cert, not the header), with
    // a proxy-CA certificate whose CN is not allowed.
    let (code, body) = get_whoami(&f, None, &hdrs, false).await;
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("\"reason\":\"Unauthorized\""), "{body}");
    let (code, body) = get_whoami(&f, Some(&alice), &hdrs, false).await;
    assert_eq!(code, 200);
    assert!(body.contains("\"name\":\"alice\""), "{body}");
    let other_cn = f.proxy_ca.client("mallory", &[]).unwrap();
    let (code, _) = get_whoami(&f, Some(&other_cn), &hdrs, false).await;
    assert_eq!(code, 401);

    // A certificate from an unknown CA, an expired one: 401, not a TLS alert.
    let stranger = Ca::new("stranger").unwrap().client("alice", &[]).unwrap();
    let (code, _) = get_whoami(&f, Some(&stranger), &[], false).await;
    assert_eq!(code, 401);
    let past = time::OffsetDateTime::now_utc() - time::Duration::days(10);
    let expired = f
        .client_ca
        .client_valid("alice", &[], past - time::Duration::days(1), past)
        .unwrap();
    let (code, _) = get_whoami(&f, Some(&expired), &[], false).await;
    assert_eq!(code, 401);

    // Bearer tokens.
    let (code, body) = get_whoami(&f, None, &[("Authorization", "Bearer good-token")], false).await;
    assert_eq!(code, 200);
    assert!(body.contains("tok-user"), "{body}");
    let (code, _) = get_whoami(&f, None, &[("Authorization", "Bearer bad-token")], false).await;
    assert_eq!(code, 401);

    drop(f.stop);
}
