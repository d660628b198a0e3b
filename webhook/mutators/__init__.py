"""The mutators, in the order they run: resources before probes and env, since env may refer to limits."""

from __future__ import annotations

from webhook.mutators import resources
from webhook.rules import Mutator

MUTATORS: tuple[Mutator, ...] = (resources,)
