"""How much of a pod podgate will judge: bounds that keep every evaluation cheap, whatever is sent.

The body limit bounds the bytes; these bound the work a rule module may do per pod (some compare every
injected item with every item of a container). They sit far above any real pod. A pod past them is
denied, never admitted unjudged: padding a pod with a thousand dummy variables must not be a way
around the policies.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from webhook.kube.pods import CONTAINER_ITEM_LISTS, CONTAINER_LISTS, PodView

MAX_CONTAINERS = 256  # init and regular containers together
MAX_ITEMS_PER_CONTAINER = 1024  # each of env, envFrom, ports, volumeMounts
MAX_VOLUMES = 1024
MAX_TOLERATIONS = 1024
MAX_METADATA_ENTRIES = 1024  # each of labels, annotations


def over_limit(pod: PodView) -> str | None:
    """What exceeds a limit, as a message for the user; None when the pod is within all of them."""
    return next(_excesses(pod), None)


def _excesses(pod: PodView) -> Iterator[str]:
    spec = pod.template.get("spec")
    metadata = pod.template.get("metadata")
    spec = spec if isinstance(spec, Mapping) else {}
    for field in ("labels", "annotations"):
        yield from _check(
            metadata.get(field) if isinstance(metadata, Mapping) else None,
            MAX_METADATA_ENTRIES,
            f"metadata.{field}",
        )
    yield from _check(spec.get("volumes"), MAX_VOLUMES, "spec.volumes")
    yield from _check(spec.get("tolerations"), MAX_TOLERATIONS, "spec.tolerations")
    containers = [c for name in CONTAINER_LISTS for c in _items(spec.get(name))]
    if len(containers) > MAX_CONTAINERS:
        yield f"the pod has {len(containers)} containers; podgate judges pods of at most {MAX_CONTAINERS}"
        return
    for container in containers:
        if not isinstance(container, Mapping):
            continue
        for field in CONTAINER_ITEM_LISTS:
            where = f"container {str(container.get('name'))[:63]!r} {field}"
            yield from _check(container.get(field), MAX_ITEMS_PER_CONTAINER, where)


def _check(value: Any, limit: int, where: str) -> Iterator[str]:
    if isinstance(value, (list, Mapping)) and len(value) > limit:
        yield f"{where} has {len(value)} entries; podgate judges at most {limit}"


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
