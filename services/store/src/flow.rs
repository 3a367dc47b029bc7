//! The order of the steps of every write, once, over either database's [`Tx`].
//!
//! For a batch of reports, in one transaction:
//! 1. lock the batch's terminals (PostgreSQL) and read the recorded 承継, so that a
//!    report still naming a moved code is filed under the new one;
//! 2. refuse what the store cannot take and find duplicates by `terminal_id`/`seq`
//!    ([`plan::screen`], [`plan::unstored`]): only a report not newer than its
//!    terminal's state can be one, so only those are looked up;
//! 3. append the rest to the history and apply them to the states in arrival order;
//! 4. record reader errors as events, write the changed states, record new clinics;
//! 5. re-assess every campaign for the touched terminals and move the rollout
//!    counters by exactly the change;
//! 6. judge the touched terminals' findings ([`crate::findings`]) and write what
//!    changed, so a finding is never behind the state it was judged from.
//!
//! Adding a campaign and 承継 reuse steps 1 and 5 ([`assess_page`],
//! [`move_terminals`]). The caller acks messages only after the commit that follows.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use chrono::{DateTime, FixedOffset};
use fleet_protocol::findings::{ClinicHours, FindingKind, Thresholds};
use fleet_protocol::{Campaign, Cause, ClinicCode, TenantSlug, TerminalState};
use tracing::Instrument;
use uuid::Uuid;

use crate::adapter::Tx;
use crate::findings::{self, FindingWrites, RulesContext, Subject};
use crate::plan::{self, IncomingReport, Loaded, Outcome};

/// A batch's place behind the one before it when several are written at once
/// ([`crate::Store::write_batch_in_turn`]). The default waits for nobody and tells
/// nobody.
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

/// What a batch did: one outcome per report, in order, and every terminal it loaded
/// as it will be once committed (the SQLite writer keeps them in memory).
pub(crate) struct Written {
    pub(crate) outcomes: Vec<Outcome>,
    pub(crate) terminals: HashMap<String, Loaded>,
}

/// Writes a batch of reports (steps 1–5 above). `now` decides time-dependent
/// campaign causes (has distribution started?).
pub(crate) async fn write_batch<T: Tx>(
    tx: &mut T,
    batch: &[IncomingReport],
    campaigns: &[Campaign],
    now: DateTime<FixedOffset>,
    turn: Turn,
    rules: Option<&Thresholds>,
) -> anyhow::Result<Written> {
    let ids = plan::terminal_ids(batch);
    if let Some(after) = turn.after {
        // An error means the batch before ended without locking (it failed and will
        // retry on its own): nothing left to wait for.
        let _ = after.await;
    }
    tx.lock_terminals(&ids).await?;
    if let Some(locked) = turn.locked {
        // The batch after this one may have ended already; nobody to tell.
        let _ = locked.send(());
    }
    // Read after the locks, so a 承継 and a batch never interleave. 承継 moves
    // clinics, never terminals, so `ids` hold for the remapped batch too.
    let successions = tx.successions().await?;
    let batch = plan::remap(batch, &successions);
    let batch: &[IncomingReport] = &batch;

    let mut outcomes: Vec<Option<Outcome>> = vec![None; batch.len()];
    let mut terminals = tx.load_terminals(&ids).await?;
    let screened = plan::screen(batch, &mut terminals, &mut outcomes);
    let stored = if screened.maybe_stored.is_empty() {
        Default::default()
    } else {
        tx.stored_reports(&screened.maybe_stored).await?
    };
    let appended = plan::unstored(batch, &screened.candidates, &stored, &mut outcomes);
    let inserted = if appended.is_empty() {
        Default::default()
    } else {
        tx.append_history(batch, &appended).await?
    };
    let fresh = plan::apply_fresh(
        batch,
        &appended,
        &inserted,
        &mut terminals,
        campaigns,
        &mut outcomes,
        rules.is_some(),
    );
    let errors = plan::reader_error_rows(batch, &fresh.reports());
    if !errors.is_empty() {
        tx.append_reader_errors(&errors).await?;
    }
    let changed = plan::changed_terminals(&terminals, now);
    if !changed.is_empty() {
        tx.store_terminals(&changed).await?;
    }
    let clinics: Vec<(&str, ClinicCode)> = fresh
        .clinics
        .iter()
        .map(|(tenant, code)| (tenant.as_str(), *code))
        .collect();
    if !clinics.is_empty() {
        tx.ensure_clinics(&clinics, now).await?;
    }
    let touched = fresh.touched();
    let seen =
        write_campaign_states(tx, &terminals, &touched, campaigns, &fresh.sightings, now).await?;
    if rules.is_some() && !fresh.reporting.is_empty() {
        tx.count_reporting(&fresh.reporting).await?;
    }
    if let Some(thresholds) = rules {
        let with_errors: HashSet<String> = errors
            .iter()
            .map(|e| e.incoming.report.terminal_id.to_string())
            .collect();
        write_findings(
            tx,
            &terminals,
            &touched,
            campaigns,
            &seen,
            &with_errors,
            &fresh.steps,
            thresholds,
            None,
            now,
        )
        // A child of ingest's `store.write_batch` span when traces are exported.
        .instrument(tracing::debug_span!(
            "findings.evaluate",
            terminals = touched.len()
        ))
        .await?;
    }
    Ok(Written {
        outcomes: plan::finish(outcomes),
        terminals,
    })
}

/// Step 5: re-assesses `campaigns` for the `touched` terminals, writes the states
/// that changed and moves the counters by the change.
async fn write_campaign_states<T: Tx>(
    tx: &mut T,
    terminals: &HashMap<String, Loaded>,
    touched: &[String],
    campaigns: &[Campaign],
    sightings: &HashMap<(String, String), DateTime<FixedOffset>>,
    now: DateTime<FixedOffset>,
) -> anyhow::Result<HashSet<(String, String)>> {
    if campaigns.is_empty() || touched.is_empty() {
        return Ok(HashSet::new());
    }
    let before = tx.load_campaign_states(touched).await?;
    let seen = before
        .iter()
        .filter(|(_, b)| b.seen.is_some())
        .map(|(key, _)| key.clone())
        .chain(sightings.keys().cloned())
        .collect();
    let (rows, deltas) =
        plan::plan_campaign_states(terminals, touched, campaigns, &before, sightings, now);
    if !rows.is_empty() {
        tx.store_campaign_states(&rows, now).await?;
    }
    if !deltas.changes().is_empty() {
        tx.move_counters(&deltas).await?;
    }
    Ok(seen)
}

/// Step 6: judges the findings of `ids` (contract §6) and writes what changed.
///
/// At ingest (`at` is `None`) each terminal is judged at its newest report's
/// `observed_at`, so a replay of the past yields the findings of that past; the
/// sweep passes its clock. Reader errors are read only for terminals that got some
/// in this batch (`with_errors`, already appended) or hold a reader fault: for
/// every other terminal the count cannot have reached the threshold.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn write_findings<T: Tx>(
    tx: &mut T,
    terminals: &HashMap<String, Loaded>,
    ids: &[String],
    campaigns: &[Campaign],
    seen: &HashSet<(String, String)>,
    with_errors: &HashSet<String>,
    steps: &HashMap<String, Vec<TerminalState>>,
    thresholds: &Thresholds,
    at: Option<DateTime<FixedOffset>>,
    now: DateTime<FixedOffset>,
) -> anyhow::Result<()> {
    let subjects: Vec<(&String, &Loaded, &TerminalState)> = ids
        .iter()
        .filter_map(|id| {
            let loaded = terminals.get(id)?;
            Some((id, loaded, loaded.state.as_ref()?))
        })
        .collect();
    if subjects.is_empty() {
        return Ok(());
    }
    let present: Vec<String> = subjects.iter().map(|(id, ..)| (*id).clone()).collect();
    let open = tx.open_findings(&present).await?;
    let context = RulesContext {
        thresholds: thresholds.clone(),
        windows: tx.windows().await?,
    };
    let mut clinics: Vec<(String, ClinicCode)> = subjects
        .iter()
        .map(|(_, l, s)| (l.tenant.as_str().to_owned(), s.clinic_code))
        .collect();
    clinics.sort_unstable();
    clinics.dedup();
    let hours = tx.clinic_hours(&clinics).await?;
    let need_errors: Vec<String> = subjects
        .iter()
        .filter(|(id, ..)| {
            with_errors.contains(*id)
                || open
                    .get(*id)
                    .is_some_and(|rows| rows.iter().any(|r| r.kind == FindingKind::ReaderFault))
        })
        .map(|(id, ..)| (*id).clone())
        .collect();
    let errors = if need_errors.is_empty() {
        HashMap::new()
    } else {
        let earliest = subjects
            .iter()
            .flat_map(|(id, _, s)| {
                let first = steps.get(*id).and_then(|v| v.first()).unwrap_or(s);
                [at.unwrap_or(first.last_observed_at)]
            })
            .min()
            .unwrap_or(now);
        tx.recent_reader_errors(&need_errors, earliest - thresholds.reader_fault_within)
            .await?
    };
    let default_hours = ClinicHours::default();
    let mut writes = FindingWrites::default();
    for (id, loaded, state) in subjects {
        let rows = open.get(id).map(Vec::as_slice).unwrap_or_default();
        let inputs: Vec<(&Campaign, bool)> = campaigns
            .iter()
            .map(|c| (c, seen.contains(&(id.clone(), c.id.clone()))))
            .collect();
        let errors = errors.get(id).map(Vec::as_slice).unwrap_or_default();
        // Judged after each report the batch applied, in order, each at its own
        // instant, carrying the conditions forward: the same verdict as if the
        // reports had come one per batch.
        let mut previous = findings::conditions_of(rows);
        let mut verdict = None;
        for step in steps.get(id).into_iter().flatten().chain([state]) {
            let subject = Subject {
                tenant: &loaded.tenant,
                state: step,
                hours: hours
                    .get(&(loaded.tenant.as_str().to_owned(), step.clinic_code))
                    .unwrap_or(&default_hours),
                errors,
                campaigns: &inputs,
            };
            let judged = findings::evaluate(
                &subject,
                &context,
                &previous,
                at.unwrap_or(step.last_observed_at),
            );
            previous = judged.conditions.clone();
            verdict = Some(judged);
        }
        if let Some(verdict) = verdict {
            findings::plan_terminal(&loaded.tenant, id, rows, verdict, &mut writes);
        }
    }
    if !writes.is_empty() {
        tx.write_findings(&writes, now).await?;
    }
    Ok(())
}

/// One page of the sweep: judges up to `limit` terminals after `after` at `now`
/// (what time alone changes: silence, clinic opening, a window's end, certificate
/// days). Returns the last id and how many were judged; `None` when none is left.
pub(crate) async fn sweep_page<T: Tx>(
    tx: &mut T,
    campaigns: &[Campaign],
    thresholds: &Thresholds,
    after: &str,
    limit: u64,
    now: DateTime<FixedOffset>,
) -> anyhow::Result<Option<(String, u64)>> {
    let ids = tx.terminal_ids_after(after, limit).await?;
    let Some(last) = ids.last().cloned() else {
        return Ok(None);
    };
    tx.lock_terminals(&ids).await?;
    let terminals = tx.read_terminals(&ids).await?;
    let seen: HashSet<(String, String)> = if campaigns.is_empty() {
        HashSet::new()
    } else {
        tx.load_campaign_states(&ids)
            .await?
            .into_iter()
            .filter(|(_, b)| b.seen.is_some())
            .map(|(key, _)| key)
            .collect()
    };
    write_findings(
        tx,
        &terminals,
        &ids,
        campaigns,
        &seen,
        &HashSet::new(),
        &HashMap::new(),
        thresholds,
        Some(now),
        now,
    )
    .await?;
    Ok(Some((last, ids.len() as u64)))
}

/// Assesses one page of terminals for `campaign` (all of them, or only those whose
/// cause in it is `only`), after terminal id `after`. Returns the last id of the
/// page and how many were assessed; `None` when no terminal is left.
///
/// A terminal's earlier sightings during the campaign's windows are not searched
/// for in the history: until its next report, "seen during distribution" is judged
/// from its newest report only.
pub(crate) async fn assess_page<T: Tx>(
    tx: &mut T,
    campaign: &Campaign,
    only: Option<Cause>,
    after: &str,
    limit: u64,
    now: DateTime<FixedOffset>,
) -> anyhow::Result<Option<(String, u64)>> {
    let ids = tx.terminal_page(after, limit, &campaign.id, only).await?;
    let Some(last) = ids.last().cloned() else {
        return Ok(None);
    };
    tx.lock_terminals(&ids).await?;
    // Read after the locks: the states as batches in flight left them.
    let terminals = tx.load_terminals(&ids).await?;
    let mut sightings = HashMap::new();
    for (id, loaded) in &terminals {
        if let Some(state) = &loaded.state
            && campaign.distributing_at(state.last_observed_at)
        {
            sightings.insert((id.clone(), campaign.id.clone()), state.last_observed_at);
        }
    }
    let mut present: Vec<String> = terminals.keys().cloned().collect();
    present.sort_unstable();
    write_campaign_states(
        tx,
        &terminals,
        &present,
        std::slice::from_ref(campaign),
        &sightings,
        now,
    )
    .await?;
    Ok(Some((last, present.len() as u64)))
}

/// 承継: moves `tenant`'s terminals at `from` (or only `terminal`) to `to`, with
/// their campaign states and counters, and records the succession so that later
/// reports still carrying the old code are filed under the new one. The history
/// keeps every report as it was received, old code included: that is what happened.
/// Returns how many terminals moved.
pub(crate) async fn move_terminals<T: Tx>(
    tx: &mut T,
    tenant: &TenantSlug,
    from: ClinicCode,
    to: ClinicCode,
    terminal: Option<Uuid>,
    now: DateTime<FixedOffset>,
) -> anyhow::Result<u64> {
    anyhow::ensure!(from != to, "the new code must differ from the old one");
    tx.record_succession(tenant, from, to, terminal, now)
        .await?;
    // Find them, lock them against batches in flight, then read their states as
    // those batches left them. One that reached the old code in between is left
    // alone here: its next report is filed under the new code by the succession
    // recorded above.
    let ids = tx.terminals_at(tenant, from, terminal).await?;
    tx.lock_terminals(&ids).await?;
    let terminals = tx.load_terminals(&ids).await?;
    let campaign_states = tx.load_campaign_states(&ids).await?;
    let mut by_terminal: HashMap<&str, Vec<(String, plan::Stored)>> = HashMap::new();
    for ((id, campaign), stored) in &campaign_states {
        by_terminal
            .entry(id.as_str())
            .or_default()
            .push((campaign.clone(), stored.clone()));
    }
    let mut deltas = plan::CounterDeltas::default();
    let mut moved = 0;
    for id in &ids {
        let Some(Loaded {
            tenant: owner,
            state: Some(state),
            ..
        }) = terminals.get(id)
        else {
            continue;
        };
        if owner != tenant || state.clinic_code != from {
            continue;
        }
        let mut state = state.clone();
        let states = by_terminal.remove(id.as_str()).unwrap_or_default();
        plan::plan_move(tenant, &mut state, to, &states, &mut deltas);
        tx.move_terminal(id, &state).await?;
        moved += 1;
    }
    if !deltas.changes().is_empty() {
        tx.move_counters(&deltas).await?;
    }
    tx.ensure_clinics(&[(tenant.as_str(), to)], now).await?;
    Ok(moved)
}

/// Runs a future that never waits to its end on the current thread, without a
/// runtime: the SQLite adapter's steps are blocking calls that are ready at once.
/// A future that does wait is a bug in the adapter and an error here, not a hang.
pub(crate) fn run_ready<F: Future>(future: F) -> anyhow::Result<F::Output> {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(output) => Ok(output),
        Poll::Pending => anyhow::bail!("a SQLite write step waited, which it never should"),
    }
}

#[cfg(test)]
mod tests {
    //! The batch flow over an in-memory model of the tables: the property that any
    //! split of one delivery order into batches stores exactly what one report per
    //! batch stores.

    use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

    use chrono::{DateTime, Duration, FixedOffset};
    use fleet_protocol::{Campaign, Cause, ClinicCode, Report, TenantSlug, TerminalState};
    use proptest::prelude::*;
    use uuid::Uuid;

    use super::*;
    use crate::plan::{
        CampaignRow, CounterDeltas, CounterKey, ReaderErrorRow, Stored, Successions, TerminalRow,
    };

    /// The tables a write touches, as values.
    #[derive(Clone, Debug, Default, PartialEq)]
    struct Model {
        /// id → (tenant, state as JSON, received at)
        terminals: BTreeMap<String, (String, String, DateTime<FixedOffset>)>,
        /// (id, seq) → body
        history: BTreeMap<(String, u64), String>,
        /// (id, seq, index in report, code, count)
        reader_errors: BTreeSet<(String, u64, usize, String, u32)>,
        clinics: BTreeSet<(String, String)>,
        campaign_states: BTreeMap<(String, String), Stored>,
        counters: BTreeMap<CounterKey, i64>,
    }

    impl Model {
        fn recount(&self) -> BTreeMap<CounterKey, i64> {
            let mut counts = BTreeMap::new();
            for ((id, campaign), s) in &self.campaign_states {
                let tenant = self.terminals[id].0.clone();
                *counts
                    .entry((
                        tenant,
                        s.prefecture.clone(),
                        campaign.clone(),
                        s.state.clone(),
                    ))
                    .or_default() += 1;
            }
            counts
        }
    }

    impl Tx for Model {
        async fn lock_terminals(&mut self, _: &[String]) -> anyhow::Result<()> {
            Ok(())
        }

        async fn successions(&mut self) -> anyhow::Result<Successions> {
            Ok(Successions::default())
        }

        async fn load_terminals(
            &mut self,
            ids: &[String],
        ) -> anyhow::Result<HashMap<String, Loaded>> {
            ids.iter()
                .filter_map(|id| self.terminals.get(id).map(|t| (id, t)))
                .map(|(id, (tenant, state, _))| {
                    Ok((id.clone(), Loaded::from_row(id, tenant, state)?))
                })
                .collect()
        }

        async fn stored_reports(
            &mut self,
            keys: &[(String, u64)],
        ) -> anyhow::Result<HashSet<(String, u64)>> {
            Ok(keys
                .iter()
                .filter(|k| self.history.contains_key(k))
                .cloned()
                .collect())
        }

        async fn append_history(
            &mut self,
            batch: &[IncomingReport],
            rows: &[usize],
        ) -> anyhow::Result<HashSet<(String, u64)>> {
            let mut inserted = HashSet::new();
            for &i in rows {
                let key = (batch[i].report.terminal_id.to_string(), batch[i].report.seq);
                if !self.history.contains_key(&key) {
                    self.history.insert(key.clone(), batch[i].body.clone());
                    inserted.insert(key);
                }
            }
            Ok(inserted)
        }

        async fn append_reader_errors(
            &mut self,
            rows: &[ReaderErrorRow<'_>],
        ) -> anyhow::Result<()> {
            for row in rows {
                let r = &row.incoming.report;
                let fresh = self.reader_errors.insert((
                    r.terminal_id.to_string(),
                    r.seq,
                    row.idx,
                    row.error.code.clone(),
                    row.error.count,
                ));
                anyhow::ensure!(fresh, "a reader error recorded twice");
            }
            Ok(())
        }

        async fn store_terminals(&mut self, rows: &[TerminalRow<'_>]) -> anyhow::Result<()> {
            for row in rows {
                self.terminals.insert(
                    row.id.to_owned(),
                    (
                        row.loaded.tenant.to_string(),
                        serde_json::to_string(row.state)?,
                        row.received_at,
                    ),
                );
            }
            Ok(())
        }

        async fn ensure_clinics(
            &mut self,
            clinics: &[(&str, ClinicCode)],
            _: DateTime<FixedOffset>,
        ) -> anyhow::Result<()> {
            for (tenant, code) in clinics {
                self.clinics.insert((tenant.to_string(), code.to_string()));
            }
            Ok(())
        }

        async fn load_campaign_states(
            &mut self,
            terminals: &[String],
        ) -> anyhow::Result<HashMap<(String, String), Stored>> {
            Ok(self
                .campaign_states
                .iter()
                .filter(|((id, _), _)| terminals.contains(id))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect())
        }

        async fn store_campaign_states(
            &mut self,
            rows: &[CampaignRow<'_>],
            _: DateTime<FixedOffset>,
        ) -> anyhow::Result<()> {
            for row in rows {
                self.campaign_states.insert(
                    (row.terminal_id.clone(), row.campaign_id.clone()),
                    row.stored(),
                );
            }
            Ok(())
        }

        async fn move_counters(&mut self, deltas: &CounterDeltas) -> anyhow::Result<()> {
            for (key, n) in deltas.changes() {
                let count = self.counters.entry(key.clone()).or_default();
                *count += n;
                if *count == 0 {
                    self.counters.remove(key);
                }
            }
            Ok(())
        }

        async fn insert_campaign(
            &mut self,
            _: &Campaign,
            _: DateTime<FixedOffset>,
        ) -> anyhow::Result<()> {
            anyhow::bail!("not modelled")
        }

        async fn terminal_page(
            &mut self,
            _: &str,
            _: u64,
            _: &str,
            _: Option<Cause>,
        ) -> anyhow::Result<Vec<String>> {
            anyhow::bail!("not modelled")
        }

        async fn record_succession(
            &mut self,
            _: &TenantSlug,
            _: ClinicCode,
            _: ClinicCode,
            _: Option<Uuid>,
            _: DateTime<FixedOffset>,
        ) -> anyhow::Result<()> {
            anyhow::bail!("not modelled")
        }

        async fn terminals_at(
            &mut self,
            _: &TenantSlug,
            _: ClinicCode,
            _: Option<Uuid>,
        ) -> anyhow::Result<Vec<String>> {
            anyhow::bail!("not modelled")
        }

        async fn move_terminal(&mut self, _: &str, _: &TerminalState) -> anyhow::Result<()> {
            anyhow::bail!("not modelled")
        }

        async fn delete_history_before(
            &mut self,
            _: DateTime<FixedOffset>,
            _: u64,
        ) -> anyhow::Result<(u64, u64)> {
            anyhow::bail!("not modelled")
        }

        async fn read_terminals(
            &mut self,
            ids: &[String],
        ) -> anyhow::Result<HashMap<String, Loaded>> {
            self.load_terminals(ids).await
        }

        async fn open_findings(
            &mut self,
            _: &[String],
        ) -> anyhow::Result<HashMap<String, Vec<crate::findings::OpenRow>>> {
            anyhow::bail!("not modelled")
        }

        async fn write_findings(
            &mut self,
            _: &crate::findings::FindingWrites,
            _: DateTime<FixedOffset>,
        ) -> anyhow::Result<()> {
            anyhow::bail!("not modelled")
        }

        async fn clinic_hours(
            &mut self,
            _: &[(String, ClinicCode)],
        ) -> anyhow::Result<HashMap<(String, ClinicCode), fleet_protocol::findings::ClinicHours>>
        {
            anyhow::bail!("not modelled")
        }

        async fn windows(
            &mut self,
        ) -> anyhow::Result<Vec<fleet_protocol::findings::MaintenanceWindow>> {
            anyhow::bail!("not modelled")
        }

        async fn recent_reader_errors(
            &mut self,
            _: &[String],
            _: DateTime<FixedOffset>,
        ) -> anyhow::Result<HashMap<String, Vec<fleet_protocol::ReaderError>>> {
            anyhow::bail!("not modelled")
        }

        async fn terminal_ids_after(&mut self, _: &str, _: u64) -> anyhow::Result<Vec<String>> {
            anyhow::bail!("not modelled")
        }

        async fn count_reporting(
            &mut self,
            _: &BTreeMap<(String, String, DateTime<FixedOffset>), i64>,
        ) -> anyhow::Result<()> {
            anyhow::bail!("not modelled")
        }
    }

    /// One delivery: which terminal, its seq, and what the report says.
    #[derive(Clone, Debug)]
    struct Delivery {
        terminal: u8,
        seq: u64,
        hours: u32,
        face_library: Option<&'static str>,
        downloaded: bool,
        pending: Option<bool>,
        errors: u8,
        osaka: bool,
    }

    fn delivery() -> impl Strategy<Value = Delivery> {
        (
            0u8..3,
            1u64..8,
            0u32..400,
            prop::option::of(prop::sample::select(vec!["5.0.3", "5.1.0"])),
            any::<bool>(),
            prop::option::of(any::<bool>()),
            0u8..3,
            any::<bool>(),
        )
            .prop_map(
                |(terminal, seq, hours, face_library, downloaded, pending, errors, osaka)| {
                    Delivery {
                        terminal,
                        seq,
                        hours,
                        face_library,
                        downloaded,
                        pending,
                        errors,
                        osaka,
                    }
                },
            )
    }

    fn at(text: &str) -> DateTime<FixedOffset> {
        fleet_protocol::rfc3339::parse(text).unwrap()
    }

    fn incoming(d: &Delivery, index: usize) -> IncomingReport {
        let observed = at("2026-01-19T00:00:00+09:00") + Duration::hours(i64::from(d.hours));
        let observed = fleet_protocol::rfc3339::format(&observed, false);
        let mut body = format!(
            r#"{{"schema":"fleet.report.v1","terminal_id":"00000000-0000-4000-8000-00000000000{}","seq":{},"observed_at":"{observed}","clinic_code":"{}""#,
            d.terminal,
            d.seq,
            if d.osaka { "2712345678" } else { "1311111111" },
        );
        if let Some(v) = d.face_library {
            body += &format!(r#","versions":{{"face_library":"{v}"}}"#);
        }
        if d.downloaded {
            body += r#","distribution":{"downloaded":{"face_library":{"version":"5.1.0","at":"2026-01-20T02:00:00+09:00"}}}"#;
        }
        if let Some(p) = d.pending {
            body += &format!(r#","reboot":{{"pending":{p}}}"#);
        }
        if d.errors > 0 {
            let errors: Vec<String> = (0..d.errors)
                .map(|n| format!(r#"{{"code":"0{n}1","at":"{observed}","count":{}}}"#, n + 1))
                .collect();
            body += &format!(r#","reader":{{"errors":[{}]}}"#, errors.join(","));
        }
        body += "}";
        let report = Report::parse(body.as_bytes()).unwrap();
        IncomingReport {
            tenant: TenantSlug::parse("demo").unwrap(),
            report,
            body,
            received_at: at("2026-02-03T00:00:00+09:00") + Duration::seconds(index as i64),
        }
    }

    /// Stores `deliveries` in batches of the given sizes (the rest in one last batch).
    fn store(deliveries: &[IncomingReport], sizes: &[usize]) -> (Model, Vec<Outcome>) {
        let campaigns = [Campaign::face_library_5_1_0()];
        let now = at("2026-01-26T12:00:00+09:00");
        let mut model = Model::default();
        let mut outcomes = Vec::new();
        let mut rest = deliveries;
        let mut sizes = sizes.iter();
        while !rest.is_empty() {
            let size = sizes
                .next()
                .copied()
                .unwrap_or(rest.len())
                .clamp(1, rest.len());
            let (batch, after) = rest.split_at(size);
            let written = run_ready(write_batch(
                &mut model,
                batch,
                &campaigns,
                now,
                Turn::default(),
                None,
            ))
            .unwrap()
            .unwrap();
            outcomes.extend(written.outcomes);
            rest = after;
        }
        (model, outcomes)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any split of one delivery order into batches — with redeliveries, copies
        /// of a seq that say something else, and reports out of order — gives the same
        /// states, history, reader errors, campaign states and counters, and the same
        /// outcome per delivery, as one report per batch; and the counters always
        /// equal a recount.
        #[test]
        fn any_split_into_batches_stores_the_same(
            deliveries in prop::collection::vec(delivery(), 1..30),
            sizes in prop::collection::vec(1usize..12, 0..8),
        ) {
            let deliveries: Vec<IncomingReport> = deliveries
                .iter()
                .enumerate()
                .map(|(i, d)| incoming(d, i))
                .collect();
            let (alone, alone_outcomes) = store(&deliveries, &[1; 30]);
            let (batched, batched_outcomes) = store(&deliveries, &sizes);
            prop_assert_eq!(&alone, &batched);
            prop_assert_eq!(alone_outcomes, batched_outcomes);
            prop_assert_eq!(alone.recount(), alone.counters.clone());
            // The history holds the first body of every (terminal, seq), and nothing
            // else.
            let mut first: BTreeMap<(String, u64), String> = BTreeMap::new();
            for d in &deliveries {
                first
                    .entry((d.report.terminal_id.to_string(), d.report.seq))
                    .or_insert_with(|| d.body.clone());
            }
            prop_assert_eq!(&alone.history, &first);
        }
    }

    /// The same seq again with another `observed_at` (a agent that re-sent it after
    /// a clock fix) is a duplicate: one history row, its reader errors once.
    #[test]
    fn a_seq_is_stored_once_whatever_else_its_copy_says() {
        let d = Delivery {
            terminal: 0,
            seq: 3,
            hours: 10,
            face_library: Some("5.0.3"),
            downloaded: false,
            pending: None,
            errors: 2,
            osaka: true,
        };
        let copy = Delivery {
            hours: 11,
            ..d.clone()
        };
        let newer = Delivery {
            seq: 4,
            errors: 0,
            ..d.clone()
        };
        let deliveries = [incoming(&d, 0), incoming(&newer, 1), incoming(&copy, 2)];
        let (model, outcomes) = store(&deliveries, &[3]);
        assert_eq!(
            outcomes,
            [Outcome::Applied, Outcome::Applied, Outcome::Duplicate]
        );
        assert_eq!(model.history.len(), 2);
        assert_eq!(model.reader_errors.len(), 2);
    }
}
