//! A throwaway RabbitMQ vhost per test.

use std::process::Command;

use anyhow::Context;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

/// A vhost that exists for as long as this value does.
pub struct TestVhost {
    pub name: String,
}

fn rabbitmqctl(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .context("running rabbitmqctl (is RabbitMQ installed?)")?;
    anyhow::ensure!(
        out.status.success(),
        "rabbitmqctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

impl TestVhost {
    pub fn create() -> anyhow::Result<Self> {
        let name = format!("fleet-test-{}", uuid::Uuid::new_v4().simple());
        rabbitmqctl(&["-q", "add_vhost", &name])?;
        rabbitmqctl(&[
            "-q",
            "set_permissions",
            "-p",
            &name,
            "guest",
            ".*",
            ".*",
            ".*",
        ])?;
        Ok(Self { name })
    }

    /// The AMQP URL of this vhost as user guest.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:5672/{}", self.name)
    }
}

impl Drop for TestVhost {
    fn drop(&mut self) {
        let _ = rabbitmqctl(&["-q", "delete_vhost", &self.name]);
    }
}

impl TestVhost {
    /// Messages ready plus unacknowledged in a queue of this vhost.
    pub fn queue_depth(&self, queue: &str) -> anyhow::Result<u64> {
        let out = Command::new("rabbitmqctl")
            .args([
                "-q",
                "list_queues",
                "-p",
                &self.name,
                "name",
                "messages_ready",
                "messages_unacknowledged",
                "--no-table-headers",
            ])
            .output()?;
        anyhow::ensure!(out.status.success(), "rabbitmqctl list_queues failed");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            if parts.next() == Some(queue) {
                let ready: u64 = parts
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_default();
                let unacked: u64 = parts
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_default();
                return Ok(ready + unacked);
            }
        }
        anyhow::bail!("queue {queue} not found in {text:?}")
    }

    /// Messages ready for delivery in `queue`, from a passive `queue.declare` (no
    /// management API, and no statistics lag). Messages a consumer holds unacked
    /// are not counted: they come back as ready if its channel closes.
    pub async fn ready_messages(&self, queue: &str) -> anyhow::Result<u32> {
        let conn = Connection::connect(&self.url(), ConnectionProperties::default()).await?;
        let channel = conn.create_channel().await?;
        let declared = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("passive declare of {queue}"))?;
        let _ = conn.close(200, "done".into()).await;
        Ok(declared.message_count())
    }

    /// Waits until `queue` has no message ready for delivery: what was published has
    /// been delivered, so a recount after this sees whatever a redelivery could add.
    pub async fn wait_drained(
        &self,
        queue: &str,
        timeout: std::time::Duration,
    ) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let ready = self.ready_messages(queue).await?;
            if ready == 0 {
                return Ok(());
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "{queue} still holds {ready} ready messages"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Closes every client connection of this vhost only, as a network cut would;
    /// returns how many were closed.
    pub fn close_connections(&self) -> anyhow::Result<usize> {
        let out = Command::new("rabbitmqctl")
            .args([
                "-q",
                "list_connections",
                "pid",
                "vhost",
                "--no-table-headers",
            ])
            .output()?;
        anyhow::ensure!(out.status.success(), "rabbitmqctl list_connections failed");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut closed = 0;
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            if let (Some(pid), Some(vhost)) = (parts.next(), parts.next())
                && vhost == self.name
            {
                rabbitmqctl(&["-q", "close_connection", pid, "fault test"])?;
                closed += 1;
            }
        }
        Ok(closed)
    }
}

/// A publisher as an agent would be: confirms on, persistent messages.
pub struct Publisher {
    _conn: Connection,
    channel: Channel,
}

/// Message properties a test may bend.
#[derive(Clone, Debug)]
pub struct Props {
    pub user_id: Option<String>,
    pub message_id: Option<String>,
    pub content_type: Option<String>,
}

impl Default for Props {
    fn default() -> Self {
        Self {
            user_id: Some("guest".into()),
            message_id: None,
            content_type: Some("application/json".into()),
        }
    }
}

impl Publisher {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let conn = Connection::connect(url, ConnectionProperties::default()).await?;
        let channel = conn.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Self {
            _conn: conn,
            channel,
        })
    }

    /// Publishes and waits for the broker's confirm.
    pub async fn publish(
        &self,
        routing_key: &str,
        body: &[u8],
        props: Props,
    ) -> anyhow::Result<()> {
        let mut p = BasicProperties::default().with_delivery_mode(2);
        if let Some(u) = props.user_id {
            p = p.with_user_id(u.into());
        }
        if let Some(m) = props.message_id {
            p = p.with_message_id(m.into());
        }
        if let Some(c) = props.content_type {
            p = p.with_content_type(c.into());
        }
        let confirm = self
            .channel
            .basic_publish(
                "fleet.reports".into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                p,
            )
            .await?
            .await?;
        anyhow::ensure!(confirm.is_ack(), "broker nacked the publish");
        Ok(())
    }

    /// Takes up to `n` dead letters, waiting up to `timeout` for them: (reason, body).
    pub async fn dead_letters(
        &self,
        n: usize,
        timeout: std::time::Duration,
    ) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        let deadline = std::time::Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < n && std::time::Instant::now() < deadline {
            match self
                .channel
                .basic_get("fleet.dead".into(), BasicGetOptions { no_ack: true })
                .await?
            {
                Some(message) => {
                    let reason = message
                        .delivery
                        .properties
                        .headers()
                        .as_ref()
                        .and_then(|h| h.inner().get("x-fleet-reject-reason").cloned())
                        .map(|v| match v {
                            AMQPValue::LongString(s) => s.to_string(),
                            other => format!("{other:?}"),
                        })
                        .unwrap_or_default();
                    out.push((reason, message.delivery.data.clone()));
                }
                None => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
        Ok(out)
    }
}
