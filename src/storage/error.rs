//! Storage failures, typed: the SDK's error is kept as the source, and shown only redacted
//! (a copy source or a SAS connection string's URL may carry a `sig`).

use crate::redact::redact;

/// One storage request that failed, and what it was for. The one "action failed" wrapper:
/// the export, the automation, the model store and the copies all report a failed request
/// as this, so the text is the same everywhere: `{action} failed: {redacted cause}`.
#[derive(Debug, thiserror::Error)]
#[error("{action} failed: {}", redact(&.source.to_string()))]
pub struct StorageActionError {
    pub action: &'static str,
    #[source]
    pub source: azure_core::Error,
}

impl StorageActionError {
    /// `map_err(StorageActionError::of("list backups"))`.
    pub fn of(action: &'static str) -> impl Fn(azure_core::Error) -> Self {
        move |source| Self { action, source }
    }

    /// The HTTP status the service answered, if it answered.
    pub fn http_status(&self) -> Option<azure_core::http::StatusCode> {
        self.source.http_status()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage connection has no {0} endpoint")]
    NoEndpoint(&'static str),
    #[error("cannot create a storage credential: AccountKey is not base64")]
    KeyNotBase64(#[source] base64::DecodeError),
    #[error("cannot create a storage credential: {}", redact(&.0.to_string()))]
    Credential(#[source] azure_core::Error),
    #[error("cannot create a storage client: {}", redact(&.0.to_string()))]
    Client(#[source] azure_core::Error),
    #[error(transparent)]
    Request(#[from] StorageActionError),
}
