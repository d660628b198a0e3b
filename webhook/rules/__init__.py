"""The interface every mutator and validator module implements, and what they hand back to the engine."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from webhook.errors import PolicyIssue
from webhook.kube.pods import PodView
from webhook.kube.request import AdmissionRequest
from webhook.kube.selector import Selector


@dataclass(frozen=True, slots=True)
class Changed:
    """A mutator changed the field at `path` (JSON pointer parts relative to the admitted object)."""

    path: tuple[str | int, ...]
    message: str


@dataclass(frozen=True, slots=True)
class Warned:
    """A mutator could not or would not act, and the user should know (e.g. a conflicting preset)."""

    message: str


Effect = Changed | Warned


class RuleParseError(Exception):
    def __init__(self, issue: PolicyIssue) -> None:
        self.issue = issue
        super().__init__(str(issue))


def format_path(parts: tuple[str | int, ...]) -> str:
    """spec.rules[0].resources.cpu: how policy authors read a field path."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


@dataclass(frozen=True, slots=True)
class Locator:
    """Knows where a part of a policy file is, so a parse error can name file, line and field path."""

    file: str
    lines: Mapping[tuple[str | int, ...], int] = field(repr=False)
    base: tuple[str | int, ...] = ()

    def child(self, *parts: str | int) -> Locator:
        return Locator(self.file, self.lines, (*self.base, *parts))

    def line(self, *parts: str | int) -> int:
        path = (*self.base, *parts)
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path, 0)

    def issue(self, message: str, *parts: str | int) -> PolicyIssue:
        return PolicyIssue(self.file, self.line(*parts), format_path((*self.base, *parts)), message)

    def error(self, message: str, *parts: str | int) -> RuleParseError:
        return RuleParseError(self.issue(message, *parts))

    def where(self) -> str:
        return f"{self.file}:{self.line()}"


@dataclass(frozen=True, slots=True)
class RuleDocument:
    """A document of a kind of its own (a Preset) that stands for a policy of one rule.

    The rule module checks and parses the document; the policy loader turns this into the policy, so
    rule modules never build the policy model (they sit below it).
    """

    name: str
    rule: str  # the one rule's name
    params: Any
    kinds: frozenset[str]
    operations: frozenset[str]
    namespaces: tuple[str, ...]
    selector: Selector | None
    opt_out_annotation: str  # the annotation `allowOptOut` grants when it names none
    allow_opt_out: Mapping[str, Any] | None  # spec.allowOptOut as written; the loader parses it
    at: Locator  # where the document's spec is, for the loader's own messages
    source: str
    description: str = ""


class Mutator(Protocol):
    """A module in webhook/rules/mutators/: KEY names it in a rule, SCHEMA checks its parameters at load.

    SETS_LABELS says whether it may add pod labels, which policies select on (webhook/engine/index.py).
    """

    KEY: str
    SCHEMA: Mapping[str, Any]
    SETS_LABELS: bool

    def parse(self, raw: Mapping[str, Any], at: Locator) -> Any: ...

    def mutate(self, pod: PodView, params: Any, request: AdmissionRequest) -> list[Effect]: ...


class Validator(Protocol):
    """A module in webhook/rules/validators/: one message per problem; the engine applies the action."""

    KEY: str
    SCHEMA: Mapping[str, Any]

    def parse(self, raw: Mapping[str, Any], at: Locator) -> Any: ...

    def check(self, pod: PodView, params: Any, request: AdmissionRequest) -> list[str]: ...
