//! Settings: a TOML file checked into [`Settings`] before anything starts.
//!
//! The file is deserialised into a private mirror of its layout with
//! `deny_unknown_fields` (a misspelt key is an error, not a silently ignored
//! setting), using the domain types of `fleet-protocol` wherever one exists, so a
//! terminal id that is not a UUID or a clinic code that is not a 医療機関等コード
//! never gets past loading. Then the few checks serde cannot express (the AMQP URL,
//! the UTC offset, component names, URL schemes) run, and the result is a
//! [`Settings`] that the rest of the agent trusts. Every error names the field at
//! fault (`host.auto_reboot`, `versions.Face Library`, …) and the reason.
//!
//! Relative paths are relative to the working directory, so the example config runs
//! from the repository root. The AMQP password is kept out of every `Debug` output.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use fleet_protocol::report::{NfcReader, Reader, ReaderMaker, ReaderMode};
use fleet_protocol::{ClinicCode, TenantSlug};
use serde::Deserialize;
use uuid::Uuid;

/// The broker of the contract's embedded default (§4).
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The AMQP frame size the agent asks for unless the URL sets `frame_max`.
pub const DEFAULT_FRAME_MAX: u32 = 16 * 1024;
/// The page that shows the 回線認証 state on a terminal (domain.md).
pub const DEFAULT_LINE_AUTH_URL: &str = "https://www.lineauth.mnw";
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// How often the terminal is looked at for changes between two interval reports.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(10);
pub const DEFAULT_LINE_AUTH_TIMEOUT: Duration = Duration::from_secs(5);
/// Terminals stand in Japan: times the agent writes, and times read from files that
/// carry no offset, are in JST unless `utc_offset` says otherwise.
pub const DEFAULT_UTC_OFFSET: &str = "+09:00";

/// Everything the agent needs, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Fixed at enrollment; with `seq` it forms the idempotency key.
    pub terminal_id: Uuid,
    /// The clinic the terminal stands in.
    pub clinic_code: ClinicCode,
    /// The vendor; names the routing key `v1.<tenant>.report`.
    pub tenant: TenantSlug,
    /// Where reports go, and as whom (`user_id`).
    pub amqp: AmqpTarget,
    /// Holds the `seq` file; must survive reboots of the terminal.
    pub state_dir: PathBuf,
    /// Time between two reports of `run` when nothing changes.
    pub interval: Duration,
    /// Time between two looks at the terminal: a change (or a reader error) found by
    /// one is reported at once instead of at the next interval.
    pub check_interval: Duration,
    /// The on-disk spool every report goes through.
    pub spool: SpoolSettings,
    /// Offset for the times the agent writes and for offset-less times it reads.
    pub utc_offset: FixedOffset,
    pub host: HostSettings,
    /// Wire component name → its version file.
    pub versions: BTreeMap<String, PathBuf>,
    /// `None`: the distribution record is not probed.
    pub distribution: Option<DistributionSettings>,
    /// `None`: the 回線認証 check is switched off.
    pub line_auth: Option<LineAuthSettings>,
    /// Reported as configured; `errors` come from `reader_log`.
    pub reader: Option<Reader>,
    /// The reader software's log files, if errors are to be read from them.
    pub reader_log: Option<ReaderLogSettings>,
    pub nfc_reader: Option<NfcReader>,
    pub certificate: Option<CertificateSettings>,
}

#[derive(Debug, Clone)]
pub struct SpoolSettings {
    /// Default `<state_dir>/spool`.
    pub dir: PathBuf,
    pub config: crate::spool::SpoolConfig,
}

#[derive(Debug, Clone)]
pub struct ReaderLogSettings {
    /// Log files; a `*` in the file name matches date-named logs.
    pub files: Vec<PathBuf>,
    /// The maker's patterns, compiled and checked at load.
    pub parser: crate::probe::reader_log::LineParser,
}

#[derive(Debug, Clone, Default)]
pub struct CertificateSettings {
    /// A PEM or DER file holding the terminal certificate.
    pub file: Option<PathBuf>,
    /// A Windows system certificate store (`LocalMachine\My`), read on Windows only.
    pub store: Option<crate::probe::certificate::StoreName>,
    /// Text the subject of the store's certificate must contain (case-insensitive).
    pub match_subject: Option<String>,
    /// Text the issuer of the store's certificate must contain (case-insensitive).
    pub match_issuer: Option<String>,
    /// Used when the file or store does not say (or there is neither).
    pub issuer: Option<String>,
    pub not_after: Option<DateTime<FixedOffset>>,
}

#[derive(Debug, Clone, Default)]
pub struct HostSettings {
    /// Overrides the system's host name.
    pub hostname: Option<String>,
    /// Overrides the system's OS name.
    pub os: Option<String>,
    /// Pending-reboot markers of Windows (registry) are also consulted (read on
    /// Windows only; see `probe::reboot`).
    pub windows_reboot_markers: bool,
    /// The terminal restarts itself every morning (known from its setup, not probed).
    pub auto_reboot: Option<bool>,
    /// A file holding the last boot time, read instead of the system's (fixtures).
    pub booted_at_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct DistributionSettings {
    /// The text export of 配信実績 and the 「配信機能を無効化する」 setting.
    pub record_file: PathBuf,
    /// Extra label → wire component name mappings, on top of the built-in ones.
    pub component_labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct LineAuthSettings {
    /// `http://`, `https://` or `file://` (a saved page, for fixtures).
    pub url: String,
    /// For the whole request: connect, TLS, response.
    pub timeout: Duration,
    /// PEM roots to trust instead of the built-in web roots (the CA of the closed
    /// network that serves www.lineauth.mnw is not known yet).
    pub ca_file: Option<PathBuf>,
    /// `false` skips certificate verification. Only the page text is read, so this is
    /// a tolerable escape hatch while the right CA is unknown; off by default.
    pub tls_verify: bool,
}

/// The broker URL and the user it authenticates as. The password never prints.
#[derive(Clone)]
pub struct AmqpTarget {
    url: String,
    user: String,
    redacted: String,
    /// PEM roots to trust for `amqps://` besides the built-in web roots (lapin adds
    /// them to its root store; it cannot replace it).
    ca_pem: Option<String>,
}

impl AmqpTarget {
    /// Parses an `amqp://` or `amqps://` URL. The error never repeats the URL, which
    /// may hold a password.
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri = lapin::uri::AMQPUri::from_str(url)
            .map_err(|err| format!("not an AMQP URL: {}", err.replace(url, "<url>")))?;
        let user = uri.authority.userinfo.username.clone();
        if user.is_empty() {
            return Err("the URL names no user".to_owned());
        }
        let redacted = format!(
            "{}://{}@{}:{}/{}",
            uri.scheme, user, uri.authority.host, uri.authority.port, uri.vhost
        );
        // lapin sizes its connection buffers by the negotiated frame size; the
        // broker's default (128 KiB) costs about 8 MiB resident, the agent's whole
        // budget. Reports are small and a larger body is simply split into frames.
        let url = if uri.query.frame_max.is_some() {
            url.to_owned()
        } else {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}frame_max={DEFAULT_FRAME_MAX}")
        };
        Ok(Self {
            url,
            user,
            redacted,
            ca_pem: None,
        })
    }

    /// Trusts these PEM roots for `amqps://` (the broker's private CA).
    pub fn with_ca_pem(mut self, pem: String) -> Self {
        self.ca_pem = Some(pem);
        self
    }

    /// The PEM roots set by `amqp_ca_file`, if any.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// `amqps://`: TLS to the broker.
    pub fn is_tls(&self) -> bool {
        self.url.starts_with("amqps://")
    }

    /// The full URL, password included: only for connecting.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The AMQP user name, sent as `user_id` (the broker checks it).
    pub fn user(&self) -> &str {
        &self.user
    }
}

impl fmt::Debug for AmqpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Display for AmqpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

/// Why a settings file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read settings file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("settings file {}: field `{field}`: {reason}", path.display())]
    Invalid {
        path: PathBuf,
        /// Dotted path of the field at fault, `(file)` for a syntax error.
        field: String,
        reason: String,
    },
}

impl ConfigError {
    /// The field at fault, if the file could be read.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Read { .. } => None,
            Self::Invalid { field, .. } => Some(field),
        }
    }
}

impl Settings {
    /// Reads and checks a settings file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Checks settings given as TOML text; `origin` only names it in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let invalid = |field: String, reason: String| ConfigError::Invalid {
            path: origin.to_owned(),
            field,
            reason,
        };
        let de = toml::Deserializer::parse(text)
            .map_err(|err| invalid("(file)".to_owned(), describe_toml(&err, text)))?;
        let file: File = serde_path_to_error::deserialize(de).map_err(|err| {
            let path = err.path().to_string();
            let inner = err.into_inner();
            let reason = describe_toml(&inner, text);
            invalid(field_name(&path, inner.message()), reason)
        })?;
        file.check()
            .map_err(|(field, reason)| invalid(field, reason))
    }
}

/// The field a serde error is about. A missing field is reported at its parent's
/// path, with its name only in the message.
fn field_name(path: &str, message: &str) -> String {
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    match (path, named) {
        (".", Some(name)) => name.to_owned(),
        (".", None) => "(file)".to_owned(),
        // An unknown field's path already ends with its name.
        (path, Some(name)) if path == name || path.ends_with(&format!(".{name}")) => {
            path.to_owned()
        }
        (parent, Some(name)) => format!("{parent}.{name}"),
        (path, None) => path.to_owned(),
    }
}

/// The message of a TOML error with the line it points at, without the multi-line
/// source excerpt of its `Display`.
fn describe_toml(err: &toml::de::Error, text: &str) -> String {
    let message = err.message().trim_end().to_owned();
    match err.span() {
        Some(span) => {
            let line = text
                .get(..span.start)
                .map_or(0, |before| before.matches('\n').count())
                + 1;
            format!("{message} (line {line})")
        }
        None => message,
    }
}

/// Every `CERTIFICATE` block of a CA file must be a certificate. The TLS stack skips a
/// block it cannot parse without a word, and the only symptom would be a broker
/// refused as `UnknownIssuer` much later; so a damaged file stops the agent at load.
fn check_ca_pem(pem: &str) -> Result<(), String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    let blocks: Vec<&str> = pem.split(BEGIN).skip(1).collect();
    if blocks.is_empty() {
        return Err("holds no PEM certificate".to_owned());
    }
    for (n, block) in blocks.iter().enumerate() {
        crate::probe::certificate::parse_pem_or_der(format!("{BEGIN}{block}").as_bytes())
            .map_err(|reason| format!("certificate {} of {}: {reason}", n + 1, blocks.len()))?;
    }
    Ok(())
}

/// `[a-z0-9_]{1,64}`: component names are wire keys, so they stay plain.
fn check_component_name(name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "component name {name:?} is not [a-z0-9_]{{1,64}} (e.g. face_library)"
        ))
    }
}

// The file's layout. Private: nothing outside this module sees unchecked settings.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    terminal_id: Uuid,
    clinic_code: ClinicCode,
    tenant: TenantSlug,
    amqp_url: Option<String>,
    amqp_ca_file: Option<PathBuf>,
    state_dir: PathBuf,
    interval_secs: Option<NonZeroU64>,
    check_interval_secs: Option<NonZeroU64>,
    #[serde(default)]
    spool: SpoolFile,
    utc_offset: Option<String>,
    #[serde(default)]
    host: HostFile,
    #[serde(default)]
    versions: BTreeMap<String, PathBuf>,
    distribution: Option<DistributionFile>,
    #[serde(default)]
    line_auth: LineAuthFile,
    reader: Option<ReaderFile>,
    nfc_reader: Option<NfcReaderFile>,
    certificate: Option<CertificateFile>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HostFile {
    hostname: Option<String>,
    os: Option<String>,
    auto_reboot: Option<bool>,
    booted_at_file: Option<PathBuf>,
    windows_reboot_markers: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SpoolFile {
    dir: Option<PathBuf>,
    max_mib: Option<NonZeroU64>,
    segment_kib: Option<NonZeroU64>,
    /// "always" | "never" | "interval"
    fsync: Option<String>,
    fsync_interval_ms: Option<NonZeroU64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReaderLogFile {
    files: Vec<PathBuf>,
    #[serde(default)]
    patterns: Vec<String>,
    builtin_patterns: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DistributionFile {
    record_file: PathBuf,
    #[serde(default)]
    component_labels: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LineAuthFile {
    enabled: Option<bool>,
    url: Option<String>,
    timeout_ms: Option<NonZeroU64>,
    ca_file: Option<PathBuf>,
    tls_verify: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReaderFile {
    maker: Option<ReaderMaker>,
    model: Option<String>,
    connected: Option<bool>,
    via_usb_hub: Option<bool>,
    mode: Option<ReaderMode>,
    log: Option<ReaderLogFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NfcReaderFile {
    model: Option<String>,
    firmware: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CertificateFile {
    file: Option<PathBuf>,
    store: Option<String>,
    match_subject: Option<String>,
    match_issuer: Option<String>,
    issuer: Option<String>,
    not_after: Option<DateTime<FixedOffset>>,
}

type FieldError = (String, String);

impl File {
    fn check(self) -> Result<Settings, FieldError> {
        let mut amqp = AmqpTarget::parse(self.amqp_url.as_deref().unwrap_or(DEFAULT_AMQP_URL))
            .map_err(|reason| ("amqp_url".to_owned(), reason))?;
        if let Some(path) = &self.amqp_ca_file {
            let pem = std::fs::read_to_string(path).map_err(|err| {
                (
                    "amqp_ca_file".to_owned(),
                    format!("cannot read {}: {err}", path.display()),
                )
            })?;
            check_ca_pem(&pem).map_err(|reason| {
                (
                    "amqp_ca_file".to_owned(),
                    format!("{}: {reason}", path.display()),
                )
            })?;
            amqp = amqp.with_ca_pem(pem);
        }
        let utc_offset = self
            .utc_offset
            .as_deref()
            .unwrap_or(DEFAULT_UTC_OFFSET)
            .parse::<FixedOffset>()
            .map_err(|err| {
                (
                    "utc_offset".to_owned(),
                    format!("{err}: expected an offset such as \"+09:00\""),
                )
            })?;
        if self.state_dir.as_os_str().is_empty() {
            return Err(("state_dir".to_owned(), "must not be empty".to_owned()));
        }
        for name in self.versions.keys() {
            check_component_name(name).map_err(|reason| (format!("versions.{name}"), reason))?;
        }
        let distribution = match self.distribution {
            None => None,
            Some(d) => {
                for (label, name) in &d.component_labels {
                    check_component_name(name).map_err(|reason| {
                        (format!("distribution.component_labels.{label}"), reason)
                    })?;
                }
                Some(DistributionSettings {
                    record_file: d.record_file,
                    component_labels: d.component_labels,
                })
            }
        };
        let line_auth = self.line_auth.check()?;
        let spool = self.spool.check(&self.state_dir)?;
        let interval = self
            .interval_secs
            .map_or(DEFAULT_INTERVAL, |s| Duration::from_secs(s.get()));
        let check_interval = self
            .check_interval_secs
            .map_or(DEFAULT_CHECK_INTERVAL, |s| Duration::from_secs(s.get()))
            .min(interval);
        let reader_log = match self.reader.as_ref().and_then(|r| r.log.as_ref()) {
            None => None,
            Some(log) => {
                let maker = self.reader.as_ref().and_then(|r| r.maker);
                let parser = crate::probe::reader_log::LineParser::new(
                    maker,
                    log.builtin_patterns.unwrap_or(true),
                    &log.patterns,
                )
                .map_err(|reason| ("reader.log.patterns".to_owned(), reason))?;
                if log.files.is_empty() {
                    return Err((
                        "reader.log.files".to_owned(),
                        "must name at least one file".to_owned(),
                    ));
                }
                Some(ReaderLogSettings {
                    files: log.files.clone(),
                    parser,
                })
            }
        };
        let certificate = match self.certificate {
            None => None,
            Some(c) => {
                let store = c
                    .store
                    .as_deref()
                    .map(crate::probe::certificate::StoreName::parse)
                    .transpose()
                    .map_err(|reason| ("certificate.store".to_owned(), reason))?;
                if store.is_none() && (c.match_subject.is_some() || c.match_issuer.is_some()) {
                    let field = if c.match_subject.is_some() {
                        "certificate.match_subject"
                    } else {
                        "certificate.match_issuer"
                    };
                    return Err((
                        field.to_owned(),
                        "only applies with [certificate] store".to_owned(),
                    ));
                }
                Some(CertificateSettings {
                    file: c.file,
                    store,
                    match_subject: c.match_subject,
                    match_issuer: c.match_issuer,
                    issuer: c.issuer,
                    not_after: c.not_after,
                })
            }
        };
        Ok(Settings {
            terminal_id: self.terminal_id,
            clinic_code: self.clinic_code,
            tenant: self.tenant,
            amqp,
            state_dir: self.state_dir,
            interval,
            check_interval,
            spool,
            utc_offset,
            host: HostSettings {
                hostname: self.host.hostname,
                os: self.host.os,
                auto_reboot: self.host.auto_reboot,
                booted_at_file: self.host.booted_at_file,
                windows_reboot_markers: self.host.windows_reboot_markers.unwrap_or(true),
            },
            versions: self.versions,
            distribution,
            line_auth,
            reader: self.reader.map(|r| Reader {
                maker: r.maker,
                model: r.model,
                connected: r.connected,
                via_usb_hub: r.via_usb_hub,
                mode: r.mode,
                // Events read from the reader's logs by the daemon, not settings.
                errors: None,
            }),
            reader_log,
            nfc_reader: self.nfc_reader.map(|n| NfcReader {
                model: n.model,
                firmware: n.firmware,
            }),
            certificate,
        })
    }
}

impl SpoolFile {
    fn check(&self, state_dir: &Path) -> Result<SpoolSettings, FieldError> {
        use crate::spool::{FsyncPolicy, SpoolConfig};
        let defaults = SpoolConfig::default();
        let interval = self
            .fsync_interval_ms
            .map_or(Duration::from_secs(1), |ms| Duration::from_millis(ms.get()));
        let fsync = match self.fsync.as_deref() {
            None | Some("always") => FsyncPolicy::Always,
            Some("interval") => FsyncPolicy::Interval(interval),
            Some("never") => FsyncPolicy::Never,
            Some(other) => {
                return Err((
                    "spool.fsync".to_owned(),
                    format!("{other:?} is not one of \"always\", \"interval\", \"never\""),
                ));
            }
        };
        if self.fsync_interval_ms.is_some() && !matches!(fsync, FsyncPolicy::Interval(_)) {
            return Err((
                "spool.fsync_interval_ms".to_owned(),
                "only applies with fsync = \"interval\"".to_owned(),
            ));
        }
        let max_bytes = self
            .max_mib
            .map_or(defaults.max_bytes, |m| m.get().saturating_mul(1024 * 1024));
        let segment_bytes = self
            .segment_kib
            .map_or(defaults.segment_bytes, |k| k.get().saturating_mul(1024));
        if segment_bytes > max_bytes {
            return Err((
                "spool.segment_kib".to_owned(),
                "a segment cannot be larger than the whole spool (max_mib)".to_owned(),
            ));
        }
        Ok(SpoolSettings {
            dir: self.dir.clone().unwrap_or_else(|| state_dir.join("spool")),
            config: SpoolConfig {
                max_bytes,
                segment_bytes,
                fsync,
            },
        })
    }
}

impl LineAuthFile {
    fn check(self) -> Result<Option<LineAuthSettings>, FieldError> {
        if self.enabled == Some(false) {
            return Ok(None);
        }
        let url = self.url.unwrap_or_else(|| DEFAULT_LINE_AUTH_URL.to_owned());
        let scheme_ok = ["http://", "https://", "file://"]
            .iter()
            .any(|scheme| url.len() > scheme.len() && url.starts_with(scheme));
        if !scheme_ok {
            return Err((
                "line_auth.url".to_owned(),
                format!("{url:?} is not an http://, https:// or file:// URL"),
            ));
        }
        Ok(Some(LineAuthSettings {
            url,
            timeout: self.timeout_ms.map_or(DEFAULT_LINE_AUTH_TIMEOUT, |ms| {
                Duration::from_millis(ms.get())
            }),
            ca_file: self.ca_file,
            tls_verify: self.tls_verify.unwrap_or(true),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
terminal_id = "0f8c2b1e-6c5d-4a57-9a3e-2b7f0c1d9e11"
clinic_code = "2712345678"
tenant = "demo"
state_dir = "/var/lib/fleet-agent"
"#;

    fn parse(text: &str) -> Result<Settings, ConfigError> {
        Settings::from_toml(text, Path::new("test.toml"))
    }

    fn field_of(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(err) => err.field().unwrap_or("(none)").to_owned(),
        }
    }

    #[test]
    fn minimal_file_gets_the_documented_defaults() {
        let s = parse(MINIMAL).unwrap();
        assert_eq!(s.interval, Duration::from_secs(60));
        assert_eq!(
            s.amqp.url(),
            format!("{DEFAULT_AMQP_URL}?frame_max={DEFAULT_FRAME_MAX}")
        );
        assert_eq!(s.amqp.user(), "guest");
        assert_eq!(s.utc_offset, FixedOffset::east_opt(9 * 3600).unwrap());
        let line_auth = s.line_auth.unwrap();
        assert_eq!(line_auth.url, "https://www.lineauth.mnw");
        assert_eq!(line_auth.timeout, Duration::from_secs(5));
        assert!(line_auth.tls_verify);
        assert!(s.distribution.is_none() && s.reader.is_none() && s.versions.is_empty());
    }

    #[test]
    fn password_never_prints() {
        let text =
            format!("{MINIMAL}amqp_url = \"amqp://vendor-a:s3cret@mq.example:5672/fleet\"\n");
        let s = parse(&text).unwrap();
        assert_eq!(s.amqp.user(), "vendor-a");
        let shown = format!("{s:?} {}", s.amqp);
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("vendor-a@mq.example:5672/fleet"), "{shown}");
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases = [
            (
                MINIMAL.replace("0f8c2b1e-6c5d", "not-a-uuid"),
                "terminal_id",
            ),
            (MINIMAL.replace("2712345678", "4812345678"), "clinic_code"),
            (MINIMAL.replace("\"demo\"", "\"Demo Vendor\""), "tenant"),
            (format!("{MINIMAL}interval_secs = 0\n"), "interval_secs"),
            (
                format!("{MINIMAL}interval_secs = \"60\"\n"),
                "interval_secs",
            ),
            (format!("{MINIMAL}utc_offset = \"JST\"\n"), "utc_offset"),
            (
                format!("{MINIMAL}amqp_url = \"http://x:y@host/\"\n"),
                "amqp_url",
            ),
            (format!("{MINIMAL}intervall_secs = 60\n"), "intervall_secs"),
            (
                format!("{MINIMAL}[host]\nauto_reboot = \"yes\"\n"),
                "host.auto_reboot",
            ),
            (
                format!("{MINIMAL}[host]\nhost_name = \"x\"\n"),
                "host.host_name",
            ),
            (
                format!("{MINIMAL}[reader]\nmaker = \"sony\"\n"),
                "reader.maker",
            ),
            (
                format!("{MINIMAL}[reader]\nmode = \"manual\"\n"),
                "reader.mode",
            ),
            (
                format!("{MINIMAL}[versions]\n\"Face Library\" = \"x\"\n"),
                "versions.Face Library",
            ),
            (
                format!("{MINIMAL}[line_auth]\nurl = \"ftp://x\"\n"),
                "line_auth.url",
            ),
            (
                format!("{MINIMAL}[line_auth]\ntimeout_ms = 0\n"),
                "line_auth.timeout_ms",
            ),
            (
                format!("{MINIMAL}[certificate]\nnot_after = \"2028-04-30\"\n"),
                "certificate.not_after",
            ),
            (
                format!(
                    "{MINIMAL}[distribution]\nrecord_file = \"x\"\n[distribution.component_labels]\n\"顔認証\" = \"Face\"\n"
                ),
                "distribution.component_labels.顔認証",
            ),
            (MINIMAL.replace("tenant = \"demo\"\n", ""), "tenant"),
            (
                format!("{MINIMAL}[certificate]\nstore = 'Machine\\My'\n"),
                "certificate.store",
            ),
            (
                format!("{MINIMAL}[certificate]\nfile = \"x.pem\"\nmatch_issuer = \"JPKI\"\n"),
                "certificate.match_issuer",
            ),
            (
                format!("{MINIMAL}[distribution]\ncomponent_labels = {{}}\n"),
                "distribution.record_file",
            ),
        ];
        for (text, field) in cases {
            assert_eq!(field_of(&text), field, "{text}");
        }
    }

    #[test]
    fn errors_say_why_and_where() {
        let err = parse(&format!("{MINIMAL}interval_secs = 0\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("interval_secs") && err.contains("nonzero"),
            "{err}"
        );
        assert!(err.contains("line 6"), "{err}");
        let err = parse(&MINIMAL.replace("2712345678", "2752345678"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("点数表番号"), "{err}");
        let err = parse("terminal_id = [").unwrap_err();
        assert_eq!(err.field(), Some("(file)"));
    }

    #[test]
    fn a_small_frame_max_is_asked_for_unless_the_url_sets_one() {
        let with = |url: &str| {
            parse(&format!("{MINIMAL}amqp_url = \"{url}\"\n"))
                .unwrap()
                .amqp
                .url()
                .to_owned()
        };
        assert_eq!(
            with("amqps://u:p@mq.example/fleet?heartbeat=30"),
            "amqps://u:p@mq.example/fleet?heartbeat=30&frame_max=16384"
        );
        assert_eq!(
            with("amqp://u:p@mq.example/fleet?frame_max=131072"),
            "amqp://u:p@mq.example/fleet?frame_max=131072"
        );
    }

    #[test]
    fn a_damaged_ca_file_is_refused_at_load() {
        let dir = std::env::temp_dir().join(format!("fleet-agent-ca-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/certificate/terminal-cert.pem"
        ))
        .unwrap();
        let cases = [
            ("ok.pem", format!("{good}\n{good}"), None),
            ("empty.pem", String::new(), Some("holds no PEM certificate")),
            (
                "cut.pem",
                format!("{good}{}", &good[..good.len() / 2]),
                Some("certificate 2 of 2"),
            ),
        ];
        for (name, text, want) in cases {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            let toml = format!("{MINIMAL}amqp_ca_file = \"{}\"\n", path.display());
            match (parse(&toml), want) {
                (Ok(s), None) => assert!(s.amqp.ca_pem().is_some()),
                (Err(err), Some(want)) => {
                    assert_eq!(err.field(), Some("amqp_ca_file"));
                    assert!(err.to_string().contains(want), "{err}");
                }
                (result, want) => panic!("{name}: {result:?}, wanted {want:?}"),
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn line_auth_can_be_switched_off() {
        let s = parse(&format!("{MINIMAL}[line_auth]\nenabled = false\n")).unwrap();
        assert!(s.line_auth.is_none());
    }
}
