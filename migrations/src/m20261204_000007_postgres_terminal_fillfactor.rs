//! PostgreSQL: leave room in each page of `terminals` for the next version of its
//! rows.
//!
//! Why: almost every report rewrites its terminal's row (a new `seq`, new times, the
//! state). PostgreSQL writes an update as a new version of the row; when the page
//! has room for it and no indexed column changed, the new version stays on the page
//! and no index is touched (a "HOT" update), and the old one is pruned as the page
//! is next read. At the default fill factor of 100 the pages are full, so each
//! update moved the row to another page and added an entry to both of the table's
//! indexes, which vacuum then had to clean. Heartbeats never change the indexed
//! columns (`terminal_id`; `clinic_code`, `tenant`), so with room on the page they
//! are all HOT. 70 leaves about two spare versions of a 1 KiB row per 8 KiB page.
//!
//! The setting governs pages written from now on; `VACUUM FULL terminals` rewrites an
//! existing table at once (it locks the table while it runs). SQLite updates in place
//! and needs nothing.

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
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE terminals SET (fillfactor = 70)")
            .await?;
        Ok(())
    }
}
