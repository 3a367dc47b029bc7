//! PostgreSQL's side of a batch: one statement per table and batch, each column's
//! values passed as one array and turned back into rows with `unnest`.
//!
//! Why: the multi-row `VALUES` lists these statements replace (400 rows × 7–9
//! parameters each, five statements per table for a batch of 2,000) made the server
//! parse and plan a statement of thousands of parameters again and again, and the
//! text of each differed with the batch's size. PostgreSQL's processes spent about
//! 100 µs of CPU per report on that (docs/BENCHMARKS.md). With arrays every statement
//! here has a fixed text and a handful of parameters, so sqlx prepares it once per
//! connection and the server plans it once; the rows travel in PostgreSQL's binary
//! array format.
//!
//! The decisions (what to refuse, what is new, which states change) are the shared
//! ones in [`crate::write`]; only the I/O is here. A column that may be NULL goes as
//! two arrays, the values and whether each is present, because an array element
//! cannot be NULL in the values sea-query hands to sqlx.

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use chrono::{DateTime, FixedOffset};
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};

use crate::write::{CampaignRow, IncomingReport, Loaded, Stored, reader_error_rows};

fn statement(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// A `text[]` parameter.
fn texts<'a>(items: impl IntoIterator<Item = &'a str>) -> Value {
    items
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<String>>()
        .into()
}

/// A `timestamptz[]` parameter and a `bool[]` saying which elements are present;
/// an absent one is sent as the Unix epoch and read back as NULL.
fn optional_times(items: impl IntoIterator<Item = Option<DateTime<FixedOffset>>>) -> [Value; 2] {
    let (times, present): (Vec<DateTime<FixedOffset>>, Vec<bool>) = items
        .into_iter()
        .map(|t| (t.unwrap_or_default(), t.is_some()))
        .unzip();
    [times.into(), present.into()]
}

/// A `text[]` parameter and a `bool[]` saying which elements are present.
fn optional_texts<'a>(items: impl IntoIterator<Item = Option<&'a str>>) -> [Value; 2] {
    let (texts, present): (Vec<String>, Vec<bool>) = items
        .into_iter()
        .map(|t| (t.unwrap_or_default().to_owned(), t.is_some()))
        .unzip();
    [texts.into(), present.into()]
}

fn seq(seq: u64) -> i64 {
    // Callers refuse seq above i64::MAX before this point.
    i64::try_from(seq).unwrap_or(i64::MAX)
}

const LOAD_TERMINALS: &str =
    "SELECT terminal_id, tenant, state FROM terminals WHERE terminal_id = ANY($1::text[])";

/// The stored terminals among `ids`.
pub(crate) async fn load_terminals(
    txn: &impl ConnectionTrait,
    ids: &[String],
) -> anyhow::Result<HashMap<String, Loaded>> {
    let rows = txn
        .query_all_raw(statement(
            LOAD_TERMINALS,
            vec![texts(ids.iter().map(String::as_str))],
        ))
        .await
        .context("loading terminals")?;
    let mut map = HashMap::with_capacity(rows.len());
    for row in rows {
        let id: String = row.try_get("", "terminal_id")?;
        let tenant: String = row.try_get("", "tenant")?;
        let state: String = row.try_get("", "state")?;
        let loaded = Loaded::from_row(&id, &tenant, &state)?;
        map.insert(id, loaded);
    }
    Ok(map)
}

// No conflict target: the partitioned history's key is (terminal_id, seq,
// observed_at); a redelivery has the same three and collides.
const APPEND_HISTORY: &str = "INSERT INTO reports \
     (terminal_id, seq, tenant, clinic_code, observed_at, received_at, body) \
     SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], \
                          $5::timestamptz[], $6::timestamptz[], $7::text[]) \
     ON CONFLICT DO NOTHING RETURNING terminal_id, seq";

/// Inserts the candidates into `reports`, returning the keys that were new.
pub(crate) async fn append_history(
    txn: &impl ConnectionTrait,
    batch: &[IncomingReport],
    candidates: &[usize],
) -> anyhow::Result<HashSet<(String, u64)>> {
    if candidates.is_empty() {
        return Ok(HashSet::new());
    }
    let rows = candidates.iter().map(|&i| &batch[i]);
    let ids: Vec<String> = rows
        .clone()
        .map(|r| r.report.terminal_id.to_string())
        .collect();
    let values = vec![
        ids.into(),
        rows.clone()
            .map(|r| seq(r.report.seq))
            .collect::<Vec<_>>()
            .into(),
        texts(rows.clone().map(|r| r.tenant.as_str())),
        texts(rows.clone().map(|r| r.report.clinic_code.as_str())),
        rows.clone()
            .map(|r| r.report.observed_at)
            .collect::<Vec<_>>()
            .into(),
        rows.clone()
            .map(|r| r.received_at)
            .collect::<Vec<_>>()
            .into(),
        texts(rows.map(|r| r.body.as_str())),
    ];
    let mut inserted = HashSet::with_capacity(candidates.len());
    for row in txn
        .query_all_raw(statement(APPEND_HISTORY, values))
        .await
        .context("appending to the history")?
    {
        let id: String = row.try_get("", "terminal_id")?;
        let seq: i64 = row.try_get("", "seq")?;
        inserted.insert((id, u64::try_from(seq).unwrap_or_default()));
    }
    Ok(inserted)
}

// No conflict to expect: `fresh` holds only reports this transaction added to the
// history, so a report's errors are recorded once (migration
// `m20261204_000008_postgres_reader_errors_by_time`).
const APPEND_READER_ERRORS: &str = "INSERT INTO reader_errors \
     (terminal_id, seq, idx, tenant, code, message, at, count) \
     SELECT id, seq, idx, tenant, code, CASE WHEN has_message THEN message END, at, count \
     FROM unnest($1::text[], $2::int8[], $3::int4[], $4::text[], $5::text[], $6::text[], \
                 $7::bool[], $8::timestamptz[], $9::int8[]) \
          AS t(id, seq, idx, tenant, code, message, has_message, at, count)";

/// Records the reader errors of the fresh reports as events.
pub(crate) async fn append_reader_errors(
    txn: &impl ConnectionTrait,
    batch: &[IncomingReport],
    fresh: &[usize],
) -> anyhow::Result<()> {
    let rows = reader_error_rows(batch, fresh);
    if rows.is_empty() {
        return Ok(());
    }
    let [messages, has_message] = optional_texts(rows.iter().map(|(_, _, e)| e.message.as_deref()));
    let values = vec![
        rows.iter()
            .map(|(r, _, _)| r.report.terminal_id.to_string())
            .collect::<Vec<_>>()
            .into(),
        rows.iter()
            .map(|(r, _, _)| seq(r.report.seq))
            .collect::<Vec<_>>()
            .into(),
        rows.iter()
            .map(|(_, idx, _)| i32::try_from(*idx).unwrap_or(i32::MAX))
            .collect::<Vec<_>>()
            .into(),
        texts(rows.iter().map(|(r, _, _)| r.tenant.as_str())),
        texts(rows.iter().map(|(_, _, e)| e.code.as_str())),
        messages,
        has_message,
        rows.iter().map(|(_, _, e)| e.at).collect::<Vec<_>>().into(),
        rows.iter()
            .map(|(_, _, e)| i64::from(e.count))
            .collect::<Vec<_>>()
            .into(),
    ];
    txn.execute_raw(statement(APPEND_READER_ERRORS, values))
        .await
        .context("recording reader errors")?;
    Ok(())
}

const UPSERT_TERMINALS: &str = "INSERT INTO terminals \
     (terminal_id, tenant, clinic_code, prefecture, last_seq, last_observed_at, \
      last_received_at, state) \
     SELECT id, tenant, clinic_code, prefecture, last_seq, last_observed_at, $7, state \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], \
                 $6::timestamptz[], $8::text[]) \
          AS t(id, tenant, clinic_code, prefecture, last_seq, last_observed_at, state) \
     ON CONFLICT (terminal_id) DO UPDATE SET \
       clinic_code = excluded.clinic_code, prefecture = excluded.prefecture, \
       last_seq = excluded.last_seq, last_observed_at = excluded.last_observed_at, \
       last_received_at = excluded.last_received_at, state = excluded.state";

/// Writes the state of every terminal the batch changed.
pub(crate) async fn upsert_terminals(
    txn: &impl ConnectionTrait,
    terminals: &HashMap<String, Loaded>,
    received_at: DateTime<FixedOffset>,
) -> anyhow::Result<()> {
    let changed = crate::write::changed_terminals(terminals);
    if changed.is_empty() {
        return Ok(());
    }
    let states = changed
        .iter()
        .map(|(_, _, state)| serde_json::to_string(state))
        .collect::<Result<Vec<_>, _>>()?;
    let values = vec![
        texts(changed.iter().map(|(id, _, _)| id.as_str())),
        texts(changed.iter().map(|(_, l, _)| l.tenant.as_str())),
        texts(changed.iter().map(|(_, _, s)| s.clinic_code.as_str())),
        changed
            .iter()
            .map(|(_, _, s)| s.clinic_code.prefecture().code())
            .collect::<Vec<_>>()
            .into(),
        changed
            .iter()
            .map(|(_, _, s)| seq(s.last_seq))
            .collect::<Vec<_>>()
            .into(),
        changed
            .iter()
            .map(|(_, _, s)| s.last_observed_at)
            .collect::<Vec<_>>()
            .into(),
        received_at.into(),
        states.into(),
    ];
    txn.execute_raw(statement(UPSERT_TERMINALS, values))
        .await
        .context("upserting terminals")?;
    Ok(())
}

const LOAD_CAMPAIGN_STATES: &str = "SELECT terminal_id, campaign_id, seen_in_distribution_at, \
     prefecture, clinic_code, state, cause \
     FROM campaign_states WHERE terminal_id = ANY($1::text[])";

/// Every campaign state stored for `terminals`, by (terminal, campaign).
pub(crate) async fn load_campaign_states(
    txn: &impl ConnectionTrait,
    terminals: &[String],
) -> anyhow::Result<HashMap<(String, String), Stored>> {
    let rows = txn
        .query_all_raw(statement(
            LOAD_CAMPAIGN_STATES,
            vec![texts(terminals.iter().map(String::as_str))],
        ))
        .await
        .context("loading campaign states")?;
    let mut before = HashMap::with_capacity(rows.len());
    for row in rows {
        let id: String = row.try_get("", "terminal_id")?;
        let campaign: String = row.try_get("", "campaign_id")?;
        let stored = Stored {
            prefecture: row.try_get("", "prefecture")?,
            clinic_code: row.try_get("", "clinic_code")?,
            state: row.try_get("", "state")?,
            cause: row.try_get("", "cause")?,
            seen: row.try_get("", "seen_in_distribution_at")?,
        };
        before.insert((id, campaign), stored);
    }
    Ok(before)
}

const UPSERT_CAMPAIGN_STATES: &str = "INSERT INTO campaign_states \
     (terminal_id, campaign_id, tenant, prefecture, clinic_code, state, cause, \
      seen_in_distribution_at, updated_at) \
     SELECT id, campaign_id, tenant, prefecture, clinic_code, state, cause, \
            CASE WHEN has_seen THEN seen END, $10 \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
                 $7::text[], $8::timestamptz[], $9::bool[]) \
          AS t(id, campaign_id, tenant, prefecture, clinic_code, state, cause, seen, has_seen) \
     ON CONFLICT (terminal_id, campaign_id) DO UPDATE SET \
       prefecture = excluded.prefecture, clinic_code = excluded.clinic_code, \
       state = excluded.state, cause = excluded.cause, \
       seen_in_distribution_at = excluded.seen_in_distribution_at, \
       updated_at = excluded.updated_at";

/// Writes the campaign states that changed.
pub(crate) async fn upsert_campaign_states(
    txn: &impl ConnectionTrait,
    rows: &[CampaignRow<'_>],
    now: DateTime<FixedOffset>,
) -> anyhow::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let [seen, has_seen] = optional_times(rows.iter().map(|r| r.seen_in_distribution_at));
    let values = vec![
        texts(rows.iter().map(|r| r.terminal_id.as_str())),
        texts(rows.iter().map(|r| r.campaign_id.as_str())),
        texts(rows.iter().map(|r| r.tenant)),
        texts(rows.iter().map(|r| r.prefecture.as_str())),
        texts(rows.iter().map(|r| r.clinic_code)),
        texts(rows.iter().map(|r| r.state)),
        texts(rows.iter().map(|r| r.cause)),
        seen,
        has_seen,
        now.into(),
    ];
    txn.execute_raw(statement(UPSERT_CAMPAIGN_STATES, values))
        .await
        .context("upserting campaign states")?;
    Ok(())
}
