"""ClusterFacts: what podgate knows of the cluster beyond one AdmissionReview (namespace labels, LimitRanges).

An AdmissionReview names the pod's namespace but carries none of its labels, and nothing of its
LimitRanges. The engine stays a function of its input, so these facts are part of the input: the server
keeps them current from a watch (webhook/server/cluster.py), `podgate apply` and `podgate test` build them
from the manifests, a flag or a cluster. A namespace absent from `namespace_labels` is *unknown*, which is
not the same as a namespace without labels: a `NotIn` or `DoesNotExist` selector matches the latter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from webhook.kube.limitrange import LimitRange, parse_limit_range

# Every namespace carries its own name as this label (set by the apiserver, immutable).
NAME_LABEL = "kubernetes.io/metadata.name"
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class ClusterFacts:
    """Labels by namespace name, LimitRanges by namespace, and what to tell a user about an unknown one.

    `limit_ranges_known`: LimitRanges were looked up, so a namespace without an entry has none. Without
    it, podgate's defaults are not fitted to any LimitRange (as before podgate could see them).
    `unknown_hint` ends the warning given when a policy needs the labels of a namespace not in
    `namespace_labels` ("labels of namespace x are unknown: <hint>").
    """

    namespace_labels: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: _EMPTY)
    limit_ranges: Mapping[str, tuple[LimitRange, ...]] = field(default_factory=lambda: _EMPTY)
    limit_ranges_known: bool = False
    unknown_hint: str = "podgate was given no namespace labels"

    def labels_of(self, namespace: str) -> Mapping[str, str] | None:
        """The namespace's labels, or None when unknown."""
        return self.namespace_labels.get(namespace)

    def limit_ranges_of(self, namespace: str) -> tuple[LimitRange, ...]:
        return self.limit_ranges.get(namespace, ())


NO_FACTS = ClusterFacts()


def namespace_labels(obj: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """(name, labels) of a Namespace object, with the name label the apiserver adds to every namespace."""
    metadata = _mapping(obj.get("metadata"))
    name = str(metadata.get("name", ""))
    raw = metadata.get("labels")
    labels = {str(k): str(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {}
    labels.setdefault(NAME_LABEL, name)
    return name, labels


def facts_from_objects(
    objects: Iterable[Mapping[str, Any]],
    *,
    base: ClusterFacts = NO_FACTS,
    limit_ranges_known: bool | None = None,
    unknown_hint: str | None = None,
) -> ClusterFacts:
    """`base` plus the Namespace and LimitRange objects among `objects` (other kinds are ignored).

    LimitRanges count as known once any LimitRange is given, unless `limit_ranges_known` says otherwise.
    """
    labels = dict(base.namespace_labels)
    ranges = {namespace: list(found) for namespace, found in base.limit_ranges.items()}
    saw_range = False
    for obj in objects:
        if obj.get("apiVersion") != "v1":
            continue
        if obj.get("kind") == "Namespace":
            name, found = namespace_labels(obj)
            if name:
                labels[name] = MappingProxyType(found)
        elif obj.get("kind") == "LimitRange":
            namespace = str(_mapping(obj.get("metadata")).get("namespace") or "default")
            ranges.setdefault(namespace, []).append(parse_limit_range(obj))
            saw_range = True
    known = base.limit_ranges_known or saw_range if limit_ranges_known is None else limit_ranges_known
    return ClusterFacts(
        MappingProxyType(labels),
        MappingProxyType({namespace: tuple(found) for namespace, found in ranges.items()}),
        known,
        base.unknown_hint if unknown_hint is None else unknown_hint,
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
