//! Rules that must hold alike on SQLite and PostgreSQL, run against both: a real
//! SQLite file and a throwaway database on the local PostgreSQL.

use std::process::Command;
use std::sync::Arc;

use fleet_protocol::{Report, TenantSlug};
use fleet_store::{DatabaseUrl, IncomingReport, Outcome, Store};
use sea_orm::{ConnectionTrait, Statement};

/// A migrated, seeded store on a new database, and what removes it.
struct Fresh {
    store: Store,
    drop: Box<dyn FnOnce()>,
}

fn psql(sql: &str) {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-q",
            "-c",
            sql,
        ])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn fresh(postgres: bool) -> Fresh {
    let name = format!("fleet_store_{}", uuid::Uuid::new_v4().simple());
    let (url, drop): (DatabaseUrl, Box<dyn FnOnce()>) = if postgres {
        psql(&format!("CREATE DATABASE {name}"));
        (
            DatabaseUrl::Postgres(format!("postgres://postgres@127.0.0.1:5432/{name}")),
            Box::new(move || psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))),
        )
    } else {
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("fleet.db").to_string_lossy().into_owned();
        (
            DatabaseUrl::Sqlite(path),
            Box::new(move || {
                let _ = std::fs::remove_dir_all(dir);
            }),
        )
    };
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    store.seed_defaults(fleet_store::now_jst()).await.unwrap();
    Fresh { store, drop }
}

fn report(seq: u64, observed: &str, errors: &[(&str, u32)]) -> IncomingReport {
    let errors: Vec<String> = errors
        .iter()
        .map(|(code, count)| format!(r#"{{"code":"{code}","at":"{observed}","count":{count}}}"#))
        .collect();
    let body = format!(
        r#"{{"schema":"fleet.report.v1","terminal_id":"6b1d7c3e-2f4b-4c8a-9e6d-1b3f5a7c9e20","seq":{seq},"observed_at":"{observed}","clinic_code":"2712345678","versions":{{"face_library":"5.0.3"}},"reader":{{"errors":[{}]}}}}"#,
        errors.join(",")
    );
    IncomingReport {
        tenant: TenantSlug::parse("demo").unwrap(),
        report: Report::parse(body.as_bytes()).unwrap(),
        body,
        received_at: fleet_protocol::rfc3339::parse("2026-01-20T08:00:00+09:00").unwrap(),
    }
}

async fn count(store: &Store, sql: &str) -> i64 {
    let backend = store.backend();
    let row = store
        .connection()
        .query_one_raw(Statement::from_string(backend, sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

async fn write(store: &Store, batch: Vec<IncomingReport>) -> Vec<Outcome> {
    let campaigns = Arc::new(store.campaigns().await.unwrap());
    let now = fleet_protocol::rfc3339::parse("2026-01-20T08:00:00+09:00").unwrap();
    store
        .write_batch(Arc::from(batch), campaigns, now)
        .await
        .unwrap()
}

/// The duplicate rule is `terminal_id`/`seq` (contract §1, §9) on both databases: a
/// copy of a stored seq that says something else — here another `observed_at`, which
/// PostgreSQL's partitioned history key includes — changes nothing and adds no
/// history row or reader error, across batches and within one.
async fn a_seq_is_stored_once(postgres: bool) {
    let db = fresh(postgres).await;
    let store = &db.store;
    let first = report(5, "2026-01-20T07:10:00+09:00", &[("FUJP55", 2)]);
    let copy = report(5, "2026-01-21T07:20:00+09:00", &[("011", 1), ("906", 4)]);
    let newer = report(6, "2026-01-20T07:30:00+09:00", &[]);
    assert_eq!(write(store, vec![first.clone()]).await, [Outcome::Applied]);
    assert_eq!(
        write(store, vec![newer.clone(), copy.clone()]).await,
        [Outcome::Applied, Outcome::Duplicate]
    );
    assert_eq!(write(store, vec![copy]).await, [Outcome::Duplicate]);
    assert_eq!(write(store, vec![first]).await, [Outcome::Duplicate]);
    assert_eq!(count(store, "SELECT count(*) AS n FROM reports").await, 2);
    assert_eq!(
        count(store, "SELECT count(*) AS n FROM reader_errors").await,
        1,
        "only the first copy's reader error"
    );
    let backend = store.backend();
    let observed = store
        .connection()
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT count(*) AS n FROM reports WHERE seq = 5 AND observed_at < '2026-01-21'",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(observed, 1, "the first copy is the one kept");
    drop(db.store);
    (db.drop)();
}

#[tokio::test]
async fn a_seq_is_stored_once_on_sqlite() {
    a_seq_is_stored_once(false).await;
}

#[tokio::test]
async fn a_seq_is_stored_once_on_postgres() {
    a_seq_is_stored_once(true).await;
}

/// Two batches in flight on PostgreSQL (`Store::batches_in_flight`): the later batch
/// takes its locks only after the earlier one holds its own, so a terminal in both is
/// applied in delivery order even when the later batch gets going first. The later
/// report here lacks the sections of the earlier one; applied first, it would make
/// the earlier one stale and lose what it observed (contract §2).
///
/// Deterministic both ways: the later batch is started first and given two seconds
/// alone. Without the hand-off it finishes in that time and the test fails on the
/// spot; with it, it cannot finish until the earlier batch has run.
#[tokio::test]
async fn a_later_batch_in_flight_waits_for_the_earlier_one_on_postgres() {
    let db = fresh(true).await;
    let store = db.store.clone();
    assert_eq!(store.batches_in_flight(), 2);
    let campaigns = Arc::new(store.campaigns().await.unwrap());
    let now = fleet_protocol::rfc3339::parse("2026-01-22T12:00:00+09:00").unwrap();
    let id = "7c1d7c3e-2f4b-4c8a-9e6d-1b3f5a7c9e20";
    let incoming = |body: String| IncomingReport {
        tenant: TenantSlug::parse("demo").unwrap(),
        report: Report::parse(body.as_bytes()).unwrap(),
        body,
        received_at: now,
    };
    let earlier = incoming(format!(
        r#"{{"schema":"fleet.report.v1","terminal_id":"{id}","seq":1,"observed_at":"2026-01-22T10:00:00+09:00","clinic_code":"2712345678","line_auth":{{"state":"connected","checked_at":"2026-01-22T10:00:00+09:00"}}}}"#
    ));
    let later = incoming(format!(
        r#"{{"schema":"fleet.report.v1","terminal_id":"{id}","seq":2,"observed_at":"2026-01-22T11:00:00+09:00","clinic_code":"2712345678"}}"#
    ));
    let (first_turn, first_locked) = fleet_store::Turn::next(None);
    let (second_turn, _) = fleet_store::Turn::next(Some(first_locked));
    let mut second = tokio::spawn({
        let (store, campaigns) = (store.clone(), campaigns.clone());
        async move {
            store
                .write_batch_in_turn(Arc::from(vec![later]), campaigns, now, second_turn)
                .await
        }
    });
    let alone = tokio::time::timeout(std::time::Duration::from_secs(2), &mut second).await;
    assert!(
        alone.is_err(),
        "the later batch was written before the earlier one held its locks"
    );
    let first = store
        .write_batch_in_turn(Arc::from(vec![earlier]), campaigns, now, first_turn)
        .await
        .unwrap();
    assert_eq!(first, [Outcome::Applied]);
    assert_eq!(second.await.unwrap().unwrap(), [Outcome::Applied]);
    let clinic = store
        .clinic(
            &fleet_protocol::ClinicCode::parse("2712345678").unwrap(),
            &fleet_store::Scope::Tenant(TenantSlug::parse("demo").unwrap()),
        )
        .await
        .unwrap()
        .unwrap();
    let state = &clinic.terminals[0].state;
    assert_eq!(state.last_seq, 2);
    assert!(
        state.line_auth.is_some(),
        "the earlier report's line_auth was lost"
    );
    assert!(store.check_counters().await.unwrap().is_empty());
    drop(store);
    drop(db.store);
    (db.drop)();
}
