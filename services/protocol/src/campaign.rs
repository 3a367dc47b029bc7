//! Update campaigns and the state of each terminal in them (contract §3).
//!
//! A campaign is data (component, required version, distribution windows, deadline),
//! so the next one is added without a release. The seeded one is the face-library
//! 5.1.0 rollout of seeds 002 and 004: nightly 20:00–05:00 JST from 2026-01-19 to
//! 2026-01-30 except the night starting 2026-01-25, then all day from 2026-01-31; a
//! restart completes the update.
//!
//! Besides the contract's four states, [`assess`] says *why* a terminal is not updated
//! (a [`Cause`]), because the support desk needs the one thing to tell the clinic.

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveTime, TimeZone};
use serde::{Deserialize, Serialize};

use crate::report::LineAuthState;
use crate::state::TerminalState;
use crate::version::Version;

/// Japan Standard Time, UTC+9 (Japan keeps no daylight saving).
pub const JST: FixedOffset = match FixedOffset::east_opt(9 * 3600) {
    Some(offset) => offset,
    None => panic!("UTC+9 is a valid offset"),
};

/// Japan Standard Time.
pub fn jst() -> FixedOffset {
    JST
}

/// The campaign this product was built for.
pub const FACE_LIBRARY_5_1_0: &str = "face-library-5.1.0";

/// An update rollout whose progress is tracked per terminal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Campaign {
    /// Slug, e.g. `face-library-5.1.0`.
    pub id: String,
    /// The component in `versions` / `distribution.downloaded`, e.g. `face_library`.
    pub component: String,
    /// The version a terminal must run to be `updated`.
    pub required_version: String,
    /// When the distribution tool delivers the update.
    pub windows: Vec<DistributionWindow>,
    /// When terminals must be updated, if announced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DateTime<FixedOffset>>,
    /// Display name in Japanese.
    pub title_ja: String,
    /// Display name in English.
    pub title_en: String,
}

/// A period during which the update is distributed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DistributionWindow {
    /// Every night from `first_night` to `last_night` (the dates the nights start on,
    /// JST), from `start` to `end` the next morning, except the listed nights.
    Nightly {
        first_night: NaiveDate,
        last_night: NaiveDate,
        start: NaiveTime,
        end: NaiveTime,
        #[serde(default)]
        except_nights: Vec<NaiveDate>,
    },
    /// Continuously from `from` until `until` (open-ended when absent).
    Continuous {
        from: DateTime<FixedOffset>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<DateTime<FixedOffset>>,
    },
}

/// A terminal's state in a campaign (contract §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignState {
    Updated,
    RebootRequired,
    NotDownloaded,
    Unknown,
}

impl CampaignState {
    pub const ALL: [CampaignState; 4] = [
        CampaignState::Updated,
        CampaignState::RebootRequired,
        CampaignState::NotDownloaded,
        CampaignState::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Updated => "updated",
            Self::RebootRequired => "reboot_required",
            Self::NotDownloaded => "not_downloaded",
            Self::Unknown => "unknown",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// Why a terminal is in its state: one cause, one instruction for the support desk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// Running the required version; nothing to do.
    Updated,
    /// Downloaded, not yet restarted, and the terminal does not restart by itself.
    RestartNeeded,
    /// Downloaded, not yet restarted, but the terminal restarts itself every morning.
    AwaitingAutoReboot,
    /// 「配信機能を無効化する」 is checked.
    DistributionDisabled,
    /// 回線認証 is down or its page unreachable, so nothing can be delivered.
    LineAuthDown,
    /// The first distribution window has not started yet.
    DistributionNotStarted,
    /// Never seen switched on during a distribution window so far.
    PoweredOffDuringDistribution,
    /// Seen on during distribution and still nothing downloaded: fetch by hand.
    ManualDownloadNeeded,
    /// The terminal never reported the component's version.
    NoVersionReported,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Updated => "updated",
            Self::RestartNeeded => "restart_needed",
            Self::AwaitingAutoReboot => "awaiting_auto_reboot",
            Self::DistributionDisabled => "distribution_disabled",
            Self::LineAuthDown => "line_auth_down",
            Self::DistributionNotStarted => "distribution_not_started",
            Self::PoweredOffDuringDistribution => "powered_off_during_distribution",
            Self::ManualDownloadNeeded => "manual_download_needed",
            Self::NoVersionReported => "no_version_reported",
        }
    }

    /// The instruction for the support desk, in plain Japanese (seeds 002, 004).
    pub fn instruction_ja(self) -> &'static str {
        match self {
            Self::Updated => "対応は不要です。",
            Self::RestartNeeded => {
                "資格確認端末を再起動してください。再起動しないと次回の資格確認でエラーになります。"
            }
            Self::AwaitingAutoReboot => {
                "翌朝の自動再起動で更新が完了します。翌営業日の朝に更新されていなければ、資格確認端末を再起動してください。"
            }
            Self::DistributionDisabled => {
                "配信アプリケーション管理ツールで「配信機能を無効化する」のチェックを外してください。"
            }
            Self::LineAuthDown => {
                "回線認証が切れています。端末で https://www.lineauth.mnw を開き「希望する」を押して再接続してください。"
            }
            Self::DistributionNotStarted => {
                "配信開始前です。配信期間の夜間(20:00〜翌5:00)は端末とカードリーダーの電源を入れたままにしてください。"
            }
            Self::PoweredOffDuringDistribution => {
                "配信期間の夜間(20:00〜翌5:00)に端末とカードリーダーの電源を入れたままにし、翌朝5:00以降に端末を再起動してください。"
            }
            Self::ManualDownloadNeeded => {
                "配信アプリケーション管理ツールの「配信実績の確認」から「今すぐダウンロード」を実行し、端末を再起動してください。解決しない場合はオンライン資格確認等コールセンター(0800-080-4583)へ。"
            }
            Self::NoVersionReported => {
                "端末のエージェントから顔認証ライブラリの版数が届いていません。エージェントの設定と稼働を確認してください。"
            }
        }
    }

    /// The same instruction in English.
    pub fn instruction_en(self) -> &'static str {
        match self {
            Self::Updated => "Nothing to do.",
            Self::RestartNeeded => {
                "Restart the terminal. Without a restart the next eligibility check fails."
            }
            Self::AwaitingAutoReboot => {
                "The terminal's automatic morning restart will finish the update. If it is not updated by the next business morning, restart it."
            }
            Self::DistributionDisabled => {
                "In the distribution app's management tool, uncheck 「配信機能を無効化する」 (disable distribution)."
            }
            Self::LineAuthDown => {
                "Line authentication is down. Open https://www.lineauth.mnw on the terminal and press 「希望する」 to reconnect."
            }
            Self::DistributionNotStarted => {
                "Distribution has not started. Keep the terminal and the reader on overnight (20:00–05:00) during distribution."
            }
            Self::PoweredOffDuringDistribution => {
                "Keep the terminal and the reader powered on overnight (20:00–05:00) during distribution, then restart the terminal after 05:00."
            }
            Self::ManualDownloadNeeded => {
                "In the management tool open 「配信実績の確認」, run 「今すぐダウンロード」 and restart the terminal. If that fails, call the online eligibility call centre (0800-080-4583)."
            }
            Self::NoVersionReported => {
                "The agent has not reported the face-library version. Check the agent's configuration and that it runs."
            }
        }
    }
}

/// A terminal's state in a campaign and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Assessment {
    pub state: CampaignState,
    pub cause: Cause,
}

impl DistributionWindow {
    /// Whether distribution runs at `t`.
    pub fn contains(&self, t: DateTime<FixedOffset>) -> bool {
        match self {
            Self::Continuous { from, until } => *from <= t && until.is_none_or(|u| t < u),
            Self::Nightly {
                first_night,
                last_night,
                start,
                end,
                except_nights,
            } => {
                let local = t.with_timezone(&jst());
                let (date, time) = (local.date_naive(), local.time());
                let night = if end <= start {
                    // The usual case: 20:00 to 05:00 the next morning.
                    if time >= *start {
                        Some(date)
                    } else if time < *end {
                        date.pred_opt()
                    } else {
                        None
                    }
                } else if time >= *start && time < *end {
                    Some(date)
                } else {
                    None
                };
                night.is_some_and(|n| {
                    n >= *first_night && n <= *last_night && !except_nights.contains(&n)
                })
            }
        }
    }

    /// When this window first opens.
    pub fn first_start(&self) -> Option<DateTime<FixedOffset>> {
        match self {
            Self::Continuous { from, .. } => Some(*from),
            Self::Nightly {
                first_night, start, ..
            } => jst()
                .from_local_datetime(&first_night.and_time(*start))
                .single(),
        }
    }
}

impl Campaign {
    /// The seeded face-library 5.1.0 campaign (seeds 002 and 004).
    pub fn face_library_5_1_0() -> Self {
        let date = |m, d| NaiveDate::from_ymd_opt(2026, m, d).unwrap_or_default();
        let hm = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap_or_default();
        let from = jst()
            .from_local_datetime(&date(1, 31).and_time(hm(0, 0)))
            .single()
            .unwrap_or_default();
        Self {
            id: FACE_LIBRARY_5_1_0.to_owned(),
            component: crate::report::component::FACE_LIBRARY.to_owned(),
            required_version: "5.1.0".to_owned(),
            windows: vec![
                DistributionWindow::Nightly {
                    first_night: date(1, 19),
                    last_night: date(1, 30),
                    start: hm(20, 0),
                    end: hm(5, 0),
                    except_nights: vec![date(1, 25)],
                },
                DistributionWindow::Continuous { from, until: None },
            ],
            deadline: None,
            title_ja: "顔認証ライブラリ 5.1.0".to_owned(),
            title_en: "Face library 5.1.0".to_owned(),
        }
    }

    /// Checks what the type cannot: a parsable required version and a slug id.
    pub fn validate(&self) -> Result<(), String> {
        Version::parse(&self.required_version).map_err(|e| format!("required_version: {e}"))?;
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 64
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !id_ok {
            return Err(format!("id: {:?} is not [a-z0-9.-]{{1,64}}", self.id));
        }
        if self.component.is_empty() {
            return Err("component: must not be empty".to_owned());
        }
        Ok(())
    }

    /// Whether distribution runs at `t` in any window.
    pub fn distributing_at(&self, t: DateTime<FixedOffset>) -> bool {
        self.windows.iter().any(|w| w.contains(t))
    }

    /// When distribution first opens.
    pub fn first_window_start(&self) -> Option<DateTime<FixedOffset>> {
        self.windows
            .iter()
            .filter_map(DistributionWindow::first_start)
            .min()
    }

    /// The campaign state of a terminal and its cause.
    ///
    /// `seen_during_distribution` is whether any report of the terminal was observed
    /// inside a distribution window; `now` decides whether distribution has started.
    pub fn assess(
        &self,
        terminal: &TerminalState,
        seen_during_distribution: bool,
        now: DateTime<FixedOffset>,
    ) -> Assessment {
        let Ok(required) = Version::parse(&self.required_version) else {
            // A campaign is validated before it is stored; a broken one judges nothing.
            return Assessment {
                state: CampaignState::Unknown,
                cause: Cause::NoVersionReported,
            };
        };
        let component = self.component.as_str();
        let running = terminal
            .running(component)
            .and_then(|v| Version::parse(v).ok());
        let downloaded = terminal
            .downloaded(component)
            .and_then(|d| Version::parse(&d.version).ok());
        if running.is_none() && downloaded.is_none() {
            return Assessment {
                state: CampaignState::Unknown,
                cause: Cause::NoVersionReported,
            };
        }
        let reboot_pending = terminal.reboot_pending_for(component);
        let running_new = running.as_ref().is_some_and(|r| *r >= required);
        let downloaded_new = downloaded.as_ref().is_some_and(|d| *d >= required);

        if running_new && !reboot_pending {
            return Assessment {
                state: CampaignState::Updated,
                cause: Cause::Updated,
            };
        }
        if downloaded_new || running_new {
            let auto = terminal.auto_reboot.as_ref().is_some_and(|o| o.value);
            let cause = if auto {
                Cause::AwaitingAutoReboot
            } else {
                Cause::RestartNeeded
            };
            return Assessment {
                state: CampaignState::RebootRequired,
                cause,
            };
        }
        let cause = if terminal
            .distribution_enabled
            .as_ref()
            .is_some_and(|o| !o.value)
        {
            Cause::DistributionDisabled
        } else if terminal
            .line_auth
            .as_ref()
            .is_some_and(|o| o.value != LineAuthState::Connected)
        {
            Cause::LineAuthDown
        } else if self.first_window_start().is_some_and(|start| now < start) {
            Cause::DistributionNotStarted
        } else if !seen_during_distribution {
            Cause::PoweredOffDuringDistribution
        } else {
            Cause::ManualDownloadNeeded
        };
        Assessment {
            state: CampaignState::NotDownloaded,
            cause,
        }
    }
}

/// How long before expiry the official certificate reminders come (seed 004).
pub const CERTIFICATE_REMINDER_DAYS: [i64; 5] = [90, 60, 30, 15, 7];

/// Days left until a certificate expires, rounded down, negative once expired.
pub fn days_until(not_after: DateTime<FixedOffset>, now: DateTime<FixedOffset>) -> i64 {
    let left: Duration = not_after - now;
    left.num_days()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Report;
    use crate::report::tests::CONTRACT_EXAMPLE;
    use proptest::prelude::*;

    fn at(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    fn terminal(edit: impl FnOnce(&mut Report)) -> TerminalState {
        let mut r = Report::parse(CONTRACT_EXAMPLE.as_bytes()).unwrap();
        edit(&mut r);
        TerminalState::from_first(&r)
    }

    fn assess(t: &TerminalState) -> Assessment {
        Campaign::face_library_5_1_0().assess(t, true, at("2026-01-22T10:00:00+09:00"))
    }

    #[test]
    fn windows_follow_the_seeds() {
        let c = Campaign::face_library_5_1_0();
        assert!(!c.distributing_at(at("2026-01-19T19:59:59+09:00")));
        assert!(c.distributing_at(at("2026-01-19T20:00:00+09:00")));
        assert!(c.distributing_at(at("2026-01-20T04:59:00+09:00")));
        assert!(!c.distributing_at(at("2026-01-20T05:00:00+09:00")));
        assert!(!c.distributing_at(at("2026-01-20T12:00:00+09:00")));
        // The night starting Sunday the 25th has no distribution, the 24th's and 26th's do.
        assert!(c.distributing_at(at("2026-01-25T03:00:00+09:00")));
        assert!(!c.distributing_at(at("2026-01-25T22:00:00+09:00")));
        assert!(!c.distributing_at(at("2026-01-26T03:00:00+09:00")));
        assert!(c.distributing_at(at("2026-01-26T21:00:00+09:00")));
        // The same instant written in UTC.
        assert!(c.distributing_at(at("2026-01-19T11:30:00Z")));
        // All day from the 31st.
        assert!(c.distributing_at(at("2026-01-31T12:00:00+09:00")));
        assert!(c.distributing_at(at("2026-03-01T12:00:00+09:00")));
        assert_eq!(
            c.first_window_start(),
            Some(at("2026-01-19T20:00:00+09:00"))
        );
    }

    #[test]
    fn contract_example_is_reboot_required() {
        let t = terminal(|_| {});
        assert_eq!(assess(&t).state, CampaignState::RebootRequired);
        assert_eq!(assess(&t).cause, Cause::RestartNeeded);
    }

    #[test]
    fn auto_reboot_terminals_are_told_to_wait() {
        let t = terminal(|r| r.host.as_mut().unwrap().auto_reboot = Some(true));
        assert_eq!(assess(&t).cause, Cause::AwaitingAutoReboot);
    }

    #[test]
    fn updated_needs_new_version_and_no_pending_reboot() {
        let t = terminal(|r| {
            r.versions
                .as_mut()
                .unwrap()
                .insert("face_library".into(), "5.1.0".into());
            r.reboot = Some(crate::report::Reboot {
                pending: Some(false),
                reason: None,
            });
            r.host.as_mut().unwrap().booted_at = Some(at("2026-01-20T06:00:00+09:00"));
        });
        assert_eq!(assess(&t).state, CampaignState::Updated);
        // Same, but the terminal says a reboot is pending.
        let t = terminal(|r| {
            r.versions
                .as_mut()
                .unwrap()
                .insert("face_library".into(), "5.1".into());
            r.host.as_mut().unwrap().booted_at = Some(at("2026-01-20T06:00:00+09:00"));
        });
        assert_eq!(assess(&t).state, CampaignState::RebootRequired);
    }

    #[test]
    fn booted_before_download_is_reboot_required_even_without_flag() {
        let t = terminal(|r| r.reboot = None);
        assert_eq!(assess(&t).state, CampaignState::RebootRequired);
    }

    #[test]
    fn not_downloaded_causes_in_priority_order() {
        let base = |r: &mut Report| {
            r.distribution.as_mut().unwrap().downloaded = None;
            r.reboot = None;
        };
        let t = terminal(|r| {
            base(r);
            r.distribution.as_mut().unwrap().enabled = Some(false);
        });
        assert_eq!(
            assess(&t),
            Assessment {
                state: CampaignState::NotDownloaded,
                cause: Cause::DistributionDisabled
            }
        );
        let t = terminal(|r| {
            base(r);
            r.line_auth.as_mut().unwrap().state = LineAuthState::Disconnected;
        });
        assert_eq!(assess(&t).cause, Cause::LineAuthDown);
        let t = terminal(base);
        let c = Campaign::face_library_5_1_0();
        assert_eq!(
            c.assess(&t, false, at("2026-01-10T10:00:00+09:00")).cause,
            Cause::DistributionNotStarted
        );
        assert_eq!(
            c.assess(&t, false, at("2026-01-22T10:00:00+09:00")).cause,
            Cause::PoweredOffDuringDistribution
        );
        assert_eq!(
            c.assess(&t, true, at("2026-01-22T10:00:00+09:00")).cause,
            Cause::ManualDownloadNeeded
        );
    }

    #[test]
    fn unknown_when_no_version_was_ever_reported_or_none_parses() {
        let t = terminal(|r| {
            r.versions = None;
            r.distribution = None;
        });
        assert_eq!(assess(&t).state, CampaignState::Unknown);
        let t = terminal(|r| {
            r.versions
                .as_mut()
                .unwrap()
                .insert("face_library".into(), "garbage".into());
            r.distribution = None;
        });
        assert_eq!(assess(&t).state, CampaignState::Unknown);
    }

    #[test]
    fn campaigns_are_data_that_round_trip() {
        let c = Campaign::face_library_5_1_0();
        c.validate().unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Campaign>(&json).unwrap(), c);
        let mut bad = c.clone();
        bad.required_version = "next".into();
        assert!(bad.validate().unwrap_err().starts_with("required_version"));
    }

    fn version_text() -> impl Strategy<Value = String> {
        prop_oneof![
            (4u64..7, 0u64..3, 0u64..15).prop_map(|(a, b, c)| format!("{a}.{b}.{c}")),
            (4u64..7, 0u64..3).prop_map(|(a, b)| format!("{a}.{b}")),
            ".{0,8}",
        ]
    }

    proptest! {
        /// The contract's definition, restated: updated exactly when the running
        /// version parses, is at least 5.1.0, and no reboot is pending.
        #[test]
        fn state_matches_the_contract_definition(
            running in proptest::option::of(version_text()),
            downloaded in proptest::option::of(version_text()),
            pending in proptest::option::of(any::<bool>()),
            boot_hours_after_download in -48i64..48,
            seen in any::<bool>(),
        ) {
            let t = terminal(|r| {
                r.versions = running.clone().map(|v| [("face_library".to_owned(), v)].into());
                let dl_at = at("2026-01-20T02:14:00+09:00");
                r.distribution = Some(crate::report::Distribution {
                    enabled: Some(true),
                    downloaded: downloaded.clone().map(|v| [("face_library".to_owned(), crate::report::Download { version: v, at: Some(dl_at) })].into()),
                });
                r.reboot = pending.map(|p| crate::report::Reboot { pending: Some(p), reason: None });
                r.host.as_mut().unwrap().booted_at = Some(dl_at + Duration::hours(boot_hours_after_download));
            });
            let a = Campaign::face_library_5_1_0().assess(&t, seen, at("2026-01-22T10:00:00+09:00"));
            let req = Version::parse("5.1.0").unwrap();
            let run_v = running.as_deref().and_then(|v| Version::parse(v).ok());
            let dl_v = downloaded.as_deref().and_then(|v| Version::parse(v).ok());
            let updated = run_v.as_ref().is_some_and(|v| *v >= req) && !t.reboot_pending_for("face_library");
            prop_assert_eq!(a.state == CampaignState::Updated, updated);
            prop_assert_eq!(a.state == CampaignState::Unknown, run_v.is_none() && dl_v.is_none());
            if dl_v.as_ref().is_some_and(|v| *v >= req) && !updated {
                prop_assert_eq!(a.state, CampaignState::RebootRequired);
            }
        }
    }
}

#[cfg(test)]
mod documented_example {
    /// The example in docs/campaigns.md, which `fleetd campaign add` is shown with.
    #[test]
    fn the_documented_campaign_parses_and_validates() {
        let text = include_str!("../../../docs/examples/campaign-qualification-app.json");
        let campaign: super::Campaign = serde_json::from_str(text).unwrap();
        campaign.validate().unwrap();
        let t = |s| chrono::DateTime::parse_from_rfc3339(s).unwrap();
        assert!(campaign.distributing_at(t("2026-03-02T21:00:00+09:00")));
        assert!(
            !campaign.distributing_at(t("2026-03-08T21:00:00+09:00")),
            "the excepted night"
        );
        assert!(campaign.distributing_at(t("2026-03-20T12:00:00+09:00")));
    }
}
