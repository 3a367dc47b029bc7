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

use std::time::Duration;

use fleet_protocol::report::MAX_BODY_BYTES;
use fleet_protocol::{Report, TenantSlug};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};

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
    /// (`<terminal_id>/<seq>`), and waits for the broker's confirm.
    pub async fn publish_body(
        &self,
        tenant: &TenantSlug,
        message_id: &str,
        body: &[u8],
        timestamp: u64,
    ) -> Result<(), PublishError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(PublishError::TooLarge(body.len()));
        }
        let properties = BasicProperties::default()
            .with_content_type(CONTENT_TYPE.into())
            .with_delivery_mode(PERSISTENT)
            .with_message_id(message_id.into())
            .with_user_id(self.user_id.as_str().into())
            .with_app_id("fleet-agent".into())
            .with_timestamp(timestamp);
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
