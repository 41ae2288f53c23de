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

pub mod export_completed;
pub mod notifications;
pub mod outputs;
pub mod rejected;
pub mod training_completed;

use crate::envelope::{EnvelopeError, InvocationRequest, InvocationResponse, TRIGGER_BINDING};
use crate::settings::Settings;
use crate::storage::StorageAccount;

/// Output binding names shared by the function.json files.
pub const TRAINING_OUTPUT: &str = "trainingEvents";
pub const EXPORT_OUTPUT: &str = "exportEvents";
pub const REJECTED_OUTPUT: &str = "rejected";
/// Blob output that keeps a rejected message too large for its queue record.
pub const REJECTED_BLOB_OUTPUT: &str = "rejectedText";
/// Blob output of `Notifications` recording a handled ConnectionTest
/// (`%CV_STATUS_CONTAINER%/connection-tests/{Id}.json`), which `cvctl verify` reads.
pub const CONNECTION_TEST_OUTPUT: &str = "connectionTest";

/// The functions this handler serves, by folder name.
pub const FUNCTIONS: [&str; 3] = ["Notifications", "TrainingCompleted", "ExportCompleted"];

/// What every function needs, built once at start-up.
pub struct App {
    pub settings: Settings,
    pub account: StorageAccount,
    /// The Training API, when configured.
    pub training: Option<crate::training::TrainingClient>,
}

/// One invocation: the app, which function, and what the host sent.
pub struct Invocation<'a> {
    pub app: &'a App,
    pub function: &'static str,
    pub request: &'a InvocationRequest,
}

impl Invocation<'_> {
    pub fn message_text(&self) -> Result<String, EnvelopeError> {
        self.request.message_text(TRIGGER_BINDING)
    }

    /// Answers 200 and keeps the message with its reason ([`rejected::reject`]).
    pub fn reject(&self, text: &str, reason: &str) -> InvocationResponse {
        rejected::reject(self, text, reason)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    /// The host sent something that is not an invocation of this function.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error("no function named '{0}'")]
    UnknownFunction(String),
    /// Worth retrying: storage not reachable, a backup blob not there yet.
    #[error("{0}")]
    Transient(String),
}

impl App {
    pub async fn invoke(
        &self,
        function: &str,
        request: &InvocationRequest,
    ) -> Result<InvocationResponse, FunctionError> {
        let Some(name) = FUNCTIONS.iter().copied().find(|f| *f == function) else {
            return Err(FunctionError::UnknownFunction(function.to_string()));
        };
        let invocation = Invocation {
            app: self,
            function: name,
            request,
        };
        match name {
            "Notifications" => notifications::handle(&invocation),
            "TrainingCompleted" => training_completed::handle(&invocation).await,
            _ => export_completed::handle(&invocation).await,
        }
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// An app whose storage is a port nothing listens on: pure functions never notice, and
    /// any storage call fails as in an outage.
    pub fn app() -> App {
        let cs = format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={};BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;",
            crate::settings::AZURITE_KEY
        );
        let settings = Settings::from_lookup(&|k| (k == "CV_STORAGE").then(|| cs.clone())).unwrap();
        let account =
            StorageAccount::new(&settings.storage, &crate::storage::http_client()).unwrap();
        App {
            settings,
            account,
            training: None,
        }
    }

    /// A request as the host sends it: the message text JSON-encoded twice, a quoted `Id`.
    pub fn request(message: &str) -> InvocationRequest {
        let once = serde_json::to_string(message).unwrap();
        serde_json::from_value(serde_json::json!({
            "Data": {"notification": once},
            "Metadata": {"Id": "\"6f1c0a52-0000-4000-8000-000000000001\"", "DequeueCount": "1"}
        }))
        .unwrap()
    }
}
