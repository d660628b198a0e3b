"""Manifests and AdmissionReview files -> AdmissionReview requests, as the apiserver would send them."""

from __future__ import annotations

import json
import sys
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from webhook.engine.workloads import apiserver_pod_defaults
from webhook.errors import PodgateError
from webhook.kube.pods import view_of

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
# How the apiserver decodes a null into its typed objects (checked with server-side dry runs, v1.36): in
# these maps of strings a null value becomes "", in these maps of quantities "0"; anywhere else a null
# field is dropped (a nil pointer, list or map, or an empty string, all omitted when the object is encoded
# again for the webhooks). `livenessProbe:` left empty is no probe, `resources:` left empty no resources.
STRING_MAPS = frozenset({"labels", "annotations", "nodeSelector", "matchLabels", "volumeAttributes"})
QUANTITY_MAPS = frozenset({"requests", "limits", "overhead"})


class InputError(PodgateError):
    """A manifest that cannot be read or is not a Kubernetes object."""


class NamespaceMismatch(InputError):
    """The object names a namespace and -n names another: kubectl refuses that, and so does podgate."""

    def __init__(self, where: str, own: str, given: str) -> None:
        self.own, self.given = own, given
        prefix = f"{where}: " if where else ""
        super().__init__(
            f'{prefix}the namespace from the provided object "{own}" does not match the namespace '
            f"\"{given}\". You must pass '--namespace={own}' to perform this operation."
        )


@dataclass(frozen=True)
class Options:
    namespace: str | None = None
    operation: str = "CREATE"
    user: str = "podgate-apply"
    groups: tuple[str, ...] = ("system:authenticated",)


@dataclass(frozen=True)
class Item:
    source: str  # "file.yaml#2": where the object came from
    request: Mapping[str, Any]
    # An AdmissionReview is sent as captured: its operation, namespace and user are not ours to set.
    from_review: bool = False


def read_inputs(paths: list[str], options: Options, *, recursive: bool = True) -> Iterator[Item]:
    for source in expand(paths, recursive=recursive):
        yield from read_source(source, options)


def expand(paths: list[str], *, recursive: bool) -> list[str]:
    """The files to read, in order: directories become their manifest files (sorted), "-" stays stdin."""
    sources: list[str] = []
    for path in paths:
        root = Path(path)
        if path == "-":
            sources.append(path)
        elif root.is_dir():
            pattern = "**/*" if recursive else "*"
            files = (p for p in root.glob(pattern) if p.is_file() and p.suffix in MANIFEST_SUFFIXES)
            sources.extend(str(p) for p in sorted(files))
        elif root.is_file():
            sources.append(path)
        else:
            raise InputError(f"{path}: no such file or directory")
    return sources


def read_source(source: str, options: Options) -> list[Item]:
    """Every object of one file ("-" for stdin)."""
    if source == "-":
        return list(parse_items("<stdin>", sys.stdin.read(), options))
    return list(parse_items(source, _read(Path(source)), options))


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{file}: cannot read: {error}") from None


def parse_items(source: str, text: str, options: Options) -> Iterator[Item]:
    """The objects of a YAML or JSON stream: manifests, List items, or AdmissionReviews."""
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as error:
        raise InputError(f"{source}: invalid YAML or JSON: {error}") from None
    for index, document in enumerate(documents, start=1):
        where = f"{source}#{index}" if len(documents) > 1 else source
        yield from items_of(document, where, options)


def items_of(document: Any, where: str, options: Options) -> Iterator[Item]:
    """The requests one parsed document stands for (a List stands for each of its items)."""
    if not isinstance(document, Mapping) or "kind" not in document:
        raise InputError(f"{where}: not a Kubernetes object (no kind)")
    if document["kind"] == "AdmissionReview":
        if not isinstance(document.get("request"), Mapping):
            raise InputError(f"{where}: AdmissionReview without a request")
        yield Item(where, document["request"], from_review=True)
    elif document["kind"] == "List":
        for sub, item in enumerate(document.get("items") or [], start=1):
            yield Item(f"{where}[{sub}]", request_for(item, options, f"{where}[{sub}]"))
    else:
        yield Item(where, request_for(document, options, where))


def request_for(obj: Mapping[str, Any], options: Options, source: str = "") -> dict[str, Any]:
    """The `request` the apiserver would send for a manifest, after its own defaulting."""
    if not isinstance(obj, Mapping) or not isinstance(obj.get("apiVersion"), str):
        raise InputError(f"{source}: not a Kubernetes object (no apiVersion)")
    group, _, version = obj["apiVersion"].rpartition("/")
    decoded = without_nulls(json.loads(json.dumps(obj)))
    metadata = decoded.get("metadata") or {}
    # As kubectl: the object's own namespace stands; -n only fills one in, and may not contradict it.
    own = metadata.get("namespace")
    if own and options.namespace and own != options.namespace:
        raise NamespaceMismatch(source, own, options.namespace)
    namespace = own or options.namespace or "default"
    stored = apiserver_defaults(decoded, namespace)
    return {
        # Stable across runs (str hashes are salted per process), so outputs can be compared.
        "uid": f"podgate-apply-{zlib.crc32(source.encode()):08x}",
        "kind": {"group": group, "version": version, "kind": obj["kind"]},
        "name": metadata.get("name", ""),
        "namespace": namespace,
        "operation": options.operation,
        "userInfo": {"username": options.user, "groups": list(options.groups)},
        "object": stored,
        "oldObject": None,
        "dryRun": True,
    }


def without_nulls(node: Any, parent: str = "") -> Any:
    """The manifest as the apiserver decodes it into its typed object (see STRING_MAPS)."""
    if isinstance(node, dict):
        if parent in STRING_MAPS or parent in QUANTITY_MAPS:
            empty = "" if parent in STRING_MAPS else "0"
            return {key: empty if value is None else without_nulls(value) for key, value in node.items()}
        return {key: without_nulls(value, key) for key, value in node.items() if value is not None}
    if isinstance(node, list):
        return [without_nulls(item) for item in node]
    return node


def apiserver_defaults(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The apiserver defaulting that changes what podgate decides; the fixtures show it happens first.

    Pods get requests copied from limits, the default service account and the not-ready/unreachable
    tolerations (webhook.engine.workloads, which judges a workload's future pods the same way). Pod
    templates get none of it: Kubernetes defaults these on Pods only.
    """
    obj.setdefault("metadata", {}).setdefault("namespace", namespace)
    pod = view_of(obj, str(obj.get("kind")), namespace)
    if pod is not None and not pod.is_workload:
        apiserver_pod_defaults(pod.spec)
    return obj
