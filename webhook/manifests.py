"""Manifests and AdmissionReview files -> AdmissionReview requests, as the apiserver would send them."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from webhook.errors import PodgateError
from webhook.pods import view_of

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
# What the apiserver's DefaultTolerationSeconds plugin adds to every pod before any webhook sees it.
DEFAULT_TOLERATIONS = tuple(
    {
        "key": f"node.kubernetes.io/{key}",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    }
    for key in ("not-ready", "unreachable")
)


class InputError(PodgateError):
    """A manifest that cannot be read or is not a Kubernetes object."""


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


def read_inputs(paths: list[str], options: Options, *, recursive: bool = True) -> Iterator[Item]:
    for path in paths:
        if path == "-":
            yield from _items("<stdin>", sys.stdin.read(), options)
            continue
        root = Path(path)
        if root.is_dir():
            pattern = "**/*" if recursive else "*"
            for file in sorted(
                p for p in root.glob(pattern) if p.is_file() and p.suffix in MANIFEST_SUFFIXES
            ):
                yield from _items(str(file), _read(file), options)
        elif root.is_file():
            yield from _items(str(root), _read(root), options)
        else:
            raise InputError(f"{path}: no such file or directory")


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{file}: cannot read: {error}") from None


def _items(source: str, text: str, options: Options) -> Iterator[Item]:
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as error:
        raise InputError(f"{source}: invalid YAML or JSON: {error}") from None
    for index, document in enumerate(documents, start=1):
        where = f"{source}#{index}" if len(documents) > 1 else source
        if not isinstance(document, Mapping) or "kind" not in document:
            raise InputError(f"{where}: not a Kubernetes object (no kind)")
        if document["kind"] == "AdmissionReview":
            if not isinstance(document.get("request"), Mapping):
                raise InputError(f"{where}: AdmissionReview without a request")
            yield Item(where, document["request"])
        elif document["kind"] == "List":
            for sub, item in enumerate(document.get("items") or [], start=1):
                yield Item(f"{where}[{sub}]", request_for(item, options, f"{where}[{sub}]"))
        else:
            yield Item(where, request_for(document, options, where))


def request_for(obj: Mapping[str, Any], options: Options, source: str = "") -> dict[str, Any]:
    """The `request` the apiserver would send for a manifest, after its own defaulting."""
    if not isinstance(obj.get("apiVersion"), str):
        raise InputError(f"{source}: not a Kubernetes object (no apiVersion)")
    group, _, version = obj["apiVersion"].rpartition("/")
    metadata = obj.get("metadata") or {}
    namespace = options.namespace or metadata.get("namespace") or "default"
    stored = apiserver_defaults(json.loads(json.dumps(obj)), namespace)
    return {
        "uid": f"podgate-apply-{abs(hash(source)) % 10**8:08d}",
        "kind": {"group": group, "version": version, "kind": obj["kind"]},
        "name": metadata.get("name", ""),
        "namespace": namespace,
        "operation": options.operation,
        "userInfo": {"username": options.user, "groups": list(options.groups)},
        "object": stored,
        "oldObject": None,
        "dryRun": True,
    }


def apiserver_defaults(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The apiserver defaulting that changes what podgate decides; the fixtures show it happens first.

    Requests are copied from limits where missing, and pods get the not-ready/unreachable
    tolerations. Other API defaults (dnsPolicy, imagePullPolicy, ...) do not affect any policy.
    """
    obj.setdefault("metadata", {}).setdefault("namespace", namespace)
    pod = view_of(obj, str(obj.get("kind")), namespace)
    if pod is None:
        return obj
    for container in pod.containers():
        resources = container.body.get("resources")
        if isinstance(resources, dict) and isinstance(resources.get("limits"), dict):
            requests = resources.setdefault("requests", {})
            for name, value in resources["limits"].items():
                requests.setdefault(name, value)
    if not pod.is_workload:
        tolerations = pod.spec.setdefault("tolerations", [])
        present = {(t.get("key"), t.get("effect")) for t in tolerations if isinstance(t, dict)}
        for toleration in DEFAULT_TOLERATIONS:
            if (toleration["key"], toleration["effect"]) not in present:
                tolerations.append(dict(toleration))
    return obj
