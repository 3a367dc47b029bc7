//! The command line: the example config, `report`, and refused settings.

use fleet_agent::{SeqStore, Settings};
use fleet_protocol::Report;
use fleet_protocol::report::LineAuthState;

use crate::helpers::{TempDir, example_config, fleet_agent, sample_config, workspace_root};

const SCHEMA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../services/protocol/schema/report-v1.schema.json"
);

fn report_json(config: &std::path::Path) -> (serde_json::Value, String) {
    let config = config.to_str().expect("utf-8 path");
    let output = fleet_agent(&["report", "--config", config]);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "report failed: {stderr}");
    let json = serde_json::from_slice(&output.stdout).expect("stdout is one JSON document");
    (json, stderr)
}

#[test]
fn example_config_parses() {
    let settings = Settings::load(&example_config()).expect("the example config is valid");
    assert_eq!(
        settings.terminal_id.to_string(),
        "0f8c2b1e-6c5d-4a57-9a3e-2b7f0c1d9e11"
    );
    assert_eq!(settings.tenant.routing_key(), "v1.demo.report");
    assert_eq!(settings.versions.len(), 4);
    assert!(settings.distribution.is_some() && settings.reader.is_some());
    assert!(
        settings
            .line_auth
            .expect("line auth on")
            .url
            .starts_with("file://")
    );
}

#[test]
fn report_of_the_example_is_a_valid_v1_report() {
    let (json, _) = report_json(&example_config());

    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(SCHEMA).expect("the report JSON Schema exists"),
    )
    .expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&json)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "schema violations: {errors:#?}\n{json:#}"
    );

    let report =
        Report::parse(&serde_json::to_vec(&json).unwrap()).expect("fleet_protocol parses it");
    // What the sample terminal's files say, end to end.
    let versions = report.versions.as_ref().expect("versions observed");
    assert_eq!(versions["face_library"], "5.0.3");
    assert_eq!(versions["qualification_app"], "2.4.1");
    assert_eq!(versions["distribution_app"], "1.8.0");
    assert_eq!(versions["reader_firmware"], "3.2.0");
    let distribution = report.distribution.as_ref().expect("distribution observed");
    assert_eq!(distribution.enabled, Some(true));
    assert_eq!(
        distribution.downloaded.as_ref().unwrap()["face_library"].version,
        "5.1.0"
    );
    assert_eq!(report.reboot.as_ref().unwrap().pending, Some(true));
    assert_eq!(
        report.reboot.as_ref().unwrap().reason.as_deref(),
        Some("update_downloaded")
    );
    assert_eq!(
        report.line_auth.as_ref().unwrap().state,
        LineAuthState::Connected
    );
    let host = report.host.as_ref().unwrap();
    assert_eq!(
        host.booted_at.unwrap().to_rfc3339(),
        "2026-01-19T08:01:10+09:00"
    );
    assert_eq!(host.auto_reboot, Some(false));
    assert_eq!(
        report.agent_version.as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    // `report` prints the seq the next published report would carry.
    let state_dir = workspace_root().join("target/fleet-agent-example/state");
    assert_eq!(report.seq, SeqStore::new(&state_dir).peek().unwrap());
}

#[test]
fn report_reads_the_seq_without_using_it_up() {
    let dir = TempDir::new("report-seq");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("seq"), "41\n").unwrap();
    let config = dir.write(
        "agent.toml",
        &sample_config(&state, "amqp://guest:guest@127.0.0.1:5672/%2f"),
    );
    for _ in 0..2 {
        let (json, _) = report_json(&config);
        assert_eq!(json["seq"], 41);
    }
    assert_eq!(std::fs::read_to_string(state.join("seq")).unwrap(), "41\n");
}

#[test]
fn failing_probes_leave_sections_out_and_say_why() {
    let dir = TempDir::new("missing");
    let config = dir.write(
        "agent.toml",
        r#"
terminal_id = "0f8c2b1e-6c5d-4a57-9a3e-2b7f0c1d9e11"
clinic_code = "0141234567"
tenant = "demo"
state_dir = "/nonexistent/fleet-agent/state"
[host]
booted_at_file = "/nonexistent/booted_at.txt"
[versions]
face_library = "/nonexistent/OQS-Auth/Version.info"
[distribution]
record_file = "/nonexistent/distribution.txt"
[line_auth]
url = "http://127.0.0.1:1/"
timeout_ms = 2000
"#,
    );
    let (json, stderr) = report_json(&config);
    let report = Report::parse(&serde_json::to_vec(&json).unwrap()).unwrap();
    assert_eq!(report.seq, 0, "no seq file yet");
    assert!(report.versions.is_none(), "{json:#}");
    assert!(
        report.distribution.is_none() && report.reboot.is_none(),
        "{json:#}"
    );
    assert!(
        report.host.as_ref().is_none_or(|h| h.booted_at.is_none()),
        "{json:#}"
    );
    assert!(report.reader.is_none() && report.certificate.is_none());
    assert_eq!(report.line_auth.unwrap().state, LineAuthState::Unreachable);
    for said in [
        "version not observed",
        "distribution not observed",
        "boot time not observed",
        "line_auth unreachable",
    ] {
        assert!(stderr.contains(said), "{said:?} not in the log:\n{stderr}");
    }
}

#[test]
fn bad_settings_are_refused_naming_the_field() {
    let dir = TempDir::new("bad");
    let good = sample_config(
        &dir.path().join("state"),
        "amqp://guest:guest@127.0.0.1:5672/%2f",
    );
    let terminal_line = good
        .lines()
        .find(|l| l.starts_with("terminal_id"))
        .unwrap()
        .to_owned();
    let cases = [
        (
            good.replace(&terminal_line, "terminal_id = \"ONS-PC01\""),
            "terminal_id",
        ),
        (good.replace("2712345678", "27123"), "clinic_code"),
        (
            good.replace("tenant = \"demo\"", "tenant = \"Demo_Vendor\""),
            "tenant",
        ),
        (
            good.replace("[line_auth]", "interval_secs = 0\n[line_auth]"),
            "interval_secs",
        ),
        (
            good.replace("enabled = false", "enabled = false\ntimeout = 5"),
            "line_auth.timeout",
        ),
    ];
    for (text, field) in cases {
        let config = dir.write("bad.toml", &text);
        for command in ["report", "run"] {
            let output = fleet_agent(&[command, "--config", config.to_str().unwrap()]);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "{command} accepted a bad {field}");
            assert!(
                stderr.contains(&format!("field `{field}`")),
                "{command}: {field} not named in: {stderr}"
            );
            assert!(
                output.stdout.is_empty(),
                "nothing on stdout for a refused config"
            );
        }
    }
    let output = fleet_agent(&["report", "--config", "/nonexistent/agent.toml"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read settings file"));
}

#[test]
fn a_corrupt_seq_file_stops_the_agent() {
    let dir = TempDir::new("corrupt-seq");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("seq"), "garbage").unwrap();
    let config = dir.write(
        "agent.toml",
        &sample_config(&state, "amqp://guest:guest@127.0.0.1:5672/%2f"),
    );
    for command in ["report", "run"] {
        let output = fleet_agent(&[command, "--config", config.to_str().unwrap()]);
        assert!(
            !output.status.success(),
            "{command} must refuse a corrupt seq file"
        );
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("does not hold a sequence number")
        );
    }
}
