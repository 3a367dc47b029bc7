//! Campaigns are data: adding one assesses every stored terminal, page by page, and
//! moves the rollout counters in the same transactions.
//!
//! A terminal's earlier sightings during the new campaign's windows are not searched
//! for in the history: until its next report, "seen during distribution" is judged
//! from its newest report only.

use std::collections::HashMap;

use anyhow::Context;
use chrono::{DateTime, FixedOffset};
use fleet_protocol::{Campaign, Cause};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Order, Query};
use sea_orm::{ConnectionTrait, TransactionTrait};

use crate::write::{Loaded, upsert_campaign_states};
use crate::{Store, now_jst};

/// Terminals assessed per transaction.
const PAGE: u64 = 1000;

fn col(name: &str) -> Alias {
    Alias::new(name)
}

impl Store {
    /// Adds a campaign and assesses every stored terminal for it. Returns how many
    /// terminals were assessed. Refuses an invalid campaign or an existing id.
    pub async fn add_campaign(&self, campaign: &Campaign) -> anyhow::Result<u64> {
        campaign.validate().map_err(anyhow::Error::msg)?;
        let now = now_jst();
        let insert = Query::insert()
            .into_table(col("campaigns"))
            .columns([col("id"), col("definition"), col("created_at")])
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
        self.assess_terminals(campaign, None, now).await
    }

    /// Re-assesses terminals whose cause depended on time: those told "distribution has
    /// not started" once the first window has opened. A terminal that reported before
    /// distribution and then fell silent would otherwise keep that cause for ever.
    pub async fn reassess_time_dependent(&self, now: DateTime<FixedOffset>) -> anyhow::Result<u64> {
        let mut assessed = 0;
        for campaign in self.campaigns().await? {
            if campaign
                .first_window_start()
                .is_some_and(|start| start <= now)
            {
                assessed += self
                    .assess_terminals(&campaign, Some(Cause::DistributionNotStarted), now)
                    .await?;
            }
        }
        Ok(assessed)
    }

    /// Assesses, for `campaign`, every terminal — or only those whose current cause in
    /// it is `only` — one page per transaction.
    async fn assess_terminals(
        &self,
        campaign: &Campaign,
        only: Option<Cause>,
        now: DateTime<FixedOffset>,
    ) -> anyhow::Result<u64> {
        let t = |c: &str| (col("terminals"), col(c));
        let mut after = String::new();
        let mut assessed = 0u64;
        loop {
            let txn = self.db.begin().await?;
            let mut select = Query::select();
            select
                .column(t("terminal_id"))
                .from(col("terminals"))
                .and_where(Expr::col(t("terminal_id")).gt(after.clone()))
                .order_by(t("terminal_id"), Order::Asc)
                .limit(PAGE);
            if let Some(cause) = only {
                let s = |c: &str| (col("campaign_states"), col(c));
                select
                    .inner_join(
                        col("campaign_states"),
                        Expr::col(s("terminal_id")).equals(t("terminal_id")),
                    )
                    .and_where(Expr::col(s("campaign_id")).eq(campaign.id.as_str()))
                    .and_where(Expr::col(s("cause")).eq(cause.as_str()));
            }
            let page = txn
                .query_all(&select)
                .await
                .context("paging through terminals")?;
            if page.is_empty() {
                txn.commit().await?;
                break;
            }
            // Lock the page against ingest batches in flight (crate::lock), then read
            // the states as they left them.
            let ids = page
                .iter()
                .map(|row| row.try_get::<String>("", "terminal_id"))
                .collect::<Result<Vec<_>, _>>()?;
            crate::lock::lock_terminals(&txn, ids.iter().map(String::as_str)).await?;
            let reread = Query::select()
                .columns([t("terminal_id"), t("tenant"), t("state")])
                .from(col("terminals"))
                .and_where(Expr::col(t("terminal_id")).is_in(ids.iter().cloned()))
                .order_by(t("terminal_id"), Order::Asc)
                .to_owned();
            let rows = txn
                .query_all(&reread)
                .await
                .context("reading a page of terminals")?;
            let mut terminals = HashMap::new();
            let mut sightings = HashMap::new();
            for row in &rows {
                let id: String = row.try_get("", "terminal_id")?;
                let tenant: String = row.try_get("", "tenant")?;
                let state: String = row.try_get("", "state")?;
                let loaded = Loaded::from_row(&id, &tenant, &state)?;
                if let Some(state) = &loaded.state
                    && campaign.distributing_at(state.last_observed_at)
                {
                    sightings.insert((id.clone(), campaign.id.clone()), state.last_observed_at);
                }
                terminals.insert(id, loaded);
            }
            if let Some(last) = ids.last() {
                after = last.clone();
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
