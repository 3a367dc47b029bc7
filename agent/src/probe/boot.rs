//! When the terminal last booted (`host.booted_at`).
//!
//! It decides whether a downloaded update still waits for a restart (see
//! [`super::reboot`]). On Linux it is `btime` in `/proc/stat`. On Windows it would be
//! the last boot-up time from WMI or the event log: not written yet, so it is not
//! observed there. A file named by `host.booted_at_file` replaces the system's answer,
//! for fixtures and for setups where another tool writes it down; it holds one time,
//! as RFC 3339, as a local time in the configured offset, or as Unix seconds.

use chrono::{DateTime, FixedOffset};

use super::text::{decode, parse_timestamp, read_small};
use crate::config::HostSettings;

/// The last boot, or `None` (logged) when it cannot be told.
pub fn booted_at(settings: &HostSettings, offset: FixedOffset) -> Option<DateTime<FixedOffset>> {
    match &settings.booted_at_file {
        Some(path) => {
            let result = read_small(path).and_then(|bytes| {
                parse_boot_override(&decode(&bytes), offset)
                    .ok_or_else(|| format!("no time found in {}", path.display()))
            });
            match result {
                Ok(at) => Some(at),
                Err(reason) => {
                    tracing::warn!(%reason, "boot time not observed");
                    None
                }
            }
        }
        None => system_boot_time(offset),
    }
}

/// The first non-comment line of an override file, as a time or Unix seconds.
pub fn parse_boot_override(text: &str, offset: FixedOffset) -> Option<DateTime<FixedOffset>> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with(';'))?;
    if let Ok(seconds) = line.parse::<i64>() {
        return DateTime::from_timestamp(seconds, 0).map(|t| t.with_timezone(&offset));
    }
    parse_timestamp(line, offset)
}

/// `btime` (boot time, Unix seconds) from the text of `/proc/stat`.
pub fn parse_proc_stat_btime(text: &str) -> Option<i64> {
    text.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|value| value.trim().parse().ok())
}

#[cfg(target_os = "linux")]
fn system_boot_time(offset: FixedOffset) -> Option<DateTime<FixedOffset>> {
    let text = match std::fs::read_to_string("/proc/stat") {
        Ok(text) => text,
        Err(err) => {
            tracing::warn!(reason = %err, "boot time not observed: cannot read /proc/stat");
            return None;
        }
    };
    let at = parse_proc_stat_btime(&text).and_then(|seconds| DateTime::from_timestamp(seconds, 0));
    if at.is_none() {
        tracing::warn!("boot time not observed: no btime line in /proc/stat");
    }
    at.map(|t| t.with_timezone(&offset))
}

#[cfg(not(target_os = "linux"))]
fn system_boot_time(_offset: FixedOffset) -> Option<DateTime<FixedOffset>> {
    // TODO(windows): LastBootUpTime from Win32_OperatingSystem, or GetTickCount64.
    tracing::info!(
        "boot time not observed: not implemented on this OS yet (set host.booted_at_file)"
    );
    None
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn jst() -> FixedOffset {
        FixedOffset::east_opt(9 * 3600).unwrap()
    }

    #[test]
    fn btime_from_proc_stat() {
        let text = "cpu  1 2 3\nintr 5\nctxt 77\nbtime 1768777270\nprocesses 9\n";
        assert_eq!(parse_proc_stat_btime(text), Some(1_768_777_270));
        assert_eq!(parse_proc_stat_btime("cpu 1\n"), None);
        assert_eq!(parse_proc_stat_btime("btime soon\n"), None);
    }

    #[test]
    fn override_file_shapes() {
        let want = jst().with_ymd_and_hms(2026, 1, 19, 8, 1, 10).unwrap();
        for text in [
            "2026-01-19T08:01:10+09:00\n",
            "# written by setup\r\n2026/01/19 08:01:10\r\n",
            "1768777270",
        ] {
            assert_eq!(parse_boot_override(text, jst()), Some(want), "{text:?}");
        }
        assert_eq!(parse_boot_override("soon\n", jst()), None);
        assert_eq!(parse_boot_override("", jst()), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_machine_has_booted_in_the_past() {
        let at = booted_at(&HostSettings::default(), jst()).expect("/proc/stat has btime");
        assert!(at < chrono::Utc::now());
    }

    #[test]
    fn unreadable_override_is_not_observed() {
        let settings = HostSettings {
            booted_at_file: Some("/nonexistent/booted_at".into()),
            ..HostSettings::default()
        };
        assert_eq!(booted_at(&settings, jst()), None);
    }
}
