//! `fleet-sim`: publishes simulated terminals' reports over AMQP, as real agents would.
//!
//! `fleet-sim demo` feeds a handful of clinics whose terminals cover all four states
//! of the face-library 5.1.0 campaign and each cause the support desk must tell apart
//! (restart, automatic morning restart, distribution disabled, line authentication
//! down, manual download, no version reported). Terminal ids are fixed and `seq` is
//! the current Unix time, so running the demo again updates the same terminals.
//!
//! The fleet-scale modes build on [`fleet_tools::sim`]:
//! - `run`: N terminals spread over the 47 prefectures report round-robin at a target
//!   rate, each with its own strictly increasing `seq`;
//! - `replay`: the January 2026 distribution nights in accelerated time; terminals
//!   report while they are switched on and move not_downloaded → reboot_required →
//!   updated, with `observed_at` in simulated time;
//! - `outage`: an area's terminals release the reports they spooled during a network
//!   outage (one every 5 minutes) all at once.
//!
//! Everything is deterministic for a given `--seed` and pinned times (`--at`,
//! `--start`); `--print` writes the reports as JSON lines instead of publishing them.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, FixedOffset, Timelike, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use fleet_protocol::{Area, CampaignState, JST, Report};
use fleet_tools::sim::{Fleet, Pipeline, Situation, expected_state, report_at};
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
    /// Seed of the simulated fleet: the same seed gives the same terminals and reports.
    #[arg(long, default_value_t = 1, global = true)]
    seed: u64,
    /// Write the reports to stdout as JSON lines instead of publishing them.
    #[arg(long, global = true)]
    print: bool,
    /// Confirms outstanding before the publisher waits for them.
    #[arg(long, default_value_t = 2_000, global = true)]
    window: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A handful of clinics covering every campaign state and cause.
    Demo,
    /// N terminals report round-robin at a target rate.
    Run {
        #[arg(long, default_value_t = 1_000)]
        terminals: usize,
        /// Reports per second; 0 for as fast as the broker confirms.
        #[arg(long, default_value_t = 1_000.0)]
        rate: f64,
        /// Seconds to run; without it, until ctrl-c.
        #[arg(long)]
        duration: Option<f64>,
        /// Simulated time of the first report (RFC 3339); default now. Pin it for
        /// reproducible output, or set it inside January 2026 to see a rollout midway.
        #[arg(long)]
        at: Option<DateTime<FixedOffset>>,
    },
    /// The January 2026 distribution nights in accelerated time.
    Replay {
        #[arg(long, default_value_t = 1_000)]
        terminals: usize,
        /// Simulated seconds per real second.
        #[arg(long, default_value_t = 3_600.0)]
        speed: f64,
        /// Simulated minutes between two reports of a terminal that is switched on.
        #[arg(long, default_value_t = 60)]
        interval: u32,
        /// Reports per second at most; 0 for no limit.
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        #[arg(long, default_value = "2026-01-19T08:00:00+09:00")]
        from: DateTime<FixedOffset>,
        #[arg(long, default_value = "2026-02-02T12:00:00+09:00")]
        until: DateTime<FixedOffset>,
    },
    /// An area outage: every terminal of the area releases its spooled reports at once.
    Outage {
        #[arg(long, value_enum, default_value_t = AreaArg::East)]
        area: AreaArg,
        #[arg(long, default_value_t = 1_000)]
        terminals: usize,
        /// Spooled reports per terminal, one every 5 minutes (30 = a 2.5-hour outage).
        #[arg(long, default_value_t = 30)]
        reports_per_terminal: u32,
        /// When the outage began (RFC 3339); default: it has just ended now.
        #[arg(long)]
        start: Option<DateTime<FixedOffset>>,
        /// Reports per second at most; 0 for no limit.
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum AreaArg {
    East,
    West,
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
    let seed = cli.seed;
    match cli.command {
        Command::Demo => demo(&cli.amqp_url, &tenant).await,
        Command::Run {
            terminals,
            rate,
            duration,
            at,
        } => {
            let mut sink = Sink::open(&cli, &tenant, Some(rate)).await?;
            run(&mut sink, seed, terminals, duration, at).await?;
            sink.close().await
        }
        Command::Replay {
            terminals,
            speed,
            interval,
            rate,
            from,
            until,
        } => {
            let mut sink = Sink::open(&cli, &tenant, Some(rate)).await?;
            let plan = ReplayPlan {
                terminals,
                speed,
                interval,
                from,
                until,
            };
            replay(&mut sink, seed, &plan).await?;
            sink.close().await
        }
        Command::Outage {
            area,
            terminals,
            reports_per_terminal,
            start,
            rate,
        } => {
            let mut sink = Sink::open(&cli, &tenant, Some(rate)).await?;
            let area = match area {
                AreaArg::East => Area::East,
                AreaArg::West => Area::West,
            };
            outage(
                &mut sink,
                seed,
                area,
                terminals,
                reports_per_terminal,
                start,
            )
            .await?;
            sink.close().await
        }
    }
}

/// Where reports go: the broker, or stdout with `--print`.
enum Sink {
    Amqp(Box<Pipeline>),
    Stdout(std::io::BufWriter<std::io::Stdout>),
}

impl Sink {
    async fn open(
        cli: &Cli,
        tenant: &fleet_protocol::TenantSlug,
        rate: Option<f64>,
    ) -> anyhow::Result<Self> {
        if cli.print {
            return Ok(Self::Stdout(std::io::BufWriter::new(std::io::stdout())));
        }
        let pipeline = Pipeline::connect(&cli.amqp_url, tenant, cli.window, rate).await?;
        Ok(Self::Amqp(Box::new(pipeline)))
    }

    async fn send(&mut self, report: &Report) -> anyhow::Result<()> {
        match self {
            Self::Amqp(p) => p.send(report).await,
            Self::Stdout(out) => {
                out.write_all(&report.to_json())?;
                out.write_all(b"\n")?;
                Ok(())
            }
        }
    }

    async fn close(self) -> anyhow::Result<()> {
        match self {
            Self::Amqp(p) => {
                let elapsed = p.elapsed();
                let n = p.close().await?;
                eprintln!(
                    "published {n} reports with confirms in {:.1} s ({:.0} reports/s)",
                    elapsed.as_secs_f64(),
                    n as f64 / elapsed.as_secs_f64().max(1e-9)
                );
            }
            Self::Stdout(mut out) => out.flush()?,
        }
        Ok(())
    }
}

/// Whole seconds, as an agent writes them.
fn whole_seconds(t: DateTime<FixedOffset>) -> DateTime<FixedOffset> {
    t.with_nanosecond(0).unwrap_or(t)
}

/// `seq` numbers start at the simulated start time in milliseconds, so a later run
/// (with a later clock) always continues above an earlier one.
fn seq_base(start: DateTime<FixedOffset>) -> u64 {
    u64::try_from(start.timestamp_millis()).unwrap_or(0)
}

fn tally_line(fleet: &Fleet, states: &[Option<CampaignState>]) -> String {
    let mut counts = [0usize; 4];
    let mut silent = 0;
    for s in states {
        match s {
            Some(s) => {
                let i = CampaignState::ALL.iter().position(|x| x == s).unwrap_or(3);
                counts[i] += 1;
            }
            None => silent += 1,
        }
    }
    let parts: Vec<String> = CampaignState::ALL
        .iter()
        .zip(counts)
        .map(|(s, n)| format!("{}={n}", s.as_str()))
        .collect();
    format!(
        "{} of {} terminals; not reported yet={silent}",
        parts.join(" "),
        fleet.len()
    )
}

async fn run(
    sink: &mut Sink,
    seed: u64,
    terminals: usize,
    duration: Option<f64>,
    at: Option<DateTime<FixedOffset>>,
) -> anyhow::Result<()> {
    anyhow::ensure!(terminals > 0, "--terminals must be at least 1");
    let fleet = Fleet::generate(seed, terminals);
    let start = whole_seconds(at.unwrap_or_else(|| Utc::now().with_timezone(&JST)));
    let base = seq_base(start);
    let limit = duration.map(Duration::from_secs_f64);
    let real_start = Instant::now();
    let mut previous: Vec<Option<DateTime<FixedOffset>>> = vec![None; fleet.len()];
    let mut last_print = Instant::now();
    let mut sent = 0u64;
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    'rounds: for round in 0u64.. {
        for (i, t) in fleet.terminals.iter().enumerate() {
            let elapsed = real_start.elapsed();
            if limit.is_some_and(|l| elapsed >= l) {
                break 'rounds;
            }
            let observed =
                whole_seconds(start + chrono::Duration::from_std(elapsed).unwrap_or_default());
            let report = report_at(
                seed,
                t,
                base + round,
                observed,
                previous[i],
                Situation::Normal,
            );
            tokio::select! {
                sent = sink.send(&report) => sent?,
                _ = &mut stop => break 'rounds,
            }
            previous[i] = Some(observed);
            sent += 1;
            if last_print.elapsed() >= Duration::from_secs(5) {
                last_print = Instant::now();
                eprintln!(
                    "{sent} reports in {:.0} s ({:.0}/s)",
                    elapsed.as_secs_f64(),
                    sent as f64 / elapsed.as_secs_f64().max(1e-9)
                );
            }
        }
    }
    let end = start + chrono::Duration::from_std(real_start.elapsed()).unwrap_or_default();
    let states: Vec<_> = fleet
        .terminals
        .iter()
        .zip(&previous)
        .map(|(t, p)| p.map(|_| expected_state(t, end)))
        .collect();
    eprintln!(
        "sent {sent}; expected rollout: {}",
        tally_line(&fleet, &states)
    );
    Ok(())
}

struct ReplayPlan {
    terminals: usize,
    speed: f64,
    interval: u32,
    from: DateTime<FixedOffset>,
    until: DateTime<FixedOffset>,
}

async fn replay(sink: &mut Sink, seed: u64, plan: &ReplayPlan) -> anyhow::Result<()> {
    anyhow::ensure!(plan.terminals > 0, "--terminals must be at least 1");
    anyhow::ensure!(plan.interval > 0, "--interval must be at least 1 minute");
    anyhow::ensure!(plan.speed > 0.0, "--speed must be positive");
    let fleet = Fleet::generate(seed, plan.terminals);
    let base = seq_base(plan.from);
    let step = chrono::Duration::minutes(i64::from(plan.interval));
    let step_secs = i64::from(plan.interval) * 60;
    let mut count = vec![0u64; fleet.len()];
    let mut previous: Vec<Option<DateTime<FixedOffset>>> = vec![None; fleet.len()];
    let mut states: Vec<Option<CampaignState>> = vec![None; fleet.len()];
    let real_start = Instant::now();
    let mut sent = 0u64;
    let mut tick = plan.from;
    let mut day = tick.with_timezone(&JST).date_naive();
    while tick <= plan.until {
        for (i, t) in fleet.terminals.iter().enumerate() {
            if !t.is_on(tick) {
                continue;
            }
            // Spread the terminals over the interval, as real agents are.
            let jitter = (i64::from(t.index) * 37) % step_secs;
            let observed = tick + chrono::Duration::seconds(jitter);
            let report = report_at(
                seed,
                t,
                base + count[i],
                observed,
                previous[i],
                Situation::Normal,
            );
            sink.send(&report).await?;
            count[i] += 1;
            previous[i] = Some(observed);
            states[i] = Some(expected_state(t, observed));
            sent += 1;
        }
        tick += step;
        let today = tick.with_timezone(&JST).date_naive();
        if today != day {
            eprintln!(
                "{day}: {sent} reports so far; {}",
                tally_line(&fleet, &states)
            );
            day = today;
        }
        // Hold the simulated clock to the requested speed.
        let due = (tick - plan.from).num_milliseconds().max(0) as f64 / 1000.0 / plan.speed;
        let elapsed = real_start.elapsed().as_secs_f64();
        if due > elapsed {
            tokio::time::sleep(Duration::from_secs_f64(due - elapsed)).await;
        }
    }
    eprintln!(
        "replay done: {sent} reports; {}",
        tally_line(&fleet, &states)
    );
    Ok(())
}

async fn outage(
    sink: &mut Sink,
    seed: u64,
    area: Area,
    terminals: usize,
    reports_per_terminal: u32,
    start: Option<DateTime<FixedOffset>>,
) -> anyhow::Result<()> {
    anyhow::ensure!(terminals > 0, "--terminals must be at least 1");
    let every = chrono::Duration::minutes(5);
    let start = match start {
        Some(s) => s,
        None => {
            let now = whole_seconds(Utc::now().with_timezone(&JST));
            now - every * i32::try_from(reports_per_terminal).unwrap_or(i32::MAX)
        }
    };
    let fleet = Fleet::in_area(seed, terminals, area);
    let base = seq_base(start);
    let released = Instant::now();
    // Every agent flushes its spool at once, so the broker sees them interleaved.
    for k in 0..reports_per_terminal {
        let observed = start + every * i32::try_from(k).unwrap_or(i32::MAX);
        let previous = k.checked_sub(1).map(|_| observed - every);
        for t in &fleet.terminals {
            let report = report_at(
                seed,
                t,
                base + u64::from(k),
                observed,
                previous,
                Situation::Outage,
            );
            sink.send(&report).await?;
        }
    }
    eprintln!(
        "{} {} terminals released {} spooled reports each ({}..{}) in {:.1} s",
        fleet.len(),
        area.as_str(),
        reports_per_terminal,
        start.to_rfc3339(),
        (start + every * i32::try_from(reports_per_terminal).unwrap_or(i32::MAX)).to_rfc3339(),
        released.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn demo(amqp_url: &str, tenant: &fleet_protocol::TenantSlug) -> anyhow::Result<()> {
    let user = amqp_url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .unwrap_or("guest")
        .to_owned();
    let conn = Connection::connect(amqp_url, ConnectionProperties::default())
        .await
        .context("connecting to RabbitMQ")?;
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let seq = u64::try_from(Utc::now().timestamp()).unwrap_or_default();
    let mut confirms = Vec::new();
    for (i, t) in DEMO.iter().enumerate() {
        let body = report(i, t, seq);
        // Every demo report must be one the service accepts.
        let bytes = serde_json::to_vec(&body)?;
        let parsed =
            fleet_protocol::Report::parse(&bytes).context("a demo report does not parse")?;
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
    conn.close(200, "done".into()).await?;
    Ok(())
}
