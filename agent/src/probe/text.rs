//! Reading the small text files that terminal software leaves behind.
//!
//! Their formats are not documented (domain.md rates them L), so everything here is
//! tolerant on purpose: any BOM (UTF-8, UTF-16 LE/BE), CRLF or LF, full-width digits
//! and punctuation (`５．１．０`, `＝`, `：`) normalised to ASCII, and times in the
//! shapes Japanese Windows tools print. Files without a BOM that are not UTF-8 (e.g.
//! Shift_JIS) are decoded lossily: ASCII keys and versions still parse, Japanese
//! labels do not (decoding CP932 would take a dependency; worth it once a real file
//! shows up in that encoding).

use std::io::Read;
use std::path::Path;

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone};

/// Files larger than this are not version files or records; they are not read.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Reads a file of at most [`MAX_FILE_BYTES`]. The error is a sentence for the log.
pub fn read_small(path: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path)
        .map_err(|err| format!("cannot open {}: {err}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "{} is larger than {MAX_FILE_BYTES} bytes",
            path.display()
        ));
    }
    Ok(bytes)
}

/// Decodes by BOM, else as UTF-8 (lossy), then normalises full-width forms.
pub fn decode(bytes: &[u8]) -> String {
    let text = if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        String::from_utf8_lossy(rest).into_owned()
    } else if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        utf16(rest, u16::from_le_bytes)
    } else if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        utf16(rest, u16::from_be_bytes)
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    };
    normalize_width(&text)
}

fn utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> String {
    let units = bytes.chunks_exact(2).map(|pair| unit([pair[0], pair[1]]));
    char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// Full-width ASCII forms (U+FF01–U+FF5E) and the ideographic space become ASCII.
pub fn normalize_width(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            _ => c,
        })
        .collect()
}

/// Splits `key = value` or `key: value` at the first `=` (else the first `:`).
pub fn split_key_value(line: &str) -> Option<(&str, &str)> {
    let at = line.find('=').or_else(|| line.find(':'))?;
    Some((line[..at].trim(), line[at + 1..].trim()))
}

/// The first thing that looks like a dotted version (`5.1.0`, also inside `Ver5.1.0`
/// or `v5.1.0-beta`), and the byte offset just after it. At least one dot is needed:
/// a lone number is too ambiguous to be taken for a version.
pub fn find_dotted_version(text: &str) -> Option<(&str, usize)> {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i;
        let mut dots = 0;
        loop {
            while end < b.len() && b[end].is_ascii_digit() {
                end += 1;
            }
            if end + 1 < b.len() && b[end] == b'.' && b[end + 1].is_ascii_digit() {
                end += 1;
                dots += 1;
            } else {
                break;
            }
        }
        // ASCII digits and dots only, so these are char boundaries.
        let candidate = &text[start..end];
        if dots > 0 && fleet_protocol::Version::parse(candidate).is_ok() {
            return Some((candidate, end));
        }
        i = end;
    }
    None
}

/// A time as RFC 3339, or as a local time in `offset` written `2026-01-20 02:14:00`,
/// `2026/01/20 2:14`, `2026-01-20T02:14` or `2026年1月20日 2時14分`.
pub fn parse_timestamp(raw: &str, offset: FixedOffset) -> Option<DateTime<FixedOffset>> {
    let collapsed = normalize_width(raw)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if let Ok(t) = DateTime::parse_from_rfc3339(&collapsed) {
        return Some(t);
    }
    let unified = collapsed.replace('/', "-").replacen('T', " ", 1);
    for format in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S %:z",
        "%Y-%m-%d %H:%M%:z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(&unified, format) {
            return Some(t);
        }
    }
    const LOCAL: [&str; 7] = [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y年%m月%d日 %H:%M:%S",
        "%Y年%m月%d日 %H:%M",
        "%Y年%m月%d日 %H時%M分%S秒",
        "%Y年%m月%d日 %H時%M分",
    ];
    LOCAL.iter().find_map(|format| {
        let naive = NaiveDateTime::parse_from_str(&unified, format).ok()?;
        offset.from_local_datetime(&naive).single()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jst() -> FixedOffset {
        FixedOffset::east_opt(9 * 3600).unwrap()
    }

    #[test]
    fn decodes_boms_and_full_width() {
        assert_eq!(decode(b"\xEF\xBB\xBFVersion=5.1.0"), "Version=5.1.0");
        let utf16le: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("v5.0.3".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert_eq!(decode(&utf16le), "v5.0.3");
        let utf16be: Vec<u8> = [0xFE, 0xFF]
            .into_iter()
            .chain("5.0".encode_utf16().flat_map(u16::to_be_bytes))
            .collect();
        assert_eq!(decode(&utf16be), "5.0");
        assert_eq!(
            decode("バージョン：５．１．０".as_bytes()),
            "バージョン:5.1.0"
        );
    }

    #[test]
    fn finds_dotted_versions_in_context() {
        let cases = [
            ("5.1.0", Some("5.1.0")),
            ("Ver5.1.0", Some("5.1.0")),
            ("Ver.5.1.0", Some("5.1.0")),
            ("v5.0.3-beta", Some("5.0.3")),
            ("build 1234 / 2.4.1", Some("2.4.1")),
            ("5.1.", Some("5.1")),
            ("12", None),
            ("abc", None),
            ("2026/01/20", None),
        ];
        for (text, want) in cases {
            assert_eq!(find_dotted_version(text).map(|(v, _)| v), want, "{text:?}");
        }
        assert_eq!(find_dotted_version("x 1.2 y"), Some(("1.2", 5)));
    }

    #[test]
    fn parses_the_time_shapes_tools_print() {
        let want = jst().with_ymd_and_hms(2026, 1, 20, 2, 14, 0).unwrap();
        for text in [
            "2026-01-20T02:14:00+09:00",
            "2026-01-19T17:14:00Z",
            "2026-01-20 02:14:00",
            "2026/01/20 02:14",
            "2026/1/20 2:14:00",
            "2026-01-20T02:14",
            "2026年1月20日 2時14分",
            "2026年01月20日  02:14:00",
            "２０２６／０１／２０　０２：１４",
            "2026-01-20 02:14:00 +09:00",
        ] {
            assert_eq!(parse_timestamp(text, jst()), Some(want), "{text:?}");
        }
        for bad in ["", "yesterday", "2026-01-20", "2026-13-01 00:00"] {
            assert_eq!(parse_timestamp(bad, jst()), None, "{bad:?}");
        }
    }
}
