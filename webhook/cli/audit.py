"""`podgate audit`: judge what a cluster already runs against the policies, as if it were created now.

Pods and pod controllers are listed (500 per request), each object is judged as `podgate apply` judges its
manifest (a workload as the pods it creates), with the cluster's namespace labels and LimitRanges. An
object whose controller (ownerReferences) is among those listed is judged through that controller only:
a Deployment speaks for its ReplicaSets and their pods. Exit codes as `apply`: 0 all admitted, 1 any
denied, 2 bad input or no cluster.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO, cast

from webhook.cli.common import add_policies_flag, load_or_report

EXIT_ADMITTED, EXIT_DENIED, EXIT_BAD_INPUT = 0, 1, 2
# (apiVersion, kind, lightkube module): what may create pods, and pods themselves.
LISTED = (
    ("apps/v1", "Deployment", "apps_v1"),
    ("apps/v1", "StatefulSet", "apps_v1"),
    ("apps/v1", "DaemonSet", "apps_v1"),
    ("apps/v1", "ReplicaSet", "apps_v1"),
    ("v1", "ReplicationController", "core_v1"),
    ("batch/v1", "CronJob", "batch_v1"),
    ("batch/v1", "Job", "batch_v1"),
    ("v1", "Pod", "core_v1"),
)
_SET = re.compile(r"^\s*([^\s!=(),]+)\s+(in|notin)\s+\(([^()]*)\)\s*$")
_BINARY = re.compile(r"^\s*([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)\s*$")
_UNARY = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s*$")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "audit",
        help="judge the pods and workloads a cluster runs (exit 1 if any would be denied)",
        description=__doc__,
    )
    parser.add_argument("--kubeconfig", metavar="FILE", help="default: $KUBECONFIG, then ~/.kube/config")
    parser.add_argument("--context", metavar="NAME", help="the kubeconfig context (default: its current one)")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n", "--namespace", help="audit this namespace (default: the context's, else default)"
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="audit every namespace")
    parser.add_argument(
        "-l", "--selector", metavar="SELECTOR", help="label selector, as kubectl's: app=web,tier!=db"
    )
    add_policies_flag(parser)
    parser.add_argument(
        "-o",
        "--output",
        choices=("table", "wide", "json", "policyreport"),
        default="table",
        help="objects with findings as a table (wide: with changes and messages), every object as JSON, or "
        "wgpolicyk8s.io/v1alpha2 PolicyReports, one per namespace, for `kubectl apply --server-side -f -`",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from webhook.cli import auditreport
    from webhook.errors import SettingsError
    from webhook.server.cluster import load_config

    policies = load_or_report(args.policies)
    if policies is None:
        return EXIT_BAD_INPUT
    try:
        selector = parse_label_selector(args.selector) if args.selector else []
        config = load_config(Path(args.kubeconfig) if args.kubeconfig else None, args.context)
    except (ValueError, SettingsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    namespace = "*" if args.all_namespaces else (args.namespace or config.namespace or "default")
    progress = Progress(sys.stderr)
    started = time.perf_counter()
    try:
        findings = list(judge_cluster(policies, config, namespace, selector, progress))
    except ClusterUnreachable as error:
        progress.line(f"error: {error}")
        return EXIT_BAD_INPUT
    seconds = time.perf_counter() - started
    counts = auditreport.summary(findings)
    where = "all namespaces" if namespace == "*" else f"namespace {namespace}"
    progress.line(
        f"audited {counts['objects']} objects in {where} in {seconds:.1f} s: {counts['admitted']} admitted, "
        f"{counts['warned']} warned, {counts['denied']} denied"
    )
    if args.output in ("table", "wide"):
        sys.stdout.write(auditreport.render_table(findings, wide=args.output == "wide") + "\n")
    elif args.output == "json":
        sys.stdout.write(auditreport.render_json(findings))
    else:
        sys.stdout.write(auditreport.render_policy_reports(findings, time.time()))
    return EXIT_DENIED if counts["denied"] else EXIT_ADMITTED


class ClusterUnreachable(Exception):
    """Listing failed: the message says what could not be listed, and why."""


def judge_cluster(
    policies: Any, config: Any, namespace: str, selector: list[tuple[str, Any]], progress: Progress
) -> Iterator[Any]:
    """List, then judge, every top-level pod and pod controller of `namespace` ("*": all)."""
    from lightkube.resources import apps_v1, batch_v1, core_v1

    from webhook.cli.auditreport import Finding
    from webhook.cli.clusterfacts import with_limit_range_defaults
    from webhook.cli.manifests import Options, request_for
    from webhook.engine.evaluation import evaluate
    from webhook.errors import ReviewError
    from webhook.server.cluster import PAGE, connect

    modules = {"apps_v1": apps_v1, "batch_v1": batch_v1, "core_v1": core_v1}
    client = connect(config, timeout=30.0)
    facts = _facts(client, progress)
    listed: list[tuple[str, str, dict[str, Any]]] = []
    for api_version, kind, module in LISTED:
        resource = getattr(modules[module], kind)
        before = len(listed)
        try:
            # A list of pairs, which lightkube's selector builder takes, keeps repeated keys (a!=x,a!=y).
            labels = cast(Any, selector) or None
            found = client.list(resource, namespace=namespace, chunk_size=PAGE, labels=labels)
            for obj in found:
                listed.append((api_version, kind, _as_manifest(obj.to_dict())))
                if len(listed) % PAGE == 0:
                    progress.status(f"listing: {len(listed)} objects ({kind})")
        except Exception as error:
            raise ClusterUnreachable(f"cannot list {kind}s: {error}") from None
        progress.line(f"listed {len(listed) - before} {kind}s")
    uids = {str((obj.get("metadata") or {}).get("uid", "")) for _, _, obj in listed}
    judged = [(v, k, obj) for v, k, obj in listed if not _owned_by_listed(obj, uids)]
    options = Options(user="podgate-audit")
    for index, (api_version, kind, obj) in enumerate(judged, start=1):
        metadata = obj.get("metadata") or {}
        where = f"{kind} {metadata.get('namespace', '')}/{metadata.get('name', '')}"
        try:
            request = with_limit_range_defaults(request_for(obj, options, where), facts)
            decision = evaluate(policies, request, cluster=facts)
        except (ReviewError, ValueError) as error:
            progress.line(f"error: {where}: {error}")
            continue
        if index % PAGE == 0:
            progress.status(f"judging: {index}/{len(judged)} objects")
        yield Finding(
            api_version,
            kind,
            str(metadata.get("namespace", "")),
            str(metadata.get("name", "")),
            str(metadata.get("uid", "")),
            decision,
        )


def _facts(client: Any, progress: Progress) -> Any:
    """Namespace labels and LimitRanges; without the right to list them, labels stay unknown (warned)."""
    from lightkube.resources.core_v1 import LimitRange, Namespace

    from webhook.kube.cluster import facts_from_objects
    from webhook.server.cluster import PAGE

    objects: list[Mapping[str, Any]] = []
    known = True
    for resource, scope in ((Namespace, {}), (LimitRange, {"namespace": "*"})):
        try:
            objects.extend(obj.to_dict() for obj in client.list(resource, chunk_size=PAGE, **scope))
        except Exception as error:
            name = resource.__name__.lower() + "s"
            progress.line(f"warning: cannot list {name} ({error}); policies that need them are not applied")
            known = known and resource is Namespace
    hint = "it could not be read from the cluster (docs/cluster.md)"
    return facts_from_objects(objects, limit_ranges_known=known, unknown_hint=hint)


def _as_manifest(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without what no rule reads and the server alone writes: status and managedFields,
    which are most of a stored pod's bytes."""
    obj.pop("status", None)
    metadata = obj.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("managedFields", None)
    return obj


def _owned_by_listed(obj: Mapping[str, Any], uids: set[str]) -> bool:
    for owner in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if isinstance(owner, Mapping) and owner.get("controller") and str(owner.get("uid", "")) in uids:
            return True
    return False


def parse_label_selector(text: str) -> list[tuple[str, Any]]:
    """kubectl's label selector syntax (`a=b,c!=d,e in (f,g),!h`) as lightkube's (key, operator) pairs;
    ValueError names a requirement it cannot read."""
    from lightkube import operators

    pairs: list[tuple[str, Any]] = []
    for part in _split(text):
        if match := _SET.match(part):
            values = [v.strip() for v in match[3].split(",") if v.strip()]
            pairs.append((match[1], (operators.in_ if match[2] == "in" else operators.not_in)(values)))
        elif match := _BINARY.match(part):
            pairs.append((match[1], (operators.not_equal if match[2] == "!=" else operators.equal)(match[3])))
        elif match := _UNARY.match(part):
            pairs.append((match[2], operators.not_exists() if match[1] else operators.exists()))
        else:
            raise ValueError(
                f"-l {text!r}: cannot read {part.strip()!r} (e.g. app=web,tier in (a,b),!legacy)"
            )
    return pairs


def _split(text: str) -> list[str]:
    """Requirements separated by commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


class Progress:
    """Counters redrawn in place on a terminal; elsewhere only the lines that stay (errors, the summary)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.live = stream.isatty()
        self._shown = False

    def status(self, text: str) -> None:
        if self.live:
            self.stream.write(f"\r\033[K{text}")
            self.stream.flush()
            self._shown = True

    def line(self, text: str) -> None:
        if self._shown:
            self.stream.write("\r\033[K")
            self._shown = False
        print(text, file=self.stream)
