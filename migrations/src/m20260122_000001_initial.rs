//! The first schema: tenants and their AMQP publishers, clinics, terminals (current
//! state), report history, reader-error events, campaigns and per-terminal campaign
//! states.
//!
//! Times are `timestamp with time zone`; JSON documents are stored as text so that
//! both databases treat them alike. `seq` is a 64-bit signed integer in both
//! databases: the service refuses a `seq` above 2^63−1 (see the store).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Slug,
    Name,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Publishers {
    Table,
    AmqpUser,
    Tenant,
}

#[derive(DeriveIden)]
enum Clinics {
    Table,
    Tenant,
    ClinicCode,
    Prefecture,
    Area,
    Name,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Terminals {
    Table,
    TerminalId,
    Tenant,
    ClinicCode,
    Prefecture,
    LastSeq,
    LastObservedAt,
    LastReceivedAt,
    State,
}

#[derive(DeriveIden)]
enum Reports {
    Table,
    TerminalId,
    Seq,
    Tenant,
    ClinicCode,
    ObservedAt,
    ReceivedAt,
    Body,
}

#[derive(DeriveIden)]
enum ReaderErrors {
    Table,
    TerminalId,
    Seq,
    Idx,
    Tenant,
    Code,
    Message,
    At,
    Count,
}

#[derive(DeriveIden)]
enum Campaigns {
    Table,
    Id,
    Definition,
    CreatedAt,
}

#[derive(DeriveIden)]
enum CampaignStates {
    Table,
    TerminalId,
    CampaignId,
    Tenant,
    Prefecture,
    ClinicCode,
    State,
    Cause,
    SeenInDistributionAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Tenants::Table)
                    .if_not_exists()
                    .col(text(Tenants::Slug).primary_key())
                    .col(text(Tenants::Name))
                    .col(timestamp_with_time_zone(Tenants::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Publishers::Table)
                    .if_not_exists()
                    .col(text(Publishers::AmqpUser).primary_key())
                    .col(text(Publishers::Tenant))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Publishers::Table, Publishers::Tenant)
                            .to(Tenants::Table, Tenants::Slug),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Clinics::Table)
                    .if_not_exists()
                    .col(text(Clinics::Tenant))
                    .col(text(Clinics::ClinicCode))
                    .col(text(Clinics::Prefecture))
                    .col(text(Clinics::Area))
                    .col(text_null(Clinics::Name))
                    .col(timestamp_with_time_zone(Clinics::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(Clinics::Tenant)
                            .col(Clinics::ClinicCode),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("clinics_by_code")
                    .table(Clinics::Table)
                    .col(Clinics::ClinicCode)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Terminals::Table)
                    .if_not_exists()
                    .col(text(Terminals::TerminalId).primary_key())
                    .col(text(Terminals::Tenant))
                    .col(text(Terminals::ClinicCode))
                    .col(text(Terminals::Prefecture))
                    .col(big_integer(Terminals::LastSeq))
                    .col(timestamp_with_time_zone(Terminals::LastObservedAt))
                    .col(timestamp_with_time_zone(Terminals::LastReceivedAt))
                    .col(text(Terminals::State))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("terminals_by_clinic")
                    .table(Terminals::Table)
                    .col(Terminals::ClinicCode)
                    .col(Terminals::Tenant)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Reports::Table)
                    .if_not_exists()
                    .col(text(Reports::TerminalId))
                    .col(big_integer(Reports::Seq))
                    .col(text(Reports::Tenant))
                    .col(text(Reports::ClinicCode))
                    .col(timestamp_with_time_zone(Reports::ObservedAt))
                    .col(timestamp_with_time_zone(Reports::ReceivedAt))
                    .col(text(Reports::Body))
                    .primary_key(Index::create().col(Reports::TerminalId).col(Reports::Seq))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ReaderErrors::Table)
                    .if_not_exists()
                    .col(text(ReaderErrors::TerminalId))
                    .col(big_integer(ReaderErrors::Seq))
                    .col(integer(ReaderErrors::Idx))
                    .col(text(ReaderErrors::Tenant))
                    .col(text(ReaderErrors::Code))
                    .col(text_null(ReaderErrors::Message))
                    .col(timestamp_with_time_zone(ReaderErrors::At))
                    .col(big_integer(ReaderErrors::Count))
                    .primary_key(
                        Index::create()
                            .col(ReaderErrors::TerminalId)
                            .col(ReaderErrors::Seq)
                            .col(ReaderErrors::Idx),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Campaigns::Table)
                    .if_not_exists()
                    .col(text(Campaigns::Id).primary_key())
                    .col(text(Campaigns::Definition))
                    .col(timestamp_with_time_zone(Campaigns::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CampaignStates::Table)
                    .if_not_exists()
                    .col(text(CampaignStates::TerminalId))
                    .col(text(CampaignStates::CampaignId))
                    .col(text(CampaignStates::Tenant))
                    .col(text(CampaignStates::Prefecture))
                    .col(text(CampaignStates::ClinicCode))
                    .col(text(CampaignStates::State))
                    .col(text(CampaignStates::Cause))
                    .col(timestamp_with_time_zone_null(
                        CampaignStates::SeenInDistributionAt,
                    ))
                    .col(timestamp_with_time_zone(CampaignStates::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(CampaignStates::TerminalId)
                            .col(CampaignStates::CampaignId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("campaign_states_rollout")
                    .table(CampaignStates::Table)
                    .col(CampaignStates::CampaignId)
                    .col(CampaignStates::Tenant)
                    .col(CampaignStates::Prefecture)
                    .col(CampaignStates::State)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
