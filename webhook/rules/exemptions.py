"""`exemptImages`: one parameter, written once, that lets every container rule skip containers by image.

A registry wraps each rule module that walks containers (`exempting(resources)`); the wrapper adds
`exemptImages` to the module's schema, strips it before the module parses its own parameters, and
hands the module a PodView that does not show the exempt containers (PodView.containers()). The rule
modules, the engine and the loader know nothing of it, and a new container rule gets it by being
wrapped in its registry line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webhook.kube.pods import PodView
from webhook.kube.request import AdmissionRequest
from webhook.rules import Effect, Locator

PARAMETER = "exemptImages"
PROPERTY: Mapping[str, Any] = {
    "type": "array",
    "items": {"type": "string", "minLength": 1},
    "minItems": 1,
    "uniqueItems": True,
    "description": "skip containers whose image, as written in the pod, matches one of these globs "
    "(fnmatch: * matches any characters, / and : included): mesh sidecars, vendor images. Name the "
    "registry (docker.io/istio/proxyv2:*): the pod's author chooses the image",
}


@dataclass(frozen=True)
class Exempting:
    """A rule's own parameters and the images it skips."""

    params: Any
    images: tuple[str, ...]


def unwrap(params: Any) -> Any:
    """The rule module's own parameters, whether or not the rule exempts images."""
    return params.params if isinstance(params, Exempting) else params


def images_of(params: Any) -> tuple[str, ...]:
    return params.images if isinstance(params, Exempting) else ()


def parse_images(raw: Any, at: Locator) -> tuple[str, ...]:
    images = tuple(str(glob) for glob in raw)
    for index, glob in enumerate(images):
        if glob.strip("*") == "":
            raise at.error(
                f"{glob!r} exempts every container, so the rule would never act: name the images to "
                "skip, e.g. docker.io/istio/proxyv2:*",
                PARAMETER,
                index,
            )
        if any(c.isspace() for c in glob):
            raise at.error(f"an image never contains whitespace (got {glob!r})", PARAMETER, index)
    return images


class ContainerRule:
    """A mutator or validator module that judges or edits containers, with `exemptImages` added."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.KEY: str = module.KEY
        schema = module.SCHEMA
        self.SCHEMA: Mapping[str, Any] = {
            **schema,
            "properties": {**schema["properties"], PARAMETER: PROPERTY},
        }
        self.SETS_LABELS: bool = getattr(module, "SETS_LABELS", False)

    def __repr__(self) -> str:
        return f"exempting({self.module.__name__})"

    def parse(self, raw: Mapping[str, Any], at: Locator) -> Any:
        own = {key: value for key, value in raw.items() if key != PARAMETER}
        params = self.module.parse(own, at)
        if PARAMETER not in raw:
            return params
        return Exempting(params, parse_images(raw[PARAMETER], at))

    def mutate(self, pod: PodView, params: Any, request: AdmissionRequest) -> list[Effect]:
        effects: list[Effect] = self.module.mutate(_view(pod, params), unwrap(params), request)
        return effects

    def check(self, pod: PodView, params: Any, request: AdmissionRequest) -> list[str]:
        messages: list[str] = self.module.check(_view(pod, params), unwrap(params), request)
        return messages


def exempting(module: Any) -> ContainerRule:
    return ContainerRule(module)


def _view(pod: PodView, params: Any) -> PodView:
    images = images_of(params)
    return pod.exempting(images) if images else pod
