//! What the API and the pages say about a terminal, computed once from the store's
//! view so the JSON and the HTML can never disagree.

use chrono::{DateTime, FixedOffset};
use fleet_protocol::report::component::FACE_LIBRARY;
use fleet_protocol::{Campaign, CampaignState, Cause};
use fleet_store::ClinicTerminal;

/// One campaign line of a terminal.
#[derive(Clone, Debug)]
pub struct CampaignLine {
    pub id: String,
    pub title_ja: String,
    pub title_en: String,
    pub state: CampaignState,
    pub cause: Cause,
}

/// A terminal as shown.
#[derive(Clone, Debug)]
pub struct TerminalRow {
    pub terminal_id: String,
    pub hostname: Option<String>,
    pub campaigns: Vec<CampaignLine>,
    pub face_running: Option<String>,
    pub face_downloaded: Option<String>,
    pub reboot_pending: bool,
    pub line_auth: Option<&'static str>,
    pub last_seen_at: DateTime<FixedOffset>,
    pub last_seq: u64,
}

impl TerminalRow {
    pub fn from_store(t: &ClinicTerminal, campaigns: &[Campaign]) -> Self {
        let s = &t.state;
        let lines = t
            .campaigns
            .iter()
            .map(|(id, (state, cause))| {
                let known = campaigns.iter().find(|c| &c.id == id);
                CampaignLine {
                    id: id.clone(),
                    title_ja: known.map_or_else(|| id.clone(), |c| c.title_ja.clone()),
                    title_en: known.map_or_else(|| id.clone(), |c| c.title_en.clone()),
                    state: *state,
                    cause: *cause,
                }
            })
            .collect();
        Self {
            terminal_id: s.terminal_id.to_string(),
            hostname: s.hostname.as_ref().map(|o| o.value.clone()),
            campaigns: lines,
            face_running: s.running(FACE_LIBRARY).map(str::to_owned),
            face_downloaded: s.downloaded(FACE_LIBRARY).map(|d| d.version.clone()),
            reboot_pending: s.reboot_pending_for(FACE_LIBRARY),
            line_auth: s.line_auth.as_ref().map(|o| o.value.as_str()),
            last_seen_at: s.last_observed_at,
            last_seq: s.last_seq,
        }
    }
}
