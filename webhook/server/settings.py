"""Server settings: one frozen dataclass, read from flags and PODGATE_* variables in one function."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from webhook.errors import SettingsError
from webhook.server.tls import DEFAULT_READ_TIMEOUT

FailMode = Literal["admit", "deny"]
FAIL_MODES: tuple[FailMode, ...] = ("admit", "deny")

ENV_PREFIX = "PODGATE_"
MIB = 1024 * 1024
# Every pod has this variable; its presence is how `serve` knows it runs in a cluster.
IN_CLUSTER_MARKER = "KUBERNETES_SERVICE_HOST"
CLUSTER_BIND = "0.0.0.0:8443"
DEV_BIND = "127.0.0.1:8443"
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


@dataclass(frozen=True)
class Settings:
    """Everything `podgate serve` and `create_app` can be told; field names are the flag names."""

    policies: Path = Path("policies")
    cert: Path | None = None
    key: Path | None = None
    bind: str = DEV_BIND
    workers: int = 1
    threads: int = 4
    fail_mode: FailMode = "admit"
    max_body_bytes: int = 8 * MIB
    reload_interval: float = 2.0
    # Longer than a Go client's idle timeout (90 s), so the apiserver, not podgate, retires idle connections.
    keepalive: int = 120
    graceful_timeout: int = 25
    metrics_dir: Path | None = None
    # From a request's first byte (its TLS handshake, on a new connection) to its last body byte.
    read_timeout: float = DEFAULT_READ_TIMEOUT
    # CA bundle client certificates must chain to; None: no client certificates are asked for.
    client_ca: Path | None = None
    # Where the cluster facts come from (docs/cluster.md): a kubeconfig file and its context; without
    # one, the pod's service account token if mounted, else no cluster at all.
    kubeconfig: Path | None = None
    context: str | None = None
    # No policies (an empty directory, an emptied file) is an error unless this says it is meant:
    # with none, podgate admits everything unchanged.
    allow_empty: bool = False


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def available_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup v2 CPU quota (a pod's CPU limit)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return max(cpus, 1)
    if quota != "max" and int(period) > 0:
        cpus = min(cpus, math.ceil(int(quota) / int(period)))
    return max(cpus, 1)


def _positive_int(raw: str) -> int:
    if not raw.strip().isdigit():
        raise ValueError("must be a whole number")
    value = int(raw)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _positive_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("must be a number of seconds") from None
    if not value > 0 or math.isinf(value):
        raise ValueError("must be a positive number of seconds")
    return value


def _byte_size(raw: str) -> int:
    """Bytes, or a Kubernetes-style binary suffix: 8Mi, 512Ki, 1Gi."""
    units = {"Ki": 1024, "Mi": MIB, "Gi": 1024 * MIB}
    text = raw.strip()
    for suffix, factor in units.items():
        if text.endswith(suffix):
            text, factor_found = text[: -len(suffix)], factor
            break
    else:
        factor_found = 1
    if not text.isdigit():
        raise ValueError("must be a number of bytes, optionally with Ki, Mi or Gi")
    value = int(text) * factor_found
    if value < 1024:
        raise ValueError("must be at least 1024 bytes")
    return value


def _boolean(raw: str) -> bool:
    # The flag passes True; a variable says true or false (or 1/0), like Kubernetes' own boolean flags.
    value = raw.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise ValueError("must be true or false")


def _text(raw: str) -> str:
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw


def _fail_mode(raw: str) -> FailMode:
    for mode in FAIL_MODES:
        if raw == mode:
            return mode
    raise ValueError(f"must be one of {', '.join(FAIL_MODES)}")


def _bind(raw: str) -> str:
    host, sep, port = raw.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("must be HOST:PORT")
    return raw


def _path(raw: str) -> Path:
    if not raw:
        raise ValueError("must not be empty")
    return Path(raw)


PARSERS: dict[str, Callable[[str], Any]] = {
    "policies": _path,
    "cert": _path,
    "key": _path,
    "bind": _bind,
    "workers": _positive_int,
    "threads": _positive_int,
    "fail_mode": _fail_mode,
    "max_body_bytes": _byte_size,
    "reload_interval": _positive_float,
    "keepalive": _positive_int,
    "graceful_timeout": _positive_int,
    "metrics_dir": _path,
    "read_timeout": _positive_float,
    "client_ca": _path,
    "kubeconfig": _path,
    "context": _text,
    "allow_empty": _boolean,
}


def load_settings(flags: Mapping[str, object], environ: Mapping[str, str]) -> Settings:
    """Settings from command-line flags (None = not given), then PODGATE_* variables, then defaults.

    Defaults that depend on the machine are decided here: the bind address (all interfaces in a
    cluster, loopback elsewhere) and the worker count (one per usable CPU).
    """
    values: dict[str, Any] = {
        "bind": CLUSTER_BIND if environ.get(IN_CLUSTER_MARKER) else DEV_BIND,
        "workers": available_cpus(),
    }
    for name, parse in PARSERS.items():
        flag = flags.get(name)
        raw, origin = (str(flag), f"--{name.replace('_', '-')}") if flag is not None else (None, None)
        if raw is None and environ.get(env_name(name)):
            raw, origin = environ[env_name(name)], env_name(name)
        if raw is None:
            continue
        try:
            values[name] = parse(raw)
        except ValueError as err:
            raise SettingsError(f"{origin}: {err} (got {raw!r})") from None
    settings = Settings(**values)
    if (settings.cert is None) != (settings.key is None):
        raise SettingsError("--cert and --key go together: give both or neither")
    return settings
