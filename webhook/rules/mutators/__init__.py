"""The mutators, in the order they run.

Labels come first because other policies select pods by label, and matching must see the final labels
for a second evaluation to give an empty patch; resources come before probes and env, since env may
refer to limits; container env follows downward-API env (both put their variables first, neither
overrides the other's); presets come last and skip themselves on any conflict with what is already there.

Rule types that act on containers are wrapped in `exempting`, which gives them the `exemptImages`
parameter (webhook/rules/exemptions.py).
"""

from __future__ import annotations

from webhook.rules import Mutator
from webhook.rules.exemptions import exempting
from webhook.rules.mutators import (
    container_env,
    downward_env,
    labels,
    presets,
    probes,
    resources,
    tolerations,
)

MUTATORS: tuple[Mutator, ...] = (
    labels,
    exempting(resources),
    exempting(probes),
    tolerations,
    exempting(downward_env),
    exempting(container_env),
    presets,
)
