//! The decisions of a write, with no database in them.
//!
//! Everything that decides what a batch of reports does to the store lives here as
//! plain functions over plain values: which reports are refused, which are
//! duplicates, how the new ones change each terminal's state (in arrival order, as
//! if each came alone), which campaign states change and by how much the rollout
//! counters move. The database adapters ([`crate::sqlite`], [`crate::postgres`]) only
//! load what these functions need and store what they produce, and
//! [`crate::flow`] runs the steps in order over either of them.
//!
//! The invariant the whole store rests on, tested as a property in
//! [`crate::flow`]'s tests: for one delivery order, any split of the deliveries into
//! batches gives the same states, histories and counters as one report per batch.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use anyhow::Context;
use chrono::{DateTime, FixedOffset};
use fleet_protocol::{
    Applied, Campaign, ClinicCode, RejectReason, Report, TenantSlug, TerminalState,
};
use uuid::Uuid;

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
    /// Already stored (the same `terminal_id`/`seq`): nothing changed.
    Duplicate,
    /// Not stored, for a reason that goes to the dead-letter header.
    Refused {
        reason: RejectReason,
        detail: String,
    },
}

/// A terminal as loaded at the start of a write or created within it.
#[derive(Clone, Debug)]
pub(crate) struct Loaded {
    pub(crate) tenant: TenantSlug,
    pub(crate) state: Option<TerminalState>,
    /// Whether this write changed the state (so it must be stored).
    pub(crate) changed: bool,
    /// The clinic as stored before this write; `None` for a terminal new to the store.
    pub(crate) stored_clinic: Option<ClinicCode>,
    /// When the newest report applied by this write arrived.
    pub(crate) received_at: Option<DateTime<FixedOffset>>,
}

impl Loaded {
    /// A terminal as committed: its owner and its state.
    pub(crate) fn stored(tenant: TenantSlug, state: TerminalState) -> Self {
        Self {
            tenant,
            stored_clinic: Some(state.clinic_code),
            state: Some(state),
            changed: false,
            received_at: None,
        }
    }

    /// A terminal from its stored columns (`tenant`, `state` as JSON).
    pub(crate) fn from_row(id: &str, tenant: &str, state: &str) -> anyhow::Result<Self> {
        let state: TerminalState = serde_json::from_str(state)
            .with_context(|| format!("stored state of terminal {id} does not parse"))?;
        Ok(Self::stored(TenantSlug::parse(tenant)?, state))
    }

    /// The newest `seq` applied to this terminal, which is also the newest in its
    /// history: a report enters the history only through [`apply_fresh`], and any
    /// newer one becomes the state.
    fn last_seq(&self) -> Option<u64> {
        self.state.as_ref().map(|s| s.last_seq)
    }
}

/// Recorded successions (承継): where a tenant's reports for a code go now.
#[derive(Clone, Debug, Default)]
pub struct Successions {
    /// (tenant, old code, terminal id or "") → new code
    moves: HashMap<(String, String, String), ClinicCode>,
}

impl Successions {
    /// From (tenant, old code, terminal id or "") → new code.
    pub(crate) fn from_moves(moves: HashMap<(String, String, String), ClinicCode>) -> Self {
        Self { moves }
    }

    pub fn is_empty(&self) -> bool {
        self.moves.is_empty()
    }

    /// The code a report of `terminal` naming `code` belongs to now. Follows chains
    /// (A → B → C) but never loops.
    pub fn resolve(&self, tenant: &TenantSlug, terminal: &Uuid, code: ClinicCode) -> ClinicCode {
        let mut current = code;
        for _ in 0..8 {
            let by_terminal = (
                tenant.as_str().to_owned(),
                current.as_str().to_owned(),
                terminal.to_string(),
            );
            let by_code = (
                tenant.as_str().to_owned(),
                current.as_str().to_owned(),
                String::new(),
            );
            match self
                .moves
                .get(&by_terminal)
                .or_else(|| self.moves.get(&by_code))
            {
                Some(next) if *next != current => current = *next,
                _ => break,
            }
        }
        current
    }
}

/// The batch with every report that still names a code moved by 承継 filed under the
/// new code (borrowed as is when no succession is recorded).
pub(crate) fn remap<'a>(
    batch: &'a [IncomingReport],
    successions: &Successions,
) -> Cow<'a, [IncomingReport]> {
    if successions.is_empty() {
        return Cow::Borrowed(batch);
    }
    Cow::Owned(
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

/// What [`screen`] found.
#[derive(Debug, Default)]
pub(crate) struct Screened {
    /// Reports to store, in arrival order.
    pub(crate) candidates: Vec<usize>,
    /// The `(terminal_id, seq)` of the candidates that may already be in the history:
    /// those not newer than their terminal's stored state. A newer one cannot be.
    pub(crate) maybe_stored: Vec<(String, u64)>,
}

/// Step 1: refuses what the store cannot take and drops in-batch duplicates. A
/// terminal new to the store gets an empty entry in `terminals`, owned by the first
/// tenant that reports it.
pub(crate) fn screen(
    batch: &[IncomingReport],
    terminals: &mut HashMap<String, Loaded>,
    outcomes: &mut [Option<Outcome>],
) -> Screened {
    let mut screened = Screened {
        candidates: Vec::with_capacity(batch.len()),
        maybe_stored: Vec::new(),
    };
    let mut keys_in_batch = HashSet::with_capacity(batch.len());
    for (i, incoming) in batch.iter().enumerate() {
        let r = &incoming.report;
        let id = r.terminal_id.to_string();
        if i64::try_from(r.seq).is_err() {
            outcomes[i] = Some(Outcome::Refused {
                reason: RejectReason::InvalidField,
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
            received_at: None,
        });
        if owner.tenant != incoming.tenant {
            outcomes[i] = Some(Outcome::Refused {
                reason: RejectReason::TerminalTenantMismatch,
                detail: format!(
                    "terminal {id} belongs to tenant {}, not {}",
                    owner.tenant, incoming.tenant
                ),
            });
            continue;
        }
        let maybe_stored = owner.last_seq().is_some_and(|last| r.seq <= last);
        if !keys_in_batch.insert((id, r.seq)) {
            outcomes[i] = Some(Outcome::Duplicate);
            continue;
        }
        if maybe_stored {
            screened
                .maybe_stored
                .push((r.terminal_id.to_string(), r.seq));
        }
        screened.candidates.push(i);
    }
    screened
}

/// Step 2: the candidates the history does not hold yet (`stored` are the keys it
/// holds among [`Screened::maybe_stored`]); the rest are duplicates. This is the one
/// duplicate rule of both databases: by `terminal_id`/`seq`, as the contract says,
/// whatever else the copy carries.
pub(crate) fn unstored(
    batch: &[IncomingReport],
    candidates: &[usize],
    stored: &HashSet<(String, u64)>,
    outcomes: &mut [Option<Outcome>],
) -> Vec<usize> {
    candidates
        .iter()
        .copied()
        .filter(|&i| {
            let r = &batch[i].report;
            let held = !stored.is_empty() && stored.contains(&(r.terminal_id.to_string(), r.seq));
            if held {
                outcomes[i] = Some(Outcome::Duplicate);
            }
            !held
        })
        .collect()
}

/// What step 3 produced: the newly stored reports per terminal, and when each
/// terminal was first seen in this batch during a campaign's distribution.
#[derive(Debug, Default)]
pub(crate) struct Fresh {
    pub(crate) by_terminal: BTreeMap<String, Vec<usize>>,
    pub(crate) sightings: HashMap<(String, String), DateTime<FixedOffset>>,
    /// Clinics that may not be recorded yet: every clinic a new terminal or a move
    /// named, each report taken alone (a terminal that moves twice in one batch
    /// names both clinics, as two batches would).
    pub(crate) clinics: BTreeSet<(String, ClinicCode)>,
    /// With `keep_steps`: for a terminal that more than one report of the batch
    /// changed, its state after each of them but the last, in order — so findings
    /// can be judged after every report, as if each had come alone.
    pub(crate) steps: HashMap<String, Vec<TerminalState>>,
    /// With `keep_steps`: terminals that reported for the first time in an hour
    /// (by `observed_at`), per (tenant, prefecture, the hour in JST text).
    pub(crate) reporting: BTreeMap<(String, String, DateTime<FixedOffset>), i64>,
}

impl Fresh {
    /// Indices of every newly stored report.
    pub(crate) fn reports(&self) -> Vec<usize> {
        self.by_terminal.values().flatten().copied().collect()
    }

    /// The terminals that got a new report.
    pub(crate) fn touched(&self) -> Vec<String> {
        self.by_terminal.keys().cloned().collect()
    }
}

/// Step 3: applies what the history took as new (`inserted`, among `appended`) to the
/// current states.
pub(crate) fn apply_fresh(
    batch: &[IncomingReport],
    appended: &[usize],
    inserted: &HashSet<(String, u64)>,
    terminals: &mut HashMap<String, Loaded>,
    campaigns: &[Campaign],
    outcomes: &mut [Option<Outcome>],
    keep_steps: bool,
) -> Fresh {
    let mut steps: HashMap<String, Vec<TerminalState>> = HashMap::new();
    let mut reporting: BTreeMap<(String, String, DateTime<FixedOffset>), i64> = BTreeMap::new();
    let mut by_terminal: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for &i in appended {
        let r = &batch[i].report;
        let id = r.terminal_id.to_string();
        if inserted.contains(&(id.clone(), r.seq)) {
            by_terminal.entry(id).or_default().push(i);
        } else {
            outcomes[i] = Some(Outcome::Duplicate);
        }
    }
    let mut sightings: HashMap<(String, String), DateTime<FixedOffset>> = HashMap::new();
    let mut clinics = BTreeSet::new();
    // In arrival order, exactly as if each report came alone: a report older than
    // one already applied is stale even inside one batch. (Sorting by seq would let a
    // late, stale report fill fields that the newer one lacks, so the state would
    // depend on how deliveries happened to be batched.)
    for (id, indices) in &by_terminal {
        let Some(loaded) = terminals.get_mut(id) else {
            continue;
        };
        // Whether the previous report changed the state (which is then a step).
        let mut after_change = false;
        for &i in indices {
            let report = &batch[i].report;
            let clinic_before = loaded.state.as_ref().map(|s| s.clinic_code);
            let hour_before = loaded.state.as_ref().map(|s| hour_of(s.last_observed_at));
            if keep_steps
                && after_change
                && let Some(state) = &loaded.state
            {
                steps.entry(id.clone()).or_default().push(state.clone());
            }
            after_change = false;
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
                    after_change = true;
                    let hour = hour_of(report.observed_at);
                    if keep_steps && hour_before.is_none_or(|h| h < hour) {
                        let prefecture = report.clinic_code.prefecture().code();
                        *reporting
                            .entry((loaded.tenant.to_string(), prefecture, hour))
                            .or_default() += 1;
                    }
                    loaded.received_at = Some(batch[i].received_at);
                    if clinic_before != Some(report.clinic_code) {
                        clinics.insert((loaded.tenant.to_string(), report.clinic_code));
                    }
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
        clinics,
        steps,
        reporting,
    }
}

/// The start of the hour (JST) an instant falls in.
pub(crate) fn hour_of(t: DateTime<FixedOffset>) -> DateTime<FixedOffset> {
    let t = t.with_timezone(&fleet_protocol::JST);
    let secs = t.timestamp().div_euclid(3600) * 3600;
    DateTime::from_timestamp(secs, 0)
        .map(|u| u.with_timezone(&fleet_protocol::JST))
        .unwrap_or(t)
}

/// One reader error of a fresh report.
pub(crate) struct ReaderErrorRow<'a> {
    pub(crate) incoming: &'a IncomingReport,
    /// The error's place within its report.
    pub(crate) idx: usize,
    pub(crate) error: &'a fleet_protocol::ReaderError,
}

/// Reader errors of the fresh reports, as events.
pub(crate) fn reader_error_rows<'a>(
    batch: &'a [IncomingReport],
    fresh: &[usize],
) -> Vec<ReaderErrorRow<'a>> {
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
                .map(move |(idx, error)| ReaderErrorRow {
                    incoming,
                    idx,
                    error,
                })
        })
        .collect()
}

/// One terminal whose state a write changed.
pub(crate) struct TerminalRow<'a> {
    pub(crate) id: &'a str,
    pub(crate) loaded: &'a Loaded,
    pub(crate) state: &'a TerminalState,
    pub(crate) received_at: DateTime<FixedOffset>,
}

impl TerminalRow<'_> {
    /// Whether the terminal is stored under this clinic already, so only its state
    /// and times change (a heartbeat).
    pub(crate) fn stays_at_its_clinic(&self) -> bool {
        self.loaded.stored_clinic == Some(self.state.clinic_code)
    }
}

/// Terminals whose state this write changed; `now` stands in for an unknown arrival.
pub(crate) fn changed_terminals(
    terminals: &HashMap<String, Loaded>,
    now: DateTime<FixedOffset>,
) -> Vec<TerminalRow<'_>> {
    terminals
        .iter()
        .filter(|(_, l)| l.changed)
        .filter_map(|(id, loaded)| {
            loaded.state.as_ref().map(|state| TerminalRow {
                id,
                loaded,
                state,
                received_at: loaded.received_at.unwrap_or(now),
            })
        })
        .collect()
}

/// A campaign state as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) prefecture: String,
    pub(crate) clinic_code: String,
    pub(crate) state: String,
    pub(crate) cause: String,
    pub(crate) seen: Option<DateTime<FixedOffset>>,
}

/// One campaign-state row to upsert.
#[derive(Clone, Debug)]
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

impl CampaignRow<'_> {
    /// The row as it will be stored.
    pub(crate) fn stored(&self) -> Stored {
        Stored {
            prefecture: self.prefecture.clone(),
            clinic_code: self.clinic_code.to_owned(),
            state: self.state.to_owned(),
            cause: self.cause.to_owned(),
            seen: self.seen_in_distribution_at,
        }
    }
}

/// Step 4: the campaign states of the touched terminals that differ from what is
/// stored (`before`), and the counter changes that move them exactly.
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

/// tenant, prefecture, campaign, state
pub type CounterKey = (String, String, String, String);

/// Changes to the rollout counters, netted per key before they are written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CounterDeltas(BTreeMap<CounterKey, i64>);

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

    /// The non-zero changes, in key order.
    pub(crate) fn changes(&self) -> Vec<(&CounterKey, i64)> {
        self.0
            .iter()
            .filter(|(_, n)| **n != 0)
            .map(|(k, n)| (k, *n))
            .collect()
    }
}

/// What a terminal moved by 承継 looks like afterwards: its state under the new code,
/// and the counter changes its campaign states bring along.
pub(crate) fn plan_move(
    tenant: &TenantSlug,
    state: &mut TerminalState,
    to: ClinicCode,
    campaign_states: &[(String, Stored)],
    deltas: &mut CounterDeltas,
) {
    let new_prefecture = to.prefecture().code();
    state.clinic_code = to;
    for (campaign, stored) in campaign_states {
        // The counter a row counts in is the one of its own prefecture.
        deltas.add(
            tenant.as_str(),
            &stored.prefecture,
            campaign,
            &stored.state,
            -1,
        );
        deltas.add(tenant.as_str(), &new_prefecture, campaign, &stored.state, 1);
    }
}

/// Every outcome decided; a report the plan never reached is a duplicate.
pub(crate) fn finish(outcomes: Vec<Option<Outcome>>) -> Vec<Outcome> {
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or(Outcome::Duplicate))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_terminal_moves_before_code_moves_and_follows_chains() {
        let tenant = TenantSlug::parse("demo").unwrap();
        let a = ClinicCode::parse("2712345678").unwrap();
        let b = ClinicCode::parse("2712345679").unwrap();
        let c = ClinicCode::parse("2812345678").unwrap();
        let one = Uuid::from_u128(1);
        let other = Uuid::from_u128(2);
        let mut s = Successions::default();
        s.moves
            .insert(("demo".into(), a.to_string(), String::new()), b);
        s.moves
            .insert(("demo".into(), b.to_string(), String::new()), c);
        s.moves
            .insert(("demo".into(), a.to_string(), one.to_string()), a);
        assert_eq!(
            s.resolve(&tenant, &other, a),
            c,
            "A → B → C for every terminal"
        );
        assert_eq!(
            s.resolve(&tenant, &one, a),
            a,
            "a terminal-specific entry wins"
        );
        assert_eq!(
            s.resolve(&TenantSlug::parse("acme").unwrap(), &other, a),
            a,
            "per tenant"
        );
        // A loop ends instead of spinning.
        s.moves
            .insert(("demo".into(), c.to_string(), String::new()), a);
        let _ = s.resolve(&tenant, &other, a);
    }

    #[test]
    fn counter_deltas_net_out_per_key() {
        let mut d = CounterDeltas::default();
        d.add("demo", "27", "c", "updated", 1);
        d.add("demo", "27", "c", "updated", -1);
        d.add("demo", "27", "c", "unknown", 2);
        let changes = d.changes();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].1, 2);
    }
}
