//! `cvctl`: the Custom Vision storage integration, from the command line. It checks a
//! subscription before deploying (`preflight`), does the seed's manual steps (`integrate`,
//! `verify`), writes realistic notifications (`simulate`), shows the model store (`models`),
//! fetches a model from it (`pull`), brings a project's older iterations into it (`backfill`),
//! sends and redelivers its events (`events`),
//! and runs the functions locally (`dev-host`, `demo`). It reads the same settings as the
//! handler, and drives its library.
//!
//! Exit codes: 0 success, 1 a check failed, 2 a usage error, 3 a service could not be reached;
//! `pull` also 4, nothing changed.

mod backfill;
mod context;
mod demo;
mod events;
mod integrate;
mod models;
mod preflight;
mod pull;
mod simulate;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};

use context::{CliError, Context};

#[derive(Debug, Parser)]
#[command(
    name = "cvctl",
    version,
    about = "Wire Custom Vision projects to storage, check the wiring, simulate notifications, list and pull the model store, backfill it, test and redeliver events",
    after_help = "Settings come from local.settings.json under --root, the environment over it, and --set over both.\n\
                  Exit codes: 0 success, 1 a check failed, 2 a usage error, 3 a service could not be reached; \
                  `pull` also 4, nothing changed."
)]
struct Cli {
    /// The folder with local.settings.json, host.json and the function folders.
    #[arg(long, global = true, value_name = "DIR", default_value = ".")]
    root: PathBuf,
    /// A setting for this run, over local.settings.json and the environment (repeatable).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// The most one request to a service may take, in seconds, its whole answer included
    /// (a Training API call: its retries too).
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = context::DEFAULT_TIMEOUT.as_secs_f64(), value_parser = parse_timeout)]
    timeout: f64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Point a project at the notification queue and the backup container (UpdateProject or
    /// CreateProject), keeping its other settings.
    Integrate(integrate::Args),
    /// Before anything is created: ask Azure Resource Manager whether the subscription and
    /// region can take the infra (Flex with the custom runtime, providers, role assignments,
    /// the Custom Vision SKU).
    Preflight(preflight::Args),
    /// Check the wiring end to end: access, the project's URLs, the test blob, the ConnectionTest.
    Verify(verify::Args),
    /// Write notifications as Custom Vision does, in the seed's formats, to the notification queue.
    Simulate(simulate::Args),
    /// List a project's models in the model store, newest first, `latest` marked.
    Models(models::Args),
    /// Events out: send a test event, list the failed ones, redeliver them (docs/events.md).
    #[command(subcommand)]
    Events(events::Command),
    /// One model to a file, fetched only when it changed (index.json, then a conditional GET),
    /// its Content-MD5 verified; exit 4 when nothing changed.
    Pull(pull::Args),
    /// Bring the iterations trained before the app into the store: request the missing
    /// exports, wait, copy each as ExportCompleted does, write the missing reports.
    Backfill(backfill::Args),
    /// Run the functions against the storage queues, as the Functions host does.
    DevHost(DevHostArgs),
    /// Azurite, the dev host and the handler, and the seed's notifications, end to end.
    Demo {
        /// The handler executable (default: `handler` beside this one).
        #[arg(long, value_name = "PATH")]
        handler: Option<PathBuf>,
        /// Where the reports, the dashboard and the copies they link to are written
        /// (default: target/demo under the root).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, clap::Args)]
struct DevHostArgs {
    /// The handler executable (default: `handler` beside this one, else host.json's).
    #[arg(long, value_name = "PATH")]
    handler: Option<PathBuf>,
    /// Override extensions.queues.maxPollingInterval.
    #[arg(long, value_name = "MS")]
    max_polling_interval_ms: Option<u64>,
    /// Override extensions.queues.visibilityTimeout.
    #[arg(long, value_name = "MS")]
    visibility_timeout_ms: Option<u64>,
    /// How long a received message stays invisible while processed (default: functionTimeout
    /// + 1 minute).
    #[arg(long, value_name = "MS")]
    lease_ms: Option<u64>,
}

/// The `handler` built beside this binary, if there is one.
fn sibling_handler() -> Option<PathBuf> {
    let path = std::env::current_exe().ok()?.with_file_name("handler");
    path.exists().then_some(path)
}

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so `cvctl … | head -1` would panic on its next print. Back to the
    // default: a closed pipe ends cvctl quietly, as it ends any Unix tool.
    // SAFETY: at the very start of main, before any thread exists; SIG_DFL is always valid.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    customvision_events::telemetry::init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return CliError::check(format!("cannot start the async runtime: {e}")).report(),
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => e.report(),
    }
}

fn parse_timeout(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(s),
        _ => Err(format!("'{text}' is not a number of seconds in (0, 86400]")),
    }
}

async fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let root = cli.root;
    let timeout = Duration::from_secs_f64(cli.timeout);
    match cli.command {
        Command::Integrate(args) => {
            let mut ctx = Context::load(&root, &cli.set, timeout)?;
            integrate::run(&mut ctx, &args).await?;
        }
        Command::Preflight(args) => {
            let results = preflight::run(&args).await?;
            if !preflight::print(&results) {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Verify(args) => {
            let ctx = Context::load(&root, &cli.set, timeout)?;
            let results = verify::run(&ctx, &args).await?;
            if !verify::print(&results) {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Simulate(args) => {
            let ctx = Context::load(&root, &cli.set, timeout)?;
            let written = simulate::run(&ctx, &args).await?;
            if let Some(blob) = &written.blob {
                println!("wrote blob {blob}");
            }
            println!(
                "queued for project {}{}:\n{}",
                written.project,
                written
                    .iteration
                    .as_deref()
                    .map(|i| format!(", iteration {i}"))
                    .unwrap_or_default(),
                customvision_events::redact::redact(&written.message)
            );
        }
        Command::Models(args) => {
            let ctx = Context::load(&root, &cli.set, timeout)?;
            let listing = models::list(&ctx, &args).await?;
            models::print(&listing, args.json);
        }
        Command::Events(command) => {
            let ctx = Context::load(&root, &cli.set, timeout)?;
            if !events::run(&ctx, &command).await? {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Backfill(args) => {
            let ctx = Context::load(&root, &cli.set, timeout)?;
            return backfill::run(&ctx, &args).await;
        }
        Command::Pull(args) => return pull::run(&root, &cli.set, timeout, &args).await,
        Command::DevHost(args) => {
            let mut options = customvision_events::devhost::DevHostOptions {
                root: customvision_events::devhost::root_or_cwd(Some(&root)),
                handler: args.handler.or_else(sibling_handler),
                max_polling_interval: args.max_polling_interval_ms.map(Duration::from_millis),
                visibility_timeout: args.visibility_timeout_ms.map(Duration::from_millis),
                lease: args.lease_ms.map(Duration::from_millis),
                ..Default::default()
            };
            for pair in &cli.set {
                if let Some((k, v)) = pair.split_once('=') {
                    options.overrides.push((k.to_string(), v.to_string()));
                }
            }
            let (tx, rx) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                customvision_events::startup::shutdown_signal().await;
                let _ = tx.send(true);
            });
            customvision_events::devhost::run(options, rx)
                .await
                .map_err(|e| CliError::check(e.to_string()))?;
        }
        Command::Demo { handler, out } => {
            let out = out.unwrap_or_else(|| root.join("target").join("demo"));
            demo::run(&root, handler.or_else(sibling_handler), &out).await?;
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "cvctl", &mut std::io::stdout());
        }
    }
    Ok(ExitCode::SUCCESS)
}
