//! SQLite: reader errors without a unique key per (terminal, seq, index), with an
//! index by time instead.
//!
//! Why: the primary key (terminal_id text, seq, idx) put each report's errors at a
//! place set by its terminal's UUID, so during an area outage — when every report
//! carries network errors — each report dirtied one more random index page, written
//! to the WAL and again at the checkpoint (docs/BENCHMARKS.md). The key guarded
//! nothing the history does not already guard: the store records a report's errors
//! only in the transaction that first adds the report to the history, whose own
//! unique key makes a redelivery a no-op. What reads these rows is retention (by
//! time) and, to come, alerts over recent errors: an index on `at` serves both, and
//! as errors arrive roughly in time order its inserts land at its end.
//!
//! PostgreSQL keeps its table and key.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Sqlite {
            return Ok(());
        }
        let db = manager.get_connection();
        for sql in [
            "ALTER TABLE reader_errors RENAME TO reader_errors_keyed",
            "CREATE TABLE reader_errors ( \
                \"terminal_id\" text NOT NULL, \
                \"seq\" integer NOT NULL, \
                \"idx\" integer NOT NULL, \
                \"tenant\" text NOT NULL, \
                \"code\" text NOT NULL, \
                \"message\" text NULL, \
                \"at\" timestamp_with_timezone_text NOT NULL, \
                \"count\" integer NOT NULL )",
            "INSERT INTO reader_errors \
                SELECT terminal_id, seq, idx, tenant, code, message, at, count \
                FROM reader_errors_keyed ORDER BY rowid",
            "DROP TABLE reader_errors_keyed",
            "CREATE INDEX reader_errors_by_time ON reader_errors (at)",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
