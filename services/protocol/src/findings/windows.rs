//! Maintenance windows (contract §6): announced periods in which an area's terminals
//! fail together for a known reason.
//!
//! Why they are data: the notices (seeds 000, 001, 004) come every few months, and a
//! vendor's own works (a tenant's scope) come more often; neither should need a
//! release. A window suppresses a `line_auth_down`, `silent` or network-side
//! `reader_fault` (and an area incident) whose `since` lies inside it, in its area. It
//! never hides anything outside its area or its time, nor a device-side fault, and a
//! `distribution` window suppresses nothing: the distribution of an update is not an
//! outage, it is the reason terminals must stay *on*.
//!
//! A window is half-open, `[starts_at, ends_at)`: the announced end is when service is
//! back, so a failure that begins at that minute is new.

use std::fmt;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeDelta};
use serde::{Deserialize, Serialize};

use super::finding::FindingKind;
use crate::campaign::JST;
use crate::clinic::Area;
use crate::tenant::TenantSlug;

/// Whose window it is: the operator's for everyone, or one tenant's.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum WindowScope {
    All,
    Tenant(TenantSlug),
}

impl TryFrom<String> for WindowScope {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        if text == "all" {
            return Ok(Self::All);
        }
        TenantSlug::parse(&text)
            .map(Self::Tenant)
            .map_err(|e| format!("scope: {e}"))
    }
}

impl From<WindowScope> for String {
    fn from(scope: WindowScope) -> String {
        match scope {
            WindowScope::All => "all".to_string(),
            WindowScope::Tenant(t) => t.as_str().to_string(),
        }
    }
}

/// Which area a window covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowArea {
    East,
    West,
    All,
}

impl WindowArea {
    pub fn covers(self, area: Area) -> bool {
        match self {
            Self::All => true,
            Self::East => area == Area::East,
            Self::West => area == Area::West,
        }
    }
}

/// What the notice announced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// 長時間の通信断: nothing works.
    Outage,
    /// 断続的な通信断: about a minute, once or twice an hour.
    Intermittent,
    /// System maintenance (e.g. web sessions logged out).
    Maintenance,
    /// An update is distributed: not an outage; suppresses nothing.
    Distribution,
}

impl WindowKind {
    pub fn suppresses_anything(self) -> bool {
        self != Self::Distribution
    }
}

/// One announced window; the item shape of `GET /api/v1/maintenance-windows`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceWindow {
    pub id: String,
    pub scope: WindowScope,
    pub area: WindowArea,
    #[serde(with = "crate::rfc3339")]
    pub starts_at: DateTime<FixedOffset>,
    #[serde(with = "crate::rfc3339")]
    pub ends_at: DateTime<FixedOffset>,
    pub kind: WindowKind,
    /// Shown beside what it suppresses, in Japanese as the notice put it.
    pub title: String,
}

/// Why a window was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("ends_at must be after starts_at")]
    EndsBeforeStart,
    #[error("id must not be empty")]
    EmptyId,
    #[error("title must not be empty")]
    EmptyTitle,
    #[error("id must be 1–64 letters, digits, '-', '_' or '.'")]
    BadId,
    #[error("title must be at most 200 characters, without control characters")]
    BadTitle,
    #[error("starts_at and ends_at must lie in the years 2000–2099")]
    OutOfRange,
}

impl MaintenanceWindow {
    /// Checks what serde cannot: a window that ends after it starts, an id, a title.
    pub fn validate(&self) -> Result<(), WindowError> {
        if self.id.trim().is_empty() {
            return Err(WindowError::EmptyId);
        }
        if self.title.trim().is_empty() {
            return Err(WindowError::EmptyTitle);
        }
        if self.id.len() > 64
            || !self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(WindowError::BadId);
        }
        if self.title.chars().count() > 200 || self.title.chars().any(char::is_control) {
            return Err(WindowError::BadTitle);
        }
        let years = 2000..=2099;
        if !years.contains(&self.starts_at.year()) || !years.contains(&self.ends_at.year()) {
            return Err(WindowError::OutOfRange);
        }
        if self.ends_at <= self.starts_at {
            return Err(WindowError::EndsBeforeStart);
        }
        Ok(())
    }

    /// Whether an instant lies in `[starts_at, ends_at)`.
    pub fn contains(&self, t: DateTime<FixedOffset>) -> bool {
        self.starts_at <= t && t < self.ends_at
    }

    /// Whether the window applies to a tenant's terminals.
    pub fn applies_to(&self, tenant: &TenantSlug) -> bool {
        match &self.scope {
            WindowScope::All => true,
            WindowScope::Tenant(t) => t == tenant,
        }
    }

    /// Whether a finding of `kind` in `area` that began at `since` is explained by this
    /// window. For `reader_fault` the caller passes it only when network-side.
    pub fn suppresses(&self, kind: FindingKind, area: Area, since: DateTime<FixedOffset>) -> bool {
        self.kind.suppresses_anything()
            && kind.outage_explainable()
            && self.area.covers(area)
            && self.contains(since)
    }
}

/// The first window (by start) that explains a condition which began at some instant
/// of `[from, to]`. Silence needs the span: a terminal cut off at 22:00 sent its last
/// report at 21:59, before the window, so `silent` (whose `since` is that report)
/// asks for `[since, since + silent threshold]`; an area incident asks for its first
/// 10 minutes for the same reason. Other findings ask for `[since, since]`.
pub fn explaining_window_during(
    windows: &[MaintenanceWindow],
    kind: FindingKind,
    area: Area,
    from: DateTime<FixedOffset>,
    to: DateTime<FixedOffset>,
) -> Option<&MaintenanceWindow> {
    windows
        .iter()
        .filter(|w| {
            w.kind.suppresses_anything()
                && kind.outage_explainable()
                && w.area.covers(area)
                && w.starts_at <= to
                && from < w.ends_at
        })
        .min_by_key(|w| w.starts_at)
}

/// The first window (by start) that explains a finding, if any.
pub fn explaining_window(
    windows: &[MaintenanceWindow],
    kind: FindingKind,
    area: Area,
    since: DateTime<FixedOffset>,
) -> Option<&MaintenanceWindow> {
    windows
        .iter()
        .filter(|w| w.suppresses(kind, area, since))
        .min_by_key(|w| w.starts_at)
}

impl fmt::Display for MaintenanceWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({} – {})",
            self.title,
            self.starts_at.with_timezone(&JST).format("%Y-%m-%d %H:%M"),
            self.ends_at.with_timezone(&JST).format("%Y-%m-%d %H:%M")
        )
    }
}

fn jst(y: i32, m: u32, d: u32, h: u32, min: u32) -> Option<DateTime<FixedOffset>> {
    NaiveDate::from_ymd_opt(y, m, d)?
        .and_hms_opt(h, min, 0)?
        .and_local_timezone(JST)
        .single()
}

/// The windows of the seeds (domain.md table), scope `all`, for the operator to seed.
pub fn seeded_windows() -> Vec<MaintenanceWindow> {
    type Row = (
        &'static str,
        WindowArea,
        (i32, u32, u32, u32, u32),
        (i32, u32, u32, u32, u32),
        WindowKind,
        &'static str,
    );
    const ROWS: [Row; 6] = [
        (
            "seed-2024-12-31-west-outage",
            WindowArea::West,
            (2024, 12, 31, 3, 0),
            (2024, 12, 31, 5, 20),
            WindowKind::Outage,
            "年末年始ネットワーク基盤更改:西日本エリア 長時間の通信断",
        ),
        (
            "seed-2024-12-31-west-intermittent",
            WindowArea::West,
            (2024, 12, 31, 8, 0),
            (2025, 1, 1, 3, 0),
            WindowKind::Intermittent,
            "年末年始ネットワーク基盤更改:西日本エリア 断続的な通信断",
        ),
        (
            "seed-2025-02-01-east-outage",
            WindowArea::East,
            (2025, 2, 1, 22, 0),
            (2025, 2, 2, 0, 30),
            WindowKind::Outage,
            "2月1日・2日のネットワーク更改:東日本エリア 長時間の通信断",
        ),
        (
            "seed-2025-02-02-east-intermittent",
            WindowArea::East,
            (2025, 2, 2, 3, 0),
            (2025, 2, 2, 22, 0),
            WindowKind::Intermittent,
            "2月1日・2日のネットワーク更改:東日本エリア 数分間の通信断(1時間に1〜2回、約1分)",
        ),
        (
            "seed-2025-02-02-west-intermittent",
            WindowArea::West,
            (2025, 2, 2, 7, 0),
            (2025, 2, 2, 8, 0),
            WindowKind::Intermittent,
            "2月1日・2日のネットワーク更改:西日本エリア 数分間の通信断",
        ),
        (
            "seed-2025-08-01-all-maintenance",
            WindowArea::All,
            (2025, 8, 1, 20, 0),
            (2025, 8, 2, 5, 30),
            WindowKind::Maintenance,
            "オンライン資格確認等システムのシステムメンテナンス(Web画面からログアウトされる可能性)",
        ),
    ];
    let mut windows: Vec<MaintenanceWindow> = ROWS
        .iter()
        .filter_map(|(id, area, s, e, kind, title)| {
            Some(MaintenanceWindow {
                id: (*id).to_string(),
                scope: WindowScope::All,
                area: *area,
                starts_at: jst(s.0, s.1, s.2, s.3, s.4)?,
                ends_at: jst(e.0, e.1, e.2, e.3, e.4)?,
                kind: *kind,
                title: (*title).to_string(),
            })
        })
        .collect();
    // Face library 5.1.0: nightly 20:00–05:00 from the nights of 01-19 to 01-30,
    // except the night starting 01-25 (seeds 002, 004).
    for day in 19..=30 {
        if day == 25 {
            continue;
        }
        if let Some(start) = jst(2026, 1, day, 20, 0) {
            windows.push(MaintenanceWindow {
                id: format!("seed-2026-01-{day:02}-face-library-5.1.0-distribution"),
                scope: WindowScope::All,
                area: WindowArea::All,
                starts_at: start,
                ends_at: start + TimeDelta::hours(9),
                kind: WindowKind::Distribution,
                title: "顔認証ライブラリ 5.1.0 の配信(夜間 20:00〜翌5:00、端末とカードリーダーの電源を入れたままに)".to_string(),
            });
        }
    }
    windows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    fn window(id: &str) -> MaintenanceWindow {
        seeded_windows().into_iter().find(|w| w.id == id).unwrap()
    }

    #[test]
    fn seeds_are_all_there_with_exact_jst_instants() {
        let all = seeded_windows();
        assert_eq!(all.len(), 6 + 11);
        for w in &all {
            w.validate().unwrap();
            assert_eq!(w.scope, WindowScope::All);
        }
        let east = window("seed-2025-02-01-east-outage");
        assert_eq!(east.starts_at, at("2025-02-01T22:00:00+09:00"));
        assert_eq!(east.ends_at, at("2025-02-02T00:30:00+09:00"));
        let west = window("seed-2024-12-31-west-outage");
        assert_eq!(west.ends_at, at("2024-12-31T05:20:00+09:00"));
        assert!(!all.iter().any(|w| w.id.contains("2026-01-25")));
    }

    #[test]
    fn east_outage_suppresses_east_only_in_its_time() {
        let w = window("seed-2025-02-01-east-outage");
        let t = at("2025-02-01T23:30:00+09:00");
        assert!(w.suppresses(FindingKind::LineAuthDown, Area::East, t));
        assert!(!w.suppresses(FindingKind::LineAuthDown, Area::West, t));
        assert!(!w.suppresses(
            FindingKind::LineAuthDown,
            Area::East,
            at("2025-02-02T00:30:00+09:00")
        ));
        assert!(!w.suppresses(
            FindingKind::LineAuthDown,
            Area::East,
            at("2025-02-01T21:59:00+09:00")
        ));
        assert!(!w.suppresses(FindingKind::CertificateExpired, Area::East, t));
        assert!(!w.suppresses(FindingKind::ReaderOnUsbHub, Area::East, t));
    }

    #[test]
    fn silence_that_began_just_before_an_outage_is_explained_by_it() {
        let all = seeded_windows();
        let last_report = at("2025-02-01T21:59:00+09:00");
        let later = last_report + TimeDelta::minutes(20);
        assert!(explaining_window(&all, FindingKind::Silent, Area::East, last_report).is_none());
        let w = explaining_window_during(&all, FindingKind::Silent, Area::East, last_report, later);
        assert_eq!(
            w.map(|w| w.id.as_str()),
            Some("seed-2025-02-01-east-outage")
        );
        assert!(
            explaining_window_during(&all, FindingKind::Silent, Area::West, last_report, later)
                .is_none()
        );
    }

    proptest::proptest! {
        #[test]
        fn a_window_never_explains_anything_outside_its_area_or_time(
            offset in -100_000_000i64..100_000_000, kind in 0usize..9, east in proptest::bool::ANY,
        ) {
            let t = at("2025-06-01T00:00:00+09:00") + TimeDelta::seconds(offset);
            let area = if east { Area::East } else { Area::West };
            let kind = FindingKind::ALL[kind];
            for w in seeded_windows() {
                if w.suppresses(kind, area, t) {
                    proptest::prop_assert!(w.contains(t) && w.area.covers(area));
                    proptest::prop_assert!(w.kind != WindowKind::Distribution);
                }
            }
        }
    }

    #[test]
    fn distribution_windows_suppress_nothing() {
        let w = window("seed-2026-01-19-face-library-5.1.0-distribution");
        for k in FindingKind::ALL {
            assert!(!w.suppresses(k, Area::East, at("2026-01-19T23:00:00+09:00")));
        }
    }

    #[test]
    fn scope_parses_all_or_a_tenant_and_round_trips() {
        let w = window("seed-2025-02-01-east-outage");
        let json = serde_json::to_value(&w).unwrap();
        assert_eq!(json["scope"], "all");
        assert_eq!(json["area"], "east");
        assert_eq!(json["kind"], "outage");
        let back: MaintenanceWindow = serde_json::from_value(json).unwrap();
        assert_eq!(back, w);
    }
}
