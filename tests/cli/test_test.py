"""`podgate test`: the shipped policy tests pass, a changed expectation fails with a diff, errors exit 1."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import POLICIES
from webhook.cli import main


@pytest.fixture
def policies_copy(tmp_path: Path) -> Path:
    """policies/ with its tests, somewhere a test may edit it."""
    return Path(shutil.copytree(POLICIES, tmp_path / "policies"))


def test_the_shipped_policy_tests_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", str(POLICIES)]) == 0
    out = capsys.readouterr().out
    assert "RESULT  CASE" in out
    assert "FAIL" not in out
    assert ", 0 failed (" in out


def test_changing_one_expected_value_fails_with_a_diff(
    policies_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    test_file = policies_copy / "tests" / "resources-test.yaml"
    text = test_file.read_text()
    expected = "              limits: {cpu: 100m, memory: 256Mi}\n"
    assert text.count(expected) == 1
    test_file.write_text(text.replace(expected, expected.replace("100m", "150m")))

    assert main(["test", str(policies_copy)]) == 1
    out = capsys.readouterr().out
    assert f"FAIL {test_file}:12: a bare pod in a test namespace gets the defaults (Pod team-test/app)" in out
    assert "  patch differs:\n    --- expected\n    +++ got\n" in out
    assert "    -      cpu: 150m\n    +      cpu: 100m\n" in out
    assert ", 1 failed (" in out


def test_a_broken_test_file_is_an_error_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "tests" / "broken.yaml"
    broken.parent.mkdir()
    shutil.copy(POLICIES / "resources.yaml", tmp_path / "resources.yaml")
    broken.write_text(
        "apiVersion: podgate.io/v1alpha1\nkind: PolicyTest\nmetadata: {name: b}\nspec:\n  cases:\n"
        "    - name: gone\n      file: manifests/gone.yaml\n      expect: {outcome: admitted}\n"
    )
    assert main(["test", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.err == (
        f"error: {broken}:7: spec.cases[0].file: no such file: {broken.parent}/manifests/gone.yaml\n"
    )
    assert "0 passed, 0 failed, 1 errors in test files or policies (1 test file)" in captured.out


def test_policies_that_do_not_load_are_an_error(
    policies_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (policies_copy / "resources.yaml").write_text("kind: [\n")
    assert main(["test", str(policies_copy / "tests" / "resources-test.yaml")]) == 1
    err = capsys.readouterr().err
    assert "the policies under test did not load:" in err
    assert f"{policies_copy}/resources.yaml:2: invalid YAML" in err


def test_no_test_files_or_a_missing_path_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["test", str(tmp_path)]) == 2
    assert "no test files" in capsys.readouterr().err
    assert main(["test", str(tmp_path / "nope")]) == 2
    assert f"{tmp_path}/nope: no such file or directory" in capsys.readouterr().err
