"""`podgate apply`: what manifests become through the policies, and whether they are admitted."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import yaml

from webhook.cli.clusterfacts import ManifestReader, add_cluster_flags, with_limit_range_defaults
from webhook.cli.common import add_policies_flag, load_or_report
from webhook.cli.manifests import InputError, Item, Options, expand
from webhook.cli.report import Progress, Tally, describe_changes
from webhook.engine.decision import Decision
from webhook.engine.evaluation import evaluate
from webhook.errors import ReviewError
from webhook.policy.model import Action

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
        help="manifests (YAML or JSON, several documents per file) or AdmissionReview files; may repeat",
    )
    parser.add_argument(
        "-R", "--recursive", action="store_true", help="read directories given to -f recursively"
    )
    add_policies_flag(parser)
    parser.add_argument(
        "-n",
        "--namespace",
        help="namespace of objects that name none (default: default); "
        "as with kubectl, an object naming another one is an error",
    )
    parser.add_argument("--operation", choices=("CREATE", "UPDATE"), default="CREATE")
    parser.add_argument("--user", default="podgate-apply", help="requesting user, for exclusions")
    parser.add_argument(
        "-o",
        "--output",
        choices=("yaml", "json", "patch"),
        default="yaml",
        help="the objects as stored (yaml, json), or the JSON Patch of each (patch)",
    )
    parser.add_argument("--explain", action="store_true", help="show each change with its policy and rule")
    add_cluster_flags(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    policies = load_or_report(args.policies)
    if policies is None:
        return EXIT_BAD_INPUT
    options = Options(namespace=args.namespace, operation=args.operation, user=args.user)
    try:
        sources = expand(args.files, recursive=args.recursive)
        reader = ManifestReader(sources, options, args)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    progress = Progress(len(sources))
    tally = Tally()
    bad_input = False
    outputs: list[tuple[Item, Decision]] = []
    for source in sources:
        try:
            items = reader.items(source)
        except InputError as error:
            progress.print(f"error: {error}")
            bad_input = True
            items = []
        for item in items:
            try:
                request = with_limit_range_defaults(item.request, reader.facts)
                decision = evaluate(policies, request, explain=args.explain, cluster=reader.facts)
            except ReviewError as error:
                progress.print(f"error: {item.source}: {error}")
                bad_input = True
                continue
            tally.add(decision)
            progress.print(report(item.source, decision, explain=args.explain))
            outputs.append((item, decision))
        progress.advance(files=1, objects=len(items))
    progress.clear()
    # All or nothing on bad input: half of a directory piped into `kubectl apply` is worse than none of it.
    print(tally.render(terminal=sys.stderr.isatty(), printed=not bad_input), file=sys.stderr)
    if bad_input:
        return EXIT_BAD_INPUT
    # A denied object is not stored: stdout holds what the cluster would keep, and nothing else.
    write([(item, decision) for item, decision in outputs if decision.allowed], args.output)
    return EXIT_ADMITTED if all(decision.allowed for _, decision in outputs) else EXIT_DENIED


def report(source: str, decision: Decision, *, explain: bool) -> str:
    """Verdict, violations and warnings, for stderr, so stdout stays a clean manifest stream."""
    verdict = "admitted" if decision.allowed else "DENIED"
    lines = [f"{source}: {verdict} ({describe_changes(decision)})"]
    for violation in decision.violations:
        label = {Action.ENFORCE: "denied", Action.WARN: "warning", Action.AUDIT: "audit"}[violation.action]
        lines.append(f"  {label}: {violation}")
    lines.extend(f"  warning: {warning}" for warning in decision.warnings)
    if explain:
        lines.extend(f"  {c.policy}.{c.rule}: {c.path}: {c.message}" for c in decision.stored_changes)
        if decision.pod_changes:
            lines.append(f"  pods of {decision.workload} will get:")
            lines.extend(f"    {c.policy}.{c.rule}: {c.path}: {c.message}" for c in decision.pod_changes)
        lines.extend(f"  not applied: {reason}" for reason in decision.skipped)
    return "\n".join(lines)


def write(outputs: list[tuple[Item, Decision]], output: str) -> None:
    """The admitted objects. One prints as itself; several as a YAML stream, a JSON List (like kubectl),
    or, for patches, a JSON array of {source, kind, namespace, name, patch}: a patch alone does not say
    whose.
    """
    if output == "yaml":
        objects = [decision.object for _, decision in outputs]
        sys.stdout.write(yaml.safe_dump_all(objects, sort_keys=False, default_flow_style=False))
        return
    document: Any
    if len(outputs) == 1:
        decision = outputs[0][1]
        document = list(decision.patch) if output == "patch" else decision.object
    elif output == "patch":
        document = [_patch_record(item, decision) for item, decision in outputs]
    else:
        document = {"apiVersion": "v1", "kind": "List", "items": [d.object for _, d in outputs]}
    if outputs:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")


def _patch_record(item: Item, decision: Decision) -> dict[str, Any]:
    request = item.request
    return {
        "source": item.source,
        "kind": (request.get("kind") or {}).get("kind", ""),
        "namespace": request.get("namespace", ""),
        "name": request.get("name", ""),
        "patch": list(decision.patch),
    }
