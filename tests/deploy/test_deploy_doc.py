"""docs/deploy.md's commands, read the way a shell would run them: the az route passes no
`infra/main.parameters.json` and sets every parameter it would have set; `func azure
functionapp publish` runs in the package folder after `make package`; the azd route switches
the alpha flag on before `azd up`; both routes start with `cvctl preflight`."""

import json
import re
import shlex

import pytest

from conftest import ROOT, SCRIPT

DOC = ROOT / "docs/deploy.md"


def sections():
    """`## ` heading -> text up to the next one."""
    out, name = {}, None
    for line in DOC.read_text().splitlines():
        if line.startswith("## "):
            name = line[3:].strip()
            out[name] = []
        elif name:
            out[name].append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def route(prefix):
    found = [text for name, text in sections().items() if name.startswith(prefix)]
    assert len(found) == 1, f"one section starting with {prefix!r}"
    return found[0]


def commands(text):
    """The commands of the ```sh blocks in `text`, in order, each with the folder it runs in:
    continuation lines joined, comments dropped, `cd X &&` and `cd X` lines followed."""
    out = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        cwd = "."
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            for part in re.split(r"\s*&&\s*", line):
                words = shlex.split(part, comments=True)
                if not words:
                    continue
                if words[0] == "cd":
                    cwd = words[1]
                    continue
                out.append((cwd, part, words))
    return out


def index_of(cmds, predicate, what):
    for i, (_cwd, line, words) in enumerate(cmds):
        if predicate(line, words):
            return i
    pytest.fail(f"no {what} in the route")


def parameter_args(words):
    """name -> value of every `-p`/`--parameters` argument of an az deployment command."""
    values, files = {}, []
    i = 0
    while i < len(words):
        if words[i] in ("-p", "--parameters"):
            i += 1
            while i < len(words) and not words[i].startswith("-"):
                if "=" in words[i] and not words[i].startswith("@"):
                    name, value = words[i].split("=", 1)
                    values[name] = value
                else:
                    files.append(words[i])
                i += 1
            continue
        i += 1
    return values, files


def placeholders():
    """The parameters of infra/main.parameters.json that azd fills from `${...}`."""
    params = json.loads((ROOT / "infra/main.parameters.json").read_text())["parameters"]
    return {k for k, v in params.items() if "${" in json.dumps(v)}


def test_the_az_route_sets_every_parameter_itself():
    cmds = commands(route("Route B"))
    deploys = [c for c in cmds if c[2][:4] == ["az", "deployment", "group", "create"]]
    assert deploys, "no az deployment group create"
    for _cwd, line, words in deploys:
        values, files = parameter_args(words)
        assert not [f for f in files if "main.parameters.json" in f], line
        assert "main.parameters.json" not in line
        missing = placeholders() - set(values)
        assert not missing, f"{sorted(missing)} would keep azd's placeholder: {line}"
        assert {"environmentName", "principalId", "principalType"} <= set(values)
        assert not [v for v in values.values() if "${" in v and not re.fullmatch(r'\$\{?\w+\}?', v)]
        assert values["principalType"] in ("User", "ServicePrincipal")


def test_the_principal_is_the_signed_in_user():
    cmds = commands(route("Route B"))
    _cwd, _line, words = next(c for c in cmds if c[2][:4] == ["az", "deployment", "group", "create"])
    values, _ = parameter_args(words)
    var = re.fullmatch(r"\$\{?(\w+)\}?", values["principalId"])
    assert var, values["principalId"]
    assign = [line for _c, line, _w in cmds if line.startswith(f"{var.group(1)}=")]
    assert assign and "az ad signed-in-user show --query id -o tsv" in assign[0]


def package_folder():
    match = re.search(r"^OUT=(\S+)$", SCRIPT.read_text(), re.M)
    return match.group(1)


def test_func_publish_runs_in_the_package_folder_after_make_package():
    cmds = commands(route("Route B"))
    built = index_of(cmds, lambda l, w: w[:2] == ["make", "package"], "make package")
    publish = index_of(
        cmds, lambda l, w: w[:4] == ["func", "azure", "functionapp", "publish"], "func publish"
    )
    assert built < publish
    assert cmds[publish][0] == package_folder()


def test_the_az_route_waits_for_the_roles_before_publishing():
    cmds = commands(route("Route B"))
    wait = index_of(cmds, lambda l, w: "scripts/wait-for-roles.sh" in w, "wait-for-roles")
    deploy = index_of(cmds, lambda l, w: w[:4] == ["az", "deployment", "group", "create"], "deploy")
    publish = index_of(cmds, lambda l, w: w[:2] == ["func", "azure"], "func publish")
    assert deploy < wait < publish
    # Every input the script needs is given to it.
    line = cmds[wait][1]
    for name in ("AZURE_PRINCIPAL_ID", "AZURE_STORAGE_BLOB_ENDPOINT", "MODEL_STORE_CONTAINER",
                 "AZURE_STORAGE_QUEUE_ENDPOINT", "CV_NOTIFICATION_QUEUE"):
        assert f"{name}=" in line, name


def test_the_azd_route_enables_the_alpha_feature_before_azd_up():
    cmds = commands(route("Route A"))
    flag = index_of(
        cmds, lambda l, w: w == ["azd", "config", "set", "alpha.language.custom", "on"], "alpha flag"
    )
    up = index_of(cmds, lambda l, w: w[:2] == ["azd", "up"], "azd up")
    assert flag < up
    assert "1.20.0" in route("Route A")


@pytest.mark.parametrize(
    "prefix, first_change",
    [("Route A", ["azd", "up"]), ("Route B", ["az", "group", "create"])],
)
def test_both_routes_start_with_the_preflight(prefix, first_change):
    cmds = commands(route(prefix))
    preflight = index_of(cmds, lambda l, w: "preflight" in w and w[0].endswith("cvctl"), "preflight")
    change = index_of(cmds, lambda l, w: w[: len(first_change)] == first_change, "first change")
    assert preflight < change
    assert {"--subscription", "--location"} <= set(cmds[preflight][2])


def test_no_route_passes_the_azd_parameter_file_to_az():
    for _cwd, line, words in commands(DOC.read_text()):
        if words[0] == "az":
            assert "main.parameters.json" not in line, line
