"""`podgate test`: run policy test files and show, per object, what was expected and what came out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from webhook.cli.clusterfacts import add_cluster_flags, build_facts
from webhook.cli.common import policies_path
from webhook.cli.manifests import InputError

EXIT_PASSED, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "test",
        help="run policy tests (*-test.yaml, tests/*.yaml); exit 1 on any failure",
        description=__doc__,
    )
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="DIR|FILE",
        help="test files, or directories searched for them (default: the policy directory)",
    )
    add_cluster_flags(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from webhook.cli.policytest import PolicyCache, Result, TestFileError, discover, load_suites, run_suite
    from webhook.cli.report import table
    from webhook.errors import PolicyError

    paths = args.paths or [str(policies_path(None))]
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        print(f"error: {', '.join(missing)}: no such file or directory", file=sys.stderr)
        return EXIT_USAGE
    files = discover(paths)
    if not files:
        print(f"error: no test files (*-test.yaml, tests/*.yaml) in {', '.join(paths)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        cluster = build_facts(args, [])
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE

    cache = PolicyCache()
    results: list[Result] = []
    errors = 0
    for file in files:
        try:
            suites = load_suites(file)
        except TestFileError as error:
            errors += len(error.issues)
            for issue in error.issues:
                print(f"error: {issue}", file=sys.stderr)
            continue
        for suite in suites:
            try:
                policies = cache.get(suite.policies)
            except PolicyError as error:
                errors += len(error.issues)
                print(f"error: {suite.file}: the policies under test did not load:", file=sys.stderr)
                for issue in error.issues:
                    print(f"  {issue}", file=sys.stderr)
                continue
            results.extend(run_suite(suite, policies, cluster))

    # One table per test file: the file names a group of cases once instead of on every row.
    for suite_file in dict.fromkeys(r.suite for r in results):
        rows = [
            (
                "pass" if r.passed else "FAIL",
                r.case,
                ", ".join(r.policies) or "-",
                r.resource,
                r.expected,
                r.got,
            )
            for r in results
            if r.suite == suite_file
        ]
        print(
            f"{suite_file}\n"
            + table(["RESULT", "CASE", "POLICY", "RESOURCE", "EXPECTED", "GOT"], rows)
            + "\n"
        )
    failed = [r for r in results if not r.passed]
    for result in failed:
        print(f"FAIL {result.where}: {result.case} ({result.resource})")
        for failure in result.failures:
            print(f"  {failure}")
        print()
    summary = f"{len(results) - len(failed)} passed, {len(failed)} failed"
    if errors:
        summary += f", {errors} errors in test files or policies"
    print(f"{summary} ({len(files)} test file{'s' if len(files) != 1 else ''})")
    return EXIT_FAILED if failed or errors else EXIT_PASSED
