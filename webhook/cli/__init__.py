"""The `podgate` command line: one module per subcommand, registered in SUBCOMMANDS."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module

# Each module has `register(subparsers)`, which adds its parser and sets `run=` (args -> exit code).
# Modules import heavy dependencies (flask, gunicorn) inside `run`, so `podgate check` stays fast.
SUBCOMMANDS = (
    "check",
    "apply",
    "audit",
    "test",
    "scaffold",
    "schema",
    "serve",
    "certs",
    "render_deploy",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="podgate",
        description="Kubernetes admission webhook and policy engine: enforced defaults for every pod.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `podgate apply ... | head` closes stdout early; that is not an error.
        sys.stderr.close()
        return 0
    return code
