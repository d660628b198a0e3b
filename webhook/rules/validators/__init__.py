"""The validators, in the order their messages are reported; they judge the object after every mutation."""

from __future__ import annotations

from webhook.rules import Validator
from webhook.rules.validators import labels, requests

VALIDATORS: tuple[Validator, ...] = (requests, labels)
