"""checkov's Bicep checks on infra/: everything parsed, something scanned, nothing failing,
every suppression reviewed (see checkov_policy.py)."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import bicep_ast as b
from checkov_policy import ACCEPTED_FAILURES, REVIEWED_INLINE_SKIPS


def _checkov_bin() -> str:
    beside = Path(sys.executable).parent / "checkov"
    found = str(beside) if beside.exists() else shutil.which("checkov")
    if not found:
        pytest.fail("checkov is not installed (scripts/check-infra.sh installs it)")
    return found


def run_checkov(directory: Path) -> dict:
    proc = subprocess.run(
        [_checkov_bin(), "-d", str(directory), "--framework", "bicep", "--skip-download",
         "-o", "json", "--compact"],
        capture_output=True, text=True, timeout=600,
    )
    # checkov exits 1 on failed checks and 0 when it parsed nothing: judge the JSON.
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov printed no JSON (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    if isinstance(report, list):  # one entry per framework
        report = next(r for r in report if r.get("check_type") == "bicep")
    if "results" not in report:  # nothing found at all: {"passed": 0, "failed": 0, ...}
        report = {"summary": report, "results": {"passed_checks": [], "failed_checks": [], "skipped_checks": []}}
    return report


@pytest.fixture(scope="session")
def report() -> dict:
    return run_checkov(b.INFRA)


def test_every_file_parsed(report):
    assert report["summary"]["parsing_errors"] == 0, report["summary"]


def test_resources_were_scanned(report):
    s = report["summary"]
    assert s["passed"] + s["failed"] > 0 and s["resource_count"] > 0, s


def test_no_unaccepted_failure(report):
    failed = [f"{c['check_id']} {c['check_name']} ({c['file_path']}:{c['file_line_range'][0]} {c['resource']})"
              for c in report["results"]["failed_checks"] if c["check_id"] not in ACCEPTED_FAILURES]
    assert not failed, "fix, or suppress inline with a reason and list in checkov_policy.py:\n  " + "\n  ".join(failed)


def test_every_suppression_is_reviewed_and_explained(report):
    problems = []
    for c in report["results"]["skipped_checks"]:
        reason = (c.get("check_result", {}).get("suppress_comment") or "").strip()
        where = f"{c['check_id']} at {c['file_path']}:{c['file_line_range'][0]}"
        if c["check_id"] not in REVIEWED_INLINE_SKIPS:
            problems.append(f"{where}: not listed in checkov_policy.REVIEWED_INLINE_SKIPS")
        if len(reason) < 20:
            problems.append(f"{where}: the inline skip has no real reason ({reason!r})")
    assert not problems, "\n".join(problems)


def test_policy_lists_only_live_suppressions(report):
    live = {c["check_id"] for c in report["results"]["skipped_checks"]}
    stale = sorted(set(REVIEWED_INLINE_SKIPS) - live)
    assert not stale, f"listed but no longer suppressed (remove from checkov_policy.py): {stale}"


def test_the_scan_can_fail(tmp_path):
    (tmp_path / "bad.bicep").write_text(
        "resource sa 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n"
        "  name: 'stbad'\n  location: 'westeurope'\n  kind: 'StorageV2'\n"
        "  sku: {\n    name: 'Standard_LRS'\n  }\n"
        "  properties: {\n    minimumTlsVersion: 'TLS1_0'\n    supportsHttpsTrafficOnly: false\n  }\n}\n")
    (tmp_path / "unparsable.bicep").write_text("resource x 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n  name: \n")
    bad = run_checkov(tmp_path)
    failed = {c["check_id"] for c in bad["results"]["failed_checks"]}
    assert {"CKV_AZURE_44", "CKV_AZURE_3"} <= failed, failed
    assert bad["summary"]["parsing_errors"] >= 1, bad["summary"]
