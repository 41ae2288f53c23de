//! The model store beyond the copies: a `latest` alias per project and platform
//! ([`latest`]) and a per-project index ([`index`]), both derived from the tagged copies,
//! which are the truth.
//!
//! "Newest" is one order everywhere ([`OrderKey`]): by the iteration's `trainedAt` when the
//! Training API is configured, else by the source blob's creation time; a `trainedAt` key
//! always beats a creation-time one; ties broken by iteration id. A late or duplicate message
//! can therefore never move either backwards.

mod find;
pub(crate) mod index;
pub(crate) mod latest;

pub use find::{
    find_models, newest_first, platform_label, FoundAlias, FoundKind, FoundModel, ListedCopy,
    ModelFilter, ModelListing,
};
pub use index::{load_index, rebuild, IndexEntry, ModelIndex, Pick};

use std::collections::{BTreeMap, HashMap};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::domain::{IterationId, ProjectId};
use crate::naming::stored::{ITERATION_ID_KEY, ORDER_AT_KEY, ORDER_BY_KEY};
use crate::storage::copy::CopyError;
use crate::storage::{StorageActionError, StorageError};

/// Failures of the alias and the index. All are worth a retry (the host retries the message).
#[derive(Debug, thiserror::Error)]
pub enum ModelStoreError {
    /// A request failed. Shown redacted, as every storage error.
    #[error(transparent)]
    Request(#[from] StorageActionError),
    /// Other writers won every conditional write in a row.
    #[error("{action} failed: lost {attempts} conditional writes in a row on '{path}'")]
    Contended {
        action: &'static str,
        path: String,
        attempts: usize,
    },
    #[error("nothing was written to '{path}'")]
    NothingWritten { path: String },
    /// The index is there but is no index (someone edited it by hand).
    #[error("'{path}' is not a model index: {reason}")]
    Unreadable { path: String, reason: String },
    #[error(transparent)]
    Copy(#[from] CopyError),
    #[error(transparent)]
    Client(#[from] StorageError),
}

/// What an order time is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OrderBy {
    /// The source blob's creation time.
    Created,
    /// The iteration's `trainedAt` (Training API).
    TrainedAt,
}

impl OrderBy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::TrainedAt => "trainedAt",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "created" => Some(Self::Created),
            "trainedAt" => Some(Self::TrainedAt),
            _ => None,
        }
    }
}

/// Where an iteration's model stands in "newest". Fields compare in order: a `trainedAt` key
/// always beats a creation-time key (an export is created after its training, so the two
/// kinds of time cannot be compared), then the time, then the iteration id (as its text
/// sorts: the UUID's bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct OrderKey {
    pub by: OrderBy,
    pub at: OffsetDateTime,
    pub iteration_id: IterationId,
}

impl OrderKey {
    pub fn at_text(&self) -> String {
        self.at.format(&Rfc3339).unwrap_or_default()
    }

    /// As blob metadata (with `cviterationid`, which every copy carries anyway).
    pub fn metadata(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (ORDER_AT_KEY.to_string(), self.at_text()),
            (ORDER_BY_KEY.to_string(), self.by.as_str().to_string()),
            (ITERATION_ID_KEY.to_string(), self.iteration_id.to_string()),
        ])
    }

    /// Read back from a blob's metadata; `None` when it has none of ours.
    pub fn from_metadata(metadata: &HashMap<String, String>) -> Option<Self> {
        let at = OffsetDateTime::parse(metadata.get(ORDER_AT_KEY)?, &Rfc3339).ok()?;
        let by = OrderBy::parse(metadata.get(ORDER_BY_KEY)?)?;
        let iteration_id = IterationId::parse(metadata.get(ITERATION_ID_KEY)?).ok()?;
        Some(Self {
            at,
            by,
            iteration_id,
        })
    }
}

/// One model in the store: an iteration's copy, as the alias and the index need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredModel {
    pub project_id: ProjectId,
    pub iteration_id: IterationId,
    pub platform: String,
    pub extension: String,
    /// The copy's path in the model store.
    pub path: String,
    pub size: Option<u64>,
    pub content_md5: Option<Vec<u8>>,
    pub order: OrderKey,
    /// `container/blob` or the SAS URL without its query.
    pub source: String,
    /// Quoted: the source ETag the copy records ([`crate::naming::stored::SOURCE_ETAG_KEY`]); the
    /// alias records it too, which is how it knows it holds these very bytes.
    pub source_etag: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;
    use time::macros::datetime;

    fn key(at: OffsetDateTime, iteration: &str) -> OrderKey {
        OrderKey {
            at,
            by: OrderBy::Created,
            iteration_id: IterationId::parse(iteration).unwrap(),
        }
    }

    #[test]
    fn newer_wins_and_ties_break_by_iteration_id() {
        let a = "00000000-0000-4000-8000-00000000000a";
        let b = "00000000-0000-4000-8000-00000000000b";
        let t = datetime!(2026-01-01 10:00 UTC);
        assert!(key(t + time::Duration::SECOND, a) > key(t, b));
        assert!(key(t, b) > key(t, a));
        assert_eq!(key(t, a).cmp(&key(t, a)), Ordering::Equal);
    }

    #[test]
    fn a_creation_time_never_beats_a_trained_at() {
        let a = "00000000-0000-4000-8000-00000000000a";
        let t = datetime!(2026-01-01 10:00 UTC);
        let trained = OrderKey {
            by: OrderBy::TrainedAt,
            ..key(t, a)
        };
        // An old iteration re-exported today: created long after the newer iteration trained.
        assert!(key(t + time::Duration::DAY, a) < trained);
    }

    #[test]
    fn iteration_ids_order_as_their_text() {
        let ids = [
            "0f000000-0000-4000-8000-000000000000",
            "a0000000-0000-4000-8000-000000000000",
            "a0000000-0000-4000-8000-00000000000b",
        ];
        let t = datetime!(2026-01-01 10:00 UTC);
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1]);
            assert!(key(t, pair[0]) < key(t, pair[1]));
        }
    }

    #[test]
    fn order_keys_round_trip_through_metadata() {
        let k = key(
            datetime!(2026-01-01 10:00:00.25 UTC),
            "00000000-0000-4000-8000-00000000000a",
        );
        let m: HashMap<String, String> = k.metadata().into_iter().collect();
        assert_eq!(OrderKey::from_metadata(&m), Some(k));
        assert_eq!(OrderKey::from_metadata(&HashMap::new()), None);
    }
}
