//! A real Alertmanager (the Debian `prometheus-alertmanager` binary) on loopback, one
//! per test.
//!
//! Why the real one: what fleetd posts (contract §7) is only right if Alertmanager
//! accepts it, groups it and inhibits it as the example route file in `deploy/`
//! says; a stub would agree with whatever we believe. Each instance has its own
//! port, its own `--storage.path` in a temp dir and gossip disabled
//! (`--cluster.listen-address=`), so parallel tests never see each other's alerts,
//! and it is killed when the value is dropped.
//!
//! # Observing a resolution
//!
//! Alertmanager's v2 API lists an alert only until its `endsAt`: once that lies in
//! the past the alert is resolved and `GET /api/v2/alerts` leaves it out whatever the
//! filters (`active`, `silenced`, `inhibited`, `unprocessed`), and so does
//! `/api/v2/alerts/groups` — there is no "resolved" filter. (An alert posted without
//! `endsAt` gets `now + resolve_timeout`, 5 min by default, which is why fleetd
//! re-posts active findings.) So a test sees a resolution two ways:
//!
//! - [`Alertmanager::alerts`] no longer lists it (absence, right after the post);
//! - [`Alertmanager::received`]`("resolved")` counts it: Alertmanager's own
//!   `alertmanager_alerts_received_total{status="resolved"}` — positive evidence that
//!   a post with `endsAt` in the past arrived, not merely that something is missing.
//!
//! The notification a receiver would get (`"status": "resolved"`) is not observed
//! here: the default configuration has a receiver with no integrations, so nothing
//! is ever sent anywhere.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;

/// Where Debian installs Alertmanager (`scripts/lib.sh`'s `ensure_prometheus_tools`);
/// `FLEET_ALERTMANAGER_BIN` overrides it.
pub const ALERTMANAGER_BIN: &str = "/usr/bin/prometheus-alertmanager";

/// How long [`Alertmanager::start`] waits for `GET /-/ready` to answer 200.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// One receiver without integrations: alerts are stored, grouped and inhibited, and
/// never sent anywhere.
pub const MINIMAL_CONFIG: &str = "route:\n  receiver: default\nreceivers:\n  - name: default\n";

/// A running Alertmanager; killed, and its directory removed, on drop.
pub struct Alertmanager {
    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub url: String,
    pub http: reqwest::Client,
    child: Child,
    dir: PathBuf,
}

impl Alertmanager {
    /// Starts one with [`MINIMAL_CONFIG`].
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with_config(MINIMAL_CONFIG).await
    }

    /// Starts one with the configuration file `path` (e.g. the example in `deploy/`).
    pub async fn start_with_config_file(path: &Path) -> anyhow::Result<Self> {
        let config =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::start_with_config(&config).await
    }

    /// Starts one with `config` (YAML) and waits until it is ready.
    pub async fn start_with_config(config: &str) -> anyhow::Result<Self> {
        let bin = std::env::var("FLEET_ALERTMANAGER_BIN").unwrap_or(ALERTMANAGER_BIN.to_owned());
        anyhow::ensure!(
            Path::new(&bin).exists(),
            "{bin} is missing: install Debian's prometheus-alertmanager \
             (scripts/lib.sh ensure_prometheus_tools does)"
        );
        let dir = std::env::temp_dir().join(format!(
            "fleet-alertmanager-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(dir.join("data"))?;
        let config_path = dir.join("alertmanager.yml");
        std::fs::write(&config_path, config)?;
        let log = std::fs::File::create(dir.join("alertmanager.log"))?;
        // A free port: bound and released; the race with another process taking it in
        // between shows as a start failure with the log, not as a wrong answer.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(&bin)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {bin}"))?;
        let mut me = Self {
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            child,
            dir,
        };
        me.wait_ready().await?;
        Ok(me)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!(
                    "Alertmanager exited ({status}) while starting:\n{}",
                    self.log()
                );
            }
            if let Ok(r) = self.http.get(format!("{}/-/ready", self.url)).send().await
                && r.status().as_u16() == 200
            {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "Alertmanager was not ready within {READY_TIMEOUT:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What Alertmanager has logged so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("alertmanager.log")).unwrap_or_default()
    }

    /// `POST /api/v2/alerts` with `alerts` (a JSON array), as fleetd and Prometheus do.
    pub async fn post(&self, alerts: &Value) -> anyhow::Result<()> {
        let r = self
            .http
            .post(format!("{}/api/v2/alerts", self.url))
            .json(alerts)
            .send()
            .await?;
        let status = r.status();
        anyhow::ensure!(
            status.is_success(),
            "POST /api/v2/alerts: {status}: {}",
            r.text().await.unwrap_or_default()
        );
        Ok(())
    }

    /// Every alert not yet resolved, silenced and inhibited ones included (each with
    /// `status.state` and `status.inhibitedBy`). A resolved alert is never listed:
    /// see the module docs.
    pub async fn alerts(&self) -> anyhow::Result<Vec<Value>> {
        let r = self
            .http
            .get(format!(
                "{}/api/v2/alerts?active=true&silenced=true&inhibited=true",
                self.url
            ))
            .send()
            .await?;
        let status = r.status();
        anyhow::ensure!(status.is_success(), "GET /api/v2/alerts: {status}");
        Ok(r.json().await?)
    }

    /// How many alerts with `status` (`"firing"` or `"resolved"`) Alertmanager has
    /// received, from its `alertmanager_alerts_received_total` (all API versions).
    pub async fn received(&self, status: &str) -> anyhow::Result<u64> {
        let text = self
            .http
            .get(format!("{}/metrics", self.url))
            .send()
            .await?
            .text()
            .await?;
        let needle = format!("status=\"{status}\"");
        let mut total = 0.0;
        for line in text.lines() {
            if line.starts_with("alertmanager_alerts_received_total{") && line.contains(&needle) {
                let value = line.rsplit(' ').next().unwrap_or_default();
                total += value
                    .parse::<f64>()
                    .with_context(|| format!("reading {line:?}"))?;
            }
        }
        Ok(total as u64)
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
