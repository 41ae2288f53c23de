//! One module per function folder: parse → decide → act, each answering the host's envelope.
//!
//! Errors split the way the host treats them: a [`FunctionError`] is a non-2xx answer (the host
//! retries, then moves the message to `-poison`); a message we can never process is *not* an
//! error: it is answered 200 with a record in the rejected queue ([`rejected`]), so it does not
//! burn retries.
//!
//! Log lines of an invocation go in the answer's `Logs` only: the host writes every `Logs`
//! entry *and* every stdout line to its log stream, so a line in both would show twice.
//! Stdout (tracing) carries start-up and the reason for a non-2xx answer, where `Logs` is
//! dropped.

pub(crate) mod connection_test;
pub(crate) mod events_out;
pub(crate) mod export_completed;
pub(crate) mod notifications;
pub(crate) mod outputs;
pub(crate) mod publish_events;
pub(crate) mod rejected;
pub(crate) mod training_completed;

use std::time::Duration;

use crate::automation::AutomationError;
use crate::envelope::{EnvelopeError, InvocationRequest, InvocationResponse, TRIGGER_BINDING};
use crate::export::ExportError;
use crate::settings::Settings;
use crate::storage::{StorageAccount, StorageError};

/// Output binding names shared by the function.json files.
pub const TRAINING_OUTPUT: &str = "trainingEvents";
pub const EXPORT_OUTPUT: &str = "exportEvents";
pub const REJECTED_OUTPUT: &str = "rejected";
/// Blob output that keeps a rejected message too large for its queue record.
pub const REJECTED_BLOB_OUTPUT: &str = "rejectedText";
/// Blob output of `Notifications` recording a handled ConnectionTest
/// (`%CV_STATUS_CONTAINER%/connection-tests/{Id}.json`), which `cvctl verify` reads.
pub const CONNECTION_TEST_OUTPUT: &str = "connectionTest";

pub use connection_test::{
    connection_test_waiting, find_connection_test, ConnectionTestRecord, FoundConnectionTest,
};
/// Queue output of the store-changing functions: their events, to `%CV_EVENTS_QUEUE%` (the
/// outbox, [`crate::events::outbox`]).
pub const EVENTS_OUTPUT: &str = "events";
/// Queue output of `PublishEvents`: events a sink refused, to `%CV_EVENTS_FAILED_QUEUE%`.
pub const FAILED_EVENTS_OUTPUT: &str = "failedEvents";

/// The functions this handler serves, one per function folder. The route names one; it is
/// parsed into this once, and every dispatch on it is an exhaustive `match` (as mini-redis's
/// `Command`, tokio-rs/mini-redis `src/cmd/mod.rs`), so a new function cannot fall into
/// another's arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Function {
    Notifications,
    TrainingCompleted,
    ExportCompleted,
    PublishEvents,
}

impl Function {
    /// Every function, in the order the data flows.
    pub const ALL: [Function; 4] = [
        Function::Notifications,
        Function::TrainingCompleted,
        Function::ExportCompleted,
        Function::PublishEvents,
    ];

    /// The folder name, which is also the route and the host's `sys.MethodName`.
    pub fn name(self) -> &'static str {
        match self {
            Function::Notifications => "Notifications",
            Function::TrainingCompleted => "TrainingCompleted",
            Function::ExportCompleted => "ExportCompleted",
            Function::PublishEvents => "PublishEvents",
        }
    }
}

impl std::fmt::Display for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A route that names no function of this handler.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no function named '{0}'")]
pub struct UnknownFunction(pub String);

impl std::str::FromStr for Function {
    type Err = UnknownFunction;

    /// Exactly the folder name, as the host routes it.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Function::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| UnknownFunction(name.to_string()))
    }
}

/// How long one invocation may take: host.json's `functionTimeout` (5 min) less a margin, so
/// that the handler answers 500 itself, with a reason, before the host gives up on it. Every
/// step is idempotent (conditional writes, copies judged by the source they record, exports
/// and publishes read back before they are asked for), so stopping at any await is safe and
/// the retry carries on where this one stopped.
pub const INVOCATION_BUDGET: Duration = Duration::from_secs(4 * 60 + 30);

/// What every function needs, built once at start-up.
pub struct App {
    pub settings: Settings,
    pub account: StorageAccount,
    /// The Training API, when configured.
    pub training: Option<crate::training::TrainingClient>,
    /// The events' sinks (`PublishEvents`); none: events off.
    pub sinks: Vec<crate::events::sinks::Sink>,
    /// [`INVOCATION_BUDGET`], shorter in tests.
    pub budget: Duration,
    /// The `source` of every event ([`crate::events::source`]), resolved at start-up.
    pub event_source: String,
}

/// One invocation: the app, which function, and what the host sent.
pub struct Invocation<'a> {
    pub app: &'a App,
    pub function: Function,
    pub request: &'a InvocationRequest,
}

impl Invocation<'_> {
    pub fn message_text(&self) -> Result<String, EnvelopeError> {
        self.request.message_text(TRIGGER_BINDING)
    }

    /// Answers 200 and keeps the message with its reason ([`rejected::reject`]); a store
    /// function also emits a `MessageRejected` (the reason and where the record is, never the
    /// message). `PublishEvents`' own garbage emits nothing: an event about an event.
    ///
    /// With no message `Id` in the metadata (the host always sends one for a queue trigger)
    /// there is no event: its subject and id are made from the message's id, and neither a
    /// blank nor the invocation's id (new on each delivery) would stay the same on a
    /// redelivery. The warning says so; the record is kept either way.
    pub fn reject(&self, text: &str, reason: &str) -> InvocationResponse {
        let response = rejected::reject(self, text, reason);
        if self.function == Function::PublishEvents {
            return response;
        }
        let Some(message_id) = self.request.message_id().filter(|id| !id.trim().is_empty()) else {
            return response.log(
                "warning: the rejected message has no Id in the invocation's metadata: no MessageRejected event; the record is kept",
            );
        };
        let blob = response
            .outputs
            .contains_key(REJECTED_BLOB_OUTPUT)
            .then(|| format!("{}/{message_id}.txt", self.function));
        let mut emitter = events_out::Emitter::new(self);
        match emitter.rejected(&message_id, reason, blob) {
            Ok(()) => emitter.into_response(response),
            // An event too large to build: the record is what matters, and it is kept.
            Err(e) => response.log(format!(
                "warning: the MessageRejected event could not be built ({}); the record is kept",
                crate::error_chain::Chain(&e)
            )),
        }
    }
}

/// Why an invocation is answered non-2xx; the causes stay attached (`source()`) for the log
/// line ([`crate::error_chain`]), and every `Display` is redacted where it shows a cause.
#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    /// The host sent something that is not an invocation of this function.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error(transparent)]
    UnknownFunction(#[from] UnknownFunction),
    /// An export that may yet succeed: a backup blob not there yet, storage not reachable.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// The automation after a training: the Training API or the report's storage.
    #[error(transparent)]
    Automation(#[from] AutomationError),
    /// A storage client that could not be made.
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{function} ran out of its {:.1} s budget (functionTimeout less a margin); the retry carries on where it stopped", .budget.as_secs_f64())]
    OutOfBudget {
        function: Function,
        budget: Duration,
    },
    /// An event of the change could not be built (its blob's Last-Modified unread): the
    /// retry finds the change done and emits it then (the redelivery rule).
    #[error(transparent)]
    Emit(#[from] events_out::EmitError),
    /// `PublishEvents`: storage failed under a marker or a re-enqueue.
    #[error(transparent)]
    Publish(#[from] crate::events::publisher::PublishError),
}

impl FunctionError {
    /// Whether the host should retry the message: it does on any non-2xx answer, so this is
    /// what the server answers 500 for. An envelope or a route that is not ours is the host's
    /// (or a caller's) mistake, answered 400/404; a message we can never process is not an
    /// error at all (a rejected record, answered 200).
    pub fn retry_later(&self) -> bool {
        match self {
            Self::Envelope(_) | Self::UnknownFunction(_) => false,
            Self::Export(_)
            | Self::Automation(_)
            | Self::Storage(_)
            | Self::OutOfBudget { .. }
            | Self::Emit(_)
            | Self::Publish(_) => true,
        }
    }
}

impl App {
    pub async fn invoke(
        &self,
        function: Function,
        request: &InvocationRequest,
    ) -> Result<InvocationResponse, FunctionError> {
        let invocation = Invocation {
            app: self,
            function,
            request,
        };
        let work = async {
            match function {
                Function::Notifications => notifications::handle(&invocation),
                Function::TrainingCompleted => training_completed::handle(&invocation).await,
                Function::ExportCompleted => export_completed::handle(&invocation).await,
                Function::PublishEvents => publish_events::handle(&invocation).await,
            }
        };
        tokio::time::timeout(self.budget, work)
            .await
            .unwrap_or_else(|_| {
                Err(FunctionError::OutOfBudget {
                    function,
                    budget: self.budget,
                })
            })
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// An app whose storage is a port nothing listens on: pure functions never notice, and
    /// any storage call fails as in an outage.
    pub fn app() -> App {
        app_on(9)
    }

    /// An app whose storage (blob and queue) is whatever listens on `port` of loopback.
    pub fn app_on(port: u16) -> App {
        let cs = crate::settings::azurite_connection_string(port, port);
        // Events on (a webhook named, never sent to here): the functions emit.
        let settings = Settings::from_lookup(&|k| match k {
            "CV_STORAGE" => Some(cs.clone()),
            "CV_WEBHOOK_URL" => Some("https://127.0.0.1:9/hook".into()),
            "CV_WEBHOOK_SECRET" => Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
            _ => None,
        })
        .unwrap();
        let account = StorageAccount::new(&settings.storage, &crate::http::http_client()).unwrap();
        let event_source = crate::events::source(&settings, &account).unwrap();
        App {
            settings,
            account,
            training: None,
            sinks: Vec::new(),
            budget: INVOCATION_BUDGET,
            event_source,
        }
    }

    /// A request as the host sends it: the message text JSON-encoded twice, a quoted `Id`.
    pub fn request(message: &str) -> InvocationRequest {
        let once = serde_json::to_string(message).unwrap();
        serde_json::from_value(serde_json::json!({
            "Data": {"notification": once},
            "Metadata": {"Id": "\"6f1c0a52-0000-4000-8000-000000000001\"", "DequeueCount": "1",
                "InsertionTime": "2026-01-01T10:00:00+00:00"}
        }))
        .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::examples::{EVENTS_ITERATION, PROJECT};

    #[test]
    fn a_function_parses_from_its_own_name_only() {
        for f in Function::ALL {
            assert_eq!(f.name().parse::<Function>(), Ok(f));
            assert_eq!(f.to_string(), f.name());
        }
        for bad in [
            "",
            "notifications",
            "Export",
            "ExportCompleted/",
            "NoSuchFunction",
        ] {
            assert_eq!(
                bad.parse::<Function>(),
                Err(UnknownFunction(bad.to_string())),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn an_invocation_that_outlives_its_budget_is_answered_500_with_a_reason() {
        // Storage that accepts connections and never answers: every call hangs.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        });
        let mut app = test_support::app_on(port);
        app.budget = Duration::from_millis(300);
        let message = format!(
            r#"{{"version":"1.0","type":"Export","Content":{{"projectId":"{PROJECT}","iterationId":"{EVENTS_ITERATION}","exportStatus":"ExportCompleted"}}}}"#
        );
        let answer = app
            .invoke(Function::ExportCompleted, &test_support::request(&message))
            .await;
        held.abort();
        match answer {
            Err(e @ FunctionError::OutOfBudget { .. }) => {
                assert!(e.retry_later());
                let reason = e.to_string();
                assert!(reason.contains("ran out of its 0.3 s budget"), "{reason}")
            }
            other => panic!("expected a transient error, got {other:?}"),
        }
    }
}
