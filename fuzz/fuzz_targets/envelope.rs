//! The host's invocation body, as the server receives it: decode the envelope, take the
//! trigger's message text and metadata, and carry the text on down the data path (parse,
//! redact for a kept record). No input may panic.
#![no_main]

use customvision_events::envelope::{InvocationRequest, TRIGGER_BINDING};
use customvision_events::notification::Notification;
use customvision_events::redact::redact_message;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = InvocationRequest::from_slice(data) else {
        return;
    };
    let _ = request.dequeue_count();
    let _ = request.message_id();
    let Ok(text) = request.message_text(TRIGGER_BINDING) else {
        return;
    };
    // Exactly the host's one layer comes off: a string binding gives its own text, or the
    // string it holds as a JSON string literal; an object gives its JSON text.
    match request.data.get(TRIGGER_BINDING) {
        Some(Value::String(raw)) => match serde_json::from_str::<Value>(raw) {
            Ok(Value::String(inner)) => assert_eq!(text, inner),
            _ => assert_eq!(&text, raw),
        },
        Some(object @ Value::Object(_)) => {
            assert_eq!(
                serde_json::from_str::<Value>(&text).ok().as_ref(),
                Some(object)
            )
        }
        other => panic!("message_text accepted {other:?}"),
    }
    let _ = Notification::parse_with_warnings(&text);
    let _ = redact_message(&text);
});
