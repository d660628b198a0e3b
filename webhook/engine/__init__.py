"""evaluate(policies, request) -> Decision: matching, the rule index, the patch diff, workloads judged as
their pods. Pure: no I/O, no clock, no Flask, gunicorn or YAML."""

from webhook.engine.decision import Change, Decision, Violation
from webhook.engine.evaluation import evaluate, evaluate_request

__all__ = ["Change", "Decision", "Violation", "evaluate", "evaluate_request"]
