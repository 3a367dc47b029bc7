//! PostgreSQL: the report history becomes a table partitioned by month of
//! `observed_at`, so retention drops whole months instead of deleting row by row, and
//! a month's index stays small. SQLite keeps one table.
//!
//! A partitioned table's primary key must contain the partition key, so the key becomes
//! (terminal_id, seq, observed_at). The same message twice has the same observed_at,
//! so redeliveries still collide on it and change nothing. Rows whose month has no
//! partition (a terminal clock far off) land in `reports_default`; the store creates
//! the months around "now" ahead of time and moves such rows when it adds a month.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{DbBackend, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared("ALTER TABLE reports RENAME TO reports_unpartitioned")
            .await?;
        db.execute_unprepared("ALTER TABLE reports_unpartitioned RENAME CONSTRAINT reports_pkey TO reports_unpartitioned_pkey")
            .await?;
        db.execute_unprepared(
            "CREATE TABLE reports (
                terminal_id text NOT NULL,
                seq bigint NOT NULL,
                tenant text NOT NULL,
                clinic_code text NOT NULL,
                observed_at timestamptz NOT NULL,
                received_at timestamptz NOT NULL,
                body text NOT NULL,
                PRIMARY KEY (terminal_id, seq, observed_at)
            ) PARTITION BY RANGE (observed_at)",
        )
        .await?;
        db.execute_unprepared("CREATE TABLE reports_default PARTITION OF reports DEFAULT")
            .await?;
        // One partition per month that already has rows, then the rows.
        let months = db
            .query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT DISTINCT to_char(date_trunc('month', observed_at AT TIME ZONE 'Asia/Tokyo'), 'YYYY-MM') AS month \
                 FROM reports_unpartitioned",
            ))
            .await?;
        for row in months {
            let month: String = row.try_get("", "month")?;
            db.execute_unprepared(&create_month_sql(&month)).await?;
        }
        db.execute_unprepared("INSERT INTO reports SELECT * FROM reports_unpartitioned")
            .await?;
        db.execute_unprepared("DROP TABLE reports_unpartitioned")
            .await?;
        Ok(())
    }
}

/// `CREATE TABLE reports_y2026m01 PARTITION OF reports FOR VALUES FROM (…) TO (…)` for a
/// month `YYYY-MM`, bounded in JST like everything the product shows.
pub fn create_month_sql(month: &str) -> String {
    let (year, mon) = month.split_once('-').unwrap_or(("1970", "01"));
    let y: i32 = year.parse().unwrap_or(1970);
    let m: u32 = mon.parse().unwrap_or(1);
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    format!(
        "CREATE TABLE IF NOT EXISTS reports_y{y:04}m{m:02} PARTITION OF reports \
         FOR VALUES FROM ('{y:04}-{m:02}-01 00:00:00+09') TO ('{ny:04}-{nm:02}-01 00:00:00+09')"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn month_bounds_roll_over_the_year() {
        let sql = super::create_month_sql("2026-12");
        assert!(sql.contains("reports_y2026m12"));
        assert!(
            sql.contains("FROM ('2026-12-01 00:00:00+09') TO ('2027-01-01 00:00:00+09')"),
            "{sql}"
        );
    }
}
