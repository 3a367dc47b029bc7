//! The pages in a real browser: headless Chromium logs in through the form and lands
//! on the clinic page it asked for; the rendered DOM says, in Japanese, what to do.

use std::process::Command;
use std::time::Duration;

use fleet_e2e::reports::{in_state, terminal_id};
use fleet_e2e::{DbKind, TestApp};
use fleet_protocol::CampaignState;
use fleet_web::auth::Role;

const OSAKA: &str = "2712345678";

/// The DOM of `url` after its scripts and navigations ran, as Chromium renders it.
fn chromium_dom(url: &str) -> anyhow::Result<String> {
    let profile =
        std::env::temp_dir().join(format!("fleet-chromium-{}", uuid::Uuid::new_v4().simple()));
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .map_err(|e| anyhow::anyhow!("running chromium (scripts/test.sh installs it): {e}"))?;
    let _ = std::fs::remove_dir_all(&profile);
    anyhow::ensure!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_support_desk_logs_in_and_sees_what_to_do() -> anyhow::Result<()> {
    let app = TestApp::spawn(DbKind::Sqlite).await?;
    for (i, state) in CampaignState::ALL.iter().enumerate() {
        app.publish(&in_state(&terminal_id(i as u32 + 1), 1, OSAKA, *state))
            .await?;
    }
    app.wait_rows("campaign_states", 4).await?;

    // Without a session the page is the login form.
    let url = format!("{}/clinics/{OSAKA}", app.base_url);
    let dom = tokio::task::spawn_blocking(move || chromium_dom(&url)).await??;
    assert!(dom.contains("<h1>ログイン</h1>"), "{dom}");
    assert!(
        !dom.contains("data-state"),
        "no terminal is shown before logging in"
    );

    // A page that fills in and submits the login form, as a person would.
    let token = app.vendor_token(Role::Support, "demo");
    let dir = std::env::temp_dir().join(format!("fleet-login-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let login = dir.join("login.html");
    std::fs::write(
        &login,
        format!(
            r#"<!DOCTYPE html><form id="f" method="post" action="{}/login">
               <input name="token" value="{token}"><input name="next" value="/clinics/{OSAKA}"></form>
               <script>document.getElementById("f").submit()</script>"#,
            app.base_url
        ),
    )?;
    let url = format!("file://{}", login.display());
    let dom = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || chromium_dom(&url)),
    )
    .await???;
    let _ = std::fs::remove_dir_all(&dir);

    assert!(dom.contains(r#"<html lang="ja">"#), "Japanese first");
    for state in CampaignState::ALL {
        assert!(
            dom.contains(&format!(r#"data-state="{}""#, state.as_str())),
            "{} missing: {dom}",
            state.as_str()
        );
    }
    assert!(
        dom.contains("資格確認端末を再起動してください"),
        "the reboot instruction is shown"
    );
    assert!(
        dom.contains("配信機能を無効化する"),
        "the distribution-disabled instruction is shown"
    );
    assert!(dom.contains("大阪府"));
    assert!(dom.contains("2026-01-22 10:00 JST"), "times in JST");
    app.shutdown().await
}
