//! The agent that runs on each オンライン資格確認端末 (online eligibility terminal).
//!
//! It looks at what a technician would look at on the terminal, turns that into one
//! v1 report ([`fleet_protocol::Report`]) and publishes it to RabbitMQ with publisher
//! confirms. Layout, in the order data flows:
//!
//! - [`config`]: the TOML settings file, checked into [`Settings`] before anything
//!   starts, so a bad file fails at once and names the field at fault.
//! - [`probe`]: one module per thing observed on the terminal (version files, the
//!   distribution record, boot time, the 回線認証 page, host facts). A probe that
//!   fails leaves its section absent — "not observed" — and logs why; it never stops
//!   the report. [`probe::snapshot`] assembles them into a report.
//! - [`seq`]: the persisted sequence number, written durably *before* a report that
//!   carries it leaves the process, so a number is never used twice.
//! - [`publish`]: one AMQP connection with confirms; a report counts as sent only
//!   when the broker acknowledged it. [`publish::publish_report`] is the one-call
//!   entry point for other programs (a simulator, end-to-end tests).
//! - [`spool`]: the crash-safe on-disk spool every report is written to before it is
//!   published, and leaves only when the broker confirmed it.
//! - [`daemon`]: the `run` loop: look often, report on a change at once and otherwise
//!   per interval, send the spool oldest first, reconnect with exponential backoff
//!   and full jitter, and stop cleanly on SIGTERM or ctrl-c.
//!
//! Nothing else: the fleet simulator and the benchmarks live in the tools crate
//! (`tests/tools`, package `fleet-tools`) and use this library from outside.
//!
//! `main.rs` only parses the command line, sets up logging and calls into these.

pub mod config;
pub mod daemon;
pub mod probe;
pub mod publish;
pub mod seq;
pub mod spool;

pub use config::{AmqpTarget, ConfigError, Settings};
pub use daemon::Agent;
pub use publish::{PublishError, Publisher, publish_report};
pub use seq::SeqStore;

/// The version of this agent, sent as `agent_version`.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
