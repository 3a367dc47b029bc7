//! Shared test helpers: paths, temp dirs, running the binary, throwaway vhosts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root, where the example config runs from.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the agent crate sits in the workspace")
        .to_owned()
}

pub fn example_config() -> PathBuf {
    workspace_root().join("agent/examples/agent.toml")
}

pub fn sample_terminal(file: &str) -> PathBuf {
    workspace_root()
        .join("agent/examples/fixtures/sample-terminal")
        .join(file)
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("fleet-agent-test-{name}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, content).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `fleet-agent` with `args` from the repository root.
pub fn fleet_agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleet-agent"))
        .args(args)
        .current_dir(workspace_root())
        .env("RUST_LOG", "info")
        .output()
        .expect("run fleet-agent")
}

/// A settings file for a terminal whose files are the sample terminal's, with the
/// given state dir and broker; line auth off so nothing waits on the network.
pub fn sample_config(state_dir: &Path, amqp_url: &str) -> String {
    format!(
        r#"
terminal_id = "{terminal_id}"
clinic_code = "2712345678"
tenant = "demo"
amqp_url = "{amqp_url}"
state_dir = "{state_dir}"

[host]
booted_at_file = "{booted}"

[versions]
face_library = "{face}"

[distribution]
record_file = "{record}"

[line_auth]
enabled = false
"#,
        terminal_id = uuid::Uuid::new_v4(),
        state_dir = toml_path(state_dir),
        booted = toml_path(&sample_terminal("booted_at.txt")),
        face = toml_path(&sample_terminal("OQS-Auth/Version.info")),
        record = toml_path(&sample_terminal("distribution.txt")),
    )
}

fn toml_path(path: &Path) -> String {
    path.display().to_string().replace('\\', "/")
}

/// An isolated RabbitMQ vhost for one test, deleted on drop (also when the test
/// fails), so tests never see each other's messages or the service's queues.
pub struct Vhost {
    pub name: String,
}

impl Vhost {
    pub fn new() -> Self {
        let name = format!("fleet-agent-test-{}", uuid::Uuid::new_v4());
        rabbitmqctl(&["add_vhost", &name]);
        let vhost = Self { name };
        rabbitmqctl(&[
            "set_permissions",
            "-p",
            &vhost.name,
            "guest",
            ".*",
            ".*",
            ".*",
        ]);
        vhost
    }

    /// The guest user's URL for this vhost.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:5672/{}", self.name)
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["delete_vhost", &self.name])
            .output();
    }
}

fn rabbitmqctl(args: &[&str]) {
    let output = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("run rabbitmqctl");
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Declares the contract's exchange in `vhost`, as the service would.
pub async fn declare_exchange(vhost: &Vhost) -> (lapin::Connection, lapin::Channel) {
    use lapin::options::ExchangeDeclareOptions;
    let connection =
        lapin::Connection::connect(&vhost.url(), lapin::ConnectionProperties::default())
            .await
            .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .exchange_declare(
            fleet_agent::publish::EXCHANGE.into(),
            lapin::ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .expect("declare exchange");
    (connection, channel)
}

/// The exchange plus a queue `ingest` bound to every tenant's reports.
pub async fn ingest_queue(vhost: &Vhost) -> (lapin::Connection, lapin::Channel) {
    use lapin::options::{QueueBindOptions, QueueDeclareOptions};
    use lapin::types::FieldTable;
    let (connection, channel) = declare_exchange(vhost).await;
    channel
        .queue_declare(
            "ingest".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("declare queue");
    channel
        .queue_bind(
            "ingest".into(),
            fleet_agent::publish::EXCHANGE.into(),
            "v1.*.report".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind queue");
    (connection, channel)
}
