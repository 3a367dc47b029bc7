//! Report v1: the body of one AMQP message, one snapshot of one terminal (contract §2).
//!
//! Parsing turns bytes into a [`Report`] or a [`ReportError`] that names a short
//! machine-readable reason (it becomes the `x-fleet-reject-reason` header of the dead
//! letter) and the field at fault. Every optional section is an `Option`: absent means
//! "not observed", never "false" or "zero". Unknown fields are ignored, as the contract
//! allows additive fields.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clinic::ClinicCode;
use crate::reject::RejectReason;

/// The only schema name this version accepts.
pub const SCHEMA_V1: &str = "fleet.report.v1";
/// The largest body the service accepts (64 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Component names the contract knows; others are allowed in `versions`.
pub mod component {
    /// 顔認証ライブラリ
    pub const FACE_LIBRARY: &str = "face_library";
    /// 資格確認端末アプリ
    pub const QUALIFICATION_APP: &str = "qualification_app";
    /// 配信アプリケーション
    pub const DISTRIBUTION_APP: &str = "distribution_app";
    /// the face-auth card reader's firmware
    pub const READER_FIRMWARE: &str = "reader_firmware";
}

/// One snapshot of one terminal and what happened on it since its previous report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Always [`SCHEMA_V1`].
    pub schema: String,
    /// Fixed at enrollment.
    pub terminal_id: Uuid,
    /// Strictly increasing per terminal, never reused.
    pub seq: u64,
    /// When the snapshot was taken on the terminal.
    #[serde(with = "crate::rfc3339")]
    pub observed_at: DateTime<FixedOffset>,
    /// 医療機関等コード of the clinic the terminal stands in.
    pub clinic_code: ClinicCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<Host>,
    /// Installed **and running** version per component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<Distribution>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reboot: Option<Reboot>,
    /// 回線認証
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_auth: Option<LineAuth>,
    /// The face-auth card reader (顔認証付きカードリーダー).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reader: Option<Reader>,
    /// The general-purpose NFC reader for smartphone マイナ保険証.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nfc_reader: Option<NfcReader>,
    /// The terminal's 電子証明書.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Certificate>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Host {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// Last OS boot.
    #[serde(
        default,
        with = "crate::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub booted_at: Option<DateTime<FixedOffset>>,
    /// The terminal restarts itself every morning before clinic hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_reboot: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    /// `false` when 「配信機能を無効化する」 is checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// What 配信実績 shows as downloaded, per component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downloaded: Option<BTreeMap<String, Download>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Download {
    pub version: String,
    #[serde(
        default,
        with = "crate::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub at: Option<DateTime<FixedOffset>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Reboot {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LineAuth {
    pub state: LineAuthState,
    #[serde(
        default,
        with = "crate::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub checked_at: Option<DateTime<FixedOffset>>,
}

/// 回線認証 (line authentication) state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineAuthState {
    /// 「回線認証接続済み」
    Connected,
    /// The page offers 「希望する」/「希望しない」.
    Disconnected,
    /// The check page could not be reached.
    Unreachable,
}

impl LineAuthState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::Disconnected => "disconnected",
            Self::Unreachable => "unreachable",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Reader {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maker: Option<ReaderMaker>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected: Option<bool>,
    /// The reader must be plugged in directly, never through a hub (seed 004).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via_usb_hub: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ReaderMode>,
    /// Errors since the previous report: events, never merged into state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<ReaderError>>,
}

/// Makers of face-auth card readers (domain.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReaderMaker {
    /// 富士通 Caora
    Fujitsu,
    /// パナソニック
    Panasonic,
    /// アトラス (MATSUMURA) EXC-9000
    Atlas,
    /// アルメックス Sma-pa マイナタッチ
    Almex,
    /// キヤノン Hi-CARA
    Canon,
    Other,
}

impl ReaderMaker {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fujitsu => "fujitsu",
            Self::Panasonic => "panasonic",
            Self::Atlas => "atlas",
            Self::Almex => "almex",
            Self::Canon => "canon",
            Self::Other => "other",
        }
    }
}

/// 無人運転モード or 目視確認モード.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReaderMode {
    /// 無人運転モード
    Unattended,
    /// 目視確認モード (staff check the face visually)
    Visual,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReaderError {
    /// The maker's code, e.g. `FUJP55`, `011`, `906`.
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// First time seen since the previous report.
    #[serde(with = "crate::rfc3339")]
    pub at: DateTime<FixedOffset>,
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NfcReader {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Certificate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(
        default,
        with = "crate::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub not_after: Option<DateTime<FixedOffset>>,
}

/// Why a message body is not a valid report v1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("body is {0} bytes, more than the 64 KiB limit")]
    TooLarge(usize),
    #[error("not valid JSON: {0}")]
    InvalidJson(String),
    #[error("missing required field {0}")]
    MissingField(String),
    #[error("field {field}: {reason}")]
    InvalidField { field: String, reason: String },
    #[error("schema {0:?} is not fleet.report.v1")]
    UnsupportedSchema(String),
}

impl ReportError {
    /// The short, machine-readable reason for the dead-letter header.
    pub fn reason(&self) -> &'static str {
        self.reject_reason().as_str()
    }

    /// Why the message is refused, typed.
    pub fn reject_reason(&self) -> RejectReason {
        match self {
            Self::TooLarge(_) => RejectReason::BodyTooLarge,
            Self::InvalidJson(_) => RejectReason::InvalidJson,
            Self::MissingField(_) => RejectReason::MissingField,
            Self::InvalidField { .. } => RejectReason::InvalidField,
            Self::UnsupportedSchema(_) => RejectReason::UnsupportedSchema,
        }
    }
}

impl Report {
    /// Parses a message body. Never panics, whatever the bytes.
    pub fn parse(body: &[u8]) -> Result<Self, ReportError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(ReportError::TooLarge(body.len()));
        }
        // JSON is UTF-8 (RFC 8259). Checked here for the whole body, because the
        // parser does not look inside the unknown fields it skips; once checked, the
        // parser need not check each string again.
        let text = std::str::from_utf8(body)
            .map_err(|e| ReportError::InvalidJson(format!("the body is not UTF-8: {e}")))?;
        // Almost every body is a good report: parse it without tracking the path,
        // which costs two fifths of the parse, and go back over a body that fails
        // with the tracking on, to name the field at fault. Both read the same
        // grammar, so the slower pass fails wherever this one did.
        let mut de = serde_json::Deserializer::from_str(text);
        let report = match Report::deserialize(&mut de).and_then(|r| de.end().map(|()| r)) {
            Ok(report) => report,
            Err(_) => return Err(Self::explain(text)),
        };
        if report.schema != SCHEMA_V1 {
            return Err(ReportError::UnsupportedSchema(report.schema));
        }
        Ok(report)
    }

    /// Why a body that failed to parse is not a report, naming the field at fault.
    fn explain(body: &str) -> ReportError {
        let mut de = serde_json::Deserializer::from_str(body);
        if let Err(err) = serde_path_to_error::deserialize::<_, Report>(&mut de) {
            return classify(err);
        }
        // Trailing bytes after the object are malformed JSON too.
        match de.end() {
            Err(err) => ReportError::InvalidJson(err.to_string()),
            Ok(()) => ReportError::InvalidJson("the body does not parse".to_owned()),
        }
    }

    /// The idempotency key: `<terminal_id>/<seq>`.
    pub fn message_id(&self) -> String {
        format!("{}/{}", self.terminal_id, self.seq)
    }

    /// Serialises the report as its JSON body.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising these plain types cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

fn classify(err: serde_path_to_error::Error<serde_json::Error>) -> ReportError {
    use serde_json::error::Category;
    let path = err.path().to_string();
    let inner = err.into_inner();
    match inner.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ReportError::InvalidJson(inner.to_string())
        }
        Category::Data => {
            let message = strip_position(&inner.to_string());
            if let Some(rest) = message.strip_prefix("missing field `") {
                let name = rest.split('`').next().unwrap_or_default();
                let field = if path == "." {
                    name.to_owned()
                } else {
                    format!("{path}.{name}")
                };
                ReportError::MissingField(field)
            } else {
                let field = if path == "." {
                    "(body)".to_owned()
                } else {
                    path
                };
                ReportError::InvalidField {
                    field,
                    reason: message,
                }
            }
        }
    }
}

/// serde_json appends " at line 1 column 42"; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const CONTRACT_EXAMPLE: &str = r#"{
      "schema": "fleet.report.v1",
      "terminal_id": "0f8c2b1e-6c5d-4a57-9a3e-2b7f0c1d9e11",
      "seq": 1042,
      "observed_at": "2026-01-20T07:12:00+09:00",
      "clinic_code": "2712345678",
      "agent_version": "0.3.1",
      "host": { "hostname": "ONS-PC01", "os": "Windows 11 IoT Enterprise LTSC 2024",
                "booted_at": "2026-01-19T08:01:10+09:00", "auto_reboot": false },
      "versions": { "face_library": "5.0.3", "qualification_app": "2.4.1",
                    "distribution_app": "1.8.0", "reader_firmware": "3.2.0" },
      "distribution": { "enabled": true,
        "downloaded": { "face_library": { "version": "5.1.0", "at": "2026-01-20T02:14:00+09:00" } } },
      "reboot": { "pending": true, "reason": "update_downloaded" },
      "line_auth": { "state": "connected", "checked_at": "2026-01-20T07:11:58+09:00" },
      "reader": { "maker": "fujitsu", "model": "Caora", "connected": true, "via_usb_hub": false,
        "mode": "unattended",
        "errors": [ { "code": "FUJP55", "message": "タイムアウト", "at": "2026-01-20T07:03:12+09:00", "count": 2 } ] },
      "nfc_reader": { "model": "RC-S300/S1", "firmware": "1.0.0" },
      "certificate": { "issuer": "Online Billing NW Common RootCA", "not_after": "2028-04-30T23:59:59+09:00" }
    }"#;

    fn with(field: &str, value: serde_json::Value) -> Vec<u8> {
        let mut v: serde_json::Value = serde_json::from_str(CONTRACT_EXAMPLE).unwrap();
        v[field] = value;
        serde_json::to_vec(&v).unwrap()
    }

    fn without(field: &str) -> Vec<u8> {
        let mut v: serde_json::Value = serde_json::from_str(CONTRACT_EXAMPLE).unwrap();
        v.as_object_mut().unwrap().remove(field);
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn parses_the_contract_example() {
        let r = Report::parse(CONTRACT_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(r.seq, 1042);
        assert_eq!(r.message_id(), "0f8c2b1e-6c5d-4a57-9a3e-2b7f0c1d9e11/1042");
        assert_eq!(r.versions.as_ref().unwrap()["face_library"], "5.0.3");
        let errors = r.reader.as_ref().unwrap().errors.as_ref().unwrap();
        assert_eq!(errors[0].code, "FUJP55");
        assert_eq!(errors[0].count, 2);
        assert_eq!(
            r.line_auth.as_ref().unwrap().state,
            LineAuthState::Connected
        );
        // Round trip through our own serialisation.
        assert_eq!(Report::parse(&r.to_json()).unwrap(), r);
    }

    #[test]
    fn minimal_report_has_every_section_unobserved() {
        let body =
            br#"{"schema":"fleet.report.v1","terminal_id":"0f8c2b1e-6c5d-4a57-9a3e-2b7f0c1d9e11",
            "seq":0,"observed_at":"2026-01-20T07:12:00Z","clinic_code":"0141234567"}"#;
        let r = Report::parse(body).unwrap();
        assert!(r.host.is_none() && r.versions.is_none() && r.reader.is_none());
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let r = Report::parse(&with("future_section", serde_json::json!({"x": 1}))).unwrap();
        assert_eq!(r.seq, 1042);
    }

    #[test]
    fn each_required_field_is_named_when_missing() {
        for field in ["schema", "terminal_id", "seq", "observed_at", "clinic_code"] {
            let err = Report::parse(&without(field)).unwrap_err();
            assert_eq!(err, ReportError::MissingField(field.to_owned()));
            assert_eq!(err.reason(), "missing_field");
        }
    }

    #[test]
    fn malformed_values_name_the_field() {
        let cases = [
            (
                "clinic_code",
                serde_json::json!("4812345678"),
                "clinic_code",
            ),
            (
                "clinic_code",
                serde_json::json!(2712345678u64),
                "clinic_code",
            ),
            ("seq", serde_json::json!(-1), "seq"),
            (
                "terminal_id",
                serde_json::json!("not-a-uuid"),
                "terminal_id",
            ),
            (
                "observed_at",
                serde_json::json!("2026-01-20 07:12"),
                "observed_at",
            ),
            (
                "line_auth",
                serde_json::json!({"state": "maybe"}),
                "line_auth.state",
            ),
            (
                "versions",
                serde_json::json!({"face_library": 5}),
                "versions.face_library",
            ),
        ];
        for (field, value, path) in cases {
            match Report::parse(&with(field, value)).unwrap_err() {
                ReportError::InvalidField { field, .. } => assert_eq!(field, path),
                other => panic!("{path}: {other:?}"),
            }
        }
    }

    #[test]
    fn nested_missing_field_has_its_path() {
        let err = Report::parse(&with(
            "line_auth",
            serde_json::json!({"checked_at": "2026-01-20T07:11:58+09:00"}),
        ))
        .unwrap_err();
        assert_eq!(err, ReportError::MissingField("line_auth.state".into()));
    }

    #[test]
    fn other_rejections() {
        assert_eq!(
            Report::parse(b"{not json").unwrap_err().reason(),
            "invalid_json"
        );
        assert_eq!(Report::parse(b"").unwrap_err().reason(), "invalid_json");
        assert_eq!(
            Report::parse(&[CONTRACT_EXAMPLE.as_bytes(), b"x"].concat())
                .unwrap_err()
                .reason(),
            "invalid_json"
        );
        assert_eq!(
            Report::parse(&with("schema", "fleet.report.v2".into()))
                .unwrap_err()
                .reason(),
            "unsupported_schema"
        );
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(
            Report::parse(&big).unwrap_err(),
            ReportError::TooLarge(MAX_BODY_BYTES + 1)
        );
        assert_eq!(Report::parse(b"[]").unwrap_err().reason(), "invalid_field");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = Report::parse(&bytes);
        }
    }
}
