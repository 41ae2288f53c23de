//! Where ARM is. The public cloud's endpoint by default; another one (a sovereign cloud, or a
//! test's stand-in) only over https, or over http on a loopback address, where the bearer
//! token cannot leave the machine.

use std::net::IpAddr;

use url::Url;

use super::{ArmConfigError, ArmError};

pub const PUBLIC_ARM: &str = "https://management.azure.com";

pub fn parse_endpoint(text: &str) -> Result<Url, ArmError> {
    let url = Url::parse(text.trim()).map_err(|source| ArmConfigError::NotAUrl {
        text: text.to_string(),
        source,
    })?;
    if url.cannot_be_a_base() || url.query().is_some() || url.fragment().is_some() {
        return Err(ArmConfigError::Endpoint(format!(
            "ARM endpoint '{text}' must be a base URL without query or fragment"
        ))
        .into());
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(ArmConfigError::Endpoint(format!(
            "ARM endpoint '{text}': http is allowed only on a loopback address (the bearer token would travel in clear)"
        ))
        .into()),
        other => Err(ArmConfigError::Endpoint(format!(
            "ARM endpoint '{text}': scheme '{other}' is not http(s)"
        ))
        .into()),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_http_only_on_loopback() {
        assert!(parse_endpoint("https://management.azure.com").is_ok());
        assert!(parse_endpoint("https://management.usgovcloudapi.net/").is_ok());
        for ok in [
            "http://127.0.0.1:4010",
            "http://127.8.9.10:1/",
            "http://[::1]:8080",
            "http://localhost:9",
        ] {
            assert!(parse_endpoint(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://management.azure.com",
            "http://10.0.0.1:80",
            "http://localhost.evil.example",
            "ftp://127.0.0.1",
            "https://h/?q=1",
            "https://h/#f",
            "not a url",
        ] {
            assert!(
                matches!(parse_endpoint(bad), Err(ArmError::Config(_))),
                "{bad}"
            );
        }
    }
}
