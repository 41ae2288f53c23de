"""The Function App is a Flex Consumption app and sends Flex nothing it rejects.

Issue 14, items 1 and 5: Flex answers "... for Flex Consumption sites is invalid" to site
properties and app settings it deprecated, and Elastic Premium cannot be published with
identity only, so it is not offered. Each rule is a function returning problems, run on the
real infra (expect none) and on a broken snippet (expect some).
"""
from __future__ import annotations

from pathlib import Path

import bicep_ast as b

MAIN = b.INFRA / "main.bicep"
FUNCTION = b.INFRA / "app" / "function.bicep"
SITE = "Microsoft.Web/sites"
PLAN = "Microsoft.Web/serverfarms"

# The "Flex Consumption plan deprecations" list: site properties and app settings a Flex app
# must not set. Source: MicrosoftDocs/azure-docs, articles/azure-functions/functions-app-settings.md,
# section "Flex Consumption plan deprecations"
# (https://learn.microsoft.com/azure/azure-functions/functions-app-settings#flex-consumption-plan-deprecations).
# What could be read here, and from where:
# - The search index holds no revision of that page new enough to have the section (its newest,
#   commit 7370f97afdc02075cd9bc43f027a4e31740f2616, predates Flex). The table first appeared in
#   articles/azure-functions/flex-consumption-plan.md, "Deprecated properties and settings"
#   (preview revision, read verbatim here); the page later moved it to functions-app-settings.md.
#   Every entry not marked otherwise below is from that table.
# - Entries marked "current page" are those the current section adds, taken from copies that
#   quote it (a Microsoft agent-skill reference for Flex Bicep, two migration notes) and from
#   /work/shared/DEPLOY-NOTES.md; they were not read verbatim from the page here.
# Listing one too many is harmless: the template sets none of these.
FLEX_DEPRECATED_SITE_PROPERTIES = {
    # property (leaf name under properties / properties.siteConfig): reason in the docs
    "ftpsState": "FTPS not supported",
    "use32BitWorkerProcess": "32-bit not supported",
    "isReserved": "Not valid",
    "IsXenon": "Not valid",
    "windowsFxVersion": "Not valid",
    "alwaysOn": "Not valid",
    "preWarmedInstanceCount": "Renamed (always-ready instances in functionAppConfig)",
    "functionAppScaleLimit": "Renamed as maximumInstanceCount",
    "containerSize": "Renamed as instanceMemoryMB",
    "javaVersion": "Replaced by version in functionAppConfig.runtime",
    "powerShellVersion": "Replaced by version in functionAppConfig.runtime",
    "netFrameworkVersion": "Replaced by version in functionAppConfig.runtime",
    "linuxFxVersion": "Replaced by functionAppConfig.runtime",
}
FLEX_DEPRECATED_APP_SETTINGS = {
    "WEBSITE_NODE_DEFAULT_VERSION": "Replaced by version in functionAppConfig.runtime",
    "FUNCTIONS_EXTENSION_VERSION": "App setting set by the backend",
    "FUNCTIONS_WORKER_RUNTIME": "Replaced by name in functionAppConfig.runtime",
    "FUNCTIONS_WORKER_RUNTIME_VERSION": "Replaced by version in functionAppConfig.runtime",
    "FUNCTIONS_MAX_HTTP_CONCURRENCY": "Replaced by scale and concurrency's trigger section",
    "FUNCTIONS_WORKER_PROCESS_COUNT": "Setting not valid",
    "FUNCTIONS_WORKER_DYNAMIC_CONCURRENCY_ENABLED": "Setting not valid",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING": "Replaced by functionAppConfig's deployment section",
    "WEBSITE_CONTENTSHARE": "Replaced by functionAppConfig's deployment section",
    # current page
    "WEBSITE_RUN_FROM_PACKAGE": "Not used for deployments on Flex",
    "SCM_DO_BUILD_DURING_DEPLOYMENT": "Replaced by the remoteBuild deployment parameter",
    "ENABLE_ORYX_BUILD": "Replaced by the remoteBuild deployment parameter",
    "WEBSITE_CONTENTOVERVNET": "Content share not used on Flex",
    "WEBSITE_SKIP_CONTENTSHARE_VALIDATION": "Content share not used on Flex",
    "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT": "Replaced by maximumInstanceCount",
    "WEBSITE_VNET_ROUTE_ALL": "Not used for networking on Flex",
    "WEBSITE_DNS_SERVER": "DNS comes from the integrated VNet",
    "FUNCTIONS_WORKER_SHARED_MEMORY_DATA_TRANSFER_ENABLED": "Setting not valid",
    "WEBSITE_TIME_ZONE": "Not supported on Flex",
    "TZ": "Not supported on Flex",
    "WEBSITE_MOUNT_ENABLED": "Not used on Flex",
    "WEBSITE_USE_PLACEHOLDER_DOTNETISOLATED": "Not used on Flex",
    "WEBSITES_CONTAINER_START_TIME_LIMIT": "Not supported on Flex",
}

# Settings the template must never write on any plan (issue 14 item 5): the run-from-package
# and worker settings of the plans it no longer offers.
NEVER_SET = {"WEBSITE_RUN_FROM_PACKAGE", "FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION"}


def _site(path: Path) -> b.Resource:
    return next(r for r in b.resources(b.parse_file(path), path) if r.type == SITE and not r.existing)


def _property_leaves(node, prefix: str = "") -> list[str]:
    """Every property path of an object literal, depth first (a.b.c)."""
    out: list[str] = []
    for key, value in b.object_props(node).items():
        path = f"{prefix}{key}"
        out.append(path)
        inner = [value] if value.type == "object" else [c for c in value.children if c.type == "object"]
        for obj in inner:  # plain objects and both branches of a ternary
            out += _property_leaves(obj, path + ".")
    return out


def _keys_of(tree, node, seen: set[str] | None = None) -> set[str]:
    """Top-level keys of every object an expression can evaluate to: object literals, both
    branches of a ternary, the arguments of union(), and variables of the same file."""
    seen = set() if seen is None else seen
    keys: set[str] = set()
    if node is None:
        return keys
    if node.type == "object":
        return set(b.object_props(node))
    if node.type == "identifier":
        name = b.text(node)
        variables = b.variable_values(tree)
        if name in variables and name not in seen:
            seen.add(name)
            keys |= _keys_of(tree, variables[name], seen)
        return keys
    for child in node.children:
        keys |= _keys_of(tree, child, seen)
    return keys


def app_setting_names(main: Path = MAIN, function: Path = FUNCTION) -> set[str]:
    """Every app setting name the site can receive: function.bicep's own variables and the
    appSettings object main.bicep passes in."""
    ftree, mtree = b.parse_file(function), b.parse_file(main)
    site = _site(function)
    expr = b.prop(site.body, "properties.siteConfig.appSettings")
    names = _keys_of(ftree, expr)
    if "appSettings" in b.identifiers_in(expr):
        names |= _keys_of(mtree, b.prop(b.module_params(mtree, "function"), "appSettings"))
    return names


def flex_problems(main: Path = MAIN, function: Path = FUNCTION) -> list[str]:
    problems = []
    site = _site(function)
    deprecated = {k.lower(): k for k in FLEX_DEPRECATED_SITE_PROPERTIES}
    for path in _property_leaves(b.prop(site.body, "properties")):
        if path.startswith("functionAppConfig"):
            continue
        leaf = path.rsplit(".", 1)[-1]
        if leaf.lower() in deprecated:
            problems.append(f"{site.where}: properties.{path} is deprecated on Flex "
                            f"({FLEX_DEPRECATED_SITE_PROPERTIES[deprecated[leaf.lower()]]})")
    banned = {k.upper() for k in FLEX_DEPRECATED_APP_SETTINGS}
    for name in sorted(app_setting_names(main, function)):
        if name.upper() in banned:
            problems.append(f"app setting {name} is deprecated on Flex "
                            f"({FLEX_DEPRECATED_APP_SETTINGS.get(name, '')})")
    return problems


def plan_problems(function: Path = FUNCTION) -> list[str]:
    tree = b.parse_file(function)
    problems = []
    plans = [r for r in b.resources(tree, function) if r.type == PLAN and not r.existing]
    if len(plans) != 1:
        problems.append(f"{len(plans)} plans declared, want exactly one")
    for plan in plans:
        name, tier = b.prop(plan.body, "sku.name"), b.prop(plan.body, "sku.tier")
        if b.literal(name) != "FC1" or b.literal(tier) != "FlexConsumption":
            problems.append(f"{plan.where}: sku is {b.text(name)}/{b.text(tier)}, want the literal FC1/FlexConsumption")
    site = _site(function)
    cfg = b.prop(site.body, "properties.functionAppConfig")
    if cfg is None or cfg.type != "object":
        problems.append(f"{site.where}: functionAppConfig is {b.text(cfg)[:40]!r}, want an object on every deployment")
    return problems


# ---------------------------------------------------------------- issue 14 item 1

def test_flex_site_sets_nothing_flex_deprecates():
    leaves = _property_leaves(b.prop(_site(FUNCTION).body, "properties"))
    assert "siteConfig.minTlsVersion" in leaves and "functionAppConfig.runtime.name" in leaves, leaves
    problems = flex_problems()
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- issue 14 item 5

def test_the_only_plan_is_flex_consumption_fc1():
    problems = plan_problems()
    assert not problems, "\n".join(problems)
    for path in (MAIN, FUNCTION):
        params = b.declarations(b.parse_file(path), "parameter_declaration")
        assert "hostingPlan" not in params, f"{path.name} still offers another hosting plan"
        assert "ElasticPremium" not in path.read_text() and "'EP1'" not in path.read_text(), path.name


def test_no_run_from_package_or_worker_settings():
    names = {n.upper() for n in app_setting_names()}
    assert names, "no app settings found: the reader is broken"
    assert "CV_STORAGE__CREDENTIAL" in names and "AZUREWEBJOBSSTORAGE__CREDENTIAL" in names
    assert not names & NEVER_SET, sorted(names & NEVER_SET)


PLAN_SNIPPET = """
param hostingPlan string = 'FlexConsumption'
var isFlex = hostingPlan == 'FlexConsumption'
var planSettings = isFlex ? {} : {
  FUNCTIONS_WORKER_RUNTIME: 'custom'
  WEBSITE_RUN_FROM_PACKAGE: '1'
}
resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'p'
  sku: isFlex ? {
    name: 'FC1'
    tier: 'FlexConsumption'
  } : {
    name: 'EP1'
    tier: 'ElasticPremium'
  }
}
resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: 's'
  properties: {
    siteConfig: {
      ftpsState: 'Disabled'
      alwaysOn: true
      appSettings: [for s in items(union(appSettings, planSettings)): {
        name: s.key
        value: s.value
      }]
    }
    functionAppConfig: isFlex ? {} : null
  }
}
"""

MAIN_SNIPPET = """
module function 'f.bicep' = {
  name: 'f'
  params: {
    appSettings: {
      WEBSITE_CONTENTSHARE: 'x'
      MINE: 'y'
    }
  }
}
"""


def test_rules_catch_an_elastic_premium_site(tmp_path):
    fn, main = tmp_path / "function.bicep", tmp_path / "main.bicep"
    fn.write_text(PLAN_SNIPPET)
    main.write_text(MAIN_SNIPPET)
    plan_text = "\n".join(plan_problems(fn))
    assert "want the literal FC1/FlexConsumption" in plan_text and "functionAppConfig" in plan_text, plan_text
    names = app_setting_names(main, fn)
    assert {"FUNCTIONS_WORKER_RUNTIME", "WEBSITE_RUN_FROM_PACKAGE", "WEBSITE_CONTENTSHARE", "MINE"} <= names, names
    flex_text = "\n".join(flex_problems(main, fn))
    for expected in ("siteConfig.ftpsState", "siteConfig.alwaysOn", "FUNCTIONS_WORKER_RUNTIME",
                     "WEBSITE_RUN_FROM_PACKAGE", "WEBSITE_CONTENTSHARE"):
        assert expected in flex_text, f"{expected!r} not reported in:\n{flex_text}"
