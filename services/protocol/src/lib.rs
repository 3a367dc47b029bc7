//! The protocol and domain crate shared by the central service and the agent.
//!
//! Pure code, no I/O: the v1 report types and their parser ([`report`]), the merged
//! current state of a terminal ([`state`]), dotted versions ([`version`]), 医療機関等コード
//! and the east/west areas ([`clinic`]), tenants ([`tenant`]) and update campaigns
//! with their per-terminal states and causes ([`campaign`]), the service's
//! [`clock`], the W3C [`trace`] context that follows a report across the broker,
//! and the [`findings`] rules that say what needs a human. Everything that
//! decides what the product *says* about a terminal lives
//! here, so it is tested here.

pub mod campaign;
pub mod clinic;
pub mod clock;
pub mod findings;
pub mod reject;
pub mod report;
pub mod rfc3339;
pub mod secret_url;
pub mod state;
pub mod tenant;
pub mod trace;
pub mod version;

pub use campaign::{Assessment, Campaign, CampaignState, Cause, DistributionWindow, JST, jst};
pub use clinic::{Area, ClinicCode, Prefecture};
pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use findings::{
    ClinicHours, Condition, Evaluation, Finding, FindingKind, FindingStatus, MaintenanceWindow,
    Severity, TerminalInput, Thresholds, evaluate_terminal,
};
pub use reject::RejectReason;
pub use report::{ReaderError, Report, ReportError};
pub use secret_url::SecretUrl;
pub use state::{Applied, Observed, TerminalState};
pub use tenant::TenantSlug;
pub use trace::{TRACEPARENT_HEADER, TraceParent};
pub use version::Version;
