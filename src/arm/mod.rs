//! Azure Resource Manager, asked before anything is created (`cvctl preflight`): does the
//! region offer what the infra deploys, and may the signed-in developer deploy it?
//!
//! - [`client`]: [`ArmClient`], the few GET requests, on the process's one HTTP client, each
//!   with its retries (429, 5xx, `Retry-After`) inside one deadline;
//! - [`endpoint`]: where ARM is (`https://management.azure.com`, or a loopback stand-in);
//! - [`verdict`]: [`Verdict`], one check's answer with its fix;
//! - one module per check, each a pure function from parsed answers to a [`Verdict`]:
//!   [`flex`] (Flex Consumption and its `custom` runtime in the region), [`providers`]
//!   (resource providers registered), [`permissions`] (may create role assignments),
//!   [`skus`] (the Custom Vision SKU offered in the region).
//!
//! Every path, query and api-version is cited where it is built ([`client`]), and
//! `tests/suite/preflight_contract.rs` checks each request against the operations of the
//! official OpenAPI documents (Azure/azure-rest-api-specs).

pub(crate) mod client;
pub(crate) mod endpoint;
pub mod flex;
pub mod permissions;
pub mod providers;
pub mod skus;
pub(crate) mod verdict;

pub use client::{
    ArmAuth, ArmClient, ArmConfigError, ArmError, ArmPolicy, DecodeReason, SignInError,
    UnreachableReason, ARM_SCOPE,
};
pub use endpoint::{parse_endpoint, PUBLIC_ARM};
pub use verdict::Verdict;

/// A region name as ARM compares them: `West Europe`, `westeurope` and `WestEurope` are one
/// region (azure-cli normalises geoRegion names the same way: lower case, spaces removed).
pub fn normalize_location(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn locations_compare_without_case_and_spaces() {
        assert_eq!(super::normalize_location("West Europe"), "westeurope");
        assert_eq!(super::normalize_location(" EastUS2 "), "eastus2");
    }
}
