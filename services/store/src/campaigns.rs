//! Campaigns are data: adding one assesses every stored terminal, page by page, and
//! moves the rollout counters in the same transactions.
//!
//! A terminal's earlier sightings during the new campaign's windows are not searched
//! for in the history: until its next report, "seen during distribution" is judged
//! from its newest report only.

use std::collections::HashMap;

use anyhow::Context;
use fleet_protocol::{Campaign, TenantSlug, TerminalState};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Order, Query};
use sea_orm::{ConnectionTrait, TransactionTrait};

use crate::write::{Loaded, upsert_campaign_states};
use crate::{Store, now_jst};

/// Terminals assessed per transaction when a campaign is added.
const PAGE: u64 = 1000;

impl Store {
    /// Adds a campaign and assesses every stored terminal for it. Returns how many
    /// terminals were assessed. Refuses an invalid campaign or an existing id.
    pub async fn add_campaign(&self, campaign: &Campaign) -> anyhow::Result<u64> {
        campaign.validate().map_err(anyhow::Error::msg)?;
        let now = now_jst();
        let insert = Query::insert()
            .into_table(Alias::new("campaigns"))
            .columns([
                Alias::new("id"),
                Alias::new("definition"),
                Alias::new("created_at"),
            ])
            .values([
                campaign.id.clone().into(),
                serde_json::to_string(campaign)?.into(),
                now.into(),
            ])?
            .to_owned();
        self.db.execute(&insert).await.with_context(|| {
            format!(
                "campaign {:?} already exists or cannot be stored",
                campaign.id
            )
        })?;

        let mut after = String::new();
        let mut assessed = 0u64;
        loop {
            let txn = self.db.begin().await?;
            let select = Query::select()
                .columns([
                    Alias::new("terminal_id"),
                    Alias::new("tenant"),
                    Alias::new("state"),
                ])
                .from(Alias::new("terminals"))
                .and_where(Expr::col(Alias::new("terminal_id")).gt(after.clone()))
                .order_by(Alias::new("terminal_id"), Order::Asc)
                .limit(PAGE)
                .to_owned();
            let rows = txn
                .query_all(&select)
                .await
                .context("paging through terminals")?;
            if rows.is_empty() {
                txn.commit().await?;
                break;
            }
            let mut terminals = HashMap::new();
            let mut sightings = HashMap::new();
            for row in &rows {
                let id: String = row.try_get("", "terminal_id")?;
                let tenant: String = row.try_get("", "tenant")?;
                let state: String = row.try_get("", "state")?;
                let state: TerminalState = serde_json::from_str(&state)
                    .with_context(|| format!("stored state of terminal {id} does not parse"))?;
                if campaign.distributing_at(state.last_observed_at) {
                    sightings.insert((id.clone(), campaign.id.clone()), state.last_observed_at);
                }
                terminals.insert(
                    id.clone(),
                    Loaded {
                        tenant: TenantSlug::parse(&tenant)?,
                        state: Some(state),
                        changed: false,
                    },
                );
                after = id;
            }
            let ids: Vec<String> = terminals.keys().cloned().collect();
            upsert_campaign_states(
                &txn,
                &terminals,
                &ids,
                std::slice::from_ref(campaign),
                &sightings,
                now,
            )
            .await?;
            txn.commit().await.context("committing campaign states")?;
            assessed += ids.len() as u64;
        }
        Ok(assessed)
    }
}
