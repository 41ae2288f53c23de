//! The project dashboard, `reports/{projectId}/index.html`: every iteration with its figures,
//! a line chart of them over the iterations, `latest` per platform, the published iteration,
//! the gate's refusals and links to each report and model copy.
//!
//! Pure in the middle: [`summarise`] turns what the store holds (the reports, the index) into a
//! [`Dashboard`], and [`page::render`] turns that into HTML. The reading and the conditional
//! write are at the edge ([`store::refresh`]). The page is a function of the store's content
//! alone: no clock, not even the reports' `generatedAt` (a redelivery rewrites the report with
//! a new one), so a redelivered notification renders the same bytes and writes nothing.

pub mod page;
pub mod store;

use std::collections::BTreeMap;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::report::{Miss, Report};
use crate::model_store::ModelIndex;

pub use store::{is_current, refresh, DashboardError, Refreshed};

pub use crate::naming::stored::{dashboard_path as path, DASHBOARD_FILE};

/// The status of a row that comes from the index alone.
pub const NO_REPORT: &str = "noReport";

/// Everything the page shows, in display order.
#[derive(Debug, Clone, PartialEq)]
pub struct Dashboard {
    pub project_id: String,
    /// Oldest first: by `trainedAt`, then creation, then id.
    pub iterations: Vec<IterationRow>,
    /// Per platform, from the index.
    pub latest: Vec<LatestRow>,
    /// The newest iteration whose report records a publish.
    pub published: Option<Published>,
    /// The bars of the newest report with a publish step, drawn on the chart.
    pub bars: Option<(f64, f64)>,
    /// Report blobs that could not be read as reports: shown, not dropped.
    pub unreadable: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IterationRow {
    pub iteration_id: String,
    pub name: String,
    pub trained_at: Option<String>,
    /// `TrainingCompleted` or `TrainingFailed`; [`NO_REPORT`] for a copy with no report.
    pub status: String,
    pub figures: Option<Point>,
    pub gate: Gate,
    /// Platforms this iteration is `latest` for.
    pub latest_for: Vec<String>,
    /// Its copies in the model store: (platform, path in the container).
    pub copies: Vec<(String, String)>,
}

/// One iteration's overall figures, fractions in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub precision: f64,
    pub recall: f64,
    pub average_precision: Option<f64>,
}

/// What the quality gate decided for an iteration, from its report.
#[derive(Debug, Clone, PartialEq)]
pub enum Gate {
    /// No publish step ran (no `PUBLISH_NAME`, or no figures).
    None,
    Published {
        name: String,
    },
    Refused {
        name: String,
        missed: Vec<Miss>,
    },
    Failed {
        name: String,
        detail: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct LatestRow {
    pub platform: String,
    pub iteration_id: String,
    /// The iteration's name, when its report is there.
    pub name: Option<String>,
    pub path: String,
    pub alias: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub iteration_id: String,
    pub name: String,
    pub publish_name: String,
}

/// The dashboard of what the store holds: the project's reports (any order) and its index.
pub fn summarise(
    project_id: &str,
    reports: &[Report],
    index: Option<&ModelIndex>,
    unreadable: Vec<String>,
) -> Dashboard {
    let mut copies: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
    let mut latest_for: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    if let Some(index) = index {
        for m in &index.models {
            copies
                .entry(m.iteration_id.as_str())
                .or_default()
                .push((m.platform.clone(), m.path.clone()));
        }
        for (platform, l) in &index.latest {
            latest_for
                .entry(l.iteration_id.as_str())
                .or_default()
                .push(platform.clone());
        }
    }
    let mut ordered: Vec<&Report> = reports.iter().collect();
    ordered.sort_by_key(|r| order_key(r));
    let mut iterations: Vec<IterationRow> = ordered
        .iter()
        .map(|r| {
            let iteration = r.iteration.as_ref();
            let mut row_copies = copies.remove(r.iteration_id.as_str()).unwrap_or_default();
            row_copies.sort();
            IterationRow {
                iteration_id: r.iteration_id.clone(),
                name: iteration
                    .map(|i| i.name.clone())
                    .unwrap_or_else(|| r.iteration_id.clone()),
                trained_at: iteration.and_then(|i| i.trained_at.clone()),
                status: r.status.clone(),
                figures: r.performance.as_ref().map(|f| Point {
                    precision: f.precision,
                    recall: f.recall,
                    average_precision: f.average_precision,
                }),
                gate: gate(r),
                latest_for: latest_for
                    .get(r.iteration_id.as_str())
                    .cloned()
                    .unwrap_or_default(),
                copies: row_copies,
            }
        })
        .collect();
    // Copies of iterations with no report (exported before the automation was on): rows
    // without figures, at the start, oldest first as the index orders them.
    let mut unreported: Vec<IterationRow> = Vec::new();
    for m in index
        .map(|i| i.models.as_slice())
        .unwrap_or_default()
        .iter()
        .rev()
    {
        let Some(mut row_copies) = copies.remove(m.iteration_id.as_str()) else {
            continue;
        };
        row_copies.sort();
        unreported.push(IterationRow {
            iteration_id: m.iteration_id.clone(),
            name: m.iteration_id.clone(),
            trained_at: None,
            status: NO_REPORT.into(),
            figures: None,
            gate: Gate::None,
            latest_for: latest_for
                .get(m.iteration_id.as_str())
                .cloned()
                .unwrap_or_default(),
            copies: row_copies,
        });
    }
    unreported.append(&mut iterations);
    let iterations = unreported;
    let name_of = |id: &str| {
        iterations
            .iter()
            .find(|i| i.iteration_id == id && i.status != NO_REPORT)
            .map(|i| i.name.clone())
    };
    let latest = index
        .map(|index| {
            index
                .latest
                .iter()
                .map(|(platform, l)| LatestRow {
                    platform: platform.clone(),
                    iteration_id: l.iteration_id.clone(),
                    name: name_of(&l.iteration_id),
                    path: l.path.clone(),
                    alias: l.alias.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    let published = iterations.iter().rev().find_map(|i| match &i.gate {
        Gate::Published { name } => Some(Published {
            iteration_id: i.iteration_id.clone(),
            name: i.name.clone(),
            publish_name: name.clone(),
        }),
        _ => None,
    });
    let bars = ordered
        .iter()
        .rev()
        .find_map(|r| r.publish.as_ref())
        .map(|p| (p.min_precision, p.min_recall));
    Dashboard {
        project_id: project_id.to_string(),
        iterations,
        latest,
        published,
        bars,
        unreadable,
    }
}

/// Training order: `trainedAt` (a failed training has none: its creation instead), then the
/// id, so equal times still give one order.
fn order_key(r: &Report) -> (Option<OffsetDateTime>, String) {
    let at = r.iteration.as_ref().and_then(|i| {
        i.trained_at
            .as_deref()
            .or(i.created.as_deref())
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
    });
    (at, r.iteration_id.clone())
}

fn gate(r: &Report) -> Gate {
    match r.publish.as_ref() {
        Some(p) => match p.outcome.as_str() {
            "published" | "alreadyPublished" => Gate::Published {
                name: p.name.clone(),
            },
            "belowBar" => Gate::Refused {
                name: p.name.clone(),
                missed: p.missed.clone(),
            },
            _ => Gate::Failed {
                name: p.name.clone(),
                detail: p.detail.clone().unwrap_or_else(|| p.outcome.clone()),
            },
        },
        // Published by hand, or before the gate was configured: GetIteration said so.
        None => match r.iteration.as_ref().and_then(|i| i.publish_name.clone()) {
            Some(name) => Gate::Published { name },
            None => Gate::None,
        },
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::automation::report::*;
    use crate::model_store::index::IndexEntry;

    pub use crate::domain::examples::PROJECT as P;

    pub fn report(id: &str, name: &str, trained_at: &str, figures: (f64, f64)) -> Report {
        Report {
            project_id: P.into(),
            iteration_id: id.into(),
            status: "TrainingCompleted".into(),
            generated_at: format!("{trained_at}+gen"),
            iteration: Some(IterationSummary {
                name: name.into(),
                status: "Completed".into(),
                trained_at: Some(trained_at.into()),
                created: None,
                domain_id: None,
                classification_type: None,
                training_type: None,
                exportable: true,
                exportable_to: vec!["ONNX".into()],
                publish_name: None,
            }),
            performance: Some(Figures {
                threshold: 0.5,
                overlap_threshold: None,
                precision: figures.0,
                recall: figures.1,
                average_precision: Some((figures.0 + figures.1) / 2.0),
                precision_std_deviation: 0.0,
                recall_std_deviation: 0.0,
                per_tag: vec![],
            }),
            previous: None,
            exports: vec![],
            publish: None,
            notes: vec![],
        }
    }

    pub fn publish(outcome: &str, missed: Vec<Miss>) -> Option<PublishLine> {
        Some(PublishLine {
            name: "prod".into(),
            outcome: outcome.into(),
            min_precision: 0.9,
            min_recall: 0.85,
            missed,
            detail: None,
        })
    }

    pub fn index(entries: &[(&str, &str)]) -> ModelIndex {
        let mut index = ModelIndex::empty(crate::domain::ProjectId::parse(P).unwrap());
        for (n, (iteration, platform)) in entries.iter().enumerate() {
            index.upsert(
                IndexEntry {
                    iteration_id: iteration.to_string(),
                    platform: platform.to_string(),
                    path: format!("{P}/{iteration}/{platform}/{P} - {iteration}.{platform}"),
                    extension: "zip".into(),
                    size: Some(1),
                    content_md5: None,
                    time: format!("2026-11-0{}T00:00:00Z", n + 1),
                    ordered_by: "trainedAt".into(),
                    source: "c/b".into(),
                },
                true,
            );
        }
        index
    }

    /// Two iterations, the second refused by the gate, both exported to ONNX: the second is
    /// `latest` (trained later), the first is published.
    pub fn two() -> (Vec<Report>, ModelIndex) {
        let a = crate::domain::examples::ITERATION;
        let b = "2b2c3d4e-5f60-4172-8394-a5b6c7d8e9f0";
        let mut first = report(a, "Iteration 1", "2026-11-01T10:00:00Z", (0.93, 0.89));
        first.publish = publish("published", vec![]);
        let mut second = report(b, "Iteration 2", "2026-11-02T10:00:00Z", (0.81, 0.9));
        second.publish = publish(
            "belowBar",
            vec![Miss {
                figure: "precision".into(),
                value: 0.81,
                min: 0.9,
                by: 0.09,
            }],
        );
        // Given newest first: the order comes from trainedAt, not from the listing.
        (vec![second, first], index(&[(a, "ONNX"), (b, "ONNX")]))
    }

    #[test]
    fn iterations_in_training_order_with_latest_published_and_refused() {
        let (reports, index) = two();
        let d = summarise(P, &reports, Some(&index), vec![]);
        let names: Vec<_> = d.iterations.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["Iteration 1", "Iteration 2"]);
        assert_eq!(d.latest.len(), 1);
        assert_eq!(d.latest[0].name.as_deref(), Some("Iteration 2"));
        assert_eq!(d.iterations[1].latest_for, ["ONNX"]);
        assert!(d.iterations[0].latest_for.is_empty());
        let published = d.published.expect("published");
        assert_eq!(published.name, "Iteration 1");
        assert_eq!(published.publish_name, "prod");
        assert!(
            matches!(&d.iterations[1].gate, Gate::Refused { missed, .. } if missed[0].figure == "precision")
        );
        assert_eq!(d.iterations[0].copies.len(), 1);
        assert_eq!(d.bars, Some((0.9, 0.85)));
    }

    #[test]
    fn the_same_store_gives_the_same_dashboard_whatever_the_listing_order() {
        let (mut reports, index) = two();
        let one = summarise(P, &reports, Some(&index), vec![]);
        reports.reverse();
        assert_eq!(one, summarise(P, &reports, Some(&index), vec![]));
    }

    #[test]
    fn without_an_index_there_is_no_latest_and_a_failed_training_has_no_figures() {
        let (mut reports, _) = two();
        reports[0].status = "TrainingFailed".into();
        reports[0].performance = None;
        reports[0].publish = None;
        let d = summarise(P, &reports, None, vec!["reports/x/y.json".into()]);
        assert!(d.latest.is_empty());
        assert_eq!(d.iterations[1].figures, None);
        assert_eq!(d.iterations[1].gate, Gate::None);
        assert_eq!(d.unreadable.len(), 1);
    }

    #[test]
    fn a_copy_without_a_report_still_has_its_row() {
        let (reports, _) = two();
        let older = "0b2c3d4e-5f60-4172-8394-a5b6c7d8e9f0";
        let d = summarise(P, &reports, Some(&index(&[(older, "ONNX")])), vec![]);
        assert_eq!(d.iterations.len(), 3);
        assert_eq!(d.iterations[0].iteration_id, older);
        assert_eq!(d.iterations[0].figures, None);
        assert_eq!(d.iterations[0].latest_for, ["ONNX"]);
        assert_eq!(d.iterations[0].copies.len(), 1);
    }
}
