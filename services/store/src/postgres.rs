//! PostgreSQL, for scale-out: the [`Tx`] adapter over a pooled transaction.
//!
//! Each step is one statement of fixed text, each column's values passed as one
//! array and turned back into rows with `unnest`. Why: the multi-row `VALUES` lists
//! these replace (400 rows × 7–9 parameters each, five statements per table for a
//! batch of 2,000) made the server parse and plan a statement of thousands of
//! parameters again and again, and the text differed with the batch's size;
//! PostgreSQL's processes spent about 100 µs of CPU per report on that
//! (docs/BENCHMARKS.md). With arrays sqlx prepares each statement once per
//! connection and the server plans it once; the rows travel in PostgreSQL's binary
//! array format. A column that may be NULL goes as two arrays, the values and
//! whether each is present, because an array element cannot be NULL in the values
//! sea-query hands to sqlx.
//!
//! Several writers may run at once here (two batches per consumer, several
//! `fleetd ingest` replicas, a campaign's assessment, 承継), so every transaction
//! that reads terminals to write them back locks them first ([`PgTx::lock_terminals`]).

use std::collections::{BTreeSet, HashMap, HashSet};

use anyhow::Context;
use chrono::{DateTime, Datelike, FixedOffset, Months, NaiveDate};
use fleet_protocol::findings::{ClinicHours, MaintenanceWindow, Thresholds};
use fleet_protocol::{Campaign, Cause, ClinicCode, JST, ReaderError, TenantSlug, TerminalState};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, Statement,
    TransactionTrait, Value,
};
use uuid::Uuid;

use crate::adapter::Tx;
use crate::findings::{FindingWrites, OpenRow};
use crate::findings_rows::{RowColumns, open_row, parse_hours, window_of};
use crate::flow::{self, Turn};
use crate::plan::{
    CampaignRow, CounterDeltas, IncomingReport, Loaded, Outcome, ReaderErrorRow, Stored,
    Successions, TerminalRow,
};

/// Runs `$body` (an expression over `$tx: &mut PgTx`) in one transaction on `$db`
/// and commits it.
macro_rules! in_transaction {
    ($db:expr, |$tx:ident| $body:expr) => {{
        let txn = sea_orm::TransactionTrait::begin($db)
            .await
            .context("beginning the transaction")?;
        let mut pg = $crate::postgres::PgTx::new(&txn);
        let $tx = &mut pg;
        let out = $body.await?;
        txn.commit().await.context("committing")?;
        anyhow::Ok(out)
    }};
}
pub(crate) use in_transaction;

/// A batch on PostgreSQL, in its turn ([`crate::Store::write_batch_in_turn`]).
pub(crate) async fn write_batch(
    db: &DatabaseConnection,
    batch: &[IncomingReport],
    campaigns: &[Campaign],
    now: DateTime<FixedOffset>,
    turn: Turn,
    rules: Option<&Thresholds>,
) -> anyhow::Result<Vec<Outcome>> {
    let txn = db
        .begin()
        .await
        .context("beginning the batch transaction")?;
    let mut tx = PgTx::new(&txn);
    let written = flow::write_batch(&mut tx, batch, campaigns, now, turn, rules).await?;
    txn.commit().await.context("committing the batch")?;
    Ok(written.outcomes)
}

/// A write transaction on PostgreSQL.
pub(crate) struct PgTx<'t> {
    txn: &'t DatabaseTransaction,
}

impl<'t> PgTx<'t> {
    pub(crate) fn new(txn: &'t DatabaseTransaction) -> Self {
        Self { txn }
    }

    async fn execute(&self, sql: &str, values: Vec<Value>, what: &str) -> anyhow::Result<u64> {
        let done = self
            .txn
            .execute_raw(statement(sql, values))
            .await
            .with_context(|| what.to_owned())?;
        Ok(done.rows_affected())
    }

    async fn query(
        &self,
        sql: &str,
        values: Vec<Value>,
        what: &str,
    ) -> anyhow::Result<Vec<sea_orm::QueryResult>> {
        self.txn
            .query_all_raw(statement(sql, values))
            .await
            .with_context(|| what.to_owned())
    }
}

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

/// An `int8[]` parameter.
fn ints(items: impl IntoIterator<Item = i64>) -> Value {
    items.into_iter().collect::<Vec<i64>>().into()
}

/// A `timestamptz[]` parameter.
fn times(items: impl IntoIterator<Item = DateTime<FixedOffset>>) -> Value {
    items.into_iter().collect::<Vec<_>>().into()
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
    // `plan::screen` refuses seq above i64::MAX before this point.
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// The advisory-lock key of a terminal: the first 64 bits of its UUID (random in a
/// v4 UUID, so two terminals share a key about never; if they did, they would only
/// wait for each other). A stored id that is not a UUID is hashed instead.
fn lock_key(terminal_id: &str) -> i64 {
    match Uuid::parse_str(terminal_id) {
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

// PostgreSQL evaluates a volatile output expression after the ORDER BY (9.6 and
// later), so the locks are taken in the array's ascending order.
const LOCK_TERMINALS: &str = "SELECT pg_advisory_xact_lock(k) \
     FROM unnest($1::int8[]) WITH ORDINALITY AS t(k, n) ORDER BY n";

const SUCCESSIONS: &str = "SELECT tenant, from_code, terminal_id, to_code FROM successions";

const LOAD_TERMINALS: &str =
    "SELECT terminal_id, tenant, state FROM terminals WHERE terminal_id = ANY($1::text[])";

// The history's key is (terminal_id, seq, observed_at): a month partition's key must
// hold the partition column. So the key alone would take the same seq with another
// observed_at; the plan looks such reports up first (this statement) and never
// appends them.
const STORED_REPORTS: &str = "SELECT r.terminal_id, r.seq FROM reports r \
     JOIN unnest($1::text[], $2::int8[]) AS k(id, seq) \
     ON r.terminal_id = k.id AND r.seq = k.seq";

const APPEND_HISTORY: &str = "INSERT INTO reports \
     (terminal_id, seq, tenant, clinic_code, observed_at, received_at, body) \
     SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], \
                          $5::timestamptz[], $6::timestamptz[], $7::text[]) \
     ON CONFLICT DO NOTHING RETURNING terminal_id, seq";

// No conflict to expect: the rows are of reports this transaction added to the
// history, so a report's errors are recorded once (migration
// `m20261204_000008_postgres_reader_errors_by_time`).
const APPEND_READER_ERRORS: &str = "INSERT INTO reader_errors \
     (terminal_id, seq, idx, tenant, code, message, at, count) \
     SELECT id, seq, idx, tenant, code, CASE WHEN has_message THEN message END, at, count \
     FROM unnest($1::text[], $2::int8[], $3::int4[], $4::text[], $5::text[], $6::text[], \
                 $7::bool[], $8::timestamptz[], $9::int8[]) \
          AS t(id, seq, idx, tenant, code, message, has_message, at, count)";

const UPSERT_TERMINALS: &str = "INSERT INTO terminals \
     (terminal_id, tenant, clinic_code, prefecture, last_seq, last_observed_at, \
      last_received_at, state) \
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], \
                 $6::timestamptz[], $7::timestamptz[], $8::text[]) \
     ON CONFLICT (terminal_id) DO UPDATE SET \
       clinic_code = excluded.clinic_code, prefecture = excluded.prefecture, \
       last_seq = excluded.last_seq, last_observed_at = excluded.last_observed_at, \
       last_received_at = excluded.last_received_at, state = excluded.state";

const ENSURE_CLINICS: &str = "INSERT INTO clinics \
     (tenant, clinic_code, prefecture, area, created_at) \
     SELECT tenant, code, prefecture, area, $5 \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) \
          AS t(tenant, code, prefecture, area) \
     ON CONFLICT (tenant, clinic_code) DO NOTHING";

const LOAD_CAMPAIGN_STATES: &str = "SELECT terminal_id, campaign_id, seen_in_distribution_at, \
     prefecture, clinic_code, state, cause \
     FROM campaign_states WHERE terminal_id = ANY($1::text[])";

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

const OPEN_FINDINGS: &str = "SELECT terminal_id, id, kind, campaign, status, since, body, incident_id \
     FROM findings WHERE terminal_id = ANY($1::text[]) AND status <> 'resolved'";

/// Nullable columns travel as a text array and a "present" array (see
/// [`optional_texts`]).
const UPSERT_FINDINGS: &str = "INSERT INTO findings \
     (id, tenant, terminal_id, clinic_code, prefecture, area, kind, campaign, severity, \
      status, since, body, window_id, incident_id, updated_at) \
     SELECT id, tenant, terminal_id, CASE WHEN has_clinic THEN clinic_code END, \
            CASE WHEN has_clinic THEN prefecture END, CASE WHEN has_clinic THEN area END, \
            kind, campaign, severity, status, since, body, \
            CASE WHEN has_window THEN window_id END, \
            CASE WHEN has_incident THEN incident_id END, $19 \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::text[], \
                 $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], \
                 $12::timestamptz[], $13::text[], $14::text[], $15::bool[], $16::text[], \
                 $17::bool[], $18::int4[]) \
          AS t(id, tenant, terminal_id, clinic_code, has_clinic, prefecture, area, kind, \
               campaign, severity, status, since, body, window_id, has_window, incident_id, \
               has_incident, ord) \
     ORDER BY ord \
     ON CONFLICT (id) DO UPDATE SET clinic_code = excluded.clinic_code, \
       prefecture = excluded.prefecture, area = excluded.area, \
       severity = excluded.severity, status = excluded.status, since = excluded.since, \
       body = excluded.body, window_id = excluded.window_id, \
       incident_id = excluded.incident_id, updated_at = excluded.updated_at";

const APPEND_FINDING_EVENTS: &str = "INSERT INTO finding_events (finding_id, at, event, actor) \
     SELECT id, $2, event, CASE WHEN has_actor THEN actor END \
     FROM unnest($1::text[], $3::text[], $4::text[], $5::bool[]) \
          AS t(id, event, actor, has_actor)";

const MOVE_COUNTERS: &str = "INSERT INTO rollout_counters \
     (tenant, prefecture, campaign_id, state, terminals) \
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[]) \
     ON CONFLICT (tenant, prefecture, campaign_id, state) DO UPDATE SET \
       terminals = rollout_counters.terminals + excluded.terminals";

impl Tx for PgTx<'_> {
    /// Why: two batches (or replicas) can hold reports of the same terminal at once.
    /// Each reads the terminal's state and campaign states, applies its reports and
    /// writes the result with the counters' deltas; under READ COMMITTED nothing
    /// stops both from reading the same "before", so the later commit would
    /// overwrite the earlier (a terminal going back to an older `seq`) and both
    /// would move the counters from the same old state (`tests/e2e/replicas.rs`
    /// showed both). Row locks do not help a terminal that does not exist yet. So a
    /// transaction-scoped advisory lock per terminal, all in ascending key order so
    /// that two writers can never deadlock, taken before anything is read.
    async fn lock_terminals(&mut self, terminals: &[String]) -> anyhow::Result<()> {
        let keys: BTreeSet<i64> = terminals.iter().map(|id| lock_key(id)).collect();
        if keys.is_empty() {
            return Ok(());
        }
        self.execute(
            LOCK_TERMINALS,
            vec![ints(keys)],
            "locking the batch's terminals",
        )
        .await?;
        Ok(())
    }

    async fn successions(&mut self) -> anyhow::Result<Successions> {
        let mut moves = HashMap::new();
        for row in self
            .query(SUCCESSIONS, vec![], "reading successions")
            .await?
        {
            let to: String = row.try_get("", "to_code")?;
            let key = (
                row.try_get("", "tenant")?,
                row.try_get("", "from_code")?,
                row.try_get("", "terminal_id")?,
            );
            moves.insert(key, ClinicCode::parse(&to)?);
        }
        Ok(Successions::from_moves(moves))
    }

    async fn load_terminals(&mut self, ids: &[String]) -> anyhow::Result<HashMap<String, Loaded>> {
        let rows = self
            .query(
                LOAD_TERMINALS,
                vec![texts(ids.iter().map(String::as_str))],
                "loading terminals",
            )
            .await?;
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

    async fn read_terminals(&mut self, ids: &[String]) -> anyhow::Result<HashMap<String, Loaded>> {
        self.load_terminals(ids).await
    }

    async fn stored_reports(
        &mut self,
        keys: &[(String, u64)],
    ) -> anyhow::Result<HashSet<(String, u64)>> {
        let values = vec![
            texts(keys.iter().map(|(id, _)| id.as_str())),
            ints(keys.iter().map(|(_, s)| seq(*s))),
        ];
        let mut stored = HashSet::new();
        for row in self
            .query(STORED_REPORTS, values, "looking up the history")
            .await?
        {
            let id: String = row.try_get("", "terminal_id")?;
            let seq: i64 = row.try_get("", "seq")?;
            stored.insert((id, u64::try_from(seq).unwrap_or_default()));
        }
        Ok(stored)
    }

    async fn append_history(
        &mut self,
        batch: &[IncomingReport],
        rows: &[usize],
    ) -> anyhow::Result<HashSet<(String, u64)>> {
        let rows = rows.iter().map(|&i| &batch[i]);
        let ids: Vec<String> = rows
            .clone()
            .map(|r| r.report.terminal_id.to_string())
            .collect();
        let values = vec![
            ids.into(),
            ints(rows.clone().map(|r| seq(r.report.seq))),
            texts(rows.clone().map(|r| r.tenant.as_str())),
            texts(rows.clone().map(|r| r.report.clinic_code.as_str())),
            times(rows.clone().map(|r| r.report.observed_at)),
            times(rows.clone().map(|r| r.received_at)),
            texts(rows.map(|r| r.body.as_str())),
        ];
        let mut inserted = HashSet::new();
        for row in self
            .query(APPEND_HISTORY, values, "appending to the history")
            .await?
        {
            let id: String = row.try_get("", "terminal_id")?;
            let seq: i64 = row.try_get("", "seq")?;
            inserted.insert((id, u64::try_from(seq).unwrap_or_default()));
        }
        Ok(inserted)
    }

    async fn append_reader_errors(&mut self, rows: &[ReaderErrorRow<'_>]) -> anyhow::Result<()> {
        let [messages, has_message] =
            optional_texts(rows.iter().map(|r| r.error.message.as_deref()));
        let values = vec![
            rows.iter()
                .map(|r| r.incoming.report.terminal_id.to_string())
                .collect::<Vec<_>>()
                .into(),
            ints(rows.iter().map(|r| seq(r.incoming.report.seq))),
            rows.iter()
                .map(|r| i32::try_from(r.idx).unwrap_or(i32::MAX))
                .collect::<Vec<_>>()
                .into(),
            texts(rows.iter().map(|r| r.incoming.tenant.as_str())),
            texts(rows.iter().map(|r| r.error.code.as_str())),
            messages,
            has_message,
            times(rows.iter().map(|r| r.error.at)),
            ints(rows.iter().map(|r| i64::from(r.error.count))),
        ];
        self.execute(APPEND_READER_ERRORS, values, "recording reader errors")
            .await?;
        Ok(())
    }

    async fn store_terminals(&mut self, rows: &[TerminalRow<'_>]) -> anyhow::Result<()> {
        let states = rows
            .iter()
            .map(|r| serde_json::to_string(r.state))
            .collect::<Result<Vec<_>, _>>()?;
        let values = vec![
            texts(rows.iter().map(|r| r.id)),
            texts(rows.iter().map(|r| r.loaded.tenant.as_str())),
            texts(rows.iter().map(|r| r.state.clinic_code.as_str())),
            rows.iter()
                .map(|r| r.state.clinic_code.prefecture().code())
                .collect::<Vec<_>>()
                .into(),
            ints(rows.iter().map(|r| seq(r.state.last_seq))),
            times(rows.iter().map(|r| r.state.last_observed_at)),
            times(rows.iter().map(|r| r.received_at)),
            states.into(),
        ];
        self.execute(UPSERT_TERMINALS, values, "upserting terminals")
            .await?;
        Ok(())
    }

    async fn ensure_clinics(
        &mut self,
        clinics: &[(&str, ClinicCode)],
        now: DateTime<FixedOffset>,
    ) -> anyhow::Result<()> {
        let values = vec![
            texts(clinics.iter().map(|(tenant, _)| *tenant)),
            texts(clinics.iter().map(|(_, code)| code.as_str())),
            clinics
                .iter()
                .map(|(_, code)| code.prefecture().code())
                .collect::<Vec<_>>()
                .into(),
            texts(clinics.iter().map(|(_, code)| code.area().as_str())),
            now.into(),
        ];
        self.execute(ENSURE_CLINICS, values, "recording clinics")
            .await?;
        Ok(())
    }

    async fn load_campaign_states(
        &mut self,
        terminals: &[String],
    ) -> anyhow::Result<HashMap<(String, String), Stored>> {
        let rows = self
            .query(
                LOAD_CAMPAIGN_STATES,
                vec![texts(terminals.iter().map(String::as_str))],
                "loading campaign states",
            )
            .await?;
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

    async fn store_campaign_states(
        &mut self,
        rows: &[CampaignRow<'_>],
        now: DateTime<FixedOffset>,
    ) -> anyhow::Result<()> {
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
        self.execute(UPSERT_CAMPAIGN_STATES, values, "upserting campaign states")
            .await?;
        Ok(())
    }

    async fn move_counters(&mut self, deltas: &CounterDeltas) -> anyhow::Result<()> {
        let changes = deltas.changes();
        let values = vec![
            texts(changes.iter().map(|((t, _, _, _), _)| t.as_str())),
            texts(changes.iter().map(|((_, p, _, _), _)| p.as_str())),
            texts(changes.iter().map(|((_, _, c, _), _)| c.as_str())),
            texts(changes.iter().map(|((_, _, _, s), _)| s.as_str())),
            ints(changes.iter().map(|(_, n)| *n)),
        ];
        self.execute(MOVE_COUNTERS, values, "updating rollout counters")
            .await?;
        Ok(())
    }

    async fn insert_campaign(
        &mut self,
        campaign: &Campaign,
        now: DateTime<FixedOffset>,
    ) -> anyhow::Result<()> {
        let values = vec![
            campaign.id.clone().into(),
            serde_json::to_string(campaign)?.into(),
            now.into(),
        ];
        self.execute(
            "INSERT INTO campaigns (id, definition, created_at) VALUES ($1, $2, $3)",
            values,
            &format!(
                "campaign {:?} already exists or cannot be stored",
                campaign.id
            ),
        )
        .await?;
        Ok(())
    }

    async fn terminal_page(
        &mut self,
        after: &str,
        limit: u64,
        campaign: &str,
        only: Option<Cause>,
    ) -> anyhow::Result<Vec<String>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = match only {
            None => {
                self.query(
                    "SELECT terminal_id FROM terminals WHERE terminal_id > $1 \
                     ORDER BY terminal_id LIMIT $2",
                    vec![after.into(), limit.into()],
                    "paging through terminals",
                )
                .await?
            }
            Some(cause) => {
                self.query(
                    "SELECT t.terminal_id FROM terminals t JOIN campaign_states s \
                     ON s.terminal_id = t.terminal_id \
                     WHERE t.terminal_id > $1 AND s.campaign_id = $3 AND s.cause = $4 \
                     ORDER BY t.terminal_id LIMIT $2",
                    vec![
                        after.into(),
                        limit.into(),
                        campaign.into(),
                        cause.as_str().into(),
                    ],
                    "paging through terminals",
                )
                .await?
            }
        };
        rows.iter()
            .map(|row| Ok(row.try_get::<String>("", "terminal_id")?))
            .collect()
    }

    async fn record_succession(
        &mut self,
        tenant: &TenantSlug,
        from: ClinicCode,
        to: ClinicCode,
        terminal: Option<Uuid>,
        now: DateTime<FixedOffset>,
    ) -> anyhow::Result<()> {
        let values = vec![
            tenant.as_str().into(),
            from.as_str().into(),
            terminal.map(|t| t.to_string()).unwrap_or_default().into(),
            to.as_str().into(),
            now.into(),
        ];
        self.execute(
            "INSERT INTO successions (tenant, from_code, terminal_id, to_code, created_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant, from_code, terminal_id) DO UPDATE SET \
             to_code = excluded.to_code, created_at = excluded.created_at",
            values,
            "recording the succession",
        )
        .await?;
        Ok(())
    }

    async fn terminals_at(
        &mut self,
        tenant: &TenantSlug,
        code: ClinicCode,
        terminal: Option<Uuid>,
    ) -> anyhow::Result<Vec<String>> {
        let values = vec![
            tenant.as_str().into(),
            code.as_str().into(),
            terminal.map(|t| t.to_string()).into(),
        ];
        let rows = self
            .query(
                "SELECT terminal_id FROM terminals WHERE tenant = $1 AND clinic_code = $2 \
                 AND ($3::text IS NULL OR terminal_id = $3) ORDER BY terminal_id",
                values,
                "finding the terminals to move",
            )
            .await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<String>("", "terminal_id")?))
            .collect()
    }

    /// Whole months go by dropping their partitions ([`drop_partitions_before`]);
    /// this deletes what the default partition and the reader errors hold.
    async fn delete_history_before(
        &mut self,
        cutoff: DateTime<FixedOffset>,
        limit: u64,
    ) -> anyhow::Result<(u64, u64)> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let reports = self
            .execute(
                "DELETE FROM reports_default WHERE ctid IN \
                 (SELECT ctid FROM reports_default WHERE observed_at < $1 LIMIT $2)",
                vec![cutoff.into(), limit.into()],
                "deleting old history",
            )
            .await?;
        let errors = self
            .execute(
                "DELETE FROM reader_errors WHERE ctid IN \
                     (SELECT ctid FROM reader_errors WHERE at < $1 LIMIT $2)",
                vec![cutoff.into(), limit.into()],
                "deleting old reader errors",
            )
            .await?;
        Ok((reports, errors))
    }

    async fn open_findings(
        &mut self,
        terminals: &[String],
    ) -> anyhow::Result<HashMap<String, Vec<OpenRow>>> {
        let rows = self
            .query(
                OPEN_FINDINGS,
                vec![texts(terminals.iter().map(String::as_str))],
                "loading findings",
            )
            .await?;
        let mut map: HashMap<String, Vec<OpenRow>> = HashMap::new();
        for row in rows {
            let terminal: String = row.try_get("", "terminal_id")?;
            let open = open_row(
                &row.try_get::<String>("", "id")?,
                &row.try_get::<String>("", "kind")?,
                &row.try_get::<String>("", "campaign")?,
                &row.try_get::<String>("", "status")?,
                row.try_get("", "since")?,
                &row.try_get::<String>("", "body")?,
                row.try_get("", "incident_id")?,
            )?;
            map.entry(terminal).or_default().push(open);
        }
        Ok(map)
    }

    async fn write_findings(
        &mut self,
        writes: &FindingWrites,
        now: DateTime<FixedOffset>,
    ) -> anyhow::Result<()> {
        if !writes.rows.is_empty() {
            let columns: Vec<RowColumns> = writes
                .rows
                .iter()
                .map(RowColumns::of)
                .collect::<anyhow::Result<_>>()?;
            let rows = &writes.rows;
            let [clinic, has_clinic] =
                optional_texts(columns.iter().map(|c| c.clinic_code.as_deref()));
            let [window, has_window] =
                optional_texts(columns.iter().map(|c| c.window_id.as_deref()));
            let [incident, has_incident] =
                optional_texts(columns.iter().map(|c| c.incident_id.as_deref()));
            let ids: Vec<String> = rows.iter().map(|r| r.id.to_string()).collect();
            let ord: Vec<i32> = (0..rows.len() as i32).collect();
            let values = vec![
                texts(ids.iter().map(String::as_str)),
                texts(rows.iter().map(|r| r.tenant.as_str())),
                texts(rows.iter().map(|r| r.terminal_id.as_str())),
                clinic,
                has_clinic,
                texts(
                    columns
                        .iter()
                        .map(|c| c.prefecture.as_deref().unwrap_or("")),
                ),
                texts(columns.iter().map(|c| c.area.as_deref().unwrap_or(""))),
                texts(rows.iter().map(|r| r.kind.as_str())),
                texts(rows.iter().map(|r| r.campaign.as_deref().unwrap_or(""))),
                texts(columns.iter().map(|c| c.severity.as_str())),
                texts(rows.iter().map(|r| r.status.as_str())),
                times(rows.iter().map(|r| r.since)),
                texts(columns.iter().map(|c| c.body.as_str())),
                window,
                has_window,
                incident,
                has_incident,
                ord.into(),
                now.into(),
            ];
            self.execute(UPSERT_FINDINGS, values, "writing findings")
                .await?;
        }
        if !writes.resolved.is_empty() {
            let ids: Vec<String> = writes.resolved.iter().map(Uuid::to_string).collect();
            self.execute(
                "UPDATE findings SET status = 'resolved', resolved_at = $2, updated_at = $2 \
                 WHERE id = ANY($1::text[])",
                vec![texts(ids.iter().map(String::as_str)), now.into()],
                "resolving findings",
            )
            .await?;
        }
        if !writes.dropped.is_empty() {
            let ids: Vec<String> = writes.dropped.iter().map(Uuid::to_string).collect();
            self.execute(
                "DELETE FROM findings WHERE id = ANY($1::text[]) AND status = 'pending'",
                vec![texts(ids.iter().map(String::as_str))],
                "dropping pending conditions",
            )
            .await?;
        }
        if !writes.events.is_empty() {
            let ids: Vec<String> = writes
                .events
                .iter()
                .map(|e| e.finding.to_string())
                .collect();
            let [actor, has_actor] =
                optional_texts(writes.events.iter().map(|e| e.actor.as_deref()));
            let values = vec![
                texts(ids.iter().map(String::as_str)),
                now.into(),
                texts(writes.events.iter().map(|e| e.event)),
                actor,
                has_actor,
            ];
            self.execute(APPEND_FINDING_EVENTS, values, "recording finding events")
                .await?;
        }
        Ok(())
    }

    async fn clinic_hours(
        &mut self,
        clinics: &[(String, ClinicCode)],
    ) -> anyhow::Result<HashMap<(String, ClinicCode), ClinicHours>> {
        let rows = self
            .query(
                "SELECT h.tenant, h.clinic_code, h.hours FROM clinic_hours h \
                 JOIN unnest($1::text[], $2::text[]) AS t(tenant, clinic_code) \
                 ON h.tenant = t.tenant AND h.clinic_code = t.clinic_code",
                vec![
                    texts(clinics.iter().map(|(t, _)| t.as_str())),
                    texts(clinics.iter().map(|(_, c)| c.as_str())),
                ],
                "loading clinic hours",
            )
            .await?;
        let mut map = HashMap::new();
        for row in rows {
            let tenant: String = row.try_get("", "tenant")?;
            let code: String = row.try_get("", "clinic_code")?;
            let hours: String = row.try_get("", "hours")?;
            map.insert((tenant, ClinicCode::parse(&code)?), parse_hours(&hours)?);
        }
        Ok(map)
    }

    async fn windows(&mut self) -> anyhow::Result<Vec<MaintenanceWindow>> {
        let rows = self
            .query(
                "SELECT id, scope, area, kind, starts_at, ends_at, title FROM maintenance_windows",
                vec![],
                "loading maintenance windows",
            )
            .await?;
        rows.iter()
            .map(|row| {
                window_of(
                    row.try_get("", "id")?,
                    &row.try_get::<String>("", "scope")?,
                    &row.try_get::<String>("", "area")?,
                    &row.try_get::<String>("", "kind")?,
                    row.try_get("", "starts_at")?,
                    row.try_get("", "ends_at")?,
                    row.try_get("", "title")?,
                )
            })
            .collect()
    }

    async fn recent_reader_errors(
        &mut self,
        terminals: &[String],
        from: DateTime<FixedOffset>,
    ) -> anyhow::Result<HashMap<String, Vec<ReaderError>>> {
        let rows = self
            .query(
                "SELECT terminal_id, code, message, at, count FROM reader_errors \
                 WHERE terminal_id = ANY($1::text[]) AND at >= $2",
                vec![texts(terminals.iter().map(String::as_str)), from.into()],
                "loading reader errors",
            )
            .await?;
        let mut map: HashMap<String, Vec<ReaderError>> = HashMap::new();
        for row in rows {
            let count: i64 = row.try_get("", "count")?;
            map.entry(row.try_get("", "terminal_id")?)
                .or_default()
                .push(ReaderError {
                    code: row.try_get("", "code")?,
                    message: row.try_get("", "message")?,
                    at: row.try_get("", "at")?,
                    count: u32::try_from(count).unwrap_or(0),
                });
        }
        Ok(map)
    }

    async fn terminal_ids_after(&mut self, after: &str, limit: u64) -> anyhow::Result<Vec<String>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .query(
                "SELECT terminal_id FROM terminals WHERE terminal_id > $1 \
                 ORDER BY terminal_id LIMIT $2",
                vec![after.into(), limit.into()],
                "paging through terminals",
            )
            .await?;
        rows.iter()
            .map(|row| Ok(row.try_get("", "terminal_id")?))
            .collect()
    }

    async fn count_reporting(
        &mut self,
        counts: &std::collections::BTreeMap<(String, String, DateTime<FixedOffset>), i64>,
    ) -> anyhow::Result<()> {
        let values = vec![
            texts(counts.keys().map(|(t, _, _)| t.as_str())),
            texts(counts.keys().map(|(_, p, _)| p.as_str())),
            times(counts.keys().map(|(_, _, h)| *h)),
            ints(counts.values().copied()),
        ];
        self.execute(
            "INSERT INTO reporting_hours (tenant, prefecture, hour, terminals) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::int8[]) \
             ON CONFLICT (tenant, prefecture, hour) \
             DO UPDATE SET terminals = reporting_hours.terminals + excluded.terminals",
            values,
            "counting reporting terminals",
        )
        .await?;
        Ok(())
    }

    async fn move_terminal(&mut self, id: &str, state: &TerminalState) -> anyhow::Result<()> {
        let code = state.clinic_code;
        let prefecture = code.prefecture().code();
        self.execute(
            "UPDATE terminals SET clinic_code = $2, prefecture = $3, state = $4 \
             WHERE terminal_id = $1",
            vec![
                id.into(),
                code.as_str().into(),
                prefecture.clone().into(),
                serde_json::to_string(state)?.into(),
            ],
            "moving a terminal",
        )
        .await?;
        self.execute(
            "UPDATE campaign_states SET clinic_code = $2, prefecture = $3 WHERE terminal_id = $1",
            vec![id.into(), code.as_str().into(), prefecture.into()],
            "moving campaign states",
        )
        .await?;
        Ok(())
    }
}

/// The history's month partitions (JST months), named `reports_yYYYYmMM`.
fn partition_name(month: NaiveDate) -> String {
    format!("reports_y{:04}m{:02}", month.year(), month.month())
}

/// The month a partition name stands for, if it is one of ours.
fn parse_partition(name: &str) -> Option<NaiveDate> {
    let rest = name.strip_prefix("reports_y")?;
    let (y, m) = rest.split_once('m')?;
    NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, 1)
}

/// The first day of `t`'s month in JST.
pub(crate) fn month_of(t: DateTime<FixedOffset>) -> NaiveDate {
    let local = t.with_timezone(&JST).date_naive();
    NaiveDate::from_ymd_opt(local.year(), local.month(), 1).unwrap_or(local)
}

/// Creates one month's partition if missing; `true` when it was created. Rows the
/// default partition took for that month move into it, in the same transaction.
pub(crate) async fn create_partition(
    db: &DatabaseConnection,
    month: NaiveDate,
) -> anyhow::Result<bool> {
    let name = partition_name(month);
    let exists = db
        .query_one_raw(statement(
            "SELECT to_regclass($1) IS NOT NULL AS present",
            vec![name.clone().into()],
        ))
        .await?
        .map(|row| row.try_get::<bool>("", "present"))
        .transpose()?
        .unwrap_or(false);
    if exists {
        return Ok(false);
    }
    let next = month.checked_add_months(Months::new(1)).unwrap_or(month);
    let (from, to) = (
        format!("{month} 00:00:00+09"),
        format!("{next} 00:00:00+09"),
    );
    let txn = db.begin().await?;
    txn.execute_unprepared(&format!(
        "CREATE TEMP TABLE moving ON COMMIT DROP AS SELECT * FROM reports_default \
         WHERE observed_at >= '{from}' AND observed_at < '{to}'"
    ))
    .await?;
    txn.execute_unprepared(&format!(
        "DELETE FROM reports_default WHERE observed_at >= '{from}' AND observed_at < '{to}'"
    ))
    .await?;
    txn.execute_unprepared(&format!(
        "CREATE TABLE IF NOT EXISTS {name} PARTITION OF reports \
         FOR VALUES FROM ('{from}') TO ('{to}')"
    ))
    .await?;
    txn.execute_unprepared("INSERT INTO reports SELECT * FROM moving")
        .await?;
    txn.commit()
        .await
        .with_context(|| format!("creating partition {name}"))?;
    Ok(true)
}

/// Drops every month partition that ends before `cutoff`'s month begins.
pub(crate) async fn drop_partitions_before(
    db: &DatabaseConnection,
    cutoff: DateTime<FixedOffset>,
) -> anyhow::Result<Vec<String>> {
    let rows = db
        .query_all_raw(statement(
            "SELECT c.relname AS name FROM pg_inherits i \
             JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent \
             WHERE p.relname = 'reports'",
            vec![],
        ))
        .await
        .context("listing history partitions")?;
    let cutoff_month = month_of(cutoff);
    let mut dropped = Vec::new();
    for row in rows {
        let name: String = row.try_get("", "name")?;
        if parse_partition(&name).is_some_and(|m| m < cutoff_month) {
            // `name` is one of ours (it parsed as reports_yYYYYmMM).
            db.execute_unprepared(&format!("DROP TABLE IF EXISTS {name}"))
                .await
                .with_context(|| format!("dropping {name}"))?;
            dropped.push(name);
        }
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_round_trip() {
        let m = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        assert_eq!(partition_name(m), "reports_y2026m01");
        assert_eq!(parse_partition("reports_y2026m01"), Some(m));
        assert_eq!(parse_partition("reports_default"), None);
    }

    #[test]
    fn months_are_counted_in_jst() {
        // 2026-01-31 20:00 UTC is already February in Japan.
        let t = DateTime::parse_from_rfc3339("2026-01-31T20:00:00Z").unwrap();
        assert_eq!(month_of(t), NaiveDate::from_ymd_opt(2026, 2, 1).unwrap());
    }

    #[test]
    fn lock_keys_are_stable_and_tell_terminals_apart() {
        let a = "0f8c2b1e-6c5d-4a57-9a3e-2b7f0c1d9e11";
        assert_eq!(lock_key(a), 0x0f8c_2b1e_6c5d_4a57);
        assert_eq!(
            lock_key(&a.to_uppercase()),
            lock_key(a),
            "the same UUID however written"
        );
        assert_ne!(
            lock_key(a),
            lock_key("5a1d7c3e-2f4b-4c8a-9e6d-1b3f5a7c9e20")
        );
        assert_eq!(lock_key("not-a-uuid"), lock_key("not-a-uuid"));
        assert_ne!(lock_key("not-a-uuid"), lock_key("not-a-uuid2"));
    }
}
