//! The published JSON Schema of report v1 (`schema/report-v1.schema.json`) and the
//! examples (`examples/`) against the service's parser, [`Report::parse`].
//!
//! - every valid example validates against the schema *and* parses;
//! - every example under `examples/invalid/` is refused by the parser with the reason
//!   its file name starts with, and — except `invalid_json-*` and the few listed in
//!   [`SCHEMA_CANNOT_EXPRESS`] — also fails the schema;
//! - the schema is a valid draft 2020-12 schema and keeps the contract's stability
//!   rules (five required fields, unknown fields allowed everywhere).
//!
//! Where the parser is more lenient than the schema (it accepts what a publisher should
//! not send), [`parser_leniencies_are_known`] pins each case down.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use chrono::DateTime;
use fleet_protocol::campaign::FACE_LIBRARY_5_1_0;
use fleet_protocol::clinic::FeeSchedule;
use fleet_protocol::report::{
    Certificate, Distribution, Download, Host, LineAuth, LineAuthState, MAX_BODY_BYTES, NfcReader,
    Reader, ReaderError, ReaderMaker, ReaderMode, Reboot,
};
use fleet_protocol::{Area, Campaign, CampaignState, Cause, ClinicCode, Report, TerminalState};
use serde_json::{Value, json};

/// Invalid examples that the schema cannot refuse, and why. Each must still be refused
/// by the parser; the test also checks that the schema really accepts them, so this
/// list stays exact.
const SCHEMA_CANNOT_EXPRESS: &[(&str, &str)] = &[
    (
        "invalid_field-body-duplicate-seq.json",
        "a JSON object with a repeated key is one value to a schema (the last key wins)",
    ),
    (
        "invalid_field-seq-fraction.json",
        "JSON Schema counts 1042.0 as an integer; the parser wants the digits of a u64",
    ),
    (
        "invalid_field-observed_at-2025-02-29.json",
        "the date-time pattern checks month lengths but not leap years",
    ),
];

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn schema() -> Value {
    let path = crate_dir().join("schema/report-v1.schema.json");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn validator() -> jsonschema::Validator {
    jsonschema::draft202012::new(&schema()).expect("the schema compiles")
}

/// `*.json` files directly in `dir`, sorted.
fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .expect("UTF-8 file name")
        .to_owned()
}

fn example(name: &str) -> Vec<u8> {
    let path = crate_dir().join("examples").join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse_example(name: &str) -> Report {
    Report::parse(&example(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn schema_errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect()
}

fn at(text: &str) -> DateTime<chrono::FixedOffset> {
    DateTime::parse_from_rfc3339(text).expect("RFC 3339 in the test")
}

// ---------------------------------------------------------------------------------------
// The schema itself
// ---------------------------------------------------------------------------------------

#[test]
fn schema_is_a_valid_draft_2020_12_schema() {
    let schema = schema();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    if let Err(error) = jsonschema::draft202012::meta::validate(&schema) {
        panic!(
            "not a valid draft 2020-12 schema: {error} at {}",
            error.instance_path
        );
    }
    // Compiling also checks every pattern and every $ref.
    validator();
}

#[test]
fn schema_requires_exactly_the_contracts_five_fields() {
    let schema = schema();
    let required: BTreeSet<&str> = schema["required"]
        .as_array()
        .expect("required is an array")
        .iter()
        .map(|v| v.as_str().expect("field names"))
        .collect();
    assert_eq!(
        required,
        BTreeSet::from(["schema", "terminal_id", "seq", "observed_at", "clinic_code"])
    );
    let properties: BTreeSet<&str> = schema["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .map(String::as_str)
        .collect();
    let contract = [
        "schema",
        "terminal_id",
        "seq",
        "observed_at",
        "clinic_code",
        "agent_version",
        "host",
        "versions",
        "distribution",
        "reboot",
        "line_auth",
        "reader",
        "nfc_reader",
        "certificate",
    ];
    assert_eq!(properties, BTreeSet::from(contract));
}

/// Walks every subschema of the document.
fn walk<'a>(value: &'a Value, pointer: String, visit: &mut dyn FnMut(&str, &'a Value)) {
    match value {
        Value::Object(map) => {
            visit(&pointer, value);
            for (key, child) in map {
                walk(child, format!("{pointer}/{key}"), visit);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                walk(child, format!("{pointer}/{i}"), visit);
            }
        }
        _ => {}
    }
}

#[test]
fn schema_never_forbids_unknown_fields() {
    // Contract §2: unknown fields are ignored, additive fields are allowed.
    let schema = schema();
    walk(&schema, String::new(), &mut |pointer, node| {
        for keyword in ["additionalProperties", "unevaluatedProperties"] {
            assert_ne!(
                node.get(keyword),
                Some(&Value::Bool(false)),
                "{pointer}/{keyword}"
            );
        }
        assert!(
            node.get("propertyNames").is_none(),
            "{pointer}: propertyNames"
        );
        assert!(
            node.get("maxProperties").is_none(),
            "{pointer}: maxProperties"
        );
    });
}

#[test]
fn every_property_has_a_title_and_a_description() {
    let schema = schema();
    let mut seen = 0;
    walk(&schema, String::new(), &mut |pointer, node| {
        let subschemas = node
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .chain(
                node.get("$defs")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten(),
            );
        for (name, sub) in subschemas {
            for keyword in ["title", "description"] {
                let text = sub.get(keyword).and_then(Value::as_str).unwrap_or_default();
                assert!(!text.trim().is_empty(), "{pointer}/{name} has no {keyword}");
            }
            seen += 1;
        }
    });
    assert!(
        seen > 40,
        "only {seen} properties found: is the walk broken?"
    );
}

/// Every variant of a Rust enum is in the schema's `enum` and vice versa.
fn assert_enum_matches<T>(pointer: &str, rust: &[T])
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let schema = schema();
    let listed: Vec<Value> = schema
        .pointer(pointer)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("{pointer} is not an enum"))
        .clone();
    let ours: Vec<Value> = rust
        .iter()
        .map(|v| serde_json::to_value(v).expect("serialise"))
        .collect();
    assert_eq!(listed, ours, "{pointer}");
    for value in listed {
        let back: T =
            serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{value}: {e}"));
        assert!(rust.contains(&back));
    }
}

#[test]
fn schema_enums_are_the_parsers_enums() {
    // The matches make a new variant a compile error here until the schema lists it.
    let states = [
        LineAuthState::Connected,
        LineAuthState::Disconnected,
        LineAuthState::Unreachable,
    ];
    for s in states {
        match s {
            LineAuthState::Connected | LineAuthState::Disconnected | LineAuthState::Unreachable => {
            }
        }
    }
    assert_enum_matches("/properties/line_auth/properties/state/enum", &states);

    let makers = [
        ReaderMaker::Fujitsu,
        ReaderMaker::Panasonic,
        ReaderMaker::Atlas,
        ReaderMaker::Almex,
        ReaderMaker::Canon,
        ReaderMaker::Other,
    ];
    for m in makers {
        match m {
            ReaderMaker::Fujitsu
            | ReaderMaker::Panasonic
            | ReaderMaker::Atlas
            | ReaderMaker::Almex
            | ReaderMaker::Canon
            | ReaderMaker::Other => {}
        }
    }
    assert_enum_matches("/properties/reader/properties/maker/enum", &makers);

    let modes = [ReaderMode::Unattended, ReaderMode::Visual];
    for m in modes {
        match m {
            ReaderMode::Unattended | ReaderMode::Visual => {}
        }
    }
    assert_enum_matches("/properties/reader/properties/mode/enum", &modes);
}

// ---------------------------------------------------------------------------------------
// Valid examples
// ---------------------------------------------------------------------------------------

#[test]
fn every_valid_example_validates_and_parses() {
    let validator = validator();
    let files = json_files(&crate_dir().join("examples"));
    assert!(files.len() >= 8, "examples are missing: {files:?}");
    for path in files {
        let name = file_name(&path);
        let bytes = fs::read(&path).expect("read example");
        let instance: Value =
            serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let errors = schema_errors(&validator, &instance);
        assert!(errors.is_empty(), "{name} fails the schema: {errors:#?}");
        let report =
            Report::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e} ({})", e.reason()));
        // What our own types write (the agent's output) is schema-valid too, and reads
        // back as the same report.
        let ours: Value = serde_json::from_slice(&report.to_json()).expect("own JSON");
        let errors = schema_errors(&validator, &ours);
        assert!(
            errors.is_empty(),
            "{name} re-serialised fails the schema: {errors:#?}"
        );
        assert_eq!(
            Report::parse(&report.to_json()).expect("own JSON parses"),
            report,
            "{name}"
        );
    }
}

#[test]
fn contract_example_is_the_contracts_report() {
    let report = parse_example("contract-example.json");
    let expected = Report {
        schema: "fleet.report.v1".into(),
        terminal_id: "0f8c2b1e-6c5d-4a57-9a3e-2b7f0c1d9e11"
            .parse()
            .expect("uuid"),
        seq: 1042,
        observed_at: at("2026-01-20T07:12:00+09:00"),
        clinic_code: ClinicCode::parse("2712345678").expect("clinic code"),
        agent_version: Some("0.3.1".into()),
        host: Some(Host {
            hostname: Some("ONS-PC01".into()),
            os: Some("Windows 11 IoT Enterprise LTSC 2024".into()),
            booted_at: Some(at("2026-01-19T08:01:10+09:00")),
            auto_reboot: Some(false),
        }),
        versions: Some(
            [
                ("face_library", "5.0.3"),
                ("qualification_app", "2.4.1"),
                ("distribution_app", "1.8.0"),
                ("reader_firmware", "3.2.0"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        ),
        distribution: Some(Distribution {
            enabled: Some(true),
            downloaded: Some(
                [(
                    "face_library".to_owned(),
                    Download {
                        version: "5.1.0".into(),
                        at: Some(at("2026-01-20T02:14:00+09:00")),
                    },
                )]
                .into(),
            ),
        }),
        reboot: Some(Reboot {
            pending: Some(true),
            reason: Some("update_downloaded".into()),
        }),
        line_auth: Some(LineAuth {
            state: LineAuthState::Connected,
            checked_at: Some(at("2026-01-20T07:11:58+09:00")),
        }),
        reader: Some(Reader {
            maker: Some(ReaderMaker::Fujitsu),
            model: Some("Caora".into()),
            connected: Some(true),
            via_usb_hub: Some(false),
            mode: Some(ReaderMode::Unattended),
            errors: Some(vec![ReaderError {
                code: "FUJP55".into(),
                message: Some("タイムアウト".into()),
                at: at("2026-01-20T07:03:12+09:00"),
                count: 2,
            }]),
        }),
        nfc_reader: Some(NfcReader {
            model: Some("RC-S300/S1".into()),
            firmware: Some("1.0.0".into()),
        }),
        certificate: Some(Certificate {
            issuer: Some("Online Billing NW Common RootCA".into()),
            not_after: Some(at("2028-04-30T23:59:59+09:00")),
        }),
    };
    assert_eq!(report, expected);
    assert_eq!(
        report.message_id(),
        "0f8c2b1e-6c5d-4a57-9a3e-2b7f0c1d9e11/1042"
    );
    // The offsets are kept as written, not normalised to UTC.
    assert_eq!(report.observed_at.to_rfc3339(), "2026-01-20T07:12:00+09:00");
    // Contract §5: this terminal is reboot_required, in the west.
    assert_eq!(report.clinic_code.area(), Area::West);
    let state = TerminalState::from_first(&report);
    let assessed = Campaign::face_library_5_1_0().assess(&state, true, report.observed_at);
    assert_eq!(assessed.state, CampaignState::RebootRequired);
}

#[test]
fn minimal_example_has_only_the_required_fields() {
    let bytes = example("minimal.json");
    let value: Value = serde_json::from_slice(&bytes).expect("JSON");
    let keys: BTreeSet<&str> = value
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["schema", "terminal_id", "seq", "observed_at", "clinic_code"])
    );
    let r = Report::parse(&bytes).expect("parses");
    assert!(r.agent_version.is_none() && r.host.is_none() && r.versions.is_none());
    assert!(r.distribution.is_none() && r.reboot.is_none() && r.line_auth.is_none());
    assert!(r.reader.is_none() && r.nfc_reader.is_none() && r.certificate.is_none());
    assert_eq!(r.seq, 0);
}

#[test]
fn each_state_example_is_in_its_campaign_state() {
    let campaign = Campaign::face_library_5_1_0();
    assert_eq!(campaign.id, FACE_LIBRARY_5_1_0);
    let cases = [
        ("state-updated.json", CampaignState::Updated, Cause::Updated),
        (
            "state-reboot_required.json",
            CampaignState::RebootRequired,
            Cause::AwaitingAutoReboot,
        ),
        (
            "state-not_downloaded.json",
            CampaignState::NotDownloaded,
            Cause::DistributionDisabled,
        ),
        (
            "state-unknown.json",
            CampaignState::Unknown,
            Cause::NoVersionReported,
        ),
    ];
    for (name, state, cause) in cases {
        assert_eq!(name, format!("state-{}.json", state.as_str()));
        let report = parse_example(name);
        let terminal = TerminalState::from_first(&report);
        let assessed = campaign.assess(&terminal, true, report.observed_at);
        assert_eq!((assessed.state, assessed.cause), (state, cause), "{name}");
    }
    // Every campaign state has its example.
    let names: Vec<String> = json_files(&crate_dir().join("examples"))
        .iter()
        .map(|p| file_name(p))
        .collect();
    for state in CampaignState::ALL {
        let name = format!("state-{}.json", state.as_str());
        assert!(names.contains(&name), "no example {name}");
    }

    // The details the brief asks for, so an edit cannot drift them into another state
    // for another reason.
    let updated = parse_example("state-updated.json");
    assert_eq!(
        updated.versions.as_ref().expect("versions")["face_library"],
        "5.1.0"
    );
    assert_eq!(updated.reboot.as_ref().and_then(|r| r.pending), Some(false));
    let dl = &updated
        .distribution
        .as_ref()
        .and_then(|d| d.downloaded.as_ref())
        .expect("downloaded")["face_library"];
    assert!(
        updated
            .host
            .as_ref()
            .and_then(|h| h.booted_at)
            .expect("booted_at")
            > dl.at.expect("download time")
    );

    let reboot = parse_example("state-reboot_required.json");
    assert_eq!(
        reboot.versions.as_ref().expect("versions")["face_library"],
        "5.0.3"
    );
    let dl = &reboot
        .distribution
        .as_ref()
        .and_then(|d| d.downloaded.as_ref())
        .expect("downloaded")["face_library"];
    assert_eq!(dl.version, "5.1.0");

    let not_dl = parse_example("state-not_downloaded.json");
    assert_eq!(
        not_dl.versions.as_ref().expect("versions")["face_library"],
        "5.0.3"
    );
    let dist = not_dl.distribution.as_ref().expect("distribution");
    assert_eq!(
        (dist.enabled, dist.downloaded.is_none()),
        (Some(false), true)
    );

    let unknown = parse_example("state-unknown.json");
    assert!(unknown.versions.is_none() && unknown.distribution.is_none());
}

#[test]
fn pharmacy_example_is_an_east_pharmacy_with_a_canon_reader_and_error_011() {
    let r = parse_example("pharmacy-east-canon.json");
    assert_eq!(r.clinic_code.fee_schedule(), FeeSchedule::Pharmacy);
    assert_eq!(r.clinic_code.area(), Area::East);
    let reader = r.reader.as_ref().expect("reader");
    assert_eq!(reader.maker, Some(ReaderMaker::Canon));
    assert_eq!(reader.model.as_deref(), Some("Hi-CARA"));
    let errors = reader.errors.as_ref().expect("errors");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].code, "011");
    assert_eq!(errors[0].message.as_deref(), Some("ネットワークエラー"));
    // Hi-CARA reads smartphones itself, so there is no separate NFC reader (domain.md).
    assert!(r.nfc_reader.is_none());
}

#[test]
fn omitted_count_and_download_time_take_the_parsers_defaults() {
    let r = parse_example("defaults-omitted.json");
    assert_eq!(r.seq, u64::MAX);
    let errors = r
        .reader
        .as_ref()
        .and_then(|x| x.errors.as_ref())
        .expect("errors");
    assert_eq!((errors[0].count, errors[0].message.as_deref()), (1, None));
    let downloaded = r
        .distribution
        .as_ref()
        .and_then(|d| d.downloaded.as_ref())
        .expect("downloaded");
    assert_eq!(downloaded["face_library"].at, None);
    // The schema documents the same default.
    let schema = schema();
    assert_eq!(
        schema.pointer("/$defs/readerError/properties/count/default"),
        Some(&json!(1))
    );
}

#[test]
fn unknown_fields_example_really_has_unknown_fields_everywhere() {
    let bytes = example("unknown-fields.json");
    let value: Value = serde_json::from_slice(&bytes).expect("JSON");
    let schema = schema();
    // Every section carries a field the schema does not name.
    for section in [
        "",
        "/host",
        "/distribution",
        "/distribution/downloaded/face_library",
        "/reboot",
        "/line_auth",
        "/reader",
        "/reader/errors/0",
        "/nfc_reader",
        "/certificate",
    ] {
        let keys: BTreeSet<&String> = value
            .pointer(section)
            .and_then(Value::as_object)
            .expect(section)
            .keys()
            .collect();
        let known_at = match section {
            "" => "/properties".to_owned(),
            "/distribution/downloaded/face_library" => "/$defs/download/properties".to_owned(),
            "/reader/errors/0" => "/$defs/readerError/properties".to_owned(),
            s => format!("/properties{s}/properties"),
        };
        let known: BTreeSet<&String> = schema
            .pointer(&known_at)
            .and_then(Value::as_object)
            .expect(&known_at)
            .keys()
            .collect();
        assert!(
            keys.difference(&known).next().is_some(),
            "{section}: no unknown field"
        );
    }
    let r = Report::parse(&bytes).expect("unknown fields are ignored");
    assert_eq!(
        r.versions.as_ref().expect("versions")["receipt_computer_bridge"],
        "7.1"
    );
}

// ---------------------------------------------------------------------------------------
// Invalid examples
// ---------------------------------------------------------------------------------------

const REASONS: [&str; 5] = [
    "invalid_json",
    "missing_field",
    "invalid_field",
    "unsupported_schema",
    "body_too_large",
];

/// `reader.errors[0].count` → `reader-errors-count`, the way file names spell paths.
fn path_as_name(field: &str) -> String {
    let mut out = String::new();
    let mut in_index = false;
    for c in field.chars() {
        match c {
            '[' => in_index = true,
            ']' => in_index = false,
            _ if in_index => {}
            '.' => out.push('-'),
            '(' | ')' => {}
            c => out.push(c),
        }
    }
    out
}

#[test]
fn every_invalid_example_is_refused_with_the_reason_in_its_name() {
    let validator = validator();
    let files = json_files(&crate_dir().join("examples/invalid"));
    assert!(files.len() >= 20, "invalid examples are missing: {files:?}");
    let mut schema_misses = BTreeSet::new();
    let mut reasons_seen = BTreeSet::new();
    for path in files {
        let name = file_name(&path);
        let stem = name.trim_end_matches(".json");
        let (reason, detail) = stem
            .split_once('-')
            .unwrap_or_else(|| panic!("{name}: no '-' after the reason"));
        assert!(
            REASONS.contains(&reason),
            "{name}: {reason} is not a reject reason"
        );
        reasons_seen.insert(reason.to_owned());
        let bytes = fs::read(&path).expect("read example");

        let error = match Report::parse(&bytes) {
            Ok(report) => panic!("{name} parsed: {report:?}"),
            Err(error) => error,
        };
        assert_eq!(error.reason(), reason, "{name}: {error}");
        // The field the parser names is the one the file name names.
        match &error {
            fleet_protocol::ReportError::MissingField(field) => {
                assert_eq!(path_as_name(field), detail, "{name}: {error}");
            }
            fleet_protocol::ReportError::InvalidField { field, .. } => {
                let field = path_as_name(field);
                assert!(
                    detail == field || detail.starts_with(&format!("{field}-")),
                    "{name}: the parser names {field:?} ({error})"
                );
            }
            _ => {}
        }

        if reason == "invalid_json" {
            assert!(
                serde_json::from_slice::<Value>(&bytes).is_err(),
                "{name} is valid JSON"
            );
            continue;
        }
        let instance: Value =
            serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        if validator.is_valid(&instance) {
            schema_misses.insert(name);
        }
    }
    let expected: BTreeSet<String> = SCHEMA_CANNOT_EXPRESS
        .iter()
        .map(|(n, _)| (*n).to_owned())
        .collect();
    assert_eq!(
        schema_misses, expected,
        "invalid examples the schema accepts must be exactly those in SCHEMA_CANNOT_EXPRESS"
    );
    // Every reason but body_too_large has a file (that one is made in its own test).
    for reason in REASONS.iter().filter(|r| **r != "body_too_large") {
        assert!(
            reasons_seen.contains(*reason),
            "no invalid example for {reason}"
        );
    }
}

#[test]
fn body_too_large_is_refused_whatever_the_schema_says() {
    // 64 KiB of the contract example padded with spaces: valid JSON, schema-valid, but
    // too large. Made here rather than shipped as a 64 KiB file.
    let mut body = example("contract-example.json");
    let value: Value = serde_json::from_slice(&body).expect("JSON");
    assert!(validator().is_valid(&value));
    body.resize(MAX_BODY_BYTES, b' ');
    assert!(Report::parse(&body).is_ok(), "exactly 64 KiB is allowed");
    body.push(b' ');
    let error = Report::parse(&body).expect_err("one byte over");
    assert_eq!(error.reason(), "body_too_large");
}

// ---------------------------------------------------------------------------------------
// Where the schema and the parser knowingly differ
// ---------------------------------------------------------------------------------------

fn contract_example_with(pointer: &str, value: Value) -> Value {
    let mut doc: Value = serde_json::from_slice(&example("contract-example.json")).expect("JSON");
    let (parent, key) = pointer.rsplit_once('/').expect("pointer");
    let target = doc
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("{parent}"));
    match target {
        Value::Object(map) => {
            map.insert(key.to_owned(), value);
        }
        Value::Array(items) => items[key.parse::<usize>().expect("index")] = value,
        _ => panic!("{parent} is not a container"),
    }
    doc
}

/// The parser accepts these although the schema refuses them. A publisher must follow
/// the schema; the service is lenient. If the parser is ever tightened, move the case to
/// `examples/invalid/`.
#[test]
fn parser_leniencies_are_known() {
    let validator = validator();
    let cases = [
        ("null for an optional section", "/host", Value::Null),
        ("null for an optional field", "/host/booted_at", Value::Null),
        ("null in the versions map's place", "/versions", Value::Null),
        ("count 0", "/reader/errors/0/count", json!(0)),
        (
            "terminal_id without hyphens",
            "/terminal_id",
            json!("0f8c2b1e6c5d4a579a3e2b7f0c1d9e11"),
        ),
        (
            "terminal_id as a URN",
            "/terminal_id",
            json!("urn:uuid:0f8c2b1e-6c5d-4a57-9a3e-2b7f0c1d9e11"),
        ),
        (
            "date and time separated by a space",
            "/observed_at",
            json!("2026-01-20 07:12:00+09:00"),
        ),
        (
            "offset without a colon",
            "/observed_at",
            json!("2026-01-20T07:12:00+0900"),
        ),
        (
            "UTC written as a word",
            "/observed_at",
            json!("2026-01-20T07:12:00 UTC"),
        ),
    ];
    for (what, pointer, value) in cases {
        let doc = contract_example_with(pointer, value);
        assert!(
            !validator.is_valid(&doc),
            "{what}: the schema accepts it now"
        );
        let bytes = serde_json::to_vec(&doc).expect("JSON");
        if let Err(e) = Report::parse(&bytes) {
            panic!("{what}: the parser refuses it now ({e}); move it to examples/invalid/");
        }
    }
}

/// Unusual but valid RFC 3339 forms the pattern allows are accepted by the parser too.
#[test]
fn every_date_time_form_the_schema_allows_parses() {
    let validator = validator();
    let forms = [
        "2026-01-20T07:12:00Z",
        "2026-01-20t07:12:00z",
        "2026-01-19T22:12:00-00:00",
        "2026-01-20T07:12:00.5+09:00",
        "2026-01-20T07:12:00.123456789123+09:00",
        "2026-12-31T23:59:60+09:00",
        "2024-02-29T00:00:00+23:59",
        "0001-01-01T00:00:00-23:59",
        "9999-12-31T23:59:59+00:00",
    ];
    for form in forms {
        for pointer in [
            "/observed_at",
            "/host/booted_at",
            "/reader/errors/0/at",
            "/certificate/not_after",
        ] {
            let doc = contract_example_with(pointer, json!(form));
            assert!(
                validator.is_valid(&doc),
                "{form} at {pointer}: {:?}",
                schema_errors(&validator, &doc)
            );
            let bytes = serde_json::to_vec(&doc).expect("JSON");
            Report::parse(&bytes).unwrap_or_else(|e| panic!("{form} at {pointer}: {e}"));
        }
    }
    let refused = [
        "2026-01-20T07:12:00",
        "2026-01-20",
        "2026-01-20T07:12+09:00",
        "2026-13-01T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-01-20T24:00:00Z",
        "2026-01-20T07:12:00+24:00",
        "2026-01-20T07:12:00.Z",
        "20260120T071200Z",
    ];
    for form in refused {
        let doc = contract_example_with("/observed_at", json!(form));
        assert!(!validator.is_valid(&doc), "the schema accepts {form}");
        let bytes = serde_json::to_vec(&doc).expect("JSON");
        assert!(Report::parse(&bytes).is_err(), "the parser accepts {form}");
    }
}

/// Every clinic code the schema's pattern allows parses, and the boundaries either side
/// are refused by both.
#[test]
fn clinic_code_pattern_is_the_parsers_rule() {
    let validator = validator();
    for pref in 0..=99u32 {
        for table in 0..=9u32 {
            let code = format!("{pref:02}{table}1234567");
            let doc = contract_example_with("/clinic_code", json!(code));
            let schema_ok = validator.is_valid(&doc);
            let parser_ok = ClinicCode::parse(&code).is_ok();
            assert_eq!(schema_ok, parser_ok, "{code}");
            assert_eq!(
                parser_ok,
                (1..=47).contains(&pref) && [1, 3, 4].contains(&table),
                "{code}"
            );
        }
    }
    for code in [
        "271234567",
        "27123456789",
        "27123x5678",
        "２７１２３４５６７８",
        " 2712345678",
    ] {
        let doc = contract_example_with("/clinic_code", json!(code));
        assert!(!validator.is_valid(&doc), "the schema accepts {code:?}");
        assert!(
            ClinicCode::parse(code).is_err(),
            "the parser accepts {code:?}"
        );
    }
}

#[test]
fn numeric_limits_agree() {
    let validator = validator();
    let seq_ok = [json!(0), json!(1), json!(u64::MAX)];
    for seq in seq_ok {
        let doc = contract_example_with("/seq", seq.clone());
        assert!(validator.is_valid(&doc), "schema refuses seq {seq}");
        assert!(
            Report::parse(&serde_json::to_vec(&doc).expect("JSON")).is_ok(),
            "parser refuses seq {seq}"
        );
    }
    for count in [json!(1), json!(u32::MAX)] {
        let doc = contract_example_with("/reader/errors/0/count", count.clone());
        assert!(validator.is_valid(&doc), "schema refuses count {count}");
        assert!(
            Report::parse(&serde_json::to_vec(&doc).expect("JSON")).is_ok(),
            "parser refuses count {count}"
        );
    }
    for count in [json!(u64::from(u32::MAX) + 1), json!(-1), json!(1.5)] {
        let doc = contract_example_with("/reader/errors/0/count", count.clone());
        assert!(!validator.is_valid(&doc), "schema accepts count {count}");
        assert!(
            Report::parse(&serde_json::to_vec(&doc).expect("JSON")).is_err(),
            "parser accepts count {count}"
        );
    }
}
