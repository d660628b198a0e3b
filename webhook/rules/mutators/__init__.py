"""The mutators, in the order they run.

Labels come first because other policies select pods by label, and matching must see the final labels
for a second evaluation to give an empty patch; resources come before probes and env, since env may
refer to limits; presets come last and skip themselves on any conflict with what is already there.
"""

from __future__ import annotations

from webhook.rules import Mutator
from webhook.rules.mutators import downward_env, labels, presets, probes, resources, tolerations

MUTATORS: tuple[Mutator, ...] = (labels, resources, probes, tolerations, downward_env, presets)
