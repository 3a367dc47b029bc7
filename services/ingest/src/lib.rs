//! The ingest consumer: AMQP deliveries in, committed state out, acks last.
//!
//! Data flow for one batch (design.md): take up to `batch_size` deliveries (waiting
//! at most `max_wait` for the batch to fill) → check each one ([`check`]: size,
//! content type, publisher, tenant, report parse) → write the accepted ones in one
//! transaction → publish every refused one to `fleet.dead` with its reason and wait for
//! the broker's confirms → ack the whole batch with `multiple`. Nothing is acked
//! before it is committed or dead-lettered, so a crash at any point loses nothing: the
//! broker redelivers, and the store's idempotency makes the second time a no-op.
//!
//! Each report's spans join the trace its agent started ([`trace`]).

pub mod broker;
pub mod check;
pub mod consumer;
pub mod metrics;
pub mod topology;
pub mod trace;

pub use broker::BrokerHealth;
pub use consumer::{IngestSettings, run};
pub use metrics::IngestMetrics;
