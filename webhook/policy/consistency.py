"""Defaults their own policy set would deny, refused at load: podgate never defaults a pod into a denial.

For each `resources` rule and each `resourceBounds` or `requireLimits` rule that can reach the same
pods, the defaults are checked for what they do to a container:

- one that sets none of a resource gets the defaults as they are: the default request (or, without
  one, the default limit, which the apiserver copies into the missing request after the webhook)
  must be within the request bounds, the default limit within the limit bounds, their ratio within
  maxLimitRequestRatio, and a resource whose limit is required must get a default limit;
- one that sets only a request gets the default limit: unless the bounds refuse such small requests
  by themselves (a request `min`), a request below limit / maxLimitRequestRatio would be admitted
  without podgate and denied with it;
- with `whenRequestExceedsLimit: raiseLimit`, one that requests more than the default limit gets a
  limit equal to its request: unless a request `max` stops such requests, the limit's `max` would deny
  a pod that, without podgate, had no limit to judge.

The last two are moot, and not checked, when the bounds' own policy requires the limit (enforce):
a container without one is denied with or without the default. Likewise, a literal value of a
`labels` rule must be one a `requireLabels` rule reaching the same pods allows and matches.

Each finding is an error at the defaulting rule, naming the rule it disagrees with. Two rules can reach
the same pods unless webhook/policy/overlap.py proves their matches disjoint; when it cannot, they are
compared, and the fix is to make the split visible (namespaces, a selector, an exclusion).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from webhook.errors import PolicyIssue
from webhook.policy.model import Action, Policy, Rule
from webhook.policy.overlap import may_overlap
from webhook.rules import Locator
from webhook.rules.exemptions import images_of, unwrap
from webhook.rules.mutators import labels as label_defaults
from webhook.rules.mutators import resources
from webhook.rules.validators import labels as label_rules
from webhook.rules.validators import require_limits, resource_bounds
from webhook.rules.validators.resource_bounds import RATIO, Bound, suggest

Finding = tuple[tuple[Any, ...], str]  # (path under the defaulting rule, message)
# The rule types that default values -> the rule types that judge those values.
_JUDGES = {
    resources.KEY: (resource_bounds.KEY, require_limits.KEY),
    label_defaults.KEY: (label_rules.KEY,),
}


def conflicts(policies: Iterable[Policy]) -> list[PolicyIssue]:
    """Every resources or labels rule whose defaults a rule reaching the same pods would deny."""
    policies = list(policies)
    # Only policies with a rule that judges defaults are compared (overlap is the costly part).
    judging = {
        key: [p for p in policies if any(r.key in judges for r in p.rules)] for key, judges in _JUDGES.items()
    }
    found: list[PolicyIssue] = []
    for policy in policies:
        for index, rule in enumerate(policy.rules):
            if rule.key not in _JUDGES:
                continue
            at = rule.at or Locator(rule.source, {}, ("spec", "rules", index, rule.key))
            # A labels rule changes the labels that selectors see: only namespaces keep it apart.
            selectors = rule.key != label_defaults.KEY
            for other in judging[rule.key]:
                if other is not policy and not may_overlap(policy, other, selectors=selectors):
                    continue
                for judge in other.rules:
                    for path, message in _disagreements(rule, other, judge):
                        found.append(at.issue(message, *path))
    return found


def _disagreements(defaulting: Rule, policy: Policy, rule: Rule) -> list[Finding]:
    name = f"{policy.name}.{rule.name} ({rule.source})"
    if defaulting.key == label_defaults.KEY:
        if rule.key != label_rules.KEY:
            return []
        return _label_disagreements(unwrap(defaulting.params), unwrap(rule.params), name)
    defaults: resources.Params = unwrap(defaulting.params)
    found: list[Finding] = []
    if rule.key == require_limits.KEY:
        required = unwrap(rule.params).resources
        for default in defaults.defaults:
            if default.resource in required and default.limit is None:
                found.append(
                    (
                        ("defaults", default.resource),
                        f"gives {default.resource} no default limit, so a container that relies on "
                        f"these defaults is still denied by {name}, which requires a {default.resource} "
                        "limit: add a default limit",
                    )
                )
    elif rule.key == resource_bounds.KEY:
        for bound in unwrap(rule.params).bounds:
            for default in defaults.defaults:
                if default.resource == bound.resource:
                    own_values_only = _limit_required(policy, rule, bound.resource)
                    found.extend(
                        _against_bound(
                            default, bound, defaults.when_request_exceeds_limit, name, own_values_only
                        )
                    )
    return found


def _limit_required(policy: Policy, bounds: Rule, resource: str) -> bool:
    """Whether the bounds' own policy denies every container they judge that sets no limit of `resource`.

    Then a container that sets only a request is denied with or without the default limit, and only
    the defaults' own values can disagree with the bounds.
    """
    judged = unwrap(bounds.params)
    for rule in policy.rules:
        if rule.key != require_limits.KEY or rule.action != Action.ENFORCE:
            continue
        required = unwrap(rule.params)
        if (
            resource in required.resources
            and set(images_of(rule.params)) <= set(images_of(bounds.params))
            and (required.init_containers or not judged.init_containers)
        ):
            return True
    return False


def _against_bound(
    default: resources.Default, bound: Bound, when_over: str, name: str, own_values_only: bool
) -> list[Finding]:
    found = _own_values(default, bound, name)
    if not own_values_only:
        found.extend(_partial_containers(default, bound, when_over, name))
    return found


def _own_values(default: resources.Default, bound: Bound, name: str) -> list[Finding]:
    """What the bounds say of a container that sets none of the resource and gets the defaults whole."""
    resource, limit = default.resource, default.limit
    # After the webhook, the apiserver copies a limit into a missing request.
    request = default.request if default.request is not None else limit
    copied = " (and the request the apiserver copies from it)" if default.request is None else ""
    checks = (
        (
            "request" if default.request is not None else "limit",
            request,
            copied,
            "request",
            bound.request_min,
            bound.request_max,
        ),
        ("limit", limit, "", "limit", bound.limit_min, bound.limit_max),
    )
    found: list[Finding] = []
    for field, value, aside, of, low, high in checks:
        if value is None:
            continue
        for beyond, edge, wrong in (
            ("below", low, low is not None and value < low),
            ("above", high, high is not None and value > high),
        ):
            if wrong:
                found.append(
                    (
                        ("defaults", resource, field),
                        f"default {resource} {field} {value}{aside} is {beyond} the {of} "
                        f"{'minimum' if beyond == 'below' else 'maximum'} {edge} of {name}, which would "
                        "deny every container given it",
                    )
                )
    ratio = bound.max_ratio
    given = default.request
    if (
        ratio is not None
        and limit is not None
        and given is not None
        and limit.value > ratio.value * given.value
    ):
        found.append(
            (
                ("defaults", resource),
                f"default {resource} limit {limit} and request {given} are further apart than "
                f"{RATIO} {ratio} of {name}, which would deny every container given both",
            )
        )
    return found


def _partial_containers(default: resources.Default, bound: Bound, when_over: str, name: str) -> list[Finding]:
    """What the bounds say of a container that sets its own request and gets only the default limit."""
    resource, limit, ratio, high = default.resource, default.limit, bound.max_ratio, bound.limit_max
    found: list[Finding] = []
    if limit is None:
        return found
    if ratio is not None and limit.value > 0:
        smallest = limit.value / ratio.value
        if bound.request_min is None or bound.request_min.value < smallest:
            least = suggest(smallest, resource, round_up=True)
            found.append(
                (
                    ("defaults", resource, "limit"),
                    f"default {resource} limit {limit} would put a container that requests less than "
                    f"{least} {resource} and sets no limit above {RATIO} {ratio} of {name}: give that rule "
                    f"a {resource} request min of at least {least}, so such requests are refused for "
                    "themselves, or drop the default limit",
                )
            )
    unbounded = bound.request_max is None or (high is not None and bound.request_max > high)
    if when_over == resources.RAISE_LIMIT and high is not None and unbounded:
        found.append(
            (
                ("whenRequestExceedsLimit",),
                f"raiseLimit would give a container requesting more than {high} {resource} a limit "
                f"equal to its request, above the limit maximum {high} of {name}: give that rule a "
                f"{resource} request max of at most {high}, or use omitLimit",
            )
        )
    return found


def _label_disagreements(
    defaults: label_defaults.Params, judged: label_rules.Params, name: str
) -> list[Finding]:
    """Literal label defaults that the allowed values or patterns of a requireLabels rule refuse.

    A value derived from the workload's name ({fromName: true}) is only known per pod: not checked.
    """
    allowed = dict(judged.allowed_values)
    found: list[Finding] = []
    for default in defaults.defaults:
        if default.from_name:
            continue
        key, value = default.key, default.value
        if key in allowed and value not in allowed[key]:
            found.append(
                (
                    ("defaults", key),
                    f'default value "{value}" is not one of {", ".join(allowed[key])}, which {name} allows, '
                    "so every pod given it would be denied",
                )
            )
        for pattern in (pattern for label, pattern in judged.patterns if label == key):
            if pattern.fullmatch(value) is None:
                found.append(
                    (
                        ("defaults", key),
                        f'default value "{value}" is not a full match of {pattern.pattern}, which {name} '
                        "requires, so every pod given it would be denied",
                    )
                )
    return found
