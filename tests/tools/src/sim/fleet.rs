//! A simulated fleet: clinics, their terminals, and each terminal's habits and rollout.
//!
//! Generation walks clinics in order, each from its own random stream
//! ([`super::mix`] of the seed and the clinic's number), so the first *n* terminals of
//! a fleet of 300,000 are exactly the fleet of *n*: a small run and a big run describe
//! the same terminals, and a rerun with the same seed updates the same rows.

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveTime, TimeZone, Weekday};
use fleet_protocol::report::ReaderMaker;
use fleet_protocol::{Area, ClinicCode, JST, Prefecture};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use super::mix;

/// Population in thousands per prefecture, 01–47 (2020 census, rounded): the weight
/// of each prefecture in the fleet. Facilities follow people closely enough here.
const POPULATION: [u32; 47] = [
    5225, 1238, 1211, 2302, 960, 1068, 1833, 2867, 1933, 1939, 7345, 6284, 14048, 9237, 2201, 1035,
    1133, 767, 810, 2048, 1979, 3633, 7542, 1770, 1414, 2578, 8838, 5465, 1324, 923, 553, 671,
    1888, 2800, 1342, 720, 950, 1335, 692, 5135, 811, 1312, 1738, 1124, 1070, 1588, 1467,
];

/// Facilities with the online eligibility system in June 2025 (domain.md, H):
/// hospitals and clinics bill 医科, then 歯科 and 調剤 (pharmacies).
const HOSPITALS: u32 = 7_984;
const MEDICAL_CLINICS: u32 = 83_370;
const DENTAL: u32 = 61_124;
const PHARMACIES: u32 = 60_494;

/// Reader makers and models. The market shares are a guess (L); the models are the
/// ones domain.md names.
const MAKERS: [(ReaderMaker, Option<&str>, u32); 6] = [
    (ReaderMaker::Fujitsu, Some("Caora"), 25),
    (ReaderMaker::Panasonic, None, 25),
    (ReaderMaker::Atlas, Some("EXC-9000"), 15),
    (ReaderMaker::Almex, Some("Sma-pa マイナタッチ"), 15),
    (ReaderMaker::Canon, Some("Hi-CARA"), 15),
    (ReaderMaker::Other, None, 5),
];

/// Verified general-purpose NFC readers (seed 004) with a plausible firmware.
pub const NFC_READERS: [(&str, &str); 6] = [
    ("RC-S300/S1", "1.0.0"),
    ("ADR-MNICU3", "1.1.2"),
    ("USB-NFC4/E", "1.0.3"),
    ("CIR315A-02", "2.0.1"),
    ("M-1850S-N2", "1.2.0"),
    ("MR-ICA001BK", "1.0.4"),
];

const OS: [&str; 3] = [
    "Windows 11 IoT Enterprise LTSC 2024",
    "Windows 10 IoT Enterprise LTSC 2021",
    "Windows 10 IoT Enterprise LTSC 2019",
];

/// Dates of the nightly distribution windows of face library 5.1.0: nights starting
/// 2026-01-19 … 01-30 except 01-25 (seeds 002, 004). Index 11 is the night of 01-31,
/// when distribution already runs all day.
pub const DISTRIBUTION_NIGHTS: [u32; 12] = [19, 20, 21, 22, 23, 24, 26, 27, 28, 29, 30, 31];

/// What keeps a terminal from updating, if anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Obstacle {
    None,
    /// 「配信機能を無効化する」 is checked.
    DistributionDisabled,
    /// 回線認証 stays disconnected, so nothing is delivered.
    LineAuthDown,
    /// The agent cannot read the versions (e.g. a locked-down terminal).
    NoVersion,
}

/// How the terminal gets restarted after the download.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartHabit {
    /// Switched off every evening, so the next morning's start completes the update.
    NextMorning,
    /// Left on; someone restarts it this many days after the download.
    AfterDays(u8),
    /// Left on and never restarted: it stays `reboot_required`.
    Never,
}

/// One simulated terminal and its habits.
#[derive(Clone, Debug)]
pub struct SimTerminal {
    /// Position in the fleet, from 0.
    pub index: u32,
    pub terminal_id: Uuid,
    pub clinic_code: ClinicCode,
    pub hostname: String,
    pub os: &'static str,
    pub maker: ReaderMaker,
    pub model: Option<&'static str>,
    pub via_usb_hub: bool,
    /// 目視確認モード instead of 無人運転モード.
    pub visual_mode: bool,
    /// Index into [`NFC_READERS`]; Hi-CARA reads smartphones itself.
    pub nfc_reader: Option<usize>,
    /// Restarts itself every morning at 07:30.
    pub auto_reboot: bool,
    /// Never switched off: on every night, not only distribution nights.
    pub always_on: bool,
    /// Open on Saturday mornings.
    pub saturday: bool,
    /// Bit *k*: left on over distribution night [`DISTRIBUTION_NIGHTS`]`[k]`.
    pub nights_on: u16,
    pub obstacle: Obstacle,
    /// Minutes after the window opens before the download is done.
    pub download_offset_min: u16,
    pub restart: RestartHabit,
    pub certificate_not_after: DateTime<FixedOffset>,
}

/// A generated fleet.
#[derive(Clone, Debug)]
pub struct Fleet {
    pub seed: u64,
    pub terminals: Vec<SimTerminal>,
}

fn at(date: NaiveDate, h: u32, m: u32) -> DateTime<FixedOffset> {
    let time = NaiveTime::from_hms_opt(h, m, 0).unwrap_or_default();
    JST.from_local_datetime(&date.and_time(time))
        .single()
        .unwrap_or_default()
}

fn jan(day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, day).unwrap_or_default()
}

/// Picks an index by weight from a uniform draw.
fn pick(weights: impl Iterator<Item = u32> + Clone, rng: &mut StdRng) -> usize {
    let total: u32 = weights.clone().sum();
    let mut r = rng.random_range(0..total.max(1));
    for (i, w) in weights.enumerate() {
        if r < w {
            return i;
        }
        r -= w;
    }
    0
}

impl Fleet {
    /// The first `n` terminals of the fleet of `seed`.
    pub fn generate(seed: u64, n: usize) -> Self {
        Self::generate_where(seed, n, |_| true)
    }

    /// The first `n` terminals of the fleet of `seed` whose clinic is in `area`.
    pub fn in_area(seed: u64, n: usize, area: Area) -> Self {
        Self::generate_where(seed, n, |c| c.area() == area)
    }

    fn generate_where(seed: u64, n: usize, keep: impl Fn(&ClinicCode) -> bool) -> Self {
        let mut terminals = Vec::with_capacity(n);
        let mut clinic = 0u64;
        let mut index = 0u32;
        while terminals.len() < n {
            let mut rng = StdRng::seed_from_u64(mix(seed, 1, clinic));
            let (code, readers) = clinic_code(seed, clinic, &mut rng);
            for reader in 0..readers {
                let terminal = terminal(seed, clinic, reader, index, code, &mut rng);
                index = index.saturating_add(1);
                if keep(&code) && terminals.len() < n {
                    terminals.push(terminal);
                }
            }
            clinic += 1;
        }
        for (i, t) in terminals.iter_mut().enumerate() {
            t.index = u32::try_from(i).unwrap_or(u32::MAX);
        }
        Self { seed, terminals }
    }

    pub fn len(&self) -> usize {
        self.terminals.len()
    }

    pub fn is_empty(&self) -> bool {
        self.terminals.is_empty()
    }
}

/// A clinic's code and how many face-auth readers (terminals) it has: hospitals got
/// up to three, everyone else one.
fn clinic_code(seed: u64, clinic: u64, rng: &mut StdRng) -> (ClinicCode, u32) {
    let prefecture = pick(POPULATION.iter().copied(), rng) + 1;
    let kind = pick(
        [HOSPITALS, MEDICAL_CLINICS, DENTAL, PHARMACIES].into_iter(),
        rng,
    );
    let (schedule, readers) = match kind {
        0 => (1, rng.random_range(1..=3)),
        1 => (1, 1),
        2 => (3, 1),
        _ => (4, 1),
    };
    // 郡市区番号 + 医療機関番号 + check digit: a bijection of the clinic number, so no
    // two clinics of one fleet share a code (up to ten million clinics).
    let salt = mix(seed, 2, 0) % 10_000_000;
    let rest = (clinic.wrapping_mul(7_919).wrapping_add(salt)) % 10_000_000;
    let text = format!("{prefecture:02}{schedule}{rest:07}");
    // Always valid: prefecture 01–47, schedule 1/3/4, ten digits.
    let code = ClinicCode::parse(&text).unwrap_or_else(|_| fallback_code());
    (code, readers)
}

fn fallback_code() -> ClinicCode {
    ClinicCode::parse("1310000000").unwrap_or_else(|_| unreachable!("a valid literal code"))
}

fn terminal(
    seed: u64,
    clinic: u64,
    reader: u32,
    index: u32,
    code: ClinicCode,
    rng: &mut StdRng,
) -> SimTerminal {
    let id_bits = u128::from(mix(seed, 3, clinic)) << 64
        | u128::from(mix(seed, 4, clinic << 2 | u64::from(reader)));
    let terminal_id = uuid::Builder::from_random_bytes(id_bits.to_be_bytes()).into_uuid();
    let maker_i = pick(MAKERS.iter().map(|m| m.2), rng);
    let (maker, model, _) = MAKERS[maker_i];
    // Habits: shares are guesses (L) that give every cause of domain.md a presence.
    let obstacle = match rng.random_range(0..100) {
        0..4 => Obstacle::DistributionDisabled,
        4..6 => Obstacle::LineAuthDown,
        6..7 => Obstacle::NoVersion,
        _ => Obstacle::None,
    };
    let always_on = rng.random_bool(0.2);
    let auto_reboot = rng.random_bool(0.3);
    let night_share = if always_on {
        1.0
    } else {
        [0.0, 0.1, 0.3, 0.6][rng.random_range(0..4)]
    };
    let mut nights_on = 0u16;
    for k in 0..DISTRIBUTION_NIGHTS.len() {
        if rng.random_bool(night_share) {
            nights_on |= 1 << k;
        }
    }
    let restart = if !always_on {
        RestartHabit::NextMorning
    } else if rng.random_bool(0.3) {
        RestartHabit::Never
    } else {
        RestartHabit::AfterDays(rng.random_range(1..=10))
    };
    let nfc_reader = (maker != ReaderMaker::Canon && rng.random_bool(0.6))
        .then(|| rng.random_range(0..NFC_READERS.len()));
    let cert_days = rng.random_range(20..1_000);
    SimTerminal {
        index,
        terminal_id,
        clinic_code: code,
        hostname: format!("ONS-PC{:02}", reader + 1),
        os: OS[rng.random_range(0..OS.len())],
        maker,
        model,
        via_usb_hub: rng.random_bool(0.03),
        visual_mode: rng.random_bool(0.1),
        nfc_reader,
        auto_reboot,
        always_on,
        saturday: rng.random_bool(0.7),
        nights_on,
        obstacle,
        download_offset_min: rng.random_range(5..=520),
        restart,
        certificate_not_after: at(jan(15), 23, 59) + Duration::days(cert_days),
    }
}

impl SimTerminal {
    pub fn area(&self) -> Area {
        self.clinic_code.area()
    }

    pub fn prefecture(&self) -> Prefecture {
        self.clinic_code.prefecture()
    }

    /// When face library 5.1.0 lands on the terminal: during the first distribution
    /// night it is left on, else during its first opening hours from 2026-01-31 (when
    /// distribution runs all day); never when something blocks it.
    pub fn download_at(&self) -> Option<DateTime<FixedOffset>> {
        if matches!(
            self.obstacle,
            Obstacle::DistributionDisabled | Obstacle::LineAuthDown
        ) {
            return None;
        }
        let offset = Duration::minutes(i64::from(self.download_offset_min));
        for (k, day) in DISTRIBUTION_NIGHTS.iter().enumerate().take(11) {
            if self.nights_on & (1 << k) != 0 {
                return Some(at(jan(*day), 20, 0) + offset);
            }
        }
        // 01-31 is a Saturday: open in the morning, or else Monday 02-02.
        if self.saturday {
            Some(
                at(jan(31), 8, 0)
                    + Duration::minutes(5 + i64::from(self.download_offset_min % 285)),
            )
        } else {
            Some(at(jan(31), 8, 0) + Duration::days(2) + offset)
        }
    }

    /// When a restart completes the update, if ever.
    pub fn restart_at(&self) -> Option<DateTime<FixedOffset>> {
        let download = self.download_at()?;
        if self.auto_reboot {
            return Some(next_daily(download, 7, 30));
        }
        match self.restart {
            RestartHabit::NextMorning => Some(next_daily(download, 8, 0)),
            RestartHabit::AfterDays(days) => {
                Some(next_daily(download, 8, 0) + Duration::days(i64::from(days)))
            }
            RestartHabit::Never => None,
        }
    }

    /// The last start of the OS at or before `t`.
    pub fn booted_at(&self, t: DateTime<FixedOffset>) -> DateTime<FixedOffset> {
        let restart = self.restart_at().filter(|r| *r <= t);
        let daily = if self.auto_reboot {
            Some(last_daily(t, 7, 30))
        } else if !self.always_on {
            Some(last_daily(t, 8, 0))
        } else {
            None
        };
        // A terminal that is never switched off last started on the 5th.
        let base = at(jan(5), 8, 0).min(t);
        [restart, daily]
            .into_iter()
            .flatten()
            .fold(base, DateTime::max)
    }

    /// Whether the terminal is switched on at `t`: clinic hours (weekdays 08:00–19:00,
    /// Saturday 08:00–13:00 if open), and the nights it is left on.
    pub fn is_on(&self, t: DateTime<FixedOffset>) -> bool {
        if self.always_on {
            return true;
        }
        let local = t.with_timezone(&JST);
        let minutes = local
            .time()
            .signed_duration_since(NaiveTime::MIN)
            .num_minutes();
        let open = match local.weekday() {
            Weekday::Sat => self.saturday && (8 * 60..13 * 60).contains(&minutes),
            Weekday::Sun => false,
            _ => (8 * 60..19 * 60).contains(&minutes),
        };
        if open {
            return true;
        }
        // The night that started on the evening before `t` if `t` is before 08:00.
        let night = if minutes < 8 * 60 {
            local.date_naive().pred_opt().unwrap_or_default()
        } else {
            local.date_naive()
        };
        let in_night = !(8 * 60..19 * 60).contains(&minutes);
        in_night
            && night.year() == 2026
            && night.month() == 1
            && DISTRIBUTION_NIGHTS
                .iter()
                .position(|d| *d == night.day())
                .is_some_and(|k| self.nights_on & (1 << k) != 0)
    }
}

/// The first `h:m` JST strictly after `t`.
fn next_daily(t: DateTime<FixedOffset>, h: u32, m: u32) -> DateTime<FixedOffset> {
    let same_day = at(t.with_timezone(&JST).date_naive(), h, m);
    if same_day > t {
        same_day
    } else {
        same_day + Duration::days(1)
    }
}

/// The last `h:m` JST at or before `t`.
fn last_daily(t: DateTime<FixedOffset>, h: u32, m: u32) -> DateTime<FixedOffset> {
    let same_day = at(t.with_timezone(&JST).date_naive(), h, m);
    if same_day <= t {
        same_day
    } else {
        same_day - Duration::days(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_protocol::Campaign;
    use std::collections::HashSet;

    #[test]
    fn a_fleet_is_a_prefix_of_a_bigger_one_with_the_same_seed() {
        let small = Fleet::generate(7, 100);
        let big = Fleet::generate(7, 1_000);
        for (a, b) in small.terminals.iter().zip(&big.terminals) {
            assert_eq!(a.terminal_id, b.terminal_id);
            assert_eq!(a.clinic_code, b.clinic_code);
            assert_eq!(a.download_at(), b.download_at());
        }
        let other = Fleet::generate(8, 100);
        assert_ne!(
            small.terminals[0].terminal_id,
            other.terminals[0].terminal_id
        );
    }

    #[test]
    fn terminal_ids_are_unique_and_clinic_codes_valid() {
        let fleet = Fleet::generate(1, 20_000);
        let ids: HashSet<_> = fleet.terminals.iter().map(|t| t.terminal_id).collect();
        assert_eq!(ids.len(), fleet.len());
        // Several terminals per code only in hospitals (医科), at most three.
        let mut per_code = std::collections::HashMap::new();
        for t in &fleet.terminals {
            *per_code.entry(t.clinic_code).or_insert(0) += 1;
        }
        assert!(per_code.values().all(|n| *n <= 3));
        assert!(per_code.len() > fleet.len() * 9 / 10);
    }

    #[test]
    fn shares_follow_the_population_and_facility_counts() {
        let fleet = Fleet::generate(1, 50_000);
        let share = |f: &dyn Fn(&SimTerminal) -> bool| {
            fleet.terminals.iter().filter(|t| f(t)).count() as f64 / fleet.len() as f64
        };
        // 東京 is about 11% of the population; the east area about half.
        let tokyo = share(&|t| t.prefecture().number() == 13);
        assert!((0.09..0.13).contains(&tokyo), "東京 {tokyo}");
        let east = share(&|t| t.area() == Area::East);
        assert!((0.45..0.55).contains(&east), "east {east}");
        let pharmacies = share(&|t| t.clinic_code.as_str().as_bytes()[2] == b'4');
        assert!((0.24..0.31).contains(&pharmacies), "調剤 {pharmacies}");
    }

    #[test]
    fn an_area_fleet_has_only_that_area() {
        let fleet = Fleet::in_area(3, 500, Area::East);
        assert_eq!(fleet.len(), 500);
        assert!(fleet.terminals.iter().all(|t| t.area() == Area::East));
    }

    #[test]
    fn downloads_happen_inside_distribution_windows_and_restarts_after_them() {
        let campaign = Campaign::face_library_5_1_0();
        for t in Fleet::generate(5, 5_000).terminals {
            let Some(download) = t.download_at() else {
                assert_ne!(t.obstacle, Obstacle::None);
                continue;
            };
            assert!(campaign.distributing_at(download), "{download}");
            assert!(t.is_on(download), "off at its own download {download}");
            if let Some(restart) = t.restart_at() {
                assert!(restart > download);
                assert_eq!(t.booted_at(restart), restart);
            }
            // Before the restart the running OS started before the download.
            let just_after = download + Duration::minutes(1);
            if t.restart_at().is_none_or(|r| r > just_after) {
                assert!(
                    t.booted_at(just_after) < download,
                    "{t:?} {download} {}",
                    t.booted_at(just_after)
                );
            }
        }
    }

    #[test]
    fn terminals_off_at_night_are_off_at_night() {
        let fleet = Fleet::generate(2, 2_000);
        let sunday_night = at(jan(25), 23, 0);
        for t in &fleet.terminals {
            assert_eq!(t.is_on(sunday_night), t.always_on);
            assert!(t.is_on(at(jan(21), 10, 0)), "a Wednesday morning");
        }
    }
}
