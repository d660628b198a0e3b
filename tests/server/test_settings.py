"""Settings come from flags, then PODGATE_* variables, then defaults that depend on where podgate runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from webhook.errors import SettingsError
from webhook.server.settings import (
    CLUSTER_BIND,
    DEV_BIND,
    MIB,
    Settings,
    available_cpus,
    env_name,
    load_settings,
)


def test_defaults_outside_a_cluster() -> None:
    settings = load_settings({}, {})
    assert settings.bind == DEV_BIND == "127.0.0.1:8443"
    assert settings.max_body_bytes == 8 * MIB
    assert settings.fail_mode == "admit"
    assert settings.workers == available_cpus()
    assert settings.policies == Path("policies")
    assert (settings.cert, settings.key) == (None, None)
    # Slow clients are cut off; no client certificate is asked for unless a CA is given.
    assert (settings.read_timeout, settings.client_ca) == (10.0, None)


def test_a_pod_listens_on_every_interface() -> None:
    assert load_settings({}, {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}).bind == CLUSTER_BIND == "0.0.0.0:8443"


def test_every_field_has_a_podgate_variable() -> None:
    environ = {
        "PODGATE_POLICIES": "/etc/podgate/policies",
        "PODGATE_CERT": "/tls/tls.crt",
        "PODGATE_KEY": "/tls/tls.key",
        "PODGATE_BIND": "0.0.0.0:9443",
        "PODGATE_WORKERS": "3",
        "PODGATE_THREADS": "8",
        "PODGATE_FAIL_MODE": "deny",
        "PODGATE_MAX_BODY_BYTES": "16Mi",
        "PODGATE_RELOAD_INTERVAL": "0.5",
        "PODGATE_KEEPALIVE": "30",
        "PODGATE_GRACEFUL_TIMEOUT": "20",
        "PODGATE_METRICS_DIR": "/run/podgate/metrics",
        "PODGATE_READ_TIMEOUT": "2.5",
        "PODGATE_CLIENT_CA": "/tls/client-ca.crt",
        "PODGATE_ALLOW_EMPTY": "true",
        "PODGATE_KUBECONFIG": "/etc/podgate/kubeconfig",
        "PODGATE_CONTEXT": "prod",
    }
    assert set(environ) == {env_name(name) for name in Settings.__dataclass_fields__}
    assert load_settings({}, environ) == Settings(
        policies=Path("/etc/podgate/policies"),
        cert=Path("/tls/tls.crt"),
        key=Path("/tls/tls.key"),
        bind="0.0.0.0:9443",
        workers=3,
        threads=8,
        fail_mode="deny",
        max_body_bytes=16 * MIB,
        reload_interval=0.5,
        keepalive=30,
        graceful_timeout=20,
        metrics_dir=Path("/run/podgate/metrics"),
        read_timeout=2.5,
        client_ca=Path("/tls/client-ca.crt"),
        allow_empty=True,
        kubeconfig=Path("/etc/podgate/kubeconfig"),
        context="prod",
    )


def test_no_policies_is_refused_unless_allowed_by_flag_or_variable() -> None:
    assert load_settings({}, {}).allow_empty is False
    assert load_settings({"allow_empty": True}, {}).allow_empty is True
    assert load_settings({}, {"PODGATE_ALLOW_EMPTY": "1"}).allow_empty is True
    assert load_settings({"allow_empty": None}, {"PODGATE_ALLOW_EMPTY": "false"}).allow_empty is False


def test_a_flag_wins_over_its_variable_and_none_means_not_given() -> None:
    settings = load_settings(
        {"workers": "5", "bind": None, "fail_mode": "admit"},
        {"PODGATE_WORKERS": "2", "PODGATE_BIND": "127.0.0.1:9000", "PODGATE_FAIL_MODE": "deny"},
    )
    assert (settings.workers, settings.bind, settings.fail_mode) == (5, "127.0.0.1:9000", "admit")


def test_an_empty_variable_counts_as_unset() -> None:
    assert load_settings({}, {"PODGATE_WORKERS": ""}).workers == available_cpus()


@pytest.mark.parametrize(
    ("flags", "environ", "message"),
    [
        ({"workers": "0"}, {}, "--workers: must be at least 1 (got '0')"),
        ({}, {"PODGATE_WORKERS": "two"}, "PODGATE_WORKERS: must be a whole number (got 'two')"),
        ({}, {"PODGATE_FAIL_MODE": "open"}, "PODGATE_FAIL_MODE: must be one of admit, deny (got 'open')"),
        ({"bind": "8443"}, {}, "--bind: must be HOST:PORT (got '8443')"),
        ({"bind": "localhost:99999"}, {}, "--bind: must be HOST:PORT (got 'localhost:99999')"),
        (
            {"max_body_bytes": "8MB"},
            {},
            "--max-body-bytes: must be a number of bytes, optionally with Ki, Mi or Gi (got '8MB')",
        ),
        ({"max_body_bytes": "100"}, {}, "--max-body-bytes: must be at least 1024 bytes (got '100')"),
        ({"reload_interval": "0"}, {}, "--reload-interval: must be a positive number of seconds (got '0')"),
        ({"reload_interval": "soon"}, {}, "--reload-interval: must be a number of seconds (got 'soon')"),
        ({"cert": "/tls/tls.crt"}, {}, "--cert and --key go together: give both or neither"),
        (
            {},
            {"PODGATE_READ_TIMEOUT": "-1"},
            "PODGATE_READ_TIMEOUT: must be a positive number of seconds (got '-1')",
        ),
        ({"client_ca": ""}, {}, "--client-ca: must not be empty (got '')"),
        ({}, {"PODGATE_ALLOW_EMPTY": "yes"}, "PODGATE_ALLOW_EMPTY: must be true or false (got 'yes')"),
    ],
    ids=[
        "workers-zero",
        "workers-word",
        "fail-mode",
        "bind-no-host",
        "bind-port",
        "body-unit",
        "body-small",
        "interval-zero",
        "interval-word",
        "cert-without-key",
        "read-timeout-negative",
        "client-ca-empty",
        "allow-empty-word",
    ],
)
def test_bad_values_name_their_origin(
    flags: dict[str, object], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(flags, environ)
    assert str(caught.value) == message


def test_body_sizes_take_binary_suffixes() -> None:
    assert load_settings({"max_body_bytes": "512Ki"}, {}).max_body_bytes == 512 * 1024
    assert load_settings({"max_body_bytes": "1Gi"}, {}).max_body_bytes == 1024 * MIB
    assert load_settings({"max_body_bytes": "4096"}, {}).max_body_bytes == 4096


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("max 100000\n", None), ("150000 100000\n", 2), ("50000 100000\n", 1)],
    ids=["unlimited", "one-and-a-half", "half"],
)
def test_worker_count_follows_the_cgroup_cpu_limit(
    tmp_path: Path, cpu_max: str, expected: int | None
) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    cpus = available_cpus(tmp_path / "absent")
    assert available_cpus(path) == (cpus if expected is None else min(cpus, expected))


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(AttributeError):
        settings.workers = 9  # type: ignore[misc]
