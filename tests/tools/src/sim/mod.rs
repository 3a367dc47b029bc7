//! The fleet simulator behind `fleet-sim`: many terminals, real v1 reports.
//!
//! - [`fleet`]: who the terminals are. A fleet is generated from a seed, clinic by
//!   clinic, so terminal *i* is the same whatever the fleet size: prefectures weighted
//!   by population, fee schedules (医科/歯科/調剤) by the facility counts of June 2025,
//!   reader makers, habits (switched off at night or not, automatic morning restart,
//!   distribution disabled, 回線認証 down). Each terminal's January 2026 rollout
//!   follows from its habits: when it downloads face library 5.1.0 and when it restarts.
//! - [`report`]: the one pure function that turns a terminal, a time and a `seq` into
//!   a [`fleet_protocol::Report`]. Everything random in it is derived from the seed,
//!   the terminal and the `seq`, so the same inputs always give the same report.
//! - [`publish`]: a pipelined publisher with confirms and a target rate, because
//!   awaiting each confirm alone caps a channel at a few thousand messages a second.
//!
//! Shares we could not source (reader makers, habits) are marked as guesses (L in
//! domain.md terms) where they are defined; they shape the demo, not the product.

pub mod fleet;
pub mod publish;
pub mod report;

pub use fleet::{Fleet, SimTerminal};
pub use publish::Pipeline;
pub use report::{Situation, expected_state, report_at};

/// SplitMix64: a well-mixed 64-bit value from a seed and two indices, so every
/// terminal and every report gets its own independent random stream.
pub fn mix(seed: u64, a: u64, b: u64) -> u64 {
    let mut z = seed
        .wrapping_add(a.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(b.wrapping_mul(0xD1B5_4A32_D192_ED03))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
