//! `ExportCompleted`: an export finished. On success the backup blob is copied into the model
//! store and/or tagged in place ([`crate::export`]); on failure, a warning and nothing touched.

use super::{FunctionError, Invocation};
use crate::envelope::InvocationResponse;
use crate::export::ExportProcessor;
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
    // The server redacts a SAS in the URL; the URL itself says where the service wrote.
    let hint = model_uri
        .as_ref()
        .map(|u| format!(", modelUri {u}"))
        .unwrap_or_default();
    response = response.log(format!(
        "export of project {project_id} iteration {iteration_id} completed{hint}"
    ));
    let app = invocation.app;
    let processor = ExportProcessor {
        settings: &app.settings,
        account: &app.account,
    };
    let outcomes = processor
        .process(project_id, iteration_id, model_uri.as_ref())
        .await
        .map_err(|e| FunctionError::Transient(e.to_string()))?;
    for outcome in outcomes {
        response = response.log(outcome.to_string());
    }
    Ok(response)
}
