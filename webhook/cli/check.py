"""`podgate check`: load the policies as the server would, and report every problem with file and line."""

from __future__ import annotations

import argparse
from typing import Any

from webhook.cli.common import add_policies_flag, load_or_report, policies_path


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "check", help="validate policy files (exit 1 on any error)", description=__doc__
    )
    add_policies_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    policies = load_or_report(args.policies)
    if policies is None:
        return 1
    rules = sum(len(p.rules) for p in policies.policies)
    print(
        f"{policies_path(args.policies)}: {len(policies.policies)} policies, {rules} rules "
        f"in {len(policies.files)} files (sha256 {policies.digest[:12]})"
    )
    for policy in policies.policies:
        print(f"  {policy.name} ({policy.source}): {', '.join(f'{r.name} [{r.key}]' for r in policy.rules)}")
    return 0
