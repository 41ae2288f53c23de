//! May the caller create role assignments? The infra assigns roles (the app's identity on
//! storage, Custom Vision, Application Insights; optionally the deploying user), which needs
//! `Microsoft.Authorization/roleAssignments/write` at the resource group.
//!
//! `Permissions_ListForResourceGroup` answers one entry per role the caller holds there, each
//! with `actions` and `notActions`. As ARM evaluates them, an action is allowed when some
//! entry has an `actions` pattern that matches it and no `notActions` pattern of the same entry
//! does (a role's `notActions` subtract from that role only, never from another role). Patterns
//! compare without case, and `*` matches any run of characters, `/` included
//! (`Microsoft.Authorization/*/Write` matches `Microsoft.Authorization/roleAssignments/write`).
//! An entry with a `condition` (Role Based Access Control Administrator's constrained
//! delegation) allows only the assignments the condition allows.

use serde_json::Value;

use super::Verdict;

pub const ROLE_ASSIGNMENTS_WRITE: &str = "Microsoft.Authorization/roleAssignments/write";

/// `*`-wildcard match without case.
pub fn matches(pattern: &str, action: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let a: Vec<char> = action.to_lowercase().chars().collect();
    // Iterative glob with backtracking to the last `*`.
    let (mut pi, mut ai) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ai < a.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ai));
            pi += 1;
        } else if pi < p.len() && p[pi] == a[ai] {
            pi += 1;
            ai += 1;
        } else if let Some((sp, sa)) = star {
            pi = sp + 1;
            ai = sa + 1;
            star = Some((sp, sa + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn strings<'a>(entry: &'a Value, key: &str) -> impl Iterator<Item = &'a str> {
    entry
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// How an action is allowed by the permission entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed {
    No,
    Yes,
    /// Only by entries with a condition (ABAC): which assignments it allows is not known here.
    UnderCondition,
}

pub fn allowed(entries: &[Value], action: &str) -> Allowed {
    let mut conditional = false;
    for entry in entries {
        let granted = strings(entry, "actions").any(|p| matches(p, action))
            && !strings(entry, "notActions").any(|p| matches(p, action));
        if !granted {
            continue;
        }
        let condition = entry
            .get("condition")
            .and_then(Value::as_str)
            .is_some_and(|c| !c.trim().is_empty());
        if !condition {
            return Allowed::Yes;
        }
        conditional = true;
    }
    if conditional {
        Allowed::UnderCondition
    } else {
        Allowed::No
    }
}

pub fn decide(entries: &[Value], resource_group: &str) -> Verdict {
    match allowed(entries, ROLE_ASSIGNMENTS_WRITE) {
        Allowed::Yes => Verdict::Pass(format!(
            "you may create role assignments in resource group {resource_group}"
        )),
        Allowed::UnderCondition => Verdict::Pass(format!(
            "you may create role assignments in resource group {resource_group} under a condition: it must allow the roles the infra assigns (infra/app/rbac.bicep)"
        )),
        Allowed::No => Verdict::fail(
            format!("you may not create role assignments in resource group {resource_group} ({ROLE_ASSIGNMENTS_WRITE} is not among your permissions there)"),
            format!("ask an Owner of {resource_group} for 'Role Based Access Control Administrator' (or 'User Access Administrator') on it: `az role assignment create --assignee <you> --role \"Role Based Access Control Administrator\" --scope <the group's id>`"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wildcards_as_arm_reads_them() {
        assert!(matches("*", ROLE_ASSIGNMENTS_WRITE));
        assert!(matches("Microsoft.Authorization/*", ROLE_ASSIGNMENTS_WRITE));
        assert!(matches(
            "Microsoft.Authorization/*/Write",
            ROLE_ASSIGNMENTS_WRITE
        ));
        assert!(matches(
            "microsoft.authorization/roleassignments/WRITE",
            ROLE_ASSIGNMENTS_WRITE
        ));
        assert!(matches("*/write", ROLE_ASSIGNMENTS_WRITE));
        assert!(matches("Microsoft.*/role*/w*e", ROLE_ASSIGNMENTS_WRITE));
        assert!(!matches("*/read", ROLE_ASSIGNMENTS_WRITE));
        assert!(!matches(
            "Microsoft.Authorization/*/Delete",
            ROLE_ASSIGNMENTS_WRITE
        ));
        assert!(!matches(
            "Microsoft.Authorization/roleAssignments/write/x",
            ROLE_ASSIGNMENTS_WRITE
        ));
        assert!(!matches(
            "Microsoft.Authorization/roleDefinitions/*",
            ROLE_ASSIGNMENTS_WRITE
        ));
        assert!(!matches("", ROLE_ASSIGNMENTS_WRITE));
        assert!(matches("**", ""));
    }

    fn owner() -> Value {
        json!({"actions": ["*"], "notActions": [], "dataActions": [], "notDataActions": []})
    }

    fn contributor() -> Value {
        json!({"actions": ["*"], "notActions": [
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
            "Microsoft.Blueprint/blueprintAssignments/write",
            "Microsoft.Blueprint/blueprintAssignments/delete",
            "Microsoft.Compute/galleries/share/action"
        ], "dataActions": [], "notDataActions": []})
    }

    fn reader() -> Value {
        json!({"actions": ["*/read"], "notActions": [], "dataActions": [], "notDataActions": []})
    }

    fn uaa() -> Value {
        json!({"actions": ["*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"], "notActions": []})
    }

    #[test]
    fn roles_as_they_come() {
        assert_eq!(allowed(&[owner()], ROLE_ASSIGNMENTS_WRITE), Allowed::Yes);
        assert_eq!(
            allowed(&[contributor()], ROLE_ASSIGNMENTS_WRITE),
            Allowed::No
        );
        assert_eq!(allowed(&[reader()], ROLE_ASSIGNMENTS_WRITE), Allowed::No);
        assert_eq!(allowed(&[], ROLE_ASSIGNMENTS_WRITE), Allowed::No);
        // Another role's notActions do not take away what a role grants.
        assert_eq!(
            allowed(&[contributor(), uaa()], ROLE_ASSIGNMENTS_WRITE),
            Allowed::Yes
        );
        assert_eq!(
            allowed(
                &[json!({"notActions": ["*"]}), owner()],
                ROLE_ASSIGNMENTS_WRITE
            ),
            Allowed::Yes
        );
        // Malformed entries grant nothing.
        assert_eq!(
            allowed(
                &[json!({"actions": "*"}), json!(null)],
                ROLE_ASSIGNMENTS_WRITE
            ),
            Allowed::No
        );
    }

    #[test]
    fn conditions_are_named() {
        let rbac_admin = json!({
            "actions": ["Microsoft.Authorization/roleAssignments/write", "Microsoft.Authorization/roleAssignments/delete", "*/read"],
            "notActions": [],
            "condition": "((!(ActionMatches{'Microsoft.Authorization/roleAssignments/write'})) OR (@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {ba92f5b4-2d11-453d-a403-e96b0029c9fe}))",
            "conditionVersion": "2.0"
        });
        assert_eq!(
            allowed(std::slice::from_ref(&rbac_admin), ROLE_ASSIGNMENTS_WRITE),
            Allowed::UnderCondition
        );
        assert_eq!(
            allowed(&[rbac_admin, owner()], ROLE_ASSIGNMENTS_WRITE),
            Allowed::Yes
        );
    }

    #[test]
    fn verdicts() {
        assert!(
            matches!(decide(&[owner()], "rg-vision"), Verdict::Pass(p) if p.contains("rg-vision"))
        );
        assert!(
            matches!(decide(&[reader()], "rg-vision"), Verdict::Fail { fix, .. } if fix.contains("Role Based Access Control Administrator"))
        );
    }
}
