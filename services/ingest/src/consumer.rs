//! The consume loop: batch, check, write, dead-letter, ack — and reconnect.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use tokio::sync::watch;
use tracing::{Instrument, Span};

use fleet_protocol::{RejectReason, SecretUrl, SharedClock, SystemClock};
use fleet_store::{Outcome, Store};

use crate::broker::{self, BrokerHealth, backoff};
use crate::check::{Envelope, Refusal, check};
use crate::metrics::IngestMetrics;
use crate::topology::{self, DEAD, INGEST_QUEUE, REJECT_DETAIL_HEADER, REJECT_REASON_HEADER};
use crate::trace;

/// How the consumer runs.
#[derive(Clone, Debug)]
pub struct IngestSettings {
    /// Prints without its password.
    pub amqp_url: SecretUrl,
    /// Most messages written in one transaction.
    pub batch_size: u16,
    /// Longest wait for a batch to fill once its first message arrived.
    pub max_wait: Duration,
    /// How often the publisher table (AMQP user → tenant) and the campaigns are
    /// re-read from the store: how long a new tenant waits before its reports count.
    pub refresh_every: Duration,
    /// What "now" is: a report's `received_at` and a batch's `now` (contract §6).
    pub clock: SharedClock,
    /// How often the consumer looks at `fleet.ingest`'s depth
    /// ([`IngestMetrics::queue_depth`]).
    pub depth_every: Duration,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            amqp_url: SecretUrl::new("amqp://guest:guest@127.0.0.1:5672/%2f"),
            // Under a backlog 2000 drains faster than 1000 (docs/BENCHMARKS.md);
            // at everyday rates batches close on `max_wait` long before either.
            batch_size: 2000,
            max_wait: Duration::from_millis(50),
            refresh_every: DEFAULT_REFRESH_EVERY,
            clock: Arc::new(SystemClock),
            depth_every: DEFAULT_DEPTH_EVERY,
        }
    }
}

/// How often the queue depth is sampled unless [`IngestSettings::depth_every`] says
/// otherwise: a few times per Prometheus scrape interval, one cheap round trip each.
pub const DEFAULT_DEPTH_EVERY: Duration = Duration::from_secs(5);

/// Batches the broker may have delivered and not yet had acked: one being written,
/// one waiting for the writer, one arriving.
pub const PREFETCH_BATCHES: u16 = 3;

/// The consumer's prefetch (`basic.qos`) for a batch size: [`PREFETCH_BATCHES`]
/// batches, at most what AMQP's 16-bit count allows.
pub fn prefetch_for(batch_size: u16) -> u16 {
    batch_size.saturating_mul(PREFETCH_BATCHES).max(1)
}

/// How often the tenant map and the campaigns are re-read from the store, unless
/// [`IngestSettings::refresh_every`] says otherwise.
pub const DEFAULT_REFRESH_EVERY: Duration = Duration::from_secs(10);

/// Consumes `fleet.ingest` until `shutdown` turns true, reconnecting with backoff
/// whenever the broker goes away. The batch in hand at shutdown is either committed
/// and acked, or left unacked for the broker to redeliver.
pub async fn run(
    settings: IngestSettings,
    store: Store,
    metrics: IngestMetrics,
    health: Arc<BrokerHealth>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut attempt = 0u32;
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let result = consume(
            &settings,
            &store,
            &metrics,
            &health,
            &mut shutdown,
            &mut attempt,
        )
        .await;
        health.set(false);
        match result {
            Ok(()) => return Ok(()),
            Err(err) => tracing::warn!(
                error = format!("{err:#}"),
                "ingest consumer stopped; reconnecting"
            ),
        }
        let wait = backoff(attempt, Duration::from_millis(200), Duration::from_secs(30));
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

/// Messages ready for delivery in `fleet.ingest`, from a passive `queue.declare`:
/// the least-privilege AMQP user can do it, no management API needed.
pub async fn queue_depth(channel: &Channel) -> lapin::Result<u32> {
    let queue = channel
        .queue_declare(
            INGEST_QUEUE.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok(queue.message_count())
}

/// Sets `gauge` to [`queue_depth`] now and every `every` after, until the channel
/// fails (the connection's life ends with it) or the task is aborted.
async fn watch_depth(channel: Channel, gauge: prometheus::IntGauge, every: Duration) {
    loop {
        match queue_depth(&channel).await {
            Ok(depth) => gauge.set(i64::from(depth)),
            Err(err) => {
                tracing::debug!(error = %err, "queue depth unknown until reconnected");
                return;
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// Aborts a helper task when the connection it serves is done with, whichever way
/// [`consume`] returns.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One connection's life. `Ok` means shutdown was asked for.
async fn consume(
    settings: &IngestSettings,
    store: &Store,
    metrics: &IngestMetrics,
    health: &BrokerHealth,
    shutdown: &mut watch::Receiver<bool>,
    attempt: &mut u32,
) -> anyhow::Result<()> {
    let conn = broker::connect(settings.amqp_url.expose_url(), "fleetd-ingest")
        .await
        .context("connecting to RabbitMQ")?;
    let channel = conn.create_channel().await.context("opening a channel")?;
    topology::declare(&channel)
        .await
        .context("declaring the topology")?;
    // Its own channel: a failed look must not close the one that consumes.
    let _depth = AbortOnDrop(tokio::spawn(watch_depth(
        conn.create_channel().await.context("opening a channel")?,
        metrics.queue_depth.clone(),
        settings.depth_every,
    )));
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let prefetch = prefetch_for(settings.batch_size);
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            INGEST_QUEUE.into(),
            "fleetd-ingest".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .context("consuming fleet.ingest")?;
    health.set(true);
    *attempt = 0;
    tracing::info!(
        queue = INGEST_QUEUE,
        batch_size = settings.batch_size,
        "ingest consuming"
    );

    // Two stages on two cores: this loop receives and checks the next batch while the
    // writer task writes the previous ones and settles them (dead letters, then the
    // ack) strictly in delivery order.
    let (to_writer, batches) = tokio::sync::mpsc::channel::<Prepared>(1);
    let writer = tokio::spawn(write_in_order(
        batches,
        channel.clone(),
        store.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));

    let mut context = BatchContext::load(store).await?;
    let received: anyhow::Result<()> = async {
        loop {
            let first = tokio::select! {
                next = consumer.next() => next,
                _ = shutdown.changed() => return Ok(()),
            };
            let first = match first {
                Some(delivery) => delivery.context("receiving a delivery")?,
                None => anyhow::bail!("the broker cancelled the consumer"),
            };
            let started = Instant::now();
            let deliveries =
                fill_batch(first, &mut consumer, settings.batch_size, settings.max_wait)
                    .await
                    .context("receiving a delivery")?;
            if context.loaded_at.elapsed() > settings.refresh_every {
                context = BatchContext::load(store).await?;
            }
            let batch = prepare(deliveries, &context, settings.clock.now(), started);
            if to_writer.send(batch).await.is_err() {
                // The writer stopped; its result says why.
                return Ok(());
            }
        }
    }
    .await;
    // Let the writer finish what it holds (committed and acked, or left unacked).
    drop(to_writer);
    let written = writer.await.context("the batch writer panicked")?;
    let _ = conn.close(200, "shutdown".into()).await;
    received?;
    written?;
    if *shutdown.borrow() {
        Ok(())
    } else {
        anyhow::bail!("the batch writer stopped")
    }
}

/// Completes a batch begun by `first`: takes from `more` until the batch holds
/// `batch_size` or `max_wait` has passed since `first` arrived, whichever is sooner
/// (or `more` ends). Everyday traffic closes batches on `max_wait`; a backlog fills
/// them at once.
async fn fill_batch<T, E, S>(
    first: T,
    more: &mut S,
    batch_size: u16,
    max_wait: Duration,
) -> Result<Vec<T>, E>
where
    S: futures_util::Stream<Item = Result<T, E>> + Unpin,
{
    let mut batch = vec![first];
    let deadline = tokio::time::Instant::now() + max_wait;
    while batch.len() < usize::from(batch_size) {
        match tokio::time::timeout_at(deadline, more.next()).await {
            Ok(Some(item)) => batch.push(item?),
            Ok(None) | Err(_) => break,
        }
    }
    Ok(batch)
}

/// What checking needs from the store, re-read every [`IngestSettings::refresh_every`].
struct BatchContext {
    publishers: std::collections::HashMap<String, fleet_protocol::TenantSlug>,
    campaigns: std::sync::Arc<Vec<fleet_protocol::Campaign>>,
    loaded_at: Instant,
}

impl BatchContext {
    async fn load(store: &Store) -> anyhow::Result<Self> {
        Ok(Self {
            publishers: store.publishers().await?,
            campaigns: std::sync::Arc::new(store.campaigns().await?),
            loaded_at: Instant::now(),
        })
    }
}

/// A batch received and checked, on its way to the writer.
struct Prepared {
    deliveries: Vec<Delivery>,
    accepted: Arc<[fleet_store::IncomingReport]>,
    /// Index in `deliveries` of each accepted report.
    accepted_at: Vec<usize>,
    refused: Vec<(usize, Refusal)>,
    campaigns: std::sync::Arc<Vec<fleet_protocol::Campaign>>,
    now: chrono::DateTime<chrono::FixedOffset>,
    started: Instant,
    /// `ingest.batch` ([`crate::trace`]); ends when the batch is settled or dropped.
    span: Span,
    /// `ingest.report` of each delivery, by index in `deliveries`.
    report_spans: Vec<Span>,
}

/// Checks every delivery of a batch: pure work, no I/O. `now` is the batch's
/// `received_at`.
fn prepare(
    deliveries: Vec<Delivery>,
    context: &BatchContext,
    now: chrono::DateTime<chrono::FixedOffset>,
    started: Instant,
) -> Prepared {
    let mut accepted = Vec::with_capacity(deliveries.len());
    let mut accepted_at = Vec::with_capacity(deliveries.len());
    let mut refused = Vec::new();
    let span = trace::batch_span(deliveries.len());
    let mut report_spans = Vec::with_capacity(deliveries.len());
    for (i, delivery) in deliveries.iter().enumerate() {
        let p = &delivery.properties;
        report_spans.push(trace::report_span(p));
        let envelope = Envelope {
            routing_key: delivery.routing_key.as_str(),
            user_id: p.user_id().as_ref().map(|s| s.as_str()),
            content_type: p.content_type().as_ref().map(|s| s.as_str()),
            message_id: p.message_id().as_ref().map(|s| s.as_str()),
            delivery_count: delivery_count(p),
            body: &delivery.data,
        };
        match check(envelope, &context.publishers, now) {
            Ok(incoming) => {
                accepted.push(incoming);
                accepted_at.push(i);
            }
            Err(refusal) => refused.push((i, refusal)),
        }
    }
    Prepared {
        deliveries,
        accepted: accepted.into(),
        accepted_at,
        refused,
        campaigns: context.campaigns.clone(),
        now,
        started,
        span,
        report_spans,
    }
}

/// The writer stage: writes up to [`Store::batches_in_flight`] batches at once, each
/// taking its turn behind the one before ([`fleet_store::Turn`]), and settles them
/// in the order they were delivered. An ack is `multiple`, so a batch is acked only
/// after every batch before it was: when one cannot be written (shutdown while the
/// database is down), it and every batch after it stay unacked for redelivery, even
/// one that committed meanwhile — writes are idempotent, so a redelivery changes
/// nothing.
async fn write_in_order(
    mut batches: tokio::sync::mpsc::Receiver<Prepared>,
    channel: Channel,
    store: Store,
    metrics: IngestMetrics,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let parallel = store.batches_in_flight().max(1);
    let mut in_flight = futures_util::stream::FuturesOrdered::new();
    let mut previous_locked = None;
    let mut receiving = true;
    loop {
        tokio::select! {
            biased;
            Some((batch, outcomes)) = in_flight.next() => {
                let Some(outcomes) = outcomes else {
                    // Shutdown while the database was down: nothing more is acked.
                    return Ok(());
                };
                settle(&channel, batch, outcomes, &metrics).await?;
            }
            next = batches.recv(), if receiving && in_flight.len() < parallel => match next {
                Some(batch) => {
                    let (turn, locked) = fleet_store::Turn::next(previous_locked.take());
                    previous_locked = Some(locked);
                    in_flight.push_back(write(
                        batch,
                        turn,
                        store.clone(),
                        metrics.clone(),
                        shutdown.clone(),
                    ));
                }
                None => receiving = false,
            },
            else => return Ok(()),
        }
    }
}

/// Writes one checked batch; `None` for its outcomes when shutdown interrupted it
/// before the commit.
async fn write(
    batch: Prepared,
    turn: fleet_store::Turn,
    store: Store,
    metrics: IngestMetrics,
    mut shutdown: watch::Receiver<bool>,
) -> (Prepared, Option<Vec<Outcome>>) {
    let accepted_spans = || batch.accepted_at.iter().map(|&i| &batch.report_spans[i]);
    let span = trace::write_batch_span(&batch.span, accepted_spans());
    // Each report's view of the shared write; they end when dropped, with it.
    let report_writes: Vec<Span> = accepted_spans()
        .map(|report| trace::report_write_span(report, batch.accepted.len()))
        .collect();
    let outcomes = write_resilient(
        &store,
        &batch.accepted,
        &batch.campaigns,
        batch.now,
        turn,
        &metrics,
        &mut shutdown,
    )
    .instrument(span)
    .await;
    drop(report_writes);
    (batch, outcomes)
}

/// Dead-letters what the checks or the store refused, then acks the whole batch.
async fn settle(
    channel: &Channel,
    batch: Prepared,
    outcomes: Vec<Outcome>,
    metrics: &IngestMetrics,
) -> anyhow::Result<()> {
    let Prepared {
        deliveries,
        accepted_at,
        mut refused,
        started,
        span,
        report_spans,
        ..
    } = batch;
    for (k, outcome) in outcomes.into_iter().enumerate() {
        let label = match outcome {
            Outcome::Applied => "applied",
            Outcome::HistoryOnly => "history_only",
            Outcome::Duplicate => "duplicate",
            Outcome::Refused { reason, detail } => {
                refused.push((accepted_at[k], Refusal { reason, detail }));
                continue;
            }
        };
        report_spans[accepted_at[k]].record("outcome", label);
        metrics.reports.with_label_values(&[label]).inc();
    }
    for (i, refusal) in &refused {
        report_spans[*i].record("outcome", refusal.reason.as_str());
    }
    dead_letter(channel, &deliveries, &refused)
        .instrument(span.clone())
        .await?;
    for (_, refusal) in &refused {
        metrics
            .dead_lettered
            .with_label_values(&[refusal.reason.as_str()])
            .inc();
    }
    if let Some(last) = deliveries.last() {
        last.acker
            .ack(BasicAckOptions { multiple: true })
            .await
            .context("acking the batch")?;
    }
    metrics.batch_size.observe(deliveries.len() as f64);
    metrics
        .batch_seconds
        .observe(started.elapsed().as_secs_f64());
    Ok(())
}

/// Publishes each refused message to `fleet.dead` with its reason and waits for every
/// confirm. A nack is an error: the batch stays unacked and comes back.
async fn dead_letter(
    channel: &Channel,
    batch: &[Delivery],
    refused: &[(usize, Refusal)],
) -> anyhow::Result<()> {
    let mut confirms = Vec::with_capacity(refused.len());
    for (i, refusal) in refused {
        let delivery = &batch[*i];
        tracing::info!(reason = refusal.reason.as_str(), detail = %refusal.detail, routing_key = %delivery.routing_key, "dead-lettering a message");
        let original = &delivery.properties;
        let mut headers = original.headers().clone().unwrap_or_default();
        headers.insert(
            REJECT_REASON_HEADER.into(),
            AMQPValue::LongString(refusal.reason.as_str().into()),
        );
        headers.insert(
            REJECT_DETAIL_HEADER.into(),
            AMQPValue::LongString(refusal.detail.as_str().into()),
        );
        headers.insert(
            "x-fleet-original-routing-key".into(),
            AMQPValue::LongString(delivery.routing_key.as_str().into()),
        );
        if let Some(user) = original.user_id() {
            headers.insert(
                "x-fleet-original-user-id".into(),
                AMQPValue::LongString(user.as_str().into()),
            );
        }
        // user_id is dropped: the broker checks it against *our* connection's user.
        let mut props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_headers(headers);
        if let Some(ct) = original.content_type() {
            props = props.with_content_type(ct.clone());
        }
        if let Some(id) = original.message_id() {
            props = props.with_message_id(id.clone());
        }
        let confirm = channel
            .basic_publish(
                DEAD.into(),
                delivery.routing_key.clone(),
                BasicPublishOptions::default(),
                &delivery.data,
                props,
            )
            .await
            .context("publishing a dead letter")?;
        confirms.push(confirm);
    }
    for confirm in confirms {
        let confirmation = confirm.await.context("waiting for a dead-letter confirm")?;
        anyhow::ensure!(!confirmation.is_nack(), "the broker nacked a dead letter");
    }
    Ok(())
}

/// Batch writes that fail while the database still answers are retried this often
/// before the batch is split to find the message the store refuses.
const WHOLE_BATCH_TRIES: u32 = 3;

/// Writes a batch, telling a database that is down from a message it refuses.
///
/// - The database does not answer a ping: nothing is acked; wait with backoff and try
///   again, however long the outage lasts.
/// - It answers but the batch keeps failing: write the reports one by one; one that
///   fails alone while the database answers is refused (`store_rejected`) and goes to
///   the dead letters with the store's error, so one poison message cannot stall the
///   queue. Writes are idempotent, so writing a report twice changes nothing.
///
/// Returns `None` when shutdown was asked for before the batch was written.
async fn write_resilient(
    store: &Store,
    accepted: &Arc<[fleet_store::IncomingReport]>,
    campaigns: &Arc<Vec<fleet_protocol::Campaign>>,
    now: chrono::DateTime<chrono::FixedOffset>,
    turn: fleet_store::Turn,
    metrics: &IngestMetrics,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Vec<Outcome>> {
    let mut failures_while_up = 0u32;
    let mut attempt = 0u32;
    // Only the first attempt keeps the batch's place in line; a retry follows a
    // failure, after which the batches around it no longer wait for each other.
    let mut turn = Some(turn);
    loop {
        let error = match store
            .write_batch_in_turn(
                accepted.clone(),
                campaigns.clone(),
                now,
                turn.take().unwrap_or_default(),
            )
            .await
        {
            Ok(outcomes) => return Some(outcomes),
            Err(err) => err,
        };
        metrics.write_retries.inc();
        if store.ping().await.is_ok() {
            failures_while_up += 1;
            tracing::warn!(
                error = format!("{error:#}"),
                failures_while_up,
                "a batch failed while the database answers"
            );
            if failures_while_up >= WHOLE_BATCH_TRIES
                && let Some(outcomes) = write_one_by_one(store, accepted, campaigns, now).await
            {
                return Some(outcomes);
            }
        } else {
            failures_while_up = 0;
            tracing::warn!(
                error = format!("{error:#}"),
                "the database is unreachable; nothing acked, retrying"
            );
        }
        let wait = backoff(attempt, Duration::from_millis(100), Duration::from_secs(10));
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return None,
        }
    }
}

/// Writes each report alone; `None` if the database went away meanwhile.
async fn write_one_by_one(
    store: &Store,
    accepted: &[fleet_store::IncomingReport],
    campaigns: &Arc<Vec<fleet_protocol::Campaign>>,
    now: chrono::DateTime<chrono::FixedOffset>,
) -> Option<Vec<Outcome>> {
    let mut outcomes = Vec::with_capacity(accepted.len());
    for one in accepted {
        match store
            .write_batch(Arc::from(vec![one.clone()]), campaigns.clone(), now)
            .await
        {
            Ok(mut single) => outcomes.push(single.pop().unwrap_or(Outcome::Duplicate)),
            Err(err) => {
                if store.ping().await.is_err() {
                    return None;
                }
                tracing::warn!(error = format!("{err:#}"), message_id = %one.report.message_id(), "the store refuses a report");
                outcomes.push(Outcome::Refused {
                    reason: RejectReason::StoreRejected,
                    detail: format!("{err:#}"),
                });
            }
        }
    }
    Some(outcomes)
}

/// How often the broker delivered this message before (`x-delivery-count`, set by
/// quorum queues on redelivery).
fn delivery_count(properties: &BasicProperties) -> u64 {
    let value = properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-delivery-count").cloned());
    match value {
        Some(AMQPValue::LongLongInt(n)) => u64::try_from(n).unwrap_or_default(),
        Some(AMQPValue::LongInt(n)) => u64::try_from(n).unwrap_or_default(),
        Some(AMQPValue::ShortInt(n)) => u64::try_from(n).unwrap_or_default(),
        Some(AMQPValue::LongUInt(n)) => u64::from(n),
        Some(AMQPValue::Timestamp(n)) => n,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;
    use tokio::time::Instant as TokioInstant;

    type Items = Box<dyn futures_util::Stream<Item = Result<u32, ()>> + Unpin + Send>;

    /// A stream of deliveries the test feeds by hand.
    fn deliveries() -> (mpsc::UnboundedSender<u32>, Items) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|o| o.map(Ok)));
        (tx, Box::new(stream))
    }

    const WAIT: Duration = Duration::from_millis(50);

    /// Paused time: the test runs in no real time and measures the virtual time spent.
    #[tokio::test(start_paused = true)]
    async fn a_batch_closes_on_max_wait_with_what_arrived_in_time() {
        let (tx, mut more) = deliveries();
        tx.send(2).unwrap();
        let late = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            late.send(3).unwrap();
            tokio::time::sleep(Duration::from_millis(30)).await;
            // 60 ms after the first: too late for this batch.
            late.send(4).unwrap();
        });
        let started = TokioInstant::now();
        let batch = fill_batch(1, &mut more, 100, WAIT).await.unwrap();
        assert_eq!(batch, vec![1, 2, 3]);
        assert_eq!(started.elapsed(), WAIT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_closes_at_once() {
        let (tx, mut more) = deliveries();
        for n in 2..=10 {
            tx.send(n).unwrap();
        }
        let started = TokioInstant::now();
        let batch = fill_batch(1, &mut more, 4, WAIT).await.unwrap();
        assert_eq!(batch, vec![1, 2, 3, 4]);
        assert_eq!(started.elapsed(), Duration::ZERO);
        // The rest waits for the next batch.
        let next = fill_batch(5, &mut more, 4, WAIT).await.unwrap();
        assert_eq!(next, vec![5, 5, 6, 7]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_of_one_waits_max_wait_and_no_longer() {
        let (_tx, mut more) = deliveries();
        let started = TokioInstant::now();
        assert_eq!(fill_batch(1, &mut more, 100, WAIT).await.unwrap(), vec![1]);
        assert_eq!(started.elapsed(), WAIT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_stream_closes_the_batch() {
        let (tx, mut more) = deliveries();
        tx.send(2).unwrap();
        drop(tx);
        let started = TokioInstant::now();
        assert_eq!(
            fill_batch(1, &mut more, 100, WAIT).await.unwrap(),
            vec![1, 2]
        );
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
