//! Publishing against the real RabbitMQ on 127.0.0.1:5672, each test in its own vhost.

use fleet_agent::daemon::Backoff;
use fleet_agent::publish::{EXCHANGE, PublishError};
use fleet_agent::{Agent, AmqpTarget, SeqStore, Settings, publish_report};
use fleet_protocol::{Report, TenantSlug};
use lapin::Channel;
use lapin::message::Delivery;
use lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable};

use crate::helpers::{TempDir, Vhost, declare_exchange, fleet_agent, sample_config};

async fn bound_queue(channel: &Channel, name: &str, key: &str, arguments: FieldTable) {
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(name.into(), options, arguments)
        .await
        .expect("declare queue");
    channel
        .queue_bind(
            name.into(),
            EXCHANGE.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind queue");
}

async fn get(channel: &Channel, queue: &str) -> Option<Delivery> {
    channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
        .map(|message| message.delivery)
}

/// Checks one delivery against the contract's §1 and returns its report.
fn check_delivery(delivery: &Delivery) -> Report {
    let report = Report::parse(&delivery.data).expect("the body is a v1 report");
    let properties = &delivery.properties;
    assert_eq!(delivery.exchange.as_str(), EXCHANGE);
    assert_eq!(delivery.routing_key.as_str(), "v1.demo.report");
    assert_eq!(
        properties.message_id().as_ref().map(|m| m.to_string()),
        Some(report.message_id())
    );
    assert_eq!(
        properties
            .user_id()
            .as_ref()
            .map(|u| u.to_string())
            .as_deref(),
        Some("guest")
    );
    assert_eq!(*properties.delivery_mode(), Some(2), "persistent");
    assert_eq!(
        properties
            .content_type()
            .as_ref()
            .map(|c| c.to_string())
            .as_deref(),
        Some("application/json")
    );
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_publish_seq_n_and_n_plus_1_as_the_contract_says() {
    let vhost = Vhost::new();
    let (_connection, channel) = declare_exchange(&vhost).await;
    bound_queue(&channel, "ingest", "v1.*.report", FieldTable::default()).await;

    let dir = TempDir::new("publish");
    let state = dir.path().join("state");
    let config = dir.write("agent.toml", &sample_config(&state, &vhost.url()));
    let seq_store = SeqStore::new(&state);
    let first = seq_store.peek().unwrap();

    let mut seqs = Vec::new();
    for _ in 0..2 {
        let output = fleet_agent(&["run", "--once", "--config", config.to_str().unwrap()]);
        assert!(
            output.status.success(),
            "run --once: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let delivery = get(&channel, "ingest").await.expect("one message per run");
        let report = check_delivery(&delivery);
        assert_eq!(report.versions.as_ref().unwrap()["face_library"], "5.0.3");
        assert_eq!(report.reboot.as_ref().unwrap().pending, Some(true));
        seqs.push(report.seq);
    }
    assert_eq!(seqs, [first, first + 1]);
    assert_eq!(
        seq_store.peek().unwrap(),
        first + 2,
        "the file holds the next seq"
    );
    assert!(
        get(&channel, "ingest").await.is_none(),
        "nothing else was published"
    );
}

fn settings(vhost_url: &str, state: &std::path::Path) -> Settings {
    Settings::from_toml(
        &sample_config(state, vhost_url),
        std::path::Path::new("test.toml"),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nacked_report_is_kept_and_sent_again_with_the_same_message_id() {
    let vhost = Vhost::new();
    let (_connection, channel) = declare_exchange(&vhost).await;
    // A full queue that rejects publishes makes the broker nack.
    let mut full = FieldTable::default();
    full.insert("x-max-length".into(), AMQPValue::LongLongInt(0));
    full.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    bound_queue(&channel, "full", "v1.*.report", full).await;

    let dir = TempDir::new("nack");
    let settings = settings(&vhost.url(), &dir.path().join("state"));
    let probe = fleet_agent::probe::snapshot(&settings, 0);
    let err = publish_report(&settings.amqp, &settings.tenant, &probe)
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Nacked), "{err:?}");

    let mut agent = Agent::new(settings).unwrap();
    let seq = agent.collect().await.unwrap();
    assert_eq!(agent.flush().await, 0, "a nack is not a success");
    assert_eq!(agent.pending(), 1, "the report is kept");
    assert_eq!(
        agent.consecutive_failures(),
        1,
        "a nack counts as a failure"
    );

    channel
        .queue_delete("full".into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    bound_queue(&channel, "ingest", "v1.*.report", FieldTable::default()).await;
    assert_eq!(agent.flush().await, 1, "the retry is confirmed");
    assert_eq!(agent.pending(), 0);
    assert_eq!(
        agent.consecutive_failures(),
        0,
        "a confirm resets the backoff"
    );
    agent.close().await;

    let report = check_delivery(&get(&channel, "ingest").await.expect("the retried report"));
    assert_eq!(
        report.seq, seq,
        "a retry resends the same report, not a new seq"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unroutable_report_is_an_error_not_a_silent_loss() {
    let vhost = Vhost::new();
    let (_connection, channel) = declare_exchange(&vhost).await;
    bound_queue(&channel, "ingest", "v1.demo.report", FieldTable::default()).await;

    let dir = TempDir::new("unroutable");
    let settings = settings(&vhost.url(), &dir.path().join("state"));
    let report = fleet_agent::probe::snapshot(&settings, 7);
    let other = TenantSlug::parse("other-vendor").unwrap();
    let err = publish_report(&settings.amqp, &other, &report)
        .await
        .unwrap_err();
    assert!(
        matches!(err, PublishError::Unroutable { code: 312, .. }),
        "{err:?}"
    );
    assert!(!err.is_connection_lost());

    // The same report for the bound tenant goes through.
    publish_report(&settings.amqp, &settings.tenant, &report)
        .await
        .unwrap();
    assert_eq!(
        check_delivery(&get(&channel, "ingest").await.unwrap()).seq,
        7
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_broker_the_seq_is_still_never_reused() {
    let dir = TempDir::new("no-broker");
    let state = dir.path().join("state");
    // Nothing listens on port 1: connecting is refused at once.
    let config = dir.write(
        "agent.toml",
        &sample_config(&state, "amqp://guest:guest@127.0.0.1:1/%2f"),
    );
    let output = fleet_agent(&["run", "--once", "--config", config.to_str().unwrap()]);
    assert!(
        !output.status.success(),
        "an unconfirmed report is a failure of --once"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not confirmed"), "{stderr}");
    assert!(
        !stderr.contains("guest:guest"),
        "the password never shows in logs: {stderr}"
    );
    assert_eq!(
        SeqStore::new(&state).peek().unwrap(),
        1,
        "seq 0 was used up although unsent"
    );

    let target = AmqpTarget::parse("amqp://guest:guest@127.0.0.1:1/%2f").unwrap();
    let err = fleet_agent::Publisher::connect(&target)
        .await
        .err()
        .expect("refused");
    assert!(err.is_connection_lost(), "{err:?}");
}

/// Polls `queue` until `count` messages arrived or `within` passed.
async fn collect_seqs(
    channel: &Channel,
    queue: &str,
    count: usize,
    within: std::time::Duration,
) -> Vec<u64> {
    let deadline = tokio::time::Instant::now() + within;
    let mut seqs = Vec::new();
    while seqs.len() < count && tokio::time::Instant::now() < deadline {
        match get(channel, queue).await {
            Some(delivery) => seqs.push(check_delivery(&delivery).seq),
            None => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_reports_every_interval_survives_a_disconnect_and_stops_on_sigterm() {
    use std::time::Duration;

    let vhost = Vhost::new();
    let (_connection, channel) = declare_exchange(&vhost).await;
    bound_queue(&channel, "ingest", "v1.*.report", FieldTable::default()).await;
    let dir = TempDir::new("run");
    let config = sample_config(&dir.path().join("state"), &vhost.url())
        .replace("[host]", "interval_secs = 1\n[host]");
    let config = dir.write("agent.toml", &config);
    let log_path = dir.path().join("agent.log");
    let mut agent = std::process::Command::new(env!("CARGO_BIN_EXE_fleet-agent"))
        .args(["run", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("start the agent");
    // Whatever happens below, the agent does not outlive the test.
    struct Reap<'a>(&'a mut std::process::Child);
    impl Drop for Reap<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let agent = Reap(&mut agent);

    let mut seqs = collect_seqs(&channel, "ingest", 2, Duration::from_secs(15)).await;
    assert_eq!(seqs.len(), 2, "two reports within 15 s at a 1 s interval");

    // The broker drops every connection of the vhost, ours included.
    let closed = std::process::Command::new("rabbitmqctl")
        .args([
            "close_all_connections",
            "-p",
            &vhost.name,
            "test: broker restart",
        ])
        .output()
        .unwrap();
    assert!(
        closed.status.success(),
        "{}",
        String::from_utf8_lossy(&closed.stderr)
    );
    let (_connection, channel) = declare_exchange(&vhost).await;
    seqs.extend(collect_seqs(&channel, "ingest", 3, Duration::from_secs(20)).await);
    assert_eq!(
        seqs.len(),
        5,
        "reports resume after the disconnect: {seqs:?}"
    );

    let pid = agent.0.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = agent.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit within 10 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(status.success(), "exit {status:?}\n{log}");
    assert!(
        log.contains("SIGTERM received") && log.contains("stopping"),
        "{log}"
    );
    assert!(log.matches("connected").count() >= 2, "reconnected:\n{log}");
    assert!(
        log.contains("broker unavailable") || log.contains("connection was lost"),
        "the loss was noticed:\n{log}"
    );

    // Kept reports are resent, so nothing is skipped: the seqs seen are contiguous
    // (a report confirmed just as the connection dropped may come twice, same id).
    let mut distinct = seqs.clone();
    distinct.dedup();
    assert!(seqs.windows(2).all(|w| w[0] <= w[1]), "in order: {seqs:?}");
    assert!(
        distinct.windows(2).all(|w| w[1] == w[0] + 1),
        "no gap: {seqs:?}\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backoff_grows_while_publishes_fail_even_if_connects_succeed() {
    use std::time::Duration;

    // No exchange in this vhost: every connect succeeds, every publish fails.
    let vhost = Vhost::new();
    let dir = TempDir::new("backoff");
    let mut agent = Agent::new(settings(&vhost.url(), &dir.path().join("state")))
        .unwrap()
        .with_backoff(Backoff::new(
            Duration::from_millis(5),
            Duration::from_millis(50),
        ));
    agent.collect().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while agent.consecutive_failures() < 4 && tokio::time::Instant::now() < deadline {
        assert_eq!(agent.flush().await, 0);
        // Until the backoff allows the next attempt, not a guessed while.
        tokio::time::sleep_until(agent.next_attempt()).await;
    }
    assert!(
        agent.consecutive_failures() >= 4,
        "a successful connect must not reset the backoff"
    );
    assert_eq!(agent.pending(), 1, "the report is still kept");
    agent.close().await;
}
