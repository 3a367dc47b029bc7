//! The current state of a terminal: the last *observed* value of each field.
//!
//! Contract §2: a newer report that lacks a section or field leaves the earlier
//! observed value in place (for `versions` and `distribution.downloaded`, per
//! component), and the state remembers when each value was observed. Only a report
//! whose `seq` is newer than every applied one may change the state; older ones are
//! kept in the history by the store but never applied here. Reader errors are events
//! and are never part of this state.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clinic::ClinicCode;
use crate::report::{Download, LineAuthState, ReaderMaker, ReaderMode, Report};
use crate::version::Version;

mod stored;

/// A value and the `observed_at` of the report that carried it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Observed<T> {
    pub value: T,
    #[serde(with = "crate::rfc3339")]
    pub at: DateTime<FixedOffset>,
}

/// Everything known about one terminal, merged field by field from its reports.
/// Stored as JSON in the compact form of [`stored`] (`Serialize` is written there).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(from = "stored::StoredState")]
pub struct TerminalState {
    pub terminal_id: Uuid,
    /// The clinic the newest report named.
    pub clinic_code: ClinicCode,
    /// The newest applied `seq`.
    pub last_seq: u64,
    /// `observed_at` of the newest applied report.
    pub last_observed_at: DateTime<FixedOffset>,
    pub agent_version: Option<Observed<String>>,
    pub hostname: Option<Observed<String>>,
    pub os: Option<Observed<String>>,
    pub booted_at: Option<Observed<DateTime<FixedOffset>>>,
    pub auto_reboot: Option<Observed<bool>>,
    /// Running version per component.
    pub versions: BTreeMap<String, Observed<String>>,
    /// `false` when 「配信機能を無効化する」 is checked.
    pub distribution_enabled: Option<Observed<bool>>,
    /// 配信実績 per component.
    pub downloaded: BTreeMap<String, Observed<Download>>,
    pub reboot_pending: Option<Observed<bool>>,
    pub reboot_reason: Option<Observed<String>>,
    /// 回線認証
    pub line_auth: Option<Observed<LineAuthState>>,
    pub reader_maker: Option<Observed<ReaderMaker>>,
    pub reader_model: Option<Observed<String>>,
    pub reader_connected: Option<Observed<bool>>,
    pub reader_via_usb_hub: Option<Observed<bool>>,
    pub reader_mode: Option<Observed<ReaderMode>>,
    pub nfc_model: Option<Observed<String>>,
    pub nfc_firmware: Option<Observed<String>>,
    pub certificate_issuer: Option<Observed<String>>,
    pub certificate_not_after: Option<Observed<DateTime<FixedOffset>>>,
}

/// What applying a report did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The report was newer and its observations are now the state.
    Newer,
    /// The report's `seq` is not newer than the state's: nothing changed.
    Stale,
}

fn set<T: Clone>(slot: &mut Option<Observed<T>>, value: Option<&T>, at: DateTime<FixedOffset>) {
    if let Some(value) = value {
        *slot = Some(Observed {
            value: value.clone(),
            at,
        });
    }
}

impl TerminalState {
    /// The state after a terminal's first report.
    pub fn from_first(report: &Report) -> Self {
        let mut state = Self {
            terminal_id: report.terminal_id,
            clinic_code: report.clinic_code,
            last_seq: report.seq,
            last_observed_at: report.observed_at,
            agent_version: None,
            hostname: None,
            os: None,
            booted_at: None,
            auto_reboot: None,
            versions: BTreeMap::new(),
            distribution_enabled: None,
            downloaded: BTreeMap::new(),
            reboot_pending: None,
            reboot_reason: None,
            line_auth: None,
            reader_maker: None,
            reader_model: None,
            reader_connected: None,
            reader_via_usb_hub: None,
            reader_mode: None,
            nfc_model: None,
            nfc_firmware: None,
            certificate_issuer: None,
            certificate_not_after: None,
        };
        state.merge(report);
        state
    }

    /// Applies a report if it is newer than everything applied so far.
    pub fn apply(&mut self, report: &Report) -> Applied {
        if report.terminal_id != self.terminal_id || report.seq <= self.last_seq {
            return Applied::Stale;
        }
        self.merge(report);
        Applied::Newer
    }

    fn merge(&mut self, r: &Report) {
        let at = r.observed_at;
        self.clinic_code = r.clinic_code;
        self.last_seq = r.seq;
        self.last_observed_at = at;
        set(&mut self.agent_version, r.agent_version.as_ref(), at);
        if let Some(host) = &r.host {
            set(&mut self.hostname, host.hostname.as_ref(), at);
            set(&mut self.os, host.os.as_ref(), at);
            set(&mut self.booted_at, host.booted_at.as_ref(), at);
            set(&mut self.auto_reboot, host.auto_reboot.as_ref(), at);
        }
        for (component, version) in r.versions.iter().flatten() {
            self.versions.insert(
                component.clone(),
                Observed {
                    value: version.clone(),
                    at,
                },
            );
        }
        if let Some(dist) = &r.distribution {
            set(&mut self.distribution_enabled, dist.enabled.as_ref(), at);
            for (component, download) in dist.downloaded.iter().flatten() {
                self.downloaded.insert(
                    component.clone(),
                    Observed {
                        value: download.clone(),
                        at,
                    },
                );
            }
        }
        if let Some(reboot) = &r.reboot {
            set(&mut self.reboot_pending, reboot.pending.as_ref(), at);
            set(&mut self.reboot_reason, reboot.reason.as_ref(), at);
        }
        if let Some(line) = &r.line_auth {
            set(&mut self.line_auth, Some(&line.state), at);
        }
        if let Some(reader) = &r.reader {
            set(&mut self.reader_maker, reader.maker.as_ref(), at);
            set(&mut self.reader_model, reader.model.as_ref(), at);
            set(&mut self.reader_connected, reader.connected.as_ref(), at);
            set(
                &mut self.reader_via_usb_hub,
                reader.via_usb_hub.as_ref(),
                at,
            );
            set(&mut self.reader_mode, reader.mode.as_ref(), at);
        }
        if let Some(nfc) = &r.nfc_reader {
            set(&mut self.nfc_model, nfc.model.as_ref(), at);
            set(&mut self.nfc_firmware, nfc.firmware.as_ref(), at);
        }
        if let Some(cert) = &r.certificate {
            set(&mut self.certificate_issuer, cert.issuer.as_ref(), at);
            set(&mut self.certificate_not_after, cert.not_after.as_ref(), at);
        }
    }

    /// The running version of a component, if observed (its text may not parse).
    pub fn running(&self, component: &str) -> Option<&str> {
        self.versions.get(component).map(|o| o.value.as_str())
    }

    /// The downloaded version of a component per 配信実績, if observed.
    pub fn downloaded(&self, component: &str) -> Option<&Download> {
        self.downloaded.get(component).map(|o| &o.value)
    }

    /// True when the terminal reported `reboot.pending`, or when a download of
    /// `component` newer than the running version arrived after the last boot
    /// (contract §5, `reboot_pending`).
    pub fn reboot_pending_for(&self, component: &str) -> bool {
        if self.reboot_pending.as_ref().is_some_and(|o| o.value) {
            return true;
        }
        self.download_waits_for_restart(component)
    }

    /// A downloaded version that is not yet running: it is newer than the running
    /// one, or it arrived after the last observed boot.
    pub fn download_waits_for_restart(&self, component: &str) -> bool {
        let Some(download) = self.downloaded(component) else {
            return false;
        };
        let Ok(downloaded) = Version::parse(&download.version) else {
            return false;
        };
        let running = self.running(component).and_then(|v| Version::parse(v).ok());
        let newer_than_running = running.as_ref().is_some_and(|r| downloaded > *r);
        let after_boot = match (download.at, self.booted_at.as_ref()) {
            (Some(at), Some(boot)) => boot.value < at,
            _ => false,
        };
        newer_than_running || after_boot
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::CONTRACT_EXAMPLE;

    fn example() -> Report {
        Report::parse(CONTRACT_EXAMPLE.as_bytes()).unwrap()
    }

    fn minimal(seq: u64, observed_at: &str) -> Report {
        let mut r = example();
        r.seq = seq;
        r.observed_at = DateTime::parse_from_rfc3339(observed_at).unwrap();
        r.host = None;
        r.versions = None;
        r.distribution = None;
        r.reboot = None;
        r.line_auth = None;
        r.reader = None;
        r.nfc_reader = None;
        r.certificate = None;
        r.agent_version = None;
        r
    }

    #[test]
    fn absent_sections_keep_earlier_observations_and_their_time() {
        let first = example();
        let mut state = TerminalState::from_first(&first);
        let later = minimal(1043, "2026-01-20T08:00:00+09:00");
        assert_eq!(state.apply(&later), Applied::Newer);
        assert_eq!(state.last_seq, 1043);
        assert_eq!(state.running("face_library"), Some("5.0.3"));
        assert_eq!(state.versions["face_library"].at, first.observed_at);
        assert_eq!(
            state.line_auth.as_ref().unwrap().value,
            LineAuthState::Connected
        );
        assert_eq!(state.last_observed_at, later.observed_at);
    }

    #[test]
    fn versions_merge_per_component() {
        let mut state = TerminalState::from_first(&example());
        let mut later = minimal(1043, "2026-01-21T06:00:00+09:00");
        later.versions = Some([("face_library".to_owned(), "5.1.0".to_owned())].into());
        state.apply(&later);
        assert_eq!(state.running("face_library"), Some("5.1.0"));
        assert_eq!(state.running("qualification_app"), Some("2.4.1"));
        assert_eq!(
            state.versions["qualification_app"].at,
            example().observed_at
        );
    }

    #[test]
    fn stale_or_equal_seq_changes_nothing() {
        let mut state = TerminalState::from_first(&example());
        let before = state.clone();
        let mut old = example();
        old.seq = 1000;
        old.versions = Some([("face_library".to_owned(), "9.9.9".to_owned())].into());
        assert_eq!(state.apply(&old), Applied::Stale);
        old.seq = 1042;
        assert_eq!(state.apply(&old), Applied::Stale);
        assert_eq!(state, before);
    }

    #[test]
    fn reboot_pending_follows_flag_or_download_after_boot() {
        let mut r = example();
        r.reboot = None;
        let state = TerminalState::from_first(&r);
        // 5.1.0 downloaded 2026-01-20 02:14, booted 2026-01-19 08:01, running 5.0.3.
        assert!(state.reboot_pending_for("face_library"));
        let mut rebooted = minimal(1043, "2026-01-20T09:00:00+09:00");
        rebooted.host = Some(crate::report::Host {
            booted_at: Some(DateTime::parse_from_rfc3339("2026-01-20T08:30:00+09:00").unwrap()),
            ..Default::default()
        });
        rebooted.versions = Some([("face_library".to_owned(), "5.1.0".to_owned())].into());
        let mut state = state;
        state.apply(&rebooted);
        assert!(!state.reboot_pending_for("face_library"));
    }

    #[test]
    fn state_round_trips_through_json() {
        let state = TerminalState::from_first(&example());
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<TerminalState>(&json).unwrap(), state);
    }
}
