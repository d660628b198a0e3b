"""`podgate schema`: print the JSON Schema of policy files (the published copy is webhook/schema/)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from webhook.policy.schema import render


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "schema", help="print the JSON Schema of policy files", description=__doc__
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    sys.stdout.write(render())
    return 0
