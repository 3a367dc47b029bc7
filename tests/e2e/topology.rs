//! deploy/rabbitmq/definitions.json against what the broker holds after the service
//! declared its topology: re-declaring each exchange and queue exactly as the file
//! says must be accepted as equivalent. RabbitMQ refuses a declaration whose type,
//! durability or arguments differ (PRECONDITION_FAILED), so a broker provisioned
//! from the file and the service would refuse each other the same way. The unit
//! test in fleet-ingest compares the file with the topology's data; this one checks
//! what declare() really sends.

use fleet_e2e::broker::TestVhost;
use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use serde_json::Value;

const DEFINITIONS: &str = include_str!("../../deploy/rabbitmq/definitions.json");

fn kind(name: &str) -> ExchangeKind {
    match name {
        "topic" => ExchangeKind::Topic,
        "fanout" => ExchangeKind::Fanout,
        "direct" => ExchangeKind::Direct,
        "headers" => ExchangeKind::Headers,
        other => ExchangeKind::Custom(other.to_owned()),
    }
}

fn arguments(value: &Value) -> anyhow::Result<FieldTable> {
    let mut table = FieldTable::default();
    if let Some(map) = value.as_object() {
        for (key, v) in map {
            let v = v
                .as_str()
                .ok_or_else(|| anyhow::anyhow!("argument {key} is not a string"))?;
            table.insert(key.as_str().into(), AMQPValue::LongString(v.into()));
        }
    }
    Ok(table)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_accepts_definitions_json_as_what_the_service_declared() -> anyhow::Result<()> {
    let vhost = tokio::task::spawn_blocking(TestVhost::create).await??;
    let conn = Connection::connect(&vhost.url(), ConnectionProperties::default()).await?;
    fleet_ingest::topology::declare(&conn.create_channel().await?).await?;
    let file: Value = serde_json::from_str(DEFINITIONS)?;

    let exchanges = file["exchanges"].as_array().cloned().unwrap_or_default();
    let queues = file["queues"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        exchanges.len(),
        fleet_ingest::topology::TOPOLOGY.exchanges.len()
    );
    assert_eq!(queues.len(), fleet_ingest::topology::TOPOLOGY.queues.len());
    for e in &exchanges {
        let name = e["name"].as_str().unwrap_or_default();
        // A refused declaration closes the channel: one channel per check.
        let channel = conn.create_channel().await?;
        channel
            .exchange_declare(
                name.into(),
                kind(e["type"].as_str().unwrap_or_default()),
                ExchangeDeclareOptions {
                    durable: e["durable"] == true,
                    auto_delete: e["auto_delete"] == true,
                    internal: e["internal"] == true,
                    ..ExchangeDeclareOptions::default()
                },
                arguments(&e["arguments"])?,
            )
            .await
            .map_err(|err| anyhow::anyhow!("exchange {name} differs from the file: {err}"))?;
    }
    for q in &queues {
        let name = q["name"].as_str().unwrap_or_default();
        let channel = conn.create_channel().await?;
        channel
            .queue_declare(
                name.into(),
                QueueDeclareOptions {
                    durable: q["durable"] == true,
                    auto_delete: q["auto_delete"] == true,
                    ..QueueDeclareOptions::default()
                },
                arguments(&q["arguments"])?,
            )
            .await
            .map_err(|err| anyhow::anyhow!("queue {name} differs from the file: {err}"))?;
    }

    // The check can fail: a queue declared with other arguments is refused.
    let channel = conn.create_channel().await?;
    let mut other = FieldTable::default();
    other.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("classic".into()),
    );
    let refused = channel
        .queue_declare(
            fleet_ingest::topology::INGEST_QUEUE.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            other,
        )
        .await;
    assert!(refused.is_err(), "a classic re-declaration must be refused");
    let _ = conn.close(200, "done".into()).await;
    Ok(())
}
