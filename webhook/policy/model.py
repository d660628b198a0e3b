"""The policy model: frozen dataclasses built once by the loader; the engine only reads them."""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, field
from typing import Any

from webhook.kube.selector import Selector
from webhook.rules import Locator

API_VERSION = "podgate.io/v1alpha1"
# The name podgate's own checks (webhook/engine/limits.py) report under; no policy file may take it.
BUILTIN_POLICY = "podgate"


class Action(enum.StrEnum):
    """What a validation rule does with a violation."""

    ENFORCE = "enforce"  # deny the request
    WARN = "warn"  # admit, with a warning shown to the user (kubectl prints it)
    AUDIT = "audit"  # admit silently, recorded as an audit annotation


@dataclass(frozen=True)
class Match:
    """Every criterion AND-ed; None or empty means "any"."""

    kinds: frozenset[str] | None = None
    operations: frozenset[str] | None = None
    namespaces: tuple[str, ...] = ()  # globs
    selector: Selector | None = None
    # On the namespace's labels, which the request does not carry: they come from ClusterFacts.
    namespace_selector: Selector | None = None
    # Alternatives OR-ed together and AND-ed with the criteria above: "a test namespace, or a pod
    # labelled as test" is one policy, not two copies of it.
    any: tuple[Match, ...] = ()


@dataclass(frozen=True)
class Exclude:
    """Any criterion that holds leaves the request alone."""

    namespaces: tuple[str, ...] = ()  # globs
    users: tuple[str, ...] = ()  # globs on userInfo.username
    groups: frozenset[str] = frozenset()
    service_accounts: frozenset[str] = frozenset()  # "namespace/name"
    namespace_selector: Selector | None = None  # on the namespace's labels

    def __bool__(self) -> bool:
        return bool(
            self.namespaces
            or self.users
            or self.groups
            or self.service_accounts
            or self.namespace_selector is not None
        )


@dataclass(frozen=True)
class OptOut:
    """Pods annotated `annotation: "true"` skip the policy, if one of these requesters created them."""

    annotation: str
    users: tuple[str, ...] = ()  # globs on userInfo.username
    groups: frozenset[str] = frozenset()
    service_accounts: frozenset[str] = frozenset()  # "namespace/name"


@dataclass(frozen=True)
class Rule:
    name: str
    key: str  # the rule type: a mutator's or validator's KEY
    mutates: bool
    params: Any
    action: Action = Action.ENFORCE
    source: str = ""  # file:line, for messages and --explain
    # Where its parameters are written, for the checks across rules at load (webhook/policy/consistency.py).
    at: Locator | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Policy:
    name: str
    rules: tuple[Rule, ...]
    match: Match = field(default_factory=Match)
    exclude: Exclude = field(default_factory=Exclude)
    opt_out: OptOut | None = None  # None: no annotation lets a pod skip this policy
    # Mutations of pod templates stay off by default: GitOps tools would otherwise see the stored
    # Deployment drift from git. The pods get the defaults anyway when their controller creates them.
    mutate_templates: bool = False
    source: str = ""
    description: str = ""

    @property
    def needs_namespace_labels(self) -> bool:
        matches = (self.match, *self.match.any)
        return self.exclude.namespace_selector is not None or any(
            m.namespace_selector is not None for m in matches
        )


PolicyRule = tuple[Policy, Rule]


@dataclass(frozen=True)
class PolicySet:
    policies: tuple[Policy, ...] = ()
    digest: str = ""  # sha256 of the sources: what /metrics and logs report as the loaded version
    files: tuple[str, ...] = ()
    # The rules of each type, grouped once: evaluation asks for them several times per request.
    _by_key: dict[str, tuple[PolicyRule, ...]] = field(init=False, repr=False, compare=False)
    # A cache, not state: which rules could apply to a (rule type, kind, operation, namespace); see
    # webhook/engine/index.py. It only ever holds what can be recomputed from the frozen fields above.
    memo: dict[tuple[Any, ...], Any] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        by_key: dict[str, list[PolicyRule]] = {}
        for policy in self.policies:
            for rule in policy.rules:
                by_key.setdefault(rule.key, []).append((policy, rule))
        object.__setattr__(self, "_by_key", {key: tuple(rules) for key, rules in by_key.items()})

    @functools.cached_property
    def needs_namespace_labels(self) -> bool:
        """Whether any policy selects or excludes namespaces by their labels (ClusterFacts)."""
        return any(policy.needs_namespace_labels for policy in self.policies)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.policies)

    def rules_of(self, key: str) -> tuple[PolicyRule, ...]:
        """Rules of one type, in policy-name order, so evaluation order never depends on file layout."""
        return self._by_key.get(key, ())
