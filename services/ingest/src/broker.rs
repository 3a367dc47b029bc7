//! Connecting to RabbitMQ, and knowing whether it is reachable (`/readyz`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fleet_protocol::SecretUrl;
use lapin::{Connection, ConnectionProperties};
use tokio::sync::watch;

/// Whether the broker was reachable at the last look; shared with `/readyz`.
#[derive(Debug, Default)]
pub struct BrokerHealth(AtomicBool);

impl BrokerHealth {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn set(&self, up: bool) {
        self.0.store(up, Ordering::Relaxed);
    }

    pub fn is_up(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Opens a connection with a name that shows in the broker's management tools.
pub async fn connect(url: &str, name: &str) -> lapin::Result<Connection> {
    let props = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(url, props).await
}

/// Exponential backoff with full jitter: a random wait in [0, min(cap, base·2^attempt)].
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let ceiling = base
        .saturating_mul(2u32.saturating_pow(attempt.min(16)))
        .min(cap);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(fastrand_below(millis.saturating_add(1)))
}

/// A cheap random number below `n` from the clock's nanoseconds and a counter; jitter
/// needs spread, not cryptographic quality.
fn fastrand_below(n: u64) -> u64 {
    use std::sync::atomic::AtomicU64;
    static STATE: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or_default();
    let mut x = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) ^ nanos;
    // splitmix64
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    if n == 0 { 0 } else { x % n }
}

/// Keeps one connection to the broker open for roles that do not consume (`fleetd
/// web`), so `/readyz` can tell whether the broker is reachable.
pub async fn watch(url: SecretUrl, health: Arc<BrokerHealth>, mut shutdown: watch::Receiver<bool>) {
    let mut attempt = 0;
    loop {
        match connect(url.expose_url(), "fleetd-readiness").await {
            Ok(conn) => {
                attempt = 0;
                health.set(true);
                while conn.status().connected() {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                        _ = shutdown.changed() => { let _ = conn.close(200, "shutdown".into()).await; return; }
                    }
                }
                health.set(false);
            }
            Err(err) => {
                health.set(false);
                tracing::warn!(error = %err, "broker unreachable");
            }
        }
        let wait = backoff(attempt, Duration::from_millis(200), Duration::from_secs(30));
        attempt += 1;
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_by_the_cap_and_grows() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(5);
        for attempt in 0..40 {
            assert!(backoff(attempt, base, cap) <= cap);
        }
        // Full jitter spreads the waits: over many draws at a high attempt, not all equal.
        let draws: std::collections::HashSet<_> = (0..50).map(|_| backoff(10, base, cap)).collect();
        assert!(draws.len() > 10, "{draws:?}");
        assert!((0..50).all(|_| backoff(0, base, cap) <= base));
    }
}
