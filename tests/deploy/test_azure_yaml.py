"""azure.yaml is one azd can load and deploy for a `language: custom` function service.

The rules, read from Azure/azure-dev at commit ae35809f496491989273d0edefdeb70f245f399b (the
files themselves are not copied here):
- cli/azd/cmd/container.go: a service with `language: custom` fails every azd command unless
  the alpha feature `language.custom` is on (cli/azd/resources/alpha_features.yaml); it came
  with azd 1.20.0 (cli/azd/CHANGELOG.md, 1.20.0, #5771; commit 8507aac13fed).
- cli/azd/pkg/project/framework_service_custom.go, Package: "'dist' required for custom
  language"; the package artifact is `dist` as given (project.go only turns `\\` into `/`).
- cli/azd/pkg/project/service_target_functionapp.go, Package: a package path ending in `.zip`
  is deployed as that zip; anything else is re-zipped by createDeployableZip
  (project_utils.go), which marks files executable only for Go (rzip.WithExecutableMatcher),
  so on Windows `handler` would lose its exec bit.
- schemas/v1.0/azure.yaml.json (commit 48865ed5ca16): the name pattern, the service and hook
  properties, the hook event names, `shell` in {sh, pwsh}, `run` required with `shell`.
"""

import re
import shlex

import pytest
import yaml

from conftest import ROOT, SCRIPT

NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SERVICE_KEYS = {
    "apiVersion", "resourceGroup", "resourceName", "project", "image", "host", "language",
    "module", "dist", "remoteBuild", "docker", "k8s", "config", "uses", "env", "hooks",
}
PROJECT_KEYS = {
    "name", "resourceGroup", "metadata", "infra", "services", "resources", "pipeline", "hooks",
    "requiredVersions", "state", "platform", "workflows", "cloud",
}
HOOK_KEYS = {
    "shell", "kind", "dir", "run", "continueOnError", "interactive", "windows", "posix",
    "secrets", "config",
}
PROJECT_EVENTS = {
    f"{when}{what}"
    for when in ("pre", "post")
    for what in ("provision", "infracreate", "infradelete", "down", "up", "deploy", "package",
                 "restore", "publish")
}
SERVICE_EVENTS = {
    f"{when}{what}"
    for when in ("pre", "post")
    for what in ("restore", "build", "package", "publish", "deploy")
}
# framework_service.go: the built-in languages (py and golang are aliases).
LANGUAGES = {"", "dotnet", "csharp", "fsharp", "js", "ts", "python", "py", "java", "go",
             "golang", "docker", "custom"}
CUSTOM_LANGUAGE_SINCE = (1, 20, 0)


def load():
    return yaml.safe_load((ROOT / "azure.yaml").read_text())


def script_value(name):
    match = re.search(rf"^{name}=(\S+)$", SCRIPT.read_text(), re.M)
    assert match, f"scripts/package.sh has no {name}="
    return match.group(1)


def lowest_version(constraint):
    """The lowest azd version a `>= X.Y.Z` range admits, or None when it has no lower bound."""
    match = re.fullmatch(r"\s*>=\s*(\d+)\.(\d+)\.(\d+)\s*", constraint or "")
    return tuple(int(g) for g in match.groups()) if match else None


def test_the_project_is_one_azd_loads():
    config = load()
    assert set(config) <= PROJECT_KEYS, set(config) - PROJECT_KEYS
    assert len(config["name"]) >= 2 and NAME.match(config["name"])
    assert set(config.get("hooks", {})) <= PROJECT_EVENTS


@pytest.mark.parametrize("name", sorted(load()["services"]))
def test_a_custom_service_has_what_azd_requires(name):
    config = load()
    service = config["services"][name]
    assert set(service) <= SERVICE_KEYS, set(service) - SERVICE_KEYS
    assert service["language"] in LANGUAGES
    if service["language"] != "custom":
        return
    # The alpha feature exists from 1.20.0 on: an older azd must refuse the project up front.
    since = lowest_version((config.get("requiredVersions") or {}).get("azd"))
    assert since is not None and since >= CUSTOM_LANGUAGE_SINCE, config.get("requiredVersions")
    assert service.get("dist"), "'dist' required for custom language"


def test_azd_deploys_the_zip_make_package_writes():
    service = load()["services"]["handler"]
    assert service["host"] == "function"
    dist = service["dist"]
    # A .zip is uploaded as it is: handler keeps mode 0777 from scripts/zip_package.py.
    assert dist.endswith(".zip")
    assert "\\" not in dist and not dist.startswith("/")
    assert (ROOT / service["project"] / dist).resolve() == (ROOT / script_value("ZIP")).resolve()


def hooks_of(config):
    for event, hook in (config.get("hooks") or {}).items():
        yield "project", event, hook
    for name, service in config["services"].items():
        for event, hook in (service.get("hooks") or {}).items():
            yield name, event, hook


@pytest.mark.parametrize("where, event, hook", list(hooks_of(load())))
def test_every_hook_is_valid_and_runs_a_script_that_exists(where, event, hook):
    assert event in (PROJECT_EVENTS if where == "project" else SERVICE_EVENTS), event
    for h in hook if isinstance(hook, list) else [hook]:
        assert set(h) <= HOOK_KEYS, set(h) - HOOK_KEYS
        assert h.get("shell", "sh") in ("sh", "pwsh")
        assert h.get("run"), "run is required with shell"
        assert not ("windows" in h and "posix" in h and "run" in h)
        assert h.get("continueOnError", False) is False, "a failed hook must stop azd"
        for word in shlex.split(h["run"]):
            if word.startswith("scripts/"):
                assert (ROOT / word).is_file(), word


def test_the_hooks_build_the_package_and_wait_for_the_roles():
    config = load()
    assert "scripts/package.sh" in config["services"]["handler"]["hooks"]["prepackage"]["run"]
    assert "scripts/wait-for-roles.sh" in config["hooks"]["postprovision"]["run"]
