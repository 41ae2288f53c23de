//! The training report: what a finished training produced, as JSON for machines and (see
//! [`super::html`]) as a static page for people. Written to the model store at
//! `reports/{projectId}/{iterationId}.json` and `.html`.

use serde::{Deserialize, Serialize};

use crate::training::{Iteration, IterationPerformance};

// The names are defined in `naming::stored`; here under the names this module's users know.
pub use crate::naming::stored::{
    report_html_path as html_path, report_json_path as json_path, TRAINED_AT_KEY,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub project_id: String,
    pub iteration_id: String,
    /// `TrainingCompleted` or `TrainingFailed`, as the notification said.
    pub status: String,
    pub generated_at: String,
    pub iteration: Option<IterationSummary>,
    pub performance: Option<Figures>,
    /// The figures of the newest earlier iteration with a report, to compare with.
    pub previous: Option<Previous>,
    pub exports: Vec<ExportLine>,
    pub publish: Option<PublishLine>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IterationSummary {
    pub name: String,
    pub status: String,
    pub trained_at: Option<String>,
    pub created: Option<String>,
    pub domain_id: Option<String>,
    pub classification_type: Option<String>,
    pub training_type: Option<String>,
    pub exportable: bool,
    pub exportable_to: Vec<String>,
    pub publish_name: Option<String>,
}

impl IterationSummary {
    pub fn of(iteration: &Iteration) -> Self {
        let time = |t: Option<time::OffsetDateTime>| {
            t.and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
        };
        Self {
            name: iteration.name.clone(),
            status: iteration.status.clone(),
            trained_at: time(iteration.trained_at),
            created: time(iteration.created),
            domain_id: iteration.domain_id.map(|d| d.to_string()),
            classification_type: iteration
                .classification_type
                .map(|c| c.as_str().to_string()),
            training_type: iteration.training_type.clone(),
            exportable: iteration.exportable,
            exportable_to: iteration
                .exportable_to
                .iter()
                .map(|p| p.as_str().to_string())
                .collect(),
            publish_name: iteration.publish_name.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    pub threshold: f64,
    pub overlap_threshold: Option<f64>,
    pub precision: f64,
    pub recall: f64,
    pub average_precision: Option<f64>,
    pub precision_std_deviation: f64,
    pub recall_std_deviation: f64,
    pub per_tag: Vec<TagFigures>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagFigures {
    pub id: String,
    pub name: String,
    pub precision: f64,
    pub recall: f64,
    pub average_precision: Option<f64>,
}

impl Figures {
    pub fn of(p: &IterationPerformance, threshold: f64, overlap_threshold: Option<f64>) -> Self {
        Self {
            threshold,
            overlap_threshold,
            precision: p.precision,
            recall: p.recall,
            average_precision: p.average_precision,
            precision_std_deviation: p.precision_std_deviation,
            recall_std_deviation: p.recall_std_deviation,
            per_tag: p
                .per_tag_performance
                .iter()
                .map(|t| TagFigures {
                    id: t.id.to_string(),
                    name: t.name.clone(),
                    precision: t.precision,
                    recall: t.recall,
                    average_precision: t.average_precision,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Previous {
    pub iteration_id: String,
    pub name: String,
    pub trained_at: Option<String>,
    pub figures: Figures,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportLine {
    pub platform: String,
    pub flavor: Option<String>,
    /// `requested`, `alreadyExporting`, `alreadyDone`, `notExportable`, `failed`.
    pub outcome: String,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishLine {
    pub name: String,
    /// `published`, `alreadyPublished`, `belowBar`, `failed`.
    pub outcome: String,
    pub min_precision: f64,
    pub min_recall: f64,
    /// Each figure under its bar, and by how much.
    pub missed: Vec<Miss>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Miss {
    pub figure: String,
    pub value: f64,
    pub min: f64,
    pub by: f64,
}

impl std::fmt::Display for Miss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {:.4} is {:.4} under the bar of {:.4}",
            self.figure, self.value, self.by, self.min
        )
    }
}

/// The figures under their bars (precision, then recall), each with its shortfall.
pub fn misses(figures: &Figures, min_precision: f64, min_recall: f64) -> Vec<Miss> {
    [
        ("precision", figures.precision, min_precision),
        ("recall", figures.recall, min_recall),
    ]
    .into_iter()
    .filter(|(_, value, min)| value < min)
    .map(|(figure, value, min)| Miss {
        figure: figure.to_string(),
        value,
        min,
        by: min - value,
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(precision: f64, recall: f64) -> Figures {
        Figures {
            threshold: 0.5,
            overlap_threshold: None,
            precision,
            recall,
            average_precision: None,
            precision_std_deviation: 0.0,
            recall_std_deviation: 0.0,
            per_tag: vec![],
        }
    }

    #[test]
    fn the_bar_says_which_figure_missed_and_by_how_much() {
        assert!(
            misses(&figures(0.95, 0.9), 0.9, 0.9).is_empty(),
            "at the bar passes"
        );
        let m = misses(&figures(0.85, 0.7), 0.9, 0.75);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].figure, "precision");
        assert!((m[0].by - 0.05).abs() < 1e-9);
        assert_eq!(
            m[1].to_string(),
            "recall 0.7000 is 0.0500 under the bar of 0.7500"
        );
    }
}
