//! Settings from the environment (contract §4), checked before anything starts: a bad
//! value names its variable and says why.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use fleet_ingest::IngestSettings;
use fleet_protocol::{SecretUrl, SharedClock};
use fleet_store::DatabaseUrl;

use crate::alert::AlertSettings;
use fleet_web::JwtSecret;

/// Everything `fleetd` needs to run. Its `Debug` prints no password: the URLs redact
/// theirs and the JWT secret prints as redacted.
#[derive(Clone, Debug)]
pub struct Settings {
    pub database: DatabaseUrl,
    pub amqp_url: SecretUrl,
    pub http_addr: SocketAddr,
    /// `FLEET_JWT_SECRET` if set; with SQLite a generated one is used otherwise.
    pub jwt_secret: Option<JwtSecret>,
    pub ingest: IngestSettings,
    /// Days of report history kept; 0 keeps everything.
    pub retention_days: u32,
    /// Terminal states the SQLite writer keeps in memory; 0 keeps none.
    pub state_cache: usize,
    /// What "now" is (`FLEET_CLOCK`, `FLEET_CLOCK_RATE`, contract §6); started when the
    /// settings are read, that is when the process starts.
    pub clock: SharedClock,
    /// `FLEET_FINDINGS`: `off` judges no findings at ingest (for measuring their cost).
    pub findings: bool,
    /// The alert role: sweep, thresholds, Alertmanager.
    pub alert: AlertSettings,
}

/// About 13 months: a year back, plus the month before, for year-on-year comparison.
pub const DEFAULT_RETENTION_DAYS: u32 = 400;

pub const DEFAULT_DATABASE: &str = "fleet.db";
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";

impl Settings {
    /// Reads `FLEET_*` variables through `get` (the process environment in `main`).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let database = DatabaseUrl::parse(
            &get("FLEET_DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE.to_owned()),
        )?;
        let amqp_url =
            SecretUrl::new(get("FLEET_AMQP_URL").unwrap_or_else(|| DEFAULT_AMQP_URL.to_owned()));
        let raw = amqp_url.expose_url();
        if !(raw.starts_with("amqp://") || raw.starts_with("amqps://")) {
            bail!("FLEET_AMQP_URL: {amqp_url:?} must start with amqp:// or amqps://");
        }
        let clock = fleet_protocol::clock::from_settings(
            get("FLEET_CLOCK").as_deref(),
            get("FLEET_CLOCK_RATE").as_deref(),
        )?;
        let http = get("FLEET_HTTP_ADDR").unwrap_or_else(|| DEFAULT_HTTP_ADDR.to_owned());
        let http_addr = http
            .parse()
            .with_context(|| format!("FLEET_HTTP_ADDR: {http:?} is not host:port"))?;
        let jwt_secret = match get("FLEET_JWT_SECRET") {
            Some(s) => Some(JwtSecret::new(s.into_bytes()).map_err(anyhow::Error::msg)?),
            None if database.is_postgres() => {
                bail!("FLEET_JWT_SECRET: required with PostgreSQL (at least 32 bytes)")
            }
            None => None,
        };
        let mut ingest = IngestSettings {
            amqp_url: amqp_url.clone(),
            clock: clock.clone(),
            ..IngestSettings::default()
        };
        if let Some(n) = get("FLEET_INGEST_BATCH_SIZE") {
            ingest.batch_size = n.parse().ok().filter(|n| *n > 0).with_context(|| {
                format!("FLEET_INGEST_BATCH_SIZE: {n:?} is not a number from 1 to 65535")
            })?;
        }
        if let Some(ms) = get("FLEET_INGEST_MAX_WAIT_MS") {
            let ms: u64 = ms.parse().with_context(|| {
                format!("FLEET_INGEST_MAX_WAIT_MS: {ms:?} is not a number of milliseconds")
            })?;
            ingest.max_wait = Duration::from_millis(ms);
        }
        if let Some(ms) = get("FLEET_INGEST_REFRESH_MS") {
            let ms: u64 = ms.parse().ok().filter(|ms| *ms > 0).with_context(|| {
                format!("FLEET_INGEST_REFRESH_MS: {ms:?} is not a number of milliseconds above 0")
            })?;
            ingest.refresh_every = Duration::from_millis(ms);
        }
        let retention_days = match get("FLEET_HISTORY_RETENTION_DAYS") {
            None => DEFAULT_RETENTION_DAYS,
            Some(d) => d.parse().with_context(|| {
                format!("FLEET_HISTORY_RETENTION_DAYS: {d:?} is not a number of days (0 keeps everything)")
            })?,
        };
        let state_cache = match get("FLEET_INGEST_STATE_CACHE") {
            None => fleet_store::DEFAULT_STATE_CACHE,
            Some(n) => n.parse().with_context(|| {
                format!(
                    "FLEET_INGEST_STATE_CACHE: {n:?} is not a number of terminals (0 keeps none)"
                )
            })?,
        };
        let findings = match get("FLEET_FINDINGS").as_deref() {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => bail!("FLEET_FINDINGS: {other:?} is not on or off"),
        };
        let alert = alert_settings(&get)?;
        Ok(Self {
            database,
            amqp_url,
            http_addr,
            jwt_secret,
            ingest,
            retention_days,
            state_cache,
            clock,
            findings,
            alert,
        })
    }

    /// The thresholds ingest judges findings with, or `None` when they are off.
    pub fn findings_rules(&self) -> Option<fleet_protocol::findings::Thresholds> {
        self.findings.then(|| self.alert.thresholds.clone())
    }

    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// The signing secret: the configured one, or with SQLite the one kept beside the
    /// database file, generated on first use (readable by the owner only).
    pub fn jwt_secret(&self) -> anyhow::Result<JwtSecret> {
        if let Some(secret) = &self.jwt_secret {
            return Ok(secret.clone());
        }
        match &self.database {
            DatabaseUrl::Postgres(_) => bail!("FLEET_JWT_SECRET: required with PostgreSQL"),
            DatabaseUrl::Sqlite(path) => load_or_generate(&secret_path(Path::new(path))),
        }
    }
}

/// `fleet.db` → `fleet.db.jwt-secret`, beside the database.
pub fn secret_path(database: &Path) -> PathBuf {
    let mut name = database
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".jwt-secret");
    database.with_file_name(name)
}

fn load_or_generate(path: &Path) -> anyhow::Result<JwtSecret> {
    match std::fs::read_to_string(path) {
        Ok(text) => JwtSecret::new(text.trim().as_bytes().to_vec())
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            use rand::Rng;
            let bytes: [u8; 32] = rand::rng().random();
            let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            write_private(path, &text)
                .with_context(|| format!("writing the JWT secret to {}", path.display()))?;
            tracing::info!(path = %path.display(), "generated a JWT secret beside the database");
            JwtSecret::new(text.into_bytes()).map_err(anyhow::Error::msg)
        }
        Err(err) => Err(err).with_context(|| format!("reading the JWT secret {}", path.display())),
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// A whole number from a variable, within `range`, or the default.
fn number(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    range: std::ops::RangeInclusive<i64>,
    what: &str,
) -> anyhow::Result<Option<i64>> {
    let Some(text) = get(name) else {
        return Ok(None);
    };
    let n: i64 = text
        .parse()
        .ok()
        .filter(|n| range.contains(n))
        .with_context(|| {
            format!(
                "{name}: {text:?} is not {what} from {} to {}",
                range.start(),
                range.end()
            )
        })?;
    Ok(Some(n))
}

/// `FLEET_ALERTMANAGER_URL`, `FLEET_ALERT_*` and the thresholds of contract §6.
fn alert_settings(get: &impl Fn(&str) -> Option<String>) -> anyhow::Result<AlertSettings> {
    let mut alert = AlertSettings::default();
    if let Some(url) = get("FLEET_ALERTMANAGER_URL") {
        if !url.starts_with("http://") {
            bail!("FLEET_ALERTMANAGER_URL: {url:?} must start with http://");
        }
        alert.alertmanager_url = Some(SecretUrl::new(url));
    }
    alert.tickets = match get("FLEET_ALERT_TICKETS").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => bail!("FLEET_ALERT_TICKETS: {other:?} is not true or false"),
    };
    let ms = |name: &str, default: Duration| -> anyhow::Result<Duration> {
        Ok(
            number(get, name, 1..=86_400_000, "a number of milliseconds")?
                .map_or(default, |n| Duration::from_millis(n as u64)),
        )
    };
    alert.sweep_every = ms("FLEET_ALERT_SWEEP_MS", alert.sweep_every)?;
    alert.deliver_every = ms("FLEET_ALERT_DELIVER_MS", alert.deliver_every)?;
    alert.repost_every = ms("FLEET_ALERT_REPOST_MS", alert.repost_every)?;
    let t = &mut alert.thresholds;
    let minutes = |name: &str, default: chrono::TimeDelta| -> anyhow::Result<chrono::TimeDelta> {
        Ok(number(get, name, 1..=10_080, "a number of minutes")?
            .map_or(default, chrono::TimeDelta::minutes))
    };
    t.line_auth_down_after = minutes("FLEET_FINDING_LINE_AUTH_DOWN_MIN", t.line_auth_down_after)?;
    t.silent_after = minutes("FLEET_FINDING_SILENT_MIN", t.silent_after)?;
    t.reader_fault_within = minutes("FLEET_FINDING_READER_WINDOW_MIN", t.reader_fault_within)?;
    if let Some(n) = number(get, "FLEET_FINDING_READER_ERRORS", 1..=1_000_000, "a count")? {
        t.reader_fault_errors = n as u64;
    }
    if let Some(n) = number(get, "FLEET_FINDING_CERT_DAYS", 0..=3650, "a number of days")? {
        t.certificate_expiring_days = n;
    }
    if let Some(n) = number(
        get,
        "FLEET_FINDING_CERT_URGENT_DAYS",
        0..=3650,
        "a number of days",
    )? {
        t.certificate_urgent_days = n;
    }
    Ok(alert)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_embedded_install() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.database, DatabaseUrl::Sqlite("fleet.db".into()));
        assert_eq!(s.http_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(s.amqp_url.expose_url(), DEFAULT_AMQP_URL);
        assert!(format!("{:?}", s.clock).contains("SystemClock"));
    }

    #[test]
    fn debug_prints_no_password() {
        // The brief's URLs; "secret" also appears in a field name (`jwt_secret`), so
        // the check is for the password in its URL position.
        let s = settings(&[
            ("FLEET_DATABASE_URL", "postgres://u:secret@h/db"),
            ("FLEET_AMQP_URL", "amqp://u:secret@h"),
            ("FLEET_JWT_SECRET", "a-jwt-key-of-at-least-thirty-two-bytes"),
        ])
        .unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains(":secret@"), "{shown}");
        assert_eq!(
            shown.matches("secret").count(),
            1,
            "only `jwt_secret`: {shown}"
        );
        assert!(shown.contains("postgres://u:***@h/db"), "{shown}");
        assert!(shown.contains("amqp://u:***@h"), "{shown}");
        assert!(!shown.contains("thirty-two"), "{shown}");
        let err = format!(
            "{:#}",
            settings(&[("FLEET_AMQP_URL", "http://u:secret@h")]).unwrap_err()
        );
        assert!(
            !err.contains("secret") && err.contains("FLEET_AMQP_URL"),
            "{err}"
        );
    }

    #[test]
    fn the_clock_comes_from_fleet_clock() {
        let s = settings(&[
            ("FLEET_CLOCK", "2026-01-20T08:00:00+09:00"),
            ("FLEET_CLOCK_RATE", "3600"),
        ])
        .unwrap();
        let now = s.clock.now();
        assert!(now >= chrono::DateTime::parse_from_rfc3339("2026-01-20T08:00:00+09:00").unwrap());
        assert!(now < chrono::DateTime::parse_from_rfc3339("2026-01-21T08:00:00+09:00").unwrap());
        // The consumer reads the same clock.
        assert!(s.ingest.clock.now() >= now);
    }

    #[test]
    fn errors_name_the_variable() {
        let err = |vars: &[(&str, &str)]| format!("{:#}", settings(vars).unwrap_err());
        assert!(err(&[("FLEET_DATABASE_URL", "postgres://h/db")]).contains("FLEET_JWT_SECRET"));
        assert!(err(&[("FLEET_JWT_SECRET", "short")]).contains("FLEET_JWT_SECRET"));
        assert!(err(&[("FLEET_HTTP_ADDR", "nowhere")]).contains("FLEET_HTTP_ADDR"));
        assert!(err(&[("FLEET_AMQP_URL", "http://x")]).contains("FLEET_AMQP_URL"));
        assert!(err(&[("FLEET_INGEST_BATCH_SIZE", "0")]).contains("FLEET_INGEST_BATCH_SIZE"));
        assert!(err(&[("FLEET_INGEST_REFRESH_MS", "0")]).contains("FLEET_INGEST_REFRESH_MS"));
        assert!(err(&[("FLEET_CLOCK", "today")]).contains("FLEET_CLOCK"));
        for rate in ["0", "-2", "NaN", "inf", "fast"] {
            let vars = [
                ("FLEET_CLOCK", "2026-01-20T08:00:00+09:00"),
                ("FLEET_CLOCK_RATE", rate),
            ];
            assert!(err(&vars).contains("FLEET_CLOCK_RATE"), "{rate}");
        }
        assert!(err(&[("FLEET_INGEST_STATE_CACHE", "lots")]).contains("FLEET_INGEST_STATE_CACHE"));
        assert!(
            err(&[("FLEET_HISTORY_RETENTION_DAYS", "a year")])
                .contains("FLEET_HISTORY_RETENTION_DAYS")
        );
    }

    #[test]
    fn the_generated_secret_is_kept_and_reused() {
        let dir = std::env::temp_dir().join(format!("fleetd-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("fleet.db");
        let _ = std::fs::remove_file(secret_path(&db));
        let s = settings(&[("FLEET_DATABASE_URL", db.to_str().unwrap())]).unwrap();
        let first = s.jwt_secret().unwrap();
        let text = std::fs::read_to_string(secret_path(&db)).unwrap();
        assert_eq!(text.len(), 64);
        // A token signed with the first secret verifies with the one read back later.
        let again = s.jwt_secret().unwrap();
        assert_eq!(std::fs::read_to_string(secret_path(&db)).unwrap(), text);
        let tenant = fleet_protocol::TenantSlug::parse("demo").unwrap();
        let role = fleet_web::auth::Role::Support;
        let token = fleet_web::auth::issue(
            &first,
            "t",
            role,
            Some(&tenant),
            &[],
            chrono::Duration::hours(1),
        )
        .unwrap();
        assert!(fleet_web::auth::verify(&again, &token).is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(secret_path(&db))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
