"""Bounds on each container's requests and limits, and on its limit/request ratio, as a LimitRange sets them.

Quantities are compared exactly, as the apiserver compares them ("0", "0m" and "0Mi" are all zero).
A bound judges a value the container has; whether it must have one is requireRequests' and
requireLimits' business. A `min` on requests is what closes the hole of a request of "0", which
satisfies requireRequests. Pod-level values (spec.resources) are not bounded here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from webhook.kube.pods import Container, PodView
from webhook.kube.quantity import Quantity, QuantityError, parse_quantity
from webhook.kube.request import AdmissionRequest
from webhook.rules import Locator, format_path

KEY = "resourceBounds"
RESOURCE_NAMES = ("cpu", "memory", "ephemeral-storage")
RATIO = "maxLimitRequestRatio"
_QUANTITY = {"type": ["string", "number"], "description": "a Kubernetes quantity: 100m, 0.5, 256Mi, 1Gi"}
_RANGE = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        "min": {**_QUANTITY, "description": "the smallest value allowed (inclusive)"},
        "max": {**_QUANTITY, "description": "the largest value allowed (inclusive)"},
    },
}
SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **{
            name: {
                "type": "object",
                "additionalProperties": False,
                "minProperties": 1,
                "properties": {
                    "request": {**_RANGE, "description": f"bounds of each container's {name} request"},
                    "limit": {**_RANGE, "description": f"bounds of each container's {name} limit"},
                    RATIO: {
                        "type": ["string", "number"],
                        "description": "the largest limit/request a container may have, at least 1 "
                        "(1: requests equal limits); judged when both are set",
                    },
                },
            }
            for name in RESOURCE_NAMES
        },
        "initContainers": {"type": "boolean", "description": "judge init containers too (default true)"},
        "hint": {"type": "string", "description": "appended to the message: how to comply in this cluster"},
    },
}


@dataclass(frozen=True)
class Bound:
    resource: str
    request_min: Quantity | None = None
    request_max: Quantity | None = None
    limit_min: Quantity | None = None
    limit_max: Quantity | None = None
    max_ratio: Quantity | None = None


@dataclass(frozen=True)
class Params:
    bounds: tuple[Bound, ...]
    init_containers: bool = True
    hint: str = ""


def parse(raw: Mapping[str, Any], at: Locator) -> Params:
    resources = [name for name in RESOURCE_NAMES if name in raw]
    if not resources:
        raise at.error(
            f"names no resource to bound: give {', '.join(RESOURCE_NAMES[:-1])} or {RESOURCE_NAMES[-1]}"
        )
    return Params(
        tuple(_bound(name, raw[name], at.child(name)) for name in resources),
        bool(raw.get("initContainers", True)),
        str(raw.get("hint", "")),
    )


def _bound(resource: str, raw: Mapping[str, Any], at: Locator) -> Bound:
    values: dict[str, Quantity | None] = {}
    for field in ("request", "limit"):
        for end in ("min", "max"):
            given = (raw.get(field) or {}).get(end)
            try:
                values[f"{field}_{end}"] = None if given is None else parse_quantity(given)
            except QuantityError as error:
                raise at.error(str(error), field, end) from None
        low, high = values[f"{field}_min"], values[f"{field}_max"]
        if low is not None and high is not None and high < low:
            raise at.error(f"max {high} is below min {low}", field, "max")
    ratio = None
    if RATIO in raw:
        try:
            ratio = parse_quantity(raw[RATIO])
        except QuantityError as error:
            raise at.error(str(error), RATIO) from None
        if ratio.value < 1:
            raise at.error(f"must be at least 1: a limit is never below its request (got {ratio})", RATIO)
    bound = Bound(resource, max_ratio=ratio, **values)
    _contradictions(bound, at)
    return bound


def _contradictions(bound: Bound, at: Locator) -> None:
    """Bounds no container setting a request and a limit could meet (a request never exceeds its limit)."""
    if bound.request_min is not None and bound.limit_max is not None and bound.request_min > bound.limit_max:
        raise at.error(
            f"min {bound.request_min} is above the limit's max {bound.limit_max}: no container with a "
            "limit could comply, as a request is never above its limit",
            "request",
            "min",
        )
    ratio, low, high = bound.max_ratio, bound.limit_min, bound.request_max
    if ratio is not None and low is not None and high is not None and low.value > ratio.value * high.value:
        raise at.error(
            f"min {low} is more than {RATIO} {ratio} times the request's max {high}: no container "
            "setting both could comply",
            "limit",
            "min",
        )


def check(pod: PodView, params: Params, request: AdmissionRequest) -> list[str]:
    messages: list[str] = []
    for container in pod.containers(init=params.init_containers):
        resources = _mapping(container.body.get("resources"))
        for bound in params.bounds:
            found = _judge(container, bound, resources)
            messages.extend(f"{m} ({params.hint})" if params.hint else m for m in found)
    return messages


def _judge(container: Container, bound: Bound, resources: Mapping[str, Any]) -> list[str]:
    name = bound.resource
    request = _quantity(resources.get("requests"), name)
    limit = _quantity(resources.get("limits"), name)
    messages = []
    for field, value, low, high in (
        ("requests", request, bound.request_min, bound.request_max),
        ("limits", limit, bound.limit_min, bound.limit_max),
    ):
        if value is None:
            continue
        where = format_path(container.path("resources", field, name))
        what = f"{container.label} {name} {field[:-1]} {value}"
        if low is not None and value < low:
            messages.append(f"{what} is below the minimum {low}; set {where} to at least {low}")
        if high is not None and value > high:
            messages.append(f"{what} is above the maximum {high}; set {where} to at most {high}")
    ratio = bound.max_ratio
    if ratio is not None and request is not None and limit is not None and limit.value > 0:
        raise_to = suggest(limit.value / ratio.value, name, round_up=True)
        request_at = format_path(container.path("resources", "requests", name))
        limit_at = format_path(container.path("resources", "limits", name))
        if request.value == 0:
            messages.append(
                f"{container.label} {name} request is 0, below its limit {limit} by more than {RATIO} "
                f"{ratio}; set {request_at} to at least {raise_to}"
            )
        elif limit.value > ratio.value * request.value:
            times = limit.value / request.value
            lower_to = suggest(request.value * ratio.value, name, round_up=False)
            messages.append(
                f"{container.label} {name} limit {limit} is {_times(times)} its request {request}, above "
                f"{RATIO} {ratio}; set {request_at} to at least {raise_to} "
                f"or {limit_at} to at most {lower_to}"
            )
    return messages


def suggest(value: Fraction, resource: str, *, round_up: bool) -> str:
    """A quantity to suggest in a message: exact when a suffix says it exactly, else rounded the safe way."""
    if value == 0:
        return "0"
    if resource == "cpu":
        millis = value * 1000
        whole = math.ceil(millis) if round_up else math.floor(millis)
        return f"{whole // 1000}" if whole % 1000 == 0 else f"{whole}m"
    whole = math.ceil(value) if round_up else math.floor(value)
    if whole == 0:
        return "0"
    for suffix, factor in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if whole % factor == 0:
            return f"{whole // factor}{suffix}"
    for suffix, factor in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if whole % factor == 0:
            return f"{whole // factor}{suffix}"
    return str(whole)


def _times(ratio: Fraction) -> str:
    if ratio.denominator == 1:
        return f"{ratio.numerator} times"
    return f"{float(ratio):.3g} times"


def _quantity(values: Any, name: str) -> Quantity | None:
    """The container's value, or None when unset or unreadable (the apiserver refuses those anyway)."""
    if not isinstance(values, Mapping) or name not in values:
        return None
    try:
        return parse_quantity(values[name])
    except QuantityError:
        return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
