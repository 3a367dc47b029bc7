//! Per-terminal locks for writers that may run side by side on PostgreSQL.
//!
//! Why: with N `fleetd ingest` replicas as competing consumers (design.md), two
//! batches can hold reports of the same terminal at once. Each reads the terminal's
//! state and campaign states, applies its reports and writes the result with the
//! rollout counters' deltas. Under READ COMMITTED nothing stops both from reading
//! the same "before": the later commit then overwrites the earlier one's state (a
//! terminal can go back to an older `seq`), and both move the counters from the same
//! old state, so the counters drift from a recount (`tests/e2e/replicas.rs` showed
//! both). Row locks do not help a terminal that does not exist yet.
//!
//! So every transaction that reads a terminal to write it back — an ingest batch, a
//! 承継, a campaign's assessment — first takes a transaction-scoped advisory lock per
//! terminal, all in ascending key order so that two of them can never deadlock, and
//! only then reads. A second batch with the same terminal waits for the first to
//! commit and reads what it wrote; batches with different terminals do not wait.
//!
//! SQLite needs none of this: one connection writes at a time (`BEGIN IMMEDIATE`),
//! and a transaction on another connection that read before a write fails instead
//! of committing on stale data.

use std::collections::BTreeSet;

use anyhow::Context;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement};

/// The advisory-lock key of a terminal: the first 64 bits of its UUID (random in a
/// v4 UUID, so two terminals share a key about never; if they did, they would only
/// wait for each other). A stored id that is not a UUID is hashed instead.
fn key(terminal_id: &str) -> i64 {
    match uuid::Uuid::parse_str(terminal_id) {
        Ok(id) => {
            let (high, _) = id.as_u64_pair();
            i64::from_ne_bytes(high.to_ne_bytes())
        }
        // FNV-1a: stable across processes and releases, unlike std's hasher.
        Err(_) => {
            let hash = terminal_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            i64::from_ne_bytes(hash.to_ne_bytes())
        }
    }
}

/// Locks `terminals` until `txn` ends (PostgreSQL; nothing on SQLite).
pub(crate) async fn lock_terminals<'a>(
    txn: &DatabaseTransaction,
    terminals: impl IntoIterator<Item = &'a str>,
) -> anyhow::Result<()> {
    if txn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let keys: BTreeSet<i64> = terminals.into_iter().map(key).collect();
    if keys.is_empty() {
        return Ok(());
    }
    // One prepared statement whatever the count. PostgreSQL evaluates a volatile
    // output expression after the ORDER BY (9.6 and later), so the locks are taken in
    // the array's ascending order.
    let keys: Vec<i64> = keys.into_iter().collect();
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_advisory_xact_lock(k) FROM unnest($1::int8[]) WITH ORDINALITY AS t(k, n) \
         ORDER BY n",
        [keys.into()],
    ))
    .await
    .context("locking the batch's terminals")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::key;

    #[test]
    fn keys_are_stable_and_tell_terminals_apart() {
        let a = "0f8c2b1e-6c5d-4a57-9a3e-2b7f0c1d9e11";
        assert_eq!(key(a), 0x0f8c_2b1e_6c5d_4a57);
        assert_eq!(
            key(&a.to_uppercase()),
            key(a),
            "the same UUID however written"
        );
        assert_ne!(key(a), key("5a1d7c3e-2f4b-4c8a-9e6d-1b3f5a7c9e20"));
        assert_eq!(key("not-a-uuid"), key("not-a-uuid"));
        assert_ne!(key("not-a-uuid"), key("not-a-uuid2"));
    }
}
