//! `fleetd check`: the rollout counters must equal a recount of the campaign states.
//!
//! The counters are updated by deltas in the same transaction as the states, so they
//! should never drift; this check proves it on a live database and, with `repair`,
//! rebuilds them from the states in one transaction.

use std::collections::BTreeMap;

use anyhow::Context;
use sea_orm::{ConnectionTrait, Statement, TransactionTrait};

use crate::Store;

/// tenant, prefecture, campaign, state
pub type CounterKey = (String, String, String, String);

/// A counter that disagrees with the recount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drift {
    pub key: CounterKey,
    pub counted: i64,
    pub recounted: i64,
}

const RECOUNT: &str = "SELECT tenant, prefecture, campaign_id, state, COUNT(*) AS n FROM campaign_states \
                       GROUP BY tenant, prefecture, campaign_id, state";
const COUNTERS: &str =
    "SELECT tenant, prefecture, campaign_id, state, terminals AS n FROM rollout_counters";

async fn tally(db: &impl ConnectionTrait, sql: &str) -> anyhow::Result<BTreeMap<CounterKey, i64>> {
    let mut map = BTreeMap::new();
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .context("counting")?;
    for row in rows {
        let key = (
            row.try_get("", "tenant")?,
            row.try_get("", "prefecture")?,
            row.try_get("", "campaign_id")?,
            row.try_get("", "state")?,
        );
        map.insert(key, row.try_get::<i64>("", "n")?);
    }
    Ok(map)
}

impl Store {
    /// Every counter that differs from a recount (zero counters equal absent rows).
    pub async fn check_counters(&self) -> anyhow::Result<Vec<Drift>> {
        let txn = self.db.begin().await?;
        let recount = tally(&txn, RECOUNT).await?;
        let counters = tally(&txn, COUNTERS).await?;
        txn.commit().await?;
        let keys: std::collections::BTreeSet<&CounterKey> =
            recount.keys().chain(counters.keys()).collect();
        Ok(keys
            .into_iter()
            .filter_map(|key| {
                let counted = counters.get(key).copied().unwrap_or_default();
                let recounted = recount.get(key).copied().unwrap_or_default();
                (counted != recounted).then(|| Drift {
                    key: key.clone(),
                    counted,
                    recounted,
                })
            })
            .collect())
    }

    /// Rebuilds the counters from the campaign states.
    pub async fn repair_counters(&self) -> anyhow::Result<()> {
        let txn = self.db.begin().await?;
        let backend = txn.get_database_backend();
        txn.execute_raw(Statement::from_string(
            backend,
            "DELETE FROM rollout_counters",
        ))
        .await?;
        txn.execute_raw(Statement::from_string(
            backend,
            "INSERT INTO rollout_counters (tenant, prefecture, campaign_id, state, terminals) \
             SELECT tenant, prefecture, campaign_id, state, COUNT(*) FROM campaign_states \
             GROUP BY tenant, prefecture, campaign_id, state",
        ))
        .await?;
        txn.commit().await.context("rebuilding rollout counters")
    }
}
