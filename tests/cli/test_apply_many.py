"""`podgate apply` on many files: directories, -R, stdin, the summary, per-object patches, progress."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import POLICIES
from webhook.cli import main
from webhook.cli.report import Progress, Tally, table
from webhook.engine.decision import Action, Decision, Violation

RESOURCES = str(POLICIES / "resources.yaml")


def pod(name: str, *, env: str = "", requests: bool = False) -> str:
    labels = f"  labels: {{app.kubernetes.io/env: {env}}}\n" if env else ""
    resources = "      resources: {requests: {cpu: 10m, memory: 16Mi}}\n" if requests else ""
    return (
        f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n{labels}"
        f"spec:\n  containers:\n    - name: app\n      image: nginx\n{resources}"
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """test.yaml (a test pod), sized.yaml (two pods with requests), nested/bare.json (a bare pod)."""
    (tmp_path / "test.yaml").write_text(pod("t", env="test"))
    (tmp_path / "sized.yaml").write_text(pod("s1", requests=True) + "---\n" + pod("s2", requests=True))
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "bare.json").write_text(json.dumps(yaml.safe_load(pod("bare"))))
    (tmp_path / "notes.txt").write_text("not a manifest")
    return tmp_path


def test_a_directory_is_read_flat_unless_recursive(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", "-f", str(tree), "--policies", RESOURCES]) == 0
    out, err = capsys.readouterr()
    assert [d["metadata"]["name"] for d in yaml.safe_load_all(out)] == ["s1", "s2", "t"]
    assert err.endswith("summary: 3 objects read: 3 admitted, printed (1 mutated, 0 warned), 0 denied\n")

    assert main(["apply", "-R", "-f", str(tree), "--policies", RESOURCES]) == 1
    out, err = capsys.readouterr()
    # The denied pod would not be stored: stdout, what `kubectl apply -f -` would get, leaves it out.
    assert [d["metadata"]["name"] for d in yaml.safe_load_all(out)] == ["s1", "s2", "t"]
    assert f"{tree}/nested/bare.json: DENIED (unchanged)" in err
    assert err.endswith("summary: 4 objects read: 3 admitted, printed (1 mutated, 0 warned), 1 denied\n")


def test_a_denied_object_alone_prints_nothing(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for output in ("yaml", "json", "patch"):
        argv = ["apply", "-f", str(tree / "nested" / "bare.json"), "--policies", RESOURCES, "-o", output]
        assert main(argv) == 1
        out, err = capsys.readouterr()
        assert out == ""
        assert err.endswith("summary: 1 object read: 0 admitted, printed (0 mutated, 0 warned), 1 denied\n")


def test_explain_covers_every_object(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", "-f", str(tree), "--policies", RESOURCES, "--explain", "-o", "json"]) == 0
    out, err = capsys.readouterr()
    assert [item["metadata"]["name"] for item in json.loads(out)["items"]] == ["s1", "s2", "t"]
    assert json.loads(out)["kind"] == "List"
    for source in (f"{tree}/sized.yaml#1", f"{tree}/sized.yaml#2"):
        assert f"{source}: admitted (unchanged)\n  not applied: test-defaults.guaranteed-resources:" in err
    assert f"{tree}/test.yaml: admitted (4 changes)\n  test-defaults.guaranteed-resources: " in err


def test_patches_name_their_object_when_there_are_several(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["apply", "-f", str(tree), "--policies", RESOURCES, "-o", "patch", "-n", "team-a"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [(r["source"], r["kind"], r["namespace"], r["name"]) for r in records] == [
        (f"{tree}/sized.yaml#1", "Pod", "team-a", "s1"),
        (f"{tree}/sized.yaml#2", "Pod", "team-a", "s2"),
        (f"{tree}/test.yaml", "Pod", "team-a", "t"),
    ]
    assert [len(r["patch"]) for r in records] == [0, 0, 1]
    assert records[2]["patch"][0]["path"] == "/spec/containers/0/resources"


def test_stdin_and_files_together(
    tree: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(pod("from-stdin", env="test")))
    assert main(["apply", "-f", "-", "-f", str(tree / "test.yaml"), "--policies", RESOURCES]) == 0
    out, err = capsys.readouterr()
    assert [d["metadata"]["name"] for d in yaml.safe_load_all(out)] == ["from-stdin", "t"]
    assert "<stdin>: admitted (4 changes)" in err


def test_any_bad_file_prints_no_manifest_and_exits_2(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tree / "broken.yaml").write_text("kind: [")
    (tree / "nested" / "nokind.yaml").write_text("just: data")
    assert main(["apply", "-R", "-f", str(tree), "--policies", RESOURCES]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"error: {tree}/broken.yaml: invalid YAML" in err
    assert f"error: {tree}/nested/nokind.yaml: not a Kubernetes object (no kind)" in err
    # The good files were still judged, so one run shows every problem.
    assert f"{tree}/nested/bare.json: DENIED (unchanged)" in err
    assert err.endswith(
        "summary: 4 objects read: 3 admitted, not printed (bad input) (1 mutated, 0 warned), 1 denied\n"
    )


def test_progress_is_drawn_only_on_a_terminal(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", "-R", "-f", str(tree), "--policies", RESOURCES]) == 1
    assert "\r" not in capsys.readouterr().err

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    progress = Progress(2, terminal)
    progress.advance(files=1, objects=3)
    progress.print("a report line")
    progress.advance(files=1, objects=1)
    progress.clear()
    assert terminal.getvalue() == (
        "\r\033[Kreading: 1/2 files, 3 objects"
        "\r\033[Ka report line\n"
        "\r\033[Kreading: 2/2 files, 4 objects"
        "\r\033[K"
    )
    quiet = io.StringIO()
    Progress(1, quiet).advance(files=1)
    assert quiet.getvalue() == ""


def test_the_summary_is_a_table_on_a_terminal() -> None:
    tally = Tally()
    tally.add(Decision(object={"x": 1}, received={}))
    tally.add(Decision(object={}, violations=(Violation("p", "r", Action.ENFORCE, "no"),)))
    tally.add(Decision(object={}, violations=(Violation("p", "r", Action.WARN, "careful"),)))
    tally.add(Decision(object={}, violations=(Violation("p", "r", Action.AUDIT, "noted"),)))
    assert tally.render(terminal=False) == (
        "summary: 4 objects read: 3 admitted, printed (1 mutated, 1 warned), 1 denied"
    )
    assert tally.render(terminal=True) == table(
        ["OBJECTS", "COUNT"],
        [("read", "4"), ("admitted, printed", "3"), ("mutated", "1"), ("warned", "1"), ("denied", "1")],
    )
    assert table(["A", "LONGER"], [("wide cell", "x")]) == "A          LONGER\nwide cell  x"
