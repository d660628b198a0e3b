"""The container image: the Dockerfile, its pinned dependencies, and the manifests that run it agree."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from collections import deque

import yaml
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy_support import DEPLOY, REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()
PINS_FILE = DEPLOY / "image" / "requirements.txt"
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
PIN = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[0-9][0-9A-Za-z.+!-]*)")


def pins() -> dict[str, str]:
    found: dict[str, str] = {}
    for line in PINS_FILE.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = PIN.fullmatch(line.strip())
        assert match, f"not an exact pin: {line!r}"
        found[canonicalize_name(match["name"])] = match["version"]
    return found


def runtime_requirements() -> dict[str, list[Requirement]]:
    """Every runtime dependency of podgate, transitively, as the installed distributions declare them."""
    environment = {key: str(value) for key, value in default_environment().items()} | {"extra": ""}
    seen: dict[str, list[Requirement]] = {}
    queue = deque(Requirement(r) for r in PROJECT["dependencies"])
    while queue:
        requirement = queue.popleft()
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        name = canonicalize_name(requirement.name)
        first = name not in seen
        seen.setdefault(name, []).append(requirement)
        if first:
            queue.extend(Requirement(r) for r in importlib.metadata.requires(requirement.name) or [])
    return seen


def test_every_runtime_dependency_is_pinned_within_what_podgate_accepts() -> None:
    pinned = pins()
    required = runtime_requirements()
    assert sorted(pinned) == sorted(required)
    for name, requirements in required.items():
        for requirement in requirements:
            assert requirement.specifier.contains(pinned[name], prereleases=True), (
                f"{name}=={pinned[name]} does not satisfy {requirement}"
            )


def test_the_image_is_slim_python_311_built_in_two_stages() -> None:
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim\S*$", DOCKERFILE, re.MULTILINE)
    stages = re.findall(r"^FROM (\S+)(?: AS (\w+))?$", DOCKERFILE, re.MULTILINE)
    assert stages == [("${PYTHON_IMAGE}", "build"), ("${PYTHON_IMAGE}", "")]
    runtime = DOCKERFILE.split("\nFROM ${PYTHON_IMAGE}\n", 1)[1]
    # Only wheels reach the runtime stage: no source tree, no compiler, no apt.
    assert "COPY" not in runtime
    assert "apt-get" not in DOCKERFILE
    assert "--no-index --no-deps /wheels/*.whl" in runtime
    assert "requirements.txt" in DOCKERFILE.split("\nFROM ${PYTHON_IMAGE}\n", 1)[0]


def test_the_image_user_is_the_numeric_uid_the_deployment_runs_as() -> None:
    (user,) = re.findall(r"^USER (\S+)$", DOCKERFILE, re.MULTILINE)
    deployment = yaml.safe_load((DEPLOY / "deployment.yaml").read_text())
    context = deployment["spec"]["template"]["spec"]["securityContext"]
    assert user == f"{context['runAsUser']}:{context['runAsGroup']}"


def test_the_build_context_is_an_allow_list_that_excludes_secrets() -> None:
    lines = [line for line in (REPO / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "webhook", "deploy/image/requirements.txt"}
    for copied in re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE, re.MULTILINE):
        assert set(copied.split()) <= allowed


def test_the_manifests_run_the_tag_make_image_builds() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    (image,) = kustomization["images"]
    assert (image["name"], image["newTag"]) == ("podgate", PROJECT["version"])
