//! The real service, in-process, on a free port, with its own vhost and database.

use std::time::{Duration, Instant};

use anyhow::Context;
use fleet_protocol::{Prefecture, TenantSlug};
use fleet_store::{DatabaseUrl, Store};
use fleet_web::JwtSecret;
use fleet_web::auth::{Role, issue};
use fleetd::Settings;
use sea_orm::ConnectionTrait;
use serde_json::Value;
use tokio::sync::watch;

use crate::broker::{Props, Publisher, TestVhost};
use crate::db::{DbKind, TestDb};

const SECRET: &[u8] = b"an-end-to-end-test-secret-of-32+bytes";

pub struct TestApp {
    pub base_url: String,
    pub publisher: Publisher,
    /// A second handle on the service's database, to look at what was stored.
    pub store: Store,
    pub http: reqwest::Client,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    secret: JwtSecret,
    // Dropped last: the vhost and database outlive the service.
    _db: TestDb,
    _vhost: TestVhost,
}

impl TestApp {
    pub async fn spawn(kind: DbKind) -> anyhow::Result<Self> {
        Self::spawn_with(kind, &[]).await
    }

    /// Like [`TestApp::spawn`], with some `FLEET_*` settings overridden.
    pub async fn spawn_with(kind: DbKind, overrides: &[(&str, &str)]) -> anyhow::Result<Self> {
        let vhost = tokio::task::spawn_blocking(TestVhost::create).await??;
        let db = tokio::task::spawn_blocking(move || TestDb::create(kind)).await??;
        let overrides: Vec<(String, String)> = overrides
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let secret = JwtSecret::new(SECRET.to_vec()).map_err(anyhow::Error::msg)?;
        let mut settings = Settings::from_lookup(|k| match k {
            "FLEET_DATABASE_URL" => Some(db.url.clone()),
            "FLEET_AMQP_URL" => Some(vhost.url()),
            "FLEET_HTTP_ADDR" => Some("127.0.0.1:0".to_owned()),
            "FLEET_JWT_SECRET" => Some(String::from_utf8_lossy(SECRET).into_owned()),
            "FLEET_INGEST_MAX_WAIT_MS" => Some("20".to_owned()),
            other => overrides
                .iter()
                .find(|(k, _)| k == other)
                .map(|(_, v)| v.clone()),
        })?;
        settings.http_addr = "127.0.0.1:0".parse()?;
        let listener = fleetd::bind(&settings)?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let (stop, shutdown) = watch::channel(false);
        let database = settings.database.clone();
        let task = tokio::spawn(fleetd::serve(settings, listener, shutdown));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        // Ready means migrated, consuming and serving.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(format!("{base_url}/readyz")).send().await
                && r.status().is_success()
            {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the service did not become ready"
            );
            anyhow::ensure!(!task.is_finished(), "the service stopped while starting");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let store = Store::connect(&database).await?;
        let publisher = Publisher::connect(&vhost.url()).await?;
        Ok(Self {
            base_url,
            publisher,
            store,
            http,
            stop,
            task: Some(task),
            secret,
            _db: db,
            _vhost: vhost,
        })
    }

    pub fn database_url(&self) -> anyhow::Result<DatabaseUrl> {
        DatabaseUrl::parse(&self._db.url)
    }

    /// The test's database.
    pub fn db(&self) -> &TestDb {
        &self._db
    }

    /// The test's vhost.
    pub fn vhost(&self) -> &TestVhost {
        &self._vhost
    }

    /// A token for a vendor role.
    pub fn vendor_token(&self, role: Role, tenant: &str) -> String {
        let tenant = TenantSlug::parse(tenant).ok();
        issue(
            &self.secret,
            "test",
            role,
            tenant.as_ref(),
            &[],
            chrono::Duration::hours(1),
        )
        .unwrap_or_default()
    }

    /// A token for a medical association of some prefectures.
    pub fn association_token(&self, prefectures: &[&str]) -> String {
        let prefectures: Vec<Prefecture> = prefectures
            .iter()
            .filter_map(|p| Prefecture::parse(p).ok())
            .collect();
        issue(
            &self.secret,
            "assoc",
            Role::Association,
            None,
            &prefectures,
            chrono::Duration::hours(1),
        )
        .unwrap_or_default()
    }

    /// GET with an optional bearer token; returns the status and the body as JSON
    /// (`Value::Null` when it is not JSON).
    pub async fn get_json(&self, path: &str, token: Option<&str>) -> anyhow::Result<(u16, Value)> {
        let mut req = self.http.get(format!("{}{path}", self.base_url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    pub async fn get_text(&self, path: &str, token: Option<&str>) -> anyhow::Result<(u16, String)> {
        let mut req = self.http.get(format!("{}{path}", self.base_url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await?;
        Ok((resp.status().as_u16(), resp.text().await?))
    }

    /// Publishes a report as tenant `demo`'s agent would.
    pub async fn publish(&self, report: &Value) -> anyhow::Result<()> {
        let id = format!(
            "{}/{}",
            report["terminal_id"].as_str().unwrap_or_default(),
            report["seq"]
        );
        let props = Props {
            message_id: Some(id),
            ..Props::default()
        };
        self.publisher
            .publish("v1.demo.report", &serde_json::to_vec(report)?, props)
            .await
    }

    /// Rows in a table of the service's database.
    pub async fn count(&self, table: &str) -> anyhow::Result<i64> {
        let db = self.store.connection();
        let sql = format!("SELECT COUNT(*) AS n FROM {table}");
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                sql,
            ))
            .await?
            .context("COUNT returned no row")?;
        Ok(row.try_get("", "n")?)
    }

    /// The number of reports, or `None` when the database cannot be reached.
    pub async fn count_while_down(&self) -> Option<i64> {
        self.count("reports").await.ok()
    }

    /// Waits until `table` holds at least `n` rows.
    pub async fn wait_rows(&self, table: &str, n: i64) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let have = self.count(table).await?;
            if have >= n {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{table} has {have} rows, expected {n}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the service and waits for it to end cleanly.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(20), task).await???;
        }
        Ok(())
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
