//! `fleetd alert` (contract §6–§7): the sweep of what time alone changes, and
//! delivery of findings to Alertmanager.
//!
//! Why a role of its own, one active at a time: findings a report changes are
//! written by ingest in the report's transaction, but silence, a clinic opening, a
//! window's end and a certificate's next day change nothing in the database by
//! themselves. Someone must look, and only one should: several `fleetd alert`
//! processes may run for availability, and the one holding the lease works
//! ([`Lease`]: an advisory lock on PostgreSQL, a file lock beside an SQLite file).
//!
//! Delivery follows Prometheus's own contract with Alertmanager: every active
//! finding is posted again well before its `endsAt` lapses, and an ended one is
//! posted once more with `endsAt` set. What was posted is recorded per finding, so
//! a restarted or failed-over process neither loses an end nor floods the receiver.
//! Alertmanager lives in real time whatever the service's clock says (a replay at
//! `FLEET_CLOCK`), so `startsAt` is the finding's `since` and every `endsAt` is real.

use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use fleet_protocol::findings::{FindingKind, FindingStatus, IncidentThresholds, Thresholds};
use fleet_protocol::{JST, SecretUrl, SharedClock};
use fleet_store::{DatabaseUrl, Store, StoredFinding};
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use serde_json::{Value, json};
use tokio::sync::watch;

/// The settings of the alert role.
#[derive(Clone, Debug)]
pub struct AlertSettings {
    /// `FLEET_ALERTMANAGER_URL`: where findings go; nothing is sent without it.
    pub alertmanager_url: Option<SecretUrl>,
    /// `FLEET_ALERT_TICKETS`: send `ticket` findings too.
    pub tickets: bool,
    /// `FLEET_ALERT_SWEEP_MS`: how often (real time) the sweep runs.
    pub sweep_every: Duration,
    /// `FLEET_ALERT_DELIVER_MS`: how often new findings and ends are looked for.
    pub deliver_every: Duration,
    /// How often an active finding is posted again.
    pub repost_every: Duration,
    /// The findings thresholds (`FLEET_FINDING_*`).
    pub thresholds: Thresholds,
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            alertmanager_url: None,
            tickets: false,
            sweep_every: Duration::from_secs(60),
            deliver_every: Duration::from_secs(1),
            repost_every: Duration::from_secs(60),
            thresholds: Thresholds::default(),
        }
    }
}

/// Metrics of the alert role.
#[derive(Clone)]
pub struct AlertMetrics {
    findings: IntGaugeVec,
    posts: IntCounterVec,
    sweeps: IntCounterVec,
}

impl AlertMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self {
            findings: IntGaugeVec::new(
                Opts::new(
                    "fleet_findings",
                    "Findings not resolved, by kind and status",
                ),
                &["kind", "status"],
            )?,
            posts: IntCounterVec::new(
                Opts::new(
                    "fleet_alert_posts_total",
                    "Alerts posted to Alertmanager, by result",
                ),
                &["result"],
            )?,
            sweeps: IntCounterVec::new(
                Opts::new("fleet_alert_sweeps_total", "Sweeps of the fleet, by result"),
                &["result"],
            )?,
        };
        registry.register(Box::new(m.findings.clone()))?;
        registry.register(Box::new(m.posts.clone()))?;
        registry.register(Box::new(m.sweeps.clone()))?;
        Ok(m)
    }
}

/// The right to be the one active alert process.
pub enum Lease {
    /// Held for the life of this connection.
    Postgres(sea_orm::DatabaseConnection),
    /// Held while this file stays open.
    File(std::fs::File),
}

/// The advisory-lock key of the alert role ("fleetalrt" in ASCII, as a number).
const LEASE_KEY: i64 = 0x666c_6565_7461_6c72;

impl Lease {
    /// Takes the lease if no other process holds it.
    pub async fn try_take(url: &DatabaseUrl) -> anyhow::Result<Option<Self>> {
        match url {
            DatabaseUrl::Postgres(raw) => {
                use sea_orm::{ConnectOptions, ConnectionTrait, Database, Statement};
                let mut options = ConnectOptions::new(raw.clone());
                options
                    .max_connections(1)
                    .min_connections(1)
                    .sqlx_logging(false);
                let db = Database::connect(options)
                    .await
                    .context("connecting for the alert lease")?;
                let row = db
                    .query_one_raw(Statement::from_sql_and_values(
                        sea_orm::DbBackend::Postgres,
                        "SELECT pg_try_advisory_lock($1) AS taken",
                        [LEASE_KEY.into()],
                    ))
                    .await
                    .context("taking the alert lease")?
                    .context("no answer to the lease")?;
                let taken: bool = row.try_get("", "taken")?;
                Ok(taken.then_some(Self::Postgres(db)))
            }
            DatabaseUrl::Sqlite(path) => {
                let path = format!("{path}.alert.lock");
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
                    .with_context(|| format!("opening {path}"))?;
                match file.try_lock() {
                    Ok(()) => Ok(Some(Self::File(file))),
                    Err(std::fs::TryLockError::WouldBlock) => Ok(None),
                    Err(std::fs::TryLockError::Error(e)) => {
                        Err(e).with_context(|| format!("locking {path}"))
                    }
                }
            }
        }
    }
}

/// The alert role until `shutdown`: waits for the lease, then sweeps and delivers.
pub async fn run(
    store: Store,
    database: DatabaseUrl,
    settings: AlertSettings,
    clock: SharedClock,
    metrics: AlertMetrics,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let _lease = loop {
        if let Some(lease) = Lease::try_take(&database).await? {
            tracing::info!("alert role active");
            break lease;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.changed() => return Ok(()),
        }
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("building the Alertmanager client")?;
    let mut sweep = tokio::time::interval(settings.sweep_every);
    let mut deliver = tokio::time::interval(settings.deliver_every);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    deliver.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = sweep.tick() => {
                let started = std::time::Instant::now();
                match sweep_once(&store, &settings, &clock).await {
                    Ok(n) => {
                        metrics.sweeps.with_label_values(&["ok"]).inc();
                        tracing::debug!(terminals = n, took = ?started.elapsed(), "swept");
                    }
                    Err(err) => {
                        metrics.sweeps.with_label_values(&["error"]).inc();
                        tracing::warn!(error = format!("{err:#}"), "sweep failed");
                    }
                }
                if let Err(err) = count_findings(&store, &metrics).await {
                    tracing::warn!(error = format!("{err:#}"), "counting findings failed");
                }
            }
            _ = deliver.tick() => {
                match store.judge_incidents(clock.now(), &IncidentThresholds::default()).await {
                    Ok(j) if j.raised + j.resolved > 0 => tracing::info!(
                        raised = j.raised, resolved = j.resolved, folded = j.folded,
                        "area incidents changed"
                    ),
                    Ok(_) => {}
                    Err(err) => tracing::warn!(error = format!("{err:#}"), "judging incidents failed"),
                }
                if let Some(url) = &settings.alertmanager_url
                    && let Err(err) =
                        deliver_once(&store, &client, url.expose_url(), &settings, &metrics).await
                {
                    metrics.posts.with_label_values(&["error"]).inc();
                    tracing::warn!(error = format!("{err:#}"), "posting to Alertmanager failed");
                }
            }
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

/// One sweep of every terminal at the service's clock.
pub async fn sweep_once(
    store: &Store,
    settings: &AlertSettings,
    clock: &SharedClock,
) -> anyhow::Result<u64> {
    let campaigns = store.campaigns().await?;
    let swept = store
        .sweep(&campaigns, &settings.thresholds, clock.now(), 1000)
        .await?;
    Ok(swept.terminals)
}

async fn count_findings(store: &Store, metrics: &AlertMetrics) -> anyhow::Result<()> {
    let counts = store.finding_counts().await?;
    for kind in FindingKind::ALL {
        for status in [
            FindingStatus::Active,
            FindingStatus::Suppressed,
            FindingStatus::Folded,
        ] {
            let n = counts
                .iter()
                .find(|(k, s, _)| k == kind.as_str() && s == status.as_str())
                .map_or(0, |(.., n)| *n);
            metrics
                .findings
                .with_label_values(&[kind.as_str(), status.as_str()])
                .set(n);
        }
    }
    Ok(())
}

/// Posts what is new or due again, and the ends not posted yet.
pub async fn deliver_once(
    store: &Store,
    client: &reqwest::Client,
    url: &str,
    settings: &AlertSettings,
    metrics: &AlertMetrics,
) -> anyhow::Result<()> {
    let endpoint = format!("{}/api/v2/alerts", url.trim_end_matches('/'));
    let real_now = Utc::now().with_timezone(&JST);
    let repost = chrono::Duration::from_std(settings.repost_every).unwrap_or_default();
    loop {
        let ended = store.findings_ended(500).await?;
        if ended.is_empty() {
            break;
        }
        let alerts: Vec<Value> = ended.iter().map(|f| alert(f, real_now, true)).collect();
        post(client, &endpoint, &alerts).await?;
        metrics
            .posts
            .with_label_values(&["ended"])
            .inc_by(alerts.len() as u64);
        let ids: Vec<_> = ended.iter().map(|f| f.id).collect();
        store.mark_posted(&ids, true, real_now).await?;
    }
    loop {
        let due = store
            .findings_to_post(settings.tickets, real_now - repost, 500)
            .await?;
        if due.is_empty() {
            break;
        }
        // Until well after the next repost, as Prometheus does (4 intervals).
        let ends = real_now + repost * 4;
        let alerts: Vec<Value> = due.iter().map(|f| alert(f, ends, false)).collect();
        post(client, &endpoint, &alerts).await?;
        metrics
            .posts
            .with_label_values(&["active"])
            .inc_by(alerts.len() as u64);
        let ids: Vec<_> = due.iter().map(|f| f.id).collect();
        store.mark_posted(&ids, false, real_now).await?;
    }
    Ok(())
}

async fn post(client: &reqwest::Client, endpoint: &str, alerts: &[Value]) -> anyhow::Result<()> {
    let response = client
        .post(endpoint)
        .json(alerts)
        .send()
        .await
        .with_context(|| format!("posting to {endpoint}"))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        anyhow::bail!("Alertmanager answered {status}: {body}");
    }
    Ok(())
}

/// One finding as an Alertmanager v2 alert (contract §7 labels and annotations).
pub fn alert(
    stored: &StoredFinding,
    ends_at: chrono::DateTime<chrono::FixedOffset>,
    ended: bool,
) -> Value {
    let f = &stored.finding;
    let mut labels = serde_json::Map::new();
    labels.insert("alertname".into(), f.kind.as_str().into());
    labels.insert("severity".into(), f.severity.as_str().into());
    labels.insert("tenant".into(), stored.tenant.clone().into());
    if let Some(p) = f.prefecture {
        labels.insert("prefecture".into(), p.code().into());
    }
    if let Some(a) = f.area {
        labels.insert("area".into(), a.as_str().into());
    }
    if let Some(c) = f.clinic_code {
        labels.insert("clinic".into(), c.as_str().into());
    }
    if let Some(t) = f.terminal_id {
        labels.insert("terminal".into(), t.to_string().into());
    }
    if let Some(c) = &f.campaign {
        labels.insert("campaign".into(), c.clone().into());
    }
    let ends_at = if ended {
        // Its end in real time, never before its start.
        ends_at.max(f.since)
    } else {
        ends_at
    };
    json!({
        "labels": labels,
        "annotations": {
            "summary": f.detail,
            "instruction": f.instruction_ja,
            "finding_id": stored.id.to_string(),
        },
        "startsAt": fleet_protocol::rfc3339::format(&f.since, true),
        "endsAt": fleet_protocol::rfc3339::format(&ends_at, true),
    })
}
