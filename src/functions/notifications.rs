//! `Notifications`: the one consumer of the project's notification queue. Validates each
//! message and routes it: a queue delivers a message to one consumer only, so separate
//! functions on the same queue would each lose the other's messages.

use super::{reject, FunctionError, EXPORT_OUTPUT, TRAINING_OUTPUT};
use crate::envelope::{InvocationRequest, InvocationResponse, TRIGGER_BINDING};
use crate::notification::Notification;

const NAME: &str = "Notifications";

/// Where a notification goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Logged and answered: nothing else to do.
    Acknowledge(String),
    /// Forwarded, in canonical form, to an output binding.
    Forward(&'static str),
}

pub fn route(notification: &Notification) -> Route {
    match notification {
        Notification::ConnectionTest { project_id } => {
            Route::Acknowledge(format!("ConnectionTest from project {project_id}"))
        }
        Notification::Training { .. } => Route::Forward(TRAINING_OUTPUT),
        Notification::Export { .. } => Route::Forward(EXPORT_OUTPUT),
    }
}

pub fn handle(request: &InvocationRequest) -> Result<InvocationResponse, FunctionError> {
    let text = request.message_text(TRIGGER_BINDING)?;
    let notification = match Notification::parse(&text) {
        Ok(n) => n,
        Err(e) => return Ok(reject(NAME, &text, &e.to_string())),
    };
    let response = InvocationResponse::default();
    Ok(match route(&notification) {
        Route::Acknowledge(line) => {
            tracing::info!(project_id = %notification.project_id(), "{line}");
            response.log(line)
        }
        Route::Forward(binding) => {
            tracing::info!(
                project_id = %notification.project_id(),
                kind = notification.kind(),
                binding,
                "notification routed"
            );
            response
                .log(format!(
                    "{} notification for project {} routed to {binding}",
                    notification.kind(),
                    notification.project_id()
                ))
                .output(binding, notification.to_canonical_json())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::REJECTED_OUTPUT;
    use serde_json::json;

    const P: &str = "9a8b7c6d-1234-4e5f-8a9b-0c1d2e3f4a5b";
    const I: &str = "1b2c3d4e-5f60-4172-8394-a5b6c7d8e9f0";

    fn request(message: &str) -> InvocationRequest {
        // As the host sends it: the message text JSON-encoded twice.
        let once = serde_json::to_string(message).unwrap();
        serde_json::from_value(json!({"Data": {"notification": once}})).unwrap()
    }

    #[test]
    fn connection_test_is_acknowledged_without_outputs() {
        let msg = format!(
            r#"{{"version":"1.0","type":"ConnectionTest","Content":{{"projectId":"{P}"}}}}"#
        );
        let r = handle(&request(&msg)).unwrap();
        assert!(r.outputs.is_empty());
        assert!(r.logs[0].contains(P));
    }

    #[test]
    fn training_and_export_are_forwarded_canonically() {
        for (kind, status_field, status, binding) in [
            (
                "Training",
                "trainingStatus",
                "TrainingFailed",
                TRAINING_OUTPUT,
            ),
            ("Export", "exportStatus", "ExportCompleted", EXPORT_OUTPUT),
        ] {
            // Flat shape, odd key case: the forwarded message is the canonical nested one.
            let msg = format!(
                r#"{{"VERSION":"1.0","type":"{kind}","projectId":"{P}","iterationId":"{I}","{status_field}":"{status}"}}"#
            );
            let r = handle(&request(&msg)).unwrap();
            assert_eq!(r.outputs.len(), 1, "{kind}");
            let out = &r.outputs[binding];
            assert_eq!(out["type"], kind);
            assert_eq!(out["Content"]["projectId"], P);
            assert_eq!(out["Content"][status_field], status);
        }
    }

    #[test]
    fn malformed_messages_are_rejected_with_reason_and_original_text() {
        for (msg, reason) in [
            ("garbage", "neither JSON nor base64"),
            (
                r#"{"type":"Training","Content":{"projectId":"nope"}}"#,
                "not a GUID",
            ),
            (
                r#"{"version":"3.0","type":"Training"}"#,
                "unsupported notification version",
            ),
        ] {
            let r = handle(&request(msg)).unwrap();
            let rejected = &r.outputs[REJECTED_OUTPUT];
            assert!(
                rejected["reason"].as_str().unwrap().contains(reason),
                "{rejected}"
            );
            assert_eq!(rejected["message"], msg);
            assert_eq!(rejected["function"], "Notifications");
            assert!(rejected["receivedAt"].as_str().unwrap().ends_with('Z'));
        }
    }

    #[test]
    fn a_request_without_the_binding_is_an_error() {
        let req: InvocationRequest = serde_json::from_value(json!({"Data": {}})).unwrap();
        assert!(matches!(handle(&req), Err(FunctionError::Envelope(_))));
    }
}
