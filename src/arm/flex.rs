//! Flex Consumption in a region, and its `custom` runtime: what `az functionapp
//! list-flexconsumption-locations` and `list-flexconsumption-runtimes -l <region> --runtime
//! custom` answer, decided from the same ARM answers the same way.
//!
//! The runtimes come from `functionAppStacks` for the region. As azure-cli reads them
//! (`_FlexFunctionAppStackRuntimeHelper._parse_raw_stacks`, Azure/azure-cli
//! `src/azure-cli/azure/cli/command_modules/appservice/custom.py`, commit
//! 00429bd37d87f5951917c692a2e3a8ea497c01e1): for every stack, major and minor version, the
//! minor version's `stackSettings.linuxRuntimeSettings`; the runtime is its
//! `appSettingsDictionary.FUNCTIONS_WORKER_RUNTIME`, else the stack's `name`; and a version is
//! offered on Flex when one of its `Sku` entries has `skuCode` `FC1`. (`Sku`, capitalised, is
//! what azure-cli reads; it is not in the OpenAPI schema, so `sku` is read too.)

use serde_json::Value;

use super::{normalize_location, Verdict};

/// The SKU code of Flex Consumption plans.
pub const FLEX_SKU_CODE: &str = "FC1";

/// The runtime versions of `runtime` offered on Flex (FC1) in the stacks answer.
pub fn flex_versions(stacks: &[Value], runtime: &str) -> Vec<String> {
    let mut versions = Vec::new();
    for stack in stacks {
        let stack_name = stack.get("name").and_then(Value::as_str);
        let majors = stack
            .pointer("/properties/majorVersions")
            .and_then(Value::as_array);
        for major in majors.into_iter().flatten() {
            let minors = major.get("minorVersions").and_then(Value::as_array);
            for minor in minors.into_iter().flatten() {
                let Some(settings) = minor.pointer("/stackSettings/linuxRuntimeSettings") else {
                    continue;
                };
                let name = settings
                    .pointer("/appSettingsDictionary/FUNCTIONS_WORKER_RUNTIME")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .or(stack_name);
                if !name.is_some_and(|n| n.eq_ignore_ascii_case(runtime)) {
                    continue;
                }
                let skus = settings
                    .get("Sku")
                    .or_else(|| settings.get("sku"))
                    .and_then(Value::as_array);
                let on_flex = skus.into_iter().flatten().any(|s| {
                    s.get("skuCode")
                        .and_then(Value::as_str)
                        .is_some_and(|c| c.eq_ignore_ascii_case(FLEX_SKU_CODE))
                });
                let version = minor.get("value").and_then(Value::as_str);
                if let (true, Some(v)) = (on_flex, version) {
                    if !versions.iter().any(|known| known == v) {
                        versions.push(v.to_string());
                    }
                }
            }
        }
    }
    versions
}

/// Whether `location` is among the geoRegions ARM lists for `sku=FlexConsumption` (names
/// compared as azure-cli does: lower case, without spaces).
pub fn region_offers_flex(regions: &[Value], location: &str) -> bool {
    let wanted = normalize_location(location);
    regions.iter().any(|r| {
        ["name", "properties/name", "properties/displayName"]
            .iter()
            .filter_map(|p| r.pointer(&format!("/{p}")).and_then(Value::as_str))
            .any(|n| normalize_location(n) == wanted)
    })
}

/// The check: Flex in the region, then `runtime` on Flex there. `regions` is `None` when the
/// geoRegions list could not be read (the stacks answer decides alone then).
pub fn decide(
    regions: Option<&[Value]>,
    stacks: &[Value],
    location: &str,
    runtime: &str,
) -> Verdict {
    if let Some(regions) = regions {
        if !region_offers_flex(regions, location) {
            return Verdict::fail(
                format!("Flex Consumption is not offered in {location} to this subscription"),
                "pick a region from `az functionapp list-flexconsumption-locations` and pass it as --location (azd env set AZURE_LOCATION <region>)",
            );
        }
    }
    let versions = flex_versions(stacks, runtime);
    if versions.is_empty() {
        return Verdict::fail(
            format!("Flex Consumption in {location} offers no '{runtime}' runtime (no {FLEX_SKU_CODE} entry for it in the region's function app stacks)"),
            format!("pick a region where `az functionapp list-flexconsumption-runtimes -l <region> --runtime {runtime}` lists a version"),
        );
    }
    Verdict::Pass(format!(
        "Flex Consumption in {location} offers the '{runtime}' runtime {}",
        versions.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// One stack in the shape the API answers (FunctionAppStack with its minor versions).
    fn stack(name: &str, worker: Option<&str>, version: &str, skus: Value, key: &str) -> Value {
        let mut linux = json!({
            "runtimeVersion": version,
            "appSettingsDictionary": {},
            "appInsightsSettings": {"isSupported": true},
            "gitHubActionSettings": {"isSupported": false},
        });
        if let Some(w) = worker {
            linux["appSettingsDictionary"]["FUNCTIONS_WORKER_RUNTIME"] = json!(w);
        }
        linux[key] = skus;
        json!({
            "name": name,
            "type": "Microsoft.Web/locations/functionAppStacks",
            "properties": {
                "displayText": name,
                "value": name,
                "majorVersions": [{
                    "displayText": version,
                    "value": version,
                    "minorVersions": [{
                        "displayText": version,
                        "value": version,
                        "stackSettings": {"linuxRuntimeSettings": linux}
                    }]
                }]
            }
        })
    }

    fn fc1() -> Value {
        json!([{"skuCode": "FC1", "instanceMemoryMB": [{"size": 2048, "isDefault": true}]}])
    }

    #[test]
    fn custom_on_fc1_is_found_by_worker_runtime_or_stack_name() {
        let s = [stack("custom", Some("custom"), "1.0", fc1(), "Sku")];
        assert_eq!(flex_versions(&s, "custom"), vec!["1.0"]);
        let s = [stack("custom", None, "1.0", fc1(), "Sku")];
        assert_eq!(flex_versions(&s, "custom"), vec!["1.0"]);
        // The lower-case key the schema would use is read as well.
        let s = [stack("custom", Some("custom"), "1.0", fc1(), "sku")];
        assert_eq!(flex_versions(&s, "custom"), vec!["1.0"]);
    }

    #[test]
    fn no_fc1_entry_or_another_runtime_is_not_custom_on_flex() {
        let ep = json!([{"skuCode": "EP1"}]);
        assert!(flex_versions(
            &[stack("custom", Some("custom"), "1.0", ep, "Sku")],
            "custom"
        )
        .is_empty());
        assert!(flex_versions(
            &[stack("custom", Some("custom"), "1.0", json!(null), "Sku")],
            "custom"
        )
        .is_empty());
        assert!(flex_versions(
            &[stack("python", Some("python"), "3.11", fc1(), "Sku")],
            "custom"
        )
        .is_empty());
        // The worker runtime wins over the stack name, as in azure-cli.
        assert!(flex_versions(
            &[stack("custom", Some("node"), "1.0", fc1(), "Sku")],
            "custom"
        )
        .is_empty());
        assert!(flex_versions(&[], "custom").is_empty());
        assert!(flex_versions(&[json!({"name": "custom"}), json!(42)], "custom").is_empty());
    }

    #[test]
    fn windows_only_versions_are_not_flex() {
        let mut s = stack("custom", Some("custom"), "1.0", fc1(), "Sku");
        let settings = s["properties"]["majorVersions"][0]["minorVersions"][0]["stackSettings"]
            .as_object_mut()
            .unwrap();
        let linux = settings.remove("linuxRuntimeSettings").unwrap();
        settings.insert("windowsRuntimeSettings".into(), linux);
        assert!(flex_versions(&[s], "custom").is_empty());
    }

    #[test]
    fn regions_match_without_case_or_spaces() {
        let regions = [
            json!({"name": "East US", "properties": {"displayName": "East US", "orgDomain": "PUBLIC;DSERIES;FLEXCONSUMPTION"}}),
            json!({"name": "North Europe"}),
        ];
        assert!(region_offers_flex(&regions, "eastus"));
        assert!(region_offers_flex(&regions, "NorthEurope"));
        assert!(!region_offers_flex(&regions, "westus"));
        assert!(!region_offers_flex(&[], "eastus"));
    }

    #[test]
    fn decisions() {
        let regions = [json!({"name": "East US"})];
        let ok = [stack("custom", Some("custom"), "1.0", fc1(), "Sku")];
        assert!(
            matches!(decide(Some(&regions), &ok, "eastus", "custom"), Verdict::Pass(p) if p.contains("1.0"))
        );
        let no_region = decide(Some(&regions), &ok, "westus", "custom");
        assert!(
            matches!(&no_region, Verdict::Fail { what, fix } if what.contains("not offered in westus") && fix.contains("list-flexconsumption-locations"))
        );
        let no_custom = decide(Some(&regions), &[], "eastus", "custom");
        assert!(
            matches!(&no_custom, Verdict::Fail { fix, .. } if fix.contains("list-flexconsumption-runtimes"))
        );
        assert!(matches!(
            decide(None, &ok, "eastus", "custom"),
            Verdict::Pass(_)
        ));
    }
}
