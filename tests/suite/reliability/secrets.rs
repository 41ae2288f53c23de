//! The secrets scan: after a run, every log line, rejected record, status record, tag,
//! metadata value, index and report the run left is searched for the secrets it used: the
//! account key the handler signs with (Azurite's well-known key stands in for a real one: the
//! app must never print it either way), the training key, and every SAS signature a message
//! carried, real (signed by the test, accepted by Azurite) or planted (fake, with a marker).
//! Each is searched for as it is and as it looks percent-encoded or JSON-escaped.
//!
//! Fake signatures are made at run time ([`fake_sig`]): no signature-looking literal sits in
//! the repository (the pre-commit hook rejects those).

use std::collections::HashMap;

use azure_storage_blob::models::BlobClientGetPropertiesResultHeaders;
use futures::StreamExt;

use crate::support::helpers::*;

/// A signature that looks like one (base64 of 32 bytes, percent-encoded as in a URL) and is
/// easy to spot: `FAKESIG` then the tag, padded from a seed.
pub fn fake_sig(tag: &str) -> String {
    let raw = format!("FAKESIG{tag}{}", uuid::Uuid::new_v4().simple());
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, raw.as_bytes());
    url::form_urlencoded::byte_serialize(b64.as_bytes()).collect()
}

/// The `sig` of a URL's query, percent-decoded.
pub fn sig_of(url: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == "sig")
        .map(|(_, v)| v.into_owned())
}

#[derive(Default)]
pub struct Secrets {
    needles: Vec<(String, String)>,
}

/// How much the scan read.
#[derive(Debug, Default, Clone, Copy)]
pub struct Scanned {
    pub items: usize,
    pub bytes: usize,
}

impl Secrets {
    /// The ones every run has: the account key and the training key.
    pub fn standard() -> Self {
        let mut s = Self::default();
        s.add(
            "the account key",
            customvision_events::settings::AZURITE_KEY,
        );
        s.add(
            "the training key",
            crate::support::custom_vision::FIXTURE_KEY,
        );
        s
    }

    /// `value` and the forms it takes in URLs and JSON. Short values are refused: a scan
    /// for them would find noise.
    pub fn add(&mut self, what: &str, value: &str) {
        assert!(value.len() >= 16, "{what} is too short to scan for");
        let encoded: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
        let decoded = percent_encoding::percent_decode_str(value)
            .decode_utf8_lossy()
            .into_owned();
        let json = serde_json::to_string(value).unwrap();
        for form in [
            value.to_string(),
            encoded,
            decoded,
            json.trim_matches('"').to_string(),
        ] {
            if !self.needles.iter().any(|(_, n)| *n == form) {
                self.needles.push((what.to_string(), form));
            }
        }
    }

    pub fn len(&self) -> usize {
        self.needles.len()
    }

    /// Panics naming where a secret was found (never the secret).
    pub fn check(&self, place: &str, text: &str) {
        for (what, needle) in &self.needles {
            assert!(
                !text.contains(needle.as_str()),
                "{what} leaked into {place}"
            );
        }
    }

    /// Scans everything the app left: its output, the rejected and poison queues, and every
    /// blob's name, tags and metadata in the model store, the backups (tagged in place), the
    /// rejected texts and the status records, with the bodies of the text ones.
    pub async fn scan_app(&self, app: &TestApp) -> Scanned {
        let mut scanned = Scanned::default();
        let out = app.output();
        for (n, line) in out.lines().enumerate() {
            self.check(&format!("output line {}", n + 1), line);
        }
        scanned.items += out.lines().count();
        scanned.bytes += out.len();
        for queue in [
            REJECTED.to_string(),
            format!("{NOTIFICATIONS}-poison"),
            format!("{TRAINING}-poison"),
            format!("{EXPORTS}-poison"),
        ] {
            for text in app.probe.peek(&queue).await.unwrap() {
                self.check(&format!("a message in {queue}"), &text);
                scanned.items += 1;
                scanned.bytes += text.len();
            }
        }
        for container in [MODELS, BACKUPS, REJECTED_CONTAINER, STATUS] {
            let names = app.probe.list(container).await.unwrap_or_default();
            let results: Vec<(String, usize)> = futures::stream::iter(names)
                .map(|name| async move {
                    let text = blob_text(app, container, &name).await;
                    (name, text)
                })
                .buffer_unordered(16)
                .map(|(name, text)| {
                    self.check(&format!("{container}/{name}"), &text);
                    (name, text.len())
                })
                .collect()
                .await;
            scanned.items += results.len();
            scanned.bytes += results.iter().map(|(_, n)| n).sum::<usize>();
        }
        scanned
    }
}

/// Name, tags, metadata and, for text blobs, the body.
async fn blob_text(app: &TestApp, container: &str, name: &str) -> String {
    let text_body = [".json", ".html", ".txt"].iter().any(|e| name.ends_with(e));
    if text_body {
        if let Ok(Some(state)) = app.probe.blob(container, name).await {
            return format!(
                "{name}\n{:?}\n{:?}\n{}",
                state.tags,
                state.metadata,
                String::from_utf8_lossy(&state.bytes)
            );
        }
    }
    let Ok(c) = app.probe.account.container(container) else {
        return name.to_string();
    };
    let blob = c.blob_client(name);
    let metadata: HashMap<String, String> = match blob.get_properties(None).await {
        Ok(p) => p.metadata().unwrap_or_default(),
        Err(_) => HashMap::new(),
    };
    let tags = customvision_events::storage::blob_tags(&blob)
        .await
        .unwrap_or_default();
    format!("{name}\n{tags:?}\n{metadata:?}")
}
