//! Findings (contract §6): the conditions on a terminal, or on an area, that need a
//! human, computed by pure rules from what the store already has.
//!
//! Why here, in the pure crate: ingest (a report changed a terminal), the `fleetd
//! alert` sweep (time alone changed something) and the tests must all reach the same
//! verdict from the same inputs, and a verdict that depends on a database or a clock
//! cannot be replayed. Everything takes the evaluation instant as an argument.
//!
//! Layout, one concern per file:
//! - [`holidays`]: Japanese public holidays by rule, 2000–2099.
//! - [`hours`]: clinic hours, the gate for *raising* time-of-day findings.
//! - [`windows`]: maintenance windows, which suppress what an announced outage explains.
//! - [`reader`]: reader error codes per maker: device, network or patient side.
//! - [`finding`]: the finding value, its kinds, severities and instructions.
//! - [`terminal`]: the rules for one terminal.
//! - [`incident`]: area and prefecture incidents, which fold the terminal findings
//!   they explain.

pub mod finding;
pub mod holidays;
pub mod hours;
pub mod incident;
pub mod reader;
pub mod terminal;
pub mod windows;

pub use finding::{Finding, FindingKind, FindingStatus, Severity};
pub use holidays::{is_holiday, is_year_end};
pub use hours::{ClinicHours, HoursError, Interval};
pub use incident::{
    AreaIncident, Failure, GroupCounts, IncidentScope, IncidentThresholds, evaluate_group,
    evaluate_tenant,
};
pub use reader::{Classification, ErrorSide, classify};
pub use terminal::{
    CampaignInput, Condition, Evaluation, TerminalInput, Thresholds, days_left, evaluate_terminal,
    nfc_reader_verified,
};
pub use windows::{
    MaintenanceWindow, WindowArea, WindowKind, WindowScope, explaining_window,
    explaining_window_during, seeded_windows,
};
