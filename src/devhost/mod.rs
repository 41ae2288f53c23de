//! The development runner: a stand-in for the Functions host's queue-trigger path, for
//! machines where Core Tools cannot be installed and for the integration tests.
//!
//! It reads the same files as the host (`host.json`, `*/function.json`, `local.settings.json`),
//! starts the handler with `FUNCTIONS_CUSTOMHANDLER_PORT`, waits for `GET /`, then per function
//! polls the trigger queue and invokes the handler as `shared/HOST-CONTRACT.md` describes:
//! double-encoded `Data`, quoted metadata, `Outputs` written to the output queues, a non-2xx
//! answer retried after `visibilityTimeout`, and after `maxDequeueCount` attempts the message
//! moved to `<queue>-poison`. Production and `func start` use the real host, not this.

pub mod azurite;
pub mod config;
pub mod probe;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use azure_storage_queue::models::{
    QueueClientReceiveMessagesOptions, QueueMessage, ReceivedMessage,
};
use azure_storage_queue::QueueClient;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::redact::redact;
use crate::settings::StorageConnection;
use crate::storage::StorageAccount;
use config::{AppSettings, FunctionConfig, HostConfig, MessageEncoding, QueueBinding};

#[derive(Debug, thiserror::Error)]
pub enum DevHostError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("connection {name}: {reason}")]
    Connection { name: String, reason: String },
    #[error("cannot start the handler {path}: {source}")]
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the handler did not answer GET / within {0:?}")]
    NotReady(Duration),
    #[error("the handler exited: {0}")]
    HandlerExited(std::process::ExitStatus),
    #[error("{0}")]
    Storage(String),
}

/// Knobs for tests and the demo; `None` keeps what `host.json` says.
#[derive(Debug, Clone, Default)]
pub struct DevHostOptions {
    pub root: PathBuf,
    /// The handler executable; default: `defaultExecutablePath` under `root`.
    pub handler: Option<PathBuf>,
    pub max_polling_interval: Option<Duration>,
    pub visibility_timeout: Option<Duration>,
    /// Settings that override both `local.settings.json` and the environment.
    pub overrides: Vec<(String, String)>,
}

struct Runtime {
    host: HostConfig,
    http: reqwest::Client,
    base_url: String,
    function: FunctionConfig,
    trigger: QueueClient,
    poison: QueueClient,
    outputs: HashMap<String, QueueClient>,
}

/// Runs until `shutdown` flips to true or the handler dies.
pub async fn run(
    options: DevHostOptions,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), DevHostError> {
    let root = &options.root;
    let env: HashMap<String, String> = std::env::vars().collect();
    let mut settings = AppSettings::load(root, &env)?;
    for (k, v) in &options.overrides {
        settings.set(k, v);
    }
    let mut host = config::load_host(root)?;
    if let Some(d) = options.max_polling_interval {
        host.queues.max_polling_interval = d;
    }
    if let Some(d) = options.visibility_timeout {
        host.queues.visibility_timeout = d;
    }
    let functions = config::load_functions(root, &settings)?;

    let mut accounts: HashMap<String, StorageAccount> = HashMap::new();
    let mut account_for = |name: &str| -> Result<StorageAccount, DevHostError> {
        if let Some(a) = accounts.get(name) {
            return Ok(a.clone());
        }
        let conn = StorageConnection::from_settings(name, &|k| settings.get(k)).map_err(|e| {
            DevHostError::Connection {
                name: name.into(),
                reason: e.to_string(),
            }
        })?;
        let account = StorageAccount::new(&conn).map_err(|e| DevHostError::Connection {
            name: name.into(),
            reason: e.to_string(),
        })?;
        accounts.insert(name.to_string(), account.clone());
        Ok(account)
    };

    let port = azurite::free_ports::<1>().map_err(|e| DevHostError::Storage(e.to_string()))?[0];
    let base_url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(host.function_timeout + Duration::from_secs(60))
        .build()
        .map_err(|e| DevHostError::Storage(e.to_string()))?;

    let mut runtimes = Vec::new();
    for function in &functions {
        // The host creates the queues it reads and writes; so does this.
        let account = account_for(&function.trigger.connection)?;
        let poison_name = format!("{}-poison", function.trigger.queue);
        let trigger = ensure_queue(&account, &function.trigger.queue).await?;
        let poison = ensure_queue(&account, &poison_name).await?;
        let mut outputs = HashMap::new();
        for output in &function.outputs {
            let account = account_for(&output.connection)?;
            outputs.insert(
                output.name.clone(),
                ensure_queue(&account, &output.queue).await?,
            );
        }
        runtimes.push(Arc::new(Runtime {
            host: host.clone(),
            http: http.clone(),
            base_url: base_url.clone(),
            function: function.clone(),
            trigger,
            poison,
            outputs,
        }));
    }
    // Development convenience: the containers the handler works in (infra creates them in Azure).
    if let Ok(account) = account_for("CV_STORAGE") {
        for key in ["CV_BACKUP_CONTAINER", "MODEL_STORE_CONTAINER"] {
            if let Some(name) = settings.get(key) {
                account.ensure_container(&name).await.map_err(storage)?;
            }
        }
    }

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
        .stdin(Stdio::null());
    azurite::die_with_parent(&mut command);
    let mut child = tokio::process::Command::from(command)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| DevHostError::Spawn {
            path: executable.clone(),
            source,
        })?;
    wait_ready(&http, &base_url, &mut child, Duration::from_secs(30)).await?;
    tracing::info!(
        functions = ?functions.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        "dev host ready: handler on {base_url}"
    );

    let tasks: Vec<_> = runtimes
        .into_iter()
        .map(|rt| tokio::spawn(poll_loop(rt, shutdown.clone())))
        .collect();
    let result = tokio::select! {
        status = child.wait() => match status {
            Ok(s) => Err(DevHostError::HandlerExited(s)),
            Err(e) => Err(DevHostError::Storage(e.to_string())),
        },
        _ = shutdown.wait_for(|stop| *stop) => Ok(()),
    };
    for t in tasks {
        t.abort();
    }
    let _ = child.kill().await;
    result
}

fn storage(e: crate::storage::StorageError) -> DevHostError {
    DevHostError::Storage(e.to_string())
}

async fn ensure_queue(account: &StorageAccount, name: &str) -> Result<QueueClient, DevHostError> {
    account.ensure_queue(name).await.map_err(storage)?;
    account.queue(name).map_err(storage)
}

async fn wait_ready(
    http: &reqwest::Client,
    base_url: &str,
    child: &mut tokio::process::Child,
    deadline: Duration,
) -> Result<(), DevHostError> {
    let started = tokio::time::Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(DevHostError::HandlerExited(status));
        }
        if http.get(format!("{base_url}/")).send().await.is_ok() {
            return Ok(());
        }
        if started.elapsed() > deadline {
            return Err(DevHostError::NotReady(deadline));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Like the host's listener: back off exponentially while the queue is empty, up to
/// `maxPollingInterval`; fetch again at once while it is not.
async fn poll_loop(rt: Arc<Runtime>, mut shutdown: watch::Receiver<bool>) {
    const MIN_INTERVAL: Duration = Duration::from_millis(100);
    let mut interval = MIN_INTERVAL;
    let lease = (rt.host.function_timeout + Duration::from_secs(60)).as_secs();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let options = QueueClientReceiveMessagesOptions {
            number_of_messages: Some(rt.host.queues.batch_size as i32),
            visibility_timeout: Some(i32::try_from(lease).unwrap_or(i32::MAX)),
            ..Default::default()
        };
        let messages = match rt.trigger.receive_messages(Some(options)).await {
            Ok(r) => r.into_model().map(|m| m.items.unwrap_or_default()),
            Err(e) => Err(e),
        };
        let messages = match messages {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(function = %rt.function.name, "receive failed: {}", redact(&e.to_string()));
                Vec::new()
            }
        };
        if messages.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => {}
            }
            interval = (interval * 2).min(rt.host.queues.max_polling_interval.max(MIN_INTERVAL));
            continue;
        }
        interval = MIN_INTERVAL;
        let handles: Vec<_> = messages
            .into_iter()
            .map(|m| {
                let rt = rt.clone();
                tokio::spawn(async move { rt.process(m).await })
            })
            .collect();
        for h in handles {
            let _ = h.await;
        }
    }
}

impl Runtime {
    async fn process(&self, message: ReceivedMessage) {
        let name = &self.function.name;
        let (Some(id), Some(receipt)) = (message.message_id.clone(), message.pop_receipt.clone())
        else {
            return;
        };
        let dequeue_count = u32::try_from(message.dequeue_count.unwrap_or(1)).unwrap_or(u32::MAX);
        let raw = message.message_text.clone().unwrap_or_default();
        let text = match self.host.queues.message_encoding {
            MessageEncoding::None => raw.clone(),
            MessageEncoding::Base64 => match base64::engine::general_purpose::STANDARD
                .decode(raw.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
            {
                Some(t) => t,
                None => {
                    // The host never invokes the function for such a message.
                    self.poison(
                        &id,
                        &receipt,
                        &raw,
                        "message is not base64 (messageEncoding is base64)",
                    )
                    .await;
                    return;
                }
            },
        };
        if dequeue_count > self.host.queues.max_dequeue_count {
            self.poison(
                &id,
                &receipt,
                &raw,
                "dequeue count already over maxDequeueCount",
            )
            .await;
            return;
        }
        match self.invoke(&message, &text, dequeue_count).await {
            Ok(outputs) => match self.write_outputs(outputs).await {
                Ok(()) => {
                    if let Err(e) = self.trigger.delete_message(&id, &receipt, None).await {
                        tracing::warn!(function = %name, "delete failed: {}", redact(&e.to_string()));
                    }
                }
                Err(reason) => self.fail(&id, &receipt, &raw, dequeue_count, &reason).await,
            },
            Err(reason) => self.fail(&id, &receipt, &raw, dequeue_count, &reason).await,
        }
    }

    /// POSTs the invocation; `Ok` carries `Outputs` of a 2xx JSON answer.
    async fn invoke(
        &self,
        message: &ReceivedMessage,
        text: &str,
        dequeue_count: u32,
    ) -> Result<Map<String, Value>, String> {
        let name = &self.function.name;
        let invocation_id = uuid::Uuid::new_v4().to_string();
        let body = invocation_body(name, &self.function.trigger, message, text, dequeue_count);
        let response = self
            .http
            .post(format!("{}/{name}", self.base_url))
            .header("X-Azure-Functions-InvocationId", &invocation_id)
            .header("X-Azure-Functions-HostVersion", "4.0.0-devhost")
            .header("User-Agent", "Azure-Functions-Host/4.0.0-devhost")
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("invocation failed: {e}"))?;
        let status = response.status();
        let is_json = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let bytes = response
            .bytes()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?;
        if !status.is_success() {
            // Logs are dropped on a non-2xx answer, as the host does.
            return Err(format!("handler answered {status}"));
        }
        if !is_json {
            return Err("handler answered without Content-Type: application/json".into());
        }
        let body: Value =
            serde_json::from_slice(&bytes).map_err(|_| "handler answered non-JSON".to_string())?;
        for line in body["Logs"].as_array().into_iter().flatten() {
            if let Some(line) = line.as_str() {
                tracing::info!(function = %name, invocation_id = %invocation_id, "{line}");
            }
        }
        Ok(body["Outputs"].as_object().cloned().unwrap_or_default())
    }

    async fn write_outputs(&self, outputs: Map<String, Value>) -> Result<(), String> {
        for (binding, value) in outputs {
            let Some(queue) = self.outputs.get(&binding) else {
                return Err(format!("Outputs.{binding} names no output binding"));
            };
            for text in output_messages(&value) {
                self.send(queue, &text).await?;
            }
        }
        Ok(())
    }

    async fn send(&self, queue: &QueueClient, text: &str) -> Result<(), String> {
        let encoded = match self.host.queues.message_encoding {
            MessageEncoding::None => text.to_string(),
            MessageEncoding::Base64 => base64::engine::general_purpose::STANDARD.encode(text),
        };
        let message = QueueMessage {
            message_text: Some(encoded),
        };
        let content = message
            .try_into()
            .map_err(|e: azure_core::Error| e.to_string())?;
        queue
            .send_message(content, None)
            .await
            .map(|_| ())
            .map_err(|e| redact(&format!("writing an output: {e}")))
    }

    async fn fail(&self, id: &str, receipt: &str, raw: &str, dequeue_count: u32, reason: &str) {
        let name = &self.function.name;
        if dequeue_count >= self.host.queues.max_dequeue_count {
            self.poison(id, receipt, raw, reason).await;
            return;
        }
        tracing::warn!(function = %name, dequeue_count, "invocation failed, will retry: {}", redact(reason));
        let visibility =
            i32::try_from(self.host.queues.visibility_timeout.as_secs()).unwrap_or(i32::MAX);
        if let Err(e) = self
            .trigger
            .update_message(id, receipt, visibility, None)
            .await
        {
            tracing::warn!(function = %name, "releasing the message failed: {}", redact(&e.to_string()));
        }
    }

    async fn poison(&self, id: &str, receipt: &str, raw: &str, reason: &str) {
        let name = &self.function.name;
        tracing::error!(function = %name, "moving message {id} to {}-poison: {}", self.function.trigger.queue, redact(reason));
        // The raw text as it was, already in the queue's encoding.
        let message = QueueMessage {
            message_text: Some(raw.to_string()),
        };
        let sent = match message.try_into() {
            Ok(content) => self.poison.send_message(content, None).await.map(|_| ()),
            Err(e) => Err(e),
        };
        match sent {
            Ok(()) => {
                let _ = self.trigger.delete_message(id, receipt, None).await;
            }
            Err(e) => {
                tracing::error!(function = %name, "poisoning failed, message stays: {}", redact(&e.to_string()))
            }
        }
    }
}

/// The request body the host sends (HOST-CONTRACT.md): `Data.<binding>` is the message text
/// JSON-encoded twice; `Id` and `PopReceipt` quoted; `DequeueCount` a string; a JSON message's
/// top-level properties copied into `Metadata` (strings quoted too).
pub fn invocation_body(
    function: &str,
    trigger: &QueueBinding,
    message: &ReceivedMessage,
    text: &str,
    dequeue_count: u32,
) -> Value {
    let quoted = |s: &str| Value::String(Value::String(s.to_string()).to_string());
    let iso = |t: Option<OffsetDateTime>| {
        t.and_then(|t| t.format(&Rfc3339).ok())
            .map(Value::String)
            .unwrap_or(Value::Null)
    };
    let mut metadata = Map::new();
    if let Ok(Value::Object(props)) = serde_json::from_str::<Value>(text) {
        for (k, v) in props {
            let v = match v {
                Value::String(s) => quoted(&s),
                other => other,
            };
            metadata.insert(k, v);
        }
    }
    metadata.insert(
        "DequeueCount".into(),
        Value::String(dequeue_count.to_string()),
    );
    metadata.insert("ExpirationTime".into(), iso(message.expiration_time));
    metadata.insert(
        "Id".into(),
        quoted(message.message_id.as_deref().unwrap_or_default()),
    );
    metadata.insert("InsertionTime".into(), iso(message.insertion_time));
    metadata.insert("NextVisibleTime".into(), iso(message.time_next_visible));
    metadata.insert(
        "PopReceipt".into(),
        quoted(message.pop_receipt.as_deref().unwrap_or_default()),
    );
    metadata.insert(
        "sys".into(),
        json!({
            "MethodName": function,
            "UtcNow": OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default(),
            "RandGuid": uuid::Uuid::new_v4().to_string(),
        }),
    );
    let mut data = Map::new();
    data.insert(trigger.name.clone(), quoted(text));
    json!({ "Data": data, "Metadata": metadata })
}

/// How the host turns one `Outputs` value into queue messages: an array is one message per
/// element, an object is its JSON text, and a string that is valid base64 is written as the
/// decoded bytes (the pitfall the handler avoids by never sending bare strings).
pub fn output_messages(value: &Value) -> Vec<String> {
    match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items.iter().flat_map(output_messages).collect(),
        Value::String(s) => match base64::engine::general_purpose::STANDARD.decode(s) {
            Ok(bytes) if !s.is_empty() => vec![String::from_utf8_lossy(&bytes).into_owned()],
            _ => vec![s.clone()],
        },
        other => vec![other.to_string()],
    }
}

/// Resolves the repository root: `--root`, else the current directory.
pub fn root_or_cwd(root: Option<&Path>) -> PathBuf {
    root.map(Path::to_path_buf)
        .unwrap_or_else(|| std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{InvocationRequest, TRIGGER_BINDING};

    #[test]
    fn body_round_trips_through_the_handler_decoder() {
        let text = r#"{"version":"1.0","type":"Training","Content":{"projectId":"p"}}"#;
        let mut message = ReceivedMessage::default();
        message.message_id = Some("800ae4b3".into());
        message.pop_receipt = Some("AgAAAA==".into());
        message.dequeue_count = Some(2);
        let trigger = QueueBinding {
            name: TRIGGER_BINDING.into(),
            queue: "q".into(),
            connection: "C".into(),
        };
        let body = invocation_body("Notifications", &trigger, &message, text, 2);
        // Double-encoded, as the host's source does it.
        let data = body["Data"][TRIGGER_BINDING].as_str().unwrap();
        assert!(data.starts_with("\"{\\\"version"), "{data}");
        assert_eq!(body["Metadata"]["Id"], "\"800ae4b3\"");
        assert_eq!(body["Metadata"]["DequeueCount"], "2");
        assert_eq!(body["Metadata"]["type"], "\"Training\"");
        assert_eq!(body["Metadata"]["Content"]["projectId"], "p");
        let req: InvocationRequest = serde_json::from_value(body).unwrap();
        assert_eq!(req.message_text(TRIGGER_BINDING).unwrap(), text);
        assert_eq!(req.dequeue_count(), Some(2));
        assert_eq!(req.message_id().as_deref(), Some("800ae4b3"));
    }

    #[test]
    fn outputs_become_messages_like_the_host() {
        assert_eq!(output_messages(&json!({"a":1})), vec![r#"{"a":1}"#]);
        assert_eq!(output_messages(&json!([{"a":1}, {"b":2}])).len(), 2);
        assert_eq!(
            output_messages(&json!("aGVsbG8=")),
            vec!["hello"],
            "base64 strings are decoded"
        );
        assert_eq!(output_messages(&json!("not base64!")), vec!["not base64!"]);
        assert!(output_messages(&Value::Null).is_empty());
    }
}
