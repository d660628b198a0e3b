"""Where the pod lives in each kind podgate admits, and the containers of a pod spec with their paths."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from webhook.kube.limitrange import LimitRange

# The path from the object to its pod template (a PodTemplateSpec: metadata + spec).
# A Pod is its own template: its metadata and spec sit at the top.
TEMPLATE_PATHS: Mapping[str, tuple[str, ...]] = {
    "Pod": (),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
POD_KINDS = tuple(TEMPLATE_PATHS)
WORKLOAD_KINDS = tuple(k for k in TEMPLATE_PATHS if k != "Pod")

# Container lists of a pod spec, in the order the kubelet starts them. Ephemeral containers are
# debugging shells added through a subresource: podgate never touches them.
CONTAINER_LISTS = ("initContainers", "containers")
# The lists of objects in a container that rules read (and webhook/engine/limits.py bounds).
CONTAINER_ITEM_LISTS = ("env", "envFrom", "ports", "volumeMounts")


@dataclass
class PodView:
    """A pod, or the pod template of a workload, as the pod it will become.

    `template` is {"metadata": ..., "spec": ...}, edited in place by mutators (on the engine's copy).
    `path` is the JSON pointer parts of the template within the admitted object.
    """

    template: MutableMapping[str, Any]
    namespace: str
    kind: str
    path: tuple[str, ...]
    # The namespace's LimitRanges, when known (webhook.kube.cluster): a mutator's defaults must fit them.
    limit_ranges: tuple[LimitRange, ...] = ()
    # Image globs whose containers this view does not show: a rule's `exemptImages`
    # (webhook/rules/exemptions.py), so every rule that walks containers skips them the same way.
    exempt_images: tuple[str, ...] = ()

    @property
    def metadata(self) -> MutableMapping[str, Any]:
        metadata: MutableMapping[str, Any] = self.template.setdefault("metadata", {})
        return metadata

    @property
    def spec(self) -> MutableMapping[str, Any]:
        spec: MutableMapping[str, Any] = self.template.setdefault("spec", {})
        return spec

    @property
    def labels(self) -> Mapping[str, str]:
        labels: Mapping[str, str] = self.template.get("metadata", {}).get("labels") or {}
        return labels

    @property
    def is_workload(self) -> bool:
        return self.kind != "Pod"

    def pointer(self, *parts: str | int) -> tuple[str | int, ...]:
        """Pointer parts of a field of the template, relative to the admitted object."""
        return (*self.path, *parts)

    def containers(self, *, init: bool = True, regular: bool = True) -> Iterator[Container]:
        for list_name in CONTAINER_LISTS:
            if (list_name == "initContainers" and not init) or (list_name == "containers" and not regular):
                continue
            for index, container in enumerate(self.template.get("spec", {}).get(list_name) or []):
                if self.exempt_images and image_matches(container, self.exempt_images):
                    continue
                yield Container(container, list_name, index, self.path)

    def exempting(self, images: tuple[str, ...]) -> PodView:
        """The same pod (edits reach it) without the containers whose image matches one of `images`."""
        return dataclasses.replace(self, exempt_images=(*self.exempt_images, *images))


# What a pod may budget for all its containers at once in spec.resources (beta, on by default since
# Kubernetes 1.34): the apiserver refuses any other name there but hugepages-*, which podgate never sets.
POD_LEVEL_RESOURCES = ("cpu", "memory")


def pod_level_resources(
    spec: Mapping[str, Any], fields: tuple[str, ...] = ("requests", "limits")
) -> frozenset[str]:
    """The resources the pod budgets as a whole: named in spec.resources.<field> for one of `fields`.

    For requests, a pod-level limit alone counts too (the default): the apiserver then defaults the
    pod-level request (to the sum of the containers' requests, or to the limit), and the scheduler uses
    it instead of the containers'.
    """
    resources = spec.get("resources")
    if not isinstance(resources, Mapping):
        return frozenset()
    named: set[str] = set()
    for field in fields:
        values = resources.get(field)
        if isinstance(values, Mapping):
            named.update(name for name in POD_LEVEL_RESOURCES if name in values)
    return frozenset(named)


@dataclass
class Container:
    body: MutableMapping[str, Any]
    list_name: str
    index: int
    prefix: tuple[str, ...] = ()

    # Cached: messages name a container many times, and no mutator renames one.
    @functools.cached_property
    def name(self) -> str:
        return str(self.body.get("name", f"#{self.index}"))

    @property
    def is_init(self) -> bool:
        return self.list_name == "initContainers"

    @property
    def is_sidecar(self) -> bool:
        """A native sidecar: an init container that keeps running (Kubernetes 1.28+)."""
        return self.is_init and self.body.get("restartPolicy") == "Always"

    @functools.cached_property
    def label(self) -> str:
        """How messages name it: `container "app"` or `init container "setup"`."""
        return f'{"init container" if self.is_init else "container"} "{self.name}"'

    def path(self, *parts: str | int) -> tuple[str | int, ...]:
        """Pointer parts of a field of this container, relative to the admitted object."""
        return (*self.prefix, "spec", self.list_name, self.index, *parts)


def image_matches(container: Any, globs: tuple[str, ...]) -> bool:
    """Whether a container's image, as written in the pod, matches one of the globs (fnmatch)."""
    image = container.get("image") if isinstance(container, Mapping) else None
    return isinstance(image, str) and any(fnmatchcase(image, glob) for glob in globs)


def view_of(obj: MutableMapping[str, Any], kind: str, namespace: str) -> PodView | None:
    """The PodView of an admitted object, or None when it is not a kind podgate knows or has no template."""
    path = TEMPLATE_PATHS.get(kind)
    if path is None:
        return None
    node: Any = obj
    for part in path:
        node = node.get(part) if isinstance(node, MutableMapping) else None
        if node is None:
            return None
    if not isinstance(node, MutableMapping):
        return None
    return PodView(node, namespace, kind, path)


def template_of(obj: Mapping[str, Any] | None, kind: str) -> Any:
    """The pod template of an object (or the pod itself), for comparing old and new on UPDATE."""
    if obj is None:
        return None
    if kind == "Pod":
        return obj.get("spec")
    node: Any = obj
    for part in TEMPLATE_PATHS.get(kind, ()):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node
