//! Japanese public holidays (国民の祝日・休日), computed by rule for 2000–2099.
//!
//! Why rules and not a table: clinic hours are judged for any instant a replay or a
//! sweep may ask about, and a table ends the year someone forgets to extend it. The
//! rules are those of 国民の祝日に関する法律 as amended through 2018 (the 2019
//! enthronement days and the Olympic moves of 2020 and 2021 are listed as the
//! exceptions they were). 春分の日 and 秋分の日 are gazetted each February for the
//! next year from the astronomical tables; the usual approximation is used here.
//!
//! What checks the rules: the test below reads `tests/data/holidays_jp.csv`, every
//! holiday of 2000–2050 as the npm package `@holiday-jp/holiday_jp` 2.5.1 ships it
//! (`lib/holidays.js`; the README beside the file says how to extract it again), and
//! requires the same dates, kinds and names year by year. That list is kept against
//! the Cabinet Office's syukujitsu.csv (内閣府「国民の祝日について」), whose spelling
//! [`HolidayKind::name_ja`] follows; the Cabinet Office's list ran through 2026 when
//! the package was published, so from 2027 on the fixture is holiday_jp's own
//! projection and agreeing with it only shows the two projections agree. 2051–2099
//! are not in the fixture at all: there the rules are unchecked beyond the
//! rest-day count, and a future equinox date or change of law may prove them wrong.
//!
//! Order matters: the named holidays first, then 国民の休日 (a day between two named
//! holidays), then 振替休日 (a named holiday on a Sunday moves to the next day that is
//! not a holiday; before 2007 only to the Monday).

use std::sync::OnceLock;

use chrono::{Datelike, NaiveDate, Weekday};

/// Years this calendar answers for; outside them nothing is a holiday.
pub const HOLIDAY_YEARS: std::ops::RangeInclusive<i32> = 2000..=2099;

/// Why a day is a holiday.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HolidayKind {
    /// A named 国民の祝日, or one of the two days of 2019 a law counted as one.
    Named(&'static str),
    /// 国民の休日: a weekday between two named holidays.
    Bridge,
    /// 振替休日: a named holiday fell on a Sunday.
    Substitute,
}

impl HolidayKind {
    /// The name as the Cabinet Office's list spells it (休日 for both kinds of rest day).
    pub fn name_ja(self) -> &'static str {
        match self {
            Self::Named(name) => name,
            Self::Bridge | Self::Substitute => "休日",
        }
    }
}

fn date(y: i32, m: u32, d: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(y, m, d)
}

/// The `n`-th Monday of a month (1-based).
fn nth_monday(y: i32, m: u32, n: u8) -> Option<NaiveDate> {
    NaiveDate::from_weekday_of_month_opt(y, m, Weekday::Mon, n)
}

fn vernal_equinox_day(y: i32) -> u32 {
    let t = f64::from(y - 1980);
    (20.8431 + 0.242194 * t - (t / 4.0).floor()).floor() as u32
}

fn autumnal_equinox_day(y: i32) -> u32 {
    let t = f64::from(y - 1980);
    (23.2488 + 0.242194 * t - (t / 4.0).floor()).floor() as u32
}

/// The named holidays (国民の祝日) of one year, unsorted.
fn named(y: i32) -> Vec<(NaiveDate, &'static str)> {
    let mut days: Vec<(Option<NaiveDate>, &'static str)> = vec![
        (date(y, 1, 1), "元日"),
        (nth_monday(y, 1, 2), "成人の日"),
        (date(y, 2, 11), "建国記念の日"),
        (date(y, 3, vernal_equinox_day(y)), "春分の日"),
        (
            date(y, 4, 29),
            if y >= 2007 {
                "昭和の日"
            } else {
                "みどりの日"
            },
        ),
        (date(y, 5, 3), "憲法記念日"),
        (date(y, 5, 5), "こどもの日"),
        (date(y, 9, autumnal_equinox_day(y)), "秋分の日"),
        (date(y, 11, 3), "文化の日"),
        (date(y, 11, 23), "勤労感謝の日"),
    ];
    if y >= 2007 {
        days.push((date(y, 5, 4), "みどりの日"));
    }
    if y <= 2018 {
        days.push((date(y, 12, 23), "天皇誕生日"));
    } else if y >= 2020 {
        days.push((date(y, 2, 23), "天皇誕生日"));
    }
    days.push((
        match y {
            ..=2002 => date(y, 7, 20),
            2020 => date(y, 7, 23),
            2021 => date(y, 7, 22),
            _ => nth_monday(y, 7, 3),
        },
        "海の日",
    ));
    if y >= 2016 {
        days.push((
            match y {
                2020 => date(y, 8, 10),
                2021 => date(y, 8, 8),
                _ => date(y, 8, 11),
            },
            "山の日",
        ));
    }
    days.push((
        if y <= 2002 {
            date(y, 9, 15)
        } else {
            nth_monday(y, 9, 3)
        },
        "敬老の日",
    ));
    days.push(match y {
        ..=2018 => (nth_monday(y, 10, 2), "体育の日"),
        // The last 体育の日; the Cabinet Office's list names the rename due in 2020.
        2019 => (nth_monday(y, 10, 2), "体育の日（スポーツの日）"),
        2020 => (date(y, 7, 24), "スポーツの日"),
        2021 => (date(y, 7, 23), "スポーツの日"),
        _ => (nth_monday(y, 10, 2), "スポーツの日"),
    });
    if y == 2019 {
        // 天皇の即位の日 and 即位礼正殿の儀の行われる日, holidays by a law of their own
        // and counted as 祝日 (so 04-30 and 05-02 became 国民の休日); the Cabinet
        // Office's list calls both 休日（祝日扱い）.
        days.push((date(y, 5, 1), "休日（祝日扱い）"));
        days.push((date(y, 10, 22), "休日（祝日扱い）"));
    }
    days.into_iter()
        .filter_map(|(d, name)| d.map(|d| (d, name)))
        .collect()
}

/// Every holiday of a year in date order, with why. Empty outside [`HOLIDAY_YEARS`].
pub fn holidays_of_year(y: i32) -> Vec<(NaiveDate, HolidayKind)> {
    if !HOLIDAY_YEARS.contains(&y) {
        return Vec::new();
    }
    let named = named(y);
    let is_named = |d: NaiveDate| named.iter().any(|(n, _)| *n == d);
    let mut all: Vec<(NaiveDate, HolidayKind)> = named
        .iter()
        .map(|(d, name)| (*d, HolidayKind::Named(name)))
        .collect();
    // 国民の休日: the day between two named holidays (after 2007 even a Sunday, but a
    // Sunday is closed anyway; before, Sundays were excluded).
    for (d, _) in &named {
        if let (Some(mid), Some(next)) = (d.succ_opt(), d.succ_opt().and_then(|m| m.succ_opt()))
            && is_named(next)
            && !is_named(mid)
            && (y >= 2007 || mid.weekday() != Weekday::Sun)
        {
            all.push((mid, HolidayKind::Bridge));
        }
    }
    // 振替休日.
    for (d, _) in &named {
        if d.weekday() != Weekday::Sun {
            continue;
        }
        let mut next = d.succ_opt();
        if y >= 2007 {
            while let Some(n) = next
                && all.iter().any(|(h, _)| *h == n)
            {
                next = n.succ_opt();
            }
        } else if next.is_some_and(|n| all.iter().any(|(h, _)| *h == n)) {
            next = None;
        }
        if let Some(n) = next
            && n.year() == y
        {
            all.push((n, HolidayKind::Substitute));
        }
    }
    all.sort_by_key(|(d, _)| *d);
    all.dedup_by_key(|(d, _)| *d);
    all
}

/// Every holiday of [`HOLIDAY_YEARS`], computed once: `is_open` asks for every
/// terminal of every sweep, and a binary search is far cheaper than the rules.
fn calendar() -> &'static [(NaiveDate, HolidayKind)] {
    static CALENDAR: OnceLock<Vec<(NaiveDate, HolidayKind)>> = OnceLock::new();
    CALENDAR.get_or_init(|| HOLIDAY_YEARS.flat_map(holidays_of_year).collect())
}

/// Why a date (in JST) is a Japanese public holiday, if it is one.
pub fn holiday(d: NaiveDate) -> Option<HolidayKind> {
    let days = calendar();
    days.binary_search_by_key(&d, |(h, _)| *h)
        .ok()
        .and_then(|i| days.get(i))
        .map(|(_, k)| *k)
}

/// Whether a date (in JST) is a Japanese public holiday.
pub fn is_holiday(d: NaiveDate) -> bool {
    holiday(d).is_some()
}

/// 年末年始: 12-29 … 01-03, when clinics close although only 01-01 is a holiday.
pub fn is_year_end(d: NaiveDate) -> bool {
    matches!((d.month(), d.day()), (12, 29..=31) | (1, 1..=3))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every holiday of 2000–2050 as `date,name` lines, from the npm package
    /// `@holiday-jp/holiday_jp` 2.5.1 (`lib/holidays.js`); how it was extracted and how
    /// far it follows the Cabinet Office's syukujitsu.csv is in `tests/data/README.md`.
    const HOLIDAY_JP: &str = include_str!("../../tests/data/holidays_jp.csv");

    /// The fixture's rows as (date, kind the rules must give, name `name_ja` must give).
    /// holiday_jp writes a 振替休日 as `<holiday> 振替休日`, the Cabinet Office as 休日;
    /// 国民の休日 are 休日 in both.
    fn fixture() -> Vec<(NaiveDate, &'static str, &'static str)> {
        let mut lines = HOLIDAY_JP.lines();
        assert_eq!(lines.next(), Some("date,name"));
        lines
            .map(|line| {
                let (d, name) = line.split_once(',').expect("date,name");
                let d: NaiveDate = d.parse().expect("YYYY-MM-DD");
                let (kind, name) = if name.ends_with(" 振替休日") {
                    ("Substitute", "休日")
                } else if name == "休日" {
                    ("Bridge", "休日")
                } else {
                    ("Named", name)
                };
                (d, kind, name)
            })
            .collect()
    }

    fn kind_str(k: HolidayKind) -> &'static str {
        match k {
            HolidayKind::Named(_) => "Named",
            HolidayKind::Bridge => "Bridge",
            HolidayKind::Substitute => "Substitute",
        }
    }

    #[test]
    fn rules_reproduce_holiday_jp_2000_to_2050() {
        let expected = fixture();
        let first = expected.first().unwrap().0.year();
        let last = expected.last().unwrap().0.year();
        assert_eq!((first, last), (2000, 2050));
        assert!(expected.is_sorted_by_key(|(d, _, _)| *d));
        let mut wrong = Vec::new();
        for y in first..=last {
            let want: Vec<_> = expected.iter().filter(|(d, _, _)| d.year() == y).collect();
            let got: Vec<(NaiveDate, &str, &str)> = holidays_of_year(y)
                .into_iter()
                .map(|(d, k)| (d, kind_str(k), k.name_ja()))
                .collect();
            for w in &want {
                if !got.contains(w) {
                    wrong.push(format!("missing or different: {w:?}"));
                }
            }
            for g in &got {
                if !want.contains(&g) {
                    wrong.push(format!("not in holiday_jp:     {g:?}"));
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn known_rest_days_of_other_years() {
        // 2019: enthronement, with 国民の休日 on both sides; 2009 and 2015 silver weeks.
        for d in [
            "2019-04-30",
            "2019-05-01",
            "2019-05-02",
            "2019-10-22",
            "2009-09-22",
            "2015-09-22",
            "2020-07-24",
            "2021-08-09",
        ] {
            let day: NaiveDate = d.parse().unwrap();
            assert!(is_holiday(day), "{d}");
        }
        for d in ["2019-12-23", "2020-10-12", "2025-02-25", "2026-09-24"] {
            let day: NaiveDate = d.parse().unwrap();
            assert!(!is_holiday(day), "{d}");
        }
    }

    #[test]
    fn every_year_of_the_century_has_sixteen_to_twenty_two_rest_days() {
        for y in HOLIDAY_YEARS {
            let n = holidays_of_year(y).len();
            assert!((15..=22).contains(&n), "{y}: {n}");
        }
    }

    #[test]
    fn year_end_spans_new_year() {
        for d in ["2025-12-29", "2025-12-31", "2026-01-03"] {
            assert!(is_year_end(d.parse().unwrap()));
        }
        for d in ["2025-12-28", "2026-01-04"] {
            assert!(!is_year_end(d.parse().unwrap()));
        }
    }
}
