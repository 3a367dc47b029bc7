//! Findings end to end (contract §6–§7): scripted reports through RabbitMQ into the
//! real service on FLEET_CLOCK, judged against clinic hours and the seeded
//! maintenance windows, read back through the API.

use std::time::{Duration, Instant};

use fleet_e2e::reports::terminal_id;
use fleet_e2e::{DbKind, TestApp};
use fleet_web::auth::Role;
use serde_json::{Value, json};

/// A report as an agent sends it, at `observed_at`, with `extra` sections merged in.
fn report(tid: &str, seq: u64, clinic: &str, observed_at: &str, extra: Value) -> Value {
    let mut r = json!({
        "schema": "fleet.report.v1",
        "terminal_id": tid,
        "seq": seq,
        "observed_at": observed_at,
        "clinic_code": clinic,
        "agent_version": "0.1.0",
        "versions": { "face_library": "5.1.0" },
        "distribution": { "enabled": true, "downloaded": { "face_library": { "version": "5.1.0", "at": "2025-01-20T02:00:00+09:00" } } },
        "reboot": { "pending": false },
        "line_auth": { "state": "connected" },
    });
    if let (Some(r), Some(extra)) = (r.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            r.insert(k.clone(), v.clone());
        }
    }
    r
}

fn down() -> Value {
    json!({ "line_auth": { "state": "disconnected" } })
}

/// Findings the API lists for `query`, once `until` holds of them (bounded wait).
async fn findings_until(
    app: &TestApp,
    token: &str,
    query: &str,
    until: impl Fn(&[Value]) -> bool,
) -> anyhow::Result<Vec<Value>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = app
            .get_json(&format!("/api/v1/findings?{query}"), Some(token))
            .await?;
        anyhow::ensure!(status == 200, "findings answered {status}: {body}");
        let list = body["findings"].as_array().cloned().unwrap_or_default();
        if until(&list) {
            return Ok(list);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "findings for {query:?} never satisfied the test: {list:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn put_hours(app: &TestApp, token: &str, clinic: &str, hours: Value) -> anyhow::Result<()> {
    let response = reqwest::Client::new()
        .put(format!("{}/api/v1/clinics/{clinic}/hours", app.base_url))
        .bearer_auth(token)
        .json(&hours)
        .send()
        .await?;
    anyhow::ensure!(
        response.status() == 200,
        "PUT hours answered {}: {}",
        response.status(),
        response.text().await?
    );
    Ok(())
}

const TOKYO_HOSPITAL: &str = "1310000001";
const TOYAMA_HOSPITAL: &str = "1610000001";
const TOKYO_CLINIC: &str = "1310000002";

/// The east outage of 2025-02-01 (seed 000): for hospitals open around the clock, a
/// line-auth failure at 23:30 in Tokyo is suppressed by the east window while the same
/// failure in Toyama (west) is active; a clinic with default hours raises nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_auth_down_during_the_east_outage() -> anyhow::Result<()> {
    for kind in [DbKind::Sqlite, DbKind::Postgres] {
        let app = TestApp::spawn_with(
            kind,
            &[
                ("FLEET_CLOCK", "2025-02-01T23:45:00+09:00"),
                ("FLEET_ALERT_SWEEP_MS", "200"),
            ],
        )
        .await?;
        let support = app.vendor_token(Role::Support, "demo");
        for clinic in [TOKYO_HOSPITAL, TOYAMA_HOSPITAL] {
            put_hours(&app, &support, clinic, json!({ "always_open": true })).await?;
        }
        for (n, clinic) in [(1, TOKYO_HOSPITAL), (2, TOYAMA_HOSPITAL), (3, TOKYO_CLINIC)] {
            let tid = terminal_id(n);
            app.publish(&report(
                &tid,
                1,
                clinic,
                "2025-02-01T23:30:00+09:00",
                down(),
            ))
            .await?;
            app.publish(&report(
                &tid,
                2,
                clinic,
                "2025-02-01T23:41:00+09:00",
                down(),
            ))
            .await?;
        }
        let list = findings_until(&app, &support, "kind=line_auth_down", |l| l.len() >= 2).await?;
        let by_clinic = |c: &str| list.iter().find(|f| f["clinic_code"] == c).cloned();
        let tokyo = by_clinic(TOKYO_HOSPITAL).expect("Tokyo hospital's finding");
        assert_eq!(tokyo["status"], "suppressed", "{tokyo:#}");
        assert_eq!(tokyo["window_id"], "seed-2025-02-01-east-outage");
        assert_eq!(tokyo["since"], "2025-02-01T23:30:00+09:00");
        assert!(
            tokyo["detail"].as_str().unwrap().contains("東日本"),
            "{tokyo:#}"
        );
        let toyama = by_clinic(TOYAMA_HOSPITAL).expect("Toyama hospital's finding");
        assert_eq!(toyama["status"], "active", "{toyama:#}");
        assert_eq!(toyama["severity"], "urgent");
        assert!(toyama["window_id"].is_null());
        assert!(
            toyama["instruction_ja"]
                .as_str()
                .unwrap()
                .contains("希望する")
        );
        assert!(
            by_clinic(TOKYO_CLINIC).is_none(),
            "closed at 23:30: {list:#?}"
        );

        // Reconnected: resolved, and listed as such when asked.
        app.publish(&report(
            &terminal_id(2),
            3,
            TOYAMA_HOSPITAL,
            "2025-02-01T23:44:00+09:00",
            json!({}),
        ))
        .await?;
        let resolved = findings_until(&app, &support, "kind=line_auth_down&status=resolved", |l| {
            !l.is_empty()
        })
        .await?;
        assert_eq!(resolved[0]["clinic_code"], TOYAMA_HOSPITAL);
        assert!(resolved[0]["resolved_at"].is_string());
        app.shutdown().await?;
    }
    Ok(())
}

/// Reader errors: three Fujitsu FUJP55 in 15 minutes while open raise `reader_fault`
/// with Fujitsu's remedy; patient-side 006 (an expired card) however often raises
/// nothing. A reader on a USB hub and an unverified NFC reader are tickets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_errors_are_judged_per_maker_and_side() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(
        DbKind::Sqlite,
        &[("FLEET_CLOCK", "2025-03-04T10:20:00+09:00")],
    )
    .await?;
    let support = app.vendor_token(Role::Support, "demo");
    let errors = |code: &str, n: u32| {
        json!({ "reader": { "maker": "fujitsu", "connected": true, "errors": [
            { "code": code, "at": "2025-03-04T10:05:00+09:00", "count": n }
        ] } })
    };
    // A Tuesday morning: the clinic is open by default hours.
    let broken = terminal_id(10);
    let patient = terminal_id(11);
    app.publish(&report(
        &broken,
        1,
        "2712345678",
        "2025-03-04T10:06:00+09:00",
        errors("FUJP55", 3),
    ))
    .await?;
    app.publish(&report(
        &patient,
        1,
        "2712345679",
        "2025-03-04T10:06:00+09:00",
        errors("006", 9),
    ))
    .await?;
    let hub = terminal_id(12);
    app.publish(&report(
        &hub,
        1,
        "2712345680",
        "2025-03-04T10:06:00+09:00",
        json!({ "reader": { "maker": "canon", "connected": true, "via_usb_hub": true },
                "nfc_reader": { "model": "RC-S300" } }),
    ))
    .await?;
    let list = findings_until(&app, &support, "", |l| l.len() >= 3).await?;
    let of = |t: &str, kind: &str| {
        list.iter()
            .find(|f| f["terminal_id"] == t && f["kind"] == kind)
            .cloned()
    };
    let fault = of(&broken, "reader_fault").expect("FUJP55 x3 is a reader fault");
    assert_eq!(fault["severity"], "urgent");
    assert_eq!(fault["cause"], "FUJP55");
    assert!(
        fault["instruction_ja"].as_str().unwrap() != "",
        "the maker's remedy: {fault:#}"
    );
    assert!(
        list.iter().all(|f| f["terminal_id"] != patient.as_str()),
        "a patient's expired card is never a finding: {list:#?}"
    );
    assert!(of(&hub, "reader_on_usb_hub").is_some(), "{list:#?}");
    let nfc = of(&hub, "nfc_reader_unverified").expect("RC-S300 is not RC-S300/S1");
    assert_eq!(nfc["severity"], "ticket");

    // The terminal view shows the errors classified, with the maker's remedy.
    let (status, detail) = app
        .get_json(&format!("/api/v1/terminals/{patient}"), Some(&support))
        .await?;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["reader_errors"][0]["side"], "patient");
    app.shutdown().await
}

/// Certificates: 20 days left is a ticket with `days_left`; expired is urgent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_near_and_past_expiry() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(
        DbKind::Postgres,
        &[("FLEET_CLOCK", "2025-03-04T10:20:00+09:00")],
    )
    .await?;
    let oncall = app.vendor_token(Role::Oncall, "demo");
    let cert =
        |not_after: &str| json!({ "certificate": { "issuer": "JPKI", "not_after": not_after } });
    let soon = terminal_id(20);
    let past = terminal_id(21);
    app.publish(&report(
        &soon,
        1,
        "2712345678",
        "2025-03-04T10:15:00+09:00",
        cert("2025-03-24T12:00:00+09:00"),
    ))
    .await?;
    app.publish(&report(
        &past,
        1,
        "2712345679",
        "2025-03-04T10:15:00+09:00",
        cert("2025-03-01T00:00:00+09:00"),
    ))
    .await?;
    let list = findings_until(&app, &oncall, "", |l| l.len() >= 2).await?;
    let soon_f = list
        .iter()
        .find(|f| f["terminal_id"] == soon.as_str())
        .expect("expiring");
    assert_eq!(soon_f["kind"], "certificate_expiring");
    assert_eq!(soon_f["severity"], "ticket");
    assert_eq!(soon_f["days_left"], 20);
    let past_f = list
        .iter()
        .find(|f| f["terminal_id"] == past.as_str())
        .expect("expired");
    assert_eq!(past_f["kind"], "certificate_expired");
    assert_eq!(past_f["severity"], "urgent");
    // Urgent first.
    assert_eq!(list[0]["severity"], "urgent");
    app.shutdown().await
}

/// Silence is judged by the sweep on the service's clock, and only while the clinic
/// is open: a terminal off at 23:00 on a weekday, or all day on a public holiday,
/// raises nothing; one silent on a weekday morning does, and its next report
/// resolves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_counts_only_while_the_clinic_is_open() -> anyhow::Result<()> {
    // 2025-02-11 (建国記念の日, a Tuesday) at 12:00, an hour a second.
    let app = TestApp::spawn_with(
        DbKind::Sqlite,
        &[
            ("FLEET_CLOCK", "2025-02-11T12:00:00+09:00"),
            ("FLEET_ALERT_SWEEP_MS", "100"),
        ],
    )
    .await?;
    let support = app.vendor_token(Role::Support, "demo");
    let holiday = terminal_id(30);
    app.publish(&report(
        &holiday,
        1,
        "2712345678",
        "2025-02-11T08:00:00+09:00",
        json!({}),
    ))
    .await?;
    app.wait_rows("reports", 1).await?;
    // Several sweeps pass on the holiday: nothing.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (_, body) = app
        .get_json("/api/v1/findings?kind=silent", Some(&support))
        .await?;
    assert_eq!(body["findings"], json!([]), "a holiday is not silence");
    app.shutdown().await?;

    // A weekday (Wednesday) at 23:00: closed, nothing; at 10:00 the next morning: silent.
    let app = TestApp::spawn_with(
        DbKind::Sqlite,
        &[
            ("FLEET_CLOCK", "2025-02-12T23:00:00+09:00"),
            ("FLEET_CLOCK_RATE", "3600"),
            ("FLEET_ALERT_SWEEP_MS", "100"),
        ],
    )
    .await?;
    let support = app.vendor_token(Role::Support, "demo");
    let night = terminal_id(31);
    app.publish(&report(
        &night,
        1,
        "2712345678",
        "2025-02-12T22:00:00+09:00",
        json!({}),
    ))
    .await?;
    app.wait_rows("reports", 1).await?;
    let (_, body) = app
        .get_json("/api/v1/findings?kind=silent", Some(&support))
        .await?;
    assert_eq!(body["findings"], json!([]), "off at night is not silence");
    // Eleven service-hours later (11 s) the clinic has been open since 08:30.
    let list = findings_until(&app, &support, "kind=silent", |l| !l.is_empty()).await?;
    assert_eq!(list[0]["since"], "2025-02-12T22:00:00+09:00");
    assert_eq!(list[0]["severity"], "ticket");
    app.shutdown().await
}

/// Acknowledgement and scope: support acknowledges; an association sees the findings of
/// its prefectures without terminal ids and may not acknowledge; another tenant's
/// finding is 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_and_association_scope() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(
        DbKind::Sqlite,
        &[("FLEET_CLOCK", "2025-03-04T10:20:00+09:00")],
    )
    .await?;
    let support = app.vendor_token(Role::Support, "demo");
    let tid = terminal_id(40);
    app.publish(&report(
        &tid,
        1,
        "2712345678",
        "2025-03-04T10:15:00+09:00",
        json!({ "reader": { "via_usb_hub": true } }),
    ))
    .await?;
    let list = findings_until(&app, &support, "", |l| !l.is_empty()).await?;
    let id = list[0]["id"].as_str().unwrap().to_owned();
    let client = reqwest::Client::new();
    let ack = |token: String| {
        client
            .post(format!("{}/api/v1/findings/{id}/ack", app.base_url))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(ack(support.clone()).await?.status(), 204);
    assert_eq!(ack(app.association_token(&["27"])).await?.status(), 403);
    assert_eq!(
        ack(app.vendor_token(Role::Support, "other"))
            .await?
            .status(),
        404
    );
    let list = findings_until(&app, &support, "", |l| l[0]["acked_by"].is_string()).await?;
    assert!(list[0]["acked_at"].is_string());

    let association = app.association_token(&["27"]);
    let (status, body) = app.get_json("/api/v1/findings", Some(&association)).await?;
    assert_eq!(status, 200);
    let items = body["findings"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{body:#}");
    assert!(items[0].get("terminal_id").is_none(), "{body:#}");
    assert!(!body.to_string().contains(&tid), "no machine id anywhere");
    let (_, body) = app
        .get_json("/api/v1/findings", Some(&app.association_token(&["13"])))
        .await?;
    assert_eq!(
        body["findings"],
        json!([]),
        "another prefecture's association"
    );
    let (status, _) = app
        .get_json(&format!("/api/v1/terminals/{tid}"), Some(&association))
        .await?;
    assert_eq!(status, 403);
    app.shutdown().await
}

/// Hostile input to the new routes: each is refused with a clear 400 and changes
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_to_windows_and_hours() -> anyhow::Result<()> {
    let app = TestApp::spawn(DbKind::Sqlite).await?;
    let admin = app.vendor_token(Role::Admin, "demo");
    let client = reqwest::Client::new();
    let post = |body: Value| {
        client
            .post(format!("{}/api/v1/maintenance-windows", app.base_url))
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };
    let good = json!({ "id": "demo-lan-work", "scope": "demo", "area": "east",
        "starts_at": "2025-03-01T22:00:00+09:00", "ends_at": "2025-03-02T02:00:00+09:00",
        "kind": "maintenance", "title": "構内LAN工事" });
    let mut cases = Vec::new();
    for (field, value) in [
        ("scope", json!("all")),
        ("scope", json!("other")),
        ("id", json!("a\u{0}b")),
        ("id", json!("x".repeat(65))),
        ("title", json!("改行\nあり")),
        ("title", json!("長".repeat(201))),
        ("ends_at", json!("2025-03-01T21:00:00+09:00")),
        ("ends_at", json!("9999-12-31T00:00:00+09:00")),
        ("area", json!("north")),
    ] {
        let mut body = good.clone();
        body[field] = value;
        cases.push((field, body));
    }
    for (field, body) in cases {
        let response = post(body.clone()).await?;
        assert_eq!(response.status(), 400, "{field}: {body}");
        let text = response.text().await?;
        assert!(
            text.contains(field) || text.contains("window"),
            "{field}: {text}"
        );
    }
    let support = app.vendor_token(Role::Support, "demo");
    for (who, token) in [
        ("support", support.clone()),
        ("association", app.association_token(&["13"])),
    ] {
        let status = client
            .post(format!("{}/api/v1/maintenance-windows", app.base_url))
            .bearer_auth(token)
            .json(&good)
            .send()
            .await?
            .status();
        assert_eq!(status, 403, "{who} may not add windows");
    }
    assert_eq!(post(good.clone()).await?.status(), 201);
    assert_eq!(post(good).await?.status(), 409);
    let delete = |id: &str, token: String| {
        client
            .delete(format!("{}/api/v1/maintenance-windows/{id}", app.base_url))
            .bearer_auth(token)
            .send()
    };
    // The operator's windows and another tenant's are not a tenant admin's to remove.
    assert_eq!(
        delete("seed-2025-02-01-east-outage", admin.clone())
            .await?
            .status(),
        404
    );
    assert_eq!(
        delete("demo-lan-work", app.vendor_token(Role::Admin, "other"))
            .await?
            .status(),
        404
    );
    let (_, listed) = app
        .get_json(
            "/api/v1/maintenance-windows",
            Some(&app.vendor_token(Role::Support, "other")),
        )
        .await?;
    assert!(
        !listed.to_string().contains("demo-lan-work"),
        "another tenant does not see demo's own window"
    );
    assert!(listed.to_string().contains("seed-2025-02-01-east-outage"));
    assert_eq!(delete("demo-lan-work", admin.clone()).await?.status(), 204);
    assert_eq!(
        post(json!({})).await?.status(),
        400,
        "an empty window is refused"
    );
    let put = |body: Value| {
        client
            .put(format!("{}/api/v1/clinics/2712345678/hours", app.base_url))
            .bearer_auth(&support)
            .json(&body)
            .send()
    };
    for body in [
        json!({ "weekly": { "mon": [["18:00", "08:30"]] } }),
        json!({ "weekly": { "mon": [["25:00", "26:00"]] } }),
        json!({ "weekly": { "funday": [] } }),
        json!({ "always_open": "yes" }),
    ] {
        assert_eq!(put(body.clone()).await?.status(), 400, "{body}");
    }
    let (status, hours) = app
        .get_json("/api/v1/clinics/2712345678/hours", Some(&support))
        .await?;
    assert_eq!(status, 200);
    assert_eq!(
        hours["weekly"]["sat"],
        json!([["08:30", "12:30"]]),
        "defaults kept"
    );
    let (status, _) = app
        .get_json("/api/v1/findings?limit=0", Some(&support))
        .await?;
    assert_eq!(status, 400);
    let (status, _) = app
        .get_json("/api/v1/findings?cursor=abc", Some(&support))
        .await?;
    assert_eq!(status, 400);
    app.shutdown().await
}

/// `n` terminals (ids from `first_id`), one per clinic of `prefecture` (codes from
/// `first_code`), each reporting at 09:50 and then a dropped line at 10:00 and 10:11
/// of 2025-03-04 (a Tuesday: clinics open).
async fn publish_outage(
    app: &TestApp,
    n: u32,
    first_id: u32,
    prefecture: &str,
    first_code: u32,
) -> anyhow::Result<()> {
    for i in 0..n {
        let tid = terminal_id(first_id + i);
        let clinic = format!("{prefecture}{:08}", first_code + i);
        app.publish(&report(
            &tid,
            1,
            &clinic,
            "2025-03-04T09:50:00+09:00",
            json!({}),
        ))
        .await?;
        app.publish(&report(
            &tid,
            2,
            &clinic,
            "2025-03-04T10:00:00+09:00",
            down(),
        ))
        .await?;
        app.publish(&report(
            &tid,
            3,
            &clinic,
            "2025-03-04T10:11:00+09:00",
            down(),
        ))
        .await?;
    }
    Ok(())
}

/// A scripted outage of 300 east terminals outside any window: exactly one area
/// incident (a page, no terminal), and every terminal finding folded under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_area_outage_is_one_incident_that_folds_the_rest() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(
        DbKind::Postgres,
        &[
            ("FLEET_CLOCK", "2025-03-04T10:15:00+09:00"),
            ("FLEET_ALERT_DELIVER_MS", "200"),
        ],
    )
    .await?;
    let oncall = app.vendor_token(Role::Oncall, "demo");
    let n = 300u32;
    publish_outage(&app, n, 1000, "13", 10_000_000).await?;
    let incidents = findings_until(&app, &oncall, "kind=area_incident", |l| !l.is_empty()).await?;
    let folded = findings_until(
        &app,
        &oncall,
        "kind=line_auth_down&status=folded&limit=1000",
        |l| l.len() == n as usize,
    )
    .await?;
    let incidents_now = findings_until(&app, &oncall, "kind=area_incident", |_| true).await?;
    assert_eq!(
        incidents_now.len(),
        1,
        "exactly one incident: {incidents:#?}"
    );
    let incident = &incidents_now[0];
    assert_eq!(incident["severity"], "page");
    assert_eq!(incident["status"], "active");
    assert_eq!(incident["area"], "east");
    assert!(incident.get("terminal_id").is_none() || incident["terminal_id"].is_null());
    assert!(
        folded
            .iter()
            .all(|f| f["incident_id"] == incident["incident_id"])
    );
    let active =
        findings_until(&app, &oncall, "kind=line_auth_down&status=active", |_| true).await?;
    assert!(active.is_empty(), "nothing left unfolded: {active:#?}");
    app.shutdown().await
}

/// What Alertmanager lists once `until` holds of it (bounded wait).
async fn wait_am(
    am: &fleet_e2e::Alertmanager,
    until: impl Fn(&[Value]) -> bool,
) -> anyhow::Result<Vec<Value>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let alerts = am.alerts().await?;
        if until(&alerts) {
            return Ok(alerts);
        }
        anyhow::ensure!(Instant::now() < deadline, "Alertmanager has {alerts:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Alertmanager (a real one on loopback) receives an urgent finding with the §7
/// labels and its end when the condition clears; an area outage reaches it as one
/// page, and the page's end when the area recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_receives_pages_urgent_findings_and_their_ends() -> anyhow::Result<()> {
    let am = fleet_e2e::Alertmanager::start().await?;
    let app = TestApp::spawn_with(
        DbKind::Sqlite,
        &[
            ("FLEET_CLOCK", "2025-03-04T10:15:00+09:00"),
            ("FLEET_ALERT_DELIVER_MS", "200"),
            ("FLEET_ALERTMANAGER_URL", am.url.as_str()),
        ],
    )
    .await?;
    let support = app.vendor_token(Role::Support, "demo");
    let firing = |alerts: &[Value], name: &str| {
        alerts
            .iter()
            .filter(|a| a["labels"]["alertname"] == name)
            .cloned()
            .collect::<Vec<_>>()
    };
    // One clinic's line down while open: urgent, to the support desk.
    let tid = terminal_id(500);
    app.publish(&report(
        &tid,
        1,
        "1610000009",
        "2025-03-04T10:00:00+09:00",
        down(),
    ))
    .await?;
    app.publish(&report(
        &tid,
        2,
        "1610000009",
        "2025-03-04T10:11:00+09:00",
        down(),
    ))
    .await?;
    let alerts = wait_am(&am, |a| !firing(a, "line_auth_down").is_empty()).await?;
    let alert = &firing(&alerts, "line_auth_down")[0];
    let labels = &alert["labels"];
    assert_eq!(labels["severity"], "urgent");
    assert_eq!(labels["tenant"], "demo");
    assert_eq!(labels["prefecture"], "16");
    assert_eq!(labels["area"], "west");
    assert_eq!(labels["clinic"], "1610000009");
    assert_eq!(labels["terminal"], tid.as_str());
    assert!(
        alert["annotations"]["instruction"]
            .as_str()
            .unwrap()
            .contains("希望する")
    );
    let starts = chrono::DateTime::parse_from_rfc3339(alert["startsAt"].as_str().unwrap())?;
    assert_eq!(
        starts,
        chrono::DateTime::parse_from_rfc3339("2025-03-04T10:00:00+09:00")?,
        "startsAt is the finding's since, on the terminal's clock"
    );
    let resolved_before = am.received("resolved").await?;
    app.publish(&report(
        &tid,
        3,
        "1610000009",
        "2025-03-04T10:12:00+09:00",
        json!({}),
    ))
    .await?;
    wait_am(&am, |a| firing(a, "line_auth_down").is_empty()).await?;
    assert!(
        am.received("resolved").await? > resolved_before,
        "its end was posted"
    );

    // An outage of 60 west terminals: one page for the area.
    let n = 60u32;
    publish_outage(&app, n, 600, "16", 11_000_000).await?;
    findings_until(
        &app,
        &support,
        "kind=line_auth_down&status=folded&limit=1000",
        |l| l.len() == n as usize,
    )
    .await?;
    let alerts = wait_am(&am, |a| {
        firing(a, "area_incident").len() == 1 && firing(a, "line_auth_down").is_empty()
    })
    .await?;
    let page = &firing(&alerts, "area_incident")[0];
    assert_eq!(page["labels"]["severity"], "page");
    assert_eq!(page["labels"]["area"], "west");
    assert!(page["labels"].get("terminal").is_none(), "{page:#}");

    // The area recovers: the page ends.
    for i in 0..n {
        let tid = terminal_id(600 + i);
        let clinic = format!("16{:08}", 11_000_000 + i);
        app.publish(&report(
            &tid,
            4,
            &clinic,
            "2025-03-04T10:13:00+09:00",
            json!({}),
        ))
        .await?;
    }
    wait_am(&am, |a| firing(a, "area_incident").is_empty()).await?;
    app.shutdown().await
}
