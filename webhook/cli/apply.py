"""`podgate apply`: what manifests become through the policies, and whether they are admitted."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import yaml

from webhook.cli.common import add_policies_flag, load_or_report
from webhook.decision import Action, Decision
from webhook.engine import evaluate
from webhook.errors import ReviewError
from webhook.manifests import InputError, Options, read_inputs

EXIT_ADMITTED, EXIT_DENIED, EXIT_BAD_INPUT = 0, 1, 2


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "apply",
        help="print manifests as the cluster would store them (exit 1 if any is denied)",
        description=__doc__,
    )
    parser.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="append",
        required=True,
        metavar="FILE|DIR|-",
        help="manifests (YAML or JSON, several documents per file) or AdmissionReview files",
    )
    add_policies_flag(parser)
    parser.add_argument("-n", "--namespace", help="namespace of objects that name none (default: default)")
    parser.add_argument("--operation", choices=("CREATE", "UPDATE"), default="CREATE")
    parser.add_argument("--user", default="podgate-apply", help="requesting user, for exclusions")
    parser.add_argument("-o", "--output", choices=("yaml", "json", "patch"), default="yaml")
    parser.add_argument("--explain", action="store_true", help="show each change with its policy and rule")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    policies = load_or_report(args.policies)
    if policies is None:
        return EXIT_BAD_INPUT
    options = Options(namespace=args.namespace, operation=args.operation, user=args.user)
    denied = False
    outputs: list[Any] = []
    try:
        for item in read_inputs(args.files, options):
            try:
                decision = evaluate(policies, item.request)
            except ReviewError as error:
                raise InputError(f"{item.source}: {error}") from None
            report(item.source, decision, explain=args.explain)
            denied = denied or not decision.allowed
            outputs.append(list(decision.patch) if args.output == "patch" else decision.object)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    write(outputs, args.output)
    return EXIT_DENIED if denied else EXIT_ADMITTED


def report(source: str, decision: Decision, *, explain: bool) -> None:
    """Verdict, violations and warnings on stderr, so stdout stays a clean manifest stream."""
    out = sys.stderr
    verdict = "admitted" if decision.allowed else "DENIED"
    summary = f"{len(decision.changes)} changes" if decision.changes else "unchanged"
    print(f"{source}: {verdict} ({summary})", file=out)
    for violation in decision.violations:
        label = {Action.ENFORCE: "denied", Action.WARN: "warning", Action.AUDIT: "audit"}[violation.action]
        print(f"  {label}: {violation}", file=out)
    for warning in decision.warnings:
        print(f"  warning: {warning}", file=out)
    if explain:
        for change in decision.changes:
            print(f"  {change.policy}.{change.rule}: {change.path}: {change.message}", file=out)
        for reason in decision.skipped:
            print(f"  not applied: {reason}", file=out)


def write(outputs: list[Any], output: str) -> None:
    if output == "yaml":
        sys.stdout.write(yaml.safe_dump_all(outputs, sort_keys=False, default_flow_style=False))
    else:
        for document in outputs:
            sys.stdout.write(json.dumps(document, indent=2) + "\n")
