"""Shared facts for tests/deploy: where the package is, and what it may contain."""

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "build/package"
ZIP = ROOT / "build/package.zip"
SCRIPT = ROOT / "scripts/package.sh"


def function_folders():
    """Every function of the app: a top-level folder with a function.json, as the host finds
    them (one level below the app root)."""
    return sorted(
        p.name for p in ROOT.iterdir() if p.is_dir() and (p / "function.json").is_file()
    )


def allow_list():
    """What the host needs, and all the package may hold."""
    return {"handler", "host.json"} | {f"{f}/function.json" for f in function_folders()}


def script_functions():
    """The explicit FUNCTIONS list in scripts/package.sh."""
    match = re.search(r'^FUNCTIONS="([^"]*)"', SCRIPT.read_text(), re.M)
    assert match, "scripts/package.sh has no FUNCTIONS=\"...\" line"
    return sorted(match.group(1).split())


@pytest.fixture(scope="session")
def package():
    if not ZIP.is_file() or not PACKAGE.is_dir():
        pytest.fail("build/package and build/package.zip are missing: run `make package`")
    return PACKAGE


def folder_files(folder):
    """Every file under `folder`, hidden ones included, relative with `/`."""
    out = set()
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            out.add(os.path.relpath(os.path.join(dirpath, name), folder).replace(os.sep, "/"))
    return out
