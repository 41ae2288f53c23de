//! The events a change to the model store yields, built from what was done: an export's
//! [`ModelOutcome`]s (`ModelCopied`, `LatestMoved`) and a training's [`TrainingOutcome`]
//! (`ReportWritten`, `IterationPublished`, `PublishRefused`). The store functions
//! (`functions::events_out`, onto their outbox output) and `cvctl backfill` (onto the outbox
//! queue) both build theirs here, so the same change has the same event and the same id.
//!
//! The redelivery rule ([`super::outbox::emits`]): an outcome this attempt caused is always
//! emitted; one found already done only when `redelivery` is set. Each event's `time` is the
//! change's: the stored blob's Last-Modified, read back here.

use azure_storage_blob::models::BlobClientGetPropertiesResultHeaders;
use time::OffsetDateTime;

use super::model::{EventError, Gate, OrderKeyData, StoredBlob};
use super::{CloudEvent, Fact};
use crate::automation::report::Figures;
use crate::automation::TrainingOutcome;
use crate::export::ModelOutcome;
use crate::model_store::latest::Latest;
use crate::model_store::StoredModel;
use crate::naming::stored::latest_path;
use crate::redact::redact;
use crate::settings::Settings;
use crate::storage::copy::CopyState;
use crate::storage::{StorageAccount, StorageActionError, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    /// Reading a stored blob's Last-Modified failed: worth a retry, as the change itself is.
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Request(#[from] StorageActionError),
    /// The service answered without a Last-Modified.
    #[error("'{0}' has no Last-Modified")]
    NoTime(String),
    #[error(transparent)]
    Event(#[from] EventError),
}

/// Collects the events of one unit of work (an invocation, a backfill), each id once.
pub struct Events<'a> {
    settings: &'a Settings,
    account: &'a StorageAccount,
    source: String,
    redelivery: bool,
    /// No sink configured (events off): nothing is built, read or written.
    enabled: bool,
    events: Vec<CloudEvent>,
}

impl<'a> Events<'a> {
    /// `source`: the events' `source`, resolved once ([`super::source`]). `redelivery`: also
    /// emit for outcomes found already done.
    pub fn new(
        settings: &'a Settings,
        account: &'a StorageAccount,
        source: String,
        redelivery: bool,
    ) -> Self {
        Self {
            settings,
            account,
            source,
            redelivery,
            enabled: settings.events.enabled(),
            events: Vec::new(),
        }
    }

    pub fn push(&mut self, fact: &Fact, time: OffsetDateTime) -> Result<(), EmitError> {
        if !self.enabled {
            return Ok(());
        }
        let event = CloudEvent::new(&self.source, fact, time)?;
        if !self.events.iter().any(|e| e.id == event.id) {
            self.events.push(event);
        }
        Ok(())
    }

    /// `ModelCopied` and `LatestMoved` for each model an export stored.
    pub async fn export(&mut self, outcomes: &[ModelOutcome]) -> Result<(), EmitError> {
        if !self.enabled {
            return Ok(());
        }
        let store_name = &self.settings.model_store_container;
        for outcome in outcomes {
            for (kind, stored, path) in export_changes(outcome, self.redelivery) {
                let at = self.last_modified(store_name, path).await?;
                let blob = self.blob(stored, path)?;
                let fact = match kind {
                    ExportChange::Copied => Fact::ModelCopied(blob),
                    ExportChange::Moved => {
                        debug_assert_eq!(
                            path,
                            latest_path(stored.project_id, &stored.platform, &stored.extension)
                        );
                        Fact::LatestMoved(blob)
                    }
                };
                self.push(&fact, at)?;
            }
        }
        Ok(())
    }

    /// `ReportWritten`, and `IterationPublished` or `PublishRefused`, at the report's time.
    pub fn training(&mut self, outcome: &TrainingOutcome) -> Result<(), EmitError> {
        let Some(written) = &outcome.written else {
            return Ok(());
        };
        let store_name = &self.settings.model_store_container;
        let account = self.account;
        let url = |path: &str| {
            account
                .plain_blob_url(store_name, path)
                .map(|u| u.to_string())
                .unwrap_or_else(|_| format!("{store_name}/{path}"))
        };
        let (p, i) = (
            outcome.project_id.to_string(),
            outcome.iteration_id.to_string(),
        );
        // Written on every delivery: the id is the report's path, so it does not move.
        let report = Fact::ReportWritten {
            project_id: p.clone(),
            iteration_id: i.clone(),
            url: url(&written.json_path),
            html_url: Some(url(&written.html_path)),
            etag: written.etag.clone(),
        };
        self.push(&report, written.last_modified)?;
        let Some(publish) = &outcome.publish else {
            return Ok(());
        };
        let gate = outcome
            .figures
            .as_ref()
            .map(|f| gate(f, publish.min_precision, publish.min_recall));
        let fact = match publish.outcome.as_str() {
            "published" => Fact::IterationPublished {
                project_id: p,
                iteration_id: i,
                publish_name: publish.name.clone(),
                gate,
            },
            "alreadyPublished" if self.redelivery => Fact::IterationPublished {
                project_id: p,
                iteration_id: i,
                publish_name: publish.name.clone(),
                gate,
            },
            "belowBar" | "failed" => Fact::PublishRefused {
                project_id: p,
                iteration_id: i,
                reasons: if publish.missed.is_empty() {
                    vec![redact(
                        publish
                            .detail
                            .as_deref()
                            .unwrap_or("the publish was refused"),
                    )]
                } else {
                    publish.missed.iter().map(|m| m.to_string()).collect()
                },
                gate,
            },
            _ => return Ok(()),
        };
        self.push(&fact, written.last_modified)
    }

    fn blob(&self, stored: &StoredModel, path: &str) -> Result<StoredBlob, EmitError> {
        let url = self
            .account
            .plain_blob_url(&self.settings.model_store_container, path)?;
        Ok(StoredBlob {
            project_id: stored.project_id.to_string(),
            iteration_id: stored.iteration_id.to_string(),
            platform: stored.platform.clone(),
            url: url.to_string(),
            size: stored.size,
            content_md5: stored.content_md5.clone(),
            source_etag: stored.source_etag.clone(),
            order: Some(OrderKeyData {
                by: stored.order.by.as_str().to_string(),
                at: stored.order.at_text(),
                iteration_id: stored.order.iteration_id.to_string(),
            }),
        })
    }

    async fn last_modified(
        &self,
        container: &str,
        path: &str,
    ) -> Result<OffsetDateTime, EmitError> {
        let client = self.account.container(container)?;
        let props = client
            .blob_client(path)
            .get_properties(None)
            .await
            .map_err(StorageActionError::of("read a stored blob for its event"))?;
        props
            .last_modified()
            .map_err(StorageActionError::of("read a stored blob for its event"))?
            .ok_or_else(|| EmitError::NoTime(format!("{container}/{path}")))
    }

    /// The events collected, in order.
    pub fn events(&self) -> &[CloudEvent] {
        &self.events
    }

    pub fn into_events(self) -> Vec<CloudEvent> {
        self.events
    }
}

/// What an export's outcome emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExportChange {
    /// `ModelCopied`, at the copy's path.
    Copied,
    /// `LatestMoved`, at the alias's path.
    Moved,
}

/// The changes an outcome reports, each with its stored path: the redelivery rule
/// ([`super::outbox::emits`]) applied to the copy and to the alias. Made now: always. Found
/// already made (`AlreadyPresent`, `Current`): only on a `redelivery`, since a duplicate's
/// first delivery finding it done is not news. Not made (`Kept`, `Newer`, `Held`): never.
fn export_changes(
    outcome: &ModelOutcome,
    redelivery: bool,
) -> Vec<(ExportChange, &StoredModel, &str)> {
    let Some(stored) = &outcome.stored else {
        return Vec::new();
    };
    let mut changes = Vec::new();
    let copied = match &outcome.copy {
        Some((_, CopyState::Copied)) => Some(true),
        Some((_, CopyState::AlreadyPresent)) => Some(false),
        _ => None,
    };
    if copied.is_some_and(|now| now || redelivery) {
        changes.push((ExportChange::Copied, stored, stored.path.as_str()));
    }
    let moved = match &outcome.latest {
        Some(Latest::Moved { path }) => Some((true, path)),
        Some(Latest::Current { path }) => Some((false, path)),
        _ => None,
    };
    if let Some((now, path)) = moved {
        if now || redelivery {
            changes.push((ExportChange::Moved, stored, path.as_str()));
        }
    }
    changes
}

fn gate(figures: &Figures, min_precision: f64, min_recall: f64) -> Gate {
    Gate {
        precision: figures.precision,
        recall: figures.recall,
        average_precision: figures.average_precision,
        min_precision,
        min_recall,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{IterationId, ProjectId};
    use crate::model_store::{OrderBy, OrderKey};

    const P: &str = "0b4c7a55-8f0f-4a4e-9d2e-4a0d8b1c2e3f";
    const I: &str = "7e1d2c3b-4a5f-4e6d-8c7b-9a0f1e2d3c4b";
    const COPY: &str = "projects/p/iterations/i/model.onnx";
    const ALIAS: &str = "projects/p/latest/model.onnx";

    fn outcome(copy: Option<CopyState>, latest: Option<Latest>) -> ModelOutcome {
        let iteration_id = IterationId::parse(I).unwrap();
        ModelOutcome {
            source: "backups/model.onnx".into(),
            copy: copy.map(|c| (COPY.to_string(), c)),
            tagged_in_place: false,
            latest,
            indexed: None,
            stored: Some(StoredModel {
                project_id: ProjectId::parse(P).unwrap(),
                iteration_id,
                platform: "ONNX".into(),
                extension: "onnx".into(),
                path: COPY.into(),
                size: Some(5),
                content_md5: None,
                order: OrderKey {
                    by: OrderBy::Created,
                    at: OffsetDateTime::UNIX_EPOCH,
                    iteration_id,
                },
                source: "backups/model.onnx".into(),
                source_etag: "\"0x1\"".into(),
            }),
        }
    }

    fn changes(outcome: &ModelOutcome, redelivery: bool) -> Vec<(ExportChange, &str)> {
        export_changes(outcome, redelivery)
            .into_iter()
            .map(|(kind, _, path)| (kind, path))
            .collect()
    }

    /// `now || redelivery`: a change made now is always news; one found already made is news
    /// only on a redelivery (an earlier attempt may have died before its outputs), never on a
    /// duplicate notification's first delivery.
    #[test]
    fn an_outcome_found_already_done_emits_only_on_a_redelivery() {
        use ExportChange::{Copied, Moved};
        let moved = || Some(Latest::Moved { path: ALIAS.into() });
        let current = || Some(Latest::Current { path: ALIAS.into() });
        let made_now = outcome(Some(CopyState::Copied), moved());
        let found_done = outcome(Some(CopyState::AlreadyPresent), current());
        for redelivery in [false, true] {
            assert_eq!(
                changes(&made_now, redelivery),
                [(Copied, COPY), (Moved, ALIAS)],
                "made now, redelivery {redelivery}"
            );
        }
        assert_eq!(
            changes(&found_done, false),
            [],
            "a duplicate's first delivery emits nothing new"
        );
        assert_eq!(
            changes(&found_done, true),
            [(Copied, COPY), (Moved, ALIAS)],
            "a redelivery emits what it found done"
        );
        // Each half on its own: a copy made now with the alias already there, and back.
        let half = outcome(Some(CopyState::Copied), current());
        assert_eq!(changes(&half, false), [(Copied, COPY)]);
        let half = outcome(Some(CopyState::AlreadyPresent), moved());
        assert_eq!(changes(&half, false), [(Moved, ALIAS)]);
    }

    #[test]
    fn what_was_not_changed_emits_nothing_even_on_a_redelivery() {
        let newer = Some(Latest::Newer {
            path: ALIAS.into(),
            iteration: "other".into(),
        });
        let held = Some(Latest::Held { path: ALIAS.into() });
        for latest in [None, newer, held] {
            let kept = outcome(Some(CopyState::Kept), latest);
            assert_eq!(changes(&kept, true), [], "{kept}");
        }
        let mut no_copy = outcome(
            Some(CopyState::Copied),
            Some(Latest::Moved { path: ALIAS.into() }),
        );
        no_copy.stored = None;
        assert_eq!(changes(&no_copy, true), [], "nothing stored");
    }
}
