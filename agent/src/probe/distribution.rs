//! The distribution tool: what 配信実績 shows as downloaded, and whether
//! 「配信機能を無効化する」 is checked.
//!
//! Where the 配信アプリケーション管理ツール keeps these on disk is not known yet, so the
//! agent reads a small text export whose format is ours (a later issue maps the real
//! source onto it). The format, an INI-like text:
//!
//! ```text
//! ; comments start with ';' or '#'
//! [settings]                      ; or [設定]
//! 配信機能を無効化する = no        ; or disable_distribution; or enabled / distribution_enabled
//!
//! [downloaded]                    ; or [配信実績]
//! 顔認証ライブラリ = 5.1.0 @ 2026-01-20 02:14:00
//! face_library     = 5.1.0, 2026/01/20 02:14
//! ```
//!
//! - Encoding as in [`super::text`]: BOMs, CRLF and full-width forms are fine.
//! - A flag is true for `yes`, `true`, `on`, `1`, `checked`, `はい`, `する`, `✓`,
//!   `☑`, `■`, and false for `no`, `false`, `off`, `0`, `unchecked`, `いいえ`,
//!   `しない`, `☐`, `□`; anything else leaves `enabled` not observed.
//! - A download line is `<component label> = <version> [separator] [time]`. The label
//!   is a wire name (`[a-z0-9_]+`) or a Japanese label from [`ComponentLabels`]
//!   (built-ins plus `distribution.component_labels` in the settings). The version is
//!   the first dotted version in the value; the time, optional, is what follows it
//!   (after `@`, `,`, `、`, `|` or spaces), as RFC 3339 or a local time in the
//!   configured offset.
//! - When a component appears twice (a history), the entry with the latest time wins;
//!   entries without a time lose to timed ones, and among them the last line wins.
//! - Lines in unknown sections, unknown labels and lines without a version are
//!   skipped and reported back, never fatal: the rest of the record still counts.

use std::collections::BTreeMap;

use chrono::FixedOffset;
use fleet_protocol::report::{Distribution, Download, component};

use super::text::{decode, find_dotted_version, parse_timestamp, read_small, split_key_value};
use crate::config::DistributionSettings;

/// Japanese labels the distribution tool is expected to print, mapped to wire names.
/// 連携アプリケーション → `qualification_app` is an inference (L); override it in the
/// settings if a terminal shows otherwise.
const BUILT_IN_LABELS: [(&str, &str); 6] = [
    ("顔認証ライブラリ", component::FACE_LIBRARY),
    ("資格確認端末アプリ", component::QUALIFICATION_APP),
    ("資格確認端末アプリケーション", component::QUALIFICATION_APP),
    ("連携アプリケーション", component::QUALIFICATION_APP),
    ("配信アプリケーション", component::DISTRIBUTION_APP),
    ("配信アプリ", component::DISTRIBUTION_APP),
];

const DISABLE_KEYS: [&str; 2] = ["配信機能を無効化する", "disable_distribution"];
const ENABLE_KEYS: [&str; 2] = ["enabled", "distribution_enabled"];

/// Label → wire component name.
#[derive(Debug, Clone)]
pub struct ComponentLabels(BTreeMap<String, String>);

impl Default for ComponentLabels {
    fn default() -> Self {
        Self(
            BUILT_IN_LABELS
                .iter()
                .map(|(label, name)| (normalize_key(label), (*name).to_owned()))
                .collect(),
        )
    }
}

impl ComponentLabels {
    /// The built-ins, overridden and extended by `extra`.
    pub fn with(extra: &BTreeMap<String, String>) -> Self {
        let mut labels = Self::default();
        for (label, name) in extra {
            labels.0.insert(normalize_key(label), name.clone());
        }
        labels
    }

    fn resolve(&self, key: &str) -> Option<String> {
        if let Some(name) = self.0.get(key) {
            return Some(name.clone());
        }
        let plain = !key.is_empty()
            && key.len() <= 64
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        plain.then(|| key.to_owned())
    }
}

/// What one record says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DistributionRecord {
    /// `false` when 「配信機能を無効化する」 is checked.
    pub enabled: Option<bool>,
    pub downloaded: BTreeMap<String, Download>,
}

impl DistributionRecord {
    /// The wire section; `None` when the record said nothing usable.
    pub fn into_wire(self) -> Option<Distribution> {
        if self.enabled.is_none() && self.downloaded.is_empty() {
            return None;
        }
        Some(Distribution {
            enabled: self.enabled,
            downloaded: (!self.downloaded.is_empty()).then_some(self.downloaded),
        })
    }
}

/// A parsed record and the lines that were skipped, with why (for the log).
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    pub record: DistributionRecord,
    pub skipped: Vec<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Section {
    Top,
    Settings,
    Downloaded,
    Unknown,
}

/// Parses the text of a record. Never fails: what cannot be read is skipped.
pub fn parse_record(bytes: &[u8], labels: &ComponentLabels, offset: FixedOffset) -> Parsed {
    let text = decode(bytes);
    let mut parsed = Parsed::default();
    let mut section = Section::Top;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
        {
            section = match normalize_key(name).as_str() {
                "settings" | "設定" => Section::Settings,
                "downloaded" | "配信実績" => Section::Downloaded,
                _ => {
                    parsed.skipped.push(format!(
                        "line {number}: unknown section [{name}], its lines are skipped"
                    ));
                    Section::Unknown
                }
            };
            continue;
        }
        if section == Section::Unknown {
            continue;
        }
        let Some((key, value)) = split_key_value(line) else {
            parsed
                .skipped
                .push(format!("line {number}: not `key = value`"));
            continue;
        };
        let key = normalize_key(key);
        if DISABLE_KEYS.contains(&key.as_str()) || ENABLE_KEYS.contains(&key.as_str()) {
            match parse_flag(value) {
                Some(flag) if DISABLE_KEYS.contains(&key.as_str()) => {
                    parsed.record.enabled = Some(!flag)
                }
                Some(flag) => parsed.record.enabled = Some(flag),
                None => parsed
                    .skipped
                    .push(format!("line {number}: {value:?} is not a yes/no value")),
            }
            continue;
        }
        if section == Section::Settings {
            parsed
                .skipped
                .push(format!("line {number}: unknown setting {key:?}"));
            continue;
        }
        let Some(name) = labels.resolve(&key) else {
            parsed
                .skipped
                .push(format!("line {number}: unknown component label {key:?}"));
            continue;
        };
        let Some((version, end)) = find_dotted_version(value) else {
            parsed
                .skipped
                .push(format!("line {number}: no version for {name}"));
            continue;
        };
        let rest = value[end..].trim_matches(|c: char| c.is_whitespace() || "@,、|".contains(c));
        let at = if rest.is_empty() {
            None
        } else {
            let at = parse_timestamp(rest, offset);
            if at.is_none() {
                parsed.skipped.push(format!(
                    "line {number}: time {rest:?} not understood, kept without a time"
                ));
            }
            at
        };
        let download = Download {
            version: version.to_owned(),
            at,
        };
        let replace = match parsed.record.downloaded.get(&name) {
            None => true,
            Some(existing) => match (existing.at, download.at) {
                (Some(old), Some(new)) => new >= old,
                (Some(_), None) => false,
                (None, _) => true,
            },
        };
        if replace {
            parsed.record.downloaded.insert(name, download);
        }
    }
    parsed
}

/// Reads the configured record; `None` (logged) when it is missing or says nothing.
pub fn probe(settings: &DistributionSettings, offset: FixedOffset) -> Option<Distribution> {
    let bytes = match read_small(&settings.record_file) {
        Ok(bytes) => bytes,
        Err(reason) => {
            tracing::warn!(%reason, "distribution not observed");
            return None;
        }
    };
    let labels = ComponentLabels::with(&settings.component_labels);
    let parsed = parse_record(&bytes, &labels, offset);
    for line in &parsed.skipped {
        tracing::info!(file = %settings.record_file.display(), "distribution record: {line}");
    }
    let wire = parsed.record.into_wire();
    if wire.is_none() {
        tracing::warn!(file = %settings.record_file.display(), "distribution not observed: the record says nothing usable");
    }
    wire
}

fn strip_comment(line: &str) -> &str {
    match line.find([';', '#']) {
        Some(at) => &line[..at],
        None => line,
    }
}

/// Lower-case ASCII, surrounding quotes and 「」 removed.
fn normalize_key(key: &str) -> String {
    key.trim()
        .trim_matches(|c| matches!(c, '"' | '\'' | '「' | '」'))
        .trim()
        .to_lowercase()
}

fn parse_flag(value: &str) -> Option<bool> {
    let value = value.trim().trim_matches('"').to_lowercase();
    match value.as_str() {
        "yes" | "true" | "on" | "1" | "checked" | "はい" | "する" | "✓" | "☑" | "■" => {
            Some(true)
        }
        "no" | "false" | "off" | "0" | "unchecked" | "いいえ" | "しない" | "☐" | "□" => {
            Some(false)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn jst() -> FixedOffset {
        FixedOffset::east_opt(9 * 3600).unwrap()
    }

    fn parse(bytes: &[u8]) -> Parsed {
        parse_record(bytes, &ComponentLabels::default(), jst())
    }

    fn download(version: &str, at: Option<(u32, u32, u32, u32)>) -> Download {
        Download {
            version: version.to_owned(),
            at: at.map(|(m, d, h, min)| jst().with_ymd_and_hms(2026, m, d, h, min, 0).unwrap()),
        }
    }

    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/distribution/",
                $name
            ))
        };
    }

    #[test]
    fn japanese_record_with_bom_and_crlf() {
        let parsed = parse(fixture!("japanese-bom-crlf.txt"));
        assert_eq!(parsed.record.enabled, Some(true));
        assert_eq!(
            parsed.record.downloaded,
            BTreeMap::from([
                (
                    "face_library".to_owned(),
                    download("5.1.0", Some((1, 20, 2, 14)))
                ),
                (
                    "distribution_app".to_owned(),
                    download("1.8.0", Some((1, 5, 21, 3)))
                ),
                ("qualification_app".to_owned(), download("2.4.1", None)),
            ]),
            "skipped: {:?}",
            parsed.skipped
        );
    }

    #[test]
    fn disabled_distribution_and_history() {
        let parsed = parse(fixture!("disabled-history.txt"));
        assert_eq!(parsed.record.enabled, Some(false));
        // The newest of three face-library lines, whatever their order.
        assert_eq!(
            parsed.record.downloaded["face_library"],
            download("5.0.3", Some((1, 10, 3, 0)))
        );
        assert_eq!(
            parsed.record.downloaded["reader_app"],
            download("4.0.2", Some((1, 9, 23, 30)))
        );
    }

    #[test]
    fn odd_lines_are_skipped_and_said() {
        let parsed = parse(fixture!("odd-lines.txt"));
        assert_eq!(parsed.record.enabled, None);
        assert_eq!(
            parsed.record.downloaded,
            BTreeMap::from([
                ("face_library".to_owned(), download("5.1.0", None)),
                ("qualification_app".to_owned(), download("2.4.1", None)),
            ])
        );
        let said = parsed.skipped.join("\n");
        for expected in [
            "unknown section [history]",
            "is not a yes/no value",
            "unknown component label \"謎のコンポーネント\"",
            "no version for distribution_app",
            "not understood",
            "not `key = value`",
        ] {
            assert!(
                said.contains(expected),
                "{expected:?} missing from:\n{said}"
            );
        }
    }

    #[test]
    fn garbage_is_not_observed() {
        assert_eq!(parse(fixture!("garbage.txt")).record.into_wire(), None);
        assert_eq!(parse(b"").record.into_wire(), None);
    }

    #[test]
    fn configured_labels_extend_and_override() {
        let extra = BTreeMap::from([
            (
                "カードリーダーアプリケーション".to_owned(),
                "reader_app".to_owned(),
            ),
            ("連携アプリケーション".to_owned(), "link_app".to_owned()),
        ]);
        let text = "カードリーダーアプリケーション = 4.0.2\n連携アプリケーション = 3.0\n";
        let parsed = parse_record(text.as_bytes(), &ComponentLabels::with(&extra), jst());
        let names: Vec<_> = parsed.record.downloaded.keys().cloned().collect();
        assert_eq!(names, ["link_app", "reader_app"]);
    }

    #[test]
    fn flags_in_every_spelling() {
        for (text, enabled) in [
            ("配信機能を無効化する = はい", Some(false)),
            ("「配信機能を無効化する」: ☑", Some(false)),
            ("disable_distribution = false", Some(true)),
            ("enabled = yes", Some(true)),
            ("distribution_enabled = 0", Some(false)),
            ("配信機能を無効化する = たぶん", None),
        ] {
            assert_eq!(parse(text.as_bytes()).record.enabled, enabled, "{text}");
        }
    }
}
