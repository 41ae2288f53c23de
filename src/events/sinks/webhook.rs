//! A webhook signed as Standard Webhooks says
//! (<https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md>):
//! headers `webhook-id` (the event id, so a receiver dedupes on it), `webhook-timestamp` (Unix
//! seconds of sending) and `webhook-signature`: `v1,<base64 HMAC-SHA256>` of
//! `{id}.{timestamp}.{body}`, keyed with the base64-decoded part of the `whsec_` secret, and
//! space-separated with a second signature under the previous secret during a rotation. The
//! body is the structured CloudEvent, `application/cloudevents+json`.

use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::header::{HeaderValue, CONTENT_TYPE};
use sha2::Sha256;

use super::{answer_of, not_ready, type_listed, SinkError};
use crate::events::delivery::Answer;
use crate::events::model::{CloudEvent, EventType};
use crate::settings::events::{UnusableSecret, WebhookSettings};
use crate::settings::Secret;
use crate::SharedHttp;

pub const CONTENT_TYPE_CLOUDEVENT: &str = "application/cloudevents+json; charset=utf-8";

pub struct WebhookSink {
    url: url::Url,
    /// Decoded keys: the current one first. An unusable secret: not ready.
    keys: Result<Vec<Secret>, SinkError>,
    types: Option<Vec<String>>,
    http: SharedHttp,
}

impl WebhookSink {
    pub fn new(settings: &WebhookSettings, http: &SharedHttp) -> Self {
        Self {
            url: settings.url.clone(),
            keys: keys(settings).map_err(SinkError::from),
            types: settings.types.clone(),
            http: http.clone(),
        }
    }

    pub fn wants(&self, kind: Option<EventType>) -> bool {
        match &self.types {
            None => true,
            Some(types) => type_listed(types, kind),
        }
    }

    pub fn not_ready(&self) -> Option<&SinkError> {
        self.keys.as_ref().err()
    }

    pub async fn send(&self, event: &CloudEvent) -> Answer {
        let keys = match &self.keys {
            Ok(keys) => keys,
            Err(e) => return not_ready(e),
        };
        let http = match self.http.client() {
            Ok(h) => h,
            Err(e) => {
                return Answer::NoAnswer {
                    reason: e.to_string(),
                }
            }
        };
        let body = event.to_json();
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut signature =
            match HeaderValue::from_str(&signatures(keys, &event.id, timestamp, &body)) {
                Ok(v) => v,
                Err(_) => {
                    return Answer::NoAnswer {
                        reason: "the signature is not a header value".into(),
                    }
                }
            };
        signature.set_sensitive(true);
        answer_of(
            http.post(self.url.clone())
                .header(CONTENT_TYPE, CONTENT_TYPE_CLOUDEVENT)
                .header("webhook-id", &event.id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature)
                .body(body),
        )
        .await
    }
}

/// Both secrets during a rotation, or none: signing with one while receivers may hold only the
/// other would fail there for good, where waiting for the setting succeeds.
fn keys(settings: &WebhookSettings) -> Result<Vec<Secret>, UnusableSecret> {
    let current = settings.secret.clone()?;
    let previous = settings.previous_secret.clone()?;
    Ok(std::iter::once(current).chain(previous).collect())
}

/// `v1,<sig>` per key, space-separated. A key that is not base64 (settings check it) signs
/// nothing.
pub fn signatures(keys: &[Secret], id: &str, timestamp: i64, body: &str) -> String {
    keys.iter()
        .filter_map(|key| {
            let key = base64::engine::general_purpose::STANDARD
                .decode(key.expose())
                .ok()?;
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
            mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
            let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
            Some(format!("v1,{sig}"))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The receiving side of [`signatures`]: whether one of the `v1,` signatures of a
/// `webhook-signature` header verifies, under one of `keys`, for `{id}.{timestamp}.{body}`
/// (the comparison is constant-time, `Mac::verify_slice`). The timestamp's freshness is the
/// caller's to judge.
pub fn verify(keys: &[Secret], id: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    let signed = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body].concat();
    let given: Vec<Vec<u8>> = header
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .collect();
    keys.iter().any(|key| {
        let Ok(key) = base64::engine::general_purpose::STANDARD.decode(key.expose()) else {
            return false;
        };
        given.iter().any(|sig| {
            Hmac::<Sha256>::new_from_slice(&key)
                .map(|mut mac| {
                    mac.update(&signed);
                    mac.verify_slice(sig).is_ok()
                })
                .unwrap_or(false)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_the_reference_example_and_nothing_else() {
        let key = Secret::new("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let other = Secret::new("c2Vjb25kLXNlY3JldC1rZXktMjQtYnl0ZXM=");
        let (id, ts, body) = (
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            br#"{"test": 2432232314}"#,
        );
        let header = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert!(verify(std::slice::from_ref(&key), id, ts, body, header));
        assert!(verify(
            &[other.clone(), key.clone()],
            id,
            ts,
            body,
            &format!("v1,bm9wZQ== {header}")
        ));
        assert!(!verify(&[other], id, ts, body, header), "another key");
        assert!(
            !verify(std::slice::from_ref(&key), id, "1614265331", body, header),
            "another timestamp"
        );
        assert!(
            !verify(std::slice::from_ref(&key), id, ts, b"{}", header),
            "another body"
        );
        assert!(!verify(
            &[key],
            id,
            ts,
            body,
            "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        ));
    }

    #[test]
    fn signs_as_the_standard_webhooks_reference_example() {
        // The spec's example (standard-webhooks spec, "Signature scheme"; also the reference
        // libraries' test vector): secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, id
        // msg_p5jXN8AQM9LWM0D4loKWxJek, timestamp 1614265330, body {"test": 2432232314}.
        let key = Secret::new("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let sig = signatures(
            &[key],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_rotation_signs_with_both_keys() {
        let keys = [
            Secret::new("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            Secret::new("c2Vjb25kLXNlY3JldC1rZXktMjQtYnl0ZXM="),
        ];
        let both = signatures(&keys, "id", 1, "{}");
        let parts: Vec<_> = both.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], signatures(&keys[..1], "id", 1, "{}"));
        assert_eq!(parts[1], signatures(&keys[1..], "id", 1, "{}"));
        assert_ne!(parts[0], parts[1]);
    }
}
