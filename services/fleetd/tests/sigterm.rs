//! SIGTERM in the middle of a backlog, to the real `fleetd` binary: the batch in hand
//! is committed and acked, or left unacked for redelivery — never half-applied. After
//! a restart every report is in the history exactly once and the counters equal a
//! recount.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fleet_e2e::broker::{Props, Publisher, TestVhost};
use fleet_e2e::db::{DbKind, TestDb};
use fleet_e2e::reports::{in_state, terminal_id};
use fleet_protocol::CampaignState;
use fleet_store::{DatabaseUrl, Store};

const REPORTS: u32 = 3000;

fn start(db: &TestDb, vhost: &TestVhost, port: u16) -> anyhow::Result<Child> {
    Ok(Command::new(env!("CARGO_BIN_EXE_fleetd"))
        .arg("serve")
        .env("FLEET_DATABASE_URL", &db.url)
        .env("FLEET_AMQP_URL", vhost.url())
        .env("FLEET_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env(
            "FLEET_JWT_SECRET",
            "a-sigterm-test-secret-of-32-bytes-at-least",
        )
        .env("FLEET_INGEST_BATCH_SIZE", "25")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?)
}

fn terminate(child: &mut Child) -> anyhow::Result<std::process::ExitStatus> {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "kill -TERM failed");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            anyhow::bail!("fleetd did not stop within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn reports(store: &Store) -> anyhow::Result<i64> {
    use sea_orm::ConnectionTrait;
    let db = store.connection();
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM reports",
        ))
        .await?;
    Ok(row
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_backlog_loses_and_doubles_nothing() -> anyhow::Result<()> {
    mid_backlog(DbKind::Sqlite).await
}

/// On PostgreSQL two batches are in flight when the signal comes: both are committed
/// and acked in order, or left for redelivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_backlog_loses_and_doubles_nothing_with_batches_in_flight() -> anyhow::Result<()>
{
    mid_backlog(DbKind::Postgres).await
}

async fn mid_backlog(kind: DbKind) -> anyhow::Result<()> {
    let vhost = tokio::task::spawn_blocking(TestVhost::create).await??;
    let db = tokio::task::spawn_blocking(move || TestDb::create(kind)).await??;

    // The backlog is in the queue before the service starts, as after an outage.
    let conn =
        lapin::Connection::connect(&vhost.url(), lapin::ConnectionProperties::default()).await?;
    fleet_ingest::topology::declare(&conn.create_channel().await?).await?;
    let publisher = Publisher::connect(&vhost.url()).await?;
    for n in 0..REPORTS {
        let report = in_state(
            &terminal_id(n % 300),
            u64::from(n / 300) + 1,
            "2712345678",
            CampaignState::ALL[(n % 4) as usize],
        );
        let props = Props {
            message_id: None,
            ..Props::default()
        };
        publisher
            .publish("v1.demo.report", &serde_json::to_vec(&report)?, props)
            .await?;
    }

    let mut fleetd = start(&db, &vhost, free_port()?)?;
    let store = Store::connect(&DatabaseUrl::parse(&db.url)?).await?;
    // Wait until it is mid-backlog, then SIGTERM.
    let deadline = Instant::now() + Duration::from_secs(60);
    while reports(&store).await.unwrap_or_default() < 200 {
        anyhow::ensure!(Instant::now() < deadline, "fleetd never started ingesting");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = terminate(&mut fleetd)?;
    assert!(
        status.success(),
        "fleetd exits cleanly on SIGTERM: {status}"
    );
    let after_stop = reports(&store).await?;
    assert!(
        after_stop < i64::from(REPORTS),
        "the stop came too late to be mid-backlog ({after_stop})"
    );
    assert!(
        store.check_counters().await?.is_empty(),
        "a batch was half-applied"
    );

    // Restart: the rest is redelivered, nothing twice.
    let mut fleetd = start(&db, &vhost, free_port()?)?;
    let deadline = Instant::now() + Duration::from_secs(90);
    while reports(&store).await.unwrap_or_default() < i64::from(REPORTS) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the backlog did not drain after restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Nothing left to deliver: a recount now would include any doubled report.
    vhost
        .wait_drained("fleet.ingest", Duration::from_secs(20))
        .await?;
    assert_eq!(reports(&store).await?, i64::from(REPORTS));
    assert!(store.check_counters().await?.is_empty());
    assert!(terminate(&mut fleetd)?.success());
    // Its channel is closed, so anything it had not acked would be ready again.
    assert_eq!(
        vhost.ready_messages("fleet.ingest").await?,
        0,
        "every report was acked"
    );
    Ok(())
}
