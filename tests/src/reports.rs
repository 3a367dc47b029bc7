//! Reports for terminals in each campaign state, built like an agent would send them.

use fleet_protocol::CampaignState;
use serde_json::{Value, json};

/// A report of `terminal_id` at `clinic_code` that puts it in `state` for the
/// face-library 5.1.0 campaign.
pub fn in_state(terminal_id: &str, seq: u64, clinic_code: &str, state: CampaignState) -> Value {
    let mut r = json!({
        "schema": "fleet.report.v1",
        "terminal_id": terminal_id,
        "seq": seq,
        "observed_at": "2026-01-22T10:00:00+09:00",
        "clinic_code": clinic_code,
        "agent_version": "0.1.0",
        "host": { "hostname": format!("ONS-{}", &terminal_id[..4]), "booted_at": "2026-01-21T08:00:00+09:00", "auto_reboot": false },
        "line_auth": { "state": "connected", "checked_at": "2026-01-22T09:59:58+09:00" }
    });
    match state {
        CampaignState::Updated => {
            r["versions"] = json!({ "face_library": "5.1.0" });
            r["distribution"] = json!({ "enabled": true, "downloaded": { "face_library": { "version": "5.1.0", "at": "2026-01-20T02:00:00+09:00" } } });
            r["reboot"] = json!({ "pending": false });
        }
        CampaignState::RebootRequired => {
            r["versions"] = json!({ "face_library": "5.0.3" });
            r["distribution"] = json!({ "enabled": true, "downloaded": { "face_library": { "version": "5.1.0", "at": "2026-01-22T02:00:00+09:00" } } });
            r["reboot"] = json!({ "pending": true, "reason": "update_downloaded" });
        }
        CampaignState::NotDownloaded => {
            r["versions"] = json!({ "face_library": "5.0.3" });
            r["distribution"] = json!({ "enabled": false });
        }
        CampaignState::Unknown => {}
    }
    r
}

/// A fixed UUID per (clinic, index), so tests read well.
pub fn terminal_id(n: u32) -> String {
    format!("{n:08x}-0000-4000-8000-000000000000")
}
