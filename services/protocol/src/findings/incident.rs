//! Area and prefecture incidents (contract §6): many terminals of one tenant failing
//! together are one event, not thousands of calls.
//!
//! Why a pure function over counts: the store keeps, per tenant and per area (and
//! prefecture), how many terminals reported in the previous hour and the `since` of
//! their new `line_auth_down`, `silent` and network-side `reader_fault` findings, as
//! reports arrive; deciding from those never scans the fleet. The rule: within some
//! 10 minutes (by `since`), at least 20% of the terminals that reported in the
//! previous hour, and at least 50 of them in an area (20 in a prefecture), began to
//! fail. The incident begins at the first failure of the earliest such span, and
//! folds every failure from then on; a failure before it is that terminal's own.
//!
//! An area incident explains its prefectures: [`evaluate_tenant`] raises a
//! prefecture's incident only where no incident of its area was raised, so one
//! outage gives one page.

use chrono::{DateTime, FixedOffset, TimeDelta};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::finding::{Finding, FindingKind, FindingStatus, Severity, instruction};
use super::windows::{MaintenanceWindow, explaining_window_during};
use crate::campaign::JST;
use crate::clinic::{Area, Prefecture};
use crate::tenant::TenantSlug;

/// What an incident covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "scope", content = "code", rename_all = "snake_case")]
pub enum IncidentScope {
    Area(Area),
    Prefecture(Prefecture),
}

impl IncidentScope {
    pub fn area(self) -> Area {
        match self {
            Self::Area(a) => a,
            Self::Prefecture(p) => p.area(),
        }
    }

    fn key(self) -> String {
        match self {
            Self::Area(a) => a.as_str().to_string(),
            Self::Prefecture(p) => format!("pref-{}", p.code()),
        }
    }
}

/// The settings of the incident rule, with the contract's defaults.
/// Not serde: settings are read by the service and built into this.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncidentThresholds {
    /// Failures must begin within this span (10 min).
    pub within: TimeDelta,
    /// …and be at least this percentage of the terminals that reported (20).
    pub percent: u32,
    /// …and at least this many in an area (50)…
    pub area_min: u32,
    /// …or in a prefecture (20).
    pub prefecture_min: u32,
}

impl Default for IncidentThresholds {
    fn default() -> Self {
        Self {
            within: TimeDelta::minutes(10),
            percent: 20,
            area_min: 50,
            prefecture_min: 20,
        }
    }
}

/// One terminal's failure as the counters keep it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    pub terminal_id: Uuid,
    /// `line_auth_down`, `silent` or `reader_fault` (network-side only: the caller
    /// leaves device-side faults out); other kinds are ignored.
    pub kind: FindingKind,
    pub since: DateTime<FixedOffset>,
}

/// The counters of one tenant's area or prefecture.
#[derive(Clone, Copy, Debug)]
pub struct GroupCounts<'a> {
    pub scope: IncidentScope,
    /// Terminals of the group that reported in the hour before the evaluation.
    pub reporting: u32,
    pub failures: &'a [Failure],
}

/// A raised incident and what it folds.
#[derive(Clone, Debug, PartialEq)]
pub struct AreaIncident {
    pub tenant: TenantSlug,
    pub scope: IncidentScope,
    pub since: DateTime<FixedOffset>,
    /// Failures in the qualifying span.
    pub failing: u32,
    pub reporting: u32,
    /// `active`, or `suppressed` while a window explains it.
    pub status: FindingStatus,
    pub window_id: Option<String>,
    /// The terminals whose findings get `status: folded` and this incident's id.
    pub folded: Vec<Uuid>,
}

impl AreaIncident {
    /// A stable id: the same incident evaluated again (by ingest, then the sweep) gets
    /// the same id, so the store upserts instead of duplicating.
    pub fn id(&self) -> String {
        format!(
            "{}:{}:{}",
            self.tenant.as_str(),
            self.scope.key(),
            self.since.with_timezone(&JST).format("%Y%m%dT%H%M%S")
        )
    }

    /// The `area_incident` finding (severity `page`, no terminal).
    pub fn finding(&self) -> Finding {
        let (ja, en) = instruction(FindingKind::AreaIncident);
        let (prefecture, place) = match self.scope {
            IncidentScope::Area(a) => (
                None,
                match a {
                    Area::East => "東日本エリア".to_string(),
                    Area::West => "西日本エリア".to_string(),
                },
            ),
            IncidentScope::Prefecture(p) => (Some(p), p.name_ja().to_string()),
        };
        Finding {
            kind: FindingKind::AreaIncident,
            severity: Severity::Page,
            status: self.status,
            since: self.since,
            terminal_id: None,
            clinic_code: None,
            prefecture,
            area: Some(self.scope.area()),
            campaign: None,
            state: None,
            cause: None,
            days_left: None,
            detail: format!(
                "{place}で{}台中{}台の端末が{}から同時に障害",
                self.reporting,
                self.failing,
                self.since.with_timezone(&JST).format("%Y-%m-%d %H:%M")
            ),
            window_id: self.window_id.clone(),
            incident_id: Some(self.id()),
            instruction_ja: ja.to_string(),
            instruction_en: en.to_string(),
        }
    }
}

fn counts(kind: FindingKind) -> bool {
    matches!(
        kind,
        FindingKind::LineAuthDown | FindingKind::Silent | FindingKind::ReaderFault
    )
}

/// Evaluates one group of one tenant at `now`; `windows` may hold any scope (only
/// those that apply to `tenant` are used).
pub fn evaluate_group(
    tenant: &TenantSlug,
    group: &GroupCounts<'_>,
    windows: &[MaintenanceWindow],
    now: DateTime<FixedOffset>,
    thresholds: &IncidentThresholds,
) -> Option<AreaIncident> {
    let min = match group.scope {
        IncidentScope::Area(_) => thresholds.area_min,
        IncidentScope::Prefecture(_) => thresholds.prefecture_min,
    };
    // ceil(percent% of reporting), in integers.
    let share = (u64::from(group.reporting) * u64::from(thresholds.percent)).div_ceil(100);
    let needed = u64::from(min).max(share).max(1);
    // One failure per terminal: its earliest.
    let mut failures: Vec<Failure> = group
        .failures
        .iter()
        .filter(|f| counts(f.kind) && f.since <= now)
        .copied()
        .collect();
    failures.sort_by_key(|f| (f.terminal_id, f.since));
    failures.dedup_by_key(|f| f.terminal_id);
    failures.sort_by_key(|f| f.since);
    let mut start = 0;
    let mut found = None;
    for end in 0..failures.len() {
        while failures[end].since - failures[start].since > thresholds.within {
            start += 1;
        }
        let n = (end - start + 1) as u64;
        if n >= needed {
            // Extend to the whole span from its start.
            let span_end = failures[start].since + thresholds.within;
            let in_span = failures[start..]
                .iter()
                .take_while(|f| f.since <= span_end)
                .count();
            found = Some((start, in_span));
            break;
        }
    }
    let (start, in_span) = found?;
    let since = failures[start].since;
    let area = group.scope.area();
    let applicable: Vec<MaintenanceWindow> = windows
        .iter()
        .filter(|w| w.applies_to(tenant))
        .cloned()
        .collect();
    // Contract §6: by its `since` alone.
    let window =
        explaining_window_during(&applicable, FindingKind::AreaIncident, area, since, since);
    let status = match window {
        Some(w) if now < w.ends_at => FindingStatus::Suppressed,
        _ => FindingStatus::Active,
    };
    Some(AreaIncident {
        tenant: tenant.clone(),
        scope: group.scope,
        since,
        failing: u32::try_from(in_span).unwrap_or(u32::MAX),
        reporting: group.reporting,
        status,
        window_id: window.map(|w| w.id.clone()),
        folded: failures[start..].iter().map(|f| f.terminal_id).collect(),
    })
}

/// Evaluates every group of one tenant: areas first, then prefectures whose area has
/// no incident (an area incident already explains them).
pub fn evaluate_tenant(
    tenant: &TenantSlug,
    groups: &[GroupCounts<'_>],
    windows: &[MaintenanceWindow],
    now: DateTime<FixedOffset>,
    thresholds: &IncidentThresholds,
) -> Vec<AreaIncident> {
    let mut out: Vec<AreaIncident> = groups
        .iter()
        .filter(|g| matches!(g.scope, IncidentScope::Area(_)))
        .filter_map(|g| evaluate_group(tenant, g, windows, now, thresholds))
        .collect();
    let areas: Vec<Area> = out.iter().map(|i| i.scope.area()).collect();
    out.extend(
        groups
            .iter()
            .filter(
                |g| matches!(g.scope, IncidentScope::Prefecture(p) if !areas.contains(&p.area())),
            )
            .filter_map(|g| evaluate_group(tenant, g, windows, now, thresholds)),
    );
    out
}
