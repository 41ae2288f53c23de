//! The handler process as the host runs it: started with `FUNCTIONS_CUSTOMHANDLER_PORT`,
//! waited for until it answers `GET /`, restarted when it exits (within the host's limits),
//! and its stdout and stderr read line by line into the one log stream.

use std::process::Stdio;
use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;

use super::config::HostConfig;
use super::http::HostClient;
use super::{azurite, DevHostError, DevHostOptions};
use crate::settings::AppSettings;

/// The host's `ErrorEventsThreshold` and `WorkerRestartErrorIntervalThresholdInMinutes`
/// (azure-functions-host `Workers/Http/HttpFunctionInvocationDispatcher.cs`,
/// `Workers/WorkerConstants.cs`): the third handler exit within 30 minutes of the one before
/// stops the host instead of restarting the handler.
pub const RESTART_LIMIT: usize = 3;
pub const RESTART_WINDOW: Duration = Duration::from_secs(30 * 60);

/// One line of the host's log stream, as the host writes it: its category and level, then the
/// text. The handler's stdout and each `Logs` entry of an answer both end up here.
pub(super) fn log_stream(category: &str, level: &str, line: &str) {
    let now = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default();
    println!("[{now}] {category} {level}: {line}");
}

/// The host's level for a line of the worker's stderr (`WorkerProcess.ParseErrorMessageAndLog`).
fn stderr_level(line: &str) -> &'static str {
    let lower = line.to_ascii_lowercase();
    if lower.contains("warn") {
        "Warning"
    } else if ["error", "fail", "severe", "unhandled exception"]
        .iter()
        .any(|w| lower.contains(w))
    {
        "Error"
    } else {
        "Information"
    }
}

/// Watches the running handler until `shutdown` flips to true: an exit starts it again on a
/// new port (the pollers follow `base_url`), as the host restarts its worker, until
/// [`RESTART_LIMIT`] exits within [`RESTART_WINDOW`] stop it.
pub(super) async fn supervise(
    options: &DevHostOptions,
    host: &HostConfig,
    settings: &AppSettings,
    http: &HostClient,
    child: &mut tokio::process::Child,
    base_url: &std::sync::RwLock<String>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), DevHostError> {
    // The handler's exits, newest last, for the host's restart threshold.
    let mut exits: Vec<tokio::time::Instant> = Vec::new();
    loop {
        tokio::select! {
            status = child.wait() => {
                let status = match status {
                    Ok(s) => s,
                    Err(e) => return Err(DevHostError::Wait(e)),
                };
                let now = tokio::time::Instant::now();
                if exits.last().is_some_and(|last| now - *last > RESTART_WINDOW) {
                    exits.clear();
                }
                exits.push(now);
                if exits.len() >= RESTART_LIMIT {
                    return Err(DevHostError::TooManyRestarts(status));
                }
                tracing::error!("the handler exited ({status}); starting it again");
                match start_handler(options, host, settings, http).await {
                    Ok((next, url)) => {
                        *child = next;
                        tracing::info!("handler restarted on {url}");
                        *base_url.write().unwrap_or_else(|e| e.into_inner()) = url;
                    }
                    Err(e) => return Err(e),
                }
            }
            stopped = async { shutdown.wait_for(|stop| *stop).await.is_ok() } => {
                let _ = stopped;
                return Ok(());
            }
        }
    }
}

/// Starts the handler and waits until it answers. The host picks the port and hands it over;
/// a port free when picked can be taken before the handler binds it, so a handler that exits
/// at once is started again on another.
pub(super) async fn start_handler(
    options: &DevHostOptions,
    host: &HostConfig,
    settings: &AppSettings,
    http: &HostClient,
) -> Result<(tokio::process::Child, String), DevHostError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let port = azurite::free_ports::<1>().map_err(DevHostError::NoFreePort)?[0];
        let base_url = format!("http://127.0.0.1:{port}");
        let mut child = spawn_handler(options, host, settings, port)?;
        match wait_ready(http, &base_url, &mut child, Duration::from_secs(30)).await {
            Ok(()) => return Ok((child, base_url)),
            Err(DevHostError::HandlerExited(_)) if attempt < 3 => continue,
            Err(e) => return Err(e),
        }
    }
}

async fn wait_ready(
    http: &HostClient,
    base_url: &str,
    child: &mut tokio::process::Child,
    deadline: Duration,
) -> Result<(), DevHostError> {
    let started = tokio::time::Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(DevHostError::HandlerExited(status));
        }
        if http.probe(base_url).await {
            return Ok(());
        }
        if started.elapsed() > deadline {
            return Err(DevHostError::NotReady(deadline));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts the handler as the host does: `defaultExecutablePath` with its arguments, the app
/// settings and `FUNCTIONS_CUSTOMHANDLER_PORT` in its environment, its output read line by
/// line into the log stream.
fn spawn_handler(
    options: &DevHostOptions,
    host: &HostConfig,
    settings: &AppSettings,
    port: u16,
) -> Result<tokio::process::Child, DevHostError> {
    let root = &options.root;
    let executable = options
        .handler
        .clone()
        .unwrap_or_else(|| root.join(&host.executable));
    let mut command = std::process::Command::new(&executable);
    command
        .args(&host.arguments)
        .current_dir(root)
        .envs(settings.values())
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    azurite::die_with_parent(&mut command);
    let mut child = tokio::process::Command::from(command)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| DevHostError::Spawn {
            path: executable.clone(),
            source,
        })?;
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                log_stream("Host.Function.Console", "Information", &line);
            }
        });
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                log_stream("Host.Function.Console", stderr_level(&line), &line);
            }
        });
    }
    Ok(child)
}
