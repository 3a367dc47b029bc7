//! Faults provoked for real (issue 4): the database going away, the broker dropping
//! connections, and a message the store refuses. After each, every sent report is in
//! the history exactly once and the rollout counters equal a recount.

use std::time::{Duration, Instant};

use fleet_e2e::reports::{in_state, terminal_id};
use fleet_e2e::{DbKind, TestApp};
use fleet_protocol::CampaignState;

const CLINIC: &str = "1311234567";

/// A spread of states over `terminals` terminals, `per_terminal` reports each.
fn traffic(terminals: u32, per_terminal: u64) -> Vec<serde_json::Value> {
    let mut all = Vec::new();
    for seq in 1..=per_terminal {
        for n in 1..=terminals {
            let state = CampaignState::ALL[((n as u64 + seq) % 4) as usize];
            all.push(in_state(&terminal_id(n), seq, CLINIC, state));
        }
    }
    all
}

async fn assert_exactly_once(app: &TestApp, sent: i64) -> anyhow::Result<()> {
    app.wait_rows("reports", sent).await?;
    // Nothing is left to deliver, so a recount now would include any redelivery
    // the store let in twice.
    app.vhost()
        .wait_drained("fleet.ingest", Duration::from_secs(20))
        .await?;
    assert_eq!(
        app.count("reports").await?,
        sent,
        "every sent report exactly once"
    );
    assert!(
        app.store.check_counters().await?.is_empty(),
        "rollout counters equal a recount"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_acks_nothing_and_loses_nothing() -> anyhow::Result<()> {
    let app = TestApp::spawn(DbKind::Postgres).await?;
    let reports = traffic(20, 6);
    let (first, rest) = reports.split_at(40);
    for r in first {
        app.publish(r).await?;
    }
    app.wait_rows("reports", 40).await?;

    app.db().cut_off()?;
    for r in rest {
        app.publish(r).await?;
    }
    // While the database is away: not ready, and nothing is acked.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = app.get_text("/readyz", None).await?;
        if status == 503 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "/readyz stayed 200 without a database"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // What Prometheus sees of it (FleetdNotReady in deploy/prometheus).
    let (_, metrics) = app.get_text("/metrics", None).await?;
    assert!(metrics.contains("\nfleetd_fleet_ready 0\n"), "{metrics}");
    // The broker's queue statistics lag by a few seconds: wait until they show every
    // report of the outage still in the queue (held unacked by the service).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let depth = app.vhost().queue_depth("fleet.ingest")?;
        if depth == rest.len() as u64 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "fleet.ingest holds {depth}, expected {}",
            rest.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        app.count_while_down().await,
        None,
        "the database really is unreachable"
    );

    app.db().restore()?;
    assert_exactly_once(&app, reports.len() as i64).await?;
    app.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_broker_connections_are_redelivered_and_deduplicated() -> anyhow::Result<()> {
    // Small batches so the backlog is still being worked when the connections drop.
    let app = TestApp::spawn_with(DbKind::Sqlite, &[("FLEET_INGEST_BATCH_SIZE", "5")]).await?;
    let reports = traffic(50, 20);
    for r in &reports {
        app.publish(r).await?;
    }
    let mut cuts = 0;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        cuts += app.vhost().close_connections()?;
    }
    assert!(cuts > 0, "no connection was cut");
    // The test's own publisher was cut too; the service must have reconnected by itself.
    assert_exactly_once(&app, reports.len() as i64).await?;
    // Ready again once the consumer is back (it may still be in its reconnect
    // backoff from the last cut when the counts settle).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = app.get_text("/readyz", None).await?;
        if status == 200 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "/readyz stayed {status} after the broker came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_the_store_refuses_is_dead_lettered_alone() -> anyhow::Result<()> {
    // The parser accepts everything the store can hold, so a store refusal is made
    // with a trigger: the database itself refuses one terminal's report, the way a
    // constraint or a data-dependent bug would. It must neither stall the queue nor
    // take its batch with it.
    let app = TestApp::spawn_with(DbKind::Sqlite, &[("FLEET_INGEST_MAX_WAIT_MS", "500")]).await?;
    let poison_id = terminal_id(99);
    use sea_orm::ConnectionTrait;
    app.store
        .connection()
        .execute_unprepared(&format!(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON reports WHEN NEW.terminal_id = '{poison_id}' \
             BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END"
        ))
        .await?;
    let poison = in_state(&poison_id, 1, CLINIC, CampaignState::Updated);
    let good = traffic(5, 2);
    app.publish(&good[0]).await?;
    app.publish(&poison).await?;
    for r in &good[1..] {
        app.publish(r).await?;
    }
    let letters = app
        .publisher
        .dead_letters(1, Duration::from_secs(30))
        .await?;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].0, "store_rejected");
    let body: serde_json::Value = serde_json::from_slice(&letters[0].1)?;
    assert_eq!(body["terminal_id"], poison_id.as_str());
    assert_exactly_once(&app, good.len() as i64).await?;
    app.shutdown().await
}
