"""Liveness, readiness and startup probes for containers lacking them, inferred from their declared ports."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webhook.kube.pods import Container, PodView
from webhook.kube.request import AdmissionRequest
from webhook.rules import Changed, Effect, Locator, Warned

KEY = "probes"
SETS_LABELS = False

# Policy key -> container field, in the order probes are injected and reported.
KINDS = {"readiness": "readinessProbe", "liveness": "livenessProbe", "startup": "startupProbe"}
# The kubelet restarts a container on the first failed liveness or startup probe run that reaches the
# failure threshold, so Kubernetes only accepts successThreshold 1 for them.
SINGLE_SUCCESS_KINDS = ("liveness", "startup")
SCHEMES = ("HTTP", "HTTPS")
# A port name as Kubernetes validates it (IANA_SVC_NAME): at most 15 characters, lowercase letters,
# digits and single inner hyphens, at least one letter.
_PORT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
PORT_NAME_MAX = 15

# Kubernetes stores probe timings as int32; a larger number would reach no pod (nor fit the patch).
INT32_MAX = 2**31 - 1
_SECONDS = {"type": "integer", "minimum": 1, "maximum": INT32_MAX}
_TIMING_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "description": "probe timings; each omitted field takes the Kubernetes default",
    "properties": {
        "initialDelaySeconds": {
            "type": "integer",
            "minimum": 0,
            "maximum": INT32_MAX,
            "description": "seconds before the first probe (default 0)",
        },
        "periodSeconds": {**_SECONDS, "description": "seconds between probes (default 10)"},
        "timeoutSeconds": {**_SECONDS, "description": "seconds before a probe counts as failed (default 1)"},
        "failureThreshold": {**_SECONDS, "description": "consecutive failures that count (default 3)"},
        "successThreshold": {
            **_SECONDS,
            "description": "consecutive successes after a failure (default 1; liveness and startup: only 1)",
        },
    },
}
SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "readiness": {**_TIMING_SCHEMA, "description": "inject readiness probes with these timings"},
        "liveness": {**_TIMING_SCHEMA, "description": "inject liveness probes with these timings"},
        "startup": {
            **_TIMING_SCHEMA,
            "description": "inject startup probes with these timings, only beside an injected liveness probe",
        },
        "httpPortName": {
            "type": "string",
            "minLength": 1,
            "maxLength": PORT_NAME_MAX,
            "description": "a container port with this name gets httpGet probes (default http)",
        },
        "portNames": {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": PORT_NAME_MAX},
            "minItems": 1,
            "uniqueItems": True,
            "description": "port names to probe, in order of preference; httpPortName comes right after "
            "them unless listed, and a container with none of them gets its first TCP port",
        },
        "httpPath": {
            "type": "string",
            "pattern": r"^/\S*$",
            "description": "path of httpGet probes (default /); must answer 200-399 when healthy",
        },
        "httpScheme": {"enum": list(SCHEMES), "description": "scheme of httpGet probes (default HTTP)"},
        "nativeSidecars": {
            "type": "boolean",
            "description": "probe init containers with restartPolicy Always too (default false)",
        },
    },
}


@dataclass(frozen=True)
class Timing:
    """A probe's timings with the apiserver's defaults, so the injected probe is stored exactly as sent."""

    initial_delay_seconds: int = 0
    period_seconds: int = 10
    timeout_seconds: int = 1
    success_threshold: int = 1
    failure_threshold: int = 3


@dataclass(frozen=True)
class Params:
    probes: tuple[tuple[str, Timing], ...]  # (container field, timings), in injection order
    http_port_name: str = "http"
    http_path: str = "/"
    http_scheme: str = "HTTP"
    native_sidecars: bool = False
    # The port names that win, in order: portNames, then httpPortName unless listed.
    port_names: tuple[str, ...] = ("http",)


def parse(raw: Mapping[str, Any], at: Locator) -> Params:
    kinds = [kind for kind in KINDS if kind in raw]
    if not kinds:
        raise at.error("names no probe to inject: give liveness, readiness or startup")
    if "startup" in raw and "liveness" not in raw:
        # A startup probe only holds back liveness checks; podgate injects it beside its own
        # liveness probe and never in front of a user's, whose path it cannot know.
        raise at.error("a startup probe is only injected with a liveness probe: add liveness", "startup")
    probes = []
    for kind in kinds:
        values = raw[kind]
        success = values.get("successThreshold", 1)
        if kind in SINGLE_SUCCESS_KINDS and success != 1:
            raise at.error(
                f"must be 1 for {kind} probes (Kubernetes rejects others; got {success})",
                kind,
                "successThreshold",
            )
        timing = Timing(
            initial_delay_seconds=values.get("initialDelaySeconds", 0),
            period_seconds=values.get("periodSeconds", 10),
            timeout_seconds=values.get("timeoutSeconds", 1),
            success_threshold=success,
            failure_threshold=values.get("failureThreshold", 3),
        )
        probes.append((KINDS[kind], timing))
    port_name = str(raw.get("httpPortName", "http"))
    problem = port_name_problem(port_name)
    if problem:
        raise at.error(f"{problem} (got {port_name!r})", "httpPortName")
    preferred = [str(name) for name in raw.get("portNames", ())]
    for index, name in enumerate(preferred):
        problem = port_name_problem(name)
        if problem:
            raise at.error(f"{problem} (got {name!r})", "portNames", index)
    return Params(
        tuple(probes),
        port_name,
        str(raw.get("httpPath", "/")),
        str(raw.get("httpScheme", "HTTP")),
        bool(raw.get("nativeSidecars", False)),
        (*preferred, port_name) if port_name not in preferred else tuple(preferred),
    )


def port_name_problem(name: str) -> str:
    """Why Kubernetes would reject `name` as a container port name, or "" when it is valid."""
    if len(name) > PORT_NAME_MAX:
        return f"must be at most {PORT_NAME_MAX} characters, like a container port name"
    if not _PORT_NAME.match(name) or "--" in name:
        return "must be lowercase letters, digits and single inner hyphens, like a container port name"
    if not any(c.isalpha() for c in name):
        return "must contain a letter, like a container port name"
    return ""


def mutate(pod: PodView, params: Params, request: AdmissionRequest) -> list[Effect]:
    effects: list[Effect] = []
    for container in pod.containers(init=params.native_sidecars):
        # Plain init containers run to completion; Kubernetes forbids probes on them.
        if container.is_init and not container.is_sidecar:
            continue
        effects.extend(_probe_one(container, params))
    return effects


def _probe_one(container: Container, params: Params) -> list[Effect]:
    # Per probe kind: a container with its own readiness probe still gets the liveness one.
    missing = [(field, timing) for field, timing in params.probes if field not in container.body]
    # The startup probe guards the injected liveness probe; beside a user's liveness probe it would
    # gate checks podgate knows nothing about.
    if "livenessProbe" in container.body:
        missing = [(field, timing) for field, timing in missing if field != "startupProbe"]
    if not missing:
        return []
    inferred = _handler(container, params)
    if inferred is None:
        fields = ", ".join(field for field, _ in missing)
        return [Warned(f"{container.label}: no {fields} injected: it declares no TCP port to probe")]
    handler, description = inferred
    effects: list[Effect] = []
    for field, timing in missing:
        container.body[field] = _probe(handler, timing)
        effects.append(Changed(container.path(field), f"{container.label}: {field} set to {description}"))
    return effects


def _handler(container: Container, params: Params) -> tuple[dict[str, Any], str] | None:
    """The probe action the container's ports support, and how to describe it; None without a TCP port.

    The port is the first of `port_names` the container declares, else its first TCP port; it gets
    httpGet when it is the one named httpPortName, tcpSocket otherwise.
    """
    ports = [p for p in container.body.get("ports") or [] if isinstance(p, Mapping)]
    # The apiserver defaults protocol to TCP; UDP and SCTP ports cannot be probed by httpGet or tcpSocket.
    tcp = [p for p in ports if p.get("protocol", "TCP") == "TCP" and _port_number(p.get("containerPort"))]
    if not tcp:
        return None
    # The first port of a name wins (the apiserver refuses duplicates anyway).
    named = {port["name"]: port for port in reversed(tcp) if isinstance(port.get("name"), str)}
    chosen = next((named[name] for name in params.port_names if name in named), tcp[0])
    if chosen.get("name") == params.http_port_name:
        action = {"path": params.http_path, "port": params.http_port_name, "scheme": params.http_scheme}
        described = f"httpGet {params.http_scheme} {params.http_path} on port {params.http_port_name}"
        return {"httpGet": action}, described
    number = _port_number(chosen.get("containerPort"))
    return {"tcpSocket": {"port": number}}, f"tcpSocket on port {number}"


def _port_number(value: Any) -> int:
    """The port number, or 0 when the value is not one (the apiserver rejects such a pod anyway)."""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535:
        return value
    return 0


def _probe(handler: Mapping[str, Any], timing: Timing) -> dict[str, Any]:
    # Every field the apiserver would default is written out, so the stored probe is byte-for-byte
    # what podgate sent. initialDelaySeconds 0 is omitted because the apiserver drops zero values.
    probe: dict[str, Any] = {key: dict(value) for key, value in handler.items()}
    if timing.initial_delay_seconds:
        probe["initialDelaySeconds"] = timing.initial_delay_seconds
    probe["timeoutSeconds"] = timing.timeout_seconds
    probe["periodSeconds"] = timing.period_seconds
    probe["successThreshold"] = timing.success_threshold
    probe["failureThreshold"] = timing.failure_threshold
    return probe
