//! How findings, clinic hours and maintenance windows are laid out in their tables,
//! once for both adapters and the reads.
//!
//! A finding's searchable parts (tenant, terminal, clinic, prefecture, area, kind,
//! severity, status, `since`) are columns; the rest of what the rules said (cause,
//! detail, instructions, days left, campaign state) is the finding's JSON in `body`,
//! which only the lists and Alertmanager read back whole.

use chrono::{DateTime, FixedOffset};
use fleet_protocol::findings::{
    ClinicHours, Finding, FindingKind, MaintenanceWindow, WindowArea, WindowKind, WindowScope,
};
use uuid::Uuid;

use crate::findings::{OpenRow, RowStatus, RowWrite};

/// The columns of a row that come from its finding (empty while pending).
pub(crate) struct RowColumns {
    pub(crate) clinic_code: Option<String>,
    pub(crate) prefecture: Option<String>,
    pub(crate) area: Option<String>,
    pub(crate) severity: String,
    pub(crate) body: String,
    pub(crate) window_id: Option<String>,
    pub(crate) incident_id: Option<String>,
}

impl RowColumns {
    pub(crate) fn of(w: &RowWrite) -> anyhow::Result<Self> {
        Ok(match &w.finding {
            Some(f) => Self {
                clinic_code: f.clinic_code.map(|c| c.as_str().to_owned()),
                prefecture: f.prefecture.map(|p| p.code().to_owned()),
                area: f.area.map(|a| a.as_str().to_owned()),
                severity: f.severity.as_str().to_owned(),
                body: if w.body.is_empty() {
                    serde_json::to_string(f)?
                } else {
                    w.body.clone()
                },
                window_id: f.window_id.clone(),
                incident_id: f.incident_id.clone(),
            },
            None => Self {
                clinic_code: None,
                prefecture: None,
                area: None,
                severity: String::new(),
                body: String::new(),
                window_id: None,
                incident_id: None,
            },
        })
    }
}

/// An open row from its stored columns.
pub(crate) fn open_row(
    id: &str,
    kind: &str,
    campaign: &str,
    status: &str,
    since: DateTime<FixedOffset>,
    body: &str,
    incident_id: Option<String>,
) -> anyhow::Result<OpenRow> {
    let status = RowStatus::parse(status)?;
    Ok(OpenRow {
        id: Uuid::parse_str(id)?,
        kind: FindingKind::parse(kind)
            .ok_or_else(|| anyhow::anyhow!("stored finding kind {kind:?} is unknown"))?,
        campaign: (!campaign.is_empty()).then(|| campaign.to_owned()),
        status,
        since,
        body: body.to_owned(),
        incident_id,
    })
}

pub(crate) fn parse_finding(body: &str) -> anyhow::Result<Finding> {
    serde_json::from_str(body).map_err(|e| anyhow::anyhow!("stored finding does not parse: {e}"))
}

pub(crate) fn parse_hours(text: &str) -> anyhow::Result<ClinicHours> {
    serde_json::from_str(text).map_err(|e| anyhow::anyhow!("stored clinic hours do not parse: {e}"))
}

/// A window from its stored columns.
pub(crate) fn window_of(
    id: String,
    scope: &str,
    area: &str,
    kind: &str,
    starts_at: DateTime<FixedOffset>,
    ends_at: DateTime<FixedOffset>,
    title: String,
) -> anyhow::Result<MaintenanceWindow> {
    let scope = WindowScope::try_from(scope.to_owned())
        .map_err(|e| anyhow::anyhow!("stored window scope {scope:?}: {e}"))?;
    let area: WindowArea = serde_json::from_value(serde_json::Value::String(area.to_owned()))
        .map_err(|e| anyhow::anyhow!("stored window area {area:?}: {e}"))?;
    let kind: WindowKind = serde_json::from_value(serde_json::Value::String(kind.to_owned()))
        .map_err(|e| anyhow::anyhow!("stored window kind {kind:?}: {e}"))?;
    Ok(MaintenanceWindow {
        id,
        scope,
        area,
        starts_at,
        ends_at,
        kind,
        title,
    })
}

/// The stored spelling of a window's area and kind.
pub(crate) fn window_columns(w: &MaintenanceWindow) -> (String, String, String) {
    let text = |v: serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    (
        String::from(w.scope.clone()),
        text(serde_json::to_value(w.area).unwrap_or_default()),
        text(serde_json::to_value(w.kind).unwrap_or_default()),
    )
}
