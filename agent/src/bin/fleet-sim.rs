//! `fleet-sim`: publishes simulated terminals' reports over AMQP, as real agents would.
//!
//! `fleet-sim demo` feeds a handful of clinics whose terminals cover all four states
//! of the face-library 5.1.0 campaign and each cause the support desk must tell apart
//! (restart, automatic morning restart, distribution disabled, line authentication
//! down, manual download, no version reported). Terminal ids are fixed and `seq` is
//! the current Unix time, so running the demo again updates the same terminals.
//! The fleet-scale simulator (rates, January replay, area outages) comes later.

use anyhow::Context;
use chrono::Utc;
use clap::{Parser, Subcommand};
use fleet_protocol::JST;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(
    name = "fleet-sim",
    about = "Publishes simulated terminal reports over AMQP"
)]
struct Cli {
    /// Broker URL; the user in it must publish for --tenant.
    #[arg(
        long,
        env = "FLEET_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    amqp_url: String,
    #[arg(long, default_value = "demo")]
    tenant: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A handful of clinics covering every campaign state and cause.
    Demo,
}

/// One simulated terminal of the demo.
struct DemoTerminal {
    clinic: &'static str,
    hostname: &'static str,
    kind: Kind,
}

#[derive(Clone, Copy)]
enum Kind {
    Updated,
    RestartNeeded,
    AutoReboot,
    DistributionDisabled,
    LineAuthDown,
    ManualDownload,
    NoVersion,
    UpdatedWithReaderErrors,
}

const DEMO: &[DemoTerminal] = &[
    // 大阪府 medical clinic, two terminals.
    DemoTerminal {
        clinic: "2712345678",
        hostname: "ONS-PC01",
        kind: Kind::RestartNeeded,
    },
    DemoTerminal {
        clinic: "2712345678",
        hostname: "ONS-PC02",
        kind: Kind::Updated,
    },
    // 東京都 pharmacy.
    DemoTerminal {
        clinic: "1341234567",
        hostname: "YAKKYOKU-01",
        kind: Kind::DistributionDisabled,
    },
    // 北海道 dental clinic.
    DemoTerminal {
        clinic: "0131234567",
        hostname: "DENTAL-01",
        kind: Kind::LineAuthDown,
    },
    // 福岡県 medical clinic with automatic morning restarts.
    DemoTerminal {
        clinic: "4011234567",
        hostname: "FUK-ONS",
        kind: Kind::AutoReboot,
    },
    // 長野県 (east area) clinic, still to download by hand.
    DemoTerminal {
        clinic: "2011234567",
        hostname: "NAGANO-ONS",
        kind: Kind::ManualDownload,
    },
    // 兵庫県 clinic whose agent reports no version yet.
    DemoTerminal {
        clinic: "2811234567",
        hostname: "KOBE-ONS",
        kind: Kind::NoVersion,
    },
    // 大阪府 pharmacy, updated, with reader faults to look at.
    DemoTerminal {
        clinic: "2741234567",
        hostname: "OSAKA-YK",
        kind: Kind::UpdatedWithReaderErrors,
    },
];

fn report(index: usize, t: &DemoTerminal, seq: u64) -> Value {
    let now = Utc::now().with_timezone(&JST);
    let at = |hours_ago: i64| (now - chrono::Duration::hours(hours_ago)).to_rfc3339();
    let terminal_id = format!("00000000-0000-4000-8000-{:012x}", index + 1);
    let mut r = json!({
        "schema": "fleet.report.v1",
        "terminal_id": terminal_id,
        "seq": seq,
        "observed_at": now.to_rfc3339(),
        "clinic_code": t.clinic,
        "agent_version": env!("CARGO_PKG_VERSION"),
        "host": { "hostname": t.hostname, "os": "Windows 11 IoT Enterprise LTSC 2024",
                  "booted_at": at(3), "auto_reboot": matches!(t.kind, Kind::AutoReboot) },
        "line_auth": { "state": "connected", "checked_at": at(0) },
        "reader": { "maker": "fujitsu", "model": "Caora", "connected": true, "via_usb_hub": false, "mode": "unattended" },
        "certificate": { "issuer": "Online Billing NW Common RootCA", "not_after": "2028-04-30T23:59:59+09:00" }
    });
    let old = json!({ "face_library": "5.0.3", "qualification_app": "2.4.1", "distribution_app": "1.8.0" });
    let new = json!({ "face_library": "5.1.0", "qualification_app": "2.4.1", "distribution_app": "1.8.0" });
    let downloaded = |hours_ago| json!({ "enabled": true, "downloaded": { "face_library": { "version": "5.1.0", "at": at(hours_ago) } } });
    match t.kind {
        Kind::Updated => {
            r["versions"] = new;
            r["distribution"] = downloaded(30);
            r["reboot"] = json!({ "pending": false });
        }
        Kind::UpdatedWithReaderErrors => {
            r["versions"] = new;
            r["distribution"] = downloaded(30);
            r["reboot"] = json!({ "pending": false });
            r["reader"]["errors"] = json!([
                { "code": "FUJP55", "message": "タイムアウト", "at": at(1), "count": 3 },
                { "code": "011", "message": "ネットワークエラー", "at": at(1), "count": 1 }
            ]);
        }
        Kind::RestartNeeded | Kind::AutoReboot => {
            r["versions"] = old;
            r["distribution"] = downloaded(1);
            r["reboot"] = json!({ "pending": true, "reason": "update_downloaded" });
        }
        Kind::DistributionDisabled => {
            r["versions"] = old;
            r["distribution"] = json!({ "enabled": false });
            r["reader"]["maker"] = json!("canon");
            r["reader"]["model"] = json!("Hi-CARA");
        }
        Kind::LineAuthDown => {
            r["versions"] = old;
            r["distribution"] = json!({ "enabled": true });
            r["line_auth"] = json!({ "state": "disconnected", "checked_at": at(0) });
            r["reader"]["errors"] = json!([{ "code": "011", "message": "ネットワークエラー", "at": at(0), "count": 5 }]);
        }
        Kind::ManualDownload => {
            r["versions"] = old;
            r["distribution"] = json!({ "enabled": true });
            r["reader"]["mode"] = json!("visual");
        }
        Kind::NoVersion => {
            r.as_object_mut().map(|o| o.remove("certificate"));
        }
    }
    r
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let tenant = fleet_protocol::TenantSlug::parse(&cli.tenant).context("--tenant")?;
    let user = cli
        .amqp_url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .unwrap_or("guest")
        .to_owned();
    let conn = Connection::connect(&cli.amqp_url, ConnectionProperties::default())
        .await
        .context("connecting to RabbitMQ")?;
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    match cli.command {
        Command::Demo => {
            let seq = u64::try_from(Utc::now().timestamp()).unwrap_or_default();
            let mut confirms = Vec::new();
            for (i, t) in DEMO.iter().enumerate() {
                let body = report(i, t, seq);
                // Every demo report must be one the service accepts.
                let bytes = serde_json::to_vec(&body)?;
                let parsed = fleet_protocol::Report::parse(&bytes)
                    .context("a demo report does not parse")?;
                let props = BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_content_type("application/json".into())
                    .with_message_id(parsed.message_id().into())
                    .with_user_id(user.as_str().into());
                confirms.push(
                    channel
                        .basic_publish(
                            "fleet.reports".into(),
                            tenant.routing_key().into(),
                            BasicPublishOptions::default(),
                            &bytes,
                            props,
                        )
                        .await?,
                );
            }
            for confirm in confirms {
                anyhow::ensure!(confirm.await?.is_ack(), "the broker refused a demo report");
            }
            println!("published {} demo reports for tenant {tenant}", DEMO.len());
        }
    }
    conn.close(200, "done".into()).await?;
    Ok(())
}
