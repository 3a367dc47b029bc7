//! Reader-log parsers per maker and the certificate reader, against fixtures in
//! Japanese; and the daemon's "a change is reported at once" rule on real files.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, FixedOffset, TimeZone};
use fleet_agent::probe::certificate::parse_pem_or_der;
use fleet_agent::probe::reader_log::{ErrorTally, LineParser, read_new_lines};
use fleet_agent::{Agent, Settings};
use fleet_protocol::report::ReaderMaker;

use crate::helpers::{TempDir, sample_config};

fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

fn jst() -> FixedOffset {
    FixedOffset::east_opt(9 * 3600).unwrap()
}

fn at(h: u32, m: u32, s: u32) -> DateTime<FixedOffset> {
    jst().with_ymd_and_hms(2026, 1, 20, h, m, s).unwrap()
}

/// Parses a fixture with a maker's built-in patterns; returns code → (message,
/// first time, count) after deduplication.
fn tally(
    maker: ReaderMaker,
    file: &str,
) -> BTreeMap<String, (Option<String>, DateTime<FixedOffset>, u32)> {
    let parser = LineParser::new(Some(maker), true, &[]).unwrap();
    let (text, _) = read_new_lines(&fixture(&format!("reader-log/{file}")), 0).unwrap();
    let mut tally = ErrorTally::default();
    for error in parser.parse_text(&text, jst(), at(23, 59, 59)) {
        tally.add(error);
    }
    tally
        .to_wire()
        .into_iter()
        .map(|e| (e.code, (e.message, e.at, e.count)))
        .collect()
}

#[test]
fn fujitsu_caora_codes_in_brackets() {
    let t = tally(ReaderMaker::Fujitsu, "fujitsu-caora.log");
    assert_eq!(t.len(), 3, "{t:?}");
    assert_eq!(t["FUJP55"], (Some("タイムアウト".into()), at(7, 3, 12), 2));
    assert_eq!(
        t["011"],
        (Some("ネットワークエラー".into()), at(7, 3, 40), 1)
    );
    assert_eq!(t["001"].2, 1, "patient-side codes are counted too");
}

#[test]
fn panasonic_csv_lines() {
    let t = tally(ReaderMaker::Panasonic, "panasonic.csv");
    assert_eq!(
        t.len(),
        2,
        "INFO lines and the header are not errors: {t:?}"
    );
    assert_eq!(
        t["011"],
        (Some("ネットワークエラー".into()), at(7, 4, 0), 2)
    );
    assert_eq!(t["USB01"].0.as_deref(), Some("USB通信エラー"));
}

#[test]
fn atlas_exc9000_key_value_lines() {
    let t = tally(ReaderMaker::Atlas, "atlas-exc9000.log");
    assert_eq!(
        t["011"],
        (Some("ネットワークエラー".into()), at(7, 2, 10), 2)
    );
    assert_eq!(t["COM01"].0.as_deref(), Some("COM切断"));
    assert_eq!(t.len(), 2);
}

#[test]
fn almex_smapa_codes_and_return_values() {
    let t = tally(ReaderMaker::Almex, "almex-smapa.log");
    assert_eq!(
        t["011"],
        (Some("ネットワークエラー".into()), at(7, 1, 15), 2)
    );
    assert_eq!(t["0x81000001"], (Some("重複登録".into()), at(7, 1, 45), 1));
    assert_eq!(t.len(), 2);
}

#[test]
fn canon_hicara_code_only_brackets_take_the_text_after() {
    let t = tally(ReaderMaker::Canon, "canon-hicara.log");
    assert_eq!(t["906"].2, 3);
    assert_eq!(t["906"].1, at(7, 1, 0));
    assert!(
        t["906"]
            .0
            .as_deref()
            .is_some_and(|m| m.starts_with("システムへの接続に失敗しました")),
        "{t:?}"
    );
    assert_eq!(t["011"].0.as_deref(), Some("ネットワークエラー"));
    assert_eq!(t.len(), 2);
}

#[test]
fn a_makers_patterns_do_not_read_another_makers_log() {
    assert!(tally(ReaderMaker::Panasonic, "fujitsu-caora.log").is_empty());
    assert!(tally(ReaderMaker::Atlas, "canon-hicara.log").is_empty());
}

#[test]
fn configured_patterns_extend_or_replace_the_built_ins() {
    let custom = r"^(?P<at>\S+ \S+) ALARM (?P<code>E\d+) (?P<message>.+)$".to_owned();
    let parser = LineParser::new(
        Some(ReaderMaker::Fujitsu),
        false,
        std::slice::from_ref(&custom),
    )
    .unwrap();
    let line = "2026/01/20 07:03:12 ALARM E42 カードリーダー温度異常";
    let error = parser.parse_line(line, jst(), at(0, 0, 0)).unwrap();
    assert_eq!(error.code, "E42");
    assert_eq!(error.message.as_deref(), Some("カードリーダー温度異常"));
    assert_eq!(error.at, at(7, 3, 12));
    assert!(
        parser
            .parse_line(
                "2026/01/20 07:03:12.345 [ERR ] X 【FUJP55:タイムアウト】",
                jst(),
                at(0, 0, 0)
            )
            .is_none(),
        "built-ins replaced"
    );
    let both = LineParser::new(Some(ReaderMaker::Fujitsu), true, &[custom]).unwrap();
    assert!(both.parse_line(line, jst(), at(0, 0, 0)).is_some());
}

#[test]
fn certificate_issuer_and_expiry_from_pem_and_der() {
    for file in ["terminal-cert.pem", "terminal-cert.der"] {
        let bytes = std::fs::read(fixture(&format!("certificate/{file}"))).unwrap();
        let info = parse_pem_or_der(&bytes).unwrap();
        assert_eq!(
            info.issuer.as_deref(),
            Some("Online Billing NW Common RootCA"),
            "{file}"
        );
        assert_eq!(
            info.not_after.to_rfc3339(),
            "2028-05-05T01:23:34+00:00",
            "{file}"
        );
    }
    // No CN: the organisation, in Japanese (UTF8String); after 2049: GeneralizedTime.
    let bytes = std::fs::read(fixture("certificate/org-only.pem")).unwrap();
    let info = parse_pem_or_der(&bytes).unwrap();
    assert_eq!(info.issuer.as_deref(), Some("医療機関等電子証明書テスト"));
    assert_eq!(info.not_after.to_rfc3339(), "2051-07-14T01:23:34+00:00");
}

fn settings(config: &str) -> Settings {
    Settings::from_toml(config, std::path::Path::new("test.toml")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_change_or_a_reader_error_is_reported_at_once_else_only_on_the_interval() {
    let dir = TempDir::new("change");
    let version = dir.write("Version.info", "Version=5.0.3\n");
    let log = dir.write(
        "CaoraLog_20260120.log",
        "2026/01/20 06:00:00.000 [ERR ] Old 【011:ネットワークエラー】 old\n",
    );
    let cert = fixture("certificate/terminal-cert.pem");
    let config = sample_config(
        &dir.path().join("state"),
        "amqp://guest:guest@127.0.0.1:1/%2f",
    )
    .replace(
        "[versions]\n",
        "[versions]\nqualification_app = \"VERSION\"\n",
    )
    .replace("VERSION", &version.display().to_string())
    .replace("[host]", "interval_secs = 3600\n[host]")
        + &format!(
            "\n[reader]\nmaker = \"fujitsu\"\n[reader.log]\nfiles = [\"{}\"]\n[certificate]\nfile = \"{}\"\n",
            dir.path().join("CaoraLog_*.log").display(),
            cert.display()
        );
    let mut agent = Agent::new(settings(&config)).unwrap();
    let first = agent
        .check(false)
        .await
        .unwrap()
        .expect("the first look is reported");
    assert_eq!(
        agent.check(false).await.unwrap(),
        None,
        "nothing changed, interval not up"
    );

    std::fs::write(&version, "Version=2.4.1\n").unwrap();
    let second = agent
        .check(false)
        .await
        .unwrap()
        .expect("a version change is reported at once");
    assert_eq!(second, first + 1);
    assert_eq!(agent.check(false).await.unwrap(), None);

    // A new error line (the old one was there before the first start: not news).
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str("2026/01/20 07:03:12.345 [ERR ] FaceAuth 【FUJP55:タイムアウト】 x\n");
    text.push_str("2026/01/20 07:04:12.345 [ERR ] FaceAuth 【FUJP55:タイムアウト】 x\n");
    std::fs::write(&log, text).unwrap();
    let third = agent
        .check(false)
        .await
        .unwrap()
        .expect("reader errors are reported at once");
    assert_eq!(
        agent.check(false).await.unwrap(),
        None,
        "errors are sent once"
    );

    // The spooled reports, as they will be published.
    let spool = agent.spool();
    assert_eq!(spool.pending_seqs(), [first, second, third]);
    let mut reports = Vec::new();
    while let Some(record) = spool.front().unwrap() {
        assert!(record.essential, "changes and errors are essential");
        reports.push(fleet_protocol::Report::parse(&record.payload).unwrap());
        spool.ack_through(record.seq).unwrap();
    }
    let errors = reports[2].reader.as_ref().unwrap().errors.as_ref().unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0].code.as_str(), errors[0].count), ("FUJP55", 2));
    assert!(
        reports[0].reader.as_ref().unwrap().errors.is_none(),
        "old lines skipped"
    );
    let cert = reports[0].certificate.as_ref().unwrap();
    assert_eq!(
        cert.issuer.as_deref(),
        Some("Online Billing NW Common RootCA")
    );
    assert_eq!(
        cert.not_after.unwrap().to_rfc3339(),
        "2028-05-05T10:23:34+09:00"
    );
    assert_eq!(
        reports[1].versions.as_ref().unwrap()["qualification_app"],
        "2.4.1"
    );
    agent.close().await;
}
