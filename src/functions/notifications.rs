//! `Notifications`: the one consumer of the project's notification queue. Validates each
//! message and routes it: a queue delivers a message to one consumer only, so separate
//! functions on the same queue would each lose the other's messages.

use super::connection_test::ConnectionTestRecord;
use super::outputs::fits_queue;
use super::{FunctionError, Invocation, CONNECTION_TEST_OUTPUT, EXPORT_OUTPUT, TRAINING_OUTPUT};
use crate::envelope::InvocationResponse;
use crate::notification::Notification;

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

/// The forwarded form must fit one queue message. Only a `modelUri` can make it large (a URL
/// re-encodes longer than it came); it is a hint, so it is dropped rather than the message.
fn bounded(notification: Notification, warnings: &mut Vec<String>) -> Notification {
    if fits_queue(&notification.to_canonical_json()) {
        return notification;
    }
    warnings.push(
        "the modelUri is too long to forward in one queue message; the hint is dropped".into(),
    );
    notification.without_model_uri()
}

pub fn handle(invocation: &Invocation) -> Result<InvocationResponse, FunctionError> {
    let text = invocation.message_text()?;
    let parsed = match Notification::parse_with_warnings(&text) {
        Ok(p) => p,
        Err(e) => return Ok(invocation.reject(&text, &e.to_string())),
    };
    let mut warnings = parsed.warnings;
    let notification = bounded(parsed.notification, &mut warnings);
    let mut response = InvocationResponse::default();
    for warning in warnings {
        response = response.log(format!("warning: {warning}"));
    }
    Ok(match route(&notification) {
        // A record of the test, for `cvctl verify` to find: the project is wired and the app
        // is reading its queue.
        Route::Acknowledge(line) => response.log(line).output(
            CONNECTION_TEST_OUTPUT,
            ConnectionTestRecord::new(notification.project_id(), invocation.request.message_id())
                .to_output(),
        ),
        Route::Forward(binding) => response
            .log(format!(
                "{} notification for project {} routed to {binding}",
                notification.kind(),
                notification.project_id()
            ))
            .output(binding, notification.to_canonical_json()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::InvocationRequest;
    use crate::functions::test_support::{app, request};
    use crate::functions::{App, REJECTED_OUTPUT};
    use serde_json::json;

    use crate::domain::examples::{ITERATION as I, PROJECT as P};

    fn run(app: &App, req: &InvocationRequest) -> Result<InvocationResponse, FunctionError> {
        handle(&Invocation {
            app,
            function: crate::functions::Function::Notifications,
            request: req,
        })
    }

    fn handle_text(message: &str) -> InvocationResponse {
        run(&app(), &request(message)).unwrap()
    }

    #[test]
    fn connection_test_is_acknowledged_and_recorded() {
        let msg = format!(
            r#"{{"version":"1.0","type":"ConnectionTest","Content":{{"projectId":"{P}"}}}}"#
        );
        let r = handle_text(&msg);
        assert_eq!(r.logs, vec![format!("ConnectionTest from project {P}")]);
        assert_eq!(r.outputs.len(), 1, "only the record of the test");
        assert_eq!(r.outputs[CONNECTION_TEST_OUTPUT]["projectId"], P);
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
            let r = handle_text(&msg);
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
            let r = handle_text(msg);
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
    fn a_rejected_message_without_an_id_is_kept_with_a_warning_and_no_event() {
        let mut request = request("garbage");
        request.metadata.remove("Id");
        let r = run(&app(), &request).unwrap();
        assert!(
            r.outputs.contains_key(REJECTED_OUTPUT),
            "the record is kept"
        );
        assert!(
            !r.outputs.contains_key(crate::functions::EVENTS_OUTPUT),
            "{:?}",
            r.outputs
        );
        assert!(
            r.logs
                .iter()
                .any(|l| l.starts_with("warning:") && l.contains("no Id")),
            "{:?}",
            r.logs
        );
    }

    #[test]
    fn a_rejected_message_is_an_event_without_its_text() {
        let sig = ["s", "ig=", "c2VjcmV0c2VjcmV0"].concat();
        let msg = format!("garbage https://a.blob.core.windows.net/c/m.zip?{sig}");
        let r = handle_text(&msg);
        let events = r.outputs[crate::functions::EVENTS_OUTPUT]
            .as_array()
            .unwrap();
        assert_eq!(events.len(), 1);
        let event = &events[0]["event"];
        assert_eq!(event["type"], "CustomVisionEvents.MessageRejected");
        assert_eq!(
            event["subject"],
            "functions/Notifications/messages/6f1c0a52-0000-4000-8000-000000000001"
        );
        assert_eq!(event["data"]["record"]["queue"], "customvision-rejected");
        assert_eq!(event["time"], "2026-01-01T10:00:00Z");
        let text = event.to_string();
        assert!(
            !text.contains("garbage") && !text.contains("c2VjcmV0c2VjcmV0"),
            "{text}"
        );
        // The same message again: the same id.
        let again = handle_text(&msg);
        assert_eq!(
            again.outputs[crate::functions::EVENTS_OUTPUT][0]["event"]["id"],
            event["id"]
        );
    }

    #[test]
    fn a_json_string_message_is_kept_as_it_came_not_unwrapped_again() {
        let wrapped = serde_json::to_string(&format!(
            r#"{{"type":"ConnectionTest","Content":{{"projectId":"{P}"}}}}"#
        ))
        .unwrap();
        for text in ["\"hello\"", wrapped.as_str()] {
            let r = handle_text(text);
            let rejected = &r.outputs[REJECTED_OUTPUT];
            assert_eq!(rejected["message"], text, "kept with its quotes");
            assert!(
                rejected["reason"]
                    .as_str()
                    .unwrap()
                    .contains("it is a string"),
                "{rejected}"
            );
        }
    }

    #[test]
    fn a_model_uri_of_the_wrong_type_is_dropped_and_the_export_routed() {
        for bad in [json!(42), json!({"url": "x"}), json!(["x"]), json!(true)] {
            let msg = json!({"type": "Export", "Content": {
                "projectId": P, "iterationId": I, "exportStatus": "ExportCompleted", "modelUri": bad
            }})
            .to_string();
            let r = handle_text(&msg);
            let out = &r.outputs[EXPORT_OUTPUT];
            assert!(out["Content"].get("modelUri").is_none(), "{out}");
            assert!(
                r.logs[0].starts_with("warning: modelUri"),
                "{bad}: {:?}",
                r.logs
            );
        }
    }

    #[test]
    fn an_absurd_model_uri_is_dropped_so_the_forwarded_message_fits() {
        // Measured as the service may count it, XML-escaped: each `&` is five bytes there.
        let uri = format!(
            "https://a.blob.core.windows.net/c/b?{}",
            "a=1&".repeat(12_000)
        );
        let msg = json!({"type": "Export", "Content": {
            "projectId": P, "iterationId": I, "exportStatus": "ExportCompleted", "modelUri": uri
        }})
        .to_string();
        assert!(msg.len() < 64 * 1024, "the message itself fits its queue");
        let r = handle_text(&msg);
        let out = r.outputs[EXPORT_OUTPUT].as_object().unwrap();
        assert!(fits_queue(out));
        assert!(out["Content"].get("modelUri").is_none());
        assert!(
            r.logs.iter().any(|l| l.contains("too long to forward")),
            "{:?}",
            r.logs
        );
    }

    #[test]
    fn a_request_without_the_binding_is_an_error() {
        let req: InvocationRequest = serde_json::from_value(json!({"Data": {}})).unwrap();
        assert!(matches!(run(&app(), &req), Err(FunctionError::Envelope(_))));
    }
}
