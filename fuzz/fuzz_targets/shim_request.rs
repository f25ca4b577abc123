//! checkpoint-shim's request line: `kubelet_shim::routes::parse_checkpoint_request`
//! (path `/checkpoint/{ns}/{pod}/{container}`, percent-decoded, and the
//! `timeout` query), fed both as hyper hands it over (through `http::Uri`)
//! and raw. Input: a request target, e.g. `/checkpoint/a/b/c?timeout=5`.
//!
//! Invariants: nothing panics; refusals are 400 or 404 with a short message;
//! an accepted request names a valid namespace, pod and container (so the
//! archive path stays inside the checkpoints directory) and a timeout within
//! `0..=3600`.
#![no_main]

use kubelet_shim::routes::{CheckpointRequest, parse_checkpoint_request};
use libfuzzer_sys::fuzz_target;

fn check(path: &str, query: Option<&str>) {
    match parse_checkpoint_request(path, query) {
        Ok(CheckpointRequest { container, timeout }) => {
            assert!(container.validate().is_ok());
            assert!((0..=api_types::MAX_TIMEOUT_SECONDS).contains(&timeout));
            let name =
                container.archive_file_name(api_types::k8s_openapi::jiff::Timestamp::UNIX_EPOCH, 1);
            let joined = std::path::Path::new("/var/lib/kubelet/checkpoints").join(&name);
            assert_eq!(
                joined.parent(),
                Some(std::path::Path::new("/var/lib/kubelet/checkpoints")),
                "{name:?} escapes the checkpoints directory"
            );
        }
        Err(reject) => {
            let code = reject.code.as_u16();
            assert!(code == 400 || code == 404, "{code}");
            assert!(
                reject.message.len() < 1024,
                "{} bytes",
                reject.message.len()
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(uri) = http::Uri::try_from(data) {
        check(uri.path(), uri.query());
    }
    let raw = String::from_utf8_lossy(data);
    let (path, query) = match raw.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (raw.as_ref(), None),
    };
    check(path, query);
    // The same segments behind the endpoint's prefix, as a router would pass them.
    check(&format!("/checkpoint/{path}"), query);
});
