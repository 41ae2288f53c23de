//! What a backfill would do, decided from what was read and nothing else: the project's
//! iterations, each one's exports (GetExports), the models already in the store (Find Blobs by
//! Tags) and the reports already written. Pure, so `--dry-run` prints exactly what a run does.

use std::collections::HashSet;

use serde::Serialize;
use time::OffsetDateTime;

use crate::domain::IterationId;
use crate::settings::automation::ExportTarget;
use crate::settings::Secret;
use crate::training::{Export, ExportState, Iteration, TrainingError};

/// Where one export of one iteration stands, and so what the backfill does with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Step {
    /// The store has this iteration's model of the platform: nothing to do.
    InStore,
    /// The export is done: copy it into the store.
    Copy,
    /// Exporting (queued or running): wait, then copy.
    Wait,
    /// No export yet, or only a failed one: request it, wait, copy.
    Request,
    /// The iteration does not export to the platform.
    NotExportable,
    /// The service refused the export, or it failed.
    Failed(ExportFailure),
    /// Copied into the store by this run.
    Copied,
    /// Still exporting when the wait ended.
    StillExporting,
}

/// Why one export of a backfill failed. `Display` is the reason `cvctl backfill` prints, and
/// a plan serializes it as that text.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExportFailure {
    /// ExportIteration answered with an error a retry would not change.
    #[error(transparent)]
    Refused(TrainingError),
    /// The export's own path would keep its message as rejected, with this reason.
    #[error("{0}")]
    Rejected(String),
    #[error("the export failed in Custom Vision")]
    FailedInService,
    #[error("the export is done but has no download URI")]
    NoDownloadUri,
}

/// Equal when they read the same: a [`TrainingError`] has no `PartialEq` (its sources have
/// none), and a plan's steps are compared only in tests.
impl PartialEq for ExportFailure {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for ExportFailure {}

impl Serialize for ExportFailure {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportPlan {
    pub target: String,
    #[serde(skip)]
    pub export_target: ExportTarget,
    pub step: Step,
    /// The package's SAS URL while the export is done: a secret, never shown.
    #[serde(skip)]
    pub download_uri: Option<Secret>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IterationPlan {
    #[serde(serialize_with = "as_text")]
    pub iteration_id: IterationId,
    pub name: String,
    #[serde(serialize_with = "as_rfc3339")]
    pub trained_at: Option<OffsetDateTime>,
    pub exports: Vec<ExportPlan>,
    /// Whether the iteration has a report yet; a run writes the missing ones.
    pub has_report: bool,
    /// Written by this run.
    pub report_written: bool,
}

/// An iteration left alone: not trained (yet).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    #[serde(serialize_with = "as_text")]
    pub iteration_id: IterationId,
    pub name: String,
    pub status: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Trained iterations, oldest first (by `trainedAt`), as their reports compare.
    pub iterations: Vec<IterationPlan>,
    pub skipped: Vec<Skipped>,
}

impl Plan {
    /// `exports_of(i)` is GetExports of trained iteration `i`; `in_store` the (iteration,
    /// platform label) pairs the store holds; `reported` the iterations with a report.
    pub fn decide(
        iterations: Vec<Iteration>,
        targets: &[ExportTarget],
        exports_of: &dyn Fn(IterationId) -> Vec<Export>,
        in_store: &HashSet<(IterationId, String)>,
        reported: &HashSet<IterationId>,
    ) -> Self {
        let mut plan = Plan {
            iterations: Vec::new(),
            skipped: Vec::new(),
        };
        for iteration in iterations {
            if !iteration.is_completed() {
                plan.skipped.push(Skipped {
                    iteration_id: iteration.id,
                    name: iteration.name,
                    status: iteration.status,
                });
                continue;
            }
            let existing = exports_of(iteration.id);
            let exports = targets
                .iter()
                .map(|target| {
                    let (step, download_uri) = step_of(&iteration, target, &existing, in_store);
                    ExportPlan {
                        target: target.to_string(),
                        export_target: *target,
                        step,
                        download_uri,
                    }
                })
                .collect();
            plan.iterations.push(IterationPlan {
                iteration_id: iteration.id,
                name: iteration.name.clone(),
                trained_at: iteration.trained_at,
                exports,
                has_report: reported.contains(&iteration.id),
                report_written: false,
            });
        }
        // Oldest first; an iteration without a time last, ties by id: one order every run.
        plan.iterations.sort_by_key(|i| {
            (
                i.trained_at.is_none(),
                i.trained_at.unwrap_or(OffsetDateTime::UNIX_EPOCH),
                i.iteration_id,
            )
        });
        plan
    }

    /// Whether a run would change anything.
    pub fn is_empty(&self) -> bool {
        self.iterations.iter().all(|i| {
            i.has_report
                && i.exports
                    .iter()
                    .all(|e| matches!(e.step, Step::InStore | Step::NotExportable))
        })
    }
}

fn as_text<S: serde::Serializer>(v: &IterationId, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn as_rfc3339<S: serde::Serializer>(v: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
    use time::format_description::well_known::Rfc3339;
    match v.and_then(|t| t.format(&Rfc3339).ok()) {
        Some(t) => s.serialize_some(&t),
        None => s.serialize_none(),
    }
}

/// One target of one iteration. An export counts by platform and flavor, as the automation
/// counts it ("already queued" is done).
fn step_of(
    iteration: &Iteration,
    target: &ExportTarget,
    existing: &[Export],
    in_store: &HashSet<(IterationId, String)>,
) -> (Step, Option<Secret>) {
    if in_store.contains(&(iteration.id, target.platform.as_str().to_string())) {
        return (Step::InStore, None);
    }
    if !iteration.exportable || !iteration.exportable_to.contains(&target.platform) {
        return (Step::NotExportable, None);
    }
    let there = existing
        .iter()
        .find(|e| e.platform == target.platform && e.flavor == target.flavor);
    match there.map(|e| (e.status, e.download_uri.as_deref())) {
        Some((ExportState::Done, Some(uri))) => (Step::Copy, Some(Secret::new(uri))),
        Some((ExportState::Done, None)) => (Step::Failed(ExportFailure::NoDownloadUri), None),
        Some((ExportState::Exporting, _)) => (Step::Wait, None),
        Some((ExportState::Failed | ExportState::Unknown, _)) | None => (Step::Request, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ExportPlatform;

    /// A failed step reads, and serializes, as the reason it had as text.
    #[test]
    fn a_failed_step_serializes_as_its_reason() {
        let refused = TrainingError::Service {
            operation: "ExportIteration",
            status: 400,
            code: "BadRequestExportPlatformNotSupportedForModel".into(),
            message: "no".into(),
        };
        assert_eq!(
            serde_json::to_value(Step::Failed(ExportFailure::Refused(refused))).unwrap(),
            serde_json::json!({"failed": "ExportIteration: the service answered 400 BadRequestExportPlatformNotSupportedForModel: no"})
        );
        assert_eq!(
            serde_json::to_value(Step::Failed(ExportFailure::NoDownloadUri)).unwrap(),
            serde_json::json!({"failed": "the export is done but has no download URI"})
        );
    }

    fn iteration(id: &str, status: &str, trained: Option<&str>) -> Iteration {
        serde_json::from_value(serde_json::json!({
            "id": id, "name": format!("it {}", &id[..2]), "status": status,
            "trainedAt": trained, "projectId": "b6dd673c-be9e-4911-b2f6-02237b2d4872",
            "exportable": status == "Completed", "exportableTo": ["ONNX", "CoreML"],
        }))
        .unwrap()
    }

    fn export(platform: &str, status: &str) -> Export {
        serde_json::from_value(serde_json::json!({
            "platform": platform, "status": status,
            "downloadUri": (status == "Done").then_some("https://x.blob.core.windows.net/c/b?sig=S"),
        }))
        .unwrap()
    }

    const A: &str = "0a000000-0000-4000-8000-000000000000";
    const B: &str = "0b000000-0000-4000-8000-000000000000";
    const C: &str = "0c000000-0000-4000-8000-000000000000";
    const D: &str = "0d000000-0000-4000-8000-000000000000";

    #[test]
    fn each_export_gets_the_step_its_state_calls_for() {
        let targets = [
            ExportTarget {
                platform: ExportPlatform::Onnx,
                flavor: None,
            },
            ExportTarget {
                platform: ExportPlatform::TensorFlow,
                flavor: None,
            },
        ];
        let id = |s: &str| IterationId::parse(s).unwrap();
        let iterations = vec![
            iteration(C, "Completed", Some("2026-11-03T00:00:00Z")),
            iteration(A, "Completed", Some("2026-11-01T00:00:00Z")),
            iteration(B, "Completed", Some("2026-11-02T00:00:00Z")),
            iteration(D, "Training", None),
        ];
        let exports_of = |i: IterationId| match i {
            i if i == id(A) => vec![export("ONNX", "Done")],
            i if i == id(B) => vec![export("ONNX", "Exporting")],
            i if i == id(C) => vec![export("ONNX", "Failed")],
            _ => panic!("GetExports of an untrained iteration"),
        };
        let in_store = HashSet::new();
        let reported = HashSet::from([id(A)]);
        let plan = Plan::decide(iterations, &targets, &exports_of, &in_store, &reported);
        let order: Vec<_> = plan.iterations.iter().map(|i| i.iteration_id).collect();
        assert_eq!(order, [id(A), id(B), id(C)], "oldest first");
        assert_eq!(plan.skipped.len(), 1);
        let steps: Vec<Vec<Step>> = plan
            .iterations
            .iter()
            .map(|i| i.exports.iter().map(|e| e.step.clone()).collect())
            .collect();
        assert_eq!(
            steps,
            [
                [Step::Copy, Step::NotExportable],
                [Step::Wait, Step::NotExportable],
                [Step::Request, Step::NotExportable],
            ]
        );
        assert!(plan.iterations[0].has_report && !plan.iterations[1].has_report);
        assert!(!plan.is_empty());

        // Everything in the store and reported: nothing to do.
        let in_store = HashSet::from([
            (id(A), "ONNX".into()),
            (id(B), "ONNX".into()),
            (id(C), "ONNX".into()),
        ]);
        let reported = HashSet::from([id(A), id(B), id(C)]);
        let iterations = vec![
            iteration(A, "Completed", Some("2026-11-01T00:00:00Z")),
            iteration(B, "Completed", Some("2026-11-02T00:00:00Z")),
            iteration(C, "Completed", Some("2026-11-03T00:00:00Z")),
        ];
        let plan = Plan::decide(iterations, &targets, &exports_of, &in_store, &reported);
        assert!(plan.is_empty());
    }

    #[test]
    fn a_download_uri_is_never_serialised() {
        let targets = [ExportTarget {
            platform: ExportPlatform::Onnx,
            flavor: None,
        }];
        let plan = Plan::decide(
            vec![iteration(A, "Completed", Some("2026-11-01T00:00:00Z"))],
            &targets,
            &|_| vec![export("ONNX", "Done")],
            &HashSet::new(),
            &HashSet::new(),
        );
        assert!(plan.iterations[0].exports[0].download_uri.is_some());
        let text = serde_json::to_string(&plan).unwrap();
        assert!(!text.contains("sig=") && !text.contains("x.blob"), "{text}");
    }
}
