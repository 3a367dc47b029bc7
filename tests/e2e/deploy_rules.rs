//! The files in `deploy/prometheus` and `deploy/alertmanager`, checked by the tools
//! that will load them (`promtool`, `amtool`, Alertmanager itself), and the metrics
//! the rules name, checked against what fleetd exposes.
//!
//! Why here and not only in CI scripts: a rule that names a metric fleetd does not
//! export never fires, and nothing else would notice. A missing tool is a failure,
//! not a skip: CI installs them (`ensure_prometheus_tools` in scripts/lib.sh), and a
//! skipped check would pass unnoticed everywhere.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fleet_e2e::alertmanager::Alertmanager;
use fleet_e2e::broker::{Props, Publisher, TestVhost};
use fleet_e2e::reports::{in_state, terminal_id};
use fleet_e2e::{DbKind, TestApp};
use fleet_protocol::CampaignState;
use serde_json::json;

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path)
}

/// Runs `tool args…` in `dir`; fails with its output unless it succeeds.
fn run(tool: &str, args: &[&str], dir: &Path) {
    let out = Command::new(tool).args(args).current_dir(dir).output();
    let out = match out {
        Ok(out) => out,
        Err(err) => panic!(
            "cannot run {tool} ({err}): install Debian's prometheus and \
             prometheus-alertmanager (scripts/lib.sh ensure_prometheus_tools)"
        ),
    };
    assert!(
        out.status.success(),
        "{tool} {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn rules_pass_promtool_check() {
    run(
        "promtool",
        &["check", "rules", "fleetd-rules.yml"],
        &deploy("prometheus"),
    );
}

#[test]
fn rules_pass_their_unit_tests() {
    run(
        "promtool",
        &["test", "rules", "fleetd-rules.test.yml"],
        &deploy("prometheus"),
    );
}

#[test]
fn alertmanager_config_is_valid() {
    run(
        "amtool",
        &["check-config", "alertmanager.yml"],
        &deploy("alertmanager"),
    );
}

/// The example route file, loaded by a real Alertmanager: an area incident inhibits
/// its area's terminal findings of the same tenant, and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_area_incident_inhibits_its_areas_terminal_findings() -> anyhow::Result<()> {
    let am = Alertmanager::start_with_config_file(&deploy("alertmanager/alertmanager.yml")).await?;
    let alert = |name: &str, severity: &str, tenant: &str, area: &str, clinic: Option<&str>| {
        let mut labels = json!({ "alertname": name, "severity": severity,
            "tenant": tenant, "area": area, "prefecture": "27" });
        if let Some(clinic) = clinic {
            labels["clinic"] = json!(clinic);
            labels["terminal"] = json!(terminal_id(1));
        }
        json!({ "labels": labels, "annotations": { "summary": name } })
    };
    am.post(&json!([
        alert("area_incident", "page", "demo", "west", None),
        alert("silent", "ticket", "demo", "west", Some("2712345678")),
        alert(
            "line_auth_down",
            "urgent",
            "demo",
            "west",
            Some("2712345678")
        ),
        alert("silent", "ticket", "demo", "east", Some("1311234567")),
        alert("silent", "ticket", "acme", "west", Some("2712345679")),
        alert("campaign", "ticket", "demo", "west", Some("2712345678")),
    ]))
    .await?;
    // The inhibitor learns of the incident asynchronously: wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let alerts = loop {
        let alerts = am.alerts().await?;
        if alerts.iter().any(|a| a["status"]["state"] == "suppressed") || Instant::now() > deadline
        {
            break alerts;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut states: Vec<(String, String, String, String)> = alerts
        .iter()
        .map(|a| {
            let l = &a["labels"];
            let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
            (
                s(&l["alertname"]),
                s(&l["tenant"]),
                s(&l["area"]),
                s(&a["status"]["state"]),
            )
        })
        .collect();
    states.sort();
    let t = |a: &str, b: &str, c: &str, d: &str| (a.into(), b.into(), c.into(), d.into());
    assert_eq!(
        states,
        vec![
            t("area_incident", "demo", "west", "active"),
            t("campaign", "demo", "west", "active"),
            t("line_auth_down", "demo", "west", "suppressed"),
            t("silent", "acme", "west", "active"),
            t("silent", "demo", "east", "active"),
            t("silent", "demo", "west", "suppressed"),
        ],
        "{alerts:#?}\n{}",
        am.log()
    );
    Ok(())
}

/// Every `fleetd_…` metric the rules name is one fleetd exports (a renamed metric
/// would silently disable its alert), and the two gauges added for them say what
/// the rules expect of a healthy, idle service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_the_rules_name_are_exported() -> anyhow::Result<()> {
    let rules = std::fs::read_to_string(deploy("prometheus/fleetd-rules.yml"))?;
    let mut named: Vec<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("fleetd_") && w.len() > "fleetd_".len())
        .collect();
    named.sort_unstable();
    named.dedup();
    assert!(named.len() >= 5, "{named:?}");

    let app = TestApp::spawn(DbKind::Sqlite).await?;
    // Counter families with labels appear once they have a child: one report stored,
    // one dead-lettered.
    app.publish(&in_state(
        &terminal_id(1),
        1,
        "2712345678",
        CampaignState::Updated,
    ))
    .await?;
    app.publisher
        .publish("v1.demo.report", b"{not json", Props::default())
        .await?;
    app.wait_rows("reports", 1).await?;
    app.publisher
        .dead_letters(1, Duration::from_secs(20))
        .await?;

    let deadline = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let (status, metrics) = app.get_text("/metrics", None).await?;
        assert_eq!(status, 200);
        // The depth is sampled every few seconds: wait for a look after the drain.
        if metrics.contains("\nfleetd_fleet_ingest_queue_depth 0\n") || Instant::now() > deadline {
            break metrics;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for name in &named {
        assert!(
            metrics.contains(&format!("# TYPE {name} ")),
            "the rules name {name}, which fleetd does not export:\n{metrics}"
        );
    }
    assert!(metrics.contains("\nfleetd_fleet_ready 1\n"), "{metrics}");
    assert!(
        metrics.contains("\nfleetd_fleet_ingest_queue_depth 0\n"),
        "{metrics}"
    );
    app.shutdown().await
}

/// The depth the consumer samples is the queue's ready messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_depth_counts_the_messages_waiting() -> anyhow::Result<()> {
    let vhost = tokio::task::spawn_blocking(TestVhost::create).await??;
    let conn =
        lapin::Connection::connect(&vhost.url(), lapin::ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    fleet_ingest::topology::declare(&channel).await?;
    assert_eq!(fleet_ingest::consumer::queue_depth(&channel).await?, 0);
    let publisher = Publisher::connect(&vhost.url()).await?;
    for seq in 1..=3 {
        let body = serde_json::to_vec(&in_state(
            &terminal_id(1),
            seq,
            "2712345678",
            CampaignState::Updated,
        ))?;
        publisher
            .publish("v1.demo.report", &body, Props::default())
            .await?;
    }
    assert_eq!(fleet_ingest::consumer::queue_depth(&channel).await?, 3);
    let _ = conn.close(200, "done".into()).await;
    Ok(())
}
