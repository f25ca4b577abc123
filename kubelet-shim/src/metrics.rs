//! Prometheus metrics served on `/metrics` (OpenMetrics text).
//!
//! * `checkpoint_shim_http_requests_total{path, method, code}`: every answer;
//! * `checkpoint_shim_checkpoint_duration_seconds{result}`: how long the runtime's
//!   `CheckpointContainer` took (`result` = `success`, `error` or `timeout`);
//! * `checkpoint_shim_checkpoint_archive_bytes`: sizes of the archives written;
//! * the PodCheckpoint controller's, registered by it
//!   ([`crate::controller::metrics`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Content type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// A route name (`checkpoint`, `metrics`, `healthz`, ..., `other`), never the raw path.
    path: &'static str,
    method: String,
    code: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// How a runtime checkpoint call ended, for the duration histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallResult {
    Success,
    Error,
    Timeout,
}

impl CallResult {
    fn as_str(self) -> &'static str {
        match self {
            CallResult::Success => "success",
            CallResult::Error => "error",
            CallResult::Timeout => "timeout",
        }
    }
}

fn duration_histogram() -> Histogram {
    // 50 ms .. ~27 min
    Histogram::new(exponential_buckets(0.05, 2.0, 16))
}

/// The shim's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    requests: Family<RequestLabels, Counter>,
    durations: Family<ResultLabels, Histogram>,
    archive_bytes: Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("checkpoint_shim");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route, method and status code",
            requests.clone(),
        );
        let durations = Family::<ResultLabels, Histogram>::new_with_constructor(
            duration_histogram as fn() -> _,
        );
        registry.register(
            "checkpoint_duration_seconds",
            "Time the container runtime took to checkpoint a container, by result",
            durations.clone(),
        );
        // 4 KiB .. 64 GiB
        let archive_bytes = Histogram::new(exponential_buckets(4096.0, 4.0, 13));
        registry.register(
            "checkpoint_archive_bytes",
            "Size of the checkpoint archives written",
            archive_bytes.clone(),
        );
        Self {
            registry: Arc::new(Mutex::new(registry)),
            requests,
            durations,
            archive_bytes,
        }
    }

    /// Count one answer.
    pub fn request(&self, path: &'static str, method: &http::Method, code: u16) {
        // Only known methods become label values: a client cannot grow the family.
        let method = match *method {
            http::Method::GET
            | http::Method::POST
            | http::Method::PUT
            | http::Method::PATCH
            | http::Method::DELETE
            | http::Method::HEAD
            | http::Method::OPTIONS => method.as_str().to_owned(),
            _ => "other".to_owned(),
        };
        self.requests
            .get_or_create(&RequestLabels { path, method, code })
            .inc();
    }

    /// Record how long a runtime call took.
    pub fn checkpoint_duration(&self, result: CallResult, took: Duration) {
        self.durations
            .get_or_create(&ResultLabels {
                result: result.as_str(),
            })
            .observe(took.as_secs_f64());
    }

    /// Record the size of an archive.
    pub fn archive_size(&self, bytes: u64) {
        // f64 is exact up to 2^53 bytes, far beyond any archive.
        self.archive_bytes.observe(bytes as f64);
    }

    /// Registers a metric of another part of the shim (the PodCheckpoint
    /// controller's) under the `checkpoint_shim` prefix.
    pub fn register(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        if let Ok(mut registry) = self.registry.lock() {
            registry.register(name, help, metric);
        }
    }

    /// The exposition text.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        let registry = self.registry.lock().map_err(|_| std::fmt::Error)?;
        encode(&mut out, &registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names() {
        let m = Metrics::new();
        m.request("checkpoint", &http::Method::POST, 200);
        m.request(
            "checkpoint",
            &http::Method::from_bytes(b"BREW").unwrap(),
            405,
        );
        m.checkpoint_duration(CallResult::Success, Duration::from_millis(120));
        m.archive_size(270_000);
        let text = m.encode().unwrap();
        assert!(
            text.contains(
                "checkpoint_shim_http_requests_total{path=\"checkpoint\",method=\"POST\",code=\"200\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("method=\"other\",code=\"405\""), "{text}");
        assert!(
            text.contains(
                "checkpoint_shim_checkpoint_duration_seconds_count{result=\"success\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("checkpoint_shim_checkpoint_archive_bytes_sum 270000.0"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
