//! `ExportCompleted`: an export finished. On success the backup blob is copied into the model
//! store and/or tagged in place ([`crate::export`]); on failure, a warning and nothing touched.

use super::{reject, App, FunctionError};
use crate::envelope::{InvocationRequest, InvocationResponse, TRIGGER_BINDING};
use crate::export::ExportProcessor;
use crate::notification::{ExportStatus, Notification};

const NAME: &str = "ExportCompleted";

pub async fn handle(
    app: &App,
    request: &InvocationRequest,
) -> Result<InvocationResponse, FunctionError> {
    let text = request.message_text(TRIGGER_BINDING)?;
    let (project_id, iteration_id, status, model_uri) = match Notification::parse(&text) {
        Ok(Notification::Export {
            project_id,
            iteration_id,
            status,
            model_uri,
        }) => (project_id, iteration_id, status, model_uri),
        Ok(other) => {
            let reason = format!("expected an Export notification, got {}", other.kind());
            return Ok(reject(NAME, &text, &reason));
        }
        Err(e) => return Ok(reject(NAME, &text, &e.to_string())),
    };
    if status == ExportStatus::Failed {
        tracing::warn!(%project_id, %iteration_id, "export failed; no blob touched");
        return Ok(InvocationResponse::default().log(format!(
            "export of project {project_id} iteration {iteration_id} failed; no blob touched"
        )));
    }
    // The log writer redacts a SAS in the URL; the URL itself says where the service wrote.
    let model_uri_text = model_uri
        .as_ref()
        .map(|u| u.to_string())
        .unwrap_or_default();
    tracing::info!(%project_id, %iteration_id, model_uri = %model_uri_text, "export completed");
    let processor = ExportProcessor {
        settings: &app.settings,
        account: &app.account,
    };
    let outcomes = processor
        .process(project_id, iteration_id, model_uri.as_ref())
        .await
        .map_err(|e| FunctionError::Transient(e.to_string()))?;
    let mut response = InvocationResponse::default();
    for outcome in outcomes {
        tracing::info!(%project_id, %iteration_id, "{outcome}");
        response = response.log(outcome.to_string());
    }
    Ok(response)
}
