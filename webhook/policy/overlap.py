"""Whether two policies can reach the same pod, judged from their matches alone (a static overlap test).

Sound in one direction only: "disjoint" is said only when no pod can match both (by namespaces, label
selectors, or excluded namespaces); anything it cannot decide counts as overlapping. Kinds and
operations are not used: a workload is judged as the Pod CREATE its controller will send.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

from webhook.kube.selector import Requirement
from webhook.policy.model import Exclude, Match, Policy

_GLOB = "*?[]"


def may_overlap(first: Policy, second: Policy, *, selectors: bool = True) -> bool:
    """False only when no pod can be matched by both policies (namespaces, selectors, excluded namespaces).

    Without `selectors`, label selectors are not used to tell them apart.
    """
    names = (_literal_namespaces(first.match), _literal_namespaces(second.match))
    if names[0] and names[1] and names[0].isdisjoint(names[1]):
        return False  # the common case, decided without the general test: one team, one namespace
    return any(
        not _disjoint(a, b, first.exclude, second.exclude, selectors)
        for a in _alternatives(first.match)
        for b in _alternatives(second.match)
    )


def _literal_namespaces(match: Match) -> frozenset[str]:
    """The namespaces a match is limited to when it names them without globs or alternatives, else empty."""
    if match.any or not match.namespaces or any(_is_glob(n) for n in match.namespaces):
        return frozenset()
    return frozenset(match.namespaces)


def _alternatives(match: Match) -> list[tuple[Match, ...]]:
    """The match as alternatives, each a conjunction of criteria: `any` OR-ed, AND-ed with the rest."""
    return [(match, alternative) for alternative in match.any] or [(match,)]


def _disjoint(
    first: Sequence[Match], second: Sequence[Match], first_out: Exclude, second_out: Exclude, selectors: bool
) -> bool:
    lists = [m.namespaces for m in (*first, *second) if m.namespaces]
    if any(_namespaces_disjoint(a, b) for i, a in enumerate(lists) for b in lists[i + 1 :]):
        return True
    for side, other_out in ((first, second_out), (second, first_out)):
        for criteria in side:
            if criteria.namespaces and all(_excluded(p, other_out.namespaces) for p in criteria.namespaces):
                return True
    if not selectors:
        return False
    requirements = [r for m in (*first, *second) if m.selector for r in m.selector.requirements]
    return any(
        a.key == b.key and _contradict(a, b)
        for i, a in enumerate(requirements)
        for b in requirements[i + 1 :]
    )


def _namespaces_disjoint(first: Sequence[str], second: Sequence[str]) -> bool:
    return all(_patterns_disjoint(a, b) for a in first for b in second)


def _patterns_disjoint(first: str, second: str) -> bool:
    literal_first, literal_second = not _is_glob(first), not _is_glob(second)
    if literal_first and literal_second:
        return first != second
    if literal_first or literal_second:
        literal, glob = (first, second) if literal_first else (second, first)
        return not fnmatchcase(literal, glob)
    # Two globs: disjoint when their fixed beginnings, or their fixed endings, cannot agree.
    heads = (_head(first), _head(second))
    tails = (_tail(first), _tail(second))
    return not (heads[0].startswith(heads[1]) or heads[1].startswith(heads[0])) or not (
        tails[0].endswith(tails[1]) or tails[1].endswith(tails[0])
    )


def _excluded(pattern: str, excluded: Sequence[str]) -> bool:
    if not _is_glob(pattern):
        return any(fnmatchcase(pattern, glob) for glob in excluded)
    return any(glob == pattern or glob.strip("*") == "" for glob in excluded)


def _contradict(first: Requirement, second: Requirement) -> bool:
    """Two requirements on one key that no labels satisfy together."""
    ops = {first.operator, second.operator}
    if ops == {"In"}:
        return not first.values & second.values
    if ops == {"In", "NotIn"}:
        included, excluded = (first, second) if first.operator == "In" else (second, first)
        return included.values <= excluded.values
    return "DoesNotExist" in ops and bool(ops & {"In", "Exists"})


def _is_glob(pattern: str) -> bool:
    return any(c in _GLOB for c in pattern)


def _head(glob: str) -> str:
    return glob[: min(glob.find(c) if c in glob else len(glob) for c in _GLOB)]


def _tail(glob: str) -> str:
    return glob[max(glob.rfind(c) for c in _GLOB) + 1 :]
