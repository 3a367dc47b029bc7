//! `fleet-agent-bench`: the agent library's throughput figures for docs/BENCHMARKS.md
//! (see [`fleet_tools::agent_bench`]). `tests/tools/bench/agent-bench.sh` runs both
//! modes after its memory and CPU comparison of the real `fleet-agent`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use fleet_agent::Settings;
use fleet_agent::spool::FsyncPolicy;
use fleet_tools::agent_bench;

#[derive(Parser)]
#[command(
    name = "fleet-agent-bench",
    about = "Spool and probe throughput of the fleet agent's library"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Spool append and replay throughput in a fresh directory.
    Spool {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 20_000)]
        count: u64,
        /// always | never | interval (1 s)
        #[arg(long, default_value = "always")]
        fsync: String,
    },
    /// CPU time of one look at the terminal, as `fleet-agent report` and as the
    /// daemon takes it.
    Probe {
        /// The agent's settings file (TOML).
        #[arg(long)]
        config: PathBuf,
        #[arg(long, default_value_t = 2_000)]
        count: u32,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Spool { dir, count, fsync } => {
            let policy = match fsync.as_str() {
                "always" => Ok(FsyncPolicy::Always),
                "never" => Ok(FsyncPolicy::Never),
                "interval" => Ok(FsyncPolicy::Interval(Duration::from_secs(1))),
                other => Err(anyhow::anyhow!(
                    "--fsync {other}: always, never or interval"
                )),
            };
            policy.and_then(|p| agent_bench::spool_bench(&dir, count, p))
        }
        Command::Probe { config, count } => Settings::load(&config)
            .map_err(anyhow::Error::from)
            .and_then(|s| agent_bench::probe_bench(s, count)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fleet-agent-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}
