//! SAS in both directions. [`SasPolicy`] puts the SAS of a SAS connection string on every
//! request of a storage client. [`blob_read_sas`] signs a service SAS for one blob ("Create a
//! service SAS" in the Storage REST reference, version 2020-12-06 and later): what Custom
//! Vision hands out as a `modelUri` when no backup container is integrated, signed here by the
//! tests and by the tool that simulates such exports; [`container_read_sas`] the read-only
//! container SAS a device pulls models with.

use std::sync::Arc;

use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use url::Url;

/// Puts the SAS of a SAS connection string on every request, replacing any SAS a retried
/// request already carries.
#[derive(Debug)]
pub struct SasPolicy {
    token: crate::settings::Secret,
}

/// The query parameters of an account or service SAS: replaced, not duplicated, on a retry.
const SAS_PARAMS: [&str; 12] = [
    "sv", "ss", "srt", "sp", "st", "se", "spr", "sig", "sr", "si", "sip", "skoid",
];

impl SasPolicy {
    pub(super) fn new(token: &str) -> Self {
        Self {
            token: crate::settings::Secret::new(token.trim_start_matches('?')),
        }
    }

    pub(super) fn apply(&self, url: &mut Url) {
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| !SAS_PARAMS.contains(&k.as_ref()))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let mut query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(kept)
            .finish();
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(self.token.expose());
        url.set_query(Some(&query));
    }
}

#[async_trait::async_trait]
impl Policy for SasPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        self.apply(request.url_mut());
        next[0].send(ctx, request, &next[1..]).await
    }
}

const VERSION: &str = "2022-11-02";

/// The query of a read-only SAS for the blob at `url` (path `/account/container/blob` on
/// Azurite, `/container/blob` on Azure), valid from `start` to `expiry`.
pub fn blob_read_sas(
    account: &str,
    key: &[u8],
    url: &Url,
    start: OffsetDateTime,
    expiry: OffsetDateTime,
) -> String {
    read_sas(account, key, url, "b", start, expiry)
}

/// The query of a read-only SAS for the container at `url` (`sr=c`, `sp=r`: Get Blob and
/// Get Blob Properties on its blobs, no listing): what a device that pulls models holds.
pub fn container_read_sas(
    account: &str,
    key: &[u8],
    url: &Url,
    start: OffsetDateTime,
    expiry: OffsetDateTime,
) -> String {
    read_sas(account, key, url, "c", start, expiry)
}

fn read_sas(
    account: &str,
    key: &[u8],
    url: &Url,
    signed_resource: &str,
    start: OffsetDateTime,
    expiry: OffsetDateTime,
) -> String {
    let fmt = |t: OffsetDateTime| {
        t.replace_nanosecond(0)
            .unwrap_or(t)
            .format(&Rfc3339)
            .unwrap_or_default()
    };
    let (start, expiry) = (fmt(start), fmt(expiry));
    // The canonical resource names the account once, whatever the URL's style.
    let path = url.path().trim_end_matches('/');
    let path = path
        .strip_prefix(&format!("/{account}"))
        .filter(|rest| rest.starts_with('/'))
        .unwrap_or(path);
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let resource = format!("/blob/{account}{decoded}");
    let (permissions, protocol) = ("r", "https,http");
    let string_to_sign = format!(
        "{permissions}\n{start}\n{expiry}\n{resource}\n\n\n{protocol}\n{VERSION}\n{signed_resource}\n\n\n\n\n\n\n"
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(string_to_sign.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("sv", VERSION)
        .append_pair("sr", signed_resource)
        .append_pair("sp", permissions)
        .append_pair("st", &start)
        .append_pair("se", &expiry)
        .append_pair("spr", protocol)
        .append_pair("sig", &signature)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn signs_deterministically_and_per_blob() {
        let t0 = datetime!(2026-01-01 10:00:00.5 UTC);
        let t1 = datetime!(2026-01-01 11:00:00 UTC);
        let a = Url::parse("http://127.0.0.1:1/devstoreaccount1/c/a%20b.zip").unwrap();
        let b = Url::parse("http://127.0.0.1:1/devstoreaccount1/c/other.zip").unwrap();
        let sas = blob_read_sas("devstoreaccount1", b"k", &a, t0, t1);
        assert_eq!(sas, blob_read_sas("devstoreaccount1", b"k", &a, t0, t1));
        assert!(sas.contains("st=2026-01-01T10%3A00%3A00Z&se=2026-01-01T11%3A00%3A00Z"));
        assert!(sas.contains("sr=b&sp=r"));
        assert_ne!(sas, blob_read_sas("devstoreaccount1", b"k", &b, t0, t1));
        let c = Url::parse("http://127.0.0.1:1/devstoreaccount1/c").unwrap();
        let container = container_read_sas("devstoreaccount1", b"k", &c, t0, t1);
        assert!(container.contains("sr=c&sp=r"));
        assert_ne!(container, sas);
    }

    #[test]
    fn applying_the_sas_replaces_an_earlier_one() {
        let policy = SasPolicy::new("?sv=1&sig=abc");
        let mut url = Url::parse("http://h/a/c?comp=tags").unwrap();
        policy.apply(&mut url);
        policy.apply(&mut url);
        assert_eq!(url.query(), Some("comp=tags&sv=1&sig=abc"));
    }
}
