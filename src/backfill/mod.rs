//! The history a project had before the app: every trained iteration still in Custom Vision
//! brought into the store as if its notifications had come (`cvctl backfill`).
//!
//! [`Backfill::plan`] reads (GetIterations, GetExports per trained iteration, the store's
//! models by tags, the project's reports) and decides ([`plan`]); [`Backfill::run`] then
//! requests the missing exports ("already queued" counts as done), waits for them, copies each
//! through [`ExportProcessor`] (the very path of `ExportCompleted`: same names, tags, `latest`
//! order by `trainedAt`, index), and writes each missing report with the automation's writer
//! ([`Automation::after_training`]), never publishing. What is already there is left alone,
//! so a second run changes nothing. Throttling (429 with `Retry-After`) is the Training
//! client's to wait out.
//!
//! Events: when a sink is configured (the settings `PublishEvents` reads), each copy and each
//! report puts the events the store functions would emit for it (built by
//! [`crate::events::emit`], so with the same deterministic ids) on the outbox queue
//! (`CV_EVENTS_QUEUE`), right after the change, as a first delivery would: for what this run
//! changed. A second run changes nothing and so queues nothing.

mod plan;

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;

use crate::automation::{Automation, AutomationError};
use crate::domain::{IterationId, ProjectId};
use crate::events::emit::{EmitError, Events};
use crate::events::outbox;
use crate::export::{ExportError, ExportProcessor};
use crate::model_store::{find_models, FoundKind, ModelFilter, ModelStoreError};
use crate::notification::TrainingStatus;
use crate::settings::automation::{AutomationSettings, ExportTarget};
use crate::settings::{Secret, Settings};
use crate::storage::{list_blobs, StorageAccount, StorageActionError, StorageError};
use crate::training::{ExportState, TrainingClient, TrainingError};
pub use plan::{ExportFailure, ExportPlan, IterationPlan, Plan, Skipped, Step};

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("{operation} failed: {source}")]
    Training {
        operation: &'static str,
        source: TrainingError,
    },
    #[error(transparent)]
    Store(#[from] ModelStoreError),
    #[error(transparent)]
    Storage(#[from] StorageActionError),
    #[error(transparent)]
    Client(#[from] StorageError),
    #[error("copying the export of iteration {iteration_id} failed: {source}")]
    Export {
        iteration_id: IterationId,
        source: ExportError,
    },
    #[error("writing the report of iteration {iteration_id} failed: {source}")]
    Report {
        iteration_id: IterationId,
        source: AutomationError,
    },
    #[error("building the events failed: {0}")]
    Events(#[from] EmitError),
    #[error(transparent)]
    EventSource(#[from] crate::events::SourceError),
    /// The outbox queue is not there: found before anything is changed.
    #[error("the outbox queue '{0}' (CV_EVENTS_QUEUE) does not exist")]
    NoOutbox(String),
}

/// Puts the events collected since the first `sent` on the outbox; how many.
async fn queue(
    outbox: &Option<std::sync::Arc<azure_storage_queue::QueueClient>>,
    events: &Events<'_>,
    sent: usize,
) -> Result<usize, BackfillError> {
    let new = &events.events()[sent..];
    if let Some(queue) = outbox {
        outbox::enqueue(queue, new).await?;
    }
    Ok(new.len())
}

impl BackfillError {
    fn training(operation: &'static str) -> impl Fn(TrainingError) -> Self {
        move |source| Self::Training { operation, source }
    }
}

/// Told what a run does as it does it; the CLI draws the wait as a bar.
pub trait Progress: Sync {
    /// `finished` of `total` exports awaited have ended (done or failed).
    fn waiting(&self, _finished: usize, _total: usize) {}
    /// One line of what happened.
    fn line(&self, _line: &str) {}
}

/// Nothing shown.
pub struct Quiet;

impl Progress for Quiet {}

/// How long to wait for exports, and how often to ask.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    pub poll: Duration,
    pub deadline: Duration,
}

/// What a run did, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Done {
    pub requested: usize,
    pub copied: usize,
    pub reports: usize,
    /// Exports refused, failed, or not copied; each with its line in the plan.
    pub failed: usize,
    pub still_exporting: usize,
    /// Events put on the outbox queue (none when no sink is configured).
    pub events: usize,
}

pub struct Backfill<'a> {
    pub client: &'a TrainingClient,
    pub settings: &'a Settings,
    pub account: &'a StorageAccount,
    pub project_id: ProjectId,
    pub targets: &'a [ExportTarget],
}

impl Backfill<'_> {
    /// Reads, decides, changes nothing.
    pub async fn plan(&self) -> Result<Plan, BackfillError> {
        let p = self.project_id;
        let iterations = self
            .client
            .get_iterations(p)
            .await
            .map_err(BackfillError::training("GetIterations"))?;
        let mut exports = Vec::new();
        for i in iterations.iter().filter(|i| i.is_completed()) {
            let listed = self
                .client
                .get_exports(p, i.id)
                .await
                .map_err(BackfillError::training("GetExports"))?;
            exports.push((i.id, listed));
        }
        let store = self
            .account
            .container(&self.settings.model_store_container)?;
        let in_store: HashSet<(IterationId, String)> = find_models(&store, &ModelFilter::copies(p))
            .await?
            .into_iter()
            .filter(|f| f.kind == FoundKind::Model)
            .filter_map(|f| Some((f.order()?.iteration_id, f.platform())))
            .collect();
        let prefix = crate::naming::stored::reports_prefix(p);
        let reported: HashSet<IterationId> = list_blobs(&store, &prefix)
            .await
            .map_err(StorageActionError::of("list the reports"))?
            .into_iter()
            .filter_map(|b| {
                let id = b.name.strip_prefix(&prefix)?.strip_suffix(".json")?;
                IterationId::parse(id).ok()
            })
            .collect();
        let exports_of = |id: IterationId| {
            exports
                .iter()
                .find(|(i, _)| *i == id)
                .map(|(_, e)| e.clone())
                .unwrap_or_default()
        };
        Ok(Plan::decide(
            iterations,
            self.targets,
            &exports_of,
            &in_store,
            &reported,
        ))
    }

    /// Carries `plan` out; the plan's steps end as what happened to each export.
    pub async fn run(
        &self,
        plan: &mut Plan,
        wait: Wait,
        progress: &dyn Progress,
    ) -> Result<Done, BackfillError> {
        let p = self.project_id;
        let mut done = Done::default();
        let source = crate::events::source(self.settings, self.account)?;
        let mut events = Events::new(self.settings, self.account, source, false);
        let outbox = self.outbox().await?;
        // 1. Request what is missing.
        for it in &mut plan.iterations {
            for e in it.exports.iter_mut().filter(|e| e.step == Step::Request) {
                let target = e.export_target;
                match self
                    .client
                    .export_iteration(p, it.iteration_id, target.platform, target.flavor)
                    .await
                {
                    Ok(_) => {
                        done.requested += 1;
                        e.step = Step::Wait;
                        progress.line(&format!(
                            "{} ({}): export {target} requested",
                            it.name, it.iteration_id
                        ));
                    }
                    Err(err) if err.is_export_already_in_progress() => e.step = Step::Wait,
                    Err(err) if err.retry_later() => {
                        return Err(BackfillError::training("ExportIteration")(err))
                    }
                    Err(err) => e.step = Step::Failed(ExportFailure::Refused(err)),
                }
            }
        }
        // 2. Wait for every export asked for or queued, asking GetExports per iteration.
        self.wait(plan, wait, progress).await?;
        // 3. Copy each done export through the export's own path.
        let processor = ExportProcessor {
            settings: self.settings,
            account: self.account,
            training: Some(self.client),
        };
        for it in &mut plan.iterations {
            for e in it.exports.iter_mut().filter(|e| e.step == Step::Copy) {
                let uri = e.download_uri.as_ref().map(Secret::expose);
                match processor.process(p, it.iteration_id, uri).await {
                    Ok(report) => {
                        done.copied += 1;
                        e.step = Step::Copied;
                        events.export(&report.outcomes).await?;
                        done.events += queue(&outbox, &events, done.events).await?;
                        for line in report.lines {
                            progress.line(&format!("{} ({}): {line}", it.name, it.iteration_id));
                        }
                    }
                    // The message would be kept as rejected: this export, never.
                    Err(ExportError::Rejected { reason }) => {
                        e.step = Step::Failed(ExportFailure::Rejected(reason))
                    }
                    Err(source) => {
                        return Err(BackfillError::Export {
                            iteration_id: it.iteration_id,
                            source,
                        })
                    }
                }
            }
        }
        for e in plan.iterations.iter().flat_map(|i| &i.exports) {
            match e.step {
                Step::Failed(_) => done.failed += 1,
                Step::StillExporting => done.still_exporting += 1,
                _ => {}
            }
        }
        // 4. Reports, oldest first, so each compares with the one before it.
        let store = self
            .account
            .container(&self.settings.model_store_container)?;
        // The report's own export step sees the exports above as done; no publish: a
        // backfill brings history in, it does not change what is in production.
        let settings = AutomationSettings {
            auto_export: self.targets.to_vec(),
            publish: None,
            ..self.settings.automation.clone()
        };
        let automation = Automation {
            client: self.client,
            settings: &settings,
            store: &store,
        };
        for it in plan.iterations.iter_mut().filter(|i| !i.has_report) {
            let outcome = automation
                .after_training(p, it.iteration_id, TrainingStatus::Completed)
                .await
                .map_err(|source| BackfillError::Report {
                    iteration_id: it.iteration_id,
                    source,
                })?;
            done.reports += 1;
            events.training(&outcome)?;
            done.events += queue(&outbox, &events, done.events).await?;
            it.has_report = true;
            it.report_written = true;
            if let Some(last) = outcome.logs.last() {
                progress.line(&format!("{} ({}): {last}", it.name, it.iteration_id));
            }
        }
        Ok(done)
    }

    /// The outbox queue when events are on, checked to exist before anything changes, so
    /// a change is never made whose events have nowhere to go.
    async fn outbox(
        &self,
    ) -> Result<Option<std::sync::Arc<azure_storage_queue::QueueClient>>, BackfillError> {
        if !self.settings.events.enabled() {
            return Ok(None);
        }
        let name = &self.settings.events.queue;
        let queue = self.account.queue(name)?;
        let exists = queue
            .exists()
            .await
            .map_err(StorageActionError::of("read the outbox queue"))?;
        if !exists {
            return Err(BackfillError::NoOutbox(name.clone()));
        }
        Ok(Some(queue))
    }

    async fn wait(
        &self,
        plan: &mut Plan,
        wait: Wait,
        progress: &dyn Progress,
    ) -> Result<(), BackfillError> {
        let p = self.project_id;
        let awaited = |plan: &Plan| {
            plan.iterations
                .iter()
                .flat_map(|i| &i.exports)
                .filter(|e| e.step == Step::Wait)
                .count()
        };
        let total = awaited(plan);
        if total == 0 {
            return Ok(());
        }
        let deadline = Instant::now() + wait.deadline;
        loop {
            for it in &mut plan.iterations {
                if !it.exports.iter().any(|e| e.step == Step::Wait) {
                    continue;
                }
                let listed = self
                    .client
                    .get_exports(p, it.iteration_id)
                    .await
                    .map_err(BackfillError::training("GetExports"))?;
                for e in it.exports.iter_mut().filter(|e| e.step == Step::Wait) {
                    let target = e.export_target;
                    let found = listed
                        .iter()
                        .find(|x| x.platform == target.platform && x.flavor == target.flavor);
                    match found.map(|x| (x.status, x.download_uri.as_deref())) {
                        Some((ExportState::Done, Some(uri))) => {
                            e.step = Step::Copy;
                            e.download_uri = Some(Secret::new(uri));
                        }
                        Some((ExportState::Failed, _)) => {
                            e.step = Step::Failed(ExportFailure::FailedInService)
                        }
                        _ => {}
                    }
                }
            }
            let left = awaited(plan);
            progress.waiting(total - left, total);
            if left == 0 {
                return Ok(());
            }
            if Instant::now() + wait.poll > deadline {
                for e in plan
                    .iterations
                    .iter_mut()
                    .flat_map(|i| &mut i.exports)
                    .filter(|e| e.step == Step::Wait)
                {
                    e.step = Step::StillExporting;
                }
                return Ok(());
            }
            tokio::time::sleep(wait.poll).await;
        }
    }
}
