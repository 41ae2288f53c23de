//! One module per function folder: parse → decide → act, each answering the host's envelope.
//!
//! Errors split the way the host treats them: a [`FunctionError`] is a non-2xx answer (the host
//! retries, then moves the message to `-poison`); a message we can never process is *not* an
//! error: it is answered 200 with a copy in the rejected queue, so it does not burn retries.

pub mod export_completed;
pub mod notifications;
pub mod training_completed;

use serde_json::{json, Map};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::envelope::{EnvelopeError, InvocationRequest, InvocationResponse};
use crate::settings::Settings;
use crate::storage::StorageAccount;

/// Output binding names shared by the function.json files.
pub const TRAINING_OUTPUT: &str = "trainingEvents";
pub const EXPORT_OUTPUT: &str = "exportEvents";
pub const REJECTED_OUTPUT: &str = "rejected";

/// The functions this handler serves, by folder name.
pub const FUNCTIONS: [&str; 3] = ["Notifications", "TrainingCompleted", "ExportCompleted"];

/// What every function needs, built once at start-up.
pub struct App {
    pub settings: Settings,
    pub account: StorageAccount,
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
        match function {
            "Notifications" => notifications::handle(request),
            "TrainingCompleted" => training_completed::handle(request),
            "ExportCompleted" => export_completed::handle(self, request).await,
            other => Err(FunctionError::UnknownFunction(other.to_string())),
        }
    }
}

/// Answers 200 and writes the original text with the reason to the rejected queue.
pub fn reject(function: &str, text: &str, reason: &str) -> InvocationResponse {
    tracing::warn!(function, reason, "message rejected");
    let received_at = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default();
    let record = Map::from_iter([
        ("reason".to_string(), json!(reason)),
        ("message".to_string(), json!(text)),
        ("receivedAt".to_string(), json!(received_at)),
        ("function".to_string(), json!(function)),
    ]);
    InvocationResponse::default()
        .log(format!("{function}: rejected: {reason}"))
        .output(REJECTED_OUTPUT, record)
}
