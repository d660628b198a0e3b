import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import POLICIES, ROOT
from webhook.cli import main


def test_shipped_policies_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--policies", str(POLICIES)]) == 0
    assert "requests-required" in capsys.readouterr().out


def test_a_typo_exits_non_zero_with_file_line_and_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (POLICIES / "resources.yaml").read_text()
    broken = tmp_path / "resources.yaml"
    broken.write_text(
        text.replace("      resources:\n        defaults:", "      resources:\n        requets:", 1)
    )
    line = broken.read_text().splitlines().index("        requets:") + 1
    assert main(["check", "--policies", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{broken}:{line}: spec.rules[0].resources.requets: unknown field" in err


def test_policies_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODGATE_POLICIES", str(tmp_path / "missing"))
    assert main(["check"]) == 1


def test_python_dash_m_webhook_is_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "webhook", "check", "--policies", str(POLICIES)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_an_empty_directory_or_file_exits_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "--policies", str(tmp_path)]) == 1
    assert capsys.readouterr() == (
        "",
        f"error: {tmp_path}: no policy files (*.yaml, *.yml): with no policies podgate enforces nothing\n",
    )
    (tmp_path / "resources.yaml").write_text("")
    assert main(["check", "--policies", str(tmp_path)]) == 1
    assert capsys.readouterr() == (
        "",
        f"error: {tmp_path}/resources.yaml:1: holds no policy document: delete the file to remove its "
        "policies\n",
    )
