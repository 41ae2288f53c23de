//! What the handler hands the host to write to a queue is bounded by what one queue message can
//! hold: 64 KiB of UTF-8 (the service's limit, and Azurite's). An output over it fails the
//! write, and with it the invocation: retried into `-poison` for no fault of the message.

use serde_json::{Map, Value};

/// One queue message, in bytes of UTF-8 text (`messageEncoding: none`, as host.json sets).
pub const QUEUE_MESSAGE_MAX_BYTES: usize = 64 * 1024;

/// The size an object output can take in the queue, measured on the largest form it may be
/// written in: the host may write an object indented (Newtonsoft's `JToken.ToString()`), and
/// the service receives the text XML-escaped inside its request body (`<`, `>`, `&` in element
/// text).
pub fn queue_message_size(message: &Map<String, Value>) -> usize {
    let pretty = serde_json::to_string_pretty(message).unwrap_or_default();
    pretty
        .bytes()
        .map(|b| match b {
            b'<' | b'>' => 4,
            b'&' => 5,
            _ => 1,
        })
        .sum()
}

pub fn fits_queue(message: &Map<String, Value>) -> bool {
    queue_message_size(message) <= QUEUE_MESSAGE_MAX_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn size_counts_the_largest_form() {
        let m = map(json!({"a": "<&>"}));
        let pretty = serde_json::to_string_pretty(&m).unwrap();
        assert!(queue_message_size(&m) > pretty.len());
        assert!(queue_message_size(&m) > serde_json::to_string(&m).unwrap().len());
    }

    #[test]
    fn escaping_is_what_makes_a_small_text_large() {
        // 20 000 control characters: 20 KB of text, six times that as JSON.
        let m = map(json!({"message": "\u{1}".repeat(20_000)}));
        assert!(!fits_queue(&m));
        assert!(fits_queue(&map(json!({"message": "x".repeat(60_000)}))));
    }
}
