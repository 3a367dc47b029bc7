//! End-to-end: reports over a real RabbitMQ into a real database and out of the HTTP
//! API, on SQLite and on PostgreSQL.

use std::time::Duration;

use fleet_e2e::broker::Props;
use fleet_e2e::reports::{in_state, terminal_id};
use fleet_e2e::{DbKind, TestApp};
use fleet_protocol::CampaignState;
use fleet_web::auth::Role;
use serde_json::{Value, json};

const OSAKA_CLINIC: &str = "2712345678";
const TOKYO_PHARMACY: &str = "1341234567";

/// Runs a test body once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_databases {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() -> anyhow::Result<()> {
                super::$body(fleet_e2e::DbKind::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() -> anyhow::Result<()> {
                super::$body(fleet_e2e::DbKind::Postgres).await
            }
        }
    };
}

mod agent_outage;
mod alertmanager;
mod browser;
mod clock;
mod deploy_rules;
mod faults;
mod findings;
mod replicas;
mod scale;
mod serial_broker_outage;
mod topology;

on_both_databases!(four_states_reach_the_api, four_states);
on_both_databases!(duplicates_and_stale_seq_change_nothing, idempotency);
on_both_databases!(refused_messages_are_dead_lettered, dead_letters);

async fn four_states(kind: DbKind) -> anyhow::Result<()> {
    let app = TestApp::spawn(kind).await?;
    let states = CampaignState::ALL;
    for (i, state) in states.iter().enumerate() {
        app.publish(&in_state(
            &terminal_id(i as u32 + 1),
            1,
            OSAKA_CLINIC,
            *state,
        ))
        .await?;
    }
    app.publish(&in_state(
        &terminal_id(9),
        1,
        TOKYO_PHARMACY,
        CampaignState::RebootRequired,
    ))
    .await?;
    app.wait_rows("campaign_states", 5).await?;
    let token = app.vendor_token(Role::Support, "demo");

    let (status, clinic) = app
        .get_json(&format!("/api/v1/clinics/{OSAKA_CLINIC}"), Some(&token))
        .await?;
    assert_eq!(status, 200, "{clinic}");
    assert_eq!(clinic["clinic_code"], OSAKA_CLINIC);
    assert_eq!(clinic["prefecture"], "27");
    assert_eq!(clinic["area"], "west");
    let terminals = clinic["terminals"].as_array().expect("terminals");
    assert_eq!(terminals.len(), 4);
    for (i, state) in states.iter().enumerate() {
        let t = terminals
            .iter()
            .find(|t| t["terminal_id"] == terminal_id(i as u32 + 1))
            .expect("terminal listed");
        assert_eq!(t["campaigns"]["face-library-5.1.0"], state.as_str(), "{t}");
        assert_eq!(t["last_seq"], 1);
        assert_eq!(t["last_seen_at"], "2026-01-22T10:00:00+09:00");
    }
    let by_state = |s: CampaignState| {
        terminals
            .iter()
            .find(|t| t["campaigns"]["face-library-5.1.0"] == s.as_str())
            .cloned()
            .unwrap_or(Value::Null)
    };
    let reboot = by_state(CampaignState::RebootRequired);
    assert_eq!(
        reboot["face_library"],
        json!({ "running": "5.0.3", "downloaded": "5.1.0" })
    );
    assert_eq!(reboot["reboot_pending"], true);
    assert_eq!(reboot["line_auth"], "connected");
    assert_eq!(
        reboot["actions"]["face-library-5.1.0"]["cause"],
        "restart_needed"
    );
    let unknown = by_state(CampaignState::Unknown);
    assert_eq!(
        unknown["face_library"],
        json!({ "running": null, "downloaded": null })
    );
    assert_eq!(unknown["reboot_pending"], false);
    let not_downloaded = by_state(CampaignState::NotDownloaded);
    assert_eq!(
        not_downloaded["actions"]["face-library-5.1.0"]["cause"],
        "distribution_disabled"
    );

    let (status, rollout) = app
        .get_json("/api/v1/rollout?campaign=face-library-5.1.0", Some(&token))
        .await?;
    assert_eq!(status, 200);
    assert_eq!(
        rollout,
        json!({ "campaign": "face-library-5.1.0", "total": 5,
                "states": { "updated": 1, "reboot_required": 2, "not_downloaded": 1, "unknown": 1 } })
    );
    let (_, osaka) = app
        .get_json(
            "/api/v1/rollout?campaign=face-library-5.1.0&prefecture=27",
            Some(&token),
        )
        .await?;
    assert_eq!(osaka["total"], 4);
    assert_eq!(osaka["states"]["reboot_required"], 1);
    let (status, _) = app
        .get_json("/api/v1/rollout?campaign=no-such-campaign", Some(&token))
        .await?;
    assert_eq!(status, 404);
    let (status, _) = app
        .get_json(
            "/api/v1/rollout?campaign=face-library-5.1.0&prefecture=99",
            Some(&token),
        )
        .await?;
    assert_eq!(status, 400);

    // The Japanese page says what to do.
    let (status, page) = app
        .get_text(&format!("/clinics/{OSAKA_CLINIC}"), Some(&token))
        .await?;
    assert_eq!(status, 200);
    assert!(page.contains("資格確認端末を再起動してください"), "{page}");
    assert!(page.contains("大阪府"));
    assert!(page.contains("2026-01-22 10:00 JST"));
    assert!(
        page.contains("要再起動")
            && page.contains("更新済み")
            && page.contains("未ダウンロード")
            && page.contains("不明")
    );
    let (_, english) = app
        .get_text(&format!("/clinics/{OSAKA_CLINIC}?lang=en"), Some(&token))
        .await?;
    assert!(english.contains("Restart the terminal"), "{english}");
    app.shutdown().await
}

async fn idempotency(kind: DbKind) -> anyhow::Result<()> {
    let app = TestApp::spawn(kind).await?;
    let id = terminal_id(1);
    let token = app.vendor_token(Role::Support, "demo");
    let mut newer = in_state(&id, 10, OSAKA_CLINIC, CampaignState::RebootRequired);
    newer["reader"] = json!({ "maker": "fujitsu", "errors": [ { "code": "FUJP55", "message": "タイムアウト", "at": "2026-01-22T09:03:12+09:00", "count": 2 } ] });
    app.publish(&newer).await?;
    app.wait_rows("reports", 1).await?;
    let (_, before) = app
        .get_json(&format!("/api/v1/clinics/{OSAKA_CLINIC}"), Some(&token))
        .await?;

    // The same message again, and an older seq that claims the update is done.
    app.publish(&newer).await?;
    let mut older = in_state(&id, 9, OSAKA_CLINIC, CampaignState::Updated);
    older["observed_at"] = json!("2026-01-22T11:00:00+09:00");
    app.publish(&older).await?;
    app.wait_rows("reports", 2).await?;
    // A marker after both, so we know they were processed.
    app.publish(&in_state(
        &terminal_id(2),
        1,
        TOKYO_PHARMACY,
        CampaignState::Unknown,
    ))
    .await?;
    app.wait_rows("reports", 3).await?;

    let (_, after) = app
        .get_json(&format!("/api/v1/clinics/{OSAKA_CLINIC}"), Some(&token))
        .await?;
    assert_eq!(
        before, after,
        "a duplicate or a stale seq changed the current state"
    );
    assert_eq!(after["terminals"][0]["last_seq"], 10);
    assert_eq!(
        after["terminals"][0]["campaigns"]["face-library-5.1.0"],
        "reboot_required"
    );
    assert_eq!(
        app.count("reports").await?,
        3,
        "the stale report is kept in the history, the duplicate is not"
    );
    assert_eq!(
        app.count("reader_errors").await?,
        1,
        "the duplicate did not add its reader error again"
    );

    // A newer report that lacks sections keeps what was observed before.
    let sparse = json!({ "schema": "fleet.report.v1", "terminal_id": id, "seq": 11,
        "observed_at": "2026-01-22T12:00:00+09:00", "clinic_code": OSAKA_CLINIC });
    app.publish(&sparse).await?;
    app.wait_rows("reports", 4).await?;
    let (_, sparse_after) = app
        .get_json(&format!("/api/v1/clinics/{OSAKA_CLINIC}"), Some(&token))
        .await?;
    let t = &sparse_after["terminals"][0];
    assert_eq!(t["last_seq"], 11);
    assert_eq!(t["face_library"]["running"], "5.0.3");
    assert_eq!(t["line_auth"], "connected");
    assert_eq!(t["campaigns"]["face-library-5.1.0"], "reboot_required");
    app.shutdown().await
}

async fn dead_letters(kind: DbKind) -> anyhow::Result<()> {
    let app = TestApp::spawn(kind).await?;
    let token = app.vendor_token(Role::Support, "demo");
    let good = in_state(
        &terminal_id(1),
        5,
        OSAKA_CLINIC,
        CampaignState::RebootRequired,
    );
    app.publish(&good).await?;
    app.wait_rows("reports", 1).await?;
    let (_, before) = app
        .get_json(&format!("/api/v1/clinics/{OSAKA_CLINIC}"), Some(&token))
        .await?;

    // Each of these would, if accepted, change terminal 1's state (seq 6, updated).
    let updated = in_state(&terminal_id(1), 6, OSAKA_CLINIC, CampaignState::Updated);
    let mut missing = updated.clone();
    missing.as_object_mut().map(|o| o.remove("clinic_code"));
    let mut bad_code = updated.clone();
    bad_code["clinic_code"] = json!("4812345678");
    let mut huge = updated.clone();
    huge["padding"] = json!("x".repeat(70 * 1024));
    let publish = |body: Vec<u8>, routing_key: &'static str, props: Props| {
        let publisher = &app.publisher;
        async move { publisher.publish(routing_key, &body, props).await }
    };
    publish(
        b"{\"schema\": \"fleet.report.v1\", ".to_vec(),
        "v1.demo.report",
        Props::default(),
    )
    .await?;
    publish(
        serde_json::to_vec(&missing)?,
        "v1.demo.report",
        Props::default(),
    )
    .await?;
    publish(
        serde_json::to_vec(&bad_code)?,
        "v1.demo.report",
        Props::default(),
    )
    .await?;
    publish(
        serde_json::to_vec(&huge)?,
        "v1.demo.report",
        Props::default(),
    )
    .await?;
    publish(
        serde_json::to_vec(&updated)?,
        "v1.acme.report",
        Props::default(),
    )
    .await?;
    publish(
        serde_json::to_vec(&updated)?,
        "v1.demo.report",
        Props {
            user_id: None,
            ..Props::default()
        },
    )
    .await?;

    let letters = app
        .publisher
        .dead_letters(6, Duration::from_secs(20))
        .await?;
    let mut reasons: Vec<&str> = letters.iter().map(|(r, _)| r.as_str()).collect();
    reasons.sort_unstable();
    assert_eq!(
        reasons,
        vec![
            "body_too_large",
            "invalid_field",
            "invalid_json",
            "missing_field",
            "missing_user_id",
            "tenant_mismatch"
        ]
    );
    // The dead letter carries the original body, so nothing is lost.
    let huge_letter = letters
        .iter()
        .find(|(r, _)| r == "body_too_large")
        .map(|(_, b)| b.len());
    assert!(huge_letter.unwrap_or_default() > 64 * 1024);

    // A marker after them, then nothing but the marker changed.
    app.publish(&in_state(
        &terminal_id(2),
        1,
        TOKYO_PHARMACY,
        CampaignState::Unknown,
    ))
    .await?;
    app.wait_rows("reports", 2).await?;
    let (_, after) = app
        .get_json(&format!("/api/v1/clinics/{OSAKA_CLINIC}"), Some(&token))
        .await?;
    assert_eq!(before, after);
    assert_eq!(app.count("reports").await?, 2);

    // Dead letters are not redelivered: the queue is empty after acks.
    assert!(
        app.publisher
            .dead_letters(1, Duration::from_millis(500))
            .await?
            .is_empty()
    );
    app.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_is_limited_to_tenant_and_prefectures() -> anyhow::Result<()> {
    let app = TestApp::spawn(DbKind::Sqlite).await?;
    app.publish(&in_state(
        &terminal_id(1),
        1,
        OSAKA_CLINIC,
        CampaignState::Updated,
    ))
    .await?;
    app.wait_rows("campaign_states", 1).await?;
    let path = format!("/api/v1/clinics/{OSAKA_CLINIC}");

    for p in [
        path.as_str(),
        "/api/v1/rollout?campaign=face-library-5.1.0",
        "/",
        &format!("/clinics/{OSAKA_CLINIC}"),
    ] {
        let (status, _) = app.get_text(p, None).await?;
        assert_eq!(status, 401, "{p} without a token");
    }
    let (status, _) = app.get_json(&path, Some("not-a-jwt")).await?;
    assert_eq!(status, 401);

    let other_vendor = app.vendor_token(Role::Admin, "acme");
    assert_eq!(app.get_json(&path, Some(&other_vendor)).await?.0, 404);
    assert_eq!(
        app.get_text(&format!("/clinics/{OSAKA_CLINIC}"), Some(&other_vendor))
            .await?
            .0,
        404
    );
    let (_, empty) = app
        .get_json(
            "/api/v1/rollout?campaign=face-library-5.1.0",
            Some(&other_vendor),
        )
        .await?;
    assert_eq!(empty["total"], 0);

    let tokyo = app.association_token(&["13"]);
    assert_eq!(app.get_json(&path, Some(&tokyo)).await?.0, 404);
    assert_eq!(
        app.get_json(
            "/api/v1/rollout?campaign=face-library-5.1.0&prefecture=27",
            Some(&tokyo)
        )
        .await?
        .0,
        404
    );

    let osaka = app.association_token(&["27", "28"]);
    let (status, clinic) = app.get_json(&path, Some(&osaka)).await?;
    assert_eq!(status, 200);
    assert_eq!(
        clinic["terminals"][0]["campaigns"]["face-library-5.1.0"],
        "updated"
    );
    let (_, page) = app
        .get_text(&format!("/clinics/{OSAKA_CLINIC}"), Some(&osaka))
        .await?;
    assert!(
        !page.contains("ONS-"),
        "an association must not see hostnames"
    );
    let (_, rollout) = app
        .get_json("/api/v1/rollout?campaign=face-library-5.1.0", Some(&osaka))
        .await?;
    assert_eq!(rollout["total"], 1);

    let own = app.vendor_token(Role::Support, "demo");
    let (_, page) = app
        .get_text(&format!("/clinics/{OSAKA_CLINIC}"), Some(&own))
        .await?;
    assert!(page.contains("ONS-"), "vendor staff see hostnames");

    // Health and metrics need no token.
    assert_eq!(app.get_text("/healthz", None).await?.0, 200);
    assert_eq!(app.get_text("/readyz", None).await?.0, 200);
    let (status, metrics) = app.get_text("/metrics", None).await?;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("fleetd_fleet_ingest_reports_total{outcome=\"applied\"} 1"),
        "{metrics}"
    );
    app.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_sets_a_session_cookie() -> anyhow::Result<()> {
    let app = TestApp::spawn(DbKind::Sqlite).await?;
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let token = app.vendor_token(Role::Support, "demo");
    let bad = client
        .post(format!("{}/login", app.base_url))
        .form(&[("token", "nonsense")])
        .send()
        .await?;
    assert_eq!(bad.status().as_u16(), 401);
    let ok = client
        .post(format!("{}/login", app.base_url))
        .form(&[("token", token.as_str())])
        .send()
        .await?;
    assert_eq!(ok.status().as_u16(), 303);
    let page = client.get(format!("{}/", app.base_url)).send().await?;
    assert_eq!(page.status().as_u16(), 200);
    let text = page.text().await?;
    assert!(text.contains("全体の状況"), "{text}");
    let api = client
        .get(format!(
            "{}/api/v1/rollout?campaign=face-library-5.1.0",
            app.base_url
        ))
        .send()
        .await?;
    assert_eq!(
        api.status().as_u16(),
        200,
        "the session cookie works for the API too"
    );
    app.shutdown().await
}
