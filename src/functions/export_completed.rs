//! `ExportCompleted`: an export finished. On success the backup blob is copied into the model
//! store and/or tagged in place ([`crate::export`]); on failure, a warning and nothing touched.

use super::events_out::Emitter;
use super::{FunctionError, Invocation};
use crate::envelope::InvocationResponse;
use crate::events::Fact;
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
    let mut emitter = Emitter::new(invocation);
    if status == ExportStatus::Failed {
        emitter.failure(Fact::ExportFailed {
            project_id: project_id.to_string(),
            iteration_id: iteration_id.to_string(),
        })?;
        return Ok(emitter.into_response(response.log(format!(
            "warning: export of project {project_id} iteration {iteration_id} failed; no blob touched"
        ))));
    }
    let hint = model_uri
        .as_deref()
        .map(|u| format!(", modelUri {}", without_credentials(u)))
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
            // After the change, from what it did: the host writes them only if this answer
            // is a success, so no event leaves without its change.
            emitter.export(&report.outcomes).await?;
            for line in report.lines {
                response = response.log(line);
            }
            // With the training automation on, the project's dashboard shows `latest` and the
            // copies: rewritten (when it changed) now that they may have.
            if app.training.is_some() {
                let store = app.account.container(&app.settings.model_store_container)?;
                let refreshed = crate::automation::dashboard::refresh(&store, project_id)
                    .await
                    .map_err(crate::automation::AutomationError::from)?;
                if refreshed == crate::automation::dashboard::Refreshed::Written {
                    response = response.log(format!(
                        "dashboard written: {}",
                        crate::automation::dashboard::path(project_id)
                    ));
                }
            }
            Ok(emitter.into_response(response))
        }
        Err(e) if e.retry_later() => Err(e.into()),
        Err(e) => {
            // What was logged before the verdict stays with it.
            let mut rejected = invocation.reject(&text, &e.to_string());
            rejected.logs.splice(0..0, response.logs);
            Ok(rejected)
        }
    }
}

/// A `modelUri` as a log line may show it: no query (a SAS), no fragment, no `user:pass@`, so
/// a credential never reaches a log line, redacted or not.
fn without_credentials(uri: &str) -> String {
    match url::Url::parse(uri) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.set_fragment(None);
            url.to_string()
        }
        Err(_) => "(not a URL)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logged_model_uri_carries_no_credential() {
        for (uri, shown) in [
            (
                "https://a.blob.core.windows.net/c/m.zip?sv=1&sig=SECRET",
                "https://a.blob.core.windows.net/c/m.zip",
            ),
            (
                "https://user:SECRET@a.blob.core.windows.net/c/m.zip#SECRET",
                "https://a.blob.core.windows.net/c/m.zip",
            ),
            ("not a url SECRET", "(not a URL)"),
        ] {
            assert_eq!(without_credentials(uri), shown);
        }
    }
}
