//! The service's clock (contract §6, "Time"): what "now" is for ingest (`received_at`,
//! a batch's `now`) and for the pages that judge staleness.
//!
//! It is the system clock unless `FLEET_CLOCK` (an RFC 3339 instant) is set: then it
//! starts at that instant when the process starts and runs at `FLEET_CLOCK_RATE` times
//! real time (default 1; 3600 replays an hour a second) — for replays, demos and tests.
//! Tests that need to step time use [`ManualClock`].
//!
//! Every clock answers in JST, the zone the service stores and shows.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};

use crate::campaign::JST;

/// Where "now" comes from.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant, in JST.
    fn now(&self) -> DateTime<FixedOffset>;
}

/// A clock shared by every task of the process.
pub type SharedClock = Arc<dyn Clock>;

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<FixedOffset> {
        Utc::now().with_timezone(&JST)
    }
}

/// A clock that starts at a given instant and runs `rate` times faster than real time
/// (`FLEET_CLOCK`, `FLEET_CLOCK_RATE`).
pub struct ReplayClock {
    start: DateTime<FixedOffset>,
    rate: ClockRate,
    /// Real time elapsed since the clock started: a monotonic clock in the service,
    /// a stand-in in tests so they need not sleep.
    elapsed: Box<dyn Fn() -> Duration + Send + Sync>,
}

impl fmt::Debug for ReplayClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayClock")
            .field("start", &self.start)
            .field("rate", &self.rate.get())
            .finish_non_exhaustive()
    }
}

impl ReplayClock {
    /// Starts now at `start`, measuring real time with the monotonic clock.
    pub fn starting_at(start: DateTime<FixedOffset>, rate: ClockRate) -> Self {
        let origin = Instant::now();
        Self::with_elapsed(start, rate, move || origin.elapsed())
    }

    /// Like [`ReplayClock::starting_at`], with real elapsed time read from `elapsed`.
    pub fn with_elapsed(
        start: DateTime<FixedOffset>,
        rate: ClockRate,
        elapsed: impl Fn() -> Duration + Send + Sync + 'static,
    ) -> Self {
        Self {
            start: start.with_timezone(&JST),
            rate,
            elapsed: Box::new(elapsed),
        }
    }
}

impl Clock for ReplayClock {
    /// Saturates at chrono's limits rather than overflow: a rate of 1e300 is allowed,
    /// only useless.
    fn now(&self) -> DateTime<FixedOffset> {
        let real = (self.elapsed)().as_secs_f64();
        let scaled_nanos = real * self.rate.get() * 1e9;
        let offset = if scaled_nanos >= i64::MAX as f64 {
            TimeDelta::MAX
        } else {
            // Non-negative: elapsed time and the rate are.
            TimeDelta::nanoseconds(scaled_nanos as i64)
        };
        self.start
            .checked_add_signed(offset)
            .unwrap_or(DateTime::<Utc>::MAX_UTC.with_timezone(&JST))
    }
}

/// How many times faster than real time a [`ReplayClock`] runs: finite and > 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClockRate(f64);

impl ClockRate {
    /// Real time.
    pub const REAL_TIME: Self = Self(1.0);

    /// Parses `FLEET_CLOCK_RATE`, e.g. `1`, `0.5`, `3600`.
    pub fn parse(text: &str) -> Result<Self, ClockError> {
        let rate: f64 = text
            .trim()
            .parse()
            .map_err(|_| ClockError::Rate(text.to_owned()))?;
        Self::new(rate).ok_or_else(|| ClockError::Rate(text.to_owned()))
    }

    pub fn new(rate: f64) -> Option<Self> {
        (rate.is_finite() && rate > 0.0).then_some(Self(rate))
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

/// A clock setting that is not valid; the message names the variable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    #[error("FLEET_CLOCK: {0:?} is not an RFC 3339 instant such as 2026-01-20T08:30:00+09:00")]
    Start(String),
    #[error("FLEET_CLOCK_RATE: {0:?} is not a finite number greater than 0")]
    Rate(String),
    #[error("FLEET_CLOCK_RATE is set but FLEET_CLOCK is not: a rate needs a start instant")]
    RateWithoutStart,
}

/// The clock `FLEET_CLOCK` and `FLEET_CLOCK_RATE` ask for (unset or empty: `None`),
/// started now.
pub fn from_settings(start: Option<&str>, rate: Option<&str>) -> Result<SharedClock, ClockError> {
    let rate = rate.map(ClockRate::parse).transpose()?;
    match start {
        None if rate.is_some() => Err(ClockError::RateWithoutStart),
        None => Ok(Arc::new(SystemClock)),
        Some(text) => {
            let start = DateTime::parse_from_rfc3339(text.trim())
                .map_err(|_| ClockError::Start(text.to_owned()))?;
            Ok(Arc::new(ReplayClock::starting_at(
                start,
                rate.unwrap_or(ClockRate::REAL_TIME),
            )))
        }
    }
}

/// A clock that moves only when told to, for tests.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<FixedOffset>>);

impl ManualClock {
    pub fn new(at: DateTime<FixedOffset>) -> Self {
        Self(Mutex::new(at.with_timezone(&JST)))
    }

    pub fn set(&self, at: DateTime<FixedOffset>) {
        *self.lock() = at.with_timezone(&JST);
    }

    pub fn advance(&self, by: TimeDelta) {
        let mut now = self.lock();
        *now = now.checked_add_signed(by).unwrap_or(*now);
    }

    /// A poisoned lock still holds a valid instant: a panic elsewhere cannot leave
    /// a `DateTime` half-written.
    fn lock(&self) -> std::sync::MutexGuard<'_, DateTime<FixedOffset>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<FixedOffset> {
        *self.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn at(text: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(text).unwrap()
    }

    #[test]
    fn the_system_clock_answers_in_jst_near_now() {
        let now = SystemClock.now();
        assert_eq!(now.offset().local_minus_utc(), 9 * 3600);
        assert!((now.with_timezone(&Utc) - Utc::now()).num_seconds().abs() < 60);
    }

    /// Real time stands still unless the test moves it: no sleeping.
    #[test]
    fn a_replay_clock_starts_at_its_instant_and_runs_at_its_rate() {
        let millis = Arc::new(AtomicU64::new(0));
        let real = millis.clone();
        let clock = ReplayClock::with_elapsed(
            at("2026-01-20T08:00:00+09:00"),
            ClockRate::parse("3600").unwrap(),
            move || Duration::from_millis(real.load(Ordering::SeqCst)),
        );
        assert_eq!(clock.now(), at("2026-01-20T08:00:00+09:00"));
        millis.store(1000, Ordering::SeqCst);
        assert_eq!(clock.now(), at("2026-01-20T09:00:00+09:00"));
        millis.store(2500, Ordering::SeqCst);
        assert_eq!(clock.now(), at("2026-01-20T10:30:00+09:00"));
    }

    #[test]
    fn a_replay_clock_answers_in_jst_whatever_zone_it_was_given() {
        let clock =
            ReplayClock::with_elapsed(at("2026-01-19T23:00:00Z"), ClockRate::REAL_TIME, || {
                Duration::ZERO
            });
        assert_eq!(clock.now().to_rfc3339(), "2026-01-20T08:00:00+09:00");
    }

    #[test]
    fn a_huge_rate_saturates_instead_of_overflowing() {
        let clock = ReplayClock::with_elapsed(
            at("2026-01-20T08:00:00+09:00"),
            ClockRate::new(1e300).unwrap(),
            || Duration::from_secs(u64::MAX),
        );
        assert!(clock.now() > at("9999-01-01T00:00:00Z"));
    }

    #[test]
    fn rates_must_be_finite_and_positive() {
        assert_eq!(ClockRate::parse("1").unwrap().get(), 1.0);
        assert_eq!(ClockRate::parse("0.5").unwrap().get(), 0.5);
        for bad in ["0", "-1", "NaN", "inf", "-inf", "", "fast", "1e999"] {
            let err = ClockRate::parse(bad).unwrap_err();
            assert!(err.to_string().contains("FLEET_CLOCK_RATE"), "{bad}: {err}");
        }
    }

    #[test]
    fn settings_choose_the_clock_and_name_the_bad_variable() {
        assert!(format!("{:?}", from_settings(None, None).unwrap()).contains("SystemClock"));
        let replay = from_settings(Some("2026-01-20T08:00:00+09:00"), Some("3600")).unwrap();
        assert!(replay.now() >= at("2026-01-20T08:00:00+09:00"));
        assert!(replay.now() < at("2026-01-21T08:00:00+09:00"));
        let err = from_settings(Some("yesterday"), None).unwrap_err();
        assert!(err.to_string().contains("FLEET_CLOCK:"), "{err}");
        let err = from_settings(Some("2026-01-20T08:00:00+09:00"), Some("0")).unwrap_err();
        assert!(err.to_string().contains("FLEET_CLOCK_RATE"), "{err}");
        let err = from_settings(None, Some("2")).unwrap_err();
        assert!(err.to_string().contains("FLEET_CLOCK"), "{err}");
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(at("2026-01-20T08:00:00+09:00"));
        assert_eq!(clock.now(), clock.now());
        clock.advance(TimeDelta::minutes(20));
        assert_eq!(clock.now(), at("2026-01-20T08:20:00+09:00"));
        clock.set(at("2026-12-31T23:00:00Z"));
        assert_eq!(clock.now().to_rfc3339(), "2027-01-01T08:00:00+09:00");
    }
}
