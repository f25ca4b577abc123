//! checkpoint-apiserver's request options: `PodCheckpointOptions::from_query`,
//! `from_body`, `merge` and `validate`, in the order the extension calls them.
//! Input: `QUERY \n BODY` (the query as the URI gives it, the raw body).
//!
//! Invariants: nothing panics; accepted options have a valid container name
//! (or none) and a timeout within `0..=max`; what the query parser accepts
//! survives `to_query` → `from_query`, what the body parser accepts survives
//! JSON → `from_body`; a field in both query and body agrees or is refused.
#![no_main]

use api_types::PodCheckpointOptions;
use api_types::validation::validate_container_name;
use libfuzzer_sys::fuzz_target;

const MAX: i64 = api_types::MAX_TIMEOUT_SECONDS;

fuzz_target!(|data: &[u8]| {
    let (query, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let query = String::from_utf8_lossy(query);

    let q = PodCheckpointOptions::from_query(&query, MAX);
    if let Ok(q) = &q {
        assert_ne!(q.container.as_deref(), Some(""));
        if let Some(t) = q.timeout_seconds {
            assert!((0..=MAX).contains(&t), "{t}");
        }
        assert_eq!(q.kind, None);
        assert_eq!(q.api_version, None);
        let again = PodCheckpointOptions::from_query(&q.to_query(), MAX);
        assert_eq!(again.as_ref(), Ok(q), "query round trip of {query:?}");
    }

    let b = PodCheckpointOptions::from_body(body);
    if let Ok(b) = &b {
        if let Some(kind) = &b.kind {
            assert_eq!(kind, api_types::POD_CHECKPOINT_OPTIONS_KIND);
        }
        if let Some(v) = &b.api_version {
            assert_eq!(v, api_types::SUBRESOURCES_API_VERSION);
        }
        let json = serde_json::to_vec(b).expect("options serialize");
        assert_eq!(PodCheckpointOptions::from_body(&json).as_ref(), Ok(b));
    }

    let (Ok(q), Ok(b)) = (q, b) else {
        return;
    };
    let Ok(merged) = PodCheckpointOptions::merge(q.clone(), b.clone()) else {
        // Refused only when both sides name a different value.
        let containers_differ = matches!(
            (&q.container, b.container.as_deref().filter(|c| !c.is_empty())),
            (Some(x), Some(y)) if x != y
        );
        let timeouts_differ = matches!(
            (q.timeout_seconds, b.timeout_seconds),
            (Some(x), Some(y)) if x != y
        );
        assert!(containers_differ || timeouts_differ, "{q:?} {b:?}");
        return;
    };
    if let Some(c) = &merged.container {
        assert!(q.container.as_ref() == Some(c) || b.container.as_ref() == Some(c));
    }
    if let Ok(()) = merged.validate(MAX) {
        if let Some(c) = &merged.container {
            assert!(validate_container_name(c).is_ok());
        }
        assert!((0..=MAX).contains(&merged.timeout()));
    }
});
