//! Events out (issue 16, docs/events.md): a CloudEvent for every change to the model store.
//!
//! - [`model`]: the events, their deterministic ids and their data;
//! - [`emit`]: the events an export's or a training's outcome yields, for the store functions
//!   and `cvctl backfill` alike;
//! - [`outbox`]: what a store function puts on its `%CV_EVENTS_QUEUE%` output, which the host
//!   writes only when the invocation succeeds, so an event is committed with its change; and
//!   the failed queue's records, read (`failed_records`) and put back (`redeliver`) for
//!   `cvctl events failed|redeliver` and `cvctl verify`;
//! - [`delivery`]: how a sink's answer is judged (transient, permanent, disabled) and the
//!   retry schedule;
//! - [`sinks`]: Event Grid and the signed webhook.
//!
//! Layers: `functions`, `backfill` → `events` → `export`, `automation` (their outcomes),
//! `storage`, `settings`, `redact`.

pub mod delivery;
pub mod emit;
pub mod model;
pub mod outbox;
pub mod publisher;
pub mod sinks;

pub use model::{CloudEvent, EventType, Fact};

use crate::settings::Settings;
use crate::storage::{StorageAccount, StorageError};

/// No `source` for the events: a start-up error (an empty one is no valid CloudEvent). Names
/// the settings, never their values.
#[derive(Debug, thiserror::Error)]
#[error("setting CV_EVENTS_SOURCE is not set and the events' source cannot be the model store container's URL (CV_STORAGE's blob endpoint, MODEL_STORE_CONTAINER)")]
pub struct SourceError(#[source] pub StorageError);

/// The `source` every event carries: `CV_EVENTS_SOURCE`, else the model store container's URL
/// (without a query). Resolved once at start-up ([`crate::functions::App::event_source`]).
pub fn source(settings: &Settings, account: &StorageAccount) -> Result<String, SourceError> {
    match &settings.events.source {
        Some(source) => Ok(source.clone()),
        None => account
            .plain_blob_url(&settings.model_store_container, "")
            .map(|u| u.as_str().trim_end_matches('/').to_string())
            .map_err(SourceError),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(cs: &str, source: Option<&str>) -> (Settings, StorageAccount) {
        let settings = Settings::from_lookup(&|k| match k {
            "CV_STORAGE" => Some(cs.to_string()),
            "CV_EVENTS_SOURCE" => source.map(String::from),
            _ => None,
        })
        .unwrap();
        let account = StorageAccount::new(&settings.storage, &crate::http::http_client()).unwrap();
        (settings, account)
    }

    /// Settings already require a blob endpoint, so the error is what a URL that cannot take
    /// a path would give: it names the settings, never their values.
    #[test]
    fn the_source_is_the_setting_else_the_stores_url_else_a_named_error() {
        let cs = crate::settings::azurite_connection_string(1, 2);
        let (s, a) = settings(&cs, None);
        let url = source(&s, &a).unwrap();
        assert!(
            url.starts_with("http://127.0.0.1:1/") && url.ends_with("/models"),
            "{url}"
        );
        let (s, a) = settings(&cs, Some("https://example.com/models"));
        assert_eq!(source(&s, &a).unwrap(), "https://example.com/models");
        let err = SourceError(StorageError::NoEndpoint("blob")).to_string();
        assert!(
            err.contains("CV_EVENTS_SOURCE") && err.contains("CV_STORAGE"),
            "{err}"
        );
    }
}
