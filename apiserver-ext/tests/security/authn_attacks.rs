//! Authentication attacks against checkpoint-apiserver over TLS (issue 7,
//! item 5), built from its flags with no testing bypass: the request-header
//! CA and allowed names come from kube-apiserver-standin's
//! `extension-apiserver-authentication` ConfigMap, bearer tokens go through
//! TokenReview and every decision through SubjectAccessReview. Each case over
//! HTTP/1.1 and HTTP/2.

use super::stack::{
    GOOD, PROTOS, Stack, StackSetup, Who, checkpoint_path, node_secrets, status_of,
};
use apiserver_lib::pki::{Ca, Pem};
use http::{Method, StatusCode};
use kcr_testkit::hostile::{expired_client, not_yet_valid_client};

/// `(what, client certificate, headers)`.
type Attack<'a> = (&'a str, Option<&'a Pem>, Vec<(&'a str, &'a str)>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacks_get_401_and_denied_users_403_without_node_details() {
    let stack = Stack::start(StackSetup::default()).await;
    let target = format!("{GOOD}?container=app");

    let other_proxy_ca = Ca::new("front-proxy-ca").unwrap();
    let proxy_from_other_ca = other_proxy_ca.client("front-proxy-client", &[]).unwrap();
    let mallory_from_proxy_ca = stack.proxy_ca.client("mallory", &[]).unwrap();
    let client_ca_cert_as_proxy = stack.client_ca.client("front-proxy-client", &[]).unwrap();
    let expired_proxy = expired_client(&stack.proxy_ca, "front-proxy-client").unwrap();
    let future_proxy = not_yet_valid_client(&stack.proxy_ca, "front-proxy-client").unwrap();
    let expired_alice = expired_client(&stack.client_ca, "alice").unwrap();
    let alice_other_ca = Ca::new("client-ca").unwrap().client("alice", &[]).unwrap();
    let spoof = vec![
        ("X-Remote-User", "alice"),
        ("X-Remote-Group", "system:masters"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut h = spoof.clone();
        h.extend_from_slice(extra);
        h
    };
    let attacks: Vec<Attack<'_>> = vec![
        (
            "spoofed X-Remote-User, no client certificate",
            None,
            spoof.clone(),
        ),
        (
            "spoofed X-Remote-User with a front-proxy certificate from another CA",
            Some(&proxy_from_other_ca),
            spoof.clone(),
        ),
        (
            "request-header CA, CN outside the allowed names",
            Some(&mallory_from_proxy_ca),
            spoof.clone(),
        ),
        (
            "expired front-proxy certificate",
            Some(&expired_proxy),
            spoof.clone(),
        ),
        (
            "front-proxy certificate not yet valid",
            Some(&future_proxy),
            spoof.clone(),
        ),
        ("expired client certificate", Some(&expired_alice), vec![]),
        (
            "client certificate from another CA",
            Some(&alice_other_ca),
            vec![],
        ),
        (
            "bearer token TokenReview rejects",
            None,
            vec![("Authorization", "Bearer not-a-token")],
        ),
        (
            "rejected bearer token with spoofed headers",
            None,
            with(&[("Authorization", "Bearer not-a-token")]),
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
    ];
    for proto in PROTOS {
        for (what, cert, headers) in &attacks {
            let who = match cert {
                Some(pem) => Who::Cert(pem),
                None => Who::Nobody,
            };
            let (code, body) = stack
                .send(proto, who, Method::POST, &target, headers, Vec::new())
                .await;
            assert_eq!(code, StatusCode::UNAUTHORIZED, "{proto:?} {what}: {body}");
            let (reason, _) = status_of(code, &body);
            assert_eq!(reason, "Unauthorized", "{proto:?} {what}");
            for secret in node_secrets() {
                assert!(!body.contains(secret), "{what}: {body} names {secret}");
            }
        }

        // Authenticated, denied by SubjectAccessReview: 403 in RBAC's words,
        // the same for a pod that exists and one that does not, never a node
        // name, address or archive path.
        let bob_cert = stack.client_ca.client("bob", &[]).unwrap();
        for (what, who) in [
            ("bob through the front proxy", Who::Proxy("bob")),
            ("bob by token", Who::Token("bob-token")),
            ("bob by client certificate", Who::Cert(&bob_cert)),
        ] {
            let mut messages = Vec::new();
            for pod in ["web", "ghost"] {
                let (code, body) = stack
                    .send(
                        proto,
                        who,
                        Method::POST,
                        &format!("{}?container=app", checkpoint_path("default", pod)),
                        &[],
                        Vec::new(),
                    )
                    .await;
                assert_eq!(
                    code,
                    StatusCode::FORBIDDEN,
                    "{proto:?} {what} {pod}: {body}"
                );
                let (reason, message) = status_of(code, &body);
                assert_eq!(reason, "Forbidden");
                assert!(
                    message.contains("User \"bob\" cannot checkpoint resource \"pods\""),
                    "{message}"
                );
                for secret in node_secrets() {
                    assert!(!body.contains(secret), "{what}: {body} names {secret}");
                }
                messages.push(message.replace(pod, "POD"));
            }
            assert_eq!(messages[0], messages[1], "{what}: existence leaks");
        }
    }
    // A client-CA certificate with the front proxy's name is a user of that
    // name, not a front proxy: its headers are ignored, so it is not alice.
    for proto in PROTOS {
        let (code, body) = stack
            .send(
                proto,
                Who::Cert(&client_ca_cert_as_proxy),
                Method::POST,
                &target,
                &with(&[]),
                Vec::new(),
            )
            .await;
        assert_eq!(code, StatusCode::FORBIDDEN, "{proto:?}: {body}");
        let (_, message) = status_of(code, &body);
        assert!(message.contains("User \"front-proxy-client\""), "{message}");
    }
    assert!(
        stack.fake.checkpoint_requests().is_empty(),
        "a refused request reached the node"
    );
    assert!(stack.archives().is_empty());

    // The legitimate ways in, over both protocols.
    let alice_cert = stack.client_ca.client("alice", &[]).unwrap();
    for proto in PROTOS {
        for (what, who) in [
            ("front proxy", Who::Proxy("alice")),
            ("token", Who::Token("alice-token")),
            ("client certificate", Who::Cert(&alice_cert)),
        ] {
            let (code, body) = stack
                .send(proto, who, Method::POST, &target, &[], Vec::new())
                .await;
            assert_eq!(code, StatusCode::OK, "{proto:?} alice by {what}: {body}");
        }
        stack.good_request_succeeds(proto, "the attacks").await;
    }
    stack.stop().await;
}
