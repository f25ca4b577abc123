//! An audit log of the requests the stand-in answered: who asked for what
//! and what they got, the way kube-apiserver's audit log (`Metadata` level)
//! records requests. Tests use it to count and attribute the requests a
//! client made (for example: which node agent wrote to an object, and how
//! many requests a controller spent on one object).
//!
//! Bounded: the oldest entries are dropped past [`MAX_ENTRIES`].

use std::collections::VecDeque;
use std::sync::Mutex;

/// Entries kept at most.
pub const MAX_ENTRIES: usize = 100_000;

/// One answered request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// The authenticated user (empty when authentication failed or was not needed).
    pub user: String,
    /// The request's verb as RBAC sees it (`get`, `list`, `watch`, `patch`, ...);
    /// empty for non-resource requests.
    pub verb: String,
    pub method: String,
    pub path: String,
    pub query: String,
    /// `resource` or `resource/subresource` (empty for non-resource requests).
    pub resource: String,
    pub namespace: String,
    pub name: String,
    pub code: u16,
}

impl AuditEvent {
    /// Whether this request could change something (not get/list/watch).
    pub fn is_write(&self) -> bool {
        !matches!(self.method.as_str(), "GET" | "HEAD" | "OPTIONS")
    }
}

/// The log. Cheap to share behind the server state.
#[derive(Debug, Default)]
pub struct AuditLog {
    events: Mutex<VecDeque<AuditEvent>>,
}

impl AuditLog {
    pub fn record(&self, event: AuditEvent) {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if events.len() >= MAX_ENTRIES {
            events.pop_front();
        }
        events.push_back(event);
    }

    /// Every entry so far, oldest first.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// The entries of `user`, oldest first.
    pub fn by_user(&self, user: &str) -> Vec<AuditEvent> {
        self.events()
            .into_iter()
            .filter(|e| e.user == user)
            .collect()
    }

    /// Forget everything recorded so far.
    pub fn clear(&self) {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// Who a response was served to, set by the server after authentication and
/// read back when the request is logged.
#[derive(Debug, Clone)]
pub(crate) struct AuthenticatedUser(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(user: &str, method: &str) -> AuditEvent {
        AuditEvent {
            user: user.into(),
            verb: String::new(),
            method: method.into(),
            path: "/api".into(),
            query: String::new(),
            resource: String::new(),
            namespace: String::new(),
            name: String::new(),
            code: 200,
        }
    }

    #[test]
    fn by_user_and_bounded() {
        let log = AuditLog::default();
        log.record(ev("a", "GET"));
        log.record(ev("b", "PATCH"));
        assert_eq!(log.by_user("b").len(), 1);
        assert!(log.by_user("b")[0].is_write());
        assert!(!log.by_user("a")[0].is_write());
        for _ in 0..MAX_ENTRIES {
            log.record(ev("c", "GET"));
        }
        assert_eq!(log.events().len(), MAX_ENTRIES);
        assert!(log.by_user("a").is_empty());
        log.clear();
        assert!(log.events().is_empty());
    }
}
