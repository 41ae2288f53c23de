//! Service SAS for one blob ("Create a service SAS" in the Storage REST reference, version
//! 2020-12-06 and later): what Custom Vision hands out as a `modelUri` when no backup
//! container is integrated. Signed here by the tests, and by the tool that simulates such
//! exports.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use url::Url;

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
    let fmt = |t: OffsetDateTime| {
        t.replace_nanosecond(0)
            .unwrap_or(t)
            .format(&Rfc3339)
            .unwrap_or_default()
    };
    let (start, expiry) = (fmt(start), fmt(expiry));
    // The canonical resource names the account once, whatever the URL's style.
    let path = url.path();
    let path = path
        .strip_prefix(&format!("/{account}"))
        .filter(|rest| rest.starts_with('/'))
        .unwrap_or(path);
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let resource = format!("/blob/{account}{decoded}");
    let (permissions, protocol, signed_resource) = ("r", "https,http", "b");
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
    }
}
