//! The Alertmanager test helper against the real binary: an alert posted is listed,
//! and posted again with `endsAt` in the past it is resolved — no longer listed, and
//! counted as a resolved alert received (see `fleet_e2e::alertmanager`'s docs).

use fleet_e2e::alertmanager::Alertmanager;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_posted_is_listed_until_it_ends() -> anyhow::Result<()> {
    let am = Alertmanager::start().await?;
    assert!(am.alerts().await?.is_empty());
    let labels = json!({ "alertname": "area_incident", "severity": "page",
        "tenant": "demo", "area": "west", "prefecture": "27" });
    let annotations = json!({ "summary": "西日本で多数の端末が同時に異常です" });
    am.post(&json!([{ "labels": labels, "annotations": annotations }]))
        .await?;

    let alerts = am.alerts().await?;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0]["labels"], labels);
    assert_eq!(alerts[0]["annotations"], annotations);
    assert_eq!(alerts[0]["status"]["state"], "active");
    assert_eq!(am.received("firing").await?, 1);
    assert_eq!(am.received("resolved").await?, 0);

    let ended = (chrono::Utc::now() - chrono::Duration::seconds(1)).to_rfc3339();
    am.post(&json!([{ "labels": labels, "annotations": annotations, "endsAt": ended }]))
        .await?;
    let alerts = am.alerts().await?;
    assert!(
        alerts.is_empty(),
        "a resolved alert is not listed: {alerts:#?}"
    );
    assert_eq!(am.received("resolved").await?, 1);
    Ok(())
}
