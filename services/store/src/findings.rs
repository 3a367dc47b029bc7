//! What the findings rules' verdict does to the stored findings of a terminal, with
//! no database in it.
//!
//! The rules ([`fleet_protocol::findings`]) return the findings that hold now and
//! every condition they must remember; the store holds one row per open condition
//! of a terminal (kind and campaign are its key): `pending` while not raised, then
//! `active`, `suppressed` or `folded`. [`plan_terminal`] compares the two and
//! returns the rows to write, the rows to resolve or drop and the events of the
//! findings' history. A finding keeps its id from raising to resolving, so an
//! acknowledgement and Alertmanager's alert stay attached to the same thing.
//!
//! Both the ingest flow (the findings a report changes, in its own transaction) and
//! the sweep (what time alone changes) go through here, so they cannot disagree.

use chrono::{DateTime, FixedOffset};
use fleet_protocol::findings::{
    CampaignInput, ClinicHours, Condition, Evaluation, Finding, FindingKind, FindingStatus,
    MaintenanceWindow, TerminalInput, Thresholds, evaluate_terminal,
};
use fleet_protocol::{Campaign, ReaderError, TenantSlug, TerminalState};
use uuid::Uuid;

/// Where a stored row stands: a condition not raised yet, or a finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RowStatus {
    Pending,
    Shown(FindingStatus),
}

impl RowStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Shown(s) => s.as_str(),
        }
    }

    pub(crate) fn parse(text: &str) -> anyhow::Result<Self> {
        if text == "pending" {
            return Ok(Self::Pending);
        }
        FindingStatus::parse(text)
            .map(Self::Shown)
            .ok_or_else(|| anyhow::anyhow!("stored finding status {text:?} is unknown"))
    }
}

/// A stored finding row that is not resolved.
#[derive(Clone, Debug)]
pub(crate) struct OpenRow {
    pub(crate) id: Uuid,
    pub(crate) kind: FindingKind,
    pub(crate) campaign: Option<String>,
    pub(crate) status: RowStatus,
    pub(crate) since: DateTime<FixedOffset>,
    /// The finding's JSON as last written (empty while pending). Compared as text,
    /// not parsed: most verdicts change nothing, and parsing every open finding of
    /// every terminal of every batch cost more than judging them.
    pub(crate) body: String,
    /// The area incident that folds it (a column: folding leaves the body alone).
    pub(crate) incident_id: Option<String>,
}

impl OpenRow {
    fn key(&self) -> (FindingKind, Option<&str>) {
        (self.kind, self.campaign.as_deref())
    }

    fn condition(&self) -> Condition {
        Condition {
            kind: self.kind,
            campaign: self.campaign.clone(),
            since: self.since,
            raised: self.status != RowStatus::Pending,
        }
    }
}

/// A row to insert or to update in place (same id).
#[derive(Clone, Debug)]
pub(crate) struct RowWrite {
    pub(crate) id: Uuid,
    pub(crate) tenant: String,
    pub(crate) terminal_id: String,
    pub(crate) kind: FindingKind,
    pub(crate) campaign: Option<String>,
    pub(crate) status: RowStatus,
    pub(crate) since: DateTime<FixedOffset>,
    /// `None` while pending.
    pub(crate) finding: Option<Finding>,
    /// `finding` as JSON (empty while pending).
    pub(crate) body: String,
}

/// One entry of a finding's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Event {
    pub(crate) finding: Uuid,
    /// `active`, `suppressed`, `folded`, `resolved` or `acked`.
    pub(crate) event: &'static str,
    pub(crate) actor: Option<String>,
}

/// Everything one evaluation (of one or many terminals) writes.
#[derive(Clone, Debug, Default)]
pub(crate) struct FindingWrites {
    pub(crate) rows: Vec<RowWrite>,
    /// Findings whose condition cleared.
    pub(crate) resolved: Vec<Uuid>,
    /// Pending rows whose condition cleared before it was raised.
    pub(crate) dropped: Vec<Uuid>,
    pub(crate) events: Vec<Event>,
}

impl FindingWrites {
    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.resolved.is_empty() && self.dropped.is_empty()
    }
}

/// What the rules read besides the terminal's own state, shared by a whole batch.
#[derive(Clone, Debug, Default)]
pub struct RulesContext {
    pub thresholds: Thresholds,
    /// Every maintenance window (all scopes); filtered per tenant here.
    pub windows: Vec<MaintenanceWindow>,
}

/// One terminal to evaluate.
pub(crate) struct Subject<'a> {
    pub(crate) tenant: &'a TenantSlug,
    pub(crate) state: &'a TerminalState,
    pub(crate) hours: &'a ClinicHours,
    pub(crate) errors: &'a [ReaderError],
    /// Its campaigns, each with whether it was seen during distribution.
    pub(crate) campaigns: &'a [(&'a Campaign, bool)],
}

/// What the rules remember of a terminal, from its open rows.
pub(crate) fn conditions_of(open: &[OpenRow]) -> Vec<Condition> {
    open.iter().map(OpenRow::condition).collect()
}

/// The rules' verdict on one terminal at `now`, given what the previous verdict
/// remembered.
pub(crate) fn evaluate(
    subject: &Subject<'_>,
    context: &RulesContext,
    previous: &[Condition],
    now: DateTime<FixedOffset>,
) -> Evaluation {
    // Almost always every window is the operator's (scope `all`): no copy then.
    let windows: std::borrow::Cow<'_, [MaintenanceWindow]> =
        if context.windows.iter().all(|w| w.applies_to(subject.tenant)) {
            std::borrow::Cow::Borrowed(&context.windows)
        } else {
            context
                .windows
                .iter()
                .filter(|w| w.applies_to(subject.tenant))
                .cloned()
                .collect()
        };
    let campaigns: Vec<CampaignInput<'_>> = subject
        .campaigns
        .iter()
        .map(|(campaign, seen)| CampaignInput {
            campaign,
            seen_during_distribution: *seen,
        })
        .collect();
    let input = TerminalInput {
        state: subject.state,
        recent_reader_errors: subject.errors,
        hours: subject.hours,
        windows: &windows,
        campaigns: &campaigns,
        previous,
    };
    evaluate_terminal(&input, now, &context.thresholds)
}

/// Compares a terminal's verdict with its open rows and adds what changes to `out`.
pub(crate) fn plan_terminal(
    tenant: &TenantSlug,
    terminal_id: &str,
    open: &[OpenRow],
    verdict: Evaluation,
    out: &mut FindingWrites,
) {
    let mut matched = vec![false; open.len()];
    for condition in &verdict.conditions {
        let key = (condition.kind, condition.campaign.as_deref());
        let finding = verdict
            .findings
            .iter()
            .find(|f| (f.kind, f.campaign.as_deref()) == key);
        let existing = open.iter().position(|row| row.key() == key);
        if let Some(i) = existing {
            matched[i] = true;
        }
        let row = existing.map(|i| &open[i]);
        // A raised row whose condition began again (a silence after a report) is a
        // new finding: the old one ended.
        let restarted =
            row.is_some_and(|r| r.status != RowStatus::Pending && r.since != condition.since);
        let lowered = row.is_some_and(|r| r.status != RowStatus::Pending) && finding.is_none();
        let row = if restarted || lowered {
            let old = row.expect("checked above");
            out.resolved.push(old.id);
            out.events.push(Event {
                finding: old.id,
                event: "resolved",
                actor: None,
            });
            None
        } else {
            row
        };
        let write = match finding {
            Some(f) => shown_write(tenant, terminal_id, row, f.clone(), out),
            None => pending_write(tenant, terminal_id, row, condition),
        };
        if let Some(write) = write {
            out.rows.push(write);
        }
    }
    for (row, matched) in open.iter().zip(matched) {
        if matched {
            continue;
        }
        if row.status == RowStatus::Pending {
            out.dropped.push(row.id);
        } else {
            out.resolved.push(row.id);
            out.events.push(Event {
                finding: row.id,
                event: "resolved",
                actor: None,
            });
        }
    }
}

fn shown_write(
    tenant: &TenantSlug,
    terminal_id: &str,
    row: Option<&OpenRow>,
    mut finding: Finding,
    out: &mut FindingWrites,
) -> Option<RowWrite> {
    // An area incident folded it: it stays folded (and keeps its incident) while the
    // rules still find it active; the incident's end unfolds it.
    if let Some(r) = row
        && r.status == RowStatus::Shown(FindingStatus::Folded)
        && finding.status == FindingStatus::Active
    {
        finding.status = FindingStatus::Folded;
        finding.incident_id = r.incident_id.clone();
    }
    let status = RowStatus::Shown(finding.status);
    let body = serde_json::to_string(&finding).unwrap_or_default();
    if let Some(r) = row
        && r.status == status
        && r.body == body
    {
        return None;
    }
    let id = row.map_or_else(Uuid::new_v4, |r| r.id);
    if row.is_none_or(|r| r.status != status) {
        out.events.push(Event {
            finding: id,
            event: finding.status.as_str(),
            actor: None,
        });
    }
    Some(RowWrite {
        id,
        tenant: tenant.as_str().to_owned(),
        terminal_id: terminal_id.to_owned(),
        kind: finding.kind,
        campaign: finding.campaign.clone(),
        status,
        since: finding.since,
        finding: Some(finding),
        body,
    })
}

fn pending_write(
    tenant: &TenantSlug,
    terminal_id: &str,
    row: Option<&OpenRow>,
    condition: &Condition,
) -> Option<RowWrite> {
    if row.is_some_and(|r| r.since == condition.since) {
        return None;
    }
    Some(RowWrite {
        id: row.map_or_else(Uuid::new_v4, |r| r.id),
        tenant: tenant.as_str().to_owned(),
        terminal_id: terminal_id.to_owned(),
        kind: condition.kind,
        campaign: condition.campaign.clone(),
        status: RowStatus::Pending,
        since: condition.since,
        finding: None,
        body: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_protocol::findings::Severity;

    fn t(text: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(text).unwrap()
    }

    fn finding(kind: FindingKind, status: FindingStatus, since: &str) -> Finding {
        Finding {
            kind,
            severity: Severity::Urgent,
            status,
            since: t(since),
            terminal_id: None,
            clinic_code: None,
            prefecture: None,
            area: None,
            campaign: None,
            state: None,
            cause: None,
            days_left: None,
            detail: "d".into(),
            window_id: None,
            incident_id: None,
            instruction_ja: "j".into(),
            instruction_en: "e".into(),
        }
    }

    fn condition(kind: FindingKind, since: &str, raised: bool) -> Condition {
        Condition {
            kind,
            campaign: None,
            since: t(since),
            raised,
        }
    }

    fn row(kind: FindingKind, status: RowStatus, since: &str, f: Option<Finding>) -> OpenRow {
        OpenRow {
            id: Uuid::new_v4(),
            kind,
            campaign: None,
            status,
            since: t(since),
            incident_id: f.as_ref().and_then(|f| f.incident_id.clone()),
            body: f
                .map(|f| serde_json::to_string(&f).unwrap())
                .unwrap_or_default(),
        }
    }

    const T0: &str = "2025-02-03T10:00:00+09:00";
    const T1: &str = "2025-02-03T10:30:00+09:00";

    fn tenant() -> TenantSlug {
        TenantSlug::parse("demo").unwrap()
    }

    #[test]
    fn a_new_condition_is_pending_then_raised_under_the_same_id() {
        let mut out = FindingWrites::default();
        let verdict = Evaluation {
            findings: vec![],
            conditions: vec![condition(FindingKind::LineAuthDown, T0, false)],
        };
        plan_terminal(&tenant(), "x", &[], verdict, &mut out);
        assert_eq!(out.rows.len(), 1);
        assert_eq!(out.rows[0].status, RowStatus::Pending);
        assert!(
            out.events.is_empty(),
            "a pending condition is not a finding"
        );

        let pending = row(FindingKind::LineAuthDown, RowStatus::Pending, T0, None);
        let id = pending.id;
        let mut out = FindingWrites::default();
        let f = finding(FindingKind::LineAuthDown, FindingStatus::Active, T0);
        let verdict = Evaluation {
            findings: vec![f],
            conditions: vec![condition(FindingKind::LineAuthDown, T0, true)],
        };
        plan_terminal(&tenant(), "x", &[pending], verdict, &mut out);
        assert_eq!(out.rows.len(), 1);
        assert_eq!(out.rows[0].id, id);
        assert_eq!(
            out.events,
            [Event {
                finding: id,
                event: "active",
                actor: None
            }]
        );
    }

    #[test]
    fn an_unchanged_finding_writes_nothing_and_a_cleared_one_resolves() {
        let f = finding(FindingKind::LineAuthDown, FindingStatus::Active, T0);
        let open = row(
            FindingKind::LineAuthDown,
            RowStatus::Shown(FindingStatus::Active),
            T0,
            Some(f.clone()),
        );
        let mut out = FindingWrites::default();
        let verdict = Evaluation {
            findings: vec![f],
            conditions: vec![condition(FindingKind::LineAuthDown, T0, true)],
        };
        plan_terminal(
            &tenant(),
            "x",
            std::slice::from_ref(&open),
            verdict,
            &mut out,
        );
        assert!(out.is_empty() && out.events.is_empty());

        let mut out = FindingWrites::default();
        plan_terminal(
            &tenant(),
            "x",
            std::slice::from_ref(&open),
            Evaluation::default(),
            &mut out,
        );
        assert_eq!(out.resolved, [open.id]);
        assert_eq!(out.events[0].event, "resolved");
    }

    #[test]
    fn a_cleared_pending_condition_is_dropped_without_history() {
        let open = row(FindingKind::Silent, RowStatus::Pending, T0, None);
        let mut out = FindingWrites::default();
        plan_terminal(
            &tenant(),
            "x",
            std::slice::from_ref(&open),
            Evaluation::default(),
            &mut out,
        );
        assert_eq!(out.dropped, [open.id]);
        assert!(out.resolved.is_empty() && out.events.is_empty());
    }

    #[test]
    fn a_new_silence_resolves_the_old_one_and_raises_another() {
        let old = finding(FindingKind::Silent, FindingStatus::Active, T0);
        let open = row(
            FindingKind::Silent,
            RowStatus::Shown(FindingStatus::Active),
            T0,
            Some(old),
        );
        let mut out = FindingWrites::default();
        let verdict = Evaluation {
            findings: vec![finding(FindingKind::Silent, FindingStatus::Active, T1)],
            conditions: vec![condition(FindingKind::Silent, T1, true)],
        };
        plan_terminal(
            &tenant(),
            "x",
            std::slice::from_ref(&open),
            verdict,
            &mut out,
        );
        assert_eq!(out.resolved, [open.id]);
        assert_eq!(out.rows.len(), 1);
        assert_ne!(out.rows[0].id, open.id);
    }

    #[test]
    fn a_folded_finding_stays_folded_while_active() {
        let mut folded = finding(FindingKind::Silent, FindingStatus::Folded, T0);
        folded.incident_id = Some("inc".into());
        let open = row(
            FindingKind::Silent,
            RowStatus::Shown(FindingStatus::Folded),
            T0,
            Some(folded),
        );
        let mut out = FindingWrites::default();
        let verdict = Evaluation {
            findings: vec![finding(FindingKind::Silent, FindingStatus::Active, T0)],
            conditions: vec![condition(FindingKind::Silent, T0, true)],
        };
        plan_terminal(&tenant(), "x", &[open], verdict, &mut out);
        assert!(out.rows.is_empty(), "{:?}", out.rows);
        assert!(out.events.is_empty());
    }
}
