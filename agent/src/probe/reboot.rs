//! Whether the terminal waits for a restart (`reboot.pending`).
//!
//! The distribution tool downloads an update and a restart installs it (seed 004).
//! So a download *after* the last boot means a restart is still due — unless the
//! running version already is the downloaded one or newer. Downloads before the last
//! boot have been taken in by it. Without a boot time or a timed download nothing can
//! be said, and the section stays absent.
//!
//! On Windows the system also says when it needs a restart, in three registry places
//! ([`Marker`]); [`from_markers`] turns what was found into a verdict and [`combine`]
//! merges it with the download rule. Reading the registry is the thin `windows`
//! module at the bottom, compiled only there.

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

/// A place in the registry (`HKEY_LOCAL_MACHINE`) where Windows notes that it needs a
/// restart. The usual three that pending-reboot checks read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Marker {
    /// The key `SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto
    /// Update\RebootRequired` exists: Windows Update installed something.
    WindowsUpdate,
    /// The key `SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based
    /// Servicing\RebootPending` exists: a component (feature, servicing stack) change.
    ComponentServicing,
    /// `SYSTEM\CurrentControlSet\Control\Session Manager` has a non-empty
    /// `PendingFileRenameOperations` (or `…2`): files to replace at the next boot.
    /// Installers and security software set it too, and some leave it behind, so it
    /// is the weakest sign; it is reported with its own reason.
    PendingFileRename,
}

impl Marker {
    /// Most telling first: the reason reported is the first marker present.
    pub const ALL: [Marker; 3] = [
        Marker::WindowsUpdate,
        Marker::ComponentServicing,
        Marker::PendingFileRename,
    ];

    /// The `reboot.reason` it gives.
    pub fn reason(self) -> &'static str {
        match self {
            Marker::WindowsUpdate => "windows_update",
            Marker::ComponentServicing => "component_servicing",
            Marker::PendingFileRename => "pending_file_rename",
        }
    }
}

/// What reading the markers found: `Ok(true)` present, `Ok(false)` absent, `Err` why
/// it could not be told (access denied, …).
pub type MarkerReadings = Vec<(Marker, Result<bool, String>)>;

/// The verdict of the registry alone. Any marker present ⇒ pending, the reason being
/// the most telling one present. All read and absent ⇒ not pending. Otherwise (one
/// could not be read, nothing present) nothing can be said.
pub fn from_markers(readings: &[(Marker, Result<bool, String>)]) -> Option<Reboot> {
    let present = Marker::ALL.into_iter().find(|marker| {
        readings
            .iter()
            .any(|(m, found)| m == marker && matches!(found, Ok(true)))
    });
    if let Some(marker) = present {
        return Some(Reboot {
            pending: Some(true),
            reason: Some(marker.reason().to_owned()),
        });
    }
    let all_read = Marker::ALL.into_iter().all(|marker| {
        readings
            .iter()
            .any(|(m, found)| *m == marker && found.is_ok())
    });
    all_read.then_some(Reboot {
        pending: Some(false),
        reason: None,
    })
}

/// The download rule's verdict ([`derive`]) and the registry's ([`from_markers`]) as
/// one: pending if either says so (a downloaded update first, it is what campaigns
/// wait for); not pending if one says so and the other has nothing to say or agrees.
pub fn combine(downloads: Option<Reboot>, markers: Option<Reboot>) -> Option<Reboot> {
    let pending = |r: &Option<Reboot>| r.as_ref().is_some_and(|r| r.pending == Some(true));
    if pending(&downloads) {
        downloads
    } else if pending(&markers) {
        markers
    } else {
        downloads.or(markers)
    }
}

/// Whether a `REG_MULTI_SZ` value (UTF-16 strings, each ended by a NUL, the list by
/// one more) names anything. `PendingFileRenameOperations` is often left as an empty
/// list, which means nothing is pending. Tolerates a missing final NUL, as the
/// registry does not enforce it.
pub fn multi_sz_has_entries(data: &[u16]) -> bool {
    data.split(|unit| *unit == 0).any(|entry| !entry.is_empty())
}

/// Windows' pending-reboot markers, read from the registry ([`from_markers`]).
#[cfg(windows)]
pub fn windows_markers() -> Option<Reboot> {
    let readings: MarkerReadings = Marker::ALL
        .into_iter()
        .map(|marker| (marker, windows::read(marker)))
        .collect();
    for (marker, found) in &readings {
        match found {
            Ok(present) => tracing::debug!(?marker, present, "pending-reboot marker"),
            Err(reason) => tracing::warn!(?marker, %reason, "pending-reboot marker not read"),
        }
    }
    from_markers(&readings)
}

/// Elsewhere there are no such markers.
#[cfg(not(windows))]
pub fn windows_markers() -> Option<Reboot> {
    None
}

/// The registry reads behind [`windows_markers`]. Compiled only on Windows; see
/// `deploy/windows/README.md` for how far it has been checked.
#[cfg(windows)]
mod windows {
    use windows_sys::Win32::Foundation::{ERROR_FILE_NOT_FOUND, ERROR_MORE_DATA, ERROR_SUCCESS};
    use windows_sys::Win32::System::Registry::{
        HKEY, HKEY_LOCAL_MACHINE, KEY_READ, KEY_WOW64_64KEY, RRF_RT_REG_MULTI_SZ,
        RRF_SUBKEY_WOW6464KEY, RegCloseKey, RegGetValueW, RegOpenKeyExW,
    };

    use super::Marker;

    const WINDOWS_UPDATE: &str =
        r"SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired";
    const COMPONENT_SERVICING: &str =
        r"SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending";
    const SESSION_MANAGER: &str = r"SYSTEM\CurrentControlSet\Control\Session Manager";
    const FILE_RENAME_VALUES: [&str; 2] = [
        "PendingFileRenameOperations",
        "PendingFileRenameOperations2",
    ];

    pub fn read(marker: Marker) -> Result<bool, String> {
        match marker {
            Marker::WindowsUpdate => key_exists(WINDOWS_UPDATE),
            Marker::ComponentServicing => key_exists(COMPONENT_SERVICING),
            Marker::PendingFileRename => {
                for value in FILE_RENAME_VALUES {
                    let data = multi_sz(SESSION_MANAGER, value)?;
                    if data.is_some_and(|data| super::multi_sz_has_entries(&data)) {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
        }
    }

    /// NUL-terminated UTF-16, as the `W` functions want.
    fn wide(text: &str) -> Vec<u16> {
        text.encode_utf16().chain(std::iter::once(0)).collect()
    }

    /// Whether `HKLM\<path>` exists, in the 64-bit view (a 32-bit build of the
    /// agent would otherwise be redirected to `WOW6432Node`).
    fn key_exists(path: &str) -> Result<bool, String> {
        let path = wide(path);
        let mut key: HKEY = std::ptr::null_mut();
        // SAFETY: `path` is NUL-terminated and outlives the call; `key` is a valid
        // place for the handle, written only on success.
        let status = unsafe {
            RegOpenKeyExW(
                HKEY_LOCAL_MACHINE,
                path.as_ptr(),
                0,
                KEY_READ | KEY_WOW64_64KEY,
                &mut key,
            )
        };
        match status {
            ERROR_SUCCESS => {
                // SAFETY: `key` was opened above and is closed exactly once.
                unsafe { RegCloseKey(key) };
                Ok(true)
            }
            ERROR_FILE_NOT_FOUND => Ok(false),
            other => Err(format!("RegOpenKeyExW: error {other}")),
        }
    }

    /// The `REG_MULTI_SZ` value `name` of `HKLM\<path>` as UTF-16 units, `None` if
    /// the key or the value does not exist.
    fn multi_sz(path: &str, name: &str) -> Result<Option<Vec<u16>>, String> {
        let path = wide(path);
        let name = wide(name);
        // Ask for the size, read, and ask again if the value grew in between.
        for _ in 0..4 {
            let mut bytes: u32 = 0;
            // SAFETY: strings NUL-terminated and alive; a null data pointer asks only
            // for the size, written to `bytes`.
            let status = unsafe {
                RegGetValueW(
                    HKEY_LOCAL_MACHINE,
                    path.as_ptr(),
                    name.as_ptr(),
                    RRF_RT_REG_MULTI_SZ | RRF_SUBKEY_WOW6464KEY,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    &mut bytes,
                )
            };
            match status {
                ERROR_SUCCESS => {}
                ERROR_FILE_NOT_FOUND => return Ok(None),
                other => return Err(format!("RegGetValueW({}): error {other}", name_of(&name))),
            }
            // Whole UTF-16 units, rounded up; at least one so the pointer is real.
            let mut data = vec![0u16; (bytes as usize).div_ceil(2).max(1)];
            let mut len = u32::try_from(data.len() * 2).map_err(|_| "value too large")?;
            // SAFETY: `data` has room for `len` bytes and outlives the call, which
            // writes at most `len` bytes and the count it wrote to `len`.
            let status = unsafe {
                RegGetValueW(
                    HKEY_LOCAL_MACHINE,
                    path.as_ptr(),
                    name.as_ptr(),
                    RRF_RT_REG_MULTI_SZ | RRF_SUBKEY_WOW6464KEY,
                    std::ptr::null_mut(),
                    data.as_mut_ptr().cast(),
                    &mut len,
                )
            };
            match status {
                ERROR_SUCCESS => {
                    data.truncate((len as usize) / 2);
                    return Ok(Some(data));
                }
                ERROR_MORE_DATA => continue,
                ERROR_FILE_NOT_FOUND => return Ok(None),
                other => return Err(format!("RegGetValueW({}): error {other}", name_of(&name))),
            }
        }
        Err(format!("{} kept growing while being read", name_of(&name)))
    }

    fn name_of(wide: &[u16]) -> String {
        String::from_utf16_lossy(wide.strip_suffix(&[0]).unwrap_or(wide))
    }
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

    fn reading(found: [Result<bool, &str>; 3]) -> MarkerReadings {
        Marker::ALL
            .into_iter()
            .zip(found)
            .map(|(m, f)| (m, f.map_err(str::to_owned)))
            .collect()
    }

    fn verdict(pending: bool, reason: Option<&str>) -> Option<Reboot> {
        Some(Reboot {
            pending: Some(pending),
            reason: reason.map(str::to_owned),
        })
    }

    #[test]
    fn any_registry_marker_means_pending_with_the_most_telling_reason() {
        let cases = [
            ([Ok(true), Ok(true), Ok(true)], "windows_update"),
            ([Ok(false), Ok(true), Ok(true)], "component_servicing"),
            ([Ok(false), Ok(false), Ok(true)], "pending_file_rename"),
            // One marker that could not be read does not hide another that is set.
            ([Err("denied"), Ok(false), Ok(true)], "pending_file_rename"),
        ];
        for (found, reason) in cases {
            assert_eq!(
                from_markers(&reading(found)),
                verdict(true, Some(reason)),
                "{found:?}"
            );
        }
    }

    #[test]
    fn no_marker_is_not_pending_only_if_all_were_read() {
        let none = [Ok(false), Ok(false), Ok(false)];
        assert_eq!(from_markers(&reading(none)), verdict(false, None));
        let unreadable = [Ok(false), Err("access denied"), Ok(false)];
        assert_eq!(from_markers(&reading(unreadable)), None);
        assert_eq!(from_markers(&[]), None, "not read at all");
    }

    #[test]
    fn downloads_and_markers_combine() {
        let download = verdict(true, Some(UPDATE_DOWNLOADED));
        let windows = verdict(true, Some("windows_update"));
        let clear = verdict(false, None);
        // A pending download wins the reason; campaigns wait for it.
        assert_eq!(combine(download.clone(), windows.clone()), download);
        assert_eq!(combine(download.clone(), clear.clone()), download);
        // A restart already taken in by the download rule can still be owed to Windows.
        assert_eq!(combine(clear.clone(), windows.clone()), windows);
        assert_eq!(combine(None, windows.clone()), windows);
        assert_eq!(combine(clear.clone(), None), clear);
        assert_eq!(combine(None, clear.clone()), clear);
        assert_eq!(combine(None, None), None);
    }

    #[test]
    fn pending_file_renames_must_name_something() {
        let wide = |s: &str| s.encode_utf16().collect::<Vec<u16>>();
        // "\??\C:\tmp\a.dll\0\0" — a rename to nothing (delete at boot) and the end.
        let mut one = wide(r"\??\C:\tmp\a.dll");
        one.extend([0, 0]);
        assert!(multi_sz_has_entries(&one));
        assert!(!multi_sz_has_entries(&[]));
        assert!(!multi_sz_has_entries(&[0]));
        assert!(!multi_sz_has_entries(&[0, 0]));
        assert!(multi_sz_has_entries(&wide("x")), "no final NUL");
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
