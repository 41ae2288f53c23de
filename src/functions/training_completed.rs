//! `TrainingCompleted`: a training finished, well or badly. With the Training API configured,
//! the automation ([`crate::automation`]: report, exports, publish) acts on the validated
//! event; without it, the event is a log line.

use super::{FunctionError, Invocation};
use crate::domain::{IterationId, ProjectId};
use crate::envelope::InvocationResponse;
use crate::notification::{Notification, TrainingStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrainingEvent {
    pub project_id: ProjectId,
    pub iteration_id: IterationId,
    pub status: TrainingStatus,
}

pub async fn handle(invocation: &Invocation<'_>) -> Result<InvocationResponse, FunctionError> {
    let text = invocation.message_text()?;
    let event = match Notification::parse(&text) {
        Ok(Notification::Training {
            project_id,
            iteration_id,
            status,
        }) => TrainingEvent {
            project_id,
            iteration_id,
            status,
        },
        Ok(other) => {
            let reason = format!("expected a Training notification, got {}", other.kind());
            return Ok(invocation.reject(&text, &reason));
        }
        Err(e) => return Ok(invocation.reject(&text, &e.to_string())),
    };
    let logs = act(invocation, &event).await?;
    Ok(InvocationResponse {
        logs,
        ..Default::default()
    })
}

/// With the Training API configured: the report, the exports and the publish
/// ([`crate::automation`]). Without it, a log line.
async fn act(
    invocation: &Invocation<'_>,
    event: &TrainingEvent,
) -> Result<Vec<String>, FunctionError> {
    let app = invocation.app;
    let Some(client) = &app.training else {
        return Ok(log_only(event));
    };
    let store = app.account.container(&app.settings.model_store_container)?;
    let automation = crate::automation::Automation {
        client,
        settings: &app.settings.automation,
        store: &store,
    };
    automation
        .after_training(event.project_id, event.iteration_id, event.status)
        .await
        .map_err(FunctionError::from)
}

/// A failed training is the user's news, not this function's failure: a warning, answered 200.
fn log_only(event: &TrainingEvent) -> Vec<String> {
    let (project_id, iteration_id, status) =
        (event.project_id, event.iteration_id, event.status.as_str());
    let line = format!("training of project {project_id} iteration {iteration_id}: {status}");
    vec![match event.status {
        TrainingStatus::Completed => line,
        TrainingStatus::Failed => format!("warning: {line}"),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::test_support::{app, request};
    use crate::functions::REJECTED_OUTPUT;

    fn run(message: &str) -> InvocationResponse {
        let app = app();
        let req = request(message);
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(handle(&Invocation {
                app: &app,
                function: crate::functions::Function::TrainingCompleted,
                request: &req,
            }))
            .unwrap()
    }

    #[test]
    fn both_statuses_are_answered_without_outputs() {
        for status in ["TrainingCompleted", "TrainingFailed"] {
            let msg = format!(
                r#"{{"type":"Training","Content":{{"projectId":"9a8b7c6d-1234-4e5f-8a9b-0c1d2e3f4a5b","iterationId":"1b2c3d4e-5f60-4172-8394-a5b6c7d8e9f0","trainingStatus":"{status}"}}}}"#
            );
            let r = run(&msg);
            assert!(r.outputs.is_empty());
            assert!(r.logs[0].ends_with(status));
        }
    }

    #[test]
    fn other_kinds_are_rejected() {
        let msg = r#"{"type":"ConnectionTest","Content":{"projectId":"9a8b7c6d-1234-4e5f-8a9b-0c1d2e3f4a5b"}}"#;
        let r = run(msg);
        assert!(r.outputs[REJECTED_OUTPUT]["reason"]
            .as_str()
            .unwrap()
            .contains("expected a Training notification"));
    }
}
