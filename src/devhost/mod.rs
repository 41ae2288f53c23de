//! The development runner: a stand-in for the Functions host's queue-trigger path, for
//! machines where Core Tools cannot be installed and for the integration tests.
//!
//! It reads the same files as the host (`host.json`, `*/function.json`, `local.settings.json`),
//! starts the handler with `FUNCTIONS_CUSTOMHANDLER_PORT`, waits for `GET /`, then per function
//! polls the trigger queue and invokes the handler as `shared/HOST-CONTRACT.md` describes:
//! - on the wire as the host's `HttpClient` ([`http`]): chunked bodies with no length, the
//!   host's headers, one pool of kept-alive connections;
//! - double-encoded `Data`, quoted metadata;
//! - `Outputs` written to the queue and blob output bindings with the host's conversions
//!   ([`outputs`]);
//! - a non-2xx answer retried after `visibilityTimeout`, and after `maxDequeueCount` attempts
//!   the message moved to `<queue>-poison`;
//! - a handler that dies started again on a new port, as the host's
//!   `HttpFunctionInvocationDispatcher` restarts its worker: up to 3 exits within 30 minutes,
//!   then the host stops; invocations in flight when it died fail and are retried (the
//!   handler process, its restarts and its output: `worker.rs`);
//! - one log stream: the handler's stdout and stderr lines, and each `Logs` entry of a 2xx
//!   answer, printed as the host logs them.
//!
//! This module is the queue poller; `worker.rs` the handler process beside it. Beside them,
//! the stand-ins a local run needs: [`azurite`], [`custom_vision`] (the Training API) and
//! [`webhook`] (a receiver that verifies the events' signatures, for `cvctl demo`).
//!
//! Production and `func start` use the real host, not this.

pub mod azurite;
pub(crate) mod config;
pub mod custom_vision;
mod failure;
pub(crate) mod http;
pub(crate) mod outputs;
pub mod probe;
pub mod webhook;
mod worker;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use azure_core::http::RequestContent;
use azure_storage_queue::models::{
    QueueClientReceiveMessagesOptions, QueueMessage, ReceivedMessage,
};
use azure_storage_queue::QueueClient;
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::base64text;
use crate::redact::redact;
use crate::settings::AppSettings;
use crate::settings::StorageConnection;
use crate::storage::StorageAccount;
use config::{BlobBinding, FunctionConfig, HostConfig, MessageEncoding, QueueBinding};
use failure::InvocationFailure;
use http::HostClient;
use worker::{log_stream, start_handler, supervise};
pub use worker::{RESTART_LIMIT, RESTART_WINDOW};

#[derive(Debug, thiserror::Error)]
pub enum DevHostError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    LocalSettings(#[from] crate::settings::JsonFileError),
    #[error("connection {name}: {source}")]
    Connection {
        name: String,
        #[source]
        source: crate::settings::SettingsError,
    },
    #[error("connection {name}: {source}")]
    Account {
        name: String,
        /// Boxed: a storage error is large, and this one is rare.
        #[source]
        source: Box<crate::storage::StorageError>,
    },
    #[error("cannot start the handler {path}: {source}")]
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the handler did not answer GET / within {0:?}")]
    NotReady(Duration),
    #[error("the handler exited: {0}")]
    HandlerExited(std::process::ExitStatus),
    #[error("the handler exited {RESTART_LIMIT} times within {RESTART_WINDOW:?} (last: {0}); stopping, as the host does")]
    TooManyRestarts(std::process::ExitStatus),
    #[error("cannot wait for the handler: {0}")]
    Wait(#[source] std::io::Error),
    #[error("no free port for the handler: {0}")]
    NoFreePort(#[source] std::io::Error),
    /// Storage the dev host prepares (queues, containers) could not be reached or made.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
}

/// Knobs for tests and the demo; `None` keeps what `host.json` says.
#[derive(Debug, Clone, Default)]
pub struct DevHostOptions {
    pub root: PathBuf,
    /// The handler executable; default: `defaultExecutablePath` under `root`.
    pub handler: Option<PathBuf>,
    pub max_polling_interval: Option<Duration>,
    pub visibility_timeout: Option<Duration>,
    /// How long a received message stays invisible while it is processed. The host receives
    /// with 10 minutes and renews that on a timer while the function runs (azure-sdk-for-net,
    /// `QueueListener._visibilityTimeout`); by default this keeps it for `functionTimeout` +
    /// 1 minute, unrenewed. Tests that take storage away shorten it, so that a message whose
    /// release or delete failed during the outage comes back in seconds, not minutes.
    pub lease: Option<Duration>,
    /// Settings that override both `local.settings.json` and the environment.
    pub overrides: Vec<(String, String)>,
}

struct Runtime {
    host: HostConfig,
    http: HostClient,
    /// The running handler's base URL; a restarted handler listens on another port.
    base_url: Arc<std::sync::RwLock<String>>,
    lease: Duration,
    function: FunctionConfig,
    trigger: Arc<QueueClient>,
    poison: Arc<QueueClient>,
    outputs: HashMap<String, Arc<QueueClient>>,
    blob_outputs: Vec<(BlobBinding, StorageAccount)>,
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

    // One HTTP client for every storage account the dev host reaches. Each request ends within
    // 100 s, as the real host's Azure.Core client does (`RetryOptions.NetworkTimeout`,
    // 100 s by default): a storage endpoint that drips bytes cannot stall the polling loop.
    let storage_http = crate::http::SharedHttp::with_total_timeout(Duration::from_secs(100));
    let mut accounts: HashMap<String, StorageAccount> = HashMap::new();
    let mut account_for = |name: &str| -> Result<StorageAccount, DevHostError> {
        if let Some(a) = accounts.get(name) {
            return Ok(a.clone());
        }
        let conn =
            StorageConnection::from_settings(name, &|k| settings.get(k)).map_err(|source| {
                DevHostError::Connection {
                    name: name.into(),
                    source,
                }
            })?;
        let account =
            StorageAccount::new(&conn, &storage_http).map_err(|source| DevHostError::Account {
                name: name.into(),
                source: Box::new(source),
            })?;
        accounts.insert(name.to_string(), account.clone());
        Ok(account)
    };

    // One pool for every function and the readiness probe, as the host has one HttpClient.
    let http = HostClient::new(host.function_timeout + Duration::from_secs(60));
    let (mut child, url) = start_handler(&options, &host, &settings, &http).await?;
    let base_url = Arc::new(std::sync::RwLock::new(url));
    let lease = options
        .lease
        .unwrap_or(host.function_timeout + Duration::from_secs(60));

    let mut runtimes = Vec::new();
    for function in &functions {
        // The host creates the queues it reads and writes, and the containers its blob outputs
        // write to; so does this.
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
        let mut blob_outputs = Vec::new();
        for blob in &function.blob_outputs {
            let account = account_for(&blob.connection)?;
            let container = blob.path.split('/').next().unwrap_or_default();
            account.ensure_container(container).await?;
            blob_outputs.push((blob.clone(), account));
        }
        runtimes.push(Arc::new(Runtime {
            host: host.clone(),
            http: http.clone(),
            base_url: base_url.clone(),
            lease,
            function: function.clone(),
            trigger,
            poison,
            outputs,
            blob_outputs,
        }));
    }
    // Development convenience: the containers the handler works in (infra creates them in Azure).
    if let Ok(account) = account_for("CV_STORAGE") {
        for key in [
            "CV_BACKUP_CONTAINER",
            "MODEL_STORE_CONTAINER",
            "CV_EVENTS_DELIVERED_CONTAINER",
        ] {
            if let Some(name) = settings.get(key) {
                account.ensure_container(&name).await?;
            }
        }
    }

    tracing::info!(
        functions = ?functions.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        "dev host ready: handler on {}",
        current(&base_url)
    );

    let tasks: Vec<_> = runtimes
        .into_iter()
        .map(|rt| tokio::spawn(poll_loop(rt, shutdown.clone())))
        .collect();
    let result = supervise(
        &options,
        &host,
        &settings,
        &http,
        &mut child,
        &base_url,
        &mut shutdown,
    )
    .await;
    for t in tasks {
        t.abort();
    }
    let _ = child.kill().await;
    result
}

fn current(base_url: &std::sync::RwLock<String>) -> String {
    base_url.read().unwrap_or_else(|e| e.into_inner()).clone()
}

async fn ensure_queue(
    account: &StorageAccount,
    name: &str,
) -> Result<Arc<QueueClient>, DevHostError> {
    account.ensure_queue(name).await?;
    Ok(account.queue(name)?)
}

/// Like the host's listener: back off exponentially while the queue is empty, up to
/// `maxPollingInterval`; fetch again at once while it is not.
async fn poll_loop(rt: Arc<Runtime>, mut shutdown: watch::Receiver<bool>) {
    const MIN_INTERVAL: Duration = Duration::from_millis(100);
    let mut interval = MIN_INTERVAL;
    let lease = rt.lease.as_secs().max(1);
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
            MessageEncoding::Base64 => {
                match base64text::decode_dotnet(&raw).and_then(|b| String::from_utf8(b).ok()) {
                    Some(t) => t,
                    None => {
                        // The host never invokes the function for such a message.
                        self.poison(
                            &id,
                            &receipt,
                            &raw,
                            &"message is not base64 (messageEncoding is base64)",
                        )
                        .await;
                        return;
                    }
                }
            }
        };
        if dequeue_count > self.host.queues.max_dequeue_count {
            self.poison(
                &id,
                &receipt,
                &raw,
                &"dequeue count already over maxDequeueCount",
            )
            .await;
            return;
        }
        let outcome = match self.invoke(&message, &text, dequeue_count).await {
            Ok(outputs) => {
                self.write_outputs(&id, &receipt, dequeue_count, outputs)
                    .await
            }
            Err(reason) => Err(reason),
        };
        match outcome {
            Ok(()) => {
                if let Err(e) = self.trigger.delete_message(&id, &receipt, None).await {
                    tracing::warn!(function = %name, "delete failed: {}", redact(&e.to_string()));
                }
            }
            Err(failure) => {
                self.fail(&id, &receipt, &raw, dequeue_count, &failure)
                    .await
            }
        }
    }

    /// POSTs the invocation; `Ok` carries `Outputs` of a 2xx JSON answer.
    async fn invoke(
        &self,
        message: &ReceivedMessage,
        text: &str,
        dequeue_count: u32,
    ) -> Result<Map<String, Value>, InvocationFailure> {
        let name = &self.function.name;
        let invocation_id = uuid::Uuid::new_v4().to_string();
        let body = invocation_body(name, &self.function.trigger, message, text, dequeue_count);
        let answer = self
            .http
            .invoke(
                &format!("{}/{name}", current(&self.base_url)),
                &invocation_id,
                body.to_string().into_bytes(),
            )
            .await?;
        if !answer.status.is_success() {
            // Logs are dropped on a non-2xx answer, as the host does.
            return Err(InvocationFailure::Status(answer.status));
        }
        if !answer
            .content_type
            .as_deref()
            .is_some_and(|v| v.starts_with("application/json"))
        {
            return Err(InvocationFailure::NotJsonContentType);
        }
        let body: Value =
            serde_json::from_slice(&answer.body).map_err(InvocationFailure::NotJson)?;
        for line in body["Logs"].as_array().into_iter().flatten() {
            if let Some(line) = line.as_str() {
                log_stream(
                    &format!("Function.{name}.User"),
                    "Information",
                    &format!("{line} (Id={invocation_id})"),
                );
            }
        }
        Ok(body["Outputs"].as_object().cloned().unwrap_or_default())
    }

    /// Writes every output the function's bindings name, as the host does after a 2xx answer.
    /// Outputs no binding names are ignored by the host; this says so, to help a developer.
    async fn write_outputs(
        &self,
        id: &str,
        receipt: &str,
        dequeue_count: u32,
        mut outputs: Map<String, Value>,
    ) -> Result<(), InvocationFailure> {
        for (binding, queue) in &self.outputs {
            let Some(value) = outputs.remove(binding) else {
                continue;
            };
            for text in outputs::queue_messages(&value)? {
                self.send(queue, &text).await?;
            }
        }
        let binding_data = [
            ("Id", id.to_string()),
            ("PopReceipt", receipt.to_string()),
            ("DequeueCount", dequeue_count.to_string()),
            ("sys.MethodName", self.function.name.clone()),
        ];
        for (binding, account) in &self.blob_outputs {
            let Some(value) = outputs.remove(&binding.name) else {
                continue;
            };
            let Some(bytes) = outputs::blob_bytes(&value) else {
                continue;
            };
            let path = outputs::resolve_path(&binding.path, &binding_data)?;
            let (container, blob) = path.split_once('/').unwrap_or((&path, ""));
            account
                .container(container)?
                .blob_client(blob)
                .upload(RequestContent::from(bytes), None)
                .await
                .map_err(|source| InvocationFailure::BlobOutput {
                    path: path.clone(),
                    source,
                })?;
        }
        for binding in outputs.keys() {
            tracing::warn!(
                function = %self.function.name,
                "Outputs.{binding} matches no output binding; the host ignores it"
            );
        }
        Ok(())
    }

    async fn send(&self, queue: &QueueClient, text: &str) -> Result<(), InvocationFailure> {
        let encoded = match self.host.queues.message_encoding {
            MessageEncoding::None => text.to_string(),
            MessageEncoding::Base64 => base64text::encode(text.as_bytes()),
        };
        let message = QueueMessage {
            message_text: Some(encoded),
        };
        let content = message
            .try_into()
            .map_err(InvocationFailure::QueueMessage)?;
        queue
            .send_message(content, None)
            .await
            .map(|_| ())
            .map_err(InvocationFailure::QueueOutput)
    }

    async fn fail(
        &self,
        id: &str,
        receipt: &str,
        raw: &str,
        dequeue_count: u32,
        failure: &InvocationFailure,
    ) {
        let name = &self.function.name;
        if dequeue_count >= self.host.queues.max_dequeue_count {
            self.poison(id, receipt, raw, failure).await;
            return;
        }
        tracing::warn!(function = %name, dequeue_count, "invocation failed, will retry: {}", redact(&failure.to_string()));
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

    /// `reason`: an [`InvocationFailure`], or why the host would not invoke at all.
    async fn poison(
        &self,
        id: &str,
        receipt: &str,
        raw: &str,
        reason: &(dyn std::fmt::Display + Sync),
    ) {
        let name = &self.function.name;
        tracing::error!(function = %name, "moving message {id} to {}-poison: {}", self.function.trigger.queue, redact(&reason.to_string()));
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
}
