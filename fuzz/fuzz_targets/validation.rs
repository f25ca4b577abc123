//! Name and timeout validation (`api_types::validation`): every server runs
//! its path segments through these before building a file name or URL from
//! them. Input: the raw bytes as a name and as a `timeout` value.
//!
//! Invariants: nothing panics; an accepted name is a DNS-1123 label or
//! subdomain (so it can never hold `/`, `..` as a segment, NUL or upper case)
//! within its length limit, and is safe in an archive file name; an accepted
//! timeout is within `0..=max`; messages stay short whatever the input.
#![no_main]

use api_types::archive::archive_file_name;
use api_types::validation::{
    DNS1123_LABEL_MAX_LENGTH, DNS1123_SUBDOMAIN_MAX_LENGTH, parse_timeout_seconds,
    validate_container_name, validate_namespace, validate_node_name, validate_pod_name,
    validate_target, validate_timeout_seconds,
};
use libfuzzer_sys::fuzz_target;

/// Longest message a refusal may carry: the fixed reasons plus a quoted,
/// shortened value (64 chars, each at most `\u{10ffff}`).
const MAX_MESSAGE: usize = 1024;

fn safe_in_file_name(name: &str) {
    assert!(!name.is_empty());
    assert!(
        name.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'),
        "accepted {name:?}"
    );
    assert!(!name.starts_with(['-', '.']) && !name.ends_with(['-', '.']));
    assert!(
        name.split('.').all(|s| !s.is_empty()),
        "empty segment in {name:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };

    let label_ok = validate_namespace(s).is_ok();
    assert_eq!(label_ok, validate_container_name(s).is_ok());
    let subdomain_ok = validate_pod_name(s).is_ok();
    assert_eq!(subdomain_ok, validate_node_name(s).is_ok());
    if label_ok {
        assert!(s.len() <= DNS1123_LABEL_MAX_LENGTH);
        assert!(!s.contains('.'));
        assert!(subdomain_ok, "a label is a subdomain: {s:?}");
        safe_in_file_name(s);
    }
    if subdomain_ok {
        assert!(s.len() <= DNS1123_SUBDOMAIN_MAX_LENGTH);
        safe_in_file_name(s);
    }
    for result in [validate_namespace(s), validate_pod_name(s)] {
        if let Err(e) = result {
            let message = e.to_string();
            assert!(message.len() < MAX_MESSAGE, "{} bytes", message.len());
            assert!(!message.contains('\0'));
        }
    }
    match validate_target(s, s, s) {
        Ok(()) => {
            let at = api_types::k8s_openapi::jiff::Timestamp::UNIX_EPOCH;
            let file = archive_file_name(s, s, s, at, 2);
            assert!(!file.contains('/') && !file.contains('\0') && !file.starts_with('.'));
        }
        Err(e) => assert!(e.to_string().len() < MAX_MESSAGE),
    }

    for max in [0, 600, api_types::MAX_TIMEOUT_SECONDS, i64::MAX] {
        match parse_timeout_seconds(s, max) {
            Ok(t) => {
                assert!((0..=max).contains(&t), "{s:?} -> {t}");
                assert!(s.is_empty() || s.bytes().all(|b| b.is_ascii_digit()));
                assert_eq!(validate_timeout_seconds(t, max), Ok(t));
                if !s.is_empty() {
                    assert_eq!(s.parse::<i64>().ok(), Some(t));
                }
            }
            Err(e) => assert!(e.to_string().len() < MAX_MESSAGE),
        }
    }
    if data.len() >= 8 {
        let mut word = [0u8; 8];
        word.copy_from_slice(&data[..8]);
        let value = i64::from_le_bytes(word);
        let max = api_types::MAX_TIMEOUT_SECONDS;
        assert_eq!(
            validate_timeout_seconds(value, max).is_ok(),
            (0..=max).contains(&value)
        );
    }
});
