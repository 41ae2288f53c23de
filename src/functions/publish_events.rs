//! `PublishEvents`: one outbox message (`%CV_EVENTS_QUEUE%`) through the configured sinks
//! ([`crate::events::publisher`]). Garbage on the outbox is rejected like anywhere else; a
//! sink's refusal goes to `%CV_EVENTS_FAILED_QUEUE%` (this function's output binding); a
//! sink that is down is retried by re-enqueueing with a visibility delay. The only non-2xx
//! answer is storage failing (a marker, the re-enqueue): the host's retry then finds the
//! sinks that accepted already marked.

use serde_json::Value;

use super::{FunctionError, Invocation, FAILED_EVENTS_OUTPUT};
use crate::envelope::InvocationResponse;
use crate::events::outbox::OutboxMessage;
use crate::events::publisher::Publisher;

pub async fn handle(invocation: &Invocation<'_>) -> Result<InvocationResponse, FunctionError> {
    let text = invocation.message_text()?;
    let message = match OutboxMessage::parse(&text) {
        Ok(m) => m,
        Err(e) => return Ok(invocation.reject(&text, &e.to_string())),
    };
    let app = invocation.app;
    if app.sinks.is_empty() {
        return Ok(InvocationResponse::default().log(format!(
            "{} {}: no sink configured (events off), not sent",
            message.event.event_type, message.event.id
        )));
    }
    let publisher = Publisher {
        settings: &app.settings.events,
        account: &app.account,
        sinks: &app.sinks,
    };
    let published = publisher.publish(message).await?;
    let mut response = InvocationResponse::default();
    for line in published.lines {
        response = response.log(line);
    }
    if !published.failed.is_empty() {
        let records = published
            .failed
            .iter()
            .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
            .collect();
        response
            .outputs
            .insert(FAILED_EVENTS_OUTPUT.to_string(), Value::Array(records));
    }
    Ok(response)
}
