//! Reader error codes per maker (domain.md table, seed 004): which side a fault is on
//! and what the maker says to do.
//!
//! Why sides matter: patient-side errors (【001】 card not recognised, 【002】 not a
//! My Number card, 【006】 the patient's certificate expired or revoked, PIN or face
//! lock-outs) happen every day at every clinic; they are counted and shown but never
//! raise a finding. Device-side errors need the clinic's staff; network-side errors
//! may be an outage, so an announced window can explain them.
//!
//! **Unknown codes count as device side.** domain.md lists the patient-side codes as
//! common to every maker (a short, closed list) while device troubles vary by maker
//! and firmware; a code nobody has catalogued is far more likely a new device message
//! than a new patient one, and a reader that fails silently costs a clinic its
//! patients. Three of them in 15 minutes are worth a call; if a maker ships a new
//! patient-side code, it is added here with its test.

use serde::Serialize;

use crate::report::ReaderMaker;

/// Which side an error is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorSide {
    /// The reader, its cable, its software or its account.
    Device,
    /// The network or the central system: an outage may explain it.
    Network,
    /// The patient's card or PIN: counted, never a finding.
    Patient,
}

impl ErrorSide {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Device => "device",
            Self::Network => "network",
            Self::Patient => "patient",
        }
    }

    /// Whether it counts toward `reader_fault`.
    pub fn is_fault(self) -> bool {
        self != Self::Patient
    }
}

/// What the product says about one error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Classification {
    pub side: ErrorSide,
    /// False for a code not in the catalog (then `side` is `device`, see the module doc).
    pub known: bool,
    /// What the code means, in Japanese.
    pub meaning_ja: &'static str,
    /// The maker's remedy (seed 004), in plain Japanese.
    pub remedy_ja: &'static str,
    pub remedy_en: &'static str,
}

/// The code as makers print it, reduced to its key: `【011:ネットワークエラー】` → `011`,
/// ` fujp55 ` → `FUJP55`.
pub fn normalize_code(code: &str) -> String {
    let trimmed = code.trim().trim_start_matches('【').trim_end_matches('】');
    let key = trimmed.split([':', '：']).next().unwrap_or(trimmed).trim();
    key.to_uppercase()
}

const PATIENT: [(&str, &str); 3] = [
    ("001", "カードを認識できませんでした"),
    ("002", "マイナンバーカードではありません"),
    ("006", "患者の電子証明書の有効期限切れ、または失効"),
];

const PATIENT_REMEDY_JA: &str = "患者さん側の事象です。カードの置き直し、暗証番号や顔認証のやり直し、または保険証・資格確認書での確認をお願いします。端末の故障ではありません。";
const PATIENT_REMEDY_EN: &str = "A patient-side event: place the card again, retry PIN or face, or check the insurance card. Not a device fault.";

/// Classifies one error of a maker's reader. Never panics, whatever the text.
pub fn classify(maker: Option<ReaderMaker>, code: &str, message: Option<&str>) -> Classification {
    let key = normalize_code(code);
    if let Some((_, meaning)) = PATIENT.iter().find(|(c, _)| *c == key) {
        return patient(meaning);
    }
    let text = message.unwrap_or("");
    let lockout = text.contains("ロック")
        && (text.contains("暗証番号") || text.contains("顔認証") || text.contains("PIN"));
    if lockout || matches!(key.as_str(), "PIN_LOCKED" | "FACE_LOCKED") {
        return patient("暗証番号(3回)または顔認証(10回)の失敗によるロック");
    }
    let known = |side, meaning_ja, remedy_ja, remedy_en| Classification {
        side,
        known: true,
        meaning_ja,
        remedy_ja,
        remedy_en,
    };
    use ReaderMaker::*;
    match (maker, key.as_str()) {
        (Some(Fujitsu), "FUJP55") => known(
            ErrorSide::Network,
            "タイムアウト",
            "起動直後の一時的なエラーで、通常は自動で再接続します。続く場合は接続している機器(カードリーダー・資格確認端末)を再起動してください。",
            "Transient after start-up; it retries by itself. If it lasts, restart the connected devices (reader and terminal).",
        ),
        (Some(Fujitsu), "011") => known(
            ErrorSide::Network,
            "ネットワークエラー",
            "起動直後の一時的なエラーで、通常は自動で再接続します。続く場合は接続している機器を再起動し、回線認証(https://www.lineauth.mnw)を確認してください。",
            "Transient after start-up. If it lasts, restart the connected devices and check line authentication (https://www.lineauth.mnw).",
        ),
        (Some(Almex), "011") => known(
            ErrorSide::Network,
            "ネットワークエラー",
            "LANケーブルとハブの接続を確認し、カードリーダーと資格確認端末を再起動してください。システムへのログイン状態も確認してください。",
            "Check the LAN cable and hub, restart the reader and the terminal, and check the login to the system.",
        ),
        (Some(Almex), "0X81000001") => known(
            ErrorSide::Device,
            "重複登録",
            "カードリーダーが重複して登録されています。セットアップ情報初期化ツールで再ペアリングしてください。",
            "Duplicate registration: re-pair the reader with the setup-information initialisation tool.",
        ),
        (Some(Canon), "906") => known(
            ErrorSide::Network,
            "システムへの接続に失敗",
            "オンライン資格確認等システムへの接続に失敗しました。多くはアカウント情報の誤りです。カードリーダーに設定したアカウント情報を確認してください。",
            "Connection to the system failed, usually wrong account information: check the account set in the reader.",
        ),
        (_, "011") => known(
            ErrorSide::Network,
            "ネットワークエラー",
            "資格確認端末を再起動してください。続く場合はLANケーブルと回線認証(https://www.lineauth.mnw)を確認してください。",
            "Restart the terminal. If it lasts, check the LAN cable and line authentication (https://www.lineauth.mnw).",
        ),
        (_, "906") => known(
            ErrorSide::Network,
            "システムへの接続に失敗",
            "システムへの接続に失敗しました。アカウント情報を確認し、資格確認端末を再起動してください。",
            "Connection to the system failed: check the account information and restart the terminal.",
        ),
        (_, "COM切断" | "COM_DISCONNECTED") => known(
            ErrorSide::Device,
            "資格確認端末との接続(COM)切断",
            "カードリーダーと資格確認端末をつなぐUSBケーブルを確認し、両方を再起動してください。USBハブは使わず直接接続してください。",
            "Check the USB cable between reader and terminal and restart both; connect directly, without a USB hub.",
        ),
        (Some(Fujitsu), "TIMEOUT") => known(
            ErrorSide::Device,
            "顔認証がタイムアウト",
            "カードリーダーのソフトウェアが古い可能性があります。配信アプリケーション管理ツールで「配信機能を無効化する」にチェックが入っていないか確認してください。",
            "The reader software may be old: check that 「配信機能を無効化する」 is not checked in the distribution tool.",
        ),
        (Some(Atlas), "BLACK_SCREEN") | (_, "画面が黒い") => known(
            ErrorSide::Device,
            "画面が真っ黒",
            "電源が入っていないか、資格確認端末との接続不良です。カードリーダーの電源を入れ直し、資格確認端末を起動してからレセコンを起動してください。",
            "No power or a bad link to the terminal: power-cycle the reader, start the terminal (the reader follows), then the receipt computer.",
        ),
        _ => Classification {
            side: ErrorSide::Device,
            known: false,
            meaning_ja: "未登録のエラーコード",
            remedy_ja: remedy_for_maker(maker),
            remedy_en: "Unknown code: restart the reader and the terminal in the maker's order; if it continues, contact the maker or the vendor.",
        },
    }
}

fn patient(meaning: &'static str) -> Classification {
    Classification {
        side: ErrorSide::Patient,
        known: true,
        meaning_ja: meaning,
        remedy_ja: PATIENT_REMEDY_JA,
        remedy_en: PATIENT_REMEDY_EN,
    }
}

/// The generic remedy of a maker, for codes we have not catalogued (seed 004).
fn remedy_for_maker(maker: Option<ReaderMaker>) -> &'static str {
    match maker {
        Some(ReaderMaker::Panasonic) => {
            "カードリーダーをUSB 3.0(青色)のポートに接続し、カードリーダー → 15〜30秒待つ → 資格確認端末 → レセコンの順に起動し直してください。"
        }
        Some(ReaderMaker::Atlas) => {
            "資格確認端末を起動し(カードリーダーは連動して起動します)、その後レセコンを起動する順で再起動してください。"
        }
        Some(ReaderMaker::Almex) => {
            "LANケーブルとハブの接続を確認し、カードリーダーと資格確認端末を再起動してください。"
        }
        Some(ReaderMaker::Canon) => {
            "USBケーブルを確認し、カードリーダーと資格確認端末の両方を再起動してください。"
        }
        _ => {
            "カードリーダーと資格確認端末を再起動してください。続く場合はメーカーまたはシステム事業者へご連絡ください。"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn patient_side_codes_are_patient_side_for_every_maker() {
        let makers = [
            None,
            Some(ReaderMaker::Fujitsu),
            Some(ReaderMaker::Panasonic),
            Some(ReaderMaker::Atlas),
            Some(ReaderMaker::Almex),
            Some(ReaderMaker::Canon),
            Some(ReaderMaker::Other),
        ];
        for maker in makers {
            for code in ["001", "002", "006", "【006:証明書失効】"] {
                assert_eq!(
                    classify(maker, code, None).side,
                    ErrorSide::Patient,
                    "{maker:?} {code}"
                );
            }
            assert_eq!(
                classify(maker, "E9", Some("暗証番号がロックされました")).side,
                ErrorSide::Patient
            );
        }
    }

    #[test]
    fn device_and_network_codes_carry_the_makers_remedy() {
        let c = classify(Some(ReaderMaker::Fujitsu), "FUJP55", Some("タイムアウト"));
        assert_eq!(c.side, ErrorSide::Network);
        assert!(c.remedy_ja.contains("再起動"));
        let c = classify(Some(ReaderMaker::Canon), "906", None);
        assert!(c.remedy_ja.contains("アカウント"));
        let c = classify(Some(ReaderMaker::Almex), "0x81000001", None);
        assert_eq!(c.side, ErrorSide::Device);
        assert!(c.remedy_ja.contains("セットアップ情報初期化ツール"));
        assert_eq!(
            classify(Some(ReaderMaker::Canon), "【011:ネットワークエラー】", None).side,
            ErrorSide::Network
        );
        assert_eq!(classify(None, "COM切断", None).side, ErrorSide::Device);
    }

    #[test]
    fn unknown_codes_are_device_side_and_marked_unknown() {
        let c = classify(Some(ReaderMaker::Panasonic), "X42", None);
        assert_eq!(c.side, ErrorSide::Device);
        assert!(!c.known);
        assert!(c.remedy_ja.contains("USB 3.0"));
    }

    proptest! {
        #[test]
        fn any_code_classifies_without_panicking(code in ".*", msg in proptest::option::of(".*")) {
            let c = classify(Some(ReaderMaker::Other), &code, msg.as_deref());
            prop_assert!(!c.remedy_ja.is_empty());
        }
    }
}
