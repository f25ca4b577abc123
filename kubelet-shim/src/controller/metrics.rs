//! The PodCheckpoint controller's metrics, on the shim's `/metrics`:
//!
//! * `checkpoint_shim_podcheckpoints_in_flight`: PodCheckpoints being checkpointed now;
//! * `checkpoint_shim_podcheckpoint_duration_seconds{result}`: from claim to the final
//!   status (`result` = `completed` or `failed`);
//! * `checkpoint_shim_podcheckpoint_archive_bytes_total`: bytes of archives written;
//! * `checkpoint_shim_podcheckpoint_failures_total{reason}`: terminal failures by cause
//!   (`pod_not_found`, `unknown_container`, `runtime`, `interrupted`, ...: see
//!   [`super::plan::cause`]);
//! * `checkpoint_shim_podcheckpoint_archives_deleted_total`: archive files removed
//!   (with their object, or as orphans);
//! * `checkpoint_shim_podcheckpoint_archive_bytes_deleted_total`: their bytes;
//! * `checkpoint_shim_podcheckpoint_retention_deletions_total{policy}`: what the
//!   retention rules deleted (`ttl`, `max_archives_per_container`,
//!   `max_archive_bytes`: objects; `orphan`: directories without an object).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use crate::metrics::Metrics;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    policy: &'static str,
}

fn duration_histogram() -> Histogram {
    // 50 ms .. ~27 min
    Histogram::new(exponential_buckets(0.05, 2.0, 16))
}

/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct ControllerMetrics {
    in_flight: Gauge,
    durations: Family<ResultLabels, Histogram>,
    bytes: Counter,
    failures: Family<ReasonLabels, Counter>,
    deleted: Counter,
    deleted_bytes: Counter,
    retention: Family<PolicyLabels, Counter>,
}

impl ControllerMetrics {
    /// Registers the controller's metrics in the shim's registry.
    pub fn new(metrics: &Metrics) -> Self {
        let this = Self {
            in_flight: Gauge::default(),
            durations: Family::new_with_constructor(duration_histogram as fn() -> _),
            bytes: Counter::default(),
            failures: Family::default(),
            deleted: Counter::default(),
            deleted_bytes: Counter::default(),
            retention: Family::default(),
        };
        metrics.register(
            "podcheckpoints_in_flight",
            "PodCheckpoints being checkpointed on this node now",
            this.in_flight.clone(),
        );
        metrics.register(
            "podcheckpoint_duration_seconds",
            "Time from claiming a PodCheckpoint to its final status, by result",
            this.durations.clone(),
        );
        metrics.register(
            "podcheckpoint_archive_bytes",
            "Bytes of PodCheckpoint archives written",
            this.bytes.clone(),
        );
        metrics.register(
            "podcheckpoint_failures",
            "PodCheckpoints that ended CheckpointFailed or SourcePodReplaced, by cause",
            this.failures.clone(),
        );
        metrics.register(
            "podcheckpoint_archives_deleted",
            "PodCheckpoint archive files removed, with their object or as orphans",
            this.deleted.clone(),
        );
        metrics.register(
            "podcheckpoint_archive_bytes_deleted",
            "Bytes of PodCheckpoint archive files removed",
            this.deleted_bytes.clone(),
        );
        metrics.register(
            "podcheckpoint_retention_deletions",
            "PodCheckpoints deleted by a retention rule (ttl, max_archives_per_container, max_archive_bytes), and archive directories removed as orphans (orphan)",
            this.retention.clone(),
        );
        this
    }

    pub fn started(&self) {
        self.in_flight.inc();
    }

    pub fn ended(&self) {
        self.in_flight.dec();
    }

    pub fn completed(&self, took: Duration, bytes: u64) {
        self.durations
            .get_or_create(&ResultLabels {
                result: "completed",
            })
            .observe(took.as_secs_f64());
        self.bytes.inc_by(bytes);
    }

    pub fn failed_after(&self, took: Duration) {
        self.durations
            .get_or_create(&ResultLabels { result: "failed" })
            .observe(took.as_secs_f64());
    }

    pub fn failure(&self, cause: &'static str) {
        self.failures
            .get_or_create(&ReasonLabels { reason: cause })
            .inc();
    }

    pub fn deleted(&self, files: u64, bytes: u64) {
        self.deleted.inc_by(files);
        self.deleted_bytes.inc_by(bytes);
    }

    /// A deletion by a retention rule (its [`super::retention::Rule::label`]).
    pub fn retention(&self, policy: &'static str) {
        self.retention.get_or_create(&PolicyLabels { policy }).inc();
    }
}
