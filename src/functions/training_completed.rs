//! `TrainingCompleted`: a training finished, well or badly.
//!
//! The follow-up automation (report, export, publish through the Training API) plugs in at
//! [`act`]: it receives the validated event and returns log lines or a transient error.

use super::{FunctionError, Invocation};
use crate::envelope::InvocationResponse;
use crate::notification::{IterationId, Notification, ProjectId, TrainingStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrainingEvent {
    pub project_id: ProjectId,
    pub iteration_id: IterationId,
    pub status: TrainingStatus,
}

pub fn handle(invocation: &Invocation) -> Result<InvocationResponse, FunctionError> {
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
    let logs = act(&event)?;
    Ok(InvocationResponse {
        logs,
        ..Default::default()
    })
}

/// A failed training is the user's news, not this function's failure: a warning, answered 200.
fn act(event: &TrainingEvent) -> Result<Vec<String>, FunctionError> {
    let (project_id, iteration_id, status) =
        (event.project_id, event.iteration_id, event.status.as_str());
    let line = format!("training of project {project_id} iteration {iteration_id}: {status}");
    Ok(vec![match event.status {
        TrainingStatus::Completed => line,
        TrainingStatus::Failed => format!("warning: {line}"),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::test_support::{app, request};
    use crate::functions::REJECTED_OUTPUT;

    fn run(message: &str) -> InvocationResponse {
        let app = app();
        let req = request(message);
        handle(&Invocation {
            app: &app,
            function: "TrainingCompleted",
            request: &req,
        })
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
