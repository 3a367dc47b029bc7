//! The stored form of a [`TerminalState`]: JSON, with an observation's time left out
//! when it is the time of the newest report.
//!
//! Why: the store writes a terminal's state for every report it applies and reads it
//! back on every cache miss and page view. Each field remembers when it was observed
//! (contract §2), but almost always that is the newest report's `observed_at`: an
//! agent reports every section every time. Those twenty timestamps were 40% of the
//! text and most of the cost of writing it (docs/BENCHMARKS.md). So an observation
//! is written `{"value":…}` when its time is `last_observed_at` and
//! `{"value":…,"at":…}` otherwise; reading puts the time back. States written before
//! this form (every `at` present) read the same.
//!
//! Both directions name every field: the serialiser destructures the state without
//! `..`, and reading builds it with a struct literal, so a field added to the state
//! does not compile until it is added here.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset};
use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Deserialize, Serialize, Serializer};
use uuid::Uuid;

use super::{Observed, TerminalState};
use crate::clinic::ClinicCode;
use crate::report::{Download, LineAuthState, ReaderMaker, ReaderMode};

type Time = DateTime<FixedOffset>;

/// A timestamp written by [`crate::rfc3339`].
struct At<'a>(&'a Time);

impl Serialize for At<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        crate::rfc3339::serialize(self.0, serializer)
    }
}

/// One observation as written: its time only when it is not the newest report's.
#[derive(Serialize)]
struct Written<'a, V: Serialize> {
    value: V,
    #[serde(skip_serializing_if = "Option::is_none")]
    at: Option<At<'a>>,
}

fn written<'a, V: Serialize>(value: V, at: &'a Time, latest: &Time) -> Written<'a, V> {
    Written {
        value,
        at: (at != latest).then_some(At(at)),
    }
}

/// A map of observations (per component) as written.
struct WrittenMap<'a, T> {
    map: &'a BTreeMap<String, Observed<T>>,
    latest: &'a Time,
}

impl<T: Serialize> Serialize for WrittenMap<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.map.len()))?;
        for (key, o) in self.map {
            map.serialize_entry(key, &written(&o.value, &o.at, self.latest))?;
        }
        map.end()
    }
}

fn field<S: SerializeStruct, T: Serialize>(
    s: &mut S,
    name: &'static str,
    o: &Option<Observed<T>>,
    latest: &Time,
) -> Result<(), S::Error> {
    match o {
        Some(o) => s.serialize_field(name, &written(&o.value, &o.at, latest)),
        None => s.skip_field(name),
    }
}

fn time_field<S: SerializeStruct>(
    s: &mut S,
    name: &'static str,
    o: &Option<Observed<Time>>,
    latest: &Time,
) -> Result<(), S::Error> {
    match o {
        Some(o) => s.serialize_field(name, &written(At(&o.value), &o.at, latest)),
        None => s.skip_field(name),
    }
}

fn map_field<S: SerializeStruct, T: Serialize>(
    s: &mut S,
    name: &'static str,
    map: &BTreeMap<String, Observed<T>>,
    latest: &Time,
) -> Result<(), S::Error> {
    if map.is_empty() {
        s.skip_field(name)
    } else {
        s.serialize_field(name, &WrittenMap { map, latest })
    }
}

impl Serialize for TerminalState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let TerminalState {
            terminal_id,
            clinic_code,
            last_seq,
            last_observed_at,
            agent_version,
            hostname,
            os,
            booted_at,
            auto_reboot,
            versions,
            distribution_enabled,
            downloaded,
            reboot_pending,
            reboot_reason,
            line_auth,
            reader_maker,
            reader_model,
            reader_connected,
            reader_via_usb_hub,
            reader_mode,
            nfc_model,
            nfc_firmware,
            certificate_issuer,
            certificate_not_after,
        } = self;
        let latest = last_observed_at;
        let mut s = serializer.serialize_struct("TerminalState", 24)?;
        s.serialize_field("terminal_id", terminal_id)?;
        s.serialize_field("clinic_code", clinic_code)?;
        s.serialize_field("last_seq", last_seq)?;
        s.serialize_field("last_observed_at", &At(last_observed_at))?;
        field(&mut s, "agent_version", agent_version, latest)?;
        field(&mut s, "hostname", hostname, latest)?;
        field(&mut s, "os", os, latest)?;
        time_field(&mut s, "booted_at", booted_at, latest)?;
        field(&mut s, "auto_reboot", auto_reboot, latest)?;
        map_field(&mut s, "versions", versions, latest)?;
        field(&mut s, "distribution_enabled", distribution_enabled, latest)?;
        map_field(&mut s, "downloaded", downloaded, latest)?;
        field(&mut s, "reboot_pending", reboot_pending, latest)?;
        field(&mut s, "reboot_reason", reboot_reason, latest)?;
        field(&mut s, "line_auth", line_auth, latest)?;
        field(&mut s, "reader_maker", reader_maker, latest)?;
        field(&mut s, "reader_model", reader_model, latest)?;
        field(&mut s, "reader_connected", reader_connected, latest)?;
        field(&mut s, "reader_via_usb_hub", reader_via_usb_hub, latest)?;
        field(&mut s, "reader_mode", reader_mode, latest)?;
        field(&mut s, "nfc_model", nfc_model, latest)?;
        field(&mut s, "nfc_firmware", nfc_firmware, latest)?;
        field(&mut s, "certificate_issuer", certificate_issuer, latest)?;
        time_field(
            &mut s,
            "certificate_not_after",
            certificate_not_after,
            latest,
        )?;
        s.end()
    }
}

/// An observation as read: no `at` means the newest report's time.
#[derive(Deserialize)]
struct Read<T> {
    value: T,
    #[serde(default, with = "crate::rfc3339::option")]
    at: Option<Time>,
}

/// A timestamp observation as read.
#[derive(Deserialize)]
struct ReadTime {
    #[serde(with = "crate::rfc3339")]
    value: Time,
    #[serde(default, with = "crate::rfc3339::option")]
    at: Option<Time>,
}

/// The state as stored, before the missing times are put back.
#[derive(Deserialize)]
pub(super) struct StoredState {
    terminal_id: Uuid,
    clinic_code: ClinicCode,
    last_seq: u64,
    #[serde(with = "crate::rfc3339")]
    last_observed_at: Time,
    #[serde(default)]
    agent_version: Option<Read<String>>,
    #[serde(default)]
    hostname: Option<Read<String>>,
    #[serde(default)]
    os: Option<Read<String>>,
    #[serde(default)]
    booted_at: Option<ReadTime>,
    #[serde(default)]
    auto_reboot: Option<Read<bool>>,
    #[serde(default)]
    versions: BTreeMap<String, Read<String>>,
    #[serde(default)]
    distribution_enabled: Option<Read<bool>>,
    #[serde(default)]
    downloaded: BTreeMap<String, Read<Download>>,
    #[serde(default)]
    reboot_pending: Option<Read<bool>>,
    #[serde(default)]
    reboot_reason: Option<Read<String>>,
    #[serde(default)]
    line_auth: Option<Read<LineAuthState>>,
    #[serde(default)]
    reader_maker: Option<Read<ReaderMaker>>,
    #[serde(default)]
    reader_model: Option<Read<String>>,
    #[serde(default)]
    reader_connected: Option<Read<bool>>,
    #[serde(default)]
    reader_via_usb_hub: Option<Read<bool>>,
    #[serde(default)]
    reader_mode: Option<Read<ReaderMode>>,
    #[serde(default)]
    nfc_model: Option<Read<String>>,
    #[serde(default)]
    nfc_firmware: Option<Read<String>>,
    #[serde(default)]
    certificate_issuer: Option<Read<String>>,
    #[serde(default)]
    certificate_not_after: Option<ReadTime>,
}

fn one<T>(o: Option<Read<T>>, latest: Time) -> Option<Observed<T>> {
    o.map(|r| Observed {
        value: r.value,
        at: r.at.unwrap_or(latest),
    })
}

fn time(o: Option<ReadTime>, latest: Time) -> Option<Observed<Time>> {
    o.map(|r| Observed {
        value: r.value,
        at: r.at.unwrap_or(latest),
    })
}

fn all<T>(map: BTreeMap<String, Read<T>>, latest: Time) -> BTreeMap<String, Observed<T>> {
    map.into_iter()
        .map(|(component, r)| {
            let at = r.at.unwrap_or(latest);
            (component, Observed { value: r.value, at })
        })
        .collect()
}

impl From<StoredState> for TerminalState {
    fn from(s: StoredState) -> Self {
        let latest = s.last_observed_at;
        TerminalState {
            terminal_id: s.terminal_id,
            clinic_code: s.clinic_code,
            last_seq: s.last_seq,
            last_observed_at: latest,
            agent_version: one(s.agent_version, latest),
            hostname: one(s.hostname, latest),
            os: one(s.os, latest),
            booted_at: time(s.booted_at, latest),
            auto_reboot: one(s.auto_reboot, latest),
            versions: all(s.versions, latest),
            distribution_enabled: one(s.distribution_enabled, latest),
            downloaded: all(s.downloaded, latest),
            reboot_pending: one(s.reboot_pending, latest),
            reboot_reason: one(s.reboot_reason, latest),
            line_auth: one(s.line_auth, latest),
            reader_maker: one(s.reader_maker, latest),
            reader_model: one(s.reader_model, latest),
            reader_connected: one(s.reader_connected, latest),
            reader_via_usb_hub: one(s.reader_via_usb_hub, latest),
            reader_mode: one(s.reader_mode, latest),
            nfc_model: one(s.nfc_model, latest),
            nfc_firmware: one(s.nfc_firmware, latest),
            certificate_issuer: one(s.certificate_issuer, latest),
            certificate_not_after: time(s.certificate_not_after, latest),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::TerminalState;
    use crate::report::Report;
    use crate::report::tests::CONTRACT_EXAMPLE;

    fn state() -> TerminalState {
        TerminalState::from_first(&Report::parse(CONTRACT_EXAMPLE.as_bytes()).unwrap())
    }

    /// Observations of the newest report are written without their time; older
    /// ones keep it; both read back to the same state.
    #[test]
    fn only_older_observations_carry_their_time() {
        let fresh = state();
        let json = serde_json::to_string(&fresh).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["hostname"], serde_json::json!({ "value": "ONS-PC01" }));
        assert_eq!(
            v["booted_at"],
            serde_json::json!({ "value": "2026-01-19T08:01:10+09:00" })
        );
        assert_eq!(
            v["versions"]["face_library"],
            serde_json::json!({ "value": "5.0.3" })
        );
        // The download's own time is part of its value.
        assert_eq!(
            v["downloaded"]["face_library"]["value"]["at"],
            "2026-01-20T02:14:00+09:00"
        );
        assert_eq!(serde_json::from_str::<TerminalState>(&json).unwrap(), fresh);

        // A later report with only its versions: the rest keeps the earlier time.
        let mut later = Report::parse(CONTRACT_EXAMPLE.as_bytes()).unwrap();
        later.seq += 1;
        later.observed_at += chrono::Duration::hours(1);
        later.host = None;
        later.reader = None;
        later.versions = Some([("face_library".to_owned(), "5.1.0".to_owned())].into());
        let mut moved = fresh.clone();
        moved.apply(&later);
        let json = serde_json::to_string(&moved).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["hostname"]["at"], "2026-01-20T07:12:00+09:00");
        assert!(v["versions"]["face_library"].get("at").is_none(), "{v}");
        assert_eq!(
            v["versions"]["qualification_app"]["at"],
            "2026-01-20T07:12:00+09:00"
        );
        let back: TerminalState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, moved);
        assert_eq!(back.hostname.unwrap().at, fresh.last_observed_at);
    }

    /// A state stored before the compact form, with every time written out (as
    /// chrono wrote it), reads as it was.
    #[test]
    fn states_stored_with_every_time_read_the_same() {
        let old = r#"{"terminal_id":"0f8c2b1e-6c5d-4a57-9a3e-2b7f0c1d9e11","clinic_code":"2712345678",
            "last_seq":1043,"last_observed_at":"2026-01-20T08:12:00+09:00",
            "hostname":{"value":"ONS-PC01","at":"2026-01-20T07:12:00+09:00"},
            "booted_at":{"value":"2026-01-19T08:01:10+09:00","at":"2026-01-20T08:12:00+09:00"},
            "versions":{"face_library":{"value":"5.1.0","at":"2026-01-20T08:12:00+09:00"}},
            "downloaded":{"face_library":{"value":{"version":"5.1.0","at":"2026-01-20T02:14:00+09:00"},"at":"2026-01-20T08:12:00+09:00"}},
            "line_auth":{"value":"connected","at":"2026-01-20T07:12:00+09:00"}}"#;
        let state: TerminalState = serde_json::from_str(old).unwrap();
        let at = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap();
        assert_eq!(state.last_seq, 1043);
        assert_eq!(
            state.hostname.as_ref().unwrap().at,
            at("2026-01-20T07:12:00+09:00")
        );
        assert_eq!(
            state.booted_at.as_ref().unwrap().value,
            at("2026-01-19T08:01:10+09:00")
        );
        assert_eq!(state.versions["face_library"].at, state.last_observed_at);
        assert_eq!(state.downloaded("face_library").unwrap().version, "5.1.0");
        let rewritten: TerminalState =
            serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
        assert_eq!(rewritten, state);
    }

    #[test]
    fn the_compact_form_is_smaller() {
        let s = state();
        let compact = serde_json::to_string(&s).unwrap().len();
        let full: usize = {
            // Every observation with its time, as before.
            let v = serde_json::to_value(&s).unwrap();
            let mut full = 0;
            fn add_times(v: &mut serde_json::Value, at: &serde_json::Value) {
                if let Some(map) = v.as_object_mut() {
                    if map.contains_key("value") && !map.contains_key("at") {
                        map.insert("at".to_owned(), at.clone());
                    } else {
                        for child in map.values_mut() {
                            add_times(child, at);
                        }
                    }
                }
            }
            let mut v = v;
            let at = v["last_observed_at"].clone();
            add_times(&mut v, &at);
            full += serde_json::to_string(&v).unwrap().len();
            full
        };
        assert!(
            compact * 10 < full * 7,
            "compact {compact} bytes, full {full}"
        );
    }
}
