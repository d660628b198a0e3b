"""LimitRanges as the apiserver's LimitRanger plugin applies them: its defaults, and values it would refuse.

The plugin runs twice around the webhooks (the plugin list in ../shared/k8s/up.sh): while mutating it fills
in each container's missing limits and requests from the namespace's `default` and `defaultRequest`, before
any mutating webhook sees the pod; while validating, after every webhook, it refuses a pod whose values fall
outside `min`/`max` or whose limit/request exceeds `maxLimitRequestRatio`. So a default that podgate sets
must fit, or the pod podgate patched is refused with a message that does not mention podgate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from webhook.kube.quantity import Quantity, QuantityError, parse_quantity

CONTAINER, POD = "Container", "Pod"
# Where the plugin records what it set; `podgate apply` shows it as the apiserver would store it.
ANNOTATION = "kubernetes.io/limit-ranger"
_BINARY = ((2**40, "Ti"), (2**30, "Gi"), (2**20, "Mi"), (2**10, "Ki"))

Quantities = Mapping[str, Quantity]


@dataclass(frozen=True)
class LimitRangeItem:
    """One entry of `spec.limits`, its quantities parsed, with the API's defaulting applied."""

    type: str
    min: Quantities = field(default_factory=dict)
    max: Quantities = field(default_factory=dict)
    default: Quantities = field(default_factory=dict)  # limits
    default_request: Quantities = field(default_factory=dict)
    max_ratio: Quantities = field(default_factory=dict)  # maxLimitRequestRatio


@dataclass(frozen=True)
class LimitRange:
    name: str
    items: tuple[LimitRangeItem, ...] = ()


def parse_limit_range(obj: Mapping[str, Any]) -> LimitRange:
    """A LimitRange object (from the API or a manifest). Entries the apiserver would refuse are left out:
    it never stores them, so they can constrain nothing."""
    metadata, spec = _mapping(obj.get("metadata")), _mapping(obj.get("spec"))
    items = []
    for raw in spec.get("limits") or ():
        if not isinstance(raw, Mapping) or not isinstance(raw.get("type"), str):
            continue
        try:
            parsed = {attribute: _quantities(raw.get(key)) for attribute, key in _FIELDS.items()}
        except QuantityError:
            continue
        items.append(_api_defaults(LimitRangeItem(raw["type"], **parsed)))
    return LimitRange(str(metadata.get("name", "")), tuple(items))


# LimitRangeItem's attributes and the API fields they come from.
_FIELDS = {
    "min": "min",
    "max": "max",
    "default": "default",
    "default_request": "defaultRequest",
    "max_ratio": "maxLimitRequestRatio",
}


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _quantities(raw: Any) -> dict[str, Quantity]:
    if not isinstance(raw, Mapping):
        return {}
    return {str(name): parse_quantity(value) for name, value in raw.items()}


def _api_defaults(item: LimitRangeItem) -> LimitRangeItem:
    """What the apiserver stores for a Container entry (SetDefaults_LimitRangeItem): a missing default limit
    is the max, a missing default request the default limit, else the min."""
    if item.type != CONTAINER:
        return item
    default = {**item.max, **item.default}
    default_request = {**item.min, **default, **item.default_request}
    return LimitRangeItem(item.type, item.min, item.max, default, default_request, item.max_ratio)


# -- defaulting: what LimitRanger does before any webhook --------------------------------------------------


def apply_defaults(template: MutableMapping[str, Any], ranges: Iterable[LimitRange]) -> list[str]:
    """Fill in missing container limits and requests from each LimitRange's Container defaults, in order,
    as the plugin does to a Pod (never to a pod template); records what it set in the annotation it uses."""
    spec = template.get("spec")
    if not isinstance(spec, MutableMapping):
        return []
    said: list[str] = []
    for item in (i for r in ranges for i in r.items if i.type == CONTAINER):
        for list_name in ("initContainers", "containers"):
            for container in spec.get(list_name) or ():
                if isinstance(container, MutableMapping):
                    said.extend(_default_container(container, item))
    if said:
        metadata = template.setdefault("metadata", {})
        annotations = metadata.get("annotations")
        if not isinstance(annotations, MutableMapping):
            annotations = metadata["annotations"] = {}
        annotations[ANNOTATION] = "LimitRanger plugin set: " + "; ".join(said)
    return said


def _default_container(container: MutableMapping[str, Any], item: LimitRangeItem) -> list[str]:
    resources = container.get("resources")
    if not isinstance(resources, MutableMapping):
        resources = container["resources"] = {}
    said = []
    for field_name, defaults in (("requests", item.default_request), ("limits", item.default)):
        if not defaults:
            continue
        values = resources.get(field_name)
        if not isinstance(values, MutableMapping):
            values = resources[field_name] = {}
        names = [name for name in sorted(defaults) if name not in values]
        for name in names:
            values[name] = defaults[name].text
        if names:
            said.append(f"{', '.join(names)} {field_name[:-1]} for container {container.get('name', '')}")
    return said


# -- fitting: the values LimitRanger would accept ---------------------------------------------------------


@dataclass(frozen=True)
class Bound:
    value: Quantity
    source: str  # "LimitRange low's max"


@dataclass(frozen=True)
class Bounds:
    """The tightest Container constraints on one resource over every LimitRange of a namespace: the plugin
    checks each LimitRange on its own, so a value must satisfy all of them."""

    min: Bound | None = None
    max: Bound | None = None
    max_ratio: Bound | None = None

    def __bool__(self) -> bool:
        return bool(self.min or self.max or self.max_ratio)


def container_bounds(ranges: Iterable[LimitRange], resource: str) -> Bounds:
    low = high = ratio = None
    for limit_range in ranges:
        for item in limit_range.items:
            if item.type != CONTAINER:
                continue
            name = f"LimitRange {limit_range.name}"
            if resource in item.min and (low is None or item.min[resource] > low.value):
                low = Bound(item.min[resource], f"{name}'s min")
            if resource in item.max and (high is None or item.max[resource] < high.value):
                high = Bound(item.max[resource], f"{name}'s max")
            if resource in item.max_ratio and (ratio is None or item.max_ratio[resource] < ratio.value):
                ratio = Bound(item.max_ratio[resource], f"{name}'s maxLimitRequestRatio")
    return Bounds(low, high, ratio)


@dataclass(frozen=True)
class Fitted:
    """Values to set, and why each differs from the default it replaces: {"limit": "LimitRange low's max
    is 128Mi"}."""

    request: Quantity | None
    limit: Quantity | None
    reasons: Mapping[str, str] = field(default_factory=dict)


def fit(
    bounds: Bounds, request: Quantity | None, limit: Quantity | None, *, set_request: bool, set_limit: bool
) -> Fitted:
    """Move the values podgate sets (`set_request`, `set_limit`) inside `bounds`; a user's own values are
    never changed, only worked around. The result keeps request <= limit."""
    reasons: dict[str, str] = {}
    if set_limit and limit is not None:
        limit = _clamp(limit, bounds, "limit", reasons)
    if set_request and request is not None:
        request = _clamp(request, bounds, "request", reasons)
        if limit is not None and request > limit:
            request = limit
            reasons["request"] = f"the limit is {limit}"
    ratio = bounds.max_ratio
    if ratio is not None and request is not None and limit is not None and _over(ratio, request, limit):
        if set_limit:
            limit = _quantity(request.value * ratio.value.value, round_up=False)
            reasons["limit"] = f"{ratio.source} is {ratio.value} and the request is {request}"
        elif set_request:
            request = _quantity(limit.value / ratio.value.value, round_up=True)
            reasons["request"] = f"{ratio.source} is {ratio.value} and the limit is {limit}"
    return Fitted(request, limit, reasons)


def _over(ratio: Bound, request: Quantity, limit: Quantity) -> bool:
    return request.value > 0 and limit.value / request.value > ratio.value.value


def _clamp(value: Quantity, bounds: Bounds, what: str, reasons: dict[str, str]) -> Quantity:
    for bound, outside in ((bounds.max, value.__gt__), (bounds.min, value.__lt__)):
        if bound is not None and outside(bound.value):
            reasons[what] = f"{bound.source} is {bound.value}"
            return bound.value
    return value


def _quantity(value: Fraction, *, round_up: bool) -> Quantity:
    """A value as a quantity the apiserver keeps exactly: whole binary units, else millis (rounded)."""
    if value.denominator == 1:
        whole = int(value)
        for factor, suffix in _BINARY:
            if whole and whole % factor == 0:
                return Quantity(f"{whole // factor}{suffix}", value)
        return Quantity(str(whole), value)
    millis = value * 1000
    rounded = math.ceil(millis) if round_up else math.floor(millis)
    return Quantity(f"{rounded}m", Fraction(rounded, 1000))
