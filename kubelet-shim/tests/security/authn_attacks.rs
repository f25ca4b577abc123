//! Authentication attacks against a real `checkpoint-shim` over TLS (issue 7,
//! item 5, the subset that applies to a kubelet-style endpoint), with real
//! TokenReview and SubjectAccessReview against kube-apiserver-standin — no
//! bypass named for testing is on. The shim, like the kubelet, has no
//! request-header (front-proxy) authentication: `X-Remote-*` headers are
//! never trusted, whoever sends them. Each case over HTTP/1.1 and HTTP/2.

use std::sync::Arc;

use super::shim::{NODE, PROTOS, Shim, ShimSetup};
use apiserver_lib::pki::{Ca, Pem};
use http::{Method, StatusCode};
use kcr_testkit::fake_cri::{FakeContainer, FakeCri};
use kubelet_shim::runtime::CriRuntime;

const TARGET: &str = "/checkpoint/default/web/app";

/// What the attack is, the client certificate, the extra headers.
type Attack<'a> = (&'a str, Option<&'a Pem>, Vec<(&'a str, &'a str)>);

#[tokio::test]
async fn attacks_get_401_and_a_denied_user_403_without_paths_or_node_names() {
    let dir = tempfile::tempdir().unwrap();
    let api = super::shim::standin(dir.path()).await;
    let fake = FakeCri::with_containers([FakeContainer::running("c-app", "default", "web", "app")]);
    let runtime = Arc::new(CriRuntime::new(fake.channel().await.unwrap()));
    let shim = Shim::start(runtime, ShimSetup::with_api_server(dir.path())).await;

    let other_ca = Ca::new("front-proxy-ca").unwrap();
    let proxy_from_other_ca = other_ca.client("front-proxy-client", &[]).unwrap();
    let alice_from_other_ca = other_ca.client("alice", &["system:masters"]).unwrap();
    let past = time::OffsetDateTime::now_utc() - time::Duration::days(10);
    let expired = shim
        .client_ca
        .client_valid("alice", &[], past - time::Duration::days(30), past)
        .unwrap();
    let future = time::OffsetDateTime::now_utc() + time::Duration::days(10);
    let not_yet_valid = shim
        .client_ca
        .client_valid("alice", &[], future, future + time::Duration::days(30))
        .unwrap();
    let mallory = shim.client_ca.client("mallory", &[]).unwrap();
    let spoof: &[(&str, &str)] = &[
        ("X-Remote-User", "alice"),
        ("X-Remote-Group", "system:masters"),
    ];
    let long_token = format!("Bearer {}", "t".repeat(8 * 1024));

    let unauthorized: Vec<Attack<'_>> = vec![
        (
            "spoofed X-Remote-User, no certificate",
            None,
            spoof.to_vec(),
        ),
        (
            "spoofed X-Remote-User with a front-proxy certificate from another CA",
            Some(&proxy_from_other_ca),
            spoof.to_vec(),
        ),
        (
            "certificate for alice from another CA",
            Some(&alice_from_other_ca),
            vec![],
        ),
        (
            "expired certificate from the client CA",
            Some(&expired),
            vec![],
        ),
        ("not yet valid certificate", Some(&not_yet_valid), vec![]),
        (
            "bearer token TokenReview rejects",
            None,
            vec![("Authorization", "Bearer not-a-token")],
        ),
        (
            "rejected token plus spoofed headers",
            None,
            vec![
                ("Authorization", "Bearer not-a-token"),
                ("X-Remote-User", "alice"),
            ],
        ),
        (
            "empty bearer token",
            None,
            vec![("Authorization", "Bearer ")],
        ),
        (
            "basic auth",
            None,
            vec![("Authorization", "Basic YWxpY2U6YWxpY2U=")],
        ),
        (
            "8 KiB bearer token",
            None,
            vec![("Authorization", long_token.as_str())],
        ),
    ];
    for proto in PROTOS {
        for (what, who, headers) in &unauthorized {
            let (code, body) = shim
                .send(proto, *who, Method::POST, TARGET, headers, Vec::new())
                .await;
            assert_eq!(
                (code, body.as_str()),
                (StatusCode::UNAUTHORIZED, "Unauthorized"),
                "{proto:?} {what}"
            );
        }

        // Authenticated but not allowed: 403 naming neither the node nor any
        // path (the kubelet's message), and no CRI call. Spoofed headers do
        // not turn a certificate's user (mallory) into the header's alice.
        let bob_token: &[(&str, &str)] = &[("Authorization", "Bearer bob-token")];
        let denied = [
            ("bob by token", None, bob_token, "bob"),
            (
                "mallory's certificate with spoofed headers",
                Some(&mallory),
                spoof,
                "mallory",
            ),
        ];
        for (what, who, headers, user) in denied {
            let (code, body) = shim
                .send(proto, who, Method::POST, TARGET, headers, Vec::new())
                .await;
            assert_eq!(code, StatusCode::FORBIDDEN, "{proto:?} {what}: {body}");
            assert_eq!(
                body,
                format!(
                    "Forbidden (user={user}, verb=create, resource=nodes, subresource=checkpoint)"
                )
            );
            for secret in [NODE, "/checkpoints", ".tar", "127.0.0.1"] {
                assert!(!body.contains(secret), "{what}: {body} names {secret}");
            }
        }
    }
    assert!(
        fake.checkpoint_requests().is_empty(),
        "a refused request reached the runtime"
    );
    assert!(shim.archives().is_empty());

    // The legitimate ways in still work, over both protocols.
    for proto in PROTOS {
        let (code, body) = shim
            .send(
                proto,
                None,
                Method::POST,
                TARGET,
                &[("Authorization", "Bearer alice-token")],
                Vec::new(),
            )
            .await;
        assert_eq!(code, StatusCode::OK, "{proto:?} alice by token: {body}");
        shim.good_request_succeeds(proto, "the attacks").await;
    }
    shim.stop().await;
    api.stop().await;
}
