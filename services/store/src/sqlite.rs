//! SQLite, the embedded default: the [`Tx`] adapter on one native connection, with
//! cached single-row prepared statements, on a blocking thread.
//!
//! Why a native connection rather than the ORM's pool: profiling the ingest on
//! SQLite (docs/BENCHMARKS.md) showed more than half of the writer's time outside
//! SQLite — building multi-row SQL text, converting every value twice on its way
//! through the ORM and the driver, and handing each statement to the driver's worker
//! thread and back. SQLite runs in process, so a statement prepared once and stepped
//! per row costs a few microseconds with none of that. The pool still serves the
//! reads of the web.
//!
//! Every write — ingest batches, a campaign's assessment, 承継 — runs here, one
//! `BEGIN IMMEDIATE` transaction at a time, through [`crate::flow`]; its steps never
//! wait, so [`crate::flow::run_ready`] runs them without a runtime.
//!
//! The writer keeps the current state of the terminals it wrote, so a batch does not
//! read and parse every terminal's state back from the database. The cache is valid
//! only while no other connection has committed: `PRAGMA data_version` (read under
//! the batch's write lock) tells, and any change by another connection or process
//! empties it; a write other than a batch empties it too. It is filled only after a
//! commit, and emptied when a write fails, so it never holds state the database
//! does not.
//!
//! Values are encoded exactly as the ORM's driver encodes them (timestamps as RFC 3339
//! text, JST where the other path converts to JST), so the pool reads these rows and
//! text comparisons on times keep their order.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, FixedOffset};
use fleet_protocol::findings::{ClinicHours, MaintenanceWindow, Thresholds};
use fleet_protocol::{Campaign, Cause, ClinicCode, JST, ReaderError, TenantSlug, TerminalState};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use uuid::Uuid;

use crate::adapter::Tx;
use crate::findings::{FindingWrites, OpenRow};
use crate::findings_rows::{RowColumns, open_row, parse_hours, window_of};
use crate::flow::{self, Turn, run_ready};
use crate::plan::{
    CampaignRow, CounterDeltas, IncomingReport, Loaded, Outcome, ReaderErrorRow, Stored,
    Successions, TerminalRow,
};

/// A cached terminal, as committed.
#[derive(Debug)]
struct Cached {
    tenant: TenantSlug,
    state: TerminalState,
    /// See the migration `m20261202_000005_sqlite_history_key`.
    history_key: i64,
    /// Every campaign-state row the terminal has, when the writer knows them all
    /// (it read or wrote them): reading them back was a query per terminal and
    /// report (docs/BENCHMARKS.md).
    campaigns: Option<CampaignStates>,
}

/// A terminal's campaign states: campaign id → state.
type CampaignStates = Vec<(String, Stored)>;

/// One native connection, used by one write at a time.
#[derive(Debug)]
pub(crate) struct SqliteWriter {
    inner: Mutex<Inner>,
}

/// Terminal states kept in memory unless configured otherwise. A parsed state takes
/// 3–4 KiB (measured: 1 GiB peak with 300,000 cached), so this is 150–200 MiB; the
/// cache matters most when the same terminals report again soon (a backlog drain,
/// a busy area), and a fleet larger than the cache still works, reading the states
/// the cache lacks.
pub const DEFAULT_STATE_CACHE: usize = 50_000;

#[derive(Debug)]
struct Inner {
    conn: Connection,
    /// Terminal id → the terminal as committed.
    cache: HashMap<String, Cached>,
    /// `PRAGMA data_version` when the cache was last known valid.
    data_version: Option<i64>,
    /// Most states in `cache`; 0 keeps none.
    capacity: usize,
}

/// The connection settings of every SQLite connection of the store, the pool's
/// included ([`crate::Store::connect`] applies the same list): WAL, and
/// `synchronous=FULL` because a batch is acked only after its commit survives a
/// power cut. From the ingest profile (docs/BENCHMARKS.md): a 64 MiB page cache
/// instead of 2 MiB stops pages spilling as the fleet grows; statement journals stay
/// in memory; checkpoints run every 256 MiB of WAL rather than inside every few
/// commits (a page rewritten by many batches is copied back once).
pub(crate) const PRAGMAS: [(&str, &str); 6] = [
    ("journal_mode", "WAL"),
    ("synchronous", "FULL"),
    ("foreign_keys", "ON"),
    ("cache_size", "-65536"),
    ("temp_store", "MEMORY"),
    ("wal_autocheckpoint", "65536"),
];

/// How long a connection waits for another's write lock.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A timestamp as the ORM's SQLite driver writes it (RFC 3339, `+00:00` for UTC).
fn time_text(t: DateTime<FixedOffset>) -> String {
    fleet_protocol::rfc3339::format(&t, false)
}

fn parse_time(text: &str) -> anyhow::Result<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(text).with_context(|| format!("stored time {text:?}"))
}

impl SqliteWriter {
    /// Opens the writer's connection with the store's settings ([`PRAGMAS`]).
    pub(crate) fn open(path: &str) -> anyhow::Result<Self> {
        let conn = Connection::open(path)
            .with_context(|| format!("opening SQLite database {path} for writing"))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        for (name, value) in PRAGMAS {
            conn.pragma_update(None, name, value)
                .with_context(|| format!("setting PRAGMA {name} on the SQLite writer"))?;
        }
        conn.set_prepared_statement_cache_capacity(32);
        Ok(Self {
            inner: Mutex::new(Inner {
                conn,
                cache: HashMap::new(),
                data_version: None,
                capacity: DEFAULT_STATE_CACHE,
            }),
        })
    }

    /// Most terminal states the writer keeps in memory; 0 keeps none.
    pub(crate) fn set_state_cache(&self, capacity: usize) {
        let mut inner = self.lock();
        inner.capacity = capacity;
        if inner.cache.len() > capacity {
            inner.cache.clear();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic inside a write dropped its transaction (rolled back) while
        // unwinding, and the write's failure emptied the cache, so the connection
        // and the cache are fine to use again.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// [`crate::Store::write_batch`] on SQLite: blocking, one transaction. The
    /// committed states go into the cache.
    pub(crate) fn write_batch(
        &self,
        batch: &[IncomingReport],
        campaigns: &[Campaign],
        now: DateTime<FixedOffset>,
        rules: Option<&Thresholds>,
    ) -> anyhow::Result<Vec<Outcome>> {
        let mut inner = self.lock();
        let result = inner.transaction(|tx| {
            run_ready(flow::write_batch(
                tx,
                batch,
                campaigns,
                now,
                Turn::default(),
                rules,
            ))?
        });
        match result {
            Ok((written, keys, known)) => {
                let capacity = inner.capacity;
                keep_states(&mut inner.cache, capacity, written.terminals, &keys, known);
                Ok(written.outcomes)
            }
            Err(err) => {
                inner.forget();
                Err(err)
            }
        }
    }

    /// Any other write (a campaign's assessment, 承継, retention), blocking, in one
    /// transaction. The cache is emptied afterwards: such writes are rare and may
    /// touch terminals in ways the cache does not follow.
    pub(crate) fn run<R>(
        &self,
        job: impl FnOnce(&mut SqliteTx<'_>) -> anyhow::Result<R>,
    ) -> anyhow::Result<R> {
        let mut inner = self.lock();
        let result = inner.transaction(job).map(|(out, _, _)| out);
        inner.forget();
        result
    }

    /// A write that touches no terminal state and no campaign state (findings,
    /// windows, hours), blocking, in one transaction. The cache stays: what it holds
    /// is still what is committed. Terminals the job loads must be read with
    /// [`Tx::read_terminals`], which leaves the cache alone.
    pub(crate) fn run_beside_cache<R>(
        &self,
        job: impl FnOnce(&mut SqliteTx<'_>) -> anyhow::Result<R>,
    ) -> anyhow::Result<R> {
        let mut inner = self.lock();
        match inner.transaction(job) {
            Ok((out, _, known)) => {
                // Campaign states the job read are committed ones too.
                for (id, states) in known {
                    if let Some(cached) = inner.cache.get_mut(&id) {
                        cached.campaigns.get_or_insert(states);
                    }
                }
                Ok(out)
            }
            Err(err) => {
                inner.forget();
                Err(err)
            }
        }
    }
}

impl Inner {
    /// One `BEGIN IMMEDIATE` transaction: it takes the write lock up front, so a
    /// concurrent writer (another process) waits on the busy timeout instead of
    /// failing a half-read batch. Returns the job's result with the history keys and
    /// campaign states the transaction learnt, for the cache.
    #[allow(clippy::type_complexity)]
    fn transaction<R>(
        &mut self,
        job: impl FnOnce(&mut SqliteTx<'_>) -> anyhow::Result<R>,
    ) -> anyhow::Result<(R, HashMap<String, i64>, HashMap<String, CampaignStates>)> {
        let Inner {
            conn,
            cache,
            data_version,
            ..
        } = self;
        let txn = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context("beginning the transaction")?;
        // The cache is valid only while no other connection has committed.
        let version: i64 = txn.query_row("PRAGMA data_version", [], |row| row.get(0))?;
        if *data_version != Some(version) {
            cache.clear();
            *data_version = Some(version);
        }
        let mut tx = SqliteTx {
            txn: &txn,
            cache,
            keys: HashMap::new(),
            known: HashMap::new(),
        };
        let out = job(&mut tx)?;
        let SqliteTx { keys, known, .. } = tx;
        txn.commit().context("committing")?;
        Ok((out, keys, known))
    }

    /// Empties the cache, after a failed write or one it does not follow.
    fn forget(&mut self) {
        self.cache.clear();
        self.data_version = None;
    }
}

/// Puts the batch's committed states into the cache while it has room. A full cache
/// keeps what it holds: making room by dropping entries cost more than the reads
/// it saved once the fleet outgrew the cache (fleet-bench writer, 150,000 terminals
/// and a 50,000 cache: 48-49 us per report with eviction, 38 us with no cache at
/// all). The batch's own cached terminals were taken out when loaded, so there is
/// room for them again.
fn keep_states(
    cache: &mut HashMap<String, Cached>,
    capacity: usize,
    terminals: HashMap<String, Loaded>,
    keys: &HashMap<String, i64>,
    mut campaigns: HashMap<String, CampaignStates>,
) {
    for (id, loaded) in terminals {
        if cache.len() >= capacity {
            break;
        }
        if let (Some(state), Some(&history_key)) = (loaded.state, keys.get(&id)) {
            let campaigns = campaigns.remove(&id);
            let tenant = loaded.tenant;
            cache.insert(
                id,
                Cached {
                    tenant,
                    state,
                    history_key,
                    campaigns,
                },
            );
        }
    }
}

/// A write transaction on the writer's connection.
pub(crate) struct SqliteTx<'t> {
    txn: &'t Transaction<'t>,
    cache: &'t mut HashMap<String, Cached>,
    /// The history keys of the terminals loaded (or new) in this transaction.
    keys: HashMap<String, i64>,
    /// The campaign states of the terminals whose every campaign-state row this
    /// transaction knows (from the cache, read, or written), as they will be once
    /// committed.
    known: HashMap<String, CampaignStates>,
}

fn seq_value(seq: u64) -> i64 {
    // `plan::screen` refuses seq above i64::MAX before this point.
    i64::try_from(seq).unwrap_or(i64::MAX)
}

impl SqliteTx<'_> {
    /// Gives every terminal among `ids` that has none a history key: the next free
    /// number. A stored terminal without one (written by something other than this
    /// writer) keeps its new key at once; a new terminal gets it with its first row.
    fn assign_history_keys(
        &mut self,
        ids: &[String],
        stored: &HashMap<String, Loaded>,
    ) -> anyhow::Result<()> {
        if ids.iter().all(|id| self.keys.contains_key(id)) {
            return Ok(());
        }
        let mut next: i64 = self
            .txn
            .query_row(
                "SELECT coalesce(max(history_key), 0) + 1 FROM terminals",
                [],
                |row| row.get(0),
            )
            .context("finding the next history key")?;
        // A key handed to a new terminal earlier in this transaction is not in the
        // table yet.
        if let Some(max) = self.keys.values().max() {
            next = next.max(max + 1);
        }
        let mut set = self
            .txn
            .prepare_cached("UPDATE terminals SET history_key = ?1 WHERE terminal_id = ?2")?;
        for id in ids {
            if self.keys.contains_key(id) {
                continue;
            }
            if stored.contains_key(id) {
                set.execute(params![next, id])
                    .context("giving a terminal its history key")?;
            }
            self.keys.insert(id.clone(), next);
            next += 1;
        }
        Ok(())
    }
}

impl Tx for SqliteTx<'_> {
    /// One writer at a time is SQLite's rule (`BEGIN IMMEDIATE`): nothing to lock.
    async fn lock_terminals(&mut self, _terminals: &[String]) -> anyhow::Result<()> {
        Ok(())
    }

    async fn successions(&mut self) -> anyhow::Result<Successions> {
        let mut select = self
            .txn
            .prepare_cached("SELECT tenant, from_code, terminal_id, to_code FROM successions")?;
        let mut moves = HashMap::new();
        let mut rows = select.query([])?;
        while let Some(row) = rows.next()? {
            let to: String = row.get(3)?;
            moves.insert(
                (row.get(0)?, row.get(1)?, row.get(2)?),
                ClinicCode::parse(&to)?,
            );
        }
        Ok(Successions::from_moves(moves))
    }

    async fn read_terminals(&mut self, ids: &[String]) -> anyhow::Result<HashMap<String, Loaded>> {
        // The cache holds committed states only, so the table says the same.
        let mut select = self
            .txn
            .prepare_cached("SELECT tenant, state FROM terminals WHERE terminal_id = ?1")?;
        let mut map = HashMap::with_capacity(ids.len());
        for id in ids {
            let found: Option<(String, String)> = select
                .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
                .context("reading terminals")?;
            if let Some((tenant, state)) = found {
                map.insert(id.clone(), Loaded::from_row(id, &tenant, &state)?);
            }
        }
        Ok(map)
    }

    /// From the cache (taken out; a batch puts them back after its commit) or else
    /// from the database.
    async fn load_terminals(&mut self, ids: &[String]) -> anyhow::Result<HashMap<String, Loaded>> {
        let mut map = HashMap::with_capacity(ids.len());
        {
            let mut select = self.txn.prepare_cached(
                "SELECT tenant, state, history_key FROM terminals WHERE terminal_id = ?1",
            )?;
            for id in ids {
                if let Some(cached) = self.cache.remove(id) {
                    map.insert(id.clone(), Loaded::stored(cached.tenant, cached.state));
                    self.keys.insert(id.clone(), cached.history_key);
                    if let Some(states) = cached.campaigns {
                        self.known.insert(id.clone(), states);
                    }
                    continue;
                }
                let found: Option<(String, String, Option<i64>)> = select
                    .query_row([id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                    .optional()
                    .context("loading terminals")?;
                let Some((tenant, state, key)) = found else {
                    continue;
                };
                map.insert(id.clone(), Loaded::from_row(id, &tenant, &state)?);
                if let Some(key) = key {
                    self.keys.insert(id.clone(), key);
                }
            }
        }
        self.assign_history_keys(ids, &map)?;
        Ok(map)
    }

    async fn stored_reports(
        &mut self,
        keys: &[(String, u64)],
    ) -> anyhow::Result<HashSet<(String, u64)>> {
        let mut select = self
            .txn
            .prepare_cached("SELECT 1 FROM reports WHERE terminal_key = ?1 AND seq = ?2")?;
        let mut stored = HashSet::new();
        for (id, seq) in keys {
            let Some(key) = self.keys.get(id) else {
                continue;
            };
            if select
                .exists(params![key, seq_value(*seq)])
                .context("looking up the history")?
            {
                stored.insert((id.clone(), *seq));
            }
        }
        Ok(stored)
    }

    async fn append_history(
        &mut self,
        batch: &[IncomingReport],
        rows: &[usize],
    ) -> anyhow::Result<HashSet<(String, u64)>> {
        let mut insert = self.txn.prepare_cached(
            "INSERT INTO reports (terminal_key, terminal_id, seq, tenant, clinic_code, \
             observed_at, received_at, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             ON CONFLICT DO NOTHING",
        )?;
        let mut inserted = HashSet::with_capacity(rows.len());
        for &i in rows {
            let incoming = &batch[i];
            let r = &incoming.report;
            let id = r.terminal_id.to_string();
            let key = *self
                .keys
                .get(&id)
                .context("a report's terminal has no history key")?;
            let changed = insert
                .execute(params![
                    key,
                    id,
                    seq_value(r.seq),
                    incoming.tenant.as_str(),
                    r.clinic_code.as_str(),
                    // JST everywhere, so SQLite's text order is time order.
                    time_text(r.observed_at.with_timezone(&JST)),
                    time_text(incoming.received_at.with_timezone(&JST)),
                    incoming.body,
                ])
                .context("appending to the history")?;
            if changed == 1 {
                inserted.insert((id, r.seq));
            }
        }
        Ok(inserted)
    }

    async fn append_reader_errors(&mut self, rows: &[ReaderErrorRow<'_>]) -> anyhow::Result<()> {
        // No conflict to expect: the rows are of reports this transaction added to
        // the history, so a report's errors are recorded once (the migration
        // m20261202_000006_sqlite_reader_errors_by_time says why there is no key).
        let mut insert = self.txn.prepare_cached(
            "INSERT INTO reader_errors (terminal_id, seq, idx, tenant, code, message, at, count) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for row in rows {
            let r = &row.incoming.report;
            let e = row.error;
            insert
                .execute(params![
                    r.terminal_id.to_string(),
                    seq_value(r.seq),
                    i64::try_from(row.idx).unwrap_or(i64::MAX),
                    row.incoming.tenant.as_str(),
                    e.code,
                    e.message,
                    time_text(e.at.with_timezone(&JST)),
                    i64::from(e.count),
                ])
                .context("recording reader errors")?;
        }
        Ok(())
    }

    async fn store_terminals(&mut self, rows: &[TerminalRow<'_>]) -> anyhow::Result<()> {
        // A stored terminal keeps its history key: the update leaves the column alone.
        let mut upsert = self.txn.prepare_cached(
            "INSERT INTO terminals (terminal_id, tenant, clinic_code, prefecture, last_seq, \
             last_observed_at, last_received_at, state, history_key) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
             ON CONFLICT (terminal_id) DO UPDATE SET \
             clinic_code = excluded.clinic_code, prefecture = excluded.prefecture, \
             last_seq = excluded.last_seq, last_observed_at = excluded.last_observed_at, \
             last_received_at = excluded.last_received_at, state = excluded.state",
        )?;
        // Most reports come from a stored terminal that has not moved. SQLite
        // rewrites the entries of every index whose columns an UPDATE sets, changed
        // or not, so naming clinic_code there would dirty a page of
        // terminals_by_clinic for each report (a fifth of SQLite's work in the
        // sqlite-ceiling model of docs/BENCHMARKS.md).
        let mut heartbeat = self.txn.prepare_cached(
            "UPDATE terminals SET last_seq = ?2, last_observed_at = ?3, last_received_at = ?4, \
             state = ?5 WHERE terminal_id = ?1",
        )?;
        for row in rows {
            let (id, state) = (row.id, row.state);
            let json = serde_json::to_string(state)?;
            let last_seq = seq_value(state.last_seq);
            let last_observed_at = time_text(state.last_observed_at);
            let received_at = time_text(row.received_at);
            let updated = if row.stays_at_its_clinic() {
                heartbeat.execute(params![id, last_seq, last_observed_at, received_at, json])
            } else {
                upsert.execute(params![
                    id,
                    row.loaded.tenant.as_str(),
                    state.clinic_code.as_str(),
                    state.clinic_code.prefecture().code(),
                    last_seq,
                    last_observed_at,
                    received_at,
                    json,
                    self.keys.get(id).copied(),
                ])
            };
            let updated = updated.context("upserting terminals")?;
            anyhow::ensure!(updated == 1, "terminal {id} was not written");
        }
        Ok(())
    }

    async fn ensure_clinics(
        &mut self,
        clinics: &[(&str, ClinicCode)],
        now: DateTime<FixedOffset>,
    ) -> anyhow::Result<()> {
        let mut insert = self.txn.prepare_cached(
            "INSERT INTO clinics (tenant, clinic_code, prefecture, area, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (tenant, clinic_code) DO NOTHING",
        )?;
        let created_at = time_text(now);
        for (tenant, code) in clinics {
            insert
                .execute(params![
                    tenant,
                    code.as_str(),
                    code.prefecture().code(),
                    code.area().as_str(),
                    created_at,
                ])
                .context("recording clinics")?;
        }
        Ok(())
    }

    /// What the transaction knows already, else read (and then known: a terminal
    /// with no rows has none).
    async fn load_campaign_states(
        &mut self,
        terminals: &[String],
    ) -> anyhow::Result<HashMap<(String, String), Stored>> {
        let mut select = self.txn.prepare_cached(
            "SELECT campaign_id, seen_in_distribution_at, prefecture, clinic_code, state, cause \
             FROM campaign_states WHERE terminal_id = ?1",
        )?;
        let mut before = HashMap::with_capacity(terminals.len());
        for id in terminals {
            if !self.known.contains_key(id) {
                let mut states = Vec::new();
                let mut rows = select.query([id]).context("loading campaign states")?;
                while let Some(row) = rows.next()? {
                    let campaign: String = row.get(0)?;
                    let seen: Option<String> = row.get(1)?;
                    let stored = Stored {
                        seen: seen.as_deref().map(parse_time).transpose()?,
                        prefecture: row.get(2)?,
                        clinic_code: row.get(3)?,
                        state: row.get(4)?,
                        cause: row.get(5)?,
                    };
                    states.push((campaign, stored));
                }
                self.known.insert(id.clone(), states);
            }
            for (campaign, stored) in self.known.get(id).into_iter().flatten() {
                before.insert((id.clone(), campaign.clone()), stored.clone());
            }
        }
        Ok(before)
    }

    async fn store_campaign_states(
        &mut self,
        rows: &[CampaignRow<'_>],
        now: DateTime<FixedOffset>,
    ) -> anyhow::Result<()> {
        let mut upsert = self.txn.prepare_cached(
            "INSERT INTO campaign_states (terminal_id, campaign_id, tenant, prefecture, \
             clinic_code, state, cause, seen_in_distribution_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
             ON CONFLICT (terminal_id, campaign_id) DO UPDATE SET \
             prefecture = excluded.prefecture, clinic_code = excluded.clinic_code, \
             state = excluded.state, cause = excluded.cause, \
             seen_in_distribution_at = excluded.seen_in_distribution_at, \
             updated_at = excluded.updated_at",
        )?;
        let updated_at = time_text(now);
        for row in rows {
            upsert
                .execute(params![
                    row.terminal_id,
                    row.campaign_id,
                    row.tenant,
                    row.prefecture,
                    row.clinic_code,
                    row.state,
                    row.cause,
                    row.seen_in_distribution_at.map(time_text),
                    updated_at,
                ])
                .context("upserting campaign states")?;
            // Known only if all of the terminal's rows are.
            if let Some(states) = self.known.get_mut(row.terminal_id) {
                match states.iter_mut().find(|(c, _)| c == row.campaign_id) {
                    Some((_, stored)) => *stored = row.stored(),
                    None => states.push((row.campaign_id.clone(), row.stored())),
                }
            }
        }
        Ok(())
    }

    async fn move_counters(&mut self, deltas: &CounterDeltas) -> anyhow::Result<()> {
        let mut upsert = self.txn.prepare_cached(
            "INSERT INTO rollout_counters (tenant, prefecture, campaign_id, state, terminals) \
             VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (tenant, prefecture, campaign_id, state) DO UPDATE SET \
             terminals = rollout_counters.terminals + excluded.terminals",
        )?;
        for ((tenant, prefecture, campaign, state), n) in deltas.changes() {
            upsert
                .execute(params![tenant, prefecture, campaign, state, n])
                .context("updating rollout counters")?;
        }
        Ok(())
    }

    async fn insert_campaign(
        &mut self,
        campaign: &Campaign,
        now: DateTime<FixedOffset>,
    ) -> anyhow::Result<()> {
        self.txn
            .execute(
                "INSERT INTO campaigns (id, definition, created_at) VALUES (?1, ?2, ?3)",
                params![
                    campaign.id,
                    serde_json::to_string(campaign)?,
                    time_text(now)
                ],
            )
            .with_context(|| {
                format!(
                    "campaign {:?} already exists or cannot be stored",
                    campaign.id
                )
            })?;
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
        let ids = match only {
            None => {
                let mut select = self.txn.prepare_cached(
                    "SELECT terminal_id FROM terminals WHERE terminal_id > ?1 \
                     ORDER BY terminal_id LIMIT ?2",
                )?;
                select
                    .query_map(params![after, limit], |row| row.get(0))?
                    .collect::<Result<Vec<String>, _>>()
            }
            Some(cause) => {
                let mut select = self.txn.prepare_cached(
                    "SELECT t.terminal_id FROM terminals t JOIN campaign_states s \
                     ON s.terminal_id = t.terminal_id \
                     WHERE t.terminal_id > ?1 AND s.campaign_id = ?3 AND s.cause = ?4 \
                     ORDER BY t.terminal_id LIMIT ?2",
                )?;
                select
                    .query_map(params![after, limit, campaign, cause.as_str()], |row| {
                        row.get(0)
                    })?
                    .collect::<Result<Vec<String>, _>>()
            }
        };
        ids.context("paging through terminals")
    }

    async fn record_succession(
        &mut self,
        tenant: &TenantSlug,
        from: ClinicCode,
        to: ClinicCode,
        terminal: Option<Uuid>,
        now: DateTime<FixedOffset>,
    ) -> anyhow::Result<()> {
        self.txn
            .execute(
                "INSERT INTO successions (tenant, from_code, terminal_id, to_code, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (tenant, from_code, terminal_id) DO UPDATE SET \
                 to_code = excluded.to_code, created_at = excluded.created_at",
                params![
                    tenant.as_str(),
                    from.as_str(),
                    terminal.map(|t| t.to_string()).unwrap_or_default(),
                    to.as_str(),
                    time_text(now),
                ],
            )
            .context("recording the succession")?;
        Ok(())
    }

    async fn terminals_at(
        &mut self,
        tenant: &TenantSlug,
        code: ClinicCode,
        terminal: Option<Uuid>,
    ) -> anyhow::Result<Vec<String>> {
        let mut select = self.txn.prepare_cached(
            "SELECT terminal_id FROM terminals WHERE tenant = ?1 AND clinic_code = ?2 \
             AND (?3 IS NULL OR terminal_id = ?3) ORDER BY terminal_id",
        )?;
        let ids = select
            .query_map(
                params![
                    tenant.as_str(),
                    code.as_str(),
                    terminal.map(|t| t.to_string())
                ],
                |row| row.get(0),
            )?
            .collect::<Result<Vec<String>, _>>()
            .context("finding the terminals to move")?;
        Ok(ids)
    }

    async fn delete_history_before(
        &mut self,
        cutoff: DateTime<FixedOffset>,
        limit: u64,
    ) -> anyhow::Result<(u64, u64)> {
        // Times are stored as JST text, so text order is time order.
        let cutoff = time_text(cutoff.with_timezone(&JST));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let reports = self
            .txn
            .execute(
                "DELETE FROM reports WHERE rowid IN \
                 (SELECT rowid FROM reports WHERE observed_at < ?1 LIMIT ?2)",
                params![cutoff, limit],
            )
            .context("deleting old history")?;
        let errors = self
            .txn
            .execute(
                "DELETE FROM reader_errors WHERE rowid IN \
                     (SELECT rowid FROM reader_errors WHERE at < ?1 LIMIT ?2)",
                params![cutoff, limit],
            )
            .context("deleting old reader errors")?;
        Ok((reports as u64, errors as u64))
    }

    async fn open_findings(
        &mut self,
        terminals: &[String],
    ) -> anyhow::Result<HashMap<String, Vec<OpenRow>>> {
        let mut select = self.txn.prepare_cached(
            "SELECT id, kind, campaign, status, since, body, incident_id FROM findings \
             WHERE terminal_id = ?1 AND status <> 'resolved'",
        )?;
        let mut map: HashMap<String, Vec<OpenRow>> = HashMap::new();
        for id in terminals {
            let mut rows = select.query([id]).context("loading findings")?;
            while let Some(row) = rows.next()? {
                let open = open_row(
                    &row.get::<_, String>(0)?,
                    &row.get::<_, String>(1)?,
                    &row.get::<_, String>(2)?,
                    &row.get::<_, String>(3)?,
                    parse_time(&row.get::<_, String>(4)?)?,
                    &row.get::<_, String>(5)?,
                    row.get(6)?,
                )?;
                map.entry(id.clone()).or_default().push(open);
            }
        }
        Ok(map)
    }

    async fn write_findings(
        &mut self,
        writes: &FindingWrites,
        now: DateTime<FixedOffset>,
    ) -> anyhow::Result<()> {
        let now_text = time_text(now.with_timezone(&JST));
        {
            let mut upsert = self.txn.prepare_cached(
                "INSERT INTO findings (id, tenant, terminal_id, clinic_code, prefecture, area, \
                 kind, campaign, severity, status, since, body, window_id, incident_id, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) \
                 ON CONFLICT (id) DO UPDATE SET clinic_code = excluded.clinic_code, \
                 prefecture = excluded.prefecture, area = excluded.area, \
                 severity = excluded.severity, status = excluded.status, since = excluded.since, \
                 body = excluded.body, window_id = excluded.window_id, \
                 incident_id = excluded.incident_id, updated_at = excluded.updated_at",
            )?;
            for w in &writes.rows {
                let c = RowColumns::of(w)?;
                upsert
                    .execute(params![
                        w.id.to_string(),
                        w.tenant,
                        w.terminal_id,
                        c.clinic_code,
                        c.prefecture,
                        c.area,
                        w.kind.as_str(),
                        w.campaign.as_deref().unwrap_or(""),
                        c.severity,
                        w.status.as_str(),
                        time_text(w.since.with_timezone(&JST)),
                        c.body,
                        c.window_id,
                        c.incident_id,
                        now_text,
                    ])
                    .context("writing findings")?;
            }
        }
        {
            let mut resolve = self.txn.prepare_cached(
                "UPDATE findings SET status = 'resolved', resolved_at = ?2, updated_at = ?2 \
                 WHERE id = ?1",
            )?;
            for id in &writes.resolved {
                resolve
                    .execute(params![id.to_string(), now_text])
                    .context("resolving findings")?;
            }
        }
        {
            let mut drop = self
                .txn
                .prepare_cached("DELETE FROM findings WHERE id = ?1 AND status = 'pending'")?;
            for id in &writes.dropped {
                drop.execute([id.to_string()])
                    .context("dropping pending conditions")?;
            }
        }
        let mut event = self.txn.prepare_cached(
            "INSERT INTO finding_events (finding_id, at, event, actor) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for e in &writes.events {
            event
                .execute(params![e.finding.to_string(), now_text, e.event, e.actor])
                .context("recording finding events")?;
        }
        Ok(())
    }

    async fn clinic_hours(
        &mut self,
        clinics: &[(String, ClinicCode)],
    ) -> anyhow::Result<HashMap<(String, ClinicCode), ClinicHours>> {
        let mut select = self.txn.prepare_cached(
            "SELECT hours FROM clinic_hours WHERE tenant = ?1 AND clinic_code = ?2",
        )?;
        let mut map = HashMap::new();
        for (tenant, code) in clinics {
            let found: Option<String> = select
                .query_row(params![tenant, code.as_str()], |row| row.get(0))
                .optional()
                .context("loading clinic hours")?;
            if let Some(text) = found {
                map.insert((tenant.clone(), *code), parse_hours(&text)?);
            }
        }
        Ok(map)
    }

    async fn windows(&mut self) -> anyhow::Result<Vec<MaintenanceWindow>> {
        let mut select = self.txn.prepare_cached(
            "SELECT id, scope, area, kind, starts_at, ends_at, title FROM maintenance_windows",
        )?;
        let mut rows = select.query([]).context("loading maintenance windows")?;
        let mut windows = Vec::new();
        while let Some(row) = rows.next()? {
            windows.push(window_of(
                row.get(0)?,
                &row.get::<_, String>(1)?,
                &row.get::<_, String>(2)?,
                &row.get::<_, String>(3)?,
                parse_time(&row.get::<_, String>(4)?)?,
                parse_time(&row.get::<_, String>(5)?)?,
                row.get(6)?,
            )?);
        }
        Ok(windows)
    }

    async fn recent_reader_errors(
        &mut self,
        terminals: &[String],
        from: DateTime<FixedOffset>,
    ) -> anyhow::Result<HashMap<String, Vec<ReaderError>>> {
        let mut select = self.txn.prepare_cached(
            "SELECT code, message, at, count FROM reader_errors \
             WHERE terminal_id = ?1 AND at >= ?2",
        )?;
        let from = time_text(from.with_timezone(&JST));
        let mut map: HashMap<String, Vec<ReaderError>> = HashMap::new();
        for id in terminals {
            let mut rows = select
                .query(params![id, from])
                .context("loading reader errors")?;
            while let Some(row) = rows.next()? {
                let count: i64 = row.get(3)?;
                map.entry(id.clone()).or_default().push(ReaderError {
                    code: row.get(0)?,
                    message: row.get(1)?,
                    at: parse_time(&row.get::<_, String>(2)?)?,
                    count: u32::try_from(count).unwrap_or(u32::MAX),
                });
            }
        }
        Ok(map)
    }

    async fn terminal_ids_after(&mut self, after: &str, limit: u64) -> anyhow::Result<Vec<String>> {
        let mut select = self.txn.prepare_cached(
            "SELECT terminal_id FROM terminals WHERE terminal_id > ?1 \
             ORDER BY terminal_id LIMIT ?2",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let ids = select
            .query_map(params![after, limit], |row| row.get(0))?
            .collect::<Result<Vec<String>, _>>()
            .context("paging terminals")?;
        Ok(ids)
    }

    async fn count_reporting(
        &mut self,
        counts: &std::collections::BTreeMap<(String, String, DateTime<FixedOffset>), i64>,
    ) -> anyhow::Result<()> {
        let mut upsert = self.txn.prepare_cached(
            "INSERT INTO reporting_hours (tenant, prefecture, hour, terminals) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (tenant, prefecture, hour) \
             DO UPDATE SET terminals = terminals + excluded.terminals",
        )?;
        for ((tenant, prefecture, hour), n) in counts {
            upsert
                .execute(params![
                    tenant,
                    prefecture,
                    time_text(hour.with_timezone(&JST)),
                    n
                ])
                .context("counting reporting terminals")?;
        }
        Ok(())
    }

    async fn move_terminal(&mut self, id: &str, state: &TerminalState) -> anyhow::Result<()> {
        let code = state.clinic_code;
        let prefecture = code.prefecture().code();
        self.txn
            .execute(
                "UPDATE terminals SET clinic_code = ?2, prefecture = ?3, state = ?4 \
                 WHERE terminal_id = ?1",
                params![id, code.as_str(), prefecture, serde_json::to_string(state)?],
            )
            .context("moving a terminal")?;
        self.txn
            .execute(
                "UPDATE campaign_states SET clinic_code = ?2, prefecture = ?3 \
                 WHERE terminal_id = ?1",
                params![id, code.as_str(), prefecture],
            )
            .context("moving campaign states")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use fleet_protocol::{Report, TenantSlug};
    use sea_orm::ConnectionTrait;

    use crate::plan::{IncomingReport, Outcome};
    use crate::{DatabaseUrl, Store};

    fn report(seq: u64, minute: u32) -> IncomingReport {
        let body = format!(
            r#"{{"schema":"fleet.report.v1","terminal_id":"5a1d7c3e-2f4b-4c8a-9e6d-1b3f5a7c9e20","seq":{seq},"observed_at":"2026-01-20T07:{minute:02}:00+09:00","clinic_code":"0141234567"}}"#
        );
        IncomingReport {
            tenant: TenantSlug::parse("demo").unwrap(),
            report: Report::parse(body.as_bytes()).unwrap(),
            body,
            received_at: fleet_protocol::rfc3339::parse("2026-01-20T08:00:00+09:00").unwrap(),
        }
    }

    /// A store on a new SQLite file, not yet migrated, and the directory to remove.
    async fn temp_store() -> (std::path::PathBuf, Store) {
        let dir = std::env::temp_dir().join(format!("fleet-writer-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("fleet.db").to_string_lossy().into_owned();
        let store = Store::connect(&DatabaseUrl::Sqlite(path)).await.unwrap();
        (dir, store)
    }

    async fn write(store: &Store, r: IncomingReport) -> Outcome {
        let now = fleet_protocol::rfc3339::parse("2026-01-20T08:00:00+09:00").unwrap();
        store
            .write_batch(Arc::from(vec![r]), Arc::new(Vec::new()), now)
            .await
            .unwrap()
            .pop()
            .unwrap()
    }

    /// The cache never holds more than its capacity, takes a batch's states while it
    /// has room, keeps what it holds once full, and keeps nothing at capacity 0.
    #[test]
    fn the_state_cache_stays_within_its_capacity() {
        use std::collections::HashMap;

        use crate::plan::Loaded;

        let batch = |ids: &[usize]| -> HashMap<String, Loaded> {
            ids.iter()
                .map(|i| {
                    let state = fleet_protocol::TerminalState::from_first(&report(1, 0).report);
                    (
                        format!("t{i}"),
                        Loaded::stored(TenantSlug::parse("demo").unwrap(), state),
                    )
                })
                .collect()
        };
        let keys: HashMap<String, i64> = (0..100).map(|i| (format!("t{i}"), i)).collect();
        let mut cache = HashMap::new();
        super::keep_states(
            &mut cache,
            3,
            batch(&[0, 1, 2, 3, 4]),
            &keys,
            HashMap::new(),
        );
        assert_eq!(cache.len(), 3);
        let held: Vec<String> = cache.keys().cloned().collect();
        super::keep_states(&mut cache, 3, batch(&[10, 11]), &keys, HashMap::new());
        assert_eq!(cache.len(), 3);
        assert!(
            held.iter().all(|id| cache.contains_key(id)),
            "a full cache keeps what it holds"
        );
        // A batch of cached terminals takes them out when it loads them; they go back.
        let back = held[0].clone();
        let cached = cache.remove(&back).unwrap();
        let key = cached.history_key;
        let mut returning = HashMap::new();
        returning.insert(back.clone(), Loaded::stored(cached.tenant, cached.state));
        super::keep_states(&mut cache, 3, returning, &keys, HashMap::new());
        assert_eq!(cache[&back].history_key, key);
        super::keep_states(
            &mut cache,
            100,
            batch(&(20..70).collect::<Vec<_>>()),
            &keys,
            HashMap::new(),
        );
        assert_eq!(cache.len(), 53);

        let mut none = HashMap::new();
        super::keep_states(&mut none, 0, batch(&[0, 1, 2, 3, 4]), &keys, HashMap::new());
        assert!(none.is_empty());
    }

    /// A database from before the history key: its terminals get keys, its history is
    /// kept, and a redelivery of a report stored before the migration still collides.
    #[tokio::test]
    async fn history_stored_before_the_history_key_still_deduplicates() {
        use fleet_migration::MigratorTrait;

        let (dir, store) = temp_store().await;
        fleet_migration::Migrator::up(store.connection(), Some(4))
            .await
            .unwrap();
        // Seq 5 stored the old way: a terminal row and its history row.
        let stored = report(5, 10);
        let state =
            serde_json::to_string(&fleet_protocol::TerminalState::from_first(&stored.report))
                .unwrap();
        let id = stored.report.terminal_id.to_string();
        for sql in [
            format!(
                "INSERT INTO terminals VALUES ('{id}', 'demo', '0141234567', '01', 5, \
                 '2026-01-20T07:10:00+09:00', '2026-01-20T08:00:00+09:00', '{state}')"
            ),
            format!(
                "INSERT INTO reports VALUES ('{id}', 5, 'demo', '0141234567', \
                 '2026-01-20T07:10:00+09:00', '2026-01-20T08:00:00+09:00', '{}')",
                stored.body
            ),
            format!(
                "INSERT INTO reader_errors VALUES ('{id}', 5, 0, 'demo', '011', \
                 'ネットワークエラー', '2026-01-20T07:09:00+09:00', 1)"
            ),
        ] {
            store.connection().execute_unprepared(&sql).await.unwrap();
        }
        store.migrate().await.unwrap();
        store.seed_defaults(crate::now_jst()).await.unwrap();

        assert_eq!(write(&store, report(5, 10)).await, Outcome::Duplicate);
        assert_eq!(write(&store, report(6, 11)).await, Outcome::Applied);
        assert_eq!(write(&store, report(6, 11)).await, Outcome::Duplicate);
        let rows = store
            .connection()
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                "SELECT count(*) AS n, count(DISTINCT terminal_key) AS k, \
                 min(terminal_key) AS low FROM reports",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rows.try_get::<i64>("", "n").unwrap(), 2);
        assert_eq!(rows.try_get::<i64>("", "k").unwrap(), 1);
        assert!(rows.try_get::<i64>("", "low").unwrap() > 0);
        // The reader error stored before m20261202_000006 is still there.
        let errors = store
            .connection()
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                "SELECT count(*) AS n, max(code) AS code FROM reader_errors",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(errors.try_get::<i64>("", "n").unwrap(), 1);
        assert_eq!(errors.try_get::<String>("", "code").unwrap(), "011");
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A stored terminal without a history key (written by something other than the
    /// writer) gets one on its next report and keeps it: with the cache emptied by
    /// another connection's write, a redelivery of that report still collides.
    #[tokio::test]
    async fn a_terminal_without_a_history_key_keeps_the_one_it_is_given() {
        let (dir, store) = temp_store().await;
        store.migrate().await.unwrap();
        store.seed_defaults(crate::now_jst()).await.unwrap();
        let newest = report(5, 10);
        let state =
            serde_json::to_string(&fleet_protocol::TerminalState::from_first(&newest.report))
                .unwrap();
        let id = newest.report.terminal_id.to_string();
        let pool = store.connection();
        pool.execute_unprepared(&format!(
            "INSERT INTO terminals (terminal_id, tenant, clinic_code, prefecture, last_seq, \
             last_observed_at, last_received_at, state) VALUES ('{id}', 'demo', \
             '0141234567', '01', 5, '2026-01-20T07:10:00+09:00', \
             '2026-01-20T08:00:00+09:00', '{state}')"
        ))
        .await
        .unwrap();

        assert_eq!(write(&store, report(3, 5)).await, Outcome::HistoryOnly);
        // A new terminal takes the next key; had the first one's key not been kept,
        // this one would now hold it, and the redelivery below would get another.
        let mut other = report(1, 0);
        other.body = other.body.replace("9e6d-1b3f5a7c9e20", "9e6d-000000000002");
        other.report = Report::parse(other.body.as_bytes()).unwrap();
        assert_eq!(write(&store, other).await, Outcome::Applied);
        // Another connection writes, so the writer forgets what it cached.
        pool.execute_unprepared(
            "UPDATE terminals SET last_received_at = '2026-01-20T08:30:00+09:00'",
        )
        .await
        .unwrap();
        assert_eq!(write(&store, report(3, 5)).await, Outcome::Duplicate);
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A terminal that reports from another clinic is filed there (its row's clinic
    /// and prefecture follow), and later reports from there keep it there.
    #[tokio::test]
    async fn a_terminal_that_reports_another_clinic_moves_there() {
        let (dir, store) = temp_store().await;
        store.migrate().await.unwrap();
        store.seed_defaults(crate::now_jst()).await.unwrap();
        let elsewhere = |seq: u64, minute: u32| {
            let mut r = report(seq, minute);
            r.body = r.body.replace("0141234567", "2712345678");
            r.report = Report::parse(r.body.as_bytes()).unwrap();
            r
        };
        let filed = |store: Store| async move {
            let row = store
                .connection()
                .query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Sqlite,
                    "SELECT clinic_code, prefecture, last_seq FROM terminals",
                ))
                .await
                .unwrap()
                .unwrap();
            (
                row.try_get::<String>("", "clinic_code").unwrap(),
                row.try_get::<String>("", "prefecture").unwrap(),
                row.try_get::<i64>("", "last_seq").unwrap(),
            )
        };
        assert_eq!(write(&store, report(1, 0)).await, Outcome::Applied);
        assert_eq!(write(&store, report(2, 1)).await, Outcome::Applied);
        assert_eq!(
            filed(store.clone()).await,
            ("0141234567".into(), "01".into(), 2)
        );
        assert_eq!(write(&store, elsewhere(3, 2)).await, Outcome::Applied);
        assert_eq!(
            filed(store.clone()).await,
            ("2712345678".into(), "27".into(), 3)
        );
        assert_eq!(write(&store, elsewhere(4, 3)).await, Outcome::Applied);
        assert_eq!(
            filed(store.clone()).await,
            ("2712345678".into(), "27".into(), 4)
        );
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Once distribution runs all day every report is a sighting: the campaign state
    /// keeps the first one and is not rewritten by the next report that changes
    /// nothing else.
    #[tokio::test]
    async fn a_campaign_state_keeps_its_first_sighting() {
        let (dir, store) = temp_store().await;
        store.migrate().await.unwrap();
        store.seed_defaults(crate::now_jst()).await.unwrap();
        let campaigns = Arc::new(store.campaigns().await.unwrap());
        let at = |t: &str| fleet_protocol::rfc3339::parse(t).unwrap();
        let during = |seq: u64, hour: u32| {
            let mut r = report(seq, 0);
            r.body = r.body.replace(
                "2026-01-20T07:00:00",
                &format!("2026-02-01T{hour:02}:00:00"),
            );
            r.report = Report::parse(r.body.as_bytes()).unwrap();
            r
        };
        let row = || async {
            let row = store
                .connection()
                .query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Sqlite,
                    "SELECT seen_in_distribution_at AS seen, updated_at FROM campaign_states",
                ))
                .await
                .unwrap()
                .unwrap();
            (
                row.try_get::<String>("", "seen").unwrap(),
                row.try_get::<String>("", "updated_at").unwrap(),
            )
        };
        for (seq, hour, now) in [
            (1, 10, "2026-02-01T10:01:00+09:00"),
            (2, 11, "2026-02-01T11:01:00+09:00"),
        ] {
            let outcome = store
                .write_batch(
                    Arc::from(vec![during(seq, hour)]),
                    campaigns.clone(),
                    at(now),
                )
                .await
                .unwrap();
            assert_eq!(outcome, vec![Outcome::Applied]);
        }
        let (seen, updated_at) = row().await;
        assert_eq!(
            at(&seen),
            at("2026-02-01T10:00:00+09:00"),
            "the first sighting"
        );
        assert_eq!(
            at(&updated_at),
            at("2026-02-01T10:01:00+09:00"),
            "not rewritten"
        );
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The writer remembers the campaign states it read or wrote, and the rollout
    /// counters stay equal to a recount whichever way it knew them: read from the
    /// database after another connection's write emptied the cache, then from the
    /// cache.
    #[tokio::test]
    async fn cached_campaign_states_keep_the_counters_exact() {
        let (dir, store) = temp_store().await;
        store.migrate().await.unwrap();
        store.seed_defaults(crate::now_jst()).await.unwrap();
        let campaigns = Arc::new(store.campaigns().await.unwrap());
        let now = fleet_protocol::rfc3339::parse("2026-01-22T12:00:00+09:00").unwrap();
        // Running 5.1.0 and no restart pending: updated; 5.0.3 with 5.1.0 downloaded
        // and a restart pending: reboot_required.
        let in_state = |seq: u64, updated: bool| {
            let mut r = report(seq, seq as u32);
            let versions = if updated {
                r#","versions":{"face_library":"5.1.0"},"reboot":{"pending":false}}"#
            } else {
                r#","versions":{"face_library":"5.0.3"},"distribution":{"downloaded":{"face_library":{"version":"5.1.0","at":"2026-01-20T02:00:00+09:00"}}},"reboot":{"pending":true}}"#
            };
            r.body = format!("{}{versions}", r.body.trim_end_matches('}'));
            r.report = Report::parse(r.body.as_bytes()).unwrap();
            r
        };
        let write = |r: IncomingReport| {
            let (store, campaigns) = (store.clone(), campaigns.clone());
            async move {
                store
                    .write_batch(Arc::from(vec![r]), campaigns, now)
                    .await
                    .unwrap()
            }
        };
        let state = || async {
            store
                .connection()
                .query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Sqlite,
                    "SELECT state FROM campaign_states",
                ))
                .await
                .unwrap()
                .unwrap()
                .try_get::<String>("", "state")
                .unwrap()
        };
        assert_eq!(write(in_state(1, false)).await, vec![Outcome::Applied]);
        assert_eq!(state().await, "reboot_required");
        // Another connection writes: the next batch reads the terminal and its
        // campaign state from the database, and caches both.
        store
            .connection()
            .execute_unprepared("UPDATE tenants SET name = name || ''")
            .await
            .unwrap();
        for (seq, updated) in [(2, true), (3, false), (4, true)] {
            assert_eq!(write(in_state(seq, updated)).await, vec![Outcome::Applied]);
            let expected = if updated {
                "updated"
            } else {
                "reboot_required"
            };
            assert_eq!(state().await, expected, "after seq {seq}");
            let drift = store.check_counters().await.unwrap();
            assert!(drift.is_empty(), "after seq {seq}: {drift:?}");
        }
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The writer's cached state must not survive a write by another connection: a
    /// terminal whose state was advanced elsewhere to seq 10 must treat seq 7 as stale.
    #[tokio::test]
    async fn a_write_by_another_connection_empties_the_state_cache() {
        let (dir, store) = temp_store().await;
        store.migrate().await.unwrap();
        store.seed_defaults(crate::now_jst()).await.unwrap();

        assert_eq!(write(&store, report(5, 10)).await, Outcome::Applied);
        // Another connection (the pool) moves the stored state on to seq 10.
        let newer = serde_json::to_string(&fleet_protocol::TerminalState::from_first(
            &report(10, 20).report,
        ))
        .unwrap();
        store
            .connection()
            .execute_unprepared(&format!(
                "UPDATE terminals SET last_seq = 10, state = '{newer}'"
            ))
            .await
            .unwrap();
        assert_eq!(write(&store, report(7, 15)).await, Outcome::HistoryOnly);
        // And the cache, refilled from the database, goes on from there.
        assert_eq!(write(&store, report(11, 25)).await, Outcome::Applied);
        assert_eq!(write(&store, report(11, 25)).await, Outcome::Duplicate);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
