"""The exception tree, typed by who must act: a caller, a policy author or an operator."""

from __future__ import annotations

from dataclasses import dataclass


class PodgateError(Exception):
    """Base of every error podgate raises on purpose."""


class ReviewError(PodgateError):
    """The AdmissionReview itself is malformed: the sender must fix it (HTTP 400)."""


@dataclass(frozen=True)
class PolicyIssue:
    """One problem in a policy file, located precisely enough to jump to it."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class PolicyError(PodgateError):
    """A policy set did not load; carries every problem found, not just the first."""

    def __init__(self, issues: list[PolicyIssue]) -> None:
        self.issues = tuple(sorted(issues, key=lambda i: (i.file, i.line, i.path)))
        super().__init__("\n".join(str(i) for i in self.issues))


class PkiError(PodgateError):
    """A certificate, key or cfssl JSON file is missing, invalid or would be overwritten."""


class SettingsError(PodgateError):
    """A flag or PODGATE_* variable has a value the server cannot use: the operator must fix it."""
