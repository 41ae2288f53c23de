//! Shared Key authorization ("Authorize with Shared Key" in the Storage REST reference), for
//! Azurite and account-key connection strings: the official SDK has none. Each request is
//! signed as it leaves, so a client kept for the life of the process never carries a credential
//! that expires; and a copy from a blob of the same account needs no SAS on its source, which
//! the Shared Key on the copy request itself authorizes.

use std::sync::Arc;

use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::format_description::well_known::Rfc2822;
use time::OffsetDateTime;

pub struct SharedKeyPolicy {
    account: String,
    key: Vec<u8>,
}

impl std::fmt::Debug for SharedKeyPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedKeyPolicy({}, key REDACTED)", self.account)
    }
}

impl SharedKeyPolicy {
    pub fn new(account: &str, key: Vec<u8>) -> Self {
        Self {
            account: account.to_string(),
            key,
        }
    }

    /// The `Authorization` value for a request with these parts.
    pub fn authorization(&self, parts: &RequestParts<'_>) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(string_to_sign(&self.account, parts).as_bytes());
        let signature =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        format!("SharedKey {}:{signature}", self.account)
    }
}

/// What a signature covers, taken from a request.
pub struct RequestParts<'a> {
    pub method: &'a str,
    /// Header names lower-case.
    pub headers: Vec<(String, &'a str)>,
    pub content_length: u64,
    /// The URL path as sent, percent-encoded.
    pub path: &'a str,
    /// Query pairs, decoded.
    pub query: Vec<(String, String)>,
}

/// The string to sign for the Blob and Queue services, version 2015-02-21 and later.
pub fn string_to_sign(account: &str, parts: &RequestParts<'_>) -> String {
    let header = |name: &str| {
        parts
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
            .unwrap_or("")
    };
    // Zero is signed as empty.
    let length = if parts.content_length == 0 {
        String::new()
    } else {
        parts.content_length.to_string()
    };
    let mut out = format!(
        "{}\n{}\n{}\n{length}\n{}\n{}\n\n{}\n{}\n{}\n{}\n{}\n",
        parts.method.to_ascii_uppercase(),
        header("content-encoding"),
        header("content-language"),
        header("content-md5"),
        header("content-type"),
        // Date stays empty: x-ms-date is always sent.
        header("if-modified-since"),
        header("if-match"),
        header("if-none-match"),
        header("if-unmodified-since"),
        header("range"),
    );
    let mut ms: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter(|(k, _)| k.starts_with("x-ms-"))
        .map(|(k, v)| {
            (
                k.clone(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    ms.sort();
    for (k, v) in ms {
        out.push_str(&format!("{k}:{v}\n"));
    }
    out.push_str(&format!("/{account}{}", parts.path));
    let mut query: Vec<(String, Vec<String>)> = Vec::new();
    for (k, v) in &parts.query {
        let k = k.to_ascii_lowercase();
        match query.iter_mut().find(|(name, _)| *name == k) {
            Some((_, values)) => values.push(v.clone()),
            None => query.push((k, vec![v.clone()])),
        }
    }
    query.sort();
    for (k, mut values) in query {
        values.sort();
        out.push_str(&format!("\n{k}:{}", values.join(",")));
    }
    out
}

#[async_trait::async_trait]
impl Policy for SharedKeyPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let now = OffsetDateTime::now_utc()
            .format(&Rfc2822)
            .unwrap_or_default()
            .replace("+0000", "GMT");
        request.insert_header("x-ms-date", now);
        let authorization = {
            let method = request.method();
            let url = request.url();
            let headers: Vec<(String, &str)> = request
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.as_str()))
                .filter(|(k, _)| k != "authorization")
                .collect();
            let parts = RequestParts {
                method: method.as_ref(),
                headers,
                content_length: request.body().len().unwrap_or(0),
                path: url.path(),
                query: url
                    .query_pairs()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect(),
            };
            self.authorization(&parts)
        };
        request.insert_header("authorization", authorization);
        next[0].send(ctx, request, &next[1..]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example's shape from the REST reference: a GET with query parameters.
    #[test]
    fn string_to_sign_has_the_documented_layout() {
        let parts = RequestParts {
            method: "get",
            headers: vec![
                ("x-ms-version".into(), "2015-02-21"),
                ("x-ms-date".into(), "Fri, 26 Jun 2015 23:39:12 GMT"),
                ("x-ms-meta-a".into(), "  two   words "),
            ],
            content_length: 0,
            path: "/mycontainer",
            query: vec![
                ("restype".into(), "container".into()),
                ("comp".into(), "metadata".into()),
                ("include".into(), "b".into()),
                ("include".into(), "a".into()),
            ],
        };
        assert_eq!(
            string_to_sign("myaccount", &parts),
            "GET\n\n\n\n\n\n\n\n\n\n\n\n\
             x-ms-date:Fri, 26 Jun 2015 23:39:12 GMT\nx-ms-meta-a:two words\nx-ms-version:2015-02-21\n\
             /myaccount/mycontainer\ncomp:metadata\ninclude:a,b\nrestype:container"
        );
    }

    #[test]
    fn lengths_and_conditions_are_signed() {
        let parts = RequestParts {
            method: "PUT",
            headers: vec![
                ("content-type".into(), "application/xml"),
                ("if-match".into(), "\"0x1\""),
            ],
            content_length: 12,
            path: "/c/b%20x",
            query: vec![],
        };
        assert_eq!(
            string_to_sign("a", &parts),
            "PUT\n\n\n12\n\napplication/xml\n\n\n\"0x1\"\n\n\n\n/a/c/b%20x"
        );
        let key = SharedKeyPolicy::new("a", b"key".to_vec());
        assert!(key.authorization(&parts).starts_with("SharedKey a:"));
        assert!(
            !format!("{key:?}").contains("key\""),
            "the key never prints"
        );
    }
}
