//! What every command shares: the app settings, read as the handler reads them
//! (`local.settings.json` `Values` under `--root`, the environment over them, `--set` over
//! both), the storage and Training API clients built from them, and the error every command
//! ends with: one line with its cause and a hint, and an exit code.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

use customvision_events::settings::AppSettings;
use customvision_events::settings::Settings;
use std::time::Duration;

use customvision_events::storage::StorageAccount;
use customvision_events::training::{TrainingClient, TrainingError};
use customvision_events::SharedHttp;

/// `--timeout`'s default: the most one request to a service may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How a command failed, which decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// A check the user asked for did not pass (exit 1).
    Check,
    /// The command cannot be run as given: a bad flag, a missing setting (exit 2).
    Usage,
    /// A service could not be reached (exit 3).
    Unreachable,
}

#[derive(Debug)]
pub struct CliError {
    pub failure: Failure,
    pub message: String,
    pub hint: Option<String>,
}

impl CliError {
    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            failure: Failure::Usage,
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    pub fn unreachable(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            failure: Failure::Unreachable,
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    /// A check that failed: `message` is a text or the error itself (shown as its Display).
    pub fn check(message: impl std::fmt::Display) -> Self {
        Self {
            failure: Failure::Check,
            message: message.to_string(),
            hint: None,
        }
    }

    /// Prints the one line (and exits with the code it calls for).
    pub fn report(&self) -> ExitCode {
        let text = customvision_events::redact::redact(&self.message);
        match &self.hint {
            Some(hint) => eprintln!("cvctl: {text} (hint: {hint})"),
            None => eprintln!("cvctl: {text}"),
        }
        ExitCode::from(match self.failure {
            Failure::Check => 1,
            Failure::Usage => 2,
            Failure::Unreachable => 3,
        })
    }
}

/// An SDK error in one line: the status and the service's error code when it answered, the
/// first line of the error otherwise (the SDK's text carries the whole XML body).
pub fn one_line(e: &azure_core::Error) -> String {
    use azure_core::error::ErrorKind;
    match e.kind() {
        ErrorKind::HttpResponse {
            status, error_code, ..
        } => format!(
            "{} {}",
            u16::from(*status),
            error_code.as_deref().unwrap_or("(no error code)")
        ),
        _ => e.to_string().lines().next().unwrap_or_default().to_string(),
    }
}

/// A storage or SDK error: unreachable when nothing answered, a check failure otherwise.
pub fn storage_failure(action: &str, e: &azure_core::Error) -> CliError {
    use azure_core::error::ErrorKind;
    let message = format!("{action}: {}", one_line(e));
    match e.kind() {
        ErrorKind::Io | ErrorKind::Connection => CliError::unreachable(
            message,
            "is the storage account (or Azurite) up, and CV_STORAGE right?",
        ),
        _ => CliError {
            failure: Failure::Check,
            message,
            hint: Some("check the storage roles of whoever runs cvctl".into()),
        },
    }
}

/// A Training API error, sorted the same way.
pub fn training_failure(action: &str, e: &TrainingError) -> CliError {
    let message = format!("{action}: {e}");
    match e {
        TrainingError::Transient { status: None, .. } => CliError::unreachable(
            message,
            "is CUSTOM_VISION_ENDPOINT right and the resource reachable?",
        ),
        TrainingError::Service { status: 401 | 403, .. } => CliError {
            failure: Failure::Check,
            message,
            hint: Some("CUSTOM_VISION_TRAINING_KEY is wrong or expired, or your identity lacks a Custom Vision role".into()),
        },
        TrainingError::Config(_) => CliError::usage(message, "check CUSTOM_VISION_ENDPOINT and the key"),
        _ => CliError {
            failure: Failure::Check,
            message,
            hint: None,
        },
    }
}

pub struct Context {
    pub values: AppSettings,
    pub settings: Settings,
    pub http: SharedHttp,
    /// Every request to a service ends within this (`--timeout`).
    pub timeout: Duration,
    /// Made on first use and kept: its clients and credential serve the whole command.
    account: std::sync::OnceLock<StorageAccount>,
}

impl Context {
    /// `overrides` are `KEY=VALUE` pairs from `--set`; `timeout` bounds every request to a
    /// service, whole answer included.
    pub fn load(root: &Path, overrides: &[String], timeout: Duration) -> Result<Self, CliError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        let mut values = AppSettings::load(root, &env)
            .map_err(|e| CliError::usage(e.to_string(), "fix local.settings.json or --root"))?;
        for pair in overrides {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                CliError::usage(
                    format!("--set {pair}: not KEY=VALUE"),
                    "e.g. --set CV_STORAGE=UseDevelopmentStorage=true",
                )
            })?;
            values.set(k.trim(), v);
        }
        let settings = Settings::from_lookup(&|k| values.get(k)).map_err(|e| {
            CliError::usage(
                e.to_string(),
                "settings come from local.settings.json under --root, the environment, and --set",
            )
        })?;
        Ok(Self {
            values,
            settings,
            http: SharedHttp::with_total_timeout(timeout),
            timeout,
            account: std::sync::OnceLock::new(),
        })
    }

    pub fn value(&self, key: &str) -> Option<String> {
        self.values.get(key).filter(|v| !v.trim().is_empty())
    }

    pub fn account(&self) -> Result<StorageAccount, CliError> {
        if let Some(account) = self.account.get() {
            return Ok(account.clone());
        }
        let account = StorageAccount::new(&self.settings.storage, &self.http)
            .map_err(|e| CliError::usage(e.to_string(), "check CV_STORAGE"))?;
        Ok(self.account.get_or_init(|| account).clone())
    }

    pub fn training(&self) -> Result<TrainingClient, CliError> {
        let Some(settings) = &self.settings.training else {
            return Err(CliError::usage(
                "the Training API is not configured",
                "set CUSTOM_VISION_ENDPOINT (and CUSTOM_VISION_TRAINING_KEY, or sign in with az login)",
            ));
        };
        // The storage account's credential, when it is the same identity (`az login`).
        let account = self.account().ok();
        let client = TrainingClient::from_settings(self.http.clone(), settings, account.as_ref())
            .map_err(|e| training_failure("the Training API client", &e))?;
        // Its retries end within --timeout too: a call, not only an attempt, is bounded.
        let mut policy = client.retry_policy();
        policy.total_deadline = self.timeout;
        policy.attempt_timeout = policy.attempt_timeout.min(self.timeout);
        Ok(client.with_retry_policy(policy))
    }
}
