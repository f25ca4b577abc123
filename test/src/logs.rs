//! What a server logs, captured in a test: every `tracing` event on this
//! thread as a JSON line (the servers' `--logging-format=json`).

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;

/// The captured lines; see [`capture`].
#[derive(Debug, Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Logs {
    /// Every event so far, as JSON (`target`, `level`, `fields`).
    pub fn events(&self) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The `fields` of the events of `target` at info level or above.
    pub fn fields_of(&self, target: &str) -> Vec<serde_json::Value> {
        self.events()
            .into_iter()
            .filter(|e| e["target"] == target)
            .map(|e| e["fields"].clone())
            .collect()
    }
}

/// Capture the events of this thread (at info and above) until the guard
/// is dropped. On a current-thread runtime (`#[tokio::test]`'s default)
/// that is every event of the test, spawned tasks included.
///
/// tracing caches each callsite's interest process-wide, computed on the
/// thread that first reaches it. A sibling test on a thread without a
/// subscriber would cache `never` and this capture would see nothing, so
/// the first capture also installs an always-interested global default (a
/// bare registry, which records nothing): every thread then computes a
/// callsite's interest against a subscriber that wants it.
pub fn capture() -> (tracing::subscriber::DefaultGuard, Logs) {
    static ANCHOR: std::sync::Once = std::sync::Once::new();
    ANCHOR.call_once(|| {
        // Another global default (a test's own) wants every callsite too.
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
    });
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer(logs.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    // Callsites a sibling registered before the anchor existed.
    tracing::callsite::rebuild_interest_cache();
    (guard, logs)
}
