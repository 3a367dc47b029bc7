//! Clinic hours (contract §6 "Time", §7 `…/hours`): when a clinic is open, in JST.
//!
//! Why they matter: a terminal off at 23:00 or on a holiday is normal, the same at
//! 10:00 on a Tuesday is not. Hours gate *raising* `line_auth_down`, `silent` and
//! `reader_fault`; they never clear a finding already raised.
//!
//! The wire shape is the contract's JSON, parsed into a checked value (parse, don't
//! validate): times are `HH:MM` in JST, an interval ends after it starts (`24:00` is
//! allowed as an end so a day can run to midnight), intervals of a day do not overlap
//! and there are at most [`MAX_INTERVALS_PER_DAY`]. An interval never crosses
//! midnight: a night shift is written as two intervals on two days.
//!
//! `holidays_closed` covers both the public holidays and 年末年始 (12-29 … 01-03), the
//! two closures of the contract's default; the JSON has one switch for both.

use std::fmt;

use chrono::{DateTime, Datelike, FixedOffset, TimeDelta, Timelike, Weekday};
use serde::{Deserialize, Serialize};

use super::holidays::{is_holiday, is_year_end};
use crate::campaign::JST;

/// At most this many opening intervals per weekday (morning, afternoon, evening…).
pub const MAX_INTERVALS_PER_DAY: usize = 4;

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// One opening interval of a day, `[start, end)` in minutes after 00:00 JST.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval {
    start: u16,
    end: u16,
}

impl Interval {
    /// An interval from `HH:MM` to `HH:MM`; `field` names it in the error.
    pub fn parse(start: &str, end: &str, field: &str) -> Result<Self, HoursError> {
        let s = parse_hhmm(start, false).ok_or_else(|| {
            HoursError::new(
                field,
                format!("start {start:?} is not a time HH:MM between 00:00 and 23:59"),
            )
        })?;
        let e = parse_hhmm(end, true).ok_or_else(|| {
            HoursError::new(
                field,
                format!("end {end:?} is not a time HH:MM between 00:00 and 24:00"),
            )
        })?;
        if e <= s {
            return Err(HoursError::new(
                field,
                format!("end {end} is not after start {start}"),
            ));
        }
        Ok(Self { start: s, end: e })
    }

    fn contains(self, minute: u16) -> bool {
        self.start <= minute && minute < self.end
    }

    fn text(minutes: u16) -> String {
        format!("{:02}:{:02}", minutes / 60, minutes % 60)
    }
}

fn parse_hhmm(text: &str, allow_24: bool) -> Option<u16> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    match (h, m) {
        (0..=23, 0..=59) => Some(h * 60 + m),
        (24, 0) if allow_24 => Some(24 * 60),
        _ => None,
    }
}

/// Why a clinic-hours document was refused; `field` is the JSON path, e.g. `weekly.mon[1]`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct HoursError {
    pub field: String,
    pub problem: String,
}

impl HoursError {
    fn new(field: &str, problem: String) -> Self {
        Self {
            field: field.to_string(),
            problem,
        }
    }
}

/// When a clinic is open. Checked on construction; see the module doc.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "HoursWire", into = "HoursWire")]
pub struct ClinicHours {
    always_open: bool,
    holidays_closed: bool,
    /// Monday first, as [`Weekday::num_days_from_monday`]; sorted, non-overlapping.
    weekly: [Vec<Interval>; 7],
}

impl Default for ClinicHours {
    /// Mon–Fri 08:30–18:00, Sat 08:30–12:30, closed Sundays, holidays and 12-29 … 01-03.
    fn default() -> Self {
        let day = Interval {
            start: 8 * 60 + 30,
            end: 18 * 60,
        };
        let sat = Interval {
            start: 8 * 60 + 30,
            end: 12 * 60 + 30,
        };
        Self {
            always_open: false,
            holidays_closed: true,
            weekly: [
                vec![day],
                vec![day],
                vec![day],
                vec![day],
                vec![day],
                vec![sat],
                vec![],
            ],
        }
    }
}

impl ClinicHours {
    /// Open around the clock: a hospital with an emergency department, a 24-hour pharmacy.
    pub fn always_open() -> Self {
        Self {
            always_open: true,
            ..Self::default()
        }
    }

    /// Hours from weekly intervals, Monday first; checked as the JSON is.
    pub fn weekly(weekly: [Vec<Interval>; 7], holidays_closed: bool) -> Result<Self, HoursError> {
        let mut checked: [Vec<Interval>; 7] = Default::default();
        for (i, mut day) in weekly.into_iter().enumerate() {
            check_day(&mut day, DAYS[i])?;
            checked[i] = day;
        }
        Ok(Self {
            always_open: false,
            holidays_closed,
            weekly: checked,
        })
    }

    pub fn is_always_open(&self) -> bool {
        self.always_open
    }

    pub fn holidays_closed(&self) -> bool {
        self.holidays_closed
    }

    /// The intervals of a weekday.
    pub fn intervals(&self, day: Weekday) -> &[Interval] {
        &self.weekly[day.num_days_from_monday() as usize]
    }

    /// Whether the clinic is open at an instant (judged in JST).
    pub fn is_open(&self, at: DateTime<FixedOffset>) -> bool {
        if self.always_open {
            return true;
        }
        let local = at.with_timezone(&JST);
        // Seconds are ignored: 08:29:59 is before 08:30, as a clinic reads its hours.
        let minute = (local.hour() * 60 + local.minute()) as u16;
        let in_hours = self
            .intervals(local.weekday())
            .iter()
            .any(|i| i.contains(minute));
        // The calendar is asked only when the weekly hours say open.
        let date = local.date_naive();
        in_hours && !(self.holidays_closed && (is_year_end(date) || is_holiday(date)))
    }

    /// Whether the clinic was open throughout `[at - span, at]`, checked minute by
    /// minute (intervals have minute resolution, so no closed minute is skipped).
    pub fn open_throughout(&self, at: DateTime<FixedOffset>, span: TimeDelta) -> bool {
        if self.always_open {
            return true;
        }
        let minutes = span.num_minutes().max(0);
        (0..=minutes).all(|m| {
            at.checked_sub_signed(TimeDelta::minutes(m))
                .is_some_and(|t| self.is_open(t))
        })
    }
}

fn check_day(day: &mut [Interval], name: &str) -> Result<(), HoursError> {
    if day.len() > MAX_INTERVALS_PER_DAY {
        return Err(HoursError::new(
            &format!("weekly.{name}"),
            format!(
                "{} intervals, at most {MAX_INTERVALS_PER_DAY} allowed",
                day.len()
            ),
        ));
    }
    day.sort();
    for (i, pair) in day.windows(2).enumerate() {
        if pair[1].start < pair[0].end {
            return Err(HoursError::new(
                &format!("weekly.{name}[{}]", i + 1),
                format!(
                    "{}–{} overlaps {}–{}",
                    Interval::text(pair[1].start),
                    Interval::text(pair[1].end),
                    Interval::text(pair[0].start),
                    Interval::text(pair[0].end)
                ),
            ));
        }
    }
    Ok(())
}

/// The JSON of `GET/PUT /api/v1/clinics/{code}/hours`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoursWire {
    always_open: bool,
    #[serde(default = "yes")]
    holidays_closed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    weekly: Option<WeeklyWire>,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeeklyWire {
    #[serde(default)]
    mon: Vec<[String; 2]>,
    #[serde(default)]
    tue: Vec<[String; 2]>,
    #[serde(default)]
    wed: Vec<[String; 2]>,
    #[serde(default)]
    thu: Vec<[String; 2]>,
    #[serde(default)]
    fri: Vec<[String; 2]>,
    #[serde(default)]
    sat: Vec<[String; 2]>,
    #[serde(default)]
    sun: Vec<[String; 2]>,
}

impl TryFrom<HoursWire> for ClinicHours {
    type Error = HoursError;

    fn try_from(wire: HoursWire) -> Result<Self, HoursError> {
        if wire.always_open {
            return Ok(Self {
                holidays_closed: wire.holidays_closed,
                ..Self::always_open()
            });
        }
        let Some(w) = wire.weekly else {
            return Err(HoursError::new(
                "weekly",
                "required unless always_open is true".to_string(),
            ));
        };
        let days = [w.mon, w.tue, w.wed, w.thu, w.fri, w.sat, w.sun];
        let mut weekly: [Vec<Interval>; 7] = Default::default();
        for (i, day) in days.into_iter().enumerate() {
            for (j, [start, end]) in day.iter().enumerate() {
                let field = format!("weekly.{}[{j}]", DAYS[i]);
                weekly[i].push(Interval::parse(start, end, &field)?);
            }
        }
        Self::weekly(weekly, wire.holidays_closed)
    }
}

impl From<ClinicHours> for HoursWire {
    fn from(hours: ClinicHours) -> Self {
        if hours.always_open {
            return Self {
                always_open: true,
                holidays_closed: hours.holidays_closed,
                weekly: None,
            };
        }
        let day = |i: usize| -> Vec<[String; 2]> {
            hours.weekly[i]
                .iter()
                .map(|iv| [Interval::text(iv.start), Interval::text(iv.end)])
                .collect()
        };
        Self {
            always_open: false,
            holidays_closed: hours.holidays_closed,
            weekly: Some(WeeklyWire {
                mon: day(0),
                tue: day(1),
                wed: day(2),
                thu: day(3),
                fri: day(4),
                sat: day(5),
                sun: day(6),
            }),
        }
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}–{}", Self::text(self.start), Self::text(self.end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    #[test]
    fn default_hours_follow_the_contract() {
        let h = ClinicHours::default();
        assert!(h.is_open(at("2026-01-20T10:00:00+09:00"))); // Tuesday
        assert!(h.is_open(at("2026-01-20T08:30:00+09:00")));
        assert!(!h.is_open(at("2026-01-20T08:29:59+09:00")));
        assert!(!h.is_open(at("2026-01-20T18:00:00+09:00")));
        assert!(!h.is_open(at("2026-01-20T23:00:00+09:00")));
        assert!(h.is_open(at("2026-01-24T12:00:00+09:00"))); // Saturday morning
        assert!(!h.is_open(at("2026-01-24T13:00:00+09:00")));
        assert!(!h.is_open(at("2026-01-25T10:00:00+09:00"))); // Sunday
        assert!(!h.is_open(at("2026-01-12T10:00:00+09:00"))); // 成人の日
        assert!(!h.is_open(at("2026-09-22T10:00:00+09:00"))); // 国民の休日
        assert!(!h.is_open(at("2025-12-29T10:00:00+09:00"))); // 年末
        assert!(!h.is_open(at("2026-01-02T10:00:00+09:00"))); // 年始, a Friday
        assert!(h.is_open(at("2026-01-05T10:00:00+09:00")));
        // Judged in JST whatever the offset of the instant.
        assert!(h.is_open(at("2026-01-20T01:00:00+00:00")));
    }

    #[test]
    fn always_open_is_open_at_night_and_on_holidays() {
        let h = ClinicHours::always_open();
        assert!(h.is_open(at("2025-02-01T23:30:00+09:00")));
        assert!(h.is_open(at("2026-01-01T03:00:00+09:00")));
    }

    #[test]
    fn json_matches_the_contract_and_round_trips() {
        let json = serde_json::to_value(ClinicHours::default()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"always_open": false, "holidays_closed": true, "weekly": {
                "mon": [["08:30","18:00"]], "tue": [["08:30","18:00"]], "wed": [["08:30","18:00"]],
                "thu": [["08:30","18:00"]], "fri": [["08:30","18:00"]], "sat": [["08:30","12:30"]],
                "sun": []}})
        );
        let back: ClinicHours = serde_json::from_value(json).unwrap();
        assert_eq!(back, ClinicHours::default());
        let open: ClinicHours = serde_json::from_str(r#"{"always_open": true}"#).unwrap();
        assert!(open.is_always_open());
    }

    fn refused(json: &str) -> String {
        serde_json::from_str::<ClinicHours>(json)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn bad_hours_are_refused_naming_the_field() {
        let e = refused(r#"{"always_open": false, "weekly": {"mon": [["08:30","25:00"]]}}"#);
        assert!(e.contains("weekly.mon[0]") && e.contains("25:00"), "{e}");
        let e = refused(r#"{"always_open": false, "weekly": {"tue": [["18:00","08:30"]]}}"#);
        assert!(
            e.contains("weekly.tue[0]") && e.contains("not after"),
            "{e}"
        );
        let e = refused(
            r#"{"always_open": false, "weekly": {"wed": [["08:00","12:00"],["11:00","13:00"]]}}"#,
        );
        assert!(e.contains("weekly.wed[1]") && e.contains("overlaps"), "{e}");
        let e = refused(
            r#"{"always_open": false, "weekly": {"thu": [["01:00","02:00"],["03:00","04:00"],["05:00","06:00"],["07:00","08:00"],["09:00","10:00"]]}}"#,
        );
        assert!(e.contains("weekly.thu") && e.contains("at most"), "{e}");
        let e = refused(r#"{"always_open": false, "weekly": {"fri": [["8:30","12:00"]]}}"#);
        assert!(e.contains("weekly.fri[0]"), "{e}");
        let e = refused(r#"{"always_open": false}"#);
        assert!(e.contains("weekly"), "{e}");
        // Touching intervals and a day to midnight are fine.
        let ok: ClinicHours = serde_json::from_str(
            r#"{"always_open": false, "weekly": {"mon": [["08:00","12:00"],["12:00","24:00"]]}}"#,
        )
        .unwrap();
        assert!(ok.is_open(at("2026-01-19T23:59:00+09:00")));
    }

    proptest! {
        #[test]
        fn is_open_never_panics_2000_to_2100(secs in 946_684_800i64..4_133_980_800i64, off in -12i32..=14) {
            let offset = FixedOffset::east_opt(off * 3600).unwrap();
            let t = DateTime::from_timestamp(secs, 0).unwrap().with_timezone(&offset);
            let _ = ClinicHours::default().is_open(t);
            prop_assert!(ClinicHours::always_open().is_open(t));
        }
    }
}
