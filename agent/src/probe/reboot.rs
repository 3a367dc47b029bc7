//! Whether the terminal waits for a restart (`reboot.pending`).
//!
//! The distribution tool downloads an update and a restart installs it (seed 004).
//! So a download *after* the last boot means a restart is still due — unless the
//! running version already is the downloaded one or newer. Downloads before the last
//! boot have been taken in by it. Without a boot time or a timed download nothing can
//! be said, and the section stays absent.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset};
use fleet_protocol::Version;
use fleet_protocol::report::{Download, Reboot};

/// The reason the contract's example uses for a pending restart after a download.
pub const UPDATE_DOWNLOADED: &str = "update_downloaded";

pub fn derive(
    booted_at: Option<DateTime<FixedOffset>>,
    running: Option<&BTreeMap<String, String>>,
    downloaded: Option<&BTreeMap<String, Download>>,
) -> Option<Reboot> {
    let booted_at = booted_at?;
    let mut any_timed = false;
    let mut pending = false;
    for (component, download) in downloaded? {
        let Some(at) = download.at else { continue };
        any_timed = true;
        let already_running = running
            .and_then(|versions| versions.get(component))
            .and_then(|v| Version::parse(v).ok())
            .zip(Version::parse(&download.version).ok())
            .is_some_and(|(running, downloaded)| running >= downloaded);
        if at > booted_at && !already_running {
            pending = true;
        }
    }
    if pending {
        Some(Reboot {
            pending: Some(true),
            reason: Some(UPDATE_DOWNLOADED.to_owned()),
        })
    } else if any_timed {
        Some(Reboot {
            pending: Some(false),
            reason: None,
        })
    } else {
        None
    }
}

/// Windows' own pending-reboot markers (`Component Based Servicing\\RebootPending`,
/// `WindowsUpdate\\Auto Update\\RebootRequired`, `PendingFileRenameOperations`).
/// Reading the registry is not written yet: on Windows this logs once per call at
/// debug level and says nothing; elsewhere there are no such markers.
#[cfg(windows)]
pub fn windows_markers() -> Option<Reboot> {
    tracing::debug!("Windows pending-reboot registry markers are not read yet");
    None
}

#[cfg(not(windows))]
pub fn windows_markers() -> Option<Reboot> {
    None
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(d: u32, h: u32) -> DateTime<FixedOffset> {
        FixedOffset::east_opt(9 * 3600)
            .unwrap()
            .with_ymd_and_hms(2026, 1, d, h, 0, 0)
            .unwrap()
    }

    fn downloads(version: &str, when: Option<DateTime<FixedOffset>>) -> BTreeMap<String, Download> {
        BTreeMap::from([(
            "face_library".to_owned(),
            Download {
                version: version.to_owned(),
                at: when,
            },
        )])
    }

    fn running(version: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("face_library".to_owned(), version.to_owned())])
    }

    #[test]
    fn download_after_boot_is_pending() {
        let r = derive(
            Some(at(19, 8)),
            Some(&running("5.0.3")),
            Some(&downloads("5.1.0", Some(at(20, 2)))),
        )
        .unwrap();
        assert_eq!(r.pending, Some(true));
        assert_eq!(r.reason.as_deref(), Some("update_downloaded"));
    }

    #[test]
    fn restart_after_download_clears_it() {
        let r = derive(
            Some(at(20, 6)),
            Some(&running("5.0.3")),
            Some(&downloads("5.1.0", Some(at(20, 2)))),
        )
        .unwrap();
        assert_eq!(
            r,
            Reboot {
                pending: Some(false),
                reason: None
            }
        );
    }

    #[test]
    fn already_running_the_download_is_not_pending() {
        let r = derive(
            Some(at(19, 8)),
            Some(&running("5.1")),
            Some(&downloads("5.1.0", Some(at(20, 2)))),
        )
        .unwrap();
        assert_eq!(r.pending, Some(false));
    }

    #[test]
    fn unknowns_say_nothing() {
        let d = downloads("5.1.0", Some(at(20, 2)));
        assert_eq!(derive(None, None, Some(&d)), None);
        assert_eq!(derive(Some(at(19, 8)), None, None), None);
        assert_eq!(
            derive(Some(at(19, 8)), None, Some(&downloads("5.1.0", None))),
            None
        );
    }
}
