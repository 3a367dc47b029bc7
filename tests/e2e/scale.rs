//! Issue 4 behaviours: live rollout counters that never drift, campaigns as data.

use fleet_e2e::reports::{in_state, terminal_id};
use fleet_e2e::{DbKind, TestApp};
use fleet_protocol::{Campaign, CampaignState, DistributionWindow};
use fleet_web::auth::Role;
use serde_json::json;

const OSAKA: &str = "2712345678";
const KOBE: &str = "2811234567";

on_both_databases!(counters_follow_every_change, counters);
on_both_databases!(a_new_campaign_assesses_every_terminal, new_campaign);

async fn counters(kind: DbKind) -> anyhow::Result<()> {
    let app = TestApp::spawn(kind).await?;
    // Terminal 1 walks not_downloaded → reboot_required → updated; terminal 2 moves
    // from Osaka to Kobe; terminal 3 is sent twice and once stale.
    let walk = [
        CampaignState::NotDownloaded,
        CampaignState::RebootRequired,
        CampaignState::Updated,
    ];
    for (seq, state) in walk.iter().enumerate() {
        app.publish(&in_state(&terminal_id(1), seq as u64 + 1, OSAKA, *state))
            .await?;
    }
    app.publish(&in_state(&terminal_id(2), 1, OSAKA, CampaignState::Unknown))
        .await?;
    app.publish(&in_state(
        &terminal_id(2),
        2,
        KOBE,
        CampaignState::RebootRequired,
    ))
    .await?;
    let three = in_state(&terminal_id(3), 5, KOBE, CampaignState::NotDownloaded);
    app.publish(&three).await?;
    app.publish(&three).await?;
    app.publish(&in_state(&terminal_id(3), 4, KOBE, CampaignState::Updated))
        .await?;
    app.wait_rows("reports", 7).await?;

    assert!(
        app.store.check_counters().await?.is_empty(),
        "counters drift from a recount"
    );
    let token = app.vendor_token(Role::Support, "demo");
    let (_, all) = app
        .get_json("/api/v1/rollout?campaign=face-library-5.1.0", Some(&token))
        .await?;
    assert_eq!(
        all["states"],
        json!({ "updated": 1, "reboot_required": 1, "not_downloaded": 1, "unknown": 0 })
    );
    let (_, osaka) = app
        .get_json(
            "/api/v1/rollout?campaign=face-library-5.1.0&prefecture=27",
            Some(&token),
        )
        .await?;
    assert_eq!(osaka["total"], 1, "terminal 2 left Osaka: {osaka}");
    let (_, hyogo) = app
        .get_json(
            "/api/v1/rollout?campaign=face-library-5.1.0&prefecture=28",
            Some(&token),
        )
        .await?;
    assert_eq!(
        hyogo["states"],
        json!({ "updated": 0, "reboot_required": 1, "not_downloaded": 1, "unknown": 0 })
    );

    // Drift is detected and repaired.
    use sea_orm::ConnectionTrait;
    let db = app.store.connection();
    db.execute_unprepared(
        "UPDATE rollout_counters SET terminals = terminals + 5 WHERE state = 'updated'",
    )
    .await?;
    assert_eq!(app.store.check_counters().await?.len(), 1);
    app.store.repair_counters().await?;
    assert!(app.store.check_counters().await?.is_empty());
    app.shutdown().await
}

/// How often the consumer re-reads campaigns and publishers in [`new_campaign`].
const REFRESH_MS: u64 = 200;

async fn new_campaign(kind: DbKind) -> anyhow::Result<()> {
    let refresh = REFRESH_MS.to_string();
    let app = TestApp::spawn_with(kind, &[("FLEET_INGEST_REFRESH_MS", &refresh)]).await?;
    let mut old = in_state(&terminal_id(1), 1, OSAKA, CampaignState::Updated);
    old["versions"]["qualification_app"] = json!("2.4.1");
    let mut new = in_state(&terminal_id(2), 1, KOBE, CampaignState::Updated);
    new["versions"]["qualification_app"] = json!("2.5.0");
    app.publish(&old).await?;
    app.publish(&new).await?;
    app.publish(&in_state(&terminal_id(3), 1, KOBE, CampaignState::Unknown))
        .await?;
    app.wait_rows("campaign_states", 3).await?;

    let campaign = Campaign {
        id: "qualification-app-2.5.0".into(),
        component: "qualification_app".into(),
        required_version: "2.5".into(),
        windows: vec![DistributionWindow::Continuous {
            from: chrono::DateTime::parse_from_rfc3339("2026-03-01T00:00:00+09:00")?,
            until: None,
        }],
        deadline: None,
        title_ja: "資格確認端末アプリ 2.5".into(),
        title_en: "Qualification app 2.5".into(),
    };
    assert_eq!(
        app.store
            .add_campaign(&campaign, fleet_store::now_jst())
            .await?,
        3
    );
    assert!(
        app.store
            .add_campaign(&campaign, fleet_store::now_jst())
            .await
            .is_err(),
        "the same id twice is refused"
    );
    let mut broken = campaign.clone();
    broken.id = "broken".into();
    broken.required_version = "two".into();
    assert!(
        app.store
            .add_campaign(&broken, fleet_store::now_jst())
            .await
            .is_err()
    );

    let token = app.vendor_token(Role::Support, "demo");
    let (status, rollout) = app
        .get_json(
            "/api/v1/rollout?campaign=qualification-app-2.5.0",
            Some(&token),
        )
        .await?;
    assert_eq!(status, 200);
    assert_eq!(
        rollout["states"],
        json!({ "updated": 1, "reboot_required": 0, "not_downloaded": 1, "unknown": 1 })
    );
    let (_, clinic) = app
        .get_json(&format!("/api/v1/clinics/{OSAKA}"), Some(&token))
        .await?;
    assert_eq!(
        clinic["terminals"][0]["campaigns"]["qualification-app-2.5.0"],
        "not_downloaded"
    );
    assert_eq!(
        clinic["terminals"][0]["campaigns"]["face-library-5.1.0"],
        "updated"
    );
    assert!(app.store.check_counters().await?.is_empty());

    // New reports are assessed for the new campaign too: ingest re-reads campaigns
    // every FLEET_INGEST_REFRESH_MS, so after one interval the next batch knows it.
    tokio::time::sleep(std::time::Duration::from_millis(2 * REFRESH_MS)).await;
    let mut upgraded = in_state(&terminal_id(1), 2, OSAKA, CampaignState::Updated);
    upgraded["versions"]["qualification_app"] = json!("2.5.0");
    app.publish(&upgraded).await?;
    app.wait_rows("reports", 4).await?;
    let (_, rollout) = app
        .get_json(
            "/api/v1/rollout?campaign=qualification-app-2.5.0",
            Some(&token),
        )
        .await?;
    assert_eq!(rollout["states"]["updated"], 2, "{rollout}");
    app.shutdown().await
}

on_both_databases!(succession_moves_terminals_and_keeps_history, succession);

async fn succession(kind: DbKind) -> anyhow::Result<()> {
    use fleet_protocol::{ClinicCode, TenantSlug};
    let app = TestApp::spawn(kind).await?;
    const NEW: &str = "2812345670";
    for n in 1..=2 {
        app.publish(&in_state(
            &terminal_id(n),
            1,
            OSAKA,
            CampaignState::RebootRequired,
        ))
        .await?;
        app.publish(&in_state(&terminal_id(n), 2, OSAKA, CampaignState::Updated))
            .await?;
    }
    app.wait_rows("reports", 4).await?;
    let demo = TenantSlug::parse("demo")?;
    let moved = app
        .store
        .move_terminals(
            &demo,
            ClinicCode::parse(OSAKA)?,
            ClinicCode::parse(NEW)?,
            None,
            fleet_store::now_jst(),
        )
        .await?;
    assert_eq!(moved, 2);

    let token = app.vendor_token(Role::Support, "demo");
    let (status, new) = app
        .get_json(&format!("/api/v1/clinics/{NEW}"), Some(&token))
        .await?;
    assert_eq!(status, 200);
    assert_eq!(new["prefecture"], "28");
    assert_eq!(new["terminals"].as_array().map(Vec::len), Some(2));
    assert_eq!(new["terminals"][0]["last_seq"], 2);
    let (status, old) = app
        .get_json(&format!("/api/v1/clinics/{OSAKA}"), Some(&token))
        .await?;
    assert_eq!(status, 200, "the old clinic still exists");
    assert_eq!(old["terminals"], json!([]));
    assert_eq!(app.count("reports").await?, 4, "history is kept");
    let (_, hyogo) = app
        .get_json(
            "/api/v1/rollout?campaign=face-library-5.1.0&prefecture=28",
            Some(&token),
        )
        .await?;
    assert_eq!(hyogo["states"]["updated"], 2);
    let (_, osaka) = app
        .get_json(
            "/api/v1/rollout?campaign=face-library-5.1.0&prefecture=27",
            Some(&token),
        )
        .await?;
    assert_eq!(osaka["total"], 0);

    // The agent still sends the old code until its settings change: filed under the new.
    app.publish(&in_state(&terminal_id(1), 3, OSAKA, CampaignState::Updated))
        .await?;
    app.wait_rows("reports", 5).await?;
    let (_, new) = app
        .get_json(&format!("/api/v1/clinics/{NEW}"), Some(&token))
        .await?;
    assert_eq!(new["terminals"].as_array().map(Vec::len), Some(2));
    let (_, old) = app
        .get_json(&format!("/api/v1/clinics/{OSAKA}"), Some(&token))
        .await?;
    assert_eq!(old["terminals"], json!([]));
    assert!(app.store.check_counters().await?.is_empty());
    app.shutdown().await
}

on_both_databases!(history_partitions_and_retention, history);

async fn history(kind: DbKind) -> anyhow::Result<()> {
    use fleet_e2e::DbKind::Postgres;
    let app = TestApp::spawn(kind).await?;
    let now = fleet_store::now_jst();
    // A January report (before any month partition exists) and one from today.
    let mut old = in_state(&terminal_id(1), 1, OSAKA, CampaignState::RebootRequired);
    old["reader"] = json!({ "errors": [ { "code": "011", "at": "2026-01-22T09:00:00+09:00" } ] });
    let mut recent = in_state(&terminal_id(1), 2, OSAKA, CampaignState::Updated);
    recent["observed_at"] = json!(now.to_rfc3339());
    app.publish(&old).await?;
    app.publish(&recent).await?;
    app.wait_rows("reports", 2).await?;

    if kind == Postgres {
        // The month of today exists already; January's report sits in the default
        // partition until January gets its own, then it moves there.
        assert_eq!(app.count("reports_default").await?, 1);
        let january = chrono::DateTime::parse_from_rfc3339("2026-01-15T12:00:00+09:00")?;
        let done = app.store.maintain_history(january, 0).await?;
        assert!(
            done.partitions_created
                .contains(&"reports_y2026m01".to_owned()),
            "{done:?}"
        );
        assert_eq!(app.count("reports_y2026m01").await?, 1);
        assert_eq!(app.count("reports_default").await?, 0);
        // A redelivery of the January report still collides in its partition.
        app.publish(&old).await?;
        let mut marker = in_state(&terminal_id(2), 1, OSAKA, CampaignState::Unknown);
        marker["observed_at"] = json!(now.to_rfc3339());
        app.publish(&marker).await?;
        app.wait_rows("reports", 3).await?;
        assert_eq!(app.count("reports_y2026m01").await?, 1);
    }

    // Keep 30 days: January goes, today stays.
    let done = app.store.maintain_history(now, 30).await?;
    if kind == Postgres {
        assert!(
            done.partitions_dropped
                .contains(&"reports_y2026m01".to_owned()),
            "{done:?}"
        );
    } else {
        assert_eq!(done.rows_deleted, 1, "{done:?}");
    }
    let left = app.count("reports").await?;
    assert_eq!(left, if kind == Postgres { 2 } else { 1 });
    assert_eq!(
        app.count("reader_errors").await?,
        0,
        "old reader errors go too"
    );
    // Current state is not history: the terminal still shows its newest report.
    let token = app.vendor_token(Role::Support, "demo");
    let (_, clinic) = app
        .get_json(&format!("/api/v1/clinics/{OSAKA}"), Some(&token))
        .await?;
    assert_eq!(clinic["terminals"][0]["last_seq"], 2);
    app.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn causes_that_depend_on_time_are_reassessed() -> anyhow::Result<()> {
    use fleet_protocol::{Campaign, Report};
    use fleet_store::IncomingReport;
    let app = TestApp::spawn(DbKind::Sqlite).await?;
    let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s);
    // Reported on 10 January, before distribution, then never again.
    let mut early = in_state(&terminal_id(1), 1, OSAKA, CampaignState::NotDownloaded);
    early["observed_at"] = json!("2026-01-10T10:00:00+09:00");
    early["distribution"] = json!({ "enabled": true });
    let body = serde_json::to_string(&early)?;
    let incoming = IncomingReport {
        tenant: fleet_protocol::TenantSlug::parse("demo")?,
        report: Report::parse(body.as_bytes())?,
        body,
        received_at: at("2026-01-10T10:00:01+09:00")?,
    };
    let campaigns = std::sync::Arc::new(vec![Campaign::face_library_5_1_0()]);
    app.store
        .write_batch(
            std::sync::Arc::from(vec![incoming]),
            campaigns,
            at("2026-01-10T10:00:01+09:00")?,
        )
        .await?;
    let token = app.vendor_token(Role::Support, "demo");
    let cause = |clinic: serde_json::Value| {
        clinic["terminals"][0]["actions"]["face-library-5.1.0"]["cause"].clone()
    };
    let (_, clinic) = app
        .get_json(&format!("/api/v1/clinics/{OSAKA}"), Some(&token))
        .await?;
    assert_eq!(cause(clinic), "distribution_not_started");

    // Still before distribution: nothing changes.
    assert_eq!(
        app.store
            .reassess_time_dependent(at("2026-01-15T12:00:00+09:00")?)
            .await?,
        0
    );
    // After the nights began, a silent terminal was not on during distribution.
    assert_eq!(
        app.store
            .reassess_time_dependent(at("2026-01-22T12:00:00+09:00")?)
            .await?,
        1
    );
    let (_, clinic) = app
        .get_json(&format!("/api/v1/clinics/{OSAKA}"), Some(&token))
        .await?;
    assert_eq!(cause(clinic), "powered_off_during_distribution");
    assert!(app.store.check_counters().await?.is_empty());
    app.shutdown().await
}

/// PostgreSQL's schema for heavy writes: room in each page of `terminals` for a row's
/// next version, so a heartbeat's update stays on its page and touches no index
/// (`m20261204_000007`), and reader errors indexed by time instead of keyed by
/// terminal (`m20261204_000008`; `duplicates_and_stale_seq_change_nothing` shows a
/// redelivery still adds no error). The gains are in docs/BENCHMARKS.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_schema_suits_heavy_writes() -> anyhow::Result<()> {
    use anyhow::Context;
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let app = TestApp::spawn(DbKind::Postgres).await?;
    let db = app.store.connection();
    let one =
        |sql: &str| db.query_one_raw(Statement::from_string(DbBackend::Postgres, sql.to_owned()));
    let row = one(
        "SELECT array_to_string(reloptions, ',') AS options FROM pg_class \
         WHERE relname = 'terminals' AND relkind = 'r'",
    )
    .await?
    .context("no terminals table")?;
    let options: Option<String> = row.try_get("", "options")?;
    assert_eq!(options.as_deref(), Some("fillfactor=70"));
    let row = one(
        "SELECT string_agg(indexdef, '; ' ORDER BY indexname) AS indexes FROM pg_indexes \
         WHERE tablename = 'reader_errors'",
    )
    .await?
    .context("no reader_errors table")?;
    let indexes: Option<String> = row.try_get("", "indexes")?;
    assert_eq!(
        indexes.as_deref(),
        Some(
            "CREATE INDEX reader_errors_by_terminal ON public.reader_errors USING btree (terminal_id, at); \
             CREATE INDEX reader_errors_by_time ON public.reader_errors USING btree (at)"
        ),
        "no unique key; by time for retention, by terminal and time for the findings' count"
    );
    app.shutdown().await
}
