//! Who checkpointed what: one audit line per checkpoint request, at info
//! level, as a `tracing` event with the stable target [`TARGET`] (`audit`),
//! whatever the log format. A checkpoint copies a process's memory, so both
//! servers leave this line for every request to their checkpoint endpoint,
//! answered or refused (cf. kube-apiserver's audit `ResponseComplete` stage).
//!
//! Fields: `user`, `groups` (comma-separated), `namespace`, `pod`,
//! `container`, `node`, `code` (the HTTP status), `reason` (the Status
//! reason, `Success` for 2xx), `archive` (the archive path on the node).

use std::sync::{Arc, Mutex};

use axum::response::Response;

use crate::authentication::UserInfo;
use crate::status::outcome;

/// The `tracing` target of audit lines.
pub const TARGET: &str = "audit";

/// What is known about one checkpoint request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// `None` until authenticated.
    pub user: Option<UserInfo>,
    pub namespace: String,
    pub pod: String,
    /// Empty until chosen (named, or the pod's default).
    pub container: String,
    pub node: String,
    pub archive: String,
}

/// The entry of the request being served, shared by the filters and the
/// handler through the request's extensions.
#[derive(Debug, Clone, Default)]
pub struct AuditContext(Arc<Mutex<Entry>>);

impl AuditContext {
    pub fn new(entry: Entry) -> Self {
        Self(Arc::new(Mutex::new(entry)))
    }

    /// Add what was learnt about the request.
    pub fn update(&self, f: impl FnOnce(&mut Entry)) {
        if let Ok(mut e) = self.0.lock() {
            f(&mut e);
        }
    }

    pub fn entry(&self) -> Entry {
        self.0.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

/// Names from a request path are logged as they are when they are valid
/// names, quoted and cut otherwise: an audit line cannot be forged.
fn shown(name: &str) -> String {
    if api_types::validation::is_dns1123_subdomain(name).is_empty() || name.is_empty() {
        name.to_owned()
    } else {
        api_types::validation::quote_for_message(name)
    }
}

/// Write the audit line of `entry` with the answer's `code` and `reason`.
pub fn log(entry: &Entry, code: u16, reason: &str) {
    let (user, groups) = match &entry.user {
        Some(u) => (u.name.as_str(), u.groups.join(",")),
        None => ("", String::new()),
    };
    tracing::info!(
        target: TARGET,
        user,
        groups,
        namespace = %shown(&entry.namespace),
        pod = %shown(&entry.pod),
        container = %shown(&entry.container),
        node = %entry.node,
        code,
        reason,
        archive = %entry.archive,
        "checkpoint request"
    );
}

/// A request being audited: its line is written by [`Pending::finish`], or,
/// when the client goes away before the answer, on drop with reason
/// `ClientClosedRequest` (code 499, as proxies log it).
#[derive(Debug)]
pub struct Pending {
    context: AuditContext,
    done: bool,
}

impl Pending {
    pub fn new(context: AuditContext) -> Self {
        Self {
            context,
            done: false,
        }
    }

    pub fn context(&self) -> &AuditContext {
        &self.context
    }

    /// Write the line with the answer's outcome.
    pub fn finish(mut self, resp: &Response) {
        let (code, reason) = outcome(resp);
        log(&self.context.entry(), code, &reason);
        self.done = true;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.done {
            log(&self.context.entry(), 499, "ClientClosedRequest");
        }
    }
}
