//! The AMQP topology of contract §1, declared idempotently by every ingest replica.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

/// Where agents publish reports.
pub const REPORTS_EXCHANGE: &str = "fleet.reports";
/// The queue the service consumes.
pub const INGEST_QUEUE: &str = "fleet.ingest";
/// Binding of [`INGEST_QUEUE`] to [`REPORTS_EXCHANGE`].
pub const INGEST_BINDING: &str = "v1.*.report";
/// Exchange and queue of refused messages.
pub const DEAD: &str = "fleet.dead";
/// The header that says why a message was refused.
pub const REJECT_REASON_HEADER: &str = "x-fleet-reject-reason";
/// A human-readable detail beside the reason (which field, why).
pub const REJECT_DETAIL_HEADER: &str = "x-fleet-reject-detail";

/// Declares both exchanges, both queues and their bindings.
///
/// Both queues are quorum queues: they survive the loss of a broker node in a cluster,
/// and a refused report is as worth keeping as an accepted one. `fleet.ingest` also
/// names `fleet.dead` as its dead-letter exchange, as a backstop for anything the
/// broker itself dead-letters.
pub async fn declare(channel: &Channel) -> lapin::Result<()> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            REPORTS_EXCHANGE.into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await?;
    channel
        .exchange_declare(
            DEAD.into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await?;
    let queue = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let mut quorum = FieldTable::default();
    quorum.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    channel
        .queue_declare(DEAD.into(), queue, quorum.clone())
        .await?;
    let mut ingest_args = quorum;
    ingest_args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(DEAD.into()),
    );
    channel
        .queue_declare(INGEST_QUEUE.into(), queue, ingest_args)
        .await?;
    channel
        .queue_bind(
            INGEST_QUEUE.into(),
            REPORTS_EXCHANGE.into(),
            INGEST_BINDING.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            DEAD.into(),
            DEAD.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// deploy/rabbitmq/definitions.json must declare exactly what the service declares,
    /// or a broker provisioned from it would refuse the service's declarations.
    #[test]
    fn deploy_definitions_match_the_declared_topology() {
        let text = include_str!("../../../deploy/rabbitmq/definitions.json");
        let d: serde_json::Value = serde_json::from_str(text).unwrap();
        let exchange = |name: &str| {
            d["exchanges"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == name)
                .cloned()
                .unwrap()
        };
        let queue = |name: &str| {
            d["queues"]
                .as_array()
                .unwrap()
                .iter()
                .find(|q| q["name"] == name)
                .cloned()
                .unwrap()
        };
        assert_eq!(exchange(REPORTS_EXCHANGE)["type"], "topic");
        assert_eq!(exchange(DEAD)["type"], "fanout");
        assert_eq!(exchange(REPORTS_EXCHANGE)["durable"], true);
        assert_eq!(queue(INGEST_QUEUE)["arguments"]["x-queue-type"], "quorum");
        assert_eq!(
            queue(INGEST_QUEUE)["arguments"]["x-dead-letter-exchange"],
            DEAD
        );
        assert_eq!(queue(DEAD)["arguments"]["x-queue-type"], "quorum");
        let bound = d["bindings"].as_array().unwrap().iter().any(|b| {
            b["source"] == REPORTS_EXCHANGE
                && b["destination"] == INGEST_QUEUE
                && b["routing_key"] == INGEST_BINDING
        });
        assert!(bound, "fleet.ingest is bound with v1.*.report");
    }
}
