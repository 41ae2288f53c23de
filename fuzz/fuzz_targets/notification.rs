//! Queue message text into a notification. Property: no panic, and what is accepted survives
//! its canonical form (what is forwarded to the training and export queues) unchanged, as
//! JSON and as base64 of it.
#![no_main]

use customvision_events::base64text;
use customvision_events::notification::Notification;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = Notification::parse_with_warnings(text) else {
        return;
    };
    let canonical = Value::Object(parsed.notification.to_canonical_json());
    let mut warnings = Vec::new();
    let again = Notification::from_value(&canonical, &mut warnings)
        .unwrap_or_else(|e| panic!("canonical form rejected: {e}: {canonical}"));
    assert_eq!(again, parsed.notification);
    assert!(warnings.is_empty(), "{warnings:?}");
    let as_base64 = base64text::encode(canonical.to_string().as_bytes());
    assert_eq!(Notification::parse(&as_base64).ok(), Some(again));
});
