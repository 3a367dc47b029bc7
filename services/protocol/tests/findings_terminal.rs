//! The contract's examples for the terminal rules (§6), end to end through a parsed
//! report, its merged state and `evaluate_terminal`.

use chrono::{DateTime, FixedOffset, TimeDelta};
use fleet_protocol::findings::{
    CampaignInput, ClinicHours, Condition, FindingKind, FindingStatus, Severity, TerminalInput,
    Thresholds, evaluate_terminal, seeded_windows,
};
use fleet_protocol::{Campaign, ReaderError, Report, TerminalState};
use proptest::prelude::*;

fn at(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

/// A report of clinic `clinic` observed at `observed_at` with extra sections.
fn state(clinic: &str, observed_at: &str, extra: serde_json::Value) -> TerminalState {
    let mut v = serde_json::json!({
        "schema": "fleet.report.v1",
        "terminal_id": "0f8c2b1e-6c5d-4a57-9a3e-2b7f0c1d9e11",
        "seq": 1,
        "observed_at": observed_at,
        "clinic_code": clinic,
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    TerminalState::from_first(&Report::parse(v.to_string().as_bytes()).unwrap())
}

const TOKYO: &str = "1312345678";
const TOYAMA: &str = "1612345678";

struct Case {
    state: TerminalState,
    errors: Vec<ReaderError>,
    hours: ClinicHours,
    previous: Vec<Condition>,
}

impl Case {
    fn new(state: TerminalState, hours: ClinicHours) -> Self {
        Self {
            state,
            errors: vec![],
            hours,
            previous: vec![],
        }
    }

    fn eval(&self, now: &str) -> fleet_protocol::Evaluation {
        let windows = seeded_windows();
        let input = TerminalInput {
            state: &self.state,
            recent_reader_errors: &self.errors,
            hours: &self.hours,
            windows: &windows,
            campaigns: &[],
            previous: &self.previous,
        };
        evaluate_terminal(&input, at(now), &Thresholds::default())
    }
}

fn kinds(e: &fleet_protocol::Evaluation) -> Vec<(FindingKind, FindingStatus)> {
    e.findings.iter().map(|f| (f.kind, f.status)).collect()
}

fn line_down(clinic: &str, observed_at: &str) -> TerminalState {
    state(
        clinic,
        observed_at,
        serde_json::json!({"line_auth": {"state": "disconnected"}}),
    )
}

#[test]
fn hospital_in_tokyo_is_suppressed_by_the_east_outage_and_toyama_is_not() {
    // The line drops at 23:20 and is still down at 23:30 on 2025-02-01.
    let mut tokyo = Case::new(
        line_down(TOKYO, "2025-02-01T23:20:00+09:00"),
        ClinicHours::always_open(),
    );
    let mut toyama = Case::new(
        line_down(TOYAMA, "2025-02-01T23:20:00+09:00"),
        ClinicHours::always_open(),
    );
    // The reports keep coming every minute; the condition is remembered from the first.
    for case in [&mut tokyo, &mut toyama] {
        case.previous = case.eval("2025-02-01T23:20:00+09:00").conditions;
        case.state.last_observed_at = at("2025-02-01T23:30:00+09:00");
    }
    let t = tokyo.eval("2025-02-01T23:30:00+09:00");
    assert_eq!(
        kinds(&t),
        [(FindingKind::LineAuthDown, FindingStatus::Suppressed)]
    );
    assert_eq!(
        t.findings[0].window_id.as_deref(),
        Some("seed-2025-02-01-east-outage")
    );
    assert_eq!(t.findings[0].since, at("2025-02-01T23:20:00+09:00"));
    assert_eq!(t.findings[0].severity, Severity::Urgent);
    let w = toyama.eval("2025-02-01T23:30:00+09:00");
    assert_eq!(
        kinds(&w),
        [(FindingKind::LineAuthDown, FindingStatus::Active)]
    );
    assert_eq!(w.findings[0].window_id, None);
}

#[test]
fn a_suppressed_finding_becomes_active_when_the_window_ends_and_it_persists() {
    let mut tokyo = Case::new(
        line_down(TOKYO, "2025-02-01T23:20:00+09:00"),
        ClinicHours::always_open(),
    );
    tokyo.previous = tokyo.eval("2025-02-01T23:30:00+09:00").conditions;
    tokyo.state.last_observed_at = at("2025-02-02T00:40:00+09:00");
    let e = tokyo.eval("2025-02-02T00:40:00+09:00");
    assert_eq!(
        kinds(&e),
        [(FindingKind::LineAuthDown, FindingStatus::Active)]
    );
    assert_eq!(
        e.findings[0].window_id.as_deref(),
        Some("seed-2025-02-01-east-outage")
    );
    assert_eq!(e.findings[0].since, at("2025-02-01T23:20:00+09:00"));
}

#[test]
fn a_clinic_with_default_hours_raises_nothing_at_2330_either_way() {
    for clinic in [TOKYO, TOYAMA] {
        let mut case = Case::new(
            line_down(clinic, "2025-02-01T23:20:00+09:00"),
            ClinicHours::default(),
        );
        case.previous = case.eval("2025-02-01T23:20:00+09:00").conditions;
        let e = case.eval("2025-02-01T23:30:00+09:00");
        assert!(e.findings.is_empty(), "{clinic}: {:?}", e.findings);
        // …but it is remembered, so that it is raised once the clinic opens, if still down.
        assert_eq!(e.conditions.len(), 1);
    }
}

#[test]
fn line_auth_needs_ten_minutes_and_stays_raised_after_closing_until_it_clears() {
    let mut case = Case::new(
        line_down(TOKYO, "2026-01-20T17:45:00+09:00"),
        ClinicHours::default(),
    );
    let e = case.eval("2026-01-20T17:50:00+09:00");
    assert!(e.findings.is_empty());
    case.previous = e.conditions;
    let e = case.eval("2026-01-20T17:55:00+09:00");
    assert_eq!(
        kinds(&e),
        [(FindingKind::LineAuthDown, FindingStatus::Active)]
    );
    case.previous = e.conditions;
    // Still down after closing: stays.
    let e = case.eval("2026-01-20T19:00:00+09:00");
    assert_eq!(
        kinds(&e),
        [(FindingKind::LineAuthDown, FindingStatus::Active)]
    );
    // It clears with a connected report.
    case.state = state(
        TOKYO,
        "2026-01-20T19:05:00+09:00",
        serde_json::json!({"line_auth": {"state": "connected"}}),
    );
    let e = case.eval("2026-01-20T19:06:00+09:00");
    assert!(e.findings.is_empty());
}

#[test]
fn a_terminal_off_at_night_or_on_a_holiday_is_not_silent() {
    // Last report at 18:05 on a Tuesday; at 23:00 it is simply off.
    let case = Case::new(
        state(TOKYO, "2026-01-20T18:05:00+09:00", serde_json::json!({})),
        ClinicHours::default(),
    );
    assert!(case.eval("2026-01-20T23:00:00+09:00").findings.is_empty());
    // Off all day on 成人の日 (2026-01-12, a Monday).
    let case = Case::new(
        state(TOKYO, "2026-01-09T18:00:00+09:00", serde_json::json!({})),
        ClinicHours::default(),
    );
    for now in [
        "2026-01-12T09:00:00+09:00",
        "2026-01-12T12:00:00+09:00",
        "2026-01-12T17:59:00+09:00",
    ] {
        assert!(case.eval(now).findings.is_empty(), "{now}");
    }
    // Not yet at 08:35 the next open morning; silent from 08:50.
    let case = Case::new(
        state(TOKYO, "2026-01-09T18:00:00+09:00", serde_json::json!({})),
        ClinicHours::default(),
    );
    assert!(case.eval("2026-01-13T08:35:00+09:00").findings.is_empty());
    let e = case.eval("2026-01-13T08:50:00+09:00");
    assert_eq!(kinds(&e), [(FindingKind::Silent, FindingStatus::Active)]);
    assert_eq!(e.findings[0].since, at("2026-01-09T18:00:00+09:00"));
    assert_eq!(e.findings[0].severity, Severity::Ticket);
}

fn err(code: &str, at_: &str, count: u32) -> ReaderError {
    ReaderError {
        code: code.into(),
        message: None,
        at: at(at_),
        count,
    }
}

#[test]
fn reader_fault_counts_device_and_network_errors_in_the_last_fifteen_minutes() {
    let s = state(
        TOKYO,
        "2026-01-20T10:00:00+09:00",
        serde_json::json!({"reader": {"maker": "fujitsu", "connected": true}}),
    );
    let mut case = Case::new(s, ClinicHours::default());
    case.errors = vec![
        err("FUJP55", "2026-01-20T09:40:00+09:00", 5),
        err("FUJP55", "2026-01-20T09:50:00+09:00", 2),
    ];
    assert!(
        case.eval("2026-01-20T10:00:00+09:00").findings.is_empty(),
        "09:40 is older than 15 min"
    );
    case.errors.push(err("011", "2026-01-20T09:58:00+09:00", 1));
    let e = case.eval("2026-01-20T10:00:00+09:00");
    assert_eq!(
        kinds(&e),
        [(FindingKind::ReaderFault, FindingStatus::Active)]
    );
    assert_eq!(e.findings[0].since, at("2026-01-20T09:58:00+09:00"));
    assert_eq!(e.findings[0].cause.as_deref(), Some("FUJP55"));
    assert!(e.findings[0].instruction_ja.contains("再起動"));
    // Patient-side errors never count, however many.
    case.errors = vec![
        err("006", "2026-01-20T09:58:00+09:00", 50),
        err("001", "2026-01-20T09:59:00+09:00", 9),
    ];
    assert!(case.eval("2026-01-20T10:00:00+09:00").findings.is_empty());
}

#[test]
fn a_disconnected_reader_is_a_fault_while_open() {
    let s = state(
        TOKYO,
        "2026-01-20T10:00:00+09:00",
        serde_json::json!({"reader": {"maker": "canon", "connected": false}}),
    );
    let case = Case::new(s, ClinicHours::default());
    let e = case.eval("2026-01-20T10:01:00+09:00");
    assert_eq!(
        kinds(&e),
        [(FindingKind::ReaderFault, FindingStatus::Active)]
    );
    assert_eq!(e.findings[0].cause.as_deref(), Some("disconnected"));
    assert!(
        case.eval("2026-01-20T22:01:00+09:00")
            .findings
            .iter()
            .all(|f| f.kind != FindingKind::ReaderFault)
    );
}

#[test]
fn hub_and_unverified_nfc_readers_are_tickets_at_any_hour() {
    let s = state(
        TOKYO,
        "2026-01-20T23:00:00+09:00",
        serde_json::json!({
            "reader": {"via_usb_hub": true},
            "nfc_reader": {"model": "RC-S300"}
        }),
    );
    let e = Case::new(s, ClinicHours::default()).eval("2026-01-20T23:01:00+09:00");
    assert_eq!(
        kinds(&e),
        [
            (FindingKind::ReaderOnUsbHub, FindingStatus::Active),
            (FindingKind::NfcReaderUnverified, FindingStatus::Active)
        ]
    );
    assert!(e.findings.iter().all(|f| f.severity == Severity::Ticket));
    let s = state(
        TOKYO,
        "2026-01-20T23:00:00+09:00",
        serde_json::json!({"nfc_reader": {"model": "RC-S300/S1"}}),
    );
    assert!(
        Case::new(s, ClinicHours::default())
            .eval("2026-01-20T23:01:00+09:00")
            .findings
            .is_empty()
    );
}

#[test]
fn certificate_reminders_at_90_60_30_15_7_days_and_expiry() {
    let not_after = at("2028-04-30T23:59:59+09:00");
    let s = state(
        TOKYO,
        "2026-01-20T10:00:00+09:00",
        serde_json::json!({"certificate": {"not_after": "2028-04-30T23:59:59+09:00"}}),
    );
    let case = Case::new(s, ClinicHours::default());
    let at_days = |d: i64| (not_after - TimeDelta::days(d)).to_rfc3339();
    assert!(case.eval(&at_days(91)).findings.is_empty());
    for (d, sev) in [
        (90, Severity::Ticket),
        (60, Severity::Ticket),
        (30, Severity::Ticket),
        (15, Severity::Ticket),
        (8, Severity::Ticket),
        (7, Severity::Urgent),
        (0, Severity::Urgent),
    ] {
        let e = case.eval(&at_days(d));
        assert_eq!(
            kinds(&e),
            [(FindingKind::CertificateExpiring, FindingStatus::Active)],
            "{d}"
        );
        assert_eq!(e.findings[0].days_left, Some(d), "{d}");
        assert_eq!(e.findings[0].severity, sev, "{d}");
        assert_eq!(e.findings[0].since, not_after - TimeDelta::days(91));
    }
    let e = case.eval("2028-05-01T00:00:00+09:00");
    assert_eq!(
        kinds(&e),
        [(FindingKind::CertificateExpired, FindingStatus::Active)]
    );
    assert_eq!(e.findings[0].days_left, Some(-1));
    assert_eq!(e.findings[0].since, not_after);
}

#[test]
fn campaign_states_other_than_updated_are_tickets_with_their_cause() {
    let campaign = Campaign::face_library_5_1_0();
    let s = state(
        TOKYO,
        "2026-01-20T07:12:00+09:00",
        serde_json::json!({
            "versions": {"face_library": "5.0.3"},
            "distribution": {"enabled": false}
        }),
    );
    let windows = seeded_windows();
    let hours = ClinicHours::default();
    let campaigns = [CampaignInput {
        campaign: &campaign,
        seen_during_distribution: false,
    }];
    let input = TerminalInput {
        state: &s,
        recent_reader_errors: &[],
        hours: &hours,
        windows: &windows,
        campaigns: &campaigns,
        previous: &[],
    };
    let e = evaluate_terminal(
        &input,
        at("2026-01-20T07:13:00+09:00"),
        &Thresholds::default(),
    );
    assert_eq!(e.findings.len(), 1);
    let f = &e.findings[0];
    assert_eq!(
        (f.kind, f.severity),
        (FindingKind::Campaign, Severity::Ticket)
    );
    assert_eq!(f.campaign.as_deref(), Some("face-library-5.1.0"));
    assert_eq!(f.cause.as_deref(), Some("distribution_disabled"));
    assert!(f.instruction_ja.contains("配信機能を無効化する"));
    // Powered off every night: told about nights until 01-30, about all day after.
    let s = state(
        TOKYO,
        "2026-01-27T10:00:00+09:00",
        serde_json::json!({"versions": {"face_library": "5.0.3"}}),
    );
    let input = TerminalInput { state: &s, ..input };
    let night = evaluate_terminal(
        &input,
        at("2026-01-27T10:00:00+09:00"),
        &Thresholds::default(),
    );
    assert_eq!(
        night.findings[0].cause.as_deref(),
        Some("powered_off_during_distribution")
    );
    assert!(night.findings[0].instruction_ja.contains("20:00"));
    let day = evaluate_terminal(
        &input,
        at("2026-02-02T10:00:00+09:00"),
        &Thresholds::default(),
    );
    let f = day
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::Campaign)
        .unwrap();
    assert_eq!(f.cause.as_deref(), Some("powered_off_during_distribution"));
    assert!(f.instruction_ja.contains("終日"));
}

proptest! {
    #[test]
    fn since_never_lies_after_now(
        obs in 0i64..400_000_000,
        ahead in -100_000i64..100_000_000,
        cert in -200_000_000i64..200_000_000,
        line in 0usize..3,
        codes in proptest::collection::vec(("[0-9A-Za-z]{0,6}", -3_000i64..3_000, 0u32..5), 0..6),
        always in any::<bool>(),
    ) {
        let base = at("2014-01-01T00:00:00+09:00");
        let observed = base + TimeDelta::seconds(obs);
        let now = observed + TimeDelta::seconds(ahead);
        let line = ["connected", "disconnected", "unreachable"][line];
        let s = state(TOKYO, &observed.to_rfc3339(), serde_json::json!({
            "line_auth": {"state": line},
            "reader": {"maker": "almex", "connected": ahead % 2 == 0, "via_usb_hub": true},
            "nfc_reader": {"model": "X"},
            "certificate": {"not_after": (observed + TimeDelta::seconds(cert)).to_rfc3339()},
        }));
        let errors: Vec<ReaderError> = codes.iter().map(|(c, off, n)| ReaderError {
            code: c.clone(), message: None, at: now + TimeDelta::seconds(*off), count: *n,
        }).collect();
        let hours = if always { ClinicHours::always_open() } else { ClinicHours::default() };
        let windows = seeded_windows();
        let mut previous = vec![];
        for step in 0..2 {
            let t = now + TimeDelta::minutes(30 * step);
            let input = TerminalInput { state: &s, recent_reader_errors: &errors, hours: &hours, windows: &windows, campaigns: &[], previous: &previous };
            let e = evaluate_terminal(&input, t, &Thresholds::default());
            for f in &e.findings {
                prop_assert!(f.since <= t, "{:?} since {} after {}", f.kind, f.since, t);
                prop_assert!(f.status == FindingStatus::Active || f.status == FindingStatus::Suppressed);
            }
            previous = e.conditions;
        }
    }
}

/// Contract §6 matches a window by the finding's `since` alone, and a silent
/// terminal's `since` is its last report: a hospital whose last report came one minute
/// before the outage is therefore *not* suppressed (the session note reports this as a
/// flaw of the contract); one whose last report fell inside the window is.
#[test]
fn a_window_explains_silence_only_when_the_last_report_fell_inside_it() {
    let s = state(TOKYO, "2025-02-01T21:59:00+09:00", serde_json::json!({}));
    let e = Case::new(s, ClinicHours::always_open()).eval("2025-02-01T22:30:00+09:00");
    assert_eq!(kinds(&e), [(FindingKind::Silent, FindingStatus::Active)]);
    assert_eq!(e.findings[0].since, at("2025-02-01T21:59:00+09:00"));
    assert_eq!(e.findings[0].window_id, None);

    let s = state(TOKYO, "2025-02-01T22:05:00+09:00", serde_json::json!({}));
    let e = Case::new(s.clone(), ClinicHours::always_open()).eval("2025-02-01T22:30:00+09:00");
    assert_eq!(
        kinds(&e),
        [(FindingKind::Silent, FindingStatus::Suppressed)]
    );
    // Still silent after the window: active, still naming the window it began in.
    let e = Case::new(s, ClinicHours::always_open()).eval("2025-02-02T01:00:00+09:00");
    assert_eq!(kinds(&e), [(FindingKind::Silent, FindingStatus::Active)]);
    assert_eq!(
        e.findings[0].window_id.as_deref(),
        Some("seed-2025-02-01-east-outage")
    );
    // In Toyama nothing explains it.
    let s = state(TOYAMA, "2025-02-01T22:05:00+09:00", serde_json::json!({}));
    let e = Case::new(s, ClinicHours::always_open()).eval("2025-02-01T22:30:00+09:00");
    assert_eq!(kinds(&e), [(FindingKind::Silent, FindingStatus::Active)]);
}

#[test]
fn nfc_readers_match_the_verified_list_exactly() {
    use fleet_protocol::findings::nfc_reader_verified;
    assert!(nfc_reader_verified("RC-S300/S1"));
    assert!(nfc_reader_verified("ソニー RC-S300/S1"));
    assert!(nfc_reader_verified("rc-s300/s1"));
    assert!(nfc_reader_verified("MR-ICA001BK"));
    assert!(!nfc_reader_verified("RC-S300"));
    assert!(!nfc_reader_verified("RC-S300/S"));
    assert!(!nfc_reader_verified(""));
}

proptest! {
    #[test]
    fn patient_side_errors_never_raise_a_finding(
        counts in proptest::collection::vec((0usize..3, 0u32..1_000, 0i64..900), 0..20),
        maker in 0usize..6,
    ) {
        let maker = ["fujitsu", "panasonic", "atlas", "almex", "canon", "other"][maker];
        let s = state(TOKYO, "2026-01-20T10:00:00+09:00", serde_json::json!({"reader": {"maker": maker, "connected": true}}));
        let mut case = Case::new(s, ClinicHours::always_open());
        case.errors = counts.iter().map(|(c, n, off)| ReaderError {
            code: ["001", "002", "006"][*c].into(), message: None,
            at: at("2026-01-20T10:00:00+09:00") - TimeDelta::seconds(*off), count: *n,
        }).collect();
        prop_assert!(case.eval("2026-01-20T10:00:00+09:00").findings.is_empty());
    }
}
