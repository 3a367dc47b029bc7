//! Campaigns are data: adding one assesses every stored terminal, page by page, and
//! moves the rollout counters in the same transactions ([`crate::flow::assess_page`]).

use anyhow::Context;
use chrono::{DateTime, FixedOffset};
use fleet_protocol::{Campaign, Cause};

use crate::flow::{self, run_ready};
use crate::postgres::in_transaction;
use crate::{Store, Writer};

/// Terminals assessed per transaction.
const PAGE: u64 = 1000;

impl Store {
    /// Adds a campaign and assesses every stored terminal for it at `now`. Returns
    /// how many terminals were assessed. Refuses an invalid campaign or an existing id.
    pub async fn add_campaign(
        &self,
        campaign: &Campaign,
        now: DateTime<FixedOffset>,
    ) -> anyhow::Result<u64> {
        campaign.validate().map_err(anyhow::Error::msg)?;
        match &self.writer {
            Writer::Sqlite(writer) => {
                let (writer, campaign) = (writer.clone(), campaign.clone());
                tokio::task::spawn_blocking(move || {
                    writer.run(|tx| run_ready(adapter_insert(tx, &campaign, now))?)
                })
                .await
                .context("the SQLite writer thread panicked")??;
            }
            Writer::Postgres => {
                in_transaction!(&self.db, |tx| adapter_insert(tx, campaign, now))?;
            }
        }
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
        let mut after = String::new();
        let mut assessed = 0u64;
        loop {
            let page = match &self.writer {
                Writer::Sqlite(writer) => {
                    let (writer, campaign, from) =
                        (writer.clone(), campaign.clone(), after.clone());
                    tokio::task::spawn_blocking(move || {
                        writer.run(|tx| {
                            run_ready(flow::assess_page(tx, &campaign, only, &from, PAGE, now))?
                        })
                    })
                    .await
                    .context("the SQLite writer thread panicked")??
                }
                Writer::Postgres => in_transaction!(&self.db, |tx| flow::assess_page(
                    tx, campaign, only, &after, PAGE, now
                ))?,
            };
            let Some((last, count)) = page else { break };
            after = last;
            assessed += count;
        }
        Ok(assessed)
    }
}

/// Records the campaign; its own step so that both databases' arms read alike.
async fn adapter_insert<T: crate::adapter::Tx>(
    tx: &mut T,
    campaign: &Campaign,
    now: DateTime<FixedOffset>,
) -> anyhow::Result<()> {
    tx.insert_campaign(campaign, now).await
}
