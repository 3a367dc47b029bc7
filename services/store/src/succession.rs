//! 承継 (succession): moving terminals to a new 医療機関等コード while keeping their
//! history.
//!
//! A move rewrites the terminals' current state, campaign states and rollout counters
//! in one transaction, and records the succession so that later reports still
//! carrying the old code are filed under the new one. The history keeps every report
//! as it was received, old code included: that is what happened.

use std::collections::HashMap;

use anyhow::Context;
use fleet_protocol::{ClinicCode, TenantSlug, TerminalState};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, TransactionTrait};
use uuid::Uuid;

use crate::write::CounterDeltas;
use crate::{Store, now_jst};

/// Recorded successions of one database: where a tenant's reports for a code go.
#[derive(Clone, Debug, Default)]
pub struct Successions {
    /// (tenant, old code, terminal id or "") → new code
    moves: HashMap<(String, String, String), ClinicCode>,
}

impl Successions {
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

    /// From (tenant, old code, terminal id or "") → new code.
    pub(crate) fn from_moves(moves: HashMap<(String, String, String), ClinicCode>) -> Self {
        Self { moves }
    }

    pub fn is_empty(&self) -> bool {
        self.moves.is_empty()
    }
}

fn col(name: &str) -> Alias {
    Alias::new(name)
}

/// Every recorded succession, read on `db` (a transaction or the pool).
pub(crate) async fn load(db: &impl ConnectionTrait) -> anyhow::Result<Successions> {
    let select = Query::select()
        .columns([
            col("tenant"),
            col("from_code"),
            col("terminal_id"),
            col("to_code"),
        ])
        .from(col("successions"))
        .to_owned();
    let mut moves = HashMap::new();
    for row in db.query_all(&select).await.context("reading successions")? {
        let to: String = row.try_get("", "to_code")?;
        let key = (
            row.try_get("", "tenant")?,
            row.try_get("", "from_code")?,
            row.try_get("", "terminal_id")?,
        );
        moves.insert(key, ClinicCode::parse(&to)?);
    }
    Ok(Successions { moves })
}

impl Store {
    /// Every recorded succession.
    pub async fn successions(&self) -> anyhow::Result<Successions> {
        load(&self.db).await
    }

    /// Moves `tenant`'s terminals at `from` (or only `terminal`) to `to`. Returns how
    /// many terminals moved.
    pub async fn move_terminals(
        &self,
        tenant: &TenantSlug,
        from: ClinicCode,
        to: ClinicCode,
        terminal: Option<Uuid>,
    ) -> anyhow::Result<u64> {
        anyhow::ensure!(from != to, "the new code must differ from the old one");
        let now = now_jst();
        let txn = self.db.begin().await?;
        let insert = Query::insert()
            .into_table(col("successions"))
            .columns([
                col("tenant"),
                col("from_code"),
                col("terminal_id"),
                col("to_code"),
                col("created_at"),
            ])
            .values([
                tenant.as_str().into(),
                from.as_str().into(),
                terminal.map(|t| t.to_string()).unwrap_or_default().into(),
                to.as_str().into(),
                now.into(),
            ])?
            .on_conflict(
                OnConflict::columns([col("tenant"), col("from_code"), col("terminal_id")])
                    .update_columns([col("to_code"), col("created_at")])
                    .to_owned(),
            )
            .to_owned();
        txn.execute(&insert)
            .await
            .context("recording the succession")?;

        let mut select = Query::select();
        select
            .columns([col("terminal_id"), col("state")])
            .from(col("terminals"))
            .and_where(Expr::col(col("tenant")).eq(tenant.as_str()))
            .and_where(Expr::col(col("clinic_code")).eq(from.as_str()));
        if let Some(t) = terminal {
            select.and_where(Expr::col(col("terminal_id")).eq(t.to_string()));
        }
        // Find them, lock them against ingest batches in flight (crate::lock), then
        // read their states as those batches left them. A terminal that reaches the
        // old code in between is not locked and is left alone here: its next report
        // is filed under the new code by the succession recorded above.
        let found = txn
            .query_all(&select)
            .await
            .context("finding the terminals to move")?;
        let locked = found
            .iter()
            .map(|row| row.try_get::<String>("", "terminal_id"))
            .collect::<Result<std::collections::HashSet<_>, _>>()?;
        crate::lock::lock_terminals(&txn, locked.iter().map(String::as_str)).await?;
        let mut rows = Vec::with_capacity(locked.len());
        for row in txn
            .query_all(&select)
            .await
            .context("reading the terminals to move")?
        {
            if locked.contains(&row.try_get::<String>("", "terminal_id")?) {
                rows.push(row);
            }
        }
        let mut deltas = CounterDeltas::default();
        let (old_pref, new_pref) = (from.prefecture().code(), to.prefecture().code());
        for row in &rows {
            let id: String = row.try_get("", "terminal_id")?;
            let state: String = row.try_get("", "state")?;
            let mut state: TerminalState = serde_json::from_str(&state)
                .with_context(|| format!("stored state of terminal {id} does not parse"))?;
            state.clinic_code = to;
            let update = Query::update()
                .table(col("terminals"))
                .values([
                    (col("clinic_code"), to.as_str().into()),
                    (col("prefecture"), new_pref.clone().into()),
                    (col("state"), serde_json::to_string(&state)?.into()),
                ])
                .and_where(Expr::col(col("terminal_id")).eq(id.clone()))
                .to_owned();
            txn.execute(&update).await.context("moving a terminal")?;
            let states = Query::select()
                .columns([col("campaign_id"), col("state")])
                .from(col("campaign_states"))
                .and_where(Expr::col(col("terminal_id")).eq(id.clone()))
                .to_owned();
            for s in txn.query_all(&states).await? {
                let campaign: String = s.try_get("", "campaign_id")?;
                let st: String = s.try_get("", "state")?;
                deltas.add(tenant.as_str(), &old_pref, &campaign, &st, -1);
                deltas.add(tenant.as_str(), &new_pref, &campaign, &st, 1);
            }
            let update = Query::update()
                .table(col("campaign_states"))
                .values([
                    (col("clinic_code"), to.as_str().into()),
                    (col("prefecture"), new_pref.clone().into()),
                ])
                .and_where(Expr::col(col("terminal_id")).eq(id))
                .to_owned();
            txn.execute(&update)
                .await
                .context("moving campaign states")?;
        }
        deltas.apply(&txn).await?;
        let clinic = Query::insert()
            .into_table(col("clinics"))
            .columns([
                col("tenant"),
                col("clinic_code"),
                col("prefecture"),
                col("area"),
                col("created_at"),
            ])
            .values([
                tenant.as_str().into(),
                to.as_str().into(),
                new_pref.into(),
                to.area().as_str().into(),
                now.into(),
            ])?
            .on_conflict(
                OnConflict::columns([col("tenant"), col("clinic_code")])
                    .do_nothing()
                    .to_owned(),
            )
            .to_owned();
        txn.execute(&clinic)
            .await
            .context("recording the new clinic")?;
        txn.commit().await.context("committing the move")?;
        Ok(rows.len() as u64)
    }
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
}
