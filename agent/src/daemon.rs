//! The `run` loop: look at the terminal often, report on a change at once and
//! otherwise every interval; every report goes through the on-disk spool and leaves
//! it only when the broker confirmed it.
//!
//! Every `check_interval` (default 10 s) the probes run. A report is written when the
//! terminal's state differs from the last report's (anything but times and `seq`),
//! when the reader logged errors (both *essential*: never dropped when the spool is
//! full), or when `interval` (default 60 s) passed since the last one (a heartbeat).
//! Writing means: allocate a `seq` (persisted first), append the JSON body to the
//! [`Spool`] (durable per its fsync policy), then mark the reader errors delivered.
//!
//! Sending takes the spool oldest first; a record is acknowledged in the spool only
//! after the broker's `basic.ack`. A `nack`, an unroutable message, a lost connection
//! or a confirm that never comes keep it (and everything behind it) for the next try.
//! Reconnection waits an exponential backoff with full jitter (a random delay between
//! zero and the current ceiling), so a fleet that lost its broker in an area outage
//! does not come back in lockstep. A stop (SIGTERM) sends what it can within a few
//! seconds and syncs the spool; what is left goes out after the next start.
//!
//! Spool calls are synchronous on purpose: they are a few small writes and an fsync
//! per report, and keeping the spool owned by this one task means no locking.
//!
//! When heartbeats are dropped under the spool's size limit, the running total is
//! kept in `<state_dir>/spool-dropped` and sent as the additive, optional field
//! `"spool": {"dropped_heartbeats": n}` of later reports (absent while it is zero).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use fleet_protocol::Report;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::Settings;
use crate::probe::Probes;
use crate::publish::{PublishError, Publisher};
use crate::seq::SeqStore;
use crate::spool::{DiskStorage, Spool};

/// How long a stop may spend sending what is spooled.
pub const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);
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
    /// Every report, from before it is sent until it is confirmed.
    spool: Spool<DiskStorage>,
    /// Running total of heartbeats dropped under the spool limit (persisted).
    dropped: SeqStore,
    /// Probes with memory (the reader-log tail).
    probes: Probes,
    /// `None` while disconnected.
    publisher: Option<Publisher>,
    backoff: Backoff,
    /// Draws the backoff's jitter; one generator per agent, so a test can seed it.
    jitter: StdRng,
    /// No connection attempt before this instant.
    next_connect: Instant,
    /// The state part of the last spooled report, to tell a change from a heartbeat.
    last_state: Option<String>,
    last_report_at: Option<Instant>,
}

/// What makes two reports "the same state": everything but the times that move on
/// their own, `seq` and the reader errors (events, judged separately).
pub fn state_fingerprint(report: &Report) -> String {
    let mut state = report.clone();
    state.seq = 0;
    state.observed_at = chrono::DateTime::UNIX_EPOCH.fixed_offset();
    if let Some(line_auth) = &mut state.line_auth {
        line_auth.checked_at = None;
    }
    if let Some(reader) = &mut state.reader {
        reader.errors = None;
    }
    String::from_utf8_lossy(&state.to_json()).into_owned()
}

impl Agent {
    /// Opens the spool (recovering it after a crash) and the state files.
    pub fn new(settings: Settings) -> anyhow::Result<Self> {
        let seq = SeqStore::new(&settings.state_dir);
        let (spool, recovery) = Spool::open_dir(&settings.spool.dir, settings.spool.config)
            .with_context(|| format!("opening the spool in {}", settings.spool.dir.display()))?;
        if recovery.pending > 0 || recovery.truncated_bytes > 0 {
            tracing::info!(
                pending = recovery.pending,
                segments = recovery.segments,
                truncated_bytes = recovery.truncated_bytes,
                "spool recovered"
            );
        }
        let probes = Probes::new(&settings);
        let dropped = SeqStore::named(&settings.state_dir, "spool-dropped");
        Ok(Self {
            settings: Arc::new(settings),
            seq,
            spool,
            dropped,
            probes,
            publisher: None,
            backoff: Backoff::default(),
            jitter: StdRng::from_rng(&mut rand::rng()),
            next_connect: Instant::now(),
            last_state: None,
            last_report_at: None,
        })
    }

    /// Replaces the default reconnect backoff (1 s doubling up to 5 min).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Reports in the spool waiting for a confirm.
    pub fn pending(&self) -> usize {
        self.spool.len()
    }

    /// The spool itself (tests, diagnostics).
    pub fn spool(&mut self) -> &mut Spool<DiskStorage> {
        &mut self.spool
    }

    /// Failed attempts to get a report confirmed since the last confirm.
    pub fn consecutive_failures(&self) -> u32 {
        self.backoff.failures()
    }

    /// While disconnected, no connection attempt is made before this instant.
    pub fn next_attempt(&self) -> Instant {
        self.next_connect
    }

    /// Takes a snapshot and spools it whatever it shows; returns its `seq`.
    pub async fn collect(&mut self) -> anyhow::Result<u64> {
        self.check(true)
            .await?
            .context("a forced report was not written")
    }

    /// Looks at the terminal; spools a report if the state changed, the reader
    /// logged errors, the interval is up, or `force`. Returns the `seq` written.
    pub async fn check(&mut self, force: bool) -> anyhow::Result<Option<u64>> {
        let settings = Arc::clone(&self.settings);
        let mut probes = std::mem::take(&mut self.probes);
        let (probes, mut report) = tokio::task::spawn_blocking(move || {
            let report = probes.observe(&settings, 0);
            (probes, report)
        })
        .await
        .context("the snapshot task failed")?;
        self.probes = probes;

        let state = state_fingerprint(&report);
        let has_errors = report
            .reader
            .as_ref()
            .and_then(|r| r.errors.as_ref())
            .is_some_and(|e| !e.is_empty());
        let changed = self.last_state.as_deref() != Some(state.as_str());
        // Half a check of slack, so a 60 s interval checked every 10 s is not 70 s.
        let slack = self.settings.check_interval / 2;
        let interval_up = self
            .last_report_at
            .is_none_or(|at| at.elapsed() + slack >= self.settings.interval);
        if !(force || changed || has_errors || interval_up) {
            return Ok(None);
        }
        let essential = changed || has_errors;
        report.seq = self
            .seq
            .allocate()
            .context("allocating a sequence number")?;
        let payload = self.body(&report)?;
        let appended = self
            .spool
            .append(report.seq, essential, &payload)
            .context("writing the report to the spool")?;
        let dropped = appended.dropped.len() as u64 + u64::from(!appended.stored);
        if dropped > 0 {
            match self.dropped.add(dropped) {
                Ok(total) => {
                    tracing::warn!(dropped, total, "heartbeat reports dropped: spool full")
                }
                Err(err) => tracing::error!(error = %err, "cannot count dropped reports"),
            }
        }
        self.probes.commit();
        if changed && self.last_state.is_some() {
            tracing::info!(seq = report.seq, "state changed: reporting now");
        }
        self.last_state = Some(state);
        self.last_report_at = Some(Instant::now());
        Ok(Some(report.seq))
    }

    /// The message body: the report, plus the additive `spool` field once anything
    /// was dropped.
    fn body(&self, report: &Report) -> anyhow::Result<Vec<u8>> {
        let dropped = self.dropped.peek().unwrap_or(0);
        if dropped == 0 {
            return Ok(report.to_json());
        }
        let mut value = serde_json::to_value(report).context("serialising the report")?;
        if let Some(object) = value.as_object_mut() {
            object.insert(
                "spool".to_owned(),
                serde_json::json!({ "dropped_heartbeats": dropped }),
            );
        }
        serde_json::to_vec(&value).context("serialising the report")
    }

    /// Sends the spool oldest first, connecting first if disconnected and the backoff
    /// allows. Stops at the first report that is not confirmed. Returns how many were
    /// confirmed.
    pub async fn flush(&mut self) -> usize {
        if self.spool.is_empty() {
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
        while let Some(publisher) = self.publisher.as_ref() {
            let record = match self.spool.front() {
                Ok(Some(record)) => record,
                Ok(None) => break,
                Err(err) => {
                    tracing::error!(error = %err, "cannot read the spool");
                    break;
                }
            };
            let message_id = format!("{}/{}", self.settings.terminal_id, record.seq);
            let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
            let result = publisher
                .publish_body(&self.settings.tenant, &message_id, &record.payload, now)
                .await;
            match result {
                Ok(()) => {
                    tracing::info!(%message_id, "report confirmed");
                    self.backoff.reset();
                    confirmed += 1;
                    if let Err(err) = self.spool.ack_through(record.seq) {
                        // Not acknowledged on disk: it is sent again, same message_id.
                        tracing::error!(%message_id, error = %err, "cannot record the confirm in the spool");
                        break;
                    }
                }
                Err(err @ PublishError::TooLarge(_)) => {
                    // Retrying cannot make it smaller.
                    tracing::error!(%message_id, error = %err, "report dropped");
                    if let Err(err) = self.spool.ack_through(record.seq) {
                        tracing::error!(%message_id, error = %err, "cannot drop the report");
                        break;
                    }
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
                        pending = self.spool.len(),
                        "report not confirmed; kept in the spool to retry"
                    );
                    // A nack is as much a failure as a lost connection: back off.
                    let delay = self.backoff.next_delay(&mut self.jitter);
                    self.next_connect = Instant::now() + delay;
                    break;
                }
            }
        }
        if let Err(err) = self.spool.sync_if_due() {
            tracing::error!(error = %err, "cannot sync the spool");
        }
        confirmed
    }

    fn schedule_reconnect(&mut self, err: &PublishError) {
        let delay = self.backoff.next_delay(&mut self.jitter);
        self.next_connect = Instant::now() + delay;
        tracing::warn!(
            error = %err,
            retry_in = ?delay,
            pending = self.spool.len(),
            "broker unavailable; reports stay in the spool"
        );
    }

    /// Syncs the spool and closes the connection. Nothing is lost: what was not
    /// confirmed stays in the spool for the next start.
    pub async fn close(mut self) {
        if let Err(err) = self.spool.sync() {
            tracing::error!(error = %err, "cannot sync the spool");
        }
        if !self.spool.is_empty() {
            tracing::info!(
                pending = self.spool.len(),
                "stopping with unconfirmed reports; they stay in the spool"
            );
        }
        if let Some(publisher) = self.publisher.take() {
            publisher.close().await;
        }
    }

    /// One report, one attempt to send the spool; an error unless the broker
    /// confirmed that report.
    pub async fn run_once(mut self) -> anyhow::Result<u64> {
        let seq = self.collect().await?;
        self.flush().await;
        let confirmed = !self.spool.pending_seqs().contains(&seq);
        self.close().await;
        anyhow::ensure!(
            confirmed,
            "report seq {seq} was not confirmed by the broker (see the log above); it stays in the spool"
        );
        Ok(seq)
    }

    /// Looks at the terminal every check interval and reports as the module says,
    /// until `shutdown` completes; then sends what it can and closes cleanly.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut ticker = tokio::time::interval(self.settings.check_interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tracing::info!(
            terminal_id = %self.settings.terminal_id,
            tenant = %self.settings.tenant,
            broker = %self.settings.amqp,
            interval = ?self.settings.interval,
            check_interval = ?self.settings.check_interval,
            spooled = self.spool.len(),
            "agent running"
        );
        loop {
            let reconnect_due = self.publisher.is_none() && !self.spool.is_empty();
            let tick = tokio::select! {
                () = &mut shutdown => break,
                _ = ticker.tick() => true,
                () = tokio::time::sleep_until(self.next_connect), if reconnect_due => false,
            };
            if tick {
                tokio::select! {
                    () = &mut shutdown => break,
                    result = self.check(false) => match result {
                        Ok(Some(seq)) => tracing::debug!(seq, "report spooled"),
                        Ok(None) => {}
                        // Without a persisted seq or a spooled copy no report may
                        // leave; try again at the next check.
                        Err(err) => tracing::error!(error = format!("{err:#}"), "no report this check"),
                    },
                }
            }
            tokio::select! {
                () = &mut shutdown => break,
                _ = self.flush() => {}
            }
        }
        tracing::info!("stopping");
        if self.publisher.is_some() && !self.spool.is_empty() {
            let _ = tokio::time::timeout(SHUTDOWN_FLUSH, self.flush()).await;
        }
        self.close().await;
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    /// A scratch directory for one test's state and spool, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "fleet-agent-daemon-{name}-{}",
                uuid::Uuid::new_v4()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The example terminal's files, a report every 60 s and a look every 10 s,
    /// nothing on the network but the broker at `amqp_url`.
    fn settings(state_dir: &Path, amqp_url: &str) -> Settings {
        let terminal =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fixtures/sample-terminal");
        let path = |file: &str| terminal.join(file).display().to_string().replace('\\', "/");
        let text = format!(
            r#"
terminal_id = "{terminal_id}"
clinic_code = "2712345678"
tenant = "demo"
amqp_url = "{amqp_url}"
state_dir = "{state_dir}"
interval_secs = 60
check_interval_secs = 10

[host]
booted_at_file = "{booted}"

[versions]
face_library = "{face}"

[distribution]
record_file = "{record}"

[line_auth]
enabled = false
"#,
            terminal_id = uuid::Uuid::new_v4(),
            state_dir = state_dir.display().to_string().replace('\\', "/"),
            booted = path("booted_at.txt"),
            face = path("OQS-Auth/Version.info"),
            record = path("distribution.txt"),
        );
        Settings::from_toml(&text, Path::new("daemon-test.toml")).unwrap()
    }

    /// The run loop on a paused clock: the terminal never changes, so reports come
    /// from the interval alone — one at the start, then one every 60 s, none in
    /// between although the terminal is looked at every 10 s.
    #[tokio::test(start_paused = true)]
    async fn the_run_loop_reports_once_per_interval_and_never_early() {
        let scratch = Scratch::new("interval");
        let state_dir = scratch.0.join("state");
        let mut agent =
            Agent::new(settings(&state_dir, "amqp://guest:guest@127.0.0.1:1/%2f")).unwrap();
        // Nothing to send to: no connection attempt while the test runs.
        agent.next_connect = Instant::now() + Duration::from_secs(24 * 3600);
        let seqs = SeqStore::new(&state_dir);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let start = Instant::now();
        // Read before the loop starts: its first report may be written within the
        // loop's first poll, before the observer below is first polled.
        let mut next_seq = seqs.peek().unwrap();
        let observe = async {
            // Half a second after each whole second: a check due at that second has
            // finished (the clock does not move while the probes' blocking task runs).
            let mut reported_at = Vec::new();
            for second in 0..250u64 {
                tokio::time::sleep_until(start + Duration::from_millis(second * 1000 + 500)).await;
                let now = seqs.peek().unwrap();
                if now != next_seq {
                    assert_eq!(now, next_seq + 1, "one report at a time");
                    reported_at.push(second);
                    next_seq = now;
                }
            }
            let _ = stop.send(());
            reported_at
        };
        let ((), reported_at) = tokio::join!(
            agent.run(async {
                let _ = stopped.await;
            }),
            observe
        );
        assert_eq!(reported_at, [0, 60, 120, 180, 240]);
    }

    /// Reconnection on a paused clock, against a port where nothing listens: each
    /// failure draws the next delay under a ceiling that doubles up to the cap, the
    /// agent waits exactly that delay (a flush before it does not even try), and
    /// then tries again.
    #[tokio::test(start_paused = true)]
    async fn reconnects_wait_the_drawn_delays_under_a_growing_ceiling() {
        let scratch = Scratch::new("backoff");
        let settings = settings(
            &scratch.0.join("state"),
            "amqp://guest:guest@127.0.0.1:1/%2f",
        );
        let (base, cap) = (Duration::from_secs(1), Duration::from_secs(8));
        let mut agent = Agent::new(settings)
            .unwrap()
            .with_backoff(Backoff::new(base, cap));
        agent.jitter = StdRng::seed_from_u64(11);
        // The same draws, made beside the agent: what it must wait.
        let mut model = Backoff::new(base, cap);
        let mut model_jitter = StdRng::seed_from_u64(11);
        agent.collect().await.unwrap();

        let mut ceilings = Vec::new();
        for failures in 1..=6u32 {
            ceilings.push(agent.backoff.ceiling().as_secs());
            let expected = model.next_delay(&mut model_jitter);
            assert_eq!(agent.flush().await, 0, "nothing listens there");
            assert_eq!(agent.consecutive_failures(), failures);
            let wait = agent.next_attempt() - Instant::now();
            assert_eq!(wait, expected, "attempt {failures} waits its drawn delay");
            assert!(wait <= Duration::from_secs(ceilings[ceilings.len() - 1]));

            // Not a millisecond early.
            if let Some(early) = wait.checked_sub(Duration::from_millis(1)) {
                tokio::time::advance(early).await;
                assert_eq!(agent.flush().await, 0);
                assert_eq!(
                    agent.consecutive_failures(),
                    failures,
                    "no attempt before the delay"
                );
            }
            tokio::time::sleep_until(agent.next_attempt()).await;
        }
        assert_eq!(
            ceilings,
            [1, 2, 4, 8, 8, 8],
            "the ceiling doubles up to the cap"
        );
        assert_eq!(agent.pending(), 1, "the report stays in the spool");
        agent.close().await;
    }

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
