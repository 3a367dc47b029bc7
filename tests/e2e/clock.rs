//! FLEET_CLOCK (contract §6): with it set, ingest receives reports on the service's
//! clock, not the system's — what replays and demos rely on.

use fleet_e2e::reports::{in_state, terminal_id};
use fleet_e2e::{DbKind, TestApp};
use fleet_protocol::CampaignState;
use sea_orm::ConnectionTrait;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_receives_reports_on_fleet_clock() -> anyhow::Result<()> {
    // Real time, so the stored instant is a few seconds after the start at most.
    let app = TestApp::spawn_with(
        DbKind::Sqlite,
        &[
            ("FLEET_CLOCK", "2026-01-20T08:00:00+09:00"),
            ("FLEET_CLOCK_RATE", "1"),
        ],
    )
    .await?;
    app.publish(&in_state(
        &terminal_id(1),
        1,
        "2712345678",
        CampaignState::Updated,
    ))
    .await?;
    app.wait_rows("reports", 1).await?;
    let db = app.store.connection();
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT received_at FROM reports",
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no report row"))?;
    let received: String = row.try_get("", "received_at")?;
    let received = chrono::DateTime::parse_from_rfc3339(&received)?;
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-20T08:00:00+09:00")?;
    let after = received - start;
    assert!(
        after >= chrono::TimeDelta::zero() && after < chrono::TimeDelta::minutes(1),
        "received_at {received} is on FLEET_CLOCK"
    );
    app.shutdown().await
}
