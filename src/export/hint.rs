//! The `modelUri` of a finished export, judged before anything is requested: a blob of the
//! configured backup container, a SAS URL that is safe to read from, or a hint refused with
//! its reason. A refused URL is never requested.
//!
//! A SAS source must be `https`, on a host of the allow-list (`CV_MODEL_URI_HOSTS`), on the
//! default port, without userinfo, not an IP literal, and written exactly as the URL parser
//! reads it (case of the host and an explicit `:443` aside): anything a parser would
//! normalise (backslashes, dot segments, encoded slashes or dots, whitespace) could make this
//! handler and storage disagree about which blob it names. The configured storage account's
//! own blob endpoint is accepted too, `http` included: that is how Azurite is reached.
//!
//! Safety invariant for that own endpoint: a URL there outside the backup container is read
//! first with [`crate::storage::StorageAccount::foreign_blob`], which carries none of this
//! handler's credentials, so it answers only with the URL's own SAS (or for a public
//! container). The copy that follows is authorised by the handler's key or identity, which
//! would reach every container of the account: were that first read ever given credentials,
//! a `modelUri` could copy any blob of the account into the model store. The e2e test
//! `a_private_blob_of_the_own_account_is_not_copied_without_a_sas` holds this.
//!
//! A URL judged safe to read is not yet trusted: who vouches for it is [`super::sas`]'s call.

use url::{Host, Url};

use crate::naming::blob_name_in_container;
use crate::settings::hosts::HostAllowList;

/// What the hint is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    None,
    /// A blob (by name) of the configured backup container.
    Backup(String),
    /// A SAS source, safe to request.
    Sas(Url),
    /// Never requested, and why.
    Refused(String),
}

/// Judges `raw` against the account's blob endpoint, the backup container and the allow-list.
pub fn classify(
    raw: Option<&str>,
    endpoint: &Url,
    backup_container: &str,
    allowed: &HostAllowList,
) -> Hint {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Hint::None;
    };
    match judge(raw, endpoint, backup_container, allowed) {
        Ok(hint) => hint,
        Err(reason) => Hint::Refused(reason),
    }
}

fn judge(
    raw: &str,
    endpoint: &Url,
    backup_container: &str,
    allowed: &HostAllowList,
) -> Result<Hint, String> {
    if raw
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\' || !c.is_ascii())
    {
        return Err(
            "the modelUri has whitespace, control, non-ASCII characters or backslashes, which a URL parser rewrites".into(),
        );
    }
    let url = Url::parse(raw).map_err(|e| format!("the modelUri is not a URL ({e})"))?;
    // Written as it is read, first: a backup-container URL with `..` in it is no backup URL.
    // On the text as written: the parser has already turned `%2e%2e` into a dot segment.
    let raw_path = raw
        .split_once("://")
        .map(|(_, rest)| rest)
        .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or_default();
    let raw_path = raw_path
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if ["%2f", "%5c", "%2e", "%00"]
        .iter()
        .any(|e| raw_path.contains(e))
    {
        return Err("the modelUri's path has encoded slashes, dots or NULs".into());
    }
    if written_as_parsed(raw, &url).is_err() {
        return Err(
            "the modelUri is not written as a URL parser reads it (dot segments, escapes or case it would rewrite)"
                .into(),
        );
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the modelUri carries a user name or password".into());
    }
    if url.fragment().is_some() {
        return Err("the modelUri has a fragment".into());
    }
    if let Some(name) = blob_name_in_container(&url, endpoint, backup_container) {
        return Ok(Hint::Backup(name));
    }
    let own_endpoint = url.scheme() == endpoint.scheme()
        && url.host() == endpoint.host()
        && url.port_or_known_default() == endpoint.port_or_known_default();
    if !own_endpoint {
        if url.scheme() != "https" {
            return Err(format!("the modelUri is {}, not https", url.scheme()));
        }
        match url.host() {
            Some(Host::Domain(host)) => {
                if !allowed.allows(host) {
                    return Err(format!(
                        "the modelUri's host '{host}' is not in CV_MODEL_URI_HOSTS"
                    ));
                }
            }
            Some(_) => return Err("the modelUri's host is an IP address".into()),
            None => return Err("the modelUri has no host".into()),
        }
        if url.port().is_some() {
            return Err("the modelUri names a port other than 443".into());
        }
    }
    let base = if own_endpoint {
        endpoint.path().trim_end_matches('/')
    } else {
        ""
    };
    let blob_path = url.path().strip_prefix(base).unwrap_or_default();
    // One leading slash only: `///c/b` has empty segments, which storage would not read as /c/b.
    let Some(segments) = blob_path
        .strip_prefix('/')
        .map(|p| p.split('/').collect::<Vec<_>>())
    else {
        return Err("the modelUri does not name a blob (/container/blob)".into());
    };
    if segments.len() < 2 || segments.iter().any(|s| s.is_empty()) {
        return Err("the modelUri does not name a blob (/container/blob)".into());
    }
    Ok(Hint::Sas(url))
}

/// `raw` must be the parser's own serialization, but for the host's case and an explicit
/// default port, which storage reads the same way.
fn written_as_parsed(raw: &str, url: &Url) -> Result<(), ()> {
    let (scheme, rest) = raw.split_once("://").ok_or(())?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = authority.to_ascii_lowercase();
    let authority = authority.strip_suffix(":443").unwrap_or(&authority);
    let normalised = format!("{}://{authority}{tail}", scheme.to_ascii_lowercase());
    if normalised == url.as_str() {
        Ok(())
    } else {
        Err(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKUPS: &str = "customvision-backups";

    fn azure() -> Url {
        Url::parse("https://mine.blob.core.windows.net").unwrap()
    }

    fn azurite() -> Url {
        Url::parse("http://127.0.0.1:41000/devstoreaccount1").unwrap()
    }

    fn judge(raw: &str, endpoint: &Url) -> Hint {
        classify(Some(raw), endpoint, BACKUPS, &HostAllowList::default())
    }

    #[test]
    fn leading_empty_segments_are_refused() {
        // Found by the model_uri fuzz target: every leading slash used to be trimmed.
        let azure = Url::parse("https://mine.blob.core.windows.net").unwrap();
        for raw in [
            "https://acct.blob.core.windows.net///c/b",
            "https://acct.blob.core.windows.net//c/b",
        ] {
            let hint = classify(
                Some(raw),
                &azure,
                "customvision-backups",
                &HostAllowList::default(),
            );
            assert!(matches!(hint, Hint::Refused(_)), "{raw}: {hint:?}");
        }
    }

    #[test]
    fn the_kinds_of_hint() {
        assert_eq!(
            classify(None, &azure(), BACKUPS, &HostAllowList::default()),
            Hint::None
        );
        assert_eq!(judge("  ", &azure()), Hint::None);
        assert_eq!(
            judge(
                "https://mine.blob.core.windows.net/customvision-backups/p%20-%20i.ONNX",
                &azure()
            ),
            Hint::Backup("p - i.ONNX".into())
        );
        let sas = "https://irisprodeuwtraining.blob.core.windows.net:443/m-0f/a1b2.zip?sv=2020-08-04&se=2026-12-02T00%3A00%3A00Z&sr=b&sp=r&sig=FAKE%2Bnot%2Freal";
        match judge(sas, &azure()) {
            Hint::Sas(url) => assert_eq!(
                url.host_str(),
                Some("irisprodeuwtraining.blob.core.windows.net")
            ),
            other => panic!("{other:?}"),
        }
        // The account's own endpoint, http included (Azurite), outside the backup container.
        assert!(matches!(
            judge(
                "http://127.0.0.1:41000/devstoreaccount1/exports/a.zip?sig=x",
                &azurite()
            ),
            Hint::Sas(_)
        ));
    }

    #[test]
    fn hostile_uris_are_refused() {
        for (raw, why) in [
            ("http://evil.blob.core.windows.net/c/b", "not https"),
            ("https://evil.example.com/c/b", "not in CV_MODEL_URI_HOSTS"),
            (
                "https://acct.b.blob.core.windows.net/c/b",
                "not in CV_MODEL_URI_HOSTS",
            ),
            (
                "https://blob.core.windows.net/c/b",
                "not in CV_MODEL_URI_HOSTS",
            ),
            (
                "https://evilblob.core.windows.net/c/b",
                "not in CV_MODEL_URI_HOSTS",
            ),
            (
                "https://acct.blob.core.windows.net.evil.com/c/b",
                "not in CV_MODEL_URI_HOSTS",
            ),
            (
                "https://acct.blob.core.windows.net./c/b",
                "not in CV_MODEL_URI_HOSTS",
            ),
            (
                "https://xn--80ak6aa92e.blob.core.windows.net/c/b",
                "not in CV_MODEL_URI_HOSTS",
            ),
            (
                "https://Acct_1.blob.core.windows.net/c/b",
                "not in CV_MODEL_URI_HOSTS",
            ),
            (
                "https://user:pw@acct.blob.core.windows.net/c/b",
                "user name or password",
            ),
            (
                "https://user@acct.blob.core.windows.net/c/b",
                "user name or password",
            ),
            (
                "https://evil.com@acct.blob.core.windows.net/c/b",
                "user name or password",
            ),
            (
                "https://acct.blob.core.windows.net@evil.com/c/b",
                "user name or password",
            ),
            ("https://10.0.0.1/c/b", "IP address"),
            ("https://[::1]/c/b", "IP address"),
            // Numeric hosts the parser rewrites to dotted quads.
            (
                "https://0x7f000001/c/b",
                "not written as a URL parser reads it",
            ),
            (
                "https://2130706433/c/b",
                "not written as a URL parser reads it",
            ),
            (
                "https://acct.blob.core.windows.net:8443/c/b",
                "port other than 443",
            ),
            (
                "https://acct.blob.core.windows.net/c/../../etc/b",
                "not written as a URL parser reads it",
            ),
            (
                "https://acct.blob.core.windows.net/c/./b",
                "not written as a URL parser reads it",
            ),
            ("https://acct.blob.core.windows.net/c/%2e%2e/b", "encoded"),
            ("https://acct.blob.core.windows.net/c%2Fb", "encoded"),
            ("https://acct.blob.core.windows.net/c/b%00", "encoded"),
            ("https://acct.blob.core.windows.net\\c\\b", "backslashes"),
            ("https://acct.blob.core.windows.net/c/b\tx", "whitespace"),
            ("https://acct.blob.core\t.windows.net/c/b", "whitespace"),
            ("https://acct.blob.core.windows.net/c/b c", "whitespace"),
            ("https://acct.blob.core.windows.net/c/b#frag", "fragment"),
            (
                "https://acct.blob.core.windows.net/c/b?x=<>",
                "not written as a URL parser reads it",
            ),
            ("https://ä.blob.core.windows.net/c/b", "non-ASCII"),
            (
                "https://acct.blob.core.windows.net/onlycontainer",
                "does not name a blob",
            ),
            (
                "https://acct.blob.core.windows.net/c//b",
                "does not name a blob",
            ),
            ("not a url", "whitespace"),
            ("nonsense", "not a URL"),
            ("file:///etc/passwd", "not https"),
            ("http://127.0.0.1:41001/devstoreaccount1/c/b", "not https"),
            ("https://127.0.0.1:41000/devstoreaccount1/c/b", "IP address"),
            ("http://127.0.0.1:41000/other/c/b", "does not name a blob"),
            (
                "http://127.0.0.1:41000/devstoreaccount1/x/../customvision-backups/b.ONNX",
                "not written as a URL parser reads it",
            ),
        ] {
            match judge(raw, &azurite()) {
                Hint::Refused(reason) => assert!(reason.contains(why), "{raw}: {reason}"),
                other => panic!("{raw} was not refused: {other:?}"),
            }
        }
    }

    #[test]
    fn case_and_an_explicit_default_port_are_not_tricks() {
        for raw in [
            "https://ACCT.Blob.Core.Windows.Net/c/b.zip?sig=x",
            "HTTPS://acct.blob.core.windows.net:443/c/b.zip",
        ] {
            assert!(matches!(judge(raw, &azure()), Hint::Sas(_)), "{raw}");
        }
    }
}
