//! What a Training API call can fail with, split the way the Functions host needs it: a
//! transient failure is answered 500 (the host retries the message), everything else is a
//! value the caller decides about.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::error_chain::one_line;
use crate::http::HttpClientError;
use crate::redact::redact;

/// A failed Training API call. No variant ever holds the training key: every text that comes
/// from a response or a transport error passes through [`scrub`] first.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TrainingError {
    /// 429, 5xx, a connection or timeout failure, or a credential that could not give a token,
    /// still failing when the retries or the deadline ran out. Retrying later may succeed.
    #[error("{operation}: transient failure after {attempts} attempt(s){}: {reason}", status_text(.status))]
    Transient {
        operation: &'static str,
        attempts: u32,
        /// The last HTTP status, if the service answered at all.
        status: Option<u16>,
        /// The service's last `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
        /// Why the last attempt failed. Not a `#[source]`: its `Display` already shows its
        /// cause's chain, and a log line's chain ([`crate::error_chain`]) would repeat it.
        reason: TransientReason,
    },
    /// A 4xx answer: retrying the same request gives the same answer. `code` is the service's
    /// `CustomVisionError` code (`BadRequestExportAlreadyInProgress`, `NotFoundIteration`, ...),
    /// or the gateway's status code as text for answers that are not a `CustomVisionError`.
    #[error("{operation}: the service answered {status} {code}: {message}")]
    Service {
        operation: &'static str,
        status: u16,
        code: String,
        message: String,
    },
    /// A 2xx answer whose body is not what the spec describes.
    #[error("{operation}: cannot decode the answer: {reason}")]
    Decode {
        operation: &'static str,
        /// serde_json's message, scrubbed, kept as text rather than as the source: the message
        /// quotes the body (`invalid type: string "…"`), a body could echo the key header back,
        /// and only the client, which holds the key, can scrub it ([`scrub`]). As a source, a
        /// log line's chain would print it unscrubbed.
        reason: String,
    },
    /// The client cannot be built or the request cannot be formed. Not retryable.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Why the last attempt of a [`TrainingError::Transient`] failed; each `Display` is the text the
/// failure reports. None can hold the training key: it travels in a header, reqwest's and
/// azure_core's errors show a URL but never the headers, and the endpoint has no query. An
/// answer's code and message may echo a header, so they are scrubbed when the answer is read.
/// A transport's error is kept as the source, and shown as its chain on one line, redacted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransientReason {
    #[error("no complete answer within the attempt timeout")]
    AttemptTimeout,
    #[error("the credential gave an unusable token")]
    UnusableToken,
    #[error("cannot get an Entra ID token: {}", redact(&.0.to_string()))]
    Token(#[source] Arc<azure_core::Error>),
    /// Connection refused or reset, TLS, a timeout of the caller's client: all may pass.
    #[error("request failed: {}", one_line(.0.as_ref()))]
    Request(#[source] Arc<reqwest::Error>),
    #[error("answer {status} cut short: {}", one_line(.source.as_ref()))]
    CutShort {
        status: u16,
        #[source]
        source: Arc<reqwest::Error>,
    },
    /// A 429 or 5xx answer; `code` and `message` come from its body, scrubbed.
    #[error("{status} {code}: {message}")]
    Answered {
        status: u16,
        code: String,
        message: String,
    },
}

/// Why the training client cannot be built or a request cannot be formed. A failure of
/// another part keeps that part's error as its source; its text is shown redacted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConfigError {
    /// A reason of our own: a bad endpoint, a key that is not a valid header value.
    #[error("training client configuration: {0}")]
    Invalid(String),
    /// The process's one HTTP client could not be built.
    #[error("training client configuration: {0}")]
    HttpClient(#[from] HttpClientError),
    /// No Entra ID credential could be made from the settings.
    #[error("training client configuration: cannot create a credential: {}", redact(&.0.to_string()))]
    Credential(#[source] Arc<azure_core::Error>),
    /// reqwest could not form the request (a builder error: the URL, a header).
    #[error("training client configuration: {}", redact(&.0.to_string()))]
    Request(#[source] Arc<reqwest::Error>),
}

fn status_text(status: &Option<u16>) -> String {
    status
        .map(|s| format!(" (last status {s})"))
        .unwrap_or_default()
}

impl TrainingError {
    /// Whether the caller should answer 500 so that the Functions host retries the message.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }

    /// Whether a message that met this failure should be retried rather than done with: a
    /// transient failure, a key or role that someone may yet fix (401/403), or a request the
    /// service refuses only while it is busy (an export while training).
    pub fn retry_later(&self) -> bool {
        self.is_transient()
            || matches!(self.status(), Some(401 | 403))
            || self.code() == Some("BadRequestExportWhileTraining")
    }

    /// The service's error code, for a [`TrainingError::Service`].
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Service { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status of a [`TrainingError::Service`] (or the last one of a transient failure).
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Service { status, .. } => Some(*status),
            Self::Transient { status, .. } => *status,
            _ => None,
        }
    }

    /// A second ExportIteration of the same iteration and platform fails with this code ("...
    /// is already queued for export"): the export exists, read it with GetExports.
    pub fn is_export_already_in_progress(&self) -> bool {
        self.code() == Some("BadRequestExportAlreadyInProgress")
    }
}

/// The bodies a 4xx can carry. The Training API's own errors are `CustomVisionError`
/// (`{"code", "message"}`); the Cognitive Services gateway in front of it answers an invalid key
/// either as `{"statusCode": 401, "message"}` (the APIM shape Custom Vision endpoints return) or
/// as `{"error": {"code": "401", "message"}}` (the newer shape of other Cognitive Services).
#[derive(Deserialize)]
#[serde(untagged)]
enum ErrorBody {
    CustomVision {
        code: String,
        message: String,
    },
    Gateway {
        #[serde(rename = "statusCode")]
        status_code: serde_json::Value,
        message: String,
    },
    Nested {
        error: NestedError,
    },
}

#[derive(Deserialize)]
struct NestedError {
    code: serde_json::Value,
    message: String,
}

fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Most of an unparseable error body that is worth keeping in a message.
const MAX_BODY_TEXT: usize = 512;

/// The code and message of an error answer. A body that matches none of the known shapes (an
/// HTML page from a proxy) is kept, shortened, as the message, with the status as the code.
pub(crate) fn parse_error_body(status: u16, body: &[u8]) -> (String, String) {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody::CustomVision { code, message }) => (code, message),
        Ok(ErrorBody::Gateway {
            status_code,
            message,
        }) => (value_text(&status_code), message),
        Ok(ErrorBody::Nested { error }) => (value_text(&error.code), error.message),
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            let message = if text.is_empty() {
                "(empty body)".to_string()
            } else {
                truncate(text, MAX_BODY_TEXT)
            };
            (status.to_string(), message)
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// Removes the key (when it is one) and SAS signatures from a text that leaves the client. A
/// gateway or proxy could echo a header back; a download URI in a body carries a signature.
pub(crate) fn scrub(text: &str, secret: Option<&str>) -> String {
    let text = match secret {
        Some(s) if !s.is_empty() => text.replace(s, "REDACTED"),
        _ => text.to_string(),
    };
    crate::redact::redact(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_vision_error_body() {
        let (code, message) = parse_error_body(
            400,
            br#"{"code":"BadRequestExportAlreadyInProgress","message":"5f3e... is already queued for export"}"#,
        );
        assert_eq!(code, "BadRequestExportAlreadyInProgress");
        assert!(message.contains("already queued for export"));
    }

    #[test]
    fn gateway_bodies_in_both_shapes() {
        let (code, message) = parse_error_body(
            401,
            br#"{"statusCode": 401, "message": "Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription."}"#,
        );
        assert_eq!(code, "401");
        assert!(message.starts_with("Access denied"));
        let (code, message) = parse_error_body(
            401,
            br#"{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint."}}"#,
        );
        assert_eq!(code, "401");
        assert!(message.contains("wrong API endpoint"));
    }

    #[test]
    fn unknown_bodies_are_kept_short() {
        let html = format!("<html>{}</html>", "x".repeat(4000));
        let (code, message) = parse_error_body(403, html.as_bytes());
        assert_eq!(code, "403");
        assert!(message.len() <= MAX_BODY_TEXT + 3);
        assert_eq!(parse_error_body(404, b"").1, "(empty body)");
    }

    #[test]
    fn a_transient_failure_reads_as_its_last_reason() {
        let e = TrainingError::Transient {
            operation: "GetIteration",
            attempts: 6,
            status: Some(503),
            retry_after: None,
            reason: TransientReason::Answered {
                status: 503,
                code: "503".into(),
                message: "busy".into(),
            },
        };
        assert_eq!(
            e.to_string(),
            "GetIteration: transient failure after 6 attempt(s) (last status 503): 503 503: busy"
        );
        assert_eq!(
            TransientReason::AttemptTimeout.to_string(),
            "no complete answer within the attempt timeout"
        );
    }

    #[test]
    fn scrub_removes_the_key_and_signatures() {
        let out = scrub(
            "key abc123 echoed; https://a/b?sv=1&sig=SECRETSIG&se=2",
            Some("abc123"),
        );
        assert!(!out.contains("abc123"));
        assert!(!out.contains("SECRETSIG"));
    }
}
