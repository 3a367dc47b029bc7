//! The terminal's 電子証明書 (electronic certificate): issuer and expiry.
//!
//! Read from a PEM or DER file (`[certificate] file`). Only two fields are needed,
//! so instead of an X.509 crate this walks the DER by hand: `Certificate` →
//! `tbsCertificate` → skip `[0] version`, `serialNumber`, `signature` → `issuer`
//! (the last commonName, else the last organizationName) → `validity.notAfter`
//! (`UTCTime` or `GeneralizedTime`). Anything malformed is an error for the log,
//! never a panic: every length is checked against what is left.
//!
//! On Windows the certificate usually lives in a system certificate store
//! (`[certificate] store`, e.g. `LocalMachine\My`). The store is read as a list of
//! DER certificates, each parsed by the same walk, and [`choose`] picks the one whose
//! subject and issuer contain `match_subject` / `match_issuer` (any name attribute,
//! case-insensitive) and that expires last: a renewed certificate sits beside the old
//! one until someone removes it. Only the enumeration is Windows code (`windows`
//! below, compiled only there). Values set in the settings (`issuer`, `not_after`)
//! fill what the file or store does not give.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use fleet_protocol::report::Certificate;

use super::text::read_small;
use crate::config::CertificateSettings;

/// What the certificate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The issuer's last commonName, else its last organizationName.
    pub issuer: Option<String>,
    pub not_after: DateTime<Utc>,
    /// The subject's last commonName, else its last organizationName.
    pub subject: Option<String>,
    /// Every string attribute of the issuer's and the subject's names, for
    /// `match_issuer` / `match_subject`.
    pub issuer_values: Vec<String>,
    pub subject_values: Vec<String>,
}

/// Where a Windows system store lives (`CERT_SYSTEM_STORE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreLocation {
    LocalMachine,
    CurrentUser,
}

/// A Windows system certificate store: `My`, `LocalMachine\My`, `CurrentUser\My`.
/// Without a location it is the machine's store: the agent runs as a service, and a
/// service account has no useful user store of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreName {
    pub location: StoreLocation,
    pub name: String,
}

impl StoreName {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (location, name) = match text.split_once(['\\', '/']) {
            None => (StoreLocation::LocalMachine, text),
            Some((location, name)) => {
                let location = match location.to_ascii_lowercase().as_str() {
                    "localmachine" => StoreLocation::LocalMachine,
                    "currentuser" => StoreLocation::CurrentUser,
                    _ => {
                        return Err(format!(
                            "{location:?} is not LocalMachine or CurrentUser (e.g. 'LocalMachine\\My')"
                        ));
                    }
                };
                (location, name)
            }
        };
        let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ');
        if !ok {
            return Err(format!("{name:?} is not a store name such as My or Root"));
        }
        Ok(Self {
            location,
            name: name.to_owned(),
        })
    }
}

/// Among the DER certificates of a store, the one that matches and expires last.
/// Entries that do not parse are skipped (stores hold all sorts); the error says how
/// many were looked at when none matches.
pub fn choose<'a>(
    ders: impl IntoIterator<Item = &'a [u8]>,
    match_subject: Option<&str>,
    match_issuer: Option<&str>,
) -> Result<CertInfo, String> {
    let contains = |values: &[String], wanted: Option<&str>| {
        wanted.is_none_or(|wanted| {
            let wanted = wanted.to_lowercase();
            values.iter().any(|v| v.to_lowercase().contains(&wanted))
        })
    };
    let (mut seen, mut unreadable) = (0, 0);
    let mut best: Option<CertInfo> = None;
    for der in ders {
        seen += 1;
        let Ok(info) = parse_der(der) else {
            unreadable += 1;
            continue;
        };
        if contains(&info.subject_values, match_subject)
            && contains(&info.issuer_values, match_issuer)
            && best.as_ref().is_none_or(|b| info.not_after > b.not_after)
        {
            best = Some(info);
        }
    }
    best.ok_or_else(|| {
        format!(
            "none of {seen} certificates ({unreadable} unreadable) has a subject containing {:?} and an issuer containing {:?}",
            match_subject.unwrap_or(""),
            match_issuer.unwrap_or("")
        )
    })
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
        let chosen = store_certificates(store).and_then(|ders| {
            choose(
                ders.iter().map(Vec::as_slice),
                settings.match_subject.as_deref(),
                settings.match_issuer.as_deref(),
            )
        });
        match chosen {
            Ok(info) => {
                cert.issuer = info.issuer.or(cert.issuer);
                cert.not_after = Some(info.not_after.with_timezone(&offset));
            }
            Err(reason) => {
                tracing::warn!(store = ?store, %reason, "certificate not observed from the store");
                return None;
            }
        }
    }
    (cert.issuer.is_some() || cert.not_after.is_some()).then_some(cert)
}

#[cfg(windows)]
fn store_certificates(store: &StoreName) -> Result<Vec<Vec<u8>>, String> {
    windows::store_certificates(store)
}

#[cfg(not(windows))]
fn store_certificates(_store: &StoreName) -> Result<Vec<Vec<u8>>, String> {
    Err("[certificate] store is only read on Windows".to_owned())
}

/// The certificate-store enumeration behind `[certificate] store`. Compiled only on
/// Windows; see `deploy/windows/README.md` for how far it has been checked.
#[cfg(windows)]
mod windows {
    use windows_sys::Win32::Security::Cryptography::{
        CERT_CONTEXT, CERT_STORE_OPEN_EXISTING_FLAG, CERT_STORE_PROV_SYSTEM_W,
        CERT_STORE_READONLY_FLAG, CERT_SYSTEM_STORE_CURRENT_USER, CERT_SYSTEM_STORE_LOCAL_MACHINE,
        CertCloseStore, CertEnumCertificatesInStore, CertOpenStore,
    };

    use super::{StoreLocation, StoreName};

    /// Copies of the DER encodings of every certificate in the store.
    pub fn store_certificates(store: &StoreName) -> Result<Vec<Vec<u8>>, String> {
        let location = match store.location {
            StoreLocation::LocalMachine => CERT_SYSTEM_STORE_LOCAL_MACHINE,
            StoreLocation::CurrentUser => CERT_SYSTEM_STORE_CURRENT_USER,
        };
        let name: Vec<u16> = store
            .name
            .encode_utf16()
            .chain(std::iter::once(0))
            .collect();
        // Read-only, and only a store that exists (never create one by looking).
        // SAFETY: the system provider takes a NUL-terminated UTF-16 name as `pvPara`;
        // `name` outlives the call. Encoding type and provider handle must be 0 here.
        let handle = unsafe {
            CertOpenStore(
                CERT_STORE_PROV_SYSTEM_W,
                0,
                0,
                location | CERT_STORE_READONLY_FLAG | CERT_STORE_OPEN_EXISTING_FLAG,
                name.as_ptr().cast(),
            )
        };
        if handle.is_null() {
            return Err(format!(
                "CertOpenStore({:?}): {}",
                store.name,
                std::io::Error::last_os_error()
            ));
        }
        let mut certificates = Vec::new();
        let mut context: *mut CERT_CONTEXT = std::ptr::null_mut();
        loop {
            // SAFETY: `handle` is open; `context` is null or the context the previous
            // call returned, which this call frees (so it is never used again).
            context = unsafe { CertEnumCertificatesInStore(handle, context) };
            if context.is_null() {
                // The end of the store (or an error): the last context is freed.
                break;
            }
            // SAFETY: a non-null context is valid until the next call; its encoded
            // bytes are `cbCertEncoded` long. They are copied out before that call.
            let der = unsafe {
                let context = &*context;
                std::slice::from_raw_parts(context.pbCertEncoded, context.cbCertEncoded as usize)
                    .to_vec()
            };
            certificates.push(der);
        }
        // SAFETY: opened above, closed once; no context of it is held any more.
        unsafe { CertCloseStore(handle, 0) };
        Ok(certificates)
    }
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
    let subject = expect(validity.rest, SEQUENCE, "subject")?;
    let not_before = tlv(validity.content)?;
    let not_after = tlv(not_before.rest)?;
    let (issuer, issuer_values) = name(issuer.content)?;
    let (subject, subject_values) = name(subject.content)?;
    Ok(CertInfo {
        issuer,
        not_after: der_time(not_after.tag, not_after.content)?,
        subject,
        issuer_values,
        subject_values,
    })
}

/// A Name's last CN (else last O), and all its string values.
fn name(mut rdns: &[u8]) -> Result<(Option<String>, Vec<String>), String> {
    let mut cn = None;
    let mut org = None;
    let mut values = Vec::new();
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
            if let Some(text) = &text {
                values.push(text.clone());
            }
            if oid.content == OID_CN {
                cn = text.or(cn);
            } else if oid.content == OID_O {
                org = text.or(org);
            }
        }
    }
    Ok((cn.or(org), values))
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

    /// A DER certificate from `issuer_cn` for `subject_cn`, expiring in `year`.
    fn cert(issuer_cn: &str, subject_cn: &str, year: i32) -> Vec<u8> {
        use rcgen::{CertificateParams, DnType, Issuer, KeyPair};
        let key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::default();
        ca.distinguished_name
            .push(DnType::OrganizationName, "医療機関等 CA");
        ca.distinguished_name.push(DnType::CommonName, issuer_cn);
        let issuer = Issuer::new(ca, KeyPair::generate().unwrap());
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, subject_cn);
        params.not_after = rcgen::date_time_ymd(year, 3, 31);
        params.signed_by(&key, &issuer).unwrap().der().to_vec()
    }

    #[test]
    fn the_store_certificate_is_the_newest_match() {
        let old = cert("JPKI Test CA", "ONS-PC01", 2027);
        let renewed = cert("JPKI Test CA", "ONS-PC01", 2030);
        let other_issuer = cert("Some Web CA", "ONS-PC01", 2035);
        let other_subject = cert("JPKI Test CA", "printer", 2036);
        let garbage = vec![0x30, 0x03, 0x02, 0x01, 0x00];
        let store = [&old, &garbage, &renewed, &other_issuer, &other_subject];
        let ders = || store.iter().map(|d| d.as_slice());

        let chosen = choose(ders(), Some("ons-pc"), Some("jpki")).unwrap();
        assert_eq!(chosen.subject.as_deref(), Some("ONS-PC01"));
        assert_eq!(chosen.issuer.as_deref(), Some("JPKI Test CA"));
        assert_eq!(chosen.not_after.to_rfc3339(), "2030-03-31T00:00:00+00:00");
        // Any attribute of the name matches, here the issuer's O.
        let by_org = choose(ders(), Some("ONS"), Some("医療機関等")).unwrap();
        assert_eq!(by_org.not_after.to_rfc3339(), "2035-03-31T00:00:00+00:00");
        // No filter: the store's newest certificate.
        let newest = choose(ders(), None, None).unwrap();
        assert_eq!(newest.subject.as_deref(), Some("printer"));

        let err = choose(ders(), Some("ONS-PC02"), None).unwrap_err();
        assert!(
            err.contains("none of 5 certificates (1 unreadable)"),
            "{err}"
        );
        assert!(choose(std::iter::empty(), None, None).is_err());
    }

    #[test]
    fn store_names() {
        let parse = |text| StoreName::parse(text).map(|s| (s.location, s.name));
        assert_eq!(parse("My"), Ok((StoreLocation::LocalMachine, "My".into())));
        assert_eq!(
            parse(r"CurrentUser\My"),
            Ok((StoreLocation::CurrentUser, "My".into()))
        );
        assert_eq!(
            parse("localmachine/Root"),
            Ok((StoreLocation::LocalMachine, "Root".into()))
        );
        for bad in [
            "",
            r"Machine\My",
            r"LocalMachine\",
            r"LocalMachine\My\x",
            "My;",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
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
