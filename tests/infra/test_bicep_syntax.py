"""Every Bicep file under infra/ parses with tree-sitter-bicep: no ERROR, no MISSING node."""
import pytest

import bicep_ast as b

FILES = b.bicep_files()
EXPECTED = {"main.bicep", "app/storage.bicep", "app/customvision.bicep", "app/identity.bicep",
            "app/monitoring.bicep", "app/function.bicep", "app/rbac.bicep"}


def test_the_expected_modules_exist():
    present = {str(p.relative_to(b.INFRA)) for p in FILES}
    assert EXPECTED <= present, f"missing: {sorted(EXPECTED - present)}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(b.INFRA)))
def test_file_parses_without_errors(path):
    problems = b.syntax_problems(b.parse_file(path))
    assert not problems, f"{path.relative_to(b.REPO)}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("bad", [
    # unclosed object
    "resource sa 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n  name: 'x'\n",
    # missing value after the colon
    "param p string\nvar v = {\n  a: \n}\n",
    # stray token
    "output o string = 'a' 'b' )\n",
])
def test_checker_reports_broken_bicep(tmp_path, bad):
    f = tmp_path / "bad.bicep"
    f.write_text(bad)
    problems = b.syntax_problems(b.parse_file(f))
    assert problems, "a broken file was reported clean: the syntax check cannot fail"
    assert all(p.split(":")[0].isdigit() for p in problems)


def test_checker_accepts_good_bicep(tmp_path):
    f = tmp_path / "good.bicep"
    f.write_text("param p string = 'a'\noutput O string = p\n")
    assert b.syntax_problems(b.parse_file(f)) == []
