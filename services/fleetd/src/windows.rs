//! `fleetd window add`: a maintenance window from command-line words, each checked
//! with an error that names its flag.

use anyhow::Context;
use fleet_protocol::findings::{MaintenanceWindow, WindowArea, WindowKind, WindowScope};

fn word<T: serde::de::DeserializeOwned>(
    flag: &str,
    text: &str,
    allowed: &str,
) -> anyhow::Result<T> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .with_context(|| format!("{flag}: {text:?} is not one of {allowed}"))
}

/// The window the flags describe, checked.
pub fn from_args(
    id: &str,
    scope: &str,
    area: &str,
    kind: &str,
    starts_at: &str,
    ends_at: &str,
    title: &str,
) -> anyhow::Result<MaintenanceWindow> {
    let time = |flag: &str, text: &str| {
        fleet_protocol::rfc3339::parse(text)
            .with_context(|| format!("{flag}: {text:?} is not an RFC 3339 time"))
    };
    let window = MaintenanceWindow {
        id: id.to_owned(),
        scope: WindowScope::try_from(scope.to_owned())
            .map_err(|e| anyhow::anyhow!("--scope: {scope:?}: {e}"))?,
        area: word::<WindowArea>("--area", area, "east, west, all")?,
        kind: word::<WindowKind>(
            "--kind",
            kind,
            "outage, intermittent, maintenance, distribution",
        )?,
        starts_at: time("--starts-at", starts_at)?,
        ends_at: time("--ends-at", ends_at)?,
        title: title.to_owned(),
    };
    window.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(window)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bad_flag_is_named() {
        let ok = [
            "w1",
            "all",
            "east",
            "outage",
            "2025-02-01T23:00:00+09:00",
            "2025-02-02T06:00:00+09:00",
            "t",
        ];
        assert!(from_args(ok[0], ok[1], ok[2], ok[3], ok[4], ok[5], ok[6]).is_ok());
        let err = |i: usize, bad: &str| {
            let mut a = ok;
            a[i] = bad;
            format!(
                "{:#}",
                from_args(a[0], a[1], a[2], a[3], a[4], a[5], a[6]).unwrap_err()
            )
        };
        assert!(err(2, "north").contains("--area"));
        assert!(err(3, "party").contains("--kind"));
        assert!(err(4, "yesterday").contains("--starts-at"));
        assert!(err(5, "2025-02-01T22:00:00+09:00").contains("ends_at"));
        assert!(err(6, "").contains("title"));
        assert!(err(0, "").contains("id"));
    }
}
