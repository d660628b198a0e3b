"""Bad policy files: a PolicySet or a PolicyError whose every issue says file, line and what is wrong.

Never another exception (a traceback at `podgate check`, a crashed reload), never a hang: an alias
bomb is refused, not expanded. Files come from tests/policy_strategies.py; `make fuzz` runs the long mode.
"""

from __future__ import annotations

import contextlib
import io
import re
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings

from tests.conftest import FUZZ_PROFILE, fixture_review
from tests.policy_strategies import ALIAS_BOMB, SOURCES, raw_files, texts
from tests.strategies import CASES
from webhook import evaluate
from webhook.cli import main
from webhook.errors import PolicyError
from webhook.kube import jsoncodec
from webhook.policy.loader import load_policies, parse_sources
from webhook.policy.model import PolicySet
from webhook.server.review import parse_review, response

FUZZ = settings.get_profile(FUZZ_PROFILE)
# Far more than any policy file needs; what matters is that nothing runs away (an alias bomb would).
SECONDS = 10.0


def check_issues(error: PolicyError, files: set[str]) -> None:
    assert error.issues, "a PolicyError without issues"
    for issue in error.issues:
        assert issue.file in files, issue
        assert issue.line >= 1, f"no line: {issue}"
        assert issue.message.strip() and "\n" not in issue.message, repr(issue.message)
        assert "Traceback" not in issue.message, issue


@settings(FUZZ)
@given(source=texts())
def test_any_text_loads_or_says_where_it_is_wrong(source: tuple[str, str]) -> None:
    CASES["policies: parse_sources(text)"] += 1
    name, text = source
    started = time.monotonic()
    try:
        policies = parse_sources([(name, text)])
    except PolicyError as error:
        check_issues(error, {name})
    else:
        judge_fixtures(policies)
    assert time.monotonic() - started < SECONDS


# A Pod, a Deployment and a CronJob: a policy set that loads must be able to answer each of them.
FIXTURES = [parse_review(fixture_review(prefix)) for prefix in ("0007", "0039", "0057")]


def judge_fixtures(policies: PolicySet) -> None:
    for review in FIXTURES:
        decision = evaluate(policies, review.raw_request)
        for phase in ("mutate", "validate"):
            jsoncodec.dumps(response(review, decision, phase))


@settings(FUZZ, max_examples=max(FUZZ.max_examples // 3, 100))
@given(data=raw_files())
def test_any_file_loads_or_says_where_it_is_wrong(data: bytes) -> None:
    CASES["policies: load_policies(file)"] += 1
    with tempfile.TemporaryDirectory() as directory:
        file = Path(directory) / "broken.yaml"
        file.write_bytes(data)
        try:
            load_policies(directory)
        except PolicyError as error:
            check_issues(error, {str(file)})


@settings(FUZZ, max_examples=max(FUZZ.max_examples // 5, 60))
@given(data=raw_files())
def test_podgate_check_exits_1_with_file_and_line(data: bytes) -> None:
    CASES["policies: podgate check"] += 1
    with tempfile.TemporaryDirectory() as directory:
        file = Path(directory) / "broken.yaml"
        file.write_bytes(data)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(["check", "--policies", directory])
    assert status in (0, 1)
    if status == 0:
        assert "policies" in out.getvalue() and not err.getvalue()
        return
    lines = err.getvalue().splitlines()
    assert lines, "exit 1 without saying why"
    for line in lines:
        found = re.match(rf"error: {re.escape(str(file))}:(\d+): .*\S", line)
        assert found and int(found[1]) >= 1, line


@pytest.mark.parametrize(
    "snippet",
    [ALIAS_BOMB, "r: &r [*r]\n", "m: &m {self: *m}\n"],
    ids=["billion-laughs", "recursive-list", "recursive-map"],
)
def test_an_alias_bomb_is_refused_at_once(snippet: str) -> None:
    name, text = SOURCES[0]
    started = time.monotonic()
    with pytest.raises(PolicyError) as caught:
        parse_sources([(name, text + "---\n" + snippet)])
    assert time.monotonic() - started < 1.0
    check_issues(caught.value, {name})


def test_a_quantity_of_5000_digits_is_an_issue_not_a_traceback() -> None:
    # int() refuses over 4,300 digits with a ValueError of its own: quantity.py must refuse first.
    text = (
        "apiVersion: podgate.io/v1alpha1\nkind: Policy\nmetadata: {name: p}\nspec:\n  rules:\n"
        f"    - name: r\n      resources: {{defaults: {{cpu: {{request: '{'9' * 5000}'}}}}}}\n"
    )
    with pytest.raises(PolicyError) as caught:
        parse_sources([("p.yaml", text)])
    check_issues(caught.value, {"p.yaml"})
