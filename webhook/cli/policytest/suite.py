"""`podgate test` files: discovery, schema check, and the cases they declare, every error with file:line."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from webhook.cli.manifests import InputError, Item, NamespaceMismatch, Options, items_of, parse_items
from webhook.cli.policytest.fieldpath import PathError, Step, parse_path
from webhook.errors import PodgateError, PolicyIssue
from webhook.policy.loader import TEST_SUFFIXES, schema_issues
from webhook.policy.schema import SCHEMA_DIR
from webhook.policy.yamlsource import Document, read_documents
from webhook.rules import Locator

SCHEMA_FILE = SCHEMA_DIR / "test.schema.json"
TESTS_FOLDER = "tests"
DEFAULT_USER = "podgate-test"
DEFAULT_GROUPS = ("system:authenticated",)
# What a case may set about the request; an AdmissionReview already says all of it.
REQUEST_FIELDS = ("operation", "namespace", "user", "groups")


class TestFileError(PodgateError):
    """Test files that cannot be used; carries every problem found, each with file and line."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, issues: list[PolicyIssue]) -> None:
        self.issues = tuple(sorted(issues, key=lambda i: (i.file, i.line, i.path)))
        super().__init__("\n".join(str(i) for i in self.issues))


@dataclass(frozen=True)
class FieldExpectation:
    path: str  # as written, for messages
    steps: tuple[Step, ...]
    value: Any = None
    absent: bool = False


@dataclass(frozen=True)
class Expectation:
    outcome: str  # admitted | denied | warned
    messages: tuple[str, ...] = ()
    object: Mapping[str, Any] | None = None
    patch: tuple[Mapping[str, Any], ...] | None = None
    fields: tuple[FieldExpectation, ...] = ()


@dataclass(frozen=True)
class Case:
    name: str
    where: str  # file:line of the case
    inputs: tuple[Item, ...]
    expect: Expectation


@dataclass(frozen=True)
class Suite:
    name: str
    file: str
    policies: tuple[Path, ...]
    cases: tuple[Case, ...]


def discover(paths: list[str]) -> list[Path]:
    """Test files under `paths`: any `*-test.yaml`, and every YAML file directly inside a `tests/` folder.

    Files given by name are taken as they are. Manifests that tests refer to belong in subfolders of
    `tests/` (tests/manifests/), where they are not mistaken for test files.
    """
    found: set[Path] = set()
    for path in paths:
        root = Path(path)
        if root.is_file():
            found.add(root)
            continue
        for file in root.rglob("*"):
            if not file.is_file() or file.name.startswith(".") or file.suffix not in (".yaml", ".yml"):
                continue
            if file.name.endswith(TEST_SUFFIXES) or file.parent.name == TESTS_FOLDER:
                found.add(file)
    return sorted(found)


def load_suites(file: Path) -> list[Suite]:
    """Every test document of a file, or TestFileError listing every problem in it."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise TestFileError([PolicyIssue(str(file), 0, "", f"cannot read: {error}")]) from None
    documents, issues = read_documents(text, str(file))
    suites = [suite for document in documents if (suite := _suite(document, file, issues)) is not None]
    if not documents and not issues:
        issues.append(PolicyIssue(str(file), 0, "", "no test document"))
    if issues:
        raise TestFileError(issues)
    return suites


@cache
def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return jsonschema.validators.validator_for(schema)(schema)


def _suite(document: Document, file: Path, issues: list[PolicyIssue]) -> Suite | None:
    at = Locator(str(file), document.lines)
    problems = [i for e in _validator().iter_errors(document.data) for i in schema_issues(e, at)]
    if problems:
        issues.extend(problems)
        return None
    spec = document.data["spec"]
    here = file.parent
    default_policies = here.parent if here.name == TESTS_FOLDER else here
    # normpath, not resolve: "policies/tests/../resources.yaml" reads as policies/resources.yaml, and a
    # relative path stays relative in messages.
    policies = tuple(Path(os.path.normpath(here / p)) for p in spec.get("policies", ())) or (
        default_policies,
    )
    for index, path in enumerate(policies if "policies" in spec else ()):
        if not path.exists():
            issues.append(at.issue(f"no such file or directory: {path}", "spec", "policies", index))
    cases: list[Case] = []
    names: set[str] = set()
    for index, raw in enumerate(spec["cases"]):
        case_at = at.child("spec", "cases", index)
        if raw["name"] in names:
            issues.append(case_at.issue(f"duplicate case name {raw['name']!r}", "name"))
        names.add(raw["name"])
        case = _case(raw, spec, here, case_at)
        if isinstance(case, TestFileError):
            issues.extend(case.issues)
        else:
            cases.append(case)
    return Suite(document.data["metadata"]["name"], str(file), policies, tuple(cases))


def _options(raw: Mapping[str, Any], spec: Mapping[str, Any]) -> Options:
    def pick(key: str, default: Any) -> Any:
        return raw.get(key, spec.get(key, default))

    return Options(
        namespace=pick("namespace", None),
        operation=pick("operation", "CREATE"),
        user=pick("user", DEFAULT_USER),
        groups=tuple(pick("groups", DEFAULT_GROUPS)),
    )


def _inputs(raw: Mapping[str, Any], spec: Mapping[str, Any], here: Path, at: Locator) -> tuple[Item, ...]:
    """The requests of a case; InputError when its manifest or file cannot be read."""
    options = _options(raw, spec)
    if "manifest" in raw:
        return tuple(items_of(raw["manifest"], f"{at.file}:{at.line('manifest')}", options))
    path = here / raw["file"]
    if not path.is_file():
        raise InputError(f"no such file: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read {path}: {error}") from None
    return tuple(parse_items(str(path), text, options))


def _case(raw: Mapping[str, Any], spec: Mapping[str, Any], here: Path, at: Locator) -> Case | TestFileError:
    """The case, or every problem with it (a TestFileError returned, not raised, to collect them all)."""
    issues: list[PolicyIssue] = []
    sources = [key for key in ("manifest", "file") if key in raw]
    if len(sources) != 1:
        return TestFileError(
            [at.issue("needs exactly one of manifest or file" + (" (got both)" if sources else ""))]
        )
    source = sources[0]
    try:
        inputs = _inputs(raw, spec, here, at)
    except NamespaceMismatch as error:
        message = (
            f'the namespace from the provided object "{error.own}" does not match the namespace '
            f'"{error.given}" the test sets: the object\'s own namespace stands, as with kubectl'
        )
        return TestFileError([at.issue(message, source)])
    except InputError as error:
        return TestFileError([at.issue(str(error), source)])
    if not inputs:
        issues.append(at.issue("holds no Kubernetes object", source))
    if any(item.from_review for item in inputs):
        issues.extend(
            at.issue(f"an AdmissionReview is sent as captured: it sets its own {key}", key)
            for key in REQUEST_FIELDS
            if key in raw
        )
    expect = raw["expect"]
    expect_at = at.child("expect")
    if expect["outcome"] == "admitted" and "messages" in expect:
        issues.append(
            expect_at.issue("admitted means no denial and no warning: no message to match", "messages")
        )
    for key in ("object", "patch"):
        if key in expect and len(inputs) > 1:
            issues.append(
                expect_at.issue(
                    f"{source} holds {len(inputs)} objects; an expected {key} needs exactly one", key
                )
            )
    fields: list[FieldExpectation] = []
    for index, field in enumerate(expect.get("fields", ())):
        field_at = expect_at.child("fields", index)
        if ("value" in field) == ("absent" in field):
            issues.append(field_at.issue("needs exactly one of value or absent: true"))
        try:
            steps = parse_path(field["path"])
        except PathError as error:
            issues.append(field_at.issue(str(error), "path"))
            continue
        fields.append(FieldExpectation(field["path"], steps, field.get("value"), "absent" in field))
    if issues:
        return TestFileError(issues)
    patch = tuple(expect["patch"]) if "patch" in expect else None
    return Case(
        name=raw["name"],
        where=at.where(),
        inputs=inputs,
        expect=Expectation(
            expect["outcome"], tuple(expect.get("messages", ())), expect.get("object"), patch, tuple(fields)
        ),
    )
