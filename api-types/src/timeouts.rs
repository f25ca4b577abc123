//! The one timeout model of a checkpoint, from the plugin to the runtime.
//!
//! A request carries one number, `timeoutSeconds` (0 = the runtime's
//! default). Every party derives its own deadline from it, nesting from the
//! outside in, so that the innermost party that sees a hang is the one that
//! reports it:
//!
//! ```text
//! runtime   CRI CheckpointContainer{timeout: T}            T
//! node      kubelet / checkpoint-shim waits for the runtime T + NODE_GRACE
//! extension checkpoint-apiserver waits for the node       T + NODE_GRACE + EXTENSION_MARGIN
//! plugin    kubectl checkpoint waits for the extension    T + NODE_GRACE + EXTENSION_MARGIN + CLIENT_MARGIN
//! ```
//!
//! With `timeoutSeconds` 0, T is the node's `--runtime-request-timeout`
//! (the kubelet's default, [`DEFAULT_RUNTIME_REQUEST_TIMEOUT`], sends that
//! to the runtime); the extension assumes its `--kubelet-request-timeout`
//! (same default) and the plugin, which knows neither, waits
//! [`DEFAULT_CLIENT_WAIT`].
//!
//! [`MAX_TIMEOUT_SECONDS`] is the one bound: the plugin, the extension
//! (whose `--max-timeout-seconds` may only lower it, checked at start-up)
//! and the node all refuse more.

use std::time::Duration;

/// Largest `timeoutSeconds` any party accepts (one hour).
pub const MAX_TIMEOUT_SECONDS: i64 = 3600;

/// What `timeoutSeconds: 0` means at the node: the kubelet's default
/// `--runtime-request-timeout` (2m), which it passes to the runtime as the
/// checkpoint timeout. Default of checkpoint-shim's `--runtime-request-timeout`
/// and checkpoint-apiserver's `--kubelet-request-timeout`.
pub const DEFAULT_RUNTIME_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// How long the node waits past the runtime's timeout before it answers
/// 504 itself (the runtime should have answered `DeadlineExceeded` by then).
pub const NODE_GRACE: Duration = Duration::from_secs(5);

/// How long the extension waits past the node's own deadline before it
/// gives up on the node (default of `--kubelet-timeout-margin`, which is
/// measured from the runtime timeout, so its default is
/// `NODE_GRACE + EXTENSION_MARGIN`).
pub const EXTENSION_MARGIN: Duration = Duration::from_secs(5);

/// How long the plugin waits past the extension's own deadline.
pub const CLIENT_MARGIN: Duration = Duration::from_secs(5);

/// The plugin's wait when the request leaves the timeout to the runtime:
/// it cannot know the node's default, so it allows far more than the
/// kubelet's 2m.
pub const DEFAULT_CLIENT_WAIT: Duration = Duration::from_secs(300);

/// Default of checkpoint-apiserver's `--kubelet-timeout-margin`: the time
/// past the runtime timeout it waits for a node.
pub const DEFAULT_KUBELET_TIMEOUT_MARGIN: Duration =
    Duration::from_secs(NODE_GRACE.as_secs() + EXTENSION_MARGIN.as_secs());

/// The deadlines of one request, derived from its runtime timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    runtime: Duration,
}

impl Deadlines {
    /// Deadlines for a request's `timeoutSeconds` (0 or negative: `default`,
    /// the runtime default as this party knows it).
    pub fn new(timeout_seconds: i64, default: Duration) -> Self {
        let runtime = u64::try_from(timeout_seconds)
            .ok()
            .filter(|s| *s > 0)
            .map_or(default, Duration::from_secs);
        Self { runtime }
    }

    /// The timeout the runtime is given (CRI `CheckpointContainerRequest.timeout`).
    pub fn runtime(&self) -> Duration {
        self.runtime
    }

    /// How long the node waits for the runtime.
    pub fn node(&self) -> Duration {
        self.runtime + NODE_GRACE
    }

    /// How long the extension waits for the node with the default margin.
    pub fn extension(&self) -> Duration {
        self.node() + EXTENSION_MARGIN
    }

    /// How long the plugin waits for the extension.
    pub fn client(&self) -> Duration {
        self.extension() + CLIENT_MARGIN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_nest_from_the_outside_in() {
        let d = Deadlines::new(30, DEFAULT_RUNTIME_REQUEST_TIMEOUT);
        assert_eq!(d.runtime(), Duration::from_secs(30));
        assert!(d.runtime() < d.node());
        assert!(d.node() < d.extension());
        assert!(d.extension() < d.client());
        assert_eq!(d.extension(), d.runtime() + DEFAULT_KUBELET_TIMEOUT_MARGIN);
    }

    #[test]
    fn zero_means_the_runtime_default() {
        for t in [0, -5] {
            assert_eq!(
                Deadlines::new(t, DEFAULT_RUNTIME_REQUEST_TIMEOUT).runtime(),
                DEFAULT_RUNTIME_REQUEST_TIMEOUT
            );
        }
        assert!(DEFAULT_CLIENT_WAIT > Deadlines::new(0, DEFAULT_RUNTIME_REQUEST_TIMEOUT).client());
    }
}
