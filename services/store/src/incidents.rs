//! Area and prefecture incidents (contract §6) from what the store keeps as reports
//! arrive: the open failure findings (indexed by status) and the hourly counts of
//! terminals that reported (`reporting_hours`). Nothing here reads the fleet's
//! terminals, so judging costs the same at 300,000 terminals as at 300 while
//! nothing fails.
//!
//! One incident is one `area_incident` finding (severity `page`, no terminal), found
//! again by its stable incident id on the next look. The terminal findings it
//! explains are `folded` under it and are never sent; when it ends they are unfolded
//! (set `active` again, for the next verdict to judge afresh).

use std::collections::{BTreeMap, HashMap};

use anyhow::Context;
use chrono::{DateTime, FixedOffset, TimeDelta};
use fleet_protocol::findings::{
    AreaIncident, ErrorSide, Failure, FindingKind, GroupCounts, IncidentScope, IncidentThresholds,
    MaintenanceWindow, classify, evaluate_tenant,
};
use fleet_protocol::{Area, JST, Prefecture, TenantSlug};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DatabaseTransaction, TransactionTrait};
use uuid::Uuid;

use crate::Store;
use crate::findings_rows::parse_finding;
use crate::plan::hour_of;
use crate::schema::{FindingEvents, Findings};

/// What one look at incidents did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IncidentsJudged {
    pub raised: usize,
    pub resolved: usize,
    pub folded: u64,
}

const FAILING: [&str; 3] = ["line_auth_down", "silent", "reader_fault"];

fn jst(t: DateTime<FixedOffset>) -> DateTime<FixedOffset> {
    t.with_timezone(&JST)
}

impl Store {
    /// Judges every tenant's incidents at `now` and writes what changed.
    pub async fn judge_incidents(
        &self,
        now: DateTime<FixedOffset>,
        thresholds: &IncidentThresholds,
    ) -> anyhow::Result<IncidentsJudged> {
        let failures = self.failures().await?;
        let open = self.open_incidents().await?;
        if failures.is_empty() && open.is_empty() {
            return Ok(IncidentsJudged::default());
        }
        let reporting = self.reporting(now).await?;
        let windows = self.windows(None).await?;
        let mut incidents = Vec::new();
        for (tenant, by_prefecture) in &failures {
            incidents.extend(judge_tenant(
                tenant,
                by_prefecture,
                &reporting,
                &windows,
                now,
                thresholds,
            )?);
        }
        let txn = self.db.begin().await.context("beginning incidents")?;
        let mut judged = IncidentsJudged::default();
        let mut still_open = Vec::new();
        for incident in &incidents {
            let key = incident.id();
            still_open.push(key.clone());
            judged.folded += fold(&txn, incident, &key, now).await?;
            match open.get(&key) {
                Some((_, status)) if status == incident.status.as_str() => {}
                Some((id, _)) => {
                    let f = incident.finding();
                    let update = Query::update()
                        .table(Findings::Table)
                        .values([
                            (Findings::Status, f.status.as_str().into()),
                            (Findings::Body, serde_json::to_string(&f)?.into()),
                            (Findings::UpdatedAt, jst(now).into()),
                        ])
                        .and_where(Expr::col(Findings::Id).eq(id.as_str()))
                        .to_owned();
                    txn.execute(&update).await.context("updating an incident")?;
                    event(&txn, id, f.status.as_str(), now).await?;
                }
                None => {
                    insert(&txn, incident, &key, now).await?;
                    judged.raised += 1;
                }
            }
        }
        for (key, (id, _)) in &open {
            if still_open.contains(key) {
                continue;
            }
            let resolve = Query::update()
                .table(Findings::Table)
                .values([
                    (Findings::Status, "resolved".into()),
                    (Findings::ResolvedAt, jst(now).into()),
                    (Findings::UpdatedAt, jst(now).into()),
                ])
                .and_where(Expr::col(Findings::Id).eq(id.as_str()))
                .to_owned();
            txn.execute(&resolve)
                .await
                .context("resolving an incident")?;
            event(&txn, id, "resolved", now).await?;
            let unfold = Query::update()
                .table(Findings::Table)
                .values([
                    (Findings::Status, "active".into()),
                    (Findings::IncidentId, Option::<String>::None.into()),
                    (Findings::UpdatedAt, jst(now).into()),
                ])
                .and_where(Expr::col(Findings::IncidentId).eq(key.as_str()))
                .and_where(Expr::col(Findings::Status).eq("folded"))
                .to_owned();
            txn.execute(&unfold).await.context("unfolding findings")?;
            judged.resolved += 1;
        }
        txn.commit().await.context("committing incidents")?;
        Ok(judged)
    }

    /// Open failure findings (network-side reader faults only), per tenant and
    /// prefecture.
    async fn failures(
        &self,
    ) -> anyhow::Result<BTreeMap<String, BTreeMap<Prefecture, Vec<Failure>>>> {
        let select = Query::select()
            .columns([
                Findings::Tenant,
                Findings::Prefecture,
                Findings::TerminalId,
                Findings::Kind,
                Findings::Since,
                Findings::Body,
            ])
            .from(Findings::Table)
            .and_where(Expr::col(Findings::Status).is_in(["active", "suppressed", "folded"]))
            .and_where(Expr::col(Findings::Kind).is_in(FAILING))
            .to_owned();
        let rows = self
            .db
            .query_all(&select)
            .await
            .context("reading failures")?;
        let mut out: BTreeMap<String, BTreeMap<Prefecture, Vec<Failure>>> = BTreeMap::new();
        for row in rows {
            let kind: String = row.try_get("", "kind")?;
            let kind = FindingKind::parse(&kind).context("stored finding kind")?;
            if kind == FindingKind::ReaderFault {
                let body: String = row.try_get("", "body")?;
                let f = parse_finding(&body)?;
                let network = f
                    .cause
                    .as_deref()
                    .is_some_and(|c| classify(None, c, None).side == ErrorSide::Network);
                if !network {
                    continue;
                }
            }
            let (Some(prefecture), Some(terminal)) = (
                row.try_get::<Option<String>>("", "prefecture")?,
                row.try_get::<Option<String>>("", "terminal_id")?,
            ) else {
                continue;
            };
            let Ok(prefecture) = Prefecture::parse(&prefecture) else {
                continue;
            };
            out.entry(row.try_get("", "tenant")?)
                .or_default()
                .entry(prefecture)
                .or_default()
                .push(Failure {
                    terminal_id: Uuid::parse_str(&terminal)?,
                    kind,
                    since: row.try_get("", "since")?,
                });
        }
        Ok(out)
    }

    /// Open incidents by incident id: (finding id, status).
    async fn open_incidents(&self) -> anyhow::Result<HashMap<String, (String, String)>> {
        let select = Query::select()
            .columns([Findings::Id, Findings::IncidentId, Findings::Status])
            .from(Findings::Table)
            .and_where(Expr::col(Findings::Kind).eq("area_incident"))
            .and_where(Expr::col(Findings::Status).ne("resolved"))
            .to_owned();
        let rows = self
            .db
            .query_all(&select)
            .await
            .context("reading open incidents")?;
        let mut map = HashMap::new();
        for row in rows {
            let key: Option<String> = row.try_get("", "incident_id")?;
            if let Some(key) = key {
                map.insert(key, (row.try_get("", "id")?, row.try_get("", "status")?));
            }
        }
        Ok(map)
    }

    /// Terminals that reported in the hour before `now`, per tenant and prefecture:
    /// the larger of this hour's count so far and the previous hour's.
    async fn reporting(
        &self,
        now: DateTime<FixedOffset>,
    ) -> anyhow::Result<HashMap<(String, String), u32>> {
        let from = hour_of(now) - TimeDelta::hours(1);
        let rows = self
            .db
            .query_all_raw(sea_orm::Statement::from_sql_and_values(
                self.db.get_database_backend(),
                match self.db.get_database_backend() {
                    sea_orm::DbBackend::Postgres => {
                        "SELECT tenant, prefecture, terminals FROM reporting_hours \
                         WHERE hour >= $1 AND hour <= $2"
                    }
                    _ => {
                        "SELECT tenant, prefecture, terminals FROM reporting_hours \
                         WHERE hour >= ? AND hour <= ?"
                    }
                },
                [jst(from).into(), jst(now).into()],
            ))
            .await
            .context("reading reporting counts")?;
        let mut map: HashMap<(String, String), u32> = HashMap::new();
        for row in rows {
            let n: i64 = row.try_get("", "terminals")?;
            let n = u32::try_from(n).unwrap_or(u32::MAX);
            let entry = map
                .entry((row.try_get("", "tenant")?, row.try_get("", "prefecture")?))
                .or_default();
            *entry = Ord::max(*entry, n);
        }
        Ok(map)
    }
}

fn judge_tenant(
    tenant: &str,
    by_prefecture: &BTreeMap<Prefecture, Vec<Failure>>,
    reporting: &HashMap<(String, String), u32>,
    windows: &[MaintenanceWindow],
    now: DateTime<FixedOffset>,
    thresholds: &IncidentThresholds,
) -> anyhow::Result<Vec<AreaIncident>> {
    let slug = TenantSlug::parse(tenant)?;
    let counted = |p: Prefecture| {
        reporting
            .get(&(tenant.to_owned(), p.code()))
            .copied()
            .unwrap_or(0)
    };
    let mut area_failures: Vec<(Area, Vec<Failure>)> = Vec::new();
    for (p, f) in by_prefecture {
        match area_failures.iter_mut().find(|(a, _)| *a == p.area()) {
            Some((_, all)) => all.extend(f),
            None => area_failures.push((p.area(), f.clone())),
        }
    }
    let area_reporting = |area: Area| -> u32 {
        reporting
            .iter()
            .filter(|((t, p), _)| {
                t == tenant && Prefecture::parse(p).is_ok_and(|p| p.area() == area)
            })
            .map(|(_, n)| *n)
            .sum()
    };
    let mut groups = Vec::new();
    for (area, failures) in &area_failures {
        groups.push(GroupCounts {
            scope: IncidentScope::Area(*area),
            reporting: area_reporting(*area),
            failures,
        });
    }
    for (p, failures) in by_prefecture {
        groups.push(GroupCounts {
            scope: IncidentScope::Prefecture(*p),
            reporting: counted(*p),
            failures,
        });
    }
    Ok(evaluate_tenant(&slug, &groups, windows, now, thresholds))
}

async fn event(
    txn: &DatabaseTransaction,
    id: &str,
    what: &str,
    now: DateTime<FixedOffset>,
) -> anyhow::Result<()> {
    let insert = Query::insert()
        .into_table(FindingEvents::Table)
        .columns([
            FindingEvents::FindingId,
            FindingEvents::At,
            FindingEvents::Event,
        ])
        .values([id.into(), jst(now).into(), what.into()])?
        .to_owned();
    txn.execute(&insert).await.context("recording an event")?;
    Ok(())
}

async fn insert(
    txn: &DatabaseTransaction,
    incident: &AreaIncident,
    key: &str,
    now: DateTime<FixedOffset>,
) -> anyhow::Result<()> {
    let f = incident.finding();
    let id = Uuid::new_v4().to_string();
    let insert = Query::insert()
        .into_table(Findings::Table)
        .columns([
            Findings::Id,
            Findings::Tenant,
            Findings::Prefecture,
            Findings::Area,
            Findings::Kind,
            Findings::Campaign,
            Findings::Severity,
            Findings::Status,
            Findings::Since,
            Findings::Body,
            Findings::WindowId,
            Findings::IncidentId,
            Findings::UpdatedAt,
        ])
        .values([
            id.clone().into(),
            incident.tenant.as_str().into(),
            f.prefecture.map(|p| p.code()).into(),
            f.area.map(|a| a.as_str().to_owned()).into(),
            "area_incident".into(),
            "".into(),
            f.severity.as_str().into(),
            f.status.as_str().into(),
            jst(f.since).into(),
            serde_json::to_string(&f)?.into(),
            f.window_id.clone().into(),
            key.into(),
            jst(now).into(),
        ])?
        .on_conflict(OnConflict::column(Findings::Id).do_nothing().to_owned())
        .to_owned();
    txn.execute(&insert).await.context("raising an incident")?;
    event(txn, &id, f.status.as_str(), now).await
}

/// Folds the incident's terminals' failure findings under it, each with its event;
/// returns how many.
async fn fold(
    txn: &DatabaseTransaction,
    incident: &AreaIncident,
    key: &str,
    now: DateTime<FixedOffset>,
) -> anyhow::Result<u64> {
    let mut folded = 0;
    for chunk in incident.folded.chunks(500) {
        let select = Query::select()
            .column(Findings::Id)
            .from(Findings::Table)
            .and_where(Expr::col(Findings::Tenant).eq(incident.tenant.as_str()))
            .and_where(Expr::col(Findings::TerminalId).is_in(chunk.iter().map(Uuid::to_string)))
            .and_where(Expr::col(Findings::Kind).is_in(FAILING))
            .and_where(Expr::col(Findings::Status).is_in(["active", "suppressed"]))
            .to_owned();
        let ids: Vec<String> = txn
            .query_all(&select)
            .await
            .context("finding what to fold")?
            .iter()
            .map(|r| r.try_get("", "id"))
            .collect::<Result<_, _>>()?;
        if ids.is_empty() {
            continue;
        }
        let update = Query::update()
            .table(Findings::Table)
            .values([
                (Findings::Status, "folded".into()),
                (Findings::IncidentId, key.into()),
                (Findings::UpdatedAt, jst(now).into()),
            ])
            .and_where(Expr::col(Findings::Id).is_in(ids.iter().cloned()))
            .to_owned();
        txn.execute(&update).await.context("folding findings")?;
        for id in &ids {
            event(txn, id, "folded", now).await?;
        }
        folded += ids.len() as u64;
    }
    Ok(folded)
}
