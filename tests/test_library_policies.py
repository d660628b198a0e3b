"""policies/library/: ready policies, never loaded by default, each loading beside the shipped ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import POLICIES
from webhook import load_policies
from webhook.cli.policytest import discover
from webhook.policy.loader import parse_sources, read_sources

LIBRARY = POLICIES / "library"
FILES = sorted(LIBRARY.glob("*.yaml"))


def test_the_library_is_not_part_of_the_default_policies() -> None:
    loaded = load_policies(POLICIES)
    library = {policy.name for file in FILES for policy in load_policies(file).policies}
    assert library and not library & set(loaded.names)
    assert all(Path(file).parent == POLICIES for file in loaded.files)


@pytest.mark.parametrize("file", FILES, ids=[f.stem for f in FILES])
def test_each_library_policy_loads_beside_the_shipped_ones(file: Path) -> None:
    # What a platform team does with it: copy it into policies/. Defaults and validators must agree.
    parse_sources([*read_sources(POLICIES), *read_sources(file)])


@pytest.mark.parametrize("file", FILES, ids=[f.stem for f in FILES])
def test_each_library_policy_has_test_cases_that_podgate_test_finds(file: Path) -> None:
    tests = discover([str(POLICIES)])
    assert LIBRARY / "tests" / f"{file.stem}-test.yaml" in tests
