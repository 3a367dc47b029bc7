//! `fleet-bench`: the ingest benchmarks of issue 4, each printing its figure and its
//! comparison in one run (design.md: benchmarks, not timed tests).
//!
//! Every run uses a throwaway RabbitMQ vhost and database, like the end-to-end tests,
//! and the real `fleetd` binary as a child process (the one built beside this one),
//! so its memory is its own: peak RSS is `VmHWM` from `/proc/<pid>/status`.
//!
//! - `ingest`: pre-load M reports into `fleet.ingest`; consume them raw (JSON decode,
//!   `multiple` ack every 100) for the broker's ceiling; pre-load again and time
//!   `fleetd ingest` until every report is a history row.
//! - `backlog`: an east-area outage's spooled reports released at once, drained by
//!   `fleetd ingest` (scaled runs extrapolate to the full 150,000 × 30; `--raw` also
//!   times the plain consumer on the same backlog).
//! - `growth`: ingest rate and memory with 10k, 100k, 300k terminals already stored.
//!
//! Build with `cargo build --release -p fleetd -p fleet-tools`, run
//! `target/release/fleet-bench <mode> --help`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, FixedOffset};
use clap::{Parser, Subcommand, ValueEnum};
use fleet_e2e::broker::TestVhost;
use fleet_e2e::db::{DbKind, TestDb};
use fleet_ingest::consumer::prefetch_for;
use fleet_protocol::{Area, Report, TenantSlug};
use fleet_store::{DatabaseUrl, Store};
use fleet_tools::sim::{Fleet, Pipeline, Situation, report_at};
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use sea_orm::ConnectionTrait;

const SECRET: &str = "a-benchmark-secret-of-at-least-32-bytes";
/// The backlog: 150,000 east-area terminals × 30 spooled reports each.
const FULL_BACKLOG: usize = 150_000 * 30;
/// No single phase may run longer than this; the benchmark fails instead. (The full
/// 150,000 × 30 backlog needs more than 10 minutes to drain on this machine.)
const PHASE_LIMIT: Duration = Duration::from_secs(1800);
/// A drain prints how far it got this often, so a rate that falls as the database
/// grows shows in the output.
const PROGRESS_EVERY: Duration = Duration::from_secs(60);

#[derive(Parser)]
#[command(
    name = "fleet-bench",
    about = "Ingest benchmarks against real RabbitMQ and databases"
)]
struct Cli {
    /// Databases to measure, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "sqlite,postgres",
        global = true
    )]
    db: Vec<Db>,
    /// `FLEET_INGEST_BATCH_SIZE` values to try, in order.
    #[arg(long, value_delimiter = ',', default_value = "500", global = true)]
    batch_sizes: Vec<u16>,
    /// The fleetd binary; default: the one beside this binary.
    #[arg(long, global = true)]
    fleetd: Option<PathBuf>,
    /// The report-history table to count.
    #[arg(long, default_value = "reports", global = true)]
    history_table: String,
    #[arg(long, default_value_t = 1, global = true)]
    seed: u64,
    /// Reach PostgreSQL over the Unix socket in this directory instead of TCP (sidesteps
    /// the sqlx 0.9.0 TCP_NODELAY trap of stack.md), e.g. /var/run/postgresql.
    #[arg(long, global = true)]
    pg_socket: Option<String>,
    /// Findings judged at ingest (`FLEET_FINDINGS`), each value in turn: `on,off`
    /// measures what judging findings costs.
    #[arg(long, value_delimiter = ',', default_value = "on", global = true)]
    findings: Vec<OnOff>,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OnOff {
    On,
    Off,
}

impl OnOff {
    fn as_str(self) -> &'static str {
        match self {
            Self::On => "on",
            Self::Off => "off",
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Db {
    Sqlite,
    Postgres,
}

impl Db {
    fn kind(self) -> DbKind {
        match self {
            Db::Sqlite => DbKind::Sqlite,
            Db::Postgres => DbKind::Postgres,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Db::Sqlite => "SQLite",
            Db::Postgres => "PostgreSQL",
        }
    }
}

#[derive(Subcommand)]
enum Mode {
    /// fleetd ingest end to end vs the raw consume rate of the same queue.
    Ingest {
        #[arg(long, default_value_t = 200_000)]
        reports: usize,
        /// Distinct terminals among the reports (the rest are later reports of them).
        #[arg(long, default_value_t = 20_000)]
        terminals: usize,
    },
    /// An east-area outage's spooled reports drained by fleetd ingest.
    Backlog {
        #[arg(long, default_value_t = 20_000)]
        terminals: usize,
        #[arg(long, default_value_t = 30)]
        reports_per_terminal: u32,
        /// Store one earlier report per terminal first, as a real fleet would have
        /// (`--preseed false` drains into an empty database).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        preseed: bool,
        /// Also drain the same backlog with a plain consumer first, for the broker's
        /// own rate at this depth (publishes the backlog twice).
        #[arg(long)]
        raw: bool,
    },
    /// The store's batch writer alone, in this process: the same reports as `ingest`,
    /// parsed beforehand and handed to `Store::write_batch` one batch after another
    /// (no broker), for A/B runs of the writer with less noise than end to end.
    Writer {
        #[arg(long, default_value_t = 200_000)]
        reports: usize,
        #[arg(long, default_value_t = 20_000)]
        terminals: usize,
        /// Outage reports (reader and network errors), as in `backlog`, instead of
        /// everyday ones.
        #[arg(long)]
        outage: bool,
    },
    /// Ingest rate and memory with more and more terminals already stored.
    Growth {
        #[arg(long, value_delimiter = ',', default_value = "10000,100000,300000")]
        stored: Vec<usize>,
        /// Reports measured at each size, spread over the stored terminals.
        #[arg(long, default_value_t = 100_000)]
        reports: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let fleetd = match &cli.fleetd {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("the benchmark binary has no directory")?
            .join("fleetd"),
    };
    anyhow::ensure!(
        fleetd.exists(),
        "{} not found: build it with `cargo build --release -p fleetd`",
        fleetd.display()
    );
    let mut bench = Bench {
        pg_socket: cli.pg_socket.clone(),
        fleetd,
        history_table: cli.history_table.clone(),
        seed: cli.seed,
        findings: OnOff::On,
    };
    println!(
        "machine: {} cores; fleetd: {}",
        cores(),
        bench.fleetd.display()
    );
    match cli.mode {
        Mode::Ingest { reports, terminals } => {
            for db in &cli.db {
                for batch in &cli.batch_sizes {
                    for findings in &cli.findings {
                        bench.findings = *findings;
                        bench.ingest(*db, *batch, reports, terminals).await?;
                    }
                }
            }
        }
        Mode::Backlog {
            terminals,
            reports_per_terminal,
            preseed,
            raw,
        } => {
            for db in &cli.db {
                for batch in &cli.batch_sizes {
                    bench
                        .backlog(*db, *batch, terminals, reports_per_terminal, preseed, raw)
                        .await?;
                }
            }
        }
        Mode::Writer {
            reports,
            terminals,
            outage,
        } => {
            for db in &cli.db {
                for batch in &cli.batch_sizes {
                    for findings in &cli.findings {
                        bench.findings = *findings;
                        bench
                            .writer(*db, *batch, reports, terminals, outage)
                            .await?;
                    }
                }
            }
        }
        Mode::Growth { stored, reports } => {
            for db in &cli.db {
                for batch in &cli.batch_sizes {
                    for s in &stored {
                        bench.growth(*db, *batch, *s, reports).await?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// The 1-minute load average: other work on the machine skews every figure.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

struct Bench {
    pg_socket: Option<String>,
    fleetd: PathBuf,
    /// Whether ingest judges findings in the runs that follow.
    findings: OnOff,
    history_table: String,
    seed: u64,
}

/// A throwaway vhost and database, and fleetd's settings for them.
struct Setup {
    vhost: TestVhost,
    /// Dropped after the run: removes the database.
    _db: TestDb,
    /// How fleetd and the bench reach it.
    url: String,
    database: DatabaseUrl,
}

/// How one `fleetd ingest` drain went.
struct Drain {
    seconds: f64,
    rows: i64,
    peak_rss_kib: u64,
    /// CPU seconds fleetd and the broker used during the drain: together against
    /// `cores() * seconds` they tell CPU-bound from waiting.
    fleetd_cpu: f64,
    broker_cpu: f64,
    /// CPU seconds of PostgreSQL's server processes (0 on SQLite): on PostgreSQL the
    /// database does the work fleetd waits for.
    database_cpu: f64,
}

impl Drain {
    fn rate(&self, reports: usize) -> f64 {
        reports as f64 / self.seconds
    }
}

fn start(t: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(t).unwrap_or_default()
}

impl Bench {
    async fn setup(&self, db: Db) -> anyhow::Result<Setup> {
        let vhost = tokio::task::spawn_blocking(TestVhost::create).await??;
        let kind = db.kind();
        let db = tokio::task::spawn_blocking(move || TestDb::create(kind)).await??;
        let url = match (&self.pg_socket, kind) {
            (Some(dir), DbKind::Postgres) => {
                let name = db.url.rsplit('/').next().unwrap_or_default();
                format!("postgres://postgres@localhost/{name}?host={dir}")
            }
            _ => db.url.clone(),
        };
        let database = DatabaseUrl::parse(&url)?;
        // The service owns the topology: declare it as fleetd does, before publishing.
        let conn = Connection::connect(&vhost.url(), ConnectionProperties::default()).await?;
        let channel = conn.create_channel().await?;
        fleet_ingest::topology::declare(&channel).await?;
        conn.close(200, "declared".into()).await?;
        self.fleetd_cmd(&vhost, &url, 500, "migrate")?
            .status()
            .context("running fleetd migrate")?
            .success()
            .then_some(())
            .context("fleetd migrate failed")?;
        Ok(Setup {
            vhost,
            _db: db,
            url,
            database,
        })
    }

    fn fleetd_cmd(
        &self,
        vhost: &TestVhost,
        database_url: &str,
        batch: u16,
        role: &str,
    ) -> anyhow::Result<Command> {
        let mut cmd = Command::new(&self.fleetd);
        cmd.arg(role)
            .env("FLEET_DATABASE_URL", database_url)
            .env("FLEET_AMQP_URL", vhost.url())
            .env("FLEET_JWT_SECRET", SECRET)
            .env("FLEET_INGEST_BATCH_SIZE", batch.to_string())
            .env("FLEET_FINDINGS", self.findings.as_str())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        Ok(cmd)
    }

    /// Publishes reports with pipelined confirms; prints the rate.
    async fn preload(
        &self,
        vhost: &TestVhost,
        reports: impl Iterator<Item = Report>,
    ) -> anyhow::Result<usize> {
        let tenant = TenantSlug::parse("demo").map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut pipeline = Pipeline::connect(&vhost.url(), &tenant, 5_000, None).await?;
        let mut bytes = 0usize;
        let mut n = 0usize;
        for r in reports {
            if n < 1_000 {
                bytes += r.to_json().len();
            }
            pipeline.send(&r).await?;
            n += 1;
        }
        let elapsed = pipeline.elapsed();
        pipeline.close().await?;
        println!(
            "  pre-loaded {n} reports (mean body {} bytes) with confirms in {:.1} s: {:.0} msg/s",
            bytes / n.clamp(1, 1_000),
            elapsed.as_secs_f64(),
            n as f64 / elapsed.as_secs_f64()
        );
        Ok(n)
    }

    /// Starts `fleetd ingest` and waits until `expected_rows` rows are in the history
    /// table; then stops it with SIGTERM.
    async fn drain(&self, setup: &Setup, batch: u16, expected_rows: i64) -> anyhow::Result<Drain> {
        let store = Store::connect(&setup.database).await?;
        let rows_before = count(&store, &self.history_table).await?;
        let broker = broker_pid();
        let broker_before = broker.and_then(cpu_seconds).unwrap_or(0.0);
        let postgres_before = postgres_cpu();
        let started = Instant::now();
        let mut child = self
            .fleetd_cmd(&setup.vhost, &setup.url, batch, "ingest")?
            .spawn()
            .context("starting fleetd ingest")?;
        let result: anyhow::Result<i64> = async {
            // Done when every report is a row. Counting a history of millions of rows
            // takes a core for seconds, so it is polled through a cheap bound where
            // the database has one (SQLite's largest rowid) and otherwise no more
            // often than a fifth of the time. (The queue's depth is no signal: in the full
            // 150,000 × 30 backlog the quorum queue's declare-ok said 0 while 590,000
            // messages waited.)
            let mut progress = (Instant::now(), rows_before);
            loop {
                let polled = Instant::now();
                let bound = rows_upper_bound(&store, &self.history_table).await?;
                if bound >= expected_rows {
                    let rows = count(&store, &self.history_table).await?;
                    if rows >= expected_rows {
                        return Ok(rows);
                    }
                }
                if progress.0.elapsed() >= PROGRESS_EVERY {
                    let interval = progress.0.elapsed().as_secs_f64();
                    println!(
                        "  after {:.0} s: {} of {} rows, {:.0}/s over the last {interval:.0} s",
                        started.elapsed().as_secs_f64(),
                        bound - rows_before,
                        expected_rows - rows_before,
                        (bound - progress.1) as f64 / interval
                    );
                    progress = (Instant::now(), bound);
                }
                check_child(&mut child, started)?;
                let pause = (polled.elapsed() * 4).max(Duration::from_millis(20));
                tokio::time::sleep(pause).await;
            }
        }
        .await;
        let seconds = started.elapsed().as_secs_f64();
        let peak_rss_kib = peak_rss_kib(child.id()).unwrap_or(0);
        let fleetd_cpu = cpu_seconds(child.id()).unwrap_or(0.0);
        let broker_cpu = broker.and_then(cpu_seconds).unwrap_or(0.0) - broker_before;
        let database_cpu = match setup.database {
            DatabaseUrl::Postgres(_) => cpu_since(&postgres_before, &postgres_cpu()),
            _ => 0.0,
        };
        stop(&mut child);
        let rows: i64 = result?;
        let drain = Drain {
            seconds,
            rows,
            peak_rss_kib,
            fleetd_cpu,
            broker_cpu,
            database_cpu,
        };
        let per_row = |cpu: f64| 1e6 * cpu / (rows - rows_before).max(1) as f64;
        println!(
            "  drain CPU: fleetd {:.1} s ({:.0}% of one core, {:.1} us/report), RabbitMQ {:.1} s ({:.0}%, {:.1} us/report), of {} cores x {:.1} s",
            drain.fleetd_cpu,
            100.0 * drain.fleetd_cpu / drain.seconds,
            per_row(drain.fleetd_cpu),
            drain.broker_cpu,
            100.0 * drain.broker_cpu / drain.seconds,
            per_row(drain.broker_cpu),
            cores(),
            drain.seconds
        );
        if drain.database_cpu > 0.0 {
            println!(
                "  drain CPU: PostgreSQL {:.1} s ({:.0}% of one core, {:.1} us/report)",
                drain.database_cpu,
                100.0 * drain.database_cpu / drain.seconds,
                per_row(drain.database_cpu)
            );
        }
        Ok(drain)
    }

    async fn ingest(
        &self,
        db: Db,
        batch: u16,
        reports: usize,
        terminals: usize,
    ) -> anyhow::Result<()> {
        println!(
            "\n== ingest vs raw: {} reports of {} terminals, {}, FLEET_INGEST_BATCH_SIZE={batch}",
            reports,
            terminals,
            db.name()
        );
        println!("  (load average before: {})", load());
        let setup = self.setup(db).await?;
        let fleet = Fleet::generate(self.seed, terminals.max(1));
        let make = || {
            rounds(
                &fleet,
                self.seed,
                reports,
                start("2026-01-22T09:00:00+09:00"),
                Situation::Normal,
            )
        };
        let n = self.preload(&setup.vhost, make()).await?;
        let raw_rate = measure_raw(&setup.vhost, n, prefetch_for(batch)).await?;
        self.preload(&setup.vhost, make()).await?;
        let drain = self.drain(&setup, batch, i64::try_from(n)?).await?;
        let rate = drain.rate(n);
        println!(
            "  fleetd ingest end to end: {:.2} s, {rate:.0} reports/s, {} rows, peak RSS {:.1} MiB",
            drain.seconds,
            drain.rows,
            drain.peak_rss_kib as f64 / 1024.0
        );
        let ratio = rate / raw_rate;
        println!(
            "  RESULT {} batch {batch} findings {}: ingest {rate:.0}/s = {:.0}% of raw {raw_rate:.0}/s (goal >= 80%: {}); \
             >= 20,000/s: {}",
            db.name(),
            self.findings.as_str(),
            ratio * 100.0,
            verdict(ratio >= 0.8),
            verdict(rate >= 20_000.0)
        );
        Ok(())
    }

    async fn backlog(
        &self,
        db: Db,
        batch: u16,
        terminals: usize,
        per_terminal: u32,
        preseed: bool,
        raw: bool,
    ) -> anyhow::Result<()> {
        println!(
            "\n== backlog: {terminals} east terminals x {per_terminal} spooled reports, {}, FLEET_INGEST_BATCH_SIZE={batch}",
            db.name()
        );
        println!("  (load average before: {})", load());
        let setup = self.setup(db).await?;
        let fleet = Fleet::in_area(self.seed, terminals, Area::East);
        let outage_start = start("2026-02-01T22:00:00+09:00");
        let mut stored = 0i64;
        if preseed {
            let before = outage_start - chrono::Duration::hours(1);
            let n = self
                .preload(
                    &setup.vhost,
                    rounds(&fleet, self.seed, fleet.len(), before, Situation::Normal),
                )
                .await?;
            let seeded = self.drain(&setup, batch, i64::try_from(n)?).await?;
            println!(
                "  stored the fleet first: {n} reports in {:.1} s",
                seeded.seconds
            );
            stored = seeded.rows;
        }
        let total = fleet.len() * per_terminal as usize;
        let spooled = || {
            rounds(&fleet, self.seed, total, outage_start, Situation::Outage).map(|mut r| {
                r.seq += 1_000;
                r
            })
        };
        let mut n = self.preload(&setup.vhost, spooled()).await?;
        let raw_rate = if raw {
            // The broker's own ceiling for this backlog: the same messages drained by
            // the plainest consumer, then published again for fleetd.
            let rate = measure_raw(&setup.vhost, n, prefetch_for(batch)).await?;
            n = self.preload(&setup.vhost, spooled()).await?;
            Some(rate)
        } else {
            None
        };
        let drain = self
            .drain(&setup, batch, stored + i64::try_from(n)?)
            .await?;
        let rate = drain.rate(n);
        let full = FULL_BACKLOG as f64 / rate;
        println!(
            "  drained {n} reports in {:.1} s ({rate:.0} reports/s), fleetd peak RSS {:.1} MiB",
            drain.seconds,
            drain.peak_rss_kib as f64 / 1024.0
        );
        println!(
            "  RESULT {} batch {batch}: at this rate 150,000 x 30 = 4.5M reports drain in {:.0} s = {:.1} min \
             (goal < 5 min: {}) [{}]",
            db.name(),
            full,
            full / 60.0,
            verdict(full < 300.0),
            if n == FULL_BACKLOG {
                "measured".to_string()
            } else {
                format!("extrapolated from {n}")
            }
        );
        if let Some(raw_rate) = raw_rate {
            let raw_full = FULL_BACKLOG as f64 / raw_rate;
            println!(
                "  RESULT {} batch {batch}: fleetd {:.0}% of the raw drain rate; the raw consumer alone would take {:.0} s = {:.1} min",
                db.name(),
                100.0 * rate / raw_rate,
                raw_full,
                raw_full / 60.0
            );
        }
        Ok(())
    }

    async fn writer(
        &self,
        db: Db,
        batch: u16,
        reports: usize,
        terminals: usize,
        outage: bool,
    ) -> anyhow::Result<()> {
        println!(
            "\n== writer alone: {reports} reports of {terminals} terminals, {}, batches of {batch}{}",
            db.name(),
            if outage { ", outage reports" } else { "" }
        );
        println!("  (load average before: {})", load());
        let setup = self.setup(db).await?;
        let store = Store::connect(&setup.database).await?;
        store.seed_defaults(fleet_store::now_jst()).await?;
        if self.findings == OnOff::Off {
            store.set_findings(None);
        }
        // The same setting fleetd reads.
        if let Ok(n) = std::env::var("FLEET_INGEST_STATE_CACHE") {
            store.set_state_cache(n.parse().context("FLEET_INGEST_STATE_CACHE")?);
        }
        let campaigns = std::sync::Arc::new(store.campaigns().await?);
        let (fleet, situation, from) = if outage {
            (
                Fleet::in_area(self.seed, terminals.max(1), Area::East),
                Situation::Outage,
                start("2026-02-01T22:00:00+09:00"),
            )
        } else {
            (
                Fleet::generate(self.seed, terminals.max(1)),
                Situation::Normal,
                start("2026-01-22T09:00:00+09:00"),
            )
        };
        let tenant = TenantSlug::parse("demo").map_err(|e| anyhow::anyhow!("{e}"))?;
        let received_at = fleet_store::now_jst();
        let mut batches: Vec<std::sync::Arc<[fleet_store::IncomingReport]>> = Vec::new();
        let mut pending = Vec::with_capacity(usize::from(batch));
        let mut latest = None;
        for r in rounds(&fleet, self.seed, reports, from, situation) {
            let body = String::from_utf8(r.to_json())?;
            let report = Report::parse(body.as_bytes())?;
            latest = latest.max(Some(report.observed_at));
            pending.push(fleet_store::IncomingReport {
                tenant: tenant.clone(),
                report,
                body,
                received_at,
            });
            if pending.len() == usize::from(batch) {
                batches.push(std::mem::take(&mut pending).into());
            }
        }
        if !pending.is_empty() {
            batches.push(pending.into());
        }
        let cpu_before = cpu_seconds(std::process::id()).unwrap_or(0.0);
        let written_before = bytes_written().unwrap_or(0);
        let started = Instant::now();
        for b in batches {
            store
                .write_batch(b, campaigns.clone(), fleet_store::now_jst())
                .await?;
        }
        let seconds = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds(std::process::id()).unwrap_or(0.0) - cpu_before;
        let written = bytes_written().unwrap_or(0).saturating_sub(written_before);
        let rows = count(&store, &self.history_table).await?;
        anyhow::ensure!(
            rows == i64::try_from(reports)?,
            "{rows} history rows for {reports} reports"
        );
        println!(
            "  RESULT {} writer batch {batch} findings {}: {:.0} reports/s, {:.1} us CPU per report ({:.0}% of one core), {:.1} KiB written per report",
            db.name(),
            self.findings.as_str(),
            reports as f64 / seconds,
            1e6 * cpu / reports as f64,
            100.0 * cpu / seconds,
            written as f64 / 1024.0 / reports as f64
        );
        if self.findings == OnOff::On
            && let Some(latest) = latest
        {
            // The alert role's sweep over every stored terminal, 5 minutes after the
            // newest report (nothing silent yet: the steady state), twice.
            let thresholds = store.findings_rules().unwrap_or_default();
            for pass in 1..=2 {
                let cpu_before = cpu_seconds(std::process::id()).unwrap_or(0.0);
                let started = Instant::now();
                let swept = store
                    .sweep(
                        &campaigns,
                        &thresholds,
                        latest + chrono::TimeDelta::minutes(5),
                        1000,
                    )
                    .await?;
                let seconds = started.elapsed().as_secs_f64();
                let cpu = cpu_seconds(std::process::id()).unwrap_or(0.0) - cpu_before;
                println!(
                    "  RESULT {} sweep pass {pass}: {} terminals in {seconds:.2} s, {cpu:.2} s CPU in this process{}",
                    db.name(),
                    swept.terminals,
                    if matches!(db, Db::Postgres) {
                        " (PostgreSQL's own CPU not counted)"
                    } else {
                        ""
                    }
                );
            }
        }
        Ok(())
    }

    async fn growth(
        &self,
        db: Db,
        batch: u16,
        stored: usize,
        reports: usize,
    ) -> anyhow::Result<()> {
        println!(
            "\n== growth: {stored} terminals stored, then {reports} reports, {}, FLEET_INGEST_BATCH_SIZE={batch}",
            db.name()
        );
        println!("  (load average before: {})", load());
        let setup = self.setup(db).await?;
        let fleet = Fleet::generate(self.seed, stored.max(1));
        let t0 = start("2026-01-22T09:00:00+09:00");
        let n = self
            .preload(
                &setup.vhost,
                rounds(&fleet, self.seed, fleet.len(), t0, Situation::Normal),
            )
            .await?;
        let seeded = self.drain(&setup, batch, i64::try_from(n)?).await?;
        println!(
            "  stored {n} terminals (all new) in {:.1} s: {:.0} reports/s, peak RSS {:.1} MiB",
            seeded.seconds,
            seeded.rate(n),
            seeded.peak_rss_kib as f64 / 1024.0
        );
        // Later reports of terminals spread over the whole stored fleet.
        let later = t0 + chrono::Duration::hours(1);
        let stride = stride_for(fleet.len());
        let len = fleet.len();
        let seed = self.seed;
        let terminals = &fleet.terminals;
        let measured = (0..reports).map(move |k| {
            let t = &terminals[(k * stride) % len];
            let round = (k / len) as u64;
            let at = later + chrono::Duration::minutes(5 * round as i64);
            report_at(seed, t, 1_000 + round, at, None, Situation::Normal)
        });
        let m = self.preload(&setup.vhost, measured).await?;
        let drain = self
            .drain(&setup, batch, seeded.rows + i64::try_from(m)?)
            .await?;
        println!(
            "  RESULT {} batch {batch}: {stored} stored: {:.0} reports/s (updates), fleetd peak RSS {:.1} MiB, {} history rows",
            db.name(),
            drain.rate(m),
            drain.peak_rss_kib as f64 / 1024.0,
            drain.rows
        );
        Ok(())
    }
}

/// `n` reports, round-robin over the fleet: round *r* has `seq` r and is observed
/// 5 minutes after round *r − 1*.
fn rounds(
    fleet: &Fleet,
    seed: u64,
    n: usize,
    from: DateTime<FixedOffset>,
    situation: Situation,
) -> impl Iterator<Item = Report> + '_ {
    let len = fleet.len().max(1);
    (0..n).map(move |k| {
        let t = &fleet.terminals[k % len];
        let round = (k / len) as u64;
        let at = from + chrono::Duration::minutes(5 * round as i64);
        let previous = round
            .checked_sub(1)
            .map(|_| at - chrono::Duration::minutes(5));
        report_at(seed, t, round + 1, at, previous, situation)
    })
}

/// A step coprime with `len`, so `k * step % len` visits every terminal in a
/// scattered order (no two neighbours in one batch are neighbours in the table).
fn stride_for(len: usize) -> usize {
    let gcd = |mut a: usize, mut b: usize| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    (7_919..).find(|s| gcd(*s, len) == 1).unwrap_or(1)
}

/// Consumes `n` messages of fleet.ingest, decoding each as a report and acking with
/// `multiple` every 100; returns the seconds it took.
async fn raw_consume(vhost: &TestVhost, n: usize, prefetch: u16) -> anyhow::Result<f64> {
    let conn = Connection::connect(&vhost.url(), ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let started = Instant::now();
    let mut consumer = channel
        .basic_consume(
            "fleet.ingest".into(),
            "raw-bench".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut got = 0usize;
    let mut bad = 0usize;
    while got < n {
        let delivery = tokio::time::timeout(Duration::from_secs(30), consumer.next())
            .await
            .context("no delivery for 30 s")?
            .context("the consumer was cancelled")??;
        if Report::parse(&delivery.data).is_err() {
            bad += 1;
        }
        got += 1;
        if got.is_multiple_of(100) || got == n {
            delivery
                .ack(BasicAckOptions { multiple: true })
                .await
                .context("acking")?;
        }
        anyhow::ensure!(
            started.elapsed() < PHASE_LIMIT,
            "raw consume over the time limit"
        );
    }
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(bad == 0, "{bad} reports did not parse");
    conn.close(200, "done".into()).await?;
    Ok(seconds)
}

/// Drains `n` messages with the plain consumer ([`raw_consume`]) and prints its rate
/// and the CPU it and the broker used per report; returns the rate.
async fn measure_raw(vhost: &TestVhost, n: usize, prefetch: u16) -> anyhow::Result<f64> {
    let broker = broker_pid();
    let broker_before = broker.and_then(cpu_seconds).unwrap_or(0.0);
    let own_before = cpu_seconds(std::process::id()).unwrap_or(0.0);
    let raw = raw_consume(vhost, n, prefetch).await?;
    let raw_rate = n as f64 / raw;
    let broker_cpu = broker.and_then(cpu_seconds).unwrap_or(0.0) - broker_before;
    let own_cpu = cpu_seconds(std::process::id()).unwrap_or(0.0) - own_before;
    println!("  raw consume + JSON decode + multiple ack/100: {raw:.2} s, {raw_rate:.0} reports/s");
    println!(
        "  raw CPU: consumer {own_cpu:.1} s ({:.1} us/report), RabbitMQ {broker_cpu:.1} s ({:.1} us/report)",
        1e6 * own_cpu / n as f64,
        1e6 * broker_cpu / n as f64
    );
    Ok(raw_rate)
}

async fn count(store: &Store, table: &str) -> anyhow::Result<i64> {
    let db = store.connection();
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM {table}"),
        ))
        .await?
        .context("COUNT returned no row")?;
    Ok(row.try_get("", "n")?)
}

/// A cheap number that is at least the history's row count: SQLite's largest rowid
/// (rows are only appended during a run); elsewhere the count itself.
async fn rows_upper_bound(store: &Store, table: &str) -> anyhow::Result<i64> {
    let db = store.connection();
    if db.get_database_backend() != sea_orm::DbBackend::Sqlite {
        return count(store, table).await;
    }
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Sqlite,
            format!("SELECT coalesce(max(rowid), 0) AS n FROM {table}"),
        ))
        .await?
        .context("max(rowid) returned no row")?;
    Ok(row.try_get("", "n")?)
}

fn check_child(child: &mut Child, started: Instant) -> anyhow::Result<()> {
    if let Some(status) = child.try_wait()? {
        bail!("fleetd ingest exited early: {status}");
    }
    anyhow::ensure!(
        started.elapsed() < PHASE_LIMIT,
        "the drain went over the time limit"
    );
    Ok(())
}

/// `VmHWM` (peak resident set) of a process, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// utime + stime of a process in seconds (clock ticks of 100 Hz, Linux's USER_HZ).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Bytes this process handed to write(2) and pwrite(2) so far (`wchar` in
/// /proc/self/io): the database's WAL and checkpoint writes, for SQLite.
fn bytes_written() -> Option<u64> {
    std::fs::read_to_string("/proc/self/io")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("wchar:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The local RabbitMQ node's Erlang VM, to account for its CPU (read only).
fn broker_pid() -> Option<u32> {
    let out = Command::new("pgrep")
        .args(["-x", "beam.smp"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
}

/// CPU seconds so far of every local PostgreSQL server process (postmaster, backends,
/// WAL writer, checkpointer), by pid.
fn postgres_cpu() -> HashMap<u32, f64> {
    let Ok(out) = Command::new("pgrep").args(["-x", "postgres"]).output() else {
        return HashMap::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .filter_map(|pid| Some((pid, cpu_seconds(pid)?)))
        .collect()
}

/// CPU used between two [`postgres_cpu`] readings; a process that started in between
/// counts from zero (one that ended in between is lost: its backend was not ours).
fn cpu_since(before: &HashMap<u32, f64>, after: &HashMap<u32, f64>) -> f64 {
    after
        .iter()
        .map(|(pid, cpu)| cpu - before.get(pid).copied().unwrap_or(0.0))
        .filter(|d| *d > 0.0)
        .sum()
}

/// SIGTERM, then a bounded wait, then SIGKILL — only for the child we started.
fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}
