"""podgate: a Kubernetes admission webhook and policy engine for sane, enforced pod defaults."""

from webhook.decision import Action, Change, Decision, Violation
from webhook.engine import evaluate
from webhook.loader import load_policies
from webhook.policy import PolicySet

__all__ = ["Action", "Change", "Decision", "PolicySet", "Violation", "evaluate", "load_policies"]
