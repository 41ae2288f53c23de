//! `CV_MODEL_URI_HOSTS`: the hosts a SAS `modelUri` may name ([`crate::export::hint`] judges
//! the rest of the URL).

/// `CV_MODEL_URI_HOSTS`: comma-separated hosts, exact (`acct.blob.core.windows.net`) or a
/// wildcard for one storage account name (`*.blob.core.windows.net`: 3 to 24 lower-case
/// letters and digits, as Azure names accounts; not `a.b.blob…`, not punycode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAllowList(Vec<String>);

impl HostAllowList {
    pub const DEFAULT: &'static str = "*.blob.core.windows.net";

    pub fn parse(setting: &str) -> Result<Self, String> {
        let patterns: Vec<String> = setting
            .split(',')
            .map(|p| p.trim().to_ascii_lowercase())
            .filter(|p| !p.is_empty())
            .collect();
        if patterns.is_empty() {
            return Err("names no host".into());
        }
        for p in &patterns {
            let host = p.strip_prefix("*.").unwrap_or(p);
            let labels_ok = host.split('.').count() >= 2
                && host.split('.').all(|l| {
                    !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !labels_ok {
                return Err(format!(
                    "'{p}' is not a host name or a '*.' wildcard over one (e.g. {})",
                    Self::DEFAULT
                ));
            }
        }
        Ok(Self(patterns))
    }

    pub fn allows(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.0.iter().any(|p| match p.strip_prefix("*.") {
            Some(suffix) => host
                .strip_suffix(suffix)
                .and_then(|account| account.strip_suffix('.'))
                .is_some_and(|account| {
                    (3..=24).contains(&account.len())
                        && account
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                }),
            None => host == *p,
        })
    }
}

impl Default for HostAllowList {
    fn default() -> Self {
        Self(vec![Self::DEFAULT[..].to_string()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists() {
        let list =
            HostAllowList::parse("*.blob.core.chinacloudapi.cn, models.example.org").unwrap();
        assert!(list.allows("acct.blob.core.chinacloudapi.cn"));
        assert!(list.allows("MODELS.example.org"));
        assert!(!list.allows("acct.blob.core.windows.net"));
        assert!(!list.allows("x.models.example.org"));
        for bad in [
            "",
            " , ",
            "*",
            "*.com.",
            "bad host",
            "*.*.net",
            "https://a.b",
        ] {
            assert!(HostAllowList::parse(bad).is_err(), "{bad:?}");
        }
    }
}
