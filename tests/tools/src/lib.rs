//! Tools around the product that never ship to a terminal or a server: the fleet
//! simulator, the benchmarks and their scripts. Layout:
//!
//! - [`sim`]: the simulated fleet and its reports, and a pipelined publisher; behind
//!   the `fleet-sim` binary (the demo's clinics, fleet-scale load) and `fleet-bench`.
//! - [`agent_bench`]: spool and probe throughput of the agent's library, behind the
//!   `fleet-agent-bench` binary (docs/BENCHMARKS.md, `bench/agent-bench.sh`).
//! - `src/bin/fleet-bench.rs`: the ingest benchmarks against the real `fleetd`.
//! - `bench/`: the agent benchmark script and the SQLite ceiling model.
//!
//! These used to live in the agent (hidden subcommands, a simulator module):
//! the agent binary now carries only what a terminal runs.

pub mod agent_bench;
pub mod sim;
