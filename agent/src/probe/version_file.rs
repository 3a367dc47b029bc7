//! Installed versions, read from each component's `Version.info`.
//!
//! Files seen on terminals are named like `C:\Program Files\OQS-Auth\Version.info`,
//! but their content has not been seen (domain.md, L). So the parser guesses, in
//! this order, and the first hit wins:
//!
//! 1. a `key = value` or `key: value` line whose key is exactly `version`, `ver` or
//!    `バージョン` (any case): the first dotted version in its value;
//! 2. a line whose key merely contains `version` or `バージョン` (`FileVersion`,
//!    `ProductVersion`, `バージョン情報`): likewise;
//! 3. otherwise the first dotted version anywhere in the file, line by line.
//!
//! A dotted version is digits with at least one dot (`5.1.0`, also within `Ver5.1.0`
//! or `v5.1.0-beta`). Comment lines (`#`, `;`, `//`) are skipped. Nothing found means
//! the component is not observed; it is never reported as `0` or empty.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::text::{decode, find_dotted_version, read_small, split_key_value};

/// The version a `Version.info` content states, if any.
pub fn parse_version_info(bytes: &[u8]) -> Option<String> {
    let text = decode(bytes);
    let mut exact_key = None;
    let mut version_key = None;
    let mut anywhere = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty()
            || line.starts_with('#')
            || line.starts_with(';')
            || line.starts_with("//")
        {
            continue;
        }
        if let Some((key, value)) = split_key_value(line) {
            let key = key.to_lowercase();
            if let Some((found, _)) = find_dotted_version(value) {
                if exact_key.is_none() && matches!(key.as_str(), "version" | "ver" | "バージョン")
                {
                    exact_key = Some(found.to_owned());
                } else if version_key.is_none()
                    && (key.contains("version") || key.contains("バージョン"))
                {
                    version_key = Some(found.to_owned());
                }
            }
        }
        if anywhere.is_none() {
            anywhere = find_dotted_version(line).map(|(found, _)| found.to_owned());
        }
    }
    exact_key.or(version_key).or(anywhere)
}

/// Reads one version file; `Err` says why it gave no version.
pub fn read_version_file(path: &Path) -> Result<String, String> {
    let bytes = read_small(path)?;
    parse_version_info(&bytes)
        .ok_or_else(|| format!("no dotted version found in {}", path.display()))
}

/// Every configured component whose version could be read; `None` if none could.
pub fn probe(files: &BTreeMap<String, PathBuf>) -> Option<BTreeMap<String, String>> {
    probe_with(files, |_, path| read_version_file(path))
}

/// [`probe`], reading each component's file with `read` (the daemon's reuses
/// results of unchanged files).
pub fn probe_with(
    files: &BTreeMap<String, PathBuf>,
    mut read: impl FnMut(&str, &Path) -> Result<String, String>,
) -> Option<BTreeMap<String, String>> {
    let mut versions = BTreeMap::new();
    for (component, path) in files {
        match read(component, path) {
            Ok(version) => {
                versions.insert(component.clone(), version);
            }
            Err(reason) => {
                tracing::warn!(component = %component, %reason, "version not observed");
            }
        }
    }
    (!versions.is_empty()).then_some(versions)
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/version-info/",
                $name
            ))
        };
    }

    #[test]
    fn reads_the_fixture_shapes() {
        let cases: [(&str, &[u8], Option<&str>); 10] = [
            ("plain", fixture!("plain.info"), Some("5.0.3")),
            (
                "key with BOM and CRLF",
                fixture!("bom-crlf.info"),
                Some("5.1.0"),
            ),
            (
                "INI with Japanese labels",
                fixture!("ini-japanese.info"),
                Some("2.4.1"),
            ),
            (
                "ProductVersion after a FileVersion-less header",
                fixture!("product-version.info"),
                Some("1.8.0"),
            ),
            (
                "exact key beats FileVersion",
                fixture!("file-and-version.info"),
                Some("3.2.0"),
            ),
            (
                "UTF-16 LE with BOM",
                fixture!("utf16le.info"),
                Some("5.0.12"),
            ),
            (
                "full-width digits",
                fixture!("full-width.info"),
                Some("5.1.0"),
            ),
            (
                "Shift_JIS labels, ASCII version",
                fixture!("shift-jis.info"),
                Some("2.4.1"),
            ),
            ("garbage", fixture!("garbage.info"), None),
            ("empty", fixture!("empty.info"), None),
        ];
        for (what, bytes, want) in cases {
            assert_eq!(parse_version_info(bytes).as_deref(), want, "{what}");
        }
    }

    #[test]
    fn comments_and_lone_numbers_are_not_versions() {
        assert_eq!(parse_version_info(b"# format 1.0\nbuild=1234\n"), None);
        assert_eq!(
            parse_version_info(b"Version=\nname=x 4.5\n").as_deref(),
            Some("4.5")
        );
    }

    #[test]
    fn a_missing_file_is_not_observed() {
        let files = BTreeMap::from([(
            "face_library".to_owned(),
            PathBuf::from("/nonexistent/Version.info"),
        )]);
        assert_eq!(probe(&files), None);
        assert!(
            read_version_file(Path::new("/nonexistent/Version.info"))
                .unwrap_err()
                .contains("cannot open")
        );
    }
}
