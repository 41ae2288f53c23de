//! What the `handler` binary does: read the app settings, build what lives for the process
//! (one HTTP client, the storage clients, the Training API client), listen on
//! `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT` and serve the host until it stops the process.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use crate::error_chain::Chain;
use crate::functions::App;
use crate::http::http_client;
use crate::settings::{Settings, SettingsError};
use crate::storage::{StorageAccount, StorageError};
use crate::training::{TrainingClient, TrainingError};
use crate::{server, telemetry};

/// Why the handler could not start; logged with its causes, and the process exits 1.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("setting FUNCTIONS_CUSTOMHANDLER_PORT is required (the Functions host sets it)")]
    NoPort,
    #[error("setting FUNCTIONS_CUSTOMHANDLER_PORT is not a port number")]
    BadPort(#[source] std::num::ParseIntError),
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Training(#[from] TrainingError),
    #[error(transparent)]
    EventSource(#[from] crate::events::SourceError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The whole binary: a runtime, [`run`], an exit code. A start-up failure is logged on
/// stdout, which the host writes to its log stream.
pub fn main() -> ExitCode {
    telemetry::init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{}", Chain(&e));
            ExitCode::FAILURE
        }
    }
}

pub async fn run() -> Result<(), StartupError> {
    let port: u16 = std::env::var("FUNCTIONS_CUSTOMHANDLER_PORT")
        .map_err(|_| StartupError::NoPort)?
        .parse()
        .map_err(StartupError::BadPort)?;
    let settings = Settings::from_env()?;
    // Once per process: the HTTP client (certificates, connection pool) and the SDK clients.
    let http = http_client();
    let account = StorageAccount::new(&settings.storage, &http)?;
    let training = settings
        .training
        .as_ref()
        .map(|t| TrainingClient::from_settings(http.clone(), t, Some(&account)))
        .transpose()?;
    // A sink whose secret or credential is unusable starts not ready: logged here, and on
    // each `PublishEvents` invocation that has to wait for it.
    let sinks = crate::events::sinks::from_settings(&settings.events, &http, Some(&account));
    for sink in &sinks {
        if let Some(why) = sink.not_ready() {
            tracing::warn!(
                "event sink {} is not ready, its events wait on the retry schedule: {why}",
                sink.name()
            );
        }
    }
    let event_source = crate::events::source(&settings, &account)?;
    // Loopback only: the host is the one and only client.
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Listen { addr, source })?;
    tracing::info!(
        export_action = ?settings.export_action,
        backup_container = %settings.backup_container,
        model_store_container = %settings.model_store_container,
        training_api = settings.training.is_some(),
        event_sinks = settings.events.enabled(),
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
            sinks,
            budget: crate::functions::INVOCATION_BUDGET,
            event_source,
        }),
        server::ServerConfig::default(),
        shutdown_signal(),
    )
    .await;
    Ok(())
}

/// SIGTERM (the host stopping the worker) or Ctrl-C.
pub async fn shutdown_signal() {
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
