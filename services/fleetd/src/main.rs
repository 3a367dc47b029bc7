//! The `fleetd` command line (contract §4). All the work is in the library.

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

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,lapin=warn,actix_server=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
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
    match runtime.block_on(run(cli.command)) {
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
            let ttl = parse_ttl(&ttl)?;
            let secret = settings.jwt_secret()?;
            let token = issue(&secret, &sub, role, tenant.as_ref(), &prefectures, ttl)
                .map_err(anyhow::Error::msg)?;
            println!("{token}");
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

/// `30m`, `12h`, `7d`, `3600s`.
fn parse_ttl(text: &str) -> anyhow::Result<chrono::Duration> {
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = number
        .parse()
        .with_context(|| format!("--ttl: {text:?} is not like 30m, 12h or 7d"))?;
    anyhow::ensure!(n > 0, "--ttl: must be positive");
    Ok(match unit {
        "s" => chrono::Duration::seconds(n),
        "m" => chrono::Duration::minutes(n),
        "h" => chrono::Duration::hours(n),
        "d" => chrono::Duration::days(n),
        _ => anyhow::bail!("--ttl: {text:?} is not like 30m, 12h or 7d"),
    })
}
