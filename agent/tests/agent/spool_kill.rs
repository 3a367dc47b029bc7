//! The agent binary killed with SIGKILL at random moments while it writes its spool,
//! 200 rounds on one spool directory: the spool always reopens, no report it said was
//! durable is lost, no record comes back corrupt, and finally everything left is
//! published through the real delivery path to a real RabbitMQ and every message is
//! a valid report with its own `message_id`.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fleet_agent::Agent;
use fleet_agent::spool::Spool;
use fleet_agent::stress::{stress_config, stress_report};
use fleet_protocol::Report;
use lapin::options::BasicGetOptions;
use rand::Rng;

use crate::helpers::{TempDir, Vhost, sample_config};

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
        let mut child = Command::new(env!("CARGO_BIN_EXE_fleet-agent"))
            .args([
                "spool-stress",
                "--dir",
                spool_dir.to_str().unwrap(),
                "--terminal-id",
                &terminal_id.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the stress writer");
        // Kill at a random moment: sometimes during start-up and recovery, mostly
        // while it appends.
        std::thread::sleep(Duration::from_micros(rng.random_range(0..30_000)));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        let mut said = Said::default();
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
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
            let expected = stress_report(terminal_id, record.seq).unwrap().to_json();
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
        assert_eq!(report, stress_report(terminal_id, report.seq).unwrap());
        got.push(report.seq);
    }
    assert_eq!(
        got, expected,
        "published exactly the spooled reports, in order"
    );
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}
