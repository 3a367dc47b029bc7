//! Writing a batch of reports: one transaction, a few statements per table.
//!
//! For a batch the ingest consumer hands over, in one transaction:
//! 1. refuse what the store cannot take (a terminal that belongs to another tenant, a
//!    `seq` above 2^63−1, which neither database's 64-bit integer holds);
//! 2. append every report to the history with `INSERT … ON CONFLICT DO NOTHING
//!    RETURNING`, so the same `terminal_id/seq` twice — in one batch or across
//!    redeliveries — is stored once and changes nothing the second time;
//! 3. apply the newly stored reports to each terminal's current state in arrival
//!    order, as if each came alone (a `seq` not newer than the state's stays in the
//!    history only), and upsert the changed terminals;
//! 4. record reader errors as events, make sure the clinic exists, and re-assess every
//!    campaign for the touched terminals.
//!
//! The caller acks the messages only after [`Store::write_batch`] returns `Ok`, i.e.
//! after the commit.
//!
//! The plan is shared; the I/O is each database's own: SQLite on a native connection
//! ([`crate::write_sqlite`]), PostgreSQL with one array-bound statement per table
//! ([`crate::write_pg`]). The multi-row statements left here serve the rarer writers
//! on either database (a campaign's assessment of every terminal, clinics).

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::Context;
use chrono::{DateTime, FixedOffset};
use std::sync::Arc;

use fleet_protocol::{Applied, Campaign, Report, TenantSlug, TerminalState};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DatabaseTransaction, TransactionTrait};

use crate::{Store, write_pg};

/// Rows per multi-row statement: well under both databases' parameter limits.
const ROWS_PER_STATEMENT: usize = 400;

/// A parsed report and where it came from.
#[derive(Clone, Debug)]
pub struct IncomingReport {
    /// The tenant the publishing AMQP user belongs to (already checked against the
    /// routing key).
    pub tenant: TenantSlug,
    pub report: Report,
    /// The body as received, kept verbatim in the history (unknown fields included).
    pub body: String,
    pub received_at: DateTime<FixedOffset>,
}

/// What the store did with one report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stored in the history and applied to the current state.
    Applied,
    /// Stored in the history; its `seq` is older than the current state's.
    HistoryOnly,
    /// Already stored: nothing changed.
    Duplicate,
    /// Not stored, for a reason that goes to the dead-letter header.
    Refused {
        reason: &'static str,
        detail: String,
    },
}

/// A terminal as loaded at the start of the batch or created within it.
pub(crate) struct Loaded {
    pub(crate) tenant: TenantSlug,
    pub(crate) state: Option<TerminalState>,
    pub(crate) changed: bool,
    /// The clinic as stored before this batch; `None` for a terminal new to the store.
    pub(crate) stored_clinic: Option<fleet_protocol::ClinicCode>,
}

impl Loaded {
    /// A terminal as committed: its owner and its state.
    pub(crate) fn stored(tenant: TenantSlug, state: TerminalState) -> Self {
        Self {
            tenant,
            stored_clinic: Some(state.clinic_code),
            state: Some(state),
            changed: false,
        }
    }

    /// A terminal from its `terminals` row (`tenant`, `state` as JSON).
    pub(crate) fn from_row(id: &str, tenant: &str, state: &str) -> anyhow::Result<Self> {
        let state: TerminalState = serde_json::from_str(state)
            .with_context(|| format!("stored state of terminal {id} does not parse"))?;
        Ok(Self::stored(TenantSlug::parse(tenant)?, state))
    }
}

impl Store {
    /// Writes a batch in one transaction and returns one outcome per report, in order.
    /// `now` decides time-dependent campaign causes (has distribution started?).
    ///
    /// On SQLite the batch runs on a blocking thread with its own native connection
    /// and cached prepared statements ([`crate::write_sqlite`]); on PostgreSQL it goes
    /// through the pool with one statement per table ([`crate::write_pg`]). Both apply
    /// the same plan (below).
    pub async fn write_batch(
        &self,
        batch: Arc<[IncomingReport]>,
        campaigns: Arc<Vec<Campaign>>,
        now: DateTime<FixedOffset>,
    ) -> anyhow::Result<Vec<Outcome>> {
        self.write_batch_in_turn(batch, campaigns, now, Turn::default())
            .await
    }

    /// How many batches one consumer may have this store write at once: one on
    /// SQLite, which has one writer; two on PostgreSQL, where a batch's per-terminal
    /// locks ([`crate::lock`]) keep batches that share a terminal in order and let
    /// the rest run side by side on two connections.
    pub fn batches_in_flight(&self) -> usize {
        if self.sqlite_writer.is_some() { 1 } else { 2 }
    }

    /// [`Store::write_batch`] for a batch written while the one before it may still
    /// be running ([`Store::batches_in_flight`]): on PostgreSQL it takes its locks
    /// only once that batch holds all of its own (`turn.after`), and says when it
    /// holds its own (`turn.locked`). A terminal in both batches is therefore applied
    /// in delivery order, as if the batches ran one after the other.
    pub async fn write_batch_in_turn(
        &self,
        batch: Arc<[IncomingReport]>,
        campaigns: Arc<Vec<Campaign>>,
        now: DateTime<FixedOffset>,
        turn: Turn,
    ) -> anyhow::Result<Vec<Outcome>> {
        if let Some(writer) = &self.sqlite_writer {
            let writer = writer.clone();
            return tokio::task::spawn_blocking(move || {
                writer.write_batch(&batch, &campaigns, now)
            })
            .await
            .context("the SQLite writer thread panicked")?;
        }
        let batch: &[IncomingReport] = &batch;
        let campaigns: &[Campaign] = &campaigns;
        let txn = self
            .db
            .begin()
            .await
            .context("beginning the batch transaction")?;
        if let Some(after) = turn.after {
            // An error means the batch before ended without locking (it failed and
            // will retry on its own): nothing left to wait for.
            let _ = after.await;
        }
        // Other replicas may hold batches of the same terminals (crate::lock).
        let ids = terminal_ids(batch);
        crate::lock::lock_terminals(&txn, ids.iter().map(String::as_str)).await?;
        if let Some(locked) = turn.locked {
            // The batch after this one may have ended already; nobody to tell.
            let _ = locked.send(());
        }
        // Reports that still carry a code moved by 承継 are filed under the new code;
        // read inside the transaction, after the locks, so a move and a batch never
        // interleave.
        let successions = crate::succession::load(&txn).await?;
        let batch = remap(batch, &successions);
        let outcomes = write_in(&txn, &batch, &ids, campaigns, now).await?;
        txn.commit().await.context("committing the batch")?;
        Ok(outcomes)
    }
}

/// A batch's place behind the one before it when several are written at once
/// ([`Store::write_batch_in_turn`]). The default waits for nobody and tells nobody.
#[derive(Debug, Default)]
pub struct Turn {
    /// Fires when the batch before holds all of its locks.
    pub after: Option<tokio::sync::oneshot::Receiver<()>>,
    /// Fired once this batch holds all of its locks.
    pub locked: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Turn {
    /// The turn of the next batch in a row of batches, given the receiver that the
    /// previous batch's turn fires (none for the first); returns the receiver this
    /// batch will fire, for the batch after it.
    pub fn next(
        previous: Option<tokio::sync::oneshot::Receiver<()>>,
    ) -> (Self, tokio::sync::oneshot::Receiver<()>) {
        let (locked, fired) = tokio::sync::oneshot::channel();
        (
            Self {
                after: previous,
                locked: Some(locked),
            },
            fired,
        )
    }
}

/// The batch with every report that still names a code moved by 承継 filed under the
/// new code (borrowed as is when no succession is recorded).
pub(crate) fn remap<'a>(
    batch: &'a [IncomingReport],
    successions: &crate::succession::Successions,
) -> std::borrow::Cow<'a, [IncomingReport]> {
    if successions.is_empty() {
        return std::borrow::Cow::Borrowed(batch);
    }
    std::borrow::Cow::Owned(
        batch
            .iter()
            .map(|incoming| {
                let mut incoming = incoming.clone();
                let r = &mut incoming.report;
                r.clinic_code =
                    successions.resolve(&incoming.tenant, &r.terminal_id, r.clinic_code);
                incoming
            })
            .collect(),
    )
}

/// The distinct terminals of a batch.
pub(crate) fn terminal_ids(batch: &[IncomingReport]) -> Vec<String> {
    batch
        .iter()
        .map(|i| i.report.terminal_id.to_string())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect()
}

/// The batch on PostgreSQL: the shared plan, with I/O from [`crate::write_pg`].
/// `ids` are the batch's distinct terminals, already locked (承継 moves clinics,
/// never terminals, so they hold for the remapped batch too).
async fn write_in(
    txn: &DatabaseTransaction,
    batch: &[IncomingReport],
    ids: &[String],
    campaigns: &[Campaign],
    now: DateTime<FixedOffset>,
) -> anyhow::Result<Vec<Outcome>> {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; batch.len()];
    let mut terminals = write_pg::load_terminals(txn, ids).await?;
    let candidates = screen(batch, &mut terminals, &mut outcomes);
    let inserted = write_pg::append_history(txn, batch, &candidates).await?;
    let fresh = apply_fresh(
        batch,
        &candidates,
        &inserted,
        &mut terminals,
        campaigns,
        &mut outcomes,
    );
    let fresh_reports = fresh.reports();
    write_pg::append_reader_errors(txn, batch, &fresh_reports).await?;
    let last_received = last_received(batch, &fresh_reports, now);
    write_pg::upsert_terminals(txn, &terminals, last_received).await?;
    ensure_clinics(txn, &terminals, now).await?;
    let touched: Vec<String> = fresh.by_terminal.keys().cloned().collect();
    if !campaigns.is_empty() && !touched.is_empty() {
        let before = write_pg::load_campaign_states(txn, &touched).await?;
        let (rows, deltas) = plan_campaign_states(
            &terminals,
            &touched,
            campaigns,
            &before,
            &fresh.sightings,
            now,
        );
        write_pg::upsert_campaign_states(txn, &rows, now).await?;
        deltas.apply(txn).await?;
    }
    Ok(finish(outcomes))
}

/// Every outcome decided; a report the plan never reached is a duplicate.
pub(crate) fn finish(outcomes: Vec<Option<Outcome>>) -> Vec<Outcome> {
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or(Outcome::Duplicate))
        .collect()
}

/// Step 1: refuses what the store cannot take and drops in-batch duplicates; returns
/// the indices to append to the history. A terminal new to the store gets an empty
/// entry in `terminals` owned by the first tenant that reports it.
pub(crate) fn screen(
    batch: &[IncomingReport],
    terminals: &mut HashMap<String, Loaded>,
    outcomes: &mut [Option<Outcome>],
) -> Vec<usize> {
    let mut candidates = Vec::with_capacity(batch.len());
    let mut keys_in_batch = HashSet::with_capacity(batch.len());
    for (i, incoming) in batch.iter().enumerate() {
        let r = &incoming.report;
        let id = r.terminal_id.to_string();
        if i64::try_from(r.seq).is_err() {
            outcomes[i] = Some(Outcome::Refused {
                reason: "invalid_field",
                detail: format!(
                    "seq: {} is above 9223372036854775807, which this service cannot store",
                    r.seq
                ),
            });
            continue;
        }
        let owner = terminals.entry(id.clone()).or_insert_with(|| Loaded {
            tenant: incoming.tenant.clone(),
            state: None,
            changed: false,
            stored_clinic: None,
        });
        if owner.tenant != incoming.tenant {
            outcomes[i] = Some(Outcome::Refused {
                reason: "terminal_tenant_mismatch",
                detail: format!(
                    "terminal {id} belongs to tenant {}, not {}",
                    owner.tenant, incoming.tenant
                ),
            });
            continue;
        }
        if !keys_in_batch.insert((id, r.seq)) {
            outcomes[i] = Some(Outcome::Duplicate);
            continue;
        }
        candidates.push(i);
    }
    candidates
}

/// What step 3 produced: the newly stored reports per terminal, and when each
/// terminal was first seen in this batch during a campaign's distribution.
pub(crate) struct Fresh {
    pub(crate) by_terminal: BTreeMap<String, Vec<usize>>,
    pub(crate) sightings: HashMap<(String, String), DateTime<FixedOffset>>,
}

impl Fresh {
    /// Indices of every newly stored report.
    pub(crate) fn reports(&self) -> Vec<usize> {
        self.by_terminal.values().flatten().copied().collect()
    }
}

/// Step 3: applies what the history took as new (`inserted`) to the current state.
pub(crate) fn apply_fresh(
    batch: &[IncomingReport],
    candidates: &[usize],
    inserted: &HashSet<(String, u64)>,
    terminals: &mut HashMap<String, Loaded>,
    campaigns: &[Campaign],
    outcomes: &mut [Option<Outcome>],
) -> Fresh {
    let mut by_terminal: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for &i in candidates {
        let r = &batch[i].report;
        let id = r.terminal_id.to_string();
        if inserted.contains(&(id.clone(), r.seq)) {
            by_terminal.entry(id).or_default().push(i);
        } else {
            outcomes[i] = Some(Outcome::Duplicate);
        }
    }
    let mut sightings: HashMap<(String, String), DateTime<FixedOffset>> = HashMap::new();
    // In arrival order, exactly as if each report came alone: a report older than
    // one already applied is stale even inside one batch. (Sorting by seq would let a
    // late, stale report fill fields that the newer one lacks, so the state would
    // depend on how deliveries happened to be batched.)
    for (id, indices) in &by_terminal {
        let Some(loaded) = terminals.get_mut(id) else {
            continue;
        };
        for &i in indices {
            let report = &batch[i].report;
            let applied = match &mut loaded.state {
                Some(state) => state.apply(report),
                None => {
                    loaded.state = Some(TerminalState::from_first(report));
                    Applied::Newer
                }
            };
            outcomes[i] = Some(match applied {
                Applied::Newer => {
                    loaded.changed = true;
                    Outcome::Applied
                }
                Applied::Stale => Outcome::HistoryOnly,
            });
            for campaign in campaigns {
                if campaign.distributing_at(report.observed_at) {
                    let key = (id.clone(), campaign.id.clone());
                    let seen = sightings.entry(key).or_insert(report.observed_at);
                    *seen = Ord::min(*seen, report.observed_at);
                }
            }
        }
    }
    Fresh {
        by_terminal,
        sightings,
    }
}

/// When the newest of the fresh reports arrived (`now` if none is fresh).
pub(crate) fn last_received(
    batch: &[IncomingReport],
    fresh: &[usize],
    now: DateTime<FixedOffset>,
) -> DateTime<FixedOffset> {
    fresh
        .iter()
        .map(|&i| batch[i].received_at)
        .max()
        .unwrap_or(now)
}

/// Reader errors of the fresh reports: (report, index within the report, error).
pub(crate) fn reader_error_rows<'a>(
    batch: &'a [IncomingReport],
    fresh: &[usize],
) -> Vec<(&'a IncomingReport, usize, &'a fleet_protocol::ReaderError)> {
    fresh
        .iter()
        .flat_map(|&i| {
            let incoming = &batch[i];
            let errors = incoming
                .report
                .reader
                .as_ref()
                .and_then(|r| r.errors.as_ref());
            errors
                .into_iter()
                .flatten()
                .enumerate()
                .map(move |(idx, e)| (incoming, idx, e))
        })
        .collect()
}

/// Terminals whose state this batch changed.
pub(crate) fn changed_terminals(
    terminals: &HashMap<String, Loaded>,
) -> Vec<(&String, &Loaded, &TerminalState)> {
    terminals
        .iter()
        .filter(|(_, l)| l.changed)
        .filter_map(|(id, l)| l.state.as_ref().map(|s| (id, l, s)))
        .collect()
}

/// Clinics that may not be recorded yet: only a new terminal or one that moved can
/// name one.
pub(crate) fn clinics_to_ensure(
    terminals: &HashMap<String, Loaded>,
) -> Vec<(&str, fleet_protocol::ClinicCode)> {
    let clinics: HashSet<(&str, fleet_protocol::ClinicCode)> = terminals
        .values()
        .filter(|l| l.changed)
        .filter_map(|l| l.state.as_ref().map(|s| (l, s.clinic_code)))
        .filter(|(l, code)| l.stored_clinic != Some(*code))
        .map(|(l, code)| (l.tenant.as_str(), code))
        .collect();
    clinics.into_iter().collect()
}

fn col(name: &str) -> Alias {
    Alias::new(name)
}

async fn ensure_clinics(
    txn: &DatabaseTransaction,
    terminals: &HashMap<String, Loaded>,
    now: DateTime<FixedOffset>,
) -> anyhow::Result<()> {
    let clinics = clinics_to_ensure(terminals);
    for chunk in clinics.chunks(ROWS_PER_STATEMENT) {
        let mut insert = Query::insert();
        insert.into_table(col("clinics")).columns([
            col("tenant"),
            col("clinic_code"),
            col("prefecture"),
            col("area"),
            col("created_at"),
        ]);
        for (tenant, code) in chunk {
            insert.values([
                (*tenant).into(),
                code.as_str().into(),
                code.prefecture().code().into(),
                code.area().as_str().into(),
                now.into(),
            ])?;
        }
        insert.on_conflict(
            OnConflict::columns([col("tenant"), col("clinic_code")])
                .do_nothing()
                .to_owned(),
        );
        txn.execute(&insert).await.context("recording clinics")?;
    }
    Ok(())
}

/// A campaign state as stored before this batch.
#[derive(Clone, Debug)]
pub(crate) struct Stored {
    pub(crate) prefecture: String,
    pub(crate) clinic_code: String,
    pub(crate) state: String,
    pub(crate) cause: String,
    pub(crate) seen: Option<DateTime<FixedOffset>>,
}

/// Re-assesses `campaigns` for the `touched` terminals and writes the states that
/// changed, with the counters' deltas; for writers other than an ingest batch, on
/// either database.
pub(crate) async fn upsert_campaign_states(
    txn: &DatabaseTransaction,
    terminals: &HashMap<String, Loaded>,
    touched: &[String],
    campaigns: &[Campaign],
    sightings: &HashMap<(String, String), DateTime<FixedOffset>>,
    now: DateTime<FixedOffset>,
) -> anyhow::Result<()> {
    if campaigns.is_empty() || touched.is_empty() {
        return Ok(());
    }
    // Earlier sightings during distribution, and what each state was before, so the
    // rollout counters move by exactly the change.
    let mut before: HashMap<(String, String), Stored> = HashMap::new();
    for chunk in touched.chunks(ROWS_PER_STATEMENT) {
        let select = Query::select()
            .columns([
                col("terminal_id"),
                col("campaign_id"),
                col("seen_in_distribution_at"),
                col("prefecture"),
                col("clinic_code"),
                col("state"),
                col("cause"),
            ])
            .from(col("campaign_states"))
            .and_where(Expr::col(col("terminal_id")).is_in(chunk.iter().cloned()))
            .to_owned();
        for row in txn
            .query_all(&select)
            .await
            .context("loading campaign states")?
        {
            let id: String = row.try_get("", "terminal_id")?;
            let campaign: String = row.try_get("", "campaign_id")?;
            let at: Option<DateTime<FixedOffset>> = row.try_get("", "seen_in_distribution_at")?;
            let stored = Stored {
                prefecture: row.try_get("", "prefecture")?,
                clinic_code: row.try_get("", "clinic_code")?,
                state: row.try_get("", "state")?,
                cause: row.try_get("", "cause")?,
                seen: at,
            };
            before.insert((id, campaign), stored);
        }
    }
    let (rows, deltas) =
        plan_campaign_states(terminals, touched, campaigns, &before, sightings, now);
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut insert = Query::insert();
        insert.into_table(col("campaign_states")).columns([
            col("terminal_id"),
            col("campaign_id"),
            col("tenant"),
            col("prefecture"),
            col("clinic_code"),
            col("state"),
            col("cause"),
            col("seen_in_distribution_at"),
            col("updated_at"),
        ]);
        for row in chunk {
            insert.values([
                row.terminal_id.as_str().into(),
                row.campaign_id.as_str().into(),
                row.tenant.into(),
                row.prefecture.as_str().into(),
                row.clinic_code.into(),
                row.state.into(),
                row.cause.into(),
                row.seen_in_distribution_at.into(),
                now.into(),
            ])?;
        }
        insert.on_conflict(
            OnConflict::columns([col("terminal_id"), col("campaign_id")])
                .update_columns([
                    col("prefecture"),
                    col("clinic_code"),
                    col("state"),
                    col("cause"),
                    col("seen_in_distribution_at"),
                    col("updated_at"),
                ])
                .to_owned(),
        );
        txn.execute(&insert)
            .await
            .context("upserting campaign states")?;
    }
    deltas.apply(txn).await
}

/// One campaign-state row to upsert.
pub(crate) struct CampaignRow<'a> {
    pub(crate) terminal_id: &'a String,
    pub(crate) campaign_id: &'a String,
    pub(crate) tenant: &'a str,
    pub(crate) prefecture: String,
    pub(crate) clinic_code: &'a str,
    pub(crate) state: &'static str,
    pub(crate) cause: &'static str,
    pub(crate) seen_in_distribution_at: Option<DateTime<FixedOffset>>,
}

/// Step 4: the campaign states of the touched terminals that differ from what is
/// stored (`before`), and the counter changes that moves them exactly.
/// A terminal seen during distribution before (stored) or in this batch
/// (`sightings`) keeps the earlier of the two times: when it was *first* seen
/// powered on while its campaign was distributing. Assessment only asks whether it
/// ever was; keeping the latest time instead would change the row with every
/// report once distribution runs all day (from 2026-01-31 for 5.1.0), rewriting it
/// and its rollout index entry for nothing.
pub(crate) fn plan_campaign_states<'a>(
    terminals: &'a HashMap<String, Loaded>,
    touched: &'a [String],
    campaigns: &'a [Campaign],
    before: &HashMap<(String, String), Stored>,
    sightings: &HashMap<(String, String), DateTime<FixedOffset>>,
    now: DateTime<FixedOffset>,
) -> (Vec<CampaignRow<'a>>, CounterDeltas) {
    let mut seen: HashMap<(String, String), DateTime<FixedOffset>> = before
        .iter()
        .filter_map(|(key, b)| b.seen.map(|at| (key.clone(), at)))
        .collect();
    for (key, at) in sightings {
        let entry = seen.entry(key.clone()).or_insert(*at);
        *entry = Ord::min(*entry, *at);
    }
    let mut rows = Vec::new();
    let mut deltas = CounterDeltas::default();
    for id in touched {
        let Some(loaded) = terminals.get(id) else {
            continue;
        };
        let Some(state) = &loaded.state else { continue };
        let prefecture = state.clinic_code.prefecture().code();
        for campaign in campaigns {
            let key = (id.clone(), campaign.id.clone());
            let sighting = seen.get(&key).copied();
            let assessment = campaign.assess(state, sighting.is_some(), now);
            let stored = before.get(&key);
            // Most reports are heartbeats that change nothing here: leave those rows
            // (and their index entries) alone.
            let unchanged = stored.is_some_and(|b| {
                b.state == assessment.state.as_str()
                    && b.cause == assessment.cause.as_str()
                    && b.seen == sighting
                    && b.clinic_code == state.clinic_code.as_str()
                    && b.prefecture == prefecture
            });
            if unchanged {
                continue;
            }
            if let Some(stored) = stored {
                deltas.add(
                    loaded.tenant.as_str(),
                    &stored.prefecture,
                    &campaign.id,
                    &stored.state,
                    -1,
                );
            }
            deltas.add(
                loaded.tenant.as_str(),
                &prefecture,
                &campaign.id,
                assessment.state.as_str(),
                1,
            );
            rows.push(CampaignRow {
                terminal_id: id,
                campaign_id: &campaign.id,
                tenant: loaded.tenant.as_str(),
                prefecture: prefecture.clone(),
                clinic_code: state.clinic_code.as_str(),
                state: assessment.state.as_str(),
                cause: assessment.cause.as_str(),
                seen_in_distribution_at: sighting,
            });
        }
    }
    (rows, deltas)
}

/// Changes to the rollout counters, netted per key before they are written.
#[derive(Default)]
pub(crate) struct CounterDeltas(pub(crate) BTreeMap<(String, String, String, String), i64>);

impl CounterDeltas {
    /// Adds `n` terminals to tenant × prefecture × campaign × state.
    pub(crate) fn add(
        &mut self,
        tenant: &str,
        prefecture: &str,
        campaign: &str,
        state: &str,
        n: i64,
    ) {
        let key = (
            tenant.to_owned(),
            prefecture.to_owned(),
            campaign.to_owned(),
            state.to_owned(),
        );
        *self.0.entry(key).or_default() += n;
    }

    /// Writes the non-zero changes: `terminals = terminals + change`.
    pub(crate) async fn apply(self, txn: &impl ConnectionTrait) -> anyhow::Result<()> {
        let changes: Vec<_> = self.0.into_iter().filter(|(_, n)| *n != 0).collect();
        for chunk in changes.chunks(ROWS_PER_STATEMENT) {
            let mut insert = Query::insert();
            insert.into_table(col("rollout_counters")).columns([
                col("tenant"),
                col("prefecture"),
                col("campaign_id"),
                col("state"),
                col("terminals"),
            ]);
            for ((tenant, prefecture, campaign, state), n) in chunk {
                insert.values([
                    tenant.clone().into(),
                    prefecture.clone().into(),
                    campaign.clone().into(),
                    state.clone().into(),
                    (*n).into(),
                ])?;
            }
            insert.on_conflict(
                OnConflict::columns([
                    col("tenant"),
                    col("prefecture"),
                    col("campaign_id"),
                    col("state"),
                ])
                .value(
                    col("terminals"),
                    Expr::col((col("rollout_counters"), col("terminals")))
                        .add(Expr::col((col("excluded"), col("terminals")))),
                )
                .to_owned(),
            );
            txn.execute(&insert)
                .await
                .context("updating rollout counters")?;
        }
        Ok(())
    }
}
