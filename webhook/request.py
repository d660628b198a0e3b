"""AdmissionRequest: the typed, frozen view of an AdmissionReview's `request` that the engine works on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from webhook.errors import ReviewError

OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT")


@dataclass(frozen=True)
class AdmissionRequest:
    uid: str
    kind: str
    group: str
    version: str
    namespace: str
    name: str
    operation: str
    username: str
    object: Mapping[str, Any]
    groups: tuple[str, ...] = ()
    generate_name: str = ""
    sub_resource: str = ""  # "status", "ephemeralcontainers", "scale", ...: never the pod template
    dry_run: bool = False
    old_object: Mapping[str, Any] | None = field(default=None, repr=False)

    @property
    def display_name(self) -> str:
        """The name a person recognises: generateName pods have no name at the mutating stage."""
        if self.name:
            return self.name
        return f"{self.generate_name}<generated>" if self.generate_name else "<unnamed>"

    @property
    def qualified_name(self) -> str:
        return f"{self.kind} {self.namespace}/{self.display_name}" if self.namespace else self.display_name


def _member(raw: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in raw or raw[key] is None:
        raise ReviewError(f"{where}.{key} is missing")
    value = raw[key]
    if not isinstance(value, kind):
        raise ReviewError(f"{where}.{key} must be a {kind.__name__} (got {type(value).__name__})")
    return value


def parse_request(raw: object) -> AdmissionRequest:
    """Check the fields the engine relies on; every missing or mistyped one is a ReviewError naming it."""
    if not isinstance(raw, Mapping):
        raise ReviewError("request must be an object")
    uid = _member(raw, "uid", str, "request")
    if not uid:
        raise ReviewError("request.uid is empty")
    kind = _member(raw, "kind", Mapping, "request")
    operation = _member(raw, "operation", str, "request")
    if operation not in OPERATIONS:
        raise ReviewError(f"request.operation must be one of {', '.join(OPERATIONS)} (got {operation!r})")
    obj = _member(raw, "object", Mapping, "request") if operation != "DELETE" else raw.get("object") or {}
    old = raw.get("oldObject")
    if old is not None and not isinstance(old, Mapping):
        raise ReviewError("request.oldObject must be an object or null")
    user = raw.get("userInfo") or {}
    if not isinstance(user, Mapping):
        raise ReviewError("request.userInfo must be an object")
    metadata = obj.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise ReviewError("request.object.metadata must be an object")
    spec = obj.get("spec")
    if spec is not None and not isinstance(spec, Mapping):
        raise ReviewError("request.object.spec must be an object")
    return AdmissionRequest(
        uid=uid,
        kind=str(kind.get("kind") or ""),
        group=str(kind.get("group") or ""),
        version=str(kind.get("version") or ""),
        # The request's namespace is authoritative: generateName pods may lack metadata.namespace.
        namespace=str(raw.get("namespace") or metadata.get("namespace") or ""),
        name=str(raw.get("name") or metadata.get("name") or ""),
        generate_name=str(metadata.get("generateName") or ""),
        sub_resource=str(raw.get("subResource") or ""),
        operation=operation,
        username=str(user.get("username") or ""),
        groups=tuple(str(g) for g in user.get("groups") or ()),
        dry_run=bool(raw.get("dryRun")),
        object=obj,
        old_object=old,
    )
