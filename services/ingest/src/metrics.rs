//! Ingest metrics: one struct, fixed label names, registered once.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Counters and histograms of the ingest consumer.
#[derive(Clone, Debug)]
pub struct IngestMetrics {
    /// Reports by what the store did with them (`applied`, `history_only`, `duplicate`).
    pub reports: IntCounterVec,
    /// Messages dead-lettered, by reason.
    pub dead_lettered: IntCounterVec,
    /// Reports per committed batch.
    pub batch_size: Histogram,
    /// Seconds from the first delivery of a batch to its ack.
    pub batch_seconds: Histogram,
    /// Batches whose write failed and was retried.
    pub write_retries: IntCounter,
    /// Messages ready in `fleet.ingest` at the consumer's last look (a passive
    /// `queue.declare`, every [`crate::IngestSettings::depth_every`]). Counts what
    /// waits for a consumer, not the up to three batches consumers hold unacked; it
    /// is what tells a quiet night (0) from a stalled ingest (growing), which the
    /// reports counter alone cannot. Keeps its last value while the broker is away.
    pub queue_depth: IntGauge,
}

impl IngestMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self {
            reports: IntCounterVec::new(
                Opts::new("fleet_ingest_reports_total", "Reports consumed, by outcome"),
                &["outcome"],
            )?,
            dead_lettered: IntCounterVec::new(
                Opts::new(
                    "fleet_ingest_dead_lettered_total",
                    "Messages sent to fleet.dead, by reason",
                ),
                &["reason"],
            )?,
            batch_size: Histogram::with_opts(
                HistogramOpts::new("fleet_ingest_batch_size", "Messages per batch")
                    .buckets(vec![1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0]),
            )?,
            batch_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "fleet_ingest_batch_seconds",
                    "Time from a batch's first delivery to its ack",
                )
                .buckets(vec![
                    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ]),
            )?,
            write_retries: IntCounter::new(
                "fleet_ingest_write_retries_total",
                "Batch writes that failed and were retried",
            )?,
            queue_depth: IntGauge::new(
                "fleet_ingest_queue_depth",
                "Messages ready in fleet.ingest at the consumer's last look",
            )?,
        };
        registry.register(Box::new(m.reports.clone()))?;
        registry.register(Box::new(m.dead_lettered.clone()))?;
        registry.register(Box::new(m.batch_size.clone()))?;
        registry.register(Box::new(m.batch_seconds.clone()))?;
        registry.register(Box::new(m.write_retries.clone()))?;
        registry.register(Box::new(m.queue_depth.clone()))?;
        Ok(m)
    }
}
