//! The `host` section: name, OS, last boot and the auto-reboot setting.
//!
//! Name and OS come from the settings when given there (a vendor may prefer the
//! name its support desk uses), else from the system: on Linux the kernel's host name
//! and `PRETTY_NAME` of `/etc/os-release`; on Windows the `COMPUTERNAME` variable, and
//! the OS product name is not read yet (it lives in the registry). `auto_reboot` is
//! known only from the settings: nothing on the terminal says it reliably.

use chrono::{DateTime, FixedOffset};
use fleet_protocol::report::Host;

use crate::config::HostSettings;

pub fn probe(settings: &HostSettings, booted_at: Option<DateTime<FixedOffset>>) -> Option<Host> {
    let host = Host {
        hostname: settings.hostname.clone().or_else(system_hostname),
        os: settings.os.clone().or_else(system_os),
        booted_at,
        auto_reboot: settings.auto_reboot,
    };
    let observed = host.hostname.is_some()
        || host.os.is_some()
        || host.booted_at.is_some()
        || host.auto_reboot.is_some();
    observed.then_some(host)
}

/// `PRETTY_NAME` from the text of an os-release file.
pub fn parse_os_release(text: &str) -> Option<String> {
    text.lines()
        .find_map(|line| line.trim().strip_prefix("PRETTY_NAME="))
        .map(|value| value.trim().trim_matches('"').trim_matches('\'').to_owned())
        .filter(|name| !name.is_empty())
}

fn non_empty(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

#[cfg(target_os = "linux")]
fn system_hostname() -> Option<String> {
    match std::fs::read_to_string("/proc/sys/kernel/hostname") {
        Ok(text) => non_empty(&text),
        Err(err) => {
            tracing::warn!(reason = %err, "host name not observed");
            None
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn system_hostname() -> Option<String> {
    std::env::var("COMPUTERNAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .ok()
        .and_then(|name| non_empty(&name))
}

#[cfg(target_os = "linux")]
fn system_os() -> Option<String> {
    ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| parse_os_release(&text))
}

#[cfg(not(target_os = "linux"))]
fn system_os() -> Option<String> {
    // TODO(windows): ProductName and DisplayVersion under
    // HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion.
    tracing::info!("OS name not observed: not implemented on this OS yet (set host.os)");
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_pretty_name() {
        let text = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n";
        assert_eq!(
            parse_os_release(text).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(parse_os_release("ID=x\n"), None);
        assert_eq!(parse_os_release("PRETTY_NAME=\"\"\n"), None);
    }

    #[test]
    fn settings_win_over_the_system() {
        let settings = HostSettings {
            hostname: Some("ONS-PC01".into()),
            os: Some("Windows 11 IoT Enterprise LTSC 2024".into()),
            auto_reboot: Some(false),
            booted_at_file: None,
            windows_reboot_markers: false,
        };
        let host = probe(&settings, None).unwrap();
        assert_eq!(host.hostname.as_deref(), Some("ONS-PC01"));
        assert_eq!(
            host.os.as_deref(),
            Some("Windows 11 IoT Enterprise LTSC 2024")
        );
        assert_eq!(host.auto_reboot, Some(false));
        assert_eq!(host.booted_at, None);
    }
}
