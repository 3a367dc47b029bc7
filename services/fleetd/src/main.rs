//! The `fleetd` command line (contract §4). All the work is in the library.

/// mimalloc instead of glibc's malloc: the ingest writer allocates and frees a few
/// thousand small objects per batch (parsed reports, states, their strings), and
/// glibc's consolidation of its free lists showed up in the profile. Backlog drain
/// at 150,000 terminals, interleaved runs: 13,535 / 13,877 -> 14,533 / 15,600
/// reports/s, peak RSS +40-50 MiB (docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use fleet_protocol::{Prefecture, TenantSlug};
use fleet_web::auth::{Role, issue};
use fleetd::Settings;
use tokio::sync::watch;

#[derive(Parser)]
#[command(
    name = "fleetd",
    version,
    about = "Fleet monitoring for オンライン資格確認端末"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Everything in one process: migrations, ingest consumer, web.
    Serve,
    /// Apply database migrations and seed the defaults, then exit.
    Migrate,
    /// Run the ingest consumer only.
    Ingest,
    /// Run the web server only.
    Web,
    /// Run the alert role only: the findings sweep and delivery to Alertmanager.
    Alert,
    /// Maintenance windows (contract §6): announced outages that explain findings.
    Window {
        #[command(subcommand)]
        command: WindowCommand,
    },
    /// Compare the live rollout counters with a recount; exit 1 on any drift.
    Check {
        /// Rebuild the counters from the campaign states when they drift.
        #[arg(long)]
        repair: bool,
    },
    /// Manage update campaigns (campaigns are data).
    Campaign {
        #[command(subcommand)]
        command: CampaignCommand,
    },
    /// 承継: move a tenant's terminals to a new 医療機関等コード, keeping their history.
    Succession {
        #[arg(long)]
        tenant: String,
        /// The old code.
        #[arg(long)]
        from: String,
        /// The new code.
        #[arg(long)]
        to: String,
        /// Only this terminal (UUID); every terminal of the old code when absent.
        #[arg(long)]
        terminal: Option<String>,
    },
    /// Print a signed JWT.
    Token {
        /// admin, support, oncall or association
        #[arg(long)]
        role: String,
        /// The vendor (required for admin, support, oncall).
        #[arg(long)]
        tenant: Option<String>,
        /// Two-digit prefecture code (required for association); repeatable.
        #[arg(long = "prefecture")]
        prefectures: Vec<String>,
        /// Lifetime such as 30m, 12h, 7d.
        #[arg(long, default_value = "12h")]
        ttl: String,
        /// Subject (who the token is for).
        #[arg(long, default_value = "fleetd-cli")]
        sub: String,
    },
}

#[derive(Subcommand)]
enum WindowCommand {
    /// Add a window.
    Add {
        /// A short unique id, e.g. 2025-02-01-east.
        #[arg(long)]
        id: String,
        /// `all` (the operator's windows) or a tenant's slug.
        #[arg(long, default_value = "all")]
        scope: String,
        /// east, west or all.
        #[arg(long)]
        area: String,
        /// outage, intermittent, maintenance or distribution.
        #[arg(long)]
        kind: String,
        /// Start, RFC 3339 (e.g. 2025-02-01T23:00:00+09:00).
        #[arg(long)]
        starts_at: String,
        /// End, RFC 3339.
        #[arg(long)]
        ends_at: String,
        /// Shown beside what it suppresses, e.g. the notice's title.
        #[arg(long)]
        title: String,
    },
    /// List every window as JSON lines.
    List,
    /// Remove a window.
    Remove { id: String },
}

#[derive(Subcommand)]
enum CampaignCommand {
    /// Add a campaign from a JSON file (see docs/campaigns.md) and assess every terminal.
    Add {
        /// The campaign definition, JSON.
        file: std::path::PathBuf,
    },
    /// List the campaigns as JSON lines.
    List,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("fleetd: cannot start the runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // Inside the runtime: the span exporter's batch task runs on it.
    let traces_url = fleetd::telemetry::traces_url_from_env(|k| std::env::var(k).ok());
    let telemetry = match runtime
        .block_on(async { fleetd::telemetry::Telemetry::install(traces_url.as_deref()) })
    {
        Ok(telemetry) => telemetry,
        Err(err) => {
            eprintln!("fleetd: {err:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli.command));
    // Outside the runtime's tasks, before it stops: flushes the last spans.
    telemetry.shutdown();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fleetd: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    match command {
        Command::Token {
            role,
            tenant,
            prefectures,
            ttl,
            sub,
        } => {
            let role = Role::parse(&role).with_context(|| {
                format!("--role: {role:?} is not admin, support, oncall or association")
            })?;
            let tenant = tenant
                .map(|t| TenantSlug::parse(&t))
                .transpose()
                .context("--tenant")?;
            let prefectures = prefectures
                .iter()
                .map(|p| Prefecture::parse(p).with_context(|| format!("--prefecture {p:?}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let ttl = fleetd::ttl::parse_ttl(&ttl)?;
            let secret = settings.jwt_secret()?;
            let token = issue(&secret, &sub, role, tenant.as_ref(), &prefectures, ttl)
                .map_err(anyhow::Error::msg)?;
            println!("{token}");
            Ok(())
        }
        Command::Check { repair } => {
            let store = fleetd::open_current(&settings).await?;
            let drift = store.check_counters().await?;
            if drift.is_empty() {
                println!("rollout counters match a recount");
                return Ok(());
            }
            for d in &drift {
                let (tenant, prefecture, campaign, state) = &d.key;
                println!(
                    "drift: tenant={tenant} prefecture={prefecture} campaign={campaign} state={state} counted={} recounted={}",
                    d.counted, d.recounted
                );
            }
            if repair {
                store.repair_counters().await?;
                anyhow::ensure!(
                    store.check_counters().await?.is_empty(),
                    "counters still drift after repair"
                );
                println!("repaired {} counters", drift.len());
                return Ok(());
            }
            anyhow::bail!(
                "{} rollout counters drift from a recount (run with --repair)",
                drift.len()
            )
        }
        Command::Campaign { command } => {
            let store = fleetd::open_current(&settings).await?;
            match command {
                CampaignCommand::Add { file } => {
                    let text = std::fs::read_to_string(&file)
                        .with_context(|| format!("reading {}", file.display()))?;
                    let campaign: fleet_protocol::Campaign = serde_json::from_str(&text)
                        .with_context(|| {
                            format!("{}: not a campaign definition", file.display())
                        })?;
                    let assessed = store.add_campaign(&campaign, settings.clock.now()).await?;
                    println!(
                        "added campaign {} and assessed {assessed} terminals",
                        campaign.id
                    );
                }
                CampaignCommand::List => {
                    for campaign in store.campaigns().await? {
                        println!("{}", serde_json::to_string(&campaign)?);
                    }
                }
            }
            Ok(())
        }
        Command::Succession {
            tenant,
            from,
            to,
            terminal,
        } => {
            let tenant = TenantSlug::parse(&tenant).context("--tenant")?;
            let from = fleet_protocol::ClinicCode::parse(&from)
                .with_context(|| format!("--from {from:?}"))?;
            let to =
                fleet_protocol::ClinicCode::parse(&to).with_context(|| format!("--to {to:?}"))?;
            let terminal = terminal
                .map(|t| {
                    t.parse::<uuid::Uuid>()
                        .with_context(|| format!("--terminal {t:?} is not a UUID"))
                })
                .transpose()?;
            let store = fleetd::open_current(&settings).await?;
            let moved = store
                .move_terminals(&tenant, from, to, terminal, settings.clock.now())
                .await?;
            println!("moved {moved} terminals of tenant {tenant} from {from} to {to}");
            Ok(())
        }
        Command::Migrate => {
            fleetd::migrate(&settings).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Serve => {
            let listener = fleetd::bind(&settings)?;
            tracing::info!(addr = %settings.http_addr, "fleetd serving");
            fleetd::serve(settings, listener, shutdown_signal()).await
        }
        Command::Ingest => fleetd::ingest(settings, shutdown_signal()).await,
        Command::Alert => fleetd::alert(settings, shutdown_signal()).await,
        Command::Window { command } => {
            let store = fleetd::open_current(&settings).await?;
            match command {
                WindowCommand::Add {
                    id,
                    scope,
                    area,
                    kind,
                    starts_at,
                    ends_at,
                    title,
                } => {
                    let window = fleetd::windows::from_args(
                        &id, &scope, &area, &kind, &starts_at, &ends_at, &title,
                    )?;
                    anyhow::ensure!(
                        store.add_window(&window, settings.clock.now()).await?,
                        "a window with id {id:?} exists already"
                    );
                    println!("added window {id}");
                }
                WindowCommand::List => {
                    for window in store.windows(None).await? {
                        println!("{}", serde_json::to_string(&window)?);
                    }
                }
                WindowCommand::Remove { id } => {
                    anyhow::ensure!(
                        store.remove_window(&id, None).await?,
                        "no window with id {id:?}"
                    );
                    println!("removed window {id}");
                }
            }
            Ok(())
        }
        Command::Web => {
            let listener = fleetd::bind(&settings)?;
            fleetd::web(settings, listener, shutdown_signal()).await
        }
    }
}

/// Turns SIGTERM or Ctrl-C into the shutdown signal every task watches.
fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down");
        let _ = tx.send(true);
    });
    rx
}
