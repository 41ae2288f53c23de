//! `cvctl preflight`: before anything is created, ask Azure Resource Manager whether the
//! subscription and region can take the infra, with the developer's `az login`. One line per
//! check, each failure with its fix; exit 0 when none fails, 1 when one does, 2 for a bad flag,
//! 3 when ARM could not be reached (or kept throttling).
//!
//! The requests and the decisions are in the library (`customvision_events::arm`); this file
//! only wires them to flags and lines. docs/preflight.md says what each check asks.

use std::sync::Arc;

use azure_identity::{AzureCliCredential, AzureCliCredentialOptions};
use customvision_events::arm::{
    self, flex, permissions, providers, skus, ArmAuth, ArmClient, ArmError, Verdict,
};
use customvision_events::http_client;
use customvision_events::settings::Secret;

use crate::context::CliError;

/// A bearer token for ARM taken as it is, instead of `az`: for tests and stand-ins only.
pub const TOKEN_ENV: &str = "CV_ARM_TOKEN";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The subscription to deploy into (its id, a GUID).
    #[arg(long, value_name = "ID")]
    pub subscription: String,
    /// The region of the Function App and the rest of the infra (e.g. eastus, westeurope).
    #[arg(long, value_name = "REGION")]
    pub location: String,
    /// The resource group the infra deploys into; without it the role-assignment check is
    /// skipped.
    #[arg(long, value_name = "NAME")]
    pub resource_group: Option<String>,
    /// The Custom Vision resource's region when it differs from --location (the infra's
    /// customVisionLocation).
    #[arg(long, value_name = "REGION")]
    pub custom_vision_location: Option<String>,
    /// The Custom Vision training SKU the infra deploys (its customVisionSku).
    #[arg(long, value_name = "SKU", default_value = "S0", value_parser = ["S0", "F0"])]
    pub custom_vision_sku: String,
    /// Azure Resource Manager's endpoint (https; http only on a loopback address).
    #[arg(long, value_name = "URL", env = "CV_ARM_ENDPOINT", default_value = arm::PUBLIC_ARM)]
    pub arm_endpoint: String,
}

pub type Results = Vec<(&'static str, Verdict)>;

fn usage_checks(args: &Args) -> Result<(), CliError> {
    uuid::Uuid::parse_str(args.subscription.trim()).map_err(|_| {
        CliError::usage(
            format!(
                "--subscription '{}' is not a subscription id",
                args.subscription
            ),
            "a GUID: `az account show --query id -o tsv`",
        )
    })?;
    for (flag, value) in [
        ("--location", Some(&args.location)),
        (
            "--custom-vision-location",
            args.custom_vision_location.as_ref(),
        ),
    ] {
        let Some(value) = value else { continue };
        let name = arm::normalize_location(value);
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(CliError::usage(
                format!("{flag} '{value}' is not a region name"),
                "e.g. eastus: `az account list-locations --query [].name -o tsv`",
            ));
        }
    }
    if let Some(rg) = &args.resource_group {
        // ARM's pattern for resource group names (^[-\w._()]+$, 1 to 90 characters).
        let ok = (1..=90).contains(&rg.chars().count())
            && rg
                .chars()
                .all(|c| c.is_alphanumeric() || "-_.()".contains(c))
            && !rg.ends_with('.');
        if !ok {
            return Err(CliError::usage(
                format!("--resource-group '{rg}' is not a resource group name"),
                "1 to 90 letters, digits, '-', '_', '.', '(' or ')', not ending in '.'",
            ));
        }
    }
    Ok(())
}

pub async fn run(args: &Args) -> Result<Results, CliError> {
    usage_checks(args)?;
    let subscription = args.subscription.trim().to_ascii_lowercase();
    let location = arm::normalize_location(&args.location);
    let endpoint = arm::parse_endpoint(&args.arm_endpoint)
        .map_err(|e| CliError::usage(e.to_string(), "--arm-endpoint / CV_ARM_ENDPOINT"))?;
    let auth = match std::env::var(TOKEN_ENV)
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        Some(token) => {
            eprintln!("cvctl: using the bearer token in {TOKEN_ENV} (a test and development path), not az");
            ArmAuth::StaticToken(Secret::new(token.trim()))
        }
        None => {
            let options = AzureCliCredentialOptions {
                subscription: Some(subscription.clone()),
                ..Default::default()
            };
            let credential = AzureCliCredential::new(Some(options)).map_err(|e| {
                CliError::usage(
                    format!("cannot use the Azure CLI credential: {e}"),
                    "az login",
                )
            })?;
            ArmAuth::Credential(credential as Arc<_>)
        }
    };
    let client = ArmClient::new(http_client(), endpoint, auth);
    let mut results: Results = Vec::new();

    let flex = async {
        let regions = client.flex_regions(&subscription).await?;
        let stacks = client.function_app_stacks(&location, "custom").await?;
        Ok(flex::decide(Some(&regions), &stacks, &location, "custom"))
    };
    if !record(&mut results, "flex custom", flex.await, &subscription)? {
        return Ok(results);
    }

    let registered = async {
        let mut states = Vec::new();
        for namespace in providers::REQUIRED.iter().chain(providers::OPTIONAL.iter()) {
            let provider = client.provider(&subscription, namespace).await?;
            states.push((
                *namespace,
                providers::registration_state(&provider).map(str::to_string),
            ));
        }
        Ok(providers::decide(&states))
    };
    if !record(&mut results, "providers", registered.await, &subscription)? {
        return Ok(results);
    }

    match &args.resource_group {
        None => results.push((
            "role assignments",
            Verdict::Skip(
                "not checked: give --resource-group, the group the infra deploys into".into(),
            ),
        )),
        Some(rg) => {
            let checked = match client
                .permissions_for_resource_group(&subscription, rg)
                .await
            {
                Err(ArmError::Service {
                    status: 404, code, ..
                }) if code.eq_ignore_ascii_case("ResourceGroupNotFound") => Ok(Verdict::fail(
                    format!("resource group {rg} does not exist in subscription {subscription}"),
                    format!("az group create -n {rg} -l {location}"),
                )),
                other => other.map(|entries| permissions::decide(&entries, rg)),
            };
            if !record(&mut results, "role assignments", checked, &subscription)? {
                return Ok(results);
            }
        }
    }

    let cv_location = args
        .custom_vision_location
        .as_deref()
        .map(arm::normalize_location)
        .unwrap_or_else(|| location.clone());
    let sku = client
        .cognitive_skus(&subscription)
        .await
        .map(|list| skus::decide(&list, &cv_location, &args.custom_vision_sku));
    record(&mut results, "custom vision", sku, &subscription)?;
    Ok(results)
}

/// Adds a check's line. A sign-in failure becomes the last line (every other request would
/// fail the same way): `false` then. No answer at all ends the command (exit 3), after the
/// lines so far.
fn record(
    results: &mut Results,
    name: &'static str,
    outcome: Result<Verdict, ArmError>,
    subscription: &str,
) -> Result<bool, CliError> {
    let error = match outcome {
        Ok(verdict) => {
            results.push((name, verdict));
            return Ok(true);
        }
        Err(e) => e,
    };
    match &error {
        ArmError::SignIn(_) | ArmError::Unauthorized { .. } => {
            results.push((
                "sign-in",
                Verdict::fail(
                    error.to_string(),
                    format!("az login, then az account set --subscription {subscription}"),
                ),
            ));
            Ok(false)
        }
        ArmError::Throttled { retry_after, .. } => {
            print(results);
            let wait = retry_after
                .map(|d| format!("wait {} s and run preflight again", d.as_secs().max(1)))
                .unwrap_or_else(|| "wait a minute and run preflight again".into());
            Err(CliError::unreachable(error.to_string(), wait))
        }
        ArmError::Unreachable { .. } => {
            print(results);
            Err(CliError::unreachable(
                error.to_string(),
                "is the network up, and --arm-endpoint right?",
            ))
        }
        ArmError::Config(_) => Err(CliError::usage(error.to_string(), "--arm-endpoint")),
        ArmError::Service { status: 403, .. } => {
            results.push((
                name,
                Verdict::fail(
                    error.to_string(),
                    format!("you need at least Reader on subscription {subscription}; check `az account show` names the subscription you meant"),
                ),
            ));
            Ok(true)
        }
        ArmError::Service { status: 404, .. } => {
            results.push((
                name,
                Verdict::fail(
                    error.to_string(),
                    "check --subscription: `az account list --query [].id -o tsv`",
                ),
            ));
            Ok(true)
        }
        ArmError::Service { .. } | ArmError::Decode { .. } => {
            results.push((
                name,
                Verdict::fail(error.to_string(), "run preflight again; if it persists, check the answer with `az rest --method get --url <the request>`"),
            ));
            Ok(true)
        }
    }
}

/// One line per check, a failure's fix under it; `true` when none failed.
pub fn print(results: &Results) -> bool {
    let mut all = true;
    for (name, verdict) in results {
        match verdict {
            Verdict::Pass(detail) => println!("PASS  {name}: {detail}"),
            Verdict::Skip(detail) => println!("SKIP  {name}: {detail}"),
            Verdict::Fail { what, fix } => {
                all = false;
                println!("FAIL  {name}: {what}\n      fix: {fix}");
            }
        }
    }
    all
}
