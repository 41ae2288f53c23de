//! What the dev host reads, as the Functions host reads it: `host.json` and every
//! `*/function.json`, with `%NAME%` resolved from the app settings
//! ([`crate::settings::AppSettings`]: `local.settings.json` `Values`, real environment
//! variables win).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::settings::{read_json, AppSettings, JsonFileError, ResolveError};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    File(#[from] JsonFileError),
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Setting { path: PathBuf, source: ResolveError },
}

/// Why a `function.json` is not one the dev host can run.
#[derive(Debug, thiserror::Error)]
pub enum FunctionJsonError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Setting(#[from] ResolveError),
}

impl From<String> for FunctionJsonError {
    fn from(reason: String) -> Self {
        Self::Invalid(reason)
    }
}

impl From<&str> for FunctionJsonError {
    fn from(reason: &str) -> Self {
        Self::Invalid(reason.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageEncoding {
    Base64,
    None,
}

/// `extensions.queues` with the Storage Queues extension 5.x defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueOptions {
    pub batch_size: u32,
    pub max_polling_interval: Duration,
    pub visibility_timeout: Duration,
    pub max_dequeue_count: u32,
    pub message_encoding: MessageEncoding,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            batch_size: 16,
            max_polling_interval: Duration::from_secs(60),
            visibility_timeout: Duration::ZERO,
            max_dequeue_count: 5,
            message_encoding: MessageEncoding::Base64,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    pub executable: String,
    pub arguments: Vec<String>,
    pub function_timeout: Duration,
    pub queues: QueueOptions,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueBinding {
    /// The binding name: `Data.<name>` for the trigger, `Outputs.<name>` for an output.
    pub name: String,
    /// The queue name with `%SETTING%` resolved.
    pub queue: String,
    /// The connection setting prefix (`CV_STORAGE`).
    pub connection: String,
}

/// A blob output binding (`type: blob`, `direction: out`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobBinding {
    /// `Outputs.<name>`.
    pub name: String,
    /// `container/blob`, `%SETTING%` resolved; `{Id}`-style expressions stay for each
    /// invocation to resolve.
    pub path: String,
    pub connection: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionConfig {
    pub name: String,
    pub trigger: QueueBinding,
    pub outputs: Vec<QueueBinding>,
    pub blob_outputs: Vec<BlobBinding>,
}

pub fn load_host(root: &Path) -> Result<HostConfig, ConfigError> {
    let path = root.join("host.json");
    parse_host(&read_json(&path)?).map_err(|reason| ConfigError::Invalid { path, reason })
}

pub fn parse_host(json: &Value) -> Result<HostConfig, String> {
    let description = &json["customHandler"]["description"];
    let executable = description["defaultExecutablePath"]
        .as_str()
        .ok_or("customHandler.description.defaultExecutablePath is missing")?
        .to_string();
    let arguments = description["arguments"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let function_timeout = match json["functionTimeout"].as_str() {
        Some(t) => parse_timespan(t)?,
        None => Duration::from_secs(5 * 60),
    };
    let q = &json["extensions"]["queues"];
    let defaults = QueueOptions::default();
    let number = |key: &str, default: u32| -> Result<u32, String> {
        match &q[key] {
            Value::Null => Ok(default),
            v => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or(format!("extensions.queues.{key} must be a whole number")),
        }
    };
    let span = |key: &str, default: Duration| -> Result<Duration, String> {
        match q[key].as_str() {
            Some(t) => parse_timespan(t).map_err(|e| format!("extensions.queues.{key}: {e}")),
            None => Ok(default),
        }
    };
    let message_encoding = match q["messageEncoding"].as_str() {
        None => defaults.message_encoding,
        Some(e) if e.eq_ignore_ascii_case("base64") => MessageEncoding::Base64,
        Some(e) if e.eq_ignore_ascii_case("none") => MessageEncoding::None,
        Some(e) => {
            return Err(format!(
                "extensions.queues.messageEncoding '{e}' is not base64 or none"
            ))
        }
    };
    let batch_size = number("batchSize", defaults.batch_size)?;
    if !(1..=32).contains(&batch_size) {
        return Err("extensions.queues.batchSize must be 1 to 32".into());
    }
    Ok(HostConfig {
        executable,
        arguments,
        function_timeout,
        queues: QueueOptions {
            batch_size,
            max_polling_interval: span("maxPollingInterval", defaults.max_polling_interval)?,
            visibility_timeout: span("visibilityTimeout", defaults.visibility_timeout)?,
            max_dequeue_count: number("maxDequeueCount", defaults.max_dequeue_count)?,
            message_encoding,
        },
    })
}

/// Every folder of `root` with a `function.json`, sorted by name.
pub fn load_functions(
    root: &Path,
    settings: &AppSettings,
) -> Result<Vec<FunctionConfig>, ConfigError> {
    let entries = std::fs::read_dir(root).map_err(|source| JsonFileError::Read {
        path: root.to_path_buf(),
        source,
    })?;
    let mut functions = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path().join("function.json");
        if !path.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let json = read_json(&path)?;
        let function = parse_function(&name, &json, settings).map_err(|e| match e {
            FunctionJsonError::Invalid(reason) => ConfigError::Invalid { path, reason },
            FunctionJsonError::Setting(source) => ConfigError::Setting { path, source },
        })?;
        functions.push(function);
    }
    functions.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(functions)
}

#[derive(Deserialize)]
struct RawBinding {
    #[serde(rename = "type")]
    kind: String,
    direction: String,
    name: String,
    #[serde(rename = "queueName")]
    queue_name: Option<String>,
    path: Option<String>,
    connection: Option<String>,
}

pub fn parse_function(
    name: &str,
    json: &Value,
    settings: &AppSettings,
) -> Result<FunctionConfig, FunctionJsonError> {
    let bindings: Vec<RawBinding> =
        serde_json::from_value(json["bindings"].clone()).map_err(|e| format!("bindings: {e}"))?;
    let queue_binding = |b: &RawBinding| -> Result<QueueBinding, FunctionJsonError> {
        let raw = b
            .queue_name
            .as_deref()
            .ok_or(format!("binding '{}' has no queueName", b.name))?;
        Ok(QueueBinding {
            name: b.name.clone(),
            queue: settings.resolve(raw)?,
            connection: b
                .connection
                .clone()
                .unwrap_or_else(|| "AzureWebJobsStorage".into()),
        })
    };
    let blob_binding = |b: &RawBinding| -> Result<BlobBinding, FunctionJsonError> {
        let raw = b
            .path
            .as_deref()
            .ok_or(format!("binding '{}' has no path", b.name))?;
        let path = settings.resolve(raw)?;
        if !path.contains('/') || path.starts_with('/') {
            return Err(format!("binding '{}': path '{raw}' is not container/blob", b.name).into());
        }
        Ok(BlobBinding {
            name: b.name.clone(),
            path,
            connection: b
                .connection
                .clone()
                .unwrap_or_else(|| "AzureWebJobsStorage".into()),
        })
    };
    let mut trigger = None;
    let mut outputs = Vec::new();
    let mut blob_outputs = Vec::new();
    for b in &bindings {
        match (b.kind.as_str(), b.direction.as_str()) {
            ("queueTrigger", "in") => {
                if trigger.replace(queue_binding(b)?).is_some() {
                    return Err("more than one trigger".into());
                }
            }
            ("queue", "out") => outputs.push(queue_binding(b)?),
            ("blob", "out") => blob_outputs.push(blob_binding(b)?),
            (kind, direction) => {
                return Err(format!(
                    "binding '{}' ({kind}, {direction}) is not supported by the dev host",
                    b.name
                )
                .into())
            }
        }
    }
    Ok(FunctionConfig {
        name: name.to_string(),
        trigger: trigger.ok_or("no queueTrigger binding")?,
        outputs,
        blob_outputs,
    })
}

/// .NET TimeSpan text as host.json uses it: `hh:mm:ss[.fff]` or `d.hh:mm:ss`.
pub fn parse_timespan(text: &str) -> Result<Duration, String> {
    let bad = || format!("'{text}' is not a hh:mm:ss time span");
    let (days, clock) = match text.split_once('.') {
        Some((d, rest)) if rest.contains(':') && !d.contains(':') => {
            (d.parse::<u64>().map_err(|_| bad())?, rest)
        }
        _ => (0, text),
    };
    let parts: Vec<&str> = clock.split(':').collect();
    let [h, m, s] = parts.as_slice() else {
        return Err(bad());
    };
    let hours: u64 = h.parse().map_err(|_| bad())?;
    let minutes: u64 = m.parse().map_err(|_| bad())?;
    let seconds: f64 = s.parse().map_err(|_| bad())?;
    if minutes >= 60 || !(0.0..60.0).contains(&seconds) {
        return Err(bad());
    }
    Ok(
        Duration::from_secs((days * 24 + hours) * 3600 + minutes * 60)
            + Duration::from_secs_f64(seconds),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::{
        Function, CONNECTION_TEST_OUTPUT, EVENTS_OUTPUT, EXPORT_OUTPUT, FAILED_EVENTS_OUTPUT,
        REJECTED_BLOB_OUTPUT, REJECTED_OUTPUT, TRAINING_OUTPUT,
    };
    use serde_json::json;
    use std::collections::{BTreeSet, HashMap};

    fn repo_root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn timespans() {
        assert_eq!(parse_timespan("00:00:05").unwrap(), Duration::from_secs(5));
        assert_eq!(
            parse_timespan("00:10:00").unwrap(),
            Duration::from_secs(600)
        );
        assert_eq!(
            parse_timespan("01:00:00.5").unwrap(),
            Duration::from_millis(3_600_500)
        );
        assert_eq!(
            parse_timespan("1.00:00:00").unwrap(),
            Duration::from_secs(86_400)
        );
        for bad in ["5", "00:61:00", "a:b:c", "00:00:60", ""] {
            assert!(parse_timespan(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_defaults_and_overrides() {
        let h = parse_host(
            &json!({"customHandler":{"description":{"defaultExecutablePath":"handler"}}}),
        )
        .unwrap();
        assert_eq!(h.queues, QueueOptions::default());
        let h = parse_host(&json!({
            "customHandler":{"description":{"defaultExecutablePath":"handler","arguments":["serve"]}},
            "functionTimeout":"00:02:00",
            "extensions":{"queues":{"batchSize":4,"maxPollingInterval":"00:00:02","visibilityTimeout":"00:00:30","maxDequeueCount":3,"messageEncoding":"none"}}
        })).unwrap();
        assert_eq!(h.arguments, vec!["serve"]);
        assert_eq!(h.function_timeout, Duration::from_secs(120));
        assert_eq!(h.queues.batch_size, 4);
        assert_eq!(h.queues.max_dequeue_count, 3);
        assert_eq!(h.queues.message_encoding, MessageEncoding::None);
        assert!(parse_host(&json!({})).is_err());
        assert!(parse_host(&json!({"customHandler":{"description":{"defaultExecutablePath":"h"}},"extensions":{"queues":{"batchSize":64}}})).is_err());
    }

    /// The repository's own files are what the dev host and `func start` both read.
    #[test]
    fn repository_configuration_loads() {
        let root = repo_root();
        let host = load_host(&root).unwrap();
        assert_eq!(host.executable, "handler");
        assert_eq!(host.queues.message_encoding, MessageEncoding::None);
        let settings = AppSettings::load(&root, &HashMap::new()).unwrap();
        let functions = load_functions(&root, &settings).unwrap();
        // Every folder with a function.json is a function of the handler, and every function
        // has its folder.
        let mut served: Vec<Function> = functions
            .iter()
            .map(|f| f.name.parse::<Function>().unwrap())
            .collect();
        served.sort();
        let mut all = Function::ALL.to_vec();
        all.sort();
        assert_eq!(served, all);
        let folder = |function: Function| {
            functions
                .iter()
                .find(|f| f.name == function.name())
                .unwrap()
        };
        for function in Function::ALL {
            // The output bindings each function writes; a new function must name its own.
            let (queues, blobs): (&[&str], &[&str]) = match function {
                Function::Notifications => (
                    &[
                        TRAINING_OUTPUT,
                        EXPORT_OUTPUT,
                        EVENTS_OUTPUT,
                        REJECTED_OUTPUT,
                    ],
                    &[REJECTED_BLOB_OUTPUT, CONNECTION_TEST_OUTPUT],
                ),
                Function::TrainingCompleted | Function::ExportCompleted => {
                    (&[EVENTS_OUTPUT, REJECTED_OUTPUT], &[REJECTED_BLOB_OUTPUT])
                }
                Function::PublishEvents => (
                    &[FAILED_EVENTS_OUTPUT, REJECTED_OUTPUT],
                    &[REJECTED_BLOB_OUTPUT],
                ),
            };
            let f = folder(function);
            assert_eq!(f.trigger.name, crate::envelope::TRIGGER_BINDING);
            assert_eq!(f.trigger.connection, "CV_STORAGE");
            assert_eq!(
                f.outputs
                    .iter()
                    .map(|o| o.name.as_str())
                    .collect::<BTreeSet<_>>(),
                queues.iter().copied().collect::<BTreeSet<_>>(),
                "{function}"
            );
            assert_eq!(
                f.blob_outputs
                    .iter()
                    .map(|b| b.name.as_str())
                    .collect::<BTreeSet<_>>(),
                blobs.iter().copied().collect::<BTreeSet<_>>(),
                "{function}"
            );
            let blob = f
                .blob_outputs
                .iter()
                .find(|b| b.name == REJECTED_BLOB_OUTPUT)
                .unwrap_or_else(|| panic!("{function} keeps large rejected messages"));
            // The path the handler names in its record is the one the host writes.
            let expected = settings
                .resolve(&crate::functions::rejected::blob_path_template(function))
                .unwrap();
            assert_eq!(blob.path, expected);
            assert_eq!(blob.connection, "CV_STORAGE");
        }
        let notifications = folder(Function::Notifications);
        assert_eq!(notifications.trigger.queue, "customvision-notifications");
        // The ConnectionTest records go where `cvctl verify` looks for them.
        let connection_test = notifications
            .blob_outputs
            .iter()
            .find(|b| b.name == CONNECTION_TEST_OUTPUT)
            .unwrap();
        assert_eq!(
            connection_test.path,
            settings
                .resolve(&crate::functions::connection_test::blob_path_template())
                .unwrap()
        );
        assert!(
            connection_test.path.starts_with(&format!(
                "customvision-status/{}/",
                crate::naming::stored::CONNECTION_TESTS_PREFIX
            )),
            "{}",
            connection_test.path
        );
        let output_queue = |b: &str| {
            notifications
                .outputs
                .iter()
                .find(|o| o.name == b)
                .unwrap()
                .queue
                .clone()
        };
        assert_eq!(
            output_queue(TRAINING_OUTPUT),
            folder(Function::TrainingCompleted).trigger.queue
        );
        assert_eq!(
            output_queue(EXPORT_OUTPUT),
            folder(Function::ExportCompleted).trigger.queue
        );
        // Every store function's events go to the queue PublishEvents reads.
        for function in [
            Function::Notifications,
            Function::TrainingCompleted,
            Function::ExportCompleted,
        ] {
            let events = folder(function)
                .outputs
                .iter()
                .find(|o| o.name == EVENTS_OUTPUT)
                .unwrap()
                .queue
                .clone();
            assert_eq!(events, folder(Function::PublishEvents).trigger.queue);
        }
        let failed = folder(Function::PublishEvents)
            .outputs
            .iter()
            .find(|o| o.name == FAILED_EVENTS_OUTPUT)
            .unwrap()
            .queue
            .clone();
        assert_eq!(failed, "customvision-events-failed");
    }
}
