//! Findings, maintenance windows and clinic hours as the service reads and edits
//! them: the API's lists and acknowledgements, the `fleetd window` commands, the
//! sweep of what time alone changes, and what goes to Alertmanager.
//!
//! The rules and their verdicts are written by [`crate::flow`] inside the ingest
//! transaction and by [`Store::sweep`]; everything here either reads, or changes a
//! column no verdict depends on (acknowledgement, delivery), or edits the data the
//! next verdict reads (windows, hours). Those small writes go through the pool on
//! both databases: on SQLite they wait on the busy timeout behind the writer.

use anyhow::Context;
use chrono::{DateTime, FixedOffset};
use fleet_protocol::findings::{
    ClinicHours, Finding, FindingKind, FindingStatus, MaintenanceWindow, Severity, Thresholds,
    WindowScope, seeded_windows,
};
use fleet_protocol::{Campaign, ClinicCode, JST, TenantSlug};
use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Cond, Expr, ExprTrait, OnConflict, Order, Query};
use uuid::Uuid;

use crate::findings_rows::{parse_finding, parse_hours, window_columns, window_of};
use crate::flow::{self, run_ready};
use crate::postgres::in_transaction;
use crate::read::scope_condition;
use crate::schema::{
    ClinicHours as ClinicHoursTable, FindingEvents, Findings, MaintenanceWindows, Scoped,
};
use crate::{Scope, Store, Writer};

/// A finding as stored: the rules' finding with its id, owner, end and acknowledgement.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredFinding {
    pub id: Uuid,
    pub tenant: String,
    pub finding: Finding,
    pub resolved_at: Option<DateTime<FixedOffset>>,
    pub acked_by: Option<String>,
    pub acked_at: Option<DateTime<FixedOffset>>,
}

/// The filters of `GET /api/v1/findings` (contract §7).
#[derive(Clone, Debug, Default)]
pub struct FindingFilter {
    /// Without statuses: active, suppressed and folded.
    pub statuses: Vec<FindingStatus>,
    pub kind: Option<FindingKind>,
    pub severity: Option<Severity>,
    pub clinic: Option<ClinicCode>,
    pub prefecture: Option<fleet_protocol::Prefecture>,
    pub terminal: Option<Uuid>,
}

/// A page of findings and where the next one starts.
#[derive(Clone, Debug)]
pub struct FindingPage {
    pub findings: Vec<StoredFinding>,
    pub next_cursor: Option<String>,
}

/// How much the sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub terminals: u64,
}

/// Times are compared as text on SQLite, where every stored time is JST text.
fn jst(t: DateTime<FixedOffset>) -> DateTime<FixedOffset> {
    t.with_timezone(&JST)
}

/// Most urgent first: page, urgent, ticket.
const SEVERITY_RANK: &str = "CASE severity WHEN 'page' THEN 0 WHEN 'urgent' THEN 1 ELSE 2 END";

fn finding_columns() -> [Findings; 8] {
    [
        Findings::IncidentId,
        Findings::Id,
        Findings::Tenant,
        Findings::Body,
        Findings::Status,
        Findings::ResolvedAt,
        Findings::AckedBy,
        Findings::AckedAt,
    ]
}

fn stored_finding(row: &sea_orm::QueryResult) -> anyhow::Result<StoredFinding> {
    let id: String = row.try_get("", "id")?;
    let body: String = row.try_get("", "body")?;
    let status: String = row.try_get("", "status")?;
    let mut finding = parse_finding(&body)?;
    // The row's status is the truth: `resolved` is set on the row alone.
    finding.status = FindingStatus::parse(&status)
        .ok_or_else(|| anyhow::anyhow!("stored finding status {status:?} is unknown"))?;
    finding.incident_id = row.try_get("", "incident_id")?;
    Ok(StoredFinding {
        id: Uuid::parse_str(&id)?,
        tenant: row.try_get("", "tenant")?,
        finding,
        resolved_at: row
            .try_get::<Option<DateTime<FixedOffset>>>("", "resolved_at")?
            .map(jst),
        acked_by: row.try_get("", "acked_by")?,
        acked_at: row
            .try_get::<Option<DateTime<FixedOffset>>>("", "acked_at")?
            .map(jst),
    })
}

impl Store {
    /// Runs a select of [`finding_columns`] and reads each row as a finding.
    async fn select_findings(
        &self,
        select: &sea_orm::sea_query::SelectStatement,
        what: &'static str,
    ) -> anyhow::Result<Vec<StoredFinding>> {
        let rows = self.db.query_all(select).await.context(what)?;
        rows.iter().map(stored_finding).collect()
    }

    /// Findings within `scope`, most urgent first (page, urgent, ticket, then oldest
    /// `since`). `cursor` is what the previous page returned.
    pub async fn findings(
        &self,
        scope: &Scope,
        filter: &FindingFilter,
        limit: u64,
        cursor: Option<&str>,
    ) -> anyhow::Result<FindingPage> {
        let offset: u64 = match cursor {
            None => 0,
            Some(c) => c
                .parse()
                .map_err(|_| anyhow::anyhow!("cursor {c:?} is not one this service gave"))?,
        };
        let limit = limit.clamp(1, 1000);
        let statuses: Vec<&str> = if filter.statuses.is_empty() {
            vec!["active", "suppressed", "folded"]
        } else {
            filter.statuses.iter().map(|s| s.as_str()).collect()
        };
        let mut select = Query::select();
        select
            .columns(finding_columns())
            .from(Findings::Table)
            .and_where(Expr::col(Findings::Status).is_in(statuses))
            .cond_where(scope_condition(scope));
        if let Some(kind) = filter.kind {
            select.and_where(Expr::col(Findings::Kind).eq(kind.as_str()));
        }
        if let Some(severity) = filter.severity {
            select.and_where(Expr::col(Findings::Severity).eq(severity.as_str()));
        }
        if let Some(clinic) = filter.clinic {
            select.and_where(Expr::col(Findings::ClinicCode).eq(clinic.as_str()));
        }
        if let Some(prefecture) = filter.prefecture {
            select.and_where(Expr::col(Scoped::Prefecture).eq(prefecture.code()));
        }
        if let Some(terminal) = filter.terminal {
            select.and_where(Expr::col(Findings::TerminalId).eq(terminal.to_string()));
        }
        select
            .order_by_expr(Expr::cust(SEVERITY_RANK), Order::Asc)
            .order_by(Findings::Since, Order::Asc)
            .order_by(Findings::Id, Order::Asc)
            .limit(limit + 1)
            .offset(offset);
        let mut findings = self.select_findings(&select, "reading findings").await?;
        let next_cursor = (findings.len() as u64 > limit).then(|| (offset + limit).to_string());
        findings.truncate(limit as usize);
        Ok(FindingPage {
            findings,
            next_cursor,
        })
    }

    /// Area and prefecture incidents, newest first (up to `limit`). An association
    /// sees those of its prefectures and of the areas they lie in.
    pub async fn incidents(&self, scope: &Scope, limit: u64) -> anyhow::Result<Vec<StoredFinding>> {
        let visible = match scope {
            Scope::Tenant(tenant) => Cond::all().add(Expr::col(Scoped::Tenant).eq(tenant.as_str())),
            Scope::Prefectures(prefectures) => {
                let mut areas: Vec<&str> = prefectures.iter().map(|p| p.area().as_str()).collect();
                areas.sort_unstable();
                areas.dedup();
                Cond::any()
                    .add(Expr::col(Scoped::Prefecture).is_in(prefectures.iter().map(|p| p.code())))
                    .add(
                        Cond::all()
                            .add(Expr::col(Scoped::Prefecture).is_null())
                            .add(Expr::col(Findings::Area).is_in(areas)),
                    )
            }
        };
        let select = Query::select()
            .columns(finding_columns())
            .from(Findings::Table)
            .and_where(Expr::col(Findings::Kind).eq("area_incident"))
            .cond_where(visible)
            .order_by(Findings::Since, Order::Desc)
            .order_by(Findings::Id, Order::Asc)
            .limit(limit.clamp(1, 1000))
            .to_owned();
        self.select_findings(&select, "reading incidents").await
    }

    /// Acknowledges a finding of `tenant` as `who` at `now`; `false` when there is no
    /// such finding in the tenant. Acknowledging again records who did it again.
    pub async fn ack_finding(
        &self,
        tenant: &TenantSlug,
        id: Uuid,
        who: &str,
        now: DateTime<FixedOffset>,
    ) -> anyhow::Result<bool> {
        let update = Query::update()
            .table(Findings::Table)
            .values([
                (Findings::AckedBy, who.into()),
                (Findings::AckedAt, jst(now).into()),
            ])
            .and_where(Expr::col(Findings::Id).eq(id.to_string()))
            .and_where(Expr::col(Findings::Tenant).eq(tenant.as_str()))
            .and_where(Expr::col(Findings::Status).ne("pending"))
            .to_owned();
        let done = self
            .db
            .execute(&update)
            .await
            .context("acknowledging a finding")?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let event = Query::insert()
            .into_table(FindingEvents::Table)
            .columns([
                FindingEvents::FindingId,
                FindingEvents::At,
                FindingEvents::Event,
                FindingEvents::Actor,
            ])
            .values([
                id.to_string().into(),
                jst(now).into(),
                "acked".into(),
                who.into(),
            ])?
            .to_owned();
        self.db
            .execute(&event)
            .await
            .context("recording an acknowledgement")?;
        Ok(true)
    }

    /// A finding's history, oldest first: (at, event, actor).
    pub async fn finding_events(
        &self,
        id: Uuid,
    ) -> anyhow::Result<Vec<(DateTime<FixedOffset>, String, Option<String>)>> {
        let select = Query::select()
            .columns([
                FindingEvents::At,
                FindingEvents::Event,
                FindingEvents::Actor,
            ])
            .from(FindingEvents::Table)
            .and_where(Expr::col(FindingEvents::FindingId).eq(id.to_string()))
            .order_by(FindingEvents::At, Order::Asc)
            .to_owned();
        let rows = self
            .db
            .query_all(&select)
            .await
            .context("reading a finding's history")?;
        rows.iter()
            .map(|row| {
                Ok((
                    jst(row.try_get("", "at")?),
                    row.try_get("", "event")?,
                    row.try_get("", "actor")?,
                ))
            })
            .collect()
    }

    /// Findings Alertmanager should hear of now (contract §7): active, `page` or
    /// `urgent` (any severity with `tickets`), never posted or last posted before
    /// `repost_before`.
    pub async fn findings_to_post(
        &self,
        tickets: bool,
        repost_before: DateTime<FixedOffset>,
        limit: u64,
    ) -> anyhow::Result<Vec<StoredFinding>> {
        let mut select = Query::select();
        select
            .columns(finding_columns())
            .from(Findings::Table)
            .and_where(Expr::col(Findings::Status).eq("active"))
            .cond_where(
                Cond::any()
                    .add(Expr::col(Findings::SentAt).is_null())
                    .add(Expr::col(Findings::SentAt).lt(jst(repost_before))),
            );
        if !tickets {
            select.and_where(Expr::col(Findings::Severity).is_in(["page", "urgent"]));
        }
        select
            .order_by_expr(Expr::cust(SEVERITY_RANK), Order::Asc)
            .order_by(Findings::Since, Order::Asc)
            .limit(limit);
        self.select_findings(&select, "reading findings to post")
            .await
    }

    /// Findings once posted as active that no longer are (resolved, or suppressed
    /// or folded since): their end must be posted.
    pub async fn findings_ended(&self, limit: u64) -> anyhow::Result<Vec<StoredFinding>> {
        let select = Query::select()
            .columns(finding_columns())
            .from(Findings::Table)
            .and_where(Expr::col(Findings::Delivery).eq("active"))
            .and_where(Expr::col(Findings::Status).ne("active"))
            .limit(limit)
            .to_owned();
        self.select_findings(&select, "reading ended findings")
            .await
    }

    /// Records that `ids` were posted: as active at `now`, or (`ended`) their end.
    pub async fn mark_posted(
        &self,
        ids: &[Uuid],
        ended: bool,
        now: DateTime<FixedOffset>,
    ) -> anyhow::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut update = Query::update();
        update.table(Findings::Table);
        if ended {
            update.value(Findings::Delivery, "ended");
        } else {
            update.values([
                (Findings::Delivery, "active".into()),
                (Findings::SentAt, jst(now).into()),
            ]);
        }
        update.and_where(Expr::col(Findings::Id).is_in(ids.iter().map(Uuid::to_string)));
        if !ended {
            // A finding that ended meanwhile keeps its end to be posted.
            update.and_where(Expr::col(Findings::Status).eq("active"));
        }
        self.db
            .execute(&update)
            .await
            .context("recording what was posted")?;
        Ok(())
    }

    /// Counts of findings by kind and status (resolved ones excluded), for metrics.
    pub async fn finding_counts(&self) -> anyhow::Result<Vec<(String, String, i64)>> {
        let select = Query::select()
            .columns([Findings::Kind, Findings::Status])
            .expr_as(Expr::cust("count(*)"), crate::schema::Computed::N)
            .from(Findings::Table)
            .and_where(Expr::col(Findings::Status).is_in(["active", "suppressed", "folded"]))
            .group_by_columns([Findings::Kind, Findings::Status])
            .to_owned();
        let rows = self
            .db
            .query_all(&select)
            .await
            .context("counting findings")?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("", "kind")?,
                    row.try_get("", "status")?,
                    row.try_get("", "n")?,
                ))
            })
            .collect()
    }

    /// Judges every terminal at `now` for what time alone changes, in pages of
    /// `page` terminals, each its own short transaction (ingest is never held long).
    pub async fn sweep(
        &self,
        campaigns: &[Campaign],
        thresholds: &Thresholds,
        now: DateTime<FixedOffset>,
        page: u64,
    ) -> anyhow::Result<Swept> {
        let mut after = String::new();
        let mut swept = Swept::default();
        loop {
            let step = match &self.writer {
                Writer::Sqlite(writer) => {
                    let (writer, campaigns, thresholds, from) = (
                        writer.clone(),
                        campaigns.to_vec(),
                        thresholds.clone(),
                        after.clone(),
                    );
                    tokio::task::spawn_blocking(move || {
                        writer.run_beside_cache(|tx| {
                            run_ready(flow::sweep_page(
                                tx,
                                &campaigns,
                                &thresholds,
                                &from,
                                page,
                                now,
                            ))?
                        })
                    })
                    .await
                    .context("the SQLite writer thread panicked")??
                }
                Writer::Postgres => in_transaction!(&self.db, |tx| flow::sweep_page(
                    tx, campaigns, thresholds, &after, page, now
                ))?,
            };
            let Some((last, n)) = step else { break };
            swept.terminals += n;
            after = last;
        }
        Ok(swept)
    }

    /// Maintenance windows visible to `tenant` (scope `all` and its own), or every
    /// window when `None` (the operator), by start.
    pub async fn windows(
        &self,
        tenant: Option<&TenantSlug>,
    ) -> anyhow::Result<Vec<MaintenanceWindow>> {
        let mut select = Query::select();
        select
            .columns([
                MaintenanceWindows::Id,
                MaintenanceWindows::Scope,
                MaintenanceWindows::Area,
                MaintenanceWindows::Kind,
                MaintenanceWindows::StartsAt,
                MaintenanceWindows::EndsAt,
                MaintenanceWindows::Title,
            ])
            .from(MaintenanceWindows::Table);
        if let Some(tenant) = tenant {
            select.and_where(Expr::col(MaintenanceWindows::Scope).is_in(["all", tenant.as_str()]));
        }
        select
            .order_by(MaintenanceWindows::StartsAt, Order::Asc)
            .order_by(MaintenanceWindows::Id, Order::Asc);
        let rows = self
            .db
            .query_all(&select)
            .await
            .context("reading maintenance windows")?;
        rows.iter()
            .map(|row| {
                window_of(
                    row.try_get("", "id")?,
                    &row.try_get::<String>("", "scope")?,
                    &row.try_get::<String>("", "area")?,
                    &row.try_get::<String>("", "kind")?,
                    jst(row.try_get("", "starts_at")?),
                    jst(row.try_get("", "ends_at")?),
                    row.try_get("", "title")?,
                )
            })
            .collect()
    }

    /// Adds a window; `false` when its id is taken.
    pub async fn add_window(
        &self,
        window: &MaintenanceWindow,
        now: DateTime<FixedOffset>,
    ) -> anyhow::Result<bool> {
        window
            .validate()
            .map_err(|e| anyhow::anyhow!("window {}: {e}", window.id))?;
        let (scope, area, kind) = window_columns(window);
        let insert = Query::insert()
            .into_table(MaintenanceWindows::Table)
            .columns([
                MaintenanceWindows::Id,
                MaintenanceWindows::Scope,
                MaintenanceWindows::Area,
                MaintenanceWindows::Kind,
                MaintenanceWindows::StartsAt,
                MaintenanceWindows::EndsAt,
                MaintenanceWindows::Title,
                MaintenanceWindows::CreatedAt,
            ])
            .values([
                window.id.clone().into(),
                scope.into(),
                area.into(),
                kind.into(),
                jst(window.starts_at).into(),
                jst(window.ends_at).into(),
                window.title.clone().into(),
                jst(now).into(),
            ])?
            .on_conflict(
                OnConflict::column(MaintenanceWindows::Id)
                    .do_nothing()
                    .to_owned(),
            )
            .to_owned();
        let done = self
            .db
            .execute(&insert)
            .await
            .context("adding a maintenance window")?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes a window; with `tenant`, only one of that tenant's own scope. `false`
    /// when there is no such window.
    pub async fn remove_window(
        &self,
        id: &str,
        tenant: Option<&TenantSlug>,
    ) -> anyhow::Result<bool> {
        let mut delete = Query::delete();
        delete
            .from_table(MaintenanceWindows::Table)
            .and_where(Expr::col(MaintenanceWindows::Id).eq(id));
        if let Some(tenant) = tenant {
            delete.and_where(Expr::col(MaintenanceWindows::Scope).eq(tenant.as_str()));
        }
        let done = self
            .db
            .execute(&delete)
            .await
            .context("removing a maintenance window")?;
        Ok(done.rows_affected() > 0)
    }

    /// Inserts the windows of the seeds (scope `all`) that are not there yet.
    pub async fn seed_windows(&self, now: DateTime<FixedOffset>) -> anyhow::Result<()> {
        for window in seeded_windows() {
            debug_assert!(matches!(window.scope, WindowScope::All));
            self.add_window(&window, now).await?;
        }
        Ok(())
    }

    /// A clinic's hours: its own, else the default (contract §6).
    pub async fn clinic_hours(
        &self,
        tenant: &TenantSlug,
        code: ClinicCode,
    ) -> anyhow::Result<ClinicHours> {
        let select = Query::select()
            .column(ClinicHoursTable::Hours)
            .from(ClinicHoursTable::Table)
            .and_where(Expr::col(ClinicHoursTable::Tenant).eq(tenant.as_str()))
            .and_where(Expr::col(ClinicHoursTable::ClinicCode).eq(code.as_str()))
            .to_owned();
        match self
            .db
            .query_one(&select)
            .await
            .context("reading clinic hours")?
        {
            Some(row) => parse_hours(&row.try_get::<String>("", "hours")?),
            None => Ok(ClinicHours::default()),
        }
    }

    /// Sets a clinic's hours; they count from the next verdict (a report or the
    /// sweep).
    pub async fn set_clinic_hours(
        &self,
        tenant: &TenantSlug,
        code: ClinicCode,
        hours: &ClinicHours,
        now: DateTime<FixedOffset>,
    ) -> anyhow::Result<()> {
        let insert = Query::insert()
            .into_table(ClinicHoursTable::Table)
            .columns([
                ClinicHoursTable::Tenant,
                ClinicHoursTable::ClinicCode,
                ClinicHoursTable::Hours,
                ClinicHoursTable::UpdatedAt,
            ])
            .values([
                tenant.as_str().into(),
                code.as_str().into(),
                serde_json::to_string(hours)?.into(),
                jst(now).into(),
            ])?
            .on_conflict(
                OnConflict::columns([ClinicHoursTable::Tenant, ClinicHoursTable::ClinicCode])
                    .update_columns([ClinicHoursTable::Hours, ClinicHoursTable::UpdatedAt])
                    .to_owned(),
            )
            .to_owned();
        self.db
            .execute(&insert)
            .await
            .context("setting clinic hours")?;
        Ok(())
    }
}
