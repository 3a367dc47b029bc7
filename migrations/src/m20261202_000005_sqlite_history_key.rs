//! SQLite: the report history's unique key becomes (integer terminal key, seq).
//!
//! Why: every report inserted one entry into the (terminal_id, seq) index at a place
//! set by its terminal's UUID — about 50 bytes of text per entry, so a batch of
//! reports from a few thousand terminals dirtied as many index pages, each written
//! to the WAL and again at the checkpoint, and every seek compared UUID text. An
//! 8-byte integer per terminal makes the entries a third as large and the
//! comparisons single integers (docs/BENCHMARKS.md). Nothing reads the history by
//! terminal through this index: it exists so that a redelivered report collides
//! and changes nothing.
//!
//! Each terminal gets `history_key`, assigned once (its rowid for the terminals
//! already stored; the next free number for new ones, by the SQLite writer) and
//! never changed — a 承継 moves the terminal's clinic, not its key. History rows
//! whose terminal is not stored (none should exist) get a negative key of their
//! own, so they can collide with nothing else. PostgreSQL keeps its partitioned
//! table and its (terminal_id, seq, observed_at) key.

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
            "ALTER TABLE terminals ADD COLUMN history_key integer",
            "UPDATE terminals SET history_key = rowid",
            "CREATE UNIQUE INDEX terminals_by_history_key ON terminals (history_key)",
            "ALTER TABLE reports RENAME TO reports_unkeyed",
            "CREATE TABLE reports ( \
                \"terminal_key\" integer NOT NULL, \
                \"terminal_id\" text NOT NULL, \
                \"seq\" integer NOT NULL, \
                \"tenant\" text NOT NULL, \
                \"clinic_code\" text NOT NULL, \
                \"observed_at\" timestamp_with_timezone_text NOT NULL, \
                \"received_at\" timestamp_with_timezone_text NOT NULL, \
                \"body\" text NOT NULL, \
                UNIQUE (\"terminal_key\", \"seq\") )",
            "INSERT INTO reports \
                SELECT coalesce(t.history_key, -r.rowid), r.terminal_id, r.seq, r.tenant, \
                       r.clinic_code, r.observed_at, r.received_at, r.body \
                FROM reports_unkeyed r LEFT JOIN terminals t ON t.terminal_id = r.terminal_id \
                ORDER BY r.rowid",
            "DROP TABLE reports_unkeyed",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
