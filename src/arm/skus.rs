//! The Custom Vision training SKU in a region. `ResourceSkus_List` lists every Cognitive
//! Services SKU with its `kind`, `locations` and `restrictions`; a SKU is available in a
//! region when it is listed there and no `Location` restriction names the region
//! (`NotAvailableForSubscription`, `QuotaId`). `infra/` deploys kind `CustomVision.Training`
//! with SKU `customVisionSku`, `S0` by default (`F0` is the free one).

use serde_json::Value;

use super::{normalize_location, Verdict};

pub const KIND: &str = "CustomVision.Training";

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Why `sku` of kind [`KIND`] is not available in `location`; `None` when it is.
pub fn unavailable(skus: &[Value], sku: &str, location: &str) -> Option<String> {
    let wanted = normalize_location(location);
    let entries: Vec<&Value> = skus
        .iter()
        .filter(|s| str_field(s, "kind").is_some_and(|k| k.eq_ignore_ascii_case(KIND)))
        .filter(|s| str_field(s, "name").is_some_and(|n| n.eq_ignore_ascii_case(sku)))
        .filter(|s| str_field(s, "resourceType").is_none_or(|t| t.eq_ignore_ascii_case("accounts")))
        .collect();
    let here: Vec<&&Value> = entries
        .iter()
        .filter(|s| {
            s.get("locations")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .any(|l| normalize_location(l) == wanted)
        })
        .collect();
    if here.is_empty() {
        return Some(format!("{KIND} {sku} is not offered in {location}"));
    }
    for entry in &here {
        let restriction = entry
            .get("restrictions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|r| {
                let by_location =
                    str_field(r, "type").is_some_and(|t| t.eq_ignore_ascii_case("Location"));
                let names = r
                    .get("values")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .chain(
                        r.pointer("/restrictionInfo/locations")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten(),
                    )
                    .filter_map(Value::as_str)
                    .any(|l| normalize_location(l) == wanted);
                by_location && names
            });
        match restriction {
            None => return None,
            Some(r) if here.len() == 1 => {
                let reason = str_field(r, "reasonCode").unwrap_or("no reason given");
                return Some(format!(
                    "{KIND} {sku} is restricted in {location} for this subscription ({reason})"
                ));
            }
            Some(_) => {}
        }
    }
    Some(format!(
        "{KIND} {sku} is restricted in {location} for this subscription"
    ))
}

/// The check for `sku` (the infra's `customVisionSku`, `S0` by default), naming `F0` when only
/// that one is available.
pub fn decide(skus: &[Value], location: &str, sku: &str) -> Verdict {
    match unavailable(skus, sku, location) {
        None => Verdict::Pass(format!("{KIND} {sku} is available in {location}")),
        Some(why) => {
            let free =
                !sku.eq_ignore_ascii_case("F0") && unavailable(skus, "F0", location).is_none();
            let fix = if free {
                "only the free F0 is available there: deploy with customVisionSku=F0, or pick another region (--custom-vision-location here, customVisionLocation in the infra)".to_string()
            } else {
                format!("pick a region that offers it (`az cognitiveservices account list-skus --kind {KIND} --location <region>`) and pass it as --custom-vision-location here and customVisionLocation to the infra, or reuse an existing resource (existingCustomVisionName)")
            };
            Verdict::fail(why, fix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sku(kind: &str, name: &str, locations: &[&str], restrictions: Value) -> Value {
        json!({
            "resourceType": "accounts",
            "name": name,
            "tier": if name == "F0" { "Free" } else { "Standard" },
            "kind": kind,
            "locations": locations,
            "restrictions": restrictions,
        })
    }

    #[test]
    fn offered_and_unrestricted_passes() {
        let skus = [
            sku("CustomVision.Prediction", "S0", &["WESTUS"], json!([])),
            sku(KIND, "S0", &["WESTEUROPE"], json!([])),
            sku(KIND, "S0", &["EASTUS"], json!([])),
        ];
        assert_eq!(unavailable(&skus, "S0", "eastus"), None);
        assert!(matches!(
            decide(&skus, "West Europe", "S0"),
            Verdict::Pass(_)
        ));
    }

    #[test]
    fn not_offered_or_other_kind_only() {
        let skus = [sku("CustomVision.Prediction", "S0", &["EASTUS"], json!([]))];
        assert_eq!(
            unavailable(&skus, "S0", "eastus").as_deref(),
            Some("CustomVision.Training S0 is not offered in eastus")
        );
        assert!(unavailable(&[], "S0", "eastus").is_some());
        let other_type = [
            json!({"resourceType": "accounts/projects", "name": "S0", "kind": KIND, "locations": ["EASTUS"]}),
        ];
        assert!(unavailable(&other_type, "S0", "eastus").is_some());
    }

    #[test]
    fn location_restrictions_name_their_reason() {
        let restricted = json!([{
            "type": "Location",
            "values": ["EASTUS"],
            "restrictionInfo": {"locations": ["EASTUS"], "zones": []},
            "reasonCode": "NotAvailableForSubscription"
        }]);
        let skus = [sku(KIND, "S0", &["EASTUS"], restricted)];
        assert_eq!(
            unavailable(&skus, "S0", "eastus").as_deref(),
            Some("CustomVision.Training S0 is restricted in eastus for this subscription (NotAvailableForSubscription)")
        );
        // A zone restriction, or one for another region, does not take the region away.
        let zone = json!([{"type": "Zone", "values": ["EASTUS"], "reasonCode": "NotAvailableForSubscription"}]);
        assert_eq!(
            unavailable(&[sku(KIND, "S0", &["EASTUS"], zone)], "S0", "eastus"),
            None
        );
        let elsewhere =
            json!([{"type": "Location", "values": ["WESTUS"], "reasonCode": "QuotaId"}]);
        assert_eq!(
            unavailable(&[sku(KIND, "S0", &["EASTUS"], elsewhere)], "S0", "eastus"),
            None
        );
    }

    #[test]
    fn free_tier_only_is_named_in_the_fix() {
        let restricted =
            json!([{"type": "Location", "values": ["eastus"], "reasonCode": "QuotaId"}]);
        let skus = [
            sku(KIND, "S0", &["EASTUS"], restricted),
            sku(KIND, "F0", &["EASTUS"], json!([])),
        ];
        assert!(
            matches!(decide(&skus, "eastus", "S0"), Verdict::Fail { fix, .. } if fix.contains("F0"))
        );
        assert!(matches!(decide(&skus, "eastus", "F0"), Verdict::Pass(p) if p.contains("F0")));
        assert!(
            matches!(decide(&[], "eastus", "F0"), Verdict::Fail { fix, .. } if fix.contains("list-skus"))
        );
    }
}
