//! When the terminal last booted (`host.booted_at`).
//!
//! It decides whether a downloaded update still waits for a restart (see
//! [`super::reboot`]). On Linux it is `btime` in `/proc/stat`. On Windows it is now
//! less the milliseconds since boot that `GetTickCount64` counts
//! ([`boot_time_from_uptime`], pure and tested everywhere; the call itself is in
//! `windows` below). A file named by `host.booted_at_file` replaces the system's
//! answer, for fixtures and for setups where another tool writes it down; it holds one
//! time, as RFC 3339, as a local time in the configured offset, or as Unix seconds.

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};

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

/// The boot time from the wall clock `now` and the time since boot in milliseconds,
/// rounded to the nearest second (report times are whole seconds). `None` when the
/// uptime does not fit before `now`.
///
/// Two calls a moment apart can differ by a second (the clock and the tick counter do
/// not advance in step, and the clock may be corrected by NTP): a caller that looks
/// repeatedly computes it once per process, as the Windows probe does.
pub fn boot_time_from_uptime(now: DateTime<Utc>, uptime_ms: u64) -> Option<DateTime<Utc>> {
    let uptime = TimeDelta::try_milliseconds(i64::try_from(uptime_ms).ok()?)?;
    let booted = now.checked_sub_signed(uptime)?;
    let millis = booted.timestamp_millis();
    // Round half up to the second; `div_euclid` keeps times before 1970 right too.
    let seconds = (millis + 500).div_euclid(1000);
    DateTime::from_timestamp(seconds, 0)
}

#[cfg(windows)]
fn system_boot_time(offset: FixedOffset) -> Option<DateTime<FixedOffset>> {
    use std::sync::OnceLock;

    // The boot time cannot change while this process runs, and recomputing it would
    // jitter by a second now and then, which the daemon would take for a state change
    // and report. So it is computed once.
    static BOOTED_AT: OnceLock<Option<DateTime<Utc>>> = OnceLock::new();
    let at = *BOOTED_AT.get_or_init(|| {
        let at = boot_time_from_uptime(Utc::now(), windows::milliseconds_since_boot());
        if at.is_none() {
            tracing::warn!("boot time not observed: GetTickCount64 is past the clock");
        }
        at
    });
    at.map(|t| t.with_timezone(&offset))
}

#[cfg(not(any(target_os = "linux", windows)))]
fn system_boot_time(_offset: FixedOffset) -> Option<DateTime<FixedOffset>> {
    tracing::info!("boot time not observed: not implemented on this OS (set host.booted_at_file)");
    None
}

/// The one system call of this probe on Windows. Compiled only there; see
/// `deploy/windows/README.md` for how far it has been checked.
#[cfg(windows)]
mod windows {
    /// Milliseconds since the system started, from `GetTickCount64` (kernel32).
    ///
    /// The counter runs through sleep and hibernation, and Windows' Fast Startup turns
    /// "shut down" into a hibernation: so this is the last full boot (a restart), the
    /// same "up time" Task Manager shows. That is the boot that installs updates.
    pub fn milliseconds_since_boot() -> u64 {
        // SAFETY: GetTickCount64 takes no arguments, touches no memory of ours and
        // cannot fail (available since Windows Vista).
        unsafe { windows_sys::Win32::System::SystemInformation::GetTickCount64() }
    }
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
    fn boot_time_is_now_less_the_uptime_to_the_second() {
        let now = Utc.with_ymd_and_hms(2026, 1, 20, 0, 0, 0).unwrap();
        let at = |ms| boot_time_from_uptime(now, ms).map(|t| t.to_rfc3339());
        // 15 h 58 m 50 s before midnight.
        assert_eq!(at(57_530_000).as_deref(), Some("2026-01-19T08:01:10+00:00"));
        // The tick counter's granularity (about 16 ms) does not move the second.
        assert_eq!(at(57_530_016), at(57_530_000));
        assert_eq!(at(57_529_990), at(57_530_000));
        assert_eq!(at(0).as_deref(), Some("2026-01-20T00:00:00+00:00"));
        // 49.7 days, where the 32-bit GetTickCount would have wrapped, is no edge here.
        assert_eq!(
            at(u64::from(u32::MAX) + 1).as_deref(),
            Some("2025-12-01T06:57:13+00:00")
        );
        assert_eq!(
            at(u64::MAX),
            None,
            "an uptime past any clock is not observed"
        );
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
