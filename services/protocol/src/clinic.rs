//! 医療機関等コード (medical institution code), prefectures and the east/west areas.
//!
//! A code is 10 digits: prefecture 01–47 (2), 点数表番号 (1: 医科 1, 歯科 3, 調剤 4),
//! 郡市区番号 (2), 医療機関番号 (4) and a check digit (1). The check-digit rule is not
//! verified by any source we trust (domain.md, confidence L), so a code is never
//! rejected on it.
//!
//! The area split follows the network-maintenance notices (seed 000) as an explicit
//! table, because it is not a simple range: 19 山梨 and 20 長野 are east although
//! 16–18 are west.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A validated 医療機関等コード.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClinicCode([u8; 10]);

/// 点数表番号: which fee schedule the institution bills under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeeSchedule {
    /// 医科 (1)
    Medical,
    /// 歯科 (3)
    Dental,
    /// 調剤 (4), i.e. a pharmacy
    Pharmacy,
}

/// East or west Japan, as the network-maintenance notices split the country.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Area {
    East,
    West,
}

/// A prefecture code, 01–47 (JIS X 0401 order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Prefecture(u8);

/// Why a text is not a clinic code or prefecture code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClinicCodeError {
    #[error("must be exactly 10 digits, got {0} characters")]
    Length(usize),
    #[error("must contain only the digits 0-9")]
    NotDigits,
    #[error("prefecture {0:02} is not 01–47")]
    Prefecture(u8),
    #[error("点数表番号 {0} is not 1 (医科), 3 (歯科) or 4 (調剤)")]
    FeeSchedule(u8),
}

/// Prefecture names in code order, Japanese and English.
const PREFECTURES: [(&str, &str); 47] = [
    ("北海道", "Hokkaido"),
    ("青森県", "Aomori"),
    ("岩手県", "Iwate"),
    ("宮城県", "Miyagi"),
    ("秋田県", "Akita"),
    ("山形県", "Yamagata"),
    ("福島県", "Fukushima"),
    ("茨城県", "Ibaraki"),
    ("栃木県", "Tochigi"),
    ("群馬県", "Gunma"),
    ("埼玉県", "Saitama"),
    ("千葉県", "Chiba"),
    ("東京都", "Tokyo"),
    ("神奈川県", "Kanagawa"),
    ("新潟県", "Niigata"),
    ("富山県", "Toyama"),
    ("石川県", "Ishikawa"),
    ("福井県", "Fukui"),
    ("山梨県", "Yamanashi"),
    ("長野県", "Nagano"),
    ("岐阜県", "Gifu"),
    ("静岡県", "Shizuoka"),
    ("愛知県", "Aichi"),
    ("三重県", "Mie"),
    ("滋賀県", "Shiga"),
    ("京都府", "Kyoto"),
    ("大阪府", "Osaka"),
    ("兵庫県", "Hyogo"),
    ("奈良県", "Nara"),
    ("和歌山県", "Wakayama"),
    ("鳥取県", "Tottori"),
    ("島根県", "Shimane"),
    ("岡山県", "Okayama"),
    ("広島県", "Hiroshima"),
    ("山口県", "Yamaguchi"),
    ("徳島県", "Tokushima"),
    ("香川県", "Kagawa"),
    ("愛媛県", "Ehime"),
    ("高知県", "Kochi"),
    ("福岡県", "Fukuoka"),
    ("佐賀県", "Saga"),
    ("長崎県", "Nagasaki"),
    ("熊本県", "Kumamoto"),
    ("大分県", "Oita"),
    ("宮崎県", "Miyazaki"),
    ("鹿児島県", "Kagoshima"),
    ("沖縄県", "Okinawa"),
];

/// The east area of seed 000: 01–07, 08–14, 15 新潟, 19 山梨, 20 長野.
const EAST: [u8; 17] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 19, 20];

impl Prefecture {
    /// Every prefecture, 01 to 47.
    pub fn all() -> impl Iterator<Item = Prefecture> {
        (1..=47).map(Prefecture)
    }

    pub fn new(code: u8) -> Result<Self, ClinicCodeError> {
        if (1..=47).contains(&code) {
            Ok(Self(code))
        } else {
            Err(ClinicCodeError::Prefecture(code))
        }
    }

    /// Parses a two-digit code such as `27`.
    pub fn parse(text: &str) -> Result<Self, ClinicCodeError> {
        if text.len() != 2 {
            return Err(ClinicCodeError::Length(text.chars().count()));
        }
        let n: u8 = text.parse().map_err(|_| ClinicCodeError::NotDigits)?;
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ClinicCodeError::NotDigits);
        }
        Self::new(n)
    }

    pub fn number(self) -> u8 {
        self.0
    }

    /// The two-digit code, e.g. `"01"`.
    pub fn code(self) -> String {
        format!("{:02}", self.0)
    }

    pub fn area(self) -> Area {
        if EAST.contains(&self.0) {
            Area::East
        } else {
            Area::West
        }
    }

    pub fn name_ja(self) -> &'static str {
        PREFECTURES[usize::from(self.0 - 1)].0
    }

    pub fn name_en(self) -> &'static str {
        PREFECTURES[usize::from(self.0 - 1)].1
    }
}

impl TryFrom<String> for Prefecture {
    type Error = ClinicCodeError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Prefecture> for String {
    fn from(value: Prefecture) -> Self {
        value.code()
    }
}

impl fmt::Display for Prefecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}", self.0)
    }
}

impl ClinicCode {
    pub fn parse(text: &str) -> Result<Self, ClinicCodeError> {
        let bytes = text.as_bytes();
        if bytes.len() != 10 {
            return Err(ClinicCodeError::Length(text.chars().count()));
        }
        if !bytes.iter().all(u8::is_ascii_digit) {
            return Err(ClinicCodeError::NotDigits);
        }
        let mut digits = [0u8; 10];
        digits.copy_from_slice(bytes);
        let code = Self(digits);
        Prefecture::new(code.digit(0) * 10 + code.digit(1))?;
        match code.digit(2) {
            1 | 3 | 4 => {}
            other => return Err(ClinicCodeError::FeeSchedule(other)),
        }
        Ok(code)
    }

    fn digit(&self, i: usize) -> u8 {
        self.0[i] - b'0'
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    pub fn prefecture(&self) -> Prefecture {
        Prefecture(self.digit(0) * 10 + self.digit(1))
    }

    pub fn area(&self) -> Area {
        self.prefecture().area()
    }

    pub fn fee_schedule(&self) -> FeeSchedule {
        match self.digit(2) {
            3 => FeeSchedule::Dental,
            4 => FeeSchedule::Pharmacy,
            _ => FeeSchedule::Medical,
        }
    }
}

impl TryFrom<String> for ClinicCode {
    type Error = ClinicCodeError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ClinicCode> for String {
    fn from(value: ClinicCode) -> Self {
        value.as_str().to_owned()
    }
}

impl fmt::Display for ClinicCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Area {
    pub fn as_str(self) -> &'static str {
        match self {
            Area::East => "east",
            Area::West => "west",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn contract_example_is_osaka_medical_in_the_west() {
        let code = ClinicCode::parse("2712345678").unwrap();
        assert_eq!(code.prefecture().code(), "27");
        assert_eq!(code.prefecture().name_ja(), "大阪府");
        assert_eq!(code.area(), Area::West);
        assert_eq!(code.fee_schedule(), FeeSchedule::Medical);
    }

    #[test]
    fn area_table_follows_seed_000_not_a_range() {
        let east: Vec<u8> = Prefecture::all()
            .filter(|p| p.area() == Area::East)
            .map(Prefecture::number)
            .collect();
        assert_eq!(
            east,
            vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 19, 20]
        );
        for west in [16, 17, 18, 21, 27, 47] {
            assert_eq!(Prefecture::new(west).unwrap().area(), Area::West, "{west}");
        }
        assert_eq!(Prefecture::new(13).unwrap().name_ja(), "東京都");
        assert_eq!(Prefecture::new(47).unwrap().name_en(), "Okinawa");
    }

    #[test]
    fn fee_schedules() {
        assert_eq!(
            ClinicCode::parse("1331234567").unwrap().fee_schedule(),
            FeeSchedule::Dental
        );
        assert_eq!(
            ClinicCode::parse("1341234567").unwrap().fee_schedule(),
            FeeSchedule::Pharmacy
        );
        assert_eq!(
            ClinicCode::parse("1321234567").unwrap_err(),
            ClinicCodeError::FeeSchedule(2)
        );
    }

    #[test]
    fn rejects_malformed_codes_with_the_reason() {
        assert_eq!(
            ClinicCode::parse("271234567").unwrap_err(),
            ClinicCodeError::Length(9)
        );
        assert_eq!(
            ClinicCode::parse("27123456789").unwrap_err(),
            ClinicCodeError::Length(11)
        );
        assert_eq!(
            ClinicCode::parse("27123x5678").unwrap_err(),
            ClinicCodeError::NotDigits
        );
        assert_eq!(
            ClinicCode::parse("4812345678").unwrap_err(),
            ClinicCodeError::Prefecture(48)
        );
        assert_eq!(
            ClinicCode::parse("0012345678").unwrap_err(),
            ClinicCodeError::Prefecture(0)
        );
        // Full-width digits are 10 characters but not ASCII digits.
        assert!(ClinicCode::parse("２７１２３４５６７８").is_err());
    }

    #[test]
    fn prefecture_codes_parse_two_digits_only() {
        assert_eq!(Prefecture::parse("01").unwrap().number(), 1);
        assert!(Prefecture::parse("1").is_err());
        assert!(Prefecture::parse("48").is_err());
        assert!(Prefecture::parse("+1").is_err());
    }

    proptest! {
        #[test]
        fn every_valid_code_round_trips(pref in 1u8..=47, table in prop::sample::select(vec![1u8, 3, 4]), rest in 0u32..10_000_000) {
            let text = format!("{pref:02}{table}{rest:07}");
            let code = ClinicCode::parse(&text).unwrap();
            prop_assert_eq!(code.as_str(), text.as_str());
            prop_assert_eq!(code.prefecture().number(), pref);
            let json = serde_json::to_string(&code).unwrap();
            let back: ClinicCode = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(back, code);
        }

        #[test]
        fn check_digit_is_never_a_reason_to_reject(check in 0u8..10) {
            let text = format!("271234567{check}");
            prop_assert!(ClinicCode::parse(&text).is_ok());
        }

        #[test]
        fn arbitrary_text_never_panics(s in ".{0,14}") {
            let _ = ClinicCode::parse(&s);
        }
    }
}
