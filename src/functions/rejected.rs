//! The dead-letter record: what is kept of a message that can never be processed, and how it
//! always fits in the rejected queue.
//!
//! A record carries the reason (redacted, bounded) and the message text, byte for byte except
//! SAS signature values and account keys, which are redacted as everywhere else (a Custom
//! Vision SAS expires anyway; replaying such a message needs a re-export). When the record
//! would not fit in one queue message, the text goes to a blob instead, through the
//! function's blob output binding (`%CV_REJECTED_CONTAINER%/<Function>/{Id}.txt`, written by
//! the host after the invocation), and the queue record carries its size, SHA-256, a bounded
//! prefix and the blob's name. The router thus stays free of storage I/O, and a redelivery
//! writes the same blob again.

use serde_json::{json, Map};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::outputs::fits_queue;
use super::{Function, Invocation, REJECTED_BLOB_OUTPUT, REJECTED_OUTPUT};
use crate::envelope::InvocationResponse;
use crate::redact::{redact, redact_message};

/// The longest reason kept, in characters; reasons quote untrusted input.
const REASON_MAX_CHARS: usize = 1024;
/// The prefix of a large message kept in its queue record, in bytes.
const PREFIX_MAX_BYTES: usize = 2048;

/// The blob output's path in every function.json, for function `function`.
pub fn blob_path_template(function: Function) -> String {
    format!("%CV_REJECTED_CONTAINER%/{function}/{{Id}}.txt")
}

/// Answers 200: the message is kept with its reason, in the rejected queue (and, when large, a
/// blob), and the host deletes it from the trigger queue.
pub fn reject(invocation: &Invocation, text: &str, reason: &str) -> InvocationResponse {
    let function = invocation.function;
    let request = invocation.request;
    let reason = truncate_chars(&redact(reason), REASON_MAX_CHARS);
    let kept = redact_message(text);
    let received_at = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default();
    let message_id = request.message_id();
    let mut record = Map::from_iter([
        ("reason".to_string(), json!(reason)),
        ("receivedAt".to_string(), json!(received_at)),
        ("function".to_string(), json!(function.name())),
        ("messageId".to_string(), json!(message_id)),
        ("dequeueCount".to_string(), json!(request.dequeue_count())),
        ("message".to_string(), json!(kept)),
    ]);
    let mut response = InvocationResponse::default().log(format!("{function}: rejected: {reason}"));
    if !fits_queue(&record) {
        record.remove("message");
        // What the host makes of the binding's path, so the record names the blob it writes.
        let blob = blob_path_template(function)
            .replace(
                "%CV_REJECTED_CONTAINER%",
                &invocation.app.settings.rejected_container,
            )
            .replace("{Id}", message_id.as_deref().unwrap_or("{Id}"));
        let digest = Sha256::digest(kept.as_bytes());
        record.extend([
            ("messageBytes".to_string(), json!(kept.len())),
            ("messageSha256".to_string(), json!(format!("{digest:x}"))),
            (
                "messagePrefix".to_string(),
                json!(prefix_bytes(&kept, PREFIX_MAX_BYTES)),
            ),
            ("messageBlob".to_string(), json!(blob)),
        ]);
        response = response
            .log(format!(
                "{function}: the message ({} bytes) is too large for its record; kept in blob {blob}",
                kept.len()
            ))
            .output_bytes(REJECTED_BLOB_OUTPUT, kept.as_bytes());
    }
    debug_assert!(fits_queue(&record), "a bounded record always fits");
    response.output(REJECTED_OUTPUT, record)
}

fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// At most `max` bytes, cut at a character boundary.
fn prefix_bytes(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::outputs::queue_message_size;
    use crate::functions::test_support::{app, request};
    use serde_json::Value;

    /// A record as it comes back from the rejected queue.
    fn is_large(record: &Value) -> bool {
        record.get("messageBlob").is_some()
    }

    fn reject_text(text: &str, reason: &str) -> InvocationResponse {
        let app = app();
        let req = request(text);
        let invocation = Invocation {
            app: &app,
            function: Function::Notifications,
            request: &req,
        };
        reject(&invocation, text, reason)
    }

    #[test]
    fn a_small_message_is_kept_whole_in_the_record() {
        let r = reject_text("garbage", "not JSON");
        let record = &r.outputs[REJECTED_OUTPUT];
        assert_eq!(record["message"], "garbage");
        assert_eq!(record["reason"], "not JSON");
        assert_eq!(record["messageId"], "6f1c0a52-0000-4000-8000-000000000001");
        assert_eq!(record["dequeueCount"], 1);
        assert!(!r.outputs.contains_key(REJECTED_BLOB_OUTPUT));
    }

    #[test]
    fn secrets_are_redacted_in_the_reason_and_the_copy() {
        let text = r#"{"type":"https://x/?sig=SECRET1","AccountKey=SECRET2;"}"#;
        let r = reject_text(text, "unknown notification type 'https://x/?sig=SECRET1'");
        let record = serde_json::to_string(&r.outputs[REJECTED_OUTPUT]).unwrap();
        assert!(!record.contains("SECRET"), "{record}");
        assert!(record.contains("sig=REDACTED"), "{record}");
        assert!(r.logs.iter().all(|l| !l.contains("SECRET")), "{:?}", r.logs);
    }

    #[test]
    fn a_large_message_goes_to_a_blob_and_the_record_still_fits() {
        // Worst cases for escaping: quotes, backslashes, control characters, non-ASCII.
        for unit in ["\"", "\\", "\u{1}", "<&>", "é", "x"] {
            let text = unit.repeat(64 * 1024 / unit.len());
            let r = reject_text(&text, &"r".repeat(5000));
            let record = r.outputs[REJECTED_OUTPUT].as_object().unwrap();
            assert!(queue_message_size(record) <= 64 * 1024, "{unit:?}");
            if unit == "x" {
                // 64 KiB of plain text with the record around it is just over: a blob.
                assert!(is_large(&Value::Object(record.clone())));
            }
            if is_large(&Value::Object(record.clone())) {
                let blob = r.outputs[REJECTED_BLOB_OUTPUT].as_str().unwrap();
                let bytes = crate::base64text::decode_dotnet(blob).unwrap();
                assert_eq!(bytes, text.as_bytes(), "every byte is kept");
                assert_eq!(record["messageBytes"], text.len());
                assert_eq!(
                    record["messageSha256"],
                    format!("{:x}", Sha256::digest(text.as_bytes()))
                );
                assert!(record["messagePrefix"].as_str().unwrap().len() <= PREFIX_MAX_BYTES);
                assert_eq!(
                    record["messageBlob"],
                    "customvision-rejected/Notifications/6f1c0a52-0000-4000-8000-000000000001.txt"
                );
                assert!(record.get("message").is_none());
            }
            assert!(record["reason"].as_str().unwrap().chars().count() <= REASON_MAX_CHARS + 1);
        }
    }

    #[test]
    fn about_32_kib_of_quotes_no_longer_overflows() {
        // The case that used to go to -poison: JSON escaping doubles it past the limit.
        let text = "\"".repeat(33 * 1024);
        let r = reject_text(&text, "the message is neither JSON nor base64-encoded JSON");
        let record = r.outputs[REJECTED_OUTPUT].as_object().unwrap();
        assert!(queue_message_size(record) <= 64 * 1024);
        assert!(r.outputs.contains_key(REJECTED_BLOB_OUTPUT));
    }

    #[test]
    fn prefixes_cut_at_character_boundaries() {
        assert_eq!(prefix_bytes("ééé", 3), "é");
        assert_eq!(prefix_bytes("abc", 10), "abc");
    }
}
