"""Which rules could apply to a request, before the full match: a superset, found without a scan.

A large policy set is mostly per-team policies, each scoped to its team's namespaces or to pods with
its team's label, so any one pod is matched by few of them. Remembered once per (rule type, kind,
operation, namespace), the rules that survive those criteria are kept in two groups: the ones that need
a given label (their selector's `matchLabels`, or an `In` of one value) and the rest. A request then only
looks at the rest and at the rules its own labels name, so evaluation cost grows with the rules that
could apply, not with every rule loaded (benchmarks/BENCHMARKS.md).

A policy set with a `namespaceSelector` also prunes by the namespace's labels. Those change while a
namespace's name does not, so then the labels are part of the memo key (None, unknown, prunes nothing):
a relabelled namespace is looked up afresh, never served what its old labels selected.

The memo lives on the PolicySet, so a reload starts a new one. It only prunes: match.why_not still
decides every rule it returns, and tests/engine/test_index.py checks it never drops one that applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webhook.engine.match import could_apply
from webhook.policy.model import Policy, PolicyRule, PolicySet

# Enough for every namespace of a large cluster times the kinds and operations podgate sees; past it
# the memo starts again rather than grow without bound on a stream of one-off namespaces.
MEMO_LIMIT = 8192

Ranked = tuple[tuple[int, PolicyRule], ...]  # with its position in rules_of, to keep evaluation order


@dataclass(frozen=True)
class Scoped:
    """The rules of one type that survive a (kind, operation, namespace), grouped by a needed label."""

    unlabelled: Ranked
    by_label: Mapping[tuple[str, str], Ranked]

    def for_labels(self, labels: Mapping[str, Any]) -> Ranked:
        """The rules that could match a pod with `labels`, with their positions."""
        if not self.by_label:
            return self.unlabelled
        named = [
            ranked
            for key, value in labels.items()
            if isinstance(value, str)
            for ranked in self.by_label.get((key, value), ())
        ]
        if not named:
            return self.unlabelled
        return tuple(sorted([*self.unlabelled, *named], key=_position))


def candidates(
    policies: PolicySet,
    key: str,
    kind: str,
    operation: str,
    namespace: str,
    labels: Mapping[str, Any],
    *,
    mutating: bool,
    namespace_labels: Mapping[str, str] | None = None,
) -> Ranked:
    """The rules of type `key` that could apply to a pod with `labels`, with their rules_of positions."""
    memo_key: tuple[Any, ...] = (key, kind, operation, namespace, mutating)
    if policies.needs_namespace_labels:
        known = None if namespace_labels is None else frozenset(namespace_labels.items())
        memo_key = (*memo_key, known)
    else:
        namespace_labels = None  # no policy reads them: one memo entry per namespace, as before
    scoped = policies.memo.get(memo_key)
    if scoped is None:
        scope = (kind, operation, namespace, mutating, namespace_labels)
        scoped = _scope(policies.rules_of(key), *scope)
        if len(policies.memo) >= MEMO_LIMIT:
            policies.memo.clear()
        policies.memo[memo_key] = scoped
    return scoped.for_labels(labels)


def _scope(
    rules: tuple[PolicyRule, ...],
    kind: str,
    operation: str,
    namespace: str,
    mutating: bool,
    namespace_labels: Mapping[str, str] | None,
) -> Scoped:
    unlabelled: list[tuple[int, PolicyRule]] = []
    by_label: dict[tuple[str, str], list[tuple[int, PolicyRule]]] = {}
    for position, (policy, rule) in enumerate(rules):
        scope = (kind, operation, namespace)
        if not could_apply(policy, *scope, mutating=mutating, namespace_labels=namespace_labels):
            continue
        needed = needed_label(policy)
        if needed is None:
            unlabelled.append((position, (policy, rule)))
        else:
            by_label.setdefault(needed, []).append((position, (policy, rule)))
    return Scoped(tuple(unlabelled), {pair: tuple(ranked) for pair, ranked in by_label.items()})


def needed_label(policy: Policy) -> tuple[str, str] | None:
    """A label (key, value) every pod the policy matches must carry, if its selector names one."""
    selector = policy.match.selector
    for requirement in selector.requirements if selector is not None else ():
        if requirement.operator == "In" and len(requirement.values) == 1:
            return requirement.key, next(iter(requirement.values))
    return None


def _position(ranked: tuple[int, PolicyRule]) -> int:
    return ranked[0]
