//! Pipelined publishing with confirms at a target rate.
//!
//! `basic_publish` returns once the frame is written; the confirm arrives later. So
//! the pipeline keeps up to `window` confirms outstanding and awaits them in a block,
//! which is what lets one channel reach tens of thousands of messages a second on a
//! small machine (stack.md) while still never counting a report the broker did not
//! acknowledge. A `nack` or an unroutable return is an error, as in the agent.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fleet_protocol::{Report, TenantSlug};
use lapin::PublisherConfirm;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};

use fleet_agent::publish::{CONTENT_TYPE, EXCHANGE, PERSISTENT};

/// One connection, one confirm-mode channel, a window of outstanding confirms.
pub struct Pipeline {
    connection: Connection,
    channel: Channel,
    routing_key: String,
    user_id: String,
    window: usize,
    pending: Vec<PublisherConfirm>,
    /// Messages per second to aim at; `None` publishes as fast as confirms allow.
    rate: Option<f64>,
    started: Instant,
    sent: u64,
    confirmed: u64,
}

/// The user name in an AMQP URL (`amqp://user:pass@host/vhost`), `guest` if none.
pub fn user_of(url: &str) -> String {
    url.split("://")
        .nth(1)
        .and_then(|rest| rest.split_once('@').map(|(creds, _)| creds))
        .and_then(|creds| creds.split(':').next())
        .filter(|u| !u.is_empty())
        .unwrap_or("guest")
        .to_owned()
}

impl Pipeline {
    pub async fn connect(
        url: &str,
        tenant: &TenantSlug,
        window: usize,
        rate: Option<f64>,
    ) -> anyhow::Result<Self> {
        let connection = Connection::connect(
            url,
            ConnectionProperties::default().with_connection_name("fleet-sim".into()),
        )
        .await
        .context("connecting to RabbitMQ")?;
        let channel = connection
            .create_channel()
            .await
            .context("opening a channel")?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .context("enabling publisher confirms")?;
        Ok(Self {
            connection,
            channel,
            routing_key: tenant.routing_key(),
            user_id: user_of(url),
            window: window.max(1),
            pending: Vec::with_capacity(window.max(1)),
            rate: rate.filter(|r| *r > 0.0),
            started: Instant::now(),
            sent: 0,
            confirmed: 0,
        })
    }

    /// Publishes one report; returns once it is written (its confirm may come later).
    pub async fn send(&mut self, report: &Report) -> anyhow::Result<()> {
        self.pace().await;
        let body = report.to_json();
        let properties = BasicProperties::default()
            .with_content_type(CONTENT_TYPE.into())
            .with_delivery_mode(PERSISTENT)
            .with_message_id(report.message_id().into())
            .with_user_id(self.user_id.as_str().into())
            .with_app_id("fleet-sim".into());
        let confirm = self
            .channel
            .basic_publish(
                EXCHANGE.into(),
                self.routing_key.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &body,
                properties,
            )
            .await
            .context("publishing")?;
        self.pending.push(confirm);
        self.sent += 1;
        if self.pending.len() >= self.window {
            self.flush().await?;
        }
        Ok(())
    }

    /// Waits for every outstanding confirm.
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        for confirm in self.pending.drain(..) {
            match confirm.await.context("waiting for a confirm")? {
                Confirmation::Ack(None) => self.confirmed += 1,
                Confirmation::Ack(Some(returned)) => bail!(
                    "the broker could not route a report ({} {}); is fleetd's topology declared?",
                    returned.reply_code,
                    returned.reply_text
                ),
                Confirmation::Nack(_) => bail!("the broker refused a report (nack)"),
                Confirmation::NotRequested => bail!("publisher confirms are not enabled"),
            }
        }
        Ok(())
    }

    /// Sleeps while ahead of the target rate; checked every 64 messages so the timer
    /// is not the bottleneck.
    async fn pace(&self) {
        let Some(rate) = self.rate else { return };
        if !self.sent.is_multiple_of(64) {
            return;
        }
        let due = Duration::from_secs_f64(self.sent as f64 / rate);
        let elapsed = self.started.elapsed();
        if due > elapsed {
            tokio::time::sleep(due - elapsed).await;
        }
    }

    /// Reports published and confirmed so far.
    pub fn confirmed(&self) -> u64 {
        self.confirmed
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Flushes and closes the connection.
    pub async fn close(mut self) -> anyhow::Result<u64> {
        self.flush().await?;
        self.connection
            .close(200, "done".into())
            .await
            .context("closing the connection")?;
        Ok(self.confirmed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_comes_from_the_url() {
        assert_eq!(user_of("amqp://vendor-a:secret@host:5672/%2f"), "vendor-a");
        assert_eq!(user_of("amqp://host:5672/%2f"), "guest");
        assert_eq!(user_of("amqps://u:p@h/v"), "u");
    }
}
