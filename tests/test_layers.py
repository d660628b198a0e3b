"""The package layout is the architecture: imports run one way, and the pure layers stay pure."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import webhook

ROOT = Path(webhook.__file__).resolve().parent

# Bottom to top. A package may import its own layer and those below, never one above.
LAYERS: dict[str, int] = {
    "errors": 0,
    "kube": 1,
    "pki": 1,
    "rules": 2,
    "policy": 3,
    "engine": 4,
    "server": 5,
    "cli": 6,
}
# What each pure layer may not import: the engine is a function of its input, so no I/O, clock or
# server library; policy files are YAML, so the policy layer may read YAML and files, but never serves.
SERVING = {"flask", "werkzeug", "gunicorn", "prometheus_client", "socket", "ssl", "logging", "subprocess"}
# The Kubernetes client and its HTTP stack: cluster facts reach the engine as input (webhook.kube.cluster).
CLIENT = {"lightkube", "httpx2", "httpcore2"}
PURE = SERVING | CLIENT | {"yaml", "os", "time", "pathlib", "threading"}
FORBIDDEN: dict[str, set[str]] = {
    "kube": PURE,
    "rules": PURE,
    "engine": PURE,
    "policy": SERVING | CLIENT,
}


def imports(source: str) -> Iterator[str]:
    """Every module a source imports, including names imported from a package (they may be modules)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "webhook" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in LAYERS else None


def problems(package: str, source: str, name: str) -> list[str]:
    found = []
    for module in imports(source):
        other = layer_of(module)
        if other is not None and LAYERS[other] > LAYERS[package]:
            found.append(f"{name}: {package} imports {module}, a layer above it")
        if module == "webhook" or (module.startswith("webhook.") and module.count(".") == 1 and not other):
            # `from webhook import evaluate` reaches the public surface, which imports every layer.
            found.append(f"{name}: imports the top-level package ({module}); import the module itself")
        if module.split(".")[0] in FORBIDDEN.get(package, set()):
            found.append(f"{name}: {package} imports {module}")
    return found


def package_files() -> Iterator[tuple[str, Path]]:
    for file in sorted(ROOT.rglob("*.py")):
        parts = file.relative_to(ROOT).parts
        package = parts[0].removesuffix(".py")
        if package in LAYERS:
            yield package, file


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_imports_run_down_the_layers(package: str) -> None:
    found = [
        problem
        for owner, file in package_files()
        if owner == package
        for problem in problems(owner, file.read_text(), str(file.relative_to(ROOT)))
    ]
    assert found == []


def test_every_package_has_a_layer() -> None:
    entries = {p.name.removesuffix(".py") for p in ROOT.iterdir() if not p.name.startswith(("_", "."))}
    data = {"py.typed", "schema"}  # the published JSON Schemas, whose path policy files name
    assert entries - data == set(LAYERS)


@pytest.mark.parametrize(
    ("package", "source", "expected"),
    [
        ("engine", "from webhook.server.app import create_app", "engine imports webhook.server.app"),
        ("engine", "from webhook.server import review", "engine imports webhook.server"),
        ("rules", "import webhook.policy.model", "rules imports webhook.policy.model"),
        ("engine", "import flask", "engine imports flask"),
        ("engine", "from lightkube import Client", "engine imports lightkube"),
        ("kube", "from time import monotonic", "kube imports time"),
        ("policy", "from gunicorn.app.base import BaseApplication", "policy imports gunicorn.app.base"),
        ("server", "from webhook import evaluate", "imports the top-level package"),
    ],
    ids=[
        "engine->server",
        "engine->server-package",
        "rules->policy",
        "flask",
        "client",
        "clock",
        "gunicorn",
        "top",
    ],
)
def test_the_check_catches_what_it_forbids(package: str, source: str, expected: str) -> None:
    assert any(expected in problem for problem in problems(package, source, "x.py"))


def test_downward_imports_pass() -> None:
    source = "from webhook.kube.pods import PodView\nfrom webhook.errors import ReviewError\nimport yaml\n"
    assert problems("policy", source, "x.py") == []
