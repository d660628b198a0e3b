"""The validators, in the order their messages are reported; they judge the object after every mutation.

Rule types that judge containers are wrapped in `exempting`, which gives them the `exemptImages`
parameter (webhook/rules/exemptions.py).
"""

from __future__ import annotations

from webhook.rules import Validator
from webhook.rules.exemptions import exempting
from webhook.rules.validators import labels, requests, require_limits, require_probes, resource_bounds

VALIDATORS: tuple[Validator, ...] = (
    exempting(requests),
    exempting(require_limits),
    exempting(resource_bounds),
    exempting(require_probes),
    labels,
)
