//! Reading for the dashboards and the API, always within the caller's [`Scope`].
//!
//! A clinic outside the scope is indistinguishable from one that does not exist
//! (contract §5: 404, as if it did not exist), so every query filters by scope in SQL
//! rather than checking afterwards.

use std::collections::{BTreeMap, HashMap};

use anyhow::Context;
use chrono::{DateTime, FixedOffset};
use fleet_protocol::{CampaignState, Cause, ClinicCode, Prefecture, TerminalState};
use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Alias, Cond, Expr, ExprTrait, Func, Order, Query};

use crate::schema::{
    CampaignStates, Campaigns, Clinics, Computed, RolloutCounters, Scoped, Terminals,
};
use crate::{Scope, Store};

/// A clinic and its terminals.
#[derive(Clone, Debug)]
pub struct ClinicView {
    pub clinic_code: ClinicCode,
    pub terminals: Vec<ClinicTerminal>,
}

/// One terminal of a clinic with its campaign states.
#[derive(Clone, Debug)]
pub struct ClinicTerminal {
    pub tenant: String,
    pub state: TerminalState,
    pub last_received_at: DateTime<FixedOffset>,
    /// Campaign id → state and cause.
    pub campaigns: BTreeMap<String, (CampaignState, Cause)>,
}

/// Terminal counts per campaign state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rollout {
    pub campaign: String,
    pub total: u64,
    pub states: BTreeMap<CampaignState, u64>,
}

/// One line of the support desk's worklist: a clinic with terminals in one state and
/// cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkItem {
    pub clinic_code: ClinicCode,
    pub state: CampaignState,
    pub cause: Cause,
    pub terminals: u64,
}

/// The rows of a scoped table (one with `tenant` and `prefecture` columns) that
/// `scope` may see.
pub(crate) fn scope_condition(scope: &Scope) -> Cond {
    match scope {
        Scope::Tenant(tenant) => Cond::all().add(Expr::col(Scoped::Tenant).eq(tenant.as_str())),
        Scope::Prefectures(prefectures) => Cond::all()
            .add(Expr::col(Scoped::Prefecture).is_in(prefectures.iter().map(|p| p.code()))),
    }
}

fn parse_cause(text: &str) -> Option<Cause> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).ok()
}

impl Store {
    /// A clinic and its terminals, or `None` when it does not exist within `scope`.
    pub async fn clinic(
        &self,
        code: &ClinicCode,
        scope: &Scope,
    ) -> anyhow::Result<Option<ClinicView>> {
        let select = Query::select()
            .columns([
                Terminals::TerminalId,
                Terminals::Tenant,
                Terminals::State,
                Terminals::LastReceivedAt,
            ])
            .from(Terminals::Table)
            .and_where(Expr::col(Terminals::ClinicCode).eq(code.as_str()))
            .cond_where(scope_condition(scope))
            .order_by(Terminals::TerminalId, Order::Asc)
            .to_owned();
        let rows = self
            .db
            .query_all(&select)
            .await
            .context("reading a clinic's terminals")?;
        if rows.is_empty() {
            let select = Query::select()
                .column(Clinics::ClinicCode)
                .from(Clinics::Table)
                .and_where(Expr::col(Clinics::ClinicCode).eq(code.as_str()))
                .cond_where(scope_condition(scope))
                .limit(1)
                .to_owned();
            if self
                .db
                .query_one(&select)
                .await
                .context("reading a clinic")?
                .is_none()
            {
                return Ok(None);
            }
        }
        let mut terminals = Vec::with_capacity(rows.len());
        let mut ids = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get("", "terminal_id")?;
            let state: String = row.try_get("", "state")?;
            let state: TerminalState = serde_json::from_str(&state)
                .with_context(|| format!("stored state of terminal {id} does not parse"))?;
            terminals.push(ClinicTerminal {
                tenant: row.try_get("", "tenant")?,
                state,
                last_received_at: row.try_get("", "last_received_at")?,
                campaigns: BTreeMap::new(),
            });
            ids.push(id);
        }
        let mut by_terminal: HashMap<String, BTreeMap<String, (CampaignState, Cause)>> =
            HashMap::new();
        if !ids.is_empty() {
            let select = Query::select()
                .columns([
                    CampaignStates::TerminalId,
                    CampaignStates::CampaignId,
                    CampaignStates::State,
                    CampaignStates::Cause,
                ])
                .from(CampaignStates::Table)
                .and_where(Expr::col(CampaignStates::TerminalId).is_in(ids.iter().cloned()))
                .to_owned();
            for row in self
                .db
                .query_all(&select)
                .await
                .context("reading campaign states")?
            {
                let id: String = row.try_get("", "terminal_id")?;
                let campaign: String = row.try_get("", "campaign_id")?;
                let state: String = row.try_get("", "state")?;
                let cause: String = row.try_get("", "cause")?;
                if let (Some(state), Some(cause)) =
                    (CampaignState::parse(&state), parse_cause(&cause))
                {
                    by_terminal
                        .entry(id)
                        .or_default()
                        .insert(campaign, (state, cause));
                }
            }
        }
        for (terminal, id) in terminals.iter_mut().zip(&ids) {
            terminal.campaigns = by_terminal.remove(id).unwrap_or_default();
        }
        Ok(Some(ClinicView {
            clinic_code: *code,
            terminals,
        }))
    }

    /// Counts per state of a campaign within `scope` (and one prefecture, if given), or
    /// `None` when the campaign does not exist.
    pub async fn rollout(
        &self,
        campaign: &str,
        scope: &Scope,
        prefecture: Option<Prefecture>,
    ) -> anyhow::Result<Option<Rollout>> {
        let exists = Query::select()
            .column(Campaigns::Id)
            .from(Campaigns::Table)
            .and_where(Expr::col(Campaigns::Id).eq(campaign))
            .to_owned();
        if self
            .db
            .query_one(&exists)
            .await
            .context("reading a campaign")?
            .is_none()
        {
            return Ok(None);
        }
        // The live counters, never the campaign_states rows themselves.
        let mut select = Query::select();
        select
            .column(RolloutCounters::State)
            .expr_as(
                Func::sum(Expr::col(RolloutCounters::Terminals)).cast_as(Alias::new("BIGINT")),
                Computed::N,
            )
            .from(RolloutCounters::Table)
            .and_where(Expr::col(RolloutCounters::CampaignId).eq(campaign))
            .cond_where(scope_condition(scope))
            .group_by_col(RolloutCounters::State);
        if let Some(p) = prefecture {
            select.and_where(Expr::col(Scoped::Prefecture).eq(p.code()));
        }
        let mut states: BTreeMap<CampaignState, u64> =
            CampaignState::ALL.iter().map(|s| (*s, 0)).collect();
        for row in self
            .db
            .query_all(&select)
            .await
            .context("counting campaign states")?
        {
            let state: String = row.try_get("", "state")?;
            let n: Option<i64> = row.try_get("", "n")?;
            if let Some(state) = CampaignState::parse(&state) {
                states.insert(
                    state,
                    u64::try_from(n.unwrap_or_default()).unwrap_or_default(),
                );
            }
        }
        Ok(Some(Rollout {
            campaign: campaign.to_owned(),
            total: states.values().sum(),
            states,
        }))
    }

    /// Clinics with terminals not yet updated, grouped by state and cause: the support
    /// desk's call list. At most `limit` lines, reboot-required first.
    pub async fn worklist(
        &self,
        campaign: &str,
        scope: &Scope,
        limit: u64,
    ) -> anyhow::Result<Vec<WorkItem>> {
        let select = Query::select()
            .columns([
                CampaignStates::ClinicCode,
                CampaignStates::State,
                CampaignStates::Cause,
            ])
            .expr_as(
                Func::count(Expr::col(CampaignStates::TerminalId)),
                Computed::N,
            )
            .from(CampaignStates::Table)
            .and_where(Expr::col(CampaignStates::CampaignId).eq(campaign))
            .and_where(Expr::col(CampaignStates::State).ne(CampaignState::Updated.as_str()))
            .cond_where(scope_condition(scope))
            .group_by_columns([
                CampaignStates::ClinicCode,
                CampaignStates::State,
                CampaignStates::Cause,
            ])
            .order_by(CampaignStates::State, Order::Desc)
            .order_by(CampaignStates::ClinicCode, Order::Asc)
            .limit(limit)
            .to_owned();
        let mut items = Vec::new();
        for row in self
            .db
            .query_all(&select)
            .await
            .context("reading the worklist")?
        {
            let code: String = row.try_get("", "clinic_code")?;
            let state: String = row.try_get("", "state")?;
            let cause: String = row.try_get("", "cause")?;
            let n: i64 = row.try_get("", "n")?;
            if let (Ok(clinic_code), Some(state), Some(cause)) = (
                ClinicCode::parse(&code),
                CampaignState::parse(&state),
                parse_cause(&cause),
            ) {
                items.push(WorkItem {
                    clinic_code,
                    state,
                    cause,
                    terminals: u64::try_from(n).unwrap_or_default(),
                });
            }
        }
        Ok(items)
    }
}
