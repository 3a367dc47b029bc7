//! `fleet-agent`: the command line around the library.
//!
//! `report` prints one snapshot and sends nothing; `run` publishes one every interval
//! (`--once`: one report, then exit, non-zero unless confirmed). Logs go to stderr so
//! that stdout carries only the report; `RUST_LOG` tunes them (default `info`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use fleet_agent::{Agent, SeqStore, Settings, probe};

#[derive(Parser)]
#[command(
    name = "fleet-agent",
    version,
    about = "The fleet agent of an オンライン資格確認端末"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Take one snapshot and print it as a v1 report on stdout; sends nothing.
    Report {
        /// The settings file (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Publish a report every interval until SIGTERM or ctrl-c.
    Run {
        /// The settings file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Publish one report and exit; fails unless the broker confirmed it.
        #[arg(long)]
        once: bool,
    },
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,lapin=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = match Cli::parse().command {
        Command::Report { config } => report(&config),
        Command::Run { config, once } => run(&config, once),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fleet-agent: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn report(config: &Path) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    // The seq the next published report will carry; `report` never uses it up.
    let seq = SeqStore::new(&settings.state_dir).peek()?;
    let report = probe::snapshot(&settings, seq);
    let json = serde_json::to_string_pretty(&report).context("serialising the report")?;
    println!("{json}");
    Ok(())
}

fn run(config: &Path, once: bool) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    // Refuse to start on an unreadable seq file rather than failing every tick.
    SeqStore::new(&settings.state_dir).peek()?;
    // One thread is plenty for one report a minute, and every worker thread costs
    // resident memory (its stack, a malloc arena): the goal is under 10 MiB. Probes
    // run on the blocking pool, capped. Its thread outlives the pause between two
    // checks: starting a thread for every check (clone, stack, signal setup) cost
    // more CPU than the look itself, and an idle one costs a few pages, no wake-ups.
    let keep_alive = settings.check_interval + std::time::Duration::from_secs(10);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(2)
        .thread_keep_alive(keep_alive)
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let agent = Agent::new(settings)?;
        if once {
            let seq = agent.run_once().await?;
            tracing::info!(seq, "report confirmed");
        } else {
            agent.run(shutdown_signal()).await;
        }
        Ok(())
    })
}

/// Completes on ctrl-c, or SIGTERM on Unix (how service managers stop a process).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %err, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("ctrl-c received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
