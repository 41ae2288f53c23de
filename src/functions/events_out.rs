//! The events a store function puts on its outbox output (`EVENTS_OUTPUT`,
//! [`crate::events::outbox`]), built from what the function did by
//! [`crate::events::emit`] (shared with `cvctl backfill`, so the same change has the same id).
//!
//! The redelivery rule ([`emits`]): an outcome this attempt caused is always emitted; one
//! found already done only on a redelivery (`DequeueCount` > 1), because an earlier attempt
//! may have made the change and died before the host wrote its outputs. The ids are the
//! same either way. Each event's `time` is the change's: the stored blob's Last-Modified, read
//! back; for a failure Custom Vision reported, the queue message's insertion time.

use time::OffsetDateTime;

use super::{Invocation, EVENTS_OUTPUT};
use crate::automation::TrainingOutcome;
use crate::envelope::InvocationResponse;
pub use crate::events::emit::EmitError;
use crate::events::emit::Events;
use crate::events::outbox::{emits, output_value};
use crate::events::Fact;
use crate::export::ModelOutcome;
use crate::redact::redact;

/// Collects one invocation's events.
pub struct Emitter<'a> {
    invocation: &'a Invocation<'a>,
    events: Events<'a>,
}

impl<'a> Emitter<'a> {
    pub fn new(invocation: &'a Invocation<'a>) -> Self {
        let app = invocation.app;
        Self {
            invocation,
            events: Events::new(
                &app.settings,
                &app.account,
                app.event_source.clone(),
                emits(false, invocation.request.dequeue_count()),
            ),
        }
    }

    /// When the queue message was first put on its queue: the time of a failure Custom
    /// Vision reported (there is no blob). Unknown (an envelope without it): the Unix epoch,
    /// still the same on every delivery, never the time of sending.
    fn reported_at(&self) -> OffsetDateTime {
        self.invocation
            .request
            .insertion_time()
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    pub fn failure(&mut self, fact: Fact) -> Result<(), EmitError> {
        let at = self.reported_at();
        self.events.push(&fact, at)
    }

    /// A `MessageRejected`: the reason (redacted in the event) and where the record is kept.
    pub fn rejected(
        &mut self,
        message_id: &str,
        reason: &str,
        blob: Option<String>,
    ) -> Result<(), EmitError> {
        let app = self.invocation.app;
        let fact = Fact::MessageRejected {
            function: self.invocation.function.name().to_string(),
            message_id: message_id.to_string(),
            reason: redact(reason),
            queue: app.settings.events.rejected_queue.clone(),
            blob: blob.map(|b| format!("{}/{b}", app.settings.rejected_container)),
        };
        let at = self.reported_at();
        self.events.push(&fact, at)
    }

    /// `ModelCopied` and `LatestMoved` for each model an export stored.
    pub async fn export(&mut self, outcomes: &[ModelOutcome]) -> Result<(), EmitError> {
        self.events.export(outcomes).await
    }

    /// `ReportWritten`, and `IterationPublished` or `PublishRefused`, at the report's time.
    pub fn training(&mut self, outcome: &TrainingOutcome) -> Result<(), EmitError> {
        self.events.training(outcome)
    }

    /// The events as the outbox output, on `response`.
    pub fn into_response(self, mut response: InvocationResponse) -> InvocationResponse {
        if let Some(value) = output_value(self.events.events()) {
            response.outputs.insert(EVENTS_OUTPUT.to_string(), value);
        }
        response
    }
}
