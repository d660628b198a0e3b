"""Which rules could apply to a request, decided once per (rule type, kind, operation, namespace).

A cluster runs pods in a bounded set of namespaces, and most policies of a large set name other
namespaces or kinds. Remembering the rules that survive those criteria makes evaluation cost grow with
the rules that could apply, not with every rule loaded. The memo lives on the PolicySet, so a reload
starts a new one; it is a cache of match.could_apply and changes no answer (tests/test_index.py).
"""

from __future__ import annotations

from webhook.match import could_apply
from webhook.policy import PolicyRule, PolicySet

# Enough for every namespace of a large cluster times the kinds and operations podgate sees; past it
# the memo starts again rather than grow without bound on a stream of one-off namespaces.
MEMO_LIMIT = 8192


def candidates(
    policies: PolicySet, key: str, kind: str, operation: str, namespace: str, *, mutating: bool
) -> tuple[PolicyRule, ...]:
    """The rules of type `key` that could apply, in rules_of order; match.why_not still decides each."""
    memo_key = (key, kind, operation, namespace, mutating)
    found = policies.memo.get(memo_key)
    if found is None:
        found = tuple(
            (policy, rule)
            for policy, rule in policies.rules_of(key)
            if could_apply(policy, kind, operation, namespace, mutating=mutating)
        )
        if len(policies.memo) >= MEMO_LIMIT:
            policies.memo.clear()
        policies.memo[memo_key] = found
    return found
