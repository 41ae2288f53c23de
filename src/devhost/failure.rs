//! Why the dev host failed an invocation: the reason it logs with "will retry" and, after
//! `maxDequeueCount` attempts, moves the message to `<queue>-poison` with. Each `Display` is
//! that reason's text; the error it came from stays the source. A storage error's text may
//! carry a request URL with a `sig`, so those are redacted here.

use hyper::StatusCode;

use super::http::TransportError;
use super::outputs::OutputError;
use crate::redact::redact;
use crate::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum InvocationFailure {
    /// No answer: the handler is down, the connection broke, or it took too long.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A non-2xx answer; its `Logs` are dropped, as the host does.
    #[error("handler answered {0}")]
    Status(StatusCode),
    #[error("handler answered without Content-Type: application/json")]
    NotJsonContentType,
    #[error("handler answered non-JSON")]
    NotJson(#[source] serde_json::Error),
    /// An `Outputs` value or a blob path the host cannot bind.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// The blob output's account has no client for the container.
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{}", redact(&format!("writing blob output {path}: {source}")))]
    BlobOutput {
        path: String,
        #[source]
        source: azure_core::Error,
    },
    /// A queue output's message could not be serialized for the request.
    #[error("{}", redact(&.0.to_string()))]
    QueueMessage(#[source] azure_core::Error),
    #[error("writing an output: {}", redact(&.0.to_string()))]
    QueueOutput(#[source] azure_core::Error),
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The reasons read as they did when they were strings: logs and poison lines keep them.
    #[test]
    fn reasons_keep_their_text() {
        let cases = [
            (
                InvocationFailure::Status(StatusCode::INTERNAL_SERVER_ERROR),
                "handler answered 500 Internal Server Error",
            ),
            (
                InvocationFailure::NotJsonContentType,
                "handler answered without Content-Type: application/json",
            ),
            (
                TransportError::Timeout(Duration::from_secs(61)).into(),
                "no answer within 61s (functionTimeout + 1 min)",
            ),
            (
                OutputError::NoBindingData {
                    template: "c/{Nope}".into(),
                    name: "Nope".into(),
                }
                .into(),
                "'c/{Nope}': no binding data named Nope",
            ),
        ];
        for (failure, text) in cases {
            assert_eq!(failure.to_string(), text);
        }
        let not_json = serde_json::from_slice::<serde_json::Value>(b"<html>").unwrap_err();
        assert_eq!(
            InvocationFailure::NotJson(not_json).to_string(),
            "handler answered non-JSON"
        );
    }

    #[test]
    fn a_storage_cause_is_redacted() {
        let source = azure_core::Error::with_message(
            azure_core::error::ErrorKind::Io,
            "PUT https://a.blob.core.windows.net/c/b?sv=2024-01-01&sig=FAKEsecret answered 403",
        );
        let text = InvocationFailure::BlobOutput {
            path: "c/b".into(),
            source,
        }
        .to_string();
        assert!(text.starts_with("writing blob output c/b: PUT "), "{text}");
        assert!(!text.contains("FAKEsecret"), "{text}");
    }
}
