//! Reader errors (`reader.errors`) taken from the card reader software's log files.
//!
//! The makers do not publish their log formats, so each maker has a few built-in
//! regular expressions for the shapes below (documented guesses, exercised by the
//! Japanese fixtures in `agent/tests/fixtures/reader-log/`), and the settings can add
//! patterns or replace the built-ins (`[reader.log] patterns`, `builtin_patterns`).
//! A pattern names its captures: `code` (required), `message`, `detail` (used as the
//! message when `message` is empty) and `at` (a time in any shape
//! [`super::text::parse_timestamp`] reads; without it the time the line was read).
//!
//! | maker | assumed line |
//! |---|---|
//! | `fujitsu` (Caora) | `2026/01/20 07:03:12.345 [ERR ] FaceAuth 【FUJP55:タイムアウト】 …` |
//! | `panasonic` | `2026-01-20 07:03:12,ERROR,011,ネットワークエラー,…` (CSV) |
//! | `atlas` (EXC-9000) | `[2026/01/20 07:03:12] ERROR code=011 msg="ネットワークエラー"` |
//! | `almex` (Sma-pa マイナタッチ) | `2026-01-20T07:03:12+09:00 <E> 【011:ネットワークエラー】…`, `… <E> 戻り値:0x81000001 重複登録` |
//! | `canon` (Hi-CARA) | `2026/01/20 07:03:12 エラー 【906】 システムへの接続に失敗しました` |
//! | `other` | any `【code:message】` |
//!
//! Files are tailed: each check reads what was appended since the last one (whole
//! lines only), restarts from the top of a file that shrank (rotation), and picks up
//! new files matching a `*` pattern (date-named logs). Offsets persist in
//! `<state_dir>/reader-log-offsets` once the report carrying the errors is spooled;
//! a crash in between re-reads those lines (errors may repeat, never vanish). On the
//! very first start the existing content is skipped: years of old errors are not news.
//!
//! Errors are deduplicated between reports by code and message: one entry with the
//! first time seen and a count.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset};
use fleet_protocol::report::{ReaderError, ReaderMaker};
use regex::Regex;

use super::text::{decode, parse_timestamp};

/// At most this much is read from one file per check; the rest waits for the next.
pub const MAX_READ_PER_CHECK: u64 = 1024 * 1024;

/// Built-in patterns per maker.
pub fn builtin_patterns(maker: Option<ReaderMaker>) -> &'static [&'static str] {
    match maker {
        Some(ReaderMaker::Fujitsu) => &[
            r"^(?P<at>\d{4}/\d{1,2}/\d{1,2} \d{1,2}:\d{2}:\d{2})(?:\.\d+)?\s+\[(?:ERR|ERROR|WARN)\s*\].*?【(?P<code>[0-9A-Za-z]+)[:：](?P<message>[^】]*)】\s*(?P<detail>.*)$",
        ],
        Some(ReaderMaker::Panasonic) => &[
            r"^(?P<at>\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2})(?:\.\d+)?,(?:ERROR|ERR|E),(?P<code>[^,]+),(?P<message>[^,]*)(?:,(?P<detail>.*))?$",
        ],
        Some(ReaderMaker::Atlas) => &[
            r#"^\[(?P<at>[^\]]+)\]\s+(?:ERROR|ERR)\s+code=(?P<code>[0-9A-Za-z]+)\s+msg="?(?P<message>[^"]*)"?"#,
        ],
        Some(ReaderMaker::Almex) => &[
            r"^(?P<at>\S+)\s+<E>\s+【(?P<code>[0-9A-Za-z]+)[:：](?P<message>[^】]*)】\s*(?P<detail>.*)$",
            r"^(?P<at>\S+)\s+<E>\s+戻り値[:：]\s*(?P<code>0x[0-9A-Fa-f]+)\s*(?P<message>.*)$",
        ],
        Some(ReaderMaker::Canon) => &[
            r"^(?P<at>\d{4}/\d{1,2}/\d{1,2} \d{1,2}:\d{2}:\d{2})\s+エラー\s+【(?P<code>[0-9A-Za-z]+)(?:[:：](?P<message>[^】]*))?】\s*(?P<detail>.*)$",
        ],
        Some(ReaderMaker::Other) | None => {
            &[r"【(?P<code>[0-9A-Za-z]+)[:：]?(?P<message>[^】]*)】"]
        }
    }
}

/// The patterns of one maker, compiled.
#[derive(Debug, Clone)]
pub struct LineParser {
    patterns: Vec<Regex>,
}

impl LineParser {
    /// Compiles `extra` (after the built-ins unless `builtin` is false). The error
    /// names the pattern at fault.
    pub fn new(
        maker: Option<ReaderMaker>,
        builtin: bool,
        extra: &[String],
    ) -> Result<Self, String> {
        let builtins = if builtin {
            builtin_patterns(maker)
        } else {
            &[]
        };
        let mut patterns = Vec::new();
        for source in builtins
            .iter()
            .copied()
            .chain(extra.iter().map(String::as_str))
        {
            let regex = Regex::new(source).map_err(|err| format!("pattern {source:?}: {err}"))?;
            if !regex.capture_names().any(|n| n == Some("code")) {
                return Err(format!("pattern {source:?} has no (?P<code>…) group"));
            }
            patterns.push(regex);
        }
        if patterns.is_empty() {
            return Err("no patterns: builtin_patterns = false needs patterns".to_owned());
        }
        Ok(Self { patterns })
    }

    /// One error from one line, if a pattern matches. `now` stands in for a missing
    /// or unreadable time.
    pub fn parse_line(
        &self,
        line: &str,
        offset: FixedOffset,
        now: DateTime<FixedOffset>,
    ) -> Option<ReaderError> {
        let line = line.trim_end_matches(['\r', '\n']);
        let caps = self.patterns.iter().find_map(|p| p.captures(line))?;
        let code = caps.name("code")?.as_str().trim().to_owned();
        if code.is_empty() {
            return None;
        }
        let pick = |name: &str| {
            caps.name(name)
                .map(|m| m.as_str().trim())
                .filter(|s| !s.is_empty())
        };
        let message = pick("message")
            .or_else(|| pick("detail"))
            .map(str::to_owned);
        let at = pick("at")
            .and_then(|raw| parse_timestamp(raw, offset))
            .unwrap_or(now);
        Some(ReaderError {
            code,
            message,
            at,
            count: 1,
        })
    }

    /// Every error in a chunk of log text.
    pub fn parse_text(
        &self,
        text: &str,
        offset: FixedOffset,
        now: DateTime<FixedOffset>,
    ) -> Vec<ReaderError> {
        text.lines()
            .filter_map(|line| self.parse_line(line, offset, now))
            .collect()
    }
}

/// Errors since the previous report, deduplicated by code and message.
#[derive(Debug, Clone, Default)]
pub struct ErrorTally {
    entries: BTreeMap<(String, Option<String>), ReaderError>,
}

impl ErrorTally {
    pub fn add(&mut self, error: ReaderError) {
        let key = (error.code.clone(), error.message.clone());
        self.entries
            .entry(key)
            .and_modify(|e| {
                e.count = e.count.saturating_add(error.count);
                if error.at < e.at {
                    e.at = error.at;
                }
            })
            .or_insert(error);
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The tally as the wire's list, first seen first.
    pub fn to_wire(&self) -> Vec<ReaderError> {
        let mut list: Vec<ReaderError> = self.entries.values().cloned().collect();
        list.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.code.cmp(&b.code)));
        list
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

/// The `*` in the last component of a configured path matches any run of
/// characters; other paths name one file.
pub fn expand(pattern: &Path) -> Vec<PathBuf> {
    let Some(name) = pattern.file_name().and_then(|n| n.to_str()) else {
        return vec![pattern.to_owned()];
    };
    if !name.contains('*') {
        return vec![pattern.to_owned()];
    }
    let dir = pattern
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(|n| wildcard(name, n)))
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

fn wildcard(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i == parts.len() - 1 {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// Where reading stopped in each log file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Offsets {
    pub files: BTreeMap<PathBuf, u64>,
}

impl Offsets {
    /// `None` when no offsets were ever saved (the first start).
    pub fn load(path: &Path) -> Option<Self> {
        let text = fs::read_to_string(path).ok()?;
        match serde_json::from_str(&text) {
            Ok(offsets) => Some(offsets),
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "reader log offsets unreadable; starting over");
                Some(Self::default())
            }
        }
    }

    /// Written through a temporary file and a rename, so it is old or new, never torn.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        let json = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        fs::write(&tmp, json)?;
        fs::rename(&tmp, path)
    }
}

/// Reads what was appended to `path` since `from`: returns the text of the complete
/// lines and the new offset.
pub fn read_new_lines(path: &Path, from: u64) -> std::io::Result<(String, u64)> {
    let mut file = fs::File::open(path)?;
    let len = file.metadata()?.len();
    // A shorter file was rotated or rewritten: start over.
    let start = if len < from { 0 } else { from };
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(MAX_READ_PER_CHECK).read_to_end(&mut bytes)?;
    // Only whole lines: the writer may be mid-line.
    let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    bytes.truncate(whole);
    Ok((decode(&bytes), start + whole as u64))
}

/// The daemon's view of the reader logs: where it stopped reading, and the errors
/// read since the last report.
#[derive(Debug)]
pub struct ReaderLogTail {
    files: Vec<PathBuf>,
    parser: LineParser,
    state_path: PathBuf,
    /// Read up to here (advanced by [`Self::poll`]).
    read: Offsets,
    /// What the state file holds: unchanged offsets are not written again.
    saved: Offsets,
    tally: ErrorTally,
}

impl ReaderLogTail {
    /// Loads the saved offsets from `state_dir`; on the first start ever, skips what
    /// the logs already hold.
    pub fn new(settings: &crate::config::ReaderLogSettings, state_dir: &Path) -> Self {
        let state_path = state_dir.join("reader-log-offsets");
        let read = match Offsets::load(&state_path) {
            Some(offsets) => offsets,
            None => {
                let mut offsets = Offsets::default();
                for pattern in &settings.files {
                    for file in expand(pattern) {
                        if let Ok(meta) = fs::metadata(&file) {
                            offsets.files.insert(file, meta.len());
                        }
                    }
                }
                if let Err(err) =
                    fs::create_dir_all(state_dir).and_then(|()| offsets.save(&state_path))
                {
                    tracing::warn!(error = %err, "cannot save reader log offsets");
                }
                offsets
            }
        };
        Self {
            files: settings.files.clone(),
            parser: settings.parser.clone(),
            state_path,
            saved: read.clone(),
            read,
            tally: ErrorTally::default(),
        }
    }

    /// Reads what the logs gained; returns how many error lines were new.
    pub fn poll(&mut self, offset: FixedOffset, now: DateTime<FixedOffset>) -> usize {
        let mut new = 0;
        for pattern in &self.files {
            for file in expand(pattern) {
                let from = self.read.files.get(&file).copied().unwrap_or(0);
                // Nothing appended, the usual case: one stat instead of open and read.
                if fs::metadata(&file).is_ok_and(|meta| meta.len() == from) {
                    continue;
                }
                match read_new_lines(&file, from) {
                    Ok((text, to)) => {
                        for error in self.parser.parse_text(&text, offset, now) {
                            self.tally.add(error);
                            new += 1;
                        }
                        self.read.files.insert(file, to);
                    }
                    Err(err) => {
                        tracing::debug!(file = %file.display(), error = %err, "reader log not readable");
                    }
                }
            }
        }
        new
    }

    /// The errors read since the last [`Self::commit`], or `None` if there are none.
    pub fn errors(&self) -> Option<Vec<ReaderError>> {
        (!self.tally.is_empty()).then(|| self.tally.to_wire())
    }

    /// The errors are in a spooled report: forget them and remember where reading
    /// stopped.
    pub fn commit(&mut self) {
        self.tally.clear();
        if self.read == self.saved {
            return;
        }
        match self.read.save(&self.state_path) {
            Ok(()) => self.saved = self.read.clone(),
            Err(err) => {
                tracing::warn!(error = %err, "cannot save reader log offsets; errors may repeat after a restart");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_date_named_logs() {
        assert!(wildcard("CaoraLog_*.log", "CaoraLog_20260120.log"));
        assert!(!wildcard("CaoraLog_*.log", "CaoraLog_20260120.txt"));
        assert!(wildcard("*", "x"));
        assert!(wildcard("a*b*c", "a-b-c"));
        assert!(!wildcard("a*b*c", "a-c"));
    }

    #[test]
    fn a_pattern_without_code_is_refused() {
        let err = LineParser::new(None, false, &["(?P<message>.*)".to_owned()]).unwrap_err();
        assert!(err.contains("code"), "{err}");
        assert!(LineParser::new(None, false, &["(".to_owned()]).is_err());
        assert!(LineParser::new(None, false, &[]).is_err());
    }
}
