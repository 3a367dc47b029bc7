//! 承継 (succession): moving terminals to a new 医療機関等コード while keeping their
//! history ([`crate::flow::move_terminals`]; the rule that resolves a reported code
//! is [`crate::plan::Successions`]).

use anyhow::Context;
use chrono::{DateTime, FixedOffset};
use fleet_protocol::{ClinicCode, TenantSlug};
use uuid::Uuid;

use crate::adapter::Tx;
use crate::flow::{self, run_ready};
use crate::plan::Successions;
use crate::postgres::in_transaction;
use crate::{Store, Writer};

impl Store {
    /// Every recorded succession.
    pub async fn successions(&self) -> anyhow::Result<Successions> {
        match &self.writer {
            Writer::Sqlite(writer) => {
                let writer = writer.clone();
                tokio::task::spawn_blocking(move || writer.run(|tx| run_ready(tx.successions())?))
                    .await
                    .context("the SQLite writer thread panicked")?
            }
            Writer::Postgres => in_transaction!(&self.db, |tx| tx.successions()),
        }
    }

    /// Moves `tenant`'s terminals at `from` (or only `terminal`) to `to` at `now`, in
    /// one transaction. Returns how many terminals moved.
    pub async fn move_terminals(
        &self,
        tenant: &TenantSlug,
        from: ClinicCode,
        to: ClinicCode,
        terminal: Option<Uuid>,
        now: DateTime<FixedOffset>,
    ) -> anyhow::Result<u64> {
        match &self.writer {
            Writer::Sqlite(writer) => {
                let (writer, tenant) = (writer.clone(), tenant.clone());
                tokio::task::spawn_blocking(move || {
                    writer.run(|tx| {
                        run_ready(flow::move_terminals(tx, &tenant, from, to, terminal, now))?
                    })
                })
                .await
                .context("the SQLite writer thread panicked")?
            }
            Writer::Postgres => in_transaction!(&self.db, |tx| flow::move_terminals(
                tx, tenant, from, to, terminal, now
            )),
        }
    }
}
