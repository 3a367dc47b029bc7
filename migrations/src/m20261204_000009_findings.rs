//! Findings (contract §6): the conditions that need a human, with their history, and
//! the data they are judged against — maintenance windows and clinic hours.
//!
//! Why one `findings` table holds conditions that are not raised yet (`status =
//! 'pending'`): "down for 10 minutes while the clinic is open" needs to remember
//! when a condition began, and a terminal's state remembers only the latest
//! observation of each field. Keeping the not-yet-raised condition as a row beside
//! the raised ones means one read per terminal gives the rules everything they
//! remember; pending rows are never listed or sent, and are deleted, not resolved,
//! when their condition clears.
//!
//! `finding_events` is the history of each finding (raised, suppressed, folded,
//! resolved, acknowledged by whom). `reader_errors` gains an index by terminal and
//! time: the rules count a terminal's errors of the last 15 minutes, and are asked
//! only when a batch brings errors for that terminal or it holds a reader fault.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Findings {
    Table,
    Id,
    Tenant,
    TerminalId,
    ClinicCode,
    Prefecture,
    Area,
    Kind,
    /// The campaign id for `campaign` findings, else empty: part of the key.
    Campaign,
    Severity,
    Status,
    Since,
    ResolvedAt,
    /// The finding as JSON (cause, detail, instructions, days left…); empty while pending.
    Body,
    WindowId,
    IncidentId,
    AckedBy,
    AckedAt,
    UpdatedAt,
    /// When it was last posted to Alertmanager as active.
    SentAt,
    /// `active` once posted active, `ended` once its end was posted.
    Delivery,
}

#[derive(DeriveIden)]
enum FindingEvents {
    Table,
    FindingId,
    At,
    Event,
    Actor,
}

#[derive(DeriveIden)]
enum MaintenanceWindows {
    Table,
    Id,
    Scope,
    Area,
    Kind,
    StartsAt,
    EndsAt,
    Title,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ClinicHours {
    Table,
    Tenant,
    ClinicCode,
    Hours,
    UpdatedAt,
}

/// How many terminals of a tenant's prefecture first reported in each hour (by
/// `observed_at`): what "reported in the previous hour" of an area incident counts,
/// kept as reports arrive so no one counts the fleet.
#[derive(DeriveIden)]
enum ReportingHours {
    Table,
    Tenant,
    Prefecture,
    Hour,
    Terminals,
}

#[derive(DeriveIden)]
enum ReaderErrors {
    Table,
    TerminalId,
    At,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Findings::Table)
                    .if_not_exists()
                    .col(text(Findings::Id).primary_key())
                    .col(text(Findings::Tenant))
                    .col(text_null(Findings::TerminalId))
                    .col(text_null(Findings::ClinicCode))
                    .col(text_null(Findings::Prefecture))
                    .col(text_null(Findings::Area))
                    .col(text(Findings::Kind))
                    .col(text(Findings::Campaign))
                    .col(text(Findings::Severity))
                    .col(text(Findings::Status))
                    .col(timestamp_with_time_zone(Findings::Since))
                    .col(timestamp_with_time_zone_null(Findings::ResolvedAt))
                    .col(text(Findings::Body))
                    .col(text_null(Findings::WindowId))
                    .col(text_null(Findings::IncidentId))
                    .col(text_null(Findings::AckedBy))
                    .col(timestamp_with_time_zone_null(Findings::AckedAt))
                    .col(timestamp_with_time_zone(Findings::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Findings::SentAt))
                    .col(text_null(Findings::Delivery))
                    .to_owned(),
            )
            .await?;
        // What a write reads per terminal: its findings that are not resolved.
        manager
            .create_index(
                Index::create()
                    .name("findings_by_terminal")
                    .table(Findings::Table)
                    .col(Findings::TerminalId)
                    .col(Findings::Status)
                    .to_owned(),
            )
            .await?;
        // The lists: a tenant's open findings, most urgent and oldest first.
        manager
            .create_index(
                Index::create()
                    .name("findings_by_status")
                    .table(Findings::Table)
                    .col(Findings::Status)
                    .col(Findings::Severity)
                    .col(Findings::Since)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(FindingEvents::Table)
                    .if_not_exists()
                    .col(text(FindingEvents::FindingId))
                    .col(timestamp_with_time_zone(FindingEvents::At))
                    .col(text(FindingEvents::Event))
                    .col(text_null(FindingEvents::Actor))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("finding_events_by_finding")
                    .table(FindingEvents::Table)
                    .col(FindingEvents::FindingId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MaintenanceWindows::Table)
                    .if_not_exists()
                    .col(text(MaintenanceWindows::Id).primary_key())
                    .col(text(MaintenanceWindows::Scope))
                    .col(text(MaintenanceWindows::Area))
                    .col(text(MaintenanceWindows::Kind))
                    .col(timestamp_with_time_zone(MaintenanceWindows::StartsAt))
                    .col(timestamp_with_time_zone(MaintenanceWindows::EndsAt))
                    .col(text(MaintenanceWindows::Title))
                    .col(timestamp_with_time_zone(MaintenanceWindows::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ClinicHours::Table)
                    .if_not_exists()
                    .col(text(ClinicHours::Tenant))
                    .col(text(ClinicHours::ClinicCode))
                    .col(text(ClinicHours::Hours))
                    .col(timestamp_with_time_zone(ClinicHours::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(ClinicHours::Tenant)
                            .col(ClinicHours::ClinicCode),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ReportingHours::Table)
                    .if_not_exists()
                    .col(text(ReportingHours::Tenant))
                    .col(text(ReportingHours::Prefecture))
                    .col(timestamp_with_time_zone(ReportingHours::Hour))
                    .col(big_integer(ReportingHours::Terminals))
                    .primary_key(
                        Index::create()
                            .col(ReportingHours::Tenant)
                            .col(ReportingHours::Prefecture)
                            .col(ReportingHours::Hour),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("reader_errors_by_terminal")
                    .table(ReaderErrors::Table)
                    .col(ReaderErrors::TerminalId)
                    .col(ReaderErrors::At)
                    .to_owned(),
            )
            .await
    }
}
