//! The spool killed with SIGKILL at random moments while a process writes it, 200
//! rounds on one spool directory: the spool always reopens, no report it said was
//! durable is lost, no record comes back corrupt, and finally everything left is
//! published through the real delivery path to a real RabbitMQ and every message is
//! a valid report with its own `message_id`.
//!
//! The process killed is this test binary itself, running only [`stress_writer`]
//! (an ignored test that the killer starts with `--ignored --exact`): the shipped
//! `fleet-agent` has no test modes.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, TimeZone};
use fleet_agent::spool::{DiskStorage, FsyncPolicy, Spool, SpoolConfig};
use fleet_agent::{Agent, SeqStore};
use fleet_protocol::report::{Host, SCHEMA_V1};
use fleet_protocol::{ClinicCode, Report};
use lapin::options::BasicGetOptions;
use rand::Rng;
use uuid::Uuid;

use crate::helpers::{TempDir, Vhost, sample_config};

/// Tells a child run of this binary where to write, and as which terminal.
const DIR_VAR: &str = "FLEET_SPOOL_STRESS_DIR";
const TERMINAL_VAR: &str = "FLEET_SPOOL_STRESS_TERMINAL";
/// The file the writer logs its steps to (see [`stress_writer`]).
const SAID_VAR: &str = "FLEET_SPOOL_STRESS_SAID";

/// The spool settings of the writer: `fsync = always` and a small segment, so that
/// rollover and deletion happen often.
fn stress_config() -> SpoolConfig {
    SpoolConfig {
        max_bytes: 1 << 30,
        segment_bytes: 16 * 1024,
        fsync: FsyncPolicy::Always,
    }
}

/// The report the writer spools for `seq`, a function of its `seq` so that any
/// corruption shows: sizes vary from ~300 B to ~4 KiB.
fn stress_report(terminal_id: Uuid, seq: u64) -> Report {
    let filler_len = usize::try_from(seq.wrapping_mul(7919) % 3800).unwrap();
    let filler: String = (0..filler_len)
        .map(|i| char::from(b'a' + ((seq as usize + i) % 26) as u8))
        .collect();
    let offset = FixedOffset::east_opt(9 * 3600).unwrap();
    let observed_at: DateTime<FixedOffset> = offset
        .timestamp_opt(1_768_800_000 + i64::try_from(seq % 1_000_000).unwrap(), 0)
        .unwrap();
    Report {
        schema: SCHEMA_V1.to_owned(),
        terminal_id,
        seq,
        observed_at,
        clinic_code: ClinicCode::parse("2712345678").unwrap(),
        agent_version: Some(fleet_agent::AGENT_VERSION.to_owned()),
        host: Some(Host {
            hostname: Some(format!("STRESS-{seq}-{filler}")),
            ..Host::default()
        }),
        versions: None,
        distribution: None,
        reboot: None,
        line_auth: None,
        reader: None,
        nfc_reader: None,
        certificate: None,
    }
}

/// The process the killer kills: appends reports to the spool in `$DIR_VAR` as fast
/// as it can, every append written in 7-byte pieces (so a kill leaves torn records),
/// and acknowledges all but the newest two reports every fourth append. It logs each
/// step to `$SAID_VAR`, one `write` per line, *after* the step is durable:
///
/// - `appending <seq>` before an append starts,
/// - `synced <seq>` once the report is on disk,
/// - `acking <seq>` before an acknowledgement starts, `acked <seq>` once it is on
///   disk.
///
/// (A file, not stdout: the test harness writes to stdout too.) Without the
/// variables it does nothing.
#[test]
#[ignore = "the child process of the SIGKILL test, which starts it"]
fn stress_writer() {
    let (Some(dir), Some(terminal_id), Some(said)) = (
        std::env::var_os(DIR_VAR),
        std::env::var(TERMINAL_VAR).ok(),
        std::env::var_os(SAID_VAR),
    ) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let terminal_id: Uuid = terminal_id.parse().unwrap();
    let mut said = std::fs::File::create(said).unwrap();
    let mut say = |what: &str, seq: u64| said.write_all(format!("{what} {seq}\n").as_bytes());
    let storage = DiskStorage::open(&dir).unwrap().with_write_chunks(7);
    let (mut spool, _) = Spool::open(storage, stress_config()).unwrap();
    let seqs = SeqStore::new(&dir.join("state"));
    for n in 1u64.. {
        let seq = seqs.allocate().unwrap();
        let body = stress_report(terminal_id, seq).to_json();
        say("appending", seq).unwrap();
        spool.append(seq, seq.is_multiple_of(3), &body).unwrap();
        say("synced", seq).unwrap();
        // Confirm all but the newest two every fourth append, reading the oldest
        // back first as the daemon does: segments roll over and get deleted often,
        // and the spool stays small so that 200 rounds stay quick.
        if n.is_multiple_of(4)
            && spool.front().unwrap().is_some()
            && let Some(through) = seq.checked_sub(2)
        {
            say("acking", through).unwrap();
            spool.ack_through(through).unwrap();
            say("acked", through).unwrap();
        }
    }
}

const ROUNDS: usize = 200;

/// What one killed run said it did.
#[derive(Default)]
struct Said {
    appending: Vec<u64>,
    synced: Vec<u64>,
    acking: Vec<u64>,
    acked: Vec<u64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_never_loses_or_corrupts_a_durable_report() {
    let dir = TempDir::new("kill");
    let spool_dir = dir.path().join("spool");
    let terminal_id = uuid::Uuid::new_v4();
    let mut rng = rand::rng();
    // Everything ever confirmed durable and not yet acknowledged durably.
    let mut must_have: BTreeSet<u64> = BTreeSet::new();
    let mut highest_attempted = None;
    let started = Instant::now();
    let mut torn_rounds = 0;
    for round in 0..ROUNDS {
        let said_path = dir.path().join("said");
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "spool_kill::stress_writer", "--ignored"])
            .env(DIR_VAR, &spool_dir)
            .env(TERMINAL_VAR, terminal_id.to_string())
            .env(SAID_VAR, &said_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the stress writer");
        // Kill at a random moment: sometimes during start-up and recovery, mostly
        // while it appends.
        std::thread::sleep(Duration::from_micros(rng.random_range(0..30_000)));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        let said = read_said(&said_path);
        let _ = std::fs::remove_file(&said_path);
        if said.appending.len() > said.synced.len() {
            torn_rounds += 1;
        }
        highest_attempted = highest_attempted.max(said.appending.last().copied());
        must_have.extend(&said.synced);
        // A durable ack removes reports from what must stay; an ack in flight may
        // or may not have happened.
        if let Some(&acked) = said.acked.last() {
            must_have.retain(|s| *s > acked);
        }
        let in_flight_ack = said
            .acking
            .last()
            .copied()
            .filter(|a| said.acked.last() != Some(a));

        let (mut spool, recovery) = Spool::open_dir(&spool_dir, stress_config())
            .unwrap_or_else(|e| panic!("round {round}: the spool does not reopen: {e}"));
        let present: BTreeSet<u64> = spool.pending_seqs().into_iter().collect();
        for seq in &must_have {
            let acked_in_flight = in_flight_ack.is_some_and(|a| *seq <= a);
            assert!(
                present.contains(seq) || acked_in_flight,
                "round {round}: durable seq {seq} lost (recovery {recovery:?})"
            );
        }
        for seq in &present {
            assert!(
                highest_attempted.is_some_and(|h| *seq <= h),
                "round {round}: seq {seq} was never written"
            );
        }
        // Every record reads back intact: exactly the report written for its seq.
        let mut reader = {
            let copy = dir.path().join(format!("copy-{round}"));
            copy_dir(&spool_dir, &copy);
            Spool::open_dir(&copy, stress_config()).unwrap().0
        };
        let mut read = Vec::new();
        while let Some(record) = reader.front().unwrap() {
            let expected = stress_report(terminal_id, record.seq).to_json();
            assert!(
                record.payload == expected,
                "round {round}: seq {} corrupt",
                record.seq
            );
            read.push(record.seq);
            reader.ack_through(record.seq).unwrap();
        }
        assert_eq!(read, spool.pending_seqs(), "round {round}");
        let _ = std::fs::remove_dir_all(dir.path().join(format!("copy-{round}")));
        // What survived a reopen is durable from now on.
        must_have = present;
        drop(spool.sync());
    }
    assert!(
        torn_rounds > 0,
        "no round was killed mid-append; the test would prove nothing"
    );
    eprintln!(
        "{ROUNDS} rounds in {:?}, {torn_rounds} killed mid-append, {} reports pending",
        started.elapsed(),
        must_have.len()
    );

    // Publish what is left through the agent's own delivery path.
    let vhost = Vhost::new();
    let (_connection, channel) = crate::helpers::ingest_queue(&vhost).await;
    let config = sample_config(&dir.path().join("state"), &vhost.url())
        .replace(
            "terminal_id = \"",
            &format!("terminal_id = \"{terminal_id}\"\n# was: \""),
        )
        .replace(
            "[host]",
            &format!("[spool]\ndir = \"{}\"\n\n[host]", spool_dir.display()),
        );
    let settings =
        fleet_agent::Settings::from_toml(&config, std::path::Path::new("kill.toml")).unwrap();
    let mut agent = Agent::new(settings).unwrap();
    let expected: Vec<u64> = agent.spool().pending_seqs();
    let mut sent = 0;
    while agent.pending() > 0 && sent < expected.len() + 5 {
        sent += agent.flush().await.max(1);
    }
    assert_eq!(agent.pending(), 0, "everything left was confirmed");
    agent.close().await;
    let mut got = Vec::new();
    while let Some(message) = channel
        .basic_get("ingest".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        let delivery = message.delivery;
        let report = Report::parse(&delivery.data).expect("every published body is a valid report");
        assert_eq!(report.terminal_id, terminal_id);
        assert_eq!(
            delivery
                .properties
                .message_id()
                .as_ref()
                .map(|m| m.to_string()),
            Some(format!("{terminal_id}/{}", report.seq))
        );
        assert_eq!(report, stress_report(terminal_id, report.seq));
        got.push(report.seq);
    }
    assert_eq!(
        got, expected,
        "published exactly the spooled reports, in order"
    );
}

/// What a killed writer logged; nothing if it was killed before it opened the log.
fn read_said(path: &Path) -> Said {
    let mut said = Said::default();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // A kill can cut the last write short; a step whose line is incomplete is one
    // the writer never finished saying.
    let complete = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
    for line in complete.lines() {
        let (what, seq) = line.split_once(' ').unwrap();
        let seq: u64 = seq.parse().unwrap();
        match what {
            "appending" => said.appending.push(seq),
            "synced" => said.synced.push(seq),
            "acking" => said.acking.push(seq),
            "acked" => said.acked.push(seq),
            other => panic!("unexpected line {other}"),
        }
    }
    said
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}
