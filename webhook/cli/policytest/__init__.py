"""`podgate test`: test files that say what the policies must do to given objects, and their runner."""

from __future__ import annotations

from webhook.cli.policytest.runner import PolicyCache, Result, run_suite
from webhook.cli.policytest.suite import Suite, TestFileError, discover, load_suites

__all__ = ["PolicyCache", "Result", "Suite", "TestFileError", "discover", "load_suites", "run_suite"]
