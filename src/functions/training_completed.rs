//! `TrainingCompleted`: a training finished, well or badly. With the Training API configured,
//! the automation ([`crate::automation`]: report, exports, publish) acts on the validated
//! event; without it, the event is a log line.

use super::events_out::Emitter;
use super::{FunctionError, Invocation};
use crate::automation::TrainingOutcome;
use crate::domain::{IterationId, ProjectId};
use crate::envelope::InvocationResponse;
use crate::events::Fact;
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
    let (logs, outcome) = act(invocation, &event).await?;
    let mut emitter = Emitter::new(invocation);
    if event.status == TrainingStatus::Failed {
        emitter.failure(Fact::TrainingFailed {
            project_id: event.project_id.to_string(),
            iteration_id: event.iteration_id.to_string(),
        })?;
    }
    if let Some(outcome) = &outcome {
        emitter.training(outcome)?;
    }
    Ok(emitter.into_response(InvocationResponse {
        logs,
        ..Default::default()
    }))
}

/// With the Training API configured: the report, the exports and the publish
/// ([`crate::automation`]). Without it, a log line.
async fn act(
    invocation: &Invocation<'_>,
    event: &TrainingEvent,
) -> Result<(Vec<String>, Option<TrainingOutcome>), FunctionError> {
    let app = invocation.app;
    let Some(client) = &app.training else {
        return Ok((log_only(event), None));
    };
    let store = app.account.container(&app.settings.model_store_container)?;
    let automation = crate::automation::Automation {
        client,
        settings: &app.settings.automation,
        store: &store,
    };
    let outcome = automation
        .after_training(event.project_id, event.iteration_id, event.status)
        .await
        .map_err(FunctionError::from)?;
    Ok((outcome.logs.clone(), Some(outcome)))
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
    use crate::domain::examples::{ITERATION as I, PROJECT as P};
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
    fn both_statuses_are_logged_and_a_failure_is_an_event() {
        for status in ["TrainingCompleted", "TrainingFailed"] {
            let msg = format!(
                r#"{{"type":"Training","Content":{{"projectId":"{P}","iterationId":"{I}","trainingStatus":"{status}"}}}}"#
            );
            let r = run(&msg);
            assert!(r.logs[0].ends_with(status));
            if status == "TrainingCompleted" {
                assert!(r.outputs.is_empty(), "no Training API: nothing changed");
                continue;
            }
            let events = r.outputs[crate::functions::EVENTS_OUTPUT]
                .as_array()
                .unwrap();
            assert_eq!(events.len(), 1);
            let event = &events[0]["event"];
            assert_eq!(event["type"], "CustomVisionEvents.TrainingFailed");
            assert_eq!(event["subject"], format!("projects/{P}/iterations/{I}"));
            // The message's insertion time, never the time of sending.
            assert_eq!(event["time"], "2026-01-01T10:00:00Z");
        }
    }

    #[test]
    fn other_kinds_are_rejected() {
        let msg = format!(r#"{{"type":"ConnectionTest","Content":{{"projectId":"{P}"}}}}"#);
        let r = run(&msg);
        assert!(r.outputs[REJECTED_OUTPUT]["reason"]
            .as_str()
            .unwrap()
            .contains("expected a Training notification"));
    }
}
