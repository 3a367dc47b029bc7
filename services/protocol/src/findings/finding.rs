//! The finding value (contract §6): one condition that someone must act on, with who
//! acts (severity), since when, and what to tell the clinic.
//!
//! Why instructions live here and not in the web: the support desk reads them to a
//! clinic over the phone, Alertmanager carries them as annotations, and both must
//! say the same thing. Japanese first, plain enough to read aloud; English beside it.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::campaign::CampaignState;
use crate::clinic::{Area, ClinicCode, Prefecture};

/// What kind of condition a finding is; `as_str` is the contract's spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    Campaign,
    LineAuthDown,
    Silent,
    ReaderFault,
    ReaderOnUsbHub,
    NfcReaderUnverified,
    CertificateExpiring,
    CertificateExpired,
    AreaIncident,
}

impl FindingKind {
    pub const ALL: [FindingKind; 9] = [
        Self::Campaign,
        Self::LineAuthDown,
        Self::Silent,
        Self::ReaderFault,
        Self::ReaderOnUsbHub,
        Self::NfcReaderUnverified,
        Self::CertificateExpiring,
        Self::CertificateExpired,
        Self::AreaIncident,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Campaign => "campaign",
            Self::LineAuthDown => "line_auth_down",
            Self::Silent => "silent",
            Self::ReaderFault => "reader_fault",
            Self::ReaderOnUsbHub => "reader_on_usb_hub",
            Self::NfcReaderUnverified => "nfc_reader_unverified",
            Self::CertificateExpiring => "certificate_expiring",
            Self::CertificateExpired => "certificate_expired",
            Self::AreaIncident => "area_incident",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// Whether an announced outage can explain it (contract §6: `line_auth_down`,
    /// `silent`, network-side `reader_fault`; the caller says which `reader_fault`).
    pub fn outage_explainable(self) -> bool {
        matches!(
            self,
            Self::LineAuthDown | Self::Silent | Self::ReaderFault | Self::AreaIncident
        )
    }
}

/// Who acts. Ordered most urgent first, so sorting findings by severity lists pages first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The vendor's on-call engineer, now. Never for one clinic's trouble.
    Page,
    /// The support desk calls the clinic today, while it is open.
    Urgent,
    /// The support desk's worklist.
    Ticket,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Page => "page",
            Self::Urgent => "urgent",
            Self::Ticket => "ticket",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Page, Self::Urgent, Self::Ticket]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// Where a finding stands. The rules return `active` or `suppressed`; `folded` is set
/// by an area incident and `resolved` by the store when a condition is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingStatus {
    Active,
    /// Its `since` falls in a maintenance window that explains it: shown, never sent.
    Suppressed,
    /// Explained by an area incident: shown under it, never sent.
    Folded,
    Resolved,
}

impl FindingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suppressed => "suppressed",
            Self::Folded => "folded",
            Self::Resolved => "resolved",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Active, Self::Suppressed, Self::Folded, Self::Resolved]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// One finding as the rules compute it. The store adds `id`, `resolved_at` and the
/// acknowledgement; field names are those of the §7 list items.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub severity: Severity,
    pub status: FindingStatus,
    /// When the condition began, on the terminal's clock (contract §6 "Time").
    #[serde(with = "crate::rfc3339")]
    pub since: DateTime<FixedOffset>,
    /// Absent for area incidents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clinic_code: Option<ClinicCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefecture: Option<Prefecture>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<Area>,
    /// Campaign id, for `campaign` findings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// Campaign state, for `campaign` findings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<CampaignState>,
    /// Machine-readable why: a campaign [`crate::Cause`], a reader code, `disconnected`…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Whole days to the certificate's `not_after`, rounded down; negative once expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days_left: Option<i64>,
    /// A line for the page, in Japanese: what was seen.
    pub detail: String,
    /// The maintenance window that explains it, kept after the window ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_id: Option<String>,
    /// The area incident that folds it; set by the store from [`super::incident`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    pub instruction_ja: String,
    pub instruction_en: String,
}

impl Finding {
    /// Whether Alertmanager should hear of it (§7): active, and page or urgent, or any
    /// severity when tickets are sent too.
    pub fn is_sent(&self, tickets_too: bool) -> bool {
        self.status == FindingStatus::Active && (self.severity != Severity::Ticket || tickets_too)
    }

    /// The §7 list order: page, urgent, ticket, then oldest `since`.
    pub fn list_order(a: &Finding, b: &Finding) -> std::cmp::Ordering {
        a.severity.cmp(&b.severity).then(a.since.cmp(&b.since))
    }
}

/// The fixed (Japanese, English) instructions per kind; campaign and reader findings carry their own
/// (the campaign cause's, the maker's remedy).
pub fn instruction(kind: FindingKind) -> (&'static str, &'static str) {
    match kind {
        FindingKind::LineAuthDown => (
            "回線認証が切れています。資格確認端末で https://www.lineauth.mnw を開き、「希望する」を押してください。「回線認証に成功しました。」と表示されれば復旧です。",
            "Line authentication is down. On the terminal open https://www.lineauth.mnw and press 「希望する」; 「回線認証に成功しました。」 means it is back.",
        ),
        FindingKind::Silent => (
            "端末から状態の報告が届いていません。資格確認端末の電源とネットワーク(LANケーブル)を確認し、必要なら端末を再起動してください。",
            "The terminal has stopped reporting. Check its power and network (LAN cable) and restart it if needed.",
        ),
        FindingKind::ReaderFault => (
            "顔認証付きカードリーダーでエラーが続いています。カードリーダーと資格確認端末を再起動してください。",
            "The face-auth card reader keeps failing. Restart the reader and the terminal.",
        ),
        FindingKind::ReaderOnUsbHub => (
            "顔認証付きカードリーダーがUSBハブ経由で接続されています。USBハブを使わず、資格確認端末のUSBポートに直接接続してください。",
            "The face-auth reader is connected through a USB hub. Plug it directly into a USB port of the terminal.",
        ),
        FindingKind::NfcReaderUnverified => (
            "スマートフォンのマイナ保険証用の汎用カードリーダーが動作確認済みの機種ではありません。確認済みの機種(ソニー RC-S300/S1 など)への交換を検討し、ソニー以外はファームウェアを最新にしてください。",
            "The NFC reader for smartphone My Number insurance cards is not a verified model. Consider a verified one (e.g. Sony RC-S300/S1); except Sony's, keep its firmware current.",
        ),
        FindingKind::CertificateExpiring => (
            "資格確認端末の電子証明書の有効期限が近づいています。医療機関等向け総合ポータルサイトから電子証明書の更新(発行申請)を行ってください。",
            "The terminal's electronic certificate expires soon. Renew it (apply for a new one) on the medical institutions' portal site.",
        ),
        FindingKind::CertificateExpired => (
            "資格確認端末の電子証明書の有効期限が切れています。オンライン資格確認が使えません。医療機関等向け総合ポータルサイトから電子証明書を再発行してください。",
            "The terminal's electronic certificate has expired; eligibility checks fail. Apply for a new certificate on the medical institutions' portal site.",
        ),
        FindingKind::AreaIncident => (
            "同じ地域の多くの端末で同時に障害が起きています。個々の医療機関への連絡の前に、回線・ネットワーク側の障害情報を確認してください。",
            "Many terminals in one area fail at once. Check for a network-side outage before calling individual clinics.",
        ),
        FindingKind::Campaign => (
            "更新の状況を確認してください。",
            "Check the update's progress.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_spelled_as_the_contract_and_parse_back() {
        let names: Vec<&str> = FindingKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "campaign",
                "line_auth_down",
                "silent",
                "reader_fault",
                "reader_on_usb_hub",
                "nfc_reader_unverified",
                "certificate_expiring",
                "certificate_expired",
                "area_incident"
            ]
        );
        for k in FindingKind::ALL {
            assert_eq!(FindingKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
            assert!(!instruction(k).0.is_empty() && !instruction(k).1.is_empty());
        }
    }

    #[test]
    fn severities_sort_most_urgent_first() {
        let mut s = vec![Severity::Ticket, Severity::Page, Severity::Urgent];
        s.sort();
        assert_eq!(s, [Severity::Page, Severity::Urgent, Severity::Ticket]);
        assert_eq!(Severity::parse("urgent"), Some(Severity::Urgent));
        assert_eq!(FindingStatus::parse("folded"), Some(FindingStatus::Folded));
    }
}
