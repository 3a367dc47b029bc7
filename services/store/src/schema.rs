//! The names of the tables and columns that runtime code reads and writes through
//! sea-query, once: `DeriveIden` turns `Terminals::LastReceivedAt` into
//! `last_received_at` and `Terminals::Table` into `terminals`.
//!
//! Migrations declare their own identifiers and never import these (style.md): an
//! old migration must not change meaning when today's schema moves on. The batch
//! statements of the adapters are fixed SQL text of their own ([`crate::sqlite`],
//! [`crate::postgres`]); these names serve the statements built per request.

use sea_orm::DeriveIden;

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum Terminals {
    Table,
    TerminalId,
    Tenant,
    ClinicCode,
    State,
    LastReceivedAt,
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum Clinics {
    Table,
    ClinicCode,
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum CampaignStates {
    Table,
    TerminalId,
    CampaignId,
    ClinicCode,
    State,
    Cause,
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum RolloutCounters {
    Table,
    CampaignId,
    State,
    Terminals,
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum Campaigns {
    Table,
    Id,
    Definition,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum Tenants {
    Table,
    Slug,
    Name,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum Publishers {
    Table,
    AmqpUser,
    Tenant,
}

/// Columns that every scoped table has under the same name (terminals, clinics,
/// campaign states, rollout counters): what a caller's scope filters on.
#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum Scoped {
    Tenant,
    Prefecture,
}

/// Names of computed columns in a select.
#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum Computed {
    /// A count or a sum.
    N,
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum Findings {
    Table,
    Id,
    Tenant,
    TerminalId,
    ClinicCode,
    Kind,
    Severity,
    Status,
    Since,
    ResolvedAt,
    Body,
    IncidentId,
    Prefecture,
    Area,
    Campaign,
    WindowId,
    UpdatedAt,
    AckedBy,
    AckedAt,
    SentAt,
    Delivery,
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum FindingEvents {
    Table,
    FindingId,
    At,
    Event,
    Actor,
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum MaintenanceWindows {
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

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum ClinicHours {
    Table,
    Tenant,
    ClinicCode,
    Hours,
    UpdatedAt,
}
