//! The spans of a report's way through ingest, and how they join the agent's trace.
//!
//! The agent starts a trace when it publishes a report and sends it as a W3C
//! `traceparent` AMQP header ([`fleet_protocol::TraceParent`]). Ingest works in
//! batches of up to a few thousand reports from as many terminals — as many traces —
//! so one batch-wide span cannot be a child of every report. The spans therefore
//! follow two views of the same work:
//!
//! ```text
//! trace of one report (one per message):
//!   agent publish (remote, not exported)
//!   └─ ingest.report          checked → acked; outcome, message_id
//!      └─ store.write         this report's share of the batch write (same interval)
//!
//! trace of one batch:
//!   ingest.batch              checked → acked; size
//!   └─ store.write_batch      the write with its retries; links to every ingest.report
//!      └─ findings.evaluate   (to come, see below)
//! ```
//!
//! - `ingest.report` has the agent's publish as its parent
//!   ([`tracing_opentelemetry::OpenTelemetrySpanExt::set_parent`]); a message
//!   without a valid `traceparent` starts a trace of its own.
//! - `store.write` spans are the report's view of the shared write: they start and end
//!   with it, so the report's trace shows how long the database held it up, without
//!   claiming the batch belonged to that report.
//! - `store.write_batch` carries a span link to each `ingest.report`, so a trace
//!   viewer can go from the batch to the reports in it and back. Retries and the
//!   one-by-one fallback happen inside it (their warnings become span events).
//!
//! `findings.evaluate`: the store's findings step (services/store, `flow.rs`) should
//! open `tracing::debug_span!("findings.evaluate", changed = …)` around evaluating
//! the findings a batch changed. It runs inside `Store::write_batch_in_turn`, which
//! this crate calls inside `store.write_batch`, so the span becomes its child with
//! no extra wiring (the SQLite writer thread re-enters the caller's span for this).
//! To attribute a finding to one report's trace, the store would add a link to that
//! report's context; that is left to the findings work.
//!
//! Cost: the spans are DEBUG level, so with the default log filter and no exporter
//! (`OTEL_EXPORTER_OTLP_ENDPOINT` unset) no layer wants them, `tracing` never builds
//! them and the `traceparent` header is not even parsed. With an exporter, a batch of
//! N reports makes 2N + 2 spans; sample with `OTEL_TRACES_SAMPLER` when that is too
//! many.

use lapin::BasicProperties;
use lapin::types::AMQPValue;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use fleet_protocol::{TRACEPARENT_HEADER, TraceParent};

/// The `traceparent` a message was published with, if it carries a valid one.
pub fn traceparent(properties: &BasicProperties) -> Option<TraceParent> {
    let value = properties
        .headers()
        .as_ref()?
        .inner()
        .get(TRACEPARENT_HEADER)?;
    let text = match value {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok()?,
        AMQPValue::ShortString(s) => s.as_str(),
        _ => return None,
    };
    TraceParent::parse(text).ok()
}

/// The OpenTelemetry context of a remote parent (the agent's publish).
pub fn remote_context(parent: TraceParent) -> opentelemetry::Context {
    let span_context = SpanContext::new(
        TraceId::from_bytes(parent.trace_id().to_be_bytes()),
        SpanId::from_bytes(parent.span_id().to_be_bytes()),
        TraceFlags::new(parent.flags()),
        true,
        TraceState::default(),
    );
    opentelemetry::Context::new().with_remote_span_context(span_context)
}

/// `ingest.report` for one delivery, parented on the agent's publish when the
/// message says which it was.
pub fn report_span(properties: &BasicProperties) -> Span {
    let span = tracing::debug_span!(
        parent: None,
        "ingest.report",
        otel.kind = "consumer",
        messaging.system = "rabbitmq",
        messaging.message.id = properties.message_id().as_ref().map(|s| s.as_str()),
        outcome = tracing::field::Empty,
    );
    if !span.is_disabled()
        && let Some(parent) = traceparent(properties)
    {
        // Fails only when no OpenTelemetry layer is installed: nothing to parent then.
        let _ = span.set_parent(remote_context(parent));
    }
    span
}

/// `ingest.batch`: one batch from its first delivery to its ack, a trace of its own.
pub fn batch_span(size: usize) -> Span {
    tracing::debug_span!(parent: None, "ingest.batch", size)
}

/// `store.write_batch`, a child of `batch`, linked to the spans of the reports in it.
pub fn write_batch_span<'a>(batch: &Span, reports: impl IntoIterator<Item = &'a Span>) -> Span {
    let span = tracing::debug_span!(parent: batch, "store.write_batch");
    if !span.is_disabled() {
        for report in reports {
            span.add_link(report.context().span().span_context().clone());
        }
    }
    span
}

/// `store.write`: one report's share of its batch's write, a child of its
/// `ingest.report`. Ends when dropped.
pub fn report_write_span(report: &Span, batch_size: usize) -> Span {
    tracing::debug_span!(parent: report, "store.write", batch_size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::FieldTable;

    fn with_header(value: AMQPValue) -> BasicProperties {
        let mut headers = FieldTable::default();
        headers.insert(TRACEPARENT_HEADER.into(), value);
        BasicProperties::default().with_headers(headers)
    }

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_header_is_read_as_long_or_short_string() {
        let long = with_header(AMQPValue::LongString(EXAMPLE.into()));
        let short = with_header(AMQPValue::ShortString(EXAMPLE.into()));
        let expected = TraceParent::parse(EXAMPLE).ok();
        assert_eq!(traceparent(&long), expected);
        assert_eq!(traceparent(&short), expected);
    }

    #[test]
    fn a_missing_or_bad_header_is_no_parent() {
        assert_eq!(traceparent(&BasicProperties::default()), None);
        assert_eq!(
            traceparent(&with_header(AMQPValue::LongString("00-zz".into()))),
            None
        );
        assert_eq!(traceparent(&with_header(AMQPValue::LongInt(7))), None);
    }

    #[test]
    fn the_remote_context_keeps_the_ids_and_flags() {
        let parent = TraceParent::parse(EXAMPLE).unwrap();
        let cx = remote_context(parent);
        let span = cx.span();
        let sc = span.span_context();
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert!(sc.is_sampled());
        assert!(sc.is_remote());
    }
}
