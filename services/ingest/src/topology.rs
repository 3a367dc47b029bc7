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

/// An exchange the service declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exchange {
    pub name: &'static str,
    /// `topic` or `fanout` (the names RabbitMQ's definitions use).
    pub kind: &'static str,
    pub durable: bool,
}

/// A queue the service declares, with its `x-` arguments (all strings here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Queue {
    pub name: &'static str,
    pub durable: bool,
    pub arguments: &'static [(&'static str, &'static str)],
}

/// A binding of a queue to an exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding {
    pub exchange: &'static str,
    pub queue: &'static str,
    pub routing_key: &'static str,
}

/// The whole topology of contract §1, as data: [`declare`] declares exactly this,
/// and [`definitions`] renders it the way `deploy/rabbitmq/definitions.json` says
/// it, so a test can hold the two equal.
#[derive(Clone, Copy, Debug)]
pub struct Topology {
    pub exchanges: &'static [Exchange],
    pub queues: &'static [Queue],
    pub bindings: &'static [Binding],
}

/// Both queues are quorum queues: they survive the loss of a broker node in a
/// cluster, and a refused report is as worth keeping as an accepted one.
/// `fleet.ingest` also names `fleet.dead` as its dead-letter exchange, as a backstop
/// for anything the broker itself dead-letters.
pub const TOPOLOGY: Topology = Topology {
    exchanges: &[
        Exchange {
            name: REPORTS_EXCHANGE,
            kind: "topic",
            durable: true,
        },
        Exchange {
            name: DEAD,
            kind: "fanout",
            durable: true,
        },
    ],
    queues: &[
        Queue {
            name: INGEST_QUEUE,
            durable: true,
            arguments: &[("x-queue-type", "quorum"), ("x-dead-letter-exchange", DEAD)],
        },
        Queue {
            name: DEAD,
            durable: true,
            arguments: &[("x-queue-type", "quorum")],
        },
    ],
    bindings: &[
        Binding {
            exchange: REPORTS_EXCHANGE,
            queue: INGEST_QUEUE,
            routing_key: INGEST_BINDING,
        },
        Binding {
            exchange: DEAD,
            queue: DEAD,
            routing_key: "",
        },
    ],
};

fn exchange_kind(kind: &str) -> ExchangeKind {
    match kind {
        "topic" => ExchangeKind::Topic,
        "fanout" => ExchangeKind::Fanout,
        "direct" => ExchangeKind::Direct,
        "headers" => ExchangeKind::Headers,
        other => ExchangeKind::Custom(other.to_owned()),
    }
}

/// Declares [`TOPOLOGY`]: the exchanges, then the queues, then the bindings.
pub async fn declare(channel: &Channel) -> lapin::Result<()> {
    for exchange in TOPOLOGY.exchanges {
        channel
            .exchange_declare(
                exchange.name.into(),
                exchange_kind(exchange.kind),
                ExchangeDeclareOptions {
                    durable: exchange.durable,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
    }
    for queue in TOPOLOGY.queues {
        let mut arguments = FieldTable::default();
        for (key, value) in queue.arguments {
            arguments.insert((*key).into(), AMQPValue::LongString((*value).into()));
        }
        channel
            .queue_declare(
                queue.name.into(),
                QueueDeclareOptions {
                    durable: queue.durable,
                    ..Default::default()
                },
                arguments,
            )
            .await?;
    }
    for binding in TOPOLOGY.bindings {
        channel
            .queue_bind(
                binding.queue.into(),
                binding.exchange.into(),
                binding.routing_key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

/// [`TOPOLOGY`] in the shape of RabbitMQ's definitions file (`exchanges`, `queues`,
/// `bindings`, each for `vhost`): what [`declare`] declares, with the defaults it
/// leaves (not auto-delete, not internal, no binding arguments) spelt out.
pub fn definitions(vhost: &str) -> serde_json::Value {
    use serde_json::json;
    let exchanges: Vec<_> = TOPOLOGY
        .exchanges
        .iter()
        .map(|e| {
            json!({ "name": e.name, "vhost": vhost, "type": e.kind, "durable": e.durable,
                    "auto_delete": false, "internal": false, "arguments": {} })
        })
        .collect();
    let queues: Vec<_> = TOPOLOGY
        .queues
        .iter()
        .map(|q| {
            let arguments: serde_json::Map<String, serde_json::Value> = q
                .arguments
                .iter()
                .map(|(k, v)| ((*k).to_owned(), json!(v)))
                .collect();
            json!({ "name": q.name, "vhost": vhost, "durable": q.durable,
                    "auto_delete": false, "arguments": arguments })
        })
        .collect();
    let bindings: Vec<_> = TOPOLOGY
        .bindings
        .iter()
        .map(|b| {
            json!({ "source": b.exchange, "vhost": vhost, "destination": b.queue,
                    "destination_type": "queue", "routing_key": b.routing_key,
                    "arguments": {} })
        })
        .collect();
    json!({ "exchanges": exchanges, "queues": queues, "bindings": bindings })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sorts each list so the comparison ignores order, which RabbitMQ does too.
    fn normalised(d: &serde_json::Value, key: &str) -> Vec<String> {
        let mut items: Vec<String> = d[key]
            .as_array()
            .unwrap_or(&Vec::new())
            .iter()
            .map(|v| v.to_string())
            .collect();
        items.sort();
        items
    }

    /// deploy/rabbitmq/definitions.json must declare exactly what the service declares
    /// — names, types, durability, queue arguments such as x-queue-type, bindings —
    /// or a broker provisioned from it would refuse the service's declarations
    /// (PRECONDITION_FAILED) or route differently.
    #[test]
    fn deploy_definitions_match_the_declared_topology() {
        let text = include_str!("../../../deploy/rabbitmq/definitions.json");
        let file: serde_json::Value = serde_json::from_str(text).unwrap();
        let declared = definitions("/");
        for key in ["exchanges", "queues", "bindings"] {
            assert_eq!(
                normalised(&file, key),
                normalised(&declared, key),
                "{key} differ between definitions.json and topology::TOPOLOGY"
            );
        }
    }

    #[test]
    fn the_contract_topology() {
        let ingest = TOPOLOGY
            .queues
            .iter()
            .find(|q| q.name == INGEST_QUEUE)
            .unwrap();
        assert!(ingest.durable);
        assert!(ingest.arguments.contains(&("x-queue-type", "quorum")));
        assert!(ingest.arguments.contains(&("x-dead-letter-exchange", DEAD)));
        assert!(TOPOLOGY.bindings.contains(&Binding {
            exchange: REPORTS_EXCHANGE,
            queue: INGEST_QUEUE,
            routing_key: INGEST_BINDING,
        }));
    }
}
