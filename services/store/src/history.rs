//! Keeping the report history in shape: month partitions on PostgreSQL, retention on
//! both databases, through their adapters.
//!
//! - PostgreSQL: the months around now (one back, two ahead) exist before reports
//!   arrive for them. A month created late first takes over the rows the default
//!   partition collected for it, in one transaction. Retention drops whole months.
//! - Both: what is left older than the cutoff is deleted in chunks, one short
//!   transaction each, so the writer is never held up long (on SQLite these run on
//!   the writer's own connection, between batches).

use anyhow::Context;
use chrono::{DateTime, Duration, FixedOffset, Months};

use crate::adapter::Tx;
use crate::flow::run_ready;
use crate::postgres::{self, in_transaction};
use crate::{Store, Writer};

/// History rows deleted per transaction.
const CHUNK: u64 = 10_000;

/// What one maintenance pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Maintenance {
    pub partitions_created: Vec<String>,
    pub partitions_dropped: Vec<String>,
    pub rows_deleted: u64,
}

impl Store {
    /// Creates the coming months' partitions and applies retention: history older
    /// than `retention_days` goes (0 keeps everything).
    pub async fn maintain_history(
        &self,
        now: DateTime<FixedOffset>,
        retention_days: u32,
    ) -> anyhow::Result<Maintenance> {
        let mut done = Maintenance::default();
        if matches!(self.writer, Writer::Postgres) {
            let this_month = postgres::month_of(now);
            for offset in -1i32..=2 {
                let months = Months::new(offset.unsigned_abs());
                let month = if offset < 0 {
                    this_month.checked_sub_months(months)
                } else {
                    this_month.checked_add_months(months)
                };
                if let Some(month) = month
                    && postgres::create_partition(&self.db, month).await?
                {
                    done.partitions_created
                        .push(format!("reports_y{}", month.format("%Ym%m")));
                }
            }
        }
        if retention_days == 0 {
            return Ok(done);
        }
        let cutoff = now - Duration::days(i64::from(retention_days));
        if matches!(self.writer, Writer::Postgres) {
            done.partitions_dropped = postgres::drop_partitions_before(&self.db, cutoff).await?;
        }
        loop {
            let (reports, errors) = match &self.writer {
                Writer::Sqlite(writer) => {
                    let writer = writer.clone();
                    tokio::task::spawn_blocking(move || {
                        writer.run(|tx| run_ready(tx.delete_history_before(cutoff, CHUNK))?)
                    })
                    .await
                    .context("the SQLite writer thread panicked")??
                }
                Writer::Postgres => {
                    in_transaction!(&self.db, |tx| tx.delete_history_before(cutoff, CHUNK))?
                }
            };
            done.rows_deleted += reports;
            if reports == 0 && errors == 0 {
                break;
            }
        }
        Ok(done)
    }
}
