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
pub mod certificate;
pub mod distribution;
pub mod host;
pub mod line_auth;
pub mod reader_log;
pub mod reboot;
pub mod text;
pub mod version_file;

use chrono::{DateTime, FixedOffset, SubsecRound, Utc};
use fleet_protocol::Report;
use fleet_protocol::report::SCHEMA_V1;

use crate::config::Settings;

/// Takes one snapshot of the terminal as a report carrying `seq`.
pub fn snapshot(settings: &Settings, seq: u64) -> Report {
    let offset = settings.utc_offset;
    let observed_at = now(offset);
    let versions = version_file::probe(&settings.versions);
    let distribution = settings
        .distribution
        .as_ref()
        .and_then(|d| distribution::probe(d, offset));
    let booted_at = boot::booted_at(&settings.host, offset);
    let reboot = reboot::derive(
        booted_at,
        versions.as_ref(),
        distribution.as_ref().and_then(|d| d.downloaded.as_ref()),
    )
    .or_else(|| {
        settings
            .host
            .windows_reboot_markers
            .then(reboot::windows_markers)
            .flatten()
    });
    let line_auth = settings
        .line_auth
        .as_ref()
        .map(|l| line_auth::check(l, offset));
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
        certificate: settings
            .certificate
            .as_ref()
            .and_then(|c| certificate::probe(c, offset)),
    }
}

/// The current time in `offset`, to the second: finer is noise in a report.
pub fn now(offset: FixedOffset) -> DateTime<FixedOffset> {
    Utc::now().with_timezone(&offset).trunc_subsecs(0)
}

/// The daemon's probes: [`snapshot`] plus what needs memory between two looks (the
/// reader logs, tailed).
#[derive(Debug, Default)]
pub struct Probes {
    reader_log: Option<reader_log::ReaderLogTail>,
}

impl Probes {
    pub fn new(settings: &Settings) -> Self {
        Self {
            reader_log: settings
                .reader_log
                .as_ref()
                .map(|r| reader_log::ReaderLogTail::new(r, &settings.state_dir)),
        }
    }

    /// A snapshot with the reader errors read since the last [`Self::commit`].
    pub fn observe(&mut self, settings: &Settings, seq: u64) -> Report {
        let mut report = snapshot(settings, seq);
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
