//! Hostile input against a real `checkpoint-shim` over TLS (issue 7, item 4):
//! a data-driven table of request targets sent over HTTP/1.1 and HTTP/2 by an
//! authenticated, authorized user (so every case reaches the parser), and raw
//! HTTP/1.1 requests no client library would build. Every case must get a
//! 4xx, reach no CRI call, leave the file tree exactly as it was (nothing
//! under the checkpoints directory, nothing anywhere else), and be followed
//! by a good request that succeeds.
//!
//! The kubelet endpoint takes no body: bodies and content types are never
//! read, which `bodies_and_content_types_are_never_read` shows.

use std::sync::Arc;

use super::shim::{PROTOS, Proto, Shim, ShimSetup};
use http::{Method, StatusCode};
use kcr_testkit::fake_cri::{FakeContainer, FakeCri};
use kubelet_shim::runtime::CriRuntime;

/// Just under what `http::Uri` (and so any hyper client) can carry; the full
/// 64 KiB goes through `raw_http1_requests`.
const NEAR_64K: usize = 64 * 1024 - 256;

/// What the body is, the headers that come with it, the body.
type BodyCase<'a> = (&'a str, &'a [(&'a str, &'a str)], Vec<u8>);

async fn start() -> (FakeCri, Shim) {
    let fake = FakeCri::with_containers([FakeContainer::running("c-app", "default", "web", "app")]);
    let runtime = Arc::new(CriRuntime::new(fake.channel().await.unwrap()));
    let shim = Shim::start(runtime, ShimSetup::default()).await;
    (fake, shim)
}

/// Values put in place of one path segment; each must be refused.
fn hostile_segments() -> Vec<(&'static str, String)> {
    // 64 characters is a valid pod name but not a valid namespace or container.
    let mut all = kcr_testkit::hostile::hostile_path_segments(NEAR_64K);
    all.push(("64 chars", "a".repeat(64)));
    all
}

/// `(what, request target)`: every one must be a 4xx.
fn table() -> Vec<(String, String)> {
    let good = ["default", "web", "app"];
    let mut cases = Vec::new();
    for (i, segment) in ["namespace", "pod", "container"].iter().enumerate() {
        for (what, value) in hostile_segments() {
            let mut parts = good.map(str::to_owned);
            parts[i] = value;
            cases.push((
                format!("{segment}: {what}"),
                format!("/checkpoint/{}/{}/{}", parts[0], parts[1], parts[2]),
            ));
        }
    }
    for timeout in kcr_testkit::hostile::HOSTILE_TIMEOUTS {
        cases.push((
            format!("timeout {timeout}"),
            format!("/checkpoint/default/web/app?timeout={timeout}"),
        ));
    }
    // The kubelet takes the last `timeout`; a bad last one is refused.
    for query in [
        "timeout=5&timeout=-1",
        "timeout=1&timeout=abc",
        "timeout=1&timeout=1.5&timeout=3601",
    ] {
        cases.push((
            format!("duplicate parameters {query}"),
            format!("/checkpoint/default/web/app?{query}"),
        ));
    }
    cases.push((
        "query over 1 KiB".into(),
        format!(
            "/checkpoint/default/web/app?timeout=5&pad={}",
            "a".repeat(2048)
        ),
    ));
    cases.push((
        "path over 1 KiB with valid names".into(),
        format!("/checkpoint/default/web/app{}", "/".repeat(1100)),
    ));
    cases
}

#[tokio::test]
async fn hostile_request_targets_are_4xx_over_http1_and_http2() {
    let (fake, shim) = start().await;
    let before = shim.tree();
    let mut failures = Vec::new();
    let mut sent = 0;
    for proto in PROTOS {
        for (what, target) in table() {
            let answer = shim
                .try_send(
                    proto,
                    Some(&shim.alice),
                    Method::POST,
                    &target,
                    &[],
                    Vec::new(),
                )
                .await;
            sent += 1;
            match answer {
                Ok((code, body)) if code.is_client_error() => {
                    if body.len() >= 1024 {
                        failures.push(format!(
                            "{proto:?} {what}: {} bytes echoed back",
                            body.len()
                        ));
                    }
                }
                Ok((code, body)) => {
                    failures.push(format!("{proto:?} {what}: {code} {body:.200}"));
                }
                Err(e) => failures.push(format!("{proto:?} {what}: no answer: {e}")),
            }
            if shim.tree() != before {
                failures.push(format!("{proto:?} {what}: the file tree changed"));
            }
            if !fake.checkpoint_requests().is_empty() {
                failures.push(format!("{proto:?} {what}: reached CheckpointContainer"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {sent} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(sent >= 2 * 85, "the table shrank: {sent} requests");
    // Still serving, over both protocols.
    for proto in PROTOS {
        shim.good_request_succeeds(proto, "the hostile table").await;
    }
    assert_eq!(shim.tree(), before);
    shim.stop().await;
}

#[tokio::test]
async fn every_hostile_case_is_followed_by_a_good_request() {
    // The same table, a good request after each case, on HTTP/1.1 and HTTP/2
    // alternately: nothing a case does leaves the server unable to serve.
    let (fake, shim) = start().await;
    let before = shim.tree();
    for (i, (what, target)) in table().into_iter().enumerate() {
        let proto = if i % 2 == 0 {
            Proto::Http1
        } else {
            Proto::Http2
        };
        let (code, body) = shim.post(proto, &target).await;
        assert!(code.is_client_error(), "{what}: {code} {body:.200}");
        shim.good_request_succeeds(proto, &what).await;
        assert_eq!(shim.tree(), before, "{what}");
    }
    // One CRI call per good request, none for the hostile ones.
    assert_eq!(fake.checkpoint_requests().len(), table().len());
    shim.stop().await;
}

#[tokio::test]
async fn raw_http1_requests_no_client_would_build() {
    let (fake, shim) = start().await;
    let before = shim.tree();
    let full_64k = "a".repeat(64 * 1024);
    // hyper buffers at most ~400 KiB of HTTP/1.1 head (Go: 1 MiB); beyond: 431.
    let huge_header = "x".repeat(512 * 1024);
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "raw non-UTF-8 bytes in the path",
            b"POST /checkpoint/default/web/\xff\xfe HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ),
        (
            "raw NUL in the path",
            b"POST /checkpoint/default/web/a\0b HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ),
        (
            "raw space in the path",
            b"POST /checkpoint/default/web/a b HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ),
        (
            "raw backslash traversal",
            b"POST /checkpoint/default/web/..\\..\\etc HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ),
        (
            "absolute-form target with traversal",
            b"POST https://localhost/checkpoint/default/..%2F..%2Fetc/app HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ),
        (
            "bad Content-Length",
            b"POST /checkpoint/default/web/app HTTP/1.1\r\nHost: localhost\r\nContent-Length: abc\r\n\r\n".to_vec(),
        ),
        (
            "two different Content-Lengths",
            b"POST /checkpoint/default/web/app HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
        ),
        (
            "huge Content-Length on a bad path",
            b"POST /checkpoint/default/web/.. HTTP/1.1\r\nHost: localhost\r\nContent-Length: 99999999999\r\n\r\n{".to_vec(),
        ),
        (
            "bad timeout with a chunked JSON body",
            b"POST /checkpoint/default/web/app?timeout=-1 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n0\r\n\r\n".to_vec(),
        ),
    ];
    let long_path = format!(
        "POST /checkpoint/default/web/{full_64k} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n"
    );
    cases.push(("full 64 KiB container name", long_path.into_bytes()));
    let long_ns = format!(
        "POST /checkpoint/{full_64k}/web/app HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n"
    );
    cases.push(("full 64 KiB namespace", long_ns.into_bytes()));
    let long_query = format!(
        "POST /checkpoint/default/web/app?timeout={full_64k} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n"
    );
    cases.push(("full 64 KiB timeout", long_query.into_bytes()));
    let big_header = format!(
        "POST /checkpoint/default/web/app HTTP/1.1\r\nHost: localhost\r\nX-Pad: {huge_header}\r\nContent-Length: 0\r\n\r\n"
    );
    cases.push(("512 KiB header", big_header.into_bytes()));

    for (i, (what, request)) in cases.iter().enumerate() {
        let status = shim.raw_http1(Some(&shim.alice), request).await;
        assert!(status.starts_with("HTTP/1.1 4"), "{what}: {status:?}");
        assert_eq!(shim.tree(), before, "{what}");
        // Only the good requests so far reached the runtime.
        assert_eq!(fake.checkpoint_requests().len(), i, "{what}");
        shim.good_request_succeeds(Proto::Http1, what).await;
    }
    shim.good_request_succeeds(Proto::Http2, "the raw requests")
        .await;
    shim.stop().await;
}

#[tokio::test]
async fn bodies_and_content_types_are_never_read() {
    // The kubelet endpoint has no body (`pkg/kubelet/server/server.go`); the
    // shim never reads one, so neither a huge body nor a form body that tries
    // to smuggle `timeout=-1` changes anything: the request is what its path
    // and query say, and the server stays healthy.
    let (fake, shim) = start().await;
    let garbage: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let cases: Vec<BodyCase<'_>> = vec![
        ("4 MiB of binary", &[], garbage.clone()),
        (
            "malformed JSON",
            &[("content-type", "application/json")],
            b"{\"timeoutSeconds\": -1, ".to_vec(),
        ),
        (
            "a form body with timeout=-1",
            &[("content-type", "application/x-www-form-urlencoded")],
            b"timeout=-1&container=..".to_vec(),
        ),
        (
            "XML",
            &[("content-type", "application/xml")],
            b"<timeout>-1</timeout>".to_vec(),
        ),
        (
            "a wrong content type without a body",
            &[("content-type", "multipart/form-data; boundary=x")],
            Vec::new(),
        ),
    ];
    for proto in PROTOS {
        for (what, headers, body) in &cases {
            let before = fake.checkpoint_requests().len();
            let answer = shim
                .try_send(
                    proto,
                    Some(&shim.alice),
                    Method::POST,
                    "/checkpoint/default/web/app",
                    headers,
                    body.clone(),
                )
                .await;
            // A client still writing a body the server does not read may see
            // the connection close after the answer; either way no more than
            // the one checkpoint the path asked for happened.
            if let Ok((code, text)) = &answer {
                assert_eq!(*code, StatusCode::OK, "{proto:?} {what}: {text}");
            }
            let reqs = fake.checkpoint_requests();
            assert!(reqs.len() <= before + 1, "{proto:?} {what}");
            if let Some(last) = reqs.get(before) {
                // The runtime request timeout (2 s), not anything from the body.
                assert_eq!(last.timeout, 2, "{proto:?} {what}");
            }
            for name in shim.archives() {
                std::fs::remove_file(shim.checkpoints.join(name)).unwrap();
            }
            shim.good_request_succeeds(proto, what).await;
        }
    }
    // A form body with a hostile path is still a 400 for the path.
    let (code, _) = shim
        .send(
            Proto::Http1,
            Some(&shim.alice),
            Method::POST,
            "/checkpoint/default/web/..",
            &[("content-type", "application/x-www-form-urlencoded")],
            b"container=app".to_vec(),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    shim.stop().await;
}

#[tokio::test]
async fn unauthenticated_hostile_requests_learn_nothing() {
    // Without credentials every hostile target is a plain 401, before any
    // parsing: the parser is only reachable by an authenticated caller. (An
    // HTTP/2 header block over hyper's limit is refused earlier, with 431.)
    let (fake, shim) = start().await;
    for proto in PROTOS {
        for (what, target) in table().into_iter().step_by(7) {
            let (code, body) = shim
                .send(proto, None, Method::POST, &target, &[], Vec::new())
                .await;
            if code == StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE {
                assert!(target.len() > 16 * 1024, "{proto:?} {what}");
                continue;
            }
            assert_eq!(
                (code, body.as_str()),
                (StatusCode::UNAUTHORIZED, "Unauthorized"),
                "{proto:?} {what}"
            );
        }
    }
    assert!(fake.checkpoint_requests().is_empty());
    shim.good_request_succeeds(Proto::Http2, "unauthenticated requests")
        .await;
    shim.stop().await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    // Slowloris: a TLS connection that sends part of a request head and then
    // nothing holds a connection (and a file descriptor) of the server for
    // as long as it likes, without credentials, unless the server bounds the
    // time to read a request head (`serve::HEADER_READ_TIMEOUT`, as
    // kube-apiserver's ReadHeaderTimeout).
    let (_fake, shim) = start().await;
    let timeout = apiserver_lib::serve::HEADER_READ_TIMEOUT;
    let closed = kcr_testkit::hostile::closed_after_partial_request(
        shim.port,
        &shim.server_ca.pem.cert,
        b"POST /checkpoint/default/web/app HTTP/1.1\r\nHost: localhost\r\n",
        timeout + std::time::Duration::from_secs(10),
    )
    .await
    .unwrap();
    let after = closed.expect("the connection was still open 10 s after the header timeout");
    assert!(after >= timeout, "cut off early: {after:?}");
    shim.good_request_succeeds(Proto::Http2, "a slow client")
        .await;
    shim.stop().await;
}
