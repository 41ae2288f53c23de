//! Events out (issue 16, docs/events.md): a CloudEvent for every change to the model store.
//!
//! - [`model`]: the events, their deterministic ids and their data;
//! - [`emit`]: the events an export's or a training's outcome yields, for the store functions
//!   and `cvctl backfill` alike;
//! - [`outbox`]: what a store function puts on its `%CV_EVENTS_QUEUE%` output, which the host
//!   writes only when the invocation succeeds, so an event is committed with its change;
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
use crate::storage::StorageAccount;

/// The `source` every event carries: `CV_EVENTS_SOURCE`, else the model store container's URL
/// (without a query).
pub fn source(settings: &Settings, account: &StorageAccount) -> String {
    settings.events.source.clone().unwrap_or_else(|| {
        account
            .plain_blob_url(&settings.model_store_container, "")
            .map(|u| u.as_str().trim_end_matches('/').to_string())
            .unwrap_or_default()
    })
}
