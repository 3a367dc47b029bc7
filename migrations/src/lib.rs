//! Schema migrations for SQLite (the embedded default) and PostgreSQL.
//!
//! Migrations declare their own identifiers and never import today's entities, so an
//! old migration keeps its meaning when the store's code moves on. Each migration is
//! written once with sea-query's builders, which render the right SQL for both
//! databases.

pub use sea_orm_migration::MigratorTrait;
use sea_orm_migration::prelude::*;

mod m20260122_000001_initial;
mod m20260122_000002_rollout_counters;
mod m20260122_000003_successions;
mod m20260122_000004_partition_history;
mod m20261202_000005_sqlite_history_key;
mod m20261202_000006_sqlite_reader_errors_by_time;
mod m20261204_000007_postgres_terminal_fillfactor;
mod m20261204_000008_postgres_reader_errors_by_time;
mod m20261204_000009_findings;

pub use m20260122_000004_partition_history::create_month_sql;

/// Every migration, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20260122_000001_initial::Migration),
            Box::new(m20260122_000002_rollout_counters::Migration),
            Box::new(m20260122_000003_successions::Migration),
            Box::new(m20260122_000004_partition_history::Migration),
            Box::new(m20261202_000005_sqlite_history_key::Migration),
            Box::new(m20261202_000006_sqlite_reader_errors_by_time::Migration),
            Box::new(m20261204_000007_postgres_terminal_fillfactor::Migration),
            Box::new(m20261204_000008_postgres_reader_errors_by_time::Migration),
            Box::new(m20261204_000009_findings::Migration),
        ]
    }
}
