//! `handler`: the custom handler binary, and its development tools.
//!
//! - `handler` / `handler serve` — what the Functions host runs (`host.json`).
//! - `handler dev-host` — the local runner: reads the function folders and plays the host's
//!   queue-trigger part against Azurite (see `devhost`).
//! - `handler demo` — starts Azurite and the dev host, writes the seed's notifications and a
//!   backup blob, prints the copied, tagged model, and stops.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use customvision_events::devhost::{self, DevHostOptions};
use customvision_events::functions::App;
use customvision_events::settings::Settings;
use customvision_events::storage::{self, StorageAccount};
use customvision_events::training::TrainingClient;
use customvision_events::{demo, redact, server};

const USAGE: &str = "usage:
  handler [serve]                     serve the Functions host on 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT
  handler dev-host [options]          run the functions against storage queues without Core Tools
  handler demo [--root DIR]           Azurite + dev host + the seed's notifications, end to end
options:
  --root DIR                          folder with host.json and the function folders (default: .)
  --handler PATH                      handler executable (default: host.json defaultExecutablePath)
  --max-polling-interval-ms N         override extensions.queues.maxPollingInterval
  --visibility-timeout-ms N           override extensions.queues.visibilityTimeout";

fn main() -> ExitCode {
    redact::init_tracing();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = match args.split_first() {
        Some((c, rest)) if !c.starts_with('-') => (c.as_str(), rest.to_vec()),
        _ => ("serve", args.clone()),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match command {
        "serve" if rest.is_empty() => runtime.block_on(serve()),
        "dev-host" => parse_options(&rest).and_then(|o| runtime.block_on(dev_host(o))),
        "demo" => parse_options(&rest).and_then(|o| runtime.block_on(demo::run(o.root))),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(format!(
            "unknown command or arguments: {}\n{USAGE}",
            args.join(" ")
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // Start-up failures must be readable in the host's log stream, so stdout as well.
            tracing::error!("{}", redact::redact(&message));
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> Result<(), String> {
    let port: u16 = std::env::var("FUNCTIONS_CUSTOMHANDLER_PORT")
        .map_err(|_| {
            "setting FUNCTIONS_CUSTOMHANDLER_PORT is required (the Functions host sets it)"
                .to_string()
        })?
        .parse()
        .map_err(|_| "setting FUNCTIONS_CUSTOMHANDLER_PORT is not a port number".to_string())?;
    let settings = Settings::from_env().map_err(|e| e.to_string())?;
    // Once per process: the HTTP client (certificates, connection pool) and the SDK clients.
    let http = storage::http_client();
    let account = StorageAccount::new(&settings.storage, &http).map_err(|e| e.to_string())?;
    let training = settings
        .training
        .as_ref()
        .map(|t| TrainingClient::from_settings(http.clone(), t))
        .transpose()
        .map_err(|e| e.to_string())?;
    // Loopback only: the host is the one and only client.
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    tracing::info!(
        export_action = ?settings.export_action,
        backup_container = %settings.backup_container,
        model_store_container = %settings.model_store_container,
        "handler listening on {addr}"
    );
    // The certificate load happens off the start-up path, before the first invocation needs it.
    http.warm();
    server::run(
        listener,
        Arc::new(App {
            settings,
            account,
            training,
        }),
        server::ServerConfig::default(),
        shutdown_signal(),
    )
    .await;
    Ok(())
}

async fn dev_host(options: DevHostOptions) -> Result<(), String> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = tx.send(true);
    });
    devhost::run(options, rx).await.map_err(|e| e.to_string())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn parse_options(args: &[String]) -> Result<DevHostOptions, String> {
    let mut options = DevHostOptions::default();
    let mut root = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        let millis = |v: String| {
            v.parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| format!("{flag} takes milliseconds"))
        };
        match flag.as_str() {
            "--root" => root = Some(PathBuf::from(value()?)),
            "--handler" => options.handler = Some(PathBuf::from(value()?)),
            "--max-polling-interval-ms" => options.max_polling_interval = Some(millis(value()?)?),
            "--visibility-timeout-ms" => options.visibility_timeout = Some(millis(value()?)?),
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    options.root = devhost::root_or_cwd(root.as_deref());
    Ok(options)
}
