//! The `run` loop: a report per interval, published with confirms, kept until
//! confirmed.
//!
//! Each tick takes a snapshot with a freshly allocated (already persisted) `seq` and
//! appends it to a queue; the queue is then sent oldest first, and a report leaves it
//! only when the broker confirmed it. A `nack`, an unroutable message or a lost
//! connection keeps it (and everything behind it) for the next tick. Reconnection
//! waits an exponential backoff with full jitter (a random delay between zero and the
//! current ceiling), so a fleet that lost its broker does not come back in lockstep.
//!
//! The queue lives in memory and holds at most [`MAX_PENDING`] reports (a day at the
//! default interval); past that the oldest is dropped with an error in the log, and a
//! stop or crash loses what is queued. A crash-safe disk spool replaces it in a later
//! issue. Losing a queued report leaves a gap in `seq`, which the contract allows.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use fleet_protocol::Report;
use rand::Rng;
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::Settings;
use crate::probe;
use crate::publish::{PublishError, Publisher};
use crate::seq::SeqStore;

/// Reports kept while the broker is unreachable: one day at the default interval.
pub const MAX_PENDING: usize = 1440;

/// Exponential backoff with full jitter: the n-th consecutive failure waits a uniform
/// random time in `[0, min(cap, base · 2ⁿ)]`.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
}

impl Backoff {
    pub const DEFAULT_BASE: Duration = Duration::from_secs(1);
    pub const DEFAULT_CAP: Duration = Duration::from_secs(300);

    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            failures: 0,
        }
    }

    /// The upper bound of the next delay.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32 << self.failures.min(20);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// Records a failure and draws the delay before the next attempt.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling();
        self.failures = self.failures.saturating_add(1);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rng.random_range(0..=millis))
    }

    /// After a success, start over from `base`.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Self::DEFAULT_BASE, Self::DEFAULT_CAP)
    }
}

/// The agent's state between ticks.
pub struct Agent {
    settings: Arc<Settings>,
    seq: SeqStore,
    /// Reports not yet confirmed, oldest first.
    pending: VecDeque<Report>,
    /// `None` while disconnected.
    publisher: Option<Publisher>,
    backoff: Backoff,
    /// No connection attempt before this instant.
    next_connect: Instant,
}

impl Agent {
    pub fn new(settings: Settings) -> Self {
        let seq = SeqStore::new(&settings.state_dir);
        Self {
            settings: Arc::new(settings),
            seq,
            pending: VecDeque::new(),
            publisher: None,
            backoff: Backoff::default(),
            next_connect: Instant::now(),
        }
    }

    /// Replaces the default reconnect backoff (1 s doubling up to 5 min).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Reports waiting for a confirm.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Failed attempts to get a report confirmed since the last confirm.
    pub fn consecutive_failures(&self) -> u32 {
        self.backoff.failures()
    }

    /// Takes a snapshot under a newly allocated `seq` and queues it; returns the `seq`.
    /// The `seq` is on disk before the report exists.
    pub async fn collect(&mut self) -> anyhow::Result<u64> {
        let settings = Arc::clone(&self.settings);
        let store = self.seq.clone();
        let report = tokio::task::spawn_blocking(move || -> anyhow::Result<Report> {
            let seq = store.allocate().context("allocating a sequence number")?;
            Ok(probe::snapshot(&settings, seq))
        })
        .await
        .context("the snapshot task failed")??;
        let seq = report.seq;
        if self.pending.len() >= MAX_PENDING
            && let Some(dropped) = self.pending.pop_front()
        {
            tracing::error!(
                message_id = %dropped.message_id(),
                limit = MAX_PENDING,
                "retry queue full: dropping the oldest unconfirmed report"
            );
        }
        self.pending.push_back(report);
        Ok(seq)
    }

    /// Sends the queue oldest first, connecting first if disconnected and the backoff
    /// allows. Stops at the first report that is not confirmed. Returns how many were
    /// confirmed.
    pub async fn flush(&mut self) -> usize {
        if self.pending.is_empty() {
            return 0;
        }
        if self.publisher.as_ref().is_some_and(|p| !p.is_connected()) {
            // Closed under us (broker restart, heartbeat timeout): start afresh.
            tracing::warn!("the broker connection was lost");
            if let Some(publisher) = self.publisher.take() {
                publisher.close().await;
            }
        }
        if self.publisher.is_none() {
            if Instant::now() < self.next_connect {
                return 0;
            }
            match Publisher::connect(&self.settings.amqp).await {
                Ok(publisher) => {
                    // The backoff is reset by a confirm, not here: a broker that
                    // accepts connections but fails every publish must not be
                    // hammered once a second.
                    tracing::info!(broker = %self.settings.amqp, "connected");
                    self.publisher = Some(publisher);
                }
                Err(err) => {
                    self.schedule_reconnect(&err);
                    return 0;
                }
            }
        }
        let mut confirmed = 0;
        while let (Some(report), Some(publisher)) = (self.pending.front(), self.publisher.as_ref())
        {
            let message_id = report.message_id();
            match publisher.publish(&self.settings.tenant, report).await {
                Ok(()) => {
                    tracing::info!(%message_id, "report confirmed");
                    self.pending.pop_front();
                    self.backoff.reset();
                    confirmed += 1;
                }
                Err(err @ PublishError::TooLarge(_)) => {
                    // Retrying cannot make it smaller.
                    tracing::error!(%message_id, error = %err, "report dropped");
                    self.pending.pop_front();
                }
                Err(err) if err.is_connection_lost() => {
                    if let Some(publisher) = self.publisher.take() {
                        publisher.close().await;
                    }
                    self.schedule_reconnect(&err);
                    break;
                }
                Err(err) => {
                    tracing::warn!(
                        %message_id,
                        error = %err,
                        pending = self.pending.len(),
                        "report not confirmed; kept to retry at the next tick"
                    );
                    break;
                }
            }
        }
        confirmed
    }

    fn schedule_reconnect(&mut self, err: &PublishError) {
        let delay = self.backoff.next_delay(&mut rand::rng());
        self.next_connect = Instant::now() + delay;
        tracing::warn!(
            error = %err,
            retry_in = ?delay,
            pending = self.pending.len(),
            "broker unavailable; reports are kept for later"
        );
    }

    /// Closes the connection, if any. Queued reports are lost (no spool yet).
    pub async fn close(mut self) {
        if !self.pending.is_empty() {
            tracing::warn!(
                pending = self.pending.len(),
                "stopping with unconfirmed reports; they are lost (no disk spool yet)"
            );
        }
        if let Some(publisher) = self.publisher.take() {
            publisher.close().await;
        }
    }

    /// One report, one attempt to send it; an error unless the broker confirmed it.
    pub async fn run_once(mut self) -> anyhow::Result<u64> {
        let seq = self.collect().await?;
        self.flush().await;
        let confirmed = self.pending.is_empty();
        self.close().await;
        anyhow::ensure!(
            confirmed,
            "report seq {seq} was not confirmed by the broker (see the log above)"
        );
        Ok(seq)
    }

    /// Reports every interval until `shutdown` completes, then closes cleanly.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut ticker = tokio::time::interval(self.settings.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tracing::info!(
            terminal_id = %self.settings.terminal_id,
            tenant = %self.settings.tenant,
            broker = %self.settings.amqp,
            interval = ?self.settings.interval,
            "agent running"
        );
        loop {
            let reconnect_due = self.publisher.is_none() && !self.pending.is_empty();
            let tick = tokio::select! {
                () = &mut shutdown => break,
                _ = ticker.tick() => true,
                () = tokio::time::sleep_until(self.next_connect), if reconnect_due => false,
            };
            if tick {
                tokio::select! {
                    () = &mut shutdown => break,
                    result = self.collect() => match result {
                        Ok(seq) => tracing::debug!(seq, "snapshot taken"),
                        // Without a persisted seq no report may leave; try again next tick.
                        Err(err) => tracing::error!(error = format!("{err:#}"), "no report this tick"),
                    },
                }
            }
            tokio::select! {
                () = &mut shutdown => break,
                _ = self.flush() => {}
            }
        }
        tracing::info!("stopping");
        self.close().await;
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn backoff_ceiling_doubles_up_to_the_cap() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
        let mut rng = StdRng::seed_from_u64(7);
        let mut ceilings = Vec::new();
        for _ in 0..6 {
            ceilings.push(backoff.ceiling().as_secs());
            let delay = backoff.next_delay(&mut rng);
            assert!(delay <= Duration::from_secs(ceilings[ceilings.len() - 1]));
        }
        assert_eq!(ceilings, [1, 2, 4, 8, 10, 10]);
        backoff.reset();
        assert_eq!(backoff.ceiling(), Duration::from_secs(1));
        // Many failures never overflow.
        for _ in 0..100 {
            backoff.next_delay(&mut rng);
        }
        assert_eq!(backoff.ceiling(), Duration::from_secs(10));
    }

    #[test]
    fn backoff_is_jittered_over_the_whole_range() {
        let mut rng = StdRng::seed_from_u64(42);
        let delays: Vec<Duration> = (0..200)
            .map(|_| {
                Backoff::new(Duration::from_secs(8), Duration::from_secs(8)).next_delay(&mut rng)
            })
            .collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(8)));
        assert!(
            delays.iter().any(|d| *d < Duration::from_secs(2)),
            "full jitter reaches low delays"
        );
        assert!(
            delays.iter().any(|d| *d > Duration::from_secs(6)),
            "and high ones"
        );
    }
}
