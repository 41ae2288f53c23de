//! The `modelUri` judge (`export::hint`). Property: no panic, and an accepted URL keeps the
//! documented rules: https (or the account's own endpoint), an allowed host name (no IP
//! literal), the default port, no userinfo, no fragment, a /container/blob path, and written
//! exactly as the parser serialises it (case of scheme and host and an explicit `:443` aside).
#![no_main]

use customvision_events::export::hint::{classify, Hint};
use customvision_events::settings::hosts::HostAllowList;
use libfuzzer_sys::fuzz_target;
use url::{Host, Url};

const BACKUPS: &str = "customvision-backups";

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(raw) = std::str::from_utf8(rest) else {
        return;
    };
    let endpoint = Url::parse(if selector & 1 == 0 {
        "https://mine.blob.core.windows.net"
    } else {
        "http://127.0.0.1:41000/devstoreaccount1"
    })
    .unwrap();
    let allowed = if selector & 2 == 0 {
        HostAllowList::default()
    } else {
        HostAllowList::parse("*.blob.core.chinacloudapi.cn, models.example.org").unwrap()
    };
    let hint = classify(Some(raw), &endpoint, BACKUPS, &allowed);
    let url = match &hint {
        Hint::Sas(url) => url,
        Hint::Backup(name) => {
            assert!(!name.is_empty());
            return;
        }
        Hint::None => {
            assert!(raw.trim().is_empty());
            return;
        }
        Hint::Refused(_) => return,
    };
    let own = url.scheme() == endpoint.scheme()
        && url.host() == endpoint.host()
        && url.port_or_known_default() == endpoint.port_or_known_default();
    if !own {
        assert_eq!(url.scheme(), "https", "{raw}");
        match url.host() {
            Some(Host::Domain(host)) => assert!(allowed.allows(host), "{raw}"),
            other => panic!("{raw}: host {other:?}"),
        }
        assert_eq!(url.port(), None, "{raw}");
    }
    assert!(
        url.username().is_empty() && url.password().is_none(),
        "{raw}"
    );
    assert!(url.fragment().is_none(), "{raw}");
    // Re-serialises to itself, and is what was written.
    assert_eq!(Url::parse(url.as_str()).as_ref(), Ok(url), "{raw}");
    let written = raw.trim();
    let (scheme, after) = written.split_once("://").unwrap();
    let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let authority = after[..authority_end].to_ascii_lowercase();
    let authority = authority.strip_suffix(":443").unwrap_or(&authority);
    assert_eq!(
        format!(
            "{}://{authority}{}",
            scheme.to_ascii_lowercase(),
            &after[authority_end..]
        ),
        url.as_str(),
        "{raw}"
    );
    let base = if own {
        endpoint.path().trim_end_matches('/')
    } else {
        ""
    };
    let path = url.path().strip_prefix(base).unwrap();
    let segments: Vec<&str> = path.strip_prefix('/').unwrap().split('/').collect();
    assert!(
        segments.len() >= 2 && segments.iter().all(|s| !s.is_empty()),
        "{raw}"
    );
});
