"""podgate: a Kubernetes admission webhook and policy engine for sane, enforced pod defaults."""

from webhook.engine.decision import Change, Decision, Violation
from webhook.engine.evaluation import evaluate
from webhook.policy.loader import load_policies
from webhook.policy.model import Action, PolicySet

__all__ = ["Action", "Change", "Decision", "PolicySet", "Violation", "evaluate", "load_policies"]
