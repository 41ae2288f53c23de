"""What `func azure functionapp publish` uploads, with Core Tools' own rules (coretools.py):
from the package folder, exactly the allow-list; from the repository root, `.funcignore` is an
allow-list too (its matcher's quirks included); and the worker runtime is set for publish."""

import json
import os

import pytest

from conftest import PACKAGE, ROOT, allow_list
from coretools import GitIgnoreParser, local_files, upload_set


# ---- the matcher is Core Tools', quirks and all (DEPLOY-NOTES.md) ----


@pytest.mark.parametrize(
    "patterns, path, accepted",
    [
        # Anchored at the start, closed by a word boundary: `target` denies target-notes.txt.
        ("target", "target/debug/x", False),
        ("target", "target-notes.txt", False),
        ("target", "src/target", True),
        ("target", "targets", True),
        # `*` is one path segment, `**` any run of characters.
        ("src/*.rs", "src/lib.rs", False),
        ("src/*.rs", "src/a/b.rs", True),
        ("src/**.rs", "src/a/b.rs", False),
        # A keep pattern wins over every deny; `!handler` also keeps handler.zip.
        ("*\n!handler", "handler", True),
        ("*\n!handler", "handler.zip", True),
        ("*\n!handler", "handlers", False),
        # A leading `/` is dropped; `#` lines are comments; lines are trimmed.
        ("/docs", "docs/deploy.md", False),
        ("# docs\n  docs  ", "docs/x", False),
        # `*` needs a word character: a name of only punctuation slips through.
        ("*", "-", True),
        ("*", ".env", False),
    ],
)
def test_the_matcher_behaves_as_core_tools(patterns, path, accepted):
    assert GitIgnoreParser(patterns).accepts(path) is accepted


def test_the_walk_skips_what_core_tools_always_skips(tmp_path):
    for rel in [
        "host.json",
        "local.settings.json",
        ".funcignore",
        ".gitignore",
        "sub/Local.Settings.json",
        ".git/config",
        "a/.vscode/settings.json",
        "a/keep.txt",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    assert set(local_files(str(tmp_path))) == {"host.json", "a/keep.txt"}


# ---- the documented route: publish from the package folder ----


def test_publishing_from_the_package_folder_uploads_exactly_the_allow_list(package):
    assert upload_set(str(PACKAGE)) == allow_list()


def test_publish_finds_the_worker_runtime_in_the_package_folder(package):
    # PublishFunctionAppAction.cs stops with "Worker runtime is not set" unless
    # FUNCTIONS_WORKER_RUNTIME is in the environment or in local.settings.json of the folder it
    # runs in (WorkerRuntimeLanguageHelper.GetCurrentWorkerRuntimeLanguage); Flex's
    # functionAppConfig.runtime.name is `custom`, which matches.
    settings = json.loads((PACKAGE / "local.settings.json").read_text())
    assert settings["Values"]["FUNCTIONS_WORKER_RUNTIME"] == "custom"
    assert "local.settings.json" not in upload_set(str(PACKAGE))


# ---- the repository root: .funcignore denies by default ----

STRAYS = [
    ".azure/dev/.env",
    ".azure/config.json",
    ".env",
    "target/x86_64-unknown-linux-musl/release/handler",
    "node_modules/azurite/package.json",
    "tests/e2e/data.json",
    "src/lib.rs",
    "Cargo.toml",
    "build/package.zip",
    "build/package/handler",
    "docs/deploy.md",
    "stray-added-next-year.txt",
    "Notifications/notes.txt",
    "host.json.orig",
    "new-folder/function.json",
]


def lay_out_root(tmp_path):
    """A repository root as a developer has it: the app's files, and everything else."""
    for rel in sorted(allow_list()) + STRAYS:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    (tmp_path / ".funcignore").write_text((ROOT / ".funcignore").read_text())
    return tmp_path


def test_publishing_from_the_root_uploads_only_the_app(tmp_path):
    root = lay_out_root(tmp_path)
    uploaded = upload_set(str(root))
    # host.json.orig rides along on `!host.json` (the matcher's word boundary after "json").
    assert uploaded == allow_list() | {"host.json.orig"}
    assert not [p for p in uploaded if p.startswith(".azure/") or p == ".env"]


def test_the_funcignore_has_a_keep_line_for_every_function():
    lines = [l.strip() for l in (ROOT / ".funcignore").read_text().splitlines()]
    rules = [l for l in lines if l and not l.startswith("#")]
    assert rules[0] == "*", "deny by default"
    assert set(rules[1:]) == {"!" + p for p in allow_list()}
