//! The agent library's own throughput, behind `fleet-agent-bench` (figures in
//! docs/BENCHMARKS.md, run by `tests/tools/bench/agent-bench.sh`): the spool's append
//! and replay rates under each fsync policy, and the CPU time of one look at a
//! terminal. These were hidden subcommands of `fleet-agent` itself; a terminal never
//! runs them.

use std::path::Path;

use anyhow::Context;
use chrono::{FixedOffset, TimeZone};
use fleet_agent::spool::{FsyncPolicy, Spool, SpoolConfig};
use fleet_protocol::report::{Host, SCHEMA_V1};
use fleet_protocol::{ClinicCode, Report};
use uuid::Uuid;

/// A contract-sized report (~1.4 KiB, most of it a long host name) for `seq`.
fn bench_report(terminal_id: Uuid, seq: u64) -> anyhow::Result<Report> {
    let offset = FixedOffset::east_opt(9 * 3600).context("offset")?;
    let observed_at = offset
        .timestamp_opt(1_768_800_000 + i64::try_from(seq).unwrap_or(0), 0)
        .single()
        .context("time")?;
    Ok(Report {
        schema: SCHEMA_V1.to_owned(),
        terminal_id,
        seq,
        observed_at,
        clinic_code: ClinicCode::parse("2712345678").map_err(|e| anyhow::anyhow!("{e}"))?,
        agent_version: Some(fleet_agent::AGENT_VERSION.to_owned()),
        host: Some(Host {
            hostname: Some(format!("ONS-PC{seq:02}-{}", "x".repeat(1200))),
            ..Host::default()
        }),
        versions: None,
        distribution: None,
        reboot: None,
        line_auth: None,
        reader: None,
        nfc_reader: None,
        certificate: None,
    })
}

/// `fleet-agent-bench spool`: appends `count` contract-sized reports (~1.5 KiB) to a
/// fresh spool in `dir` under `fsync`, then reopens it and replays it (read back,
/// checksum, acknowledge) as delivery does, and prints the rates. For
/// docs/BENCHMARKS.md.
pub fn spool_bench(dir: &Path, count: u64, fsync: FsyncPolicy) -> anyhow::Result<()> {
    use std::time::Instant;
    let config = SpoolConfig {
        fsync,
        ..SpoolConfig::default()
    };
    let terminal_id = Uuid::new_v4();
    let bodies: Vec<Vec<u8>> = (0..64)
        .map(|i| Ok(bench_report(terminal_id, i)?.to_json()))
        .collect::<anyhow::Result<_>>()?;
    let bytes: usize = bodies.iter().map(Vec::len).sum::<usize>() / bodies.len();
    let (mut spool, _) = Spool::open_dir(dir, config)?;
    let start = Instant::now();
    for seq in 0..count {
        let body = &bodies[(seq % 64) as usize];
        spool.append(seq, seq.is_multiple_of(10), body)?;
    }
    spool.sync()?;
    let append = start.elapsed();
    drop(spool);
    let start = Instant::now();
    let (mut spool, recovery) = Spool::open_dir(dir, config)?;
    let reopen = start.elapsed();
    let mut replayed = 0u64;
    while let Some(record) = spool.front()? {
        replayed += 1;
        spool.ack_through(record.seq)?;
    }
    spool.sync()?;
    let replay = start.elapsed();
    anyhow::ensure!(
        replayed == count && recovery.pending as u64 == count,
        "replayed {replayed} of {count}"
    );
    let rate = |d: std::time::Duration| count as f64 / d.as_secs_f64().max(1e-9);
    println!(
        "spool fsync={fsync:?} records={count} body={bytes}B append={:.0}/s ({:.1} MiB/s) reopen={:.1}ms replay={:.0}/s",
        rate(append),
        rate(append) * bytes as f64 / 1048576.0,
        reopen.as_secs_f64() * 1000.0,
        rate(replay)
    );
    Ok(())
}

/// `fleet-agent-bench probe`: the CPU time of one look at the terminal described by
/// `settings`, as `report` takes it (every file read and parsed) and as the daemon
/// takes it every check interval (files that did not change are skipped, the
/// line-auth client is kept), plus the state fingerprint the daemon compares. For
/// docs/BENCHMARKS.md. The reader-log offsets go to a scratch directory.
pub fn probe_bench(mut settings: fleet_agent::Settings, count: u32) -> anyhow::Result<()> {
    use fleet_agent::probe::{Probes, snapshot};
    let scratch =
        std::env::temp_dir().join(format!("fleet-agent-bench-probe-{}", std::process::id()));
    settings.state_dir = scratch.clone();
    let count = count.max(1);
    let per_look = |look: &mut dyn FnMut()| -> anyhow::Result<f64> {
        let start = cpu_time()?;
        for _ in 0..count {
            look();
        }
        Ok((cpu_time()? - start).as_secs_f64() * 1e6 / f64::from(count))
    };
    let everything = per_look(&mut || {
        std::hint::black_box(snapshot(&settings, 0));
    })?;
    let mut probes = Probes::new(&settings);
    probes.observe(&settings, 0);
    let daemon = per_look(&mut || {
        std::hint::black_box(probes.observe(&settings, 0));
    })?;
    let report = probes.observe(&settings, 0);
    let fingerprint = per_look(&mut || {
        std::hint::black_box(fleet_agent::daemon::state_fingerprint(&report));
    })?;
    std::fs::remove_dir_all(&scratch).ok();
    println!(
        "probe looks={count} snapshot={everything:.1}us daemon_look={daemon:.1}us fingerprint={fingerprint:.1}us (CPU time per look)"
    );
    Ok(())
}

/// CPU time of this thread (Linux: `/proc/thread-self/schedstat`); elsewhere wall
/// time since the first call.
fn cpu_time() -> anyhow::Result<std::time::Duration> {
    #[cfg(target_os = "linux")]
    {
        let text = std::fs::read_to_string("/proc/thread-self/schedstat")
            .context("reading /proc/thread-self/schedstat")?;
        let nanos: u64 = text
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .context("parsing /proc/thread-self/schedstat")?;
        Ok(std::time::Duration::from_nanos(nanos))
    }
    #[cfg(not(target_os = "linux"))]
    {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        Ok(START.get_or_init(std::time::Instant::now).elapsed())
    }
}
