"""Defaults fitted to the namespace's LimitRanges, so the LimitRanger plugin does not refuse what podgate set.

The arithmetic is webhook.kube.limitrange's; this turns it into a mutator's effects, with the reason in the
change's message: `container "app": cpu limit set to 20m, not the default 100m: LimitRange low's
maxLimitRequestRatio is 2 and the request is 10m`.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from webhook.kube.limitrange import LimitRange, container_bounds, fit
from webhook.kube.pods import Container
from webhook.kube.quantity import Quantity, QuantityError, parse_quantity
from webhook.rules import Changed, Effect

FIELDS = {"requests": "request", "limits": "limit"}


def within_limit_ranges(
    container: Container, resource: str, effects: list[Effect], ranges: tuple[LimitRange, ...]
) -> list[Effect]:
    """`effects` of setting `resource` on `container`, with the values they set moved inside `ranges`."""
    bounds = container_bounds(ranges, resource) if ranges else None
    set_fields = {e.path[-2] for e in effects if isinstance(e, Changed) and e.path[-2] in FIELDS}
    resources = container.body.get("resources")
    if not bounds or not set_fields or not isinstance(resources, MutableMapping):
        return effects
    try:
        request, limit = (_quantity(resources.get(field), resource) for field in FIELDS)
    except QuantityError:
        return effects  # a broken value of the user's: the mutator has said so already
    fitted = fit(
        bounds, request, limit, set_request="requests" in set_fields, set_limit="limits" in set_fields
    )
    result: list[Effect] = []
    for effect in effects:
        field = effect.path[-2] if isinstance(effect, Changed) else None
        what = FIELDS.get(str(field)) if field is not None else None
        reason = fitted.reasons.get(what) if what else None
        if isinstance(effect, Changed) and what and reason:
            chosen = fitted.request if what == "request" else fitted.limit
            assert chosen is not None
            default = resources[str(field)][resource]
            resources[str(field)][resource] = chosen.text
            message = (
                f"{container.label}: {resource} {what} set to {chosen}, not the default {default}: {reason}"
            )
            effect = Changed(effect.path, message)
        result.append(effect)
    return result


def _quantity(values: Any, name: str) -> Quantity | None:
    if not isinstance(values, Mapping) or name not in values:
        return None
    return parse_quantity(values[name])
