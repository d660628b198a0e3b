"""What several subcommands share: where the policies come from, and printing a PolicyError."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from webhook.errors import PolicyError
from webhook.policy.loader import load_policies
from webhook.policy.model import PolicySet

# Shipped inside the package, so `podgate apply` works from any directory.
PACKAGED_POLICIES = Path(__file__).resolve().parent.parent / "policy" / "defaults"


def add_policies_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policies",
        metavar="DIR",
        help="policy file or directory (default: $PODGATE_POLICIES, ./policies, the built-in defaults)",
    )


def policies_path(flag: str | None) -> Path:
    if flag:
        return Path(flag)
    if os.environ.get("PODGATE_POLICIES"):
        return Path(os.environ["PODGATE_POLICIES"])
    if Path("policies").is_dir():
        return Path("policies")
    return PACKAGED_POLICIES


def load_or_report(flag: str | None) -> PolicySet | None:
    """The policy set, or None after printing every problem (file:line: path: message) to stderr."""
    try:
        return load_policies(policies_path(flag))
    except PolicyError as error:
        for issue in error.issues:
            print(f"error: {issue}", file=sys.stderr)
        return None
