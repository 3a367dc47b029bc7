//! The rules for one terminal (contract §6): its state, its recent reader errors, its
//! clinic's hours, the maintenance windows and an instant in; findings out.
//!
//! Why the rules remember [`Condition`]s: "down for 10 minutes" and "stays active
//! until the condition clears" need to know when a condition began and whether it was
//! already raised, and the merged [`TerminalState`] keeps only the *latest*
//! observation of each field. So the store hands back what the previous evaluation
//! returned (a handful of small values per terminal, or
//! [`Condition::from_finding`] of the findings it holds) and stores what this one
//! returns. With that, the same inputs always give the same findings, at ingest, in
//! the sweep and in a replay.
//!
//! Clinic hours gate *raising* `line_auth_down`, `silent` and `reader_fault`: a
//! condition that begins while the clinic is closed is remembered but not raised
//! until it opens (and never, if it clears first). Once raised, a finding stays until
//! its condition clears, whatever the hours. `silent` also needs the clinic to have
//! been open for the whole silent threshold: at 08:35 a terminal that staff switch on
//! at 08:40 is not yet silent.

use chrono::{DateTime, FixedOffset, TimeDelta};
use serde::{Deserialize, Serialize};

use super::finding::{Finding, FindingKind, FindingStatus, Severity, instruction};
use super::hours::ClinicHours;
use super::reader::{ErrorSide, classify};
use super::windows::{MaintenanceWindow, explaining_window_during};
use crate::campaign::{Campaign, CampaignState, Cause, DistributionWindow, JST};
use crate::report::{LineAuthState, ReaderError};
use crate::state::TerminalState;

/// The settings of §6, with the contract's defaults.
/// Not serde: settings are read by the service (in minutes) and built into this.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// `line_auth_down` after the line has been down this long (10 min).
    pub line_auth_down_after: TimeDelta,
    /// `silent` after no report for this long (20 min).
    pub silent_after: TimeDelta,
    /// `reader_fault` at this many device- or network-side errors (3)…
    pub reader_fault_errors: u64,
    /// …within this span before the evaluation instant (15 min).
    pub reader_fault_within: TimeDelta,
    /// `certificate_expiring` at this many days left or fewer (90).
    pub certificate_expiring_days: i64,
    /// …and `urgent` at this many or fewer (7).
    pub certificate_urgent_days: i64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            line_auth_down_after: TimeDelta::minutes(10),
            silent_after: TimeDelta::minutes(20),
            reader_fault_errors: 3,
            reader_fault_within: TimeDelta::minutes(15),
            certificate_expiring_days: 90,
            certificate_urgent_days: 7,
        }
    }
}

/// A condition that holds on a terminal, raised as a finding or not yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    pub kind: FindingKind,
    /// The campaign id for `campaign` (one per campaign); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// When it began.
    #[serde(with = "crate::rfc3339")]
    pub since: DateTime<FixedOffset>,
    /// Whether it has been raised (so hours no longer gate it).
    pub raised: bool,
}

impl Condition {
    /// What the store knows from a finding it holds that is not resolved.
    pub fn from_finding(finding: &Finding) -> Self {
        Self {
            kind: finding.kind,
            campaign: finding.campaign.clone(),
            since: finding.since,
            raised: true,
        }
    }
}

/// A campaign and the one fact about the terminal that [`Campaign::assess`] needs
/// from the history.
#[derive(Clone, Copy, Debug)]
pub struct CampaignInput<'a> {
    pub campaign: &'a Campaign,
    /// Whether any report of the terminal was observed inside a distribution window.
    pub seen_during_distribution: bool,
}

/// Everything the rules read about one terminal.
#[derive(Clone, Copy, Debug)]
pub struct TerminalInput<'a> {
    pub state: &'a TerminalState,
    /// Its reader errors with `at` in the last [`Thresholds::reader_fault_within`] at
    /// least (older ones are ignored, so passing more is harmless).
    pub recent_reader_errors: &'a [ReaderError],
    pub hours: &'a ClinicHours,
    /// The windows that apply to its tenant (scope `all` and its own; see
    /// [`MaintenanceWindow::applies_to`]).
    pub windows: &'a [MaintenanceWindow],
    pub campaigns: &'a [CampaignInput<'a>],
    /// The conditions the previous evaluation returned (empty for a new terminal).
    pub previous: &'a [Condition],
}

/// What one evaluation found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evaluation {
    /// Raised findings, `active` or `suppressed`. A finding the store holds whose kind
    /// (and campaign) is missing here is resolved.
    pub findings: Vec<Finding>,
    /// Every condition that holds, raised or not; hand them back next time.
    pub conditions: Vec<Condition>,
}

/// Whole days from `now` to `not_after`, rounded down (negative once expired).
///
/// Unlike [`crate::campaign::days_until`], which truncates toward zero, this floors,
/// so one second after expiry is day −1 and `certificate_expired` agrees with it.
pub fn days_left(not_after: DateTime<FixedOffset>, now: DateTime<FixedOffset>) -> i64 {
    (not_after - now).num_seconds().div_euclid(86_400)
}

/// The verified general-purpose NFC readers (seed 004). `RC-S300` is not `RC-S300/S1`.
pub const VERIFIED_NFC_READERS: [&str; 6] = [
    "ADR-MNICU3",
    "USB-NFC4/E",
    "CIR315A-02",
    "M-1850S-N2",
    "MR-ICA001BK",
    "RC-S300/S1",
];

/// Whether an NFC reader model is verified: the model itself, or its last word after
/// a maker's name (`ソニー RC-S300/S1`), compared without case.
pub fn nfc_reader_verified(model: &str) -> bool {
    let model = model.trim().to_uppercase();
    let last = model.split_whitespace().last().unwrap_or("");
    VERIFIED_NFC_READERS
        .iter()
        .any(|v| *v == model || *v == last)
}

struct Ctx<'a, 'b> {
    input: &'b TerminalInput<'a>,
    now: DateTime<FixedOffset>,
    out: Evaluation,
}

impl Ctx<'_, '_> {
    fn previous(&self, kind: FindingKind, campaign: Option<&str>) -> Option<&Condition> {
        self.input
            .previous
            .iter()
            .find(|c| c.kind == kind && c.campaign.as_deref() == campaign)
    }

    /// Records a holding condition; returns its `since` and whether it is raised.
    fn hold(
        &mut self,
        kind: FindingKind,
        campaign: Option<&str>,
        observed_since: DateTime<FixedOffset>,
        raise_now: impl FnOnce(DateTime<FixedOffset>) -> bool,
    ) -> (DateTime<FixedOffset>, bool) {
        let prev = self.previous(kind, campaign).cloned();
        let since = prev
            .as_ref()
            .map_or(observed_since, |p| p.since)
            .min(self.now);
        let raised = prev.is_some_and(|p| p.raised) || raise_now(since);
        self.out.conditions.push(Condition {
            kind,
            campaign: campaign.map(str::to_string),
            since,
            raised,
        });
        (since, raised)
    }

    fn finding(
        &self,
        kind: FindingKind,
        severity: Severity,
        since: DateTime<FixedOffset>,
    ) -> Finding {
        let state = self.input.state;
        let (ja, en) = instruction(kind);
        Finding {
            kind,
            severity,
            status: FindingStatus::Active,
            since,
            terminal_id: Some(state.terminal_id),
            clinic_code: Some(state.clinic_code),
            prefecture: Some(state.clinic_code.prefecture()),
            area: Some(state.clinic_code.area()),
            campaign: None,
            state: None,
            cause: None,
            days_left: None,
            detail: String::new(),
            window_id: None,
            incident_id: None,
            instruction_ja: ja.to_string(),
            instruction_en: en.to_string(),
        }
    }

    /// Marks a finding an announced window explains: suppressed while the window
    /// lasts, active (with the same `window_id`) once it has ended.
    ///
    /// Contract §6 matches by `since` alone, and so does this, although for `silent`
    /// (whose `since` is the last report, sent just before an outage cut the line)
    /// it means an outage rarely explains silence; the session note says so.
    fn apply_windows(&self, finding: &mut Finding) {
        let area = self.input.state.clinic_code.area();
        let found = explaining_window_during(
            self.input.windows,
            finding.kind,
            area,
            finding.since,
            finding.since,
        );
        if let Some(w) = found {
            finding.window_id = Some(w.id.clone());
            if self.now < w.ends_at {
                finding.status = FindingStatus::Suppressed;
            }
            finding.detail = format!("{}(計画メンテナンス: {})", finding.detail, w.title);
        }
    }
}

fn jst_text(t: DateTime<FixedOffset>) -> String {
    t.with_timezone(&JST).format("%Y-%m-%d %H:%M").to_string()
}

/// Evaluates every terminal rule of §6 at `now`. Never panics; every `since` is at or
/// before `now`.
pub fn evaluate_terminal(
    input: &TerminalInput<'_>,
    now: DateTime<FixedOffset>,
    thresholds: &Thresholds,
) -> Evaluation {
    let mut ctx = Ctx {
        input,
        now,
        out: Evaluation::default(),
    };
    let state = input.state;
    let hours = input.hours;
    let open = hours.is_open(now);

    // 回線認証
    if let Some(line) = state
        .line_auth
        .as_ref()
        .filter(|o| o.value != LineAuthState::Connected)
    {
        let after = thresholds.line_auth_down_after;
        let (since, raised) = ctx.hold(FindingKind::LineAuthDown, None, line.at, |since| {
            open && now - since >= after
        });
        if raised {
            let mut f = ctx.finding(FindingKind::LineAuthDown, Severity::Urgent, since);
            f.cause = Some(line.value.as_str().to_string());
            f.detail = match line.value {
                LineAuthState::Unreachable => format!(
                    "回線認証の確認ページに接続できません({} から)",
                    jst_text(since)
                ),
                _ => format!("回線認証が切断されています({} から)", jst_text(since)),
            };
            ctx.apply_windows(&mut f);
            ctx.out.findings.push(f);
        }
    }

    // silent
    let last = state.last_observed_at;
    if now - last >= thresholds.silent_after {
        let after = thresholds.silent_after;
        // Its `since` is the last report, not a remembered one: a new report ends it.
        let prev_raised = ctx
            .previous(FindingKind::Silent, None)
            .is_some_and(|p| p.raised && p.since == last);
        let raised = prev_raised || (open && hours.open_throughout(now, after));
        ctx.out.conditions.push(Condition {
            kind: FindingKind::Silent,
            campaign: None,
            since: last,
            raised,
        });
        if raised {
            let mut f = ctx.finding(FindingKind::Silent, Severity::Ticket, last);
            f.detail = format!("最後の報告は {} です", jst_text(last));
            ctx.apply_windows(&mut f);
            ctx.out.findings.push(f);
        }
    }

    reader_fault(&mut ctx, thresholds, open);

    if let Some(hub) = state.reader_via_usb_hub.as_ref().filter(|o| o.value) {
        let (since, _) = ctx.hold(FindingKind::ReaderOnUsbHub, None, hub.at, |_| true);
        let mut f = ctx.finding(FindingKind::ReaderOnUsbHub, Severity::Ticket, since);
        f.detail = "顔認証付きカードリーダーがUSBハブ経由で接続されています".to_string();
        ctx.out.findings.push(f);
    }

    if let Some(nfc) = state
        .nfc_model
        .as_ref()
        .filter(|o| !nfc_reader_verified(&o.value))
    {
        let (since, _) = ctx.hold(FindingKind::NfcReaderUnverified, None, nfc.at, |_| true);
        let mut f = ctx.finding(FindingKind::NfcReaderUnverified, Severity::Ticket, since);
        f.cause = Some(nfc.value.clone());
        f.detail = format!(
            "汎用カードリーダー「{}」は動作確認済みの機種ではありません",
            nfc.value
        );
        ctx.out.findings.push(f);
    }

    certificate(&mut ctx, thresholds);
    campaigns(&mut ctx);
    ctx.out
}

fn reader_fault(ctx: &mut Ctx<'_, '_>, thresholds: &Thresholds, open: bool) {
    let now = ctx.now;
    let state = ctx.input.state;
    let maker = state.reader_maker.as_ref().map(|o| o.value);
    let from = now - thresholds.reader_fault_within;
    let mut counted: Vec<(&ReaderError, ErrorSide)> = ctx
        .input
        .recent_reader_errors
        .iter()
        .filter(|e| from <= e.at && e.at <= now)
        .map(|e| (e, classify(maker, &e.code, e.message.as_deref()).side))
        .filter(|(_, side)| side.is_fault())
        .collect();
    counted.sort_by_key(|(e, _)| e.at);
    let total: u64 = counted.iter().map(|(e, _)| u64::from(e.count)).sum();
    let network: u64 = counted
        .iter()
        .filter(|(_, s)| *s == ErrorSide::Network)
        .map(|(e, _)| u64::from(e.count))
        .sum();
    let disconnected = state.reader_connected.as_ref().filter(|o| !o.value);
    let by_errors = total >= thresholds.reader_fault_errors;
    if !by_errors && disconnected.is_none() {
        return;
    }
    // When the count reached the threshold: the error that made it so.
    let mut crossing = None;
    let mut running = 0u64;
    for (e, _) in &counted {
        running += u64::from(e.count);
        if running >= thresholds.reader_fault_errors {
            crossing = Some(e.at);
            break;
        }
    }
    let observed = match (crossing.filter(|_| by_errors), disconnected) {
        (Some(a), Some(d)) => a.min(d.at),
        (Some(a), None) => a,
        (None, Some(d)) => d.at,
        (None, None) => now,
    };
    let (since, raised) = ctx.hold(FindingKind::ReaderFault, None, observed, |_| open);
    if !raised {
        return;
    }
    let mut f = ctx.finding(FindingKind::ReaderFault, Severity::Urgent, since);
    // The code seen most often decides the remedy read to the clinic.
    let mut codes: Vec<(String, u64)> = Vec::new();
    for (e, _) in &counted {
        match codes.iter_mut().find(|(c, _)| *c == e.code) {
            Some((_, n)) => *n += u64::from(e.count),
            None => codes.push((e.code.clone(), u64::from(e.count))),
        }
    }
    codes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let listed: Vec<String> = codes.iter().map(|(c, n)| format!("{c}×{n}")).collect();
    if disconnected.is_some() {
        f.cause = Some("disconnected".to_string());
        f.detail = "顔認証付きカードリーダーが資格確認端末に接続されていません".to_string();
        f.instruction_ja = "カードリーダーと資格確認端末をつなぐUSBケーブルを確認し(USBハブは使わず直接接続)、カードリーダーと端末を再起動してください。".to_string();
        f.instruction_en = "Check the USB cable between reader and terminal (directly, no hub) and restart the reader and the terminal.".to_string();
        if !listed.is_empty() {
            f.detail = format!("{}。直近のエラー: {}", f.detail, listed.join(", "));
        }
    } else if let Some((code, _)) = codes.first() {
        let c = classify(maker, code, None);
        f.cause = Some(code.clone());
        f.detail = format!(
            "直近{}分のカードリーダーのエラー: {}({})",
            thresholds.reader_fault_within.num_minutes(),
            listed.join(", "),
            c.meaning_ja
        );
        f.instruction_ja = c.remedy_ja.to_string();
        f.instruction_en = c.remedy_en.to_string();
    }
    // Only a fault the network explains can be suppressed by an outage window.
    let network_side = disconnected.is_none() && network >= thresholds.reader_fault_errors;
    if network_side {
        ctx.apply_windows(&mut f);
    }
    ctx.out.findings.push(f);
}

fn certificate(ctx: &mut Ctx<'_, '_>, thresholds: &Thresholds) {
    let Some(not_after) = ctx
        .input
        .state
        .certificate_not_after
        .as_ref()
        .map(|o| o.value)
    else {
        return;
    };
    let left = days_left(not_after, ctx.now);
    let (kind, severity, since) = if left < 0 {
        (FindingKind::CertificateExpired, Severity::Urgent, not_after)
    } else if left <= thresholds.certificate_expiring_days {
        // `left <= N` holds from the instant fewer than N+1 whole days remain.
        let since = not_after - TimeDelta::days(thresholds.certificate_expiring_days + 1);
        let severity = if left <= thresholds.certificate_urgent_days {
            Severity::Urgent
        } else {
            Severity::Ticket
        };
        (FindingKind::CertificateExpiring, severity, since)
    } else {
        return;
    };
    let since = since.min(ctx.now);
    ctx.out.conditions.push(Condition {
        kind,
        campaign: None,
        since,
        raised: true,
    });
    let mut f = ctx.finding(kind, severity, since);
    f.days_left = Some(left);
    f.detail = if left < 0 {
        format!(
            "電子証明書は {} に有効期限が切れました",
            jst_text(not_after)
        )
    } else {
        format!(
            "電子証明書の有効期限は {}(残り{}日)",
            jst_text(not_after),
            left
        )
    };
    ctx.out.findings.push(f);
}

fn campaigns(ctx: &mut Ctx<'_, '_>) {
    let now = ctx.now;
    let state = ctx.input.state;
    for input in ctx.input.campaigns {
        let campaign = input.campaign;
        let a = campaign.assess(state, input.seen_during_distribution, now);
        if a.state == CampaignState::Updated {
            continue;
        }
        let (since, _) = ctx.hold(
            FindingKind::Campaign,
            Some(&campaign.id),
            state.last_observed_at,
            |_| true,
        );
        let mut f = ctx.finding(FindingKind::Campaign, Severity::Ticket, since);
        f.campaign = Some(campaign.id.clone());
        f.state = Some(a.state);
        f.cause = Some(a.cause.as_str().to_string());
        f.detail = format!("{}: {}", campaign.title_ja, a.state.as_str());
        f.instruction_ja = a.cause.instruction_ja().to_string();
        f.instruction_en = a.cause.instruction_en().to_string();
        if a.cause == Cause::PoweredOffDuringDistribution && all_day_since(campaign, now) {
            // From the all-day phase (01-31 for 5.1.0) there is no night to wait for.
            f.instruction_ja = "現在は終日配信されています。端末とカードリーダーの電源を入れたままにし、配信アプリケーション管理ツールの「配信実績の確認」でダウンロードを確認したら端末を再起動してください。届かない場合は「今すぐダウンロード」を実行してください。".to_string();
            f.instruction_en = "Distribution now runs all day. Keep the terminal and reader on, check 「配信実績の確認」 in the management tool, then restart the terminal; if nothing arrives, run 「今すぐダウンロード」.".to_string();
        }
        ctx.out.findings.push(f);
    }
}

/// Whether a campaign's all-day distribution has begun by `now`.
fn all_day_since(campaign: &Campaign, now: DateTime<FixedOffset>) -> bool {
    campaign.windows.iter().any(|w| match w {
        DistributionWindow::Continuous { from, .. } => *from <= now,
        DistributionWindow::Nightly { .. } => false,
    })
}
