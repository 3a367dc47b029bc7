//! What a write needs from a database, inside one transaction: the small trait both
//! adapters implement ([`crate::sqlite`], [`crate::postgres`]).
//!
//! Every method is one step of I/O with no decision in it; the decisions are in
//! [`crate::plan`] and their order in [`crate::flow`], so a rule is written once
//! for both databases. How an adapter does a step is its own business: SQLite steps
//! rows through cached prepared statements on its writer thread and keeps states in
//! memory, PostgreSQL sends each column as one array, and only PostgreSQL needs locks.
//!
//! The methods are `async` so that PostgreSQL's can await the network; SQLite's never
//! wait, and its writer thread runs them to completion without a runtime
//! ([`crate::flow::run_ready`]).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, FixedOffset};
use fleet_protocol::{Campaign, Cause, ClinicCode, TenantSlug, TerminalState};
use uuid::Uuid;

use fleet_protocol::ReaderError;
use fleet_protocol::findings::{ClinicHours, MaintenanceWindow};

use crate::findings::{FindingWrites, OpenRow};
use crate::plan::{
    CampaignRow, CounterDeltas, IncomingReport, Loaded, ReaderErrorRow, Stored, Successions,
    TerminalRow,
};

/// One open write transaction on one database.
pub(crate) trait Tx {
    /// Holds `terminals` against other writers until the transaction ends, so that
    /// what is read next is what this transaction writes back onto. A no-op where
    /// one writer at a time is the database's own rule (SQLite).
    async fn lock_terminals(&mut self, terminals: &[String]) -> anyhow::Result<()>;

    /// The stored terminals among `ids`, read without taking them from any cache
    /// (the sweep reads; it never writes a state).
    async fn read_terminals(&mut self, ids: &[String]) -> anyhow::Result<HashMap<String, Loaded>>;

    /// Every recorded 承継.
    async fn successions(&mut self) -> anyhow::Result<Successions>;

    /// The stored terminals among `ids`.
    async fn load_terminals(&mut self, ids: &[String]) -> anyhow::Result<HashMap<String, Loaded>>;

    /// Which of `keys` (`terminal_id`, `seq`) the history holds.
    async fn stored_reports(
        &mut self,
        keys: &[(String, u64)],
    ) -> anyhow::Result<HashSet<(String, u64)>>;

    /// Appends `rows` of `batch` to the history; returns the keys it took (all of
    /// them, unless the database's own key refuses one the plan thought new).
    async fn append_history(
        &mut self,
        batch: &[IncomingReport],
        rows: &[usize],
    ) -> anyhow::Result<HashSet<(String, u64)>>;

    /// Records reader errors as events.
    async fn append_reader_errors(&mut self, rows: &[ReaderErrorRow<'_>]) -> anyhow::Result<()>;

    /// Writes the terminals' new states (inserting the new ones).
    async fn store_terminals(&mut self, rows: &[TerminalRow<'_>]) -> anyhow::Result<()>;

    /// Records the clinics that are not recorded yet.
    async fn ensure_clinics(
        &mut self,
        clinics: &[(&str, ClinicCode)],
        now: DateTime<FixedOffset>,
    ) -> anyhow::Result<()>;

    /// Every stored campaign state of `terminals`, by (terminal, campaign).
    async fn load_campaign_states(
        &mut self,
        terminals: &[String],
    ) -> anyhow::Result<HashMap<(String, String), Stored>>;

    /// Writes campaign states (inserting the new ones).
    async fn store_campaign_states(
        &mut self,
        rows: &[CampaignRow<'_>],
        now: DateTime<FixedOffset>,
    ) -> anyhow::Result<()>;

    /// Moves the rollout counters: `terminals = terminals + change`.
    async fn move_counters(&mut self, deltas: &CounterDeltas) -> anyhow::Result<()>;

    /// Records a new campaign; fails when its id exists.
    async fn insert_campaign(
        &mut self,
        campaign: &Campaign,
        now: DateTime<FixedOffset>,
    ) -> anyhow::Result<()>;

    /// Up to `limit` terminal ids after `after`, in id order; with `only`, those
    /// whose state in `campaign` has that cause.
    async fn terminal_page(
        &mut self,
        after: &str,
        limit: u64,
        campaign: &str,
        only: Option<Cause>,
    ) -> anyhow::Result<Vec<String>>;

    /// Records (or replaces) a 承継 from `from` to `to`, for one terminal or all.
    async fn record_succession(
        &mut self,
        tenant: &TenantSlug,
        from: ClinicCode,
        to: ClinicCode,
        terminal: Option<Uuid>,
        now: DateTime<FixedOffset>,
    ) -> anyhow::Result<()>;

    /// The tenant's terminals stored at `code` (only `terminal`, when given).
    async fn terminals_at(
        &mut self,
        tenant: &TenantSlug,
        code: ClinicCode,
        terminal: Option<Uuid>,
    ) -> anyhow::Result<Vec<String>>;

    /// Files a terminal and its campaign states under its state's (new) clinic.
    async fn move_terminal(&mut self, id: &str, state: &TerminalState) -> anyhow::Result<()>;

    /// Deletes up to `limit` history rows and up to `limit` reader errors observed
    /// before `cutoff`; returns how many of each went. Keeps each transaction short, so ingest
    /// is never held up long.
    async fn delete_history_before(
        &mut self,
        cutoff: DateTime<FixedOffset>,
        limit: u64,
    ) -> anyhow::Result<(u64, u64)>;

    /// The findings rows of `terminals` that are not resolved (pending included).
    async fn open_findings(
        &mut self,
        terminals: &[String],
    ) -> anyhow::Result<HashMap<String, Vec<OpenRow>>>;

    /// Writes what [`crate::findings::plan_terminal`] decided, at `now`.
    async fn write_findings(
        &mut self,
        writes: &FindingWrites,
        now: DateTime<FixedOffset>,
    ) -> anyhow::Result<()>;

    /// The hours recorded for these (tenant, clinic) pairs; a clinic absent from the
    /// answer keeps the default hours.
    async fn clinic_hours(
        &mut self,
        clinics: &[(String, ClinicCode)],
    ) -> anyhow::Result<HashMap<(String, ClinicCode), ClinicHours>>;

    /// Every maintenance window, of every scope.
    async fn windows(&mut self) -> anyhow::Result<Vec<MaintenanceWindow>>;

    /// The reader errors of `terminals` with `at` at or after `from`.
    async fn recent_reader_errors(
        &mut self,
        terminals: &[String],
        from: DateTime<FixedOffset>,
    ) -> anyhow::Result<HashMap<String, Vec<ReaderError>>>;

    /// Up to `limit` terminal ids after `after`, in id order (the sweep's pages).
    async fn terminal_ids_after(&mut self, after: &str, limit: u64) -> anyhow::Result<Vec<String>>;

    /// Adds to the hourly counts of terminals that reported (area incidents' base).
    async fn count_reporting(
        &mut self,
        counts: &std::collections::BTreeMap<(String, String, DateTime<FixedOffset>), i64>,
    ) -> anyhow::Result<()>;
}
