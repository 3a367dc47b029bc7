//! Japanese first, English available: the page language comes from `?lang=en|ja`,
//! then the `fleet_lang` cookie, then Japanese. Times are always shown in JST.

use actix_web::HttpRequest;
use chrono::{DateTime, FixedOffset};
use fleet_protocol::{CampaignState, Cause, JST};

/// A page language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Ja,
    En,
}

/// The cookie that remembers the chosen language.
pub const LANG_COOKIE: &str = "fleet_lang";

impl Lang {
    pub fn of(req: &HttpRequest) -> Self {
        let from_query = serde_urlencoded::from_str::<Vec<(String, String)>>(req.query_string())
            .ok()
            .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "lang").map(|(_, v)| v));
        let chosen = from_query.or_else(|| req.cookie(LANG_COOKIE).map(|c| c.value().to_owned()));
        match chosen.as_deref() {
            Some("en") => Self::En,
            _ => Self::Ja,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::Ja => "ja",
            Self::En => "en",
        }
    }

    pub fn texts(self) -> &'static Texts {
        match self {
            Self::Ja => &JA,
            Self::En => &EN,
        }
    }

    pub fn state(self, state: CampaignState) -> &'static str {
        match (self, state) {
            (Self::Ja, CampaignState::Updated) => "更新済み",
            (Self::Ja, CampaignState::RebootRequired) => "要再起動",
            (Self::Ja, CampaignState::NotDownloaded) => "未ダウンロード",
            (Self::Ja, CampaignState::Unknown) => "不明",
            (Self::En, CampaignState::Updated) => "Updated",
            (Self::En, CampaignState::RebootRequired) => "Reboot required",
            (Self::En, CampaignState::NotDownloaded) => "Not downloaded",
            (Self::En, CampaignState::Unknown) => "Unknown",
        }
    }

    pub fn instruction(self, cause: Cause) -> &'static str {
        match self {
            Self::Ja => cause.instruction_ja(),
            Self::En => cause.instruction_en(),
        }
    }

    pub fn line_auth(self, state: Option<&str>) -> &'static str {
        match (self, state) {
            (Self::Ja, Some("connected")) => "回線認証接続済み",
            (Self::Ja, Some("disconnected")) => "切断(「希望する」で再接続)",
            (Self::Ja, Some("unreachable")) => "確認ページに到達不可",
            (Self::En, Some("connected")) => "Connected",
            (Self::En, Some("disconnected")) => "Disconnected (press 「希望する」)",
            (Self::En, Some("unreachable")) => "Check page unreachable",
            (Self::Ja, _) => "未観測",
            (Self::En, _) => "Not observed",
        }
    }

    pub fn yes_no(self, value: Option<bool>) -> &'static str {
        match (self, value) {
            (Self::Ja, Some(true)) => "あり",
            (Self::Ja, Some(false)) => "なし",
            (Self::En, Some(true)) => "Yes",
            (Self::En, Some(false)) => "No",
            (Self::Ja, None) => "未観測",
            (Self::En, None) => "Not observed",
        }
    }
}

/// Fixed labels of the pages.
pub struct Texts {
    pub product: &'static str,
    pub overview: &'static str,
    pub clinic: &'static str,
    pub prefecture: &'static str,
    pub area: &'static str,
    pub terminal: &'static str,
    pub hostname: &'static str,
    pub state: &'static str,
    pub what_to_do: &'static str,
    pub running: &'static str,
    pub downloaded: &'static str,
    pub reboot_pending: &'static str,
    pub line_auth: &'static str,
    pub last_seen: &'static str,
    pub no_terminals: &'static str,
    pub total: &'static str,
    pub worklist: &'static str,
    pub terminals: &'static str,
    pub nothing_to_do: &'static str,
    pub login_title: &'static str,
    pub login_help: &'static str,
    pub login_button: &'static str,
    pub logout: &'static str,
    pub other_lang: &'static str,
    pub other_lang_code: &'static str,
    pub east: &'static str,
    pub west: &'static str,
    pub not_observed: &'static str,
}

pub static JA: Texts = Texts {
    product: "資格確認端末 フリート監視",
    overview: "全体の状況",
    clinic: "医療機関",
    prefecture: "都道府県",
    area: "エリア",
    terminal: "端末",
    hostname: "ホスト名",
    state: "状態",
    what_to_do: "対応",
    running: "稼働中の版数",
    downloaded: "ダウンロード済みの版数",
    reboot_pending: "再起動待ち",
    line_auth: "回線認証",
    last_seen: "最終報告",
    no_terminals: "この医療機関の端末からはまだ報告がありません。",
    total: "合計",
    worklist: "対応が必要な医療機関",
    terminals: "台数",
    nothing_to_do: "対応が必要な端末はありません。",
    login_title: "ログイン",
    login_help: "発行されたトークン(fleetd token で作成)を貼り付けてください。",
    login_button: "ログイン",
    logout: "ログアウト",
    other_lang: "English",
    other_lang_code: "en",
    east: "東日本",
    west: "西日本",
    not_observed: "未観測",
};

pub static EN: Texts = Texts {
    product: "Eligibility terminal fleet monitor",
    overview: "Overview",
    clinic: "Clinic",
    prefecture: "Prefecture",
    area: "Area",
    terminal: "Terminal",
    hostname: "Hostname",
    state: "State",
    what_to_do: "What to do",
    running: "Running version",
    downloaded: "Downloaded version",
    reboot_pending: "Reboot pending",
    line_auth: "Line authentication",
    last_seen: "Last report",
    no_terminals: "No terminal of this clinic has reported yet.",
    total: "Total",
    worklist: "Clinics that need action",
    terminals: "Terminals",
    nothing_to_do: "No terminal needs action.",
    login_title: "Log in",
    login_help: "Paste the token you were given (made with fleetd token).",
    login_button: "Log in",
    logout: "Log out",
    other_lang: "日本語",
    other_lang_code: "ja",
    east: "East",
    west: "West",
    not_observed: "Not observed",
};

/// `2026-01-20 07:12 JST`
pub fn jst_display(t: DateTime<FixedOffset>) -> String {
    t.with_timezone(&JST)
        .format("%Y-%m-%d %H:%M JST")
        .to_string()
}

/// RFC 3339 in JST, seconds precision: `2026-01-20T07:12:00+09:00`.
pub fn jst_rfc3339(t: DateTime<FixedOffset>) -> String {
    t.with_timezone(&JST)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_show_in_jst_whatever_offset_they_came_with() {
        let t = DateTime::parse_from_rfc3339("2026-01-19T22:12:00Z").unwrap();
        assert_eq!(jst_display(t), "2026-01-20 07:12 JST");
        assert_eq!(jst_rfc3339(t), "2026-01-20T07:12:00+09:00");
    }
}
