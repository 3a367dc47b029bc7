//! One simulated report: a pure function of the terminal, the time and the `seq`.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, FixedOffset};
use fleet_protocol::report::{
    Certificate, Distribution, Download, Host, LineAuth, LineAuthState, NfcReader, Reader,
    ReaderError, ReaderMaker, ReaderMode, Reboot, SCHEMA_V1, component,
};
use fleet_protocol::{CampaignState, Report};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::fleet::{NFC_READERS, Obstacle, SimTerminal};
use super::mix;

/// The face-library version before the campaign and the one it requires.
pub const OLD_FACE_LIBRARY: &str = "5.0.3";
pub const NEW_FACE_LIBRARY: &str = "5.1.0";

/// What the world is like when the report is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Situation {
    Normal,
    /// The terminal's area network is down: 回線認証 unreachable, the reader reports
    /// network errors, and the report waits in the agent's spool.
    Outage,
}

/// The report terminal `t` takes at `observed_at` with number `seq`; `previous` is
/// when its previous report was taken (reader errors are those since then).
pub fn report_at(
    seed: u64,
    t: &SimTerminal,
    seq: u64,
    observed_at: DateTime<FixedOffset>,
    previous: Option<DateTime<FixedOffset>>,
    situation: Situation,
) -> Report {
    let mut rng = StdRng::seed_from_u64(mix(seed, u64::from(t.index) | 1 << 40, seq));
    let download = t.download_at().filter(|d| *d <= observed_at);
    let restarted = t.restart_at().is_some_and(|r| r <= observed_at);
    let reports_versions = t.obstacle != Obstacle::NoVersion;

    let versions = reports_versions.then(|| {
        let face = if restarted {
            NEW_FACE_LIBRARY
        } else {
            OLD_FACE_LIBRARY
        };
        BTreeMap::from([
            (component::FACE_LIBRARY.to_owned(), face.to_owned()),
            (component::QUALIFICATION_APP.to_owned(), "2.4.1".to_owned()),
            (component::DISTRIBUTION_APP.to_owned(), "1.8.0".to_owned()),
            (component::READER_FIRMWARE.to_owned(), "3.2.0".to_owned()),
        ])
    });
    let distribution = reports_versions.then(|| Distribution {
        enabled: Some(t.obstacle != Obstacle::DistributionDisabled),
        downloaded: download.map(|at| {
            BTreeMap::from([(
                component::FACE_LIBRARY.to_owned(),
                Download {
                    version: NEW_FACE_LIBRARY.to_owned(),
                    at: Some(at),
                },
            )])
        }),
    });
    let pending = download.is_some() && !restarted;
    let reboot = reports_versions.then(|| Reboot {
        pending: Some(pending),
        reason: pending.then(|| "update_downloaded".to_owned()),
    });

    let line_state = match (situation, t.obstacle) {
        (Situation::Outage, _) => LineAuthState::Unreachable,
        (_, Obstacle::LineAuthDown) => LineAuthState::Disconnected,
        // The odd transient failure of the check page.
        _ if rng.random_bool(0.005) => LineAuthState::Unreachable,
        _ => LineAuthState::Connected,
    };
    let since = previous.unwrap_or(observed_at - Duration::hours(1));
    let errors = reader_errors(t, situation, line_state, since, observed_at, &mut rng);

    Report {
        schema: SCHEMA_V1.to_owned(),
        terminal_id: t.terminal_id,
        seq,
        observed_at,
        clinic_code: t.clinic_code,
        agent_version: Some(fleet_agent::AGENT_VERSION.to_owned()),
        host: Some(Host {
            hostname: Some(t.hostname.clone()),
            os: Some(t.os.to_owned()),
            booted_at: Some(t.booted_at(observed_at)),
            auto_reboot: Some(t.auto_reboot),
        }),
        versions,
        distribution,
        reboot,
        line_auth: Some(LineAuth {
            state: line_state,
            checked_at: Some(observed_at - Duration::seconds(2)),
        }),
        reader: Some(Reader {
            maker: Some(t.maker),
            model: t.model.map(str::to_owned),
            connected: Some(true),
            via_usb_hub: Some(t.via_usb_hub),
            mode: Some(if t.visual_mode {
                ReaderMode::Visual
            } else {
                ReaderMode::Unattended
            }),
            errors: (!errors.is_empty()).then_some(errors),
        }),
        nfc_reader: t
            .nfc_reader
            .and_then(|i| NFC_READERS.get(i))
            .map(|(m, f)| NfcReader {
                model: Some((*m).to_owned()),
                firmware: Some((*f).to_owned()),
            }),
        certificate: Some(Certificate {
            issuer: Some("Online Billing NW Common RootCA".to_owned()),
            not_after: Some(t.certificate_not_after),
        }),
    }
}

/// Device and network faults a maker's reader reports (domain.md).
fn device_error(maker: ReaderMaker, rng: &mut StdRng) -> (&'static str, &'static str) {
    let choices: &[(&str, &str)] = match maker {
        ReaderMaker::Fujitsu => &[("FUJP55", "タイムアウト"), ("011", "ネットワークエラー")],
        ReaderMaker::Canon => &[
            ("906", "システムへの接続に失敗しました"),
            ("011", "ネットワークエラー"),
        ],
        ReaderMaker::Almex => &[("011", "ネットワークエラー"), ("0x81000001", "重複登録")],
        ReaderMaker::Atlas => &[("COM切断", "端末との通信が切断されました")],
        ReaderMaker::Panasonic | ReaderMaker::Other => &[("011", "ネットワークエラー")],
    };
    choices[rng.random_range(0..choices.len())]
}

/// Patient-side codes, common to every maker: counted, never paged.
const PATIENT_SIDE: [(&str, &str); 5] = [
    ("001", "カードを認識できません"),
    ("002", "マイナンバーカードではありません"),
    ("006", "証明書が失効または有効期限切れです"),
    ("PIN_LOCK", "暗証番号がロックされました"),
    ("FACE_LOCK", "顔認証がロックされました"),
];

fn reader_errors(
    t: &SimTerminal,
    situation: Situation,
    line: LineAuthState,
    since: DateTime<FixedOffset>,
    until: DateTime<FixedOffset>,
    rng: &mut StdRng,
) -> Vec<ReaderError> {
    let span = (until - since).num_seconds().max(1);
    let moment = |rng: &mut StdRng| until - Duration::seconds(rng.random_range(0..span));
    let mut errors = Vec::new();
    let network_down = situation == Situation::Outage || line != LineAuthState::Connected;
    if network_down && rng.random_bool(0.6) {
        errors.push(ReaderError {
            code: "011".to_owned(),
            message: Some("ネットワークエラー".to_owned()),
            at: moment(rng),
            count: rng.random_range(1..=5),
        });
    } else if rng.random_bool(0.02) {
        let (code, message) = device_error(t.maker, rng);
        errors.push(ReaderError {
            code: code.to_owned(),
            message: Some(message.to_owned()),
            at: moment(rng),
            count: rng.random_range(1..=3),
        });
    }
    if rng.random_bool(0.08) {
        let (code, message) = PATIENT_SIDE[rng.random_range(0..PATIENT_SIDE.len())];
        errors.push(ReaderError {
            code: code.to_owned(),
            message: Some(message.to_owned()),
            at: moment(rng),
            count: 1,
        });
    }
    errors
}

/// The campaign state the service should show for `t` after its report at `at`
/// (contract §3); the simulator tallies these so a run can be checked against
/// `/api/v1/rollout`.
pub fn expected_state(t: &SimTerminal, at: DateTime<FixedOffset>) -> CampaignState {
    if t.obstacle == Obstacle::NoVersion {
        CampaignState::Unknown
    } else if t.restart_at().is_some_and(|r| r <= at) {
        CampaignState::Updated
    } else if t.download_at().is_some_and(|d| d <= at) {
        CampaignState::RebootRequired
    } else {
        CampaignState::NotDownloaded
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::Fleet;
    use chrono::TimeZone;
    use fleet_protocol::{Campaign, JST, TerminalState};

    fn jst(d: u32, h: u32) -> DateTime<FixedOffset> {
        JST.with_ymd_and_hms(2026, 1, d, h, 0, 0).single().unwrap()
    }

    #[test]
    fn the_same_inputs_give_the_same_report() {
        let fleet = Fleet::generate(9, 50);
        for t in &fleet.terminals {
            let a = report_at(9, t, 5, jst(22, 10), Some(jst(22, 9)), Situation::Normal);
            let b = report_at(9, t, 5, jst(22, 10), Some(jst(22, 9)), Situation::Normal);
            assert_eq!(a, b);
        }
    }

    #[test]
    fn every_report_parses_as_v1_and_is_contract_sized() {
        let fleet = Fleet::generate(4, 2_000);
        let mut total = 0;
        for (i, t) in fleet.terminals.iter().enumerate() {
            let situation = if i % 3 == 0 {
                Situation::Outage
            } else {
                Situation::Normal
            };
            let r = report_at(4, t, 1 + i as u64, jst(27, 3), None, situation);
            let body = r.to_json();
            let parsed = Report::parse(&body).expect("a simulated report parses");
            assert_eq!(parsed, r);
            assert!(body.len() < 2_000, "{} bytes", body.len());
            total += body.len();
        }
        let mean = total / fleet.len();
        assert!((600..1_300).contains(&mean), "mean body {mean} bytes");
    }

    /// The service's own rules (the protocol crate) put every simulated terminal in
    /// the state the simulator expects, at every point of the rollout.
    #[test]
    fn the_service_rules_agree_with_the_expected_state() {
        let campaign = Campaign::face_library_5_1_0();
        let fleet = Fleet::generate(11, 3_000);
        for at in [
            jst(19, 10),
            jst(20, 9),
            jst(23, 10),
            jst(28, 12),
            jst(31, 12),
        ] {
            for t in &fleet.terminals {
                let r = report_at(11, t, 1, at, None, Situation::Normal);
                let state = TerminalState::from_first(&r);
                let got = campaign.assess(&state, true, at).state;
                assert_eq!(got, expected_state(t, at), "{t:?} at {at}");
            }
        }
    }

    #[test]
    fn the_rollout_progresses_over_january() {
        let fleet = Fleet::generate(12, 5_000);
        let count = |at, s| {
            fleet
                .terminals
                .iter()
                .filter(|t| expected_state(t, at) == s)
                .count()
        };
        assert_eq!(count(jst(19, 10), CampaignState::Updated), 0);
        let mid = count(jst(23, 10), CampaignState::Updated);
        let end = count(
            JST.with_ymd_and_hms(2026, 2, 10, 12, 0, 0).unwrap(),
            CampaignState::Updated,
        );
        assert!(mid > 500 && mid < end, "mid {mid}, end {end}");
        assert!(end < fleet.len() * 95 / 100, "some terminals never update");
        assert!(count(jst(23, 10), CampaignState::RebootRequired) > 0);
        assert!(count(jst(23, 10), CampaignState::Unknown) > 0);
    }

    #[test]
    fn an_outage_report_shows_the_network_down() {
        let fleet = Fleet::generate(1, 200);
        let mut network_errors = 0;
        for t in &fleet.terminals {
            let r = report_at(1, t, 3, jst(27, 23), Some(jst(27, 22)), Situation::Outage);
            let line = r.line_auth.as_ref().map(|l| l.state);
            assert_eq!(line, Some(LineAuthState::Unreachable));
            let errors = r.reader.and_then(|x| x.errors).unwrap_or_default();
            network_errors += errors.iter().filter(|e| e.code == "011").count();
        }
        assert!(network_errors > 80, "{network_errors}");
    }
}
