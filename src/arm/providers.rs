//! Resource providers: the subscription must be registered with every namespace the infra
//! deploys into, or the deployment fails with `MissingSubscriptionRegistration`. Read from
//! `Providers_Get`'s `registrationState` (`Registered`, `NotRegistered`, `Registering`,
//! `Unregistering`).

use serde_json::Value;

use super::Verdict;

/// The namespaces `infra/` deploys resources of (Microsoft.Authorization is built in).
pub const REQUIRED: [&str; 6] = [
    "Microsoft.Web",
    "Microsoft.Storage",
    "Microsoft.CognitiveServices",
    "Microsoft.ManagedIdentity",
    "Microsoft.Insights",
    "Microsoft.OperationalInsights",
];

/// Needed only with the optional Key Vault (`trainingKeyInKeyVault`).
pub const OPTIONAL: [&str; 1] = ["Microsoft.KeyVault"];

/// A provider's `registrationState`, `None` when the answer has none.
pub fn registration_state(provider: &Value) -> Option<&str> {
    provider.get("registrationState").and_then(Value::as_str)
}

/// `states` holds each namespace with its state (`None`: not in the answer).
pub fn decide(states: &[(&str, Option<String>)]) -> Verdict {
    let is_registered = |s: &Option<String>| {
        s.as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("Registered"))
    };
    let mut missing = Vec::new();
    let mut pending = Vec::new();
    let mut optional_missing = Vec::new();
    for (namespace, state) in states {
        if is_registered(state) {
            continue;
        }
        if OPTIONAL.contains(namespace) {
            optional_missing.push(*namespace);
        } else if state
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("Registering"))
        {
            pending.push(*namespace);
        } else {
            missing.push((
                *namespace,
                state.clone().unwrap_or_else(|| "unknown".into()),
            ));
        }
    }
    let note = if optional_missing.is_empty() {
        String::new()
    } else {
        format!(
            " ({} not registered: needed only with trainingKeyInKeyVault; `az provider register -n {}`)",
            optional_missing.join(", "),
            optional_missing.join("` and `az provider register -n ")
        )
    };
    if !missing.is_empty() {
        let what = missing
            .iter()
            .map(|(n, s)| format!("{n} is {s}"))
            .collect::<Vec<_>>()
            .join(", ");
        let fix = missing
            .iter()
            .map(|(n, _)| format!("az provider register -n {n} --wait"))
            .collect::<Vec<_>>()
            .join(" && ");
        return Verdict::fail(format!("{what}{note}"), fix);
    }
    if !pending.is_empty() {
        return Verdict::fail(
            format!("{} still registering{note}", pending.join(", ")),
            format!(
                "wait until `az provider show -n {} --query registrationState` says Registered",
                pending[0]
            ),
        );
    }
    let checked = states.len() - optional_missing.len();
    Verdict::Pass(format!("{checked} resource providers registered{note}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn all(state: &str) -> Vec<(&'static str, Option<String>)> {
        REQUIRED
            .iter()
            .chain(OPTIONAL.iter())
            .map(|n| (*n, Some(state.to_string())))
            .collect()
    }

    #[test]
    fn state_is_read_from_the_provider() {
        let p = json!({"id": "/subscriptions/s/providers/Microsoft.Web", "namespace": "Microsoft.Web", "registrationState": "Registered"});
        assert_eq!(registration_state(&p), Some("Registered"));
        assert_eq!(registration_state(&json!({})), None);
    }

    #[test]
    fn all_registered_passes() {
        assert_eq!(
            decide(&all("Registered")),
            Verdict::Pass("7 resource providers registered".into())
        );
        // Case as ARM may spell it.
        assert!(matches!(decide(&all("registered")), Verdict::Pass(_)));
    }

    #[test]
    fn one_not_registered_fails_with_its_register_command() {
        let mut s = all("Registered");
        s[2].1 = Some("NotRegistered".into());
        match decide(&s) {
            Verdict::Fail { what, fix } => {
                assert_eq!(what, "Microsoft.CognitiveServices is NotRegistered");
                assert_eq!(
                    fix,
                    "az provider register -n Microsoft.CognitiveServices --wait"
                );
            }
            other => panic!("{other:?}"),
        }
        s[0].1 = None;
        match decide(&s) {
            Verdict::Fail { what, fix } => {
                assert!(what.starts_with("Microsoft.Web is unknown, Microsoft.CognitiveServices"));
                assert!(fix.contains("-n Microsoft.Web --wait && az provider register -n Microsoft.CognitiveServices"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn registering_asks_to_wait_and_optional_only_notes() {
        let mut s = all("Registered");
        s[1].1 = Some("Registering".into());
        assert!(
            matches!(decide(&s), Verdict::Fail { fix, .. } if fix.contains("az provider show -n Microsoft.Storage"))
        );
        let mut s = all("Registered");
        let last = s.len() - 1;
        s[last].1 = Some("NotRegistered".into());
        match decide(&s) {
            Verdict::Pass(p) => {
                assert!(p.starts_with("6 resource providers registered"));
                assert!(p.contains("Microsoft.KeyVault not registered"));
            }
            other => panic!("{other:?}"),
        }
    }
}
