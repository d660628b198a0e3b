"""AdmissionRequest: the typed, frozen view of an AdmissionReview's `request` that the engine works on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from webhook.errors import ReviewError
from webhook.kube.pods import CONTAINER_ITEM_LISTS, CONTAINER_LISTS, TEMPLATE_PATHS

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


def json_type(value: object) -> str:
    """What a value is, in JSON's words: a sender reads "array", never a Python class name."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float):
        return "number"
    return "object" if isinstance(value, Mapping) else "array" if isinstance(value, list) else "value"


def shown(value: object) -> str:
    """A value for an error message: short, on one line, and never the repr of a whole object."""
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
    if value is None or isinstance(value, bool) or (isinstance(value, int | float) and abs(value) < 2**63):
        return repr(value)
    return f"{'an' if json_type(value)[0] in 'aeiou' else 'a'} {json_type(value)}"


_TYPES: Mapping[str, type | tuple[type, ...]] = {"string": str, "object": Mapping, "array": list}


def _check(value: Any, expected: str, where: str) -> Any:
    if not isinstance(value, _TYPES[expected]):
        article = "an" if expected[0] in "aeiou" else "a"
        raise ReviewError(f"{where} must be {article} {expected} (got {json_type(value)})")
    return value


def _member(raw: Mapping[str, Any], key: str, expected: str, where: str) -> Any:
    if key not in raw or raw[key] is None:
        raise ReviewError(f"{where}.{key} is missing")
    return _check(raw[key], expected, f"{where}.{key}")


def _optional(raw: Mapping[str, Any], key: str, expected: str, where: str, *, nullable: bool = True) -> Any:
    """The member, or None when absent (or null, where Kubernetes omits empty values as null)."""
    value = raw.get(key)
    if value is None and (nullable or key not in raw):
        return None
    return _check(value, expected, f"{where}.{key}")


def _text(raw: Mapping[str, Any], key: str, where: str) -> str:
    return str(_optional(raw, key, "string", where) or "")


def parse_request(raw: object) -> AdmissionRequest:
    """Check the fields the engine relies on; every missing or mistyped one is a ReviewError naming it."""
    if not isinstance(raw, Mapping):
        raise ReviewError(f"request must be an object (got {json_type(raw)})")
    uid = _member(raw, "uid", "string", "request")
    if not uid:
        raise ReviewError("request.uid is empty")
    kind = _member(raw, "kind", "object", "request")
    operation = _member(raw, "operation", "string", "request")
    if operation not in OPERATIONS:
        raise ReviewError(
            f"request.operation must be one of {', '.join(OPERATIONS)} (got {shown(operation)})"
        )
    if operation == "DELETE":
        obj = _optional(raw, "object", "object", "request") or {}
    else:
        obj = _member(raw, "object", "object", "request")
    old = _optional(raw, "oldObject", "object", "request")
    user = _optional(raw, "userInfo", "object", "request") or {}
    groups = _optional(user, "groups", "array", "request.userInfo") or []
    for index, group in enumerate(groups):
        _check(group, "string", f"request.userInfo.groups[{index}]")
    metadata = _optional(obj, "metadata", "object", "request.object") or {}
    own = {
        key: _text(metadata, key, "request.object.metadata") for key in ("namespace", "name", "generateName")
    }
    kind_name = _text(kind, "kind", "request.kind")
    _check_template(obj, kind_name)
    return AdmissionRequest(
        uid=uid,
        kind=kind_name,
        group=_text(kind, "group", "request.kind"),
        version=_text(kind, "version", "request.kind"),
        # The request's namespace is authoritative: generateName pods may lack metadata.namespace.
        namespace=_text(raw, "namespace", "request") or own["namespace"],
        name=_text(raw, "name", "request") or own["name"],
        generate_name=own["generateName"],
        sub_resource=_text(raw, "subResource", "request"),
        operation=operation,
        username=_text(user, "username", "request.userInfo"),
        groups=tuple(groups),
        dry_run=bool(raw.get("dryRun")),
        object=obj,
        old_object=old,
    )


def _check_template(obj: Mapping[str, Any], kind: str) -> None:
    """The parts of a pod (template) that rules read must have their Kubernetes types.

    The apiserver only ever sends them so; anyone else gets a 400 naming the field, rather than a rule
    meeting a string where a list of containers belongs. Lists may be null (Go sends nil slices so).
    """
    if kind not in TEMPLATE_PATHS:
        return
    where, template = "request.object", obj
    for part in TEMPLATE_PATHS[kind]:
        template = _optional(template, part, "object", where)
        where = f"{where}.{part}"
        if template is None:
            return  # no template: the engine has nothing to judge
    metadata = _optional(template, "metadata", "object", where, nullable=False) or {}
    for member in ("labels", "annotations"):
        for key, value in (_optional(metadata, member, "object", f"{where}.metadata") or {}).items():
            _check(value, "string", f"{where}.metadata.{member}[{shown(key)}]")
    _optional(metadata, "ownerReferences", "array", f"{where}.metadata")
    spec = _optional(template, "spec", "object", where, nullable=False) or {}
    where = f"{where}.spec"
    for list_name in CONTAINER_LISTS:
        for index, container in enumerate(_optional(spec, list_name, "array", where) or ()):
            at = f"{where}.{list_name}[{index}]"
            _check(container, "object", at)
            _optional(container, "name", "string", at, nullable=False)
            resources = _optional(container, "resources", "object", at, nullable=False) or {}
            for member in ("requests", "limits"):
                _optional(resources, member, "object", f"{at}.resources")
            for member in CONTAINER_ITEM_LISTS:
                _objects(container, member, at)
    for member in ("tolerations", "volumes"):
        _objects(spec, member, where)


def _objects(parent: Mapping[str, Any], member: str, where: str) -> None:
    for index, item in enumerate(_optional(parent, member, "array", where) or ()):
        _check(item, "object", f"{where}.{member}[{index}]")
