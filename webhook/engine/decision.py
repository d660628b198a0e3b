"""The engine's answer: patch, provenance of changes, violations by action, warnings, audit annotations."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from webhook.engine.patch import diff, pointer
from webhook.policy.model import Action


@dataclass(frozen=True, slots=True)
class Change:
    """One mutation and the policy rule that made it; `path` is the JSON pointer into the object.

    `pod_only` changes are not in the patch: the workload is stored as sent (no drift for GitOps
    tools) and its pods get them when their controller creates them; `path` then says where in the
    template the change would be.
    """

    policy: str
    rule: str
    location: tuple[str | int, ...]  # pointer parts; `path` spells them, only when someone reads it
    message: str
    pod_only: bool = False

    @property
    def path(self) -> str:
        return pointer(*self.location)


@dataclass(frozen=True, slots=True)
class Violation:
    policy: str
    rule: str
    action: Action
    message: str

    def __str__(self) -> str:
        return f"{self.policy}.{self.rule}: {self.message}"


@dataclass(frozen=True)
class Decision:
    """Everything every adapter needs; the enforce/warn/audit mapping lives here, and only here."""

    object: Mapping[str, Any]
    # The object as received, when `object` is its mutated copy: `patch` is diffed from it on first use,
    # so the validating phase, which sends no patch, never pays for the diff.
    received: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)
    changes: tuple[Change, ...] = ()
    violations: tuple[Violation, ...] = ()
    # Warnings raised while mutating ("preset skipped: conflict on env FOO"), already "<policy>.<rule>: ...".
    warnings: tuple[str, ...] = ()
    # Why a request was left alone (out of scope, excluded): for logs and `podgate apply --explain`.
    skipped: tuple[str, ...] = field(default=(), compare=False)
    # "Deployment web" when the object is a workload judged through the pods it will create.
    workload: str = ""
    # The validation rules (policy, rule) that judged the object, violated or not: `podgate audit`
    # reports the ones without a violation as passed.
    checked: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    @property
    def allowed(self) -> bool:
        return not any(v.action is Action.ENFORCE for v in self.violations)

    @functools.cached_property
    def patch(self) -> tuple[Mapping[str, Any], ...]:
        """The JSON Patch that turns the object as received into `object`; () when nothing changed."""
        return () if self.received is None else tuple(diff(self.received, self.object))

    @property
    def mutated(self) -> bool:
        return bool(self.patch)

    @property
    def stored_changes(self) -> tuple[Change, ...]:
        """The changes the patch makes to the object as stored."""
        return tuple(c for c in self.changes if not c.pod_only)

    @property
    def pod_changes(self) -> tuple[Change, ...]:
        """The changes a workload's pods will get when created, beyond what is stored in its template."""
        return tuple(c for c in self.changes if c.pod_only)

    @property
    def outcome(self) -> str:
        """denied, warned or admitted: what the user meets across /mutate and /validate together."""
        if not self.allowed:
            return "denied"
        return "warned" if self.warnings or self.admission_warnings() else "admitted"

    def denial_message(self) -> str:
        denied = [str(v) for v in self.violations if v.action is Action.ENFORCE]
        return "; ".join(denied)

    def admission_warnings(self) -> list[str]:
        """Warnings for the validating response: `warn` violations (denials carry their own message)."""
        return [str(v) for v in self.violations if v.action is Action.WARN]

    def audit_annotations(self) -> dict[str, str]:
        """`audit` violations, keyed so that the apiserver stores them as podgate.io/<policy>.<rule>."""
        notes: dict[str, list[str]] = {}
        for v in self.violations:
            if v.action is Action.AUDIT:
                notes.setdefault(f"{v.policy}.{v.rule}", []).append(v.message)
        return {key: "; ".join(messages) for key, messages in notes.items()}

    def policies_acted(self) -> tuple[str, ...]:
        """Policies that changed, judged or warned about the object."""
        # A warning reads "<policy>.<rule>: ...", and policy names are DNS labels: no dot in them.
        warned = {warning.split(".", 1)[0] for warning in self.warnings}
        names = {c.policy for c in self.changes} | {v.policy for v in self.violations} | warned
        return tuple(sorted(names))
