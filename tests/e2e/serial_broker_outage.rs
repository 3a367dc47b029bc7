//! The broker stopped (`rabbitmqctl stop_app`) while the real agent keeps reporting,
//! then started again: every report the agent made arrives in the database exactly
//! once, in `seq` order, with nothing lost (issue 3).
//!
//! Stopping the broker breaks every other test that uses it, so this module's name
//! starts with `serial_broker_outage` and it runs on its own, after the main run:
//!
//! ```sh
//! cargo nextest run -p fleet-e2e -E 'not test(/^serial_/)'
//! cargo nextest run -p fleet-e2e -E 'test(/^serial_/)'
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fleet_agent::daemon::Backoff;
use fleet_agent::{Agent, SeqStore, Settings};
use fleet_e2e::{DbKind, TestApp};
use sea_orm::ConnectionTrait;

fn rabbitmqctl(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("rabbitmqctl").args(args).output()?;
    anyhow::ensure!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// How the broker goes away.
#[derive(Clone, Copy)]
enum Outage {
    /// `rabbitmqctl stop_app`: the whole broker (serial only).
    StopApp,
    /// Only this test's vhost: permissions cleared, its connections closed. Safe to
    /// run beside other tests; it exercises the same reconnect and spool path.
    Vhost,
}

/// Undoes an outage when dropped, also when the test fails or panics.
enum Restore {
    Broker(BrokerStopped),
    Vhost(String),
}

impl Drop for Restore {
    fn drop(&mut self) {
        if let Self::Vhost(vhost) = self
            && let Err(err) =
                rabbitmqctl(&["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"])
        {
            eprintln!("restoring permissions failed: {err}");
        }
    }
}

fn begin(outage: Outage, vhost: &str) -> anyhow::Result<Restore> {
    match outage {
        Outage::StopApp => Ok(Restore::Broker(BrokerStopped::stop()?)),
        Outage::Vhost => {
            rabbitmqctl(&["clear_permissions", "-p", vhost, "guest"])?;
            rabbitmqctl(&["close_all_connections", "-p", vhost, "test: vhost outage"])?;
            Ok(Restore::Vhost(vhost.to_owned()))
        }
    }
}

/// Starts the broker again when dropped, also when the test fails or panics, and
/// waits until it is up, so no later test finds it stopped.
struct BrokerStopped;

impl BrokerStopped {
    fn stop() -> anyhow::Result<Self> {
        rabbitmqctl(&["stop_app"])?;
        Ok(Self)
    }
}

impl Drop for BrokerStopped {
    fn drop(&mut self) {
        if let Err(err) = rabbitmqctl(&["start_app"]) {
            eprintln!("restarting the broker failed: {err}");
        }
        if let Err(err) = rabbitmqctl(&["await_startup", "--timeout", "120"]) {
            eprintln!("the broker did not come back: {err}");
        }
    }
}

fn sample(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../agent/examples/fixtures/sample-terminal")
        .join(file)
}

fn agent_settings(
    state: &Path,
    amqp_url: &str,
    terminal_id: uuid::Uuid,
) -> anyhow::Result<Settings> {
    let toml = format!(
        r#"
terminal_id = "{terminal_id}"
clinic_code = "2712345678"
tenant = "demo"
amqp_url = "{amqp_url}"
state_dir = "{state}"
interval_secs = 1
check_interval_secs = 1

[host]
booted_at_file = "{booted}"

[versions]
face_library = "{face}"

[line_auth]
enabled = false
"#,
        state = state.display(),
        booted = sample("booted_at.txt").display(),
        face = sample("OQS-Auth/Version.info").display(),
    );
    Ok(Settings::from_toml(&toml, Path::new("outage.toml"))?)
}

/// The stored seqs of one terminal, in the order they were received.
async fn stored_seqs(app: &TestApp, terminal_id: uuid::Uuid) -> anyhow::Result<Vec<i64>> {
    let db = app.store.connection();
    let rows = db
        .query_all_raw(sea_orm::Statement::from_sql_and_values(
            db.get_database_backend(),
            match db.get_database_backend() {
                sea_orm::DatabaseBackend::Postgres => {
                    "SELECT seq FROM reports WHERE terminal_id = $1 ORDER BY received_at, seq"
                }
                _ => "SELECT seq FROM reports WHERE terminal_id = ? ORDER BY received_at, seq",
            },
            [terminal_id.to_string().into()],
        ))
        .await?;
    rows.iter()
        .map(|r| r.try_get::<i64>("", "seq").map_err(Into::into))
        .collect()
}

async fn wait_for(
    app: &TestApp,
    terminal_id: uuid::Uuid,
    count: usize,
    within: Duration,
) -> anyhow::Result<Vec<i64>> {
    let deadline = Instant::now() + within;
    loop {
        let seqs = stored_seqs(app, terminal_id).await.unwrap_or_default();
        if seqs.len() >= count || Instant::now() > deadline {
            return Ok(seqs);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_broker_outage_every_agent_report_arrives_once_in_seq_order() -> anyhow::Result<()> {
    outage_then_recovery(Outage::StopApp).await
}

/// The same with only the test's vhost taken away: runs in the main (parallel) run.
/// Its module path still starts with `serial_broker_outage`, so it is named apart:
/// see `crate::agent_outage`.
pub async fn vhost_outage() -> anyhow::Result<()> {
    outage_then_recovery(Outage::Vhost).await
}

async fn outage_then_recovery(kind: Outage) -> anyhow::Result<()> {
    let app = TestApp::spawn(DbKind::Sqlite).await?;
    let dir = std::env::temp_dir().join(format!("fleet-outage-{}", uuid::Uuid::new_v4()));
    let state = dir.join("state");
    let terminal_id = uuid::Uuid::new_v4();
    let settings = agent_settings(&state, &app.vhost().url(), terminal_id)?;
    let agent = Agent::new(settings)?.with_backoff(Backoff::new(
        Duration::from_millis(200),
        Duration::from_secs(2),
    ));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(agent.run(async {
        let _ = stopped.await;
    }));

    let before = wait_for(&app, terminal_id, 3, Duration::from_secs(30)).await?;
    anyhow::ensure!(
        before.len() >= 3,
        "the agent reports before the outage: {before:?}"
    );

    let outage = begin(kind, &app.vhost().name)?;
    let seq_at_stop = SeqStore::new(&state).peek()?;
    // The agent keeps looking at the terminal and spooling a report every second.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let seq_at_start = SeqStore::new(&state).peek()?;
    drop(outage);
    anyhow::ensure!(
        seq_at_start >= seq_at_stop + 5,
        "reports were made during the outage ({seq_at_stop} → {seq_at_start})"
    );

    // A few more after the broker is back, then a clean stop.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(30), task).await??;
    let made = SeqStore::new(&state).peek()?;

    let seqs = wait_for(&app, terminal_id, made as usize, Duration::from_secs(90)).await?;
    // Redeliveries would show as extra rows only if the store let them in: once the
    // queue has nothing left to deliver, a recount shows them.
    app.vhost()
        .wait_drained("fleet.ingest", Duration::from_secs(20))
        .await?;
    let seqs_again = stored_seqs(&app, terminal_id).await?;
    assert_eq!(seqs, seqs_again, "nothing arrived twice later");
    let expected: Vec<i64> = (0..made as i64).collect();
    assert_eq!(
        seqs, expected,
        "every report made (seq 0..{made}) is stored exactly once, received in seq order"
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
