//! `/metrics` (OpenMetrics text via prometheus-client): checkpoint requests by
//! code and reason, the duration of node calls, checkpoints in flight and
//! waiting per node.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Content type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to encode metrics: {0}")]
    Encode(#[from] std::fmt::Error),
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub code: String,
    pub reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `success` or the failure reason.
    pub result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabels {
    pub node: String,
}

fn duration_histogram() -> Histogram {
    // 50 ms … ~7 min
    Histogram::new(exponential_buckets(0.05, 2.0, 14))
}

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<ResultLabels, Histogram, fn() -> Histogram>,
    in_flight: Family<NodeLabels, Gauge>,
    queued: Family<NodeLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("checkpoint_apiserver");
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Family::<ResultLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram,
        );
        let in_flight = Family::<NodeLabels, Gauge>::default();
        let queued = Family::<NodeLabels, Gauge>::default();
        registry.register(
            "requests",
            "pods/checkpoint requests by HTTP code and Status reason",
            requests.clone(),
        );
        registry.register(
            "checkpoint_duration_seconds",
            "Duration of node checkpoint calls in seconds, by result",
            duration.clone(),
        );
        registry.register(
            "node_checkpoints_in_flight",
            "Checkpoints running on a node now",
            in_flight.clone(),
        );
        registry.register(
            "node_checkpoints_queued",
            "Checkpoint requests waiting for a slot on a node",
            queued.clone(),
        );
        Self {
            registry,
            requests,
            duration,
            in_flight,
            queued,
        }
    }

    /// Count one answered request.
    pub fn request(&self, code: u16, reason: &str) {
        self.requests
            .get_or_create(&RequestLabels {
                code: code.to_string(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Observe one node call.
    pub fn checkpoint_duration(&self, result: &str, seconds: f64) {
        self.duration
            .get_or_create(&ResultLabels {
                result: result.to_owned(),
            })
            .observe(seconds);
    }

    /// Track a checkpoint running on `node` while the guard lives.
    pub fn in_flight(&self, node: &str) -> GaugeGuard {
        GaugeGuard::new(
            self.in_flight
                .get_or_create(&NodeLabels {
                    node: node.to_owned(),
                })
                .clone(),
        )
    }

    /// Track a request waiting for `node` while the guard lives.
    pub fn queued(&self, node: &str) -> GaugeGuard {
        GaugeGuard::new(
            self.queued
                .get_or_create(&NodeLabels {
                    node: node.to_owned(),
                })
                .clone(),
        )
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> Result<String, Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Increments a gauge on creation and decrements it on drop.
#[derive(Debug)]
pub struct GaugeGuard(Gauge);

impl GaugeGuard {
    fn new(g: Gauge) -> Self {
        g.inc();
        Self(g)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition() {
        let m = Metrics::new();
        m.request(200, "Success");
        m.request(404, "NotFound");
        m.request(404, "NotFound");
        m.checkpoint_duration("success", 0.3);
        let g = m.in_flight("n1");
        let q = m.queued("n1");
        let text = m.encode().unwrap();
        assert!(
            text.contains(
                "checkpoint_apiserver_requests_total{code=\"404\",reason=\"NotFound\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains("checkpoint_apiserver_node_checkpoints_in_flight{node=\"n1\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("checkpoint_apiserver_node_checkpoints_queued{node=\"n1\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "checkpoint_apiserver_checkpoint_duration_seconds_count{result=\"success\"} 1"
            ),
            "{text}"
        );
        drop((g, q));
        let text = m.encode().unwrap();
        assert!(
            text.contains("checkpoint_apiserver_node_checkpoints_in_flight{node=\"n1\"} 0"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
