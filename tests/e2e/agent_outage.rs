//! The real agent through an outage of its own vhost (permissions cleared, its
//! connections closed) while it keeps reporting: every report arrives exactly once,
//! in `seq` order. The whole-broker variant (`rabbitmqctl stop_app`) is
//! `serial_broker_outage`, run on its own.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_reports_survive_a_vhost_outage_exactly_once_in_seq_order() -> anyhow::Result<()> {
    crate::serial_broker_outage::vhost_outage().await
}
