//! Competing consumers (design.md: N `fleetd ingest` replicas on one queue): two
//! consumers on one database take interleaved batches that touch the same terminals
//! at the same time. Each terminal must end in the state of its newest report and the
//! rollout counters must equal a recount — a batch must never apply its reports to a
//! state that another batch is changing underneath it.

use std::time::{Duration, Instant};

use fleet_e2e::DbKind;
use fleet_e2e::broker::{Props, Publisher, TestVhost};
use fleet_e2e::db::TestDb;
use fleet_e2e::reports::{in_state, terminal_id};
use fleet_protocol::{CampaignState, Report, TenantSlug};
use fleet_store::{DatabaseUrl, Store};
use sea_orm::ConnectionTrait;

const CLINIC: &str = "1311234567";
const TERMINALS: u32 = 100;
const SEQS: u64 = 6;
/// One report per transaction, so the two replicas hold consecutive reports of one
/// terminal at once: its first report (the terminal is new) and its next ones.
const BATCH: u16 = 1;

/// The state each report puts its terminal in: it flips with every report (and each
/// report carries every field that decides it), so a lost update shows.
fn state_at(n: u32, seq: u64) -> CampaignState {
    if (u64::from(n) + seq).is_multiple_of(2) {
        CampaignState::Updated
    } else {
        CampaignState::RebootRequired
    }
}

/// One `fleetd ingest` replica: its own store handle, its own AMQP connection.
async fn replica(
    vhost: &TestVhost,
    database: &DatabaseUrl,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<(
    fleet_ingest::IngestMetrics,
    tokio::task::JoinHandle<anyhow::Result<()>>,
)> {
    let store = Store::connect(database).await?;
    let metrics = fleet_ingest::IngestMetrics::register(&prometheus::Registry::new())?;
    let settings = fleet_ingest::IngestSettings {
        amqp_url: fleet_protocol::SecretUrl::new(vhost.url()),
        batch_size: BATCH,
        max_wait: Duration::from_millis(20),
        ..fleet_ingest::IngestSettings::default()
    };
    let task = tokio::spawn(fleet_ingest::run(
        settings,
        store,
        metrics.clone(),
        fleet_ingest::BrokerHealth::new(),
        shutdown,
    ));
    Ok((metrics, task))
}

fn written(metrics: &fleet_ingest::IngestMetrics) -> u64 {
    ["applied", "history_only"]
        .iter()
        .map(|o| metrics.reports.with_label_values(&[*o]).get())
        .sum()
}

on_both_databases!(two_consumers_keep_states_and_counters_exact, two_consumers);

async fn two_consumers(kind: DbKind) -> anyhow::Result<()> {
    let vhost = tokio::task::spawn_blocking(TestVhost::create).await??;
    let db = tokio::task::spawn_blocking(move || TestDb::create(kind)).await??;
    let database = DatabaseUrl::parse(&db.url)?;
    let store = Store::connect(&database).await?;
    store.migrate().await?;
    store.seed_defaults(fleet_store::now_jst()).await?;
    let conn =
        lapin::Connection::connect(&vhost.url(), lapin::ConnectionProperties::default()).await?;
    fleet_ingest::topology::declare(&conn.create_channel().await?).await?;

    // The queue holds every report, terminal after terminal, before either replica
    // starts: both are busy from the first moment to the last, each with the same
    // terminal as the other most of the time.
    let routing_key = TenantSlug::parse("demo")?.routing_key();
    let publisher = Publisher::connect(&vhost.url()).await?;
    for n in 1..=TERMINALS {
        for seq in 1..=SEQS {
            let body =
                serde_json::to_vec(&in_state(&terminal_id(n), seq, CLINIC, state_at(n, seq)))?;
            let props = Props {
                message_id: Some(Report::parse(&body)?.message_id()),
                ..Props::default()
            };
            publisher.publish(&routing_key, &body, props).await?;
        }
    }
    let sent = u64::from(TERMINALS) * SEQS;

    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let (a, task_a) = replica(&vhost, &database, shutdown.clone()).await?;
    let (b, task_b) = replica(&vhost, &database, shutdown).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while written(&a) + written(&b) < sent {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} of {sent} reports written",
            written(&a) + written(&b)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(true);
    for task in [task_a, task_b] {
        tokio::time::timeout(Duration::from_secs(20), task).await???;
    }
    assert!(
        written(&a) > 0 && written(&b) > 0,
        "both replicas must write, or this tests nothing: {} and {}",
        written(&a),
        written(&b)
    );

    let db = store.connection();
    let query =
        |sql: &str| sea_orm::Statement::from_string(db.get_database_backend(), sql.to_owned());
    let history = db
        .query_one_raw(query("SELECT COUNT(*) AS n FROM reports"))
        .await?
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()?;
    assert_eq!(
        history,
        Some(i64::try_from(sent)?),
        "every report exactly once"
    );
    let drift = store.check_counters().await?;
    assert!(
        drift.is_empty(),
        "rollout counters differ from a recount: {drift:?}"
    );
    let rows = db
        .query_all_raw(query(
            "SELECT t.terminal_id, t.last_seq, c.state FROM terminals t \
             JOIN campaign_states c ON c.terminal_id = t.terminal_id \
             WHERE c.campaign_id = 'face-library-5.1.0' ORDER BY t.terminal_id",
        ))
        .await?;
    assert_eq!(rows.len(), TERMINALS as usize);
    for (row, n) in rows.iter().zip(1..) {
        let id: String = row.try_get("", "terminal_id")?;
        assert_eq!(id, terminal_id(n));
        let last_seq: i64 = row.try_get("", "last_seq")?;
        let state: String = row.try_get("", "state")?;
        assert_eq!(
            last_seq,
            i64::try_from(SEQS)?,
            "terminal {n} ends at its newest report"
        );
        assert_eq!(
            state,
            state_at(n, SEQS).as_str(),
            "terminal {n} is in its newest report's state"
        );
    }
    Ok(())
}

on_both_databases!(batches_in_flight_apply_in_delivery_order, in_flight_order);

/// One consumer writes two batches at once on PostgreSQL (`Store::batches_in_flight`).
/// With one report per batch, a terminal's first report and its next one are in
/// flight together; the next one lacks the sections the first had, so if it were
/// applied first, the first would be stale and what it observed would be lost
/// (contract §2: a newer report that lacks a field keeps the earlier value).
async fn in_flight_order(kind: DbKind) -> anyhow::Result<()> {
    use fleet_e2e::TestApp;
    use fleet_web::auth::Role;
    const TERMINALS: u32 = 200;
    let app = TestApp::spawn_with(kind, &[("FLEET_INGEST_BATCH_SIZE", "1")]).await?;
    for n in 1..=TERMINALS {
        let id = terminal_id(n);
        app.publish(&in_state(&id, 1, CLINIC, CampaignState::Updated))
            .await?;
        app.publish(
            &serde_json::json!({ "schema": "fleet.report.v1", "terminal_id": id,
            "seq": 2, "observed_at": "2026-01-22T11:00:00+09:00", "clinic_code": CLINIC }),
        )
        .await?;
    }
    app.wait_rows("reports", i64::from(TERMINALS) * 2).await?;
    let token = app.vendor_token(Role::Support, "demo");
    let (status, clinic) = app
        .get_json(&format!("/api/v1/clinics/{CLINIC}"), Some(&token))
        .await?;
    assert_eq!(status, 200, "{clinic}");
    let terminals = clinic["terminals"].as_array().expect("terminals");
    assert_eq!(terminals.len(), TERMINALS as usize);
    for t in terminals {
        assert_eq!(t["last_seq"], 2, "{t}");
        assert_eq!(
            t["line_auth"], "connected",
            "the first report was lost: {t}"
        );
        assert_eq!(t["campaigns"]["face-library-5.1.0"], "updated", "{t}");
    }
    assert!(app.store.check_counters().await?.is_empty());
    app.shutdown().await
}
