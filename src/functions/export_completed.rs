//! `ExportCompleted`: an export finished. On success the backup blob is copied into the model
//! store and/or tagged in place ([`crate::export`]); on failure, a warning and nothing touched.

use super::{FunctionError, Invocation};
use crate::envelope::InvocationResponse;
use crate::export::{ExportError, ExportProcessor};
use crate::notification::{ExportStatus, Notification};

pub async fn handle(invocation: &Invocation<'_>) -> Result<InvocationResponse, FunctionError> {
    let text = invocation.message_text()?;
    let parsed = match Notification::parse_with_warnings(&text) {
        Ok(p) => p,
        Err(e) => return Ok(invocation.reject(&text, &e.to_string())),
    };
    let mut response = InvocationResponse::default();
    for warning in &parsed.warnings {
        response = response.log(format!("warning: {warning}"));
    }
    let (project_id, iteration_id, status, model_uri) = match parsed.notification {
        Notification::Export {
            project_id,
            iteration_id,
            status,
            model_uri,
        } => (project_id, iteration_id, status, model_uri),
        other => {
            let reason = format!("expected an Export notification, got {}", other.kind());
            return Ok(invocation.reject(&text, &reason));
        }
    };
    if status == ExportStatus::Failed {
        return Ok(response.log(format!(
            "warning: export of project {project_id} iteration {iteration_id} failed; no blob touched"
        )));
    }
    // Without its query: a SAS never reaches a log line, redacted or not.
    let hint = model_uri
        .as_deref()
        .map(|u| {
            format!(
                ", modelUri {}",
                u.split(['?', '#']).next().unwrap_or_default()
            )
        })
        .unwrap_or_default();
    response = response.log(format!(
        "export of project {project_id} iteration {iteration_id} completed{hint}"
    ));
    let app = invocation.app;
    let processor = ExportProcessor {
        settings: &app.settings,
        account: &app.account,
        training: app.training.as_ref(),
    };
    match processor
        .process(project_id, iteration_id, model_uri.as_deref())
        .await
    {
        Ok(report) => {
            for line in report.lines {
                response = response.log(line);
            }
            Ok(response)
        }
        Err(ExportError::Rejected { reason }) => Ok(invocation.reject(&text, &reason)),
        Err(e) => Err(FunctionError::Transient(e.to_string())),
    }
}
