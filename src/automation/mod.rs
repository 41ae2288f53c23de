//! What a finished training does, through the Custom Vision Training API: a report (always,
//! once the API is configured), the exports the user always starts (`AUTO_EXPORT_PLATFORMS`),
//! and a publish gated on precision and recall (`PUBLISH_NAME`). Each step is idempotent under
//! redelivery: exports already there or queued count as done (read from GetExports), and so
//! does a publish under the same name (read from GetIteration).
//!
//! Failures split the usual way: a transient API failure (429/5xx past the client's retries,
//! an unauthorised key that may yet be fixed) is a 500 and the host retries the message; a
//! step the service refuses for good (not exportable, a name in use) is recorded in the report
//! and the log, and the message is done.

// Public: `cvctl demo` reads the reports and the dashboard, and the browser test renders
// them.
pub mod dashboard;
pub mod html;
pub mod report;

use std::collections::HashMap;

use azure_core::http::{RequestContent, StatusCode};
use azure_storage_blob::models::BlobClientUploadOptions;
use azure_storage_blob::BlobContainerClient;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::domain::{IterationId, ProjectId};
use crate::notification::TrainingStatus;
use crate::settings::automation::AutomationSettings;
use crate::storage::{list_blobs, StorageActionError};
use crate::training::{ExportState, Iteration, TrainingClient, TrainingError};
use report::{ExportLine, Figures, IterationSummary, Previous, PublishLine, Report};

/// A failure worth a retry of the whole message: only a Training API failure that
/// [`TrainingError::retry_later`] says may pass, or a storage request of the report, ever
/// becomes one; a step the service refuses for good is a line of the report instead.
#[derive(Debug, thiserror::Error)]
pub enum AutomationError {
    #[error(transparent)]
    Training(#[from] TrainingError),
    #[error(transparent)]
    Storage(#[from] StorageActionError),
    /// The project's dashboard could not be read or written.
    #[error(transparent)]
    Dashboard(#[from] dashboard::DashboardError),
}

/// What a training's automation did: its log lines, and what the events are built from.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingOutcome {
    pub project_id: ProjectId,
    pub iteration_id: IterationId,
    pub logs: Vec<String>,
    pub figures: Option<Figures>,
    pub publish: Option<PublishLine>,
    /// The report as written (always, once the automation ran).
    pub written: Option<WrittenReport>,
}

/// The JSON report blob as the upload answered: its ETag and Last-Modified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenReport {
    pub json_path: String,
    pub html_path: String,
    pub etag: String,
    pub last_modified: OffsetDateTime,
}

/// The report of one iteration, as stored (`reports/{projectId}/{iterationId}.json`); `None`
/// while there is none, or when the blob is not a report.
pub async fn load_report(
    store: &BlobContainerClient,
    project_id: ProjectId,
    iteration_id: IterationId,
) -> Result<Option<Report>, StorageActionError> {
    read_report(store, &report::json_path(project_id, iteration_id)).await
}

/// The report in blob `name`: `None` when it is gone or is no report.
async fn read_report(
    store: &BlobContainerClient,
    name: &str,
) -> Result<Option<Report>, StorageActionError> {
    let bytes = match store.blob_client(name).download(None).await {
        Ok(r) => r
            .body
            .collect()
            .await
            .map_err(StorageActionError::of("read a report"))?,
        Err(e) if e.http_status() == Some(StatusCode::NotFound) => return Ok(None),
        Err(e) => return Err(StorageActionError::of("read a report")(e)),
    };
    Ok(serde_json::from_slice::<Report>(&bytes).ok())
}

pub struct Automation<'a> {
    pub client: &'a TrainingClient,
    pub settings: &'a AutomationSettings,
    pub store: &'a BlobContainerClient,
}

impl Automation<'_> {
    /// Runs the steps for one training notification; returns the log lines and the outcome.
    pub async fn after_training(
        &self,
        project_id: ProjectId,
        iteration_id: IterationId,
        status: TrainingStatus,
    ) -> Result<TrainingOutcome, AutomationError> {
        let mut logs = Vec::new();
        let mut report = Report {
            project_id: project_id.to_string(),
            iteration_id: iteration_id.to_string(),
            status: status.as_str().to_string(),
            generated_at: now(),
            iteration: None,
            performance: None,
            previous: None,
            exports: Vec::new(),
            publish: None,
            notes: Vec::new(),
        };
        let iteration = match self.client.get_iteration(project_id, iteration_id).await {
            Ok(i) => Some(i),
            Err(e) if e.retry_later() => return Err(e.into()),
            Err(e) => {
                let line = format!("warning: GetIteration refused: {e}");
                report.notes.push(line.clone());
                logs.push(line);
                None
            }
        };
        report.iteration = iteration.as_ref().map(IterationSummary::of);
        let completed = status == TrainingStatus::Completed
            && iteration.as_ref().is_some_and(Iteration::is_completed);
        if let (true, Some(iteration)) = (completed, &iteration) {
            let performance = match self
                .client
                .get_iteration_performance(
                    project_id,
                    iteration_id,
                    Some(self.settings.report_threshold as f32),
                    self.settings.overlap_threshold.map(|o| o as f32),
                )
                .await
            {
                Ok(p) => Some(p),
                Err(e) if e.retry_later() => return Err(e.into()),
                Err(e) => {
                    let line = format!(
                        "warning: GetIterationPerformance refused: {e}; no figures, so no publish"
                    );
                    report.notes.push(line.clone());
                    logs.push(line);
                    None
                }
            };
            let figures = performance.as_ref().map(|performance| {
                Figures::of(
                    performance,
                    self.settings.report_threshold,
                    self.settings.overlap_threshold,
                )
            });
            report.previous = self.previous(project_id, iteration).await?;
            report.exports = self.exports(project_id, iteration, &mut logs).await?;
            if let Some(figures) = &figures {
                report.publish = self
                    .publish(project_id, iteration, figures, &mut logs)
                    .await?;
            }
            logs.insert(
                0,
                match &figures {
                    Some(figures) => format!(
                        "training of project {project_id} iteration {iteration_id} ({}): precision {:.4}, recall {:.4}",
                        iteration.name, figures.precision, figures.recall
                    ),
                    None => format!(
                        "training of project {project_id} iteration {iteration_id} ({}): no figures",
                        iteration.name
                    ),
                },
            );
            report.performance = figures;
        } else {
            logs.insert(
                0,
                format!(
                    "warning: training of project {project_id} iteration {iteration_id}: {}",
                    status.as_str()
                ),
            );
        }
        let written = self.write(&report, iteration.as_ref()).await?;
        logs.push(format!(
            "report written: {}/{{json,html}}",
            report::json_path(&report.project_id, &report.iteration_id).trim_end_matches(".json")
        ));
        // After the report, so the page includes it.
        let refreshed = dashboard::refresh(self.store, project_id).await?;
        logs.push(format!(
            "dashboard {}: {}",
            match refreshed {
                dashboard::Refreshed::Written => "written",
                dashboard::Refreshed::Unchanged => "unchanged",
            },
            dashboard::path(&report.project_id)
        ));
        Ok(TrainingOutcome {
            project_id,
            iteration_id,
            logs,
            figures: report.performance.clone(),
            publish: report.publish.clone(),
            written: Some(written),
        })
    }

    /// The report of the newest earlier iteration (by `trainedAt`), from one listing of the
    /// project's reports and one read.
    async fn previous(
        &self,
        project_id: ProjectId,
        iteration: &Iteration,
    ) -> Result<Option<Previous>, AutomationError> {
        let Some(trained_at) = iteration.trained_at else {
            return Ok(None);
        };
        let prefix = crate::naming::stored::reports_prefix(project_id);
        let listed = list_blobs(self.store, &prefix)
            .await
            .map_err(StorageActionError::of("list reports"))?;
        let earlier = listed
            .into_iter()
            .filter(|b| b.name.ends_with(".json"))
            .filter_map(|b| {
                let at = OffsetDateTime::parse(b.metadata.get(report::TRAINED_AT_KEY)?, &Rfc3339)
                    .ok()?;
                (at < trained_at).then_some((at, b.name))
            })
            .max();
        let Some((_, name)) = earlier else {
            return Ok(None);
        };
        let Some(old) = read_report(self.store, &name).await? else {
            return Ok(None);
        };
        Ok(old.performance.map(|figures| Previous {
            iteration_id: old.iteration_id,
            name: old
                .iteration
                .as_ref()
                .map(|i| i.name.clone())
                .unwrap_or_default(),
            trained_at: old.iteration.and_then(|i| i.trained_at),
            figures,
        }))
    }

    /// Each configured export: asked for once. One GetExports says what is already there or
    /// queued.
    async fn exports(
        &self,
        project_id: ProjectId,
        iteration: &Iteration,
        logs: &mut Vec<String>,
    ) -> Result<Vec<ExportLine>, AutomationError> {
        let targets = &self.settings.auto_export;
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let existing = match self.client.get_exports(project_id, iteration.id).await {
            Ok(existing) => existing,
            Err(e) if e.retry_later() => return Err(e.into()),
            // Without the list no request can be known not to duplicate one: none is made.
            Err(e) => {
                let lines: Vec<ExportLine> = targets
                    .iter()
                    .map(|target| ExportLine {
                        platform: target.platform.as_str().to_string(),
                        flavor: target.flavor.map(|f| f.as_str().to_string()),
                        outcome: "failed".into(),
                        detail: Some(e.to_string()),
                    })
                    .collect();
                logs.push(format!(
                    "warning: GetExports refused ({e}); no export requested"
                ));
                return Ok(lines);
            }
        };
        let mut lines = Vec::new();
        for target in targets {
            let line = |outcome: &str, detail: Option<String>| ExportLine {
                platform: target.platform.as_str().to_string(),
                flavor: target.flavor.map(|f| f.as_str().to_string()),
                outcome: outcome.to_string(),
                detail,
            };
            let there = existing
                .iter()
                .find(|e| e.platform == target.platform && e.flavor == target.flavor);
            let result = if !iteration.exportable
                || !iteration.exportable_to.contains(&target.platform)
            {
                line(
                    "notExportable",
                    Some(format!(
                        "the iteration exports to {:?} only",
                        iteration
                            .exportable_to
                            .iter()
                            .map(|p| p.as_str())
                            .collect::<Vec<_>>()
                    )),
                )
            } else if let Some(e) = there.filter(|e| e.status != ExportState::Failed) {
                line(
                    if e.status == ExportState::Done {
                        "alreadyDone"
                    } else {
                        "alreadyExporting"
                    },
                    None,
                )
            } else {
                match self
                    .client
                    .export_iteration(project_id, iteration.id, target.platform, target.flavor)
                    .await
                {
                    Ok(_) => line("requested", None),
                    Err(e) if e.is_export_already_in_progress() => line("alreadyExporting", None),
                    Err(e) if e.retry_later() => return Err(e.into()),
                    Err(e) => line("failed", Some(e.to_string())),
                }
            };
            logs.push(format!(
                "export {target} of iteration {}: {}{}",
                iteration.id,
                result.outcome,
                result
                    .detail
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            ));
            lines.push(result);
        }
        Ok(lines)
    }

    /// Publish under `PUBLISH_NAME` when precision and recall are at or above their bars.
    async fn publish(
        &self,
        project_id: ProjectId,
        iteration: &Iteration,
        figures: &Figures,
        logs: &mut Vec<String>,
    ) -> Result<Option<PublishLine>, AutomationError> {
        let Some(publish) = &self.settings.publish else {
            return Ok(None);
        };
        let missed = report::misses(figures, publish.min_precision, publish.min_recall);
        let mut line = PublishLine {
            name: publish.name.clone(),
            outcome: String::new(),
            min_precision: publish.min_precision,
            min_recall: publish.min_recall,
            missed: missed.clone(),
            detail: None,
        };
        if !missed.is_empty() {
            line.outcome = "belowBar".into();
            let why: Vec<String> = missed.iter().map(|m| m.to_string()).collect();
            logs.push(format!(
                "not published as '{}': {}",
                publish.name,
                why.join("; ")
            ));
        } else if iteration.publish_name.as_deref() == Some(publish.name.as_str()) {
            line.outcome = "alreadyPublished".into();
            logs.push(format!("already published as '{}'", publish.name));
        } else {
            match self
                .client
                .publish_iteration(
                    project_id,
                    iteration.id,
                    &publish.name,
                    &publish.prediction_resource_id,
                )
                .await
            {
                Ok(_) => {
                    line.outcome = "published".into();
                    logs.push(format!("published as '{}'", publish.name));
                }
                // Published since GetIteration, by a concurrent delivery or by someone else:
                // only the name it is published under says which.
                Err(e) if e.code() == Some("BadRequestIterationIsPublished") => {
                    let now = match self.client.get_iteration(project_id, iteration.id).await {
                        Ok(i) => i.publish_name,
                        Err(e) if e.retry_later() => return Err(e.into()),
                        Err(_) => None,
                    };
                    if now.as_deref() == Some(publish.name.as_str()) {
                        line.outcome = "alreadyPublished".into();
                        logs.push(format!("already published as '{}'", publish.name));
                    } else {
                        line.outcome = "failed".into();
                        let detail = match now {
                            Some(other) => {
                                format!("the iteration is published as '{other}' already")
                            }
                            None => e.to_string(),
                        };
                        logs.push(format!(
                            "warning: publish as '{}' refused: {detail}",
                            publish.name
                        ));
                        line.detail = Some(detail);
                    }
                }
                Err(e) if e.retry_later() => return Err(e.into()),
                Err(e) => {
                    line.outcome = "failed".into();
                    line.detail = Some(e.to_string());
                    logs.push(format!(
                        "warning: publish as '{}' refused: {e}",
                        publish.name
                    ));
                }
            }
        }
        Ok(Some(line))
    }

    /// Both forms of the report; the JSON carries `trainedAt` in its metadata, so the next
    /// report finds it as "previous" with one listing.
    async fn write(
        &self,
        report: &Report,
        iteration: Option<&Iteration>,
    ) -> Result<WrittenReport, AutomationError> {
        let mut metadata = HashMap::new();
        if let Some(at) = iteration.and_then(|i| i.trained_at) {
            metadata.insert(
                report::TRAINED_AT_KEY.to_string(),
                at.format(&Rfc3339).unwrap_or_default(),
            );
        }
        let json = serde_json::to_vec_pretty(report).unwrap_or_default();
        let html = html::render(report).into_bytes();
        let mut written = None;
        for (path, body, content_type) in [
            (
                report::json_path(&report.project_id, &report.iteration_id),
                json,
                "application/json",
            ),
            (
                report::html_path(&report.project_id, &report.iteration_id),
                html,
                "text/html; charset=utf-8",
            ),
        ] {
            let blob = self.store.blob_client(&path);
            // The metadata in the upload itself: a report is never seen without it.
            let options = BlobClientUploadOptions {
                blob_content_type: Some(content_type.into()),
                metadata: (content_type == "application/json").then(|| metadata.clone()),
                ..Default::default()
            };
            let uploaded = blob
                .upload(RequestContent::from(body), Some(options))
                .await
                .map_err(StorageActionError::of("write the report"))?;
            if content_type == "application/json" {
                written = Some((
                    uploaded.etag.map(|e| e.to_string()).unwrap_or_default(),
                    uploaded.last_modified,
                ));
            }
        }
        let json_path = report::json_path(&report.project_id, &report.iteration_id);
        let (etag, last_modified) = written.unwrap_or_default();
        Ok(WrittenReport {
            html_path: report::html_path(&report.project_id, &report.iteration_id),
            json_path,
            etag,
            // The service always answers Last-Modified; without it, the epoch: never "now".
            last_modified: last_modified.unwrap_or(OffsetDateTime::UNIX_EPOCH),
        })
    }
}

fn now() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}
