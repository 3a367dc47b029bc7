//! PostgreSQL: reader errors without a unique key per (terminal, seq, index), with an
//! index by time instead — what `m20261202_000006` did for SQLite.
//!
//! Why: the key put each report's errors at a place in its index set by the
//! terminal's UUID, so during an area outage, when every report carries network
//! errors, each report dirtied one more random index page. The key guarded nothing
//! that the history does not: an ingest batch records a report's errors only in the
//! transaction that first adds the report to the history, whose own unique key makes
//! a redelivery (or the same report in a second replica's batch, which waits on that
//! key) a no-op. What reads these rows is retention, which deletes by `at` and until
//! now had no index to do it with.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        for sql in [
            "ALTER TABLE reader_errors DROP CONSTRAINT reader_errors_pkey",
            "CREATE INDEX reader_errors_by_time ON reader_errors (at)",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
