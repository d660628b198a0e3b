"""Tolerations a policy lists, and a shorter wait than the apiserver's 300 s before leaving a dead node.

The apiserver's DefaultTolerationSeconds plugin runs before any webhook and gives every pod
`node.kubernetes.io/not-ready` and `node.kubernetes.io/unreachable` tolerations (Exists, NoExecute,
tolerationSeconds 300), so "add it if absent" would never act on them. For those two keys a policy's
tolerationSeconds replaces exactly the apiserver's value (300 unless the cluster sets
--default-not-ready-toleration-seconds / --default-unreachable-toleration-seconds): a user who wrote that
same value by hand cannot be told apart from the plugin and is replaced too; any other value a user
chose is kept.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from webhook.kube.names import label_value_problem, qualified_name_problem
from webhook.kube.pods import PodView
from webhook.kube.request import AdmissionRequest
from webhook.rules import Changed, Effect, Locator

KEY = "tolerations"
SETS_LABELS = False
EQUAL, EXISTS = "Equal", "Exists"
NO_EXECUTE = "NoExecute"
EFFECTS = ("", "NoSchedule", "PreferNoSchedule", NO_EXECUTE)
# The taints whose tolerations DefaultTolerationSeconds adds, with its default tolerationSeconds.
APISERVER_KEYS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
APISERVER_DEFAULT_SECONDS = 300
# tolerationSeconds is an int64 in Kubernetes (and in the JSON Patch podgate writes).
INT64_MAX = 2**63 - 1


_TOLERATION_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "description": "a pod toleration, as in a pod spec",
    "properties": {
        "key": {"type": "string", "description": "taint key; empty with Exists tolerates every taint"},
        "operator": {"enum": [EQUAL, EXISTS], "description": "default Equal"},
        "value": {"type": "string", "description": "taint value (Equal only)"},
        "effect": {"enum": list(EFFECTS), "description": "empty tolerates every effect"},
        "tolerationSeconds": {
            "type": "integer",
            "minimum": 0,
            "maximum": INT64_MAX,
            "description": "NoExecute only: seconds the pod stays once the taint appears",
        },
    },
}
SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["add"],
    "properties": {
        "add": {
            "type": "array",
            "minItems": 1,
            "items": _TOLERATION_SCHEMA,
            "description": "tolerations every pod gets unless it has an equivalent or broader one",
        },
        "apiserverDefaultSeconds": {
            "type": "integer",
            "minimum": 0,
            "maximum": INT64_MAX,
            "description": "the kube-apiserver's not-ready/unreachable tolerationSeconds (default 300)",
        },
    },
}


@dataclass(frozen=True)
class Toleration:
    key: str = ""
    operator: str = ""  # as written: "" and Equal mean the same to Kubernetes
    value: str = ""
    effect: str = ""
    seconds: int | None = None

    @property
    def identity(self) -> tuple[str, str, str, str]:
        """Key, operator, value and effect, with Kubernetes' defaults applied: what makes two equivalent."""
        return (self.key, self.operator or EQUAL, self.value, self.effect)

    def body(self) -> dict[str, Any]:
        # Empty strings are left out, as the apiserver leaves them out of the stored pod.
        fields = {"key": self.key, "operator": self.operator, "value": self.value, "effect": self.effect}
        body: dict[str, Any] = {name: text for name, text in fields.items() if text}
        if self.seconds is not None:
            body["tolerationSeconds"] = self.seconds
        return body

    def __str__(self) -> str:
        text = f"{self.key or '*'} {self.operator or EQUAL}"
        text += f" {self.value}" if self.value else ""
        text += f" {self.effect or 'any effect'}"
        return text + (f" for {self.seconds}s" if self.seconds is not None else "")


@dataclass(frozen=True)
class Params:
    tolerations: tuple[Toleration, ...]
    apiserver_default_seconds: int = APISERVER_DEFAULT_SECONDS


def parse(raw: Mapping[str, Any], at: Locator) -> Params:
    tolerations: list[Toleration] = []
    for index, item in enumerate(raw["add"]):
        toleration = Toleration(
            key=str(item.get("key", "")),
            operator=str(item.get("operator", "")),
            value=str(item.get("value", "")),
            effect=str(item.get("effect", "")),
            seconds=item.get("tolerationSeconds"),
        )
        problem = toleration_problem(toleration)
        if problem:
            raise at.error(problem[1], "add", index, problem[0])
        same = [t for t in tolerations if t.identity == toleration.identity]
        if same:
            raise at.error(f"equivalent to add[{tolerations.index(same[0])}] ({same[0]})", "add", index)
        tolerations.append(toleration)
    return Params(tuple(tolerations), int(raw.get("apiserverDefaultSeconds", APISERVER_DEFAULT_SECONDS)))


def toleration_problem(toleration: Toleration) -> tuple[str, str] | None:
    """(field, message) for what the apiserver would reject in a toleration, or None."""
    if toleration.key:
        problem = qualified_name_problem(toleration.key)
        if problem:
            return "key", problem
    elif toleration.operator != EXISTS:
        return "operator", "must be Exists when key is empty (an empty key matches every taint)"
    if toleration.operator == EXISTS and toleration.value:
        return "value", "must be empty when operator is Exists"
    if toleration.operator != EXISTS and label_value_problem(toleration.value):
        return "value", "must be a label value: at most 63 letters, digits, '-', '_' or '.'"
    if toleration.seconds is not None and toleration.effect != NO_EXECUTE:
        return "tolerationSeconds", "only a NoExecute toleration takes tolerationSeconds"
    return None


def mutate(pod: PodView, params: Params, request: AdmissionRequest) -> list[Effect]:
    effects: list[Effect] = []
    for wanted in params.tolerations:
        existing = [t for t in pod.spec.get("tolerations") or [] if isinstance(t, MutableMapping)]
        equivalent = next((t for t in existing if _read(t).identity == wanted.identity), None)
        if equivalent is not None:
            effect = _shorten_apiserver_default(pod, equivalent, wanted, params)
            if effect is not None:
                effects.append(effect)
            continue
        # The taint manager evicts after the shortest tolerationSeconds of all matching tolerations:
        # beside a broader toleration, a timed one would evict the pod sooner than its author asked
        # (or change nothing, when the broader one is shorter).
        if any(_covers(_read(t), wanted) for t in existing):
            continue
        tolerations = pod.spec.get("tolerations")
        if not isinstance(tolerations, list):
            tolerations = pod.spec["tolerations"] = []
        tolerations.append(wanted.body())
        index = len(tolerations) - 1
        effects.append(Changed(pod.pointer("spec", "tolerations", index), f"toleration {wanted} added"))
    return effects


def _shorten_apiserver_default(
    pod: PodView, existing: MutableMapping[str, Any], wanted: Toleration, params: Params
) -> Changed | None:
    """Replace the apiserver's default tolerationSeconds with the policy's; keep any value a user chose."""
    if wanted.key not in APISERVER_KEYS or wanted.seconds is None:
        return None
    seconds = existing.get("tolerationSeconds")
    if seconds != params.apiserver_default_seconds or seconds == wanted.seconds:
        return None
    existing["tolerationSeconds"] = wanted.seconds
    index = pod.spec["tolerations"].index(existing)
    return Changed(
        pod.pointer("spec", "tolerations", index, "tolerationSeconds"),
        f"toleration {wanted.key}: tolerationSeconds {seconds} (the apiserver's default) "
        f"replaced by {wanted.seconds}",
    )


def _covers(existing: Toleration, wanted: Toleration) -> bool:
    """Whether `existing` already tolerates every taint that `wanted` would (for however long)."""
    if existing.effect not in ("", wanted.effect):
        return False
    if existing.key and existing.key != wanted.key:
        return False
    if existing.operator == EXISTS:
        return True
    return wanted.operator != EXISTS and existing.value == wanted.value


def _read(body: Mapping[str, Any]) -> Toleration:
    seconds = body.get("tolerationSeconds")
    return Toleration(
        key=str(body.get("key") or ""),
        operator=str(body.get("operator") or ""),
        value=str(body.get("value") or ""),
        effect=str(body.get("effect") or ""),
        seconds=seconds if isinstance(seconds, int) and not isinstance(seconds, bool) else None,
    )
