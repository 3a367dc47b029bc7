//! Probes: what a technician would read on the terminal, one module each.
//!
//! Every probe answers `Option`: `None` means "not observed" and the report leaves the
//! section or field out, as the contract asks (§2: absent never means false or zero).
//! A probe that fails says why in the log and never stops the others, so a terminal
//! with a missing file still reports everything else.
//!
//! [`snapshot`] runs them all and assembles a [`Report`]. It blocks (file reads and
//! the 回線認証 page, up to its timeout): async callers use `spawn_blocking`.

pub mod boot;
pub mod cache;
pub mod certificate;
pub mod distribution;
pub mod host;
pub mod line_auth;
pub mod reader_log;
pub mod reboot;
pub mod text;
pub mod version_file;

use std::collections::BTreeMap;

use cache::FileCache;
use chrono::{DateTime, FixedOffset, SubsecRound, Utc};
use fleet_protocol::Report;
use fleet_protocol::report::{Certificate, Distribution, SCHEMA_V1};

use crate::config::Settings;

/// Takes one snapshot of the terminal as a report carrying `seq`.
pub fn snapshot(settings: &Settings, seq: u64) -> Report {
    SnapshotCache::default().snapshot(settings, seq)
}

/// What [`snapshot`] may keep between two looks, for the daemon that looks every
/// check interval: the results made from files that did not change (see [`cache`]:
/// version files, distribution record, boot-time file, certificate, a saved
/// line-auth page) and the line-auth HTTP client. An empty one reads everything.
#[derive(Debug, Default)]
struct SnapshotCache {
    versions: BTreeMap<String, FileCache<Result<String, String>>>,
    distribution: FileCache<Option<Distribution>>,
    booted_at: FileCache<Option<DateTime<FixedOffset>>>,
    certificate: FileCache<Option<Certificate>>,
    line_auth: line_auth::Checker,
}

impl SnapshotCache {
    fn snapshot(&mut self, settings: &Settings, seq: u64) -> Report {
        let offset = settings.utc_offset;
        let observed_at = now(offset);
        let versions = version_file::probe_with(&settings.versions, |component, path| {
            self.versions
                .entry(component.to_owned())
                .or_default()
                .get(path, || version_file::read_version_file(path))
        });
        let distribution = settings.distribution.as_ref().and_then(|d| {
            self.distribution
                .get(&d.record_file, || distribution::probe(d, offset))
        });
        let booted_at = match &settings.host.booted_at_file {
            Some(path) => self
                .booted_at
                .get(path, || boot::booted_at(&settings.host, offset)),
            None => boot::booted_at(&settings.host, offset),
        };
        // The download rule and, on Windows, the registry's own markers.
        let reboot = reboot::combine(
            reboot::derive(
                booted_at,
                versions.as_ref(),
                distribution.as_ref().and_then(|d| d.downloaded.as_ref()),
            ),
            settings
                .host
                .windows_reboot_markers
                .then(reboot::windows_markers)
                .flatten(),
        );
        let line_auth = settings
            .line_auth
            .as_ref()
            .map(|l| self.line_auth.check(l, offset));
        let certificate = settings.certificate.as_ref().and_then(|c| match &c.file {
            Some(path) => self.certificate.get(path, || certificate::probe(c, offset)),
            None => certificate::probe(c, offset),
        });
        Report {
            schema: SCHEMA_V1.to_owned(),
            terminal_id: settings.terminal_id,
            seq,
            observed_at,
            clinic_code: settings.clinic_code,
            agent_version: Some(crate::AGENT_VERSION.to_owned()),
            host: host::probe(&settings.host, booted_at),
            versions,
            distribution,
            reboot,
            line_auth,
            reader: settings.reader.clone(),
            nfc_reader: settings.nfc_reader.clone(),
            certificate,
        }
    }
}

/// The current time in `offset`, to the second: finer is noise in a report.
pub fn now(offset: FixedOffset) -> DateTime<FixedOffset> {
    Utc::now().with_timezone(&offset).trunc_subsecs(0)
}

/// The daemon's probes: [`snapshot`] plus what needs memory between two looks (the
/// reader logs, tailed; results of files that did not change).
#[derive(Debug, Default)]
pub struct Probes {
    reader_log: Option<reader_log::ReaderLogTail>,
    cache: SnapshotCache,
}

impl Probes {
    pub fn new(settings: &Settings) -> Self {
        Self {
            reader_log: settings
                .reader_log
                .as_ref()
                .map(|r| reader_log::ReaderLogTail::new(r, &settings.state_dir)),
            cache: SnapshotCache::default(),
        }
    }

    /// A snapshot with the reader errors read since the last [`Self::commit`].
    pub fn observe(&mut self, settings: &Settings, seq: u64) -> Report {
        let mut report = self.cache.snapshot(settings, seq);
        if let Some(tail) = &mut self.reader_log {
            tail.poll(settings.utc_offset, report.observed_at);
            if let Some(errors) = tail.errors() {
                report.reader.get_or_insert_with(Default::default).errors = Some(errors);
            }
        }
        report
    }

    /// The last observed report was spooled: its reader errors are delivered.
    pub fn commit(&mut self) {
        if let Some(tail) = &mut self.reader_log {
            tail.commit();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs::{File, FileTimes};
    use std::path::Path;
    use std::time::{Duration, SystemTime};

    use super::*;

    fn write_aged(path: &Path, text: &str, age: Duration) {
        std::fs::write(path, text).unwrap();
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_times(FileTimes::new().set_modified(SystemTime::now() - age))
            .unwrap();
    }

    /// Skipping unchanged files must not delay a change: the next look sees it, even
    /// when the new file has the old one's length.
    #[test]
    fn the_daemon_sees_a_changed_file_at_the_next_look() {
        let dir = std::env::temp_dir().join(format!(
            "fleet-agent-probes-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let version = dir.join("Version.info");
        let page = dir.join("lineauth.html");
        write_aged(&version, "Version=5.0.3\n", Duration::from_secs(3600));
        write_aged(&page, "<p>回線認証接続済み</p>", Duration::from_secs(3600));
        let settings = Settings::from_toml(
            &format!(
                r#"
terminal_id = "0f8c2b1e-6c5d-4a57-9a3e-2b7f0c1d9e11"
clinic_code = "2712345678"
tenant = "demo"
state_dir = "{dir}/state"
[versions]
face_library = "{version}"
[line_auth]
url = "file://{page}"
"#,
                dir = dir.display(),
                version = version.display(),
                page = page.display(),
            ),
            Path::new("test.toml"),
        )
        .unwrap();
        let mut probes = Probes::new(&settings);
        let face = |report: &Report| report.versions.as_ref().unwrap()["face_library"].clone();
        let line = |report: &Report| report.line_auth.as_ref().unwrap().state;
        let first = probes.observe(&settings, 0);
        assert_eq!(face(&first), "5.0.3");
        assert_eq!(
            line(&first),
            fleet_protocol::report::LineAuthState::Connected
        );
        assert_eq!(face(&probes.observe(&settings, 0)), "5.0.3");

        write_aged(&version, "Version=5.1.0\n", Duration::from_secs(3600));
        write_aged(&page, "<p>希望する</p><p>希望しない</p>", Duration::ZERO);
        let next = probes.observe(&settings, 0);
        assert_eq!(face(&next), "5.1.0");
        assert_eq!(
            line(&next),
            fleet_protocol::report::LineAuthState::Disconnected
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
