//! The terminal's 電子証明書 (electronic certificate): issuer and expiry.
//!
//! Read from a PEM or DER file (`[certificate] file`). Only two fields are needed,
//! so instead of an X.509 crate this walks the DER by hand: `Certificate` →
//! `tbsCertificate` → skip `[0] version`, `serialNumber`, `signature` → `issuer`
//! (the last commonName, else the last organizationName) → `validity.notAfter`
//! (`UTCTime` or `GeneralizedTime`). Anything malformed is an error for the log,
//! never a panic: every length is checked against what is left.
//!
//! On Windows the certificate usually lives in the certificate store, not a file;
//! reading the store (`[certificate] store`) is behind `cfg(windows)` and not written
//! yet: it logs that and reports the certificate as not observed. Values set in the
//! settings (`issuer`, `not_after`) fill what the file does not give.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use fleet_protocol::report::Certificate;

use super::text::read_small;
use crate::config::CertificateSettings;

/// What the certificate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub issuer: Option<String>,
    pub not_after: DateTime<Utc>,
}

/// The `certificate` section: the file's fields, else the configured ones.
pub fn probe(settings: &CertificateSettings, offset: FixedOffset) -> Option<Certificate> {
    let mut cert = Certificate {
        issuer: settings.issuer.clone(),
        not_after: settings.not_after,
    };
    if let Some(path) = &settings.file {
        match read_small(path).and_then(|bytes| parse_pem_or_der(&bytes)) {
            Ok(info) => {
                cert.issuer = info.issuer.or(cert.issuer);
                cert.not_after = Some(info.not_after.with_timezone(&offset));
            }
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason, "certificate not observed");
                return None;
            }
        }
    }
    if let Some(store) = &settings.store {
        windows_store(store);
    }
    (cert.issuer.is_some() || cert.not_after.is_some()).then_some(cert)
}

#[cfg(windows)]
fn windows_store(store: &str) {
    tracing::warn!(
        store,
        "reading the Windows certificate store is not implemented yet; export the certificate to a file and set [certificate] file"
    );
}

#[cfg(not(windows))]
fn windows_store(store: &str) {
    tracing::debug!(store, "[certificate] store is only read on Windows");
}

/// A PEM file (the first `CERTIFICATE` block) or raw DER.
pub fn parse_pem_or_der(bytes: &[u8]) -> Result<CertInfo, String> {
    let text = String::from_utf8_lossy(bytes);
    if let Some(start) = text.find("-----BEGIN CERTIFICATE-----") {
        let body = &text[start + "-----BEGIN CERTIFICATE-----".len()..];
        let end = body
            .find("-----END CERTIFICATE-----")
            .ok_or("PEM without END CERTIFICATE")?;
        let der = base64_decode(&body[..end])?;
        return parse_der(&der);
    }
    parse_der(bytes)
}

fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => return Err(format!("invalid base64 character {:?}", c as char)),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}

/// One DER element: tag, content, and what follows it.
struct Tlv<'a> {
    tag: u8,
    content: &'a [u8],
    rest: &'a [u8],
}

fn tlv(input: &[u8]) -> Result<Tlv<'_>, String> {
    let (&tag, after_tag) = input.split_first().ok_or("truncated DER: no tag")?;
    let (&first, mut after_len) = after_tag.split_first().ok_or("truncated DER: no length")?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7F);
        if count == 0 || count > 4 {
            return Err(format!("unsupported DER length form 0x{first:02x}"));
        }
        let bytes = after_len.get(..count).ok_or("truncated DER length")?;
        after_len = &after_len[count..];
        bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b))
    };
    let content = after_len.get(..len).ok_or("truncated DER content")?;
    Ok(Tlv {
        tag,
        content,
        rest: &after_len[len..],
    })
}

fn expect<'a>(input: &'a [u8], tag: u8, what: &str) -> Result<Tlv<'a>, String> {
    let t = tlv(input)?;
    if t.tag != tag {
        return Err(format!(
            "{what}: expected tag 0x{tag:02x}, found 0x{:02x}",
            t.tag
        ));
    }
    Ok(t)
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const OID_O: &[u8] = &[0x55, 0x04, 0x0A];

/// Issuer and notAfter of a DER certificate.
pub fn parse_der(der: &[u8]) -> Result<CertInfo, String> {
    let cert = expect(der, SEQUENCE, "Certificate")?;
    let tbs = expect(cert.content, SEQUENCE, "tbsCertificate")?;
    let mut fields = tbs.content;
    // [0] EXPLICIT version, optional.
    if fields.first() == Some(&0xA0) {
        fields = tlv(fields)?.rest;
    }
    let serial = tlv(fields)?; // serialNumber
    let signature = tlv(serial.rest)?; // AlgorithmIdentifier
    let issuer = expect(signature.rest, SEQUENCE, "issuer")?;
    let validity = expect(issuer.rest, SEQUENCE, "validity")?;
    let not_before = tlv(validity.content)?;
    let not_after = tlv(not_before.rest)?;
    Ok(CertInfo {
        issuer: issuer_name(issuer.content)?,
        not_after: der_time(not_after.tag, not_after.content)?,
    })
}

fn issuer_name(mut rdns: &[u8]) -> Result<Option<String>, String> {
    let mut cn = None;
    let mut org = None;
    while !rdns.is_empty() {
        let set = expect(rdns, SET, "RelativeDistinguishedName")?;
        rdns = set.rest;
        let mut attrs = set.content;
        while !attrs.is_empty() {
            let attr = expect(attrs, SEQUENCE, "AttributeTypeAndValue")?;
            attrs = attr.rest;
            let oid = expect(attr.content, 0x06, "attribute type")?;
            let value = tlv(oid.rest)?;
            let text = der_string(value.tag, value.content);
            if oid.content == OID_CN {
                cn = text.or(cn);
            } else if oid.content == OID_O {
                org = text.or(org);
            }
        }
    }
    Ok(cn.or(org))
}

fn der_string(tag: u8, content: &[u8]) -> Option<String> {
    match tag {
        // UTF8String, PrintableString, T61String, IA5String
        0x0C | 0x13 | 0x14 | 0x16 => Some(String::from_utf8_lossy(content).into_owned()),
        // BMPString: UTF-16 big-endian
        0x1E => {
            let units = content
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]));
            Some(
                char::decode_utf16(units)
                    .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                    .collect(),
            )
        }
        _ => None,
    }
}

fn der_time(tag: u8, content: &[u8]) -> Result<DateTime<Utc>, String> {
    let text = std::str::from_utf8(content).map_err(|_| "time is not ASCII")?;
    let digits = text.strip_suffix('Z').ok_or("time is not in UTC (no Z)")?;
    let full = match (tag, digits.len()) {
        // UTCTime YYMMDDHHMMSS: 50–99 are 19xx (RFC 5280 4.1.2.5.1).
        (0x17, 12) => {
            let yy: u32 = digits[..2].parse().map_err(|_| "bad UTCTime year")?;
            format!("{}{digits}", if yy >= 50 { "19" } else { "20" })
        }
        (0x18, 14) => digits.to_owned(),
        _ => return Err(format!("unsupported time tag 0x{tag:02x} {text:?}")),
    };
    let num = |range: std::ops::Range<usize>| -> Result<u32, String> {
        full.get(range)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad time {text:?}"))
    };
    let year = i32::try_from(num(0..4)?).map_err(|_| "bad year")?;
    let date = NaiveDate::from_ymd_opt(year, num(4..6)?, num(6..8)?).ok_or("bad date")?;
    let time =
        NaiveTime::from_hms_opt(num(8..10)?, num(10..12)?, num(12..14)?).ok_or("bad time")?;
    Ok(Utc.from_utc_datetime(&NaiveDateTime::new(date, time)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for bad in [
            &b""[..],
            &[0x30],
            &[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF],
            &[0x30, 0x03, 0x30, 0x01],
            b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----",
            b"-----BEGIN CERTIFICATE-----\nMAA=\n",
        ] {
            assert!(parse_pem_or_der(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn utc_time_windows_the_century() {
        assert_eq!(
            der_time(0x17, b"491231235959Z").unwrap().to_rfc3339(),
            "2049-12-31T23:59:59+00:00"
        );
        assert_eq!(
            der_time(0x17, b"500101000000Z").unwrap().to_rfc3339(),
            "1950-01-01T00:00:00+00:00"
        );
        assert!(der_time(0x17, b"500101000000+0900").is_err());
    }
}
