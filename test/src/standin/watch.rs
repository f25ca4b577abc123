//! Watches, as kube-apiserver's watch cache serves them
//! (`k8s.io/apiserver/pkg/storage/cacher`, `endpoints/handlers/watch.go`):
//! newline-delimited `{"type","object"}` events over a chunked 200 whose
//! headers go out at once; synthetic `ADDED` events for resourceVersion ""
//! or "0"; replay from a resourceVersion inside the history window; one
//! in-stream `ERROR` (410 Expired) for a resourceVersion older than it;
//! objects leaving or entering the selector as `DELETED`/`ADDED`;
//! `BOOKMARK`s only with `allowWatchBookmarks=true` (periodically and
//! shortly before the end); a clean end at `timeoutSeconds`. A watch ends
//! early when its type stops being served, when it falls too far behind
//! (the client re-lists, as with kube-apiserver's slow-watcher close), or
//! when the server stops.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::store::{Change, ChangeType, Notice, Store, WatcherSlot};

/// Renders a stored object for this watch (served version, view, Table).
pub type Render = Box<dyn FnMut(&Value) -> Value + Send>;
/// Whether a stored object is in this watch (namespace and selectors).
pub type Matches = Box<dyn Fn(&Value) -> bool + Send + Sync>;

/// One watch.
pub struct Watch {
    pub storage: String,
    /// `apiVersion` and `kind` of BOOKMARK objects.
    pub api_version: String,
    pub kind: String,
    pub resource_version: Option<u64>,
    pub timeout: Duration,
    pub bookmarks: bool,
    pub bookmark_interval: Duration,
    pub matches: Matches,
    pub render: Render,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("storage", &self.storage)
            .field("resource_version", &self.resource_version)
            .field("timeout", &self.timeout)
            .field("bookmarks", &self.bookmarks)
            .finish_non_exhaustive()
    }
}

/// One event line, `type` first as kube-apiserver writes it.
fn line(kind: &str, object: Value) -> Bytes {
    let mut bytes = format!("{{\"type\":\"{kind}\",\"object\":").into_bytes();
    bytes.extend(serde_json::to_vec(&object).unwrap_or_else(|_| b"null".to_vec()));
    bytes.extend_from_slice(b"}\n");
    Bytes::from(bytes)
}

/// The events one change gives this watch.
fn events_for(w: &mut Watch, c: &Change) -> Vec<Bytes> {
    let now_in = (w.matches)(&c.object);
    let was_in = c.prev.as_ref().is_some_and(|p| (w.matches)(p));
    match c.kind {
        ChangeType::Added if now_in => vec![line("ADDED", (w.render)(&c.object))],
        ChangeType::Modified => match (was_in, now_in) {
            (true, true) => vec![line("MODIFIED", (w.render)(&c.object))],
            (true, false) => {
                // Leaving the selector: the old state, the new resourceVersion.
                let mut last = c.prev.clone().unwrap_or(Value::Null);
                if let Some(m) = last.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.insert("resourceVersion".into(), json!(c.rv.to_string()));
                }
                vec![line("DELETED", (w.render)(&last))]
            }
            (false, true) => vec![line("ADDED", (w.render)(&c.object))],
            (false, false) => Vec::new(),
        },
        ChangeType::Deleted if was_in => vec![line("DELETED", (w.render)(&c.object))],
        _ => Vec::new(),
    }
}

/// Start streaming: the receiver yields the body's chunks until the watch ends.
pub fn start(
    store: Arc<Store>,
    slot: WatcherSlot,
    mut w: Watch,
) -> mpsc::Receiver<Result<Bytes, std::convert::Infallible>> {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::convert::Infallible>>(64);
    // Subscribe before reading what exists, so nothing falls in between.
    let mut notices = store.subscribe();
    tokio::spawn(async move {
        let _slot = slot;
        let started = tokio::time::Instant::now();
        let deadline = started + w.timeout;
        let send = |b: Bytes| {
            let tx = tx.clone();
            async move { tx.send(Ok(b)).await.is_ok() }
        };
        // The newest revision this watch has accounted for.
        let mut floor: u64;
        match w.resource_version {
            None | Some(0) => {
                let (items, rv) = store.current(&w.storage, None);
                floor = rv;
                for o in items.iter().filter(|o| (w.matches)(o)) {
                    let rendered = (w.render)(o);
                    if !send(line("ADDED", rendered)).await {
                        return;
                    }
                }
            }
            Some(rv) => match store.changes_since(&w.storage, rv) {
                Err(oldest) => {
                    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Failure", "message": format!("too old resource version: {rv} ({oldest})"),
                        "reason": "Expired", "code": 410});
                    let _ = send(line("ERROR", status)).await;
                    return;
                }
                Ok((changes, current)) => {
                    floor = rv.max(current);
                    for c in changes {
                        for b in events_for(&mut w, &c) {
                            if !send(b).await {
                                return;
                            }
                        }
                    }
                }
            },
        }
        let mut next_bookmark = started + w.bookmark_interval;
        let mut final_bookmark =
            (w.timeout >= Duration::from_secs(10)).then(|| deadline - Duration::from_secs(2));
        loop {
            let bookmark_at = match final_bookmark {
                Some(f) if f < next_bookmark => f,
                _ => next_bookmark,
            };
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return,
                () = tokio::time::sleep_until(bookmark_at), if w.bookmarks => {
                    if final_bookmark == Some(bookmark_at) {
                        final_bookmark = None;
                    } else {
                        next_bookmark = bookmark_at + w.bookmark_interval;
                    }
                    let rv = floor.max(store.latest_change(&w.storage));
                    let object = json!({"apiVersion": w.api_version, "kind": w.kind,
                        "metadata": {"resourceVersion": rv.to_string()}});
                    if !send(line("BOOKMARK", object)).await {
                        return;
                    }
                }
                () = tx.closed() => return,
                n = notices.recv() => match n {
                    Ok(Notice::Change(c)) => {
                        if c.storage != w.storage || c.rv <= floor {
                            continue;
                        }
                        floor = c.rv;
                        for b in events_for(&mut w, &c) {
                            if !send(b).await {
                                return;
                            }
                        }
                    }
                    Ok(Notice::Gone(s)) if s == w.storage => return,
                    Ok(Notice::Gone(_)) => {}
                    Ok(Notice::Shutdown) => return,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::info!(storage = w.storage, missed = n, "closing a watch that fell behind");
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_put_type_first() {
        assert_eq!(
            line("ADDED", json!({"kind": "Widget"})),
            Bytes::from_static(b"{\"type\":\"ADDED\",\"object\":{\"kind\":\"Widget\"}}\n")
        );
    }
}
