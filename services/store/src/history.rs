//! Keeping the report history in shape: month partitions on PostgreSQL, retention on
//! both databases.
//!
//! - PostgreSQL: the months around now (one back, two ahead) exist before reports
//!   arrive for them. A month created late first takes over the rows the default
//!   partition collected for it, in one transaction. Retention drops whole months.
//! - SQLite: one table; retention deletes in chunks so the writer is never blocked long.
//!
//! Timestamps are stored in JST by the writer, so SQLite's text comparison of them is
//! also their time order.

use anyhow::Context;
use chrono::{DateTime, Datelike, Duration, FixedOffset, Months, NaiveDate};
use fleet_protocol::JST;
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};

use crate::Store;

/// What one maintenance pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Maintenance {
    pub partitions_created: Vec<String>,
    pub partitions_dropped: Vec<String>,
    pub rows_deleted: u64,
}

fn month_of(t: DateTime<FixedOffset>) -> NaiveDate {
    let local = t.with_timezone(&JST).date_naive();
    NaiveDate::from_ymd_opt(local.year(), local.month(), 1).unwrap_or(local)
}

fn partition_name(month: NaiveDate) -> String {
    format!("reports_y{:04}m{:02}", month.year(), month.month())
}

/// The month a partition name stands for, if it is one of ours.
fn parse_partition(name: &str) -> Option<NaiveDate> {
    let rest = name.strip_prefix("reports_y")?;
    let (y, m) = rest.split_once('m')?;
    NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, 1)
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
        let backend = self.db.get_database_backend();
        if backend == DbBackend::Postgres {
            let this_month = month_of(now);
            for offset in -1i32..=2 {
                let month = if offset < 0 {
                    this_month.checked_sub_months(Months::new(offset.unsigned_abs()))
                } else {
                    this_month.checked_add_months(Months::new(offset.unsigned_abs()))
                };
                if let Some(month) = month
                    && self.create_partition(month).await?
                {
                    done.partitions_created.push(partition_name(month));
                }
            }
        }
        if retention_days == 0 {
            return Ok(done);
        }
        let cutoff = now - Duration::days(i64::from(retention_days));
        if backend == DbBackend::Postgres {
            let rows = self
                .db
                .query_all_raw(Statement::from_string(
                    backend,
                    "SELECT c.relname AS name FROM pg_inherits i \
                     JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent \
                     WHERE p.relname = 'reports'",
                ))
                .await
                .context("listing history partitions")?;
            let cutoff_month = month_of(cutoff);
            for row in rows {
                let name: String = row.try_get("", "name")?;
                // A month goes when it ends before the cutoff's month begins.
                if parse_partition(&name).is_some_and(|m| m < cutoff_month) {
                    self.db
                        .execute_unprepared(&format!("DROP TABLE IF EXISTS {name}"))
                        .await
                        .with_context(|| format!("dropping {name}"))?;
                    done.partitions_dropped.push(name);
                }
            }
            let deleted = self
                .db
                .execute_raw(Statement::from_sql_and_values(
                    backend,
                    "DELETE FROM reports_default WHERE observed_at < $1",
                    [cutoff.into()],
                ))
                .await?;
            done.rows_deleted += deleted.rows_affected();
        } else {
            loop {
                let deleted = self
                    .db
                    .execute_raw(Statement::from_sql_and_values(
                        backend,
                        "DELETE FROM reports WHERE rowid IN \
                         (SELECT rowid FROM reports WHERE observed_at < ? LIMIT 10000)",
                        [cutoff.with_timezone(&JST).into()],
                    ))
                    .await
                    .context("deleting old history")?;
                done.rows_deleted += deleted.rows_affected();
                if deleted.rows_affected() == 0 {
                    break;
                }
            }
        }
        let placeholder = if backend == DbBackend::Postgres {
            "$1"
        } else {
            "?"
        };
        self.db
            .execute_raw(Statement::from_sql_and_values(
                backend,
                format!("DELETE FROM reader_errors WHERE at < {placeholder}"),
                [cutoff.with_timezone(&JST).into()],
            ))
            .await
            .context("deleting old reader errors")?;
        Ok(done)
    }

    /// Creates one month's partition if missing; `true` when it was created.
    async fn create_partition(&self, month: NaiveDate) -> anyhow::Result<bool> {
        let name = partition_name(month);
        let exists = self
            .db
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                format!("SELECT to_regclass('{name}') IS NOT NULL AS present"),
            ))
            .await?
            .map(|row| row.try_get::<bool>("", "present"))
            .transpose()?
            .unwrap_or(false);
        if exists {
            return Ok(false);
        }
        let next = month.checked_add_months(Months::new(1)).unwrap_or(month);
        let (from, to) = (
            format!("{month} 00:00:00+09"),
            format!("{next} 00:00:00+09"),
        );
        let txn = self.db.begin().await?;
        // Rows the default partition took for this month move into it.
        txn.execute_unprepared(&format!(
            "CREATE TEMP TABLE moving ON COMMIT DROP AS SELECT * FROM reports_default \
             WHERE observed_at >= '{from}' AND observed_at < '{to}'"
        ))
        .await?;
        txn.execute_unprepared(&format!(
            "DELETE FROM reports_default WHERE observed_at >= '{from}' AND observed_at < '{to}'"
        ))
        .await?;
        let ym = format!("{:04}-{:02}", month.year(), month.month());
        txn.execute_unprepared(&fleet_migration::create_month_sql(&ym))
            .await?;
        txn.execute_unprepared("INSERT INTO reports SELECT * FROM moving")
            .await?;
        txn.commit()
            .await
            .with_context(|| format!("creating partition {name}"))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_round_trip() {
        let m = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        assert_eq!(partition_name(m), "reports_y2026m01");
        assert_eq!(parse_partition("reports_y2026m01"), Some(m));
        assert_eq!(parse_partition("reports_default"), None);
    }

    #[test]
    fn months_are_counted_in_jst() {
        // 2026-01-31 20:00 UTC is already February in Japan.
        let t = DateTime::parse_from_rfc3339("2026-01-31T20:00:00Z").unwrap();
        assert_eq!(month_of(t), NaiveDate::from_ymd_opt(2026, 2, 1).unwrap());
    }
}
