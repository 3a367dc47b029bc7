//! Publishing reports to RabbitMQ as the contract's §1 says, with publisher confirms.
//!
//! A report counts as sent only when the broker acknowledged it (`basic.ack` after
//! `confirm_select`). Everything else is an error the caller must treat as "not
//! sent" and retry: a `nack`, a lost connection, no confirm in time, and also a
//! message the exchange could not route anywhere — published `mandatory`, so the
//! broker returns it instead of dropping it silently while no ingest queue is bound.
//!
//! Properties: persistent (`delivery_mode` 2), `content_type` `application/json`,
//! `message_id` `<terminal_id>/<seq>` (the service's idempotency key, so a retry of a
//! report that was in fact stored changes nothing), `user_id` the AMQP user name
//! (RabbitMQ checks it against the connection; the service maps it to a tenant), and
//! the routing key `v1.<tenant>.report` on the exchange `fleet.reports`. The agent does
//! not declare the exchange: the service owns the topology, and a vendor's AMQP user
//! may lack the permission to configure it.
//!
//! Tracing: every message carries a W3C `traceparent` header (contract §1 leaves
//! unknown headers to the reader) with a fresh random trace id and the id of this
//! publish, so the service's spans for the report (ingest, the database write, the
//! findings it changed) form one trace under the agent's publish. The agent starts
//! the trace but exports nothing: it has no tracer, and the publish span exists only
//! as the parent id the service's spans point to. Writing 55 bytes by hand
//! ([`fleet_protocol::TraceParent`]) keeps OpenTelemetry out of the agent binary.
//! Each attempt of a retried report is a new publish, so it gets a new context.

use std::time::Duration;

use fleet_protocol::report::MAX_BODY_BYTES;
use fleet_protocol::trace::FLAG_SAMPLED;
use fleet_protocol::{Report, TRACEPARENT_HEADER, TenantSlug, TraceParent};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use rand::Rng;

use crate::config::AmqpTarget;

/// The exchange every report goes to.
pub const EXCHANGE: &str = "fleet.reports";
pub const CONTENT_TYPE: &str = "application/json";
/// AMQP `delivery_mode` of a persistent message.
pub const PERSISTENT: u8 = 2;
/// TCP, TLS and the AMQP handshake together.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A healthy broker confirms in milliseconds; far longer means the link is dead.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);
/// Closing must not hold up a stop or a reconnect.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a report was not confirmed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot connect to {target}: {source}")]
    Connect {
        target: String,
        #[source]
        source: lapin::Error,
    },
    #[error("connecting to {0} took longer than {CONNECT_TIMEOUT:?}")]
    ConnectTimeout(String),
    #[error("AMQP channel error: {0}")]
    Channel(#[source] lapin::Error),
    #[error("the broker refused the report (nack)")]
    Nacked,
    #[error(
        "the broker could not route the report ({code} {text}); is a queue bound to {EXCHANGE}?"
    )]
    Unroutable { code: u16, text: String },
    #[error("no confirm within {CONFIRM_TIMEOUT:?}")]
    ConfirmTimeout,
    #[error("publisher confirms are not enabled on the channel")]
    NotConfirmed,
    #[error("the report is {0} bytes, over the 64 KiB limit")]
    TooLarge(usize),
}

impl PublishError {
    /// The connection cannot be trusted any more: drop it and reconnect.
    pub fn is_connection_lost(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. }
                | Self::ConnectTimeout(_)
                | Self::Channel(_)
                | Self::ConfirmTimeout
                | Self::NotConfirmed
        )
    }
}

/// One connection and one confirm-mode channel.
pub struct Publisher {
    connection: Connection,
    channel: Channel,
    /// Sent as `user_id`; must be the name the connection authenticated with.
    user_id: String,
}

impl Publisher {
    /// Connects and enables publisher confirms.
    pub async fn connect(target: &AmqpTarget) -> Result<Self, PublishError> {
        let properties = ConnectionProperties::default()
            .with_connection_name(format!("fleet-agent {}", crate::AGENT_VERSION).into());
        // amqps:// with the built-in web roots, or with the roots of `amqp_ca_file`.
        let tls = lapin::tcp::OwnedTLSConfig {
            identity: None,
            cert_chain: target.ca_pem().map(str::to_owned),
        };
        let connect = async {
            lapin::ConnectionBuilder::new()?
                .with_uri_str(target.url().to_owned())
                .with_properties(properties)
                .with_tls_config(tls)
                .connect()
                .await
        };
        let connection = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| PublishError::ConnectTimeout(target.to_string()))?
            .map_err(|source| PublishError::Connect {
                target: target.to_string(),
                source,
            })?;
        let channel = connection
            .create_channel()
            .await
            .map_err(PublishError::Channel)?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(PublishError::Channel)?;
        Ok(Self {
            connection,
            channel,
            user_id: target.user().to_owned(),
        })
    }

    /// Publishes one report and waits for the broker's confirm.
    pub async fn publish(&self, tenant: &TenantSlug, report: &Report) -> Result<(), PublishError> {
        let body = report.to_json();
        let timestamp = u64::try_from(report.observed_at.timestamp()).unwrap_or(0);
        self.publish_body(tenant, &report.message_id(), &body, timestamp)
            .await
    }

    /// Publishes a report body exactly as spooled, under its `message_id`
    /// (`<terminal_id>/<seq>`), and waits for the broker's confirm. A new trace starts
    /// here ([`new_trace`]).
    pub async fn publish_body(
        &self,
        tenant: &TenantSlug,
        message_id: &str,
        body: &[u8],
        timestamp: u64,
    ) -> Result<(), PublishError> {
        self.publish_body_traced(tenant, message_id, body, timestamp, new_trace())
            .await
    }

    /// [`Publisher::publish_body`] under a given trace context: the one a caller
    /// that traces itself (or a test that wants to find the trace) chose.
    pub async fn publish_body_traced(
        &self,
        tenant: &TenantSlug,
        message_id: &str,
        body: &[u8],
        timestamp: u64,
        trace: TraceParent,
    ) -> Result<(), PublishError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(PublishError::TooLarge(body.len()));
        }
        let properties = properties(&self.user_id, message_id, timestamp, trace);
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let confirm = self
            .channel
            .basic_publish(
                EXCHANGE.into(),
                tenant.routing_key().into(),
                options,
                body,
                properties,
            )
            .await
            .map_err(PublishError::Channel)?;
        let confirmation = tokio::time::timeout(CONFIRM_TIMEOUT, confirm)
            .await
            .map_err(|_| PublishError::ConfirmTimeout)?
            .map_err(PublishError::Channel)?;
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(returned)) => Err(PublishError::Unroutable {
                code: returned.reply_code,
                text: returned.reply_text.to_string(),
            }),
            Confirmation::Nack(_) => Err(PublishError::Nacked),
            Confirmation::NotRequested => Err(PublishError::NotConfirmed),
        }
    }

    /// Whether the connection and channel still look usable.
    pub fn is_connected(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }

    /// Closes the connection politely, waiting at most a few seconds; errors only
    /// mean it was gone already.
    pub async fn close(self) {
        let close = self.connection.close(200, "closing".into());
        match tokio::time::timeout(CLOSE_TIMEOUT, close).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::debug!(error = %err, "closing the AMQP connection"),
            Err(_) => tracing::debug!("closing the AMQP connection timed out"),
        }
    }
}

/// A new W3C trace context for one publish: random trace id and span id (never
/// zero), sampled, so the service records the trace unless its own sampler says no.
pub fn new_trace() -> TraceParent {
    let mut rng = rand::rng();
    loop {
        if let Some(trace) = TraceParent::new(rng.random(), rng.random(), FLAG_SAMPLED) {
            return trace;
        }
    }
}

/// The AMQP properties of a report message (see the module doc).
fn properties(
    user_id: &str,
    message_id: &str,
    timestamp: u64,
    trace: TraceParent,
) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        TRACEPARENT_HEADER.into(),
        AMQPValue::LongString(trace.to_string().into()),
    );
    BasicProperties::default()
        .with_content_type(CONTENT_TYPE.into())
        .with_delivery_mode(PERSISTENT)
        .with_message_id(message_id.into())
        .with_user_id(user_id.into())
        .with_app_id("fleet-agent".into())
        .with_timestamp(timestamp)
        .with_headers(headers)
}

/// Connects, publishes one report with a confirm, and disconnects. For programs that
/// send a report now and then (a simulator, end-to-end tests); the agent's own loop
/// keeps its connection instead.
pub async fn publish_report(
    target: &AmqpTarget,
    tenant: &TenantSlug,
    report: &Report,
) -> Result<(), PublishError> {
    let publisher = Publisher::connect(target).await?;
    let result = publisher.publish(tenant, report).await;
    publisher.close().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traceparent_of(props: &BasicProperties) -> Option<String> {
        match props.headers().as_ref()?.inner().get(TRACEPARENT_HEADER)? {
            AMQPValue::LongString(s) => Some(s.to_string()),
            _ => None,
        }
    }

    #[test]
    fn a_report_message_carries_a_well_formed_traceparent() {
        let props = properties("vendor-a", "t/1", 0, new_trace());
        let header = traceparent_of(&props).expect("traceparent header set");
        // 00-<32 hex>-<16 hex>-01, lower case, ids not zero.
        let parts: Vec<&str> = header.split('-').collect();
        assert_eq!(parts.len(), 4, "{header}");
        assert_eq!(parts[0], "00");
        assert_eq!(parts[1].len(), 32);
        assert_eq!(parts[2].len(), 16);
        assert_eq!(parts[3], "01");
        assert!(
            header
                .bytes()
                .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{header}"
        );
        let parsed = TraceParent::parse(&header).expect("parses back");
        assert_ne!(parsed.trace_id(), 0);
        assert_ne!(parsed.span_id(), 0);
        assert!(parsed.is_sampled());
        // The other properties are still there.
        assert_eq!(props.message_id().as_ref().map(|s| s.as_str()), Some("t/1"));
        assert_eq!(props.delivery_mode(), &Some(PERSISTENT));
    }

    #[test]
    fn a_given_context_is_sent_as_is() {
        let trace = TraceParent::new(0x1234, 0x56, FLAG_SAMPLED).unwrap();
        let props = properties("vendor-a", "t/1", 0, trace);
        assert_eq!(
            traceparent_of(&props).as_deref(),
            Some("00-00000000000000000000000000001234-0000000000000056-01")
        );
    }

    #[test]
    fn every_publish_starts_a_new_trace() {
        let (a, b) = (new_trace(), new_trace());
        assert_ne!(a.trace_id(), b.trace_id());
        assert_ne!(a.span_id(), b.span_id());
    }
}
