//! 承継: a vendor moves terminals from one 医療機関等コード to a new one. The move is
//! remembered, so reports that still carry the old code (until the agent's settings
//! are changed) count for the new clinic.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Successions {
    Table,
    Tenant,
    FromCode,
    /// One terminal, or empty for every terminal of the code.
    TerminalId,
    ToCode,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Successions::Table)
                    .if_not_exists()
                    .col(text(Successions::Tenant))
                    .col(text(Successions::FromCode))
                    .col(text(Successions::TerminalId))
                    .col(text(Successions::ToCode))
                    .col(timestamp_with_time_zone(Successions::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(Successions::Tenant)
                            .col(Successions::FromCode)
                            .col(Successions::TerminalId),
                    )
                    .to_owned(),
            )
            .await
    }
}
