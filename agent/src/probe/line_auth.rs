//! 回線認証 (line authentication): fetch the check page and tell what it says.
//!
//! On a terminal, https://www.lineauth.mnw shows 「回線認証接続済み」 when the line is
//! authenticated, or the buttons 「希望する」/「希望しない」 when it is not (seed 004).
//! The agent only reads the page (a GET), it never presses a button.
//!
//! Classification ([`classify_page`]) is a pure function over the raw bytes, so it is
//! tested against saved pages:
//!
//! - contains 「回線認証接続済み」, or the success page's 「回線認証に成功しました」 ⇒
//!   [`PageKind::Connected`] (checked first: a connected page wins);
//! - contains both 「希望する」 and 「希望しない」 ⇒ [`PageKind::Disconnected`];
//! - anything else ⇒ [`PageKind::Unrelated`], reported as `unreachable`: the contract
//!   defines that as "the check page could not be reached", and a captive portal, a
//!   proxy's error page or an empty answer is not the check page. The log line keeps a
//!   snippet of what came instead.
//!
//! The page's encoding is not known (such pages are often Shift_JIS), so each phrase
//! is searched as UTF-8, Shift_JIS (CP932) and EUC-JP bytes instead of decoding. ASCII
//! white space and HTML tags between the characters are ignored (`回線認証<br>接続済み`);
//! neither can occur inside a multi-byte character in those encodings.
//!
//! Fetching uses a blocking client with one overall timeout (default 5 s): callers on
//! an async runtime run [`check`] in `spawn_blocking`. No proxy is used: the page is
//! only served on the closed network. A non-2xx status, a timeout, a refused
//! connection or a TLS failure ⇒ `unreachable`, with the reason in the log. A
//! `file://` URL reads a saved page instead (everything after `file://` is a path,
//! relative to the working directory unless absolute), for fixtures and examples.
//!
//! The daemon keeps one [`Checker`]: its client is built once (not every 10 s), and a
//! saved page is re-read only when its file changed.

use chrono::FixedOffset;
use fleet_protocol::report::{LineAuth, LineAuthState};

use std::path::Path;

use super::cache::{FileCache, FileStamp};
use super::text::read_small;
use crate::config::LineAuthSettings;

/// A page bigger than this is not the check page; reading stops there.
pub const MAX_PAGE_BYTES: u64 = 256 * 1024;

/// What the fetched page is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageKind {
    /// 「回線認証接続済み」
    Connected,
    /// 「希望する」/「希望しない」 offered.
    Disconnected,
    /// Not the check page.
    Unrelated,
}

impl PageKind {
    /// The wire state: an unrelated page counts as `unreachable`.
    pub fn state(self) -> LineAuthState {
        match self {
            Self::Connected => LineAuthState::Connected,
            Self::Disconnected => LineAuthState::Disconnected,
            Self::Unrelated => LineAuthState::Unreachable,
        }
    }
}

/// One phrase in the encodings a Japanese page may use.
struct Phrase {
    utf8: &'static str,
    cp932: &'static [u8],
    euc_jp: &'static [u8],
}

impl Phrase {
    fn is_in(&self, haystack: &[u8]) -> bool {
        [self.utf8.as_bytes(), self.cp932, self.euc_jp]
            .iter()
            .any(|needle| {
                haystack
                    .windows(needle.len())
                    .any(|window| window == *needle)
            })
    }
}

const CONNECTED: Phrase = Phrase {
    utf8: "回線認証接続済み",
    cp932: b"\x89\xf1\x90\xfc\x94\x46\x8f\xd8\x90\xda\x91\xb1\x8d\xcf\x82\xdd",
    euc_jp: b"\xb2\xf3\xc0\xfe\xc7\xa7\xbe\xda\xc0\xdc\xc2\xb3\xba\xd1\xa4\xdf",
};
const SUCCEEDED: Phrase = Phrase {
    utf8: "回線認証に成功しました",
    cp932:
        b"\x89\xf1\x90\xfc\x94\x46\x8f\xd8\x82\xc9\x90\xac\x8c\xf7\x82\xb5\x82\xdc\x82\xb5\x82\xbd",
    euc_jp:
        b"\xb2\xf3\xc0\xfe\xc7\xa7\xbe\xda\xa4\xcb\xc0\xae\xb8\xf9\xa4\xb7\xa4\xde\xa4\xb7\xa4\xbf",
};
const WANT: Phrase = Phrase {
    utf8: "希望する",
    cp932: b"\x8a\xf3\x96\x5d\x82\xb7\x82\xe9",
    euc_jp: b"\xb4\xf5\xcb\xbe\xa4\xb9\xa4\xeb",
};
const DO_NOT_WANT: Phrase = Phrase {
    utf8: "希望しない",
    cp932: b"\x8a\xf3\x96\x5d\x82\xb5\x82\xc8\x82\xa2",
    euc_jp: b"\xb4\xf5\xcb\xbe\xa4\xb7\xa4\xca\xa4\xa4",
};

/// Tells a check page's kind from its bytes, whatever their encoding.
pub fn classify_page(body: &[u8]) -> PageKind {
    let compact: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let text_only = strip_tags(&compact);
    // Button labels may sit in attributes (`value="希望する"`), so tags count too.
    let seen = |phrase: &Phrase| phrase.is_in(&compact) || phrase.is_in(&text_only);
    if seen(&CONNECTED) || seen(&SUCCEEDED) {
        PageKind::Connected
    } else if seen(&WANT) && seen(&DO_NOT_WANT) {
        PageKind::Disconnected
    } else {
        PageKind::Unrelated
    }
}

fn strip_tags(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut in_tag = false;
    for &b in bytes {
        match b {
            b'<' => in_tag = true,
            b'>' => in_tag = false,
            _ if !in_tag => out.push(b),
            _ => {}
        }
    }
    out
}

/// Fetches the page: the body of a 2xx answer, or why there was none.
pub fn fetch_page(settings: &LineAuthSettings) -> Result<Vec<u8>, String> {
    if let Some(path) = settings.url.strip_prefix("file://") {
        return read_small(Path::new(path));
    }
    fetch_with(&client(settings)?, settings)
}

/// The HTTP client: one overall timeout, no proxy, the configured TLS roots.
fn client(settings: &LineAuthSettings) -> Result<ureq::Agent, String> {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(settings.timeout))
        .proxy(None)
        .http_status_as_error(false)
        .max_redirects(5)
        .user_agent(format!("fleet-agent/{}", crate::AGENT_VERSION))
        .tls_config(tls_config(settings)?)
        .build();
    Ok(ureq::Agent::new_with_config(config))
}

fn fetch_with(agent: &ureq::Agent, settings: &LineAuthSettings) -> Result<Vec<u8>, String> {
    let mut response = agent.get(&settings.url).call().map_err(|err| match err {
        ureq::Error::Timeout(which) => format!("timed out after {:?} ({which})", settings.timeout),
        other => other.to_string(),
    })?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP status {status}"));
    }
    response
        .body_mut()
        .with_config()
        .limit(MAX_PAGE_BYTES)
        .read_to_vec()
        .map_err(|err| format!("reading the page: {err}"))
}

fn tls_config(settings: &LineAuthSettings) -> Result<ureq::tls::TlsConfig, String> {
    let mut builder = ureq::tls::TlsConfig::builder().disable_verification(!settings.tls_verify);
    if let Some(path) = &settings.ca_file {
        let pem = read_small(path)?;
        let mut roots = Vec::new();
        for item in ureq::tls::parse_pem(&pem) {
            match item {
                Ok(ureq::tls::PemItem::Certificate(cert)) => roots.push(cert),
                Ok(_) => {}
                Err(err) => return Err(format!("{}: {err}", path.display())),
            }
        }
        if roots.is_empty() {
            return Err(format!("{}: no certificate in it", path.display()));
        }
        builder = builder.root_certs(ureq::tls::RootCerts::new_with_certs(&roots));
    }
    Ok(builder.build())
}

/// Fetches and classifies the page; never fails, the reason goes to the log.
/// Blocks for up to the configured timeout.
pub fn check(settings: &LineAuthSettings, offset: FixedOffset) -> LineAuth {
    Checker::default().check(settings, offset)
}

/// [`check`] for the daemon, which looks every check interval: the HTTP client (its
/// TLS roots and connection pool) is built once and kept until the CA file changes,
/// and a saved `file://` page is classified again only when the file changed.
#[derive(Debug, Default)]
pub struct Checker {
    /// The client, with the stamp of the CA file it was built from.
    client: Option<(Option<FileStamp>, ureq::Agent)>,
    saved_page: FileCache<LineAuthState>,
}

impl Checker {
    /// As [`check`].
    pub fn check(&mut self, settings: &LineAuthSettings, offset: FixedOffset) -> LineAuth {
        let state = match settings.url.strip_prefix("file://") {
            Some(path) => {
                let path = Path::new(path);
                self.saved_page
                    .get(path, || state_of(read_small(path), settings))
            }
            None => {
                let page = self
                    .client(settings)
                    .and_then(|agent| fetch_with(agent, settings));
                state_of(page, settings)
            }
        };
        LineAuth {
            state,
            checked_at: Some(super::now(offset)),
        }
    }

    fn client(&mut self, settings: &LineAuthSettings) -> Result<&ureq::Agent, String> {
        let ca_stamp = settings.ca_file.as_deref().and_then(FileStamp::of);
        let (_, agent) = match self.client.take() {
            Some((built_from, agent)) if built_from == ca_stamp => {
                self.client.insert((built_from, agent))
            }
            _ => self.client.insert((ca_stamp, client(settings)?)),
        };
        Ok(agent)
    }
}

/// The wire state of a fetched page (or of the reason there is none), logged unless
/// connected or disconnected.
fn state_of(page: Result<Vec<u8>, String>, settings: &LineAuthSettings) -> LineAuthState {
    match page {
        Ok(body) => {
            let kind = classify_page(&body);
            if kind == PageKind::Unrelated {
                tracing::warn!(url = %settings.url, snippet = %snippet(&body), "line_auth unreachable: the answer is not the 回線認証 page");
            }
            kind.state()
        }
        Err(reason) => {
            tracing::warn!(url = %settings.url, %reason, "line_auth unreachable");
            LineAuthState::Unreachable
        }
    }
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(400)]);
    let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    words.chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/line-auth/",
                $name
            ))
        };
    }

    #[test]
    fn saved_pages() {
        let cases: [(&str, &[u8], PageKind); 9] = [
            (
                "connected, UTF-8",
                fixture!("connected.html"),
                PageKind::Connected,
            ),
            (
                "connected, Shift_JIS",
                fixture!("connected-sjis.html"),
                PageKind::Connected,
            ),
            (
                "connected, phrase split by a tag",
                fixture!("connected-split.html"),
                PageKind::Connected,
            ),
            (
                "success after pressing 希望する",
                fixture!("success.html"),
                PageKind::Connected,
            ),
            (
                "disconnected, buttons",
                fixture!("disconnected.html"),
                PageKind::Disconnected,
            ),
            (
                "disconnected, Shift_JIS inputs",
                fixture!("disconnected-sjis.html"),
                PageKind::Disconnected,
            ),
            (
                "disconnected, EUC-JP",
                fixture!("disconnected-eucjp.html"),
                PageKind::Disconnected,
            ),
            (
                "proxy error page",
                fixture!("unrelated.html"),
                PageKind::Unrelated,
            ),
            (
                "only one of the buttons",
                fixture!("half-form.html"),
                PageKind::Unrelated,
            ),
        ];
        for (what, body, want) in cases {
            assert_eq!(classify_page(body), want, "{what}");
        }
    }

    #[test]
    fn unrelated_means_unreachable_on_the_wire() {
        assert_eq!(classify_page(b"").state(), LineAuthState::Unreachable);
        assert_eq!(PageKind::Connected.state(), LineAuthState::Connected);
        assert_eq!(PageKind::Disconnected.state(), LineAuthState::Disconnected);
    }

    #[test]
    fn the_encoded_phrases_are_the_right_ones() {
        // Guards the byte constants: each must be found in the matching fixture, and
        // not in the UTF-8 one (so a wrong constant cannot hide behind the UTF-8 match).
        let sjis = fixture!("connected-sjis.html");
        assert!(
            CONNECTED.cp932.len() > 8
                && sjis
                    .windows(CONNECTED.cp932.len())
                    .any(|w| w == CONNECTED.cp932)
        );
        let sjis = fixture!("disconnected-sjis.html");
        for phrase in [&WANT, &DO_NOT_WANT] {
            assert!(sjis.windows(phrase.cp932.len()).any(|w| w == phrase.cp932));
        }
        let euc = fixture!("disconnected-eucjp.html");
        for phrase in [&WANT, &DO_NOT_WANT] {
            assert!(euc.windows(phrase.euc_jp.len()).any(|w| w == phrase.euc_jp));
        }
        let success_sjis: Vec<u8> = SUCCEEDED.cp932.to_vec();
        assert_eq!(classify_page(&success_sjis), PageKind::Connected);
        assert_eq!(classify_page(SUCCEEDED.euc_jp), PageKind::Connected);
    }
}
